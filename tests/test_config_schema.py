"""The config schema stops bad configs before any job, naming the key."""

import copy

import pytest
import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from conftest import ROOT, copy_workflow, run_snakemake

SCHEMA = str(ROOT / "workflow/schemas/config.schema.yaml")
GOOD = {
    "seed": 1,
    "variants": ["standard"],
    "studies": {
        "inference": {"states": [4, 8], "observations": [3], "actions": [2]},
        "planning": {"states": 4, "observations": 3, "actions": 2, "horizons": [1, 2]},
    },
}


def with_change(path, value):
    cfg = copy.deepcopy(GOOD)
    node = cfg
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = value
    return cfg


def test_good_config_gets_defaults():
    cfg = copy.deepcopy(GOOD)
    validate(cfg, SCHEMA)
    assert cfg["threads"] == 1
    assert cfg["timing"]["samples"] == 15
    assert cfg["studies"]["inference"]["max_size_product"] == 10_000_000
    assert (cfg["max_cells"], cfg["max_policies"], cfg["max_step_time_s"]) == (5000, 100_000, 60)


@pytest.mark.parametrize(
    "path, value, words",
    [
        (["bogus"], 1, ["bogus", "unexpected"]),
        (["studies", "inference", "colours"], [1], ["colours", "unexpected"]),
        (["studies", "inference", "states"], [0], ["states", "minimum"]),
        (["studies", "inference", "states"], [-4], ["states", "minimum"]),
        (["studies", "inference", "states"], [], ["states", "non-empty"]),
        (["studies", "inference", "actions"], "four", ["actions", "not of type"]),
        (["studies", "planning", "horizons"], [0], ["horizons", "minimum"]),
        (["studies", "planning", "states"], 2.5, ["states", "not of type"]),
        (["variants"], [], ["variants", "non-empty"]),
        (["variants"], ["rm -rf /"], ["variants", "does not match"]),
        (["seed"], "x", ["seed", "not of type"]),
        (["threads"], 0, ["threads", "minimum"]),
        (["memory_cap_mb"], 0, ["memory_cap_mb", "exclusiveMinimum"]),
        (["timing", "samples"], 1, ["samples", "minimum"]),
        (["timing", "min_sample_s"], -1, ["min_sample_s", "exclusiveMinimum"]),
        (["studies"], {}, ["studies"]),
    ],
)
def test_bad_config_names_the_key(path, value, words):
    with pytest.raises(WorkflowError) as err:
        validate(with_change(path, value), SCHEMA)
    message = str(err.value) + str(err.value.__cause__ or "") + "".join(map(str, getattr(err.value, "args", [])))
    for word in words:
        assert word in message


def test_unknown_key_stops_snakemake_before_any_job(tmp_path):
    copy_workflow(tmp_path)
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(with_change(["bogus_key"], 3)))
    result = run_snakemake(tmp_path, "--cores", "1", "--configfile", "bad.yaml")
    assert result.returncode != 0
    assert "bogus_key" in result.stdout + result.stderr
    assert not (tmp_path / "results").exists()


def test_unknown_variant_is_named(tmp_path):
    copy_workflow(tmp_path)
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(with_change(["variants"], ["standard", "turbo"])))
    result = run_snakemake(tmp_path, "-n", "--cores", "1", "--configfile", "bad.yaml")
    assert result.returncode != 0
    assert "turbo" in result.stdout + result.stderr


BAD_BEFORE_ANY_JOB = [
    (
        "seed: 1\nvariants: [standard]\nstudies:\n  planning: {states: 4, observations: 3, actions: 2, horizons: [1]}\n"
        "  planning: {states: 8, observations: 3, actions: 2, horizons: [1]}\n",
        "key 'planning' is written twice (lines 4 and 5)",
    ),
    (
        "seed: 7.0\nvariants: [standard]\nstudies:\n  planning: {states: 4, observations: 3, actions: 2, horizons: [1]}\n",
        "config key 'seed': 7.0 is not an integer (write 7)",
    ),
    (
        "seed: 1\nvariants: [standard]\nstudies:\n  inference: {states: [4], observations: [2], actions: [2], "
        "models: [config/models/a_b.md, config/models/a/b.md]}\n",
        "cell id 'm-gnn_a_b-h1': two grid points share it",
    ),
    (
        "seed: 1\nvariants: [standard, x]\ncustom_variants: {x: 'no_such_module_xyz:Agent'}\nstudies:\n"
        "  planning: {states: 4, observations: 3, actions: 2, horizons: [1]}\n",
        "config key 'custom_variants.x': 'no_such_module_xyz:Agent': cannot import module",
    ),
    (
        "seed: 1\nvariants: [standard]\nstudies:\n  planning: {states: 8, observations: 6, actions: 4, horizons: [9]}\n",
        "262,144 policies of length 9",
    ),
    (
        "seed: 1\nvariants: [standard]\nmax_cells: 10\nstudies:\n  inference: {states: [2, 3, 4, 5, 6, 7], "
        "observations: [2, 3], actions: [2]}\n",
        "the grid has more than 10 cells (at least 12 so far",
    ),
]


@pytest.mark.parametrize("text, words", BAD_BEFORE_ANY_JOB)
def test_config_faults_stop_snakemake_before_any_job_naming_them(tmp_path, text, words):
    copy_workflow(tmp_path)
    (tmp_path / "bad.yaml").write_text(text)
    result = run_snakemake(tmp_path, "--cores", "1", "--configfile", "bad.yaml")
    assert result.returncode != 0
    assert words in result.stdout + result.stderr, result.stderr[-2000:]
    assert not (tmp_path / "results").exists()
