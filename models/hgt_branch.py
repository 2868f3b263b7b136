"""Branch 2: a multi-task Heterogeneous Graph Transformer over every node and relation type."""

from __future__ import annotations

from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.nn import HGTConv

from cinegraph.models.scale import by_destination
from cinegraph.schema import MOVIE, USER, Metadata


class _HGTConv(HGTConv):
    """:class:`HGTConv` with its relation-specific key/value transforms done as one ``einsum`` per
    relation. Without pyg-lib, ``HeteroLinear`` loops over ``heads x relations`` slices of one
    output tensor, and autograd then clones the whole gradient once per slice: on ml-latest-small
    that made a CPU step ~10x slower. Same parameters, same results (see the test). Without
    autograd, a graph above ``max_edges_per_pass`` edges runs in destination chunks (exact)."""

    max_edges_per_pass = 1_000_000  # no-grad inference: edges whose tensors are held at once

    def forward(self, x_dict: dict[str, Tensor], edge_index_dict: dict) -> dict[str, Tensor | None]:
        edges = sum(e.size(1) for e in edge_index_dict.values())
        if torch.is_grad_enabled() or edges <= self.max_edges_per_pass:
            return super().forward(x_dict, edge_index_dict)
        return by_destination(super().forward, x_dict, edge_index_dict, self.max_edges_per_pass)

    def _construct_src_node_feat(
        self, k_dict: dict[str, Tensor], v_dict: dict[str, Tensor], edge_index_dict: dict
    ) -> tuple[Tensor, Tensor, dict]:
        H, E = self.heads, len(self.edge_types)
        ks, vs, offset, cumsum = [], [], {}, 0
        for edge_type in edge_index_dict:
            src = edge_type[0]
            offset[edge_type] = cumsum
            cumsum += k_dict[src].size(0)
            rows = torch.arange(H, device=k_dict[src].device) * E + self.edge_types_map[edge_type]
            ks.append(torch.einsum("nhd,hde->nhe", k_dict[src], self.k_rel.weight[rows]))  # [N, H, D]
            vs.append(torch.einsum("nhd,hde->nhe", v_dict[src], self.v_rel.weight[rows]))  # [N, H, D]
        return torch.cat(ks), torch.cat(vs), offset


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
        self.convs = nn.ModuleList(_HGTConv(hidden_dim, hidden_dim, self.metadata, heads) for _ in range(num_layers))
        self.dropout = nn.Dropout(dropout)
        self.genre_head = nn.Linear(hidden_dim, num_genres)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for emb in self.embedding.values():
            nn.init.normal_(emb.get_parameter("weight"), std=0.1)
        for lin in self.lin.values():
            nn.init.xavier_uniform_(lin.get_parameter("weight"))
        for conv in self.convs:
            cast(_HGTConv, conv).reset_parameters()  # a ModuleList yields plain Modules
        self.genre_head.reset_parameters()

    def forward(
        self,
        x_dict: dict[str, Tensor],
        edge_index_dict: dict[tuple[str, str, str], Tensor],
        cold: Tensor | None = None,
    ) -> dict[str, Tensor]:
        """Layer views per node type. A type that receives no message keeps its last state.
        ``cold`` ``[M]`` marks movies without interactions: their learned embedding is left
        out, so they start from content alone (features), as a new release must."""
        h: dict[str, Tensor] = {}
        for t, emb in self.embedding.items():
            h[t] = emb.get_parameter("weight")  # [N_t, D]
            if t == self.movie_type and cold is not None:
                h[t] = h[t].masked_fill(cold[:, None], 0.0)  # [M, D]
            if t in self.lin:
                h[t] = h[t] + self.lin[t](x_dict[t])  # [N_t, D]
        views = {t: [v] for t, v in h.items()}
        for conv in self.convs:
            out = conv(h, edge_index_dict)
            h = {t: self.dropout(out[t]) if out.get(t) is not None else h[t] for t in h}
            for t, v in h.items():
                views[t].append(v)
        return {t: torch.stack(v, dim=1) for t, v in views.items()}  # [N_t, L+1, D]

    def embed(
        self,
        x_dict: dict[str, Tensor],
        edge_index_dict: dict[tuple[str, str, str], Tensor],
        cold: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Final user and movie embeddings: the mean over layer views."""
        views = self.forward(x_dict, edge_index_dict, cold)
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
