from __future__ import annotations

import pytest
import torch
from torch import Tensor

from cinegraph.models.ease import EASE
from cinegraph.models.fusion import CrossAttentionFusion, FusedModel
from cinegraph.models.gcn_branch import MultiTaskGCN, normalized_adjacency
from cinegraph.models.hgt_branch import MultiTaskHGT

U, M, G, D = 4, 6, 3, 8
RATED = torch.tensor([[0, 1, 2, 3, 3], [0, 1, 2, 3, 5]])
EDGES = {("User", "RATED", "Movie"): RATED, ("Movie", "rev_RATED", "User"): RATED.flip(0)}
META = (["User", "Movie"], list(EDGES))


@pytest.mark.parametrize("mode", ["cross_attention", "concat"])
@pytest.mark.parametrize("views", [(1, 1), (3, 2)])
def test_fusion_shapes(mode: str, views: tuple[int, int]) -> None:
    fusion = CrossAttentionFusion(D, heads=2, mode=mode)
    out = fusion(torch.randn(5, views[0], D), torch.randn(5, views[1], D))
    assert out.shape == (5, 2 * D)


def test_fusion_starts_as_concat_of_means_then_attends() -> None:
    torch.manual_seed(0)
    a, b = torch.randn(5, 3, D), torch.randn(5, 2, D)
    cross = CrossAttentionFusion(D, heads=2, dropout=0.0).eval()
    concat = CrossAttentionFusion(D, mode="concat")
    assert torch.allclose(cross(a, b), concat(a, b))  # zero-initialised output projections
    torch.nn.init.normal_(cross.a_to_b.out_proj.weight)
    fused = cross(a, b)
    assert not torch.allclose(fused[:, :D], a.mean(1))  # GCN half now borrows from the HGT views
    assert torch.allclose(fused[:, D:], b.mean(1))  # HGT half untouched: b_to_a still zero


def _fused(mode: str = "cross_attention", rank: int = 0) -> tuple[FusedModel, MultiTaskGCN, MultiTaskHGT]:
    torch.manual_seed(0)
    gcn = MultiTaskGCN(U, M, G, hidden_dim=D, num_layers=2)
    hgt = MultiTaskHGT(META, {"User": U, "Movie": M}, {}, G, hidden_dim=D, heads=2)
    model = FusedModel(gcn, hgt, heads=2, mode=mode, item_item_rank=rank, item_item_scale=3.0)
    model.fit_item_item(RATED, lambda_=1.0)
    return model, gcn, hgt


EVIDENCE = torch.bincount(RATED[1], minlength=M)  # movie 4 has no interaction


@pytest.mark.parametrize("mode", ["cross_attention", "concat"])
def test_warm_start_reproduces_both_pretrained_branches(mode: str) -> None:
    model, gcn, hgt = _fused(mode)
    model.eval()
    adj = normalized_adjacency(RATED, torch.ones(5), U, M)
    z_user, z_movie, f_movie = model(adj, {}, EDGES, EVIDENCE)
    assert z_user.shape == (U, D) and z_movie.shape == (M, D) and f_movie.shape == (M, 2 * D)
    g_user, g_movie = gcn.embed(adj)
    warm = EVIDENCE > 0
    fused_scores, gcn_scores = z_user @ z_movie.t(), g_user @ g_movie.t()  # [U, M] each
    assert torch.allclose(fused_scores[:, warm], gcn_scores[:, warm], atol=1e-6)
    assert torch.all(z_movie[~warm] == 0)  # no interactions, no GCN half; the HGT half starts at 0
    h_movie = hgt.embed({}, EDGES, EVIDENCE == 0)[1]  # new movies start from content alone
    assert torch.allclose(model.genre_logits(f_movie), hgt.genre_logits(h_movie), atol=1e-6)


def test_dropped_movies_lose_their_interaction_half_and_train_the_content_half() -> None:
    model, _, _ = _fused()
    model.eval()
    adj = normalized_adjacency(RATED, torch.ones(5), U, M)
    drop = torch.zeros(M, dtype=torch.bool)
    drop[0] = True
    z_user, z_movie, _ = model(adj, {}, EDGES, EVIDENCE, drop)
    assert torch.all(z_movie[0] == 0) and z_movie[1].abs().sum() > 0
    (z_user[0] @ z_movie[0]).backward()  # ranks a dropped movie: only content can move it
    assert model.movie_proj.weight.grad[:, D:].abs().sum() > 0
    assert model.gcn.embedding.weight.grad[U + 0].abs().sum() == 0


def test_evidence_gate_scales_the_interaction_half() -> None:
    model, _, _ = _fused()
    model.eval()
    adj = normalized_adjacency(RATED, torch.ones(5), U, M)
    before = model(adj, {}, EDGES, EVIDENCE)[1]
    torch.nn.init.constant_(model.evidence_gate.weight, 5.0)  # more evidence, larger gate
    after = model(adj, {}, EDGES, EVIDENCE)[1]
    assert torch.all(after[EVIDENCE > 0].norm(dim=1) > before[EVIDENCE > 0].norm(dim=1))


def test_parameter_groups_partition_the_model() -> None:
    model, gcn, hgt = _fused()
    enc, head = model.encoder_parameters(), model.head_parameters()
    assert len(enc) == len(list(gcn.parameters())) + len(list(hgt.parameters()))
    assert {id(p) for p in enc}.isdisjoint(id(p) for p in head)
    assert len(enc) + len(head) == len(list(model.parameters()))


def test_errors_and_repr() -> None:
    with pytest.raises(ValueError, match="mode='sum'"):
        CrossAttentionFusion(D, mode="sum")
    with pytest.raises(ValueError, match="dim=8 is not divisible by heads=3"):
        CrossAttentionFusion(D, heads=3)
    gcn = MultiTaskGCN(U, M, G, hidden_dim=16)
    hgt = MultiTaskHGT(META, {"User": U, "Movie": M}, {}, G, hidden_dim=D, heads=2)
    with pytest.raises(ValueError, match="gcn hidden_dim=16 differs from hgt hidden_dim=8"):
        FusedModel(gcn, hgt)
    gcn = MultiTaskGCN(U, M, G, hidden_dim=D)
    with pytest.raises(ValueError, match="item_item_rank=-1"):
        FusedModel(gcn, hgt, item_item_rank=-1)
    with pytest.raises(ValueError, match="item_item_scale=0"):
        FusedModel(gcn, hgt, item_item_scale=0)
    assert repr(CrossAttentionFusion(D, heads=2)) == ("CrossAttentionFusion(dim=8, heads=2, mode=cross_attention)")
    assert repr(_fused("concat")[0]) == (
        "FusedModel(gcn=MultiTaskGCN(users=4, movies=6, genres=3, dim=8, layers=2, "
        "graph=positives), "
        "hgt=MultiTaskHGT(node_types=2, relations=2, genres=3, dim=8, layers=2, heads=2), "
        "fusion=CrossAttentionFusion(dim=8, heads=2, mode=concat), item_item_rank=0)"
    )


@pytest.mark.parametrize("rank", [1, 9])
def test_item_item_residual_adds_scaled_ease_scores(rank: int) -> None:
    """The fused scores are the fused dot product plus the scaled best rank-r approximation of
    the EASE scores (9 > U pads with zeros); a movie without interactions gets none."""
    model = _fused("concat", rank)[0].eval()
    plain = _fused("concat")[0].eval()
    adj = normalized_adjacency(RATED, torch.ones(5), U, M)
    z_user, z_movie, _ = model(adj, {}, EDGES, EVIDENCE)
    assert z_user.shape == (U, D + rank) and z_movie.shape == (M, D + rank)
    p_user, p_movie, _ = plain(adj, {}, EDGES, EVIDENCE)
    residual = z_user @ z_movie.t() - p_user @ p_movie.t()  # [U, M]
    ease = EASE(U, M, 1.0).fit(RATED).scores(torch.arange(U))  # [U, M]
    u, sv, vh = torch.linalg.svd(ease, full_matrices=False)
    best = (u[:, :rank] * sv[:rank]) @ vh[:rank]  # the best rank-r approximation (Eckart-Young)
    assert torch.allclose(residual, 3.0 * best, atol=1e-5)
    assert residual.abs().sum() > 0
    assert torch.all(z_movie[4, D:] == 0)  # movie 4 has no interaction
    drop = torch.zeros(M, dtype=torch.bool)
    drop[1] = True
    assert torch.all(model(adj, {}, EDGES, EVIDENCE, drop)[1][1, D:] == 0)  # dropped: none either
    model.train()  # fine-tuning learns the fused part alone
    assert model(adj, {}, EDGES, EVIDENCE)[0].shape == (U, D)


@pytest.mark.parametrize("max_scores", [2**25, 2 * M])  # 2 * M: each step ranks for two sampled users
def test_content_map_represents_new_movies_by_their_mapped_content(max_scores: int) -> None:
    """Fit on the movies with interactions, the map learns to score their positives (loss falls);
    at the warm start a new movie then scores as the GCN's users against its mapped content,
    and a movie with interactions as before."""
    torch.manual_seed(0)
    in_genre = torch.tensor([[0, 1, 2, 3, 4, 5], [0, 0, 1, 1, 0, 1]])
    genre_edges = {("Movie", "IN_GENRE", "Genre"): in_genre, ("Genre", "rev_IN_GENRE", "Movie"): in_genre.flip(0)}
    edges = {**EDGES, **genre_edges}
    gcn = MultiTaskGCN(U, M, G, hidden_dim=D, num_layers=2, movie_in_dim=2)
    hgt = MultiTaskHGT(
        (["User", "Movie", "Genre"], list(edges)), {"User": U, "Movie": M, "Genre": 2}, {}, G, hidden_dim=D, heads=2
    )
    model = FusedModel(gcn, hgt, heads=2, content_map_hidden=16).eval()
    plain = FusedModel(gcn, hgt, heads=2).eval()
    adj = normalized_adjacency(RATED, torch.ones(5), U, M)
    x_movie = torch.randn(M, 2)
    content = model.content_of({}, genre_edges, x_movie)  # no user edge: content alone
    assert content.shape == (M, 3 * D + 2) and torch.equal(content[:, -2:], x_movie)
    g_user, g_movie = gcn.embed(adj, x_movie=x_movie, cold=EVIDENCE == 0)
    gen = torch.Generator().manual_seed(0)
    losses, kept = model.fit_content_map(
        content, g_user, g_movie, RATED, EVIDENCE > 0, steps=30, lr=1e-2, generator=gen, max_scores=max_scores
    )
    assert len(losses) == 30 and sum(losses[-5:]) < sum(losses[:5]) and kept == 30
    assert torch.equal(model.content, content)
    model.eval()
    x = {"Movie": x_movie}
    z_user, z_movie, _ = model(adj, x, edges, EVIDENCE)
    p_user, p_movie, _ = plain(adj, x, edges, EVIDENCE)
    warm = EVIDENCE > 0
    assert torch.allclose(z_user @ z_movie[warm].t(), p_user @ p_movie[warm].t(), atol=1e-6)
    mapped = model.content_map(content)[~warm]  # [1, D]: movie 4
    assert torch.allclose(z_user @ z_movie[~warm].t(), g_user @ mapped.t(), atol=1e-5)
    assert mapped.abs().sum() > 0
    drop = torch.tensor([False, True, False, False, False, False])
    cold = (EVIDENCE == 0) | drop
    reused = model.fuse(model.branches(adj, x, edges, cold), EVIDENCE, cold)  # what a check of the map computes
    assert all(torch.equal(a, b) for a, b in zip(reused, model(adj, x, edges, EVIDENCE, drop), strict=True))
    with pytest.raises(ValueError, match="content_map_hidden=-1"):
        FusedModel(gcn, hgt, content_map_hidden=-1)


def test_content_map_keeps_the_best_checked_step() -> None:
    """With a validation check every 4 of 10 steps (and at the last), the map of the best check
    is the one kept, and the model is handed to each check in eval mode; with patience the fit
    stops early."""
    torch.manual_seed(0)
    gcn = MultiTaskGCN(U, M, G, hidden_dim=D, num_layers=2, movie_in_dim=2)
    hgt = MultiTaskHGT(META, {"User": U, "Movie": M}, {}, G, hidden_dim=D, heads=2)
    model = FusedModel(gcn, hgt, heads=2, content_map_hidden=16)
    content = torch.randn(M, 3 * D + 2)
    snapshots: list[Tensor] = []
    scores = [0.1, 0.3, 0.2]  # best at the second check: step 8

    def check() -> float:
        model.eval()
        snapshots.append(model.content_map(content).detach())
        return scores[len(snapshots) - 1]

    g_user, g_movie = torch.randn(U, D), torch.randn(M, D)
    gen = torch.Generator().manual_seed(0)
    losses, kept = model.fit_content_map(
        content, g_user, g_movie, RATED, EVIDENCE > 0, steps=10, lr=1e-2, generator=gen, check=check, check_every=4
    )
    assert len(losses) == 10 and len(snapshots) == 3 and kept == 8
    model.eval()
    assert torch.equal(model.content_map(content), snapshots[1])

    snapshots.clear()  # patience 1: the fit stops at the first check below the best
    scores[:] = [0.5, 0.1, 0.9]
    losses, kept = model.fit_content_map(
        content, g_user, g_movie, RATED, EVIDENCE > 0, 10, 1e-2, gen, check=check, check_every=4, patience=1
    )
    assert len(losses) == 8 and len(snapshots) == 2 and kept == 4
    model.eval()
    assert torch.equal(model.content_map(content), snapshots[0])
