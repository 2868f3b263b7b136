"""Results back into the graph, on the real sample: recommendations replace (never duplicate), the
vector index finds the nearest movie, and the explanation query returns the expected paths."""

from __future__ import annotations

from pathlib import Path

import neo4j
import numpy as np
import pyarrow as pa
import pytest

from cinegraph import schema
from cinegraph.errors import CinegraphError
from cinegraph.graph_store.cypher import format_value, load_query, run_query
from cinegraph.graph_store.results import write_movie_embeddings, write_recommendations
from cinegraph.graph_store.snapshot_io import read_snapshot

pytestmark = [pytest.mark.neo4j, pytest.mark.slow, pytest.mark.realdata]

COUNT_RUN = (
    f"MATCH (u:{schema.USER.label})-[r:{schema.RECOMMENDED.rel}]->(m:{schema.MOVIE.label}) "
    "WHERE r.run_id = $run_id "
    "RETURN u.user_id AS user_id, m.movie_id AS movie_id, r.score AS score, r.rank AS rank, "
    "r.model AS model ORDER BY user_id, rank"
)


@pytest.fixture(scope="module")
def tables(real_snapshot: Path) -> dict[str, pa.Table]:
    return read_snapshot(real_snapshot)


def _run_rows(driver: neo4j.Driver, run_id: str) -> list[dict]:
    records, _, _ = driver.execute_query(COUNT_RUN, run_id=run_id)
    return [r.data() for r in records]


def _recs(users: list[int], movies: list[int], k: int) -> list[dict]:
    return [
        {"user_id": u, "movie_id": movies[(i + j) % len(movies)], "score": 1.0 - r / 10, "rank": r + 1}
        for i, u in enumerate(users)
        for j, r in enumerate(range(k))
    ]


def test_recommendations_replace_never_duplicate(real_graph: neo4j.Driver, tables) -> None:
    users = tables["User"].column("user_id").to_pylist()[:5]
    movies = tables["Movie"].column("movie_id").to_pylist()[:20]
    first = _recs(users, movies, 3)
    assert write_recommendations(real_graph, first, run_id="run-a", model="fused") == 15
    assert write_recommendations(real_graph, pa.Table.from_pylist(first), run_id="run-a", model="fused") == 15
    rows = _run_rows(real_graph, "run-a")
    assert len(rows) == 15
    assert {(r["user_id"], r["movie_id"], r["rank"], r["score"], r["model"]) for r in rows} == {
        (r["user_id"], r["movie_id"], r["rank"], r["score"], "fused") for r in first
    }

    other = _recs(users[:2], movies[5:], 2)
    write_recommendations(real_graph, other, run_id="run-b", model="gcn")
    replacement = _recs(users[:1], movies[10:], 4)
    write_recommendations(real_graph, replacement, run_id="run-a", model="hgt")
    assert [(r["movie_id"], r["rank"], r["model"]) for r in _run_rows(real_graph, "run-a")] == [
        (r["movie_id"], r["rank"], "hgt") for r in replacement
    ]
    assert len(_run_rows(real_graph, "run-b")) == 4


@pytest.mark.parametrize(
    ("recs", "message"),
    [
        ([{"user_id": 1, "movie_id": 1, "score": 0.5}], r"missing column\(s\) \['rank'\]"),
        (
            [
                {"user_id": 1, "movie_id": 1, "score": 0.5, "rank": 1},
                {"user_id": 1, "movie_id": 1, "score": 0.4, "rank": 2},
            ],
            "1 \\(user_id, movie_id\\) pairs appear more than once",
        ),
        ([{"user_id": 1, "movie_id": 1, "score": None, "rank": 1}], "score: 1 nulls"),
        ([{"user_id": -7, "movie_id": 1, "score": 0.5, "rank": 1}], r"1 User id\(s\) not in the graph, e.g. \[-7\]"),
    ],
)
def test_bad_recommendations_write_nothing(real_graph: neo4j.Driver, recs, message: str) -> None:
    with pytest.raises(CinegraphError, match=message):
        write_recommendations(real_graph, recs, run_id="run-bad", model="m")
    assert _run_rows(real_graph, "run-bad") == []


def test_similar_movies_via_vector_index(real_graph: neo4j.Driver, tables) -> None:
    ids = tables["Movie"].column("movie_id").to_pylist()[:50]
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(50, 16)).astype(np.float32)
    emb[7] = emb[3] + 0.05 * rng.normal(size=16)  # ids[7] is ids[3]'s nearest neighbour
    assert write_movie_embeddings(real_graph, ids, emb) == 50
    query = load_query("similar_movies")
    _, rows = run_query(real_graph, query, {"movie_id": ids[3], "k": 5})
    assert len(rows) == 5 and rows[0]["movie_id"] == ids[7]
    assert ids[3] not in [r["movie_id"] for r in rows]
    # the index is approximate (HNSW): check each score against the exact cosine, not the order
    unit = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    cosine = dict(zip(ids, (unit @ unit[3]).tolist(), strict=True))
    assert [r["score"] for r in rows] == pytest.approx([(1 + cosine[r["movie_id"]]) / 2 for r in rows], abs=1e-4)
    assert rows[0]["score"] == pytest.approx((1 + max(c for m, c in cosine.items() if m != ids[3])) / 2, abs=1e-4)

    # a later run with another dimension and fewer movies replaces the vectors and the index
    write_movie_embeddings(real_graph, ids[:10], rng.normal(size=(10, 8)))
    _, rows = run_query(real_graph, query, {"movie_id": ids[3], "k": 20})
    assert sorted(r["movie_id"] for r in rows) == sorted(set(ids[:10]) - {ids[3]})
    _, rows = run_query(real_graph, query, {"movie_id": ids[20], "k": 5})
    assert rows == []  # its embedding was cleared


@pytest.mark.parametrize(
    ("embeddings", "movie_ids", "message"),
    [
        (np.zeros((2, 4)), [1], "2 embeddings for 1 movie ids"),
        (np.zeros(4), [1], "must be 2-D"),
        (np.full((1, 4), np.nan), [1], "NaN or infinite"),
        (np.zeros((2, 4)), [1, 1], "1 repeated movie ids"),
    ],
)
def test_bad_embeddings(real_graph: neo4j.Driver, embeddings, movie_ids, message: str) -> None:
    with pytest.raises(CinegraphError, match=message):
        write_movie_embeddings(real_graph, movie_ids, embeddings)


def _explanations(tables, user: int, target: int, min_rating: float) -> set[tuple[int, str]]:
    """(liked movie, shared genre or person) pairs computed from the snapshot tables."""
    liked = {r["dst"] for r in tables["RATED"].to_pylist() if r["src"] == user and r["rating"] >= min_rating}
    links: dict[int, set[str]] = {}
    for et in schema.EDGE_TYPES:
        if et.src == schema.MOVIE and et.dst == schema.GENRE:
            pairs = zip(tables[et.rel].column("src").to_pylist(), tables[et.rel].column("dst").to_pylist(), strict=True)
        elif et.src == schema.PERSON and et.dst == schema.MOVIE:
            pairs = zip(tables[et.rel].column("dst").to_pylist(), tables[et.rel].column("src").to_pylist(), strict=True)
        else:
            continue
        for movie, other in pairs:
            links.setdefault(movie, set()).add(other)
    return {
        (movie, shared) for movie in liked - {target} for shared in links.get(movie, set()) & links.get(target, set())
    }


def test_explain_recommendation_paths(real_graph: neo4j.Driver, tables) -> None:
    rated = tables["RATED"]
    user = rated.column("src")[0].as_py()
    seen = {r["dst"] for r in rated.to_pylist() if r["src"] == user}
    candidates = [m for m in tables["Movie"].column("movie_id").to_pylist() if m not in seen]
    target = next(m for m in candidates if _explanations(tables, user, m, 4.0))
    expected = _explanations(tables, user, target, 4.0)
    write_recommendations(
        real_graph,
        [{"user_id": user, "movie_id": target, "score": 0.9, "rank": 1}],
        run_id="run-explain",
        model="fused",
    )
    query = load_query("explain_recommendation")
    _, rows = run_query(
        real_graph,
        query,
        {"user_id": user, "movie_id": target, "run_id": "run-explain", "paths": 100_000},
    )
    got = set()
    for row in rows:
        path = row["path"]
        assert [sorted(n.labels)[0] for n in path.nodes] == ["User", "Movie", row["via"], "Movie"]
        assert path.start_node["user_id"] == user and path.end_node["movie_id"] == target
        shared = path.nodes[2]
        got.add((path.nodes[1]["movie_id"], shared.get("nconst") or shared.get("name")))
        assert row["your_rating"] >= 4.0 and row["rank"] == 1
    assert got == expected
    via = [r["via"] for r in rows]
    assert via == sorted(via, key=lambda v: v != "Person")  # people first
    assert format_value(rows[0]["path"]).startswith(f"(:User {user})-[:RATED]->(:Movie ")
