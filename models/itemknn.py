"""Item-based k-nearest-neighbours with shrunk cosine similarity: the classic neighbourhood
baseline, as tuned in the reproducibility studies."""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn

from cinegraph.models.data import PreparedData
from cinegraph.models.ease import interaction_matrix
from cinegraph.models.evaluate import RunResult, select_on_validation
from cinegraph.models.scale import require_memory

log = logging.getLogger(__name__)


class ItemKNNConfig(BaseModel):
    """The neighbourhood sizes and shrink terms tried (every pair); the pair with the best
    validation ndcg@20 is kept."""

    model_config = ConfigDict(extra="forbid")

    ks: tuple[int, ...] = Field((20, 40, 80, 160), min_length=1)  # neighbours per item
    shrinks: tuple[float, ...] = Field((0.0, 5.0, 20.0), min_length=1)  # cosine shrinkage


def top_k_columns(sim: Tensor, k: int) -> Tensor:
    """Symmetric ``sim`` ``[N, N]`` with all but the ``k`` largest entries of each column set to
    zero (taken along rows, the fast direction, then transposed)."""
    k = min(k, sim.size(0))
    top = sim.topk(k, dim=1)  # [N, k]
    return torch.zeros_like(sim).scatter_(1, top.indices, top.values).t()


class ItemKNN(nn.Module):
    r"""Item-based collaborative filtering, from `"Item-Based Collaborative Filtering
    Recommendation Algorithms" <https://doi.org/10.1145/371920.372071>`_ (Sarwar et al., WWW
    2001), with the shrunk cosine and per-item top-k of `"Are We Really Making Much Progress?"
    <https://arxiv.org/abs/1907.06902>`_ (Ferrari Dacrema et al., RecSys 2019).

    .. math::
        s_{ji} = \frac{\mathbf{x}_j^\top \mathbf{x}_i}{\|\mathbf{x}_j\|\|\mathbf{x}_i\| + h},
        \qquad \hat{y}_{ui} = \sum_{j \in \mathcal{I}_u \cap \mathcal{N}_k(i)} s_{ji}

    where :math:`\mathbf{x}_i` is movie :math:`i`'s column of the binary interaction matrix and
    :math:`\mathcal{N}_k(i)` its :math:`k` most similar movies. Only movies with training
    positives enter the similarity; the others score 0.

    Args:
        num_users (int): number of users :math:`U`.
        num_movies (int): number of movies :math:`M`.
        k (int): neighbours kept per movie.
        shrink (float): shrinkage :math:`h \ge 0` of the cosine.

    Shapes:
        - **fit:** training positives :math:`(2, E)` (user, movie index)
        - **scores:** users :math:`(B)` -> scores :math:`(B, M)`
    """

    active: Tensor  # a buffer (see __init__), set by fit
    x: Tensor  # a buffer (see __init__), set by fit
    weight: Tensor  # a buffer (see __init__), set by fit

    def __init__(self, num_users: int, num_movies: int, k: int, shrink: float) -> None:
        super().__init__()
        if k < 1 or shrink < 0:
            raise ValueError(f"k={k} must be >= 1 and shrink={shrink} >= 0")
        self.num_users, self.num_movies, self.k, self.shrink = num_users, num_movies, k, shrink
        self.register_buffer("active", torch.zeros(0, dtype=torch.long))  # [A] movies with data
        self.register_buffer("x", torch.zeros(0, 0), persistent=False)  # [U, A]
        self.register_buffer("weight", torch.zeros(0, 0))  # [A, A] column i: neighbours of i

    def reset_parameters(self) -> None:
        self.weight = torch.zeros(0, 0, device=self.weight.device)

    @torch.no_grad()
    def fit(self, edges: Tensor, gram: Tensor | None = None) -> ItemKNN:
        """``gram``: ``x.T @ x`` of these edges' active movies, when already computed for
        another k or shrink (the one costly product)."""
        self.active = edges[1].unique()
        self.x = interaction_matrix(edges, self.num_users, self.num_movies)[:, self.active]
        gram = self.x.t() @ self.x if gram is None else gram  # [A, A] co-occurrence counts
        norm = gram.diagonal().sqrt()  # [A]
        sim = gram / (norm[:, None] * norm[None, :] + self.shrink + 1e-12)  # [A, A]
        self.weight = top_k_columns(sim.fill_diagonal_(0.0), self.k)
        return self

    def scores(self, users: Tensor) -> Tensor:
        out = torch.zeros(users.numel(), self.num_movies, device=self.x.device)
        out[:, self.active] = self.x[users] @ self.weight  # [B, A]
        return out

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.num_users}, {self.num_movies}, k={self.k}, shrink={self.shrink})"


def train_itemknn(
    data: PreparedData,
    config: ItemKNNConfig | None = None,
    seed: int = 0,
    device: torch.device | str = "cpu",
) -> RunResult:
    """ItemKNN on the training positives, k and shrink chosen on validation ndcg@20;
    deterministic (``seed`` only labels the run)."""
    config = config or ItemKNNConfig()
    data = data.to(device)
    active = data.train_edges[1].unique()
    u, m, a = data.num_users, data.num_movies, active.numel()
    need = 4 * (u * m + u * a + 3 * a * a)  # dense X and its active columns, Gram, cosine, top-k
    require_memory(f"itemknn on {u:,} users x {a:,} rated movies (dense item-item similarity)", need, device)
    x = interaction_matrix(data.train_edges, data.num_users, data.num_movies)[:, active]
    gram = x.t() @ x  # [A, A], shared by the whole grid

    def fit(params: dict) -> Callable[[Tensor], Tensor]:
        model = ItemKNN(data.num_users, data.num_movies, **params).to(device)
        return model.fit(data.train_edges, gram).scores

    grid = [{"k": k, "shrink": h} for h in config.shrinks for k in config.ks]
    return select_on_validation(fit, grid, data, name="itemknn", seed=seed, device=device, config=config.model_dump())
