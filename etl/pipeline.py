"""The ETL as one call: fetch -> stage -> match -> snapshot, and a text summary of a run."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cinegraph.etl import warehouse
from cinegraph.etl.config import EtlConfig
from cinegraph.etl.match import MatchReport, match_titles
from cinegraph.etl.resources import StageUsage, recording, usage
from cinegraph.etl.snapshot import write_snapshot
from cinegraph.etl.sources import FetchResult, fetch_imdb, fetch_movielens, resolve_bases
from cinegraph.etl.staging import IMDB, StageReport, stage
from cinegraph.graph_store.lock import locked

log = logging.getLogger(__name__)

WAREHOUSE_FILE = "warehouse.duckdb"
REVIEW_FILE = "match_review.csv"
RUN_LOG_FILE = "etl_run.json"


@dataclass(frozen=True)
class EtlResult:
    """Where a run put things and what it counted (the manifest repeats the counts)."""

    snapshot: Path
    manifest: dict[str, Any]
    stage: StageReport
    match: MatchReport
    warehouse: Path
    review: Path
    seconds: float


def run_etl(config: EtlConfig) -> EtlResult:
    """Fetch the variant and the IMDb files, stage them, match titles and write the snapshot
    under ``config.out/snapshot`` (swapped in whole; a failure leaves the previous one), holding
    the lock of ``config.out`` so a second run into it waits. Each stage's wall time and peak RSS
    go to ``config.out/etl_run.json``."""
    with locked(config.out):
        return _run_etl(config)


def _run_etl(config: EtlConfig) -> EtlResult:
    start = time.perf_counter()
    raw_dir = config.out / "raw"
    with recording() as stages:
        with usage("fetch"):
            ml_base, imdb_base = resolve_bases(config.mirror, config.movielens_base, config.imdb_base)
            ml_dir, ml_fetch = fetch_movielens(
                config.variant, raw_dir, ml_base, progress=config.progress, max_extract_bytes=config.max_extract_bytes
            )
            imdb_fetch = fetch_imdb(raw_dir, imdb_base, progress=config.progress)
        db_path = config.out / WAREHOUSE_FILE
        review = config.out / REVIEW_FILE
        con = warehouse.connect(db_path, memory_limit=config.memory_limit, threads=config.threads)
        try:
            with usage("stage"):
                staged = stage(
                    con,
                    ml_dir,
                    {name: result.path for name, result in imdb_fetch.items()},
                    title_types=config.film_title_types,
                    max_reject_fraction=config.max_reject_fraction,
                )
            with usage("match"):
                matched = match_titles(con, config.match, review_path=review, overrides_path=config.overrides)
            with usage("snapshot"):
                path, manifest = write_snapshot(
                    con,
                    config.out,
                    sources=source_entries(ml_dir, ml_fetch, imdb_fetch, staged),
                    rejects=staged.rejects,
                    match=matched.model_dump(),
                )
        finally:
            con.close()
    seconds = time.perf_counter() - start
    write_run_log(config.out / RUN_LOG_FILE, stages, seconds)
    return EtlResult(path, manifest, staged, matched, db_path, review, seconds)


def write_run_log(path: Path, stages: list[StageUsage], seconds: float) -> None:
    """The run's stages in order (nested ones before the stage holding them), with the total."""
    record = {
        "seconds": round(seconds, 3),
        "peak_rss_bytes": max((s.peak_rss_bytes for s in stages), default=0),
        "stages": [
            {"name": s.name, "seconds": round(s.seconds, 3), "peak_rss_bytes": s.peak_rss_bytes} for s in stages
        ],
    }
    path.write_text(json.dumps(record, indent=2) + "\n")


def source_entries(
    ml_dir: Path, ml_fetch: FetchResult, imdb_fetch: dict[str, FetchResult], staged: StageReport
) -> list[dict[str, Any]]:
    """Manifest ``sources``: the MovieLens archive, each staged member of it (own sha256), and
    each IMDb file, with the rows staged from it."""
    ml_files = [name for name in staged.rows if (ml_dir / name).is_file()]
    entries = [_entry(ml_fetch.name, ml_fetch, sum(staged.rows[n] for n in ml_files))]
    for name in ml_files:
        member = ml_dir / name
        entries.append(
            {
                "file": f"{ml_fetch.name}/{name}",
                "url": ml_fetch.url,
                "sha256": _sha256(member),
                "bytes": member.stat().st_size,
                "rows": staged.rows[name],
                "status": ml_fetch.status,
            }
        )
    for key, result in imdb_fetch.items():
        entries.append(_entry(result.name, result, staged.rows.get(IMDB[key].name, 0)))
    return entries


def _entry(file: str, result: FetchResult, rows: int) -> dict[str, Any]:
    return {
        "file": file,
        "url": result.url,
        "sha256": result.sha256,
        "bytes": result.bytes,
        "rows": rows,
        "status": result.status,
    }


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def summarize(result: EtlResult) -> str:
    """A few human lines: counts, rejects, match quality and where the outputs are."""
    counts = result.manifest["counts"]
    nodes = ", ".join(f"{k} {v:,}" for k, v in counts["nodes"].items())
    edges = ", ".join(f"{k} {v:,}" for k, v in counts["edges"].items() if v)
    bad = {f: n for f, n in result.stage.rejects.items() if n}
    rejects = ", ".join(f"{f} {n:,} ({result.stage.reject_fraction(f):.2%})" for f, n in bad.items()) or "none"
    m = result.match
    lines = [
        f"ETL done in {result.seconds:.1f} s (MovieLens format {result.stage.ml_format})",
        f"nodes: {nodes}",
        f"edges: {edges}",
        f"rejected rows: {rejects}",
        f"matching ({m.mode}): {m.matched:,} matched, {m.unmatched:,} unmatched, {m.review:,} for review",
    ]
    if m.evaluation is not None:
        e = m.evaluation
        lines.append(
            f"fuzzy vs links: precision {e.precision:.4f}, recall {e.recall:.4f}, F1 {e.f1:.4f} "
            f"over {e.truth_pairs:,} linked titles present in IMDb"
        )
    lines += [f"review file: {result.review}", f"warehouse: {result.warehouse}", f"snapshot: {result.snapshot}"]
    return "\n".join(lines)
