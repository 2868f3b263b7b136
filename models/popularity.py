"""Most-popular: every user gets the movies with the most training positives."""

from __future__ import annotations

import logging
import time
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict
from torch import Tensor, nn

from cinegraph.models.data import PreparedData
from cinegraph.models.evaluate import RunResult, evaluate_ranking, peak_memory_mb

log = logging.getLogger(__name__)


class PopularityConfig(BaseModel):
    """What popularity counts."""

    model_config = ConfigDict(extra="forbid")

    count: Literal["positives", "ratings"] = "positives"  # training positives, or every RATED
    # edge of the model input (positives and non-positive ratings)


class MostPopular(nn.Module):
    r"""The non-personalised baseline: a movie's score is its interaction count.

    .. math::
        \hat{y}_{ui} = |\{v : (v, i) \in \mathcal{E}_{\text{train}}\}|

    Args:
        num_movies (int): number of movies :math:`M`.

    Shapes:
        - **fit:** edges :math:`(2, E)` (user, movie index)
        - **scores:** users :math:`(B)` -> scores :math:`(B, M)`, the same row for every user
    """

    def __init__(self, num_movies: int) -> None:
        super().__init__()
        self.num_movies = num_movies
        self.register_buffer("counts", torch.zeros(num_movies))

    def reset_parameters(self) -> None:
        self.counts.zero_()

    def fit(self, edges: Tensor) -> MostPopular:
        self.counts = torch.bincount(edges[1], minlength=self.num_movies).float()  # [M]
        return self

    def scores(self, users: Tensor) -> Tensor:
        return self.counts.unsqueeze(0).expand(users.numel(), -1)  # [B, M]

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.num_movies})"


def train_popularity(
    data: PreparedData,
    config: PopularityConfig | None = None,
    seed: int = 0,
    device: torch.device | str = "cpu",
) -> RunResult:
    """Count, then rank; ``seed`` only labels the run (the model is deterministic)."""
    config = config or PopularityConfig()
    data = data.to(device)
    t0 = time.perf_counter()
    edges = data.train_edges if config.count == "positives" else data.seen_edges
    model = MostPopular(data.num_movies).to(device).fit(edges)
    seconds = time.perf_counter() - t0
    return RunResult(
        name="popularity",
        seed=seed,
        metrics=evaluate_ranking(model.scores, data, "test"),
        valid_metrics=evaluate_ranking(model.scores, data, "valid"),
        history=[{"epoch": 1, "loss": 0.0, "seconds": seconds}],
        epoch_seconds=seconds,
        peak_mem_mb=peak_memory_mb(device),
        config=config.model_dump(),
    )
