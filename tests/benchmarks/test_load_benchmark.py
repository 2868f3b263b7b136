"""benchmarks/load_benchmark.py runs end to end as a script (tiny snapshot, the shared test server)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from neo4j import Driver

from graph_store import schema
from tests.graph_store.neo4j_testing import small_tables, write_test_snapshot
from tests.markdown import number, tables

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.neo4j
def test_load_benchmark_main(graph: Driver, tmp_path: Path) -> None:
    written = small_tables()
    snapshot = write_test_snapshot(tmp_path / "snapshot", written)
    nodes = sum(written[nt.label].num_rows for nt in schema.NODE_TYPES if nt.label in written)
    rels = sum(written[et.rel].num_rows for et in schema.EDGE_TYPES if et.rel in written)
    out = tmp_path / "load.md"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "load_benchmark.py"), "--snapshot", str(snapshot),
         "--batch-sizes", "1,50", "--baseline-rows", "3", "--out", str(out), "--use-env"],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    text = out.read_text()
    runs = {(r["run"], int(r["batch size"])): r for r in tables(text)["run"]}
    for size in (1, 50):
        full = runs[("full snapshot", size)]
        assert (number(full["nodes"]), number(full["rels"])) == (nodes, rels)
    # The slice holds 3 ratings with their 2 users and 3 movies, loaded one row per query.
    one_by_one = runs[("slice, one row per query", 1)]
    assert (number(one_by_one["nodes"]), number(one_by_one["rels"])) == (5, 3)
    assert all(number(r[rate]) > 0 for r in runs.values() for rate in ("nodes/s", "rels/s"))
    speedup = re.search(r"one row per query on the same slice: \*\*([\d.]+)x\*\* rows/s", text)
    chosen = re.search(r"Fastest batch size on the full snapshot: \*\*(\d+)\*\*", text)
    assert speedup and float(speedup[1]) > 0 and chosen and int(chosen[1]) in (1, 50)
