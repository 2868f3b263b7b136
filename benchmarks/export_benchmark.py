"""Export throughput: subgraphs streamed out of Neo4j into Arrow tables, against the same filter
applied to the snapshot in DuckDB, and the HeteroData build on top.

It loads the snapshot once, then for each filter runs :func:`graph_store.export.export_tables`
(one warm-up, then ``--repeats`` times, the median is reported) and :func:`graph_store.export.filter_snapshot`,
checks that both give the same rows, and reports rows/s (nodes + relationships exported). By
default it starts its own embedded Neo4j in a temporary home; ``--use-env`` uses
NEO4J_URI/NEO4J_USER/NEO4J_PASSWORD instead (and wipes that database). Writes a Markdown table.

    .venv/bin/python benchmarks/export_benchmark.py            # ETL on the mirror, own server
    .venv/bin/python benchmarks/export_benchmark.py --snapshot out/snapshot
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
from neo4j import Driver

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from benchmarks.neo4j_bench import DEFAULT_MIRROR, bench_driver, bench_snapshot, machine_lines, wipe  # noqa: E402
from cinegraph import schema  # noqa: E402
from cinegraph.graph_store.export import ExportFilter, export_tables, filter_snapshot  # noqa: E402
from cinegraph.graph_store.load import load_snapshot  # noqa: E402
from cinegraph.graph_store.pyg import build_hetero_data  # noqa: E402

log = logging.getLogger("export_benchmark")
BENCH_PASSWORD = "export-benchmark-password"

FILTERS: dict[str, ExportFilter] = {
    "whole graph": ExportFilter(),
    "users with >= 50 ratings, movies 1990-2010": ExportFilter(min_user_ratings=50, year_min=1990, year_max=2010),
    "ratings 2010-2015 (window)": ExportFilter(
        rating_after=1_262_304_000, rating_before=1_420_070_400, min_user_ratings=1
    ),
    "MovieLens only (User, Movie, Genre)": ExportFilter(
        node_types=(schema.USER.label, schema.MOVIE.label, schema.GENRE.label)
    ),
}


@dataclass(frozen=True)
class Run:
    label: str
    rows: int
    neo4j_seconds: float
    duckdb_seconds: float
    hetero_seconds: float

    @property
    def neo4j_rows_per_s(self) -> float:
        return self.rows / self.neo4j_seconds if self.neo4j_seconds else 0.0

    @property
    def duckdb_rows_per_s(self) -> float:
        return self.rows / self.duckdb_seconds if self.duckdb_seconds else 0.0


def _timed(fn, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
    started = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - started


def _same_rows(a: pa.Table, b: pa.Table) -> bool:
    def rows(t: pa.Table) -> set[tuple]:
        return {tuple(tuple(v) if isinstance(v, list) else v for v in r.values()) for r in t.to_pylist()}

    return rows(a) == rows(b)


def _run(driver: Driver, snapshot: Path, label: str, flt: ExportFilter, repeats: int) -> Run:
    export_tables(driver, flt)  # warm-up: query plans and page cache
    seconds = []
    for _ in range(repeats):
        tables, elapsed = _timed(export_tables, driver, flt)
        seconds.append(elapsed)
    reference, duck_seconds = _timed(filter_snapshot, snapshot, flt)
    differ = [name for name in tables if not _same_rows(tables[name], reference[name])]
    if differ:
        raise SystemExit(f"{label}: Neo4j export and DuckDB filter differ on {differ}")
    _, hetero_seconds = _timed(build_hetero_data, tables, flt.selected_node_types, flt.selected_edge_types)
    run = Run(
        label,
        rows=sum(t.num_rows for t in tables.values()),
        neo4j_seconds=statistics.median(seconds),
        duckdb_seconds=duck_seconds,
        hetero_seconds=hetero_seconds,
    )
    log.info(
        "%s: %d rows, %.0f rows/s from Neo4j, %.0f rows/s DuckDB",
        label,
        run.rows,
        run.neo4j_rows_per_s,
        run.duckdb_rows_per_s,
    )
    return run


def render(snapshot: str, runs: list[Run], repeats: int, machine: list[str]) -> str:
    lines = [
        "# Export throughput",
        "",
        f"Snapshot: {snapshot}, loaded into Neo4j once. Rows are the nodes plus relationships of the",
        "exported subgraph. Neo4j: `graph_store.export.export_tables` (streamed READ queries into",
        f"Arrow, median of {repeats} runs after a warm-up). DuckDB: `filter_snapshot`, the same filter over the",
        "Parquet snapshot (checked equal). HeteroData: `graph_store.pyg.build_hetero_data` on the",
        "export. Produced by `benchmarks/export_benchmark.py`.",
        "",
        *machine,
        "",
        "| subgraph | rows | Neo4j s | Neo4j rows/s | DuckDB s | DuckDB rows/s | HeteroData s |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in runs:
        lines.append(
            f"| {r.label} | {r.rows:,} | {r.neo4j_seconds:.2f} | {r.neo4j_rows_per_s:,.0f} | "
            f"{r.duckdb_seconds:.2f} | {r.duckdb_rows_per_s:,.0f} | {r.hetero_seconds:.2f} |"
        )
    lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--snapshot", type=Path, help="snapshot folder (default: run the ETL on the mirror)")
    parser.add_argument("--mirror", type=Path, default=DEFAULT_MIRROR)
    parser.add_argument("--repeats", type=int, default=3, help="Neo4j exports per filter (median)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "export.md")
    parser.add_argument("--use-env", action="store_true", help="use NEO4J_URI/USER/PASSWORD (wipes that database!)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if args.repeats < 1:
        parser.error(f"--repeats {args.repeats}: must be at least 1")

    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="cinegraph-export-bench-")))
        snapshot = bench_snapshot(args.snapshot, args.mirror, tmp)
        described = (
            f"`{snapshot}`"
            if args.snapshot
            else f"ml-latest-small + IMDb sample from `{args.mirror.name}/` (ETL, links mode)"
        )
        driver = bench_driver(stack, use_env=args.use_env, password=BENCH_PASSWORD)
        machine = machine_lines(driver, private=not args.use_env)
        wipe(driver)
        load_snapshot(driver, snapshot, progress=False)
        runs = [_run(driver, snapshot, label, flt, args.repeats) for label, flt in FILTERS.items()]
        wipe(driver)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render(described, runs, args.repeats, machine))
    log.info("wrote %s", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
