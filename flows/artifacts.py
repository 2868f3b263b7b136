"""What a run publishes: counts, match quality, load statistics, evaluation tables and the
training report, as Prefect artifacts. Builders are pure (rows and markdown from plain dicts);
``publish_*`` must be called inside a flow or task run."""

from __future__ import annotations

import base64
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, cast
from uuid import UUID

from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)

from cinegraph.models.report import best_baseline

# Metrics shown in the evaluation table, in this order, when present.
HEADLINE = ("ndcg@20", "recall@20", "precision@20", "hit_rate@20", "mrr@10", "mrr@20", "ndcg@10",
            "ndcg@20_cold_users", "ndcg@20_long_tail", "ndcg@20_cold_items", "ndcg@20_all_movies",
            "micro_f1", "macro_f1", "map", "train_seconds", "peak_mem_mb")  # fmt: skip


def counts_rows(manifest: Mapping[str, Any]) -> list[dict[str, Any]]:
    counts = manifest.get("counts", {})
    rows = [{"kind": "node", "type": k, "count": v} for k, v in counts.get("nodes", {}).items()]
    rows += [{"kind": "edge", "type": k, "count": v} for k, v in counts.get("edges", {}).items()]
    rows += [{"kind": "rejects", "type": k, "count": v} for k, v in manifest.get("rejects", {}).items()]
    return rows


def load_rows(nodes: Mapping[str, Any], edges: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Rows of a Neo4j load report: per type, the count after the load and what changed."""
    return [
        {"kind": kind, "type": name, "total": s.total, "upserted": s.upserted, "deleted": s.deleted,
         "unchanged": s.unchanged}
        for kind, syncs in (("node", nodes), ("edge", edges))
        for name, s in syncs.items()
    ]  # fmt: skip


def match_markdown(match: Mapping[str, Any], review_path: Path) -> str:
    lines = [
        "# Title matching",
        "",
        f"- mode: **{match.get('mode')}**",
        f"- matched: **{match.get('matched')}**, unmatched: {match.get('unmatched')}",
        f"- review queue: **{match.get('review')}** ambiguous cases in `{review_path}`",
    ]
    ev = match.get("evaluation")
    if ev:
        lines.append(
            f"- fuzzy vs links.csv: precision **{ev['precision']:.4f}**, recall "
            f"**{ev['recall']:.4f}**, F1 {ev['f1']:.4f} over {ev['truth_pairs']} linked titles"
        )
    else:
        lines.append("- no links.csv in this variant: fuzzy matching not scored")
    return "\n".join(lines)


def summarize(per_seed: Mapping[str, Sequence[Mapping[str, float]]]) -> dict[str, dict[str, dict]]:
    """{model: [metrics of seed 0, seed 1, ...]} -> {model: {metric: {mean, std, per_seed}}}
    (sample std; NaN, e.g. an empty slice, propagates)."""
    out: dict[str, dict[str, dict]] = {}
    for model, runs in per_seed.items():
        keys = [k for k in runs[0] if all(k in r for r in runs)]
        out[model] = {}
        for k in keys:
            values = [float(r[k]) for r in runs]
            mean = math.fsum(values) / len(values)
            var = math.fsum((v - mean) ** 2 for v in values) / max(len(values) - 1, 1)
            out[model][k] = {"mean": mean, "std": math.sqrt(var), "per_seed": values}
    return out


def evaluation_rows(summary: Mapping[str, Mapping[str, Mapping[str, Any]]],
                    protocol: str = "warm") -> list[dict[str, Any]]:  # fmt: skip
    """One row per model of one protocol: the headline metrics as ``mean ± std``, the per-seed
    test ndcg@20 and its ratio to the best non-fused model's."""
    present = [m for m in HEADLINE if any(m in s for s in summary.values())]
    best = best_baseline(dict(summary), "ndcg@20")
    rows = []
    for model, metrics in summary.items():
        row: dict[str, Any] = {"protocol": protocol, "model": model}
        for m in present:
            cell = metrics.get(m)
            row[m] = "" if cell is None else _pm(cell["mean"], cell["std"])
        ndcg = metrics.get("ndcg@20")
        row["ndcg@20 per seed"] = "" if ndcg is None else ", ".join(
            f"{v:.4f}" for v in ndcg["per_seed"])
        row[f"ndcg@20 / {best or 'best baseline'}"] = (
            f"{ndcg['mean'] / summary[best]['ndcg@20']['mean']:.2f}x"
            if best and ndcg and summary[best]["ndcg@20"]["mean"] > 0 else "")
        rows.append(row)
    return rows


def protocol_rows(results: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The evaluation rows of every protocol run, ``results`` being ``{protocol: summary}`` as
    ``results.json`` holds it; columns are the union, in order."""
    rows = [r for p, s in results.items() for r in evaluation_rows(s["models"], p)]
    cols = list(dict.fromkeys(c for r in rows for c in r))
    return [{c: r.get(c, "") for c in cols} for r in rows]


def _pm(mean: float, std: float) -> str:
    return f"{mean:.4f}" if std == 0 or math.isnan(std) else f"{mean:.4f} ± {std:.4f}"


def markdown_table(rows: Sequence[Mapping[str, Any]]) -> str:
    if not rows:
        return "(none)"
    cols = list(rows[0])
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(r.get(c, "")) for c in cols) + " |" for r in rows]
    return "\n".join(lines)


CURVE_VALID = ("ndcg@20", "map")  # validation metrics of the curve tables, each labelled


def curve_table(history: Sequence[Mapping[str, float]], max_rows: int = 15) -> str:
    """A compact per-epoch table (loss and the validation metrics, each column named after the
    metric it holds), thinned to ``max_rows``."""
    step = max(1, math.ceil(len(history) / max_rows))
    picked = list(history[::step])
    if history and picked[-1] is not history[-1]:
        picked.append(history[-1])
    rows = [
        {"epoch": int(h["epoch"]), "loss": f"{h['loss']:.4f}",
         **{f"valid {k}": f"{h[f'valid_{k}']:.4f}" if f"valid_{k}" in h else ""
            for k in CURVE_VALID if any(f"valid_{k}" in r for r in history)}}
        for h in picked
    ]  # fmt: skip
    return markdown_table(rows)


def report_markdown(
    title: str,
    summary: Mapping[str, Mapping[str, Mapping[str, Any]]],
    histories: Mapping[str, Sequence[Mapping[str, float]]],
    curves: Mapping[str, Path],
) -> str:
    """The run's report: evaluation table, then per model its curves as an inline image (the
    markdown stands alone: in the Prefect UI, on disk, anywhere it is copied) and a table."""
    parts = [f"# {title}", "", "## Evaluation (test split)", "",
             markdown_table(evaluation_rows(summary)), "", "## Training curves", ""]  # fmt: skip
    for name, history in histories.items():
        parts += [f"### {name}", ""]
        if name in curves and Path(curves[name]).exists():
            png = base64.b64encode(Path(curves[name]).read_bytes()).decode("ascii")
            parts += [f"![{name}: loss and validation per epoch](data:image/png;base64,{png})", ""]
        parts += [curve_table(history), ""]
    return "\n".join(parts)


def publish_table(key: str, rows: list[dict[str, Any]], description: str) -> None:
    create_table_artifact(rows, key=key, description=description)


def publish_markdown(key: str, markdown: str, description: str) -> None:
    create_markdown_artifact(markdown, key=key, description=description)


class Progress:
    """A progress artifact over ``total`` steps, advanced one step at a time. A stage of at most
    ``n`` steps may end early (early stopping): :meth:`finish_stage` skips to its end."""

    def __init__(self, key: str, total: int, description: str) -> None:
        self.total, self.done, self.stage_end = max(total, 1), 0, 0
        # Prefect types its sync/async dispatch as returning either; from sync code it is the id.
        self.id = cast(UUID, create_progress_artifact(0.0, key=key, description=description))

    def step(self, n: int = 1) -> None:
        self.done = min(self.total, self.done + n)
        update_progress_artifact(self.id, 100.0 * self.done / self.total)

    def start_stage(self, steps: int) -> None:
        self.stage_end = self.done + steps

    def finish_stage(self) -> None:
        self.step(max(self.stage_end - self.done, 0))
