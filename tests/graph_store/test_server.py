"""graph_store/server.py and connection.py: a real embedded Neo4j started, restarted and refused."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from cinegraph.errors import CinegraphError
from cinegraph.graph_store import server
from cinegraph.graph_store.connection import Neo4jSettings, open_driver, settings_from_env
from tests.graph_store.neo4j_testing import PRIVATE_PASSWORD, free_port, private_settings, start_private

pytestmark = pytest.mark.neo4j
CLI = [sys.executable, "-m", "cinegraph.flows.cli"]


def _one_line(exc: pytest.ExceptionInfo[CinegraphError]) -> str:
    message = str(exc.value)
    assert message and "\n" not in message
    return message


def test_build_is_cached(monkeypatch: pytest.MonkeyPatch) -> None:
    server.build()
    stamp = server.SERVER_DIR / "target" / ".build-stamp"
    built_at = stamp.stat().st_mtime_ns
    monkeypatch.setenv("PATH", "")  # a second build reaching for Maven would now fail
    classpath = server.build()
    assert stamp.stat().st_mtime_ns == built_at
    assert (server.SERVER_DIR / "target" / "classes" / "cinegraph" / "EmbeddedNeo4j.class").exists()
    assert classpath.endswith(str(Path("target") / "lib" / "*"))


def test_start_is_idempotent_and_status_reports(private_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    state = server.status(private_home)
    assert state.running and state.pid and state.port and state.uri == f"bolt://127.0.0.1:{state.port}"
    pidfile, log = (private_home / server.PID_FILE).read_text(), (private_home / server.LOG_FILE).stat().st_size
    monkeypatch.setenv("PATH", "")  # a second JVM (or a Maven build) could not even be looked up
    again = server.start(private_home, state.port, password=PRIVATE_PASSWORD)
    assert again.pid == state.pid and again.port == state.port
    assert (private_home / server.PID_FILE).read_text() == pidfile
    assert (private_home / server.LOG_FILE).stat().st_size == log
    with pytest.raises(CinegraphError) as info:
        server.start(private_home, free_port(), password=PRIVATE_PASSWORD)
    assert "stop it first" in _one_line(info)


def test_stop_then_start_keeps_the_data(private_home: Path) -> None:
    with open_driver(private_settings(private_home)) as driver:
        driver.execute_query("MERGE (:Probe {text: $t})", {"t": "kept across restarts"}, database_="neo4j")
    assert server.stop(private_home) is True
    assert not server.status(private_home).running
    assert not (private_home / server.PID_FILE).exists()
    assert "Bolt server has been shut down" in (private_home / server.DB_DIR / "logs" / "debug.log").read_text()
    assert server.stop(private_home) is False
    start_private(private_home)
    with open_driver(private_settings(private_home)) as driver:
        records = driver.execute_query("MATCH (p:Probe) RETURN p.text AS t", database_="neo4j").records
        assert [r["t"] for r in records] == ["kept across restarts"]
        driver.execute_query("MATCH (p:Probe) DELETE p", database_="neo4j")


def test_offline_closes_and_reopens_the_databases_in_the_same_jvm(private_home: Path) -> None:
    with open_driver(private_settings(private_home)) as driver:
        driver.execute_query("MERGE (:Probe {text: $t})", {"t": "kept while offline"}, database_="neo4j")
    before = server.status(private_home)
    assert before.port is not None
    with pytest.raises(CinegraphError, match="stopped or offline"):  # its files are in use
        server.install_database(private_home, private_home / "staging", "neo4j")
    with pytest.raises(RuntimeError, match="work failed"), server.offline(private_home) as state:
        assert state.pid == before.pid
        assert (private_home / server.DB_DIR / server.OFFLINE_REQUEST).exists()
        assert not server._bolt_answers(before.port)  # the databases and their Bolt connector are shut
        raise RuntimeError("work failed")  # the databases reopen all the same
    after = server.status(private_home)
    assert after.running and after.pid == before.pid and after.port == before.port
    assert not (private_home / server.DB_DIR / server.OFFLINE_REQUEST).exists()
    with open_driver(private_settings(private_home)) as driver:
        records = driver.execute_query("MATCH (p:Probe) RETURN p.text AS t", database_="neo4j").records
        assert [r["t"] for r in records] == ["kept while offline"]
        driver.execute_query("MATCH (p:Probe) DELETE p", database_="neo4j")
    assert server.stop(private_home) is True  # a server that went offline once still stops cleanly
    assert (private_home / server.LOG_FILE).read_text().rstrip().endswith("STOPPED")
    for left in (server.OFFLINE_REQUEST, server.ADMIN_REQUEST):  # left by a client that died offline
        (private_home / server.DB_DIR / left).write_text("database\n")
    start_private(private_home)  # the server ignores the stale requests and opens its databases
    assert not (private_home / server.DB_DIR / server.OFFLINE_REQUEST).exists()
    assert not (private_home / server.DB_DIR / server.ADMIN_REQUEST).exists()


def test_import_runs_in_the_offline_server_and_its_failure_is_one_line(private_home: Path, tmp_path: Path) -> None:
    with pytest.raises(CinegraphError, match="running and offline"):  # the server would never pick it up
        server.run_import(private_home, tmp_path / "staging", "neo4j", [], progress=False)
    before = server.status(private_home)
    missing = tmp_path / "missing.csv"
    with server.staging_home(private_home) as staging, server.offline(private_home):
        with pytest.raises(CinegraphError, match=r"neo4j-admin import failed \(status [1-9]\d*\): .*missing\.csv"):
            server.run_import(private_home, Path(staging), "neo4j", [f"--nodes=Probe={missing}"], progress=False)
        broken = tmp_path / "broken.csv"  # a quoted line break, but the importer was not told to expect one
        broken.write_text('id:ID,text\n1,"two\nlines"\n')
        with pytest.raises(CinegraphError, match=r"failed \(status [1-9]\d*\): Detected field which spanned multiple"):
            server.run_import(private_home, Path(staging), "neo4j", [f"--nodes=Probe={broken}"], progress=False)
        probe = tmp_path / "probe.csv"
        probe.write_text("id:ID,text\n1,imported\n")
        server.run_import(private_home, Path(staging), "neo4j", [f"--nodes=Probe={probe}"], progress=False)
        assert (Path(staging) / "import.report").exists()  # not in the server's working directory
        assert "IMPORT DONE" in (private_home / server.IMPORT_LOG).read_text()
    assert server.status(private_home).pid == before.pid  # the failed command did not take the JVM down
    assert not (private_home / server.DB_DIR / server.ADMIN_REQUEST).exists()
    assert not (private_home / server.DB_DIR / server.ADMIN_DONE).exists()
    with open_driver(private_settings(private_home)) as driver:
        assert driver.execute_query("RETURN 1 AS one", database_="neo4j").records[0]["one"] == 1


def test_port_in_use_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind((server.HOST, 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(CinegraphError) as info:
            server.start(tmp_path / "home", port, password=PRIVATE_PASSWORD)
    assert f"--port {port}" in _one_line(info) and "already in use" in str(info.value)


def test_browser_port_in_use_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind((server.HOST, 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(CinegraphError) as info:
            server.start(tmp_path / "home", free_port(), password=PRIVATE_PASSWORD, browser_port=port)
    assert f"--browser-port {port}" in _one_line(info) and "already in use" in str(info.value)
    assert not (tmp_path / "home" / server.PID_FILE).exists()


@pytest.mark.parametrize(("password", "message"), [("", "NEO4J_PASSWORD is not set"), ("short", "at least 8")])
def test_start_needs_a_password(tmp_path: Path, password: str, message: str) -> None:
    with pytest.raises(CinegraphError, match=message):
        server.start(tmp_path / "home", free_port(), password=password)


def test_wrong_password_is_one_line(private_home: Path) -> None:
    with pytest.raises(CinegraphError) as info:
        with open_driver(private_settings(private_home, password="not-the-password")):
            pass
    message = _one_line(info)
    assert "rejected user 'neo4j'" in message and "not-the-password" not in message


def test_server_down_is_one_line() -> None:
    uri = f"bolt://{server.HOST}:{free_port()}"
    with pytest.raises(CinegraphError) as info:
        with open_driver(Neo4jSettings(uri, "neo4j", "whatever-password")):
            pass
    assert f"cannot reach Neo4j at {uri}" in _one_line(info)


def test_unknown_database_is_one_line(neo4j_settings: Neo4jSettings) -> None:
    with pytest.raises(CinegraphError) as info:
        with open_driver(neo4j_settings) as driver:
            driver.execute_query("RETURN 1", database_="no_such_database")
    assert "no_such_database" in _one_line(info)


def test_settings_from_env() -> None:
    with pytest.raises(CinegraphError, match="NEO4J_PASSWORD is not set"):
        settings_from_env({})
    settings = settings_from_env({"NEO4J_PASSWORD": "s3cret-value"})
    assert (settings.uri, settings.user) == ("bolt://127.0.0.1:7687", "neo4j")
    assert "s3cret-value" not in repr(settings)


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, env={**os.environ, **env}, timeout=120)


def test_cli_status_and_errors(private_home: Path, tmp_path: Path) -> None:
    uri = server.status(private_home).uri
    assert uri is not None
    running = _cli("neo4j", "status", "--home", str(private_home), env={})
    assert running.returncode == 0 and "running, pid" in running.stdout and uri in running.stdout
    stopped = _cli("neo4j", "status", "--home", str(tmp_path / "nothing"), env={})
    assert stopped.returncode == 3 and "not running" in stopped.stdout
    idle_stop = _cli("neo4j", "stop", "--home", str(tmp_path / "nothing"), env={})
    assert idle_stop.returncode == 0 and "not running" in idle_stop.stdout

    (tmp_path / "snap").mkdir()
    wrong = _cli(
        "load", "--snapshot", str(tmp_path / "snap"), env={"NEO4J_URI": uri, "NEO4J_PASSWORD": "wrong-password-123"}
    )
    assert wrong.returncode == 2
    assert wrong.stderr.strip().splitlines()[-1].startswith("cinegraph load: error: ")
    assert "Traceback" not in wrong.stderr and "wrong-password-123" not in wrong.stderr + wrong.stdout
