"""Parameters of the train and pipeline flows: typed pydantic models, so the Prefect UI renders a
form with the defaults and refuses bad input before a run starts."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from flows.params import RefreshParams
from graph_store.export import ExportFilter
from graph_store.schema import MOVIE, RATED, USER
from models.config import TrainConfig

DEVICE = re.compile(r"cpu|cuda(:\d+)?")


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TrainParams(_Params):
    """Where the graph comes from, which part of it, the model configuration and the seeds."""

    snapshot: str = Field("out/snapshot", description="snapshot folder (embedded mode)")
    out: str = Field("out/runs", description="runs are written to OUT/<run name>/")
    source: Literal["auto", "snapshot", "neo4j"] = Field(
        "auto", description="read the graph from Neo4j or the snapshot; auto: Neo4j when NEO4J_URI is set"
    )
    mode: Literal["train", "benchmark"] = Field(
        "train", description="train: the fused model; benchmark: the baselines and ablations too"
    )
    subgraph: ExportFilter = Field(
        default_factory=ExportFilter, description="which users, ratings, movies and types to train on"
    )
    model: TrainConfig = Field(
        default_factory=TrainConfig,
        description="model sizes, task weights, epochs, learning rates, device (cpu|cuda)",
    )
    run_name: str | None = Field(
        None, pattern=r"^[A-Za-z0-9_.-]+$",
        description="names the run folder and its Neo4j results; rerunning a name replaces them",
    )
    seeds: list[int] = Field([0], min_length=1, description="one run per seed; mean ± std over them")
    top_k: int = Field(20, ge=1, le=1000, description="recommendations per user written to Neo4j")
    write_back: bool | None = Field(
        None, description="write recommendations and embeddings to Neo4j; default: when reading from Neo4j"
    )
    neo4j_database: str = Field("neo4j", description="Neo4j database name")

    @model_validator(mode="after")
    def _check(self) -> TrainParams:
        problems = []
        if not DEVICE.fullmatch(self.model.device):
            problems.append(f"model.device={self.model.device!r}: expected cpu, cuda or cuda:N")
        if not {USER, MOVIE} <= set(self.subgraph.selected_node_types):
            problems.append(f"subgraph.node_types must include {USER.label} and {MOVIE.label}")
        if RATED not in self.subgraph.selected_edge_types:
            problems.append(f"subgraph.edge_types must include {RATED.rel} (the recommendation task)")
        if len(set(self.seeds)) != len(self.seeds):
            problems.append(f"seeds={self.seeds} repeat a seed")
        if problems:
            raise ValueError("; ".join(problems))
        return self


class PipelineParams(_Params):
    """Refresh, then train on the fresh snapshot (the train snapshot path is the refresh's)."""

    refresh: RefreshParams = Field(default_factory=RefreshParams, description="the ETL refresh")
    train: TrainParams = Field(default_factory=TrainParams, description="the training run")
