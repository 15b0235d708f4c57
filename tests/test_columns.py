"""Self-describing data: units and meanings in the Parquet files, and docs/columns.md up to date."""

import pyarrow as pa
import pyarrow.parquet as pq

from pymdpbench import columns, results

from conftest import ROOT


def test_every_field_of_a_written_file_carries_its_unit_and_meaning(tmp_path):
    path = tmp_path / "numba.parquet"
    results.write_rows([{"study": "inference", "cell": "s8", "variant": "numba", "step_time_s": 2e-6}], path, {})
    schema = pq.read_schema(path)
    assert schema.field("step_time_s").metadata == {b"unit": b"s", b"description": b"median of samples_s"}
    for name, (_, unit, meaning) in results.COLUMNS.items():
        assert schema.field(name).metadata == {b"unit": unit.encode(), b"description": meaning.encode()}, name
    assert results.read_cell(path).column("step_time_s")[0].as_py() == 2e-6


def test_a_merge_keeps_them_even_from_files_written_without(tmp_path):
    plain = results.rows_to_table([{"study": "inference", "cell": "s8", "variant": "standard"}])
    plain = plain.cast(pa.schema([field.remove_metadata() for field in results.SCHEMA]))
    assert plain.schema.field("step_time_s").metadata is None
    pq.write_table(
        plain.replace_schema_metadata({b"pymdpbench_schema_version": results.SCHEMA_VERSION.encode()}),
        tmp_path / "standard.parquet",
    )
    results.merge([tmp_path / "standard.parquet"], tmp_path / "inference.parquet")
    field = pq.read_schema(tmp_path / "inference.parquet").field("model_bytes")
    assert field.metadata[b"unit"] == b"B"


def test_the_committed_column_dictionary_is_up_to_date():
    committed = (ROOT / "docs" / "columns.md").read_text()
    assert committed == columns.markdown(), "rerun: python -m pymdpbench.columns docs/columns.md"
    for name in results.COLUMNS:
        assert f"| `{name}` |" in committed
