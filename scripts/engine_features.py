"""Which legacy features each registered engine supports: a markdown table from each engine's
``supports()`` (which its constructor agrees with), for docs/engines.md. Method arguments
(``infer_states(obs, distr_obs=True)``) are not constructor options: each engine's docs say.

    python scripts/engine_features.py
"""

import sys

import numpy as np

from pymdpbench.engines import ENGINES, get_engine
from pymdpbench.engines.base import obj_array

BASE = {"num_states": [4, 3], "num_obs": [3, 2], "num_controls": [2, 3], "policy_len": 1}

#: feature -> the options that turn it on
FEATURES = {
    "several factors and modalities": {},
    "A_factor_list": {"A_factor_list": [[0], [0, 1]]},
    "B_factor_list interactions": {"B_factor_list": [[0, 1], [1]]},
    "policy_len 3": {"policy_len": 3},
    "custom policies": {"policies": [np.zeros((1, 2), dtype=int), np.ones((1, 2), dtype=int)]},
    "num_controls": {"num_controls": [2, 3]},
    "control_fac_idx": {"control_fac_idx": [1]},
    "parameter info gain": {"use_param_info_gain": True},
    "learning D (pD)": {"pD": obj_array([np.ones(4), np.ones(3)])},
    "belief histories (save_belief_hist)": {"save_belief_hist": True},
    "MMP (inference_algo, inference_horizon)": {"inference_algo": "MMP", "inference_horizon": 2},
    "sophisticated inference": {"sophisticated": True},
    "inductive inference (H)": {"H": obj_array([np.eye(4)[0], np.eye(3)[0]])},
    "stochastic full sampling": {"sampling_mode": "full", "action_selection": "stochastic"},
}


def main():
    engines = [name for name in ENGINES if name != "standard"]
    print("| feature | " + " | ".join(engines) + " |")
    print("|---|" + "---|" * len(engines))
    for feature, options in FEATURES.items():
        cells = []
        for name in engines:
            ok, reason = get_engine(name).supports({**BASE, **options})
            cells.append("yes" if ok else f"refused: {reason}")
        print(f"| {feature} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
