"""benchmarks/refresh_benchmark.py runs end to end as a script (tiny snapshot, its own server)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from cinegraph import schema
from tests.graph_store.neo4j_testing import small_tables, write_test_snapshot

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.neo4j
@pytest.mark.slow  # an embedded server and the importer
def test_refresh_benchmark_main(tmp_path: Path) -> None:
    snapshot = write_test_snapshot(tmp_path / "snapshot", small_tables())
    out = tmp_path / "refresh.md"
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "refresh_benchmark.py"),
            "--snapshot",
            str(snapshot),
            "--changed-share",
            "0.5",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = {line.split(" | ")[0].lstrip("| "): line.split(" | ")[2:] for line in out.read_text().splitlines()}
    assert rows["the same snapshot again"] == ["none", "0 |"]
    # One movie has votes; one of the two people is renamed; one of the two KNOWN_FOR rows is gone.
    assert rows["newer IMDb side, same MovieLens"] == ["Movie, Person, KNOWN_FOR", "3 |"]
    every = ", ".join([*(nt.label for nt in schema.NODE_TYPES), *(et.rel for et in schema.EDGE_TYPES)])
    assert rows["the newer snapshot again, `--verify` (every table read back)"] == [every, "0 |"]
