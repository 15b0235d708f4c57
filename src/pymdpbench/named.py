"""Named real models: pymdp's own environments, and GNN files of the project.

``load_named_model("tmaze")`` builds a model from a registered builder (``NAMED_MODELS``);
``load_named_model("config/models/tmaze.md")`` reads a GNN file (:func:`pymdpbench.gnn.read_gnn`).
The registered models take their A and B from ``pymdp.legacy.envs``, so they are the matrices
pymdp's own demos run on; C and D are set here (pymdp's environments do not define them) and
say where they come from.

Building a model never touches numpy's global random state: the environments are constructed
with fixed initial states, so a benchmark seeded before building draws the same numbers.
"""

import copy
from pathlib import Path

import numpy as np

from pymdpbench.engines.base import obj_array
from pymdpbench.gnn import read_gnn
from pymdpbench.models import Model


def build_tmaze(reward_probs=None, reward_preference=3.0):
    """pymdp's T-maze (``pymdp.legacy.envs.TMazeEnv``): 2 factors, 3 modalities.

    Factors: location (centre, left arm, right arm, cue arm; 4 actions: go to location k) and
    reward condition (2 states, 1 action). Modalities: location (4), reward (no reward, reward,
    loss) and cue (2). A and B are the environment's. C prefers reward and avoids loss by
    ``reward_preference`` nats, as in pymdp's T-maze demo. D is the environment's ``reset``:
    the agent starts in the centre; the reward condition is drawn uniformly, so its prior is
    uniform.
    """
    from pymdp.legacy.envs import TMazeEnv
    from pymdp.legacy.envs.tmaze import LOCATION_FACTOR_ID, LOSS_IDX, REWARD_IDX, REWARD_MODALITY_ID

    env = TMazeEnv(reward_probs=None if reward_probs is None else list(reward_probs))
    A = obj_array([np.array(a, dtype=float) for a in env.get_likelihood_dist()])
    B = obj_array([np.array(b, dtype=float) for b in env.get_transition_dist()])
    C = obj_array([np.zeros(n) for n in env.num_obs])
    C[REWARD_MODALITY_ID][REWARD_IDX] = reward_preference
    C[REWARD_MODALITY_ID][LOSS_IDX] = -reward_preference
    D = obj_array([np.ones(n) / n for n in env.num_states])
    D[LOCATION_FACTOR_ID] = np.eye(env.num_locations)[0]
    return Model(
        "tmaze",
        A,
        B,
        C,
        D,
        meta={
            "source": "pymdp.legacy.envs.TMazeEnv",
            "reward_probs": list(env.reward_probs),
            "reward_preference": reward_preference,
        },
    )


def build_gridworld(shape=(3, 3), start=0, goal=None, goal_preference=4.0):
    """pymdp's grid world (``pymdp.legacy.envs.GridWorldEnv``): one factor, the cell.

    States and observations are the ``rows * cols`` cells (row-major); 5 actions (up, right,
    down, left, stay). A is the environment's identity observation, B its deterministic moves.
    C prefers the ``goal`` cell (default: the last, bottom-right) by ``goal_preference`` nats;
    D is certain of the ``start`` cell, the environment's initial state.
    """
    from pymdp.legacy.envs import GridWorldEnv

    env = GridWorldEnv(shape=list(shape), init_state=start)
    num_cells = int(env.n_states)
    goal = num_cells - 1 if goal is None else goal
    if not 0 <= goal < num_cells:
        raise ValueError(f"goal cell {goal} is outside a grid of {num_cells} cells")
    A = obj_array([np.array(env.get_likelihood_dist(), dtype=float)])
    B = obj_array([np.array(env.get_transition_dist(), dtype=float)])
    C = obj_array([np.zeros(num_cells)])
    C[0][goal] = goal_preference
    D = obj_array([np.eye(num_cells)[env.init_state]])
    return Model(
        "gridworld",
        A,
        B,
        C,
        D,
        meta={
            "source": "pymdp.legacy.envs.GridWorldEnv",
            "shape": list(shape),
            "start": start,
            "goal": goal,
            "goal_preference": goal_preference,
        },
    )


#: name -> builder of a :class:`Model`. Adding a named model = one function + one line here.
NAMED_MODELS = {
    "tmaze": build_tmaze,
    "gridworld": build_gridworld,
}


def load_named_model(name_or_path, project_root=None):
    """A registered model by name, or the GNN file at a path ending in ``.md``.

    A path is taken relative to ``project_root`` (default: the current directory, which is the
    project's root when Snakemake runs) and must stay inside it: ``..`` escapes and absolute
    paths elsewhere are refused, so a configuration cannot make the benchmark read arbitrary files.
    """
    text = str(name_or_path)
    if text.endswith(".md"):
        return read_gnn_once(resolve_model_path(text, project_root))
    if text not in NAMED_MODELS:
        raise KeyError(
            f"unknown model {text!r}: expected one of {sorted(NAMED_MODELS)} or a GNN file path ending in .md"
        )
    return NAMED_MODELS[text]()


#: GNN files read in this process: path -> ((mtime, size), Model). A cell asks for its model several
#: times (row, options, size, build) and Snakemake for every job's resources: a large file is read once.
_GNN_CACHE = {}


def read_gnn_once(path):
    """:func:`read_gnn`, reading each file once per process and again only when it changes (its
    modification time or size); each caller gets its own copy, so an agent editing its arrays
    cannot change another's model."""
    try:
        stat = Path(path).stat()
    except OSError:
        return read_gnn(path)  # which names the file and why it cannot be read
    stamp = (stat.st_mtime_ns, stat.st_size)
    cached = _GNN_CACHE.get(str(path))
    if cached is None or cached[0] != stamp:
        cached = _GNN_CACHE[str(path)] = (stamp, read_gnn(path))
    return copy.deepcopy(cached[1])


def resolve_model_path(path, project_root=None):
    """``path`` resolved against ``project_root``; a ``ValueError`` if it leads outside that directory."""
    root = Path(project_root if project_root is not None else Path.cwd()).resolve()
    resolved = (root / path).resolve()
    if not resolved.is_relative_to(root):
        raise ValueError(f"model file {path!r} is outside the project directory {root}")
    return resolved
