"""LightGCN on the user–movie graph of training positives, wrapping PyG's implementation."""

from __future__ import annotations

import logging

import torch
from pydantic import Field
from torch import Tensor, nn
from torch_geometric.nn.conv.gcn_conv import gcn_norm
from torch_geometric.nn.models import LightGCN
from torch_geometric.utils import to_torch_csr_tensor

from cinegraph.models.data import PreparedData
from cinegraph.models.evaluate import RunResult
from cinegraph.models.mf_bpr import BPRConfig, fit_bpr

log = logging.getLogger(__name__)


class LightGCNConfig(BPRConfig):
    """BPR training plus the propagation depth; each step propagates the whole graph."""

    num_layers: int = Field(3, ge=0)  # LGConv layers; 0 is plain MF
    lambda_reg: float = Field(1e-3, ge=0)  # L2 on the layer-0 embeddings of each batch


class LightGCNRecommender(nn.Module):
    r"""`LightGCN <https://arxiv.org/abs/2002.02126>`_ over the bipartite graph of training
    positives: users are nodes ``0..U-1``, movies ``U..U+M-1``, edges go both ways.

    .. math::
        \mathbf{e}^{(l+1)}_u = \sum_{i \in \mathcal{N}(u)}
        \frac{1}{\sqrt{|\mathcal{N}(u)||\mathcal{N}(i)|}} \mathbf{e}^{(l)}_i, \qquad
        \mathbf{e}_u = \sum_{l=0}^{L} \alpha_l \mathbf{e}^{(l)}_u, \qquad
        \hat{y}_{ui} = \mathbf{e}_u^\top \mathbf{e}_i

    Args:
        num_users (int): number of users :math:`U`.
        num_movies (int): number of movies :math:`M`.
        train_edges (torch.Tensor): training positives ``[2, E]`` (user, movie index).
        embedding_dim (int): size :math:`D` of each embedding.
        num_layers (int): propagation layers :math:`L`, with :math:`\alpha_l = 1 / (L + 1)`.

    Shapes:
        - **forward:** users :math:`(B)`, movies :math:`(B)` -> scores :math:`(B)`
        - **scores:** users :math:`(B)` -> scores over all movies :math:`(B, M)`
    """

    def __init__(
        self,
        num_users: int,
        num_movies: int,
        train_edges: Tensor,
        embedding_dim: int,
        num_layers: int,
    ) -> None:
        super().__init__()
        self.num_users, self.num_movies = num_users, num_movies
        num_nodes = num_users + num_movies
        src, dst = train_edges[0], train_edges[1] + num_users
        edge_index = torch.stack([torch.cat([src, dst]), torch.cat([dst, src])])  # [2, 2E]
        # The symmetric normalisation is fixed: compute it once and propagate with a sparse CSR
        # matmul (about 3x faster on CPU than scatter-based message passing, same result).
        edge_index, weight = gcn_norm(edge_index, None, num_nodes, add_self_loops=False)
        adj_t = to_torch_csr_tensor(edge_index.flip(0), weight, size=(num_nodes, num_nodes))
        self.register_buffer("adj_t", adj_t, persistent=False)  # [N, N], row = target
        self.lightgcn = LightGCN(num_nodes, embedding_dim, num_layers, normalize=False)

    def reset_parameters(self) -> None:
        self.lightgcn.reset_parameters()

    def embeddings(self) -> tuple[Tensor, Tensor]:
        out = self.lightgcn.get_embedding(self.adj_t)  # [U + M, D]
        return out[: self.num_users], out[self.num_users :]

    def forward(self, users: Tensor, movies: Tensor) -> Tensor:
        user, movie = self.embeddings()
        return (user[users] * movie[movies]).sum(-1)  # [B]

    def scores(self, users: Tensor) -> Tensor:
        user, movie = self.embeddings()
        return user[users] @ movie.t()  # [B, M]

    def recommendation_loss(self, users: Tensor, pos: Tensor, neg: Tensor, lambda_reg: float) -> Tensor:
        """PyG's BPR loss with L2 on the layer-0 embeddings of the batch's nodes."""
        user, movie = self.embeddings()
        u = user[users]  # [B, D]
        pos_rank, neg_rank = (u * movie[pos]).sum(-1), (u * movie[neg]).sum(-1)
        node_id = torch.cat([users, pos + self.num_users, neg + self.num_users]).unique()
        return self.lightgcn.recommendation_loss(pos_rank, neg_rank, node_id=node_id, lambda_reg=lambda_reg)

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}({self.num_users}, {self.num_movies}, "
            f"{self.lightgcn.embedding_dim}, num_layers={self.lightgcn.num_layers})"
        )


def train_lightgcn(
    data: PreparedData,
    config: LightGCNConfig | None = None,
    seed: int = 0,
    device: torch.device | str = "cpu",
) -> RunResult:
    """Train LightGCN with BPR on the training positives; early stopping on valid ndcg@20."""
    config = config or LightGCNConfig()
    torch.manual_seed(seed)
    model = LightGCNRecommender(
        data.num_users, data.num_movies, data.train_edges, config.embedding_dim, config.num_layers
    )
    return fit_bpr(model, data, config, name="lightgcn", seed=seed, device=device)
