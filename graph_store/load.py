"""Load a snapshot into Neo4j so that the graph ends up exactly equal to it.

The loader is a sync, not an append: for each node label and relationship type it reads what the
graph holds (keys, and the schema's properties), compares it with the snapshot table and then

* writes the rows that are new or changed, ``UNWIND $rows`` in batches: what the graph lacks with
  ``CREATE`` (the diff proved it absent, the uniqueness constraints guard node keys, and the driver
  never retries a commit whose outcome is unknown); changed nodes with ``MERGE`` on the constrained
  key, changed relationships with ``MERGE`` on (src, dst, ``EdgeType.identity``);
* deletes, in batches, the relationships and then the nodes that are no longer in the snapshot
  (and any duplicate relationship with the same identity).

Relationship identity (Neo4j Community has no relationship key constraints, so it is the loader's):
RATED and the property-less Person/Movie edges are unique per (src, dst); TAGGED is identified by
(user, movie, tag, timestamp), ACTED_IN by (person, movie, ordering) and WORKED_ON by (person, movie,
category), as declared by ``EdgeType.identity`` in the schema module. Snapshot rows that repeat an
identity are collapsed (the last one wins) and counted in the report.

Hence a second load of the same snapshot writes nothing; a newer snapshot changes only what
changed; and a load interrupted anywhere (even by the server dying) converges when re-run. The
``(:Snapshot)`` node is removed when a load starts changing the graph and written when it is done,
so the graph only claims a snapshot it fully holds.

All Cypher is built at import time from schema constants; every value travels as a parameter.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Hashable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, LiteralString, cast

import pyarrow as pa
from neo4j import Driver, ManagedTransaction, RoutingControl
from tqdm import tqdm

from graph_store import schema
from graph_store.errors import CinegraphError
from graph_store.schema import DST, EDGE_TYPES, NODE_TYPES, SNAPSHOT, SRC, EdgeType, NodeType
from graph_store.snapshot_io import read_manifest, read_snapshot

log = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 10_000  # rows per transaction: throughput plateaus from 5k to 20k (benchmarks/results/load.md)

Identity = tuple[Hashable, ...]


# --- Cypher, from schema constants only ------------------------------------------------------


def _q(text: str) -> LiteralString:
    """Mark Cypher assembled from schema constants (never from data) as a literal query."""
    return cast(LiteralString, text)


def _node_upsert(nt: NodeType) -> LiteralString:
    return _q(f"UNWIND $rows AS row MERGE (n:{nt.label} {{{nt.key}: row.{nt.key}}}) SET n += row")


def _node_create(nt: NodeType) -> LiteralString:
    return _q(f"UNWIND $rows AS row CREATE (n:{nt.label}) SET n = row")


def _node_read(nt: NodeType) -> LiteralString:
    props = ", ".join(f".{p.name}" for p in nt.properties)
    projection = f"n {{{props}}}" if props else "{}"
    return _q(f"MATCH (n:{nt.label}) RETURN n.{nt.key} AS key, {projection} AS props")


def _node_delete(nt: NodeType) -> LiteralString:
    return _q(f"UNWIND $keys AS key MATCH (n:{nt.label} {{{nt.key}: key}}) DETACH DELETE n")


def _edge_pattern(et: EdgeType) -> str:
    return f"(s:{et.src.label})-[r:{et.rel}]->(d:{et.dst.label})"


def _edge_upsert(et: EdgeType) -> LiteralString:
    ident = ", ".join(f"{name}: row.{name}" for name in et.identity)
    rel = f"[r:{et.rel} {{{ident}}}]" if ident else f"[r:{et.rel}]"
    return _q(
        f"UNWIND $rows AS row "
        f"MATCH (s:{et.src.label} {{{et.src.key}: row.{SRC}}}) "
        f"MATCH (d:{et.dst.label} {{{et.dst.key}: row.{DST}}}) "
        f"MERGE (s)-{rel}->(d) SET r += row.props"
    )


def _edge_create(et: EdgeType) -> LiteralString:
    return _q(
        f"UNWIND $rows AS row "
        f"MATCH (s:{et.src.label} {{{et.src.key}: row.{SRC}}}) "
        f"MATCH (d:{et.dst.label} {{{et.dst.key}: row.{DST}}}) "
        f"CREATE (s)-[r:{et.rel}]->(d) SET r = row.props"
    )


def _edge_read(et: EdgeType) -> LiteralString:
    props = ", ".join(f".{p.name}" for p in et.properties)
    projection = f"r {{{props}}}" if props else "{}"
    return _q(
        f"MATCH {_edge_pattern(et)} RETURN s.{et.src.key} AS {SRC}, d.{et.dst.key} AS {DST}, "
        f"elementId(r) AS id, {projection} AS props"
    )


def _edge_delete(et: EdgeType) -> LiteralString:
    return _q(f"UNWIND $ids AS id MATCH ()-[r:{et.rel}]->() WHERE elementId(r) = id DELETE r")


def _count_nodes(nt: NodeType) -> LiteralString:
    return _q(f"MATCH (n:{nt.label}) RETURN count(n) AS n")


def _count_edges(et: EdgeType) -> LiteralString:
    return _q(f"MATCH ()-[r:{et.rel}]->() RETURN count(r) AS n")


NODE_UPSERT = {nt.label: _node_upsert(nt) for nt in NODE_TYPES}
NODE_CREATE = {nt.label: _node_create(nt) for nt in NODE_TYPES}
NODE_READ = {nt.label: _node_read(nt) for nt in NODE_TYPES}
NODE_DELETE = {nt.label: _node_delete(nt) for nt in NODE_TYPES}
NODE_COUNT = {nt.label: _count_nodes(nt) for nt in NODE_TYPES}
EDGE_UPSERT = {et.rel: _edge_upsert(et) for et in EDGE_TYPES}
EDGE_CREATE = {et.rel: _edge_create(et) for et in EDGE_TYPES}
EDGE_READ = {et.rel: _edge_read(et) for et in EDGE_TYPES}
EDGE_DELETE = {et.rel: _edge_delete(et) for et in EDGE_TYPES}
EDGE_COUNT = {et.rel: _count_edges(et) for et in EDGE_TYPES}
SNAPSHOT_READ = _q(f"MATCH (s:{SNAPSHOT.label}) RETURN s.{SNAPSHOT.key} AS id, s.sha256 AS sha256")
SNAPSHOT_CLEAR = _q(f"MATCH (s:{SNAPSHOT.label}) DETACH DELETE s")
SNAPSHOT_WRITE = _q(
    f"MATCH (old:{SNAPSHOT.label}) DETACH DELETE old "
    f"WITH count(*) AS _ CREATE (s:{SNAPSHOT.label}) SET s = $props"
)


# --- report ----------------------------------------------------------------------------------


@dataclass
class TypeSync:
    """What one load did to one node label or relationship type."""

    upserted: int = 0  # new or changed rows written
    deleted: int = 0  # vanished from the snapshot (or duplicates) and removed
    unchanged: int = 0
    collapsed: int = 0  # snapshot rows that repeated an identity
    total: int = 0  # count in the graph afterwards
    seconds: float = 0.0  # reading, diffing and writing this type


@dataclass
class LoadReport:
    snapshot_id: str
    database: str
    batch_size: int
    nodes: dict[str, TypeSync] = field(default_factory=dict)
    edges: dict[str, TypeSync] = field(default_factory=dict)
    seconds: float = 0.0

    def summary(self) -> str:
        lines = [f"snapshot {self.snapshot_id} -> database {self.database!r} in {self.seconds:.1f}s"]
        header = f"  {'type':<14}{'total':>10}{'upserted':>10}{'deleted':>10}{'unchanged':>11}{'seconds':>9}"
        lines.append(header)
        for name, s in [*self.nodes.items(), *self.edges.items()]:
            note = f"  ({s.collapsed} duplicate rows collapsed)" if s.collapsed else ""
            lines.append(
                f"  {name:<14}{s.total:>10}{s.upserted:>10}{s.deleted:>10}{s.unchanged:>11}{s.seconds:>9.2f}{note}"
            )
        return "\n".join(lines)


# --- public API -------------------------------------------------------------------------------


def ensure_schema(driver: Driver, database: str = "neo4j") -> None:
    """Create the uniqueness constraints and indexes (idempotent) and wait until they are online,
    so that every MERGE below is an index seek."""
    for statement in [*schema.constraint_statements(), *schema.index_statements()]:
        driver.execute_query(_q(statement), database_=database)
    driver.execute_query(_q("CALL db.awaitIndexes(300)"), database_=database)


def snapshot_identity(snapshot_dir: Path) -> tuple[dict[str, Any], str]:
    """The manifest (schema version checked) and the SHA-256 of manifest.json."""
    manifest = read_manifest(snapshot_dir)
    sha = hashlib.sha256((Path(snapshot_dir) / schema.MANIFEST_FILE).read_bytes()).hexdigest()
    return manifest, sha


def load_snapshot(
    driver: Driver,
    snapshot_dir: Path,
    *,
    database: str = "neo4j",
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: bool = True,
) -> LoadReport:
    """Make the graph in ``database`` equal to the snapshot in ``snapshot_dir`` (see module doc)."""
    if batch_size < 1:
        raise CinegraphError(f"--batch-size {batch_size}: must be at least 1")
    started = time.perf_counter()
    snapshot_dir = Path(snapshot_dir).resolve()  # one snapshot version for the whole load
    manifest, sha = snapshot_identity(snapshot_dir)
    tables = read_snapshot(snapshot_dir)
    _validate(snapshot_dir, tables)
    snapshot_id = sha[:16]
    report = LoadReport(snapshot_id, database, batch_size)

    ensure_schema(driver, database)
    held = driver.execute_query(SNAPSHOT_READ, database_=database).records
    if not (len(held) == 1 and held[0]["sha256"] == sha):
        # The graph is about to change: it no longer holds any one snapshot until this load ends.
        driver.execute_query(SNAPSHOT_CLEAR, database_=database)

    writer = _BatchWriter(driver, database, batch_size, progress)
    vanished: dict[str, list[Any]] = {}
    for nt in NODE_TYPES:
        report.nodes[nt.label], vanished[nt.label] = _sync_nodes(writer, nt, tables[nt.label])
    for et in EDGE_TYPES:
        report.edges[et.rel] = _sync_edges(writer, et, tables[et.rel])
    for nt in reversed(NODE_TYPES):  # after the edges, so DETACH only meets edges of vanished nodes
        _delete_nodes(writer, nt, vanished[nt.label], report.nodes[nt.label])

    for nt in NODE_TYPES:
        report.nodes[nt.label].total = driver.execute_query(NODE_COUNT[nt.label], database_=database).records[0]["n"]
    for et in EDGE_TYPES:
        report.edges[et.rel].total = driver.execute_query(EDGE_COUNT[et.rel], database_=database).records[0]["n"]
    props = {
        SNAPSHOT.key: snapshot_id,
        "created_at": manifest.get("created_at"),
        "sha256": sha,
        "counts": json.dumps(manifest.get("counts", {}), sort_keys=True),
        "schema_version": manifest["schema_version"],
    }
    driver.execute_query(SNAPSHOT_WRITE, {"props": props}, database_=database)
    report.seconds = time.perf_counter() - started
    log.info("loaded snapshot %s into %r in %.1fs", snapshot_id, database, report.seconds)
    return report


# --- sync steps -------------------------------------------------------------------------------


class _BatchWriter:
    """Runs one templated statement over row batches, one write transaction each (which the driver
    retries only when it did not commit)."""

    def __init__(self, driver: Driver, database: str, batch_size: int, progress: bool) -> None:
        self.driver, self.database, self.batch_size, self.progress = driver, database, batch_size, progress

    def read(self, query: LiteralString) -> list[dict[str, Any]]:
        records, _, _ = self.driver.execute_query(query, database_=self.database, routing_=RoutingControl.READ)
        return [r.data() for r in records]

    def write(self, query: LiteralString, param: str, items: Sequence[Any], desc: str) -> None:
        if not items:
            return
        with (
            self.driver.session(database=self.database) as session,
            tqdm(total=len(items), desc=desc, unit="row", disable=not self.progress, leave=False) as bar,
        ):
            for batch in _chunks(items, self.batch_size):
                session.execute_write(_run, query, {param: batch})
                bar.update(len(batch))


def _run(tx: ManagedTransaction, query: LiteralString, params: dict[str, Any]) -> None:
    tx.run(query, params).consume()


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _sync_nodes(writer: _BatchWriter, nt: NodeType, table: pa.Table) -> tuple[TypeSync, list[Any]]:
    """Create and update; returns the keys the graph holds but the snapshot lacks, to delete last."""
    started = time.perf_counter()
    rows = table.to_pylist()
    held = {r["key"]: r["props"] for r in writer.read(NODE_READ[nt.label])}
    names = [p.name for p in nt.properties]
    new = [row for row in rows if row[nt.key] not in held]
    changed = [row for row in rows if row[nt.key] in held and held[row[nt.key]] != {n: row[n] for n in names}]
    writer.write(NODE_UPSERT[nt.label], "rows", changed, f"update {nt.label}")
    writer.write(NODE_CREATE[nt.label], "rows", new, f"create {nt.label}")
    written = len(new) + len(changed)
    log.info("%s: %d created, %d updated, %d unchanged", nt.label, len(new), len(changed), len(rows) - written)
    wanted = {row[nt.key] for row in rows}
    vanished = [key for key in held if key not in wanted]
    return TypeSync(upserted=written, unchanged=len(rows) - written, seconds=time.perf_counter() - started), vanished


def _delete_nodes(writer: _BatchWriter, nt: NodeType, vanished: list[Any], sync: TypeSync) -> None:
    started = time.perf_counter()
    writer.write(NODE_DELETE[nt.label], "keys", vanished, f"delete {nt.label}")
    sync.deleted = len(vanished)
    sync.seconds += time.perf_counter() - started
    if vanished:
        log.info("%s: %d vanished nodes deleted", nt.label, len(vanished))


def _sync_edges(writer: _BatchWriter, et: EdgeType, table: pa.Table) -> TypeSync:
    started = time.perf_counter()
    names = [p.name for p in et.properties]
    wanted: dict[Identity, dict[str, Any]] = {}
    for row in table.to_pylist():
        wanted[(row[SRC], row[DST], *(row[n] for n in et.identity))] = row
    collapsed = table.num_rows - len(wanted)
    if collapsed:
        log.warning("%s: %d snapshot rows repeat an identity %s; the last one wins", et.rel, collapsed,
                    (SRC, DST, *et.identity))

    held: dict[Identity, dict[str, Any]] = {}
    duplicates: list[str] = []
    for r in writer.read(EDGE_READ[et.rel]):
        key = (r[SRC], r[DST], *(r["props"][n] for n in et.identity))
        if key in held or key not in wanted:
            duplicates.append(r["id"])  # vanished upstream, or a second copy of one identity
        else:
            held[key] = r["props"]

    new, changed = [], []
    for key, row in wanted.items():
        props = {n: row[n] for n in names}
        if key not in held:
            new.append({SRC: row[SRC], DST: row[DST], "props": props})
        elif held[key] != props:
            changed.append({SRC: row[SRC], DST: row[DST], **{n: row[n] for n in et.identity}, "props": props})
    writer.write(EDGE_DELETE[et.rel], "ids", duplicates, f"delete {et.rel}")
    writer.write(EDGE_UPSERT[et.rel], "rows", changed, f"update {et.rel}")
    writer.write(EDGE_CREATE[et.rel], "rows", new, f"create {et.rel}")
    written = len(new) + len(changed)
    log.info("%s: %d created, %d updated, %d deleted, %d unchanged", et.rel, len(new), len(changed),
             len(duplicates), len(wanted) - written)
    return TypeSync(upserted=written, deleted=len(duplicates), unchanged=len(wanted) - written,
                    collapsed=collapsed, seconds=time.perf_counter() - started)


# --- validation -------------------------------------------------------------------------------


def _validate(snapshot_dir: Path, tables: dict[str, pa.Table]) -> None:
    """Check everything the graph cannot hold before writing anything; raise once, listing all."""
    problems: list[str] = []
    keys: dict[str, set[Any]] = {}
    for nt in NODE_TYPES:
        table = tables[nt.label]
        column = table.column(nt.key).to_pylist()
        keys[nt.label] = set(column)
        where = schema.node_path(nt.label)
        if len(keys[nt.label]) != len(column):
            problems.append(f"{where}: {len(column) - len(keys[nt.label])} duplicate {nt.key} values")
        if pa.types.is_string(nt.key_type):
            long = sum(len(k.encode()) > schema.INDEX_MAX_BYTES["RANGE"] for k in keys[nt.label])
            if long:
                problems.append(f"{where}: {long} {nt.key} values over {schema.INDEX_MAX_BYTES['RANGE']} bytes")
        for p in nt.properties:
            limit = schema.INDEX_MAX_BYTES.get(p.index or "")
            if limit:
                long = sum(v is not None and len(v.encode()) > limit for v in table.column(p.name).to_pylist())
                if long:
                    problems.append(f"{where}: {long} {p.name} values over the {p.index} index limit of {limit} bytes")
    for et in EDGE_TYPES:
        table = tables[et.rel]
        where = schema.edge_path(et.rel)
        for end, nt in ((SRC, et.src), (DST, et.dst)):
            dangling = sum(v not in keys[nt.label] for v in table.column(end).to_pylist())
            if dangling:
                problems.append(f"{where}: {dangling} {end} values not in {schema.node_path(nt.label)}")
        for name in et.identity:
            nulls = table.column(name).null_count
            if nulls:
                problems.append(f"{where}: {nulls} null {name} values ({name} identifies a {et.rel})")
    if problems:
        raise CinegraphError(f"snapshot {snapshot_dir}: " + "; ".join(problems))
