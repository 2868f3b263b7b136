"""Shared fixtures: the real-data mirror, a real HTTP server on 127.0.0.1, the shared test Neo4j
(NEO4J_* from `make test`) with a wiped database per test; one torch thread everywhere."""

from __future__ import annotations

import functools
import http.server
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

# Tiny tensors gain nothing from intra-op threads, and on a loaded 2-core machine the threads'
# spin-waits make each step ~10x slower: one thread, set before torch loads, so that the CLI's
# subprocesses and Dask workers inherit it too (a config's num_threads 0 keeps torch's default).
os.environ.setdefault("OMP_NUM_THREADS", "1")

from neo4j import Driver

from cinegraph.errors import CinegraphError
from cinegraph.graph_store.connection import Neo4jSettings, open_driver, settings_from_env
from tests.graph_store.neo4j_testing import wipe

ROOT = Path(__file__).resolve().parents[1]
MIRROR = Path(os.environ.get("CINEGRAPH_MIRROR", ROOT.parent / "shared" / "data" / "mirror"))


@pytest.fixture(scope="session")
def mirror() -> Path:
    """The real MovieLens + IMDb mirror of ../shared/data; tests needing it skip where it is absent."""
    if not (MIRROR / "movielens" / "ml-latest-small.zip").exists():
        pytest.skip(f"real-data mirror not found at {MIRROR} (set CINEGRAPH_MIRROR)")
    return MIRROR


@pytest.fixture(scope="session")
def real_snapshot(mirror: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ETL run once per session on the real mirror (ml-latest-small, links mode); returns
    the snapshot directory (its parent holds warehouse.duckdb and match_review.csv)."""
    from cinegraph.etl.config import EtlConfig
    from cinegraph.etl.match import MatchConfig
    from cinegraph.etl.pipeline import run_etl

    out = tmp_path_factory.mktemp("real-etl")
    config = EtlConfig(mirror=str(mirror), out=out, match=MatchConfig(mode="links"), progress=False)
    return run_etl(config).snapshot


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


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@pytest.fixture
def http_dir(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """Serve a fresh directory over HTTP on 127.0.0.1; yields (base_url, directory)."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root
    finally:
        server.shutdown()
        server.server_close()


CHROMIUM_CANDIDATES = ("chromium", "chromium-browser")  # Debian's package (`.ci/run` installs it)


@pytest.fixture(scope="session")
def chromium() -> Iterator[object]:
    """A real headless Chromium (the system's, driven by Playwright; no browser download). Tests
    of web pages skip with the reason where either is missing."""
    import shutil

    executable = os.environ.get("CHROMIUM") or next(filter(None, map(shutil.which, CHROMIUM_CANDIDATES)), None)
    if executable is None or not os.access(executable, os.X_OK):
        pytest.skip("no Chromium found (apt-get install chromium, or set CHROMIUM=/path/to/chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed (it is in the dev extra)")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable)
        yield browser
        browser.close()
