"""graph_store/pyg.py: schema order, contiguous indices, reverse edges, attributes, validation."""

from __future__ import annotations

import math

import pyarrow as pa
import pytest
import torch

from cinegraph import schema as s
from cinegraph.errors import CinegraphError
from cinegraph.graph_store.pyg import build_hetero_data


def _tables() -> dict[str, pa.Table]:
    """3 users, 4 movies (one without a year), 2 genres, 1 person."""
    return {
        s.USER.label: pa.table({"user_id": [7, 3, 5]}, schema=pa.schema([s.USER.arrow_schema()[0]])),
        s.MOVIE.label: pa.Table.from_pylist(
            [
                {"movie_id": 10, "title": "A", "year": 1995, "num_votes": 100},
                {"movie_id": 20, "title": "B", "year": None, "num_votes": None},
                {"movie_id": 30, "title": "C", "year": 2001, "num_votes": 5},
                {"movie_id": 40, "title": "D", "year": 1970, "num_votes": 1},
            ],
            schema=s.MOVIE.arrow_schema(),
        ),
        s.GENRE.label: pa.table({"name": ["Drama", "Comedy"]}),
        s.PERSON.label: pa.Table.from_pylist([{"nconst": "nm1", "name": "P"}], s.PERSON.arrow_schema()),
        s.RATED.rel: pa.Table.from_pylist(
            [
                {"src": 3, "dst": 10, "rating": 4.5, "timestamp": 1},
                {"src": 5, "dst": 40, "rating": 2.0, "timestamp": 2},
                {"src": 7, "dst": 20, "rating": 5.0, "timestamp": 3},
            ],
            schema=s.RATED.arrow_schema(),
        ),
        s.IN_GENRE.rel: pa.table({"src": [10, 20, 20], "dst": ["Comedy", "Drama", "Comedy"]}),
        s.ACTED_IN.rel: pa.Table.from_pylist(
            [{"src": "nm1", "dst": 30, "characters": ["x"], "ordering": 2}],
            s.ACTED_IN.arrow_schema(),
        ),
    }


def test_schema_order_indices_and_reverse_edges() -> None:
    data, ids = build_hetero_data(_tables())
    node_types, edge_types = s.metadata()
    assert data.metadata() == (node_types, edge_types)
    assert ids == {
        "User": [7, 3, 5],
        "Movie": [10, 20, 30, 40],
        "Genre": ["Drama", "Comedy"],
        "Person": ["nm1"],
    }
    assert data.num_nodes_dict == {"User": 3, "Movie": 4, "Genre": 2, "Person": 1}
    rated = data[s.RATED.triplet]
    # user 3 -> index 1, movie 10 -> 0; user 5 -> 2, movie 40 -> 3; user 7 -> 0, movie 20 -> 1
    assert rated.edge_index.tolist() == [[1, 2, 0], [0, 3, 1]]
    assert rated.rating.tolist() == [4.5, 2.0, 5.0]
    assert torch.equal(data[s.RATED.reverse_triplet].edge_index, rated.edge_index.flip(0))
    assert torch.equal(data[s.RATED.reverse_triplet].rating, rated.rating)
    assert data[s.IN_GENRE.triplet].edge_index.tolist() == [[0, 1, 1], [1, 0, 1]]
    assert data[s.ACTED_IN.triplet].ordering.tolist() == [2.0]
    assert "characters" not in data[s.ACTED_IN.triplet]
    assert data[s.WROTE.triplet].edge_index.shape == (2, 0)  # no table: no rows


def test_numeric_node_properties_have_nan_for_null() -> None:
    data, _ = build_hetero_data(_tables())
    year = data["Movie"].year.tolist()
    assert year[0] == 1995 and math.isnan(year[1])
    assert "title" not in data["Movie"]
    assert data["Movie"].num_votes.dtype == torch.float32


def test_selected_types_only() -> None:
    node_types = (s.USER, s.MOVIE, s.GENRE)
    edge_types = tuple(e for e in s.EDGE_TYPES if e not in s.IMDB_EDGE_TYPES)
    data, ids = build_hetero_data(_tables(), node_types, edge_types)
    assert data.metadata() == s.metadata(node_types, edge_types)
    assert "Person" not in ids


@pytest.mark.parametrize(
    "change, message",
    [
        (
            lambda t: t.update(
                {s.RATED.rel: t[s.RATED.rel].slice(0, 1).set_column(0, "src", pa.array([99], pa.int64()))}
            ),
            "RATED: 1 endpoints",
        ),
        (
            lambda t: t.update({s.GENRE.label: pa.table({"name": ["Drama", "Drama"]})}),
            "duplicate name",
        ),
        (lambda t: t.update({s.USER.label: pa.table({"id": [1]})}), "no key column 'user_id'"),
    ],
)
def test_invalid_tables_raise_one_error(change, message: str) -> None:
    tables = _tables()
    change(tables)
    with pytest.raises(CinegraphError, match=message):
        build_hetero_data(tables)


def test_edge_type_needs_its_node_types() -> None:
    with pytest.raises(CinegraphError, match="ACTED_IN needs node type Person"):
        build_hetero_data(_tables(), (s.USER, s.MOVIE, s.GENRE), (s.RATED, s.ACTED_IN))
