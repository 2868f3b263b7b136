"""Read and write graph snapshots: the one reader the Neo4j loaders and the HeteroData builder
share (as Arrow tables, or as DuckDB views that stream the Parquet files in bounded memory), and
the one writer the ETL, the Neo4j export and the tests share.

A snapshot path such as ``OUT/snapshot`` is a symbolic link to a complete version folder
``OUT/snapshot.versions/<id>/``. A writer fills a new version folder (complete once its
``manifest.json`` exists, written last) and publishes it by renaming a fresh link over the old
one, one atomic ``rename``: at every instant the path names one complete snapshot, and a killed
writer leaves only a version folder or link named with its pid, which the next writer removes.
Readers resolve the link once, so a swap during a read does not mix two snapshots; the version
current before a publish is kept until the next one, for readers that resolved it just before.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from cinegraph import schema
from cinegraph.errors import CinegraphError
from cinegraph.graph_store.lock import owned_name, owner_alive

log = logging.getLogger(__name__)

VERSIONS_SUFFIX = ".versions"
# Fault injection for the kill tests: the writer SIGKILLs itself at the named point.
KILL_AT_VAR = "CINEGRAPH_KILL_AT"


def read_manifest(snapshot_dir: Path) -> dict[str, Any]:
    """``manifest.json`` of a snapshot, after checking it is one this code can read."""
    path = Path(snapshot_dir).resolve() / schema.MANIFEST_FILE
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
    root = Path(snapshot_dir).resolve()  # one version for the whole read, even if a swap follows
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
    con = duckdb.connect(
        config={
            "memory_limit": memory_limit,
            "threads": threads,
            "temp_directory": str(temp_dir),
            "preserve_insertion_order": True,
        }
    )
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


# --- writing --------------------------------------------------------------------------------------


def _kill_point(name: str) -> None:
    if os.environ.get(KILL_AT_VAR) == name:
        os.kill(os.getpid(), signal.SIGKILL)


def _is_complete(version: Path) -> bool:
    return (version / schema.MANIFEST_FILE).is_file()


class SnapshotWriter:
    """Write one snapshot version beside ``target`` and publish it atomically on :meth:`commit`;
    leaving the ``with`` block without a commit removes the version (the old snapshot stays).

    Tables are streamed: each batch is renamed to the schema's columns and cast to its Arrow
    types; types never written are written empty so every reader finds the full layout.
    """

    def __init__(self, target: Path) -> None:
        self.target = Path(target)
        self.versions = self.target.with_name(self.target.name + VERSIONS_SUFFIX)
        self.counts: dict[str, dict[str, int]] = {"nodes": {}, "edges": {}}
        self.version: Path | None = None

    def __enter__(self) -> SnapshotWriter:
        if (
            self.target.is_dir()
            and not self.target.is_symlink()
            and any(self.target.iterdir())
            and not _is_complete(self.target)
        ):
            raise CinegraphError(f"{self.target}: exists and is not a snapshot folder; refusing to replace it")
        self.versions.mkdir(parents=True, exist_ok=True)
        recover(self.target)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        self.version = self.versions / owned_name(stamp)
        self.version.mkdir()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.version is not None and self.version.exists() and not _is_complete(self.version):
            shutil.rmtree(self.version, ignore_errors=True)

    def write_table(self, name: str, data: pa.Table | Iterable[pa.RecordBatch]) -> int:
        """One node (by label) or edge (by relationship type) table; returns its rows."""
        if name in {nt.label for nt in schema.NODE_TYPES}:
            kind, rel_path, arrow = "nodes", schema.node_path(name), schema.node_type(name).arrow_schema()
        else:
            kind, rel_path, arrow = "edges", schema.edge_path(name), schema.edge_type(name).arrow_schema()
        self.counts[kind][name] = self.write_file(rel_path, data, arrow)
        return self.counts[kind][name]

    def write_file(
        self,
        rel_path: str,
        data: pa.Table | pa.RecordBatchReader | Iterable[pa.RecordBatch],
        arrow: pa.Schema | None = None,
    ) -> int:
        """Any Parquet file of the snapshot (``matches.parquet``), typed by ``arrow`` if given."""
        assert self.version is not None, "SnapshotWriter used outside its with block"
        batches = data.to_batches() if isinstance(data, pa.Table) else data
        if arrow is None:
            if not isinstance(data, pa.Table | pa.RecordBatchReader):
                raise TypeError(f"{rel_path}: a plain iterable of record batches needs the arrow schema")
            arrow = data.schema
        path = self.version / rel_path
        path.parent.mkdir(parents=True, exist_ok=True)
        rows = 0
        with pq.ParquetWriter(path, arrow) as writer:
            for batch in batches:
                table = pa.Table.from_batches([batch]).rename_columns(arrow.names).cast(arrow)
                writer.write_table(table)
                rows += table.num_rows
        return rows

    def commit(self, **fields: Any) -> dict[str, Any]:
        """Write the manifest (schema version, creation time, counts, then ``fields``: sources,
        rejects, match, ...) and publish the version; returns the manifest."""
        assert self.version is not None, "SnapshotWriter used outside its with block"
        for nt in schema.NODE_TYPES:
            if nt.label not in self.counts["nodes"]:
                self.write_table(nt.label, nt.arrow_schema().empty_table())
        for et in schema.EDGE_TYPES:
            if et.rel not in self.counts["edges"]:
                self.write_table(et.rel, et.arrow_schema().empty_table())
        counts = {
            kind: {t: self.counts[kind][t] for t in names}
            for kind, names in (
                ("nodes", [nt.label for nt in schema.NODE_TYPES]),
                ("edges", [et.rel for et in schema.EDGE_TYPES]),
            )
        }
        manifest = {
            "schema_version": schema.SCHEMA_VERSION,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "sources": [],
            "counts": counts,
            "rejects": {},
            "match": None,
        } | fields
        _kill_point("before-manifest")
        tmp = self.version / f".{schema.MANIFEST_FILE}.tmp"
        tmp.write_text(json.dumps(manifest, indent=2) + "\n")
        tmp.rename(self.version / schema.MANIFEST_FILE)
        _kill_point("before-publish")
        publish(self.target, self.version)
        return manifest


def publish(target: Path, version: Path) -> None:
    """Point ``target`` at the complete ``version`` with one atomic rename of a fresh link, then
    remove what no reader can need (see :func:`prune`). A ``target`` left as a real folder by
    an older release is first moved among the versions (a kill between the two renames leaves
    ``target`` missing until :func:`recover` at the next start)."""
    link = target.with_name(owned_name(f".{target.name}.link"))
    os.symlink(os.path.relpath(version, target.parent), link)
    _kill_point("before-rename")
    previous = _current(target)
    if target.is_dir() and not target.is_symlink():
        previous = target.with_name(target.name + VERSIONS_SUFFIX) / owned_name("legacy")
        target.rename(previous)
    os.replace(link, target)
    _kill_point("after-rename")
    prune(target, previous)
    log.info("snapshot %s -> %s", target, version.name)


def _current(target: Path) -> Path | None:
    """The version ``target`` points at, if it is a link to a complete one."""
    if not target.is_symlink():
        return None
    version = target.resolve()
    return version if version.is_dir() and _is_complete(version) else None


def _age(version: Path) -> int:
    """When a complete version was completed (its manifest's mtime): orders versions."""
    return (version / schema.MANIFEST_FILE).stat().st_mtime_ns


def recover(target: Path) -> None:
    """Repair what a killed writer can leave: ``target`` missing or dangling is pointed at the
    newest complete version; leftovers of dead writers go (see :func:`prune`)."""
    versions = target.with_name(target.name + VERSIONS_SUFFIX)
    if _current(target) is None and not (target.is_dir() and not target.is_symlink()) and versions.is_dir():
        complete = sorted((v for v in versions.iterdir() if _is_complete(v)), key=_age)
        if complete:
            log.warning(
                "%s: missing or dangling; pointing it at the newest complete version %s", target, complete[-1].name
            )
            publish(target, complete[-1])
            return
    prune(target)


def prune(target: Path, previous: Path | None = None) -> None:
    """Remove links and unfinished versions whose writer is dead, complete versions newer than
    the current one whose writer died before publishing them, and, right after a publish, the
    versions older than the current one except ``previous`` (the one current until then: a
    reader may have resolved it just before the swap)."""
    for link in target.parent.glob(f".{target.name}.link-*"):
        if not owner_alive(link.name):
            link.unlink(missing_ok=True)
    versions = target.with_name(target.name + VERSIONS_SUFFIX)
    if not versions.is_dir():
        return
    current = _current(target)
    for version in versions.iterdir():
        if version in (current, previous):
            continue
        if not _is_complete(version) or current is None or _age(version) > _age(current):
            stale = not owner_alive(version.name)
        else:
            stale = previous is not None
        if stale:
            shutil.rmtree(version, ignore_errors=True)


def write_snapshot(target: Path, tables: Mapping[str, pa.Table], **fields: Any) -> dict[str, Any]:
    """A whole snapshot from in-memory tables (by label / relationship type; absent ones are
    empty) and manifest ``fields``; returns the manifest."""
    with SnapshotWriter(target) as writer:
        for name, table in tables.items():
            writer.write_table(name, table)
        return writer.commit(**fields)
