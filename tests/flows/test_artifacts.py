"""flows/artifacts.py builders: curve tables label each validation column with its metric."""

from __future__ import annotations

from cinegraph.flows.artifacts import curve_table, evaluation_rows


def test_curve_table_names_the_validation_metric_of_each_column() -> None:
    fused = [
        {"epoch": 1, "loss": 0.9},
        {"epoch": 2, "loss": 0.8, "valid_score": 2.1, "valid_ndcg@20": 0.21, "valid_map": 0.3},
    ]
    baseline = [{"epoch": 1, "loss": 0.5, "valid_ndcg@20": 0.2}]
    fused_lines = curve_table(fused).splitlines()
    assert fused_lines[0] == "| epoch | loss | valid ndcg@20 | valid map |"
    assert fused_lines[-1] == "| 2 | 0.8000 | 0.2100 | 0.3000 |"
    assert "2.1" not in curve_table(fused)  # the selection score is not shown as "valid"
    assert curve_table(baseline).splitlines()[0] == "| epoch | loss | valid ndcg@20 |"


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
