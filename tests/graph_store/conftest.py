"""Neo4j fixtures of the graph_store tests: a private server for tests that stop or kill it, and the
real sample loaded into the shared test server (``neo4j_driver`` and ``graph`` live in
tests/conftest.py; snapshot builders in ``neo4j_testing.py``).

``real_graph`` (module scope) serves the query, export and results tests. A module finds the sample
already loaded when the graph's ``(:Snapshot)`` node says so, and loads it otherwise (another module
may have wiped it); each module removes what it wrote, and the database is wiped when the session
ends, so the shared server is left empty.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from neo4j import Driver

from cinegraph.graph_store import server
from cinegraph.graph_store.load import SNAPSHOT_READ, load_snapshot, snapshot_identity
from cinegraph.graph_store.results import RUN_ID_INDEX
from cinegraph.schema import MOVIE, MOVIE_EMBEDDING_INDEX, MOVIE_EMBEDDING_PROPERTY, RECOMMENDED
from tests.graph_store.neo4j_testing import small_tables, start_private, wipe, write_test_snapshot


@pytest.fixture(scope="session")
def private_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The home of a server of our own (own port and password) for tests that stop, kill or lock
    it out. Tests that restart it pick a new port, so ask ``server.status(home)`` for the current one."""
    home = tmp_path_factory.mktemp("neo4j-private")
    start_private(home)
    yield home
    server.stop(home)


@pytest.fixture
def small_snapshot(tmp_path: Path) -> Path:
    return write_test_snapshot(tmp_path / "snapshot", small_tables())


def _remove_results(driver: Driver) -> None:
    """Undo what the results writer adds on top of a snapshot."""
    driver.execute_query(f"MATCH ()-[r:{RECOMMENDED.rel}]->() DELETE r", database_="neo4j")
    driver.execute_query(
        f"MATCH (m:{MOVIE.label}) WHERE m.{MOVIE_EMBEDDING_PROPERTY} IS NOT NULL REMOVE m.{MOVIE_EMBEDDING_PROPERTY}",
        database_="neo4j",
    )
    for name in (MOVIE_EMBEDDING_INDEX, RUN_ID_INDEX):
        driver.execute_query(f"DROP INDEX {name} IF EXISTS", database_="neo4j")


@pytest.fixture(scope="session")
def _wiped_at_session_end(neo4j_driver: Driver) -> Iterator[None]:
    yield
    _remove_results(neo4j_driver)
    wipe(neo4j_driver)


@pytest.fixture(scope="module")
def real_graph(neo4j_driver: Driver, real_snapshot: Path, _wiped_at_session_end: None) -> Iterator[Driver]:
    """The shared server's driver holding exactly the real snapshot."""
    _, sha = snapshot_identity(real_snapshot)
    held = neo4j_driver.execute_query(SNAPSHOT_READ, database_="neo4j").records
    if not (len(held) == 1 and held[0]["sha256"] == sha):
        wipe(neo4j_driver)
        load_snapshot(neo4j_driver, real_snapshot, progress=False)
    try:
        yield neo4j_driver
    finally:
        _remove_results(neo4j_driver)
