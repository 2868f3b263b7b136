"""Parameters of the train and pipeline flows: typed pydantic models, so the Prefect UI renders a
form with the defaults and refuses bad input before a run starts."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from cinegraph.flows.params import RefreshParams
from cinegraph.graph_store.subgraph import ExportFilter
from cinegraph.models.config import TrainConfig
from cinegraph.schema import MOVIE, RATED, USER

# A folder name: no separators, no leading dot (so never "." or "..").
RUN_NAME_PATTERN = r"^[A-Za-z0-9_-][A-Za-z0-9_.-]*$"


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TrainParams(_Params):
    """Where the graph comes from, which part of it, the model configuration and the seeds."""

    snapshot: str = Field(
        "out/snapshot", title="Snapshot folder", description="the snapshot read when the source is the snapshot"
    )
    out: str = Field(
        "out/runs",
        title="Runs folder",
        description="each run writes its checkpoints, curves and report to OUT/RUN_NAME",
    )
    source: Literal["auto", "snapshot", "neo4j"] = Field(
        "auto",
        title="Graph source",
        description="read the graph from Neo4j or the snapshot; auto: Neo4j when NEO4J_URI is set",
    )
    mode: Literal["train", "benchmark"] = Field(
        "train", title="Mode", description="train: the fused model; benchmark: the baselines and ablations too"
    )
    subgraph: ExportFilter = Field(
        default_factory=ExportFilter,
        title="Subgraph",
        description="which users, ratings, movies and types to train on",
    )
    model: TrainConfig = Field(
        default_factory=TrainConfig,
        title="Model",
        description="model sizes, task weights, epochs, learning rates, device (cpu or cuda)",
    )
    run_name: str | None = Field(
        None,
        pattern=RUN_NAME_PATTERN,
        max_length=100,
        title="Run name",
        description="names the run folder and its Neo4j results (rerunning a name replaces them); "
        "empty: the Prefect run's name",
    )
    seeds: list[Annotated[int, Field(ge=0)]] = Field(
        [0],
        min_length=1,
        json_schema_extra={"uniqueItems": True},
        title="Seeds",
        description="one run per seed; the evaluation reports mean ± std over them",
    )
    task_runner: Literal["local", "dask"] = Field(
        "local",
        title="Seeds run on",
        description="local: one seed after another in this process; dask: in parallel on a Dask cluster",
    )
    dask_address: str | None = Field(
        None,
        title="Dask scheduler address",
        description="an existing Dask cluster's scheduler, e.g. tcp://10.0.0.5:8786 (the run folder must be "
        "shared with its workers); empty: a temporary local cluster with one worker per seed",
    )
    top_k: int = Field(20, ge=1, le=1000, title="Top K", description="recommendations per user written to Neo4j")
    write_back: bool | None = Field(
        None,
        title="Write back to Neo4j",
        description="write recommendations and embeddings to Neo4j; empty: when reading from Neo4j",
    )
    refit: bool = Field(
        True,
        title="Refit before writing back",
        description="train again on every rating, for the epochs chosen on validation, before writing back",
    )
    neo4j_database: str = Field("neo4j", title="Neo4j database", description="Neo4j database name")

    @model_validator(mode="after")
    def _check(self) -> TrainParams:
        problems = []
        if not {USER, MOVIE} <= set(self.subgraph.selected_node_types):
            problems.append(f"subgraph.node_types must include {USER.label} and {MOVIE.label}")
        if RATED not in self.subgraph.selected_edge_types:
            problems.append(f"subgraph.edge_types must include {RATED.rel} (the recommendation task)")
        if len(set(self.seeds)) != len(self.seeds):
            problems.append(f"seeds={self.seeds} repeat a seed")
        if self.dask_address and self.task_runner != "dask":
            problems.append(f"dask_address={self.dask_address!r} needs task_runner='dask'")
        if problems:
            raise ValueError("; ".join(problems))
        return self


class TuneParams(_Params):
    """One model's hyperparameter search on the validation split, its trials one after the other
    in this process or several at a time on a Dask cluster."""

    snapshot: str = Field("out/snapshot", title="Snapshot folder", description="the snapshot the trials train on")
    model: Literal["fused", "lightgcn", "mf_bpr", "ease", "itemknn", "content_knn"] = Field(
        "fused", title="Model", description="the model whose settings are searched"
    )
    out: str = Field(
        "out/tuned.json",
        title="Tuned config",
        description="TrainConfig JSON the best setting is written into (the model's fields, or baselines.<model>)",
    )
    config: TrainConfig = Field(
        default_factory=TrainConfig,
        title="Starting config",
        description="every field the search leaves alone: epochs, device, split, seed",
    )
    trials: int = Field(20, ge=1, title="Trials", description="most trials")
    timeout_s: float | None = Field(
        None, gt=0, title="Timeout (s)", description="no new batch of trials after this many seconds; empty: none"
    )
    parallel: int = Field(
        1,
        ge=1,
        title="Trials at once",
        description="trials proposed and trained together (TPE proposes each batch before seeing its results)",
    )
    task_runner: Literal["local", "dask"] = Field(
        "local",
        title="Trials run on",
        description="local: one after another in this process; dask: a batch at a time on a Dask cluster",
    )
    dask_address: str | None = Field(
        None,
        title="Dask scheduler address",
        description="an existing Dask cluster's scheduler, e.g. tcp://10.0.0.5:8786 (each worker reads the snapshot "
        "folder); empty: a temporary local cluster with one worker per parallel trial",
    )

    @model_validator(mode="after")
    def _check(self) -> TuneParams:
        if self.dask_address and self.task_runner != "dask":
            raise ValueError(f"dask_address={self.dask_address!r} needs task_runner='dask'")
        return self


class PipelineParams(_Params):
    """Refresh, then train on the fresh snapshot (the train snapshot path is the refresh's)."""

    refresh: RefreshParams = Field(
        default_factory=RefreshParams,
        title="Refresh",
        description="the ETL refresh (download, stage, match, snapshot, load)",
    )
    train: TrainParams = Field(
        default_factory=TrainParams, title="Train", description="the training run on the refreshed snapshot"
    )
