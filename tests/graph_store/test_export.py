"""Subgraph export: filter semantics on a hand-built snapshot (DuckDB), and Neo4j export against
the same filter over the real sample (snapshot -> Neo4j -> export)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest
from pydantic import ValidationError

from cinegraph import schema
from cinegraph.errors import CinegraphError
from cinegraph.graph_store.export import (
    ExportFilter,
    export_hetero_data,
    export_tables,
    filter_snapshot,
    sort_table,
)
from cinegraph.graph_store.pyg import build_hetero_data
from cinegraph.graph_store.snapshot_io import read_manifest, read_snapshot, write_snapshot

# --- a tiny hand-built snapshot ------------------------------------------------------------------


def _nodes(nt: schema.NodeType, keys: list, **props: list) -> pa.Table:
    n = len(keys)
    cols = {nt.key: keys} | {p.name: props.get(p.name, [None] * n) for p in nt.properties}
    return pa.table(cols, schema=nt.arrow_schema())


def _edges(et: schema.EdgeType, pairs: list[tuple], **props: list) -> pa.Table:
    n = len(pairs)
    cols = {schema.SRC: [p[0] for p in pairs], schema.DST: [p[1] for p in pairs]}
    cols |= {p.name: props.get(p.name, [None] * n) for p in et.properties}
    return pa.table(cols, schema=et.arrow_schema())


TINY = {
    "User": _nodes(schema.USER, [1, 2, 3], gender=["F", None, "M"]),
    "Movie": _nodes(schema.MOVIE, [10, 20, 30, 40], title=["A", "B", "C", "D"], year=[1990, 2000, None, 2010]),
    "Genre": _nodes(schema.GENRE, ["Comedy", "Drama", "Horror"]),
    "Person": _nodes(schema.PERSON, ["nm1", "nm2"], name=["Ann", "Bo"]),
    "RATED": _edges(
        schema.RATED,
        [(1, 10), (1, 20), (1, 30), (2, 20), (2, 40), (3, 40)],
        rating=[4.0, 3.5, 5.0, 2.0, 4.5, 1.0],
        timestamp=[100, 200, 300, 150, 400, 500],
    ),
    "TAGGED": _edges(
        schema.TAGGED,
        [(1, 10), (3, 40), (3, 40)],
        tag=["good", "scary", "scary"],
        timestamp=[110, 510, 520],
    ),
    "IN_GENRE": _edges(
        schema.IN_GENRE,
        [(10, "Drama"), (20, "Drama"), (20, "Comedy"), (30, "Comedy"), (40, "Horror")],
    ),
    "DIRECTED": _edges(schema.DIRECTED, [("nm1", 10)]),
    "KNOWN_FOR": _edges(schema.KNOWN_FOR, [("nm1", 20)]),
    "ACTED_IN": _edges(schema.ACTED_IN, [("nm2", 40)], characters=[["Eve"]], ordering=[1]),
}


@pytest.fixture(scope="module")
def tiny_snapshot(tmp_path_factory: pytest.TempPathFactory) -> Path:
    full = {nt.label: nt.arrow_schema().empty_table() for nt in schema.NODE_TYPES}
    full |= {et.rel: et.arrow_schema().empty_table() for et in schema.EDGE_TYPES}
    path = tmp_path_factory.mktemp("tiny") / "snapshot"
    write_snapshot(path, full | TINY, export={})
    return path


def _ids(tables: dict[str, pa.Table]) -> dict[str, object]:
    out: dict[str, object] = {}
    for name, table in tables.items():
        if name in {n.label for n in schema.NODE_TYPES}:
            out[name] = set(table.column(0).to_pylist())
        else:
            src, dst = table.column(schema.SRC).to_pylist(), table.column(schema.DST).to_pylist()
            out[name] = sorted(zip(src, dst, strict=True))
    return out


ALL_NODES = {
    "User": {1, 2, 3},
    "Movie": {10, 20, 30, 40},
    "Genre": {"Comedy", "Drama", "Horror"},
    "Person": {"nm1", "nm2"},
}
NO_PERSON_EDGES = {r: [] for r in ("WROTE", "PRODUCED", "COMPOSED", "EDITED", "PHOTOGRAPHED", "WORKED_ON")}


@pytest.mark.parametrize(
    ("flt", "expected"),
    [
        (ExportFilter(), _ids(TINY) | NO_PERSON_EDGES),
        (
            ExportFilter(year_min=1995),
            ALL_NODES
            | {"Movie": {20, 40}}
            | NO_PERSON_EDGES
            | {
                "RATED": [(1, 20), (2, 20), (2, 40), (3, 40)],
                "TAGGED": [(3, 40), (3, 40)],
                "IN_GENRE": [(20, "Comedy"), (20, "Drama"), (40, "Horror")],
                "DIRECTED": [],
                "KNOWN_FOR": [("nm1", 20)],
                "ACTED_IN": [("nm2", 40)],
            },
        ),
        (
            ExportFilter(min_user_ratings=2),
            _ids(TINY)
            | NO_PERSON_EDGES
            | {
                "User": {1, 2},
                "RATED": [(1, 10), (1, 20), (1, 30), (2, 20), (2, 40)],
                "TAGGED": [(1, 10)],
            },
        ),
        (
            ExportFilter(rating_after=150, rating_before=400, min_user_ratings=1),
            _ids(TINY)
            | NO_PERSON_EDGES
            | {
                "User": {1, 2},
                "RATED": [(1, 20), (1, 30), (2, 20)],
                "TAGGED": [(1, 10)],
            },
        ),
        (
            ExportFilter(year_max=2000, node_types=("User", "Movie", "Genre"), edge_types=("RATED", "IN_GENRE")),
            {
                "User": {1, 2, 3},
                "Movie": {10, 20},
                "Genre": {"Comedy", "Drama"},
                "RATED": [(1, 10), (1, 20), (2, 20)],
                "IN_GENRE": [(10, "Drama"), (20, "Comedy"), (20, "Drama")],
            },
        ),
    ],
    ids=["none", "year_min", "min_ratings", "window", "movielens_only"],
)
def test_filter_snapshot_semantics(tiny_snapshot: Path, flt: ExportFilter, expected: dict) -> None:
    tables = filter_snapshot(tiny_snapshot, flt)
    assert _ids(tables) == expected
    for name, table in tables.items():
        item = schema.node_type(name) if name in ALL_NODES else schema.edge_type(name)
        assert table.schema == item.arrow_schema()
        assert table.equals(sort_table(table))


def test_filter_keeps_properties(tiny_snapshot: Path) -> None:
    tables = filter_snapshot(tiny_snapshot, ExportFilter(rating_after=400))
    assert tables["RATED"].to_pylist() == [
        {"src": 2, "dst": 40, "rating": 4.5, "timestamp": 400},
        {"src": 3, "dst": 40, "rating": 1.0, "timestamp": 500},
    ]
    assert tables["ACTED_IN"].column("characters").to_pylist() == [["Eve"]]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"node_types": ("User", "Film")}, "node_types.1\n  Input should be 'User', 'Movie', 'Genre' or 'Person'"),
        ({"edge_types": ("RATED", "LIKED")}, "edge_types.1\n  Input should be 'RATED', 'TAGGED'"),
        ({"node_types": ("User", "Movie", "User")}, "node_types repeat a type"),
        (
            {"node_types": ("User", "Movie"), "edge_types": ("IN_GENRE",)},
            "IN_GENRE needs node type\\(s\\) \\['Genre'\\]",
        ),
        ({"year_min": 2000, "year_max": 1990}, "year_min=2000 > year_max=1990"),
        ({"rating_after": 5, "rating_before": 5}, "rating_after=5 >= rating_before=5"),
        ({"min_user_ratings": -1}, "greater than or equal to 0"),
        ({"min_ratings": 3}, "Extra inputs are not permitted"),
    ],
)
def test_filter_validation(kwargs: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ExportFilter(**kwargs)


def test_default_edge_types_follow_node_types() -> None:
    assert [e.rel for e in ExportFilter(node_types=("User", "Movie")).selected_edge_types] == [
        "RATED",
        "TAGGED",
    ]
    assert len(ExportFilter().selected_edge_types) == len(schema.EDGE_TYPES)


def test_write_snapshot_round_trips_and_replaces(tiny_snapshot: Path, tmp_path: Path) -> None:
    flt = ExportFilter(year_min=1995)
    tables = filter_snapshot(tiny_snapshot, flt)
    out = tmp_path / "export"
    write_snapshot(out, TINY, export={})
    write_snapshot(out, tables, export={"filter": flt.model_dump()})
    back = read_snapshot(out)
    for name, table in tables.items():
        assert sort_table(back[name]).equals(table)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export", "export.versions"]


# --- snapshot -> Neo4j -> export, on the real sample --------------------------------------------


def _distinct_rows(table: pa.Table) -> set[tuple]:
    """Rows as hashable tuples (lists as tuples): the loader keeps one edge per identity."""
    return {tuple(tuple(v) if isinstance(v, list) else v for v in row.values()) for row in table.to_pylist()}


REAL_FILTERS = [
    ExportFilter(),
    ExportFilter(min_user_ratings=200),
    ExportFilter(rating_after=1_262_304_000, rating_before=1_420_070_400, min_user_ratings=5),
    ExportFilter(year_min=1930, year_max=1960),
    ExportFilter(
        year_min=1995,
        node_types=("User", "Movie", "Genre"),
        edge_types=("RATED", "TAGGED", "IN_GENRE"),
    ),
]


@pytest.mark.neo4j
@pytest.mark.slow
@pytest.mark.realdata
@pytest.mark.parametrize("flt", REAL_FILTERS, ids=["none", "min_ratings", "window", "years", "movielens_only"])
def test_export_equals_filtered_snapshot(real_graph, real_snapshot: Path, flt: ExportFilter) -> None:
    exported = export_tables(real_graph, flt)
    expected = filter_snapshot(real_snapshot, flt)
    names = {*flt.node_types, *(e.rel for e in flt.selected_edge_types)}
    assert set(exported) == set(expected) == names
    for name, table in exported.items():
        item = schema.node_type(name) if name in ALL_NODES else schema.edge_type(name)
        assert table.schema == item.arrow_schema(), name
        assert _distinct_rows(table) == _distinct_rows(expected[name]), name
    assert exported["User"].num_rows > 0 and exported["RATED"].num_rows > 0
    if flt == ExportFilter():
        # no filter: the export holds the snapshot's node ids and edges, type by type
        source = read_snapshot(real_snapshot)
        for name, table in source.items():
            assert _distinct_rows(exported[name]) == _distinct_rows(table), name


@pytest.mark.neo4j
@pytest.mark.slow
@pytest.mark.realdata
def test_export_hetero_data_and_cli(real_graph, real_snapshot: Path, tmp_path: Path) -> None:
    from cinegraph.flows.cli import main

    flt = ExportFilter(min_user_ratings=100, year_min=1980)
    data, id_maps, tables = export_hetero_data(real_graph, flt)
    for nt in flt.selected_node_types:
        assert data[nt.label].num_nodes == tables[nt.label].num_rows == len(id_maps[nt.label])
    reference, reference_ids = build_hetero_data(
        filter_snapshot(real_snapshot, flt), flt.selected_node_types, flt.selected_edge_types
    )
    assert id_maps == reference_ids
    for triplet in reference.edge_types:
        ours = data[triplet].edge_index
        assert sorted(map(tuple, ours.T.tolist())) == sorted(map(tuple, reference[triplet].edge_index.T.tolist()))

    out = tmp_path / "exported"
    assert main(["export", "--out", str(out), "--min-user-ratings", "100", "--year-min", "1980"]) == 0
    back = read_snapshot(out)
    manifest = read_manifest(out)
    assert manifest["export"]["filter"]["min_user_ratings"] == 100
    for name, table in tables.items():
        assert back[name].equals(table), name
        assert manifest["counts"]["nodes" if name in ALL_NODES else "edges"][name] == table.num_rows


def test_write_snapshot_refuses_to_replace_other_folders(tmp_path: Path) -> None:
    keep = tmp_path / "notes"
    keep.mkdir()
    (keep / "todo.txt").write_text("mine")
    with pytest.raises(CinegraphError, match="exists and is not a snapshot folder"):
        write_snapshot(keep, TINY, export={})
    assert (keep / "todo.txt").read_text() == "mine"
