"""Neo4j Browser, served next to Bolt by the embedded server, used in a real headless Chromium:
connect with the password, run a bundled query, see its result."""

from __future__ import annotations

import os
import re
import urllib.request
from pathlib import Path

import pytest
from neo4j import Driver

from cinegraph.graph_store.connection import Neo4jSettings
from cinegraph.graph_store.cypher import load_query
from cinegraph.graph_store.load import load_snapshot
from tests.graph_store.neo4j_testing import small_tables, write_test_snapshot

pytestmark = pytest.mark.neo4j
BROWSER_URL_VAR = "NEO4J_BROWSER_URL"  # `make test` serves the test server's Browser there


@pytest.fixture(scope="module")
def browser_url() -> str:
    url = os.environ.get(BROWSER_URL_VAR)
    if not url:
        pytest.skip(f"{BROWSER_URL_VAR} not set: `make test` starts Neo4j with --browser-port and exports it")
    return url.rstrip("/")


def test_discovery_names_the_bolt_address(browser_url: str, neo4j_settings: Neo4jSettings) -> None:
    """The root answers the Browser's discovery request with the Bolt URI it should connect to."""
    import json

    request = urllib.request.Request(browser_url + "/", headers={"Accept": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as reply:
        discovery = json.load(reply)
    assert discovery["bolt_direct"] == neo4j_settings.uri
    assert discovery["neo4j_version"].startswith("5.")
    for path in ("/browser/../../etc/passwd", "/etc/passwd", "/browser/nope.js"):
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(browser_url + path, timeout=10)
        assert info.value.code == 404


def test_connect_and_run_a_bundled_query(
    chromium, browser_url: str, graph: Driver, neo4j_settings: Neo4jSettings, tmp_path: Path
) -> None:
    load_snapshot(graph, write_test_snapshot(tmp_path / "snapshot", small_tables()), progress=False)
    page = chromium.new_page()
    try:
        page.goto(browser_url + "/browser/")
        page.get_by_test_id("username").fill(neo4j_settings.user)
        page.get_by_test_id("password").fill(neo4j_settings.password)
        page.get_by_test_id("connect").click()
        page.get_by_text("You are connected as user").wait_for(timeout=60_000)

        query = load_query("movie_neighbourhood")  # pasted as a user would: :param lines, then the file
        editor = page.locator(".monaco-editor textarea").first
        for name, value in (("movie_id", 30), ("limit", query.defaults["limit"])):
            editor.click()
            page.keyboard.insert_text(f":param {name} => {value}")
            page.keyboard.press("Enter")
            page.get_by_text(re.compile(rf'"{name}": {value}')).last.wait_for(timeout=30_000)
        editor.click()
        page.keyboard.insert_text(query.text)
        page.keyboard.press("Control+Enter")
        page.get_by_text(re.compile(r"Started streaming 7 records")).wait_for(timeout=60_000)
        page.get_by_text("Brigitte Helm").first.wait_for(timeout=30_000)  # the default table view
        shown = page.inner_text("body")
        assert all(name in shown for name in ("Fritz Lang", "Brigitte Helm", "Sci-Fi", "WORKED_ON"))
    finally:
        page.close()
