"""benchmarks/load_benchmark.py runs end to end as a script (tiny snapshot, the shared test server)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from neo4j import Driver

from tests.graph_store.neo4j_testing import small_tables, write_test_snapshot

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.neo4j
def test_load_benchmark_main(graph: Driver, tmp_path: Path) -> None:
    snapshot = write_test_snapshot(tmp_path / "snapshot", small_tables())
    out = tmp_path / "load.md"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "load_benchmark.py"), "--snapshot", str(snapshot),
         "--batch-sizes", "1,50", "--baseline-rows", "3", "--out", str(out), "--use-env"],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    text = out.read_text()
    assert "| full snapshot | 50 |" in text and "| slice, one row per query | 1 |" in text
    assert "x** rows/s" in text and "Fastest batch size on the full snapshot" in text
    # The slice holds 3 ratings with their 2 users and 3 movies, loaded one row per query.
    assert "| slice, one row per query | 1 | 5 | 3 |" in text
