"""What a refresh of a loaded graph costs: the same snapshot again, a newer IMDb side with the same
MovieLens dump, and the same newer snapshot compared table by table with the whole graph.

A refresh brings a new IMDb dump (votes, ratings and people change daily) while the MovieLens dump,
which holds nearly all relationships (the ratings), stays the same. The snapshot is bulk-loaded
into a fresh embedded server, then loaded three times with :func:`graph_store.load.load_snapshot`:

1. the same snapshot: every table's digest matches the graph's record, nothing is read back;
2. a newer snapshot derived from it with the IMDb-side tables changed (``num_votes`` of every
   matched movie, ``--changed-share`` of the people renamed and of KNOWN_FOR removed): only those
   tables are read back and diffed;
3. the newer snapshot again with ``verify``: every table is read back and compared, which is what
   each refresh cost before the graph recorded table digests.

Writes a Markdown report (default ``benchmarks/results/refresh.md``).

    .venv/bin/python benchmarks/refresh_benchmark.py --snapshot out/snapshot
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from benchmarks.neo4j_bench import (  # noqa: E402
    DEFAULT_MIRROR,
    bench_snapshot,
    load_average,
    machine_lines,
    private_server,
)
from cinegraph import schema  # noqa: E402
from cinegraph.graph_store.bulk_import import bulk_load  # noqa: E402
from cinegraph.graph_store.connection import open_driver  # noqa: E402
from cinegraph.graph_store.load import LoadReport, load_snapshot  # noqa: E402
from cinegraph.graph_store.snapshot_io import SnapshotWriter, read_manifest, read_snapshot  # noqa: E402

log = logging.getLogger("refresh_benchmark")
BENCH_PASSWORD = "refresh-benchmark-password"


def newer_imdb_side(snapshot: Path, out: Path, share: float) -> Path:
    """A copy of ``snapshot`` as the next IMDb dump would leave it: every matched movie's
    ``num_votes`` + 1, ``share`` of the people renamed and of the KNOWN_FOR rows gone; the MovieLens
    tables unchanged."""
    tables = read_snapshot(snapshot)
    movies = tables[schema.MOVIE.label]
    votes = movies.column("num_votes")
    movies = movies.set_column(
        movies.schema.get_field_index("num_votes"), "num_votes", pc.if_else(pc.is_null(votes), votes, pc.add(votes, 1))
    )
    people = tables[schema.PERSON.label]
    every = max(1, round(1 / share))
    renamed = pa.array([i % every == 0 for i in range(people.num_rows)])
    names = pc.if_else(renamed, pc.binary_join_element_wise(people.column("name"), " (II)", ""), people.column("name"))
    people = people.set_column(people.schema.get_field_index("name"), "name", names)
    known_for = tables[schema.KNOWN_FOR.rel]
    known_for = known_for.filter(pa.array([i % every != 0 for i in range(known_for.num_rows)]))
    tables |= {schema.MOVIE.label: movies, schema.PERSON.label: people, schema.KNOWN_FOR.rel: known_for}
    with SnapshotWriter(out) as writer:
        for name, table in tables.items():
            writer.write_table(name, table)
        manifest = read_manifest(snapshot)
        writer.commit(**{k: manifest[k] for k in ("sources", "rejects", "match")})
    return out


def read_back(report: LoadReport) -> str:
    """The tables a load compared with the graph."""
    names = [k for k, s in [*report.nodes.items(), *report.edges.items()] if not s.skipped]
    return ", ".join(names) or "none"


def render(snapshot: Path, machine: list[str], bulk_s: float, runs: list[tuple[str, LoadReport]], share: float) -> str:
    manifest = read_manifest(snapshot)
    rels = sum(manifest["counts"]["edges"].values())
    nodes = sum(manifest["counts"]["nodes"].values())
    rated = manifest["counts"]["edges"][schema.RATED.rel]
    lines = [
        "# Refreshing a loaded graph",
        "",
        f"Snapshot: `{snapshot}` ({nodes:,} nodes, {rels:,} relationships, {rated:,} RATED), bulk-loaded into a "
        f"fresh embedded server in {bulk_s:.1f} s. Produced by `benchmarks/refresh_benchmark.py`; one run, one "
        "load at a time.",
        "",
        *machine,
        "",
        "| load | wall s | tables read back and diffed | rows written |",
        "| --- | ---: | --- | ---: |",
        *(f"| {label} | {r.seconds:.1f} | {read_back(r)} | {r.written:,} |" for label, r in runs),
        "",
        f"The newer snapshot changes `num_votes` of every matched movie, renames {share:.0%} of the people and "
        f"removes {share:.0%} of the KNOWN_FOR rows; the MovieLens tables are the same files' content.",
        "",
        f"- Load average at the end: {load_average()}",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--snapshot", type=Path, help="snapshot folder (default: run the ETL on the mirror)")
    parser.add_argument("--mirror", type=Path, default=DEFAULT_MIRROR)
    parser.add_argument("--changed-share", type=float, default=0.01, help="share of people and KNOWN_FOR changed")
    parser.add_argument(
        "--skip-verify", action="store_true", help="leave out the --verify load (it reads the whole graph back)"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "refresh.md")
    args = parser.parse_args(argv)
    if not 0 < args.changed_share <= 1:
        parser.error(f"--changed-share {args.changed_share}: must be in (0, 1]")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    with tempfile.TemporaryDirectory(prefix="cinegraph-refresh-bench-") as tmp_dir, ExitStack() as stack:
        tmp = Path(tmp_dir)
        snapshot = bench_snapshot(args.snapshot, args.mirror, tmp)
        newer = newer_imdb_side(snapshot, tmp / "newer", args.changed_share)
        home, settings = private_server(stack, BENCH_PASSWORD)
        with open_driver(settings) as driver:
            machine = machine_lines(driver, private=True)
        bulk = bulk_load(lambda: open_driver(settings), snapshot, home, progress=False)
        runs: list[tuple[str, LoadReport]] = []
        with open_driver(settings) as driver:
            loads = [("the same snapshot again", snapshot, False), ("newer IMDb side, same MovieLens", newer, False)]
            if not args.skip_verify:
                loads.append(("the newer snapshot again, `--verify` (every table read back)", newer, True))
            for label, snap, verify in loads:
                runs.append((label, load_snapshot(driver, snap, progress=False, verify=verify)))
                log.info("%s: %.1f s", label, runs[-1][1].seconds)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render(snapshot, machine, bulk.load.seconds, runs, args.changed_share))
    log.info("wrote %s", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
