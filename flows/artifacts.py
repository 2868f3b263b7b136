"""What a run publishes: counts, match quality, load statistics, evaluation tables and the
training report, as Prefect artifacts. Builders are pure (rows and markdown from plain dicts);
``publish_*`` must be called inside a flow or task run."""

from __future__ import annotations

import copy
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

from cinegraph.models.report import CLASSIFICATION, HEADLINE, best_baseline


def counts_rows(manifest: Mapping[str, Any]) -> list[dict[str, Any]]:
    counts = manifest.get("counts", {})
    rows = [{"kind": "node", "type": k, "count": v} for k, v in counts.get("nodes", {}).items()]
    rows += [{"kind": "edge", "type": k, "count": v} for k, v in counts.get("edges", {}).items()]
    rows += [{"kind": "rejects", "type": k, "count": v} for k, v in manifest.get("rejects", {}).items()]
    return rows


def load_rows(nodes: Mapping[str, Any], edges: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Rows of a Neo4j load report: per type, the count after the load, what changed, and whether it
    was skipped as the graph already held it."""
    return [
        {
            "kind": kind,
            "type": name,
            "total": s.total,
            "upserted": s.upserted,
            "deleted": s.deleted,
            "unchanged": s.unchanged,
            "skipped": s.skipped,
        }
        for kind, syncs in (("node", nodes), ("edge", edges))
        for name, s in syncs.items()
    ]


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


def evaluation_rows(
    summary: Mapping[str, Mapping[str, Mapping[str, Any]]], protocol: str = "warm"
) -> list[dict[str, Any]]:
    """One row per model of one protocol: the report's headline and genre metrics and cost as
    ``mean ± std``, the per-seed test ndcg@20 and its ratio to the best non-fused model's."""
    names = [*HEADLINE.get(protocol, HEADLINE["warm"]), *CLASSIFICATION, "train_seconds", "peak_mem_mb"]
    present = [m for m in names if any(m in s for s in summary.values())]
    best = best_baseline(dict(summary), "ndcg@20")
    rows = []
    for model, metrics in summary.items():
        row: dict[str, Any] = {"protocol": protocol, "model": model}
        for m in present:
            cell = metrics.get(m)
            row[m] = "" if cell is None else _pm(cell["mean"], cell["std"])
        ndcg = metrics.get("ndcg@20")
        row["ndcg@20 per seed"] = "" if ndcg is None else ", ".join(f"{v:.4f}" for v in ndcg["per_seed"])
        row[f"ndcg@20 / {best or 'best baseline'}"] = (
            f"{ndcg['mean'] / summary[best]['ndcg@20']['mean']:.2f}x"
            if best and ndcg and summary[best]["ndcg@20"]["mean"] > 0
            else ""
        )
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


def publish_table(key: str, rows: list[dict[str, Any]], description: str) -> None:
    create_table_artifact(rows, key=key, description=description)


def publish_markdown(key: str, markdown: str, description: str) -> None:
    create_markdown_artifact(markdown, key=key, description=description)


class Progress:
    """A progress artifact over ``total`` steps. Plain data once created, so a copy travels with
    a task to another process (a Dask worker) and moves the same artifact from there."""

    def __init__(self, key: str, total: int, description: str) -> None:
        self.total, self.done = max(total, 1), 0
        self.id = cast("UUID", create_progress_artifact(0.0, key=key, description=description))

    def set(self, done: int) -> None:
        self.done = min(self.total, done)
        update_progress_artifact(self.id, 100.0 * self.done / self.total)

    def step(self, n: int = 1) -> None:
        self.set(self.done + n)

    def at(self, done: int) -> Progress:
        """A copy standing at ``done`` steps (where a seed's share of the run starts)."""
        other = copy.copy(self)
        other.done = done
        return other
