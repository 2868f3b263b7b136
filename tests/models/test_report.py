"""models/report.py: curve tables label each validation column with the metric it holds."""

from __future__ import annotations

from cinegraph.models.report import curve_table


def test_curve_table_names_the_validation_metric_of_each_column() -> None:
    fused = [
        {"epoch": 1, "loss": 0.9},
        {"epoch": 2, "loss": 0.8, "valid_score": 2.1, "valid_ndcg@20": 0.21, "valid_map": 0.3},
    ]
    baseline = [{"epoch": 1, "loss": 0.5, "valid_ndcg@20": 0.2}]
    fused_lines = curve_table(fused)
    assert fused_lines[0] == "| epoch | loss | valid ndcg@20 | valid map |"
    assert fused_lines[-2] == "| 2 | 0.8000 | 0.2100 | 0.3000 |"
    assert "2.1" not in "\n".join(fused_lines)  # the selection score is not shown as "valid"
    assert curve_table(baseline)[0] == "| epoch | loss | valid ndcg@20 |"
