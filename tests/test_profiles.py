"""The Snakemake profiles and per-cell resources: they parse, they group cells, they never change results.

No SLURM is started here: the cluster profile is checked with dry-runs (.ci/slurm runs it for real).
"""

import re
import shutil

import pytest
import yaml
from snakemake.iocontainers import Wildcards

from conftest import ROOT, copy_workflow, run_snakemake

PROFILES = ROOT / "workflow" / "profiles"
#: keys that choose how jobs run, never what they compute.
HOW_NOT_WHAT = {"cores", "rerun-triggers", "keep-going", "rerun-incomplete", "printshellcmds", "show-failed-logs"}


def load_profile(name):
    return yaml.safe_load((PROFILES / name / "config.yaml").read_text())


def test_default_profile_only_chooses_how_jobs_run():
    profile = load_profile("default")
    assert set(profile) <= HOW_NOT_WHAT, set(profile) - HOW_NOT_WHAT
    assert profile["cores"] >= 1


def test_slurm_profile_keys():
    profile = load_profile("slurm")
    assert profile["executor"] == "slurm"
    # Without an accounting database sacct fails and the plugin would wait forever.
    assert profile["slurm-status-command"] == "squeue"
    assert profile["retries"] >= 1
    # A site's partition and account come from the command line or a user profile, never from this
    # tracked file; it sets no default-resources at all, so a user profile's pass through.
    assert "default-resources" not in profile
    assert profile["seconds-between-status-checks"] <= 10
    # squeue only sees finished jobs for MinJobAge (300 s by default) seconds.
    assert 3 * profile["slurm-init-seconds-before-status-checks"] <= 300
    groups = profile["groups"]
    assert groups["reference"] == groups["variant_cell"]
    assert profile["group-components"][groups["reference"]] >= 1


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    workdir = copy_workflow(tmp_path_factory.mktemp("profiles"))
    shutil.copytree(PROFILES, workdir / "workflow" / "profiles")
    return workdir


def dry_run(workdir, *args):
    result = run_snakemake(workdir, "-n", "--configfile", "config/test.yaml", *args, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout + result.stderr


#: rules that run where Snakemake runs (``localrules`` in workflow/rules/aggregate.smk, and ``all``);
#: a dry-run prints them as "rule" like any other.
LOCAL_RULES = {"all", "merge", "figure", "table", "numbers"}


def submissions(dry_run_output):
    """Jobs a cluster run would submit: group jobs plus top-level jobs that are not local rules."""
    groups = len(re.findall(r"Group job", dry_run_output))
    single = len([name for name in re.findall(r"^rule (\w+):", dry_run_output, re.M) if name not in LOCAL_RULES])
    return groups + single


def test_slurm_dry_run_groups_cells(workdir):
    grouped = dry_run(workdir, "--workflow-profile", "workflow/profiles/slurm")
    assert "Group job cells" in grouped
    ungrouped = dry_run(workdir, "--workflow-profile", "none", "--cores", "1")
    n_cells = len(re.findall(r"rule (reference|variant_cell):", ungrouped))
    assert n_cells >= 10
    assert submissions(grouped) < submissions(ungrouped) / 3


def test_partition_and_account_come_from_a_user_profile(workdir, tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "config.yaml").write_text("default-resources:\n  slurm_partition: lab_part\n  slurm_account: lab_acct\n")
    output = dry_run(workdir, "--profile", str(site), "--workflow-profile", "workflow/profiles/slurm")
    cells = re.findall(r"^\s*rule (?:reference|variant_cell):\n(?:.*\n)*?\s+resources: (.*)$", output, re.M)
    assert cells
    assert all("slurm_partition=lab_part" in r and "slurm_account=lab_acct" in r for r in cells)
    assert all("mem_mb=" in r and "runtime=" in r for r in cells)  # the cells' own sizes are kept


def test_partition_on_the_command_line(workdir):
    output = dry_run(
        workdir, "--workflow-profile", "workflow/profiles/slurm", "--default-resources", "slurm_partition=cli_part"
    )
    resources = re.findall(r"^\s+resources: (.*)$", output, re.M)
    assert resources and all("slurm_partition=cli_part" in r for r in resources)


def test_default_profile_dry_run(workdir):
    output = dry_run(workdir, "--workflow-profile", "workflow/profiles/default")
    assert "Using workflow specific profile workflow/profiles/default" in output


class NamedModelStudy:
    """A study whose points have no "states": resources must come from its model size alone."""

    def model_entries(self, point):
        return point["entries"], 1.0


def resource_functions(studies, points):
    """cell_mem_mb and cell_runtime_min as the workflow calls them for a cell's wildcards."""
    from pymdpbench import resources

    def call(fn):
        return lambda w, attempt: fn(studies[w.study], points[w.cell], w.get("variant", "standard"), attempt)

    return call(resources.cell_mem_mb), call(resources.cell_runtime_min)


def test_cell_resources_grow_with_model_and_attempt():
    from pymdpbench.studies import get_study

    points = {
        "small": {"cell": "small", "states": 8, "obs": 8, "actions": 4, "horizon": 1},
        "large": {"cell": "large", "states": 4096, "obs": 64, "actions": 8, "horizon": 1},
    }
    mem, runtime = resource_functions({"inference": get_study("inference")}, points)
    small = Wildcards(fromdict={"study": "inference", "cell": "small", "variant": "numba"})
    large = Wildcards(fromdict={"study": "inference", "cell": "large", "variant": "numba"})
    reference = Wildcards(fromdict={"study": "inference", "cell": "large"})
    assert mem(large, 1) > mem(small, 1) >= 200
    assert runtime(large, 1) > runtime(small, 1) >= 1
    assert mem(small, 2) == 2 * mem(small, 1) and runtime(small, 3) == 4 * runtime(small, 1)
    assert mem(reference, 1) == mem(large, 1)  # the reference rule has no variant: standard, float64
    float32 = Wildcards(fromdict={"study": "inference", "cell": "large", "variant": "float32"})
    assert mem(float32, 1) < mem(large, 1)


def test_cell_resources_for_points_without_states():
    points = {"named": {"cell": "named", "entries": 10**9}}
    mem, runtime = resource_functions({"named": NamedModelStudy()}, points)
    wildcards = Wildcards(fromdict={"study": "named", "cell": "named", "variant": "standard"})
    assert mem(wildcards, 1) > 8 * 10**9 / 2**20
    assert isinstance(runtime(wildcards, 1), int)


def test_cell_runtime_scales_with_the_timing_processes():
    from pymdpbench import resources
    from pymdpbench.studies import get_study

    point = {"cell": "s8", "states": 8, "obs": 8, "actions": 4, "horizon": 1}
    one = resources.cell_runtime_min(get_study("inference"), point, "numba")
    assert resources.cell_runtime_min(get_study("inference"), point, "numba", processes=5) == 5 * one
