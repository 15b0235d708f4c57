"""The engines install and import without the workflow's packages; the metadata is complete."""

import subprocess
import sys
import tomllib

from conftest import ROOT

#: packages only the workflow needs. (pandas and PyYAML are not listed: pymdp itself imports them,
#: through seaborn and JAX, and pandas then loads pyarrow where it is installed.)
WORKFLOW_ONLY = {"snakemake", "threadpoolctl", "memory_profiler"}


def pyproject():
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def test_core_dependencies_are_the_engines_own():
    core = {d.split(">")[0].split("<")[0].split("=")[0].strip() for d in pyproject()["dependencies"]}
    assert core == {"inferactively-pymdp", "numpy", "scipy", "numba", "psutil"}


def test_an_engine_imports_no_workflow_package():
    code = (
        "import sys; from pymdpbench.engines import get_engine; get_engine('numba'); get_engine('float32'); "
        "print(' '.join(sorted(m for m in sys.modules if '.' not in m)))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert not WORKFLOW_ONLY & set(result.stdout.split()), WORKFLOW_ONLY & set(result.stdout.split())


def test_metadata_names_licence_authors_and_the_workflow_extra():
    project = pyproject()
    assert project["license"] == "MIT" and (ROOT / "LICENSE").read_text().startswith("MIT License")
    assert project["authors"] == [{"name": "pymdp-bench developers"}]
    assert {"workflow", "test", "all"} <= set(project["optional-dependencies"])
    assert any(d.startswith("snakemake>") for d in project["optional-dependencies"]["workflow"])
    assert (ROOT / "CITATION.cff").exists()
