"""Snapshot SQL and files on hand-built staged tables and a hand-made match_decisions."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from cinegraph import schema
from cinegraph.etl import snapshot, warehouse
from cinegraph.graph_store.snapshot_io import read_manifest, read_snapshot

STAGED = """
CREATE TABLE stg_ml_movies AS SELECT * FROM (VALUES
  (1::BIGINT, 'Great Escape, The (1963)', 'Great Escape, The', 1963, ['Adventure', 'War']),
  (2, 'Toy Story (1995)', 'Toy Story', 1995, ['Animation', 'Comedy']),
  (3, 'Unmatched (2001)', 'Unmatched', 2001, ['Comedy'])) t(movie_id, title, name, year, genres);
CREATE TABLE stg_ml_ratings AS SELECT * FROM (VALUES
  (10::BIGINT, 1::BIGINT, 4.5::FLOAT, 100::BIGINT), (10, 2, 3.0, 101), (11, 3, 0.5, 102))
  t(user_id, movie_id, rating, timestamp);
CREATE TABLE stg_ml_tags AS SELECT * FROM (VALUES (12::BIGINT, 1::BIGINT, 'bikes', 103::BIGINT))
  t(user_id, movie_id, tag, timestamp);
CREATE TABLE stg_imdb_titles AS SELECT * FROM (VALUES
  ('tt01', 'movie', 'The Great Escape', 'The Great Escape', false, 1963, 172, ['Adventure']),
  ('tt02', 'movie', 'Toy Story', 'Toy Story', false, 1995, 81, ['Animation']),
  ('tt03', 'movie', 'Other', 'Other', false, 2001, 90, ['Drama']))
  t(tconst, title_type, primary_title, original_title, is_adult, start_year, runtime_minutes, genres);
CREATE TABLE stg_imdb_ratings AS SELECT * FROM (VALUES ('tt01', 8.2::DOUBLE, 250000::BIGINT))
  t(tconst, average_rating, num_votes);
CREATE TABLE stg_imdb_principals AS SELECT * FROM (VALUES
  ('tt01', 1, 'nm1', 'actor', ['Hilts']), ('tt01', 4, 'nm1', 'actor', ['Hilts (voice)']),
  ('tt01', 2, 'nm2', 'director', NULL), ('tt01', 3, 'nm3', 'production_designer', NULL),
  ('tt02', 1, 'nm4', 'self', ['Himself']), ('tt02', 2, 'nm9', 'actor', ['No name row']),
  ('tt03', 1, 'nm5', 'actor', ['Other film']))
  t(tconst, ordering, nconst, category, characters);
CREATE TABLE stg_imdb_crew AS SELECT * FROM (VALUES
  ('tt01', 'nm2', 'directors'), ('tt01', 'nm6', 'writers'), ('tt03', 'nm5', 'writers'))
  t(tconst, nconst, role);
CREATE TABLE stg_imdb_names AS SELECT * FROM (VALUES
  ('nm1', 'Steve McQueen', 1930, 1980, ['actor'], ['tt01', 'tt03']),
  ('nm2', 'John Sturges', 1910, 1992, ['director'], ['tt01']),
  ('nm3', 'Designer', NULL, NULL, NULL, NULL),
  ('nm4', 'Tom Hanks', 1956, NULL, ['actor'], ['tt02']),
  ('nm5', 'Other Person', NULL, NULL, NULL, ['tt03']),
  ('nm6', 'Writer', NULL, NULL, ['writer'], NULL),
  ('nm7', 'Known For Only', NULL, NULL, NULL, ['tt02']))
  t(nconst, primary_name, birth_year, death_year, professions, known_for);
CREATE TABLE match_decisions AS SELECT * FROM (VALUES
  (1::BIGINT, 'tt01', 100.0, NULL::DOUBLE, 'link'), (2, 'tt02', 97.5, 60.0, 'fuzzy'),
  (3, NULL, NULL, NULL, 'none')) t(movie_id, tconst, score, runner_up_score, method);
"""


@pytest.fixture
def con(tmp_path: Path) -> duckdb.DuckDBPyConnection:
    c = warehouse.connect(tmp_path / "warehouse.duckdb", memory_limit="1GB")
    c.execute(STAGED)
    yield c
    c.close()


def write(con: duckdb.DuckDBPyConnection, out: Path) -> Path:
    path, _ = snapshot.write_snapshot(
        con, out, sources=[{"file": "x", "rows": 1}], rejects={"ratings.csv": 2}, match={"mode": "links"}
    )
    return path


def rows(tables: dict, name: str) -> list[tuple]:
    return [tuple(r.values()) for r in tables[name].to_pylist()]


def test_snapshot_tables(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    path = write(con, tmp_path / "out")
    assert path == tmp_path / "out" / "snapshot"
    t = read_snapshot(path)
    assert {k: v.num_rows for k, v in t.items()} == {
        "User": 3,
        "Movie": 3,
        "Genre": 4,
        "Person": 6,
        "RATED": 3,
        "TAGGED": 1,
        "IN_GENRE": 5,
        "ACTED_IN": 2,
        "DIRECTED": 1,
        "WROTE": 1,
        "PRODUCED": 0,
        "COMPOSED": 0,
        "EDITED": 0,
        "PHOTOGRAPHED": 0,
        "WORKED_ON": 1,
        "KNOWN_FOR": 4,
    }
    assert rows(t, "Movie") == [
        (1, "Great Escape, The", 1963, "tt01", "The Great Escape", "movie", 1963, 172, ["Adventure"], 8.2, 250000),
        (2, "Toy Story", 1995, "tt02", "Toy Story", "movie", 1995, 81, ["Animation"], None, None),
        (3, "Unmatched", 2001, None, None, None, None, None, None, None, None),
    ]
    # Duplicate billing collapses to the first; "self" acts; no edge to a person without a name
    # row (nm9) nor to an unmatched title (tt03).
    assert rows(t, "ACTED_IN") == [("nm1", 1, ["Hilts"], 1), ("nm4", 2, ["Himself"], 1)]
    assert rows(t, "DIRECTED") == [("nm2", 1)]  # principals and crew agree: one edge
    assert rows(t, "WROTE") == [("nm6", 1)]
    assert rows(t, "WORKED_ON") == [("nm3", 1, "production_designer")]
    assert rows(t, "KNOWN_FOR") == [("nm1", 1), ("nm2", 1), ("nm4", 2), ("nm7", 2)]
    assert t["Person"].column("nconst").to_pylist() == ["nm1", "nm2", "nm3", "nm4", "nm6", "nm7"]
    assert rows(t, "Person")[0] == ("nm1", "Steve McQueen", 1930, 1980, ["actor"])
    assert t["Genre"].column("name").to_pylist() == ["Adventure", "Animation", "Comedy", "War"]
    assert t["User"].column("user_id").to_pylist() == [10, 11, 12]
    manifest = read_manifest(path)
    assert manifest["counts"]["nodes"] == {k: t[k].num_rows for k in ("User", "Movie", "Genre", "Person")}
    assert manifest["rejects"] == {"ratings.csv": 2} and manifest["schema_version"] == schema.SCHEMA_VERSION
    assert pq.read_table(path / schema.MATCHES_FILE).column("method").to_pylist() == ["link", "fuzzy", "none"]


def test_users_table_gives_demographics(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    con.execute(
        "CREATE TABLE stg_ml_users AS SELECT * FROM (VALUES (10::BIGINT, 'F', 25, 'writer', '02139'), "
        "(11, 'M', 35, 'other', '10001')) t(user_id, gender, age, occupation, zip_code)"
    )
    t = read_snapshot(write(con, tmp_path / "out"), node_types=(schema.USER,), edge_types=())
    assert rows(t, "User") == [(10, "F", 25, "writer", "02139"), (11, "M", 35, "other", "10001")]


def test_rerun_is_byte_identical(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    first = {p.relative_to(tmp_path / "a"): p.read_bytes() for p in write(con, tmp_path / "a").rglob("*.parquet")}
    path = write(con, tmp_path / "b")
    second = {p.relative_to(tmp_path / "b"): p.read_bytes() for p in path.rglob("*.parquet")}
    assert len(first) == 1 + len(schema.NODE_TYPES) + len(schema.EDGE_TYPES)
    assert first == second


def test_failed_run_keeps_previous_snapshot(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    out = tmp_path / "out"
    path = write(con, out)
    before = {p: p.read_bytes() for p in path.rglob("*") if p.is_file()}
    con.execute("DROP TABLE match_decisions")
    with pytest.raises(duckdb.CatalogException, match="match_decisions"):
        write(con, out)
    assert {p: p.read_bytes() for p in path.rglob("*") if p.is_file()} == before
    assert sorted(p.name for p in out.iterdir()) == ["snapshot", "snapshot.versions"]
    assert [v.name for v in (out / "snapshot.versions").iterdir()] == [path.resolve().name]


def test_swap_replaces_a_previous_snapshot(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    out = tmp_path / "out"
    write(con, out)
    con.execute("DELETE FROM stg_ml_ratings WHERE user_id = 11")
    path = write(con, out)
    assert json.loads((path / schema.MANIFEST_FILE).read_text())["counts"]["edges"]["RATED"] == 2
    assert sorted(p.name for p in out.iterdir()) == ["snapshot", "snapshot.versions"]
    # The new version and the one before it (a reader may still be on it); a third run drops the first.
    first = sorted((out / "snapshot.versions").iterdir())[0]
    assert len(list((out / "snapshot.versions").iterdir())) == 2
    write(con, out)
    assert len(list((out / "snapshot.versions").iterdir())) == 2 and not first.exists()


def test_select_checks_column_count() -> None:
    with pytest.raises(ValueError, match="snap_genre"):
        snapshot._select(schema.GENRE, ["a", "b"])


def test_values_too_long_to_index_are_cut_on_a_character_boundary(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    con.execute("UPDATE stg_ml_movies SET name = ? WHERE movie_id = 3", ["🎬" * 9_000])  # 36,000 bytes
    con.execute("UPDATE stg_imdb_names SET primary_name = ? WHERE nconst = 'nm1'", ["x" * 40_000])
    path = write(con, tmp_path / "out")
    t = read_snapshot(path, node_types=(schema.MOVIE, schema.PERSON), edge_types=())
    limit = schema.INDEX_MAX_BYTES["TEXT"]
    assert t["Movie"].column("title").to_pylist()[2] == "🎬" * (limit // 4)  # 32,764 bytes: whole characters
    assert t["Person"].column("name").to_pylist()[0] == "x" * limit
    assert t["Movie"].column("title").to_pylist()[:2] == ["Great Escape, The", "Toy Story"]
    assert read_manifest(path)["truncated"] == {"Movie.title": 1, "Person.name": 1}
