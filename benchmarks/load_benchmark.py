"""Neo4j load throughput: the batched loader at several batch sizes against one-row-per-query.

Each run loads the snapshot into an empty database with :func:`graph_store.load.load_snapshot` and
reports nodes/s and relationships/s over the write phases. The baseline is the same loader with
``batch_size=1`` (one ``UNWIND`` of one row per transaction, i.e. one query per row) on a slice of
the same data (the first ``--baseline-rows`` ratings and their users and movies), which is also
loaded batched so the ratio compares like with like.

By default it starts its own embedded Neo4j in a temporary home (it wipes the database between
runs); ``--use-env`` uses NEO4J_URI/NEO4J_USER/NEO4J_PASSWORD instead. Writes a Markdown table.

    .venv/bin/python benchmarks/load_benchmark.py --snapshot out/snapshot
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from neo4j import Driver

from graph_store import schema
from graph_store.load import DEFAULT_BATCH_SIZE, LoadReport, load_snapshot
from graph_store.snapshot_io import read_snapshot
from neo4j_bench import DEFAULT_MIRROR, ROOT, bench_driver, bench_snapshot, machine_lines, wipe

log = logging.getLogger("load_benchmark")
BENCH_PASSWORD = "load-benchmark-password"


@dataclass(frozen=True)
class Run:
    label: str
    batch_size: int
    nodes: int
    rels: int
    node_seconds: float
    rel_seconds: float
    seconds: float

    @property
    def nodes_per_s(self) -> float:
        return self.nodes / self.node_seconds if self.node_seconds else 0.0

    @property
    def rels_per_s(self) -> float:
        return self.rels / self.rel_seconds if self.rel_seconds else 0.0

    @property
    def rows_per_s(self) -> float:
        return (self.nodes + self.rels) / (self.node_seconds + self.rel_seconds)


def _run(driver: Driver, snapshot: Path, batch_size: int, label: str) -> Run:
    wipe(driver)
    report: LoadReport = load_snapshot(driver, snapshot, batch_size=batch_size, progress=False)
    run = Run(
        label, batch_size,
        nodes=sum(s.upserted for s in report.nodes.values()),
        rels=sum(s.upserted for s in report.edges.values()),
        node_seconds=sum(s.seconds for s in report.nodes.values()),
        rel_seconds=sum(s.seconds for s in report.edges.values()),
        seconds=report.seconds,
    )
    log.info("%s batch %d: %.0f nodes/s, %.0f rels/s, %.1fs", label, batch_size, run.nodes_per_s,
             run.rels_per_s, run.seconds)
    return run


def write_slice(snapshot: Path, out: Path, ratings: int) -> Path:
    """The first ``ratings`` RATED rows with their users and movies, as a snapshot folder."""
    tables = read_snapshot(snapshot)
    rated = tables[schema.RATED.rel].slice(0, ratings)
    keep = {
        schema.USER.label: pc.unique(rated.column(schema.SRC)),
        schema.MOVIE.label: pc.unique(rated.column(schema.DST)),
    }
    for nt in schema.NODE_TYPES:
        table = tables[nt.label]
        if nt.label in keep:
            table = table.filter(pc.is_in(table.column(nt.key), value_set=keep[nt.label]))
        else:
            table = table.slice(0, 0)
        _write(out / schema.node_path(nt.label), table)
    for et in schema.EDGE_TYPES:
        _write(out / schema.edge_path(et.rel), rated if et is schema.RATED else tables[et.rel].slice(0, 0))
    (out / schema.MANIFEST_FILE).write_bytes((snapshot / schema.MANIFEST_FILE).read_bytes())
    return out


def _write(path: Path, table: pa.Table) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)


def render(snapshot: Path, runs: list[Run], baseline: Run, sliced: Run, chosen: int, machine: list[str]) -> str:
    lines = [
        "# Neo4j load throughput",
        "",
        f"Snapshot: `{snapshot}`. Each run loads into an empty database with `graph_store.load.load_snapshot`;",
        "rates are rows written over the seconds of the node or relationship phases (reading the graph,",
        "diffing, writing). Produced by `benchmarks/load_benchmark.py`.",
        "",
        *machine,
        "",
        "| run | batch size | nodes | rels | nodes/s | rels/s | total s |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in [*runs, sliced, baseline]:
        lines.append(f"| {r.label} | {r.batch_size} | {r.nodes:,} | {r.rels:,} | {r.nodes_per_s:,.0f} | "
                     f"{r.rels_per_s:,.0f} | {r.seconds:.1f} |")
    lines += [
        "",
        f"Batched (batch {sliced.batch_size}) vs one row per query on the same slice: "
        f"**{sliced.rows_per_s / baseline.rows_per_s:.1f}x** rows/s "
        f"({sliced.nodes_per_s / baseline.nodes_per_s:.1f}x nodes/s, {sliced.rels_per_s / baseline.rels_per_s:.1f}x rels/s).",
        "",
        f"Fastest batch size on the full snapshot: **{chosen}** (rows/s over all phases); "
        f"`graph_store.load.DEFAULT_BATCH_SIZE` is {DEFAULT_BATCH_SIZE}.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--snapshot", type=Path, help="snapshot folder (default: run the ETL on the mirror)")
    parser.add_argument("--mirror", type=Path, default=DEFAULT_MIRROR)
    parser.add_argument("--batch-sizes", default="100,1000,5000,10000,20000,50000")
    parser.add_argument("--baseline-rows", type=int, default=3_000, help="ratings in the one-row-per-query slice")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "load.md")
    parser.add_argument("--use-env", action="store_true", help="use NEO4J_URI/USER/PASSWORD (wipes that database!)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    sizes = [int(s) for s in args.batch_sizes.split(",")]

    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="cinegraph-load-bench-")))
        snapshot = bench_snapshot(args.snapshot, args.mirror, tmp)
        driver = bench_driver(stack, use_env=args.use_env, password=BENCH_PASSWORD)
        machine = machine_lines(driver, private=not args.use_env)
        runs = [_run(driver, snapshot, size, "full snapshot") for size in sizes]
        sliced_dir = write_slice(snapshot, tmp / "slice", args.baseline_rows)
        sliced = _run(driver, sliced_dir, DEFAULT_BATCH_SIZE, "slice, batched")
        baseline = _run(driver, sliced_dir, 1, "slice, one row per query")
        wipe(driver)
    chosen = max(runs, key=lambda r: r.rows_per_s).batch_size
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render(snapshot, runs, baseline, sliced, chosen, machine))
    log.info("wrote %s", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
