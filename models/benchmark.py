"""``cinegraph benchmark``: the fused model, its branches and ablations beside the baselines, on
the same splits, under the warm protocol or the item cold-start protocol (``models/data.py``).

Per seed the data is prepared once (the MovieLens-only ablation prepares its own graph and is
checked to hold the very same splits). The branches pretrained for ``gcn_branch`` and
``hgt_branch`` are the ones ``fused`` and ``fused_concat`` fine-tune (each from its own copy), so
the ablation isolates the fusion. Each protocol writes ``<out>/<protocol>/results.json`` and its
curve PNGs; ``<out>/report.md`` covers every protocol whose results are in ``<out>``.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

import pyarrow as pa
import torch
from pydantic import BaseModel, ValidationError
from torch_geometric.nn.models import LightGCN

from cinegraph.errors import CinegraphError
from cinegraph.models.config import TrainConfig
from cinegraph.models.data import PreparedData, prepare_data
from cinegraph.models.evaluate import RunResult
from cinegraph.models.gcn_branch import MultiTaskGCN, normalized_adjacency
from cinegraph.models.hgt_branch import MultiTaskHGT
from cinegraph.models.report import write_report
from cinegraph.models.train import finetune, plot_curves, pretrain, train_fused
from cinegraph.schema import RATED

log = logging.getLogger(__name__)

MODELS = (
    "fused", "popularity", "mf_bpr", "lightgcn", "ease", "itemknn", "content_knn", "gcn_branch",
    "hgt_branch", "fused_concat", "fused_no_imdb", "fused_single_task",
)
PROTOCOLS = ("warm", "cold-items")
RESULTS_FILE, REPORT_FILE = "results.json", "report.md"
VALID_KEPT = ("ndcg@20", "recall@20", "mrr@20", "map", "macro_f1")  # validation metrics kept


@contextmanager
def peak_memory(device: str) -> Iterator[dict[str, float]]:
    """Peak memory of the enclosed run in MiB: the CUDA allocator's peak on a GPU; on CPU the
    peak resident set sampled every 10 ms, above the resident set at the start."""
    out: dict[str, float] = {}
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats(device)
        yield out
        out["mb"] = torch.cuda.max_memory_allocated(device) / 2**20
        return
    page = 4096 / 2**20

    def rss() -> float:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * page

    start, peak, stop = rss(), [0.0], threading.Event()

    def sample() -> None:
        while not stop.wait(0.01):
            peak[0] = max(peak[0], rss())

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield out
    finally:
        stop.set()
        thread.join()
        out["mb"] = max(peak[0], rss()) - start


def propagation_speed(data: PreparedData, config: TrainConfig, repeats: int = 20) -> dict:
    """Seconds per forward+backward of the GCN branch's propagation and of PyG's LightGCN on the
    same graph (every RATED edge of the model input, both directions), measured in one run."""
    rated = data.graph[RATED.triplet].edge_index
    n_u, n = data.num_users, data.num_users + data.num_movies
    edge_index = torch.cat([torch.stack([rated[0], rated[1] + n_u]),
                            torch.stack([rated[1] + n_u, rated[0]])], dim=1)
    adj = normalized_adjacency(rated, data.train_weight, data.num_users, data.num_movies)
    ref = LightGCN(n, config.hidden_dim, config.gcn_layers).to(edge_index.device)
    x = ref.embedding.weight

    def ours() -> torch.Tensor:
        h, views = x, [x]
        for _ in range(config.gcn_layers):
            h = adj @ h
            views.append(h)
        return torch.stack(views, 1).mean(1)

    def timed(fn: Callable[[], torch.Tensor]) -> float:
        fn().sum().backward()  # warm-up
        t0 = time.perf_counter()
        for _ in range(repeats):
            fn().sum().backward()
        if x.is_cuda:
            torch.cuda.synchronize()
        return (time.perf_counter() - t0) / repeats

    ours_s, ref_s = timed(ours), timed(lambda: ref.get_embedding(edge_index))
    return {"gcn_branch_s": ours_s, "lightgcn_s": ref_s, "ratio": ours_s / ref_s,
            "edges": int(edge_index.size(1)), "layers": config.gcn_layers}


def _timed(results: dict[str, RunResult], seconds: dict[str, float], device: str, name: str,
           fn: Callable[[], RunResult]) -> None:
    t0 = time.perf_counter()
    with peak_memory(device) as mem:
        result = fn()
    seconds[name] = time.perf_counter() - t0
    result.peak_mem_mb = mem["mb"]
    results[name] = result
    log.info("%s: %.0fs, test ndcg@20 %.4f", name, seconds[name], result.metrics["ndcg@20"])


def baselines() -> dict[str, tuple[Callable[..., RunResult], type[BaseModel]]]:
    """Each baseline's trainer ``fn(data, config, seed, device)`` and config class, by name: what
    :func:`run_seed` and ``cinegraph tune`` run."""
    from cinegraph.models.content_knn import ContentKNNConfig, train_content_knn
    from cinegraph.models.ease import EASEConfig, train_ease
    from cinegraph.models.itemknn import ItemKNNConfig, train_itemknn
    from cinegraph.models.lightgcn import LightGCNConfig, train_lightgcn
    from cinegraph.models.mf_bpr import BPRConfig, train_mf_bpr
    from cinegraph.models.popularity import PopularityConfig, train_popularity

    return {
        "popularity": (train_popularity, PopularityConfig), "mf_bpr": (train_mf_bpr, BPRConfig),
        "lightgcn": (train_lightgcn, LightGCNConfig), "ease": (train_ease, EASEConfig),
        "itemknn": (train_itemknn, ItemKNNConfig),
        "content_knn": (train_content_knn, ContentKNNConfig),
    }  # fmt: skip


def baseline_config(name: str, config: TrainConfig) -> BaseModel:
    """The config of baseline ``name``: its defaults updated by ``config.baselines[name]`` (what
    ``cinegraph tune`` writes)."""
    cls = baselines()[name][1]
    try:
        return cls.model_validate(config.baselines.get(name, {}))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(x) for x in first["loc"])
        raise CinegraphError(f"config baselines.{name}.{where}: {first['msg']}") from exc


def run_seed(tables: dict[str, pa.Table], config: TrainConfig, seed: int, out_dir: Path,
             models: tuple[str, ...] = MODELS) -> tuple[dict[str, RunResult], dict[str, float]]:
    """Every selected model on the splits of ``seed``; returns results and train seconds."""
    cfg, dev = config.model_copy(update={"seed": seed}), config.device
    data = prepare_data(tables, cfg.data, seed).to(dev)
    results: dict[str, RunResult] = {}
    seconds: dict[str, float] = {}
    for name, (fn, _) in baselines().items():
        if name in models:
            bcfg = baseline_config(name, cfg)

            def fit_baseline(fn: Callable[..., RunResult] = fn, bcfg: BaseModel = bcfg) -> RunResult:
                return fn(data, bcfg, seed, dev)

            _timed(results, seconds, dev, name, fit_baseline)
    branches: dict[str, MultiTaskGCN | MultiTaskHGT] = {}
    if {"gcn_branch", "hgt_branch", "fused", "fused_concat"} & set(models):
        kinds: tuple[Literal["gcn", "hgt"], ...] = ("gcn", "hgt")
        for kind in kinds:
            run_dir = out_dir / f"seed{seed}" / "branches"
            run_dir.mkdir(parents=True, exist_ok=True)

            def fit(kind: Literal["gcn", "hgt"] = kind, run_dir: Path = run_dir) -> RunResult:
                branches[kind], result = pretrain(kind, data, cfg, run_dir)
                return result

            _timed(results, seconds, dev, f"{kind}_branch", fit)
    for name, mode in (("fused", "cross_attention"), ("fused_concat", "concat")):
        if name in models:
            run_dir = out_dir / f"seed{seed}" / name
            run_dir.mkdir(parents=True, exist_ok=True)
            fcfg = cfg.model_copy(update={"fusion": mode})
            gcn, hgt = copy.deepcopy(branches["gcn"]), copy.deepcopy(branches["hgt"])
            assert isinstance(gcn, MultiTaskGCN) and isinstance(hgt, MultiTaskHGT)  # pretrained above

            def fuse(gcn: MultiTaskGCN = gcn, hgt: MultiTaskHGT = hgt, fcfg: TrainConfig = fcfg,
                     run_dir: Path = run_dir, name: str = name) -> RunResult:
                return finetune(gcn, hgt, data, fcfg, run_dir, name)[1]

            _timed(results, seconds, dev, name, fuse)
            seconds[name] += seconds["gcn_branch"] + seconds["hgt_branch"]  # whole method
    if "fused_single_task" in models:
        run_dir = out_dir / f"seed{seed}" / "fused_single_task"
        run_dir.mkdir(parents=True, exist_ok=True)
        scfg = cfg.model_copy(update={"single_task": True})
        _timed(results, seconds, dev, "fused_single_task",
               lambda: train_fused(data, scfg, run_dir, "fused_single_task")["fused_single_task"])
    if "fused_no_imdb" in models:
        dcfg = cfg.data.model_copy(update={"include_imdb": False})
        ml_only = prepare_data(tables, dcfg, seed).to(dev)
        for split in ("train", "valid", "test"):
            if not torch.equal(ml_only.edges(split), data.edges(split)):
                raise CinegraphError(f"include_imdb=False changed the {split} split of seed {seed}")
        run_dir = out_dir / f"seed{seed}" / "fused_no_imdb"
        run_dir.mkdir(parents=True, exist_ok=True)
        ncfg = cfg.model_copy(update={"data": dcfg})
        _timed(results, seconds, dev, "fused_no_imdb",
               lambda: train_fused(ml_only, ncfg, run_dir, "fused_no_imdb")["fused_no_imdb"])
    return results, seconds


def aggregate(per_seed: list[dict[str, RunResult]], seconds: list[dict[str, float]]) -> dict:
    """``{"<model>": {"<metric>": {"mean", "std", "per_seed"}}}`` over seeds; test metrics by
    name, validation ones as ``valid_<name>``, cost figures (``epoch_seconds``,
    ``train_seconds``, ``peak_mem_mb``) ride along as metrics."""
    out: dict[str, dict[str, dict]] = {}
    for name in per_seed[0]:
        rows = [
            {**r[name].metrics,
             **{f"valid_{k}": v for k, v in r[name].valid_metrics.items() if k in VALID_KEPT},
             "epoch_seconds": r[name].epoch_seconds, "train_seconds": s[name],
             "peak_mem_mb": r[name].peak_mem_mb}
            for r, s in zip(per_seed, seconds, strict=True)
        ]  # fmt: skip
        out[name] = {}
        for metric in rows[0]:
            values = [row[metric] for row in rows]
            finite = [v for v in values if v == v]  # NaN: empty slice
            out[name][metric] = {
                "mean": statistics.fmean(finite) if finite else float("nan"),
                "std": statistics.stdev(finite) if len(finite) > 1 else 0.0,
                "per_seed": values,
            }
    return out


def write_results(out_dir: Path, per_seed: list[dict[str, RunResult]], seconds: list[dict[str, float]],
                  *, seeds: list[int], config: TrainConfig, speed: dict, snapshot: str,
                  wall_seconds: float) -> dict:  # fmt: skip
    """Write ``<protocol>/results.json`` for the seeds run so far and ``report.md`` over every
    protocol with results in ``out_dir``; returns the summary written."""
    protocol = config.data.protocol
    summary = {
        "protocol": protocol,
        "models": aggregate(per_seed, seconds),
        "seeds": seeds,
        "device": config.device,
        "torch_threads": torch.get_num_threads(),
        "wall_seconds": wall_seconds,
        "load_average": os.getloadavg(),
        "propagation": speed,
        "snapshot": snapshot,
        "config": config.model_dump(mode="json"),
    }
    (out_dir / protocol).mkdir(parents=True, exist_ok=True)
    (out_dir / protocol / RESULTS_FILE).write_text(json.dumps(summary, indent=2))
    write_report(read_results(out_dir), out_dir / REPORT_FILE)
    return summary


def read_results(out_dir: Path) -> dict[str, dict]:
    """``{protocol: summary}`` of the protocols with a ``results.json`` in ``out_dir``."""
    return {
        p: json.loads((out_dir / p / RESULTS_FILE).read_text())
        for p in PROTOCOLS
        if (out_dir / p / RESULTS_FILE).exists()
    }


def benchmark(snapshot_dir: Path, out_dir: Path, seeds: int = 3, config: TrainConfig | None = None,
              models: tuple[str, ...] = MODELS, protocols: tuple[str, ...] = ("warm",)) -> dict:
    """Run the benchmark on a snapshot under each protocol; writes ``<protocol>/results.json``,
    curves and ``report.md`` into out_dir. Returns ``{protocol: summary}``."""
    from cinegraph.graph_store.snapshot_io import read_snapshot

    unknown = sorted(set(models) - set(MODELS))
    if unknown:
        raise CinegraphError(f"--models: unknown {unknown}; known: {list(MODELS)}")
    bad = sorted(set(protocols) - set(PROTOCOLS))
    if bad or not protocols:
        raise CinegraphError(f"--protocol: unknown {bad or protocols}; known: {list(PROTOCOLS)}")
    if seeds < 1:
        raise CinegraphError(f"--seeds {seeds}: need at least 1")
    config = config or TrainConfig()
    if config.device.startswith("cuda") and not torch.cuda.is_available():
        raise CinegraphError(f"--device {config.device}: CUDA is not available on this machine")
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    out_dir.mkdir(parents=True, exist_ok=True)
    tables = read_snapshot(snapshot_dir)
    done = {}
    for protocol in protocols:
        cfg = config.model_copy(
            update={"data": config.data.model_copy(update={"protocol": protocol})}
        )
        done[protocol] = _benchmark_protocol(tables, cfg, seeds, out_dir, models, str(snapshot_dir))
    return done


def _benchmark_protocol(tables: dict[str, pa.Table], config: TrainConfig, seeds: int, out_dir: Path,
                        models: tuple[str, ...], snapshot: str) -> dict:  # fmt: skip
    protocol_dir = out_dir / config.data.protocol
    protocol_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    speed = propagation_speed(prepare_data(tables, config.data, 0).to(config.device), config)
    log.info("propagation: gcn branch %.4fs vs LightGCN %.4fs per fwd+bwd (ratio %.2f)",
             speed["gcn_branch_s"], speed["lightgcn_s"], speed["ratio"])
    per_seed, seconds = [], []
    for seed in range(seeds):  # results and report are rewritten after each seed
        results, secs = run_seed(tables, config, seed, protocol_dir, models)
        per_seed.append(results)
        seconds.append(secs)
        for name, r in results.items():
            plot_curves(r.history, f"{name} seed {seed}",
                        protocol_dir / f"curves_{name}_seed{seed}.png")
        summary = write_results(out_dir, per_seed, seconds, seeds=list(range(seed + 1)),
                                config=config, speed=speed, snapshot=snapshot,
                                wall_seconds=time.perf_counter() - t0)  # fmt: skip
    log.info("benchmark (%s) done in %.0fs: %s", config.data.protocol, summary["wall_seconds"],
             out_dir)
    return summary
