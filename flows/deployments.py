"""The deployments ``cinegraph serve`` registers: a scheduled refresh, training and the pipeline
on demand. Built as objects first so tests can check schedule and parameter schema unserved."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from prefect.deployments.runner import RunnerDeployment

from cinegraph.errors import CinegraphError
from cinegraph.flows.pipeline import pipeline
from cinegraph.flows.refresh import etl_refresh
from cinegraph.flows.train import train

log = logging.getLogger(__name__)

DEFAULT_REFRESH_CRON = "0 3 * * *"  # daily, 03:00


def default_parameters(mirror: str | None, out: Path) -> dict[str, dict[str, Any]]:
    """Each deployment's ``params`` defaults: where the dumps come from and where everything is
    written, so scheduled and UI runs read the mirror and write under ``out`` wherever the worker
    was started."""
    refresh = {"out": str(out), **({"mirror": mirror} if mirror else {})}
    train_params = {"snapshot": str(out / "snapshot"), "out": str(out / "runs")}
    return {
        "etl-refresh": {"params": refresh},
        "train": {"params": train_params},
        "pipeline": {"params": {"refresh": refresh, "train": train_params}},
    }


def build_deployments(
    refresh_cron: str = DEFAULT_REFRESH_CRON,
    timezone: str = "UTC",
    *,
    mirror: str | None = None,
    out: Path = Path("out"),
) -> list[RunnerDeployment]:
    """``etl-refresh`` on ``refresh_cron``; ``train`` and ``pipeline`` run when asked (UI, API)."""
    from prefect.schedules import Cron

    try:
        schedule = Cron(refresh_cron, timezone=timezone)
    except ValueError as exc:
        raise CinegraphError(f"--refresh-cron {refresh_cron!r} / --timezone {timezone!r}: {exc}") from None
    defaults = default_parameters(mirror, Path(out).resolve())
    deployments = [
        RunnerDeployment.from_flow(
            etl_refresh,
            "etl-refresh",
            schedules=[schedule],
            parameters=defaults["etl-refresh"],
            description="Download what changed upstream, stage, match, snapshot, load into Neo4j.",
            tags=["cinegraph", "etl"],
        ),
        RunnerDeployment.from_flow(
            train,
            "train",
            parameters=defaults["train"],
            description="Train the fused GCN+HGT recommender (benchmark mode adds the baselines).",
            tags=["cinegraph", "train"],
        ),
        RunnerDeployment.from_flow(
            pipeline,
            "pipeline",
            parameters=defaults["pipeline"],
            description="Refresh, then train.",
            tags=["cinegraph"],
        ),
    ]
    for deployment in deployments:
        schema = deployment._parameter_openapi_schema
        schema.properties = form_schema(schema.properties)
        schema.definitions = form_schema(schema.definitions)
    return deployments


def form_schema(node: Any) -> Any:
    """A parameter schema as the form should render it: an optional field (``anyOf`` of a type
    and null, default null) becomes its type (a yes/no field a choice of true or false, so that
    it can stay empty: "decide for me") with no default, and nulls leave the defaults, so an
    empty field is left out of the run's parameters (the model's default applies) instead of
    being shown as a null."""
    if isinstance(node, list):
        return [form_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    node = {k: _without_nulls(v) if k == "default" else form_schema(v) for k, v in node.items()}
    options = node.get("anyOf")
    if isinstance(options, list) and {"type": "null"} in options and len(options) == 2:
        (kept,) = [o for o in options if o != {"type": "null"}]
        if kept == {"type": "boolean"}:  # a checkbox cannot be left empty; a choice can
            kept = {"enum": [True, False]}
        node = {**kept, **{k: v for k, v in node.items() if k not in ("anyOf", "default")}}
    return node


def _without_nulls(value: Any) -> Any:
    """A default value with its null members left out (they are what an empty field means)."""
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    return value


def serve(
    refresh_cron: str = DEFAULT_REFRESH_CRON,
    timezone: str = "UTC",
    *,
    mirror: str | None = None,
    out: Path = Path("out"),
    limit: int = 1,
) -> int:
    """Register the deployments with the Prefect API and run their flows here until stopped."""
    from prefect import serve as prefect_serve

    deployments = build_deployments(refresh_cron, timezone, mirror=mirror, out=out)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per API poll otherwise
    log.info(
        "serving %s (refresh cron %r %s; mirror %s; out %s)",
        [d.name for d in deployments],
        refresh_cron,
        timezone,
        mirror or "official sites",
        Path(out).resolve(),
    )
    prefect_serve(*deployments, limit=limit)
    return 0
