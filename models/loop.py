"""One training stage: ``train_epoch()`` takes ``steps`` optimizer steps (each a full-graph forward
and one batch of positives with sampled negatives), ``evaluate()`` scores the validation split,
:func:`fit` early-stops on it and restores the best checkpoint."""

from __future__ import annotations

import dataclasses
import logging
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cinegraph.models.config import TrainConfig
from cinegraph.models.data import PreparedData, bpr_triples
from cinegraph.models.evaluate import evaluate_classification, evaluate_ranking
from cinegraph.models.fusion import FusedModel
from cinegraph.models.gcn_branch import MultiTaskGCN, ranking_loss
from cinegraph.models.registry import Inputs, checkpoint, outputs
from cinegraph.models.scale import hgt_step_bytes, require_memory, sample_in_edges
from cinegraph.models.task_weighting import TaskWeighting
from cinegraph.schema import IN_GENRE, RATED

log = logging.getLogger(__name__)


EpochCallback = Callable[[str, dict[str, float]], None]  # (stage name, history row of the epoch)


def set_seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def lr_factor(epoch: int, warmup: int, total: int) -> float:
    """Linear warm-up over ``warmup`` epochs, then cosine decay to 10% at ``total``."""
    if epoch < warmup:
        return (epoch + 1) / (warmup + 1)
    progress = (epoch - warmup) / max(total - warmup, 1)
    return 0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))


@dataclass
class Stage:
    name: str  # "gcn", "hgt" or "fused": log prefix and checkpoint name
    model: nn.Module
    weighting: TaskWeighting
    optimizer: torch.optim.Optimizer
    epochs: int
    steps: int
    select: Callable[[dict[str, float]], float]  # validation metrics -> score to maximise
    history: list[dict[str, float]] = field(default_factory=list)


def hide_genres(inp: Inputs, data: PreparedData, gen: torch.Generator) -> tuple[Inputs, Tensor]:
    """Inputs without the genre edges of a random half of the training movies, and the mask of
    those movies. Their genre loss is then learnt as validation and test movies are seen (no
    genre edge of their own) instead of by copying an input edge to the output."""
    train = data.genre_masks["train"]
    hide = train & (torch.rand(data.num_movies, generator=gen) < 0.5).to(train.device)  # [M]
    edges = dict(inp.edge_index)
    for triplet, movie_row in ((IN_GENRE.triplet, 0), (IN_GENRE.reverse_triplet, 1)):
        if triplet in edges:
            edges[triplet] = edges[triplet][:, ~hide[edges[triplet][movie_row]]]
    return Inputs(inp.adj, inp.x, edges, inp.evidence, inp.drop), hide


def task_losses(
    stage: Stage,
    data: PreparedData,
    inp: Inputs,
    batch: tuple[Tensor, Tensor, Tensor],
    config: TrainConfig,
    gen: torch.Generator,
) -> dict[str, Tensor]:
    """The weighted tasks' losses: ranking on a batch of positives with their sampled negatives,
    rating regression on sampled ratings, genres on the training movies (on a hidden half of
    them for models that read genre edges). The fused model also hides the interactions of a
    random ``cold_dropout`` share of movies (DropoutNet). Tasks without weight are skipped."""
    active, losses = stage.weighting.active, {}
    mask = data.genre_masks["train"]
    if "genre" in active and not isinstance(stage.model, MultiTaskGCN):
        inp, mask = hide_genres(inp, data, gen)
    if isinstance(stage.model, FusedModel) and config.cold_dropout > 0:
        drop = torch.rand(data.num_movies, generator=gen) < config.cold_dropout  # [M]
        inp = inp.dropping(drop.to(inp.evidence.device))
    if config.hgt_fanout and not isinstance(stage.model, MultiTaskGCN):
        inp = dataclasses.replace(inp, edge_index=sample_in_edges(inp.edge_index, config.hgt_fanout, gen))
    z_user, z_movie, logits = outputs(stage.model, inp)
    if "rec" in active:
        users, pos, neg = batch  # [B] each
        if config.rec_loss == "sampled_softmax":
            neg = neg[: config.num_negatives]  # [N], shared by the batch
        losses["rec"] = ranking_loss(
            z_user, z_movie, users, pos, neg, config.rec_loss, config.temperature, config.emb_l2
        )
    if "genre" in active:
        labels = data.genre_labels[mask]  # [M_train, G]
        n_pos = labels.sum(0)  # [G]: positives weigh neg/pos, so rare genres reach logit 0
        pos_weight = (labels.size(0) - n_pos) / n_pos.clamp(min=1)
        losses["genre"] = F.binary_cross_entropy_with_logits(
            logits[mask], labels, pos_weight=pos_weight.clamp(min=1.0)
        )
    if "rating" in active:
        rated = data.graph[RATED.triplet].edge_index  # every input rating, not just positives
        idx = torch.randint(rated.size(1), (config.batch_size,), generator=gen).to(rated.device)
        losses["rating"] = stage.model.rating_loss(
            z_user, z_movie, rated[:, idx], data.train_weight[idx]
        )
    return losses


def train_epoch(
    stage: Stage, data: PreparedData, inp: Inputs, config: TrainConfig, gen: torch.Generator
) -> dict[str, float]:
    """``stage.steps`` steps on the first batches of one shuffled pass over the positives."""
    stage.model.train()
    batches = bpr_triples(data.train_edges, data.num_movies, config.batch_size, gen)
    sums: dict[str, float] = {}
    for step in range(stage.steps):
        losses = task_losses(stage, data, inp, batches[step % len(batches)], config, gen)
        loss = stage.weighting(losses)
        stage.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        stage.optimizer.step()
        for k, v in {"loss": loss, **losses}.items():
            sums[k] = sums.get(k, 0.0) + float(v.detach()) / stage.steps
    return sums


@torch.no_grad()
def evaluate(
    model: nn.Module, data: PreparedData, inp: Inputs, split: str, ks: tuple[int, ...] = (10, 20)
) -> dict[str, float]:
    """Ranking and genre metrics of ``split`` from one forward pass."""
    model.eval()
    z_user, z_movie, logits = outputs(model, inp)
    metrics = evaluate_ranking(lambda u: z_user[u] @ z_movie.t(), data, split, ks)
    return {**metrics, **evaluate_classification(logits, data, split)}


def fit(
    stage: Stage,
    args: dict,
    data: PreparedData,
    inp: Inputs,
    config: TrainConfig,
    out_dir: Path | None,
    on_epoch: EpochCallback | None = None,
) -> dict[str, Any]:
    """Train ``stage`` with early stopping on its validation score; restore and return the best
    checkpoint (also written to ``out_dir/<name>.pt``). ``on_epoch(stage name, history row)``
    is called after every epoch (progress reporting)."""
    if not config.hgt_fanout and not isinstance(stage.model, MultiTaskGCN):
        need = hgt_step_bytes(inp.edge_index, config.hgt_layers, config.hidden_dim)
        require_memory(f"{stage.name}: a full-graph HGT step", need, config.device, "set hgt_fanout (e.g. 10)")
    gen = torch.Generator().manual_seed(config.seed)
    base_lrs = [g["lr"] for g in stage.optimizer.param_groups]
    states = {"model": stage.model, "weighting": stage.weighting, "optimizer": stage.optimizer}

    def save(epoch: int, best: float, metrics: dict[str, float]) -> dict[str, Any]:
        return checkpoint(stage.name, states, args, config, data, epoch, best, metrics)

    val = evaluate(stage.model, data, inp, "valid", config.ks)
    best = stage.select(val)
    ckpt, bad = save(0, best, val), 0
    for epoch in range(1, stage.epochs + 1):
        for g, lr in zip(stage.optimizer.param_groups, base_lrs, strict=True):
            g["lr"] = lr * lr_factor(epoch - 1, config.warmup_epochs, stage.epochs)
        t0 = time.perf_counter()
        row: dict[str, float] = {"epoch": epoch, **train_epoch(stage, data, inp, config, gen)}
        row["seconds"] = time.perf_counter() - t0
        if epoch % config.eval_every == 0 or epoch == stage.epochs:
            val = evaluate(stage.model, data, inp, "valid", config.ks)
            score = stage.select(val)
            row.update({"valid_score": score, **{f"valid_{k}": v for k, v in val.items()}})
            if score > best:
                best, bad, ckpt = score, 0, save(epoch, score, val)
                if out_dir is not None:
                    torch.save(ckpt, out_dir / f"{stage.name}.pt")
            else:
                bad += 1
        stage.history.append(row)
        parts = " ".join(f"{k} {row[k]:.4f}" for k in ("rec", "genre", "rating") if k in row)
        valid = f" | valid {row['valid_score']:.4f} best {best:.4f}" if "valid_score" in row else ""
        log.log(logging.INFO if valid else logging.DEBUG, "%s epoch %3d | loss %.4f (%s)%s | %.2fs",
                stage.name, epoch, row["loss"], parts, valid, row["seconds"])  # fmt: skip
        if on_epoch is not None:
            on_epoch(stage.name, row)
        if bad >= config.patience:
            break
    if out_dir is not None and ckpt["epoch"] == 0:
        torch.save(ckpt, out_dir / f"{stage.name}.pt")
    stage.model.load_state_dict(ckpt["model"])
    stage.weighting.load_state_dict(ckpt["weighting"])
    return ckpt
