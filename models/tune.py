"""``cinegraph tune``: an equal-budget hyperparameter search of models on the validation split of one seed.

Optuna's TPE sampler proposes a setting per trial; the trial trains the model on the split of
``seed`` (0 by default, never the test split) and scores validation ``ndcg@20``. Each model's
search stops after ``trials`` trials or ``timeout_s`` seconds, whichever comes first (a trial in
flight at the time limit finishes), so a tuned fused model meets baselines tuned with the same
budget. Each search starts with the setting it is given, so tuning never forgets a good default
(a baseline's default grid is scored once, outside the budget, and kept unless a trial beats it).
The result is a :class:`TrainConfig` JSON: the fused model's fields directly, a baseline's under
``baselines.<name>``; one file carries every tuned model to ``cinegraph train --config`` and
``benchmark --config``. Next to it, ``<out>.study.json`` records the budget and every trial
(setting, validation score, seconds), so the study itself can be reported. Trials can run
``parallel`` at a time on a Prefect task runner, a Dask cluster included (the ``tune`` flow,
:mod:`cinegraph.flows.tune`).
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import optuna

from cinegraph.errors import CinegraphError
from cinegraph.models.config import TrainConfig
from cinegraph.models.data import PreparedData, prepare_data
from cinegraph.models.runner import setup_torch

log = logging.getLogger(__name__)

# (model, trial configs) -> their validation ndcg@20; the tune flow runs them on a task runner
ScoreBatch = Callable[[str, list[TrainConfig]], list[float]]

TUNABLE = ("fused", "lightgcn", "mf_bpr", "ease", "itemknn", "content_knn")
FUSED_SPACE = (
    "hidden_dim",
    "gcn_layers",
    "temperature",
    "emb_l2",
    "gcn_lr",
    "hgt_lr",
    "fusion_lr",
    "item_item_lambda",
    "item_item_scale",
    "cold_dropout",
    "hgt_cold_dropout",
    "dropout",
)


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
            "fusion_lr": trial.suggest_float("fusion_lr", 2e-4, 1e-2, log=True),
            "item_item_lambda": trial.suggest_float("item_item_lambda", 20.0, 2000.0, log=True),
            "item_item_scale": trial.suggest_float("item_item_scale", 2.0, 100.0, log=True),
            "cold_dropout": trial.suggest_float("cold_dropout", 0.0, 0.5),
            "hgt_cold_dropout": trial.suggest_float("hgt_cold_dropout", 0.0, 0.5),
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


def start_params(config: TrainConfig, model: str) -> dict[str, Any] | None:
    """``model``'s setting in ``config`` as Optuna parameters, the search's first trial; None
    where the config holds no single point of the space (a baseline's default grid)."""
    from cinegraph.models.benchmark import baseline_config

    if model == "fused":
        return {name: getattr(config, name) for name in FUSED_SPACE}
    fields = baseline_config(model, config).model_dump()
    if model in ("mf_bpr", "lightgcn"):
        names = ("embedding_dim", "lr", "lambda_reg") + (("num_layers",) if model == "lightgcn" else ())
        return {name: fields[name] for name in names}
    if model == "ease" and len(fields["lambdas"]) == 1:
        return {"lambda": fields["lambdas"][0]}
    if model == "itemknn" and len(fields["ks"]) == len(fields["shrinks"]) == 1:
        return {"k": fields["ks"][0], "shrink": fields["shrinks"][0]}
    if model == "content_knn" and len(fields["weightings"]) == len(fields["ks"]) == 1:
        return {f"w_{b}": w for b, w in fields["weightings"][0].items()} | {"k": fields["ks"][0]}
    return None


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


def study_path(out_path: Path) -> Path:
    """Where the per-trial record of the search that writes ``out_path`` goes."""
    return out_path.with_name(out_path.stem + ".study.json")


def search(
    model: str,
    base: TrainConfig,
    trials: int,
    timeout_s: float | None,
    score_batch: Callable[[list[TrainConfig]], list[float]],
    parallel: int = 1,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """One model's search from ``base``: its best config fields (none where the starting grid of
    a baseline scores at least as well as every trial) and the record of every trial.

    Trials are asked ``parallel`` at a time (TPE proposes a batch before seeing its results) and
    ``score_batch`` trains them; the time limit is checked between batches, and each trial records
    the seconds of its batch."""
    seconds: dict[int, float] = {}

    def progress(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        log.info(
            "tune %s: trial %d/%d valid ndcg@20 %.4f in %.0fs (best %.4f), %.0fs elapsed",
            model,
            trial.number + 1,
            trials,
            trial.value,
            seconds[trial.number],
            study.best_value,
            time.perf_counter() - t0,
        )

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # one line per trial, ours
    # TPE samples at random until n_startup_trials are done (10 by default): on a budget of 10 it
    # would never model anything, so a third of the budget explores and the rest exploits
    sampler = optuna.samplers.TPESampler(seed=base.seed, n_startup_trials=min(10, max(2, trials // 3)))
    study = optuna.create_study(direction="maximize", sampler=sampler)
    start = start_params(base, model)
    start_value = None
    try:
        if start is None:  # a grid: its own validation selection is the value to beat, outside the budget
            start_value = score_batch([base])[0]
            log.info("tune %s: the starting grid scores valid ndcg@20 %.4f", model, start_value)
        else:
            suggest(optuna.trial.FixedTrial(start), model)  # a categorical value outside the space raises
            study.enqueue_trial(start, skip_if_exists=True)
    except ValueError as exc:
        log.info("tune %s: the starting setting is outside the search space (%s); not tried first", model, exc)
    t0 = time.perf_counter()
    while len(seconds) < trials and (timeout_s is None or time.perf_counter() - t0 < timeout_s):
        asked = [study.ask() for _ in range(min(parallel, trials - len(seconds)))]  # an enqueued start first
        started = time.perf_counter()
        values = score_batch([with_params(base, model, suggest(trial, model)) for trial in asked])
        elapsed = time.perf_counter() - started
        for trial, value in zip(asked, values, strict=True):
            seconds[trial.number] = elapsed
            progress(study, study.tell(trial, value))
    best_value = study.best_value
    keep_start = start_value is not None and start_value >= best_value
    params = {} if keep_start else suggest(optuna.trial.FixedTrial(study.best_params), model)
    record = {
        "best_value": start_value if keep_start else best_value,
        "best_params": params,
        "start_value": start_value,
        "trials_done": len(study.trials),
        "seconds": time.perf_counter() - t0,
        "trials": [
            {"number": t.number, "params": t.params, "value": t.value, "seconds": seconds[t.number]}
            for t in study.trials
        ],
    }
    log.info("tune %s: best valid ndcg@20 %.4f with %s", model, record["best_value"], params or "the starting grid")
    return params, record


def tune(
    snapshot_dir: Path,
    models: Sequence[str],
    out_path: Path,
    trials: int = 20,
    timeout_s: float | None = None,
    config: TrainConfig | None = None,
    parallel: int = 1,
    score_batch: ScoreBatch | None = None,
) -> dict[str, Any]:
    """Search each of ``models`` in turn from ``config``, every one with the same budget of
    ``trials`` trials and ``timeout_s`` seconds, on one split. After each model, write the config
    with the best settings so far to ``out_path`` and the study to :func:`study_path`; return the
    study (``budget`` and per model ``best_value``, ``best_params``, ``trials_done``, ``seconds``,
    ``trials``).

    Without ``score_batch`` the trials train here, one after the other, on data prepared once;
    the ``tune`` flow passes one that runs each batch of ``parallel`` trials on a task runner."""
    from cinegraph.graph_store.snapshot_io import read_snapshot

    for model in models:
        if model not in TUNABLE:
            raise CinegraphError(f"--model {model}: nothing to tune; tunable: {list(TUNABLE)}")
    if not models:
        raise CinegraphError(f"--model: name at least one of {list(TUNABLE)}")
    if trials < 1:
        raise CinegraphError(f"--trials {trials}: need at least 1")
    if parallel < 1:
        raise CinegraphError(f"--parallel {parallel}: need at least 1")
    tuned = config or TrainConfig()
    if score_batch is None:
        setup_torch(tuned)
        data = prepare_data(read_snapshot(snapshot_dir), tuned.data, tuned.seed).to(tuned.device)

        def score_batch(model: str, configs: list[TrainConfig]) -> list[float]:
            return [validation_score(model, data, c) for c in configs]

    budget = {"trials": trials, "timeout_s": timeout_s, "parallel": parallel}  # every model's, the same
    record_path = study_path(out_path)
    try:
        study: dict[str, Any] = json.loads(record_path.read_text()) if record_path.exists() else {}
    except json.JSONDecodeError as exc:
        raise CinegraphError(f"{record_path}: cannot read JSON ({exc})") from exc
    study = {
        "snapshot": str(snapshot_dir),
        "seed": tuned.seed,
        "protocol": tuned.data.protocol,
        "split": "validation",
        "metric": "ndcg@20",
        "budget": budget,
        "models": study.get("models", {}),
    }
    out_path.parent.mkdir(parents=True, exist_ok=True)
    for model in models:
        scorer = functools.partial(score_batch, model)
        params, study["models"][model] = search(model, tuned, trials, timeout_s, scorer, parallel)
        study["models"][model]["budget"] = budget
        tuned = with_params(tuned, model, params)
        out_path.write_text(json.dumps(tuned.model_dump(mode="json"), indent=2) + "\n")
        record_path.write_text(json.dumps(study, indent=2) + "\n")
        log.info("tune %s -> %s, %s", model, out_path, record_path)
    return study
