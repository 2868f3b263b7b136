"""The one training configuration, saved in every checkpoint and reloadable from JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from graph_store.errors import CinegraphError
from models.data import DataConfig

# Fields that shape the networks: a resumed or reloaded run takes these from the checkpoint.
ARCHITECTURE_FIELDS = (
    "hidden_dim",
    "gcn_layers",
    "hgt_layers",
    "hgt_heads",
    "fusion_heads",
    "fusion",
    "dropout",
    "gcn_graph",
)


class TrainConfig(BaseModel):
    """Every knob of pretraining and fine-tuning. The defaults are what ``cinegraph benchmark``
    runs: all nine models x 3 seeds on ml-latest-small within 30 minutes on 2 CPU cores."""

    model_config = ConfigDict(extra="forbid")

    data: DataConfig = Field(default_factory=DataConfig)  # splits, positives, IMDb enrichment
    # --- architecture -----------------------------------------------------------------------
    hidden_dim: int = Field(64, gt=0)  # embedding size D of both branches
    gcn_layers: int = Field(2, ge=0)  # GCN propagation layers
    hgt_layers: int = Field(2, ge=1)  # HGTConv layers
    hgt_heads: int = Field(4, ge=1)  # attention heads per HGTConv
    fusion_heads: int = Field(4, ge=1)  # cross-attention heads of the fusion
    fusion: Literal["cross_attention", "concat"] = "cross_attention"  # concat = ablation
    dropout: float = Field(0.1, ge=0.0, lt=1.0)  # HGT layers, fusion and genre heads
    gcn_graph: Literal["positives", "ratings"] = "ratings"  # GCN adjacency: every input rating
    # weighted by strength, or training positives only
    # --- optimisation -----------------------------------------------------------------------
    gcn_lr: float = Field(2e-2, gt=0)  # GCN branch pretraining
    hgt_lr: float = Field(1e-2, gt=0)  # HGT branch pretraining
    fusion_lr: float = Field(5e-4, gt=0)  # fusion module and heads while fine-tuning
    encoder_lr: float = Field(2e-4, gt=0)  # both encoders while fine-tuning (kept low)
    weight_decay: float = Field(0.0, ge=0)  # AdamW decoupled weight decay
    rec_loss: Literal["bpr", "softmax", "sampled_softmax"] = "softmax"  # ranking loss of every
    # stage: full softmax over all movies (ml-latest-small), sampled softmax (large catalogues)
    temperature: float = Field(1.0, gt=0)  # softmax temperature on the dot-product scores
    num_negatives: int = Field(1024, gt=0)  # shared negatives of the sampled softmax
    emb_l2: float = Field(1e-4, ge=0)  # L2 on the batch's embeddings in the ranking loss
    batch_size: int = Field(8192, gt=0)  # positive pairs (with one sampled negative) per step
    gcn_steps: int = Field(4, ge=1)  # BPR steps per GCN epoch (full-graph propagation each)
    hgt_steps: int = Field(1, ge=1)  # steps per HGT epoch (each a full-graph HGT pass)
    fusion_steps: int = Field(4, ge=1)  # steps per fine-tuning epoch (1 left the heads untrained)
    warmup_epochs: int = Field(2, ge=0)  # linear LR warm-up, then cosine decay
    # --- schedule and early stopping --------------------------------------------------------
    gcn_epochs: int = Field(100, ge=1)  # max GCN pretraining epochs
    hgt_epochs: int = Field(30, ge=1)  # max HGT pretraining epochs
    fusion_epochs: int = Field(10, ge=0)  # max fine-tuning epochs (0: fuse without fine-tuning)
    eval_every: int = Field(2, ge=1)  # validate every N epochs
    patience: int = Field(4, ge=1)  # validations without improvement before stopping
    # --- tasks ------------------------------------------------------------------------------
    weighting: Literal["fixed", "uncertainty"] = "fixed"  # task weighting mode
    gcn_weights: dict[str, float] = {"rec": 1.0, "genre": 0.2, "rating": 0.1}  # primary rec
    hgt_weights: dict[str, float] = {"genre": 1.0, "rec": 0.3}  # primary genre
    fusion_weights: dict[str, float] = {"rec": 1.0, "genre": 1.0}  # joint fine-tuning
    single_task: bool = False  # ablation: branches pretrain on their primary task only
    cold_dropout: float = Field(0.0, ge=0.0, lt=1.0)  # share of movies whose interactions each
    # fine-tuning step hides (DropoutNet), so the fused ranking learns to use content
    fusion_select: Literal["ndcg@20", "map", "sum"] = "sum"  # fine-tuning early-stop metric
    baselines: dict[str, dict[str, Any]] = {}  # per baseline name: its config fields, as tuned
    # by ``cinegraph tune`` (absent: the baseline's defaults)
    # --- run --------------------------------------------------------------------------------
    device: str = "cpu"  # "cpu" or "cuda"
    num_threads: int = Field(1, ge=0)  # torch CPU threads (benchmark sized on 1); 0: torch default
    seed: int = 0  # seeds the split, the initialisation and the sampling
    ks: tuple[int, ...] = (10, 20)  # cut-offs of the ranking metrics

    def architecture(self) -> dict:
        return {k: getattr(self, k) for k in ARCHITECTURE_FIELDS}

    def with_architecture(self, saved: dict) -> TrainConfig:
        """This config with the architecture fields of a saved config (resume or reload)."""
        return self.model_copy(update={k: saved[k] for k in ARCHITECTURE_FIELDS if k in saved})


def load_config(path: Path | None, **overrides: object) -> TrainConfig:
    """A TrainConfig from a JSON file (or the defaults), with non-None overrides applied."""
    raw: dict = {}
    if path is not None:
        try:
            raw = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise CinegraphError(f"--config {path}: cannot read JSON ({exc})") from exc
    raw.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return TrainConfig.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(x) for x in first["loc"])
        raise CinegraphError(f"config {path or '(defaults)'}: {where}: {first['msg']}") from exc
