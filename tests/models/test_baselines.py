"""Baselines: shapes, repr, determinism, and beating random on the two-taste fixture."""

from __future__ import annotations

import json

import pytest
import torch
from torch import Tensor
from torch_geometric.nn.models import LightGCN

from cinegraph.models import neighbours
from cinegraph.models.content_knn import ContentKNN, ContentKNNConfig, content_blocks, train_content_knn
from cinegraph.models.data import DataConfig, bpr_triples, prepare_data
from cinegraph.models.ease import EASE, EASEConfig, train_ease
from cinegraph.models.evaluate import evaluate_ranking
from cinegraph.models.itemknn import ItemKNN, ItemKNNConfig, train_itemknn
from cinegraph.models.lightgcn import LightGCNConfig, LightGCNRecommender, train_lightgcn
from cinegraph.models.mf_bpr import MFBPR, BPRConfig, train_mf_bpr
from cinegraph.models.popularity import MostPopular, PopularityConfig, train_popularity

FAST = {
    "embedding_dim": 16,
    "lr": 0.05,
    "batch_size": 256,
    "max_epochs": 40,
    "eval_every": 2,
    "patience": 4,
}


@pytest.fixture(scope="module")
def data(tiny_tables):
    return prepare_data(tiny_tables, DataConfig(), seed=0)


@pytest.fixture(scope="module")
def random_ndcg(data) -> float:
    g = torch.Generator().manual_seed(0)
    runs = [
        evaluate_ranking(lambda u: torch.rand(u.numel(), data.num_movies, generator=g), data, "test") for _ in range(5)
    ]
    return sum(r["ndcg@20"] for r in runs) / len(runs)


def test_modules_shapes_and_repr(data) -> None:
    users = torch.tensor([0, 3, 5])
    mf = MFBPR(data.num_users, data.num_movies, 8)
    lg = LightGCNRecommender(data.num_users, data.num_movies, data.train_edges, 8, 2)
    pop = MostPopular(data.num_movies).fit(data.train_edges)
    for model in (mf, lg, pop):
        assert model.scores(users).shape == (3, data.num_movies)
    assert mf(users, users).shape == lg(users, users).shape == (3,)
    assert torch.allclose(mf(users, users), mf.scores(users)[torch.arange(3), users])
    assert torch.allclose(lg(users, users), lg.scores(users)[torch.arange(3), users], atol=1e-6)
    assert repr(mf) == "MFBPR(40, 60, 8)"
    assert repr(lg) == "LightGCNRecommender(40, 60, 8, num_layers=2)"
    assert repr(pop) == "MostPopular(60)"
    assert lg.adj_t.shape == (100, 100) and lg.adj_t.values().numel() == 2 * data.train_edges.size(1)


def test_lightgcn_sparse_propagation_matches_message_passing(data) -> None:
    """The cached CSR adjacency gives PyG's own edge_index propagation, gradients included."""
    lg = LightGCNRecommender(data.num_users, data.num_movies, data.train_edges, 8, 2)
    ref = LightGCN(lg.lightgcn.num_nodes, 8, 2)
    ref.embedding.weight.data.copy_(lg.lightgcn.embedding.weight.data)
    src, dst = data.train_edges[0], data.train_edges[1] + data.num_users
    edge_index = torch.stack([torch.cat([src, dst]), torch.cat([dst, src])])
    ours, theirs = lg.lightgcn.get_embedding(lg.adj_t), ref.get_embedding(edge_index)
    assert torch.allclose(ours, theirs, atol=1e-6)
    ours.pow(2).sum().backward()
    theirs.pow(2).sum().backward()
    assert torch.allclose(lg.lightgcn.embedding.weight.grad, ref.embedding.weight.grad, atol=1e-5)


def test_popularity_counts_training_positives(data) -> None:
    pop = MostPopular(data.num_movies).fit(data.train_edges)
    assert pop.counts.sum() == data.train_edges.size(1)
    assert pop.counts[-2:].tolist() == [0.0, 0.0]  # the two unrated movies


def test_bpr_triples_cover_positives_with_true_negatives(data) -> None:
    batches = bpr_triples(data.train_edges, data.num_movies, 64, torch.Generator().manual_seed(0))
    users, pos, neg = (torch.cat(x) for x in zip(*batches, strict=True))
    assert [b[0].numel() for b in batches][:-1] == [64] * (len(batches) - 1)
    got = sorted(zip(users.tolist(), pos.tolist(), strict=True))
    assert got == sorted(map(tuple, data.train_edges.t().tolist()))
    positives = set(map(tuple, data.train_edges.t().tolist()))
    assert not any((u, n) in positives for u, n in zip(users.tolist(), neg.tolist(), strict=True))


def test_bpr_negatives_equal_redrawing_every_clash_of_every_pair() -> None:
    """Rechecking only the redrawn negatives gives the same draws as probing every pair each
    round (a reference loop), on a graph dense enough to need several rounds."""
    gen = torch.Generator().manual_seed(3)
    edges = torch.unique(torch.randint(6, (2, 40), generator=gen), dim=1)  # ~half of a 6 x 6 matrix
    got = bpr_triples(edges, 6, 8, torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(0)
    keys = (edges[0] * 6 + edges[1]).sort().values
    perm = torch.randperm(edges.size(1), generator=g)
    users, pos = edges[0, perm], edges[1, perm]
    neg = torch.randint(6, (users.numel(),), generator=g)
    for _ in range(10):
        probe = users * 6 + neg
        clash = keys[torch.searchsorted(keys, probe).clamp(max=keys.numel() - 1)] == probe
        if not clash.any():
            break
        neg[clash] = torch.randint(6, (int(clash.sum()),), generator=g)
    assert torch.equal(torch.cat([b[2] for b in got]), neg) and torch.equal(torch.cat([b[1] for b in got]), pos)


@pytest.mark.parametrize(
    "train, config",
    [
        (train_popularity, PopularityConfig()),
        (train_popularity, PopularityConfig(count="ratings")),
        (train_mf_bpr, BPRConfig(**FAST)),
        (train_lightgcn, LightGCNConfig(**FAST, num_layers=2)),
    ],
)
def test_baselines_beat_random(data, random_ndcg: float, train, config) -> None:
    result = train(data, config, seed=0, device="cpu")
    assert result.metrics["ndcg@20"] > 1.5 * random_ndcg
    assert result.valid_metrics["ndcg@20"] > 1.5 * random_ndcg
    assert result.config == config.model_dump()
    assert result.history and result.epoch_seconds > 0 and result.peak_mem_mb > 0
    assert "ndcg@20_cold_items" in result.metrics


@pytest.mark.parametrize("train, config", [(train_mf_bpr, BPRConfig), (train_lightgcn, LightGCNConfig)])
def test_personalised_baselines_learn_the_taste_groups(data, train, config) -> None:
    """Popularity cannot tell the two groups apart; embeddings must."""
    pop = train_popularity(data, seed=0).metrics["ndcg@20"]
    assert train(data, config(**FAST), seed=0).metrics["ndcg@20"] > pop + 0.1


@pytest.mark.parametrize("train, config", [(train_mf_bpr, BPRConfig), (train_lightgcn, LightGCNConfig)])
def test_fixed_seed_gives_identical_results(data, train, config) -> None:
    cfg = config(**{**FAST, "max_epochs": 4})
    a, b = train(data, cfg, seed=1), train(data, cfg, seed=1)
    same = json.dumps(a.metrics)  # NaN (empty slices) compares equal as text
    assert same == json.dumps(b.metrics) and [h["loss"] for h in a.history] == [h["loss"] for h in b.history]
    assert json.dumps(train(data, cfg, seed=2).metrics) != same


@pytest.mark.gpu
@pytest.mark.parametrize("train, config", [(train_mf_bpr, BPRConfig), (train_lightgcn, LightGCNConfig)])
def test_baselines_train_on_cuda(data, random_ndcg: float, train, config) -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    result = train(data, config(**FAST), seed=0, device="cuda")
    assert result.metrics["ndcg@20"] > 1.5 * random_ndcg
    assert result.peak_mem_mb > 0


def test_ease_dual_equals_primal_and_has_a_zero_diagonal(data) -> None:
    """The U x U Woodbury form gives the scores of the M x M closed form."""
    users = torch.arange(data.num_users)
    primal = EASE(data.num_users, data.num_movies, 5.0, dual=False).fit(data.train_edges)
    dual = EASE(data.num_users, data.num_movies, 5.0, dual=True).fit(data.train_edges)
    assert torch.allclose(primal.scores(users), dual.scores(users), atol=1e-4)
    assert primal.weight.diagonal().abs().max() == 0.0
    assert repr(dual) == "EASE(40, 60, lambda_=5.0, dual=True)"
    with pytest.raises(ValueError, match="lambda_=0"):
        EASE(3, 4, 0)


def test_ease_picks_lambda_on_validation_and_beats_random(data, random_ndcg: float) -> None:
    config = EASEConfig(lambdas=(1.0, 10.0, 1000.0))
    result = train_ease(data, config, seed=0)
    assert result.metrics["ndcg@20"] > 1.5 * random_ndcg
    valid = [h["valid_ndcg@20"] for h in result.history]
    assert len(valid) == 3
    assert result.config["selected"] == {"lambda_": config.lambdas[valid.index(max(valid))]}
    assert result.valid_metrics["ndcg@20"] == pytest.approx(max(valid))


def test_itemknn_scores_sum_the_shrunk_cosine_of_liked_neighbours(data) -> None:
    model = ItemKNN(data.num_users, data.num_movies, k=3, shrink=2.0).fit(data.train_edges)
    liked: dict[int, set[int]] = {}
    for u, m in data.train_edges.t().tolist():
        liked.setdefault(u, set()).add(m)
    col = {m: [u for u in liked if m in liked[u]] for m in range(data.num_movies)}

    def cos(i: int, j: int) -> float:
        both = len(set(col[i]) & set(col[j]))
        return both / ((len(col[i]) * len(col[j])) ** 0.5 + 2.0)

    target = int(data.train_edges[1, 0])
    sims = sorted(((cos(j, target), j) for j in set(data.train_edges[1].tolist()) - {target}), reverse=True)[:3]
    for u in (0, 1, 2):
        want = sum(s for s, j in sims if j in liked[u])
        assert model.scores(torch.tensor([u]))[0, target] == pytest.approx(want, abs=1e-5)
    assert repr(model) == "ItemKNN(40, 60, k=3, shrink=2.0)"


def _dense_neighbour_scores(sim: Tensor, active: Tensor, edges: Tensor, num_users: int, k: int) -> Tensor:
    """Reference: each movie's k most similar liked movies (rows of the dense ``[M, A]`` ``sim``),
    scores summed over the user's liked ones, all dense."""
    x = torch.zeros(num_users, active.numel())
    x[edges[0], torch.searchsorted(active, edges[1])] = 1.0
    top = sim.topk(k, dim=1)
    return x @ torch.zeros_like(sim).scatter_(1, top.indices, top.values).t()  # [U, M]


@pytest.mark.parametrize("block_entries", [1, 100, 2**25])  # one row per block, a few rows, one block
def test_neighbourhood_models_match_dense_similarities(data, monkeypatch, block_entries: int) -> None:
    monkeypatch.setattr(neighbours, "BLOCK_ENTRIES", block_entries)
    edges, users = data.train_edges, torch.arange(data.num_users)
    active = edges[1].unique()
    x = torch.zeros(data.num_users, data.num_movies)
    x[edges[0], edges[1]] = 1.0
    gram = x.t()[active] @ x[:, active]  # [A, A]
    norm = gram.diagonal().sqrt()
    cos = (gram / (norm[:, None] * norm[None, :] + 5.0)).fill_diagonal_(0.0)
    item_sim = torch.zeros(data.num_movies, active.numel()).index_copy_(0, active, cos)  # unrated: no neighbour
    want = _dense_neighbour_scores(item_sim, active, edges, data.num_users, k=4)
    got = ItemKNN(data.num_users, data.num_movies, k=4, shrink=5.0).fit(edges).scores(users)
    assert torch.allclose(got, want, atol=1e-5)

    blocks = content_blocks(data)
    weights = {"genre": 0.5, "people": 1.0, "numeric": 0.25}
    content_sim = sum(w * (f.to_dense() @ f.to_dense()[active].t()) for b, w in weights.items() for f in [blocks[b]])
    assert isinstance(content_sim, Tensor)
    content_sim[active, torch.arange(active.numel())] = 0.0
    want = _dense_neighbour_scores(content_sim, active, edges, data.num_users, k=6)
    got = ContentKNN(data.num_users, data.num_movies, weights, k=6).fit(edges, blocks).scores(users)
    assert torch.allclose(got, want, atol=1e-5)


@pytest.mark.parametrize(
    "train, config",
    [
        (train_itemknn, ItemKNNConfig(ks=(5, 20), shrinks=(0.0, 10.0))),
        (train_content_knn, ContentKNNConfig(ks=(5, 20))),
    ],
)
def test_neighbourhood_baselines_choose_on_validation_and_beat_random(data, random_ndcg: float, train, config) -> None:
    result = train(data, config, seed=0)
    assert result.metrics["ndcg@20"] > 1.5 * random_ndcg
    valid = [h["valid_ndcg@20"] for h in result.history]
    assert result.valid_metrics["ndcg@20"] == pytest.approx(max(valid))


def test_content_knn_ranks_new_movies_from_content(tiny_tables) -> None:
    """Under the cold-items protocol new movies have no interaction, yet content kNN ranks them
    (the fixture's taste groups share crew and genres); interaction models cannot."""
    cold = prepare_data(tiny_tables, DataConfig(protocol="cold-items", cold_item_frac=0.3), 0)
    blocks = content_blocks(cold)
    assert set(blocks) == {"genre", "people", "tags", "numeric"}
    assert all(b.shape[0] == cold.num_movies for b in blocks.values())
    g = torch.Generator().manual_seed(0)
    rand = evaluate_ranking(lambda u: torch.rand(u.numel(), cold.num_movies, generator=g), cold, "test")["recall@10"]
    config = ContentKNNConfig(weightings=({"people": 1.0, "genre": 1.0},), ks=(10,))
    result = train_content_knn(cold, config, seed=0)
    assert result.metrics["recall@10"] > rand + 0.2  # ~17 new movies: all fit in a top 20
    model = ContentKNN(cold.num_users, cold.num_movies, {"people": 1.0}, k=4)
    assert repr(model) == "ContentKNN(40, 60, k=4)"
    with pytest.raises(ValueError, match="weights="):
        ContentKNN(1, 2, {"plot": 1.0}, k=1)
