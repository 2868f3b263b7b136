"""Reading snapshots: the tables by label/rel, and one-line errors on a foreign or damaged one."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from graph_store import schema
from graph_store.errors import CinegraphError
from graph_store.snapshot_io import read_manifest, read_snapshot


def make_snapshot(root: Path, version: int = schema.SCHEMA_VERSION) -> Path:
    """An empty but well-typed snapshot, as the ETL lays it out."""
    for nt in schema.NODE_TYPES:
        (root / schema.node_path(nt.label)).parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(nt.arrow_schema().empty_table(), root / schema.node_path(nt.label))
    for et in schema.EDGE_TYPES:
        (root / schema.edge_path(et.rel)).parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(et.arrow_schema().empty_table(), root / schema.edge_path(et.rel))
    (root / schema.MANIFEST_FILE).write_text(json.dumps({"schema_version": version, "counts": {}}))
    return root


def test_reads_every_type(tmp_path: Path) -> None:
    root = make_snapshot(tmp_path / "snapshot")
    users = pa.table({"user_id": [1, 2], "gender": [None, "F"], "age": pa.array([None, 30], pa.int32()),
                      "occupation": [None, None], "zip_code": [None, None]},
                     schema=schema.USER.arrow_schema())  # fmt: skip
    pq.write_table(users, root / schema.node_path("User"))
    tables = read_snapshot(root)
    assert list(tables) == [n.label for n in schema.NODE_TYPES] + [e.rel for e in schema.EDGE_TYPES]
    assert tables["User"].column("user_id").to_pylist() == [1, 2]
    assert tables["RATED"].schema.equals(schema.RATED.arrow_schema())
    assert read_manifest(root)["schema_version"] == schema.SCHEMA_VERSION


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda r: (r / schema.MANIFEST_FILE).unlink(), "manifest.json: not found"),
        (lambda r: (r / schema.MANIFEST_FILE).write_text("{not json"), "manifest.json: not valid JSON"),
        (lambda r: (r / schema.MANIFEST_FILE).write_text('{"schema_version": 0}'),
         "manifest.json: schema_version 0, this code reads"),
        (lambda r: (r / schema.edge_path("KNOWN_FOR")).unlink(), "KNOWN_FOR.parquet: missing"),
        (lambda r: pq.write_table(pa.table({"movie_id": ["x"]}), r / schema.node_path("Movie")),
         r"Movie.parquet: columns \['movie_id'\] do not match"),
    ],
)  # fmt: skip
def test_damaged_snapshot_is_one_line_error(tmp_path: Path, damage, message: str) -> None:
    root = make_snapshot(tmp_path / "snapshot")
    damage(root)
    with pytest.raises(CinegraphError, match=message) as err:
        read_snapshot(root)
    assert "\n" not in str(err.value)
