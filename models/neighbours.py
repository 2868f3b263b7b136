"""Item neighbourhood models at any catalogue size: a movie's score for a user is the sum of its
similarities to the movies the user liked, over its ``k`` nearest liked movies.

A dense ``[M, A]`` similarity (movies x liked movies) is 14 GB at ml-25m's 62k x 59k, and the
dense interaction matrix 40 GB. Here similarities are computed a block of rows at a time from
sparse products, only each row's top ``k`` is kept (sparse ``[M, A]``), and a batch of users is
scored by sparse products of their liked movies with the movies those are neighbours of (work:
the liked movies times their reverse neighbours, not ``B x M x k``), in sub-batches bounded like
the blocks: memory is a block plus ``M x k`` plus the interactions.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import TypeVar

import torch
from torch import Tensor, nn

from cinegraph.models.evaluate import UserRows

K = TypeVar("K", bound=Hashable)
BLOCK_ENTRIES = 2**25  # similarity entries per block and variant (128 MB of float32)


def row_blocks(num_rows: int, num_cols: int, products: Tensor | None = None) -> list[tuple[int, int]]:
    """Consecutive row ranges ``(start, end)`` of a ``[num_rows, num_cols]`` similarity, each
    holding about ``BLOCK_ENTRIES`` dense entries, and also about ``BLOCK_ENTRIES`` partial
    products where ``products`` (``[num_rows]``) says how many a row's sparse product forms
    (its memory: a popular movie's row multiplies every rating of its users)."""
    cost = torch.full((num_rows,), max(num_cols, 1), dtype=torch.long)
    if products is not None:
        cost += products.cpu()
    blocks, start, total = [], 0, 0
    for row, row_cost in enumerate(cost.tolist()):
        if total + row_cost > BLOCK_ENTRIES and row > start:  # a row over budget is a block alone
            blocks.append((start, row))
            start, total = row, 0
        total += row_cost
    return [*blocks, (start, num_rows)] if num_rows else blocks


def binary(index: Tensor, size: tuple[int, int]) -> Tensor:
    """Sparse COO 0/1 matrix of the (row, col) pairs ``[2, E]``, coalesced; a repeated pair
    counts once."""
    coo = torch.sparse_coo_tensor(index, torch.ones(index.size(1), device=index.device), size).coalesce()
    return torch.sparse_coo_tensor(coo.indices(), torch.ones_like(coo.values()), size, is_coalesced=True)


def rows_times(left: Tensor, start: int, end: int, right: Tensor) -> Tensor:
    """Dense ``left[start:end] @ right`` ``[end - start, N]`` of a sparse CSR ``left`` and a sparse
    COO ``right``. The product runs on COO: torch's CSR @ CSR keeps memory after every call on CPU
    (about 60 MB per block at ml-25m size)."""
    crow = left.crow_indices()
    lo, hi = int(crow[start]), int(crow[end])
    rows = torch.sparse_csr_tensor(
        crow[start : end + 1] - lo, left.col_indices()[lo:hi], left.values()[lo:hi], (end - start, left.size(1))
    )
    return torch.sparse.mm(rows.to_sparse_coo(), right).to_dense()


def row_products(left: Tensor, right: Tensor) -> Tensor:
    """``[N]``: the partial products each row of ``left @ right`` (sparse CSR and sparse COO)
    forms (over the row's entries, the lengths of the matching ``right`` rows), which is that
    row's working memory."""
    lengths = torch.bincount(right.indices()[0], minlength=right.size(0))  # [K]
    rows = torch.repeat_interleave(torch.arange(left.size(0), device=left.device), left.crow_indices().diff())
    return torch.zeros(left.size(0), dtype=torch.long, device=left.device).index_add_(
        0, rows, lengths[left.col_indices()]
    )


def top_neighbours(
    similarity: Callable[[int, int], dict[K, Tensor]], blocks: list[tuple[int, int]], num_cols: int, k: int
) -> dict[K, tuple[Tensor, Tensor]]:
    """Each row's ``k`` largest similarities and their columns ``([N, k], [N, k])``, largest
    first, for every similarity matrix that ``similarity(start, end)`` returns a dense block
    ``[end - start, num_cols]`` of, over the row ``blocks`` of :func:`row_blocks` (variants
    sharing one costly product are computed together)."""
    parts: dict[K, list[tuple[Tensor, Tensor]]] = {}
    for start, end in blocks:
        for key, block in similarity(start, end).items():
            top = block.topk(min(k, num_cols), dim=1)
            parts.setdefault(key, []).append((top.values, top.indices))
    return {key: (torch.cat([v for v, _ in p]), torch.cat([i for _, i in p])) for key, p in parts.items()}


class LikedMovies:
    """The training positives ``[2, E]`` by user, each movie numbered among the ``A`` movies with
    positives (``movies``: ``edges[1].unique()``, the rows of a :class:`NeighbourhoodModel`'s
    weight). Built once per training set, it serves every grid point of a model."""

    def __init__(self, edges: Tensor, num_users: int) -> None:
        self.movies, column = edges[1].unique(return_inverse=True)  # [A], [E]
        self.by_user = UserRows(torch.stack([edges[0], column]).cpu(), num_users)


class NeighbourhoodModel(nn.Module):
    r"""Scores :math:`\hat{y}_{ui} = \sum_{j \in \mathcal{I}_u \cap \mathcal{N}_k(i)} s_{ij}`
    over the user's liked movies :math:`\mathcal{I}_u` among the :math:`A` that have training
    positives, from a sparse ``[A, M]`` weight whose column :math:`i` holds the :math:`k` most
    similar liked movies :math:`\mathcal{N}_k(i)` of movie :math:`i` (row :math:`j`: the movies
    :math:`j` is a neighbour of). Subclasses compute the similarity."""

    weight: Tensor  # a buffer (see __init__), set by fit

    def __init__(self, num_users: int, num_movies: int, k: int) -> None:
        super().__init__()
        self.num_users, self.num_movies, self.k = num_users, num_movies, k
        self.register_buffer("weight", torch.zeros(0, 0), persistent=False)  # [A, M], sparse COO
        self.liked: LikedMovies | None = None

    def reset_parameters(self) -> None:
        self.weight, self.liked = torch.zeros(0, 0, device=self.weight.device), None

    def set_neighbours(self, liked: LikedMovies, top: tuple[Tensor, Tensor], rows: Tensor) -> None:
        """Keep the first ``k`` of ``top`` (:func:`top_neighbours` of the ``liked`` movies, as
        columns), row ``r`` of ``top`` becoming movie ``rows[r]``."""
        values, cols = top[0][:, : self.k], top[1][:, : self.k]
        keep = values != 0  # a zero similarity adds nothing to a score
        index = torch.stack([cols[keep], rows[:, None].expand_as(cols)[keep]])
        size = (liked.movies.numel(), self.num_movies)
        self.weight = torch.sparse_coo_tensor(index, values[keep], size).coalesce()
        self.liked = liked

    def scores(self, users: Tensor) -> Tensor:
        if self.liked is None:
            raise RuntimeError(f"{self.__class__.__name__}.scores before fit")
        pairs = self.liked.by_user.rows(users.cpu()).to(self.weight.device)
        liked = binary(pairs, (users.numel(), self.weight.size(0))).to_sparse_csr()  # [B, A]
        out = torch.empty(users.numel(), self.num_movies, device=self.weight.device)
        for start, end in row_blocks(users.numel(), self.num_movies, row_products(liked, self.weight)):
            out[start:end] = rows_times(liked, start, end, self.weight)  # [b, A] @ [A, M]
        return out
