"""Neo4j fixtures: the shared test server (NEO4J_* from `make test`), a wiped database per test, a
private server for tests that stop or kill it. Snapshot builders live in ``neo4j_testing.py``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from neo4j import Driver

from graph_store import server
from graph_store.connection import Neo4jSettings, open_driver, settings_from_env
from graph_store.errors import CinegraphError
from tests.graph_store.neo4j_testing import small_tables, start_private, wipe, write_test_snapshot


@pytest.fixture(scope="session")
def neo4j_settings() -> Neo4jSettings:
    try:
        return settings_from_env()
    except CinegraphError:
        pytest.skip("NEO4J_PASSWORD not set: `make test` starts Neo4j and exports NEO4J_URI/USER/PASSWORD")


@pytest.fixture(scope="session")
def neo4j_driver(neo4j_settings: Neo4jSettings) -> Iterator[Driver]:
    with open_driver(neo4j_settings) as driver:
        yield driver


@pytest.fixture
def graph(neo4j_driver: Driver) -> Iterator[Driver]:
    """The shared server's driver on an empty database, emptied again afterwards for the next test."""
    wipe(neo4j_driver)
    yield neo4j_driver
    wipe(neo4j_driver)


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
