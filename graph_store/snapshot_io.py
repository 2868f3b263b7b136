"""Read a graph snapshot (``OUT/snapshot``): the one reader the Neo4j loaders and the HeteroData
builder share, so all see the same validated tables (as Arrow tables, or as DuckDB views that stream
the Parquet files in bounded memory)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import duckdb
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


def _checked_path(path: Path, expected: pa.Schema) -> Path:
    """``path`` after checking its Parquet footer against the schema's Arrow types."""
    if not path.is_file():
        raise CinegraphError(f"{path}: missing from the snapshot")
    found = pq.read_schema(path)
    if not found.equals(expected, check_metadata=False):
        raise CinegraphError(f"{path}: columns {found.names} do not match the schema {expected.names}")
    return path


def snapshot_paths(
    snapshot_dir: Path,
    node_types: tuple[schema.NodeType, ...] = schema.NODE_TYPES,
    edge_types: tuple[schema.EdgeType, ...] = schema.EDGE_TYPES,
) -> dict[str, Path]:
    """The Parquet file of each node label and relationship type, footers checked, data unread."""
    root = Path(snapshot_dir)
    read_manifest(root)
    paths = {nt.label: _checked_path(root / schema.node_path(nt.label), nt.arrow_schema()) for nt in node_types}
    paths.update({et.rel: _checked_path(root / schema.edge_path(et.rel), et.arrow_schema()) for et in edge_types})
    return paths


def view_name(name: str) -> str:
    """The DuckDB view of a snapshot table in :func:`snapshot_duckdb`."""
    return f"snap_{name}"


def snapshot_duckdb(
    snapshot_dir: Path, temp_dir: Path, *, memory_limit: str = "2GB", threads: int = 2
) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with one view ``snap_<label|REL>`` per snapshot table over its Parquet
    file (plus ``file_row_number``, the row's position), spilling to ``temp_dir`` past ``memory_limit``."""
    con = duckdb.connect(config={"memory_limit": memory_limit, "threads": threads,
                                 "temp_directory": str(temp_dir), "preserve_insertion_order": True})
    for name, path in snapshot_paths(snapshot_dir).items():
        con.read_parquet(str(path), file_row_number=True).create_view(view_name(name))
    return con


def read_snapshot(
    snapshot_dir: Path,
    node_types: tuple[schema.NodeType, ...] = schema.NODE_TYPES,
    edge_types: tuple[schema.EdgeType, ...] = schema.EDGE_TYPES,
) -> dict[str, pa.Table]:
    """Node tables keyed by label and edge tables keyed by relationship type, each checked
    against its schema Arrow types."""
    paths = snapshot_paths(snapshot_dir, node_types, edge_types)
    return {name: pq.read_table(path) for name, path in paths.items()}
