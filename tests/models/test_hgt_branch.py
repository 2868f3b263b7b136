from __future__ import annotations

import pytest
import torch

from cinegraph.models.hgt_branch import MultiTaskHGT

NODES = {"User": 4, "Movie": 6, "Genre": 3, "Person": 2}
EDGES = {
    ("User", "RATED", "Movie"): torch.tensor([[0, 1, 2, 3, 3], [0, 1, 2, 3, 5]]),
    ("Movie", "rev_RATED", "User"): torch.tensor([[0, 1, 2, 3, 5], [0, 1, 2, 3, 3]]),
    ("Movie", "IN_GENRE", "Genre"): torch.tensor([[0, 1, 2], [0, 1, 2]]),
    ("Genre", "rev_IN_GENRE", "Movie"): torch.tensor([[0, 1, 2], [0, 1, 2]]),
    ("Movie", "rev_KNOWN_FOR", "Person"): torch.tensor([[0, 4], [0, 1]]),
}
META = (list(NODES), list(EDGES))


def _model(**kwargs) -> MultiTaskHGT:
    return MultiTaskHGT(META, NODES, {"Movie": 3}, num_genres=5, hidden_dim=8, heads=2, **kwargs)


@pytest.mark.parametrize("num_layers", [1, 2])
def test_shapes_per_node_type(num_layers: int) -> None:
    torch.manual_seed(0)
    model = _model(num_layers=num_layers)
    x = {"Movie": torch.randn(6, 3)}
    views = model(x, EDGES)
    assert {t: v.shape for t, v in views.items()} == {t: (n, num_layers + 1, 8) for t, n in NODES.items()}
    z_user, z_movie = model.embed(x, EDGES)
    assert z_user.shape == (4, 8) and z_movie.shape == (6, 8)
    assert model.genre_logits(z_movie).shape == (6, 5)
    # Person receives messages only from movies 0 and 4: its views still all exist and are finite
    assert torch.isfinite(views["Person"]).all()


def test_type_that_is_never_a_destination_keeps_its_state() -> None:
    edges = {k: v for k, v in EDGES.items() if k[2] != "Person"}  # HGTConv returns None for Person
    model = MultiTaskHGT((list(NODES), list(edges)), NODES, {}, 5, hidden_dim=8, heads=2).eval()
    views = model({}, edges)
    assert torch.equal(views["Person"][:, 0], views["Person"][:, 2])
    assert not torch.equal(views["Movie"][:, 0], views["Movie"][:, 2])


def test_movie_features_reach_users() -> None:
    model = _model(num_layers=1).eval()
    x = torch.randn(6, 3)
    a = model.embed({"Movie": x}, EDGES)[0]
    x2 = x.clone()
    x2[5] += 1.0  # movie 5 is rated by user 3 only
    b = model.embed({"Movie": x2}, EDGES)[0]
    assert torch.allclose(a[:3], b[:3]) and not torch.allclose(a[3], b[3])


def test_errors_and_repr() -> None:
    with pytest.raises(ValueError, match="hidden_dim=10 is not divisible by heads=4"):
        MultiTaskHGT(META, NODES, {}, 5, hidden_dim=10, heads=4)
    with pytest.raises(ValueError, match="node type 'Viewer' is missing"):
        MultiTaskHGT(META, NODES, {}, 5, user_type="Viewer")
    assert repr(_model()) == ("MultiTaskHGT(node_types=4, relations=5, genres=5, dim=8, layers=2, heads=2)")


def test_fast_relation_transform_agrees_with_pyg_hgtconv() -> None:
    from torch_geometric.nn import HGTConv

    from cinegraph.models.hgt_branch import _HGTConv

    torch.manual_seed(0)
    fast = _HGTConv(8, 8, META, heads=2)
    ref = HGTConv(8, 8, META, heads=2)
    ref.load_state_dict(fast.state_dict())
    x = {t: torch.randn(n, 8, requires_grad=True) for t, n in NODES.items()}
    out_fast, out_ref = fast(x, EDGES), ref(x, EDGES)
    for t in NODES:
        assert torch.allclose(out_fast[t], out_ref[t], atol=1e-5), t
    g_fast = torch.autograd.grad(sum(v.sum() for v in out_fast.values()), fast.k_rel.weight)[0]
    g_ref = torch.autograd.grad(sum(v.sum() for v in out_ref.values()), ref.k_rel.weight)[0]
    assert torch.allclose(g_fast, g_ref, atol=1e-5)
