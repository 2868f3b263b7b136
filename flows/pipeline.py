"""The ``pipeline`` flow (refresh, then train on the fresh snapshot) and ``cinegraph demo``, the
main job: the pipeline end to end, embedded by default, with Neo4j when asked for."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger

from cinegraph.flows import artifacts
from cinegraph.flows.params import RefreshParams
from cinegraph.flows.refresh import etl_refresh
from cinegraph.flows.train import train
from cinegraph.flows.train_params import PipelineParams, TrainParams
from cinegraph.graph_store.connection import PASSWORD_VAR, URI_VAR
from cinegraph.models.config import TrainConfig

log = logging.getLogger(__name__)

# Sized so the demo (ETL + both branches + fine-tuning) ends in a few minutes on 2 CPU cores.
DEMO_MODEL = {"hidden_dim": 32, "gcn_epochs": 20, "hgt_epochs": 4, "fusion_epochs": 3, "eval_every": 2, "patience": 3}
DEMO_NEO4J_PORT = 7687


@flow(name="pipeline")
def pipeline(params: PipelineParams = PipelineParams()) -> dict[str, Any]:  # noqa: B008
    """Refresh the snapshot (and the graph), then train on what the refresh produced."""
    logger = get_run_logger()
    refreshed = etl_refresh(params.refresh)
    trained = train(params.train.model_copy(update={"snapshot": refreshed["snapshot"]}))
    logger.info("pipeline done: snapshot %s, report %s", refreshed["snapshot"], trained["report"])
    return {"refresh": refreshed, "train": trained}


def demo_params(variant: str, out: Path, mirror: str | None) -> PipelineParams:
    """The demo: one seed, small epochs, everything under ``out``."""
    return PipelineParams(
        refresh=RefreshParams(variant=variant, out=out, mirror=mirror, progress=False),
        train=TrainParams(
            snapshot=str(out / "snapshot"), out=str(out / "runs"), run_name="demo", model=TrainConfig(**DEMO_MODEL)
        ),
    )


def run_demo(
    variant: str,
    out: Path,
    mirror: str | None,
    *,
    neo4j: bool = False,
    neo4j_home: Path = Path(".neo4j/demo"),
    neo4j_port: int = DEMO_NEO4J_PORT,
) -> str:
    """Run the pipeline flow; with ``neo4j`` start the local server first (password from
    NEO4J_PASSWORD) so the graph is loaded and results are written back. Returns the summary."""
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per Prefect API call otherwise
    logging.getLogger("cinegraph.models.early_stopping").setLevel(logging.WARNING)  # tasks log each evaluation
    if neo4j and not os.environ.get(URI_VAR):
        from cinegraph.graph_store import server

        state = server.start(neo4j_home, neo4j_port, password=os.environ.get(PASSWORD_VAR, ""))
        os.environ[URI_VAR] = state.uri or f"bolt://127.0.0.1:{neo4j_port}"
    result = pipeline(demo_params(variant, out, mirror))
    return demo_summary(result)


def demo_summary(result: dict[str, Any]) -> str:
    refreshed, trained = result["refresh"], result["train"]
    counts = refreshed["manifest"]["counts"]
    lines = [
        "nodes: " + ", ".join(f"{k} {v:,}" for k, v in counts["nodes"].items()),
        "edges: " + ", ".join(f"{k} {v:,}" for k, v in counts["edges"].items() if v),
        "",
        "evaluation (test split):",
        artifacts.markdown_table(artifacts.evaluation_rows(trained["summary"])),
        "",
        f"snapshot: {refreshed['snapshot']}",
        f"report:   {trained['report']}",
    ]
    if refreshed.get("load") is not None:
        lines.append(f"Neo4j:    loaded; {trained.get('write_back')} written back (run {trained['run_id']})")
    return "\n".join(lines)
