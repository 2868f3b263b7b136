"""models/metrics.py against values worked out by hand."""

from __future__ import annotations

import math

import pytest
import torch

from cinegraph.models.metrics import (
    RankingMetrics,
    classification_metrics,
    f1_scores,
    mean_average_precision,
)

# Two users, top-3 lists (movie indices, best first) and their held-out movies:
#   user row 0: top [5, 2, 9], truth {2, 7}   -> hit at rank 2 only
#   user row 1: top [1, 4, 3], truth {1}      -> hit at rank 1
PRED = torch.tensor([[5, 2, 9], [1, 4, 3]])
TRUTH = torch.tensor([[0, 0, 1], [2, 7, 1]])
L2, L3, L4 = math.log2(2), math.log2(3), math.log2(4)
HAND = {
    # k = 1: row 0 misses, row 1 hits
    "recall@1": (0 + 1) / 2,
    "precision@1": (0 + 1) / 2,
    "hit_rate@1": (0 + 1) / 2,
    "mrr@1": (0 + 1) / 2,
    "ndcg@1": (0 + 1) / 2,
    # k = 3: row 0 has 1 of 2 relevant at rank 2; row 1 has 1 of 1 at rank 1
    "recall@3": (1 / 2 + 1) / 2,
    "precision@3": (1 / 3 + 1 / 3) / 2,
    "hit_rate@3": 1.0,
    "mrr@3": (1 / 2 + 1) / 2,
    # row 0: DCG = 1/log2(3), IDCG = 1/log2(2) + 1/log2(3); row 1: 1
    "ndcg@3": ((1 / L3) / (1 / L2 + 1 / L3) + 1.0) / 2,
}


def test_ranking_metrics_match_hand_values() -> None:
    meter = RankingMetrics(ks=(1, 3))
    meter.update(PRED, TRUTH)
    out = meter.compute()
    assert set(out) == set(HAND)
    for name, value in HAND.items():
        assert out[name] == pytest.approx(value, abs=1e-6), name
    assert meter.num_users == 2


def test_accumulating_batches_equals_one_batch() -> None:
    meter = RankingMetrics(ks=(1, 3))
    meter.update(PRED[:1], TRUTH[:, :2])  # row 0 alone
    meter.update(PRED[1:], torch.tensor([[0], [1]]))  # row 1 as row 0 of its batch
    for name, value in meter.compute().items():
        assert value == pytest.approx(HAND[name], abs=1e-6), name


def test_users_without_truth_do_not_count_and_empty_is_nan() -> None:
    meter = RankingMetrics(ks=(1, 3))
    meter.update(PRED, TRUTH[:, 2:])  # only row 1 has truth
    assert meter.compute()["ndcg@3"] == pytest.approx(1.0)
    meter.reset()
    meter.update(PRED, TRUTH[:, :0])
    assert all(math.isnan(v) for v in meter.compute().values())


def test_ranking_metrics_reject_short_lists() -> None:
    with pytest.raises(ValueError, match="fewer than k=3"):
        RankingMetrics(ks=(3,)).update(PRED[:, :2], TRUTH)
    with pytest.raises(ValueError, match="ks=\\(\\)"):
        RankingMetrics(ks=())
    assert repr(RankingMetrics((10, 20))) == "RankingMetrics(ks=(10, 20))"


# Four movies, three genres. Logits > 0 predict the genre.
LOGITS = torch.tensor([[2.0, -1.0, 0.5], [1.0, 1.0, -2.0], [-1.0, 3.0, -1.0], [-0.5, -2.0, -3.0]])
LABELS = torch.tensor([[1.0, 0, 1], [0, 1, 0], [0, 1, 0], [1, 0, 0]])


def test_f1_by_hand() -> None:
    # genre 0: pred {0,1}, true {0,3}: tp 1 fp 1 fn 1 -> F1 2/4 = 0.5
    # genre 1: pred {1,2}, true {1,2}: tp 2 -> F1 1
    # genre 2: pred {0},   true {0}:   tp 1 -> F1 1
    # micro: tp 4, fp 1, fn 1 -> 8 / 10
    micro, macro = f1_scores(LOGITS, LABELS)
    assert micro == pytest.approx(0.8)
    assert macro == pytest.approx((0.5 + 1 + 1) / 3)


def test_macro_f1_skips_classes_without_positives() -> None:
    labels = LABELS.clone()
    labels[:, 2] = 0  # genre 2 absent: its false positive counts in micro only
    micro, macro = f1_scores(LOGITS, labels)
    assert macro == pytest.approx((0.5 + 1) / 2)
    assert micro == pytest.approx(6 / (6 + 2 + 1))


def test_map_by_hand() -> None:
    # genre 0 ranking by score: movies 0 (2.0, rel), 1 (1.0), 3 (-0.5, rel), 2
    #   AP = (1/1 + 2/3) / 2 = 5/6
    # genre 1: movies 2 (3.0, rel), 1 (1.0, rel) -> AP = 1
    # genre 2: movie 0 first and relevant -> AP = 1
    assert mean_average_precision(LOGITS, LABELS) == pytest.approx((5 / 6 + 1 + 1) / 3)
    out = classification_metrics(LOGITS, LABELS)
    assert list(out) == ["micro_f1", "macro_f1", "map"]
    assert out["map"] == pytest.approx((5 / 6 + 2) / 3)
