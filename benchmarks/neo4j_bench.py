"""What the Neo4j benchmarks share: the snapshot to measure, a server to measure it on, a wipe
between runs, and the lines that describe the machine in the report."""

from __future__ import annotations

import os
import platform
import socket
import tempfile
from contextlib import ExitStack
from pathlib import Path

from neo4j import Driver

from cinegraph.graph_store import server
from cinegraph.graph_store.connection import Neo4jSettings, open_driver, settings_from_env

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MIRROR = Path(os.environ.get("CINEGRAPH_MIRROR", ROOT.parent / "shared/data/mirror"))


def bench_snapshot(snapshot: Path | None, mirror: Path, tmp: Path) -> Path:
    """The given snapshot, or a fresh one from the ETL on the mirror (links mode)."""
    if snapshot is not None:
        return snapshot
    from cinegraph.etl import EtlConfig, MatchConfig, run_etl

    config = EtlConfig(mirror=str(mirror), out=tmp / "etl", match=MatchConfig(mode="links"), progress=False)
    return run_etl(config).snapshot


def private_server(stack: ExitStack, password: str) -> tuple[Path, Neo4jSettings]:
    """A private embedded server in a temporary home (stopped and removed by ``stack``)."""
    home = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="cinegraph-bench-neo4j-")))
    state = server.start(home, _free_port(), password=password)
    stack.callback(server.stop, home)
    return home, Neo4jSettings(state.uri or "", "neo4j", password)


def bench_driver(stack: ExitStack, *, use_env: bool, password: str) -> Driver:
    """A driver on NEO4J_URI (``use_env``) or on a private embedded server that ``stack`` stops."""
    settings = settings_from_env() if use_env else private_server(stack, password)[1]
    return stack.enter_context(open_driver(settings))


def wipe(driver: Driver) -> None:
    while driver.execute_query(
        "MATCH (n) WITH n LIMIT 20000 DETACH DELETE n RETURN count(*) AS n", database_="neo4j"
    ).records[0]["n"]:
        pass


def machine_lines(driver: Driver, private: bool) -> list[str]:
    """Markdown lines naming the CPU, memory, load and Neo4j the figures were measured on."""
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    mem_kb = int(
        next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal"))
    )
    version = driver.execute_query(
        "CALL dbms.components() YIELD versions, edition RETURN versions[0] AS v, edition AS e",
        database_="system",
    ).records[0]
    server_line = (
        f"embedded, heap {server.DEFAULT_HEAP_MB} MB, page cache {server.DEFAULT_PAGECACHE_MB} MB"
        if private
        else "the server of NEO4J_URI"
    )
    return [
        f"- Machine: {cpu}, {os.cpu_count()} cores, {mem_kb / 2**20:.0f} GiB RAM; load average "
        f"{load_average()} (other processes share the cores, so absolute rates are noisy; compare ratios)",
        f"- Neo4j {version['v']} {version['e']} ({server_line}), Python driver over Bolt on 127.0.0.1",
    ]


def load_average() -> str:
    """The 1, 5 and 15 minute load averages, as /proc/loadavg has them."""
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((server.HOST, 0))
        return int(sock.getsockname()[1])
