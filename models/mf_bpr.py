"""Matrix factorisation trained with BPR: the classic implicit-feedback baseline."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn

from cinegraph.models.data import PreparedData, bpr_triples
from cinegraph.models.evaluate import RunResult, train_with_early_stopping

if TYPE_CHECKING:
    from cinegraph.models.lightgcn import LightGCNRecommender

log = logging.getLogger(__name__)


class BPRConfig(BaseModel):
    """Training of an embedding recommender with the BPR loss; sized for ml-latest-small on CPU."""

    model_config = ConfigDict(extra="forbid")

    embedding_dim: int = Field(64, gt=0)  # D, per user and per movie
    lr: float = Field(0.01, gt=0)  # Adam learning rate
    lambda_reg: float = Field(1e-2, ge=0)  # L2 on the embeddings of each batch
    batch_size: int = Field(4096, gt=0)  # (user, pos, neg) triples per step
    max_epochs: int = Field(200, gt=0)  # one epoch = one pass over the training positives
    eval_every: int = Field(2, gt=0)  # epochs between validation rankings
    patience: int = Field(5, gt=0)  # evaluations without a better valid ndcg@20 before stopping


class MFBPR(nn.Module):
    r"""Matrix factorisation with Bayesian Personalized Ranking, from `"BPR: Bayesian
    Personalized Ranking from Implicit Feedback" <https://arxiv.org/abs/1205.2618>`_.

    .. math::
        \hat{y}_{ui} = \mathbf{p}_u^\top \mathbf{q}_i, \qquad
        \mathcal{L} = -\frac{1}{|B|}\sum_{(u,i,j) \in B} \ln \sigma(\hat{y}_{ui} - \hat{y}_{uj})
        + \lambda \frac{\|\mathbf{p}_u\|^2 + \|\mathbf{q}_i\|^2 + \|\mathbf{q}_j\|^2}{|B|}

    Args:
        num_users (int): number of users.
        num_movies (int): number of movies.
        embedding_dim (int): size :math:`D` of each embedding.

    Shapes:
        - **forward:** users :math:`(B)`, movies :math:`(B)` -> scores :math:`(B)`
        - **scores:** users :math:`(B)` -> scores over all movies :math:`(B, M)`
    """

    def __init__(self, num_users: int, num_movies: int, embedding_dim: int) -> None:
        super().__init__()
        self.num_users, self.num_movies, self.embedding_dim = num_users, num_movies, embedding_dim
        self.user = nn.Embedding(num_users, embedding_dim)
        self.movie = nn.Embedding(num_movies, embedding_dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.user.weight, std=0.1)
        nn.init.normal_(self.movie.weight, std=0.1)

    def forward(self, users: Tensor, movies: Tensor) -> Tensor:
        return (self.user(users) * self.movie(movies)).sum(-1)  # [B]

    def scores(self, users: Tensor) -> Tensor:
        return self.user(users) @ self.movie.weight.t()  # [B, M]

    def recommendation_loss(self, users: Tensor, pos: Tensor, neg: Tensor, lambda_reg: float) -> Tensor:
        """Mean BPR loss of the triples plus L2 on the embeddings they touch."""
        p, qi, qj = self.user(users), self.movie(pos), self.movie(neg)  # [B, D] each
        bpr = -nn.functional.logsigmoid((p * qi).sum(-1) - (p * qj).sum(-1)).mean()
        reg = (p.pow(2).sum() + qi.pow(2).sum() + qj.pow(2).sum()) / users.numel()
        return bpr + lambda_reg * reg

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.num_users}, {self.num_movies}, {self.embedding_dim})"


def train_mf_bpr(
    data: PreparedData,
    config: BPRConfig | None = None,
    seed: int = 0,
    device: torch.device | str = "cpu",
) -> RunResult:
    """Train MF-BPR on the training positives; early stopping on validation ndcg@20."""
    config = config or BPRConfig()
    torch.manual_seed(seed)
    model = MFBPR(data.num_users, data.num_movies, config.embedding_dim)
    return fit_bpr(model, data, config, name="mf_bpr", seed=seed, device=device)


def fit_bpr(
    model: MFBPR | LightGCNRecommender,
    data: PreparedData,
    config: BPRConfig,
    *,
    name: str,
    seed: int,
    device: torch.device | str,
) -> RunResult:
    """Adam on sampled BPR triples of the training positives, early stopping on validation
    ndcg@20; shared by every embedding baseline (``model`` has ``recommendation_loss`` and
    ``scores``)."""
    generator = torch.Generator().manual_seed(seed)
    data = data.to(device)
    model = model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)

    def train_epoch() -> float:
        total, count = 0.0, 0
        for users, pos, neg in bpr_triples(data.train_edges, data.num_movies, config.batch_size, generator):
            optimizer.zero_grad()
            loss = model.recommendation_loss(users, pos, neg, config.lambda_reg)
            loss.backward()
            optimizer.step()
            total, count = total + loss.item() * users.numel(), count + users.numel()
        return total / max(count, 1)

    return train_with_early_stopping(
        model,
        train_epoch,
        model.scores,
        data,
        name=name,
        seed=seed,
        device=device,
        max_epochs=config.max_epochs,
        patience=config.patience,
        eval_every=config.eval_every,
        config=config.model_dump(),
    )
