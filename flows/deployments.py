"""The deployments ``cinegraph serve`` registers: a scheduled refresh, training and the pipeline
on demand. Built as objects first so tests can check schedule and parameter schema unserved."""

from __future__ import annotations

import logging

from prefect.deployments.runner import RunnerDeployment

from flows.pipeline import pipeline
from flows.refresh import etl_refresh
from flows.train import train
from graph_store.errors import CinegraphError

log = logging.getLogger(__name__)

DEFAULT_REFRESH_CRON = "0 3 * * *"  # daily, 03:00


def build_deployments(
    refresh_cron: str = DEFAULT_REFRESH_CRON, timezone: str = "UTC"
) -> list[RunnerDeployment]:
    """``etl-refresh`` on ``refresh_cron``; ``train`` and ``pipeline`` run when asked (UI, API)."""
    from prefect.schedules import Cron

    try:
        schedule = Cron(refresh_cron, timezone=timezone)
    except ValueError as exc:
        raise CinegraphError(f"--refresh-cron {refresh_cron!r} / --timezone {timezone!r}: {exc}") from None
    return [
        etl_refresh.to_deployment(
            "etl-refresh",
            schedules=[schedule],
            description="Download what changed upstream, stage, match, snapshot, load into Neo4j.",
            tags=["cinegraph", "etl"],
        ),
        train.to_deployment(
            "train",
            description="Train the fused GCN+HGT recommender (benchmark mode adds the baselines).",
            tags=["cinegraph", "train"],
        ),
        pipeline.to_deployment(
            "pipeline",
            description="Refresh, then train.",
            tags=["cinegraph"],
        ),
    ]


def serve(refresh_cron: str = DEFAULT_REFRESH_CRON, timezone: str = "UTC", limit: int = 1) -> int:
    """Register the deployments with the Prefect API and run their flows here until stopped."""
    from prefect import serve as prefect_serve

    deployments = build_deployments(refresh_cron, timezone)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per API poll otherwise
    log.info("serving %s (refresh cron %r %s)", [d.name for d in deployments], refresh_cron, timezone)
    prefect_serve(*deployments, limit=limit)
    return 0
