"""The docs stand alone: every link leads to a file of the repository, every config key is explained."""

import re
import subprocess

import pytest
import yaml

from conftest import ROOT

DOCS = [ROOT / "README.md", ROOT / "config" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\((?!https?://|mailto:|#)([^)\s]+)\)")
DOCS_PATH = re.compile(r"\bdocs/[\w.-]+\.(?:md|png|yaml)\b")


def tracked_text_files():
    names = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    suffixes = {".py", ".md", ".smk", ".yaml", ".yml", ".rst", ".toml", ".cff", ".sh", ""}
    return [ROOT / n for n in names if (ROOT / n).suffix in suffixes and (ROOT / n).is_file()]


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_link_leads_to_a_file(doc):
    missing = [target for target in LINK.findall(doc.read_text()) if not (doc.parent / target.split("#")[0]).exists()]
    assert not missing, f"{doc.relative_to(ROOT)} links to files that do not exist: {missing}"


def test_every_docs_path_named_anywhere_exists():
    missing = {
        (str(path.relative_to(ROOT)), name)
        for path in tracked_text_files()
        for name in DOCS_PATH.findall(path.read_text(errors="replace"))
        if not (ROOT / name).exists()
    }
    assert not missing, f"files named but not in the repository: {sorted(missing)}"


def schema_keys(node, prefix=""):
    """Dotted names of the schema's leaf keys (objects are explained through their keys)."""
    for name, sub in (node.get("properties") or {}).items():
        if "properties" in sub:
            yield from schema_keys(sub, f"{prefix}{name}.")
        else:
            yield f"{prefix}{name}"


def test_config_readme_explains_every_schema_key():
    schema = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())
    rows = [line for line in (ROOT / "config" / "README.md").read_text().splitlines() if line.startswith("| `")]

    def explained(key):
        parent, _, leaf = key.rpartition(".")
        return any(f"`{key}`" in row or (parent and f"`{parent}." in row and f"`.{leaf}`" in row) for row in rows)

    missing = [key for key in schema_keys(schema) if not explained(key)]
    assert not missing, f"config/README.md does not explain: {missing}"
