"""The ``train`` flow: read the graph (Neo4j export or snapshot), pretrain both branches, fuse and
fine-tune, evaluate, keep checkpoints and a report, and write results back to Neo4j."""

from __future__ import annotations

import json
import os
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from cinegraph.flows import artifacts
from cinegraph.flows.train_params import TrainParams
from cinegraph.graph_store.connection import URI_VAR, open_driver, settings_from_env
from cinegraph.graph_store.export import ExportFilter, export_tables, filter_snapshot
from cinegraph.models.benchmark import (
    REPORT_FILE,
    RESULTS_FILE,
    propagation_speed,
    read_results,
    run_seed,
    write_results,
)
from cinegraph.models.config import TrainConfig
from cinegraph.models.data import PreparedData, export_split, prepare_data
from cinegraph.models.evaluate import RunResult
from cinegraph.models.train import finetune, plot_curves, pretrain


def reads_neo4j(source: str) -> bool:
    return source == "neo4j" or (source == "auto" and bool(os.environ.get(URI_VAR)))


@task(name="read-graph", cache_policy=NO_CACHE)
def read_graph(snapshot: Path, subgraph: ExportFilter, from_neo4j: bool, database: str) -> dict[str, pa.Table]:
    if not from_neo4j:
        return filter_snapshot(snapshot, subgraph)
    with open_driver(settings_from_env()) as driver:
        return export_tables(driver, subgraph, database=database)


@task(name="prepare-data", cache_policy=NO_CACHE)
def prepare(tables: dict[str, pa.Table], config: TrainConfig, seed_dir: Path) -> PreparedData:
    data = prepare_data(tables, config.data, config.seed).to(config.device)
    export_split(data, seed_dir / "split")
    return data


@task(name="pretrain", task_run_name="pretrain {kind} (seed {config.seed})", cache_policy=NO_CACHE)
def pretrain_branch(kind: Literal["gcn", "hgt"], data: PreparedData, config: TrainConfig, seed_dir: Path,
                    progress: artifacts.Progress) -> tuple[Any, RunResult]:  # fmt: skip
    try:
        return pretrain(kind, data, config, seed_dir, on_epoch=epoch_reporter(progress))
    finally:
        progress.finish_stage()


@task(name="fuse-finetune", task_run_name="fuse and fine-tune (seed {config.seed})", cache_policy=NO_CACHE)
def fuse(gcn: Any, hgt: Any, data: PreparedData, config: TrainConfig, seed_dir: Path,
         progress: artifacts.Progress) -> tuple[Any, RunResult]:  # fmt: skip
    try:
        return finetune(gcn, hgt, data, config, seed_dir, on_epoch=epoch_reporter(progress))
    finally:
        progress.finish_stage()


def epoch_reporter(progress: artifacts.Progress) -> Callable[[str, dict[str, float]], None]:
    """The training loop's per-epoch callback inside a task: one log line per evaluated epoch
    (loss and validation score) and the progress artifact advanced by one epoch."""
    logger = get_run_logger()

    def report(stage: str, row: dict[str, float]) -> None:
        progress.step()
        if "valid_score" in row:
            logger.info("%s epoch %d: loss %.4f, validation score %.4f", stage, int(row["epoch"]),
                        row["loss"], row["valid_score"])  # fmt: skip

    return report


def train_seed(tables: dict[str, pa.Table], config: TrainConfig, seed_dir: Path,
               progress: artifacts.Progress) -> tuple[Any, PreparedData, dict[str, RunResult]]:  # fmt: skip
    """Both branches pretrained independently, then fused and fine-tuned end to end."""
    seed_dir.mkdir(parents=True, exist_ok=True)
    data = prepare(tables, config, seed_dir)
    progress.start_stage(config.gcn_epochs)
    gcn, gcn_result = pretrain_branch("gcn", data, config, seed_dir, progress)
    progress.start_stage(config.hgt_epochs)
    hgt, hgt_result = pretrain_branch("hgt", data, config, seed_dir, progress)
    progress.start_stage(config.fusion_epochs)
    fused, fused_result = fuse(gcn, hgt, data, config, seed_dir, progress)
    for result in (gcn_result, hgt_result, fused_result):
        plot_curves(result.history, result.name, seed_dir / f"curves_{result.name}.png")
    return fused, data, {r.name: r for r in (fused_result, gcn_result, hgt_result)}


@task(name="write-back", cache_policy=NO_CACHE)
def write_back(model: Any, data: PreparedData, run_id: str, top_k: int, database: str) -> dict[str, int]:
    """Top-K per user as RECOMMENDED edges (a re-run of ``run_id`` replaces them) and the fused
    movie embeddings under the vector index."""
    from cinegraph.graph_store.results import write_movie_embeddings, write_recommendations
    from cinegraph.models.recommend import movie_embeddings, recommendation_table

    logger = get_run_logger()
    recs = recommendation_table(model, data, top_k)
    movie_ids, embeddings = movie_embeddings(model, data)
    logger.info("writing %d recommendations (top %d of %d users) and %d movie embeddings to Neo4j",
                recs.num_rows, top_k, data.num_users, len(movie_ids))  # fmt: skip
    started = time.perf_counter()
    with open_driver(settings_from_env()) as driver:
        edges = write_recommendations(driver, recs, run_id=run_id, model="fused", database=database)
        logger.info("wrote %d RECOMMENDED edges of run %s", edges, run_id)
        vectors = write_movie_embeddings(driver, movie_ids, embeddings, database=database)
    logger.info("wrote %d movie embeddings in %.1fs in all", vectors, time.perf_counter() - started)
    return {"recommended_edges": edges, "movie_embeddings": vectors}


@flow(name="train")
def train(params: TrainParams = TrainParams()) -> dict[str, Any]:  # noqa: B008
    """Read the graph, train the fused model per seed (``benchmark``: every baseline too),
    publish the evaluation table and report, write results back to Neo4j when configured."""
    logger = get_run_logger()
    run_id = params.run_name or f"{flow_run.get_name() or 'run'}-{str(flow_run.get_id())[:8]}"
    run_dir = Path(params.out) / run_id
    from_neo4j = reads_neo4j(params.source)
    tables = read_graph(Path(params.snapshot), params.subgraph, from_neo4j, params.neo4j_database)
    if params.mode == "benchmark":
        done, report = benchmark_models(tables, params, run_dir)
    else:
        done = train_seeds(tables, params, run_dir)
        report = write_report(run_dir, f"cinegraph train {run_id}", done)
    summary = done.summary
    protocol = params.model.data.protocol
    rows = (artifacts.protocol_rows(read_results(run_dir)) if params.mode == "benchmark"
            else artifacts.evaluation_rows(summary, protocol))  # fmt: skip
    artifacts.publish_table("evaluation", rows, f"test metrics, run {run_id}")
    artifacts.publish_markdown("training-report", report.read_text(), f"report of run {run_id}")
    written = None
    wanted = params.write_back if params.write_back is not None else from_neo4j
    if done.model is not None and done.data is not None and wanted:
        written = write_back(done.model, done.data, run_id, params.top_k, params.neo4j_database)
        logger.info("wrote back %s", written)
    logger.info("run %s done: report %s", run_id, report)
    return {"run_id": run_id, "run_dir": str(run_dir), "report": str(report), "summary": summary,
            "write_back": written}  # fmt: skip


@dataclass
class Trained:
    """What a train or benchmark run leaves: the summary over seeds, the first seed's curves and
    its fused model and data (what is written back)."""

    summary: dict[str, dict[str, dict]]
    histories: dict[str, list[dict[str, float]]]
    curves: dict[str, Path]
    model: Any  # None in benchmark mode: nothing is written back
    data: PreparedData | None


def train_seeds(tables: dict[str, pa.Table], params: TrainParams, run_dir: Path) -> Trained:
    m = params.model
    epochs = (m.gcn_epochs + m.hgt_epochs + m.fusion_epochs) * len(params.seeds)
    progress = artifacts.Progress("training", epochs, "training epochs done (early stopping skips ahead)")
    per_seed: dict[str, list[dict[str, float]]] = defaultdict(list)
    first: Trained | None = None
    for seed in params.seeds:
        config = params.model.model_copy(update={"seed": seed})
        seed_dir = run_dir / f"seed-{seed}"
        fused, data, results = train_seed(tables, config, seed_dir, progress)
        for name, result in results.items():
            per_seed[name].append(result.metrics)
        if first is None:
            curves = {name: seed_dir / f"curves_{name}.png" for name in results}
            first = Trained({}, {n: r.history for n, r in results.items()}, curves, fused, data)
    assert first is not None  # TrainParams holds at least one seed
    first.summary = artifacts.summarize(per_seed)
    return first


@task(name="benchmark-seed", task_run_name="benchmark seed {seed}", cache_policy=NO_CACHE)
def benchmark_seed(
    tables: dict[str, pa.Table], config: TrainConfig, seed: int, run_dir: Path
) -> tuple[dict[str, RunResult], dict[str, float]]:
    return run_seed(tables, config, seed, run_dir)


def benchmark_models(tables: dict[str, pa.Table], params: TrainParams, run_dir: Path) -> tuple[Trained, Path]:
    """Every baseline and ablation beside the fused model, seed by seed, on the same splits;
    results.json and the models' own report (verdicts against the best baseline)."""
    started = time.perf_counter()
    run_dir.mkdir(parents=True, exist_ok=True)
    progress = artifacts.Progress("training", len(params.seeds), "benchmark seeds done")
    config = params.model
    speed = propagation_speed(prepare_data(tables, config.data, params.seeds[0]).to(config.device), config)
    per_seed, seconds = [], []
    for seed in params.seeds:
        results, secs = benchmark_seed(tables, config, seed, run_dir)
        per_seed.append(results)
        seconds.append(secs)
        progress.step()
    curves = {name: run_dir / f"curves_{name}.png" for name in per_seed[0]}
    for name, result in per_seed[0].items():
        plot_curves(result.history, name, curves[name])
    summary = write_results(run_dir, per_seed, seconds, seeds=params.seeds, config=config, speed=speed,
                            snapshot=params.snapshot, wall_seconds=time.perf_counter() - started)
    histories = {name: r.history for name, r in per_seed[0].items()}
    return Trained(summary["models"], histories, curves, None, None), run_dir / REPORT_FILE


def write_report(run_dir: Path, title: str, done: Trained) -> Path:
    """results.json (mean, std and per-seed values per model and metric) and report.md."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / RESULTS_FILE).write_text(json.dumps({"models": done.summary}, indent=2))
    report = run_dir / REPORT_FILE
    report.write_text(artifacts.report_markdown(title, done.summary, done.histories, done.curves))
    return report
