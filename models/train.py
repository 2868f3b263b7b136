"""The method: pretrain both branches with early stopping, fuse them, fine-tune end to end.

The loop is :mod:`models.loop`, checkpoints and inputs :mod:`models.registry`; runs over seeds,
their files and reports are :mod:`models.runner`'s.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal, overload

import pyarrow as pa
import torch

from cinegraph.models import distributed
from cinegraph.models.config import SELECTION_K, DataConfig, Task, TrainConfig
from cinegraph.models.data import PreparedData, prepare_data
from cinegraph.models.early_stopping import EpochCallback
from cinegraph.models.ease import item_item_bytes
from cinegraph.models.evaluate import RunResult, evaluate_ranking, peak_memory_mb
from cinegraph.models.fusion import FusedModel
from cinegraph.models.gcn_branch import MultiTaskGCN
from cinegraph.models.hgt_branch import MultiTaskHGT
from cinegraph.models.loop import Stage, evaluate, fit, set_seed
from cinegraph.models.registry import Inputs, build_gcn, build_hgt, model_args
from cinegraph.models.scale import available_bytes
from cinegraph.models.task_weighting import TaskWeighting
from cinegraph.schema import MOVIE, USER

log = logging.getLogger(__name__)


def _result(name: str, stage: Stage, ckpt: dict, data: PreparedData, inp: Inputs, config: TrainConfig) -> RunResult:
    seconds = [row["seconds"] for row in stage.history]
    return RunResult(
        name=name,
        seed=config.seed,
        metrics=distributed.on_main(lambda: evaluate(stage.model, data, inp, "test", config.ks)),
        valid_metrics=ckpt["valid_metrics"],
        history=stage.history,
        epoch_seconds=sum(seconds) / max(len(seconds), 1),
        peak_mem_mb=peak_memory_mb(config.device),
        config=config.model_dump(mode="json"),
    )


@overload
def pretrain(
    kind: Literal["gcn"],
    data: PreparedData,
    config: TrainConfig,
    out_dir: Path | None = None,
    on_epoch: EpochCallback | None = None,
) -> tuple[MultiTaskGCN, RunResult]: ...
@overload
def pretrain(
    kind: Literal["hgt"],
    data: PreparedData,
    config: TrainConfig,
    out_dir: Path | None = None,
    on_epoch: EpochCallback | None = None,
) -> tuple[MultiTaskHGT, RunResult]: ...
@overload
def pretrain(
    kind: Literal["gcn", "hgt"],
    data: PreparedData,
    config: TrainConfig,
    out_dir: Path | None = None,
    on_epoch: EpochCallback | None = None,
) -> tuple[MultiTaskGCN | MultiTaskHGT, RunResult]: ...
def pretrain(
    kind: Literal["gcn", "hgt"],
    data: PreparedData,
    config: TrainConfig,
    out_dir: Path | None = None,
    on_epoch: EpochCallback | None = None,
) -> tuple[MultiTaskGCN | MultiTaskHGT, RunResult]:
    """Pretrain the "gcn" branch (selected on valid ndcg@20) or the "hgt" branch (valid genre
    mAP: threshold-free, whereas an untrained model's near-zero logits already score a macro-F1
    that early training lowers) on its own task-weighted objective."""
    set_seed(config.seed)
    args = model_args(kind, data, config)
    model = (build_gcn(args) if kind == "gcn" else build_hgt(args)).to(config.device)
    inp = Inputs.of(data, model)
    gcn = kind == "gcn"
    weights = config.gcn_weights if gcn else config.hgt_weights
    primary: Task = "rec" if gcn else "genre"
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
    (``"sum"``) both relative to their values right after fusing, among the epochs whose
    ranking is no worse than right after fusing (else the fused start is kept)."""
    set_seed(config.seed)
    config = without_unfit_item_item(data, config)
    model = FusedModel(
        gcn,
        hgt,
        config.fusion_heads,
        config.dropout,
        config.fusion,
        config.item_item_rank,
        config.item_item_scale,
        config.content_map_hidden,
    ).to(config.device)
    model.fit_item_item(data.train_edges, config.item_item_lambda)
    inp = Inputs.of(data, model)
    fit_content_map(model, data, inp, config)
    weighting = TaskWeighting(config.fusion_weights, config.weighting).to(config.device)
    start = distributed.on_main(lambda: evaluate(model, data, inp, "valid", config.ks))
    log.info("%s as fused: valid ndcg@20 %.4f, genre mAP %.4f", name, start["ndcg@20"], start["map"])
    if config.fusion_select == "sum":
        n0, f0 = max(start["ndcg@20"], 1e-9), max(start["map"], 1e-9)
        select = lambda m: (  # noqa: E731
            m["ndcg@20"] / n0 + m["map"] / f0 if m["ndcg@20"] >= n0 else float("-inf")
        )
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


def without_unfit_item_item(data: PreparedData, config: TrainConfig) -> TrainConfig:
    """``config``, or with ``item_item_rank`` 0 (said in a log line) when the residual's dense
    EASE fit and SVD would not fit in the device's memory: at ml-25m size it needs hundreds of GB.
    The fused model then ranks without it, and its checkpoint says so."""
    if not config.item_item_rank:
        return config
    need, have = item_item_bytes(data.num_users, data.num_movies), available_bytes(config.device)
    if need <= have:
        return config
    log.warning(
        "item-item residual off: on %d users x %d movies it needs about %.1f GB, more than the %.1f GB available "
        "on %s; the fused model ranks without it (item_item_rank 0)",
        data.num_users,
        data.num_movies,
        need / 2**30,
        have / 2**30,
        config.device,
    )
    return config.model_copy(update={"item_item_rank": 0})


def fit_content_map(model: FusedModel, data: PreparedData, inp: Inputs, config: TrainConfig) -> None:
    """Fit the fused model's content map (if it has one) on the pretrained branches: content from
    the HGT as if every movie were new, targets the GCN's embeddings; the step count is chosen on
    validation ndcg@20 (checked every ``content_map_check_every`` steps, stopping after
    ``content_map_patience`` checks below the best) where there is a validation split, else all
    ``content_map_steps`` are taken."""
    if model.content_map is None:
        return
    model.eval()
    every = torch.ones(data.num_movies, dtype=torch.bool, device=inp.evidence.device)
    content = model.content_of(inp.x, inp.dropping(every).edge_index, inp.x.get(MOVIE.label))
    with torch.no_grad():
        z_user, z_movie = model.gcn.embed(inp.adj, inp.x.get(USER.label), inp.x.get(MOVIE.label), inp.evidence <= 0)
    gen = torch.Generator().manual_seed(config.seed)
    check = None
    if data.valid_edges.numel() and config.content_map_check_every:
        cold = inp.evidence <= 0
        with torch.no_grad():  # the branches stay fixed while the map is fit: their views serve every check
            views = model.branches(inp.adj, inp.x, inp.edge_index, cold)

        @torch.no_grad()
        def check() -> float:
            model.eval()
            z_user, z_movie, _ = model.fuse(views, inp.evidence, cold)
            ranking = evaluate_ranking(lambda u: z_user[u] @ z_movie.t(), data, "valid", (SELECTION_K,))
            return ranking[f"ndcg@{SELECTION_K}"]

    losses, kept = model.fit_content_map(
        content,
        z_user,
        z_movie,
        data.train_edges,
        inp.evidence > 0,
        config.content_map_steps,
        config.content_map_lr,
        gen,
        check=check,
        check_every=config.content_map_check_every,
        patience=config.content_map_patience,
    )
    if losses:
        log.info("content map: loss %.4f -> %.4f in %d steps, kept step %d", losses[0], losses[-1], len(losses), kept)


def train_fused(
    data: PreparedData,
    config: TrainConfig,
    out_dir: Path | None = None,
    name: str = "fused",
    on_epoch: EpochCallback | None = None,
) -> dict[str, RunResult]:
    """The whole method on prepared data: both branches, then the fused model."""
    gcn, gcn_result = pretrain("gcn", data, config, out_dir, on_epoch)
    hgt, hgt_result = pretrain("hgt", data, config, out_dir, on_epoch)
    _, fused_result = finetune(gcn, hgt, data, config, out_dir, name, on_epoch)
    return {"gcn_branch": gcn_result, "hgt_branch": hgt_result, name: fused_result}


def serving_data(config: DataConfig) -> DataConfig:
    """The data settings of a refit: every rating and genre label in training, nothing held out."""
    return config.model_copy(
        update={
            "valid_frac": 0.0,
            "test_frac": 0.0,
            "genre_valid_frac": 0.0,
            "genre_test_frac": 0.0,
            "protocol": "warm",
        }
    )


def refit(tables: dict[str, pa.Table], config: TrainConfig, evaluated: Path, out_dir: Path) -> Path:
    """The method again on all of each user's data, each stage for the epochs selected on
    validation in the evaluation run whose checkpoints are in ``evaluated`` (gcn.pt, hgt.pt,
    fused.pt): the evaluation split is for measuring, what is served learns from everything.
    Writes the refit checkpoints into ``out_dir`` and returns it."""
    epochs = {
        stage: int(torch.load(evaluated / f"{stage}.pt", map_location="cpu", weights_only=False)["epoch"])
        for stage in ("gcn", "hgt", "fused")
    }
    log.info("refitting on every rating for the selected epochs %s", epochs)
    fixed = config.model_copy(
        update={
            "data": serving_data(config.data),
            "gcn_epochs": epochs["gcn"],
            "hgt_epochs": epochs["hgt"],
            "fusion_epochs": epochs["fused"],
        }
    )
    data = prepare_data(tables, fixed.data, config.seed).to(config.device)
    out_dir.mkdir(parents=True, exist_ok=True)
    train_fused(data, fixed, out_dir)
    return out_dir
