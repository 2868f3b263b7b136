from __future__ import annotations

import pytest
import torch
from torch_geometric.nn.models import LightGCN

from cinegraph.models.gcn_branch import MultiTaskGCN, normalized_adjacency, propagate, ranking_loss

U, M, G = 5, 7, 3
EDGES = torch.tensor([[0, 0, 1, 2, 3, 4, 4], [0, 1, 1, 2, 3, 5, 6]])  # (user, movie)


def test_normalized_adjacency_matches_dense() -> None:
    w = torch.tensor([1.0, 0.5, 1.0, 0.8, 0.2, 1.0, 0.6])
    adj = normalized_adjacency(EDGES, w, U, M).to_dense()
    dense = torch.zeros(U + M, U + M)
    dense[EDGES[0], EDGES[1] + U] = w
    dense[EDGES[1] + U, EDGES[0]] = w
    d = dense.sum(1)
    inv = torch.where(d > 0, d.pow(-0.5), torch.zeros_like(d))
    assert torch.allclose(adj, inv[:, None] * dense * inv[None, :])
    assert torch.allclose(adj, adj.t())
    assert adj[U + 4].abs().sum() == 0  # movie 4 has no edge: an all-zero row


def test_propagation_gradient_is_the_dense_products() -> None:
    """Two propagation steps: values and gradients equal autograd's through the dense matrix."""
    adj = normalized_adjacency(EDGES, torch.linspace(0.2, 1.0, 7), U, M)
    x = torch.randn(U + M, 4, requires_grad=True)
    target = torch.randn(U + M, 4)
    (propagate(adj, propagate(adj, x)) * target).sum().backward()
    ours, x.grad = x.grad, None
    dense = adj.to_dense()
    out = dense @ (dense @ x)
    (out * target).sum().backward()
    assert torch.allclose(propagate(adj, propagate(adj, x)), out, atol=1e-6)
    assert torch.allclose(ours, x.grad, atol=1e-6)


@pytest.mark.parametrize("num_layers", [0, 1, 3])
@pytest.mark.parametrize("in_dims", [(0, 0), (2, 4)])
def test_shapes(num_layers: int, in_dims: tuple[int, int]) -> None:
    model = MultiTaskGCN(U, M, G, hidden_dim=8, num_layers=num_layers, user_in_dim=in_dims[0], movie_in_dim=in_dims[1])
    adj = normalized_adjacency(EDGES, torch.ones(EDGES.size(1)), U, M)
    x_user = torch.randn(U, in_dims[0]) if in_dims[0] else None
    x_movie = torch.randn(M, in_dims[1]) if in_dims[1] else None
    views = model(adj, x_user, x_movie)
    assert views.shape == (U + M, num_layers + 1, 8)
    z_user, z_movie = model.embed(adj, x_user, x_movie)
    assert z_user.shape == (U, 8) and z_movie.shape == (M, 8)
    assert model.genre_logits(z_movie).shape == (M, G)
    assert model.predict_rating(z_user, z_movie, EDGES).shape == (EDGES.size(1),)
    assert model.recommend(z_user, z_movie, torch.tensor([0, 2]), k=3).shape == (2, 3)


def test_unit_weights_agree_with_pyg_lightgcn() -> None:
    """With all rating weights equal and no features, propagation is LightGCN's."""
    torch.manual_seed(0)
    model = MultiTaskGCN(U, M, G, hidden_dim=8, num_layers=2)
    ref = LightGCN(U + M, 8, num_layers=2)
    ref.embedding.weight.data.copy_(model.embedding.weight.data)
    edge_index = torch.cat([torch.stack([EDGES[0], EDGES[1] + U]), torch.stack([EDGES[1] + U, EDGES[0]])], dim=1)
    adj = normalized_adjacency(EDGES, torch.full((EDGES.size(1),), 3.0), U, M)
    z_user, z_movie = model.embed(adj)
    assert torch.allclose(torch.cat([z_user, z_movie]), ref.get_embedding(edge_index), atol=1e-6)


def test_rating_weights_change_propagation() -> None:
    model = MultiTaskGCN(U, M, G, hidden_dim=8, num_layers=1)
    ones = model.embed(normalized_adjacency(EDGES, torch.ones(7), U, M))[0]
    weighted = model.embed(normalized_adjacency(EDGES, torch.linspace(0.2, 1.0, 7), U, M))[0]
    assert not torch.allclose(ones[0], weighted[0])  # user 0 has two edges of unequal weight


def test_bpr_loss_by_hand() -> None:
    z_user = torch.tensor([[1.0, 0.0]])
    z_movie = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    one = torch.tensor([0])
    loss = ranking_loss(z_user, z_movie, one, one, torch.tensor([1]), "bpr", l2=0.0)
    assert loss.item() == pytest.approx(torch.nn.functional.softplus(torch.tensor(-2.0)).item())
    reg = ranking_loss(z_user, z_movie, one, one, torch.tensor([1]), "bpr", l2=1.0) - loss
    assert reg.item() == pytest.approx(1.0 + 4.0 + 1.0)


@pytest.mark.parametrize("temperature", [1.0, 0.2])
def test_softmax_is_cross_entropy_over_every_movie(temperature: float) -> None:
    torch.manual_seed(0)
    z_user, z_movie = torch.randn(U, 4), torch.randn(M, 4)
    users, pos = EDGES[0], EDGES[1]
    loss = ranking_loss(z_user, z_movie, users, pos, pos, "softmax", temperature, l2=0.0)
    logits = z_user[users] @ z_movie.t() / temperature  # [B, M], one row per pair
    assert loss.item() == pytest.approx(torch.nn.functional.cross_entropy(logits, pos).item())
    # Sampled against every other movie, one pair alone: the same number.
    others = torch.tensor([m for m in range(M) if m != 2])
    one = ranking_loss(z_user, z_movie, users[3:4], pos[3:4], others, "sampled_softmax", temperature, l2=0.0)
    ce = torch.nn.functional.cross_entropy(logits[3:4], pos[3:4])
    assert one.item() == pytest.approx(ce.item(), rel=1e-5)
    with pytest.raises(ValueError, match="loss='hinge'"):
        ranking_loss(z_user, z_movie, users, pos, pos, "hinge")


def test_errors_and_repr() -> None:
    with pytest.raises(ValueError, match="num_layers=-1"):
        MultiTaskGCN(U, M, G, num_layers=-1)
    with pytest.raises(ValueError, match="graph='all'"):
        MultiTaskGCN(U, M, G, graph="all")
    assert repr(MultiTaskGCN(U, M, G, hidden_dim=8)) == (
        "MultiTaskGCN(users=5, movies=7, genres=3, dim=8, layers=2, graph=positives)"
    )


def test_cold_movies_keep_only_their_features() -> None:
    torch.manual_seed(0)
    model = MultiTaskGCN(U, M, G, hidden_dim=8, num_layers=2, movie_in_dim=3)
    adj = normalized_adjacency(EDGES, torch.ones(EDGES.size(1)), U, M)
    x_movie = torch.randn(M, 3)
    cold = torch.zeros(M, dtype=torch.bool)
    cold[[1, 4]] = True  # movie 1 has edges (a dropped movie), movie 4 none (a new one)
    views = model(adj, None, x_movie, cold)[U:]  # [M, L+1, D]
    assert torch.allclose(views[cold, 0], model.movie_lin(x_movie[cold]))
    assert torch.all(views[cold, 1:] == 0)
    warm = model(adj, None, x_movie)[U:]
    assert torch.allclose(views[5], warm[5])  # movie 5 shares no user with movie 1
    assert not torch.allclose(views[0, 2], warm[0, 2])  # movie 0 does (user 0), two hops away
