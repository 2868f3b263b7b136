"""benchmarks/train_scale.py end to end at a tiny scale: dumps, ETL, a model of each kind in its child."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "train_scale.py"


@pytest.mark.slow
def test_train_scale_main(tmp_path: Path) -> None:
    out = tmp_path / "train_scale.md"
    models = {"popularity", "mf_bpr", "ease", "gcn_branch", "hgt_branch"}  # one of each kind of training
    cmd = [
        sys.executable,
        str(SCRIPT),
        "--scales",
        "0.0005",
        "--epochs",
        "1",
        "--work",
        str(tmp_path / "work"),
        "--bpr-batch",
        "512",
        "--models",
        ",".join(sorted(models)),
        "--out",
        str(out),
        "--budget-gb",
        "8",
        "--valid-users",
        "5",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    text = out.read_text()
    label = "0.0005 (cpu, 1 epochs, hgt_fanout 10, validation on 5 users)"
    assert f"## Scale {label}" in text
    rows = json.loads(out.with_suffix(".json").read_text())[label]["rows"]
    assert set(rows) == models
    for name, row in rows.items():
        assert row["rc"] == 0 and row["epochs"] >= 1, name
        assert 0 < row["epoch_s"] <= row["total_s"] and row["peak_rss_mb"] > 100, name
        assert row["cpu_s"] > 0 and row["prepare_cpu_s"] > 0, name
        assert 0.0 <= row["valid_ndcg20"] <= 1.0, name
        assert row["bpr_batch"] == (512 if name == "mf_bpr" else None), name
        cell = f"{name} (batch 512)" if name == "mf_bpr" else name
        assert f"| {cell} | " in text, name
    # a budget no model fits in: each child is killed and says so in its row
    proc = subprocess.run(
        [*cmd[:-8], "--models", "popularity", "--out", str(out), "--budget-gb", "0.05"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 1
    assert "| popularity | – | – | – |" in out.read_text() and "killed above the 0.05 GB budget" in out.read_text()
