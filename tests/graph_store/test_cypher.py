"""Query files: parameter handling, schema agreement, and each query on the real sample in Neo4j."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import duckdb
import neo4j
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from cinegraph import schema
from cinegraph.errors import CinegraphError
from cinegraph.graph_store.cypher import (
    QUERIES_DIR,
    available_queries,
    format_table,
    load_query,
    parse_params,
    parse_value,
    resolve_params,
    run_query,
)
from cinegraph.graph_store.snapshot_io import read_snapshot

QUERY_FILES = sorted(QUERIES_DIR.glob("*.cypher"))


def _code(text: str) -> str:
    """Cypher without comments and with string literals emptied."""
    code = "\n".join(line.split("//", 1)[0] for line in text.splitlines())
    return re.sub(r"'[^']*'|\"[^\"]*\"", "''", code)


def _used_names(text: str) -> tuple[set[str], set[str], set[str]]:
    code = re.sub(r"\bdb(\.\w+)+", "", _code(text))  # procedure names
    labels = set(re.findall(r"\(\s*\w*\s*:\s*([A-Za-z_]\w*)", code))
    outside_rels = re.sub(r"\[[^\]]*\]", "", code)
    labels |= set(re.findall(r"\b[a-z_]\w*:([A-Z]\w*)\b", outside_rels))
    rels = {rel for group in re.findall(r"\[\s*\w*\s*:\s*([A-Za-z_|]+)", code) for rel in group.split("|")}
    props = {p for var, p in re.findall(r"\b([a-z_]\w*)\.([a-z_]\w*)\b", code) if var != "db"}
    props |= set(re.findall(r"\{\s*(\w+)\s*:", code))
    return labels, rels, props


def _schema_properties() -> set[str]:
    names = {schema.MOVIE_EMBEDDING_PROPERTY}
    for nt in (*schema.NODE_TYPES, schema.SNAPSHOT):
        names.update(nt.columns)
    for et in (*schema.EDGE_TYPES, schema.RECOMMENDED):
        names.update(p.name for p in et.properties)
    return names


def test_bundled_queries_present() -> None:
    assert {
        "movie_neighbourhood",
        "connecting_people",
        "also_rated",
        "director_filmography",
        "genre_cooccurrence",
        "explain_recommendation",
        "similar_movies",
    } <= set(available_queries())


@pytest.mark.parametrize("path", QUERY_FILES, ids=lambda p: p.stem)
def test_query_names_exist_in_schema(path: Path) -> None:
    labels, rels, props = _used_names(path.read_text())
    assert labels, "no label found: the extraction is broken"
    known_labels = {n.label for n in (*schema.NODE_TYPES, schema.SNAPSHOT)}
    known_rels = {e.rel for e in (*schema.EDGE_TYPES, schema.RECOMMENDED)}
    assert labels <= known_labels, labels - known_labels
    assert rels <= known_rels, rels - known_rels
    assert props <= _schema_properties(), props - _schema_properties()
    indexes = set(re.findall(r"queryNodes\(\s*'(\w+)'", path.read_text()))
    assert indexes <= {schema.MOVIE_EMBEDDING_INDEX, schema.MOVIE_TITLE_INDEX}


def test_schema_check_catches_unknown_names() -> None:
    labels, rels, props = _used_names("MATCH (a:Film)-[:STARRED|RATED*..2]-(b) WHERE b:Studio RETURN a.budget")
    assert labels == {"Film", "Studio"}
    assert rels == {"STARRED", "RATED"}
    assert props == {"budget"}


@pytest.mark.parametrize("path", QUERY_FILES, ids=lambda p: p.stem)
def test_every_parameter_has_a_declared_default(path: Path) -> None:
    query = load_query(path)
    assert query.parameters, "a ready query takes parameters"
    assert set(query.defaults) == query.parameters
    assert resolve_params(query, {}) == query.defaults


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("42", 42),
        ("-3", -3),
        ("4.5", 4.5),
        ("1e3", 1000.0),
        ("null", None),
        ("true", True),
        ('"42"', "42"),
        ("'nm0000005'", "nm0000005"),
        ("Ingmar Bergman", "Ingmar Bergman"),
        ("nm0000005", "nm0000005"),
    ],
)
def test_parse_value(text: str, value: object) -> None:
    parsed = parse_value(text)
    assert parsed == value and type(parsed) is type(value)


def test_parse_params_and_errors() -> None:
    assert parse_params(["movie_id=1", "min_rating=4.5", "director=a=b"]) == {
        "movie_id": 1,
        "min_rating": 4.5,
        "director": "a=b",
    }
    with pytest.raises(CinegraphError, match="expected name=value"):
        parse_params(["movie_id"])
    query = load_query("also_rated")
    with pytest.raises(CinegraphError, match=r"unknown parameter\(s\) \['movie'\]"):
        resolve_params(query, {"movie": 1})
    assert resolve_params(query, {"movie_id": 7})["movie_id"] == 7
    with pytest.raises(CinegraphError, match="no such Cypher file"):
        load_query("no_such_query")


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"limit": "ten"}, "limit='ten': expected an integer"),
        ({"min_rating": "high"}, "min_rating='high': expected a number"),
        ({"movie_id": 1.5}, "movie_id=1.5: expected a movie id \\(an integer\\) or a title"),
        ({"limit": "ten", "min_rating": True}, "limit='ten'.*; min_rating=True"),
    ],
)
def test_a_parameter_of_the_wrong_type_is_refused_with_the_reason(given: dict, message: str) -> None:
    with pytest.raises(CinegraphError, match=message):
        resolve_params(load_query("also_rated"), given)


def test_parameter_types_follow_the_defaults() -> None:
    query = load_query("also_rated")
    assert resolve_params(query, {"min_rating": 4, "movie_id": "Casablanca"}) == {
        "movie_id": "Casablanca",
        "min_rating": 4.0,
        "limit": 10,
    }
    assert type(resolve_params(query, {"min_rating": 4})["min_rating"]) is float
    assert resolve_params(load_query("explain_recommendation"), {"run_id": None, "movie_id": None})["run_id"] is None


@pytest.mark.neo4j
def test_movies_are_found_by_title(graph: neo4j.Driver, tmp_path: Path) -> None:
    """Full-text title lookup over the MovieLens and IMDb titles; a title stands for a movie id."""
    from cinegraph.graph_store.load import load_snapshot
    from tests.graph_store.neo4j_testing import small_tables, write_test_snapshot

    load_snapshot(graph, write_test_snapshot(tmp_path / "snapshot", small_tables()), progress=False)
    found = _run(graph, "find_movie", title="toy story")
    assert [(r["movie_id"], r["title"]) for r in found] == [(10, "Toy Story")]
    rows = _run(graph, "movie_neighbourhood", movie_id="Metropolis")
    assert {r["name"] for r in rows} == {"Fritz Lang", "Brigitte Helm", "Sci-Fi"}
    assert rows == _run(graph, "movie_neighbourhood", movie_id=30)
    assert _run(graph, "find_movie", title='Metro"polis: \\ (1927)') == []  # Lucene syntax is inert
    with pytest.raises(CinegraphError, match="movie_id='Nothing Like It': no movie title matches"):
        _run(graph, "movie_neighbourhood", movie_id="Nothing Like It")


def test_load_query_from_path_and_missing_parameter(tmp_path: Path) -> None:
    path = tmp_path / "q.cypher"
    path.write_text("// :param a => 1\nRETURN $a + $b AS s, '$notparam' AS t;\n")
    query = load_query(path)
    assert query.parameters == {"a", "b"}
    with pytest.raises(CinegraphError, match=r"missing parameter\(s\) \['b'\]"):
        resolve_params(query, {})


def test_format_table() -> None:
    text = format_table(["a", "bb"], [{"a": 1, "bb": 2.34567}, {"a": None, "bb": ["x", "y"]}])
    assert text.splitlines() == ["a | bb", "--+-------", "1 | 2.346", "  | [x, y]", "(2 rows)"]


# --- each query on the real sample -------------------------------------------------------------


def real_sample(test):
    """Mark a test that needs the test Neo4j holding the real sample."""
    for mark in (pytest.mark.neo4j, pytest.mark.slow, pytest.mark.realdata):
        test = mark(test)
    return test


PERSON_EDGES = [e for e in schema.EDGE_TYPES if e.src == schema.PERSON and e.dst == schema.MOVIE]


@pytest.fixture(scope="module")
def tables(real_snapshot: Path) -> dict[str, pa.Table]:
    return read_snapshot(real_snapshot)


@pytest.fixture(scope="module")
def duck(tables: dict[str, pa.Table]) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    for name, table in tables.items():
        con.register(name, table)
    return con


def _run(driver: neo4j.Driver, name: str, **params: object) -> list[dict]:
    return run_query(driver, load_query(name), params)[1]


def _person_links(tables: dict[str, pa.Table]) -> list[tuple[str, str, int]]:
    """(rel, nconst, movie_id) for every Person -> Movie edge of the snapshot."""
    return [
        (et.rel, s, d)
        for et in PERSON_EDGES
        for s, d in zip(tables[et.rel].column("src").to_pylist(), tables[et.rel].column("dst").to_pylist(), strict=True)
    ]


@real_sample
def test_movie_neighbourhood(real_graph: neo4j.Driver, tables) -> None:
    links = _person_links(tables)
    movie, _ = Counter(m for _, _, m in links).most_common(1)[0]
    expected = {("Person", rel, n) for rel, n, m in links if m == movie}
    genres = tables["IN_GENRE"]
    expected |= {
        ("Genre", "IN_GENRE", g)
        for m, g in zip(genres.column("src").to_pylist(), genres.column("dst").to_pylist(), strict=True)
        if m == movie
    }
    rows = _run(real_graph, "movie_neighbourhood", movie_id=movie, limit=1000)
    assert {(r["kind"], r["relationship"], r["key"]) for r in rows} == expected
    assert len(rows) == len(expected) and len({r["movie"] for r in rows}) == 1
    assert _run(real_graph, "movie_neighbourhood", movie_id=-1) == []


@real_sample
def test_connecting_people(real_graph: neo4j.Driver, tables) -> None:
    people_of: dict[int, set[str]] = {}
    for _, n, m in _person_links(tables):
        people_of.setdefault(m, set()).add(n)
    movies = sorted(people_of)
    a, b = next((a, b) for a in movies for b in movies if a < b and people_of[a] & people_of[b])
    rows = _run(real_graph, "connecting_people", movie_a=a, movie_b=b, limit=1000)
    assert rows and all(r["hops"] == 1 and len(r["people"]) == 1 for r in rows)
    got = {n["nconst"] for r in rows for n in r["path"].nodes if "Person" in n.labels}
    assert got == people_of[a] & people_of[b]
    unlinked = next(m for m in tables["Movie"].column("movie_id").to_pylist() if m not in people_of)
    assert _run(real_graph, "connecting_people", movie_a=a, movie_b=unlinked) == []


ALSO_RATED_SQL = """
SELECT dst AS movie_id, count(DISTINCT src) AS users, avg(rating) AS avg_rating
FROM RATED
WHERE rating >= $min_rating AND dst <> $movie_id
  AND src IN (SELECT src FROM RATED WHERE dst = $movie_id AND rating >= $min_rating)
GROUP BY dst ORDER BY users DESC, avg_rating DESC, movie_id LIMIT $limit
"""


@real_sample
@pytest.mark.parametrize(("movie_id", "min_rating"), [(1, 4.0), (318, 4.5)])
def test_also_rated(real_graph: neo4j.Driver, duck, movie_id: int, min_rating: float) -> None:
    params = {"movie_id": movie_id, "min_rating": min_rating, "limit": 10}
    expected = duck.execute(ALSO_RATED_SQL, params).fetchall()
    rows = _run(real_graph, "also_rated", **params)
    assert len(rows) == 10
    assert [(r["movie_id"], r["users"]) for r in rows] == [(m, u) for m, u, _ in expected]
    assert [r["avg_rating"] for r in rows] == pytest.approx([a for _, _, a in expected])


FILMOGRAPHY_SQL = """
SELECT d.dst AS movie_id, count(r.src) AS ratings, avg(r.rating) AS avg_rating
FROM DIRECTED d LEFT JOIN RATED r ON r.dst = d.dst
WHERE d.src = $nconst GROUP BY d.dst ORDER BY d.dst
"""


@real_sample
def test_director_filmography(real_graph: neo4j.Driver, tables, duck) -> None:
    director, films = Counter(tables["DIRECTED"].column("src").to_pylist()).most_common(1)[0]
    expected = duck.execute(FILMOGRAPHY_SQL, {"nconst": director}).fetchall()
    rows = _run(real_graph, "director_filmography", director=director)
    assert len(rows) == films == len(expected)
    assert sorted((r["movie_id"], r["ratings"]) for r in rows) == [(m, n) for m, n, _ in expected]
    by_movie = {r["movie_id"]: r["avg_rating"] for r in rows}
    assert [by_movie[m] for m, _, _ in expected] == pytest.approx([a for _, _, a in expected], nan_ok=True)
    years = [r["year"] for r in rows]
    assert years == sorted(years, key=lambda y: (y is None, y))
    name = rows[0]["director"]
    same_name = tables["Person"].filter(pc.equal(tables["Person"].column("name"), name))
    if same_name.num_rows == 1:
        assert _run(real_graph, "director_filmography", director=name) == rows


GENRE_PAIRS_SQL = """
SELECT a.dst AS genre_a, b.dst AS genre_b, count(*) AS movies
FROM IN_GENRE a JOIN IN_GENRE b ON a.src = b.src AND a.dst < b.dst
GROUP BY 1, 2 ORDER BY movies DESC, genre_a, genre_b LIMIT 20
"""


@real_sample
def test_genre_cooccurrence(real_graph: neo4j.Driver, duck) -> None:
    rows = _run(real_graph, "genre_cooccurrence", limit=20)
    assert [(r["genre_a"], r["genre_b"], r["movies"]) for r in rows] == duck.execute(GENRE_PAIRS_SQL).fetchall()
    assert rows[0]["movies"] > 1000  # Comedy + Drama, Comedy + Romance, ... on ml-latest-small


@real_sample
def test_cypher_cli(real_graph: neo4j.Driver, capsys: pytest.CaptureFixture[str]) -> None:
    from cinegraph.flows.cli import main

    assert main(["cypher", "genre_cooccurrence", "--param", "limit=3"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split(" | ") == ["genre_a", "genre_b", "movies"] and out[-1] == "(3 rows)"
    assert main(["cypher", "also_rated", "--param", "film=1"]) == 2
    assert "unknown parameter(s) ['film']" in capsys.readouterr().err


@real_sample
@pytest.mark.parametrize("name", sorted(set(available_queries()) - {"explain_recommendation", "similar_movies"}))
def test_declared_defaults_are_a_working_example(real_graph: neo4j.Driver, name: str) -> None:
    """The :param values in each file's header answer with rows on the real sample (the queries
    over training results are exercised in test_results.py)."""
    assert _run(real_graph, name)


@real_sample
def test_queries_run_read_only(real_graph: neo4j.Driver, tmp_path: Path) -> None:
    path = tmp_path / "write.cypher"
    path.write_text("// :param title => 'x'\nCREATE (m:Movie {movie_id: -1, title: $title}) RETURN m\n")
    with pytest.raises(CinegraphError, match=r"write.cypher: .*(?i:read)"):
        run_query(real_graph, load_query(path))
    records, _, _ = real_graph.execute_query(
        f"MATCH (m:{schema.MOVIE.label} {{{schema.MOVIE.key}: -1}}) RETURN count(m) AS n"
    )
    assert records[0]["n"] == 0
