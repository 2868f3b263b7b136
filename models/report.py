"""``report.md`` of a benchmark: metric by metric and slice by slice, does the fused model win?"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

BASELINES = ("popularity", "mf_bpr", "lightgcn", "ease")
RANKING = [
    f"{m}@20{s}"
    for s in ("", "_cold_users", "_long_tail", "_cold_items")
    for m in ("ndcg", "recall", "precision", "hit_rate", "mrr")
] + ["ndcg@10", "recall@10"]
TABLE = [
    "ndcg@20", "recall@20", "ndcg@10", "recall@10", "mrr@20", "ndcg@20_cold_users",
    "ndcg@20_long_tail", "recall@20_long_tail", "ndcg@20_cold_items", "recall@20_cold_items",
]
CLASSIFICATION = ["macro_f1", "micro_f1", "map"]
COST = ["epoch_seconds", "train_seconds", "peak_mem_mb"]


def _fmt(stat: dict[str, Any] | None, digits: int = 4) -> str:
    if stat is None or stat["mean"] != stat["mean"]:
        return "n/a"
    return f"{stat['mean']:.{digits}f} ± {stat['std']:.{digits}f}"


def _seeds(stat: dict[str, Any]) -> str:
    return ", ".join("nan" if v != v else f"{v:.4f}" for v in stat["per_seed"])


def _best_baseline(models: dict, metric: str) -> str | None:
    have = [b for b in BASELINES if b in models and not math.isnan(models[b][metric]["mean"])]
    return max(have, key=lambda b: models[b][metric]["mean"]) if have else None


def _verdict(fused: float, other: float, factor: float = 1.0) -> str:
    if math.isnan(fused) or math.isnan(other):
        return "n/a"
    ratio = fused / other if other > 0 else math.inf
    yes = fused >= factor * other if factor != 1.0 else fused > other
    return f"{'YES' if yes else 'NO'} ({ratio:.2f}x)"


def write_report(results: dict[str, dict[str, Any]], path: Path) -> None:
    """``report.md`` over ``{protocol: summary}``, one section per protocol."""
    lines = ["# cinegraph benchmark\n"]
    for protocol, summary in results.items():
        lines += [f"# Protocol: {protocol}\n", *_protocol_lines(summary)]
    path.write_text("\n".join(lines))


def _protocol_lines(summary: dict[str, Any]) -> list[str]:
    models: dict[str, dict] = summary["models"]
    seeds, lines = summary["seeds"], []
    add = lines.append
    add(f"Snapshot `{summary['snapshot']}`, seeds {seeds}, device {summary['device']} "
        f"({summary['torch_threads']} torch threads), wall time {summary['wall_seconds']:.0f} s. "
        "Every figure is mean ± sample std over seeds, on the same splits per seed.\n")
    names = list(models)
    tables = (("Ranking (test)", TABLE), ("Genre classification (test)", CLASSIFICATION))
    for title, metrics in tables:
        metrics = [m for m in metrics if any(m in models[n] for n in names)]
        add(f"## {title}\n")
        add("| model | " + " | ".join(metrics) + " |")
        add("|---" * (len(metrics) + 1) + "|")
        for n in names:
            add(f"| {n} | " + " | ".join(_fmt(models[n].get(m)) for m in metrics) + " |")
        add("")
    if "fused" in models:
        fused = models["fused"]
        add("## Does the fused model beat the best baseline? (metric by metric, slice by slice)\n")
        add("Baselines: most popular, MF-BPR, LightGCN. Ratio = fused mean / best baseline mean.\n")
        add("| metric | fused | best baseline | verdict | fused per seed | baseline per seed |")
        add("|---|---|---|---|---|---|")
        for m in RANKING:
            best = _best_baseline(models, m) if m in fused else None
            if best is None:
                continue
            add(f"| {m} | {_fmt(fused[m])} | {best} {_fmt(models[best][m])} | "
                f"{_verdict(fused[m]['mean'], models[best][m]['mean'])} | {_seeds(fused[m])} | "
                f"{_seeds(models[best][m])} |")
        add("")
        add("## Aims of issue 4\n")

        def mean(model: str, metric: str) -> float:
            return models[model][metric]["mean"]

        aims = []
        best = _best_baseline(models, "ndcg@20")
        if best:
            aims.append((
                f"ndcg@20 >= 1.05 x best baseline ({best} {mean(best, 'ndcg@20'):.4f})",
                _verdict(mean("fused", "ndcg@20"), mean(best, "ndcg@20"), 1.05),
            ))
        lt = "ndcg@20_long_tail"
        if "lightgcn" in models and lt in fused:
            aims.append((
                f"{lt} >= 1.15 x LightGCN ({mean('lightgcn', lt):.4f})",
                _verdict(mean("fused", lt), mean("lightgcn", lt), 1.15),
            ))
        if "hgt_branch" in models:
            aims.append((
                f"macro_f1 above the HGT branch alone ({mean('hgt_branch', 'macro_f1'):.4f})",
                _verdict(mean("fused", "macro_f1"), mean("hgt_branch", "macro_f1")),
            ))
        stds = {b: models[b]["ndcg@20"]["std"] for b in BASELINES if b in models}
        if stds:
            std = fused["ndcg@20"]["std"]
            listed = ", ".join(f"{b} {v:.4f}" for b, v in stds.items())
            aims.append((
                f"ndcg@20 seed std {std:.4f} no larger than every baseline's ({listed})",
                "YES" if all(std <= v for v in stds.values()) else "NO",
            ))
        for text, verdict in aims:
            add(f"- {text}: **{verdict}**")
        add("")
        add("Per-seed fused numbers: " + "; ".join(
            f"{m} [{_seeds(fused[m])}]" for m in ("ndcg@20", "ndcg@20_long_tail", "macro_f1")
            if m in fused))
        add("")
    add("## Cost per model\n")
    add("Epoch seconds: mean wall time of one training epoch (fine-tuning epochs for fused "
        "models). "
        "Train seconds: the whole run, pretraining included for fused models. Peak memory: CUDA "
        "allocator peak on a GPU; on CPU the peak resident set above the one at the run's start "
        "(sampled every 10 ms).\n")
    add("| model | " + " | ".join(COST) + " |")
    add("|---" * (len(COST) + 1) + "|")
    for n in names:
        add(f"| {n} | " + " | ".join(_fmt(models[n].get(c), 2) for c in COST) + " |")
    p = summary["propagation"]
    add(f"\nPropagation, forward + backward, {p['layers']} layers over {p['edges']} directed "
        f"edges: GCN branch {p['gcn_branch_s'] * 1e3:.1f} ms, PyG LightGCN "
        f"{p['lightgcn_s'] * 1e3:.1f} ms, ratio {p['ratio']:.2f} (below 1: the branch is faster; "
        "measured in one run).\n")
    return lines
