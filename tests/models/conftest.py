"""Tiny hand-built snapshot tables (schema Arrow schemas, no ETL) for the models tests."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from cinegraph import schema as s

GENRES = ["Action", "Comedy", "Drama", "Horror", "Romance", "(no genres listed)"]


def make_tables(num_users: int = 40, num_movies: int = 60, num_persons: int = 12, seed: int = 0) -> dict[str, pa.Table]:
    """Two taste groups: even users love movies of the first half, odd users the second half.

    Each user rates 12 movies of their half 4-5 and 4 of the other half 1-2; movies of the same
    half share genres and crew, so both structure and semantics carry signal. The last two movies
    have no rating at all, movie 0 has no genre.
    """
    rng = np.random.default_rng(seed)
    half = (num_movies - 2) // 2
    users = {s.USER.key: pa.array(range(100, 100 + num_users), pa.int64())}
    movies = {
        s.MOVIE.key: list(range(1000, 1000 + num_movies)),
        "title": [f"Movie {i}" for i in range(num_movies)],
        "year": [None if i % 7 == 0 else 1980 + i % 30 for i in range(num_movies)],
        "runtime": [None if i % 5 == 0 else 80 + i for i in range(num_movies)],
        "num_votes": [None if i % 5 == 0 else 10 * (i + 1) ** 2 for i in range(num_movies)],
        "imdb_rating": [None if i % 5 == 0 else 5.0 + (i % 40) / 10 for i in range(num_movies)],
        "imdb_genres": [["Drama"] if i % 2 else ["Comedy"] for i in range(num_movies)],
    }
    rated = {"src": [], "dst": [], "rating": [], "timestamp": []}
    tagged = {"src": [], "dst": [], "tag": [], "timestamp": []}
    for u in range(num_users):
        own = np.arange(half) + (half if u % 2 else 0)
        other = np.arange(half) + (0 if u % 2 else half)
        # popular movies of the group come first: a Zipf-ish pick
        p = 1.0 / (np.arange(half) + 1.0)
        liked = rng.choice(own, size=12, replace=False, p=p / p.sum())
        disliked = rng.choice(other, size=4, replace=False)
        for m, r in [(m, rng.choice([4.0, 4.5, 5.0])) for m in liked] + [(m, rng.choice([1.0, 2.0])) for m in disliked]:
            rated["src"].append(100 + u)
            rated["dst"].append(1000 + int(m))
            rated["rating"].append(float(r))
            rated["timestamp"].append(int(1_000_000 + rng.integers(0, 10**6)))
        tagged["src"].append(100 + u)
        tagged["dst"].append(1000 + int(liked[0]))
        tagged["tag"].append("great")
        tagged["timestamp"].append(2_000_000)
    in_genre = {"src": [], "dst": []}
    for i in range(1, num_movies):
        names = ["Action", "Horror"] if i < half else ["Comedy", "Romance"]
        for g in names[: 1 + i % 2] + (["Drama"] if i % 3 == 0 else []):
            in_genre["src"].append(1000 + i)
            in_genre["dst"].append(g)
    in_genre["src"].append(1000)
    in_genre["dst"].append("(no genres listed)")
    persons = {s.PERSON.key: [f"nm{i:07d}" for i in range(num_persons)]}
    persons["name"] = [f"Person {i}" for i in range(num_persons)]
    acted = {"src": [], "dst": [], "ordering": []}
    directed = {"src": [], "dst": []}
    for i in range(num_movies):
        group = 0 if i < half else 1
        for j in range(2):
            acted["src"].append(f"nm{(group * 6 + (i + j) % 5):07d}")
            acted["dst"].append(1000 + i)
            acted["ordering"].append(j + 1)
        directed["src"].append(f"nm{(group * 6 + 5):07d}")
        directed["dst"].append(1000 + i)

    def table(obj: s.NodeType | s.EdgeType, cols: dict) -> pa.Table:
        schema = obj.arrow_schema()
        return pa.table(
            {f.name: pa.array(cols.get(f.name, [None] * len(next(iter(cols.values())))), f.type) for f in schema},
            schema=schema,
        )

    return {
        s.USER.label: table(s.USER, users),
        s.MOVIE.label: table(s.MOVIE, movies),
        s.GENRE.label: table(s.GENRE, {s.GENRE.key: GENRES}),
        s.PERSON.label: table(s.PERSON, persons),
        s.RATED.rel: table(s.RATED, rated),
        s.TAGGED.rel: table(s.TAGGED, tagged),
        s.IN_GENRE.rel: table(s.IN_GENRE, in_genre),
        s.ACTED_IN.rel: table(s.ACTED_IN, acted),
        s.DIRECTED.rel: table(s.DIRECTED, directed),
    }


@pytest.fixture(scope="session")
def tiny_tables() -> dict[str, pa.Table]:
    return make_tables()


@pytest.fixture(scope="session")
def tiny_snapshot(tiny_tables: dict[str, pa.Table], tmp_path_factory: pytest.TempPathFactory):
    """``tiny_tables`` written as a snapshot by the shared writer (empty tables for absent types),
    as ``read_snapshot`` and the ``train`` / ``benchmark`` commands read it."""
    from cinegraph.graph_store.snapshot_io import write_snapshot

    root = tmp_path_factory.mktemp("tiny-snapshot") / "snapshot"
    write_snapshot(root, tiny_tables)
    return root
