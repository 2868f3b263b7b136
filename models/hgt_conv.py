"""The HGT layer on full-size graphs with plain torch: keys and values computed once per relation
for the sources that have an edge, attention run over chunks of destination nodes, and a backward
pass that recomputes each chunk instead of keeping anything per edge."""

from __future__ import annotations

import itertools
import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch_geometric.nn import HGTConv

Relation = tuple[Tensor, Tensor, Tensor, Tensor, Tensor]  # keys, values, prior, sources, destinations


def _bounds(dsts: list[Tensor], n: int, max_edges: int) -> list[int]:
    """Destination rows ``[lo, hi)`` in chunks of about ``max_edges`` incoming edges (a node with
    more is a chunk of its own)."""
    deg = torch.zeros(n, dtype=torch.long, device=dsts[0].device if dsts else None)
    for d in dsts:
        deg += torch.bincount(d, minlength=n)
    cum = deg.cumsum(0)  # [N]
    bounds = [0]
    while bounds[-1] < n:
        lo = bounds[-1]
        base = int(cum[lo - 1]) if lo else 0
        hi = int(torch.searchsorted(cum, torch.tensor(base + max_edges, device=cum.device), right=True))
        bounds.append(min(max(hi, lo + 1), n))
    return bounds


def _attend(q: Tensor, k_j: Tensor, v_j: Tensor, p_e: Tensor, d: Tensor) -> Tensor:
    """``[N, H, D]``: per destination and head, the softmax over its in-edges of
    :math:`\\mathbf{q}_i^\\top \\mathbf{k}_j \\mu_r / \\sqrt{D}` weighting :math:`\\mathbf{v}_j`,
    as :class:`HGTConv` computes it (PyG's ``softmax``: max subtracted, ``1e-16`` in the sum)."""
    N, H, D = q.shape
    alpha = (q[d] * k_j).sum(-1) * p_e / math.sqrt(D)  # [E, H]
    with torch.no_grad():
        top = alpha.new_full((N, H), float("-inf")).scatter_reduce(0, d[:, None].expand(-1, H), alpha, "amax")
    ex = (alpha - top[d]).exp()  # [E, H]
    den = ex.new_zeros(N, H).index_add(0, d, ex) + 1e-16  # [N, H]
    a = ex / den[d]  # [E, H]
    return q.new_zeros(N, H, D).index_add(0, d, v_j * a[..., None])  # [N, H, D]


def _gather(
    ks: list[Tensor], vs: list[Tensor], ps: list[Tensor], edges: list[tuple[Tensor, Tensor]], lo: int
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """One chunk's per-edge keys, values and priors ``[E, H, D]``, ``[E, H, D]``, ``[E, H]`` and
    destination rows ``[E]`` relative to ``lo``, relations concatenated."""
    k_j = torch.cat([k[s] for k, (s, _) in zip(ks, edges, strict=True)])
    v_j = torch.cat([v[s] for v, (s, _) in zip(vs, edges, strict=True)])
    p_e = torch.cat([p.expand(s.numel(), -1) for p, (s, _) in zip(ps, edges, strict=True)])
    return k_j, v_j, p_e, torch.cat([d for _, d in edges]) - lo


def _slices(srcs: list[Tensor], dsts: list[Tensor], cuts: list[list[int]], c: int) -> list[tuple[Tensor, Tensor]]:
    """Each relation's sources and destinations in chunk ``c``."""
    return [(s[cut[c] : cut[c + 1]], d[cut[c] : cut[c + 1]]) for s, d, cut in zip(srcs, dsts, cuts, strict=True)]


class _EdgeAttention(torch.autograd.Function):
    """:func:`edge_attention` as one autograd node: forward and backward both walk the chunks, the
    backward recomputes each one's edge tensors, so a training step keeps no per-edge tensor."""

    @staticmethod
    def forward(ctx: Any, q: Tensor, max_edges: int, num_rels: int, *flat: Tensor) -> Tensor:
        R = num_rels
        ks, vs, ps, srcs, dsts = (list(flat[i * R : (i + 1) * R]) for i in range(5))
        bounds = _bounds(dsts, q.size(0), max_edges)
        at = torch.tensor(bounds, device=q.device)
        cuts = [torch.searchsorted(d, at).tolist() for d in dsts]  # [R][chunks + 1]: each relation's slices
        out = torch.empty_like(q)  # [N, H, D]
        for c, (lo, hi) in enumerate(itertools.pairwise(bounds)):
            edges = _slices(srcs, dsts, cuts, c)
            out[lo:hi] = _attend(q[lo:hi], *_gather(ks, vs, ps, edges, lo))
        ctx.save_for_backward(q, *flat)
        ctx.bounds, ctx.cuts, ctx.num_rels = bounds, cuts, R
        return out

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        q, *flat = ctx.saved_tensors
        R = ctx.num_rels
        ks, vs, ps, srcs, dsts = (flat[i * R : (i + 1) * R] for i in range(5))
        gq, gk, gv = torch.zeros_like(q), [torch.zeros_like(k) for k in ks], [torch.zeros_like(v) for v in vs]
        gp = [torch.zeros_like(p) for p in ps]
        for c, (lo, hi) in enumerate(itertools.pairwise(ctx.bounds)):
            edges = _slices(srcs, dsts, ctx.cuts, c)
            q_c = q[lo:hi].detach().requires_grad_()
            k_parts = [k[s].detach().requires_grad_() for k, (s, _) in zip(ks, edges, strict=True)]
            v_parts = [v[s].detach().requires_grad_() for v, (s, _) in zip(vs, edges, strict=True)]
            p_leaves = [p.detach().requires_grad_() for p in ps]
            with torch.enable_grad():
                p_e = torch.cat([p.expand(s.numel(), -1) for p, (s, _) in zip(p_leaves, edges, strict=True)])
                d = torch.cat([d for _, d in edges]) - lo
                out = _attend(q_c, torch.cat(k_parts), torch.cat(v_parts), p_e, d)
                got = torch.autograd.grad(out, [q_c, *k_parts, *v_parts, *p_leaves], grad[lo:hi])
            gq[lo:hi] += got[0]
            for r, (s, _) in enumerate(edges):
                gk[r].index_add_(0, s, got[1 + r])
                gv[r].index_add_(0, s, got[1 + R + r])
                gp[r] += got[1 + 2 * R + r]
        return (gq, None, None, *gk, *gv, *gp, *([None] * 2 * R))


def edge_attention(q: Tensor, relations: list[Relation], max_edges: int) -> Tensor:
    r"""HGT's aggregation into ``q``'s nodes ``[N, H, D]``: for each destination :math:`i`, the
    softmax over its in-edges of every relation :math:`r` of
    :math:`\mathbf{q}_i^\top \mathbf{k}^r_j \mu_r / \sqrt{D}` weighting :math:`\mathbf{v}^r_j`.
    Each relation is ``(keys [n_r, H, D], values [n_r, H, D], prior [H], sources [E_r],
    destinations [E_r])`` with destinations sorted. Computed over chunks of destinations holding
    about ``max_edges`` edges, so memory is per node plus one chunk's edges."""
    if not relations:
        return torch.zeros_like(q)
    flat = [x for i in range(5) for x in (rel[i] for rel in relations)]
    out: Tensor = _EdgeAttention.apply(q, max_edges, len(relations), *flat)
    return out


class ChunkedHGTConv(HGTConv):
    r""":class:`torch_geometric.nn.HGTConv` (same parameters, same outputs) computed so that it fits
    graphs of tens of millions of edges on plain torch. For each relation :math:`r = (s, \cdot, t)`
    the key and value transforms are folded into one matrix,

    .. math::
        [\mathbf{K}^r \,\|\, \mathbf{V}^r] = \mathbf{H}_{s}[\mathcal{S}_r]\,
        [\mathbf{W}^K_s \mathbf{A}^K_r \,\|\, \mathbf{W}^V_s \mathbf{A}^V_r] + \mathbf{b}_r,

    applied only to the sources :math:`\mathcal{S}_r` that have an edge (PyG transforms every
    node of the source type for every relation), and the attention runs destination chunk by
    destination chunk (:func:`edge_attention`), keeping nothing per edge for the backward pass.

    ``forward`` also takes ``dst_rows``: per node type, the rows of ``x_dict`` whose outputs are
    wanted (absent: every row), with edge destinations indexing those outputs. The layer-wise
    evaluation of :class:`~cinegraph.models.hgt_branch.MultiTaskHGT` computes each layer only for
    the nodes the next one reads.

    Args:
        as :class:`~torch_geometric.nn.HGTConv`.

    Shapes:
        - **input:** ``x_dict`` :math:`(|\mathcal{V}_t|, F)` per type, edge indices
          :math:`(2, |\mathcal{E}_r|)` per relation, ``dst_rows`` :math:`(|\mathcal{V}'_t|)`
        - **output:** :math:`(|\mathcal{V}'_t|, F)` per destination type
    """

    max_edges = 262_144  # edges whose tensors one attention chunk holds at once

    def forward(
        self,
        x_dict: dict[str, Tensor],
        edge_index_dict: dict[tuple[str, str, str], Tensor],
        dst_rows: dict[str, Tensor | None] | None = None,
    ) -> dict[str, Tensor | None]:
        F_, H = self.out_channels, self.heads
        D, E = F_ // H, len(self.edge_types)
        rows = dst_rows if dst_rows is not None else dict.fromkeys(x_dict)
        out: dict[str, Tensor | None] = {}
        for t in (t for t in rows if t in self.dst_node_types):
            x_t = x_dict[t] if rows[t] is None else x_dict[t][rows[t]]  # [N'_t, F]
            lin = self.kqv_lin.lins[t]
            q = F.linear(x_t, lin.weight[F_ : 2 * F_], lin.bias[F_ : 2 * F_]).view(-1, H, D)  # [N'_t, H, D]
            relations = []
            for rel, e in edge_index_dict.items():
                if rel[2] != t:
                    continue
                dst, order = torch.sort(e[1], stable=True)  # [E_r]
                ids, src = torch.unique(e[0][order], return_inverse=True)  # [n_r], [E_r]
                lin_s = self.kqv_lin.lins[rel[0]]
                heads = torch.arange(H, device=e.device) * E + self.edge_types_map[rel]  # rows of this relation
                a_k = torch.block_diag(*self.k_rel.weight[heads])  # [F, F]: per-head relation transform
                a_v = torch.block_diag(*self.v_rel.weight[heads])  # [F, F]
                w = torch.cat([lin_s.weight[:F_].t() @ a_k, lin_s.weight[2 * F_ :].t() @ a_v], dim=1)  # [F_in, 2F]
                b = torch.cat([lin_s.bias[:F_] @ a_k, lin_s.bias[2 * F_ :] @ a_v])  # [2F]
                kv = torch.addmm(b, x_dict[rel[0]][ids], w)  # [n_r, 2F]
                prior = self.p_rel["__".join(rel)].view(H)
                relations.append((kv[:, :F_].view(-1, H, D), kv[:, F_:].view(-1, H, D), prior, src, dst))
            agg = edge_attention(q, relations, self.max_edges).view(-1, F_)  # [N'_t, F]
            a = self.out_lin.lins[t](F.gelu(agg))  # [N'_t, F]
            if a.size(-1) == x_t.size(-1):
                alpha = self.skip[t].sigmoid()
                a = alpha * a + (1 - alpha) * x_t
            out[t] = a
        return out

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.out_channels}, heads={self.heads}, max_edges={self.max_edges})"
