"""The ``tune`` flow: one model's Optuna search (:func:`cinegraph.models.tune.tune`) whose trials
run as tasks on the train flow's task runners: one after the other in this process, or a batch
of ``parallel`` trials at a time on a Dask cluster. Each trial task reads the snapshot, prepares
the seed's split and returns the validation ndcg@20."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from cinegraph.flows.train import task_runner
from cinegraph.flows.train_params import TuneParams
from cinegraph.models.config import TrainConfig
from cinegraph.models.tune import tune as search_models


@task(name="tune-trial", task_run_name="trial {number}", cache_policy=NO_CACHE)
def trial(snapshot: Path, model: str, config: TrainConfig, number: int) -> float:
    """Validation ndcg@20 of ``model`` trained with ``config`` (trial ``number`` of the study)."""
    from cinegraph.graph_store.snapshot_io import read_snapshot
    from cinegraph.models.data import prepare_data
    from cinegraph.models.runner import setup_torch
    from cinegraph.models.tune import validation_score

    setup_torch(config)
    data = prepare_data(read_snapshot(snapshot), config.data, config.seed).to(config.device)
    return validation_score(model, data, config)


@flow(name="tune")
def tune(params: TuneParams = TuneParams()) -> dict[str, Any]:  # noqa: B008
    """Search ``params.model``'s settings; write the best into ``params.out``."""
    logger = get_run_logger()
    done = [0]  # trials submitted so far: names the task runs
    with task_runner(params.task_runner, params.dask_address, params.parallel) as runner:

        def score_batch(model: str, configs: list[TrainConfig]) -> list[float]:
            futures = [
                runner.submit(trial, {"snapshot": Path(params.snapshot), "model": model, "config": c, "number": n})
                for n, c in enumerate(configs, start=done[0] + 1)
            ]
            done[0] += len(configs)
            return [f.result() for f in futures]

        study = search_models(
            Path(params.snapshot),
            [params.model],
            Path(params.out),
            params.trials,
            params.timeout_s,
            params.config,
            params.parallel,
            score_batch,
        )
    result = study["models"][params.model]
    logger.info(
        "tune %s: best valid ndcg@20 %.4f after %d trials -> %s",
        params.model,
        result["best_value"],
        result["trials_done"],
        params.out,
    )
    return study
