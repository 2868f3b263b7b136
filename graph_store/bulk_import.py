"""First load of a snapshot into an empty database with Neo4j's offline importer.

The transactional loader (:mod:`graph_store.load`) writes through Bolt at tens of thousands of
relationships per second; ``neo4j-admin database import full`` writes the store files directly, an
order of magnitude faster, but only into a database nobody is using. So for the first load into an
empty database of the local server (``cinegraph neo4j start``, whose home we know):

1. the snapshot is validated exactly as the transactional loader does (DuckDB over the Parquet);
2. DuckDB writes the importer's CSV files (one header file and one data file per type, streamed)
   while
3. the server shuts its databases down (its JVM stays up: :func:`graph_store.server.offline`), the
   importer, run in that JVM, builds the database in a staging home beside the server's, and only a
   complete import replaces the (empty) database; the server reopens its databases either way;
4. the loader's constraints and indexes are created, the few values CSV cannot carry are written
   through Bolt (empty lists, a list of one empty string, list elements holding the array delimiter),
   and the ``(:Snapshot)`` node is written last, as the transactional loader writes it.

The graph then equals what :func:`graph_store.load.load_snapshot` would have made, so later refreshes
use the diff-based sync and a sync of the same snapshot writes nothing.

CSV encoding: values are quoted by DuckDB (RFC 4180, doubled quotes); NULL is an empty unquoted field
(no property) and the empty string a quoted one; integers are stored as ``long`` and floats as
``double``, as the Bolt driver sends them (a float32 rating is widened exactly); lists become
``string[]`` joined by U+001F. Every node gets its store id (0..N-1, numbered in DuckDB, where the
relationship files then name their endpoints by it), so the importer keeps no id map of its own.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import LiteralString

import duckdb
import pyarrow as pa
from neo4j import Driver
from tqdm import tqdm

from cinegraph.errors import CinegraphError
from cinegraph.graph_store import server
from cinegraph.graph_store.load import (
    EDGE_UPSERT,
    NODE_UPSERT,
    SNAPSHOT_WRITE,
    LoadReport,
    TypeSync,
    _q,
    edge_rows_sql,
    ensure_schema,
    graph_counts,
    snapshot_identity,
    snapshot_props,
    table_digests,
    validate_snapshot,
)
from cinegraph.graph_store.snapshot_io import snapshot_duckdb, view_name
from cinegraph.schema import DST, EDGE_TYPES, NODE_TYPES, SRC, EdgeType, NodeType, Property

log = logging.getLogger(__name__)

ARRAY_DELIMITER = "\x1f"  # ASCII unit separator: never in titles, names or tags
PATCH_BATCH_SIZE = 5_000
DEFAULT_IMPORT_OFF_HEAP = "2G"  # the importer's caches; its default (90 % of RAM) would starve a shared machine
_NOT_EMPTY = _q("MATCH (n) RETURN count(n) > 0 AS used LIMIT 1")


@dataclass
class BulkReport:
    """What a bulk load did, with the time of each phase."""

    load: LoadReport
    patched: dict[str, int] = field(default_factory=dict)  # rows whose lists went through Bolt
    phases: dict[str, float] = field(default_factory=dict)  # seconds: validate, csv, import, reopen, schema, patch

    @property
    def relationships(self) -> int:
        return sum(s.total for s in self.load.edges.values())

    @property
    def nodes(self) -> int:
        return sum(s.total for s in self.load.nodes.values())

    def summary(self) -> str:
        phases = ", ".join(f"{k} {v:.1f}s" for k, v in self.phases.items())
        patched = sum(self.patched.values())
        return (
            f"{self.load.summary()}\n  bulk import ({phases}); {patched} rows with lists "
            f"CSV cannot carry written through Bolt"
        )


def database_is_empty(driver: Driver, database: str = "neo4j") -> bool:
    return not driver.execute_query(_NOT_EMPTY, database_=database).records[0]["used"]


def serves(home: Path, uri: str) -> bool:
    """True when ``uri`` is the Bolt address of the server running under ``home`` (so its files are ours)."""
    state = server.status(home)
    if not state.running or state.port is None:
        return False
    host_port = uri.split("://", 1)[-1].split("/", 1)[0]
    host, _, port = host_port.rpartition(":")
    return host in (server.HOST, "localhost") and port == str(state.port)


def use_bulk(driver: Driver, uri: str, home: Path, *, database: str = "neo4j", initial: bool = False) -> bool:
    """Whether a load should take the bulk path: the database is empty and is served by the local
    server under ``home``. With ``initial`` (the user asked for it) a reason it cannot is an error."""
    reason = None
    if not serves(home, uri):
        reason = f"{uri} is not the local server of --home {Path(home).resolve()} (`cinegraph neo4j start`)"
    elif not database_is_empty(driver, database):
        reason = f"database {database!r} is not empty; a refresh is a sync: run without --initial"
    if reason and initial:
        raise CinegraphError(f"--initial: {reason}")
    if reason:
        log.info("transactional load: %s", reason)
    return reason is None


def bulk_load(
    driver_factory: Callable[[], AbstractContextManager[Driver]],
    snapshot_dir: Path,
    home: Path,
    *,
    database: str = "neo4j",
    progress: bool = True,
    off_heap: str = DEFAULT_IMPORT_OFF_HEAP,
) -> BulkReport:
    """Load ``snapshot_dir`` into the empty ``database`` of the server running under ``home``.

    ``driver_factory`` is a context manager factory (e.g. ``lambda: open_driver(settings)``): the
    server closes its databases in between, so the driver is opened before and again after the import.

    Raises:
        CinegraphError: the snapshot is invalid, the database is not empty, no server runs under
            ``home``, or the importer failed (the database is then left as it was).
    """
    started = time.perf_counter()
    snapshot_dir = Path(snapshot_dir)
    manifest, sha = snapshot_identity(snapshot_dir)
    state = server.status(home)
    if not state.running:
        raise CinegraphError(f"--home {state.home}: no server runs there; start it with `cinegraph neo4j start`")
    phases: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="cinegraph-bulk-") as tmp:
        con = snapshot_duckdb(snapshot_dir, Path(tmp) / "duckdb")
        try:
            t = time.perf_counter()
            collapsed = validate_snapshot(con, snapshot_dir)
            phases["validate"] = time.perf_counter() - t
            with driver_factory() as driver:
                if not database_is_empty(driver, database):
                    raise CinegraphError(
                        f"database {database!r} is not empty: the bulk import only fills an empty database; "
                        "run `cinegraph load` without --initial to sync it"
                    )
            # DuckDB writes the CSV files while the server shuts its databases, then digests the tables
            # while the importer runs (outside the GIL; one thread at a time uses ``con``).
            with server.staging_home(home) as staging, ThreadPoolExecutor(1) as duckdb_thread:
                t = time.perf_counter()
                csv_job = duckdb_thread.submit(_write_csv, con, Path(staging) / "csv", collapsed, progress)
                digest_job = duckdb_thread.submit(table_digests, con, collapsed)
                with server.offline(home):
                    arguments = csv_job.result()
                    phases["csv"] = time.perf_counter() - t  # and going offline, at the same time
                    t = time.perf_counter()
                    server.run_import(
                        home,
                        Path(staging),
                        database,
                        [*arguments, f"--max-off-heap-memory={off_heap}"],
                        progress=progress,
                    )
                    server.install_database(home, Path(staging), database)
                    phases["import"] = time.perf_counter() - t
                    t = time.perf_counter()
                phases["reopen"] = time.perf_counter() - t
                digests = digest_job.result()
            with driver_factory() as driver:
                t = time.perf_counter()
                ensure_schema(driver, database)
                phases["schema"] = time.perf_counter() - t
                t = time.perf_counter()
                patched = _patch_lists(con, driver, database, collapsed, progress)
                phases["patch"] = time.perf_counter() - t
                report = LoadReport(sha[:16], database, PATCH_BATCH_SIZE)
                nodes, edges = graph_counts(driver, database)
                for nt in NODE_TYPES:
                    n = nodes[nt.label]
                    report.nodes[nt.label] = TypeSync(upserted=n, total=n)
                for et in EDGE_TYPES:
                    n = edges[et.rel]
                    report.edges[et.rel] = TypeSync(upserted=n, total=n, collapsed=collapsed[et.rel])
                props = snapshot_props(manifest, sha, digests)
                driver.execute_query(SNAPSHOT_WRITE, {"props": props}, database_=database)
        finally:
            con.close()
    report.seconds = time.perf_counter() - started
    log.info("bulk-loaded snapshot %s into %r in %.1fs", report.snapshot_id, database, report.seconds)
    return BulkReport(report, patched, phases)


# --- CSV from DuckDB --------------------------------------------------------------------------


def _csv_type(p: Property) -> str:
    if pa.types.is_integer(p.type):
        return "long"
    if pa.types.is_floating(p.type):
        return "double"
    if pa.types.is_string(p.type):
        return "string"
    if pa.types.is_list(p.type) and pa.types.is_string(p.type.value_type):
        return "string[]"
    raise CinegraphError(f"property {p.name}: no importer type for {p.type}")


def _unrepresentable(column: str) -> str:
    """SQL: the list ``column`` has no CSV form (it would read back as null or be split wrongly)."""
    return (
        f"(len({column}) = 0 OR {column} = [''] "
        f"OR contains(array_to_string({column}, ''), chr({ord(ARRAY_DELIMITER)})))"
    )


def _value(p: Property) -> str:
    """SQL for one property's CSV field."""
    if pa.types.is_floating(p.type):
        return f"CAST({p.name} AS DOUBLE)"
    if pa.types.is_list(p.type):
        return (
            f"CASE WHEN {_unrepresentable(p.name)} THEN NULL "
            f"ELSE array_to_string({p.name}, chr({ord(ARRAY_DELIMITER)})) END"
        )
    return p.name


def _is_text(p: Property) -> bool:
    """Whether ``p`` holds strings (alone or in a list), which may hold line breaks."""
    return _csv_type(p) in ("string", "string[]")


def _list_properties(props: tuple[Property, ...]) -> list[Property]:
    return [p for p in props if pa.types.is_list(p.type)]


def _id_table(label: str) -> str:
    return f"import_id_{label.lower()}"


def _number_nodes(con: duckdb.DuckDBPyConnection) -> None:
    """Give every node its store id, 0..N-1 over all labels (the importer's ``--id-type=actual``):
    the importer then writes relationships straight to their endpoints instead of building and
    sorting a string-id map, its slowest preparation at full size."""
    offset = 0
    for nt in NODE_TYPES:
        con.execute(
            f"CREATE TEMP TABLE {_id_table(nt.label)} AS "
            f"SELECT {nt.key} AS key, {offset} + row_number() OVER (ORDER BY {nt.key}) - 1 AS id "
            f"FROM {view_name(nt.label)}"
        )
        offset += con.execute(f"SELECT count(*) FROM {_id_table(nt.label)}").fetchall()[0][0]


def _node_csv(nt: NodeType) -> tuple[str, LiteralString]:
    header = ",".join(
        [
            ":ID",
            f"{nt.key}:{_csv_type(Property(nt.key, nt.key_type))}",
            *(f"{p.name}:{_csv_type(p)}" for p in nt.properties),
        ]
    )
    values = ", ".join(["i.id", f"n.{nt.key}", *(_value(p) for p in nt.properties)])
    return header, _q(
        f"SELECT {values} FROM {view_name(nt.label)} n JOIN {_id_table(nt.label)} i ON n.{nt.key} = i.key ORDER BY i.id"
    )


def _edge_csv(et: EdgeType, collapsed: Mapping[str, int]) -> tuple[str, LiteralString]:
    header = ",".join([":START_ID", ":END_ID", *(f"{p.name}:{_csv_type(p)}" for p in et.properties)])
    values = ", ".join(["s.id", "d.id", *(_value(p) for p in et.properties)])
    return header, _q(
        f"SELECT {values} FROM ({edge_rows_sql(et, collapsed)}) e "
        f"JOIN {_id_table(et.src.label)} s ON e.{SRC} = s.key JOIN {_id_table(et.dst.label)} d ON e.{DST} = d.key"
    )


def _multiline(con: duckdb.DuckDBPyConnection, view: str, columns: list[str]) -> bool:
    """Whether any string in ``columns`` holds a line break (the importer must then parse slowly)."""
    if not columns:
        return False
    text = " OR ".join(f"regexp_matches(CAST({c} AS VARCHAR), '[\\r\\n]')" for c in columns)
    row = con.execute(f"SELECT bool_or({text}) FROM {view}").fetchall()[0]
    return bool(row and row[0])


def _write_csv(con: duckdb.DuckDBPyConnection, out: Path, collapsed: Mapping[str, int], progress: bool) -> list[str]:
    """One header and one data file per type under ``out`` (``collapsed``: the repeats counted by
    :func:`validate_snapshot`); returns the importer's arguments."""
    out.mkdir(parents=True)
    _number_nodes(con)
    arguments: list[str] = []
    multiline: list[str] = []
    jobs = [
        (
            "--nodes",
            nt.label,
            nt.label,
            *_node_csv(nt),
            [p.name for p in (Property(nt.key, nt.key_type), *nt.properties) if _is_text(p)],
        )
        for nt in NODE_TYPES
    ]
    jobs += [
        (
            "--relationships",
            et.rel,
            et.rel,
            *_edge_csv(et, collapsed),
            [p.name for p in et.properties if _is_text(p)],
        )
        for et in EDGE_TYPES
    ]
    for option, name, token, header, sql, text_columns in tqdm(
        jobs, desc="write import CSV", unit="file", disable=not progress, leave=False
    ):
        header_path, data_path = out / f"{name}.header.csv", out / f"{name}.csv"
        header_path.write_text(header + "\n", encoding="utf-8")
        con.sql(sql).write_csv(str(data_path), header=False, sep=",", quotechar='"', escapechar='"')
        arguments.append(f"{option}={token}={header_path},{data_path}")
        source = view_name(name)
        if _multiline(con, source, [c for c in text_columns if c in _columns(con, source)]):
            multiline.append(str(data_path))
    arguments += [
        f"--array-delimiter=U+{ord(ARRAY_DELIMITER):04X}",
        "--id-type=actual",
        "--ignore-empty-strings=false",
        "--trim-strings=false",
        "--legacy-style-quoting=false",
        "--bad-tolerance=0",
        "--strict=false",
    ]  # validate_snapshot proved every endpoint exists
    if multiline:
        arguments += ["--multiline-fields-format=v2", f"--multiline-fields={','.join(multiline)}"]
    return arguments


def _columns(con: duckdb.DuckDBPyConnection, view: str) -> list[str]:
    return con.sql(f"SELECT * FROM {view} LIMIT 0").columns


# --- what CSV cannot carry --------------------------------------------------------------------


def _patch_lists(
    con: duckdb.DuckDBPyConnection, driver: Driver, database: str, collapsed: Mapping[str, int], progress: bool
) -> dict[str, int]:
    """Write the rows with lists that had no CSV form through Bolt, with the loader's upserts."""
    patched: dict[str, int] = {}
    for nt in NODE_TYPES:
        lists = _list_properties(nt.properties)
        if lists:
            where = " OR ".join(f"coalesce({_unrepresentable(p.name)}, false)" for p in lists)
            sql = f"SELECT {', '.join(nt.columns)} FROM {view_name(nt.label)} WHERE {where}"
            patched[nt.label] = _upsert_rows(con, driver, database, sql, NODE_UPSERT[nt.label], None, progress)
    for et in EDGE_TYPES:
        lists = _list_properties(et.properties)
        if lists:
            where = " OR ".join(f"coalesce({_unrepresentable(p.name)}, false)" for p in lists)
            sql = f"SELECT * FROM ({edge_rows_sql(et, collapsed)}) WHERE {where}"
            patched[et.rel] = _upsert_rows(con, driver, database, sql, EDGE_UPSERT[et.rel], et, progress)
    return {k: v for k, v in patched.items() if v}


def _upsert_rows(
    con: duckdb.DuckDBPyConnection,
    driver: Driver,
    database: str,
    sql: str,
    query: LiteralString,
    et: EdgeType | None,
    progress: bool,
) -> int:
    written = 0
    reader = con.sql(sql).fetch_record_batch(PATCH_BATCH_SIZE)
    with tqdm(desc="write lists through Bolt", unit="row", disable=not progress, leave=False) as bar:
        for batch in reader:
            rows = batch.to_pylist()
            if et is not None:
                names = [p.name for p in et.properties]
                rows = [
                    {SRC: r[SRC], DST: r[DST], **{n: r[n] for n in et.identity}, "props": {n: r[n] for n in names}}
                    for r in rows
                ]
            driver.execute_query(query, {"rows": rows}, database_=database)
            written += len(rows)
            bar.update(len(rows))
    return written
