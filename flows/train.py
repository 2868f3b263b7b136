"""The ``train`` flow: read the graph (Neo4j export or snapshot), train each seed as a task (the
fused model and its branches; in benchmark mode every baseline and ablation too) one after the
other or in parallel on a Dask cluster, publish the evaluation and the report, and write the
first seed's recommendations back to Neo4j. Every step is :mod:`models.runner`'s."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from cinegraph.flows import artifacts
from cinegraph.flows.train_params import TrainParams
from cinegraph.graph_store.connection import URI_VAR, open_driver, settings_from_env
from cinegraph.graph_store.export import ExportFilter, export_tables, filter_snapshot
from cinegraph.models.benchmark import MODELS
from cinegraph.models.config import TrainConfig
from cinegraph.models.early_stopping import EpochCallback
from cinegraph.models.runner import (
    REPORT_FILE,
    TRAIN_MODELS,
    SeedRun,
    epoch_budget,
    measure_speed,
    read_results,
    run_seed,
    seed_dir,
    snapshot_label,
    stage_epochs,
    write_results,
)
from cinegraph.models.train import refit, serving_data


def reads_neo4j(source: str) -> bool:
    return source == "neo4j" or (source == "auto" and bool(os.environ.get(URI_VAR)))


@task(name="read-graph", cache_policy=NO_CACHE)
def read_graph(snapshot: Path, subgraph: ExportFilter, from_neo4j: bool, database: str) -> dict[str, pa.Table]:
    if not from_neo4j:
        return filter_snapshot(snapshot, subgraph)
    with open_driver(settings_from_env()) as driver:
        return export_tables(driver, subgraph, database=database)


@task(name="propagation-speed", cache_policy=NO_CACHE)
def propagation(
    tables: dict[str, pa.Table], config: TrainConfig, models: tuple[str, ...], seed: int
) -> dict[str, Any] | None:
    return measure_speed(tables, config, models, seed)


@task(name="train-seed", task_run_name="seed {seed}", cache_policy=NO_CACHE)
def train_seed(
    tables: dict[str, pa.Table],
    config: TrainConfig,
    seed: int,
    run_dir: Path,
    models: tuple[str, ...],
    progress: artifacts.Progress,
) -> SeedRun:
    """One seed's models; ``progress`` stands where this seed's share of the epochs starts."""
    start = progress.done
    run = run_seed(tables, config, seed, run_dir, models, on_epoch=epoch_reporter(progress, config))
    progress.set(start + epoch_budget(config, models))
    return run


def epoch_reporter(progress: artifacts.Progress, config: TrainConfig) -> EpochCallback:
    """The training loop's per-epoch callback inside a task: one log line per evaluated epoch
    (loss, validation ndcg@20 and genre mAP) and the progress artifact moved to the epoch reached. A stage
    starting (epoch 1) closes the previous one at its full length: early stopping skips ahead."""
    logger = get_run_logger()
    base, current = progress.done, ""

    def report(stage: str, row: dict[str, float]) -> None:
        nonlocal base, current
        if row["epoch"] == 1 and current:
            base += stage_epochs(config, current)
        current = stage
        progress.set(base + int(row["epoch"]))
        if "valid_score" in row:  # metrics a reader knows: the selection score may be a ratio or -inf
            shown = [k for k in row if k.startswith("valid_ndcg@") and "_" not in k[6:]] + ["valid_map"]
            metrics = ", ".join(f"{k.removeprefix('valid_')} {row[k]:.4f}" for k in shown if k in row)
            logger.info("%s epoch %d: loss %.4f, validation %s", stage, int(row["epoch"]), row["loss"], metrics)

    return report


def task_runner(kind: str, address: str | None, workers: int) -> TaskRunner:
    """Where seeds or trials run: one after the other here (they share this process's random
    number generators), or in parallel on a Dask cluster (``address``, else a temporary local one
    of ``workers`` single-threaded workers)."""
    if kind == "dask":
        from prefect_dask import DaskTaskRunner

        if address:
            return DaskTaskRunner(address=address)
        return DaskTaskRunner(cluster_kwargs={"n_workers": workers, "threads_per_worker": 1})
    return ThreadPoolTaskRunner(max_workers=1)


@task(name="write-results", cache_policy=NO_CACHE)
def report(
    run_dir: Path,
    runs: list[SeedRun],
    config: TrainConfig,
    graph: str,
    speed: dict[str, Any] | None,
    title: str,
    wall_seconds: float,
) -> dict[str, Any]:
    return write_results(run_dir, runs, config=config, graph=graph, speed=speed, title=title, wall_seconds=wall_seconds)


@task(name="refit", task_run_name="refit on every rating (seed {config.seed})", cache_policy=NO_CACHE)
def refit_for_serving(tables: dict[str, pa.Table], config: TrainConfig, evaluated: Path) -> Path:
    """The method again on all of each user's data, for the epochs the evaluation selected."""
    return refit(tables, config, evaluated, evaluated / "refit")


@task(name="write-back", cache_policy=NO_CACHE)
def write_back(
    tables: dict[str, pa.Table], config: TrainConfig, checkpoints: Path, run_id: str, top_k: int, database: str
) -> dict[str, int]:
    """The fused model in ``checkpoints``, reloaded on the data it was trained on (``config.data``,
    ``config.seed``): top-K per user as RECOMMENDED edges (a re-run of ``run_id`` replaces them)
    and the movie embeddings under the vector index."""
    from cinegraph.graph_store.results import write_movie_embeddings, write_recommendations
    from cinegraph.models.data import prepare_data
    from cinegraph.models.recommend import movie_embeddings, recommendation_table
    from cinegraph.models.registry import load_checkpoint

    logger = get_run_logger()
    data = prepare_data(tables, config.data, config.seed).to(config.device)
    model, _ = load_checkpoint(checkpoints / "fused.pt", data, config)
    recs = recommendation_table(model, data, top_k)
    movie_ids, embeddings = movie_embeddings(model, data)
    logger.info(
        "writing %d recommendations (top %d of %d users) and %d movie embeddings to Neo4j",
        recs.num_rows,
        top_k,
        data.num_users,
        len(movie_ids),
    )
    started = time.perf_counter()
    with open_driver(settings_from_env()) as driver:
        edges = write_recommendations(driver, recs, run_id=run_id, model="fused", database=database)
        logger.info("wrote %d RECOMMENDED edges of run %s", edges, run_id)
        vectors = write_movie_embeddings(driver, movie_ids, embeddings, database=database)
    logger.info("wrote %d movie embeddings in %.1fs in all", vectors, time.perf_counter() - started)
    return {"recommended_edges": edges, "movie_embeddings": vectors}


@flow(name="train")
def train(params: TrainParams = TrainParams()) -> dict[str, Any]:  # noqa: B008
    """Read the graph, train per seed (``benchmark``: every baseline too), publish the evaluation
    table and report, write results back to Neo4j when configured."""
    logger = get_run_logger()
    run_id = params.run_name or f"{flow_run.get_name() or 'run'}-{str(flow_run.get_id())[:8]}"
    run_dir = Path(params.out) / run_id
    from_neo4j = reads_neo4j(params.source)
    tables = read_graph(Path(params.snapshot), params.subgraph, from_neo4j, params.neo4j_database)
    config, models = params.model, TRAIN_MODELS if params.mode == "train" else MODELS
    started = time.perf_counter()
    speed = propagation(tables, config, models, params.seeds[0])
    budget = epoch_budget(config, models)
    progress = artifacts.Progress(
        "training", budget * len(params.seeds), "training epochs done (early stopping skips ahead)"
    )
    with task_runner(params.task_runner, params.dask_address, len(params.seeds)) as runner:
        futures = [
            runner.submit(
                train_seed,
                {
                    "tables": tables,
                    "config": config,
                    "seed": seed,
                    "run_dir": run_dir,
                    "models": models,
                    "progress": progress.at(i * budget),
                },
            )
            for i, seed in enumerate(params.seeds)
        ]
        runs = [f.result() for f in futures]
    progress.set(progress.total)
    graph = f"Neo4j database {params.neo4j_database}" if from_neo4j else snapshot_label(Path(params.snapshot))
    summary = report(
        run_dir, runs, config, graph, speed, f"cinegraph {params.mode} {run_id}", time.perf_counter() - started
    )
    report_path = run_dir / REPORT_FILE
    artifacts.publish_table("evaluation", artifacts.protocol_rows(read_results(run_dir)), f"test metrics, run {run_id}")
    artifacts.publish_markdown("training-report", report_path.read_text(), f"report of run {run_id}")
    written = None
    if params.write_back if params.write_back is not None else from_neo4j:
        served = config.model_copy(update={"seed": params.seeds[0]})
        checkpoints = seed_dir(run_dir, config.data.protocol, served.seed)
        if params.refit:
            checkpoints = refit_for_serving(tables, served, checkpoints)
            served = served.model_copy(update={"data": serving_data(config.data)})
        written = write_back(tables, served, checkpoints, run_id, params.top_k, params.neo4j_database)
        logger.info("wrote back %s", written)
    logger.info("run %s done: report %s", run_id, report_path)
    return {
        "run_id": run_id,
        "run_dir": str(run_dir),
        "report": str(report_path),
        "summary": summary["models"],
        "write_back": written,
    }
