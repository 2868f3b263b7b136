"""The HGT layer on full-size graphs with plain torch: keys and values computed once per relation
for the sources that have an edge, attention run over chunks of destination nodes with CSR
kernels (sampled dense-dense products for the scores, sparse-dense products for the sums, so no
key, value or message is gathered per edge), and a backward pass that recomputes each chunk
instead of keeping anything per edge."""

from __future__ import annotations

import itertools
import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.checkpoint import checkpoint
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


def _pattern(d: Tensor, s: Tensor, n: int, m: int, dtype: torch.dtype) -> Tensor:
    """``[n, m]`` CSR matrix of one chunk's edges ``s -> d`` (``d`` sorted), zeros as values."""
    crow = torch.zeros(n + 1, dtype=torch.long, device=d.device)
    crow[1:] = torch.bincount(d, minlength=n).cumsum(0)
    values = torch.zeros(s.numel(), dtype=dtype, device=d.device)
    return torch.sparse_csr_tensor(crow, s, values, (n, m), check_invariants=False)


def _dots(pattern: Tensor, a: Tensor, b: Tensor) -> Tensor:
    r"""``[E, H]``: :math:`\mathbf{a}_i^\top \mathbf{b}_j` per head for every edge of
    ``pattern``, without gathering rows per edge (sampled dense-dense product)."""
    H = a.size(1)
    parts = [torch.sparse.sampled_addmm(pattern, a[:, h].contiguous(), b[:, h].t(), beta=0.0) for h in range(H)]
    return torch.stack([part.values() for part in parts], dim=1)


def _spread(pattern: Tensor, w: Tensor, x: Tensor) -> Tensor:
    r"""``[n, H, D]``: :math:`\sum_{e = (j, i)} w_e \mathbf{x}_j` per head (sparse-dense product)."""
    crow, col = pattern.crow_indices(), pattern.col_indices()
    shape = pattern.shape
    return torch.stack(
        [
            torch.sparse_csr_tensor(crow, col, w[:, h].contiguous(), shape, check_invariants=False) @ x[:, h]
            for h in range(w.size(1))
        ],
        dim=1,
    )


def _attend(q: Tensor, relations: list[Relation]) -> tuple[Tensor, list[tuple[Tensor, Tensor, Tensor]]]:
    r"""One chunk: ``[N, H, D]``, per destination and head the softmax over its in-edges of all
    relations of :math:`\mathbf{q}_i^\top \mathbf{k}_j \mu_r / \sqrt{D}` weighting
    :math:`\mathbf{v}_j`, as :class:`HGTConv` computes it (PyG's ``softmax``: max subtracted,
    ``1e-16`` in the sum); and per relation its edge pattern, dot products and weights ``[E, H]``."""
    N, H, D = q.shape
    scale = 1.0 / math.sqrt(D)
    patterns = [_pattern(d, s, N, k.size(0), q.dtype) for k, _, _, s, d in relations]
    dots = [_dots(pat, q, k) for pat, (k, *_) in zip(patterns, relations, strict=True)]  # [E_r, H] each
    alphas = [dot * p * scale for dot, (_, _, p, _, _) in zip(dots, relations, strict=True)]
    top = q.new_full((N, H), float("-inf"))
    for alpha, (*_, d) in zip(alphas, relations, strict=True):
        top.scatter_reduce_(0, d[:, None].expand(-1, H), alpha, "amax")
    exps = [(alpha - top[d]).exp() for alpha, (*_, d) in zip(alphas, relations, strict=True)]
    den = q.new_zeros(N, H)
    for ex, (*_, d) in zip(exps, relations, strict=True):
        den.index_add_(0, d, ex)
    den += 1e-16
    weights = [ex / den[d] for ex, (*_, d) in zip(exps, relations, strict=True)]  # [E_r, H] each
    out = q.new_zeros(N, H, D)
    for pat, w, (_, v, *_) in zip(patterns, weights, relations, strict=True):
        out += _spread(pat, w, v)
    return out, list(zip(patterns, dots, weights, strict=True))


def _chunk(flat: list[Tensor] | tuple[Tensor, ...], cuts: list[list[int]], c: int, lo: int) -> list[Relation]:
    """The relations of ``flat`` (keys, values, priors, sources, destinations; each one per
    relation) restricted to chunk ``c``, destinations relative to its first row ``lo``."""
    R = len(cuts)
    ks, vs, ps, srcs, dsts = (flat[i * R : (i + 1) * R] for i in range(5))
    return [
        (k, v, p, s[cut[c] : cut[c + 1]], d[cut[c] : cut[c + 1]] - lo)
        for k, v, p, s, d, cut in zip(ks, vs, ps, srcs, dsts, cuts, strict=True)
    ]


class _EdgeAttention(torch.autograd.Function):
    """:func:`edge_attention` as one autograd node: forward and backward both walk the chunks, the
    backward recomputes each one's weights, so a training step keeps nothing per edge."""

    @staticmethod
    def forward(ctx: Any, q: Tensor, max_edges: int, num_rels: int, *flat: Tensor) -> Tensor:
        dsts = list(flat[4 * num_rels :])
        bounds = _bounds(dsts, q.size(0), max_edges)
        at = torch.tensor(bounds, device=q.device)
        cuts = [torch.searchsorted(d, at).tolist() for d in dsts]  # [R][chunks + 1]: each relation's slices
        out = torch.empty_like(q)  # [N, H, D]
        for c, (lo, hi) in enumerate(itertools.pairwise(bounds)):
            out[lo:hi] = _attend(q[lo:hi], _chunk(flat, cuts, c, lo))[0]
        ctx.save_for_backward(q, *flat)
        ctx.bounds, ctx.cuts = bounds, cuts
        return out

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        q, *flat = ctx.saved_tensors
        R = len(ctx.cuts)
        ks, vs, ps = flat[:R], flat[R : 2 * R], flat[2 * R : 3 * R]
        scale = 1.0 / math.sqrt(q.size(-1))
        gq, gk, gv = torch.zeros_like(q), [torch.zeros_like(k) for k in ks], [torch.zeros_like(v) for v in vs]
        gp = [torch.zeros_like(p) for p in ps]
        for c, (lo, hi) in enumerate(itertools.pairwise(ctx.bounds)):
            rels = _chunk(flat, ctx.cuts, c, lo)
            q_c, g = q[lo:hi], grad[lo:hi]  # [n, H, D]
            out, parts = _attend(q_c, rels)
            total = (g * out).sum(-1)  # [n, H]: sum over in-edges of weight x (g . value)
            for r, ((k, v, p, s, d), (pat, dot, w)) in enumerate(zip(rels, parts, strict=True)):
                dw = _dots(pat, g, v)  # [E, H]: g_i . v_j
                dalpha = w * (dw - total[d])  # softmax backward
                gp[r] += (dalpha * dot).sum(0) * scale
                ddot = dalpha * p * scale  # [E, H]
                gq[lo:hi] += _spread(pat, ddot, k)
                gk[r].index_add_(0, s, ddot[..., None] * q_c[d])  # [E, H, D]
                gv[r].index_add_(0, s, w[..., None] * g[d])
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
    destination chunk (:func:`edge_attention`), keeping nothing per edge for the backward pass;
    in training each destination type's block is checkpointed, so the backward pass holds one
    block's node tensors at a time.

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
        """Outputs per destination type. With autograd on, each type's block is checkpointed: only
        its inputs are kept, and the backward pass recomputes one block at a time."""
        rows = dst_rows if dst_rows is not None else dict.fromkeys(x_dict)
        out: dict[str, Tensor | None] = {}
        for t in (t for t in rows if t in self.dst_node_types):
            edges = {rel: e for rel, e in edge_index_dict.items() if rel[2] == t}
            if torch.is_grad_enabled():
                out[t] = checkpoint(self._destination, t, x_dict, edges, rows[t], use_reentrant=False)
            else:
                out[t] = self._destination(t, x_dict, edges, rows[t])
        return out

    def _destination(
        self, t: str, x_dict: dict[str, Tensor], edges: dict[tuple[str, str, str], Tensor], rows: Tensor | None
    ) -> Tensor:
        """``[N'_t, F]``: the outputs of type ``t`` at ``rows`` from its in-edges ``edges``."""
        F_, H = self.out_channels, self.heads
        D, E = F_ // H, len(self.edge_types)
        x_t = x_dict[t] if rows is None else x_dict[t][rows]  # [N'_t, F]
        lin = self.kqv_lin.lins[t]
        q = F.linear(x_t, lin.weight[F_ : 2 * F_], lin.bias[F_ : 2 * F_]).view(-1, H, D)  # [N'_t, H, D]
        relations = []
        for rel, e in edges.items():
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
        return a

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.out_channels}, heads={self.heads}, max_edges={self.max_edges})"
