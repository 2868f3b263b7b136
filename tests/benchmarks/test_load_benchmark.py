"""benchmarks/load_benchmark.py runs end to end as a script (tiny snapshot, its own servers)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.graph_store.neo4j_testing import small_tables, write_test_snapshot

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.neo4j
@pytest.mark.slow  # two embedded servers, the importer and a restart
def test_load_benchmark_main(tmp_path: Path) -> None:
    snapshot = write_test_snapshot(tmp_path / "snapshot", small_tables())
    out = tmp_path / "load.md"
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "load_benchmark.py"),
            "--snapshot",
            str(snapshot),
            "--study-rows",
            "3",
            "--batch-sizes",
            "1,2",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    text = out.read_text()
    assert "| bulk (`cinegraph load --initial`, neo4j-admin import) |" in text
    assert "Bulk vs transactional, end to end: **" in text
    assert "| CREATE, batch 1, 1 writer |" in text and "| MERGE, batch 10,000, 1 writer |" in text
    assert "0 rows written (the diff reads the graph back" in text
    # 3 users x 4 movies (fewer movies than the top 20), then the same run replaced.
    assert "| RECOMMENDED, first write | 12 |" in text and "| RECOMMENDED, replacing the run | 12 |" in text


@pytest.mark.neo4j
@pytest.mark.slow
def test_load_benchmark_first_load_only(tmp_path: Path) -> None:
    snapshot = write_test_snapshot(tmp_path / "snapshot", small_tables())
    out = tmp_path / "load.md"
    script = str(ROOT / "benchmarks" / "load_benchmark.py")
    args = [sys.executable, script, "--snapshot", str(snapshot), "--first-load-only", "--out", str(out)]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    text = out.read_text()
    assert "Bulk vs transactional, end to end: **" in text
    assert "## Second load" not in text and "## RATED" not in text and "## Results write-back" not in text
