"""Content-based kNN: a movie scores by how much its content resembles the movies a user liked.
It needs no interaction of the scored movie, so it is the reference for new items."""

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


class ContentKNN(nn.Module):
    r"""Content-based neighbourhood recommender (the item-based scheme of Sarwar et al.,
    `WWW 2001 <https://doi.org/10.1145/371920.372071>`_, with content similarity in place of
    co-rating, as in Lops et al., `"Content-based Recommender Systems: State of the Art and
    Trends" <https://doi.org/10.1007/978-0-387-85820-3_3>`_).

    .. math::
        s_{ji} = \sum_b w_b \cos(\mathbf{f}^b_j, \mathbf{f}^b_i), \qquad
        \hat{y}_{ui} = \sum_{j \in \mathcal{I}_u \cap \mathcal{N}_k(i)} s_{ji}

    with content blocks :math:`b` (genres, people, tags, movie features) and
    :math:`\mathcal{N}_k(i)` the :math:`k` movies with training positives most similar to
    :math:`i` (itself excluded). A movie never rated still gets neighbours, hence scores.

    Args:
        num_users (int): number of users :math:`U`.
        num_movies (int): number of movies :math:`M`.
        weights (dict[str, float]): block weight :math:`w_b` by block name.
        k (int): neighbours kept per movie.

    Shapes:
        - **fit:** training positives :math:`(2, E)`, blocks ``{name: [M, F_b]}``
        - **scores:** users :math:`(B)` -> scores :math:`(B, M)`
    """

    x: Tensor  # a buffer (see __init__), set by fit
    weight: Tensor  # a buffer (see __init__), set by fit

    def __init__(self, num_users: int, num_movies: int, weights: dict[str, float], k: int) -> None:
        super().__init__()
        unknown = sorted(set(weights) - set(BLOCKS))
        if unknown or k < 1:
            raise ValueError(f"weights={weights} (blocks {BLOCKS}) and k={k} (>= 1)")
        self.num_users, self.num_movies, self.weights, self.k = num_users, num_movies, weights, k
        self.register_buffer("x", torch.zeros(0, 0), persistent=False)  # [U, A]
        self.register_buffer("weight", torch.zeros(0, 0))  # [M, A] row i: neighbours of i

    def reset_parameters(self) -> None:
        self.weight = torch.zeros(0, 0, device=self.weight.device)

    @torch.no_grad()
    def fit(self, edges: Tensor, block_sims: dict[str, Tensor]) -> ContentKNN:
        """``block_sims``: :func:`block_similarities` of the same edges."""
        active = edges[1].unique()  # [A] movies someone liked
        self.x = interaction_matrix(edges, self.num_users, self.num_movies)[:, active]
        sim = sum(w * block_sims[b] for b, w in self.weights.items() if w)  # [M, A]
        sim = sim.clone() if isinstance(sim, Tensor) else torch.zeros_like(block_sims[BLOCKS[0]])
        sim[active, torch.arange(active.numel(), device=sim.device)] = 0.0  # not its own neighbour
        top = sim.topk(min(self.k, active.numel()), dim=1)  # [M, k]
        self.weight = torch.zeros_like(sim).scatter_(1, top.indices, top.values)
        return self

    def scores(self, users: Tensor) -> Tensor:
        return self.x[users] @ self.weight.t()  # [B, M]

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.num_users}, {self.num_movies}, k={self.k})"


def block_similarities(blocks: dict[str, Tensor], active: Tensor) -> dict[str, Tensor]:
    """Cosine of every movie to every liked movie, per block: ``{name: [M, A]}``."""
    out = {}
    for name, f in blocks.items():
        dense = f.index_select(0, active).to_dense() if f.is_sparse else f[active]  # [A, F_b]
        out[name] = torch.sparse.mm(f, dense.t().contiguous()) if f.is_sparse else f @ dense.t()
    return out


def train_content_knn(
    data: PreparedData,
    config: ContentKNNConfig | None = None,
    seed: int = 0,
    device: torch.device | str = "cpu",
) -> RunResult:
    """ContentKNN over the model input's content, weighting and k chosen on validation ndcg@20;
    deterministic (``seed`` only labels the run)."""
    config = config or ContentKNNConfig()
    u, m, a = data.num_users, data.num_movies, int(data.train_edges[1].unique().numel())
    need = 4 * (u * m + u * a + (len(BLOCKS) + 3) * m * a)  # dense X, one [M, A] per block, sum, top-k
    require_memory(f"content_knn on {m:,} movies x {a:,} rated movies (dense similarities)", need, device)
    data = data.to(device)
    sims = block_similarities(content_blocks(data), data.train_edges[1].unique())

    def fit(params: dict) -> Callable[[Tensor], Tensor]:
        model = ContentKNN(data.num_users, data.num_movies, **params).to(device)
        return model.fit(data.train_edges, sims).scores

    grid = [{"weights": w, "k": k} for w in config.weightings for k in config.ks]
    return select_on_validation(
        fit, grid, data, name="content_knn", seed=seed, device=device, config=config.model_dump()
    )
