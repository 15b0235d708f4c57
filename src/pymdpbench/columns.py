"""docs/columns.md, the column dictionary, written from the row schema (``results.COLUMNS``).

    python -m pymdpbench.columns docs/columns.md

tests/test_columns.py fails when the committed page differs from what this writes, so a column
added to the schema without rerunning this is caught.
"""

import sys
from pathlib import Path

HEADER = """# Columns

Every Parquet file of a run (`results/cells/<study>/<cell>/<variant>.parquet` and the merged
`results/<study>.parquet`) has these columns, in this order. The unit and the meaning of each are
also stored in the file itself, as the field's metadata:

```python
import pyarrow.parquet as pq

pq.read_schema("results/inference.parquet").field("step_time_s").metadata
# {b'unit': b's', b'description': b'median of samples_s'}
```

Columns named `p_*` are grid parameters; a column a study does not measure is null. *Measured*
columns (timing, memory, load, host) change from run to run; every other column is a function of
the config and must be the same on a rerun (`pymdpbench.results.MEASURED`).

This page is written by `python -m pymdpbench.columns docs/columns.md` from
`pymdpbench.results.COLUMNS`; do not edit it by hand.

| column | type | unit | measured | meaning |
|---|---|---|---|---|
"""


def markdown():
    from pymdpbench.results import COLUMNS, MEASURED

    def cell(text):
        return str(text).replace("|", "\\|").replace("\n", " ")

    lines = [
        f"| `{name}` | {cell(typ)} | {cell(unit) or '-'} | {'yes' if name in MEASURED else ''} | {cell(meaning)} |"
        for name, (typ, unit, meaning) in COLUMNS.items()
    ]
    return HEADER + "\n".join(lines) + "\n"


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        sys.exit("usage: python -m pymdpbench.columns docs/columns.md")
    Path(argv[0]).write_text(markdown())


if __name__ == "__main__":
    main()
