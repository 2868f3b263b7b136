"""New movies in the fused model: the content map and the softmax's observed negatives."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import torch

from cinegraph.models.config import TrainConfig
from cinegraph.models.data import DataConfig, prepare_data
from cinegraph.models.evaluate import evaluate_ranking
from cinegraph.models.gcn_branch import ranking_loss
from cinegraph.models.loop import evaluate
from cinegraph.models.registry import Inputs, load_checkpoint
from cinegraph.models.train import finetune, pretrain
from tests.models import tiny

TINY = {
    **tiny.TINY,
    "gcn_epochs": 4,
    "fusion_epochs": 0,
    "content_map_hidden": 32,
    "content_map_steps": 60,
}


def test_observed_negatives_leave_unobserved_movies_out_of_the_softmax() -> None:
    torch.manual_seed(0)
    z_user, z_movie = torch.randn(3, 4), torch.randn(5, 4, requires_grad=True)
    users, pos, neg = torch.tensor([0, 1, 1]), torch.tensor([0, 1, 2]), torch.tensor([3, 4, 2])
    observed = torch.tensor([True, True, True, True, False])  # movie 4: nobody's interaction
    for loss in ("softmax", "sampled_softmax"):
        every = ranking_loss(z_user, z_movie, users, pos, neg, loss, l2=0.0)
        assert torch.allclose(
            every,
            ranking_loss(z_user, z_movie, users, pos, neg, loss, l2=0.0, candidates=torch.ones(5, dtype=torch.bool)),
        )
        z_movie.grad = None
        part = ranking_loss(z_user, z_movie, users, pos, neg, loss, l2=0.0, candidates=observed)
        part.backward()
        assert part < every  # one negative fewer
        assert torch.all(z_movie.grad[4] == 0) and z_movie.grad[3].abs().sum() > 0


def test_content_map_ranks_new_movies_and_survives_reload(tiny_tables: dict[str, pa.Table], tmp_path: Path) -> None:
    """Under the cold-items protocol the fused start ranks the new movies through their mapped
    content (the fixture's taste groups share crew and genres) well above chance, also among
    every movie, and a reload keeps the fitted map."""
    data = prepare_data(tiny_tables, DataConfig(protocol="cold-items", cold_item_frac=0.3), 0)
    config = TrainConfig(**TINY)
    gcn, _ = pretrain("gcn", data, config)
    hgt, _ = pretrain("hgt", data, config)
    model, result = finetune(gcn, hgt, data, config, tmp_path)
    g = torch.Generator().manual_seed(0)
    rand = evaluate_ranking(lambda u: torch.rand(u.numel(), data.num_movies, generator=g), data, "valid")
    assert result.valid_metrics["recall@10"] > rand["recall@10"] + 0.2
    assert result.valid_metrics["ndcg@20_all_movies"] > 0  # new movies reach the ranking of every movie
    cold = data.cold_items
    assert model.content[cold].abs().sum() > 0 and model.content_map is not None
    reloaded, _ = load_checkpoint(tmp_path / "fused.pt", data)
    inp = Inputs.of(data, reloaded)
    assert evaluate(reloaded, data, inp, "valid") == result.valid_metrics
