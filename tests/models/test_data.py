"""models/data.py: split sizes and disjointness, no leakage, features, ablation, export, seeds."""

from __future__ import annotations

import csv
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest
import torch
from pydantic import ValidationError

from cinegraph import schema as s
from cinegraph.errors import CinegraphError
from cinegraph.models.data import DataConfig, export_split, prepare_data


def _pairs(edges: torch.Tensor) -> set[tuple[int, int]]:
    return set(map(tuple, edges.t().tolist()))


def held_out_edges(data) -> torch.Tensor:
    return torch.cat([data.valid_edges, data.test_edges], 1)


@pytest.mark.parametrize("split", ["random", "temporal"])
def test_split_sizes_and_disjointness(tiny_tables, split: str) -> None:
    data = prepare_data(tiny_tables, DataConfig(split=split), seed=0)
    rated = tiny_tables[s.RATED.rel]
    positives = rated.filter(pc.greater_equal(rated.column(s.RATING), 4.0)).num_rows
    train, valid, test = (_pairs(data.edges(x)) for x in ("train", "valid", "test"))
    assert len(train) + len(valid) + len(test) == positives == 40 * 12
    assert not (train & valid or train & test or valid & test)
    # 12 positives per user: round(1.2) = 1 validation and 1 test each
    for edges in (data.valid_edges, data.test_edges):
        assert torch.bincount(edges[0], minlength=data.num_users).tolist() == [1] * 40
    assert data.train_edges.dtype == torch.long and data.train_edges.shape == (2, 400)


def test_temporal_split_holds_out_each_users_latest(tiny_tables) -> None:
    data = prepare_data(tiny_tables, DataConfig(split="temporal"), seed=0)
    rated = tiny_tables[s.RATED.rel].to_pylist()
    ts = {(r["src"], r["dst"]): r["timestamp"] for r in rated}
    uid, mid = data.user_ids, data.movie_ids

    def times(edges: torch.Tensor, u: int) -> list[int]:
        return [ts[(uid[u], mid[m])] for m in edges[1, edges[0] == u].tolist()]

    for u in range(data.num_users):
        assert min(times(data.test_edges, u)) >= max(times(data.valid_edges, u))
        assert min(times(data.valid_edges, u)) >= max(times(data.train_edges, u))


def test_model_input_holds_no_held_out_interaction(tiny_tables) -> None:
    data = prepare_data(tiny_tables, DataConfig(), seed=1)
    held_out = _pairs(data.valid_edges) | _pairs(data.test_edges)
    for et in (s.RATED, s.TAGGED):
        graph_pairs = _pairs(data.graph[et.triplet].edge_index)
        assert not graph_pairs & held_out
        assert _pairs(data.graph[et.reverse_triplet].edge_index.flip(0)) == graph_pairs
    rated = data.graph[s.RATED.triplet]
    # training positives and all non-positive ratings stay, with rating as edge weight
    assert _pairs(data.train_edges) <= _pairs(rated.edge_index)
    assert rated.edge_index.size(1) == 40 * 16 - len(held_out)
    assert torch.allclose(data.train_weight, rated.rating / 5.0)
    assert torch.equal(data.graph[s.RATED.reverse_triplet].edge_weight, data.train_weight)
    assert _pairs(data.seen_edges) == _pairs(rated.edge_index)
    # a TAGGED edge of a held-out pair existed in the tables and was dropped
    tagged = tiny_tables[s.TAGGED.rel]
    uidx = {k: i for i, k in enumerate(data.user_ids)}
    midx = {k: i for i, k in enumerate(data.movie_ids)}
    tag_pairs = {(uidx[r["src"]], midx[r["dst"]]) for r in tagged.to_pylist()}
    assert tag_pairs & held_out, "fixture should tag some held-out pair"


def test_no_held_out_movie_genre_is_reachable(tiny_tables) -> None:
    data = prepare_data(tiny_tables, DataConfig(), seed=2)
    held = data.genre_masks["valid"] | data.genre_masks["test"]
    # walk every edge type touching Genre: no held-out movie has a Genre neighbour
    for (src, _, dst), store in data.graph.edge_items():
        if {src, dst} == {"Movie", "Genre"}:
            movies = store.edge_index[0 if src == "Movie" else 1]
            assert not held[movies].any()
    # only Movie and User carry features, and none derive from genres: perturbing every
    # held-out movie's genres (IN_GENRE and IMDb genres) leaves the model input unchanged
    tables = dict(tiny_tables)
    held_keys = pa.array([data.movie_ids[i] for i in held.nonzero().flatten().tolist()])
    ig = tables[s.IN_GENRE.rel]
    ig = ig.filter(pc.invert(pc.is_in(ig.column(s.SRC), held_keys)))
    extra = pa.table({s.SRC: held_keys, s.DST: pa.array(["Horror"] * len(held_keys))}, schema=ig.schema)
    tables[s.IN_GENRE.rel] = pa.concat_tables([ig, extra])
    movies = tables[s.MOVIE.label]
    col = movies.schema.get_field_index("imdb_genres")
    tables[s.MOVIE.label] = movies.set_column(col, movies.schema.field(col), pa.array([["Western"]] * movies.num_rows))
    other = prepare_data(tables, DataConfig(), seed=2)
    assert torch.equal(other.genre_masks["train"], data.genre_masks["train"])
    for key in data.graph.node_types:
        assert torch.equal(other.graph[key].x, data.graph[key].x)
    for key in data.graph.edge_types:
        assert torch.equal(other.graph[key].edge_index, data.graph[key].edge_index)


def test_genre_labels_and_masks(tiny_tables) -> None:
    data = prepare_data(tiny_tables, DataConfig(), seed=0)
    assert data.genre_names == ["Action", "Comedy", "Drama", "Horror", "Romance"]
    assert data.genre_labels.shape == (60, 5)
    labelled = data.genre_labels.sum(1) > 0
    assert int(labelled.sum()) == 59  # movie 0 had only "(no genres listed)"
    masks = data.genre_masks
    assert [int(masks[k].sum()) for k in ("train", "valid", "test")] == [35, 12, 12]
    assert torch.equal(masks["train"] | masks["valid"] | masks["test"], labelled)
    assert not (masks["train"] & masks["valid"]).any() and not (masks["valid"] & masks["test"]).any()


def test_features_and_ml_only_ablation(tiny_tables) -> None:
    full = prepare_data(tiny_tables, DataConfig(), seed=0)
    x = full.graph["Movie"].x
    assert x.shape == (60, 8)  # year, runtime, log votes, rating: value + missing flag each
    assert torch.allclose(x[:, 0::2].mean(0), torch.zeros(4), atol=1e-5)
    assert x[:, 1::2].sum(0).tolist() == [9.0, 12.0, 12.0, 12.0]  # movies 0,7,..,56 lack a year
    assert full.graph["User"].x.shape == (40, 0)  # ml-latest-small has no demographics
    assert "year" not in full.graph["Movie"]

    ml = prepare_data(tiny_tables, DataConfig(include_imdb=False), seed=0)
    assert "Person" not in ml.graph.node_types
    assert not {e.triplet for e in s.IMDB_EDGE_TYPES} & set(ml.graph.edge_types)
    assert torch.equal(ml.graph["Movie"].x, x[:, :2])
    assert torch.equal(ml.test_edges, full.test_edges)  # same split either way


def test_user_demographics_become_features(tiny_tables) -> None:
    tables = dict(tiny_tables)
    n = tables[s.USER.label].num_rows
    tables[s.USER.label] = pa.table(
        {
            "user_id": tables[s.USER.label].column("user_id"),
            "gender": pa.array(["M", "F"] * (n // 2)),
            "age": pa.array([20 + i for i in range(n)], pa.int32()),
            "occupation": pa.array(["a", "b", "c", None] * (n // 4)),
            "zip_code": pa.array(["1"] * n),
        },
        schema=s.USER.arrow_schema(),
    )
    x = prepare_data(tables, DataConfig(), seed=0).graph["User"].x
    assert x.shape == (40, 2 + 3 + 2)  # gender, occupation one-hot; age + flag
    assert x[0, :2].tolist() == [0.0, 1.0] and x[3, 2:5].tolist() == [0.0, 0.0, 0.0]


def test_fixed_seed_is_deterministic_and_seeds_differ(tiny_tables) -> None:
    a, b = (prepare_data(tiny_tables, DataConfig(), seed=3) for _ in range(2))
    c = prepare_data(tiny_tables, DataConfig(), seed=4)
    assert torch.equal(a.test_edges, b.test_edges) and torch.equal(a.genre_masks["test"], b.genre_masks["test"])
    assert not torch.equal(a.test_edges, c.test_edges)


def test_export_split_writes_original_keys(tiny_tables, tmp_path: Path) -> None:
    data = prepare_data(tiny_tables, DataConfig(), seed=0)
    paths = export_split(data, tmp_path / "split")
    for split, path in paths.items():
        with path.open() as f:
            rows = list(csv.DictReader(f))
        assert list(rows[0]) == [s.USER.key, s.MOVIE.key]
        edges = data.edges(split)
        assert len(rows) == edges.size(1)
        assert (int(rows[0]["user_id"]), int(rows[0]["movie_id"])) == (
            data.user_ids[int(edges[0, 0])],
            data.movie_ids[int(edges[1, 0])],
        )


def test_bad_config_and_tables_fail_clearly(tiny_tables) -> None:
    with pytest.raises(ValidationError, match="valid_frac \\+ test_frac"):
        DataConfig(valid_frac=0.5, test_frac=0.5)
    with pytest.raises(CinegraphError, match="no RATED edges"):
        prepare_data({k: v for k, v in tiny_tables.items() if k != s.RATED.rel}, DataConfig(), 0)


def test_model_feature_names_are_schema_properties() -> None:
    movie = {p.name for p in s.MOVIE.properties}
    user = {p.name for p in s.USER.properties}
    assert set(s.MOVIELENS_MOVIE_FEATURES + s.IMDB_MOVIE_FEATURES) <= movie
    assert set(s.USER_CATEGORICAL_FEATURES + s.USER_NUMERIC_FEATURES) <= user
    assert {s.RATING, s.TIMESTAMP} <= {p.name for p in s.RATED.properties}


def test_to_moves_every_tensor(tiny_tables) -> None:
    data = prepare_data(tiny_tables, DataConfig(), seed=0).to("cpu")
    assert data.graph["Movie"].x.device.type == "cpu" and data.genre_masks["test"].device.type == "cpu"


@pytest.mark.slow
@pytest.mark.realdata
def test_real_snapshot_prepares_leak_free(real_snapshot: Path) -> None:
    """ml-latest-small end to end: sizes, the split partition, no leakage, the ML-only ablation."""
    from cinegraph.graph_store.snapshot_io import read_snapshot
    from cinegraph.models.evaluate import evaluate_ranking
    from cinegraph.models.popularity import MostPopular

    tables = read_snapshot(real_snapshot)
    data = prepare_data(tables, DataConfig(), seed=0)
    assert (data.num_users, data.num_movies) == (610, 9742)
    rated = tables[s.RATED.rel]
    positives = rated.filter(pc.greater_equal(rated.column(s.RATING), 4.0)).num_rows
    sizes = [data.edges(x).size(1) for x in ("train", "valid", "test")]
    assert sum(sizes) == positives and 0.09 < sizes[2] / positives < 0.11
    held_out = _pairs(data.valid_edges) | _pairs(data.test_edges)
    assert not _pairs(data.graph[s.RATED.triplet].edge_index) & held_out
    assert not _pairs(data.graph[s.TAGGED.triplet].edge_index) & held_out
    held = data.genre_masks["valid"] | data.genre_masks["test"]
    assert not held[data.graph[s.IN_GENRE.triplet].edge_index[0]].any()
    assert data.graph["Person"].num_nodes > 0 and data.graph["Movie"].x.shape == (9742, 8)
    pop = MostPopular(data.num_movies).fit(data.train_edges)
    assert evaluate_ranking(pop.scores, data, "test")["ndcg@20"] > 0.05

    ml = prepare_data(tables, DataConfig(include_imdb=False), seed=0)
    assert "Person" not in ml.graph.node_types and ml.graph["Movie"].x.shape == (9742, 2)
    assert torch.equal(ml.test_edges, data.test_edges)

    cold = prepare_data(tables, DataConfig(protocol="cold-items"), seed=0)
    new = cold.cold_items
    movies_with_positives = torch.cat([data.train_edges, held_out_edges(data)], 1)[1].unique()
    assert 0.14 < new.sum() / movies_with_positives.numel() < 0.16
    for et in (s.RATED, s.TAGGED):
        assert not new[cold.graph[et.triplet].edge_index[1]].any()
        assert not new[cold.graph[et.reverse_triplet].edge_index[0]].any()
    assert not new[cold.train_edges[1]].any() and not new[cold.movie_tags[0]].any()
    assert new[cold.valid_edges[1]].sum() > 1000 and new[cold.test_edges[1]].sum() > 1000


@pytest.mark.parametrize("seed", [0, 1])
def test_cold_items_have_no_user_edge_in_the_model_input(tiny_tables, seed: int) -> None:
    """New movies: no RATED or TAGGED edge in either direction, no training positive, no seen
    pair, no tag; every positive of theirs held out in valid or test; content edges kept."""
    warm = prepare_data(tiny_tables, DataConfig(), seed=seed)
    data = prepare_data(tiny_tables, DataConfig(protocol="cold-items"), seed=seed)
    cold = data.cold_items
    with_positives = torch.cat([warm.train_edges, warm.valid_edges, warm.test_edges], 1)[1].unique()
    assert int(cold.sum()) == round(0.15 * with_positives.numel()) > 0
    assert cold[with_positives].sum() == cold.sum()
    for et in (s.RATED, s.TAGGED):
        assert not cold[data.graph[et.triplet].edge_index[1]].any()
        assert not cold[data.graph[et.reverse_triplet].edge_index[0]].any()
    assert not cold[data.train_edges[1]].any() and not cold[data.seen_edges[1]].any()
    assert not cold[data.movie_tags[0]].any()
    held = torch.cat([data.valid_edges, data.test_edges], 1)
    all_pos = _pairs(warm.train_edges) | _pairs(warm.valid_edges) | _pairs(warm.test_edges)
    cold_pos = {p for p in all_pos if cold[p[1]]}
    assert cold_pos <= _pairs(held) and len(cold_pos) == int(cold[held[1]].sum())
    assert cold[data.valid_edges[1]].any() and cold[data.test_edges[1]].any()
    assert len(_pairs(data.train_edges) | _pairs(held)) == len(all_pos)
    for et in (s.ACTED_IN, s.DIRECTED):
        assert torch.equal(data.graph[et.triplet].edge_index, warm.graph[et.triplet].edge_index)
    assert torch.equal(data.graph[s.IN_GENRE.triplet].edge_index, warm.graph[s.IN_GENRE.triplet].edge_index)
    assert not warm.cold_items.any()
    again = prepare_data(tiny_tables, DataConfig(protocol="cold-items"), seed=seed)
    assert torch.equal(again.cold_items, cold) and torch.equal(again.test_edges, data.test_edges)


def test_movie_tags_keep_the_text_of_input_tags_only(tiny_tables) -> None:
    data = prepare_data(tiny_tables, DataConfig(), seed=0)
    assert data.tag_names == ["great"]
    assert _pairs(data.movie_tags) == {(m, 0) for m in data.graph[s.TAGGED.triplet].edge_index[1].tolist()}


def test_a_repeated_positive_pair_lands_in_one_split(tiny_tables) -> None:
    rated = tiny_tables[s.RATED.rel]
    tables = {**tiny_tables, s.RATED.rel: pa.concat_tables([rated, rated.slice(0, 3)])}
    data = prepare_data(tables, DataConfig(), seed=0)
    train, valid, test = (_pairs(data.edges(x)) for x in ("train", "valid", "test"))
    assert len(train) + len(valid) + len(test) == 40 * 12
    assert data.train_edges.size(1) == len(train)
    assert not (train & valid or train & test or valid & test)
