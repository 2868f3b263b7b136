"""graph_store/bulk_import.py on a private server (it takes its databases offline and back): the offline import
makes the same graph as the transactional loader, hostile strings included, and a later sync of
the same snapshot writes nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest
from neo4j import Driver

from cinegraph import schema
from cinegraph.errors import CinegraphError
from cinegraph.graph_store import server
from cinegraph.graph_store.bulk_import import bulk_load, database_is_empty, serves
from cinegraph.graph_store.connection import Neo4jSettings, open_driver
from cinegraph.graph_store.load import load_snapshot
from cinegraph.graph_store.snapshot_io import read_snapshot
from tests.graph_store.neo4j_testing import (
    edge_table,
    expected_rows,
    graph_rows,
    node_table,
    private_settings,
    small_tables,
    wipe,
    write_test_snapshot,
)

pytestmark = pytest.mark.neo4j
CLI = [sys.executable, "-m", "cinegraph.flows.cli"]

HOSTILE = [
    'say "cheese", then leave',  # quote and delimiter
    "line one\nline two\r\nline three\r",  # every line break
    "ends with a backslash\\",
    '\\"escaped\\" the wrong way',
    "  padded  ",
    "",  # an empty string is a value, not a null
    "漢字 🎬 é",
    "semi;colon|pipe\ttab",
    "unit\x1fseparator",  # the importer's array delimiter
]


def _hostile_tables() -> dict[str, pa.Table]:
    tables = small_tables()
    movies = tables["Movie"].to_pylist()
    for i, text in enumerate(HOSTILE):
        movies.append(
            {
                "movie_id": 100 + i,
                "title": text,
                "imdb_title": text,
                "year": 2000 + i,
                "imdb_rating": 0.1 * (i + 1),
                "imdb_genres": [text, "x"],
            }
        )
    movies += [
        {"movie_id": 200, "title": "one empty genre", "imdb_genres": [""]},
        {"movie_id": 201, "title": "two empty genres", "imdb_genres": ["", ""]},
        {"movie_id": 202, "title": "a delimiter in a list", "imdb_genres": ["a\x1fb"]},
        {"movie_id": 203, "title": "no genres", "imdb_genres": []},
    ]
    tables["Movie"] = node_table(schema.MOVIE, movies)
    tables["Genre"] = node_table(schema.GENRE, [*tables["Genre"].to_pylist(), {"name": 'Sci-Fi, "new"\nwave'}])
    tables["IN_GENRE"] = edge_table(
        schema.IN_GENRE, [*tables["IN_GENRE"].to_pylist(), {"src": 100, "dst": 'Sci-Fi, "new"\nwave'}]
    )
    tags = tables["TAGGED"].to_pylist()
    tags += [{"src": 1, "dst": 100 + i, "tag": text, "timestamp": i} for i, text in enumerate(HOSTILE)]
    tables["TAGGED"] = edge_table(schema.TAGGED, tags)
    rated = tables["RATED"].to_pylist()
    rated += [{"src": 2, "dst": 100 + i, "rating": 0.1 * (i + 1), "timestamp": i} for i in range(len(HOSTILE))]
    tables["RATED"] = edge_table(schema.RATED, rated)  # float32 values like 0.1 must widen exactly
    acted = tables["ACTED_IN"].to_pylist()
    acted += [
        {"src": "nm0000001", "dst": 200, "characters": [""], "ordering": 1},
        {"src": "nm0000001", "dst": 201, "characters": [], "ordering": 2},
        {"src": "nm0000001", "dst": 202, "characters": HOSTILE, "ordering": 3},
        {"src": "nm0000001", "dst": 100, "characters": ["line one\nline two", "x"], "ordering": 4},  # CSV can carry it
    ]
    tables["ACTED_IN"] = edge_table(schema.ACTED_IN, acted)
    return tables


def _transaction_logs(home: Path) -> dict[str, int]:
    _, logs = server.database_dirs(home, "neo4j")
    return {p.name: p.stat().st_size for p in sorted(logs.iterdir())}


@pytest.mark.slow  # two JVM starts: the importer and the restarted server
def test_bulk_load_equals_the_transactional_load(private_home: Path, tmp_path: Path) -> None:
    tables = _hostile_tables()
    # an earlier copy of a rating repeats its identity: both loaders keep the last row of the file
    repeated = [{"src": 2, "dst": 100, "rating": 5.0, "timestamp": 99}, *tables["RATED"].to_pylist()]
    snap = write_test_snapshot(tmp_path / "hostile", tables | {"RATED": edge_table(schema.RATED, repeated)})
    settings = private_settings(private_home)
    with open_driver(settings) as driver:
        wipe(driver)
    assert serves(private_home, settings.uri)
    pid = server.status(private_home).pid

    report = bulk_load(lambda: open_driver(private_settings(private_home)), snap, private_home, progress=False)
    assert server.status(private_home).running and server.status(private_home).pid == pid  # same JVM
    assert report.phases.keys() == {"validate", "csv", "import", "reopen", "schema", "patch"}
    assert report.relationships == sum(tables[et.rel].num_rows for et in schema.EDGE_TYPES if et.rel in tables)
    # [], [""] and lists holding U+001F have no CSV form: Movie 30, 108, 200, 202, 203; three ACTED_IN
    assert report.patched == {"Movie": 5, "ACTED_IN": 3}
    assert {rel: s.collapsed for rel, s in report.load.edges.items() if s.collapsed} == {"RATED": 1}
    with open_driver(private_settings(private_home)) as driver:
        assert graph_rows(driver) == expected_rows(tables)
        records = driver.execute_query("SHOW CONSTRAINTS YIELD name", database_="neo4j").records
        constraints = {r["name"] for r in records}
        assert {f"{nt.label.lower()}_{nt.key}" for nt in schema.NODE_TYPES} <= constraints
        snapshot_node = driver.execute_query(
            f"MATCH (s:{schema.SNAPSHOT.label}) RETURN elementId(s) AS id, properties(s) AS p", database_="neo4j"
        ).records
        assert len(snapshot_node) == 1 and snapshot_node[0]["p"]["id"] == report.load.snapshot_id

        logs = _transaction_logs(private_home)
        refresh = load_snapshot(driver, snap, progress=False)  # the import recorded what it holds
        assert all(s.skipped for s in [*refresh.nodes.values(), *refresh.edges.values()])
        again = load_snapshot(driver, snap, progress=False, verify=True)  # the transactional loader sees the same graph
        assert all(s.upserted == s.deleted == 0 for s in [*again.nodes.values(), *again.edges.values()])
        assert _transaction_logs(private_home) == logs  # nothing written, the Snapshot node included
        after = driver.execute_query(
            f"MATCH (s:{schema.SNAPSHOT.label}) RETURN elementId(s) AS id, properties(s) AS p", database_="neo4j"
        ).records
        assert [r.data() for r in after] == [r.data() for r in snapshot_node]

        assert not database_is_empty(driver)
    with pytest.raises(CinegraphError, match="not empty"):
        bulk_load(lambda: open_driver(private_settings(private_home)), snap, private_home, progress=False)
    assert server.status(private_home).running


@pytest.mark.slow
def test_bulk_load_refuses_an_invalid_snapshot_before_stopping_anything(private_home: Path, tmp_path: Path) -> None:
    tables = small_tables()
    tables["RATED"] = edge_table(schema.RATED, [{"src": 99, "dst": 10, "rating": 1.0, "timestamp": 1}])
    snap = write_test_snapshot(tmp_path / "bad", tables)
    pid, log_size = server.status(private_home).pid, (private_home / server.LOG_FILE).stat().st_size
    with pytest.raises(CinegraphError, match=r"edges/RATED\.parquet: 1 src values not in nodes/User\.parquet"):
        bulk_load(lambda: open_driver(private_settings(private_home)), snap, private_home, progress=False)
    assert server.status(private_home).pid == pid
    assert b"OFFLINE" not in (private_home / server.LOG_FILE).read_bytes()[log_size:]  # never went offline


@pytest.mark.slow
@pytest.mark.realdata
def test_real_snapshot_bulk_load_then_sync_is_a_no_op(private_home: Path, real_snapshot: Path) -> None:
    tables = read_snapshot(real_snapshot)
    with open_driver(private_settings(private_home)) as driver:
        wipe(driver)
    bulk = bulk_load(lambda: open_driver(private_settings(private_home)), real_snapshot, private_home, progress=False)
    assert bulk.relationships == sum(tables[et.rel].num_rows for et in schema.EDGE_TYPES)
    with open_driver(private_settings(private_home)) as driver:
        assert graph_rows(driver) == expected_rows(tables)
        sync = load_snapshot(driver, real_snapshot, progress=False, verify=True)
        assert all(s.upserted == s.deleted == 0 for s in [*sync.nodes.values(), *sync.edges.values()])
        wipe(driver)


def test_cli_initial_needs_the_local_empty_server(graph: Driver, neo4j_settings: Neo4jSettings, tmp_path: Path) -> None:
    """`cinegraph load --initial` says why it cannot bulk-load, in one line, and writes nothing."""
    snap = write_test_snapshot(tmp_path / "snapshot", small_tables())
    env = {**os.environ, "NEO4J_URI": neo4j_settings.uri, "NEO4J_PASSWORD": neo4j_settings.password}
    run = subprocess.run(
        [*CLI, "load", "--snapshot", str(snap), "--initial", "--home", str(tmp_path / "elsewhere")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert run.returncode == 2 and "Traceback" not in run.stderr
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith("cinegraph load: error: --initial: ") and "is not the local server" in last
    assert database_is_empty(graph)
