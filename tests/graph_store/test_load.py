"""graph_store/load.py against the real test server: exact, idempotent, incremental, resumable."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import threading
import time
from pathlib import Path

import pyarrow as pa
import pytest
from neo4j import Driver

from cinegraph import schema
from cinegraph.errors import CinegraphError
from cinegraph.graph_store import server
from cinegraph.graph_store.connection import open_driver
from cinegraph.graph_store.load import load_snapshot
from cinegraph.graph_store.snapshot_io import read_snapshot
from tests.graph_store.neo4j_testing import (
    edge_table,
    expected_rows,
    graph_rows,
    node_table,
    private_settings,
    small_tables,
    start_private,
    wipe,
    write_test_snapshot,
)

pytestmark = pytest.mark.neo4j


def test_load_matches_snapshot_exactly(graph: Driver, small_snapshot: Path) -> None:
    report = load_snapshot(graph, small_snapshot, batch_size=2, progress=False)
    assert graph_rows(graph) == expected_rows(small_tables())
    tables = small_tables()
    for nt in schema.NODE_TYPES:
        assert report.nodes[nt.label].total == tables[nt.label].num_rows
    assert report.edges["TAGGED"].total == 4 and report.edges["ACTED_IN"].total == 2
    assert report.edges["WORKED_ON"].total == 2 and report.edges["PRODUCED"].total == 0
    assert "RATED" in report.summary()


def test_constraints_and_indexes_exist(graph: Driver, small_snapshot: Path) -> None:
    load_snapshot(graph, small_snapshot, progress=False)
    constraints = {r["name"] for r in graph.execute_query("SHOW CONSTRAINTS YIELD name", database_="neo4j").records}
    index_records = graph.execute_query("SHOW INDEXES YIELD name, type", database_="neo4j").records
    indexes = {r["name"]: r["type"] for r in index_records}
    for nt in (*schema.NODE_TYPES, schema.SNAPSHOT):
        assert f"{nt.label.lower()}_{nt.key}" in constraints
    assert indexes["movie_title"] == "TEXT" and indexes["movie_tconst"] == "RANGE"


def test_snapshot_node_records_the_manifest(graph: Driver, small_snapshot: Path) -> None:
    report = load_snapshot(graph, small_snapshot, progress=False)
    query = f"MATCH (s:{schema.SNAPSHOT.label}) RETURN properties(s) AS p"
    records = graph.execute_query(query, database_="neo4j").records
    assert len(records) == 1
    props = records[0]["p"]
    manifest = json.loads((small_snapshot / schema.MANIFEST_FILE).read_text())
    assert set(props) == set(schema.SNAPSHOT.columns)
    assert props["sha256"] == hashlib.sha256((small_snapshot / schema.MANIFEST_FILE).read_bytes()).hexdigest()
    assert props[schema.SNAPSHOT.key] == report.snapshot_id == props["sha256"][:16]
    assert json.loads(props["counts"]) == manifest["counts"]
    assert props["schema_version"] == schema.SCHEMA_VERSION and props["created_at"] == manifest["created_at"]


@pytest.mark.parametrize("verify", [False, True])
def test_second_load_is_a_no_op(graph: Driver, small_snapshot: Path, verify: bool) -> None:
    load_snapshot(graph, small_snapshot, progress=False)
    before = graph_rows(graph)
    again = load_snapshot(graph, small_snapshot, progress=False, verify=verify)
    assert graph_rows(graph) == before
    syncs = [*again.nodes.values(), *again.edges.values()]
    assert all(s.upserted == 0 and s.deleted == 0 and s.skipped != verify for s in syncs)
    assert again.edges["TAGGED"].unchanged == 4


def test_reload_of_the_held_snapshot_writes_nothing(private_home: Path, small_snapshot: Path) -> None:
    """Not even the Snapshot node: the database's transaction logs do not grow."""
    _, logs = server.database_dirs(private_home, "neo4j")
    with open_driver(private_settings(private_home)) as driver:
        wipe(driver)
        load_snapshot(driver, small_snapshot, progress=False)
        before = {p.name: p.stat().st_size for p in logs.iterdir()}
        node = f"MATCH (s:{schema.SNAPSHOT.label}) RETURN elementId(s) AS id, properties(s) AS p"
        held = [r.data() for r in driver.execute_query(node, database_="neo4j").records]
        load_snapshot(driver, small_snapshot, progress=False)
        assert {p.name: p.stat().st_size for p in logs.iterdir()} == before
        assert [r.data() for r in driver.execute_query(node, database_="neo4j").records] == held
        wipe(driver)


def test_newer_snapshot_upserts_and_deletes(graph: Driver, small_snapshot: Path, tmp_path: Path) -> None:
    load_snapshot(graph, small_snapshot, progress=False)
    newer = small_tables()
    movies = newer["Movie"].to_pylist()
    movies[1] |= {"title": "Heat (director's cut)", "year": None, "runtime": 170}  # changed, one prop removed
    movies[2] |= {"imdb_genres": ["Drama", "Sci-Fi"]}
    movies.append({"movie_id": 50, "title": "M", "year": 1931})  # new
    newer["Movie"] = node_table(schema.MOVIE, movies)
    newer["User"] = node_table(schema.USER, [u for u in newer["User"].to_pylist() if u["user_id"] != 2])
    rated = [r for r in newer["RATED"].to_pylist() if r["src"] != 2]
    rated[0]["rating"] = 1.5
    rated.append({"src": 3, "dst": 50, "rating": 4.0, "timestamp": 500})
    newer["RATED"] = edge_table(schema.RATED, rated)
    newer["TAGGED"] = edge_table(schema.TAGGED, newer["TAGGED"].to_pylist()[:2])  # one "scary" and "silent" gone
    newer["WORKED_ON"] = edge_table(schema.WORKED_ON, newer["WORKED_ON"].to_pylist()[1:])
    newer["IN_GENRE"] = edge_table(schema.IN_GENRE, [*newer["IN_GENRE"].to_pylist(), {"src": 50, "dst": "Crime"}])
    snap = write_test_snapshot(tmp_path / "newer", newer, created_at="2026-02-01T00:00:00Z")

    report = load_snapshot(graph, snap, batch_size=1, progress=False)
    assert graph_rows(graph) == expected_rows(newer)
    assert {k for k, s in [*report.nodes.items(), *report.edges.items()] if not s.skipped} == {
        "Movie",
        "User",
        "RATED",
        "TAGGED",
        "WORKED_ON",
        "IN_GENRE",
    }
    assert (report.nodes["Movie"].upserted, report.nodes["Movie"].unchanged) == (3, 2)
    assert (report.nodes["User"].deleted, report.edges["RATED"].deleted) == (1, 1)
    assert (report.edges["RATED"].upserted, report.edges["TAGGED"].deleted) == (2, 2)
    assert report.edges["KNOWN_FOR"].unchanged == 2 and report.edges["KNOWN_FOR"].upserted == 0
    totals = {k: s.total for k, s in [*report.nodes.items(), *report.edges.items()]}
    assert totals == {name: newer[name].num_rows if name in newer else 0 for name in totals}  # after the deletes
    created = graph.execute_query(f"MATCH (s:{schema.SNAPSHOT.label}) RETURN s.created_at AS c", database_="neo4j")
    assert [r["c"] for r in created.records] == ["2026-02-01T00:00:00Z"]


def test_load_repairs_drift(graph: Driver, small_snapshot: Path) -> None:
    """Whatever else is in the graph for the schema's types (a stray duplicate, an edited
    property, an unknown node) is brought back to the snapshot."""
    load_snapshot(graph, small_snapshot, progress=False)
    graph.execute_query(
        "MATCH (u:User {user_id: 1})-[r:RATED]->(m:Movie {movie_id: 10}) "
        "CREATE (u)-[:RATED {rating: 1.0, timestamp: 1}]->(m) SET r.rating = 0.0",
        database_="neo4j",
    )
    graph.execute_query("CREATE (:Movie {movie_id: 999, title: 'stray'})", database_="neo4j")
    report = load_snapshot(graph, small_snapshot, progress=False, verify=True)
    assert graph_rows(graph) == expected_rows(small_tables())
    assert report.edges["RATED"].deleted == 1 and report.nodes["Movie"].deleted == 1


def test_refresh_reads_back_only_the_tables_that_changed(graph: Driver, small_snapshot: Path, tmp_path: Path) -> None:
    """A table the graph's snapshot already held is not compared with the graph, so a hand edit of
    it survives a refresh (and is repaired by ``verify``); a changed table is diffed as ever."""
    load_snapshot(graph, small_snapshot, progress=False)
    graph.execute_query("MATCH ()-[r:RATED]->() WITH r LIMIT 1 SET r.rating = 0.0", database_="neo4j")
    newer = small_tables()
    newer["Movie"] = node_table(schema.MOVIE, [*newer["Movie"].to_pylist(), {"movie_id": 50, "title": "M"}])
    snap = write_test_snapshot(tmp_path / "newer", newer, created_at="2026-02-01T00:00:00Z")

    report = load_snapshot(graph, snap, progress=False)
    assert [k for k, s in [*report.nodes.items(), *report.edges.items()] if not s.skipped] == ["Movie"]
    assert report.nodes["Movie"].upserted == 1 and report.edges["RATED"].unchanged == newer["RATED"].num_rows
    assert graph_rows(graph) != expected_rows(newer)  # the hand edit of a skipped table is still there

    repaired = load_snapshot(graph, snap, progress=False, verify=True)
    assert repaired.edges["RATED"].upserted == 1 and not any(s.skipped for s in repaired.edges.values())
    assert graph_rows(graph) == expected_rows(newer)


def test_refuses_unknown_schema_version(graph: Driver, tmp_path: Path) -> None:
    snap = write_test_snapshot(tmp_path / "future", small_tables(), schema_version=schema.SCHEMA_VERSION + 1)
    with pytest.raises(CinegraphError, match="schema_version"):
        load_snapshot(graph, snap, progress=False)
    assert graph.execute_query("MATCH (n) RETURN count(n) AS n", database_="neo4j").records[0]["n"] == 0


def test_refuses_inconsistent_snapshot_before_writing(graph: Driver, tmp_path: Path) -> None:
    tables = small_tables()
    tables["RATED"] = edge_table(
        schema.RATED, [*tables["RATED"].to_pylist(), {"src": 7, "dst": 10, "rating": 1.0, "timestamp": 1}]
    )
    tables["TAGGED"] = edge_table(schema.TAGGED, [{"src": 1, "dst": 10, "tag": None, "timestamp": 1}])
    snap = write_test_snapshot(tmp_path / "bad", tables)
    with pytest.raises(CinegraphError) as info:
        load_snapshot(graph, snap, progress=False)
    message = str(info.value)
    assert "\n" not in message
    assert "edges/RATED.parquet: 1 src values not in nodes/User.parquet" in message
    assert "edges/TAGGED.parquet: 1 null tag values" in message
    assert graph.execute_query("MATCH (n) RETURN count(n) AS n", database_="neo4j").records[0]["n"] == 0


def _synthetic_tables(users: int, movies: int, per_user: int) -> dict[str, pa.Table]:
    return {
        "User": node_table(schema.USER, [{"user_id": u} for u in range(users)]),
        "Movie": node_table(schema.MOVIE, [{"movie_id": m, "title": f"movie {m}"} for m in range(movies)]),
        "RATED": edge_table(
            schema.RATED,
            [
                {"src": u, "dst": (u * 7919 + i) % movies, "rating": (i % 10) / 2 + 0.5, "timestamp": i}
                for u in range(users)
                for i in range(per_user)
            ],
        ),
    }


@pytest.mark.slow
def test_load_resumes_after_the_server_is_killed(private_home: Path, tmp_path: Path) -> None:
    """SIGKILL the server mid-load, restart it (crash recovery), re-run: the graph is exact."""
    tables = _synthetic_tables(users=150, movies=1_000, per_user=80)  # 12,000 ratings
    snap = write_test_snapshot(tmp_path / "snapshot", tables)
    settings = private_settings(private_home)
    with open_driver(settings) as driver:
        wipe(driver)
    errors: list[BaseException] = []

    def run_load() -> None:
        try:
            with open_driver(settings, max_transaction_retry_time=1.0) as driver:
                load_snapshot(driver, snap, batch_size=100, progress=False)
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            errors.append(exc)

    loader = threading.Thread(target=run_load)
    loader.start()
    with open_driver(settings) as watcher:
        deadline = time.monotonic() + 120
        while (
            watcher.execute_query("MATCH ()-[r:RATED]->() RETURN count(r) AS n", database_="neo4j").records[0]["n"]
            < 1_000
        ):
            assert time.monotonic() < deadline and loader.is_alive(), "load ended before the kill"
            time.sleep(0.05)
    running = server.status(private_home)
    assert running.running and running.pid is not None and running.pid > 1
    os.kill(running.pid, signal.SIGKILL)
    deadline = time.monotonic() + 60
    while server.status(private_home).running:  # the kernel takes a moment to tear a JVM down
        assert time.monotonic() < deadline
        time.sleep(0.1)
    loader.join(timeout=120)
    assert not loader.is_alive()
    assert errors and isinstance(errors[0], CinegraphError), errors

    start_private(private_home)
    with open_driver(private_settings(private_home)) as driver:
        partial = driver.execute_query("MATCH ()-[r:RATED]->() RETURN count(r) AS n", database_="neo4j").records
        assert 0 < partial[0]["n"] < 12_000
        assert driver.execute_query(f"MATCH (s:{schema.SNAPSHOT.label}) RETURN s", database_="neo4j").records == []
        report = load_snapshot(driver, snap, batch_size=5_000, progress=False)
        assert not report.edges["RATED"].skipped  # the interrupted load left no table digests to trust
        assert report.edges["RATED"].unchanged == partial[0]["n"]
        assert graph_rows(driver) == expected_rows(tables)
        assert len(driver.execute_query(f"MATCH (s:{schema.SNAPSHOT.label}) RETURN s", database_="neo4j").records) == 1
        wipe(driver)


@pytest.mark.slow
@pytest.mark.realdata
def test_real_snapshot_loads_exactly_and_reloads_as_a_no_op(graph: Driver, real_snapshot: Path) -> None:
    tables = read_snapshot(real_snapshot)
    manifest = json.loads((real_snapshot / schema.MANIFEST_FILE).read_text())
    first = load_snapshot(graph, real_snapshot, progress=False)
    assert graph_rows(graph) == expected_rows(tables)
    assert {k: s.total for k, s in first.nodes.items()} == manifest["counts"]["nodes"]
    assert {k: s.total for k, s in first.edges.items()} == manifest["counts"]["edges"]
    second = load_snapshot(graph, real_snapshot, progress=False, verify=True)
    assert all(s.upserted == s.deleted == 0 for s in [*second.nodes.values(), *second.edges.values()])
