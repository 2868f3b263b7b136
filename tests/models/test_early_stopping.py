"""models/early_stopping.py: the one loop keeps the best snapshot and stops after ``patience``."""

from __future__ import annotations

import pytest

from cinegraph.models.early_stopping import early_stopping


@pytest.mark.parametrize(
    ("scores", "eval_every", "patience", "epochs_run", "best_epoch"),
    [
        ([0.1, 0.3, 0.2, 0.25, 0.2], 1, 2, 3, 1),  # two validations below epoch 1's score
        ([0.5, 0.1, 0.1, 0.1, 0.1], 1, 9, 4, 0),  # nothing beats the start: the start is kept
        ([0.1, 0.2, 0.3, 0.4, 0.5, 0.6], 2, 1, 5, 5),
    ],  # epochs 2, 4 and the last, 5, validated
)
def test_keeps_the_best_snapshot_and_stops_after_patience(
    scores: list[float], eval_every: int, patience: int, epochs_run: int, best_epoch: int
) -> None:
    """``scores[e]``: the validation score after epoch ``e`` (0: the start)."""
    validated: list[int] = []
    trained: list[int] = []
    seen: list[tuple[str, int]] = []

    def validate() -> dict[str, float]:
        epoch = trained[-1] if trained else 0
        validated.append(epoch)
        return {"ndcg@20": scores[epoch]}

    def train(epoch: int) -> dict[str, float]:
        trained.append(epoch)
        return {"loss": 1.0 / epoch, "rec": 0.5}

    kept, history = early_stopping(
        "m",
        train,
        validate,
        lambda m: m["ndcg@20"],
        lambda e, s, m: (e, s),
        epochs=len(scores) - 1,
        eval_every=eval_every,
        patience=patience,
        on_epoch=lambda name, row: seen.append((name, int(row["epoch"]))),
    )
    assert [int(r["epoch"]) for r in history] == list(range(1, epochs_run + 1)) == trained
    assert kept[0] == best_epoch and validated[0] == 0
    assert seen == [("m", e) for e in trained]
    for row in history:
        assert ("valid_score" in row) == (row["epoch"] in validated) and row["seconds"] >= 0
        if "valid_score" in row:
            assert row["valid_ndcg@20"] == row["valid_score"]
