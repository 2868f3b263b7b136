"""models/hgt_conv.py: the chunked HGT layer against PyG's HGTConv, values and gradients."""

from __future__ import annotations

import pytest
import torch
from torch_geometric.nn import HGTConv

from cinegraph.models.hgt_conv import ChunkedHGTConv, edge_attention

NODES = {"User": 4, "Movie": 6, "Genre": 3, "Person": 2}
EDGES = {
    ("User", "RATED", "Movie"): torch.tensor([[0, 1, 2, 3, 3, 0], [0, 1, 2, 3, 5, 5]]),
    ("Movie", "rev_RATED", "User"): torch.tensor([[0, 1, 2, 3, 5, 5], [0, 1, 2, 3, 3, 0]]),
    ("Movie", "IN_GENRE", "Genre"): torch.tensor([[0, 1, 2, 4], [0, 1, 2, 0]]),
    ("Genre", "rev_IN_GENRE", "Movie"): torch.tensor([[0, 1, 2, 0], [0, 1, 2, 4]]),
    ("Movie", "rev_KNOWN_FOR", "Person"): torch.tensor([[0, 4], [0, 1]]),
}
META = (list(NODES), list(EDGES))


def _pair(max_edges: int, monkeypatch) -> tuple[ChunkedHGTConv, HGTConv]:
    monkeypatch.setattr(ChunkedHGTConv, "max_edges", max_edges)
    torch.manual_seed(0)
    ours, ref = ChunkedHGTConv(8, 8, META, heads=2), HGTConv(8, 8, META, heads=2)
    with torch.no_grad():  # relation priors and skips away from their initial ones
        for p in [*ours.p_rel.values(), *ours.skip.values()]:
            p.uniform_(0.5, 2.0)
    ref.load_state_dict(ours.state_dict())
    return ours, ref


@pytest.mark.parametrize("max_edges", [1, 2, 5, 1000])  # 1: every destination a chunk of its own
def test_outputs_and_gradients_agree_with_pyg_hgtconv(max_edges: int, monkeypatch) -> None:
    ours, ref = _pair(max_edges, monkeypatch)
    x = {t: torch.randn(n, 8, requires_grad=True) for t, n in NODES.items()}
    out, want = ours(x, EDGES), ref(x, EDGES)
    assert out.keys() == want.keys() == {"User", "Movie", "Genre", "Person"}
    weights = {t: torch.randn(v.shape) for t, v in want.items()}  # a loss reading every output
    loss = sum((out[t] * w).sum() for t, w in weights.items())
    loss_ref = sum((want[t] * w).sum() for t, w in weights.items())
    for t in want:
        assert torch.allclose(out[t], want[t], atol=1e-5), t
    inputs = list(x.values())
    grads = torch.autograd.grad(loss, [*inputs, *ours.parameters()])
    grads_ref = torch.autograd.grad(loss_ref, [*inputs, *ref.parameters()])
    names = [*x, *(n for n, _ in ours.named_parameters())]
    for name, g, g_ref in zip(names, grads, grads_ref, strict=True):
        assert torch.allclose(g, g_ref, atol=1e-5), name


def test_selected_destination_rows_give_those_rows(monkeypatch) -> None:
    """``dst_rows`` with edges pointing at the selected outputs: the same rows as the whole pass."""
    ours, _ = _pair(3, monkeypatch)
    x = {t: torch.randn(n, 8) for t, n in NODES.items()}
    rows = {"Movie": torch.tensor([1, 4, 5]), "User": torch.tensor([3])}
    edges = {}
    for rel, e in EDGES.items():
        if rel[2] in rows:
            pos = torch.full((NODES[rel[2]],), -1).index_copy(0, rows[rel[2]], torch.arange(rows[rel[2]].numel()))
            keep = pos[e[1]] >= 0
            edges[rel] = torch.stack([e[0][keep], pos[e[1]][keep]])
    with torch.no_grad():
        part, whole = ours(x, edges, rows), ours(x, EDGES)
    assert part.keys() == {"Movie", "User"}
    for t, r in rows.items():
        assert torch.allclose(part[t], whole[t][r], atol=1e-6), t


def test_edge_attention_gradients_are_exact() -> None:
    """The recomputing backward against finite differences, in double precision, over chunks."""
    gen = torch.Generator().manual_seed(0)
    H, D = 2, 3
    q = torch.randn(5, H, D, dtype=torch.double, generator=gen, requires_grad=True)
    relations = []
    for n_src, n_edges in ((4, 9), (3, 2)):
        k = torch.randn(n_src, H, D, dtype=torch.double, generator=gen, requires_grad=True)
        v = torch.randn(n_src, H, D, dtype=torch.double, generator=gen, requires_grad=True)
        p = torch.rand(H, dtype=torch.double, generator=gen).requires_grad_()
        dst = torch.randint(5, (n_edges,), generator=gen).sort().values
        relations.append((k, v, p, torch.randint(n_src, (n_edges,), generator=gen), dst))
    leaves = [q, *(t for rel in relations for t in rel[:3])]

    def fn(*args: torch.Tensor) -> torch.Tensor:
        rels = [(*args[1 + 3 * i : 4 + 3 * i], *relations[i][3:]) for i in range(len(relations))]
        return edge_attention(args[0], rels, max_edges=3)

    assert torch.autograd.gradcheck(fn, leaves)
    empty = edge_attention(q, [], 3)  # no relation into these nodes: nothing aggregated
    assert torch.equal(empty, torch.zeros_like(q))


def test_repr() -> None:
    assert repr(ChunkedHGTConv(8, 8, META, heads=2)) == "ChunkedHGTConv(8, heads=2, max_edges=262144)"
