"""Export a parameterised subgraph from Neo4j into snapshot-layout Arrow tables and HeteroData.

The same :class:`ExportFilter` runs two ways: as streamed Cypher against Neo4j
(:func:`export_tables`) and as SQL over a snapshot in DuckDB (:func:`filter_snapshot`). Both return
``{label | rel: pa.Table}`` with the schema's Arrow schemas, nodes sorted by key and edges by
their columns, so the two paths can be compared table for table, and
:func:`graph_store.pyg.build_hetero_data` turns either into the training graph.

What a filter keeps, in this order:

1. Movies whose ``year`` lies in ``[year_min, year_max]`` (a movie without a year is dropped as
   soon as either bound is set).
2. Ratings with ``rating_after <= timestamp < rating_before`` on those movies.
3. Users with at least ``min_user_ratings`` of those ratings (all users when it is 0).
4. Edges of an included type whose User and Movie ends are kept (RATED: the ratings of step 2).
5. Genres and people linked to a kept movie by an included edge.

Only included node types get a table; an edge type is included only with both its end types.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import duckdb
import neo4j
import pyarrow as pa
from torch_geometric.data import HeteroData

from cinegraph import schema
from cinegraph.graph_store.lock import locked
from cinegraph.graph_store.pyg import build_hetero_data
from cinegraph.graph_store.snapshot_io import read_snapshot, write_snapshot
from cinegraph.graph_store.subgraph import ExportFilter
from cinegraph.schema import DST, MOVIE, RATED, SRC, USER, EdgeType, NodeType

log = logging.getLogger(__name__)

# Node types filtered by the rules above; the others are kept when an included edge reaches them.
_FILTERED: tuple[NodeType, ...] = (USER, MOVIE)


def sort_table(table: pa.Table) -> pa.Table:
    """Canonical row order: by every scalar column, left to right (key or src, dst first)."""
    keys = [
        (f.name, "ascending")
        for f in table.schema
        if not pa.types.is_list(f.type) and not pa.types.is_large_list(f.type)
    ]
    return table.sort_by(keys)


def _linked_types(flt: ExportFilter) -> dict[str, list[tuple[EdgeType, str]]]:
    """For each included unfiltered node type, the included edges (and the side) that reach it."""
    out: dict[str, list[tuple[EdgeType, str]]] = {}
    for nt in flt.selected_node_types:
        if nt in _FILTERED:
            continue
        out[nt.label] = [
            (et, side) for et in flt.selected_edge_types for side, end in ((SRC, et.src), (DST, et.dst)) if end == nt
        ]
    return out


# --- Neo4j -----------------------------------------------------------------------------------

_MOVIE_PRED = "($year_min IS NULL OR {m}.year >= $year_min) AND ($year_max IS NULL OR {m}.year <= $year_max)"
_WINDOW_PRED = (
    "($rating_after IS NULL OR {r}.timestamp >= $rating_after) "
    "AND ($rating_before IS NULL OR {r}.timestamp < $rating_before)"
)


def _returns(var: str, columns: Iterable[str]) -> str:
    return ", ".join(f"{var}.{c} AS {c}" for c in columns)


def _movie_nodes_cypher() -> str:
    m = MOVIE
    return f"MATCH (m:{m.label}) WHERE {_MOVIE_PRED.format(m='m')} RETURN {_returns('m', m.columns)}"


def _user_nodes_cypher() -> str:
    return (
        f"MATCH (u:{USER.label}) WHERE $min_user_ratings = 0 OR COUNT {{ "
        f"MATCH (u)-[r:{RATED.rel}]->(m:{MOVIE.label}) "
        f"WHERE {_MOVIE_PRED.format(m='m')} AND {_WINDOW_PRED.format(r='r')} "
        f"}} >= $min_user_ratings RETURN {_returns('u', USER.columns)}"
    )


def _nodes_by_key_cypher(nt: NodeType) -> str:
    return f"UNWIND $ids AS id MATCH (n:{nt.label} {{{nt.key}: id}}) RETURN {_returns('n', nt.columns)}"


def _edges_cypher(et: EdgeType) -> tuple[str, bool]:
    """The edge query and whether its anchor node is the source.

    One record per anchor node, with its edges as parallel lists (other end key, then each
    property): decoding a few long lists is several times faster in the Python driver than one
    record per edge, so the anchor is the end with few nodes: the user of a user edge (unwinding
    the kept user ids in ``$ids``, as the rating count is no predicate on one edge), else the
    genre or person, with the movie predicate on the other end. Rows are collected as lists, so
    null properties keep their place.
    """
    anchor = USER if USER in (et.src, et.dst) else (et.dst if et.src == MOVIE else et.src)
    anchor_is_src = et.src == anchor
    a, o = ("s", "d") if anchor_is_src else ("d", "s")
    other = et.dst if anchor_is_src else et.src
    conds = [_MOVIE_PRED.format(m=var) for var, end in ((a, anchor), (o, other)) if end == MOVIE]
    if et == RATED:
        conds.append(_WINDOW_PRED.format(r="r"))
    unwind = anchor == USER
    anchor_node = f"({a}:{anchor.label} {{{anchor.key}: id}})" if unwind else f"({a}:{anchor.label})"
    other_node = f"({o}:{other.label})"
    src, dst = (anchor_node, other_node) if anchor_is_src else (other_node, anchor_node)
    where = f" WHERE {' AND '.join(conds)}" if conds else ""
    values = [f"{o}.{other.key}", *(f"r.{p.name}" for p in et.properties)]
    columns = ", ".join(f"[x IN rows | x[{i}]] AS c{i}" for i in range(len(values)))
    cypher = (
        f"{'UNWIND $ids AS id ' if unwind else ''}MATCH {src}-[r:{et.rel}]->{dst}{where} "
        f"WITH {a}, collect([{', '.join(values)}]) AS rows "
        f"RETURN {a}.{anchor.key} AS anchor, {columns}"
    )
    return cypher, anchor_is_src


def _stream(session: neo4j.Session, cypher: str, params: dict[str, Any], arrow: pa.Schema, batch_size: int) -> pa.Table:
    """Run a read query returning one row per record and build its Arrow table batch by batch
    as records stream in."""

    def work(tx: neo4j.ManagedTransaction) -> pa.Table:
        batches, rows = [], []
        for record in tx.run(cypher, params):
            rows.append(record.values())
            if len(rows) >= batch_size:
                batches.append(_batch(list(zip(*rows, strict=True)), arrow))
                rows = []
        if rows:
            batches.append(_batch(list(zip(*rows, strict=True)), arrow))
        return pa.Table.from_batches(batches, schema=arrow)

    return session.execute_read(work)


def _stream_edges(session: neo4j.Session, et: EdgeType, params: dict[str, Any], batch_size: int) -> pa.Table:
    """Stream an edge type's per-anchor records (see :func:`_edges_cypher`) into its table."""
    cypher, anchor_is_src = _edges_cypher(et)
    arrow = et.arrow_schema()

    def work(tx: neo4j.ManagedTransaction) -> pa.Table:
        batches: list[pa.RecordBatch] = []
        columns: list[list[Any]] = [[] for _ in arrow]
        for record in tx.run(cypher, params):
            anchor, other, *props = record.values()
            anchors = [anchor] * len(other)
            columns[0].extend(anchors if anchor_is_src else other)
            columns[1].extend(other if anchor_is_src else anchors)
            for column, values in zip(columns[2:], props, strict=True):
                column.extend(values)
            if len(columns[0]) >= batch_size:
                batches.append(_batch(columns, arrow))
                columns = [[] for _ in arrow]
        if columns[0]:
            batches.append(_batch(columns, arrow))
        return pa.Table.from_batches(batches, schema=arrow)

    return session.execute_read(work)


def _batch(columns: list[Any], arrow: pa.Schema) -> pa.RecordBatch:
    arrays = [pa.array(col, type=f.type) for col, f in zip(columns, arrow, strict=True)]
    return pa.RecordBatch.from_arrays(arrays, schema=arrow)


def export_tables(
    driver: neo4j.Driver,
    flt: ExportFilter | None = None,
    *,
    database: str = "neo4j",
    batch_size: int = 10_000,
) -> dict[str, pa.Table]:
    """Stream the filtered subgraph out of Neo4j into snapshot-layout tables (see module doc)."""
    flt = flt or ExportFilter()
    params = flt.params()
    tables: dict[str, pa.Table] = {}
    started = time.perf_counter()
    with driver.session(database=database, default_access_mode=neo4j.READ_ACCESS, fetch_size=batch_size) as session:
        movies = _stream(session, _movie_nodes_cypher(), params, MOVIE.arrow_schema(), batch_size)
        users = _stream(session, _user_nodes_cypher(), params, USER.arrow_schema(), batch_size)
        user_ids = users.column(USER.key).to_pylist()
        for nt, table in ((USER, users), (MOVIE, movies)):
            if nt in flt.selected_node_types:
                tables[nt.label] = table
        for et in flt.selected_edge_types:
            tables[et.rel] = _stream_edges(session, et, params | {"ids": user_ids}, batch_size)
        for label, reached_by in _linked_types(flt).items():
            nt = schema.node_type(label)
            keys = pa.chunked_array([tables[et.rel].column(side) for et, side in reached_by], type=nt.key_type).unique()
            tables[label] = _stream(
                session,
                _nodes_by_key_cypher(nt),
                {"ids": keys.to_pylist()},
                nt.arrow_schema(),
                batch_size,
            )
    rows = sum(t.num_rows for t in tables.values())
    log.info("exported %d rows in %.1fs", rows, time.perf_counter() - started)
    return {name: sort_table(t) for name, t in tables.items()}


def export_hetero_data(
    driver: neo4j.Driver, flt: ExportFilter | None = None, *, database: str = "neo4j"
) -> tuple[HeteroData, dict[str, list], dict[str, pa.Table]]:
    """Export and build the HeteroData (with id maps) of the selected types; also returns the
    tables so callers can keep string properties."""
    flt = flt or ExportFilter()
    tables = export_tables(driver, flt, database=database)
    data, id_maps = build_hetero_data(tables, node_types=flt.selected_node_types, edge_types=flt.selected_edge_types)
    return data, id_maps, tables


# --- DuckDB over a snapshot -------------------------------------------------------------------


def _snapshot_sql(flt: ExportFilter) -> list[tuple[str, str]]:
    """``(sql, output table)`` steps applying the filter to registered ``t_<name>`` tables."""
    m, u, r = MOVIE, USER, RATED
    movie_pred = _MOVIE_PRED.format(m="m")
    window = _WINDOW_PRED.format(r="r")
    steps = [
        (f"SELECT m.* FROM t_{m.label} m WHERE {movie_pred}", f"snap_{m.label}"),
        (
            f"SELECT r.* FROM t_{r.rel} r JOIN snap_{m.label} m ON r.{DST} = m.{m.key} WHERE {window}",
            "snap_kept_ratings",
        ),
        (
            f"SELECT u.* FROM t_{u.label} u LEFT JOIN (SELECT {SRC}, count(*) AS n "
            f"FROM snap_kept_ratings GROUP BY {SRC}) c ON c.{SRC} = u.{u.key} "
            "WHERE $min_user_ratings = 0 OR coalesce(c.n, 0) >= $min_user_ratings",
            f"snap_{u.label}",
        ),
    ]
    for et in flt.selected_edge_types:
        source = "snap_kept_ratings" if et == RATED else f"t_{et.rel}"
        conds = [
            f"{side} IN (SELECT {end.key} FROM snap_{end.label})"
            for side, end in ((SRC, et.src), (DST, et.dst))
            if end in _FILTERED
        ]
        where = f" WHERE {' AND '.join(conds)}" if conds else ""
        steps.append((f"SELECT * FROM {source}{where}", f"snap_{et.rel}"))
    for label, reached_by in _linked_types(flt).items():
        nt = schema.node_type(label)
        reach = " UNION ".join(f"SELECT {side} FROM snap_{et.rel}" for et, side in reached_by)
        where = f"{nt.key} IN ({reach})" if reach else "false"
        steps.append((f"SELECT * FROM t_{label} WHERE {where}", f"snap_{label}"))
    return steps


def filter_snapshot(snapshot_dir: Path, flt: ExportFilter | None = None) -> dict[str, pa.Table]:
    """Apply the filter to a snapshot folder with DuckDB; same layout and order as
    :func:`export_tables`, so the two can be compared."""
    flt = flt or ExportFilter()
    source = read_snapshot(Path(snapshot_dir))
    con = duckdb.connect()
    try:
        for nt in schema.NODE_TYPES:
            con.register(f"t_{nt.label}", source.get(nt.label, nt.arrow_schema().empty_table()))
        for et in schema.EDGE_TYPES:
            con.register(f"t_{et.rel}", source.get(et.rel, et.arrow_schema().empty_table()))
        params = flt.params()
        for sql, table in _snapshot_sql(flt):
            used = {k: v for k, v in params.items() if f"${k}" in sql}
            con.execute(f"CREATE TEMP TABLE {table} AS {sql}", used)
        out = {}
        items: tuple[NodeType | EdgeType, ...] = (*flt.selected_node_types, *flt.selected_edge_types)
        for item in items:
            name = item.label if isinstance(item, NodeType) else item.rel
            arrow = item.arrow_schema()
            table = con.sql(f"SELECT {', '.join(arrow.names)} FROM snap_{name}").to_arrow_table()
            out[name] = sort_table(table.cast(arrow))
        return out
    finally:
        con.close()


# --- writing an export as a snapshot folder ---------------------------------------------------


def export_snapshot(
    driver: neo4j.Driver, out_dir: Path, flt: ExportFilter | None = None, *, database: str = "neo4j"
) -> dict[str, int]:
    """``cinegraph export``: export the filtered subgraph and write it as a snapshot folder
    (:func:`graph_store.snapshot_io.write_snapshot`: types not exported are empty, the manifest's
    ``export`` says where it came from), holding the lock of the folder's parent, the one an ETL
    writing the same place takes; returns the row count per table."""
    flt = flt or ExportFilter()
    out_dir = Path(out_dir)
    with locked(out_dir.parent):
        tables = export_tables(driver, flt, database=database)
        write_snapshot(out_dir, tables, export={"database": database, "filter": flt.model_dump()})
    return {name: t.num_rows for name, t in tables.items()}
