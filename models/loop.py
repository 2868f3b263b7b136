"""One training stage: ``train_epoch()`` takes ``steps`` optimizer steps (each a full-graph forward
and one batch of positives with sampled negatives), ``evaluate()`` scores the validation split,
:func:`fit` early-stops on it (:mod:`models.early_stopping`) and restores the best checkpoint.
Under ``torchrun`` each process takes its shard of every batch (:mod:`models.distributed`)."""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cinegraph.models import distributed
from cinegraph.models.config import TrainConfig
from cinegraph.models.data import PreparedData, bpr_triples
from cinegraph.models.early_stopping import EpochCallback, early_stopping
from cinegraph.models.evaluate import evaluate_classification, evaluate_ranking
from cinegraph.models.fusion import FusedModel
from cinegraph.models.gcn_branch import MultiTaskGCN, ranking_loss
from cinegraph.models.hgt_branch import MultiTaskHGT
from cinegraph.models.registry import Inputs, Model, checkpoint, outputs
from cinegraph.models.scale import hgt_step_bytes, require_memory, return_freed_memory, sample_in_edges
from cinegraph.models.task_weighting import TaskWeighting
from cinegraph.schema import IN_GENRE, RATED


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
    model: Model
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
    random ``cold_dropout`` share of movies, the HGT branch of an ``hgt_cold_dropout`` share
    (DropoutNet): without it the HGT never ranks a movie without user edges in training, and ranks
    new movies little better than popularity. Tasks without weight are skipped."""
    active, losses = stage.weighting.active, {}
    mask = data.genre_masks["train"]
    if "genre" in active and not isinstance(stage.model, MultiTaskGCN):
        inp, mask = hide_genres(inp, data, gen)
    share = {FusedModel: config.cold_dropout, MultiTaskHGT: config.hgt_cold_dropout}.get(type(stage.model), 0.0)
    if share > 0:
        drop = torch.rand(data.num_movies, generator=gen) < share  # [M]
        inp = inp.dropping(drop.to(inp.evidence.device))
    if config.hgt_fanout and not isinstance(stage.model, MultiTaskGCN):
        inp = dataclasses.replace(inp, edge_index=sample_in_edges(inp.edge_index, config.hgt_fanout, gen))
    z_user, z_movie, logits = outputs(stage.model, inp)
    if "rec" in active:
        users, pos, neg = batch  # [B] each
        shared = config.rec_loss == "sampled_softmax"  # [N] negatives shared by the batch and every process
        neg = neg[: config.num_negatives] if shared else distributed.shard(neg)
        users, pos = distributed.shard(users), distributed.shard(pos)
        observed = inp.evidence > 0 if config.negatives == "observed" else None  # [M]
        losses["rec"] = ranking_loss(
            z_user, z_movie, users, pos, neg, config.rec_loss, config.temperature, config.emb_l2, observed
        )
    if "genre" in active:
        labels = data.genre_labels[mask]  # [M_train, G]
        n_pos = labels.sum(0)  # [G]: positives weigh neg/pos, so rare genres reach logit 0
        pos_weight = (labels.size(0) - n_pos) / n_pos.clamp(min=1)
        losses["genre"] = F.binary_cross_entropy_with_logits(logits[mask], labels, pos_weight=pos_weight.clamp(min=1.0))
    if "rating" in active:
        if not isinstance(stage.model, MultiTaskGCN):  # TrainConfig allows rating on the GCN only
            raise ValueError(f"stage {stage.name}: only the GCN branch has a rating head")
        rated = data.graph[RATED.triplet].edge_index  # every input rating, not just positives
        idx = torch.randint(rated.size(1), (config.batch_size,), generator=gen).to(rated.device)
        idx = distributed.shard(idx)
        losses["rating"] = stage.model.rating_loss(z_user, z_movie, rated[:, idx], data.train_weight[idx])
    return losses


def train_epoch(
    stage: Stage, data: PreparedData, inp: Inputs, config: TrainConfig, gen: torch.Generator
) -> dict[str, float]:
    """``stage.steps`` steps on the first batches of one shuffled pass over the positives;
    returns the mean losses (over the processes too, under ``torchrun``)."""
    stage.model.train()
    batches = bpr_triples(data.train_edges, data.num_movies, config.batch_size, gen)
    params = [p for group in stage.optimizer.param_groups for p in group["params"]]
    sums: dict[str, float] = {}
    for step in range(stage.steps):
        losses = task_losses(stage, data, inp, batches[step % len(batches)], config, gen)
        loss = stage.weighting(losses)
        stage.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        distributed.average_gradients(params)
        stage.optimizer.step()
        return_freed_memory()
        for k, v in {"loss": loss, **losses}.items():
            sums[k] = sums.get(k, 0.0) + float(v.detach()) / stage.steps
    return distributed.mean(sums)


@torch.no_grad()
def evaluate(
    model: Model, data: PreparedData, inp: Inputs, split: str, ks: tuple[int, ...] = (10, 20)
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
    is called after every epoch (progress reporting). Without a validation split (a refit on
    every rating) it trains exactly ``stage.epochs`` epochs and keeps the last."""
    if not config.hgt_fanout and not isinstance(stage.model, MultiTaskGCN):
        nodes = {t: data.graph[t].num_nodes for t in data.graph.node_types}
        need = hgt_step_bytes(inp.edge_index, nodes, config.hgt_layers, config.hidden_dim)
        require_memory(f"{stage.name}: a full-graph HGT step", need, config.device, "set hgt_fanout (e.g. 10)")
    gen = torch.Generator().manual_seed(config.seed)
    base_lrs = [g["lr"] for g in stage.optimizer.param_groups]
    states: dict[str, nn.Module | torch.optim.Optimizer] = {
        "model": stage.model,
        "weighting": stage.weighting,
        "optimizer": stage.optimizer,
    }

    def train(epoch: int) -> dict[str, float]:
        for g, lr in zip(stage.optimizer.param_groups, base_lrs, strict=True):
            g["lr"] = lr * lr_factor(epoch - 1, config.warmup_epochs, stage.epochs)
        return train_epoch(stage, data, inp, config, gen)

    def validate() -> dict[str, float]:
        return distributed.on_main(lambda: evaluate(stage.model, data, inp, "valid", config.ks))

    def keep(epoch: int, score: float, metrics: dict[str, float]) -> dict[str, Any]:
        ckpt = checkpoint(stage.name, states, args, config, data, epoch, score, metrics)
        if out_dir is not None:
            torch.save(ckpt, out_dir / f"{stage.name}.pt")
        return ckpt

    ckpt, stage.history = early_stopping(
        stage.name,
        train,
        validate if data.valid_edges.size(1) > 0 else None,  # none: a refit on every rating
        stage.select,
        keep,
        epochs=stage.epochs,
        eval_every=config.eval_every,
        patience=config.patience,
        on_epoch=on_epoch,
    )
    stage.model.load_state_dict(ckpt["model"])
    stage.weighting.load_state_dict(ckpt["weighting"])
    return ckpt
