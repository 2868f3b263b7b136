"""Load a snapshot into Neo4j so that the graph ends up exactly equal to it.

The loader is a sync, not an append: for each node label and relationship type it streams what the
graph holds (keys, and the schema's properties) into DuckDB, compares it there with the snapshot's
Parquet file (so memory stays bounded at any size: Python holds one batch of rows) and then

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

Hence a second load of the same snapshot writes nothing at all (not even the ``(:Snapshot)`` node);
a newer snapshot changes only what changed; and a load interrupted anywhere (even by the server
dying) converges when re-run. The ``(:Snapshot)`` node is removed when a load of another snapshot
starts changing the graph and written when it is done, so the graph only claims a snapshot it fully
holds.

A refresh does not read back what cannot have changed: the ``(:Snapshot)`` node records a content
digest per table (:func:`table_digests`), and a table whose digest the new snapshot repeats is
skipped, as the graph held exactly those rows when that node was written. (Its edges cannot lose an
endpoint to a deleted node either: every endpoint is validated to exist in the new snapshot.) A
MovieLens dump never changes, so at full size this skips the 25M ratings, the bulk of a refresh.
``verify=True`` diffs every table against the graph, repairing changes made to it by hand.

The first load into an empty database is faster with the offline importer
(:mod:`graph_store.bulk_import`), which leaves the same graph.

All Cypher is built at import time from schema constants; every value travels as a parameter.
"""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, LiteralString

import duckdb
import pyarrow as pa
from neo4j import READ_ACCESS, Driver, ManagedTransaction
from tqdm import tqdm

from cinegraph import schema
from cinegraph.errors import CinegraphError
from cinegraph.graph_store.snapshot_io import read_manifest, snapshot_duckdb, view_name
from cinegraph.schema import DST, EDGE_TYPES, NODE_TYPES, SNAPSHOT, SNAPSHOT_TABLES, SRC, EdgeType, NodeType

log = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 10_000  # rows per transaction: throughput plateaus from 5k to 20k (benchmarks/results/load.md)
DEFAULT_MEMORY_LIMIT = "2GB"  # DuckDB's, for the diff; it spills to disk beyond
READ_FETCH_SIZE = 10_000  # graph rows per Bolt fetch while reading what the graph holds
DRIFT = "drift"  # column of the read-back tables: a graph value did not fit its schema type

# --- Cypher, from schema constants only ------------------------------------------------------


def _q(text: str) -> LiteralString:
    """Mark Cypher assembled from schema constants (never from data) as a literal query."""
    return text  # mypy reads LiteralString as str


def _node_upsert(nt: NodeType) -> LiteralString:
    return _q(f"UNWIND $rows AS row MERGE (n:{nt.label} {{{nt.key}: row.{nt.key}}}) SET n += row")


def _node_create(nt: NodeType) -> LiteralString:
    return _q(f"UNWIND $rows AS row CREATE (n:{nt.label}) SET n = row")


def _node_read(nt: NodeType) -> LiteralString:
    """One column per snapshot column, in the snapshot's order."""
    return _q(f"MATCH (n:{nt.label}) RETURN " + ", ".join(f"n.{c} AS {c}" for c in nt.columns))


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
    """src, dst, the element id, then one column per property."""
    props = "".join(f", r.{p.name} AS {p.name}" for p in et.properties)
    return _q(
        f"MATCH {_edge_pattern(et)} RETURN s.{et.src.key} AS {SRC}, d.{et.dst.key} AS {DST}, elementId(r) AS id{props}"
    )


def _edge_delete(et: EdgeType) -> LiteralString:
    return _q(f"UNWIND $ids AS id MATCH ()-[r:{et.rel}]->() WHERE elementId(r) = id DELETE r")


NODE_UPSERT = {nt.label: _node_upsert(nt) for nt in NODE_TYPES}
NODE_CREATE = {nt.label: _node_create(nt) for nt in NODE_TYPES}
NODE_READ = {nt.label: _node_read(nt) for nt in NODE_TYPES}
NODE_DELETE = {nt.label: _node_delete(nt) for nt in NODE_TYPES}
EDGE_UPSERT = {et.rel: _edge_upsert(et) for et in EDGE_TYPES}
EDGE_CREATE = {et.rel: _edge_create(et) for et in EDGE_TYPES}
EDGE_READ = {et.rel: _edge_read(et) for et in EDGE_TYPES}
EDGE_DELETE = {et.rel: _edge_delete(et) for et in EDGE_TYPES}
# Every label's and relationship type's count from the count store: a procedure call has no query
# to plan (16 count queries, or one with 16 subqueries, take 0.6-0.8 s to plan in a fresh server).
GRAPH_COUNTS = _q(
    "CALL db.stats.retrieve('GRAPH COUNTS') YIELD data RETURN data.nodes AS nodes, data.relationships AS edges"
)
SNAPSHOT_READ = _q(
    f"MATCH (s:{SNAPSHOT.label}) "
    f"RETURN s.{SNAPSHOT.key} AS id, s.sha256 AS sha256, s.{SNAPSHOT_TABLES} AS {SNAPSHOT_TABLES}"
)
SNAPSHOT_CLEAR = _q(f"MATCH (s:{SNAPSHOT.label}) DETACH DELETE s")
SNAPSHOT_WRITE = _q(
    f"MATCH (old:{SNAPSHOT.label}) DETACH DELETE old WITH count(*) AS _ CREATE (s:{SNAPSHOT.label}) SET s = $props"
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
    skipped: bool = False  # same content as the graph's snapshot: not read back


@dataclass
class LoadReport:
    snapshot_id: str
    database: str
    batch_size: int
    nodes: dict[str, TypeSync] = field(default_factory=dict)
    edges: dict[str, TypeSync] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def written(self) -> int:
        """Rows created, updated or deleted, over every node label and relationship type."""
        return sum(s.upserted + s.deleted for s in [*self.nodes.values(), *self.edges.values()])

    def summary(self) -> str:
        lines = [f"snapshot {self.snapshot_id} -> database {self.database!r} in {self.seconds:.1f}s"]
        header = f"  {'type':<14}{'total':>10}{'upserted':>10}{'deleted':>10}{'unchanged':>11}{'seconds':>9}"
        lines.append(header)
        for name, s in [*self.nodes.items(), *self.edges.items()]:
            note = "  (same as in the graph: skipped)" if s.skipped else ""
            note += f"  ({s.collapsed} duplicate rows collapsed)" if s.collapsed else ""
            lines.append(
                f"  {name:<14}{s.total:>10}{s.upserted:>10}{s.deleted:>10}{s.unchanged:>11}{s.seconds:>9.2f}{note}"
            )
        return "\n".join(lines)


# --- public API -------------------------------------------------------------------------------


def graph_counts(driver: Driver, database: str = "neo4j") -> tuple[dict[str, int], dict[str, int]]:
    """How many nodes of each label and relationships of each type ``database`` holds."""
    record = driver.execute_query(GRAPH_COUNTS, database_=database).records[0]
    nodes = {n["label"]: n["count"] for n in record["nodes"] if "label" in n}
    edges = {
        r["relationshipType"]: r["count"]
        for r in record["edges"]
        if "relationshipType" in r and "startLabel" not in r and "endLabel" not in r
    }
    return {nt.label: nodes.get(nt.label, 0) for nt in NODE_TYPES}, {et.rel: edges.get(et.rel, 0) for et in EDGE_TYPES}


def ensure_schema(driver: Driver, database: str = "neo4j") -> None:
    """Create the indexes and uniqueness constraints (idempotent) and wait until they are online,
    so that every MERGE below is an index seek. The indexes go first and in one transaction: Neo4j
    fills them in one pass over the nodes, in the background while each constraint (created one at
    a time, each waiting for its own index) is built."""
    with driver.session(database=database) as session:
        session.execute_write(_run_all, [_q(s) for s in schema.index_statements()])
    for statement in schema.constraint_statements():
        driver.execute_query(_q(statement), database_=database)
    driver.execute_query(_q("CALL db.awaitIndexes(300)"), database_=database)


def _run_all(tx: ManagedTransaction, statements: list[LiteralString]) -> None:
    for statement in statements:
        tx.run(statement).consume()


def snapshot_identity(snapshot_dir: Path) -> tuple[dict[str, Any], str]:
    """The manifest (schema version checked) and the SHA-256 of manifest.json."""
    manifest = read_manifest(snapshot_dir)
    sha = hashlib.sha256((Path(snapshot_dir) / schema.MANIFEST_FILE).read_bytes()).hexdigest()
    return manifest, sha


def snapshot_props(manifest: dict[str, Any], sha: str, digests: dict[str, str]) -> dict[str, Any]:
    """The properties of the ``(:Snapshot)`` node that says the graph holds this snapshot."""
    return {
        SNAPSHOT.key: sha[:16],
        "created_at": manifest.get("created_at"),
        "sha256": sha,
        "counts": json.dumps(manifest.get("counts", {}), sort_keys=True),
        "schema_version": manifest["schema_version"],
        SNAPSHOT_TABLES: json.dumps(digests, sort_keys=True),
    }


def table_digests(con: duckdb.DuckDBPyConnection, collapsed: Mapping[str, int]) -> dict[str, str]:
    """A digest of each table's content as the graph would hold it (edges after collapsing repeated
    identities), independent of row order: its columns, row count and the sum of the rows' hashes.
    A different DuckDB hash only costs a full diff, never a wrong skip. Run after
    :func:`validate_snapshot` (node keys unique), with the repeats it counted."""
    digests: dict[str, str] = {}
    tables = [(nt.label, nt.columns, f"SELECT * FROM {view_name(nt.label)}") for nt in NODE_TYPES]
    tables += [(et.rel, et.columns, edge_rows_sql(et, collapsed)) for et in EDGE_TYPES]
    for name, columns, rows in tables:
        n, total = con.execute(f"SELECT count(*), sum(hash({', '.join(columns)})::HUGEINT) FROM ({rows})").fetchall()[0]
        digests[name] = f"{','.join(columns)}:{n}:{total or 0}"
    return digests


def held_digests(driver: Driver, database: str) -> tuple[str | None, dict[str, str]]:
    """The sha256 of the snapshot the graph fully holds and its table digests (None and none when it
    holds none: a load that changes the graph removes the record first)."""
    held = driver.execute_query(SNAPSHOT_READ, database_=database).records
    if len(held) != 1:
        return None, {}
    return held[0]["sha256"], json.loads(held[0][SNAPSHOT_TABLES] or "{}")


def load_snapshot(
    driver: Driver,
    snapshot_dir: Path,
    *,
    database: str = "neo4j",
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: bool = True,
    memory_limit: str = DEFAULT_MEMORY_LIMIT,
    verify: bool = False,
) -> LoadReport:
    """Make the graph in ``database`` equal to the snapshot in ``snapshot_dir`` (see module doc).

    The diff runs in DuckDB (spilling to a temporary folder past ``memory_limit``): the graph's
    rows are streamed into it and the snapshot is read from Parquet, so Python only ever holds one
    batch of rows. Tables the graph's recorded snapshot already holds are skipped unless ``verify``.
    When the graph already holds this snapshot and nothing differs, nothing is written at all (the
    ``(:Snapshot)`` node included)."""
    if batch_size < 1:
        raise CinegraphError(f"--batch-size {batch_size}: must be at least 1")
    started = time.perf_counter()
    snapshot_dir = Path(snapshot_dir).resolve()  # one snapshot version for the whole load
    manifest, sha = snapshot_identity(snapshot_dir)
    report = LoadReport(sha[:16], database, batch_size)
    with (
        tempfile.TemporaryDirectory(prefix="cinegraph-load-") as tmp,
        closing(snapshot_duckdb(snapshot_dir, Path(tmp), memory_limit=memory_limit)) as con,
    ):
        collapsed = validate_snapshot(con, snapshot_dir)
        digests = table_digests(con, collapsed)
        ensure_schema(driver, database)
        held_sha, held = held_digests(driver, database)
        holds_it = held_sha == sha
        same = set() if verify else {name for name, digest in digests.items() if held.get(name) == digest}
        writer = _BatchWriter(driver, database, batch_size, progress, con)
        # What each read will stream (for its progress bar): a type's count only changes in its own sync.
        held_nodes, held_edges = graph_counts(driver, database)
        if not holds_it:
            # The graph is about to change: it no longer holds any one snapshot until this load ends.
            driver.execute_query(SNAPSHOT_CLEAR, database_=database)
        for nt in NODE_TYPES:
            report.nodes[nt.label] = (
                TypeSync(skipped=True) if nt.label in same else _sync_nodes(writer, nt, held_nodes[nt.label])
            )
        for et in EDGE_TYPES:
            report.edges[et.rel] = (
                TypeSync(skipped=True) if et.rel in same else _sync_edges(writer, et, collapsed, held_edges[et.rel])
            )
            report.edges[et.rel].collapsed = collapsed[et.rel]
        for nt in reversed(NODE_TYPES):  # after the edges, so DETACH only meets edges of vanished nodes
            if nt.label not in same:
                _delete_nodes(writer, nt, report.nodes[nt.label])

    nodes, edges = graph_counts(driver, database)
    for nt in NODE_TYPES:
        report.nodes[nt.label].total = nodes[nt.label]
    for et in EDGE_TYPES:
        report.edges[et.rel].total = edges[et.rel]
    for sync in [*report.nodes.values(), *report.edges.values()]:
        if sync.skipped:
            sync.unchanged = sync.total
    if not (holds_it and writer.rows_written == 0 and held == digests):
        driver.execute_query(SNAPSHOT_WRITE, {"props": snapshot_props(manifest, sha, digests)}, database_=database)
    report.seconds = time.perf_counter() - started
    log.info(
        "loaded snapshot %s into %r in %.1fs (%d rows written)",
        report.snapshot_id,
        database,
        report.seconds,
        writer.rows_written,
    )
    return report


# --- sync steps -------------------------------------------------------------------------------


class _BatchWriter:
    """Streams the graph's rows into DuckDB tables and runs one templated statement over the rows of
    a DuckDB query, one write transaction per batch (which the driver retries only when it did not
    commit)."""

    def __init__(
        self, driver: Driver, database: str, batch_size: int, progress: bool, con: duckdb.DuckDBPyConnection
    ) -> None:
        self.driver, self.database, self.batch_size, self.progress = driver, database, batch_size, progress
        self.con = con
        self.rows_written = 0

    def read_into(self, query: LiteralString, table: str, arrow_schema: pa.Schema, total: int, desc: str) -> None:
        """Stream ``query``'s records (one column per field of ``arrow_schema``; values that do not
        fit their type become null with ``drift`` set) into the DuckDB table ``table``."""
        schema_ = arrow_schema.append(pa.field(DRIFT, pa.bool_()))
        self.con.from_arrow(schema_.empty_table()).create(table)
        names = arrow_schema.names
        with (
            self.driver.session(
                database=self.database, default_access_mode=READ_ACCESS, fetch_size=READ_FETCH_SIZE
            ) as session,
            tqdm(total=total, desc=desc, unit="row", disable=not self.progress, leave=False) as bar,
        ):
            result = session.run(query)
            while True:
                records = result.fetch(READ_FETCH_SIZE)
                if not records:
                    break
                columns = [[r[i] for r in records] for i in range(len(names))]
                batch = _to_arrow(columns, schema_)
                self.con.from_arrow(batch).insert_into(table)
                bar.update(len(records))

    def count(self, sql: str) -> int:
        row = self.con.execute(sql).fetchall()[0]
        return int(row[0]) if row else 0

    def write(self, query: LiteralString, param: str, sql: str, shape: Any, desc: str) -> int:
        """Run ``query`` over the rows of the DuckDB query ``sql`` (each made a parameter by ``shape``)."""
        self.con.execute(f"CREATE OR REPLACE TEMP TABLE pending AS {sql}")
        total = self.count("SELECT count(*) FROM pending")
        if not total:
            return 0
        reader = self.con.sql("SELECT * FROM pending").fetch_record_batch(self.batch_size)
        with (
            self.driver.session(database=self.database) as session,
            tqdm(total=total, desc=desc, unit="row", disable=not self.progress, leave=False) as bar,
        ):
            for chunk in _rebatch(reader, self.batch_size):
                items = [shape(row) for row in chunk]
                session.execute_write(_run, query, {param: items})
                self.rows_written += len(items)
                bar.update(len(items))
        return total


def _to_arrow(columns: list[list[Any]], schema_: pa.Schema) -> pa.RecordBatch:
    """Columns of graph values as a batch of ``schema_`` (last field: the drift flag)."""
    n = len(columns[0]) if columns else 0
    drift = [False] * n
    arrays = []
    for values, f in zip(columns, schema_, strict=False):
        try:
            arrays.append(pa.array(values, f.type))
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError):
            fitted = []
            for i, v in enumerate(values):
                try:
                    pa.array([v], f.type)
                    fitted.append(v)
                except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError):
                    fitted.append(None)
                    drift[i] = True
            arrays.append(pa.array(fitted, f.type))
    arrays.append(pa.array(drift, pa.bool_()))
    return pa.RecordBatch.from_arrays(arrays, schema=schema_)


def _rebatch(reader: pa.RecordBatchReader, size: int) -> Iterator[list[dict[str, Any]]]:
    """Rows of ``reader`` in lists of exactly ``size`` (the last one shorter)."""
    rows: list[dict[str, Any]] = []
    for batch in reader:
        rows.extend(batch.to_pylist())
        while len(rows) >= size:
            yield rows[:size]
            rows = rows[size:]
    if rows:
        yield rows


def _run(tx: ManagedTransaction, query: LiteralString, params: dict[str, Any]) -> None:
    tx.run(query, params).consume()


def _differs(names: Sequence[str], a: str, b: str) -> str:
    """SQL: some property differs between aliases ``a`` and ``b`` (nulls compare equal)."""
    if not names:
        return "false"
    return "NOT (" + " AND ".join(f"{a}.{n} IS NOT DISTINCT FROM {b}.{n}" for n in names) + ")"


def _same(columns: Sequence[str], a: str, b: str) -> str:
    """SQL join condition: equal ``columns`` in aliases ``a`` and ``b``."""
    return " AND ".join(f"{a}.{c} = {b}.{c}" for c in columns)


def _sync_nodes(writer: _BatchWriter, nt: NodeType, held_rows: int) -> TypeSync:
    """Create and update (``held_rows``: the graph's ``nt`` nodes); the keys the graph holds but the
    snapshot lacks stay in ``gone_<label>``, deleted last by :func:`_delete_nodes`."""
    started = time.perf_counter()
    held, snap, gone = f"held_{nt.label}", view_name(nt.label), f"gone_{nt.label}"
    writer.read_into(NODE_READ[nt.label], held, nt.arrow_schema(), held_rows, f"read {nt.label}")
    names = [p.name for p in nt.properties]
    cols = ", ".join(f"s.{c}" for c in nt.columns)
    changed = writer.write(
        NODE_UPSERT[nt.label],
        "rows",
        f"SELECT {cols} FROM {snap} s JOIN {held} h ON s.{nt.key} = h.{nt.key} "
        f"WHERE h.{DRIFT} OR {_differs(names, 's', 'h')}",
        _plain,
        f"update {nt.label}",
    )
    new = writer.write(
        NODE_CREATE[nt.label],
        "rows",
        f"SELECT {cols} FROM {snap} s ANTI JOIN {held} h ON s.{nt.key} = h.{nt.key}",
        _plain,
        f"create {nt.label}",
    )
    writer.con.execute(
        f"CREATE TEMP TABLE {gone} AS SELECT h.{nt.key} AS key FROM {held} h "
        f"ANTI JOIN {snap} s ON s.{nt.key} = h.{nt.key}"
    )
    total = writer.count(f"SELECT count(*) FROM {snap}")
    writer.con.execute(f"DROP TABLE {held}")
    log.info("%s: %d created, %d updated, %d unchanged", nt.label, new, changed, total - new - changed)
    return TypeSync(upserted=new + changed, unchanged=total - new - changed, seconds=time.perf_counter() - started)


def _delete_nodes(writer: _BatchWriter, nt: NodeType, sync: TypeSync) -> None:
    started = time.perf_counter()
    sync.deleted = writer.write(
        NODE_DELETE[nt.label], "keys", f"SELECT key FROM gone_{nt.label}", _key, f"delete {nt.label}"
    )
    sync.seconds += time.perf_counter() - started
    if sync.deleted:
        log.info("%s: %d vanished nodes deleted", nt.label, sync.deleted)


def _plain(row: dict[str, Any]) -> dict[str, Any]:
    return row


def _key(row: dict[str, Any]) -> Any:
    return row["key"]


def _element_id(row: dict[str, Any]) -> Any:
    return row["id"]


def _sync_edges(writer: _BatchWriter, et: EdgeType, collapsed: Mapping[str, int], held_rows: int) -> TypeSync:
    """Sync one relationship type (``collapsed``: as for :func:`edge_rows_sql`; ``held_rows``: the
    graph's ``et`` relationships)."""
    started = time.perf_counter()
    names = [p.name for p in et.properties]
    held, wanted = f"held_{et.rel}", f"wanted_{et.rel}"
    read_schema = pa.schema(
        [
            pa.field(SRC, et.src.key_type),
            pa.field(DST, et.dst.key_type),
            pa.field("id", pa.string()),
            *(pa.field(p.name, p.type) for p in et.properties),
        ]
    )
    writer.read_into(EDGE_READ[et.rel], held, read_schema, held_rows, f"read {et.rel}")
    writer.con.execute(f"CREATE TEMP TABLE {wanted} AS {edge_rows_sql(et, collapsed)}")
    identity = [SRC, DST, *et.identity]
    on, on_kept = _same(identity, "w", "h"), _same(identity, "w", "k")
    # The first copy of each identity that the snapshot still wants is kept; every other copy goes.
    writer.con.execute(
        f"CREATE OR REPLACE TEMP TABLE kept AS SELECT * FROM ("
        f"SELECT *, row_number() OVER (PARTITION BY {', '.join(identity)} ORDER BY id) AS copy FROM {held}) h "
        f"WHERE copy = 1 AND EXISTS (SELECT 1 FROM {wanted} w WHERE {on})"
    )
    deleted = writer.write(
        EDGE_DELETE[et.rel],
        "ids",
        f"SELECT h.id FROM {held} h ANTI JOIN kept k ON h.id = k.id",
        _element_id,
        f"delete {et.rel}",
    )

    def upsert_row(row: dict[str, Any]) -> dict[str, Any]:
        return {SRC: row[SRC], DST: row[DST], **{n: row[n] for n in et.identity}, "props": {n: row[n] for n in names}}

    def create_row(row: dict[str, Any]) -> dict[str, Any]:
        return {SRC: row[SRC], DST: row[DST], "props": {n: row[n] for n in names}}

    cols = ", ".join(f"w.{c}" for c in et.columns)
    changed = writer.write(
        EDGE_UPSERT[et.rel],
        "rows",
        f"SELECT {cols} FROM {wanted} w JOIN kept k ON {on_kept} WHERE k.{DRIFT} OR {_differs(names, 'w', 'k')}",
        upsert_row,
        f"update {et.rel}",
    )
    new = writer.write(
        EDGE_CREATE[et.rel],
        "rows",
        f"SELECT {cols} FROM {wanted} w ANTI JOIN kept k ON {on_kept}",
        create_row,
        f"create {et.rel}",
    )
    total = writer.count(f"SELECT count(*) FROM {wanted}")
    writer.con.execute(f"DROP TABLE {held}; DROP TABLE {wanted}; DROP TABLE kept")
    log.info(
        "%s: %d created, %d updated, %d deleted, %d unchanged", et.rel, new, changed, deleted, total - new - changed
    )
    return TypeSync(
        upserted=new + changed, deleted=deleted, unchanged=total - new - changed, seconds=time.perf_counter() - started
    )


# --- validation -------------------------------------------------------------------------------


def edge_rows_sql(et: EdgeType, collapsed: Mapping[str, int]) -> LiteralString:
    """The snapshot's rows of ``et`` (view of :func:`snapshot_duckdb`), one per identity: where rows
    repeat an identity, the last one in the file wins. ``collapsed``: the repeats per type counted by
    :func:`validate_snapshot`; a type without any is taken as it is, without the window over every
    row (at full size most of the time spent writing or digesting RATED)."""
    rows = f"SELECT {', '.join(et.columns)} FROM {view_name(et.rel)}"
    if not collapsed[et.rel]:
        return _q(rows)
    identity = ", ".join([SRC, DST, *et.identity])
    return _q(f"{rows} QUALIFY row_number() OVER (PARTITION BY {identity} ORDER BY file_row_number DESC) = 1")


def validate_snapshot(con: duckdb.DuckDBPyConnection, snapshot_dir: Path) -> dict[str, int]:
    """Check everything the graph cannot hold before writing anything; raise once, listing all.
    Runs in DuckDB over the Parquet files (bounded memory). Returns, per relationship type, how
    many rows repeat an identity (collapsed by the loaders, the last one winning)."""
    problems: list[str] = []
    for nt in NODE_TYPES:
        view, where = view_name(nt.label), schema.node_path(nt.label)
        checks = [f"count(*) - count(DISTINCT {nt.key})"]
        labels = [f"duplicate {nt.key} values"]
        if pa.types.is_string(nt.key_type):
            checks.append(f"count(*) FILTER (WHERE strlen({nt.key}) > {schema.INDEX_MAX_BYTES['RANGE']})")
            labels.append(f"{nt.key} values over {schema.INDEX_MAX_BYTES['RANGE']} bytes")
        for p in nt.properties:
            limit = schema.INDEX_MAX_BYTES.get(p.index or "")
            if limit:
                checks.append(f"count(*) FILTER (WHERE strlen({p.name}) > {limit})")
                labels.append(f"{p.name} values over the {p.index} index limit of {limit} bytes")
        counts = con.execute(f"SELECT {', '.join(checks)} FROM {view}").fetchall()[0] or ()
        problems += [f"{where}: {n} {label}" for n, label in zip(counts, labels, strict=True) if n]
    collapsed: dict[str, int] = {}
    for et in EDGE_TYPES:
        view, where = view_name(et.rel), schema.edge_path(et.rel)
        for end, nt in ((SRC, et.src), (DST, et.dst)):
            dangling = _scalar(
                con, f"SELECT count(*) FROM {view} e ANTI JOIN {view_name(nt.label)} n ON e.{end} = n.{nt.key}"
            )
            if dangling:
                problems.append(f"{where}: {dangling} {end} values not in {schema.node_path(nt.label)}")
        for name in et.identity:
            nulls = _scalar(con, f"SELECT count(*) FILTER (WHERE {name} IS NULL) FROM {view}")
            if nulls:
                problems.append(f"{where}: {nulls} null {name} values ({name} identifies a {et.rel})")
        identity = ", ".join([SRC, DST, *et.identity])
        collapsed[et.rel] = _scalar(
            con, f"SELECT count(*) - (SELECT count(*) FROM (SELECT DISTINCT {identity} FROM {view})) FROM {view}"
        )
        if collapsed[et.rel]:
            log.warning(
                "%s: %d snapshot rows repeat an identity %s; the last one wins",
                et.rel,
                collapsed[et.rel],
                (SRC, DST, *et.identity),
            )
    if problems:
        raise CinegraphError(f"snapshot {snapshot_dir}: " + "; ".join(problems))
    return collapsed


def _scalar(con: duckdb.DuckDBPyConnection, sql: str) -> int:
    row = con.execute(sql).fetchall()[0]
    return int(row[0]) if row else 0
