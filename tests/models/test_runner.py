"""models/runner.py: stages and their epoch budget, one aggregation over seeds, the checks made
before a run, the report's metrics (MRR among them) reaching the evaluation table, and the threads
the seeds trained with reaching the report."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from cinegraph.errors import CinegraphError
from cinegraph.flows.artifacts import evaluation_rows
from cinegraph.models.benchmark import MODELS
from cinegraph.models.config import TrainConfig
from cinegraph.models.evaluate import RunResult
from cinegraph.models.report import HEADLINE, protocol_lines
from cinegraph.models.runner import (
    TRAIN_MODELS,
    SeedRun,
    aggregate,
    check_request,
    epoch_budget,
    setup_torch,
    stages,
    write_results,
)


@pytest.mark.parametrize(
    ("models", "expected"),
    [
        (TRAIN_MODELS, ["gcn", "hgt", "fused"]),
        (("popularity", "ease"), []),
        (("hgt_branch",), ["gcn", "hgt"]),
        (
            MODELS,
            ["gcn", "hgt", "fused", "fused_concat", "gcn", "hgt", "fused_single_task", "gcn", "hgt", "fused_no_imdb"],
        ),
    ],
)
def test_stages_and_epoch_budget(models: tuple[str, ...], expected: list[str]) -> None:
    config = TrainConfig(gcn_epochs=7, hgt_epochs=5, fusion_epochs=3)
    assert stages(models) == expected
    assert epoch_budget(config, models) == sum({"gcn": 7, "hgt": 5}.get(s, 3) for s in expected)


def _run(seed: int, ndcg: float, cold: float) -> SeedRun:
    result = RunResult(
        "ease",
        seed,
        {"ndcg@20": ndcg, "mrr@20": 0.5, "ndcg@20_cold_items": cold},
        {"ndcg@20": ndcg, "precision@20": 0.1},
        epoch_seconds=2.0,
        peak_mem_mb=10.0,
    )
    return SeedRun(seed, {"ease": result}, {"ease": 4.0}, threads=1)


def test_aggregate_keeps_nan_per_seed_and_averages_the_finite_values() -> None:
    models = aggregate([_run(0, 0.2, float("nan")), _run(1, 0.4, 0.1), _run(2, 0.3, float("nan"))])
    ease = models["ease"]
    assert ease["ndcg@20"]["mean"] == pytest.approx(0.3) and ease["ndcg@20"]["std"] == pytest.approx(0.1)
    cold = ease["ndcg@20_cold_items"]
    assert math.isnan(cold["per_seed"][0]) and cold["mean"] == 0.1 and cold["std"] == 0.0
    assert "valid_ndcg@20" in ease and "valid_precision@20" not in ease  # validation metrics kept: a fixed list
    assert ease["train_seconds"]["per_seed"] == [4.0, 4.0, 4.0] and ease["epoch_seconds"]["mean"] == 2.0
    all_nan = aggregate([_run(0, 0.2, float("nan"))])["ease"]["ndcg@20_cold_items"]
    assert math.isnan(all_nan["mean"]) and all_nan["std"] == 0.0


def test_the_report_names_the_threads_the_seeds_trained_with(tmp_path: Path) -> None:
    """Seeds on Dask workers train with their own thread count, not the flow process's."""
    runs = [_run(0, 0.2, 0.1), _run(1, 0.3, 0.1)]
    for run in runs:
        run.threads = torch.get_num_threads() + 2
    write_results(tmp_path, runs, config=TrainConfig(), graph="g", wall_seconds=1.0)
    summary = json.loads((tmp_path / "warm" / "results.json").read_text())
    assert summary["torch_threads"] == torch.get_num_threads() + 2
    assert f"({torch.get_num_threads() + 2} torch threads" in (tmp_path / "report.md").read_text()


def test_mrr_reaches_the_report_and_the_evaluation_table() -> None:
    models = aggregate([_run(0, 0.2, 0.1), _run(1, 0.3, 0.1)])
    summary = {
        "models": models,
        "seeds": [0, 1],
        "graph": "g",
        "device": "cpu",
        "torch_threads": 1,
        "wall_seconds": 1.0,
        "config": {},
    }
    assert "mrr@20" in HEADLINE["warm"] and "mrr@20" in HEADLINE["cold-items"]
    table = next(line for line in protocol_lines("warm", summary) if line.startswith("| model | ndcg@20"))
    assert "mrr@20" in table
    assert evaluation_rows(models)[0]["mrr@20"] == "0.5000"


@pytest.mark.parametrize(
    ("models", "protocols", "seeds", "message"),
    [
        (("fused", "gpt"), ("warm",), [0], r"--models: unknown \['gpt'\]"),
        (("fused",), ("hot",), [0], r"--protocol: unknown \['hot'\]"),
        (("fused",), ("warm",), [], "--seeds"),
    ],
)
def test_requests_are_checked_before_a_run(
    models: tuple[str, ...], protocols: tuple[str, ...], seeds: list[int], message: str
) -> None:
    with pytest.raises(CinegraphError, match=message):
        check_request(models, protocols, seeds)


def test_cuda_is_checked_once_before_training() -> None:
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    with pytest.raises(CinegraphError, match="--device cuda: CUDA is not available"):
        setup_torch(TrainConfig(device="cuda"))


def test_a_train_report_has_verdicts_against_the_branches_only() -> None:
    def result(name: str, ndcg: float) -> RunResult:
        return RunResult(name, 0, {"ndcg@20": ndcg, "macro_f1": 0.3}, {"ndcg@20": ndcg})

    run = SeedRun(
        0,
        {n: result(n, v) for n, v in (("fused", 0.3), ("gcn_branch", 0.2), ("hgt_branch", 0.1))},
        dict.fromkeys(("fused", "gcn_branch", "hgt_branch"), 1.0),
        threads=1,
    )
    summary = {
        "models": aggregate([run]),
        "seeds": [0],
        "graph": "g",
        "device": "cpu",
        "torch_threads": 1,
        "wall_seconds": 1.0,
        "config": {},
    }
    text = "\n".join(protocol_lines("warm", summary))
    assert "fused ndcg@20 >= gcn_branch (0.2000): **YES (1.50x)**" in text
    assert "metric by metric" not in text and "best non-fused model" not in text
