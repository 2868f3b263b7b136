"""The output-folder lock: exclusive across holders, released on exit, bounded wait, taken by the
export."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from neo4j import Driver

from cinegraph.errors import CinegraphError
from cinegraph.graph_store.export import export_snapshot
from cinegraph.graph_store.load import load_snapshot
from cinegraph.graph_store.lock import locked
from cinegraph.graph_store.snapshot_io import read_manifest


def test_second_holder_waits_for_the_first(tmp_path: Path) -> None:
    events: list[str] = []
    inside = threading.Event()

    def first() -> None:
        with locked(tmp_path):
            inside.set()
            time.sleep(0.5)
            events.append("first out")

    thread = threading.Thread(target=first)
    thread.start()
    inside.wait(5)
    with locked(tmp_path, poll_s=0.02) as waited:
        events.append("second in")
    thread.join()
    assert events == ["first out", "second in"] and waited >= 0.3


def test_waiting_too_long_is_a_clear_error(tmp_path: Path) -> None:
    with locked(tmp_path), pytest.raises(CinegraphError, match="held this lock"), locked(tmp_path, timeout_s=0.2):
        pass
    with locked(tmp_path) as waited:  # released by both exits
        assert waited < 0.2


HOLDER = """
import sys, time
from pathlib import Path
from cinegraph.graph_store.lock import locked
with locked(Path(sys.argv[1])):
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
"""


@pytest.mark.neo4j
def test_export_waits_for_the_lock_of_its_folder(
    graph: Driver, small_snapshot: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Another process (an ETL into the same folder) holds the lock: the export waits, says so."""
    load_snapshot(graph, small_snapshot, progress=False)
    env = os.environ | {"PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    with subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path), "2"], env=env, stdout=subprocess.PIPE, text=True
    ) as holder:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        start = time.monotonic()
        with caplog.at_level(logging.WARNING, logger="cinegraph.graph_store.lock"):
            export_snapshot(graph, tmp_path / "export")
        assert time.monotonic() - start > 0.5 and holder.poll() == 0
    assert f"held by another run (pid {holder.pid}): waiting" in caplog.text
    assert read_manifest(tmp_path / "export")["counts"]["nodes"]["User"] == 3
