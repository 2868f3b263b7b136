"""The one training configuration, saved in every checkpoint and reloadable from JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from cinegraph.errors import CinegraphError

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
    "item_item_rank",
    "content_map_hidden",
)
Task = Literal["rec", "genre", "rating"]  # recommendation (BPR), multi-label genres, rating regression
TaskWeights = dict[Task, Annotated[float, Field(ge=0)]]
SELECTION_K = 20  # early stopping and fusion selection read ndcg@20


class DataConfig(BaseModel):
    """How the model input is built and split; saved with every run."""

    model_config = ConfigDict(extra="forbid")

    positive_threshold: float = Field(4.0, description="ratings >= this are implicit positives")
    split: Literal["random", "temporal"] = Field("random", description="per-user split of the positives")
    valid_frac: float = Field(0.1, ge=0.0, lt=1.0, description="share of each user's positives for validation")
    test_frac: float = Field(0.1, ge=0.0, lt=1.0, description="share of each user's positives for test")
    genre_valid_frac: float = Field(0.2, ge=0.0, lt=1.0, description="share of genre-labelled movies for validation")
    genre_test_frac: float = Field(0.2, ge=0.0, lt=1.0, description="share of genre-labelled movies for test")
    include_imdb: bool = Field(True, title="Include IMDb", description="False: MovieLens-only graph (ablation)")
    protocol: Literal["warm", "cold-items"] = Field(
        "warm", description="cold-items: a share of the movies with positives become new items"
    )
    cold_item_frac: float = Field(0.15, gt=0.0, lt=1.0, description="share of movies with positives made new items")
    valid_users: int | None = Field(
        None,
        ge=1,
        title="Validation users",
        description="validation (early stopping, model selection, valid metrics) ranks a seeded sample of this many "
        "users; empty: every user. Test always ranks every user. ~10000 keeps full-size training practical on a CPU",
    )

    @model_validator(mode="after")
    def _fractions(self) -> DataConfig:
        if self.valid_frac + self.test_frac >= 1.0:
            raise ValueError(f"valid_frac + test_frac = {self.valid_frac + self.test_frac} >= 1")
        if self.genre_valid_frac + self.genre_test_frac >= 1.0:
            raise ValueError(
                f"genre_valid_frac + genre_test_frac = {self.genre_valid_frac + self.genre_test_frac} >= 1"
            )
        return self


class TrainConfig(BaseModel):
    """Every knob of pretraining and fine-tuning. The defaults are what ``cinegraph benchmark``
    runs: all nine models x 3 seeds on ml-latest-small within 30 minutes on 2 CPU cores."""

    model_config = ConfigDict(extra="forbid")

    data: DataConfig = Field(default_factory=DataConfig, title="Data", description="splits, positives, IMDb enrichment")
    # --- architecture -----------------------------------------------------------------------
    hidden_dim: int = Field(64, gt=0, title="Hidden size", description="embedding size D of both branches")
    gcn_layers: int = Field(2, ge=0, title="GCN layers", description="GCN propagation layers")
    hgt_layers: int = Field(2, ge=1, title="HGT layers", description="HGTConv layers")
    hgt_heads: int = Field(4, ge=1, title="HGT heads", description="attention heads per HGTConv")
    fusion_heads: int = Field(4, ge=1, title="Fusion heads", description="cross-attention heads of the fusion")
    fusion: Literal["cross_attention", "concat"] = Field(
        "cross_attention", title="Fusion", description="concat = ablation"
    )
    dropout: float = Field(0.1, ge=0.0, lt=1.0, title="Dropout", description="HGT layers, fusion and genre heads")
    gcn_graph: Literal["positives", "ratings"] = Field(
        "ratings",
        title="GCN graph",
        description="GCN adjacency: every input rating weighted by strength, or training positives only",
    )
    item_item_rank: int = Field(
        128,
        ge=0,
        title="Item-item residual rank",
        description="rank of the EASE item-item residual of the fused model's scores (0: none)",
    )
    item_item_lambda: float = Field(
        200.0, gt=0, title="Item-item residual L2", description="EASE L2 strength of the item-item residual"
    )
    item_item_scale: float = Field(
        20.0, gt=0, title="Item-item residual scale", description="weight of the residual in the ranking"
    )
    content_map_hidden: int = Field(
        128,
        ge=0,
        title="Content map hidden size",
        description="hidden size of the map from a movie's content to its interaction embedding, which represents "
        "movies without interactions in the fused model (0: none)",
    )
    content_map_steps: int = Field(
        800,
        ge=0,
        title="Content map steps",
        description="full-batch steps fitting the content map before fine-tuning (at most, with checks)",
    )
    content_map_check_every: int = Field(
        100,
        ge=0,
        title="Content map check interval",
        description="validation ndcg@20 of the fused start every this many steps; the best map is kept (0: the last)",
    )
    content_map_patience: int = Field(
        2,
        ge=0,
        title="Content map patience",
        description="the fit stops after this many checks in a row below the best (0: never)",
    )
    content_map_lr: float = Field(1e-2, gt=0, title="Content map learning rate", description="Adam, while fitting it")
    # --- optimisation -----------------------------------------------------------------------
    gcn_lr: float = Field(2e-2, gt=0, title="GCN learning rate", description="GCN branch pretraining")
    hgt_lr: float = Field(1e-2, gt=0, title="HGT learning rate", description="HGT branch pretraining")
    fusion_lr: float = Field(
        5e-4, gt=0, title="Fusion learning rate", description="fusion module and heads while fine-tuning"
    )
    encoder_lr: float = Field(
        2e-4,
        gt=0,
        title="Encoder learning rate (fine-tuning)",
        description="both encoders while fine-tuning (kept low)",
    )
    weight_decay: float = Field(0.0, ge=0, title="Weight decay", description="AdamW decoupled weight decay")
    rec_loss: Literal["bpr", "softmax", "sampled_softmax"] = Field(
        "softmax",
        title="Ranking loss",
        description="ranking loss of every stage: full softmax over all movies, sampled softmax (large catalogues) "
        "or BPR",
    )
    temperature: float = Field(
        1.0, gt=0, title="Softmax temperature", description="temperature on the dot-product scores"
    )
    num_negatives: int = Field(
        1024, gt=0, title="Sampled negatives", description="shared negatives of the sampled softmax"
    )
    emb_l2: float = Field(
        1e-4, ge=0, title="Embedding L2", description="L2 on the batch's embeddings in the ranking loss"
    )
    batch_size: int = Field(
        8192, gt=0, title="Batch size", description="positive pairs (with one sampled negative) per step"
    )
    gcn_steps: int = Field(
        4, ge=1, title="GCN steps per epoch", description="steps per GCN epoch (full-graph propagation each)"
    )
    hgt_steps: int = Field(
        1, ge=1, title="HGT steps per epoch", description="steps per HGT epoch (each a full-graph HGT pass)"
    )
    fusion_steps: int = Field(
        4, ge=1, title="Fusion steps per epoch", description="steps per fine-tuning epoch (1 left the heads untrained)"
    )
    hgt_fanout: int = Field(
        0,
        ge=0,
        title="HGT fanout",
        description="in-edges sampled per node and relation each HGT/fused step (0: all; ~10 above millions of edges)",
    )
    warmup_epochs: int = Field(2, ge=0, title="Warm-up epochs", description="linear LR warm-up, then cosine decay")
    # --- schedule and early stopping --------------------------------------------------------
    gcn_epochs: int = Field(
        100, ge=0, title="GCN epochs", description="max GCN pretraining epochs (0: the initial weights)"
    )
    hgt_epochs: int = Field(
        30, ge=0, title="HGT epochs", description="max HGT pretraining epochs (0: the initial weights)"
    )
    fusion_epochs: int = Field(
        4, ge=0, title="Fine-tuning epochs", description="max fine-tuning epochs (0: fuse without fine-tuning)"
    )
    eval_every: int = Field(2, ge=1, title="Validate every N epochs", description="validate every N epochs")
    patience: int = Field(4, ge=1, title="Patience", description="validations without improvement before stopping")
    # --- tasks ------------------------------------------------------------------------------
    weighting: Literal["fixed", "uncertainty"] = Field(
        "fixed", title="Task weighting", description="task weighting mode"
    )
    gcn_weights: TaskWeights = Field(
        {"rec": 1.0, "genre": 0.2, "rating": 0.1},
        title="GCN task weights",
        description="weight per task (rec, genre, rating) of GCN pretraining; rec is primary",
    )
    hgt_weights: TaskWeights = Field(
        {"genre": 1.0, "rec": 0.3},
        title="HGT task weights",
        description="weight per task (rec, genre, rating) of HGT pretraining; genre is primary",
    )
    fusion_weights: TaskWeights = Field(
        {"rec": 1.0, "genre": 1.0},
        title="Fusion task weights",
        description="weight per task (rec, genre, rating) of joint fine-tuning",
    )
    single_task: bool = Field(
        False, title="Single task (ablation)", description="ablation: branches pretrain on their primary task only"
    )
    cold_dropout: float = Field(
        0.0,
        ge=0.0,
        lt=1.0,
        title="Cold dropout",
        description="share of movies whose interactions each fine-tuning step hides (DropoutNet)",
    )
    hgt_cold_dropout: float = Field(
        0.3,
        ge=0.0,
        lt=1.0,
        title="HGT cold dropout",
        description="share of movies whose interactions each HGT pretraining step hides (DropoutNet), so that "
        "the branch learns to rank new movies by their content",
    )
    negatives: Literal["all", "observed"] = Field(
        "all",
        title="Softmax negatives",
        description="all movies, or observed: only movies with interactions in the model input (a new movie is "
        "unobserved, not disliked)",
    )
    fusion_select: Literal["ndcg@20", "map", "sum"] = Field(
        "sum", title="Fine-tuning selection metric", description="fine-tuning early-stop metric"
    )
    baselines: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        title="Tuned baselines",
        description="per baseline name: its config fields as tuned by cinegraph tune (absent: its defaults)",
    )
    # --- run --------------------------------------------------------------------------------
    device: Literal["cpu", "cuda"] = Field("cpu", title="Device", description="cpu, or cuda (an NVIDIA GPU)")
    num_threads: int = Field(
        0,
        ge=0,
        title="CPU threads",
        description="torch CPU threads; 0: torch's default, every core (one on a Dask worker: OMP_NUM_THREADS=1)",
    )
    seed: int = Field(0, ge=0, title="Seed", description="seeds the split, the initialisation and the sampling")
    ks: tuple[Annotated[int, Field(ge=1)], ...] = Field(
        (10, 20),
        json_schema_extra={"uniqueItems": True},
        title="Ranking cut-offs k",
        description=f"cut-offs of the ranking metrics; must include {SELECTION_K}",
    )

    @model_validator(mode="after")
    def _check(self) -> TrainConfig:
        """What the schema cannot say, every problem at once."""
        problems = []
        if len(set(self.ks)) != len(self.ks):
            problems.append(f"ks={list(self.ks)} repeat a cut-off")
        if SELECTION_K not in self.ks:
            problems.append(f"ks={list(self.ks)} must include {SELECTION_K} (model selection reads ndcg@{SELECTION_K})")
        for name in ("gcn_weights", "hgt_weights", "fusion_weights"):
            if not any(getattr(self, name).values()):
                problems.append(f"{name}={getattr(self, name)}: at least one task needs a weight above 0")
        for name in ("hgt_weights", "fusion_weights"):
            if getattr(self, name).get("rating", 0) > 0:
                problems.append(f"{name}={getattr(self, name)}: only the GCN branch has a rating head")
        if problems:
            raise ValueError("; ".join(problems))
        return self

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
        if not isinstance(raw, dict):
            raise CinegraphError(
                f"--config {path}: expected a JSON object of TrainConfig fields, got {type(raw).__name__}"
            )
    raw.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return TrainConfig.model_validate(raw)
    except ValidationError as exc:
        raise CinegraphError(f"--config {path or '(defaults)'}: {validation_summary(exc)}") from exc


def validation_summary(exc: ValidationError) -> str:
    """Every problem of a pydantic error on one line: ``field.path: reason; ...``."""
    parts = []
    for e in exc.errors():
        where = ".".join(str(x) for x in e["loc"])
        msg = e["msg"].removeprefix("Value error, ")
        parts.append(f"{where}: {msg}" if where else msg)
    return "; ".join(parts)
