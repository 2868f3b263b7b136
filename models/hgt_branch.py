"""Branch 2: a multi-task Heterogeneous Graph Transformer over every node and relation type."""

from __future__ import annotations

from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cinegraph.models.hgt_conv import ChunkedHGTConv
from cinegraph.schema import MOVIE, USER, Metadata

EdgeDict = dict[tuple[str, str, str], Tensor]


class MultiTaskHGT(nn.Module):
    r"""The semantic branch: stacked :class:`torch_geometric.nn.HGTConv` layers from `"Heterogeneous
    Graph Transformer" <https://arxiv.org/abs/2003.01332>`_ over the enriched graph (users, movies,
    genres, people; ratings, tags, genre and crew relations and their reverses). Each node starts
    from a learned embedding plus a projection of its features:

    .. math::
        \mathbf{h}^{(0)}_i = \mathbf{e}_i + \mathbf{W}_{\tau(i)} \mathbf{f}_i, \qquad
        \mathbf{h}^{(l+1)}_i = \mathrm{HGT}^{(l)}\left(\mathbf{h}^{(l)}_i,
        \{(\mathbf{h}^{(l)}_j, \phi(e_{ji})) : j \in \mathcal{N}(i)\}\right),

    with type-specific key, query, value and message projections per relation
    :math:`\phi`. A node's representation is the mean of its :math:`L + 1` layer views; the views
    are kept for fusion. The primary head classifies movie genres (multi-label BCE); the auxiliary
    head scores :math:`\hat{y}_{um} = \mathbf{h}_u^\top \mathbf{h}_m` with BPR.

    Args:
        metadata (Metadata): ``(node_types, edge_types)`` of the input graph.
        num_nodes (dict[str, int]): Number of nodes of each type.
        in_dims (dict[str, int]): Feature size of each type, 0 or absent for none.
        num_genres (int): Number of genre labels.
        user_type (str): Node type of users. (default: ``schema.USER.label``)
        movie_type (str): Node type of movies. (default: ``schema.MOVIE.label``)
        hidden_dim (int, optional): Embedding size. (default: :obj:`64`)
        num_layers (int, optional): :class:`HGTConv` layers. (default: :obj:`2`)
        heads (int, optional): Attention heads per layer. (default: :obj:`4`)
        dropout (float, optional): Dropout between layers and before heads. (default: :obj:`0.2`)

    Shapes:
        - **input:** node features :math:`(|\mathcal{V}_t|, F_t)` per type, edge indices
          :math:`(2, |\mathcal{E}_r|)` per relation
        - **output:** layer views :math:`(|\mathcal{V}_t|, L + 1, D)` per type
    """

    def __init__(
        self,
        metadata: Metadata,
        num_nodes: dict[str, int],
        in_dims: dict[str, int],
        num_genres: int,
        user_type: str = USER.label,
        movie_type: str = MOVIE.label,
        hidden_dim: int = 64,
        num_layers: int = 2,
        heads: int = 4,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        if hidden_dim % heads != 0:
            raise ValueError(f"hidden_dim={hidden_dim} is not divisible by heads={heads}")
        node_types, edge_types = metadata
        for t in (user_type, movie_type):
            if t not in node_types:
                raise ValueError(f"node type {t!r} is missing from metadata {node_types}")
        self.metadata: Metadata = (list(node_types), [(s, r, d) for s, r, d in edge_types])
        self.num_nodes, self.in_dims = dict(num_nodes), {t: in_dims.get(t, 0) for t in node_types}
        self.num_genres, self.user_type, self.movie_type = num_genres, user_type, movie_type
        self.hidden_dim, self.num_layers, self.heads = hidden_dim, num_layers, heads
        self.embedding = nn.ModuleDict({t: nn.Embedding(num_nodes[t], hidden_dim) for t in node_types})
        self.lin = nn.ModuleDict({t: nn.Linear(d, hidden_dim, bias=False) for t, d in self.in_dims.items() if d})
        self.convs = nn.ModuleList(
            ChunkedHGTConv(hidden_dim, hidden_dim, self.metadata, heads) for _ in range(num_layers)
        )
        self.dropout = nn.Dropout(dropout)
        self.genre_head = nn.Linear(hidden_dim, num_genres)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for emb in self.embedding.values():
            nn.init.normal_(emb.get_parameter("weight"), std=0.1)
        for lin in self.lin.values():
            nn.init.xavier_uniform_(lin.get_parameter("weight"))
        for conv in self.convs:
            cast(ChunkedHGTConv, conv).reset_parameters()  # a ModuleList yields plain Modules
        self.genre_head.reset_parameters()

    def forward(
        self,
        x_dict: dict[str, Tensor],
        edge_index_dict: EdgeDict,
        cold: Tensor | None = None,
        types: tuple[str, ...] | None = None,
    ) -> dict[str, Tensor]:
        """Layer views of every node of ``types`` (default: all types). A type that receives no
        message keeps its last state. ``cold`` ``[M]`` marks movies without interactions: their
        learned embedding is left out, so they start from content alone (features), as a new
        release must. Layer by layer, only the nodes the next layer reads are computed (for
        users and movies: their in-neighbours, not every person), each layer in destination
        chunks (:class:`ChunkedHGTConv`)."""
        need = self._needed(edge_index_dict, tuple(self.embedding) if types is None else types)
        h: dict[str, Tensor] = {}
        for t, emb in self.embedding.items():
            if (ids := need[0].get(t)) is None:
                continue
            h[t] = emb.get_parameter("weight")[ids]  # [N'_t, D]
            if t == self.movie_type and cold is not None:
                h[t] = h[t].masked_fill(cold[ids][:, None], 0.0)
            if t in self.lin:
                h[t] = h[t] + self.lin[t](x_dict[t][ids])  # [N'_t, D]
        views = {t: [h[t]] for t in need[-1]}
        for layer, conv in enumerate(self.convs, start=1):
            before, after = need[layer - 1], need[layer]
            local = {t: self._positions(ids, self.num_nodes[t]) for t, ids in before.items()}
            rows = {t: local[t][ids] for t, ids in after.items()}  # [N''_t]: rows of this layer's outputs
            partial = {}  # types of which only some nodes are computed: each node's output row, or -1
            for t, ids in after.items():
                if ids.numel() < self.num_nodes[t]:
                    partial[t] = self._positions(ids, self.num_nodes[t])
            edges = {}
            for (src, rel, dst), e in edge_index_dict.items():
                if dst not in after:
                    continue
                if dst in partial:  # only edges into the nodes computed
                    row = partial[dst][e[1]]  # [E_r]
                    keep = row >= 0
                    e = torch.stack([e[0][keep], row[keep]])
                if before[src].numel() < self.num_nodes[src]:
                    e = torch.stack([local[src][e[0]], e[1]])
                edges[src, rel, dst] = e  # [2, E'_r]: rows of h[src] -> rows of the outputs
            out = conv(h, edges, rows)
            h = {t: self.dropout(o) if (o := out.get(t)) is not None else h[t][rows[t]] for t in after}
            for t in views:
                views[t].append(h[t])
        return {t: torch.stack(v, dim=1) for t, v in views.items()}  # [N_t, L+1, D]

    def _needed(self, edge_index_dict: EdgeDict, types: tuple[str, ...]) -> list[dict[str, Tensor]]:
        """Per layer 0..L, the sorted ids of the nodes of each type whose state is read: every node
        of ``types`` at the last layer; before it, those nodes and their in-neighbours."""
        device = next(self.parameters()).device
        masks = {t: torch.ones(self.num_nodes[t], dtype=torch.bool, device=device) for t in types}
        need = [{t: torch.nonzero(m).flatten() for t, m in masks.items()}]
        for _ in self.convs:
            before = {t: m.clone() for t, m in masks.items()}
            for (src, _, dst), e in edge_index_dict.items():
                if dst in masks:
                    if src not in before:
                        before[src] = torch.zeros(self.num_nodes[src], dtype=torch.bool, device=device)
                    before[src][e[0][masks[dst][e[1]]]] = True
            masks = before
            need.insert(0, {t: torch.nonzero(m).flatten() for t, m in masks.items()})
        return need

    @staticmethod
    def _positions(ids: Tensor, n: int) -> Tensor:
        """``[n]``: each node's row among the sorted ``ids``, -1 for nodes not among them."""
        pos = torch.full((n,), -1, dtype=torch.long, device=ids.device)
        pos[ids] = torch.arange(ids.numel(), device=ids.device)
        return pos

    def embed(
        self,
        x_dict: dict[str, Tensor],
        edge_index_dict: dict[tuple[str, str, str], Tensor],
        cold: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Final user and movie embeddings: the mean over layer views."""
        views = self.forward(x_dict, edge_index_dict, cold, (self.user_type, self.movie_type))
        return views[self.user_type].mean(1), views[self.movie_type].mean(1)  # [U, D], [M, D]

    def genre_logits(self, z_movie: Tensor) -> Tensor:
        return self.genre_head(self.dropout(z_movie))  # [M, G]

    @staticmethod
    def genre_loss(logits: Tensor, labels: Tensor, mask: Tensor) -> Tensor:
        return F.binary_cross_entropy_with_logits(logits[mask], labels[mask])

    @torch.no_grad()
    def recommend(self, z_user: Tensor, z_movie: Tensor, users: Tensor, k: int = 20) -> Tensor:
        """Top-k movie indices for each of ``users`` (no exclusion of seen items)."""
        return (z_user[users] @ z_movie.t()).topk(k, dim=-1).indices  # [B, k]

    def __repr__(self) -> str:
        n_rel = len(self.metadata[1])
        return (
            f"{self.__class__.__name__}(node_types={len(self.metadata[0])}, relations={n_rel}, "
            f"genres={self.num_genres}, dim={self.hidden_dim}, layers={self.num_layers}, "
            f"heads={self.heads})"
        )
