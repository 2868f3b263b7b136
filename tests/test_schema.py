"""cinegraph/schema.py: one consistent description that the snapshot, Neo4j and PyG all read."""

from __future__ import annotations

import pytest
import torch
from torch_geometric.nn import HGTConv

from cinegraph import schema
from cinegraph.schema import EDGE_TYPES, NODE_TYPES, PERSON, RECOMMENDED, SNAPSHOT


def test_names_are_unique_and_every_edge_joins_known_nodes() -> None:
    labels = [n.label for n in (*NODE_TYPES, SNAPSHOT)]
    rels = [e.rel for e in (*EDGE_TYPES, RECOMMENDED)]
    assert len(set(labels)) == len(labels) and len(set(rels)) == len(rels)
    for et in EDGE_TYPES:
        assert et.src in NODE_TYPES and et.dst in NODE_TYPES
        assert set(et.identity) <= {p.name for p in et.properties}, et.rel


@pytest.mark.parametrize("nt", NODE_TYPES, ids=lambda n: n.label)
def test_node_arrow_schema(nt: schema.NodeType) -> None:
    arrow = schema.node_arrow_schema(nt.label)
    assert arrow.names == nt.columns and arrow.names[0] == nt.key
    assert not arrow.field(nt.key).nullable and arrow.field(nt.key).type == nt.key_type
    assert all(arrow.field(p.name).nullable for p in nt.properties)
    assert schema.node_path(nt.label) == f"{schema.NODES_DIR}/{nt.label}.parquet"


@pytest.mark.parametrize("et", EDGE_TYPES, ids=lambda e: e.rel)
def test_edge_arrow_schema_uses_the_endpoint_key_types(et: schema.EdgeType) -> None:
    arrow = schema.edge_arrow_schema(et.rel)
    assert arrow.names == et.columns == [schema.SRC, schema.DST, *(p.name for p in et.properties)]
    assert arrow.field(schema.SRC).type == et.src.key_type and arrow.field(schema.DST).type == et.dst.key_type
    assert not arrow.field(schema.SRC).nullable and not arrow.field(schema.DST).nullable
    assert schema.edge_path(et.rel) == f"{schema.EDGES_DIR}/{et.rel}.parquet"


def test_unknown_names_are_refused_with_the_known_ones() -> None:
    with pytest.raises(KeyError, match=r"unknown node label 'Film'.*'Movie'"):
        schema.node_type("Film")
    with pytest.raises(KeyError, match=r"unknown relationship type 'LIKED'.*'RATED'"):
        schema.edge_path("LIKED")
    assert schema.node_type(SNAPSHOT.label) is SNAPSHOT and schema.edge_type(RECOMMENDED.rel) is RECOMMENDED


@pytest.mark.parametrize("reverse", [True, False])
def test_metadata_in_schema_order(reverse: bool) -> None:
    node_types, triplets = schema.metadata(reverse=reverse)
    assert node_types == [n.label for n in NODE_TYPES]
    assert triplets[: len(EDGE_TYPES)] == [(e.src.label, e.rel, e.dst.label) for e in EDGE_TYPES]
    reverse_part = triplets[len(EDGE_TYPES) :]
    if reverse:
        assert reverse_part == [(e.dst.label, f"rev_{e.rel}", e.src.label) for e in EDGE_TYPES]
    else:
        assert reverse_part == []


def test_metadata_drives_an_hgt_layer_over_every_type() -> None:
    node_types, triplets = schema.metadata()
    conv = HGTConv(-1, 8, (node_types, triplets), heads=2)
    assert conv.node_types == node_types and conv.edge_types == triplets
    x = {t: torch.randn(3, 4) for t in node_types}
    edges = {triplet: torch.tensor([[0, 1], [2, 0]]) for triplet in triplets}
    out = conv(x, edges)
    assert {t: tuple(v.shape) for t, v in out.items()} == dict.fromkeys(node_types, (3, 8))


def test_cypher_statements_are_idempotent_and_cover_the_schema() -> None:
    constraints = schema.constraint_statements()
    assert len(constraints) == len(NODE_TYPES) + 1  # and the Snapshot node
    for nt, statement in zip((*NODE_TYPES, SNAPSHOT), constraints, strict=True):
        assert statement.startswith("CREATE CONSTRAINT ") and " IF NOT EXISTS " in statement
        assert f"(x:{nt.label}) REQUIRE x.{nt.key} IS UNIQUE" in statement
    indexed = [(n.label, p) for n in NODE_TYPES for p in n.properties if p.index is not None]
    *indexes, fulltext = schema.index_statements()
    assert len(indexes) == len(indexed) > 0
    for (label, prop), statement in zip(indexed, indexes, strict=True):
        assert prop.index in ("RANGE", "TEXT")
        assert statement.startswith(f"CREATE {prop.index} INDEX ") and f"(x:{label}) ON (x.{prop.name})" in statement
    assert fulltext.startswith(f"CREATE FULLTEXT INDEX {schema.MOVIE_TITLE_INDEX} IF NOT EXISTS ")
    assert all(f"x.{p}" in fulltext for p in schema.MOVIE_TITLE_PROPERTIES)


def test_the_names_the_etl_and_models_read_are_properties() -> None:
    movie, user = schema.MOVIE.columns, schema.USER.columns
    assert set(schema.MOVIELENS_MOVIE_FEATURES + schema.IMDB_MOVIE_FEATURES) <= set(movie)
    assert set(schema.USER_CATEGORICAL_FEATURES + schema.USER_NUMERIC_FEATURES) <= set(user)
    assert {schema.RATING, schema.TIMESTAMP} <= set(schema.RATED.columns)
    assert set(schema.PRINCIPAL_CATEGORY_EDGES.values()) | set(schema.CREW_EDGES.values()) <= set(EDGE_TYPES)
    assert tuple(e for e in EDGE_TYPES if PERSON in (e.src, e.dst)) == schema.IMDB_EDGE_TYPES
    assert schema.IMDB_EDGE_TYPES and schema.RATED not in schema.IMDB_EDGE_TYPES
