"""One file per study. A study knows its grid points, its model and the operation it times;
it never knows which engine runs it.
"""

from importlib import import_module

#: study name -> "module:class"
STUDIES = {
    "inference": "pymdpbench.studies.inference:Inference",
    "planning": "pymdpbench.studies.planning:Planning",
    "memory": "pymdpbench.studies.memory:Memory",
    "batch": "pymdpbench.studies.batch:Batch",
    "learning": "pymdpbench.studies.learning:Learning",
    "profile": "pymdpbench.studies.profile:Profile",
}


def get_study(name):
    """An instance of the study called ``name``."""
    if name not in STUDIES:
        raise KeyError(f"unknown study {name!r}: expected one of {sorted(STUDIES)}")
    module_name, class_name = STUDIES[name].split(":")
    return getattr(import_module(module_name), class_name)()
