from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from flows.cli import main
from models.benchmark import MODELS

TINY = dict(
    hidden_dim=16, hgt_heads=2, fusion_heads=2, gcn_epochs=4, hgt_epochs=4, fusion_epochs=2,
    eval_every=2, batch_size=256, gcn_steps=2,
)


def test_benchmark_cli_on_a_tiny_snapshot(tiny_snapshot: Path, tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps(TINY))
    out = tmp_path / "bench"
    assert main(["benchmark", "--snapshot", str(tiny_snapshot), "--out", str(out), "--seeds", "2",
                 "--config", str(config)]) == 0
    results = json.loads((out / "warm" / "results.json").read_text())
    assert results["protocol"] == "warm"
    assert set(results["models"]) == set(MODELS)
    for name, metrics in results["models"].items():
        for metric in ("ndcg@20", "recall@20", "ndcg@20_long_tail", "epoch_seconds"):
            stat = metrics[metric]
            assert len(stat["per_seed"]) == 2, (name, metric)
            finite = [v for v in stat["per_seed"] if not math.isnan(v)]
            if finite:
                assert stat["mean"] == pytest.approx(sum(finite) / len(finite))
    assert "macro_f1" in results["models"]["fused"]
    assert "macro_f1" not in results["models"]["mf_bpr"]
    assert results["propagation"]["ratio"] > 0
    report = (out / "report.md").read_text()
    assert "ndcg@20 >= 1.05 x best baseline" in report and "per seed" in report
    assert (out / "warm" / "curves_fused_seed1.png").exists()
    assert (out / "warm" / "seed0" / "fused" / "fused.pt").exists()


def test_benchmark_rejects_unknown_models(tiny_snapshot: Path, tmp_path: Path) -> None:
    assert main(["benchmark", "--snapshot", str(tiny_snapshot), "--out", str(tmp_path),
                 "--models", "fused,gpt"]) == 2
