"""Item-based k-nearest-neighbours with shrunk cosine similarity: the classic neighbourhood
baseline, as tuned in the reproducibility studies."""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor

from cinegraph.models.data import PreparedData
from cinegraph.models.evaluate import RunResult, select_on_validation
from cinegraph.models.neighbours import (
    BLOCK_ENTRIES,
    LikedMovies,
    NeighbourhoodModel,
    binary,
    row_blocks,
    row_products,
    rows_times,
    top_neighbours,
)
from cinegraph.models.scale import require_memory

log = logging.getLogger(__name__)


class ItemKNNConfig(BaseModel):
    """The neighbourhood sizes and shrink terms tried (every pair); the pair with the best
    validation ndcg@20 is kept."""

    model_config = ConfigDict(extra="forbid")

    ks: tuple[int, ...] = Field((20, 40, 80, 160), min_length=1)  # neighbours per item
    shrinks: tuple[float, ...] = Field((0.0, 5.0, 20.0), min_length=1)  # cosine shrinkage


def item_neighbours(
    edges: Tensor, num_users: int, shrinks: tuple[float, ...], k: int
) -> dict[float, tuple[Tensor, Tensor]]:
    """For each shrink, every liked movie's ``k`` most similar liked movies by shrunk cosine
    (:func:`top_neighbours`; rows and columns index ``edges[1].unique()``). The co-occurrence
    counts, the one costly product, are shared by all shrinks."""
    active, column = edges[1].unique(return_inverse=True)
    a = active.numel()
    x = binary(torch.stack([edges[0], column]), (num_users, a))  # [U, A], COO
    x_t = binary(torch.stack([column, edges[0]]), (a, num_users)).to_sparse_csr()  # [A, U]
    norm = x_t.crow_indices().diff().float().sqrt()  # [A] norms of the binary columns

    def similarity(start: int, end: int) -> dict[float, Tensor]:
        gram = rows_times(x_t, start, end, x)  # [b, A] co-occurrence counts
        denom = norm[start:end, None] * norm[None, :]
        own = torch.arange(end - start, device=gram.device), torch.arange(start, end, device=gram.device)
        out = {}
        for shrink in shrinks:
            sim = gram / (denom + shrink + 1e-12)
            sim[own] = 0.0  # a movie is not its own neighbour
            out[shrink] = sim
        return out

    return top_neighbours(similarity, row_blocks(a, a, row_products(x_t, x)), a, k)


class ItemKNN(NeighbourhoodModel):
    r"""Item-based collaborative filtering, from `"Item-Based Collaborative Filtering
    Recommendation Algorithms" <https://doi.org/10.1145/371920.372071>`_ (Sarwar et al., WWW
    2001), with the shrunk cosine and per-item top-k of `"Are We Really Making Much Progress?"
    <https://arxiv.org/abs/1907.06902>`_ (Ferrari Dacrema et al., RecSys 2019).

    .. math::
        s_{ij} = \frac{\mathbf{x}_i^\top \mathbf{x}_j}{\|\mathbf{x}_i\|\|\mathbf{x}_j\| + h},
        \qquad \hat{y}_{ui} = \sum_{j \in \mathcal{I}_u \cap \mathcal{N}_k(i)} s_{ij}

    where :math:`\mathbf{x}_i` is movie :math:`i`'s column of the binary interaction matrix and
    :math:`\mathcal{N}_k(i)` its :math:`k` most similar movies. Only movies with training
    positives enter the similarity; the others score 0. Sparse throughout
    (:mod:`models.neighbours`), so it fits ml-25m.

    Args:
        num_users (int): number of users :math:`U`.
        num_movies (int): number of movies :math:`M`.
        k (int): neighbours kept per movie.
        shrink (float): shrinkage :math:`h \ge 0` of the cosine.

    Shapes:
        - **fit:** training positives :math:`(2, E)` (user, movie index)
        - **scores:** users :math:`(B)` -> scores :math:`(B, M)`
    """

    def __init__(self, num_users: int, num_movies: int, k: int, shrink: float) -> None:
        if k < 1 or shrink < 0:
            raise ValueError(f"k={k} must be >= 1 and shrink={shrink} >= 0")
        super().__init__(num_users, num_movies, k)
        self.shrink = shrink

    @torch.no_grad()
    def fit(
        self, edges: Tensor, neighbours: tuple[Tensor, Tensor] | None = None, liked: LikedMovies | None = None
    ) -> ItemKNN:
        """``neighbours``: :func:`item_neighbours` of these edges for this shrink with at least
        ``k`` per movie, and ``liked`` their :class:`LikedMovies`, when already computed for a grid."""
        if neighbours is None:
            neighbours = item_neighbours(edges, self.num_users, (self.shrink,), self.k)[self.shrink]
        liked = liked or LikedMovies(edges, self.num_users)
        self.set_neighbours(liked, neighbours, rows=liked.movies)
        return self

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
    u, m, e = data.num_users, data.num_movies, data.train_edges.size(1)
    a, k_max = int(data.train_edges[1].unique().numel()), max(config.ks)
    shrinks = tuple(dict.fromkeys(config.shrinks))
    # interactions both ways, a block of counts (and its partial products) and one per shrink, the kept neighbours, a
    # batch of 1,024 users' scores
    need = (
        8 * (2 * u + a)
        + 48 * e
        + (4 * (len(shrinks) + 2) + 24) * BLOCK_ENTRIES
        + 12 * len(shrinks) * a * k_max
        + 8 * 1024 * m
    )
    require_memory(f"itemknn on {u:,} users x {a:,} rated movies (top-{k_max} item-item)", need, device)
    data = data.to(device)
    tops: dict[float, tuple[Tensor, Tensor]] = {}
    liked: list[LikedMovies] = []

    def fit(params: dict) -> Callable[[Tensor], Tensor]:
        if not tops:  # what every grid point shares, timed with the first
            tops.update(item_neighbours(data.train_edges, u, shrinks, k_max))
            liked.append(LikedMovies(data.train_edges, u))
        model = ItemKNN(u, m, **params).to(device)
        return model.fit(data.train_edges, tops[params["shrink"]], liked[0]).scores

    grid = [{"k": k, "shrink": h} for h in config.shrinks for k in config.ks]
    return select_on_validation(fit, grid, data, name="itemknn", seed=seed, device=device, config=config.model_dump())
