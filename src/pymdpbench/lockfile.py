"""Did this run use the pinned environment? Installed versions compared with ``requirements.lock``.

The lock (docs/reproducing.md) pins every package of the project with all its extras, with
environment markers where a version depends on the Python version or the platform. A run used the
lock when every package the lock pins for this interpreter is installed at exactly that version;
packages installed besides them (a debugger, an editor plugin) do not change the numbers and are
not counted. The run manifest records the answer (``pymdpbench.harness.write_manifest``).
"""

import hashlib
import importlib.metadata
import re
from pathlib import Path


def canonical(name):
    """A distribution name as pip compares them (PEP 503): ``Foo_Bar`` and ``foo-bar`` are one."""
    return re.sub(r"[-_.]+", "-", name).lower()


def read_lock(path):
    """``{name: version}`` of the pins in ``path`` that apply to this interpreter and platform."""
    from packaging.requirements import Requirement

    pins = {}
    for number, line in enumerate(Path(path).read_text().splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        requirement = Requirement(line)
        specifiers = list(requirement.specifier)
        if len(specifiers) != 1 or specifiers[0].operator != "==":
            raise ValueError(f"{path}:{number}: not an exact pin (name==version): {line!r}")
        if requirement.marker is None or requirement.marker.evaluate():
            pins[canonical(requirement.name)] = specifiers[0].version
    return pins


def installed_versions():
    return {canonical(d.metadata["Name"]): d.version for d in importlib.metadata.distributions()}


def lock_status(path="requirements.lock"):
    """What the manifest records: the lock's file and hash, whether this environment matches it,
    and each pinned package installed at another version or missing (``locked -> installed``)."""
    path = Path(path)
    if not path.is_file():
        return {"file": str(path), "used": False, "reason": "no lock file"}
    installed = installed_versions()
    differences = {
        name: f"{version} -> {installed.get(name, 'not installed')}"
        for name, version in read_lock(path).items()
        if installed.get(name) != version
    }
    return {
        "file": str(path),
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "used": not differences,
        "differences": differences,
    }
