"""models/evaluate.py: full ranking without training items, slices, classification, RunResult."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch

from cinegraph.models.data import DataConfig, prepare_data
from cinegraph.models.evaluate import (
    COLD_USER_MAX,
    LONG_TAIL_MAX,
    RunResult,
    evaluate_classification,
    evaluate_ranking,
    validation_users,
)


def _reference(scores: torch.Tensor, data, split: str, k: int) -> dict[str, float]:
    """A plain per-user loop: the second code path the harness must agree with. Under the
    cold-items protocol a slice ranks the new movies only unless it is ``_all_movies``."""
    seen: dict[int, set[int]] = {}
    for u, m in data.seen_edges.t().tolist():
        seen.setdefault(u, set()).add(m)
    user_n = torch.bincount(data.train_edges[0], minlength=data.num_users)
    item_n = torch.bincount(data.train_edges[1], minlength=data.num_movies)
    keep = {
        "": lambda u, m: True,
        "_cold_users": lambda u, m: user_n[u] <= COLD_USER_MAX,
        "_long_tail": lambda u, m: item_n[m] <= LONG_TAIL_MAX,
        "_cold_items": lambda u, m: item_n[m] == 0,
    }
    new = set(torch.nonzero(data.cold_items).flatten().tolist())
    candidates = dict.fromkeys(keep)
    if data.config.protocol == "cold-items":
        keep = {
            "": lambda u, m: m in new,
            "_cold_users": lambda u, m: m in new and user_n[u] <= COLD_USER_MAX,
            "_all_movies": lambda u, m: m in new,
        }
        candidates = {"": new, "_cold_users": new, "_all_movies": None}
    truth: dict[int, list[int]] = {}
    for u, m in data.edges(split).t().tolist():
        truth.setdefault(u, []).append(m)
    out = {}
    for name, pred in keep.items():
        rows = []
        for u, items in truth.items():
            rel = {m for m in items if pred(u, m)}
            if not rel:
                continue
            ranked = [
                m
                for m in scores[u].argsort(descending=True).tolist()
                if m not in seen.get(u, ()) and (candidates[name] is None or m in candidates[name])
            ]
            hits = [m in rel for m in ranked[:k]]
            first = next((i for i, h in enumerate(hits) if h), None)
            dcg = sum(1 / math.log2(i + 2) for i, h in enumerate(hits) if h)
            idcg = sum(1 / math.log2(i + 2) for i in range(min(len(rel), k)))
            rows.append(
                (
                    sum(hits) / len(rel),
                    dcg / idcg,
                    sum(hits) / k,
                    float(any(hits)),
                    0.0 if first is None else 1 / (first + 1),
                )
            )
        for j, metric in enumerate(["recall", "ndcg", "precision", "hit_rate", "mrr"]):
            out[f"{metric}@{k}{name}"] = sum(r[j] for r in rows) / len(rows) if rows else float("nan")
    return out


@pytest.mark.parametrize("protocol", ["warm", "cold-items"])
@pytest.mark.parametrize("threshold", [4.0, 5.0])
@pytest.mark.parametrize("split", ["valid", "test"])
def test_harness_agrees_with_a_per_user_loop(tiny_tables, threshold: float, split: str, protocol: str) -> None:
    config = DataConfig(positive_threshold=threshold, protocol=protocol, cold_item_frac=0.3)
    data = prepare_data(tiny_tables, config, seed=0)
    scores = torch.rand(data.num_users, data.num_movies, generator=torch.Generator().manual_seed(5))
    out = evaluate_ranking(lambda u: scores[u], data, split, ks=(10, 20), batch_size=7)
    for k in (10, 20):
        for name, value in _reference(scores, data, split, k).items():
            if math.isnan(value):
                assert math.isnan(out[name]), name
            else:
                assert out[name] == pytest.approx(value, abs=1e-5), name
    assert len(out) == 5 * 2 * (3 if protocol == "cold-items" else 4)
    if threshold == 5.0:  # few positives per user: every slice is populated
        assert not any(math.isnan(v) for v in out.values())


def test_training_items_are_never_recommended(tiny_tables) -> None:
    data = prepare_data(tiny_tables, DataConfig(), seed=0)
    truth = data.test_edges
    # seen items score highest, test positives next: a perfect ranking once seen ones are removed
    scores = torch.zeros(data.num_users, data.num_movies)
    scores[truth[0], truth[1]] = 1.0
    scores[data.seen_edges[0], data.seen_edges[1]] = 10.0
    out = evaluate_ranking(lambda u: scores[u], data, "test")
    assert out["recall@10"] == out["ndcg@20"] == out["hit_rate@10"] == out["mrr@20"] == 1.0
    assert out["precision@10"] == pytest.approx(1 / 10)  # one test positive per user
    # a cut-off above the 60 movies pads the lists: precision still divides by k
    padded = evaluate_ranking(lambda u: scores[u], data, "test", ks=(100,), slices=False)
    assert padded == pytest.approx(
        {
            **dict.fromkeys(("recall@100", "ndcg@100", "hit_rate@100", "mrr@100"), 1.0),
            "precision@100": 0.01,
        }
    )
    scores[truth[0], truth[1]] = -1.0
    assert evaluate_ranking(lambda u: scores[u], data, "test")["recall@20"] == 0.0


def test_cold_items_ranking_is_among_new_movies_only(tiny_tables) -> None:
    """Scoring every warm movie above the new ones costs nothing among new movies, everything
    in the all-movies ranking."""
    data = prepare_data(tiny_tables, DataConfig(protocol="cold-items"), seed=0)
    truth = data.test_edges[:, data.cold_items[data.test_edges[1]]]
    scores = torch.zeros(data.num_users, data.num_movies)
    scores[:, ~data.cold_items] = 100.0
    scores[truth[0], truth[1]] = 1.0
    out = evaluate_ranking(lambda u: scores[u], data, "test")
    assert out["recall@20"] == out["ndcg@20"] == 1.0
    assert out["recall@20_all_movies"] == 0.0
    assert "ndcg@20_long_tail" not in out


def test_metric_names_and_bad_score_shape(tiny_tables) -> None:
    data = prepare_data(tiny_tables, DataConfig(), seed=0)
    out = evaluate_ranking(lambda u: torch.zeros(u.numel(), data.num_movies), data, "valid")
    assert len(out) == 5 * 2 * 4
    assert {
        "ndcg@20",
        "recall@10",
        "mrr@20",
        "ndcg@20_cold_items",
        "hit_rate@10_long_tail",
        "precision@20_cold_users",
    } <= set(out)
    with pytest.raises(ValueError, match="score_fn returned"):
        evaluate_ranking(lambda u: torch.zeros(u.numel(), 3), data, "valid")
    with pytest.raises(ValueError, match="split='train2'"):
        evaluate_ranking(lambda u: torch.zeros(u.numel(), data.num_movies), data, "train2")


def test_classification_uses_the_split_movies_only(tiny_tables) -> None:
    data = prepare_data(tiny_tables, DataConfig(), seed=0)
    logits = data.genre_labels * 4 - 2  # perfect on every movie ...
    test = data.genre_masks["test"]
    logits[~test] = -logits[~test]  # ... then wrong outside the test split
    assert evaluate_classification(logits, data, "test") == {
        "micro_f1": 1.0,
        "macro_f1": 1.0,
        "map": 1.0,
    }
    assert evaluate_classification(logits, data, "valid")["micro_f1"] == 0.0


def test_run_result_to_dict_is_json() -> None:
    r = RunResult("popularity", 0, {"ndcg@20": 0.1}, {"ndcg@20": 0.2}, [{"epoch": 1, "loss": 0.5}], 0.01, 12.0)
    d = json.loads(json.dumps(r.to_dict()))
    assert d == {
        "name": "popularity",
        "seed": 0,
        "metrics": {"ndcg@20": 0.1},
        "valid_metrics": {"ndcg@20": 0.2},
        "history": [{"epoch": 1, "loss": 0.5}],
        "epoch_seconds": 0.01,
        "peak_mem_mb": 12.0,
        "config": {},
    }


def test_validation_ranks_a_seeded_user_sample_and_test_every_user(tiny_tables) -> None:
    full = prepare_data(tiny_tables, DataConfig(), seed=0)
    users = full.valid_edges[0].unique()
    n = users.numel() // 2
    sampled = dataclasses.replace(full, config=DataConfig(valid_users=n))
    scores = torch.rand(full.num_users, full.num_movies, generator=torch.Generator().manual_seed(1))
    chosen = validation_users(users, n, full.seed)
    assert chosen.numel() == n and torch.equal(chosen, validation_users(users, n, full.seed))
    assert not torch.equal(chosen, validation_users(users, n, full.seed + 1))
    keep = torch.isin(full.valid_edges[0], chosen)
    restricted = dataclasses.replace(full, valid_edges=full.valid_edges[:, keep])
    out = evaluate_ranking(lambda u: scores[u], sampled, "valid", ks=(20,), batch_size=5)
    for name, value in _reference(scores, restricted, "valid", 20).items():
        assert out[name] == pytest.approx(value, abs=1e-5) or (math.isnan(out[name]) and math.isnan(value)), name
    assert out["ndcg@20"] != pytest.approx(evaluate_ranking(lambda u: scores[u], full, "valid", ks=(20,))["ndcg@20"])
    test = evaluate_ranking(lambda u: scores[u], sampled, "test")  # test: every user, sample or not
    assert json.dumps(test) == json.dumps(evaluate_ranking(lambda u: scores[u], full, "test"))  # NaN == NaN
    assert torch.equal(validation_users(users, None, 0), users)
    assert torch.equal(validation_users(users, users.numel() + 5, 0), users)
