"""Content-based kNN: a movie scores by how much its content resembles the movies a user liked.
It needs no interaction of the scored movie, so it is the reference for new items."""

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
    row_blocks,
    row_products,
    rows_times,
    top_neighbours,
)
from cinegraph.models.scale import require_memory
from cinegraph.schema import GENRE, IN_GENRE, MOVIE, PERSON

log = logging.getLogger(__name__)

BLOCKS = ("genre", "people", "tags", "numeric")


class ContentKNNConfig(BaseModel):
    """Block weightings and neighbourhood sizes tried (every pair); the best on validation
    ndcg@20 is kept. A weighting gives each block of :func:`content_blocks` its weight."""

    model_config = ConfigDict(extra="forbid")

    weightings: tuple[dict[str, float], ...] = (
        {"genre": 1.0, "people": 1.0, "tags": 1.0, "numeric": 0.5},
        {"genre": 0.5, "people": 1.0, "tags": 1.0, "numeric": 0.5},
        {"genre": 0.5, "people": 1.0, "tags": 1.0, "numeric": 1.0},
        {"genre": 0.25, "people": 0.5, "tags": 0.5, "numeric": 1.0},
    )
    ks: tuple[int, ...] = Field((50, 100), min_length=1)  # liked-movie neighbours per movie


def _sparse_block(index: Tensor, rows: int, cols: int, idf: bool) -> Tensor:
    """Sparse ``[rows, cols]`` 0/1 matrix of (row, col) pairs ``[2, E]`` (duplicates count once),
    columns weighted by their inverse document frequency when ``idf``, rows L2-normalised."""
    index = index.unique(dim=1) if index.numel() else index
    values = torch.ones(index.size(1), device=index.device)
    if idf and index.numel():
        df = torch.bincount(index[1], minlength=cols).float()  # [cols]
        values = torch.log(rows / df[index[1]])
    norm = torch.zeros(rows, device=index.device).index_add_(0, index[0], values.pow(2)).sqrt()
    values = values / norm[index[0]].clamp(min=1e-12)
    return torch.sparse_coo_tensor(index, values, (rows, cols), check_invariants=True).coalesce()


def content_blocks(data: PreparedData) -> dict[str, Tensor]:
    """Each movie's content in the model input, one row-normalised block per kind (``[M, F_b]``,
    sparse but for ``numeric``; a movie without that content has a zero row): genres (input
    genre edges only), IMDb people of every role (IDF-weighted), tag text (IDF-weighted), and
    the movie features (year, runtime, votes, IMDb rating, standardised, with missing flags)."""
    g, m = data.graph, data.num_movies
    dev = data.movie_tags.device
    people = [g[t].edge_index.flip(0) for t in g.edge_types if t[0] == PERSON.label and t[2] == MOVIE.label]
    num_people = g[PERSON.label].num_nodes if PERSON.label in g.node_types else 0
    person_index = torch.cat(people, 1) if people else torch.zeros(2, 0, dtype=torch.long)
    numeric = g[MOVIE.label].x.float()
    return {
        "genre": _sparse_block(g[IN_GENRE.triplet].edge_index, m, g[GENRE.label].num_nodes, False),
        "people": _sparse_block(person_index.to(dev), m, num_people, idf=True),
        "tags": _sparse_block(data.movie_tags, m, len(data.tag_names), idf=True),
        "numeric": numeric / numeric.norm(dim=1, keepdim=True).clamp(min=1e-12),
    }


class ContentKNN(NeighbourhoodModel):
    r"""Content-based neighbourhood recommender (the item-based scheme of Sarwar et al.,
    `WWW 2001 <https://doi.org/10.1145/371920.372071>`_, with content similarity in place of
    co-rating, as in Lops et al., `"Content-based Recommender Systems: State of the Art and
    Trends" <https://doi.org/10.1007/978-0-387-85820-3_3>`_).

    .. math::
        s_{ij} = \sum_b w_b \cos(\mathbf{f}^b_i, \mathbf{f}^b_j), \qquad
        \hat{y}_{ui} = \sum_{j \in \mathcal{I}_u \cap \mathcal{N}_k(i)} s_{ij}

    with content blocks :math:`b` (genres, people, tags, movie features) and
    :math:`\mathcal{N}_k(i)` the :math:`k` movies with training positives most similar to
    :math:`i` (itself excluded). A movie never rated still gets neighbours, hence scores.
    Sparse throughout (:mod:`models.neighbours`), so it fits ml-25m.

    Args:
        num_users (int): number of users :math:`U`.
        num_movies (int): number of movies :math:`M`.
        weights (dict[str, float]): block weight :math:`w_b` by block name.
        k (int): neighbours kept per movie.

    Shapes:
        - **fit:** training positives :math:`(2, E)`, blocks ``{name: [M, F_b]}``
        - **scores:** users :math:`(B)` -> scores :math:`(B, M)`
    """

    def __init__(self, num_users: int, num_movies: int, weights: dict[str, float], k: int) -> None:
        unknown = sorted(set(weights) - set(BLOCKS))
        if unknown or k < 1:
            raise ValueError(f"weights={weights} (blocks {BLOCKS}) and k={k} (>= 1)")
        super().__init__(num_users, num_movies, k)
        self.weights = weights

    @torch.no_grad()
    def fit(
        self,
        edges: Tensor,
        blocks: dict[str, Tensor],
        neighbours: tuple[Tensor, Tensor] | None = None,
        liked: LikedMovies | None = None,
    ) -> ContentKNN:
        """``blocks``: :func:`content_blocks`; ``neighbours``: :func:`content_neighbours` of
        these edges and blocks for this weighting with at least ``k`` per movie, and ``liked``
        their :class:`LikedMovies`, when already computed for a grid."""
        liked = liked or LikedMovies(edges, self.num_users)
        if neighbours is None:
            neighbours = content_neighbours(blocks, liked.movies, (self.weights,), self.k)[0]
        self.set_neighbours(liked, neighbours, rows=torch.arange(self.num_movies, device=edges.device))
        return self

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.num_users}, {self.num_movies}, k={self.k})"


def content_neighbours(
    blocks: dict[str, Tensor], active: Tensor, weightings: tuple[dict[str, float], ...], k: int
) -> dict[int, tuple[Tensor, Tensor]]:
    """For the weighting at each position of ``weightings``, every movie's ``k`` most similar
    liked movies (``active``, as columns; :func:`top_neighbours`). The per-block cosines, the
    costly products, are shared by all weightings."""
    num_movies = next(iter(blocks.values())).size(0)
    csr = {name: f.to_sparse_csr() for name, f in blocks.items() if f.is_sparse}  # [M, F_b]
    liked_t = {  # [F_b, A]: sparse COO, or dense for a dense block
        name: f.index_select(0, active).t().coalesce() if f.is_sparse else f[active].t() for name, f in blocks.items()
    }
    column = torch.full((num_movies,), -1, dtype=torch.long, device=active.device)
    column[active] = torch.arange(active.numel(), device=active.device)  # liked movie -> column

    def similarity(start: int, end: int) -> dict[int, Tensor]:
        cos = {  # [b, A] per block
            name: rows_times(csr[name], start, end, liked_t[name]) if f.is_sparse else f[start:end] @ liked_t[name]
            for name, f in blocks.items()
        }
        own = column[start:end]
        row = torch.arange(end - start, device=active.device)[own >= 0]
        out = {}
        for i, weights in enumerate(weightings):
            sim = torch.zeros(end - start, active.numel(), device=active.device)
            for name, w in weights.items():
                if w:
                    sim += w * cos[name]
            sim[row, own[own >= 0]] = 0.0  # a movie is not its own neighbour
            out[i] = sim
        return out

    products = sum((row_products(csr[name], liked_t[name]) for name in csr), torch.zeros(num_movies, dtype=torch.long))
    return top_neighbours(similarity, row_blocks(num_movies, active.numel(), products), active.numel(), k)


def train_content_knn(
    data: PreparedData,
    config: ContentKNNConfig | None = None,
    seed: int = 0,
    device: torch.device | str = "cpu",
) -> RunResult:
    """ContentKNN over the model input's content, weighting and k chosen on validation ndcg@20;
    deterministic (``seed`` only labels the run)."""
    config = config or ContentKNNConfig()
    u, m, e = data.num_users, data.num_movies, data.train_edges.size(1)
    a, k_max, w = int(data.train_edges[1].unique().numel()), max(config.ks), len(config.weightings)
    # the content blocks, the interactions, a block of cosines per content block (and the partial products) and one
    # combined, the kept neighbours, a batch of 1,024 users' scores
    need = 8 * u + 48 * e + (4 * (len(BLOCKS) + 2) + 24) * BLOCK_ENTRIES + 12 * w * m * k_max + 8 * 1024 * m
    require_memory(f"content_knn on {m:,} movies x {a:,} rated movies (top-{k_max} content)", need, device)
    data = data.to(device)
    blocks = content_blocks(data)
    tops: dict[int, tuple[Tensor, Tensor]] = {}
    liked: list[LikedMovies] = []

    def fit(params: dict) -> Callable[[Tensor], Tensor]:
        if not tops:  # what every grid point shares, timed with the first
            liked.append(LikedMovies(data.train_edges, u))
            tops.update(content_neighbours(blocks, liked[0].movies, config.weightings, k_max))
        model = ContentKNN(u, m, **params).to(device)
        weighting = config.weightings.index(params["weights"])
        return model.fit(data.train_edges, blocks, tops[weighting], liked[0]).scores

    grid = [{"weights": weights, "k": k} for weights in config.weightings for k in config.ks]
    return select_on_validation(
        fit, grid, data, name="content_knn", seed=seed, device=device, config=config.model_dump()
    )
