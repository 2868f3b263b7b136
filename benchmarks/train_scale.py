"""Training cost at growing sizes: seconds per epoch and peak memory of every model.

    nice .venv/bin/python benchmarks/train_scale.py [--scales 0.01,0.1] [--work /tmp/train_scale]
        [--models gcn_branch,hgt_branch,...] [--epochs 2] [--device cpu] [--budget-gb 16]
        [--out benchmarks/results/train_scale.md]

For each scale a synthetic ml-25m mirror (``benchmarks/synthetic_dumps.py``) goes through
``cinegraph etl --match links`` into ``WORK/scale-S`` (reused when its snapshot is there). Then
each model trains in its own child process (so peak RSS is the model's own) for ``--epochs``
epochs on the real code path (``models/train.py`` for the branches and the fused model, each
baseline's ``train_*``; a closed-form baseline fits one grid point), followed by the full-ranking
validation and test evaluation. This script samples the child's RSS every 0.2 s and kills it
when it passes ``--budget-gb``; a model that refuses a size says why in one line. Reported per
model: seconds per epoch (a closed-form model: its fit), evaluation and total seconds, and peak
RSS (CUDA allocator peak too on a GPU). Data preparation (snapshot -> tensors) is reported apart.
The branches and the fused model train with the sampled softmax (``rec_loss=sampled_softmax``),
the loss meant for large catalogues. The report is rewritten after every model; raw results go
to the ``.json`` beside it (``--merge`` keeps rows measured earlier).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from benchmarks.etl_scale import tree_rss  # noqa: E402
from benchmarks.synthetic_dumps import generate  # noqa: E402

MODELS = ("popularity", "mf_bpr", "lightgcn", "ease", "itemknn", "content_knn", "gcn_branch", "hgt_branch", "fused")
SAMPLE_S = 0.2
GB = 2**30


def _child(
    model: str, snapshot: Path, epochs: int, device: str, fanout: int, valid_users: int | None, bpr_batch: int
) -> dict[str, Any]:
    """Prepare the data and train ``model`` for ``epochs`` epochs in this process. Progress and
    CPU seconds go to stderr (the model's log), so a run stopped early still shows how far it got."""
    import logging

    import torch

    from cinegraph.graph_store.snapshot_io import read_snapshot
    from cinegraph.models.benchmark import baselines
    from cinegraph.models.config import TrainConfig
    from cinegraph.models.data import DataConfig, prepare_data
    from cinegraph.models.evaluate import peak_memory_mb
    from cinegraph.models.registry import build_gcn, build_hgt, model_args
    from cinegraph.models.train import finetune, pretrain

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    log = logging.getLogger("train_scale")
    torch.set_num_threads(int(os.environ.get("TRAIN_SCALE_THREADS", "0")) or torch.get_num_threads())
    t0, c0 = time.perf_counter(), time.process_time()
    config = TrainConfig(
        device=device,
        rec_loss="sampled_softmax",
        gcn_epochs=epochs,
        hgt_epochs=epochs,
        fusion_epochs=epochs,
        eval_every=epochs,
        warmup_epochs=0,
        hgt_fanout=fanout,
        data=DataConfig(valid_users=valid_users),
    )
    data = prepare_data(read_snapshot(snapshot), config.data, seed=0).to(device)
    prep = {
        "prepare_cpu_s": time.process_time() - c0,
        "prepare_s": time.perf_counter() - t0,
        "prepare_rss_mb": peak_memory_mb("cpu"),
        "threads": torch.get_num_threads(),
        "users": data.num_users,
        "movies": data.num_movies,
        "positives": int(data.train_edges.size(1)),
        "edges": {"/".join(t): int(e.size(1)) for t, e in data.graph.edge_index_dict.items()},
    }
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats(device)
    log.info(
        "%s: data prepared in %.0f s (%.0f CPU s), RSS %.2f GB, %s",
        model,
        prep["prepare_s"],
        prep["prepare_cpu_s"],
        tree_rss(os.getpid()) / GB,
        prep,
    )
    t1, c1 = time.perf_counter(), time.process_time()

    def progress(stage: str, row: dict[str, float]) -> None:
        log.info(
            "%s epoch %d: %.0f s training; %.0f CPU s since the start; RSS %.2f GB, peak %.2f GB",
            stage,
            row["epoch"],
            row["seconds"],
            time.process_time() - c1,
            tree_rss(os.getpid()) / GB,
            peak_memory_mb("cpu") / 1024,
        )

    if model == "gcn_branch":
        result = pretrain("gcn", data, config, on_epoch=progress)[1]
    elif model == "hgt_branch":
        result = pretrain("hgt", data, config, on_epoch=progress)[1]
    elif model == "fused":
        # freshly initialised branches: a fine-tuning epoch costs the same whatever their weights
        gcn, hgt = build_gcn(model_args("gcn", data, config)), build_hgt(model_args("hgt", data, config))
        result = finetune(gcn.to(device), hgt.to(device), data, config, on_epoch=progress)[1]
    else:
        fn, cls = baselines()[model]
        short: dict[str, dict[str, Any]] = {
            "mf_bpr": {"max_epochs": epochs, "eval_every": epochs, "batch_size": bpr_batch},
            "lightgcn": {"max_epochs": epochs, "eval_every": epochs, "batch_size": bpr_batch},
            "ease": {"lambdas": (200.0,)},
            "itemknn": {"ks": (80,), "shrinks": (5.0,)},
            "content_knn": {"weightings": ({"genre": 1.0, "people": 1.0, "tags": 1.0, "numeric": 0.5},), "ks": (100,)},
        }  # one grid point of each closed-form model
        result = fn(data, cls(**short.get(model, {})), 0, device)
    total = time.perf_counter() - t1
    trained = sum(h["seconds"] for h in result.history)
    log.info("%s: done in %.0f s (%.0f CPU s)", model, total, time.process_time() - c1)
    return {
        **prep,
        "epochs": len(result.history),
        "epoch_s": result.epoch_seconds,
        "train_s": trained,
        "eval_s": total - trained,
        "total_s": total,
        "cpu_s": time.process_time() - c1,
        "peak_rss_mb": peak_memory_mb("cpu"),
        "cuda_peak_mb": peak_memory_mb(device) if device.startswith("cuda") else None,
        "valid_ndcg20": result.valid_metrics.get("ndcg@20"),
        "bpr_batch": bpr_batch if model in ("mf_bpr", "lightgcn") else None,
    }


def _probe(kind: str, epochs: int, device: str) -> dict[str, Any]:
    """Full-size pieces on a random graph with ml-25m's counts (162,541 users, 62,423 movies,
    25M ratings, half of them positives): ``ranking`` is one full-ranking evaluation of 64-dim
    embeddings over every user; ``gcn`` is ``epochs`` GCN-branch epochs (propagation over every
    rating, sampled softmax) with the data built from tensors instead of a snapshot."""
    import dataclasses

    import torch
    from torch_geometric.data import HeteroData

    from cinegraph.models.config import TrainConfig
    from cinegraph.models.data import SPLITS, DataConfig, PreparedData
    from cinegraph.models.evaluate import evaluate_ranking, peak_memory_mb
    from cinegraph.models.train import pretrain
    from cinegraph.schema import MOVIE, RATED, USER

    torch.set_num_threads(int(os.environ.get("TRAIN_SCALE_THREADS", "0")) or torch.get_num_threads())
    gen = torch.Generator().manual_seed(0)
    u, m, r = 162_541, 62_423, 25_000_095
    t0 = time.perf_counter()
    pop = torch.distributions.Pareto(1.0, 1.2).sample((m,)).clamp(max=1e4)  # heavy-tailed movie popularity
    pairs = torch.stack([torch.randint(u, (r,), generator=gen), torch.multinomial(pop, r, True, generator=gen)])
    keys = torch.unique(pairs[0] * m + pairs[1])  # distinct pairs
    pairs = torch.stack([keys // m, keys % m])
    split = torch.rand(pairs.size(1), generator=gen)
    pos, rating = split < 0.5, torch.where(split < 0.5, 4.5, 2.5)
    graph = HeteroData()
    graph[USER.label].num_nodes, graph[MOVIE.label].num_nodes = u, m
    graph[USER.label].x, graph[MOVIE.label].x = torch.zeros(u, 0), torch.zeros(m, 0)
    valid, test = pos & (split < 0.05), pos & (split >= 0.05) & (split < 0.1)
    seen = ~(valid | test)
    graph[RATED.triplet].edge_index = pairs[:, seen]
    graph[RATED.reverse_triplet].edge_index = pairs[:, seen].flip(0)
    weight = rating[seen] / 5.0
    data = PreparedData(
        graph=graph,
        num_users=u,
        num_movies=m,
        genre_names=["g"],
        train_edges=pairs[:, pos & seen],
        valid_edges=pairs[:, valid],
        test_edges=pairs[:, test],
        train_weight=weight,
        seen_edges=pairs[:, seen],
        cold_items=torch.zeros(m, dtype=torch.bool),
        movie_tags=torch.zeros(2, 0, dtype=torch.long),
        tag_names=[],
        genre_labels=torch.zeros(m, 1),
        genre_masks={k: torch.zeros(m, dtype=torch.bool) for k in SPLITS},
        user_ids=list(range(u)),
        movie_ids=list(range(m)),
        config=DataConfig(),
        seed=0,
    ).to(device)
    data.graph[RATED.triplet].edge_weight = data.train_weight
    prep = {
        "prepare_s": time.perf_counter() - t0,
        "prepare_rss_mb": peak_memory_mb("cpu"),
        "users": u,
        "movies": m,
        "positives": int(data.train_edges.size(1)),
        "edges": {"ratings": int(seen.sum()) * 2},
    }
    t1 = time.perf_counter()
    if kind == "ranking":
        z_user, z_movie = torch.randn(u, 64, device=device), torch.randn(m, 64, device=device)
        metrics = evaluate_ranking(lambda b: z_user[b] @ z_movie.t(), data, "valid")
        train_s, n, score = 0.0, 0, metrics["ndcg@20"]
    else:
        config = TrainConfig(
            device=device,
            rec_loss="sampled_softmax",
            gcn_epochs=epochs,
            eval_every=epochs,
            warmup_epochs=0,
            gcn_weights={"rec": 1.0, "rating": 0.1},
        )
        result = pretrain("gcn", dataclasses.replace(data), config)[1]
        train_s, n = sum(h["seconds"] for h in result.history), len(result.history)
        score = result.valid_metrics["ndcg@20"]
    total = time.perf_counter() - t1
    return {
        **prep,
        "epochs": n,
        "epoch_s": train_s / n if n else None,
        "train_s": train_s,
        "eval_s": total - train_s,
        "total_s": total,
        "peak_rss_mb": peak_memory_mb("cpu"),
        "cuda_peak_mb": peak_memory_mb(device) if device.startswith("cuda") else None,
        "valid_ndcg20": score,
    }


def run_model(model: str, snapshot: Path, args: argparse.Namespace) -> dict[str, Any]:
    """One model in a child process, its RSS sampled and held under ``--budget-gb``."""
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        model,
        "--snapshot",
        str(snapshot),
        "--epochs",
        str(args.epochs),
        "--device",
        args.device,
        "--hgt-fanout",
        str(args.hgt_fanout),
        "--bpr-batch",
        str(args.bpr_batch),
        *(["--valid-users", str(args.valid_users)] if args.valid_users else []),
    ]
    budget, log_dir = args.budget_gb * GB, args.work
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    load = os.getloadavg()[0]
    start, peak, killed = time.perf_counter(), [0], [False]
    log_path = log_dir / f"{snapshot.parent.name}-{model.replace(':', '-')}.log"
    with log_path.open("w") as log_file:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=log_file, text=True)
        stop = threading.Event()

        def sample() -> None:
            while not stop.wait(SAMPLE_S):
                peak[0] = max(peak[0], tree_rss(proc.pid))
                if peak[0] > budget and proc.poll() is None:
                    killed[0] = True
                    proc.kill()

        thread = threading.Thread(target=sample, daemon=True)
        thread.start()
        out, _ = proc.communicate()
        stop.set()
        thread.join()
    row: dict[str, Any] = {
        "model": model,
        "rc": proc.returncode,
        "wall_s": time.perf_counter() - start,
        "sampled_peak_mb": peak[0] / 2**20,
        "load_start": load,
        "load_end": os.getloadavg()[0],
    }
    if proc.returncode == 0 and out.strip():
        row.update(json.loads(out.strip().splitlines()[-1]))
    elif killed[0]:
        row["error"] = f"killed above the {budget / GB:g} GB budget"
    else:
        lines = [line for line in log_path.read_text().splitlines() if line.strip()]
        row["error"] = lines[-1][:300] if lines else f"exit {proc.returncode}"
    return row


def _snapshot(work: Path, scale: float, seed: int) -> Path:
    """``WORK/scale-S/snapshot``, generated and built by the ETL unless already there."""
    out = work / f"scale-{scale:g}"
    if (out / "snapshot" / "manifest.json").is_file():
        return out / "snapshot"
    mirror = work / f"mirror-{scale:g}"
    generate(mirror, scale, "ml-25m", seed)
    cmd = [
        sys.executable,
        "-m",
        "cinegraph.flows.cli",
        "etl",
        "--variant",
        "ml-25m",
        "--mirror",
        str(mirror),
        "--match",
        "links",
        "--out",
        str(out),
        "--no-progress",
    ]
    with (work / f"etl-{scale:g}.log").open("w") as log_file:
        subprocess.run(
            cmd,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=log_file,
            stderr=subprocess.STDOUT,
            check=True,
        )
    return out / "snapshot"


def _mb(v: float | None) -> str:
    return "–" if v is None else f"{v / 1024:.2f} GB" if v >= 1024 else f"{v:.0f} MB"


def _s(v: float | None) -> str:
    return "–" if v is None else f"{v:.2f} s" if v < 10 else f"{v:.0f} s"


def report(results: dict[str, dict[str, Any]], machine: str) -> str:
    lines = [
        "# Training at scale",
        "",
        "Produced by `benchmarks/train_scale.py` (synthetic ml-25m dumps, `cinegraph etl --match links`). "
        "Each model runs in its own process: seconds per training epoch (closed-form models: one fit), "
        "the full-ranking valid + test evaluation after it, and the process's peak RSS (data included). "
        "Branches and fused model use `rec_loss=sampled_softmax`; HGT and fused steps sample `hgt_fanout` "
        "in-edges per node and relation, their evaluation runs on every edge. " + machine,
        "",
    ]
    for label in sorted(results, key=lambda k: float(k.split()[0])):
        rows = results[label]["rows"]
        first = next((r for r in rows.values() if "users" in r), None)
        size = (
            f"{first['users']:,} users, {first['movies']:,} movies, {first['positives']:,} training positives, "
            f"{sum(first['edges'].values()):,} graph edges; preparing the data {_s(first['prepare_s'])}, "
            f"{_mb(first['prepare_rss_mb'])} RSS"
            if first
            else ""
        )
        lines += [
            f"## Scale {label}",
            "",
            size,
            "",
            "| model | s / epoch | epochs | evaluation | total | total CPU | peak RSS | GPU peak | load avg "
            "| valid ndcg@20 |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for name, r in rows.items():
            if "error" in r:
                lines.append(
                    f"| {name} | – | – | – | {_s(r['wall_s'])} | – | {_mb(r['sampled_peak_mb'])} | – | "
                    f"{r['load_start']:.1f} | {r['error']} |"
                )
                continue
            batch = f" (batch {r['bpr_batch']:,})" if r.get("bpr_batch") else ""
            lines.append(
                f"| {name}{batch} | {_s(r['epoch_s'])} | {r['epochs'] or '–'} | {_s(r['eval_s'])} | "
                f"{_s(r['total_s'])} | {_s(r.get('cpu_s'))} | "
                f"{_mb(r['peak_rss_mb'])} | {_mb(r['cuda_peak_mb'])} | {r['load_start']:.1f}–"
                f"{r['load_end']:.1f} | {r['valid_ndcg20']:.4f} |"
            )
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scales", default="0.01,0.1")
    parser.add_argument("--work", type=Path, default=Path("/tmp/train_scale"), help="mirrors and snapshots")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--hgt-fanout", type=int, default=10, help="hgt_fanout of the HGT and fused training steps")
    parser.add_argument(
        "--valid-users", type=int, default=None, help="DataConfig.valid_users: users ranked by each validation"
    )
    parser.add_argument(
        "--bpr-batch",
        type=int,
        default=4096,
        help="triples per MF-BPR and LightGCN step (each LightGCN step propagates the whole graph)",
    )
    parser.add_argument("--budget-gb", type=float, default=16.0, help="kill a model whose RSS passes this")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "train_scale.md")
    parser.add_argument("--probes", default="", help="full-size probes on a random ml-25m-sized graph: ranking,gcn")
    parser.add_argument("--merge", action="store_true", help="keep rows already measured in the .json")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--snapshot", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        if args.child.startswith("probe:"):
            print(json.dumps(_probe(args.child.removeprefix("probe:"), args.epochs, args.device)), flush=True)
        else:
            row = _child(
                args.child, args.snapshot, args.epochs, args.device, args.hgt_fanout, args.valid_users, args.bpr_batch
            )
            print(json.dumps(row), flush=True)
        return 0
    models = [m for m in args.models.split(",") if m]
    if unknown := sorted(set(models) - set(MODELS)):
        parser.error(f"--models: unknown {unknown}; known: {list(MODELS)}")
    store = args.out.with_suffix(".json")
    results: dict[str, dict[str, Any]] = json.loads(store.read_text()) if args.merge and store.is_file() else {}
    cores, mem = os.cpu_count(), os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    machine = f"Machine: {cores} cores, {mem / GB:.0f} GB RAM, shared with other jobs (see the load averages)."
    args.work.mkdir(parents=True, exist_ok=True)
    for probe in (p for p in args.probes.split(",") if p):
        entry = results.setdefault(f"1.0 random graph ({args.device}, {args.epochs} epochs)", {"rows": {}})
        row = run_model(f"probe:{probe}", Path("1.0/none"), args)
        entry["rows"][probe] = row
        print(f"probe {probe}: {row.get('error') or row['total_s']}", flush=True)
        args.out.write_text(report(results, machine))
        store.write_text(json.dumps(results, indent=1) + "\n")
    for scale in (float(s) for s in args.scales.split(",") if s):
        snapshot = _snapshot(args.work, scale, args.seed)
        sample = f", validation on {args.valid_users:,} users" if args.valid_users else ""
        label = f"{scale:g} ({args.device}, {args.epochs} epochs, hgt_fanout {args.hgt_fanout}{sample})"
        entry = results.setdefault(label, {"rows": {}})
        for model in models:
            row = run_model(model, snapshot, args)
            entry["rows"][model] = row
            print(
                f"scale {scale:g} {model}: "
                + (row.get("error") or f"{row['total_s']:.2f} s, peak {row['peak_rss_mb']:.0f} MB"),
                flush=True,
            )
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(report(results, machine))
            store.write_text(json.dumps(results, indent=1) + "\n")
    return 0 if all("error" not in r for e in results.values() for r in e["rows"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
