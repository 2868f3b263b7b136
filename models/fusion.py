"""Fusion of the two branches: bidirectional cross-attention with residual gating (or
concatenation), then the recommendation and genre heads of the fine-tuned model."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
from torch import Tensor, nn

from cinegraph.models.ease import item_item_factors
from cinegraph.models.gcn_branch import MultiTaskGCN, ranking_loss
from cinegraph.models.hgt_branch import MultiTaskHGT
from cinegraph.models.scale import return_freed_memory

FusionMode = Literal["cross_attention", "concat"]


class CrossAttentionFusion(nn.Module):
    r"""Bidirectional multi-head cross-attention between the two branches' views of one node, after
    `"Attention Is All You Need" <https://arxiv.org/abs/1706.03762>`_, with a residual gate.

    The attention sequence of a node is the stack of its layer views in each branch: the GCN's
    :math:`L_g + 1` propagation depths (own embedding, 1-hop, 2-hop, ...) and the HGT's
    :math:`L_h + 1` semantic depths. Each GCN view queries the HGT views of the same node and vice
    versa, so a node chooses which depth of the other latent space to borrow from. Attending over
    graph neighbourhoods instead would cost :math:`O(|\mathcal{E}|)` per layer on top of both
    encoders and repeat what their message passing already did; views keep fusion
    :math:`O(N T^2)`.

    .. math::
        \mathbf{c}_a = \overline{\mathrm{MHA}(A, B, B)}, \qquad
        \mathbf{g}_a = \sigma(\mathbf{W}_a [\bar{\mathbf{a}} \,\|\, \mathbf{c}_a] + \mathbf{b}_a),
        \qquad \tilde{\mathbf{a}} = \bar{\mathbf{a}} + \mathbf{g}_a \odot \mathbf{c}_a,

    symmetrically for :math:`\tilde{\mathbf{b}}`, and the fused embedding is
    :math:`[\tilde{\mathbf{a}} \,\|\, \tilde{\mathbf{b}}]` (bars are means over views). The
    attention output projections start at zero, so fine-tuning starts from the pretrained branches.
    With ``mode="concat"`` the fused embedding is
    :math:`[\bar{\mathbf{a}} \,\|\, \bar{\mathbf{b}}]`.

    Args:
        dim (int): Embedding size :math:`D` of both branches.
        heads (int, optional): Attention heads. (default: :obj:`4`)
        dropout (float, optional): Attention dropout. (default: :obj:`0.1`)
        mode (str, optional): ``"cross_attention"`` or ``"concat"``.
            (default: ``"cross_attention"``)

    Shapes:
        - **input:** views :math:`(N, T_a, D)` and :math:`(N, T_b, D)`
        - **output:** fused :math:`(N, 2D)`
    """

    def __init__(self, dim: int, heads: int = 4, dropout: float = 0.1, mode: FusionMode = "cross_attention") -> None:
        super().__init__()
        if mode not in ("cross_attention", "concat"):
            raise ValueError(f"mode={mode!r} is not 'cross_attention' or 'concat'")
        if dim % heads != 0:
            raise ValueError(f"dim={dim} is not divisible by heads={heads}")
        self.dim, self.heads, self.mode = dim, heads, mode
        if mode == "cross_attention":
            self.a_to_b = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
            self.b_to_a = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
            self.gate_a = nn.Linear(2 * dim, dim)
            self.gate_b = nn.Linear(2 * dim, dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        if self.mode == "cross_attention":
            for attn in (self.a_to_b, self.b_to_a):
                attn._reset_parameters()
                nn.init.zeros_(attn.out_proj.weight)
            self.gate_a.reset_parameters()
            self.gate_b.reset_parameters()

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        a_bar, b_bar = a.mean(1), b.mean(1)  # [N, D], [N, D]
        if self.mode == "concat":
            return torch.cat([a_bar, b_bar], dim=-1)  # [N, 2D]
        c_a = self.a_to_b(a, b, b, need_weights=False)[0].mean(1)  # [N, D]: a attends to b
        c_b = self.b_to_a(b, a, a, need_weights=False)[0].mean(1)  # [N, D]: b attends to a
        g_a = torch.sigmoid(self.gate_a(torch.cat([a_bar, c_a], -1)))  # [N, D]
        g_b = torch.sigmoid(self.gate_b(torch.cat([b_bar, c_b], -1)))  # [N, D]
        return torch.cat([a_bar + g_a * c_a, b_bar + g_b * c_b], dim=-1)  # [N, 2D]

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(dim={self.dim}, heads={self.heads}, mode={self.mode})"


class FusedModel(nn.Module):
    r"""The dual-branch model fine-tuned end to end: a :class:`MultiTaskGCN` and a
    :class:`MultiTaskHGT`, one :class:`CrossAttentionFusion` for users and one for movies, an
    evidence gate on the movies' interaction half, an item-item residual, and two heads on the
    fused embeddings :math:`\mathbf{f} = [\tilde{\mathbf{a}} \,\|\, \tilde{\mathbf{b}}]`:

    .. math::
        \mathbf{e}_m = 2\sigma(\mathbf{w}\log(1 + n_m) + \mathbf{c}), \qquad
        \hat{y}_{um} = (\mathbf{P}_u \mathbf{f}_u)^\top
        (\mathbf{P}_m [\mathbf{e}_m \odot \tilde{\mathbf{a}}_m \,\|\,
        \tilde{\mathbf{b}}_m]) + s\,\mathbf{p}_u^\top \mathbf{q}_m, \qquad
        \hat{\mathbf{y}}_m = \mathbf{W}_c \mathbf{f}_m + \mathbf{b}_c,

    where :math:`n_m` is the movie's number of interactions in the GCN's graph and
    :math:`\mathbf{p}_u^\top \mathbf{q}_m` a fixed rank-:math:`r` factorisation of the
    closed-form EASE scores of the training positives (`"Embarrassingly Shallow Autoencoders for
    Sparse Data" <https://arxiv.org/abs/1905.03375>`_; :meth:`fit_item_item`) with a fixed
    scale :math:`s`: the item-item signal that graph propagation of low-rank embeddings misses.
    It is a prior added to the ranking in eval mode only: in training the softmax over all movies
    would score it on the user's other training positives, which it ranks high by construction,
    and fine-tuning then unlearns the fused part (rank loss above uniform, every fine-tuned epoch
    ranking worse). It rides along as :math:`r` extra coordinates of the
    ranking embeddings (:math:`[\,\cdot \,\|\, s\mathbf{p}_u]`,
    :math:`[\,\cdot \,\|\, \mathbf{q}_m]`), so every dot-product consumer scores with it; a
    movie without interactions has :math:`\mathbf{q}_m = \mathbf{0}`. Such a movie (a new
    release) gets no learned embedding and no propagated view in either branch: its ranking comes
    from content (features, people, genres). With a content map its interaction views are
    :math:`\phi(\mathbf{c}_m)`, an MLP of its content :math:`\mathbf{c}_m` (:meth:`content_of`)
    fit before fine-tuning to score like the GCN's embeddings of movies with interactions
    (:meth:`fit_content_map`), so a new movie is ranked in the same space as the others rather than
    from the GCN's linear feature projection alone. Training treats a random share of movies the same
    way (``drop``; the caller also removes their user edges from the HGT input), as DropoutNet
    does (`"DropoutNet: Addressing Cold Start in Recommender Systems"
    <https://papers.nips.cc/paper/7081-dropoutnet>`_), so that side learns to rank on its own.
    :meth:`warm_start` sets :math:`\mathbf{P} = [\mathbf{I} \,\|\, \mathbf{0}]`,
    :math:`\mathbf{e} = 1` and :math:`\mathbf{W}_c` to the HGT genre head, so the fused model
    starts at the GCN's ranking (of movies with interactions) and the HGT's genre predictions.

    Args:
        gcn (MultiTaskGCN): Pretrained recommendation branch.
        hgt (MultiTaskHGT): Pretrained classification branch, same ``hidden_dim``.
        heads (int, optional): Fusion attention heads. (default: :obj:`4`)
        dropout (float, optional): Fusion and genre-head dropout. (default: :obj:`0.1`)
        mode (str, optional): ``"cross_attention"`` or ``"concat"``.
            (default: ``"cross_attention"``)
        item_item_rank (int, optional): Rank :math:`r` of the item-item residual, 0 for none;
            coordinates beyond the EASE scores' rank stay zero. (default: :obj:`0`)
        item_item_scale (float, optional): Scale :math:`s`. (default: :obj:`20.0`)
        content_map_hidden (int, optional): Hidden size of the content map :math:`\phi`, 0 for
            none. (default: :obj:`0`)

    Shapes:
        - **input:** as both branches, plus interactions per movie :math:`(M)` and optionally a
          boolean drop mask :math:`(M)`
        - **output:** users :math:`(U, D + r)`, movies :math:`(M, D + r)` (:math:`D` in
          training mode), fused movies :math:`(M, 2D)`
    """

    item_item_user: Tensor  # [U, r] buffer
    item_item_movie: Tensor  # [M, r] buffer
    content: Tensor  # [M, C] buffer: each movie's content as the content map reads it

    def __init__(
        self,
        gcn: MultiTaskGCN,
        hgt: MultiTaskHGT,
        heads: int = 4,
        dropout: float = 0.1,
        mode: FusionMode = "cross_attention",
        item_item_rank: int = 0,
        item_item_scale: float = 20.0,
        content_map_hidden: int = 0,
    ) -> None:
        super().__init__()
        if gcn.hidden_dim != hgt.hidden_dim:
            raise ValueError(f"gcn hidden_dim={gcn.hidden_dim} differs from hgt hidden_dim={hgt.hidden_dim}")
        if item_item_rank < 0:
            raise ValueError(f"item_item_rank={item_item_rank} must be >= 0")
        if item_item_scale <= 0:
            raise ValueError(f"item_item_scale={item_item_scale} must be positive")
        if content_map_hidden < 0:
            raise ValueError(f"content_map_hidden={content_map_hidden} must be >= 0")
        d = gcn.hidden_dim
        self.gcn, self.hgt, self.mode = gcn, hgt, mode
        self.user_fusion = CrossAttentionFusion(d, heads, dropout, mode)
        self.movie_fusion = CrossAttentionFusion(d, heads, dropout, mode)
        self.evidence_gate = nn.Linear(1, d)
        self.user_proj = nn.Linear(2 * d, d, bias=False)
        self.movie_proj = nn.Linear(2 * d, d, bias=False)
        self.dropout = nn.Dropout(dropout)
        self.genre_head = nn.Linear(2 * d, gcn.num_genres)
        self.item_item_rank, self.item_item_scale = item_item_rank, item_item_scale
        self.register_buffer("item_item_user", torch.zeros(gcn.num_users, item_item_rank))  # [U, r]
        self.register_buffer("item_item_movie", torch.zeros(gcn.num_movies, item_item_rank))  # [M, r]
        self.content_map_hidden = content_map_hidden
        content_dim = (hgt.num_layers + 1) * d + gcn.movie_in_dim if content_map_hidden else 0
        self.register_buffer("content", torch.zeros(gcn.num_movies, content_dim))  # [M, C]
        self.content_map = (
            nn.Sequential(
                nn.Linear(content_dim, content_map_hidden),
                nn.GELU(),
                nn.Dropout(dropout),
                nn.Linear(content_map_hidden, d),
            )
            if content_map_hidden
            else None
        )
        self.warm_start()

    @torch.no_grad()
    def warm_start(self) -> None:
        """Heads that reproduce the pretrained branches' outputs before any fine-tuning step."""
        d = self.gcn.hidden_dim
        eye = torch.eye(d)
        for proj in (self.user_proj, self.movie_proj):
            proj.weight.copy_(torch.cat([eye, torch.zeros(d, d)], dim=1))
        nn.init.zeros_(self.evidence_gate.weight)
        nn.init.zeros_(self.evidence_gate.bias)
        self.genre_head.weight.zero_()
        self.genre_head.weight[:, d:] = self.hgt.genre_head.weight
        self.genre_head.bias.copy_(self.hgt.genre_head.bias)

    @torch.no_grad()
    def fit_item_item(self, edges: Tensor, lambda_: float) -> None:
        """Set the item-item residual from training positives ``edges`` ``[2, E]`` (EASE with L2
        strength ``lambda_``); a no-op at rank 0."""
        if self.item_item_rank:
            p, q = item_item_factors(
                edges, self.gcn.num_users, self.gcn.num_movies, lambda_, self.item_item_rank
            )  # [U, r'], [M, r'], r' <= r
            self.item_item_user.zero_()[:, : p.size(1)] = p
            self.item_item_movie.zero_()[:, : q.size(1)] = q

    @torch.no_grad()
    def content_of(
        self, x_dict: dict[str, Tensor], edge_index_dict: dict[tuple[str, str, str], Tensor], movie_x: Tensor | None
    ) -> Tensor:
        """``[M, C]``: every movie as if it were new (the HGT's layer views without its learned
        embedding, from inputs without any user-movie edge), and its features. The same for a
        movie with interactions as for a new one, so a map fit on the first serves the second."""
        m = self.gcn.num_movies
        every = torch.ones(m, dtype=torch.bool, device=self.content.device)
        views = self.hgt(x_dict, edge_index_dict, every, (self.hgt.movie_type,))[self.hgt.movie_type]  # [M, Th, D]
        x = movie_x if movie_x is not None else views.new_zeros(m, 0)
        return torch.cat([views.flatten(1), x], dim=1)  # [M, C]

    def fit_content_map(
        self,
        content: Tensor,
        z_user: Tensor,
        z_movie: Tensor,
        edges: Tensor,
        observed: Tensor,
        steps: int,
        lr: float,
        generator: torch.Generator,
        drop: float = 0.5,
        check: Callable[[], float] | None = None,
        check_every: int = 0,
        patience: int = 0,
        max_scores: int = 2**25,
    ) -> tuple[list[float], int]:
        r"""Fit the content map so that a movie's mapped content scores like its interaction
        embedding, as DropoutNet trains (`"DropoutNet: Addressing Cold Start in Recommender
        Systems" <https://papers.nips.cc/paper/7081-dropoutnet>`_), with the full softmax of
        :func:`~cinegraph.models.gcn_branch.ranking_loss`: each step a random ``drop`` share of
        the ``observed`` movies ``[M]`` is represented by :math:`\phi(\mathbf{c}_m)`, the rest by
        their embeddings ``z_movie`` ``[M, D]`` (fixed, as ``z_user`` ``[U, D]``), and every
        training positive ``edges`` ``[2, E]`` is ranked against the observed movies; where the
        users' score matrix passes ``max_scores`` entries, each step ranks the positives of a random
        sample of users that fits. With ``check`` (a validation score of the whole model, higher is
        better) every ``check_every`` steps, the map of the best check is kept (and the fit stops
        after ``patience`` checks in a row below the best, if positive): past a few hundred steps
        the map fits the observed movies at the expense of new ones. Stores ``content``
        ``[M, C]``; returns the loss of each step and the step kept."""
        if self.content_map is None:
            return [], 0
        self.content.copy_(content)
        z_user, z_movie = z_user.detach(), z_movie.detach()
        params = list(self.content_map.parameters())
        opt = torch.optim.Adam(params, lr=lr)
        self.content_map.train()
        users, inverse = edges[0].unique(return_inverse=True)  # [U_e], [E]
        losses: list[float] = []
        best, best_step, best_state, misses = float("-inf"), steps, None, 0
        per_step = max(1, max_scores // observed.numel())  # users whose scores fit in one step
        for step in range(1, steps + 1):
            hide = (torch.rand(observed.numel(), generator=generator) < drop).to(observed.device)  # [M]
            step_edges = edges
            if users.numel() > per_step:
                pick = torch.zeros(users.numel(), dtype=torch.bool)
                pick[torch.randperm(users.numel(), generator=generator)[:per_step]] = True
                step_edges = edges[:, pick.to(users.device)[inverse]]  # [2, E_s]: the sampled users' positives
            z = z_movie.index_put((hide,), self.content_map(content[hide]))  # [M, D]: only those map
            users_s, pos = step_edges
            loss = ranking_loss(  # against every observed movie: no sampled negatives
                z_user, z, users_s, pos, pos[:0], "softmax", temperature=1.0, l2=0.0, candidates=observed
            )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            return_freed_memory()
            losses.append(float(loss.detach()))
            if check is not None and check_every and (step % check_every == 0 or step == steps):
                score = check()
                self.content_map.train()
                if score > best:
                    best, best_step, misses = score, step, 0
                    best_state = {k: v.detach().clone() for k, v in self.content_map.state_dict().items()}
                else:
                    misses += 1
                    if misses == patience:
                        break
        if best_state is not None:
            self.content_map.load_state_dict(best_state)
        return losses, best_step

    def forward(
        self,
        adj: Tensor,
        x_dict: dict[str, Tensor],
        edge_index_dict: dict[tuple[str, str, str], Tensor],
        evidence: Tensor,
        drop: Tensor | None = None,
    ) -> tuple[Tensor, Tensor, Tensor]:
        cold = evidence <= 0 if drop is None else (evidence <= 0) | drop  # [M]
        return self.fuse(self.branches(adj, x_dict, edge_index_dict, cold), evidence, cold)

    def branches(
        self, adj: Tensor, x_dict: dict[str, Tensor], edge_index_dict: dict[tuple[str, str, str], Tensor], cold: Tensor
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Both branches' layer views of users and movies, the ``cold`` ones ``[M]`` as new:
        GCN ``[U, Tg, D]``, ``[M, Tg, D]``, HGT ``[U, Th, D]``, ``[M, Th, D]``. The costly half
        of a forward pass; :meth:`fuse` does the rest."""
        ut, mt = self.hgt.user_type, self.hgt.movie_type
        g_user, g_movie = self.gcn.split(self.gcn(adj, x_dict.get(ut), x_dict.get(mt), cold))
        h = self.hgt(x_dict, edge_index_dict, cold, (ut, mt))  # {type: [N_t, Th, D]}
        return g_user, g_movie, h[ut], h[mt]

    def fuse(
        self, views: tuple[Tensor, Tensor, Tensor, Tensor], evidence: Tensor, cold: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """The forward pass from the :meth:`branches` ``views``: a check of the content map
        while the branches stay fixed reuses them."""
        g_user, g_movie, h_user, h_movie = views
        if self.content_map is not None:  # a new movie's interaction views: its mapped content
            mapped = self.content_map(self.content)[:, None, :].expand_as(g_movie)  # [M, Tg, D]
            g_movie = torch.where(cold[:, None, None], mapped, g_movie)
        f_user = self.user_fusion(g_user, h_user)  # [U, 2D]
        f_movie = self.movie_fusion(g_movie, h_movie)  # [M, 2D]
        d = self.gcn.hidden_dim
        n = evidence.float().masked_fill(cold, 0.0).log1p()[:, None]  # [M, 1]
        gate = 2.0 * torch.sigmoid(self.evidence_gate(n))  # [M, D]
        ranked = torch.cat([gate * f_movie[:, :d], f_movie[:, d:]], dim=-1)  # [M, 2D]
        z_user, z_movie = self.user_proj(f_user), self.movie_proj(ranked)  # [U, D], [M, D]
        if self.item_item_rank and not self.training:
            p = self.item_item_scale * self.item_item_user  # [U, r]
            q = self.item_item_movie.masked_fill(cold[:, None], 0.0)  # [M, r]
            z_user, z_movie = torch.cat([z_user, p], -1), torch.cat([z_movie, q], -1)
        return z_user, z_movie, f_movie  # [U, D + r], [M, D + r], [M, 2D]

    def genre_logits(self, f_movie: Tensor) -> Tensor:
        return self.genre_head(self.dropout(f_movie))  # [M, G]

    genre_loss = staticmethod(MultiTaskHGT.genre_loss)

    def encoder_parameters(self) -> list[nn.Parameter]:
        """The branches' parameters, trained at their own (lower) fine-tuning learning rate."""
        return [*self.gcn.parameters(), *self.hgt.parameters()]

    def head_parameters(self) -> list[nn.Parameter]:
        enc = {id(p) for p in self.encoder_parameters()}
        return [p for p in self.parameters() if id(p) not in enc]

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}(gcn={self.gcn!r}, hgt={self.hgt!r}, "
            f"fusion={self.user_fusion!r}, item_item_rank={self.item_item_rank})"
        )
