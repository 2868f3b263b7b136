"""Ranking and multi-label classification metrics, kept apart from the models.

Ranking metrics take a top-k index matrix ``[B, K]`` (movie indices, best first) and the ground
truth as ``[2, G]`` (row in the batch, movie index) and accumulate batch by batch, reusing PyG's
``torch_geometric.metrics`` link-prediction metrics. A user counts only when it has at least one
ground-truth item in the batch, so slices are taken by filtering the ground truth.
Classification metrics take logits and 0/1 labels of shape ``[N, C]``.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch_geometric.metrics import (
    LinkPredHitRatio,
    LinkPredMetricCollection,
    LinkPredMRR,
    LinkPredNDCG,
    LinkPredPrecision,
    LinkPredRecall,
)

# metric name -> PyG class; names are reported as f"{name}@{k}", e.g. "ndcg@20".
RANKING_METRICS = {
    "recall": LinkPredRecall,
    "ndcg": LinkPredNDCG,
    "precision": LinkPredPrecision,
    "hit_rate": LinkPredHitRatio,
    "mrr": LinkPredMRR,
}
CLASSIFICATION_METRICS = ("micro_f1", "macro_f1", "map")


class RankingMetrics:
    """Recall, NDCG, Precision, HitRate and MRR at each ``k``, accumulated over batches.

    Args:
        ks (tuple[int, ...]): cut-offs (default: ``(10, 20)``).

    Shapes:
        - **update:** ``pred_index_mat`` ``[B, K]`` with ``K >= max(ks)``, ``edge_label_index``
          ``[2, G]`` holding (row in ``pred_index_mat``, movie index).
        - **compute:** ``{"ndcg@20": float, ...}``, each averaged over users with ground truth.
    """

    def __init__(self, ks: tuple[int, ...] = (10, 20)) -> None:
        if not ks or min(ks) <= 0:
            raise ValueError(f"ks={ks} must be non-empty positive cut-offs")
        self.ks = tuple(ks)
        self.collection = LinkPredMetricCollection(
            {f"{name}@{k}": cls(k) for k in self.ks for name, cls in RANKING_METRICS.items()}
        )
        self.num_users = 0

    def update(self, pred_index_mat: Tensor, edge_label_index: Tensor) -> None:
        if pred_index_mat.size(1) < max(self.ks):
            raise ValueError(f"pred_index_mat has {pred_index_mat.size(1)} columns, fewer than k={max(self.ks)}")
        self.collection = self.collection.to(pred_index_mat.device)
        self.collection.update(pred_index_mat, edge_label_index)
        self.num_users += int(edge_label_index[0].unique().numel())

    def compute(self) -> dict[str, float]:
        """The averages; NaN for every metric when no user had ground truth (an empty slice)."""
        if self.num_users == 0:
            return {name: float("nan") for name in self.collection}
        return {name: float(value) for name, value in self.collection.compute().items()}

    def reset(self) -> None:
        self.collection.reset()
        self.num_users = 0

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(ks={self.ks})"


def f1_scores(logits: Tensor, labels: Tensor, threshold: float = 0.0) -> tuple[float, float]:
    """Micro- and macro-F1 of ``logits > threshold`` against 0/1 ``labels`` ``[N, C]``.

    Macro-F1 averages over classes with at least one positive label, so a genre absent from the
    evaluated movies neither helps nor hurts.
    """
    pred = logits > threshold
    true = labels > 0.5
    tp = (pred & true).sum(0).double()  # [C]
    fp = (pred & ~true).sum(0).double()
    fn = (~pred & true).sum(0).double()
    denom = 2 * tp.sum() + fp.sum() + fn.sum()
    micro = float(2 * tp.sum() / denom) if denom > 0 else 0.0
    present = true.sum(0) > 0
    if not present.any():
        return micro, float("nan")
    per_class = 2 * tp / (2 * tp + fp + fn).clamp(min=1)
    return micro, float(per_class[present].mean())


def mean_average_precision(scores: Tensor, labels: Tensor) -> float:
    """Mean over classes (with at least one positive) of the average precision of ranking the N
    examples by score, the mean of the precision at the rank of each positive."""
    true = (labels > 0.5).double()  # [N, C]
    order = scores.argsort(dim=0, descending=True, stable=True)  # [N, C]
    rel = true.gather(0, order)  # relevance in rank order
    ranks = torch.arange(1, rel.size(0) + 1, dtype=torch.double, device=rel.device).view(-1, 1)
    precision_at = rel.cumsum(0) / ranks
    num_pos = rel.sum(0)  # [C]
    present = num_pos > 0
    if not present.any():
        return float("nan")
    ap = (precision_at * rel).sum(0)[present] / num_pos[present]
    return float(ap.mean())


def classification_metrics(logits: Tensor, labels: Tensor) -> dict[str, float]:
    """``micro_f1``, ``macro_f1`` (threshold: logit 0, i.e. probability 0.5) and ``map``."""
    micro, macro = f1_scores(logits, labels)
    return {"micro_f1": micro, "macro_f1": macro, "map": mean_average_precision(logits, labels)}
