"""``cinegraph tune``: a hyperparameter search for one model on the validation split of one seed.

Optuna's TPE sampler proposes a setting per trial; the trial trains the model on the split of
``seed`` (0 by default, never the test split) and scores validation ``ndcg@20``. The search stops
after ``trials`` trials or ``timeout_s`` seconds, whichever comes first. Every model the
benchmark knows with something to tune can be searched with the same budget, so a tuned fused
model meets tuned baselines. The result is a :class:`TrainConfig` JSON: the fused model's fields
directly, a baseline's under ``baselines.<name>``; the CLI starts from an existing file, so one
file can carry every tuned model to ``cinegraph train --config`` and ``benchmark --config``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna

from cinegraph.errors import CinegraphError
from cinegraph.models.config import TrainConfig
from cinegraph.models.data import PreparedData, prepare_data
from cinegraph.models.runner import setup_torch

log = logging.getLogger(__name__)

ScoreBatch = Callable[[list[TrainConfig]], list[float]]  # trial configs -> their validation ndcg@20

TUNABLE = ("fused", "lightgcn", "mf_bpr", "ease", "itemknn", "content_knn")


def suggest(trial: optuna.trial.BaseTrial, model: str) -> dict[str, Any]:
    """One setting of ``model``'s search space: config fields and their values."""
    if model == "fused":
        return {
            "hidden_dim": trial.suggest_categorical("hidden_dim", [32, 64, 128]),
            "gcn_layers": trial.suggest_int("gcn_layers", 1, 4),
            "temperature": trial.suggest_float("temperature", 0.3, 3.0, log=True),
            "emb_l2": trial.suggest_float("emb_l2", 1e-6, 1e-2, log=True),
            "gcn_lr": trial.suggest_float("gcn_lr", 3e-3, 5e-2, log=True),
            "hgt_lr": trial.suggest_float("hgt_lr", 1e-3, 3e-2, log=True),
            "fusion_lr": trial.suggest_float("fusion_lr", 5e-4, 1e-2, log=True),
            "cold_dropout": trial.suggest_float("cold_dropout", 0.0, 0.5),
            "dropout": trial.suggest_float("dropout", 0.0, 0.3),
        }
    if model in ("mf_bpr", "lightgcn"):
        params = {
            "embedding_dim": trial.suggest_categorical("embedding_dim", [32, 64, 128]),
            "lr": trial.suggest_float("lr", 1e-3, 5e-2, log=True),
            "lambda_reg": trial.suggest_float("lambda_reg", 1e-6, 1e-1, log=True),
        }
        if model == "lightgcn":
            params["num_layers"] = trial.suggest_int("num_layers", 1, 4)
        return params
    if model == "ease":
        return {"lambdas": [trial.suggest_float("lambda", 5.0, 3000.0, log=True)]}
    if model == "itemknn":
        return {
            "ks": [trial.suggest_int("k", 5, 400, log=True)],
            "shrinks": [trial.suggest_float("shrink", 0.0, 100.0)],
        }
    if model == "content_knn":
        blocks = ("genre", "people", "tags", "numeric")
        weights = {b: trial.suggest_float(f"w_{b}", 0.0, 1.0) for b in blocks}
        return {"weightings": [weights], "ks": [trial.suggest_int("k", 10, 400, log=True)]}
    raise CinegraphError(f"--model {model}: nothing to tune; tunable: {list(TUNABLE)}")


def with_params(config: TrainConfig, model: str, params: dict[str, Any]) -> TrainConfig:
    """``config`` with ``params`` applied to ``model`` (its fields, or ``baselines[model]``)."""
    if model == "fused":
        return config.model_copy(update=params)
    baselines = {**config.baselines, model: {**config.baselines.get(model, {}), **params}}
    return config.model_copy(update={"baselines": baselines})


def validation_score(model: str, data: PreparedData, config: TrainConfig) -> float:
    """Validation ``ndcg@20`` of ``model`` trained with ``config`` on ``data``."""
    from cinegraph.models.benchmark import baseline_config, baselines
    from cinegraph.models.train import train_fused

    if model == "fused":
        return train_fused(data, config)["fused"].valid_metrics["ndcg@20"]
    fn = baselines()[model][0]
    return fn(data, baseline_config(model, config), config.seed, config.device).valid_metrics["ndcg@20"]


def tune(
    snapshot_dir: Path,
    model: str,
    out_path: Path,
    trials: int = 20,
    timeout_s: float | None = None,
    config: TrainConfig | None = None,
    parallel: int = 1,
    score_batch: ScoreBatch | None = None,
) -> dict[str, Any]:
    """Search ``model``'s settings from ``config``; write ``config`` with the best of them to
    ``out_path`` and return ``{"params", "value", "trials"}``.

    Trials are asked ``parallel`` at a time and ``score_batch`` scores each batch (the
    ``tune`` flow runs them on a Prefect task runner, e.g. a Dask cluster); without it they
    train here, one after the other, on data prepared once. The timeout is checked between
    batches."""
    from cinegraph.graph_store.snapshot_io import read_snapshot

    if model not in TUNABLE:
        raise CinegraphError(f"--model {model}: nothing to tune; tunable: {list(TUNABLE)}")
    if trials < 1:
        raise CinegraphError(f"--trials {trials}: need at least 1")
    if parallel < 1:
        raise CinegraphError(f"--parallel {parallel}: need at least 1")
    base = config or TrainConfig()
    if score_batch is None:
        setup_torch(base)
        data = prepare_data(read_snapshot(snapshot_dir), base.data, base.seed).to(base.device)
        score_batch = lambda configs: [validation_score(model, data, c) for c in configs]  # noqa: E731
    t0 = time.perf_counter()

    def progress(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        log.info(
            "tune %s: trial %d/%d valid ndcg@20 %.4f (best %.4f), %.0fs elapsed",
            model,
            trial.number + 1,
            trials,
            trial.value,
            study.best_value,
            time.perf_counter() - t0,
        )

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # one line per trial, ours
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=base.seed))
    while len(study.trials) < trials and (timeout_s is None or time.perf_counter() - t0 < timeout_s):
        asked = [study.ask() for _ in range(min(parallel, trials - len(study.trials)))]
        values = score_batch([with_params(base, model, suggest(trial, model)) for trial in asked])
        for trial, value in zip(asked, values, strict=True):
            progress(study, study.tell(trial, value))
    best = study.best_trial
    params = suggest(optuna.trial.FixedTrial(best.params), model)
    tuned = with_params(base, model, params)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(tuned.model_dump(mode="json"), indent=2) + "\n")
    log.info("tune %s: best valid ndcg@20 %.4f with %s -> %s", model, best.value, params, out_path)
    return {"params": params, "value": best.value, "trials": len(study.trials)}
