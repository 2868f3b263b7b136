"""Pretrain both branches with early stopping, fuse them, fine-tune end to end.

Each stage is one loop: ``train_epoch()`` takes ``steps`` optimizer steps (each a full-graph
forward and a BPR batch of sampled negatives), ``evaluate()`` scores the validation split, the best
state is checkpointed (model args, config, optimizer, epoch, best score, split) and restored at the
end. ``train(snapshot_dir, out_dir, config)`` runs the whole method for one fused model.
"""

from __future__ import annotations

import copy
import json
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

from graph_store.errors import CinegraphError
from graph_store.schema import IN_GENRE, MOVIE, RATED, USER
from models.config import TrainConfig
from models.data import PreparedData, prepare_data
from models.evaluate import RunResult, evaluate_classification, evaluate_ranking, peak_memory_mb
from models.fusion import FusedModel
from models.gcn_branch import MultiTaskGCN, bpr_loss, normalized_adjacency
from models.hgt_branch import MultiTaskHGT
from models.task_weighting import TaskWeighting

log = logging.getLogger(__name__)

Outputs = tuple[Tensor, Tensor, Tensor]  # z_user [U, D], z_movie [M, D], genre logits [M, G]
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


# --- models and their forward passes ---------------------------------------------------------


def model_args(kind: str, data: PreparedData, config: TrainConfig) -> dict[str, Any]:
    """Constructor arguments of ``kind`` ("gcn", "hgt", "fused"); saved in every checkpoint."""
    g = data.graph
    if kind == "gcn":
        return dict(
            kind="gcn", num_users=data.num_users, num_movies=data.num_movies,
            num_genres=len(data.genre_names), hidden_dim=config.hidden_dim,
            num_layers=config.gcn_layers, user_in_dim=g[USER.label].x.size(1),
            movie_in_dim=g[MOVIE.label].x.size(1), dropout=config.dropout,
        )
    if kind == "hgt":
        edge_types = [t for t in g.edge_types if g[t].num_edges > 0]  # empty relations add nothing
        return dict(
            kind="hgt", metadata=(list(g.node_types), [list(t) for t in edge_types]),
            num_nodes={t: g[t].num_nodes for t in g.node_types},
            in_dims={t: g[t].x.size(1) for t in g.node_types}, num_genres=len(data.genre_names),
            user_type=USER.label, movie_type=MOVIE.label, hidden_dim=config.hidden_dim,
            num_layers=config.hgt_layers, heads=config.hgt_heads, dropout=config.dropout,
        )
    if kind == "fused":
        return dict(
            kind="fused", gcn=model_args("gcn", data, config), hgt=model_args("hgt", data, config),
            heads=config.fusion_heads, dropout=config.dropout, mode=config.fusion,
        )
    raise ValueError(f"kind={kind!r} is not 'gcn', 'hgt' or 'fused'")


def build_model(args: dict[str, Any]) -> nn.Module:
    """The model of saved constructor ``args`` (see :func:`model_args`)."""
    args = dict(args)
    kind = args.pop("kind")
    if kind == "gcn":
        return MultiTaskGCN(**args)
    if kind == "hgt":
        node_types, edge_types = args.pop("metadata")
        return MultiTaskHGT(metadata=(node_types, [tuple(e) for e in edge_types]), **args)
    return FusedModel(build_model(args.pop("gcn")), build_model(args.pop("hgt")), **args)


@dataclass
class Inputs:
    """What the forward passes read, built once per data and device."""

    adj: Tensor  # normalised user–movie sparse adjacency of the GCN
    x: dict[str, Tensor]  # node features per type
    edge_index: dict[tuple[str, str, str], Tensor]  # every relation of the graph

    @classmethod
    def of(cls, data: PreparedData) -> Inputs:
        rated = data.graph[RATED.triplet]
        adj = normalized_adjacency(
            rated.edge_index, data.train_weight, data.num_users, data.num_movies
        )
        edges = {t: e for t, e in data.graph.edge_index_dict.items() if e.size(1) > 0}
        return cls(adj, dict(data.graph.x_dict), edges)


def outputs(model: nn.Module, inp: Inputs) -> Outputs:
    """User and movie embeddings and genre logits of any of the three models."""
    if isinstance(model, MultiTaskGCN):
        z_user, z_movie = model.embed(inp.adj, inp.x.get(USER.label), inp.x.get(MOVIE.label))
        return z_user, z_movie, model.genre_logits(z_movie)
    if isinstance(model, MultiTaskHGT):
        z_user, z_movie = model.embed(inp.x, inp.edge_index)
        return z_user, z_movie, model.genre_logits(z_movie)
    z_user, z_movie, f_movie = model(inp.adj, inp.x, inp.edge_index)
    return z_user, z_movie, model.genre_logits(f_movie)


# --- one stage: train_epoch / evaluate / early stopping -----------------------------------------


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
    return Inputs(inp.adj, inp.x, edges), hide


def task_losses(
    stage: Stage, data: PreparedData, inp: Inputs, config: TrainConfig, gen: torch.Generator
) -> dict[str, Tensor]:
    """The weighted tasks' losses: BPR and rating regression on sampled batches, genres on the
    training movies (on a hidden half of them for models that read genre edges). Tasks without
    weight are not computed."""
    active, losses = stage.weighting.active, {}
    mask = data.genre_masks["train"]
    if "genre" in active and not isinstance(stage.model, MultiTaskGCN):
        inp, mask = hide_genres(inp, data, gen)
    z_user, z_movie, logits = outputs(stage.model, inp)
    if "rec" in active:
        idx = torch.randint(data.train_edges.size(1), (config.batch_size,), generator=gen)
        neg = torch.randint(data.num_movies, (config.batch_size,), generator=gen)
        users, pos = data.train_edges[:, idx.to(data.train_edges.device)]  # [B], [B]
        losses["rec"] = bpr_loss(z_user, z_movie, users, pos, neg.to(users.device), config.bpr_l2)
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
    stage.model.train()
    sums: dict[str, float] = {}
    for _ in range(stage.steps):
        losses = task_losses(stage, data, inp, config, gen)
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


def checkpoint(
    stage: Stage,
    args: dict,
    config: TrainConfig,
    data: PreparedData,
    epoch: int,
    best: float,
    metrics: dict[str, float],
) -> dict[str, Any]:
    return {
        "name": stage.name,
        "model_args": args,
        "config": config.model_dump(mode="json"),
        "model": copy.deepcopy(stage.model.state_dict()),
        "weighting": copy.deepcopy(stage.weighting.state_dict()),
        "optimizer": copy.deepcopy(stage.optimizer.state_dict()),
        "epoch": epoch,
        "best_score": best,
        "valid_metrics": metrics,
        "split": {
            "seed": data.seed,
            "data_config": data.config.model_dump(mode="json"),
            "train_edges": data.train_edges.cpu(),
            "valid_edges": data.valid_edges.cpu(),
            "test_edges": data.test_edges.cpu(),
            "genre_masks": {k: v.cpu() for k, v in data.genre_masks.items()},
        },
    }


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
    gen = torch.Generator().manual_seed(config.seed)
    base_lrs = [g["lr"] for g in stage.optimizer.param_groups]
    val = evaluate(stage.model, data, inp, "valid", config.ks)
    best = stage.select(val)
    ckpt, bad = checkpoint(stage, args, config, data, 0, best, val), 0
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
                best, bad = score, 0
                ckpt = checkpoint(stage, args, config, data, epoch, best, val)
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


# --- the method: pretrain, fuse, fine-tune ----------------------------------------------------


def _result(name: str, stage: Stage, ckpt: dict, data: PreparedData, inp: Inputs,
            config: TrainConfig) -> RunResult:
    seconds = [row["seconds"] for row in stage.history]
    return RunResult(
        name=name,
        seed=config.seed,
        metrics=evaluate(stage.model, data, inp, "test", config.ks),
        valid_metrics=ckpt["valid_metrics"],
        history=stage.history,
        epoch_seconds=sum(seconds) / max(len(seconds), 1),
        peak_mem_mb=peak_memory_mb(config.device),
        config=config.model_dump(mode="json"),
    )


def pretrain(
    kind: str, data: PreparedData, config: TrainConfig, out_dir: Path | None = None,
    on_epoch: EpochCallback | None = None,
) -> tuple[nn.Module, RunResult]:
    """Pretrain the "gcn" branch (selected on valid ndcg@20) or the "hgt" branch (valid genre
    mAP: threshold-free, whereas an untrained model's near-zero logits already score a macro-F1
    that early training lowers) on its own task-weighted objective."""
    set_seed(config.seed)
    inp = Inputs.of(data)
    args = model_args(kind, data, config)
    model = build_model(args).to(config.device)
    gcn = kind == "gcn"
    weights, primary = (config.gcn_weights, "rec") if gcn else (config.hgt_weights, "genre")
    if config.single_task:
        weights = {primary: weights.get(primary, 1.0)}
    weighting = TaskWeighting(weights, config.weighting).to(config.device)
    lr = config.gcn_lr if kind == "gcn" else config.hgt_lr
    params = [*model.parameters(), *weighting.parameters()]
    stage = Stage(
        name=kind,
        model=model,
        weighting=weighting,
        optimizer=torch.optim.AdamW(params, lr=lr, weight_decay=config.weight_decay),
        epochs=config.gcn_epochs if kind == "gcn" else config.hgt_epochs,
        steps=config.gcn_steps if kind == "gcn" else config.hgt_steps,
        select=(lambda m: m["ndcg@20"]) if kind == "gcn" else (lambda m: m["map"]),
    )
    ckpt = fit(stage, args, data, inp, config, out_dir, on_epoch)
    return model, _result(f"{kind}_branch", stage, ckpt, data, inp, config)


def finetune(
    gcn: MultiTaskGCN,
    hgt: MultiTaskHGT,
    data: PreparedData,
    config: TrainConfig,
    out_dir: Path | None = None,
    name: str = "fused",
    on_epoch: EpochCallback | None = None,
) -> tuple[FusedModel, RunResult]:
    """Fuse two pretrained branches and fine-tune everything end to end; the encoders train at
    ``encoder_lr``, fusion and heads at ``fusion_lr``. Selection: valid ndcg@20, genre mAP, or
    (``"sum"``) both relative to their values right after fusing."""
    set_seed(config.seed)
    inp = Inputs.of(data)
    model = FusedModel(gcn, hgt, config.fusion_heads, config.dropout, config.fusion)
    model = model.to(config.device)
    weighting = TaskWeighting(config.fusion_weights, config.weighting).to(config.device)
    start = evaluate(model, data, inp, "valid", config.ks)
    if config.fusion_select == "sum":
        n0, f0 = max(start["ndcg@20"], 1e-9), max(start["map"], 1e-9)
        select = lambda m: m["ndcg@20"] / n0 + m["map"] / f0  # noqa: E731
    else:
        select = lambda m: m[config.fusion_select]  # noqa: E731
    groups = [
        {"params": model.encoder_parameters(), "lr": config.encoder_lr},
        {"params": [*model.head_parameters(), *weighting.parameters()], "lr": config.fusion_lr},
    ]
    stage = Stage(
        name=name,
        model=model,
        weighting=weighting,
        optimizer=torch.optim.AdamW(groups, weight_decay=config.weight_decay),
        epochs=config.fusion_epochs,
        steps=config.fusion_steps,
        select=select,
    )
    ckpt = fit(stage, model_args("fused", data, config), data, inp, config, out_dir, on_epoch)
    return model, _result(name, stage, ckpt, data, inp, config)


def train_fused(
    data: PreparedData, config: TrainConfig, out_dir: Path | None = None, name: str = "fused"
) -> dict[str, RunResult]:
    """The whole method on prepared data: both branches, then the fused model."""
    gcn, gcn_result = pretrain("gcn", data, config, out_dir)
    hgt, hgt_result = pretrain("hgt", data, config, out_dir)
    _, fused_result = finetune(gcn, hgt, data, config, out_dir, name)
    return {"gcn_branch": gcn_result, "hgt_branch": hgt_result, name: fused_result}


def load_checkpoint(
    path: Path, data: PreparedData, config: TrainConfig | None = None
) -> tuple[nn.Module, TrainConfig]:
    """Rebuild a checkpoint's model from its saved args, on the split it was trained on; the
    architecture fields of ``config`` are taken from the checkpoint."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except (OSError, RuntimeError) as exc:
        raise CinegraphError(f"{path}: cannot read checkpoint ({exc})") from exc
    if not torch.equal(ckpt["split"]["test_edges"], data.test_edges.cpu()):
        raise CinegraphError(f"{path}: checkpoint was trained on another split than the data given")
    saved = TrainConfig.model_validate(ckpt["config"])
    config = (config or saved).with_architecture(ckpt["config"])
    model = build_model(ckpt["model_args"])
    model.load_state_dict(ckpt["model"])
    return model.to(config.device).eval(), config


def plot_curves(history: list[dict[str, float]], title: str, path: Path) -> None:
    """Training losses and the validation score per epoch, as one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_val) = plt.subplots(1, 2, figsize=(10, 3.5))
    epochs = [row["epoch"] for row in history]
    for key in ("loss", "rec", "genre", "rating"):
        if history and key in history[0]:
            ax_loss.plot(epochs, [row[key] for row in history], label=key)
    ax_loss.set(xlabel="epoch", ylabel="training loss", title=f"{title}: loss")
    for key in ("valid_ndcg@20", "valid_macro_f1"):
        pts = [(row["epoch"], row[key]) for row in history if key in row]
        if pts:
            ax_val.plot(*zip(*pts, strict=True), marker="o", label=key.removeprefix("valid_"))
    ax_val.set(xlabel="epoch", ylabel="validation", title=f"{title}: validation")
    for ax in (ax_loss, ax_val):
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def train(snapshot_dir: Path, out_dir: Path, config: TrainConfig) -> dict[str, dict[str, float]]:
    """``cinegraph train``: one fused model from a snapshot; writes its checkpoints
    (gcn.pt, hgt.pt, fused.pt), metrics.json, split files and curve PNGs into ``out_dir``."""
    from graph_store.snapshot_io import read_snapshot
    from models.data import export_split

    if config.device.startswith("cuda") and not torch.cuda.is_available():
        raise CinegraphError(f"--device {config.device}: CUDA is not available on this machine")
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    out_dir.mkdir(parents=True, exist_ok=True)
    data = prepare_data(read_snapshot(snapshot_dir), config.data, config.seed).to(config.device)
    export_split(data, out_dir / "split")
    results = train_fused(data, config, out_dir)
    metrics = {
        name: {"test": r.metrics, "valid": r.valid_metrics, "epoch_seconds": r.epoch_seconds,
               "peak_mem_mb": r.peak_mem_mb}
        for name, r in results.items()
    }
    (out_dir / "metrics.json").write_text(json.dumps({"config": config.model_dump(mode="json"),
                                                      "models": metrics}, indent=2))
    for name, r in results.items():
        plot_curves(r.history, name, out_dir / f"curves_{name}.png")
    log.info("fused test: %s", {k: round(v, 4) for k, v in results["fused"].metrics.items()
                                if "@20" in k or "f1" in k})
    return metrics
