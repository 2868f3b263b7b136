"""The one run driver of ``cinegraph train``, ``cinegraph benchmark`` and the ``train`` flow: per
seed, the selected models on the same splits (:func:`run_seed`); over the seeds, ``results.json``
and ``report.md`` (:func:`write_results`). ``cinegraph train`` is the run of the fused model and its
branches, ``cinegraph benchmark`` of every model (:data:`models.benchmark.MODELS`).

A run folder ``<out>`` holds::

    report.md                      every protocol run into <out>, curves inline
    ndcg20_per_seed.png
    <protocol>/results.json        mean, std and per-seed value of every model and metric
    <protocol>/seed-<n>/           split/*.csv, checkpoints (gcn.pt, hgt.pt, fused.pt, ...),
                                   curves_<model>.png; ablations that pretrain their own
                                   branches in a folder of their own (fused_no_imdb/, ...)

Per seed the data is prepared once (the MovieLens-only ablation prepares its own graph and is
checked to hold the very same splits). The branches pretrained for ``gcn_branch`` and
``hgt_branch`` are the ones ``fused`` and ``fused_concat`` fine-tune (each from its own copy), so
the ablation isolates the fusion.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import torch

from cinegraph.errors import CinegraphError
from cinegraph.models import distributed
from cinegraph.models.benchmark import MODELS, PROTOCOLS, baseline_config, baselines, peak_memory, propagation_speed
from cinegraph.models.config import TrainConfig
from cinegraph.models.data import PreparedData, export_split, prepare_data
from cinegraph.models.early_stopping import EpochCallback
from cinegraph.models.evaluate import RunResult
from cinegraph.models.plots import plot_curves
from cinegraph.models.report import write_report
from cinegraph.models.train import finetune, pretrain, train_fused

log = logging.getLogger(__name__)

TRAIN_MODELS = ("fused", "gcn_branch", "hgt_branch")  # what `cinegraph train` runs
RESULTS_FILE, REPORT_FILE = "results.json", "report.md"
VALID_KEPT = ("ndcg@20", "recall@20", "mrr@20", "map", "macro_f1")  # validation metrics kept
RETRAINED = ("fused_single_task", "fused_no_imdb")  # ablations that pretrain their own branches


def setup_torch(config: TrainConfig) -> None:
    """Check the device is there and set the CPU threads, before anything is trained."""
    if config.device == "cuda" and not torch.cuda.is_available():
        raise CinegraphError(f"--device {config.device}: CUDA is not available on this machine")
    if config.num_threads:
        torch.set_num_threads(config.num_threads)


def check_request(models: tuple[str, ...], protocols: tuple[str, ...], seeds: list[int]) -> None:
    unknown = sorted(set(models) - set(MODELS))
    if unknown or not models:
        raise CinegraphError(f"--models: unknown {unknown or list(models)}; known: {list(MODELS)}")
    bad = sorted(set(protocols) - set(PROTOCOLS))
    if bad or not protocols:
        raise CinegraphError(f"--protocol: unknown {bad or list(protocols)}; known: {list(PROTOCOLS)}")
    if not seeds:
        raise CinegraphError("--seeds: need at least 1")


def seed_dir(out_dir: Path, protocol: str, seed: int) -> Path:
    return out_dir / protocol / f"seed-{seed}"


def stages(models: tuple[str, ...]) -> list[str]:
    """The training stages a seed of ``models`` goes through, in order (what reports epochs)."""
    out = ["gcn", "hgt"] if {"gcn_branch", "hgt_branch", "fused", "fused_concat"} & set(models) else []
    out += [m for m in ("fused", "fused_concat") if m in models]
    for m in RETRAINED:
        if m in models:
            out += ["gcn", "hgt", m]
    return out


def stage_epochs(config: TrainConfig, stage: str) -> int:
    """The most epochs ``stage`` may train (early stopping may end it sooner)."""
    return {"gcn": config.gcn_epochs, "hgt": config.hgt_epochs}.get(stage, config.fusion_epochs)


def epoch_budget(config: TrainConfig, models: tuple[str, ...]) -> int:
    return sum(stage_epochs(config, s) for s in stages(models))


@dataclass
class SeedRun:
    """What one seed leaves: each model's result, its wall seconds of training, and the torch CPU
    threads it trained with (a Dask worker's, not the flow's)."""

    seed: int
    results: dict[str, RunResult]
    seconds: dict[str, float]
    threads: int


def run_seed(
    tables: dict[str, pa.Table],
    config: TrainConfig,
    seed: int,
    out_dir: Path,
    models: tuple[str, ...] = MODELS,
    on_epoch: EpochCallback | None = None,
) -> SeedRun:
    """Every selected model on the splits of ``seed``, its files in ``<out_dir>/<protocol>/seed-<seed>``
    (written by process 0 alone under ``torchrun``)."""
    setup_torch(config)
    cfg, dev = config.model_copy(update={"seed": seed}), config.device
    folder = seed_dir(out_dir, cfg.data.protocol, seed)
    writes = distributed.is_main()
    ckpt_dir = folder if writes else None  # checkpoints: process 0 only
    data = prepare_data(tables, cfg.data, seed).to(dev)
    if writes:
        folder.mkdir(parents=True, exist_ok=True)
        export_split(data, folder / "split")
    run = SeedRun(seed, {}, {}, threads=torch.get_num_threads())

    def timed(name: str, fn: Callable[[], RunResult]) -> None:
        t0 = time.perf_counter()
        with peak_memory(dev) as mem:
            result = fn()
        run.seconds[name] = time.perf_counter() - t0
        result.peak_mem_mb = mem["mb"]
        run.results[name] = result
        log.info("%s: %.0fs, test ndcg@20 %.4f", name, run.seconds[name], result.metrics["ndcg@20"])

    for name, (fn, _) in baselines().items():
        if name in models:
            bcfg = baseline_config(name, cfg)
            timed(name, partial(fn, data, bcfg, seed, dev))
    branches: dict[str, Any] = {}
    if "gcn" in stages(models):
        kinds: tuple[Literal["gcn", "hgt"], ...] = ("gcn", "hgt")
        for kind in kinds:

            def fit(kind: Literal["gcn", "hgt"] = kind) -> RunResult:
                branches[kind], result = pretrain(kind, data, cfg, ckpt_dir, on_epoch)
                return result

            timed(f"{kind}_branch", fit)

    def fuse(name: str, config: TrainConfig) -> RunResult:  # each from its own copy of the branches
        gcn, hgt = copy.deepcopy(branches["gcn"]), copy.deepcopy(branches["hgt"])
        return finetune(gcn, hgt, data, config, ckpt_dir, name, on_epoch)[1]

    def retrain(name: str) -> RunResult:
        own, ocfg = _ablation(tables, data, cfg, name)
        sub = folder / name if writes else None
        if sub is not None:
            sub.mkdir(parents=True, exist_ok=True)
        return train_fused(own, ocfg, sub, name, on_epoch)[name]

    for name, mode in (("fused", "cross_attention"), ("fused_concat", "concat")):
        if name in models:
            timed(name, partial(fuse, name, cfg.model_copy(update={"fusion": mode})))
            run.seconds[name] += run.seconds["gcn_branch"] + run.seconds["hgt_branch"]  # whole method
    for name in RETRAINED:
        if name in models:
            timed(name, partial(retrain, name))
    if writes:
        for name, r in run.results.items():
            plot_curves(r.history, f"{name} seed {seed}", folder / f"curves_{name}.png")
    return run


def _ablation(
    tables: dict[str, pa.Table], data: PreparedData, config: TrainConfig, name: str
) -> tuple[PreparedData, TrainConfig]:
    """The data and config of a retrained ablation: without auxiliary tasks, or without IMDb
    (its own graph, checked to hold the same splits)."""
    if name == "fused_single_task":
        return data, config.model_copy(update={"single_task": True})
    dcfg = config.data.model_copy(update={"include_imdb": False})
    ml_only = prepare_data(tables, dcfg, config.seed).to(config.device)
    for split in ("train", "valid", "test"):
        if not torch.equal(ml_only.edges(split), data.edges(split)):
            raise CinegraphError(f"include_imdb=False changed the {split} split of seed {config.seed}")
    return ml_only, config.model_copy(update={"data": dcfg})


def aggregate(runs: list[SeedRun]) -> dict[str, dict[str, dict[str, Any]]]:
    """``{"<model>": {"<metric>": {"mean", "std", "per_seed"}}}`` over seeds; test metrics by
    name, validation ones as ``valid_<name>``, cost figures (``epoch_seconds``,
    ``train_seconds``, ``peak_mem_mb``) ride along as metrics. ``per_seed`` keeps a NaN (an
    empty slice); mean and sample std are over the finite values (NaN when there are none)."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for name in runs[0].results:
        rows = [
            {
                **r.results[name].metrics,
                **{f"valid_{k}": v for k, v in r.results[name].valid_metrics.items() if k in VALID_KEPT},
                "epoch_seconds": r.results[name].epoch_seconds,
                "train_seconds": r.seconds[name],
                "peak_mem_mb": r.results[name].peak_mem_mb,
            }
            for r in runs
        ]
        out[name] = {}
        for metric in rows[0]:
            values = [float(row[metric]) for row in rows]
            finite = [v for v in values if v == v]
            out[name][metric] = {
                "mean": statistics.fmean(finite) if finite else float("nan"),
                "std": statistics.stdev(finite) if len(finite) > 1 else 0.0,
                "per_seed": values,
            }
    return out


def write_results(
    out_dir: Path,
    runs: list[SeedRun],
    *,
    config: TrainConfig,
    graph: str,
    wall_seconds: float,
    speed: dict[str, Any] | None = None,
    title: str = "cinegraph benchmark",
) -> dict[str, Any]:
    """Write ``<protocol>/results.json`` for ``runs`` and ``report.md`` over every protocol with
    results in ``out_dir``; returns the summary written."""
    protocol = config.data.protocol
    summary = {
        "protocol": protocol,
        "models": aggregate(runs),
        "seeds": [r.seed for r in runs],
        "histories": {name: r.history for name, r in runs[0].results.items()},  # curves of the first seed
        "device": config.device,
        "torch_threads": runs[0].threads,
        "processes": distributed.world_size(),
        "wall_seconds": wall_seconds,
        "load_average": os.getloadavg(),
        "propagation": speed,
        "graph": graph,
        "config": config.model_dump(mode="json"),
    }
    (out_dir / protocol).mkdir(parents=True, exist_ok=True)
    (out_dir / protocol / RESULTS_FILE).write_text(json.dumps(summary, indent=2))
    write_report(read_results(out_dir), out_dir / REPORT_FILE, title)
    return summary


def read_results(out_dir: Path) -> dict[str, dict[str, Any]]:
    """``{protocol: summary}`` of the protocols with a ``results.json`` in ``out_dir``."""
    return {
        p: json.loads((out_dir / p / RESULTS_FILE).read_text())
        for p in PROTOCOLS
        if (out_dir / p / RESULTS_FILE).exists()
    }


def measure_speed(
    tables: dict[str, pa.Table], config: TrainConfig, models: tuple[str, ...], seed: int
) -> dict[str, Any] | None:
    """The propagation timing of :func:`models.benchmark.propagation_speed`, when LightGCN is run."""
    if "lightgcn" not in models:
        return None
    speed = propagation_speed(prepare_data(tables, config.data, seed).to(config.device), config)
    log.info(
        "propagation: gcn branch %.4fs vs LightGCN %.4fs per fwd+bwd (ratio %.2f)",
        speed["gcn_branch_s"],
        speed["lightgcn_s"],
        speed["ratio"],
    )
    return speed


def snapshot_label(snapshot_dir: Path) -> str:
    """How a report names the graph it trained on: the snapshot's creation time."""
    from cinegraph.graph_store.snapshot_io import read_manifest

    return f"snapshot created {read_manifest(snapshot_dir).get('created_at', '(unknown)')}"


def run(
    snapshot_dir: Path,
    out_dir: Path,
    config: TrainConfig,
    seeds: list[int],
    models: tuple[str, ...] = MODELS,
    protocols: tuple[str, ...] = ("warm",),
    title: str = "cinegraph benchmark",
) -> dict[str, dict[str, Any]]:
    """Seed after seed, each protocol of a snapshot; ``results.json`` and ``report.md`` are
    rewritten after every seed. Returns ``{protocol: summary}`` (empty off process 0)."""
    from cinegraph.graph_store.snapshot_io import read_snapshot

    check_request(models, protocols, seeds)
    setup_torch(config)
    tables, graph = read_snapshot(snapshot_dir), snapshot_label(snapshot_dir)
    done: dict[str, dict[str, Any]] = {}
    for protocol in protocols:
        cfg = config.model_copy(update={"data": config.data.model_copy(update={"protocol": protocol})})
        t0 = time.perf_counter()
        speed = measure_speed(tables, cfg, models, seeds[0])
        runs: list[SeedRun] = []
        for seed in seeds:
            runs.append(run_seed(tables, cfg, seed, out_dir, models))
            if distributed.is_main():
                done[protocol] = write_results(
                    out_dir,
                    runs,
                    config=cfg,
                    graph=graph,
                    speed=speed,
                    title=title,
                    wall_seconds=time.perf_counter() - t0,
                )
        log.info("%s (%s) done in %.0fs: %s", title, protocol, time.perf_counter() - t0, out_dir)
    return done
