"""benchmarks/export_benchmark.py runs end to end as a script (tiny snapshot, the shared test server)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from neo4j import Driver

from cinegraph.graph_store.export import ExportFilter, filter_snapshot
from tests.graph_store.neo4j_testing import small_tables, write_test_snapshot
from tests.markdown import number, tables

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.neo4j
def test_export_benchmark_main(graph: Driver, tmp_path: Path) -> None:
    snapshot = write_test_snapshot(tmp_path / "snapshot", small_tables())
    out = tmp_path / "export.md"
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "export_benchmark.py"),
            "--snapshot",
            str(snapshot),
            "--repeats",
            "1",
            "--out",
            str(out),
            "--use-env",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    text = out.read_text()
    rows = sum(t.num_rows for t in filter_snapshot(snapshot, ExportFilter()).values())
    runs = {r["subgraph"]: r for r in tables(text)["subgraph"]}
    assert rows > 0 and number(runs["whole graph"]["rows"]) == rows
    assert 0 < number(runs["MovieLens only (User, Movie, Genre)"]["rows"]) < rows
    assert all(number(r[rate]) > 0 for r in runs.values() for rate in ("Neo4j rows/s", "DuckDB rows/s"))
