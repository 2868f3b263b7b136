"""models/scale.py: sampled in-edges, exact destination-chunked inference, memory refusals."""

from __future__ import annotations

import dataclasses
import logging
import math

import pyarrow as pa
import pytest
import torch

from cinegraph.errors import CinegraphError
from cinegraph.models.config import TrainConfig
from cinegraph.models.data import DataConfig, prepare_data
from cinegraph.models.ease import item_item_factors, train_ease
from cinegraph.models.evaluate import evaluate_ranking
from cinegraph.models.hgt_conv import ChunkedHGTConv
from cinegraph.models.itemknn import train_itemknn
from cinegraph.models.registry import Inputs
from cinegraph.models.scale import require_memory, sample_in_edges
from cinegraph.models.train import train_fused, without_unfit_item_item


@pytest.fixture(scope="module")
def data(tiny_tables: dict[str, pa.Table]):
    return prepare_data(tiny_tables, DataConfig(), seed=0)


@pytest.mark.parametrize("fanout", [1, 3, 8])
def test_sampled_in_edges_are_a_subset_near_the_fanout(data, fanout: int) -> None:
    edges = Inputs.of(data).edge_index
    draws = [sample_in_edges(edges, fanout, torch.Generator().manual_seed(s)) for s in range(30)]
    for rel, full in edges.items():
        keys = set((full[0] * 10**6 + full[1]).tolist())
        deg = torch.bincount(full[1])
        mean_kept = torch.stack([torch.bincount(d[rel][1], minlength=deg.numel()) for d in draws]).float().mean(0)
        for node in torch.nonzero(deg).flatten().tolist():
            want = min(int(deg[node]), fanout)  # expected in-degree after sampling
            assert mean_kept[node] == pytest.approx(want, abs=0.45 * want + 0.2), (rel, node)
        assert all(set((d[rel][0] * 10**6 + d[rel][1]).tolist()) <= keys for d in draws)
        small = deg[full[1]] <= fanout  # nodes below the fanout keep every edge
        assert all(
            set((full[:, small][0] * 10**6 + full[:, small][1]).tolist())
            <= set((d[rel][0] * 10**6 + d[rel][1]).tolist())
            for d in draws
        )
    again = sample_in_edges(edges, fanout, torch.Generator().manual_seed(0))
    assert all(torch.equal(again[r], draws[0][r]) for r in edges)  # seeded
    with pytest.raises(ValueError, match="fanout=0"):
        sample_in_edges(edges, 0, torch.Generator())


# Sampled HGT/fused steps and a sampled softmax: the full-size training path, on tiny data.
SAMPLED = TrainConfig(
    hidden_dim=16,
    hgt_heads=2,
    fusion_heads=2,
    gcn_epochs=2,
    hgt_epochs=2,
    fusion_epochs=2,
    eval_every=1,
    batch_size=256,
    gcn_steps=1,
    hgt_fanout=3,
    rec_loss="sampled_softmax",
    num_negatives=16,
)


def test_fused_training_with_sampled_edges(data) -> None:
    results = train_fused(data, SAMPLED)
    assert all(math.isfinite(r.metrics["ndcg@20"]) for r in results.values())
    assert results["fused"].config["hgt_fanout"] == 3


def test_item_item_residual_is_left_out_where_it_cannot_fit(data, caplog) -> None:
    assert without_unfit_item_item(data, SAMPLED) is SAMPLED  # tiny: it fits
    huge = dataclasses.replace(data, num_users=1_000_000, num_movies=3_000_000)
    with caplog.at_level(logging.WARNING, logger="cinegraph.models.train"):
        config = without_unfit_item_item(huge, SAMPLED)
    assert SAMPLED.item_item_rank == 128 and config.item_item_rank == 0
    assert "item-item residual off: on 1000000 users x 3000000 movies it needs about" in caplog.text


def test_require_memory_refuses_in_one_line(data) -> None:
    require_memory("small", 1024, "cpu")
    with pytest.raises(CinegraphError, match=r"^huge needs about 9313225\.7 GB, more than .* on cpu; try") as e:
        require_memory("huge", 1e16, "cpu", "try")
    assert "\n" not in str(e.value)
    big = dataclasses.replace(data, num_users=1_000_000, num_movies=3_000_000)  # checked before allocating
    with pytest.raises(CinegraphError, match=r"^ease on 1,000,000 users x 3,000,000 movies"):
        train_ease(big)
    many = dataclasses.replace(data, num_users=100_000_000_000)  # terabytes on any host, however idle
    with pytest.raises(CinegraphError, match=r"^itemknn on 100,000,000,000 users"):
        train_itemknn(many)
    with pytest.raises(CinegraphError, match=r"^the item-item residual on 1,000,000 users .* set item_item_rank 0$"):
        item_item_factors(data.train_edges, 1_000_000, 3_000_000, 200.0, 128)


def test_ranking_batches_agree(data) -> None:
    scores = torch.rand(data.num_users, data.num_movies, generator=torch.Generator().manual_seed(1))
    one = evaluate_ranking(lambda u: scores[u], data, "test", batch_size=1)
    all_at_once = evaluate_ranking(lambda u: scores[u], data, "test", batch_size=10_000)
    assert one.keys() == all_at_once.keys()
    assert all(one[k] == pytest.approx(all_at_once[k], nan_ok=True) for k in one)


@pytest.mark.gpu
def test_sampled_steps_and_chunked_ranking_on_cuda(data, monkeypatch) -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    monkeypatch.setattr(ChunkedHGTConv, "max_edges", 5)  # evaluation runs in chunks on the GPU
    results = train_fused(data.to("cuda"), SAMPLED.model_copy(update={"device": "cuda"}))
    assert all(math.isfinite(r.metrics["ndcg@20"]) for r in results.values())
    scores = torch.rand(data.num_users, data.num_movies, generator=torch.Generator().manual_seed(1))
    on_gpu = evaluate_ranking(lambda u: scores.cuda()[u], data.to("cuda"), "test", batch_size=3)
    assert on_gpu == pytest.approx(evaluate_ranking(lambda u: scores[u], data, "test"), nan_ok=True)
