"""Hostile strings travel as parameters only: loaded as titles, names, tags and keys, read back
unchanged, and nothing else in the graph is touched. Hostile input files end as a snapshot that
loads whole; hostile queries cannot read the server's files; hostile values cannot break the
`cinegraph cypher` table."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from neo4j import Driver

from cinegraph import schema
from cinegraph.errors import CinegraphError
from cinegraph.flows.cli import main
from cinegraph.graph_store.connection import Neo4jSettings
from cinegraph.graph_store.load import load_snapshot
from cinegraph.graph_store.snapshot_io import read_manifest
from tests.graph_store.neo4j_testing import (
    edge_table,
    expected_rows,
    graph_rows,
    node_table,
    small_tables,
    write_test_snapshot,
)
from tests.hostile_mirror import build_mirror

pytestmark = pytest.mark.neo4j

HOSTILE = [
    'O\'Brien "The" `Movie`',
    "'}) MATCH (n) DETACH DELETE n //",
    '"}) RETURN 1 UNION MATCH (x) SET x.pwned = true //',
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
    movies = [
        base[10] | {"title": t, "imdb_title": t, "imdb_genres": [t, "Drama"], "movie_id": 1000 + i}
        for i, t in enumerate(HOSTILE)
    ]
    tables["Movie"] = node_table(schema.MOVIE, [*base.values(), *movies])
    people = [{"nconst": f"nm9{i:06d}", "name": t, "professions": [t]} for i, t in enumerate(HOSTILE)]
    tables["Person"] = node_table(schema.PERSON, [*tables["Person"].to_pylist(), *people])
    genres = [{"name": t[:2_000]} for t in dict.fromkeys(HOSTILE) if t]  # keys: range index, < 8 kB
    tables["Genre"] = node_table(schema.GENRE, [*tables["Genre"].to_pylist(), *genres])
    tags = [{"src": 1, "dst": 1000 + i, "tag": t, "timestamp": i} for i, t in enumerate(HOSTILE)]
    tables["TAGGED"] = edge_table(schema.TAGGED, [*tables["TAGGED"].to_pylist(), *tags])
    acted = [
        {"src": p["nconst"], "dst": 1000 + i, "characters": [t, t], "ordering": 1}
        for i, (p, t) in enumerate(zip(people, HOSTILE, strict=True))
    ]
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
    labels = {
        r["l"]
        for r in graph.execute_query(
            "MATCH (n) UNWIND labels(n) AS l RETURN DISTINCT l AS l", database_="neo4j"
        ).records
    }
    assert labels == {nt.label for nt in (*schema.NODE_TYPES, schema.SNAPSHOT)}
    assert (
        graph.execute_query("MATCH (n) WHERE n.pwned IS NOT NULL RETURN count(n) AS n", database_="neo4j").records[0][
            "n"
        ]
        == 0
    )
    # A second load finds every hostile value equal to the snapshot's: nothing to write.
    again = load_snapshot(graph, snap, progress=False, verify=True)
    assert again.nodes["Movie"].upserted == 0 and again.edges["TAGGED"].upserted == 0


def test_values_too_large_for_an_index_are_refused_up_front(graph: Driver, tmp_path: Path) -> None:
    tables = small_tables()
    movies = tables["Movie"].to_pylist()
    movies[0]["title"] = "🎬" * 10_000  # 40 kB: over the text index limit
    tables["Movie"] = node_table(schema.MOVIE, movies)
    snap = write_test_snapshot(tmp_path / "big", tables)
    with pytest.raises(CinegraphError, match="1 title values over the TEXT index limit"):
        load_snapshot(graph, snap, progress=False)


ROOT = Path(__file__).resolve().parents[2]


def _cli_env(settings: Neo4jSettings) -> dict[str, str]:
    return os.environ | {
        "PYTHONPATH": str(ROOT),
        "NEO4J_URI": settings.uri,
        "NEO4J_USER": settings.user,
        "NEO4J_PASSWORD": settings.password,
    }


@pytest.mark.parametrize("url", ["file:///etc/passwd", "file:///../../../../etc/passwd", "file:///import/x.csv"])
def test_load_csv_cannot_read_server_files(
    graph: Driver, neo4j_settings: Neo4jSettings, tmp_path: Path, url: str
) -> None:
    query = tmp_path / "read.cypher"
    query.write_text(f"LOAD CSV FROM '{url}' AS row RETURN row LIMIT 1\n")
    proc = subprocess.run(
        [sys.executable, "-m", "cinegraph.flows.cli", "cypher", str(query)],
        env=_cli_env(neo4j_settings),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and "root:" not in proc.stdout
    assert "allow_csv_import_from_file_urls' is false" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_cypher_table_escapes_line_breaks(graph: Driver, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    tables = small_tables()
    movies = tables["Movie"].to_pylist()
    movies[0]["title"] = "first line\r\nsecond\rthird\x1b[31m red\u2028sep"
    tables["Movie"] = node_table(schema.MOVIE, movies)
    load_snapshot(graph, write_test_snapshot(tmp_path / "s", tables), progress=False)
    query = tmp_path / "titles.cypher"
    query.write_text("MATCH (m:Movie) RETURN m.movie_id AS id, m.title AS title ORDER BY id\n")
    assert main(["cypher", str(query)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 + len(movies) + 1
    assert lines[2] == "10 | first line\\r\\nsecond\\rthird\\x1b[31m red\\u2028sep"


@pytest.mark.realdata
@pytest.mark.slow
def test_duplicate_rating_and_overlong_title_pass_etl_and_load_whole(
    graph: Driver, mirror: Path, http_dir: tuple[str, Path], tmp_path: Path
) -> None:
    """Over HTTP from a copy of the real mirror with a 40,000-character title and a rating given
    twice: the ETL keeps the later rating and cuts the title to the TEXT index limit, and the
    graph then holds exactly the manifest's counts."""
    long_title = "Long " * 8_000  # 40,000 characters

    def movies(lines: list[bytes]) -> list[bytes]:
        lines[1] = b'1,"' + long_title.encode() + b' (1995)",Adventure|Animation'
        return lines

    base, www = http_dir
    build_mirror(mirror, www, {"movies.csv": movies, "ratings.csv": lambda lines: [*lines, b"1,1,2.5,1600000000"]})
    out = tmp_path / "out"
    assert main(["etl", "--mirror", base, "--out", str(out), "--no-progress"]) == 0
    manifest = read_manifest(out / "snapshot")
    assert manifest["truncated"] == {"Movie.title": 1}
    assert manifest["rejects"]["ratings.csv"] == 1
    assert manifest["counts"]["edges"]["RATED"] == 100_836
    load_snapshot(graph, out / "snapshot", progress=False)
    for kind, counts in manifest["counts"].items():
        for name, n in counts.items():
            pattern = f"(n:{name})" if kind == "nodes" else f"()-[n:{name}]->()"
            held = graph.execute_query(f"MATCH {pattern} RETURN count(n) AS n", database_="neo4j").records[0]["n"]
            assert held == n, name
    title, rating = graph.execute_query(
        "MATCH (u:User {user_id: 1})-[r:RATED]->(m:Movie {movie_id: 1}) RETURN m.title AS t, r.rating AS r",
        database_="neo4j",
    ).records[0]
    assert len(title.encode()) == schema.INDEX_MAX_BYTES["TEXT"] and long_title.startswith(title)
    assert rating == 2.5
