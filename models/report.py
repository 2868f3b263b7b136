"""``report.md`` of a run (``cinegraph train``, ``cinegraph benchmark``, the ``train`` flow), one
section per protocol run: every model's mean ± std and per-seed values, validation figures
labelled with what they hold, cost, the verdicts against the best non-fused model, and the first
seed's training curves. Images are inline, so the report stands alone (on disk, in the Prefect UI,
wherever it is copied)."""

from __future__ import annotations

import base64
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

# Models that are neither the fused model, its ablations nor its branches.
BASELINES = ("popularity", "mf_bpr", "lightgcn", "ease", "itemknn", "content_knn")
BRANCHES = ("gcn_branch", "hgt_branch")
PLOT_FILE = "ndcg20_per_seed.png"
_RANKING = ["ndcg@20", "recall@20", "ndcg@10", "recall@10", "mrr@10", "mrr@20", "ndcg@20_cold_users"]
HEADLINE = {  # test metrics of the main table, per protocol: the ranking metrics, then its slices
    "warm": [*_RANKING, "ndcg@20_long_tail", "recall@20_long_tail", "ndcg@20_cold_items"],
    "cold-items": [*_RANKING, "ndcg@20_all_movies", "recall@20_all_movies", "mrr@20_all_movies"],
}
PROTOCOL_TEXT = {
    "warm": "held-out positives of known movies, every movie ranked (seen ones removed).",
    "cold-items": "15% of the movies with positives are new (no rating or tag in the input); "
    "headline metrics rank the new movies among themselves, `_all_movies` ranks every movie "
    "with the new movies' positives as ground truth.",
}
CLASSIFICATION = ["macro_f1", "micro_f1", "map"]
COST = ["train_seconds", "epoch_seconds", "peak_mem_mb"]
CURVE_VALID = ("ndcg@20", "map")  # validation metrics of the curve tables, each labelled


def _fmt(stat: dict[str, Any] | None, digits: int = 4) -> str:
    if stat is None or stat["mean"] != stat["mean"]:
        return "n/a"
    return f"{stat['mean']:.{digits}f} ± {stat['std']:.{digits}f}"


def _seeds(stat: dict[str, Any] | None, digits: int = 4) -> str:
    if stat is None:
        return "n/a"
    return ", ".join("nan" if v != v else f"{v:.{digits}f}" for v in stat["per_seed"])


def _mean(models: dict, model: str, metric: str) -> float:
    stat = models.get(model, {}).get(metric)
    return float("nan") if stat is None else stat["mean"]


def best_baseline(models: dict, metric: str) -> str | None:
    """The non-fused, non-branch model with the highest mean ``metric``."""
    have = [b for b in BASELINES if not math.isnan(_mean(models, b, metric))]
    return max(have, key=lambda b: _mean(models, b, metric)) if have else None


def _verdict(fused: float, other: float, factor: float = 1.0) -> str:
    if math.isnan(fused) or math.isnan(other):
        return "n/a"
    ratio = fused / other if other > 0 else math.inf
    return f"{'YES' if fused >= factor * other else 'NO'} ({ratio:.2f}x)"


def selected_on(model: str, config: dict[str, Any]) -> str:
    """The validation quantity a model's epoch or setting was chosen on."""
    if model == "hgt_branch":
        return "valid genre map"
    if model.startswith("fused"):
        select = config.get("fusion_select", "ndcg@20")
        if select == "sum":
            return "valid ndcg@20 / start + genre map / start"
        return f"valid {select}"
    return "valid ndcg@20"


def bars(protocol: str, models: dict) -> list[tuple[str, str]]:
    """The acceptance bars of this protocol as (what, verdict) pairs, on test means."""
    if "fused" not in models:
        return []
    out = []
    best = best_baseline(models, "ndcg@20")
    fused = _mean(models, "fused", "ndcg@20")
    factor = 1.2 if protocol == "cold-items" else 1.0
    if best:
        out.append(
            (
                f"fused ndcg@20 >= {factor:.2f} x best non-fused model ({best} {_mean(models, best, 'ndcg@20'):.4f})",
                _verdict(fused, _mean(models, best, "ndcg@20"), factor),
            )
        )
        if protocol == "warm":
            out.append((f"aim: fused ndcg@20 >= 1.05 x {best}", _verdict(fused, _mean(models, best, "ndcg@20"), 1.05)))
    branches = BRANCHES if protocol == "warm" else ("hgt_branch",)
    for b in branches:
        if b in models:
            out.append(
                (
                    f"fused ndcg@20 >= {b} ({_mean(models, b, 'ndcg@20'):.4f})",
                    _verdict(fused, _mean(models, b, "ndcg@20")),
                )
            )
    if "hgt_branch" in models and "macro_f1" in models["fused"]:
        out.append(
            (
                f"fused genre macro-F1 >= hgt_branch ({_mean(models, 'hgt_branch', 'macro_f1'):.4f})",
                _verdict(_mean(models, "fused", "macro_f1"), _mean(models, "hgt_branch", "macro_f1")),
            )
        )
    stds = {m: models[m]["ndcg@20"]["std"] for m in BASELINES if m in models}
    if stds and len(models["fused"]["ndcg@20"]["per_seed"]) > 1:  # no spread from one seed
        std = models["fused"]["ndcg@20"]["std"]
        out.append(
            (
                f"fused ndcg@20 seed std {std:.4f} <= every baseline's",
                "YES"
                if all(std <= v for v in stds.values())
                else "NO (" + ", ".join(f"{m} {v:.4f}" for m, v in stds.items() if v < std) + ")",
            )
        )
    return out


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return [
        "| " + " | ".join(header) + " |",
        "|---" * len(header) + "|",
        *("| " + " | ".join(r) + " |" for r in rows),
        "",
    ]


def protocol_lines(protocol: str, summary: dict[str, Any]) -> list[str]:
    """The markdown section of one protocol."""
    models: dict[str, dict] = summary["models"]
    names = list(models)
    load = summary.get("load_average")
    processes = summary.get("processes", 1)
    lines = [
        f"## Protocol: {protocol}\n",
        PROTOCOL_TEXT.get(protocol, "") + "\n",
        f"Graph: {summary['graph']}; seeds {summary['seeds']}, device "
        f"{summary['device']} ({summary['torch_threads']} torch threads"
        + (f", {processes} processes" if processes > 1 else "")
        + "), wall time "
        f"{summary['wall_seconds']:.0f} s"
        + (f", load average at the end {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}" if load else "")
        + ". Figures are mean ± sample std over seeds, on the same splits per seed.\n",
    ]
    metrics = [m for m in HEADLINE.get(protocol, HEADLINE["warm"]) if any(m in models[n] for n in names)]
    lines += [f"### Ranking, test split ({protocol})\n"]
    lines += _table(["model", *metrics], [[n, *(_fmt(models[n].get(m)) for m in metrics)] for n in names])
    lines += ["### Per seed, test split\n"]
    per_seed = ["ndcg@20", "recall@20", "mrr@20"]
    lines += _table(
        ["model", *(f"{m} per seed" for m in per_seed)],
        [[n, *(_seeds(models[n].get(m)) for m in per_seed)] for n in names],
    )
    lines += [
        "### Validation split (what selection saw)\n",
        "`selected on`: the validation quantity each model's epoch or hyperparameters were "
        "chosen on; `valid ndcg@20` is the same ranking metric for every model, at that "
        "choice.\n",
    ]
    config = summary.get("config", {})
    lines += _table(
        ["model", "selected on", "valid ndcg@20", "valid ndcg@20 per seed"],
        [
            [n, selected_on(n, config), _fmt(models[n].get("valid_ndcg@20")), _seeds(models[n].get("valid_ndcg@20"))]
            for n in names
        ],
    )
    with_genres = [n for n in names if "macro_f1" in models[n]]
    if with_genres:
        lines += ["### Genre classification, test split\n"]
        lines += _table(
            ["model", *CLASSIFICATION, "macro_f1 per seed"],
            [
                [n, *(_fmt(models[n].get(m)) for m in CLASSIFICATION), _seeds(models[n].get("macro_f1"))]
                for n in with_genres
            ],
        )
    checks = bars(protocol, models)
    if checks:
        lines += ["### Verdicts\n"]
        lines += [f"- {what}: **{verdict}**" for what, verdict in checks] + [""]
    baselines = [b for b in BASELINES if b in models]
    if checks and baselines:
        lines += [
            "### Fused against the best non-fused model, metric by metric\n",
            f"Non-fused models: {', '.join(baselines)}. Ratio = fused mean / best mean.\n",
        ]
        rows = []
        for m in metrics:
            best = best_baseline(models, m)
            if best and m in models["fused"]:
                rows.append(
                    [
                        m,
                        _fmt(models["fused"][m]),
                        f"{best} {_fmt(models[best][m])}",
                        _verdict(_mean(models, "fused", m), _mean(models, best, m)),
                    ]
                )
        lines += _table(["metric", "fused", "best non-fused", "fused >= best"], rows)
    lines += [
        "### Cost per model\n",
        "Train seconds: the whole run (pretraining included for fused models; every grid "
        "point for closed-form models). Epoch seconds: mean per training epoch or grid "
        "point. Peak memory: CUDA allocator peak on a GPU; on CPU the peak resident set "
        "above the run's start (the kernel's high-water mark).\n",
    ]
    lines += _table(
        ["model", *COST, "train seconds per seed"],
        [[n, *(_fmt(models[n].get(c), 1) for c in COST), _seeds(models[n].get("train_seconds"), 1)] for n in names],
    )
    p = summary.get("propagation")
    if p:
        lines.append(
            f"Propagation, forward + backward, {p['layers']} layers over {p['edges']} "
            f"directed edges: GCN branch {p['gcn_branch_s'] * 1e3:.1f} ms, PyG LightGCN "
            f"{p['lightgcn_s'] * 1e3:.1f} ms (ratio {p['ratio']:.2f}).\n"
        )
    return lines


def curve_table(history: Sequence[Mapping[str, float]], max_rows: int = 15) -> list[str]:
    """A compact per-epoch table (loss and the validation metrics, each column named after the
    metric it holds), thinned to ``max_rows``."""
    step = max(1, math.ceil(len(history) / max_rows))
    picked = list(history[::step])
    if history and picked[-1] is not history[-1]:
        picked.append(history[-1])
    valid = [k for k in CURVE_VALID if any(f"valid_{k}" in r for r in history)]
    rows = [
        [
            str(int(h["epoch"])),
            f"{h['loss']:.4f}",
            *(f"{h[f'valid_{k}']:.4f}" if f"valid_{k}" in h else "" for k in valid),
        ]
        for h in picked
    ]
    return _table(["epoch", "loss", *(f"valid {k}" for k in valid)], rows)


def _inline_png(path: Path, alt: str) -> list[str]:
    if not path.exists():
        return []
    return [f"![{alt}](data:image/png;base64,{base64.b64encode(path.read_bytes()).decode('ascii')})", ""]


def curve_lines(protocol: str, summary: dict[str, Any], root: Path) -> list[str]:
    """Per model, the first seed's curves: the PNG written next to its checkpoints and a table."""
    seed = summary["seeds"][0]
    lines = [f"### Training curves, seed {seed} ({protocol})\n"]
    for name, history in summary.get("histories", {}).items():
        lines += [f"#### {name}\n"]
        lines += _inline_png(
            root / protocol / f"seed-{seed}" / f"curves_{name}.png", f"{name}: loss and validation per epoch"
        )
        lines += curve_table(history)
    return lines


def plot_ndcg_per_seed(results: dict[str, dict[str, Any]], path: Path) -> None:
    """One panel per protocol: each model's test ndcg@20, a dot per seed and a bar at the mean."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(7 * len(results), 4), squeeze=False)
    for ax, (protocol, summary) in zip(axes[0], results.items(), strict=True):
        names = list(summary["models"])
        for i, n in enumerate(names):
            stat = summary["models"][n]["ndcg@20"]
            ax.bar(i, stat["mean"], color="tab:orange" if n == "fused" else "lightgray")
            ax.plot([i] * len(stat["per_seed"]), stat["per_seed"], "o", color="black", ms=3)
        ax.set_xticks(range(len(names)), names, rotation=60, ha="right")
        ax.set(ylabel="test ndcg@20", title=f"{protocol}: per seed (dots), mean (bar)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_report(results: dict[str, dict[str, Any]], path: Path, title: str = "cinegraph benchmark") -> None:
    """``report.md`` over ``{protocol: summary}`` (run folder layout of :mod:`models.runner`),
    and the per-seed plot next to it."""
    plot_ndcg_per_seed(results, path.parent / PLOT_FILE)
    lines = [
        f"# {title}\n",
        f"Protocols: {', '.join(results)}. Per-seed test ndcg@20 per model:\n",
        *_inline_png(path.parent / PLOT_FILE, "ndcg@20 per seed"),
    ]
    for protocol, summary in results.items():
        lines += protocol_lines(protocol, summary)
    for protocol, summary in results.items():
        lines += curve_lines(protocol, summary, path.parent)
    path.write_text("\n".join(lines))
