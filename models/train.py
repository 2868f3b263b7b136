"""The method: pretrain both branches with early stopping, fuse them, fine-tune end to end.

``train(snapshot_dir, out_dir, config)`` runs it for one fused model (``cinegraph train``); the
loop is :mod:`models.loop`, checkpoints and inputs :mod:`models.registry`.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch
from torch import nn

from cinegraph.errors import CinegraphError
from cinegraph.models.config import TrainConfig
from cinegraph.models.data import PreparedData, prepare_data
from cinegraph.models.evaluate import RunResult, peak_memory_mb
from cinegraph.models.fusion import FusedModel
from cinegraph.models.gcn_branch import MultiTaskGCN
from cinegraph.models.hgt_branch import MultiTaskHGT
from cinegraph.models.loop import EpochCallback, Stage, evaluate, fit, set_seed
from cinegraph.models.plots import plot_curves
from cinegraph.models.registry import Inputs, build_model, model_args
from cinegraph.models.task_weighting import TaskWeighting

log = logging.getLogger(__name__)


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
    kind: str,
    data: PreparedData,
    config: TrainConfig,
    out_dir: Path | None = None,
    on_epoch: EpochCallback | None = None,
) -> tuple[nn.Module, RunResult]:
    """Pretrain the "gcn" branch (selected on valid ndcg@20) or the "hgt" branch (valid genre
    mAP: threshold-free, whereas an untrained model's near-zero logits already score a macro-F1
    that early training lowers) on its own task-weighted objective."""
    set_seed(config.seed)
    args = model_args(kind, data, config)
    model = build_model(args).to(config.device)
    inp = Inputs.of(data, model)
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
    (``"sum"``) both relative to their values right after fusing, among the epochs whose
    ranking is no worse than right after fusing (else the fused start is kept)."""
    set_seed(config.seed)
    model = FusedModel(gcn, hgt, config.fusion_heads, config.dropout, config.fusion,
                       config.item_item_rank, config.item_item_scale).to(config.device)
    model.fit_item_item(data.train_edges, config.item_item_lambda)
    inp = Inputs.of(data, model)
    weighting = TaskWeighting(config.fusion_weights, config.weighting).to(config.device)
    start = evaluate(model, data, inp, "valid", config.ks)
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


def train_fused(
    data: PreparedData, config: TrainConfig, out_dir: Path | None = None, name: str = "fused"
) -> dict[str, RunResult]:
    """The whole method on prepared data: both branches, then the fused model."""
    gcn, gcn_result = pretrain("gcn", data, config, out_dir)
    hgt, hgt_result = pretrain("hgt", data, config, out_dir)
    _, fused_result = finetune(gcn, hgt, data, config, out_dir, name)
    return {"gcn_branch": gcn_result, "hgt_branch": hgt_result, name: fused_result}


def train(snapshot_dir: Path, out_dir: Path, config: TrainConfig) -> dict[str, dict[str, float]]:
    """``cinegraph train``: one fused model from a snapshot; writes its checkpoints
    (gcn.pt, hgt.pt, fused.pt), metrics.json, split files and curve PNGs into ``out_dir``."""
    from cinegraph.graph_store.snapshot_io import read_snapshot
    from cinegraph.models.data import export_split

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
