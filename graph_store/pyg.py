"""Snapshot-layout Arrow tables -> ``torch_geometric.data.HeteroData``.

The one builder both data paths use: the Parquet snapshot (via ``read_snapshot``) and the Neo4j
export hand the same ``{label | rel: pa.Table}`` dict here, so both give the same graph.

Node and edge types come in schema order (:func:`cinegraph.schema.metadata`). Each node type gets
contiguous indices ``0..n-1`` in table row order; ``id_maps[label][i]`` is the key of node ``i``.
Every edge type also gets its reverse ``rev_<REL>`` (like ``ToUndirected``). Numeric properties
become tensors named after the property: node properties as float with NaN for null, edge
properties as float on both directions (e.g. ``data["User", "RATED", "Movie"].rating``).
String and list properties stay in the tables: models never see them.
"""

from __future__ import annotations

import logging

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch
from torch_geometric.data import HeteroData

from cinegraph.errors import CinegraphError
from cinegraph.schema import DST, EDGE_TYPES, NODE_TYPES, SRC, EdgeType, NodeType

log = logging.getLogger(__name__)


def _is_numeric(t: pa.DataType) -> bool:
    return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t)


def _numeric_column(table: pa.Table, name: str) -> torch.Tensor:
    """A numeric column as float32 with NaN where the value is null."""
    col = table.column(name).cast(pa.float64())
    values = col.to_numpy(zero_copy_only=False)
    return torch.from_numpy(np.asarray(values, dtype=np.float32))


def _table(tables: dict[str, pa.Table], name: str, schema: pa.Schema) -> pa.Table:
    """The table of ``name``, or an empty one of the schema when the snapshot has none."""
    if name in tables:
        return tables[name]
    log.debug("no table for %s: building it with zero rows", name)
    return schema.empty_table()


def _validate(tables: dict[str, pa.Table], node_types: tuple[NodeType, ...], edge_types: tuple[EdgeType, ...]) -> None:
    """Check every table at once and raise one error listing all problems."""
    problems: list[str] = []
    labels = {n.label for n in node_types}
    for et in edge_types:
        for end in (et.src, et.dst):
            if end.label not in labels:
                problems.append(f"edge type {et.rel} needs node type {end.label}, not selected")
    for nt in node_types:
        t = tables.get(nt.label)
        if t is None:
            continue
        if nt.key not in t.column_names:
            problems.append(f"table {nt.label} has no key column {nt.key!r}")
        elif t.column(nt.key).null_count:
            problems.append(f"table {nt.label} has {t.column(nt.key).null_count} null keys")
        elif pc.count_distinct(t.column(nt.key)).as_py() != t.num_rows:
            problems.append(f"table {nt.label} has duplicate {nt.key} keys")
    for et in edge_types:
        t = tables.get(et.rel)
        if t is None:
            continue
        missing = [c for c in (SRC, DST) if c not in t.column_names]
        if missing:
            problems.append(f"table {et.rel} lacks columns {missing}")
    if problems:
        raise CinegraphError("invalid graph tables: " + "; ".join(problems))


def build_hetero_data(
    tables: dict[str, pa.Table],
    node_types: tuple[NodeType, ...] = NODE_TYPES,
    edge_types: tuple[EdgeType, ...] = EDGE_TYPES,
) -> tuple[HeteroData, dict[str, list]]:
    """Build the heterogeneous graph of the selected types, with reverse edges and id maps.

    Args:
        tables: ``{label or rel: table}`` in the snapshot layout (key + properties for nodes,
            ``src``, ``dst`` + properties for edges). A selected type without a table has no rows.
        node_types: node types to keep, in schema order (default: all).
        edge_types: edge types to keep (default: all); both endpoints must be selected.

    Returns:
        ``(data, id_maps)`` where ``id_maps[label][i]`` is the key of node ``i`` of that type.

    Raises:
        CinegraphError: a table lacks its key or endpoint columns, has null or duplicate keys,
            or an edge points to a key absent from its node table.
    """
    _validate(tables, node_types, edge_types)
    data = HeteroData()
    id_maps: dict[str, list] = {}
    keys: dict[str, pa.Array] = {}
    for nt in node_types:
        table = _table(tables, nt.label, nt.arrow_schema())
        key = table.column(nt.key).combine_chunks()
        keys[nt.label] = key
        id_maps[nt.label] = key.to_pylist()
        store = data[nt.label]
        store.num_nodes = table.num_rows
        for prop in nt.properties:
            if prop.name in table.column_names and _is_numeric(table.schema.field(prop.name).type):
                store[prop.name] = _numeric_column(table, prop.name)

    dangling: list[str] = []
    built: list[tuple[EdgeType, torch.Tensor, dict[str, torch.Tensor]]] = []
    for et in edge_types:
        table = _table(tables, et.rel, et.arrow_schema())
        src_keys, dst_keys = keys[et.src.label], keys[et.dst.label]
        src = pc.index_in(table.column(SRC).cast(src_keys.type), value_set=src_keys)
        dst = pc.index_in(table.column(DST).cast(dst_keys.type), value_set=dst_keys)
        bad = src.null_count + dst.null_count
        if bad:
            dangling.append(f"{et.rel}: {bad} endpoints not in their node table")
            continue
        edge_index = torch.from_numpy(  # [2, E]
            np.stack([src.to_numpy(zero_copy_only=False), dst.to_numpy(zero_copy_only=False)])
            .astype(np.int64)
            .reshape(2, -1)
        )
        attrs = {
            p.name: _numeric_column(table, p.name)
            for p in et.properties
            if p.name in table.column_names and _is_numeric(table.schema.field(p.name).type)
        }
        built.append((et, edge_index, attrs))
    if dangling:
        raise CinegraphError("dangling edges in graph tables: " + "; ".join(dangling))

    for et, edge_index, attrs in built:
        store = data[et.triplet]
        store.edge_index = edge_index
        for name, value in attrs.items():
            store[name] = value
    for et, edge_index, attrs in built:
        store = data[et.reverse_triplet]
        store.edge_index = edge_index.flip(0)
        for name, value in attrs.items():
            store[name] = value
    log.info(
        "built HeteroData: %s nodes, %s edges",
        dict(data.num_nodes_dict),
        sum(data[t].num_edges for t in data.edge_types),
    )
    return data, id_maps
