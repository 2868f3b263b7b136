"""The ``etl-refresh`` flow: one cached, retried task per source file, then stage, match,
snapshot and (when a Neo4j target is configured) load, all under a lock on the output folder."""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any, TypedDict

import duckdb
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import TaskRun
from prefect.context import TaskRunContext
from prefect.states import State
from prefect.tasks import Task, exponential_backoff

from cinegraph.etl.config import EtlConfig
from cinegraph.etl.download import HTTPStatusError, RetryPolicy
from cinegraph.etl.match import MatchReport, match_titles
from cinegraph.etl.pipeline import REVIEW_FILE, WAREHOUSE_FILE, source_entries
from cinegraph.etl.snapshot import write_snapshot
from cinegraph.etl.sources import (
    IMDB_FILES,
    MISSING,
    FetchResult,
    fetch_imdb_file,
    fetch_movielens,
    resolve_bases,
    source_location,
    upstream_version,
)
from cinegraph.etl.staging import StageReport, stage
from cinegraph.etl.warehouse import connect
from cinegraph.flows import artifacts
from cinegraph.flows.params import RefreshParams
from cinegraph.graph_store.connection import URI_VAR, open_driver, settings_from_env
from cinegraph.graph_store.load import load_snapshot
from cinegraph.graph_store.lock import locked

RAW_DIR = "raw"
# Each download task try is one HTTP attempt: Prefect owns the retrying.
ONE_TRY = RetryPolicy(attempts=1, backoff_s=0.0, timeout_s=60.0)


def retry_unless_4xx(task: Task, task_run: TaskRun, state: State) -> bool:
    """Retry network failures and 5xx; a 4xx will not get better, so give up at once."""
    try:
        state.result()
    except HTTPStatusError as exc:
        return not 400 <= exc.status < 500
    except Exception:  # noqa: BLE001 - any other failure of a network step may be transient
        return True
    return True


def upstream_cache_key(context: TaskRunContext, parameters: dict[str, Any]) -> str:
    """Downloads are keyed on where the file comes from, what upstream says its version is (ETag,
    Last-Modified + length, or content hash) and where it goes; nothing else."""
    parts = (parameters["location"], parameters["version"], str(Path(parameters["raw_dir"]).resolve()))
    return "download-" + hashlib.sha256("\n".join(parts).encode()).hexdigest()


class _Retries(TypedDict):
    """The retry options of every network task, typed so that ``task(**_NETWORK)`` is checked."""

    retries: int
    retry_delay_seconds: Callable[[int], list[float]]
    retry_jitter_factor: float
    retry_condition_fn: Callable[[Task, TaskRun, State], bool]


_NETWORK = _Retries(
    retries=4,
    retry_delay_seconds=exponential_backoff(backoff_factor=2),
    retry_jitter_factor=0.5,
    retry_condition_fn=retry_unless_4xx,
)


@task(name="probe-upstream", task_run_name="probe {location}", cache_policy=NO_CACHE, **_NETWORK)
def probe(location: str, raw_dir: Path) -> str:
    return upstream_version(location, raw_dir, timeout_s=ONE_TRY.timeout_s)


@task(
    name="download-movielens",
    task_run_name="download {variant}",
    cache_key_fn=upstream_cache_key,
    cache_expiration=timedelta(hours=24),
    persist_result=True,
    **_NETWORK,
)
def download_movielens(
    variant: str, base: str, location: str, version: str, raw_dir: Path, max_extract_bytes: int
) -> tuple[Path, FetchResult]:
    return fetch_movielens(variant, raw_dir, base, progress=False, retry=ONE_TRY, max_extract_bytes=max_extract_bytes)


@task(
    name="download-imdb",
    task_run_name="download {key}",
    cache_key_fn=upstream_cache_key,
    cache_expiration=timedelta(hours=24),
    persist_result=True,
    **_NETWORK,
)
def download_imdb(key: str, base: str, location: str, version: str, raw_dir: Path) -> FetchResult:
    return fetch_imdb_file(key, raw_dir, base, progress=False, retry=ONE_TRY)


@contextmanager
def warehouse(config: EtlConfig) -> Iterator[duckdb.DuckDBPyConnection]:
    con = connect(config.out / WAREHOUSE_FILE, memory_limit=config.memory_limit, threads=config.threads)
    try:
        yield con
    finally:
        con.close()


@task(name="stage", cache_policy=NO_CACHE)
def stage_sources(config: EtlConfig, ml_folder: Path, imdb: dict[str, FetchResult]) -> StageReport:
    with warehouse(config) as con:
        return stage(
            con,
            ml_folder,
            {key: r.path for key, r in imdb.items()},
            title_types=config.film_title_types,
            max_reject_fraction=config.max_reject_fraction,
        )


@task(name="match", cache_policy=NO_CACHE)
def match(config: EtlConfig) -> MatchReport:
    with warehouse(config) as con:
        return match_titles(con, config.match, review_path=config.out / REVIEW_FILE, overrides_path=config.overrides)


@task(name="snapshot", cache_policy=NO_CACHE)
def snapshot(
    config: EtlConfig, sources: list[dict[str, Any]], report: StageReport, matched: MatchReport
) -> tuple[Path, dict[str, Any]]:
    with warehouse(config) as con:
        return write_snapshot(con, config.out, sources=sources, rejects=report.rejects, match=matched.model_dump())


@task(name="load-neo4j", cache_policy=NO_CACHE)
def load_graph(snapshot_dir: Path, database: str, verify: bool) -> list[dict[str, Any]]:
    """Make the graph equal to the snapshot; one row of statistics per node and edge type."""
    progress = artifacts.Progress("neo4j-load-progress", 1, f"loading {snapshot_dir}")
    with open_driver(settings_from_env()) as driver:
        report = load_snapshot(driver, snapshot_dir, database=database, progress=False, verify=verify)
    progress.step()
    get_run_logger().info("loaded snapshot %s in %.1f s", report.snapshot_id, report.seconds)
    return artifacts.load_rows(report.nodes, report.edges)


def neo4j_configured(explicit: bool | None) -> bool:
    return explicit if explicit is not None else bool(os.environ.get(URI_VAR))


@flow(name="etl-refresh")
def etl_refresh(params: RefreshParams = RefreshParams()) -> dict[str, Any]:  # noqa: B008
    """Download what changed upstream, stage it in DuckDB, match titles, write the snapshot, and
    load it into Neo4j when a target is configured (``NEO4J_URI``)."""
    logger = get_run_logger()
    out = params.out
    ml_base, imdb_base = resolve_bases(params.mirror, params.movielens_base, params.imdb_base)
    with locked(out) as waited:
        if waited > 1:
            logger.info("waited %.1f s for another run on %s", waited, out)
        ml_folder, ml, imdb = fetch_all(params, out / RAW_DIR, ml_base, imdb_base)
        report = stage_sources(params, ml_folder, imdb)
        matched = match(params)
        snap, manifest = snapshot(params, source_entries(ml_folder, ml, imdb, report), report, matched)
        loaded = None
        if neo4j_configured(params.load_neo4j):
            loaded = load_graph(snap, params.neo4j_database, params.verify_graph)
    artifacts.publish_table("snapshot-counts", artifacts.counts_rows(manifest), f"snapshot {snap}")
    artifacts.publish_markdown(
        "match-quality",
        artifacts.match_markdown(manifest["match"], out / REVIEW_FILE),
        "title matching quality and review queue",
    )
    if loaded is not None:
        artifacts.publish_table("neo4j-load", loaded, "Neo4j load statistics")
    logger.info(
        "snapshot %s: %s nodes, %s edges; matched %d, review %d",
        snap,
        sum(manifest["counts"]["nodes"].values()),
        sum(manifest["counts"]["edges"].values()),
        matched.matched,
        matched.review,
    )
    return {
        "snapshot": str(snap),
        "manifest": manifest,
        "downloads": {ml.name: ml.status, **{r.name: r.status for r in imdb.values()}},
        "load": loaded,
    }


def fetch_all(
    params: RefreshParams, raw: Path, ml_base: str, imdb_base: str
) -> tuple[Path, FetchResult, dict[str, FetchResult]]:
    """One probe and one (cached) download task per source file, in turn: they share the fetch
    state file. A download whose local copy is gone ignores the cache."""
    expiry = timedelta(hours=params.download_cache_hours)
    delays = exponential_backoff(backoff_factor=params.retry_backoff_s)
    progress = artifacts.Progress("downloads", 1 + len(IMDB_FILES), "source files up to date")
    location = source_location(ml_base, f"{params.variant}.zip")
    fresh = not (raw / "movielens" / params.variant).is_dir()
    download = download_movielens.with_options(refresh_cache=fresh, cache_expiration=expiry, retry_delay_seconds=delays)
    ml_state = download(
        params.variant, ml_base, location, probe(location, raw), raw, params.max_extract_bytes, return_state=True
    )
    ml_folder, ml = ml_state.result()
    ml = _unless_cached(ml_state, ml)
    progress.step()
    imdb: dict[str, FetchResult] = {}
    for key in IMDB_FILES:
        location = source_location(imdb_base, f"{key}.tsv.gz")
        version = probe(location, raw)
        fresh = not Path(location).is_file() and version != MISSING and not (raw / "imdb" / f"{key}.tsv.gz").is_file()
        state = download_imdb.with_options(refresh_cache=fresh, cache_expiration=expiry, retry_delay_seconds=delays)(
            key, imdb_base, location, version, raw, return_state=True
        )
        imdb[key] = _unless_cached(state, state.result())
        progress.step()
    return ml_folder, ml, imdb


def _unless_cached(state: State, result: FetchResult) -> FetchResult:
    """A download answered from the cache fetched nothing this run: say so in the manifest."""
    if state.name == "Cached" and result.status == "downloaded":
        return dataclasses.replace(result, status="not_modified")
    return result
