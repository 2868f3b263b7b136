"""flows/artifacts.py builders: the evaluation table of one protocol."""

from __future__ import annotations

from cinegraph.flows.artifacts import evaluation_rows


def test_evaluation_rows_carry_mrr_seeds_and_the_ratio_to_the_best_baseline() -> None:
    def stat(*v: float) -> dict:
        return {"mean": sum(v) / len(v), "std": 0.01, "per_seed": list(v)}

    summary = {
        "fused": {"ndcg@20": stat(0.2, 0.22), "mrr@20": stat(0.3, 0.3)},
        "ease": {"ndcg@20": stat(0.25, 0.27), "mrr@20": stat(0.4, 0.4)},
        "popularity": {"ndcg@20": stat(0.1, 0.1)},
    }
    rows = evaluation_rows(summary, "cold-items")
    fused = rows[0]
    assert fused["protocol"] == "cold-items" and fused["mrr@20"] == "0.3000 ± 0.0100"
    assert fused["ndcg@20 per seed"] == "0.2000, 0.2200"
    assert fused["ndcg@20 / ease"] == "0.81x" and rows[1]["ndcg@20 / ease"] == "1.00x"
