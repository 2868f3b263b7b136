"""Read a graph snapshot (``OUT/snapshot``): the one reader the Neo4j loader and the HeteroData
builder share, so both see the same validated tables."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from graph_store import schema
from graph_store.errors import CinegraphError


def read_manifest(snapshot_dir: Path) -> dict[str, Any]:
    """``manifest.json`` of a snapshot, after checking it is one this code can read."""
    path = Path(snapshot_dir) / schema.MANIFEST_FILE
    if not path.is_file():
        raise CinegraphError(f"{path}: not found; is {snapshot_dir} a cinegraph snapshot?")
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CinegraphError(f"{path}: not valid JSON ({exc})") from exc
    version = manifest.get("schema_version") if isinstance(manifest, dict) else None
    if version != schema.SCHEMA_VERSION:
        raise CinegraphError(
            f"{path}: schema_version {version!r}, this code reads {schema.SCHEMA_VERSION}; rerun `cinegraph etl`"
        )
    return manifest


def _read_table(path: Path, expected: pa.Schema) -> pa.Table:
    if not path.is_file():
        raise CinegraphError(f"{path}: missing from the snapshot")
    table = pq.read_table(path)
    if not table.schema.equals(expected, check_metadata=False):
        raise CinegraphError(f"{path}: columns {table.schema.names} do not match the schema {expected.names}")
    return table


def read_snapshot(
    snapshot_dir: Path,
    node_types: tuple[schema.NodeType, ...] = schema.NODE_TYPES,
    edge_types: tuple[schema.EdgeType, ...] = schema.EDGE_TYPES,
) -> dict[str, pa.Table]:
    """Node tables keyed by label and edge tables keyed by relationship type, each checked
    against its schema Arrow types."""
    root = Path(snapshot_dir)
    read_manifest(root)
    tables = {nt.label: _read_table(root / schema.node_path(nt.label), nt.arrow_schema()) for nt in node_types}
    tables.update(
        {et.rel: _read_table(root / schema.edge_path(et.rel), et.arrow_schema()) for et in edge_types}
    )
    return tables
