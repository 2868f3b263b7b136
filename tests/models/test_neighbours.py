"""The blocks a neighbourhood similarity is computed in: they cover every row once and bound both
the dense entries and the sparse product's partial products."""

from __future__ import annotations

from itertools import pairwise

import torch

from cinegraph.models import neighbours
from cinegraph.models.neighbours import binary, row_blocks, row_products, rows_times


def test_row_blocks_cover_the_rows_and_bound_entries_and_products(monkeypatch) -> None:
    monkeypatch.setattr(neighbours, "BLOCK_ENTRIES", 8)
    assert row_blocks(10, 4) == [(0, 2), (2, 4), (4, 6), (6, 8), (8, 10)]
    assert row_blocks(3, 100) == [(0, 1), (1, 2), (2, 3)]  # a row wider than a block is one block
    products = torch.tensor([0, 0, 20, 0, 1, 1, 0])
    blocks = row_blocks(7, 2, products)
    assert blocks[0][0] == 0 and blocks[-1][1] == 7
    assert all(end == start for (_, end), (start, _) in pairwise(blocks))
    assert (2, 3) in blocks  # the heavy row alone
    cost = 2 + products
    assert all(cost[s:e].sum() <= 8 or e - s == 1 for s, e in blocks)


def test_row_products_count_the_partial_products_of_a_sparse_product() -> None:
    g = torch.Generator().manual_seed(0)
    left_index = torch.stack([torch.randint(0, 6, (30,), generator=g), torch.randint(0, 9, (30,), generator=g)])
    right_index = torch.stack([torch.randint(0, 9, (40,), generator=g), torch.randint(0, 5, (40,), generator=g)])
    left, right = binary(left_index, (6, 9)).to_sparse_csr(), binary(right_index, (9, 5))
    dense_left, dense_right = left.to_dense(), right.to_dense()
    want = [int(sum(dense_right[j].sum() for j in torch.nonzero(row).flatten())) for row in dense_left]
    assert row_products(left, right).tolist() == want
    assert torch.equal(rows_times(left, 2, 5, right), dense_left[2:5] @ dense_right)
    assert dense_left.max() == 1.0  # a repeated pair counts once
