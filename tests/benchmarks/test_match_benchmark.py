"""benchmarks/match_benchmark.py runs end to end as a script: a small synthetic scale run, the real
mirror, and Splink beside it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.markdown import number, tables

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.realdata
@pytest.mark.slow
def test_match_benchmark_main(mirror: Path, tmp_path: Path) -> None:
    out = tmp_path / "match.md"
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "match_benchmark.py"),
            "--movies",
            "400",
            "--candidates",
            "5000",
            "--mirror",
            str(mirror),
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    text = out.read_text()
    scale = re.search(r"([\d,]+) MovieLens-style titles vs ([\d,]+) generated IMDb titles", text)
    assert scale and (number(scale[1]), number(scale[2])) == (400, 5000)
    matchers = {r["matcher"]: r for r in tables(text)["matcher"]}
    ours = matchers.pop("cinegraph (rapidfuzz cdist)")
    assert (number(ours["precision"]), number(ours["recall"])) == (1.0, 1.0)
    (splink,) = matchers.values()  # the peer, at its stated probability threshold
    assert 0 < number(splink["precision"]) <= 1 and 0 < number(splink["recall"]) <= 1
    truth = re.search(r"Truth pairs \(linked movies whose IMDb title is in the mirror\): (\d+)", text)
    assert truth and int(truth[1]) == 584
