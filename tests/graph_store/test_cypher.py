"""Query files: parameter handling, schema agreement, and each query on the real sample in Neo4j."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from graph_store import schema
from graph_store.cypher import (
    QUERIES_DIR,
    available_queries,
    format_table,
    load_query,
    parse_params,
    parse_value,
    resolve_params,
)
from graph_store.errors import CinegraphError

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
    rels = {
        rel
        for group in re.findall(r"\[\s*\w*\s*:\s*([A-Za-z_|]+)", code)
        for rel in group.split("|")
    }
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
    assert indexes <= {schema.MOVIE_EMBEDDING_INDEX}


def test_schema_check_catches_unknown_names() -> None:
    labels, rels, props = _used_names(
        "MATCH (a:Film)-[:STARRED|RATED*..2]-(b) WHERE b:Studio RETURN a.budget"
    )
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
    [("42", 42), ("-3", -3), ("4.5", 4.5), ("1e3", 1000.0), ("null", None), ("true", True),
     ('"42"', "42"), ("'nm0000005'", "nm0000005"), ("Ingmar Bergman", "Ingmar Bergman"),
     ("nm0000005", "nm0000005")],
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
