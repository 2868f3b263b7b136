"""Hostile strings travel as parameters only: loaded as titles, names, tags and keys, read back
unchanged, and nothing else in the graph is touched."""

from __future__ import annotations

from pathlib import Path

import pytest
from neo4j import Driver

from graph_store import schema
from graph_store.errors import CinegraphError
from graph_store.load import load_snapshot
from tests.graph_store.neo4j_testing import (
    edge_table,
    expected_rows,
    graph_rows,
    node_table,
    small_tables,
    write_test_snapshot,
)

pytestmark = pytest.mark.neo4j

HOSTILE = [
    "O'Brien \"The\" `Movie`",
    "'}) MATCH (n) DETACH DELETE n //",
    "\"}) RETURN 1 UNION MATCH (x) SET x.pwned = true //",
    "`) DETACH DELETE n; CREATE (:Pwned {a: 1}) /*",
    "{rows} $rows ${rows} {{x}}",
    "// comment /* block */ -- sql",
    "MERGE CREATE DELETE DETACH CALL apoc.do.it() LOAD CSV FROM 'file:///etc/passwd'",
    "\\u0027 \\' \\\\ \\n backslashes",
    "Amélie — 千と千尋の神隠し — Ørsted — עברית — 🎬🍿",
    "tabs\tand\nnewlines\r\n and \x00 nul",
    "",
    " leading and trailing ",
    "x" * 10_000,
    ("Ünïcödé `'\"{}// " * 625),  # 10,000 characters, ~12 kB UTF-8
]


def _hostile_tables() -> dict:
    tables = small_tables()
    base = {r["movie_id"]: r for r in tables["Movie"].to_pylist()}
    movies = [base[10] | {"title": t, "imdb_title": t, "imdb_genres": [t, "Drama"], "movie_id": 1000 + i}
              for i, t in enumerate(HOSTILE)]
    tables["Movie"] = node_table(schema.MOVIE, [*base.values(), *movies])
    people = [{"nconst": f"nm9{i:06d}", "name": t, "professions": [t]} for i, t in enumerate(HOSTILE)]
    tables["Person"] = node_table(schema.PERSON, [*tables["Person"].to_pylist(), *people])
    genres = [{"name": t[:2_000]} for t in dict.fromkeys(HOSTILE) if t]  # keys: range index, < 8 kB
    tables["Genre"] = node_table(schema.GENRE, [*tables["Genre"].to_pylist(), *genres])
    tags = [{"src": 1, "dst": 1000 + i, "tag": t, "timestamp": i} for i, t in enumerate(HOSTILE)]
    tables["TAGGED"] = edge_table(schema.TAGGED, [*tables["TAGGED"].to_pylist(), *tags])
    acted = [{"src": p["nconst"], "dst": 1000 + i, "characters": [t, t], "ordering": 1} for i, (p, t) in
             enumerate(zip(people, HOSTILE))]
    tables["ACTED_IN"] = edge_table(schema.ACTED_IN, [*tables["ACTED_IN"].to_pylist(), *acted])
    in_genre = [{"src": 1000 + i, "dst": g["name"]} for i, g in enumerate(genres)]
    tables["IN_GENRE"] = edge_table(schema.IN_GENRE, [*tables["IN_GENRE"].to_pylist(), *in_genre])
    return tables


def test_hostile_strings_round_trip(graph: Driver, tmp_path: Path) -> None:
    tables = _hostile_tables()
    snap = write_test_snapshot(tmp_path / "hostile", tables)
    load_snapshot(graph, snap, batch_size=7, progress=False)
    assert graph_rows(graph) == expected_rows(tables)
    # Nothing outside the schema appeared and nothing was flagged.
    labels = {r["l"] for r in graph.execute_query("MATCH (n) UNWIND labels(n) AS l RETURN DISTINCT l AS l",
                                                 database_="neo4j").records}
    assert labels == {nt.label for nt in (*schema.NODE_TYPES, schema.SNAPSHOT)}
    assert graph.execute_query("MATCH (n) WHERE n.pwned IS NOT NULL RETURN count(n) AS n",
                               database_="neo4j").records[0]["n"] == 0
    # A second load finds every hostile value equal to the snapshot's: nothing to write.
    again = load_snapshot(graph, snap, progress=False)
    assert again.nodes["Movie"].upserted == 0 and again.edges["TAGGED"].upserted == 0


def test_values_too_large_for_an_index_are_refused_up_front(graph: Driver, tmp_path: Path) -> None:
    tables = small_tables()
    movies = tables["Movie"].to_pylist()
    movies[0]["title"] = "🎬" * 10_000  # 40 kB: over the text index limit
    tables["Movie"] = node_table(schema.MOVIE, movies)
    snap = write_test_snapshot(tmp_path / "big", tables)
    with pytest.raises(CinegraphError, match="1 title values over the TEXT index limit"):
        load_snapshot(graph, snap, progress=False)
