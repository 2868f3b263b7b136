"""benchmarks/match_benchmark.py runs end to end as a script: a small synthetic scale run, the real
mirror, and Splink beside it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.realdata
@pytest.mark.slow
def test_match_benchmark_main(mirror: Path, tmp_path: Path) -> None:
    out = tmp_path / "match.md"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "match_benchmark.py"), "--movies", "400", "--candidates", "5000",
         "--mirror", str(mirror), "--out", str(out)],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    text = out.read_text()
    assert "400 MovieLens-style titles vs 5,000 generated IMDb titles" in text
    assert "| cinegraph (rapidfuzz cdist) | 1.0000 | 1.0000 |" in text
    assert "| Splink (DuckDB, EM, p >= 0.9) |" in text
    assert "Truth pairs (linked movies whose IMDb title is in the mirror): 584" in text
