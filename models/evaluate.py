"""The evaluation harness every model goes through, and the record of one training run.

Ranking is full: each user's scores over all movies, minus the movies the user has a RATED edge
for in the model input (``data.seen_edges``: training positives and non-positive ratings; they
can never be held-out positives), top-K taken per user. Metrics for K in ``ks`` are reported for
all users and for three slices, by suffix:

* ``_cold_users``: users with at most ``COLD_USER_MAX`` training positives;
* ``_long_tail``: held-out positives whose movie has at most ``LONG_TAIL_MAX`` training positives;
* ``_cold_items``: held-out positives whose movie has no training positive at all.

A slice keeps the full ranking and filters the ground truth; users without ground truth in the
slice are left out of its averages (NaN when the slice is empty).

Under the cold-items protocol (``data.cold_items`` marks the new movies) the headline metrics
rank the new movies only against each other and count only their held-out positives (the standard
cold-start evaluation); ``_cold_users`` is the same for cold users, and ``_all_movies`` ranks every
movie (the hybrid view) with the new movies' positives as ground truth.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from cinegraph.etl.resources import peak_rss
from cinegraph.models.data import PreparedData
from cinegraph.models.early_stopping import early_stopping
from cinegraph.models.metrics import RankingMetrics, classification_metrics

log = logging.getLogger(__name__)

COLD_USER_MAX = 5  # users with <= this many training positives are cold
LONG_TAIL_MAX = 5  # movies with <= this many training positives are long-tail
SLICES = ("", "_cold_users", "_long_tail", "_cold_items")
COLD_SLICES = ("", "_cold_users", "_all_movies")  # under the cold-items protocol
MONITOR = "ndcg@20"  # validation metric for early stopping and model selection


@dataclass
class RunResult:
    """One model trained with one seed: test and validation metrics, curve, cost."""

    name: str
    seed: int
    metrics: dict[str, float]  # test split
    valid_metrics: dict[str, float]  # validation split, at the selected epoch
    history: list[dict[str, float]] = field(default_factory=list)  # one dict per epoch
    epoch_seconds: float = 0.0  # mean wall seconds per training epoch
    peak_mem_mb: float = 0.0  # see peak_memory_mb
    config: dict[str, Any] = field(default_factory=dict)  # the model's config, as saved

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def peak_memory_mb(device: torch.device | str) -> float:
    """Peak memory in MiB: CUDA allocator peak on a GPU, else the process's RSS high-water mark
    (since :func:`models.benchmark.peak_memory` last reset it)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return peak_rss() / 2**20


def _slice_masks(data: PreparedData, truth: Tensor) -> dict[str, tuple[bool, Tensor]]:
    """For each slice: whether it ranks the new movies only, and which ground-truth pairs
    ``[2, G]`` it keeps."""
    train = data.train_edges.cpu()
    user_count = torch.bincount(train[0], minlength=data.num_users)
    item_count = torch.bincount(train[1], minlength=data.num_movies)
    cold_user = user_count[truth[0]] <= COLD_USER_MAX
    if data.config.protocol == "cold-items":
        new = data.cold_items.cpu()[truth[1]]
        return {"": (True, new), "_cold_users": (True, new & cold_user), "_all_movies": (False, new)}
    return {
        "": (False, torch.ones(truth.size(1), dtype=torch.bool)),
        "_cold_users": (False, cold_user),
        "_long_tail": (False, item_count[truth[1]] <= LONG_TAIL_MAX),
        "_cold_items": (False, item_count[truth[1]] == 0),
    }


class UserRows:
    """Pairs ``[2, E]`` (user, movie) grouped by user (CSR), so a batch of users finds its own
    pairs in time proportional to their number, not to ``E``: a full-size ranking scans 25M seen
    pairs once instead of once per batch."""

    def __init__(self, pairs: Tensor, num_users: int) -> None:
        order = pairs[0].argsort(stable=True)
        self.movies = pairs[1, order]  # [E], grouped by user
        self.ptr = torch.zeros(num_users + 1, dtype=torch.long)
        self.ptr[1:] = torch.bincount(pairs[0], minlength=num_users).cumsum(0)

    def rows(self, users: Tensor, keep: Tensor | None = None) -> Tensor:
        """``[2, P]``: (row of the user in ``users``, movie) of every pair of ``users``, or of
        those where ``keep`` (aligned with the grouped pairs) holds."""
        start, count = self.ptr[users], self.ptr[users + 1] - self.ptr[users]  # [B], [B]
        row = torch.repeat_interleave(torch.arange(users.numel()), count)  # [P]
        first = torch.repeat_interleave(start - count.cumsum(0) + count, count)  # [P]
        at = first + torch.arange(row.numel())  # [P] positions in the grouped pairs
        if keep is not None:
            row, at = row[keep[at]], at[keep[at]]
        return torch.stack([row, self.movies[at]])


def validation_users(users: Tensor, sample: int | None, seed: int) -> Tensor:
    """``users`` (sorted), or a seeded sample of ``sample`` of them: the same users at every
    validation of a run, so early stopping compares like with like while a full-size epoch does
    not wait for a ranking of every user (``DataConfig.valid_users``)."""
    if sample is None or users.numel() <= sample:
        return users
    gen = torch.Generator().manual_seed(seed)
    return users[torch.randperm(users.numel(), generator=gen)[:sample]].sort().values


@torch.no_grad()
def evaluate_ranking(
    score_fn: Callable[[Tensor], Tensor],
    data: PreparedData,
    split: str,
    ks: tuple[int, ...] = (10, 20),
    batch_size: int = 1024,
    slices: bool = True,
) -> dict[str, float]:
    """Full-ranking metrics of ``split`` ("valid" or "test"), e.g. ``ndcg@20``,
    ``recall@10_cold_items``.

    Users are scored ``batch_size`` at a time and only each batch's top-k leaves the device, so
    memory is ``batch_size x num_movies`` scores whatever the number of users (162k users x 59k
    movies at full size would be 38 GB at once).

    Args:
        score_fn: user indices ``[B]`` (on the device of ``data``) -> scores
            ``[B, num_movies]`` (higher is better).
        data: the prepared data the model was trained on.
        split: which held-out positives are the ground truth; "valid" ranks the sample of
            ``data.config.valid_users`` users when it is set, "test" every user.
        ks: cut-offs (default: ``(10, 20)``).
        batch_size: users scored at once (default: ``1024``).
        slices: also report the slices (default: ``True``; training-time validation skips
            them).
    """
    device = data.train_edges.device  # where the model and its data live
    truth = data.edges(split).cpu()  # [2, G]
    slice_masks = _slice_masks(data, truth)
    if not slices:
        slice_masks = {"": slice_masks[""]}
    new_only = ~data.cold_items.to(device)  # [M] movies out of a new-items ranking
    seen = UserRows(data.seen_edges.cpu(), data.num_users)
    held = UserRows(truth, data.num_users)
    order = truth[0].argsort(stable=True)  # the grouping of ``held``
    keeps = {name: mask[order] for name, (_, mask) in slice_masks.items()}
    users = truth[0, slice_masks[""][1]].unique()
    if split == "valid":
        users = validation_users(users, data.config.valid_users, data.seed)
    meters = {name: RankingMetrics(ks) for name in slice_masks}
    k = min(max(ks), data.num_movies)
    for batch in users.split(batch_size):
        B = batch.numel()
        scores = score_fn(batch.to(device)).to(torch.float32, copy=True)  # [B, num_movies]
        if scores.shape != (B, data.num_movies):
            raise ValueError(f"score_fn returned {tuple(scores.shape)}, want {(B, data.num_movies)}")
        rows, movies = seen.rows(batch).to(scores.device)
        scores[rows, movies] = float("-inf")
        tops = {}
        for new in {new for new, _ in slice_masks.values()}:
            masked = scores.masked_fill(new_only, float("-inf")) if new else scores
            top = masked.topk(k, dim=1).indices.cpu()  # [B, k]
            if k < max(ks):  # fewer movies than the cut-off: pad with an index no truth holds
                top = torch.cat([top, top.new_full((B, max(ks) - k), data.num_movies)], dim=1)
            tops[new] = top
        for name, meter in meters.items():
            meter.update(tops[slice_masks[name][0]], held.rows(batch, keeps[name]))
    out = {}
    for name, meter in meters.items():
        out.update({f"{metric}{name}": value for metric, value in meter.compute().items()})
        log.debug("%s slice %r: %d users", split, name, meter.num_users)
    return out


@torch.no_grad()
def evaluate_classification(logits: Tensor, data: PreparedData, split: str) -> dict[str, float]:
    """``micro_f1``, ``macro_f1`` and ``map`` of genre logits ``[num_movies, num_genres]`` on the
    movies of ``split``."""
    mask = data.genre_masks[split].to(logits.device)
    return classification_metrics(logits[mask].float().cpu(), data.genre_labels[mask.cpu()].cpu())


def train_with_early_stopping(
    model: torch.nn.Module,
    train_epoch: Callable[[], float],
    score_fn: Callable[[Tensor], Tensor],
    data: PreparedData,
    *,
    name: str,
    seed: int,
    device: torch.device | str,
    max_epochs: int,
    patience: int,
    eval_every: int = 1,
    config: dict[str, Any] | None = None,
) -> RunResult:
    """Run ``train_epoch`` (returns the mean loss) under :func:`early_stopping` on validation
    ``ndcg@20``, restore the best weights, then evaluate valid and test."""

    def train(_epoch: int) -> dict[str, float]:
        model.train()
        return {"loss": float(train_epoch())}

    def validate() -> dict[str, float]:
        model.eval()
        return evaluate_ranking(score_fn, data, "valid", ks=(20,), slices=False)

    def keep(_epoch: int, _score: float, _metrics: dict[str, float]) -> dict[str, Any]:
        return copy.deepcopy(model.state_dict())

    best_state, history = early_stopping(
        name, train, validate, lambda m: m[MONITOR], keep, epochs=max_epochs, eval_every=eval_every, patience=patience
    )
    model.load_state_dict(best_state)
    model.eval()
    return _chosen(name, seed, score_fn, data, history, device, config or {})


def select_on_validation(
    fit: Callable[[dict[str, Any]], Callable[[Tensor], Tensor]],
    grid: list[dict[str, Any]],
    data: PreparedData,
    *,
    name: str,
    seed: int,
    device: torch.device | str,
    config: dict[str, Any],
) -> RunResult:
    """Fit a closed-form model once per ``grid`` point (``fit(params)`` returns its score
    function), keep the point with the best validation ``ndcg@20``, evaluate it on valid and test.
    ``history`` holds one row per grid point; ``config`` records the grid and the choice."""
    if not grid:
        raise ValueError(f"{name}: empty hyperparameter grid")
    best, best_fn, best_params = float("-inf"), None, grid[0]
    history: list[dict[str, float]] = []
    for step, params in enumerate(grid, start=1):
        t0 = time.perf_counter()
        score_fn = fit(params)
        seconds = time.perf_counter() - t0
        score = evaluate_ranking(score_fn, data, "valid", ks=(20,), slices=False)[MONITOR]
        history.append({"epoch": step, "loss": 0.0, "seconds": seconds, f"valid_{MONITOR}": score})
        log.info("%s %s: valid %s %.4f (%.1fs)", name, params, MONITOR, score, seconds)
        if score > best or best_fn is None:
            best, best_fn, best_params = score, score_fn, params
    assert best_fn is not None  # the grid is not empty
    return _chosen(name, seed, best_fn, data, history, device, {**config, "selected": best_params})


def _chosen(
    name: str,
    seed: int,
    score_fn: Callable[[Tensor], Tensor],
    data: PreparedData,
    history: list[dict[str, float]],
    device: torch.device | str,
    config: dict[str, Any],
) -> RunResult:
    """The selected model's test and validation metrics (every slice), with its history and cost."""
    return RunResult(
        name=name,
        seed=seed,
        metrics=evaluate_ranking(score_fn, data, "test"),
        valid_metrics=evaluate_ranking(score_fn, data, "valid"),
        history=history,
        epoch_seconds=sum(row["seconds"] for row in history) / max(len(history), 1),
        peak_mem_mb=peak_memory_mb(device),
        config=config,
    )
