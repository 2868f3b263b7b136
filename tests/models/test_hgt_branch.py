from __future__ import annotations

import pyarrow as pa
import pytest
import torch
from torch_geometric.nn import HGTConv

from cinegraph.models.config import TrainConfig
from cinegraph.models.data import DataConfig, prepare_data
from cinegraph.models.hgt_branch import MultiTaskHGT
from cinegraph.models.hgt_conv import ChunkedHGTConv
from cinegraph.models.registry import Inputs, build_model, model_args

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


def _reference_views(model: MultiTaskHGT, x: dict, edges: dict, cold: torch.Tensor | None = None) -> dict:
    """The plain full-graph forward: PyG's HGTConv over every node and edge, layer after layer."""
    h = {}
    for t, emb in model.embedding.items():
        h[t] = emb.weight
        if t == model.movie_type and cold is not None:
            h[t] = h[t].masked_fill(cold[:, None], 0.0)
        if t in model.lin:
            h[t] = h[t] + model.lin[t](x[t])
    views = {t: [v] for t, v in h.items()}
    for conv in model.convs:
        out = HGTConv.forward(conv, h, edges)
        h = {t: o if (o := out.get(t)) is not None else h[t] for t in h}
        for t, v in h.items():
            views[t].append(v)
    return {t: torch.stack(v, dim=1) for t, v in views.items()}


@pytest.mark.parametrize("types", [None, ("User", "Movie"), ("Movie",)])
@pytest.mark.parametrize("max_edges", [2, 40, 10**6])  # 10**6: one chunk per destination type
def test_layerwise_views_agree_with_the_full_graph_pass(
    tiny_tables: dict[str, pa.Table], types: tuple[str, ...] | None, max_edges: int, monkeypatch
) -> None:
    """Layer by layer over only the nodes each layer needs, in destination chunks: the views of
    the plain full-graph pass, on the tiny snapshot (users, movies, genres, people, tags)."""
    monkeypatch.setattr(ChunkedHGTConv, "max_edges", max_edges)
    data = prepare_data(tiny_tables, DataConfig(), seed=0)
    torch.manual_seed(0)
    model = build_model(model_args("hgt", data, TrainConfig(hidden_dim=16, hgt_heads=2))).eval()
    assert isinstance(model, MultiTaskHGT)
    inp = Inputs.of(data)
    cold = torch.arange(data.num_movies) % 5 == 0
    with torch.no_grad():
        views = model(inp.x, inp.edge_index, cold, types)
        want = _reference_views(model, inp.x, inp.edge_index, cold)
    assert set(views) == set(types or want)
    for t, v in views.items():
        assert torch.allclose(v, want[t], atol=1e-5), t


def test_layerwise_gradients_agree_with_the_full_graph_pass(tiny_tables: dict[str, pa.Table], monkeypatch) -> None:
    """A training step's gradients through the pruned, chunked pass are the full graph's."""
    monkeypatch.setattr(ChunkedHGTConv, "max_edges", 40)
    data = prepare_data(tiny_tables, DataConfig(), seed=0)
    torch.manual_seed(0)
    model = build_model(model_args("hgt", data, TrainConfig(hidden_dim=16, hgt_heads=2))).eval()
    inp = Inputs.of(data)
    weights = {t: torch.randn(n, 3, 16) for t, n in (("User", data.num_users), ("Movie", data.num_movies))}
    views = model(inp.x, inp.edge_index, types=("User", "Movie"))
    want = _reference_views(model, inp.x, inp.edge_index)
    params = list(model.parameters())
    grads = torch.autograd.grad(sum((views[t] * w).sum() for t, w in weights.items()), params, allow_unused=True)
    wanted = torch.autograd.grad(sum((want[t] * w).sum() for t, w in weights.items()), params, allow_unused=True)
    for (name, p), g, g_ref in zip(model.named_parameters(), grads, wanted, strict=True):
        zero = torch.zeros_like(p)  # None: no path to the loss (the genre head; layers into other types)
        assert torch.allclose(zero if g is None else g, zero if g_ref is None else g_ref, atol=1e-5), name
