"""`cinegraph etl` as real processes over a copy of the real mirror served on 127.0.0.1: two runs
into one folder, and a run SIGKILLed just before its snapshot swap."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cinegraph.graph_store.lock import LOCK_FILE
from cinegraph.graph_store.snapshot_io import KILL_AT_VAR, read_manifest, read_snapshot
from tests.hostile_mirror import ZIP, build_mirror

pytestmark = [pytest.mark.realdata, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]


def start_etl(base: str, out: Path, **env: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "cinegraph.flows.cli", "etl", "--mirror", base, "--out", str(out), "--no-progress"]
    environ = {k: v for k, v in os.environ.items() if k != "CINEGRAPH_MIRROR"} | {"PYTHONPATH": str(ROOT)} | env
    return subprocess.Popen(cmd, env=environ, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=600)
    return proc.returncode, out, err


def leftovers(out: Path) -> list[str]:
    """Temporary things a run makes in OUT: snapshot links, extraction folders."""
    return sorted(
        p.name
        for p in [*out.iterdir(), *(out / "raw" / "movielens").iterdir()]
        if ".link-" in p.name or ".extracting-" in p.name or ".old-" in p.name
    )


def _ml_source(manifest: dict) -> dict:
    return next(s for s in manifest["sources"] if s["file"] == ZIP)


def test_second_run_waits_for_the_first_and_each_snapshot_is_its_own(
    mirror: Path, http_dir: tuple[str, Path], tmp_path: Path
) -> None:
    base, www = http_dir
    build_mirror(mirror, www / "a")
    build_mirror(mirror, www / "b", {"ratings.csv": lambda lines: lines[:-1]})  # one rating fewer
    out = tmp_path / "out"
    first = start_etl(f"{base}/a", out)
    deadline = time.monotonic() + 60
    while not ((out / LOCK_FILE).exists() and (out / LOCK_FILE).read_text().strip() == str(first.pid)):
        assert time.monotonic() < deadline and first.poll() is None, "the first run never took the lock"
        time.sleep(0.05)
    second = start_etl(f"{base}/b", out)
    rc1, out1, err1 = finish(first)
    rc2, out2, err2 = finish(second)
    assert (rc1, rc2) == (0, 0), err1 + err2
    assert f"held by another run (pid {first.pid}): waiting" in err2
    assert "RATED 100,836" in out1 and "RATED 100,835" in out2
    manifest = read_manifest(out / "snapshot")  # the second run's, with its own source
    assert manifest["counts"]["edges"]["RATED"] == 100_835
    assert _ml_source(manifest)["url"].startswith(f"{base}/b/")
    assert read_snapshot(out / "snapshot")["RATED"].num_rows == 100_835
    assert leftovers(out) == []


def test_run_killed_before_the_swap_keeps_the_snapshot_and_the_next_run_cleans_up(
    mirror: Path, http_dir: tuple[str, Path], tmp_path: Path
) -> None:
    base, www = http_dir
    build_mirror(mirror, www)
    out = tmp_path / "out"
    assert finish(start_etl(base, out))[0] == 0
    before = read_manifest(out / "snapshot")
    rc, _, err = finish(start_etl(base, out, **{KILL_AT_VAR: "before-rename"}))
    assert rc == -signal.SIGKILL, err
    assert read_manifest(out / "snapshot") == before
    assert read_snapshot(out / "snapshot")["RATED"].num_rows == before["counts"]["edges"]["RATED"]
    assert leftovers(out), "the kill left no link: it did not happen at the swap"
    rc, _, err = finish(start_etl(base, out))
    assert rc == 0, err
    assert read_manifest(out / "snapshot")["created_at"] >= before["created_at"]
    assert leftovers(out) == []
    assert len(list((out / "snapshot.versions").iterdir())) == 2  # the new one and the one it replaced
