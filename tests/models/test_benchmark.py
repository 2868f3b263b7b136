from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from cinegraph.flows.cli import main
from cinegraph.models.benchmark import MODELS, peak_memory

TINY = {
    "hidden_dim": 16,
    "hgt_heads": 2,
    "fusion_heads": 2,
    "gcn_epochs": 4,
    "hgt_epochs": 4,
    "fusion_epochs": 2,
    "eval_every": 2,
    "batch_size": 256,
    "gcn_steps": 2,
}


def test_benchmark_cli_on_a_tiny_snapshot(tiny_snapshot: Path, tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps(TINY))
    out = tmp_path / "bench"
    assert (
        main(
            ["benchmark", "--snapshot", str(tiny_snapshot), "--out", str(out), "--seeds", "2", "--config", str(config)]
        )
        == 0
    )
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
    assert "aim: fused ndcg@20 >= 1.05 x" in report and "per seed" in report
    assert (out / "warm" / "seed-1" / "curves_fused.png").exists()
    assert {"gcn.pt", "hgt.pt", "fused.pt", "fused_concat.pt"} <= {p.name for p in (out / "warm" / "seed-0").iterdir()}
    assert (out / "warm" / "seed-0" / "fused_no_imdb" / "fused_no_imdb.pt").exists()


def test_benchmark_rejects_unknown_models(tiny_snapshot: Path, tmp_path: Path) -> None:
    assert main(["benchmark", "--snapshot", str(tiny_snapshot), "--out", str(tmp_path), "--models", "fused,gpt"]) == 2


def test_both_protocols_reach_one_report_and_the_evaluation_rows(tiny_snapshot: Path, tmp_path: Path) -> None:
    from cinegraph.flows.artifacts import protocol_rows
    from cinegraph.models.runner import read_results

    config = tmp_path / "config.json"
    config.write_text(json.dumps(TINY))
    out = tmp_path / "bench"
    models = "fused,popularity,ease,itemknn,content_knn,gcn_branch,hgt_branch"
    assert (
        main(
            [
                "benchmark",
                "--snapshot",
                str(tiny_snapshot),
                "--out",
                str(out),
                "--seeds",
                "2",
                "--config",
                str(config),
                "--protocol",
                "both",
                "--models",
                models,
            ]
        )
        == 0
    )
    results = read_results(out)
    assert list(results) == ["warm", "cold-items"]
    cold = results["cold-items"]
    assert cold["protocol"] == "cold-items" and cold["config"]["data"]["protocol"] == "cold-items"
    assert set(cold["models"]) == set(models.split(","))
    for name, metrics in cold["models"].items():
        assert {"ndcg@20", "mrr@20", "ndcg@20_all_movies", "valid_ndcg@20", "train_seconds", "peak_mem_mb"} <= set(
            metrics
        ), name
        assert "ndcg@20_long_tail" not in metrics and len(metrics["ndcg@20"]["per_seed"]) == 2
    # content reaches new movies: content kNN ranks them better than popularity's arbitrary order
    assert cold["models"]["content_knn"]["ndcg@20"]["mean"] > cold["models"]["popularity"]["ndcg@20"]["mean"]
    report = (out / "report.md").read_text()
    assert "## Protocol: warm" in report and "## Protocol: cold-items" in report
    assert "fused ndcg@20 >= 1.20 x best non-fused model" in report
    assert "| fused | valid ndcg@20 / start + genre map / start |" in report
    assert "mrr@20" in report and "train seconds per seed" in report
    assert (out / "ndcg20_per_seed.png").stat().st_size > 0
    rows = protocol_rows(results)
    assert [r["protocol"] for r in rows].count("cold-items") == len(models.split(","))
    fused = next(r for r in rows if r["protocol"] == "warm" and r["model"] == "fused")
    assert fused["mrr@20"] and fused["ndcg@20 per seed"].count(",") == 1
    assert any(k.startswith("ndcg@20 / ") and v.endswith("x") for k, v in fused.items())


def test_peak_memory_of_a_run_after_another_counts_its_own_growth() -> None:
    """Many small tensors (kept by the C allocator when freed): the second identical run must
    measure about what the first did, not grow into the memory the first one left behind."""

    def run() -> float:
        with peak_memory("cpu") as mem:
            blocks = [torch.ones(2000) for _ in range(25_000)]  # 200 MB in 8 kB blocks
            del blocks
        return mem["mb"]

    first, second = run(), run()
    assert first > 100
    assert second > 0.5 * first
