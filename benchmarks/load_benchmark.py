"""Neo4j load and write-back throughput on one snapshot, side by side in one run.

* First load into an empty database: the offline bulk import (``cinegraph load --initial``,
  :func:`graph_store.bulk_import.bulk_load`) against the transactional loader (``--transactional``,
  :func:`graph_store.load.load_snapshot`), each on a fresh embedded server of its own.
* A second load of the same snapshot with ``verify`` (every table read back): the diff finds
  nothing and writes nothing. What a refresh costs: ``benchmarks/refresh_benchmark.py``.
* Where the transactional time goes for RATED: the same RATED rows written into the loaded graph
  with CREATE or MERGE, at several batch sizes, by one or two writers, with or without the
  ``neo4j-rust-ext`` codec (each in a fresh process).
* The results write-back: top-20 RECOMMENDED edges for every user (written, then replaced) and a
  64-d embedding per movie with its vector index.

``--first-load-only`` runs the first two (the paths side by side) and nothing else: at full size the
rest adds half an hour.

Writes a Markdown report (default ``benchmarks/results/load.md``).

    .venv/bin/python benchmarks/load_benchmark.py --snapshot out/snapshot
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from neo4j import ManagedTransaction

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
from cinegraph.graph_store import server  # noqa: E402
from cinegraph.graph_store.bulk_import import BulkReport, bulk_load  # noqa: E402
from cinegraph.graph_store.connection import Neo4jSettings, open_driver  # noqa: E402
from cinegraph.graph_store.load import EDGE_CREATE, EDGE_UPSERT, LoadReport, load_snapshot  # noqa: E402
from cinegraph.graph_store.results import write_movie_embeddings, write_recommendations  # noqa: E402

log = logging.getLogger("load_benchmark")
BENCH_PASSWORD = "load-benchmark-password"
TOP_K, EMBEDDING_DIM = 20, 64
_DELETE_RATED = (
    f"UNWIND $rows AS row MATCH (:{schema.USER.label} {{{schema.USER.key}: row.{schema.SRC}}})"
    f"-[r:{schema.RATED.rel}]->(:{schema.MOVIE.label} {{{schema.MOVIE.key}: row.{schema.DST}}}) DELETE r"
)
_VARIANT_QUERIES = {"CREATE": EDGE_CREATE[schema.RATED.rel], "MERGE": EDGE_UPSERT[schema.RATED.rel]}


@dataclass(frozen=True)
class Variant:
    query: str  # CREATE or MERGE
    batch_size: int
    writers: int = 1
    rust_ext: bool = False

    @property
    def label(self) -> str:
        ext = ", neo4j-rust-ext" if self.rust_ext else ""
        return f"{self.query}, batch {self.batch_size:,}, {self.writers} writer{'s' * (self.writers > 1)}{ext}"


# --- first loads --------------------------------------------------------------------------------


def transactional(settings: Neo4jSettings, snapshot: Path, *, reload: bool) -> tuple[LoadReport, LoadReport | None]:
    """The first load into the empty database, then (``reload``) the same snapshot again with every
    table read back and compared (a no-op; without ``verify`` it skips every table, see
    refresh_benchmark.py)."""
    with open_driver(settings) as driver:
        first = load_snapshot(driver, snapshot, progress=False)
        again = load_snapshot(driver, snapshot, progress=False, verify=True) if reload else None
    log.info("transactional: %.1fs, reload %s", first.seconds, f"{again.seconds:.1f}s" if again else "not run")
    return first, again


def bulk(home: Path, settings: Neo4jSettings, snapshot: Path) -> tuple[BulkReport, float]:
    """The bulk import, and the importer's own time from its log."""
    report = bulk_load(lambda: open_driver(settings), snapshot, home, progress=False)
    done = re.findall(r"IMPORT DONE in (?:(\d+)m )?(?:(\d+)s )?(\d+)ms", (home / server.IMPORT_LOG).read_text())
    minutes, seconds, millis = (int(x or 0) for x in done[-1])
    log.info("bulk: %.1fs", report.load.seconds)
    return report, 60 * minutes + seconds + millis / 1000


# --- RATED: where the transactional time goes ----------------------------------------------------


def rated_rows(snapshot: Path, rows: int, out: Path) -> Path:
    """The first ``rows`` RATED rows of the snapshot, as a Parquet file (read in batches)."""
    reader = pq.ParquetFile(snapshot / schema.edge_path(schema.RATED.rel))
    batches, n = [], 0
    for batch in reader.iter_batches(batch_size=min(rows, 65_536)):
        batches.append(batch.slice(0, rows - n))
        n += batches[-1].num_rows
        if n >= rows:
            break
    pq.write_table(pa.Table.from_batches(batches), out)
    return out


def time_variant(settings: Neo4jSettings, rows_file: Path, variant: Variant) -> float:
    """Write the rows with ``variant`` (their RATED edges deleted first); seconds of the writes only."""
    table = pq.read_table(rows_file)
    names = [p.name for p in schema.RATED.properties]
    rows = [
        {schema.SRC: r[schema.SRC], schema.DST: r[schema.DST], "props": {n: r[n] for n in names}}
        for r in table.to_pylist()
    ]
    with open_driver(settings) as driver:
        for start in range(0, len(rows), 10_000):
            driver.execute_query(_DELETE_RATED, {"rows": rows[start : start + 10_000]}, database_="neo4j")
        parts = [[r for r in rows if hash(r[schema.SRC]) % variant.writers == w] for w in range(variant.writers)]
        query = _VARIANT_QUERIES[variant.query]
        errors: list[BaseException] = []

        def write_batch(tx: ManagedTransaction, batch: list[dict[str, Any]]) -> None:
            tx.run(query, rows=batch).consume()

        def write(part: list[dict[str, Any]]) -> None:
            try:
                with driver.session(database="neo4j") as session:
                    for start in range(0, len(part), variant.batch_size):
                        session.execute_write(write_batch, part[start : start + variant.batch_size])
            except BaseException as exc:  # noqa: BLE001 - reported by the caller
                errors.append(exc)

        started = time.perf_counter()
        threads = [threading.Thread(target=write, args=(part,)) for part in parts]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        seconds = time.perf_counter() - started
        if errors:
            raise errors[0]
        count = driver.execute_query(
            f"MATCH ()-[r:{schema.RATED.rel}]->() RETURN count(r) AS n", database_="neo4j"
        ).records[0]["n"]
    log.info("%s: %.1fs (%d RATED in the graph)", variant.label, seconds, count)
    return seconds


# Runs the benchmark in a fresh interpreter, first loading the neo4j-rust-ext codec (argv[1], a path
# to its shared library, or empty) as ``neo4j._rust``, which the driver picks up when it is imported.
_BOOTSTRAP = """
import importlib.util, runpy, sys
if sys.argv[1]:
    spec = importlib.util.spec_from_file_location("neo4j._rust", sys.argv[1])
    module = importlib.util.module_from_spec(spec)
    sys.modules["neo4j._rust"] = module
    spec.loader.exec_module(module)
sys.argv = sys.argv[2:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def run_variant(settings: Neo4jSettings, rows_file: Path, variant: Variant, rust_ext: Path | None) -> float:
    """:func:`time_variant` in a fresh process (the codec is chosen when the driver is imported)."""
    library = str(next(rust_ext.glob("neo4j/_rust*.so"))) if variant.rust_ext and rust_ext else ""
    cmd = [
        sys.executable,
        "-c",
        _BOOTSTRAP,
        library,
        __file__,
        "--time-variant",
        json.dumps(variant.__dict__),
        "--rows-file",
        str(rows_file),
        "--uri",
        settings.uri,
    ]
    env = {
        **os.environ,
        "NEO4J_PASSWORD": settings.password,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{variant.label}: {proc.stderr.strip().splitlines()[-1:]}")
    return float(proc.stdout.strip().splitlines()[-1])


def _check_codec(rust_ext: bool) -> None:
    """The driver runs with the Rust codec exactly when the variant asks for it."""
    from neo4j._codec.packstream import v1

    if (v1._rust_pack is not None) != rust_ext:
        raise RuntimeError(f"variant wants rust_ext={rust_ext}, the driver has {v1._rust_pack!r}")


# --- write-back ----------------------------------------------------------------------------------


def write_back(settings: Neo4jSettings, snapshot: Path) -> dict[str, tuple[int, float]]:
    """Top-20 for every user (written, then replaced) and an embedding per movie: (rows, seconds)."""
    users = pq.read_table(snapshot / schema.node_path(schema.USER.label), columns=[schema.USER.key])[0]
    movies = pq.read_table(snapshot / schema.node_path(schema.MOVIE.label), columns=[schema.MOVIE.key])[0]
    rng = np.random.default_rng(0)
    user_ids = np.asarray(users.to_numpy(), dtype=np.int64)
    movie_ids = np.asarray(movies.to_numpy(), dtype=np.int64)
    k = min(TOP_K, len(movie_ids))
    picks = np.stack([rng.choice(len(movie_ids), k, replace=False) for _ in user_ids])
    recs = pa.table(
        {
            "user_id": np.repeat(user_ids, k),
            "movie_id": movie_ids[picks].ravel(),
            "score": rng.random(len(user_ids) * k),
            "rank": np.tile(np.arange(1, k + 1), len(user_ids)),
        }
    )
    embeddings = rng.standard_normal((len(movie_ids), EMBEDDING_DIM)).astype(np.float32)
    out: dict[str, tuple[int, float]] = {}
    with open_driver(settings) as driver:
        for label in ("RECOMMENDED, first write", "RECOMMENDED, replacing the run"):
            started = time.perf_counter()
            n = write_recommendations(driver, recs, run_id="bench", model="bench", progress=False)
            out[label] = (n, time.perf_counter() - started)
        started = time.perf_counter()
        n = write_movie_embeddings(driver, movie_ids.tolist(), embeddings, progress=False)
        out[f"movie embeddings ({EMBEDDING_DIM}-d) + vector index"] = (n, time.perf_counter() - started)
    return out


# --- report ----------------------------------------------------------------------------------------


def render(
    snapshot: Path,
    machine: list[str],
    first: LoadReport,
    again: LoadReport | None,
    fast: BulkReport,
    importer_s: float,
    study: list[tuple[Variant, float]],
    study_rows: int,
    written: dict[str, tuple[int, float]],
    load_end: str,
) -> str:
    """The report; ``again`` None: only the first load ran (``--first-load-only``)."""
    nodes = sum(s.total for s in first.nodes.values())
    rels = sum(s.total for s in first.edges.values())
    rated = first.edges[schema.RATED.rel]
    lines = [
        "# Neo4j load throughput",
        "",
        f"Snapshot: `{snapshot}` ({nodes:,} nodes, {rels:,} relationships, {rated.total:,} RATED). "
        "Produced by `benchmarks/load_benchmark.py`; everything below ran in one run, one step at a time.",
        "",
        *machine,
        f"- Load average at the end: {load_end}",
        "",
        "## First load into an empty database",
        "",
        "| path | wall s | rels/s (wall) | nodes | rels |",
        "| --- | ---: | ---: | ---: | ---: |",
        f"| transactional (`cinegraph load --transactional`, batch {first.batch_size:,}) | {first.seconds:.1f} | "
        f"{rels / first.seconds:,.0f} | {nodes:,} | {rels:,} |",
        f"| bulk (`cinegraph load --initial`, neo4j-admin import) | {fast.load.seconds:.1f} | "
        f"{fast.relationships / fast.load.seconds:,.0f} | {fast.nodes:,} | {fast.relationships:,} |",
        "",
        f"Bulk vs transactional, end to end: **{first.seconds / fast.load.seconds:.1f}x**. "
        f"The importer itself reported {importer_s:.1f} s ({fast.relationships / importer_s:,.0f} rels/s); "
        f"the transactional loader spent {rated.seconds:.1f} s on RATED "
        f"({rated.total / rated.seconds:,.0f} rels/s).",
        "",
        "Bulk phases (s): "
        + ", ".join(f"{k} {v:.1f}" for k, v in fast.phases.items())
        + " (csv: DuckDB writing them while the server closes its databases; the rest: the empty check, "
        + "drivers, counts, the Snapshot node). Rows whose lists CSV cannot "
        + "carry, written through Bolt: "
        + f"{sum(fast.patched.values()):,}.",
        "",
    ]
    if again is None:
        return "\n".join(lines)
    lines += [
        "## Second load of the same snapshot, `--verify`",
        "",
        f"{again.seconds:.1f} s, {again.written} rows written "
        "(the diff reads the graph back and finds nothing to do; the Snapshot node is left alone).",
        "",
        f"## RATED, transactional: {study_rows:,} rows written into the loaded graph",
        "",
        "| variant | s | rels/s |",
        "| --- | ---: | ---: |",
        *(f"| {v.label} | {s:.1f} | {study_rows / s:,.0f} |" for v, s in study),
        "",
        "## Results write-back (into the loaded graph)",
        "",
        "| what | rows | s | rows/s |",
        "| --- | ---: | ---: | ---: |",
        *(f"| {k} | {n:,} | {s:.1f} | {n / s:,.0f} |" for k, (n, s) in written.items()),
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--snapshot", type=Path, help="snapshot folder (default: run the ETL on the mirror)")
    parser.add_argument("--mirror", type=Path, default=DEFAULT_MIRROR)
    parser.add_argument("--study-rows", type=int, default=200_000, help="RATED rows per variant of the study")
    parser.add_argument("--batch-sizes", default="1000,10000,50000", help="batch sizes of the CREATE variants")
    parser.add_argument(
        "--rust-ext", type=Path, help="a `pip install --target DIR --no-deps neo4j-rust-ext` folder, for its variant"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "load.md")
    parser.add_argument(
        "--first-load-only", action="store_true", help="only the first load, both paths (for full-size snapshots)"
    )
    parser.add_argument("--time-variant", help=argparse.SUPPRESS)  # internal: one study variant, in a subprocess
    parser.add_argument("--rows-file", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--uri", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if args.time_variant:
        variant = Variant(**json.loads(args.time_variant))
        _check_codec(variant.rust_ext)
        settings = Neo4jSettings(args.uri, "neo4j", os.environ["NEO4J_PASSWORD"])
        print(time_variant(settings, args.rows_file, variant))
        return 0

    sizes = [int(s) for s in args.batch_sizes.split(",")]
    variants = [Variant("CREATE", size) for size in sizes] + [Variant("MERGE", 10_000), Variant("CREATE", 10_000, 2)]
    if args.rust_ext:
        variants.append(Variant("CREATE", 10_000, rust_ext=True))
    with tempfile.TemporaryDirectory(prefix="cinegraph-load-bench-") as tmp_dir:
        tmp = Path(tmp_dir)
        snapshot = bench_snapshot(args.snapshot, args.mirror, tmp)
        full = not args.first_load_only  # the reload, the RATED study and the write-back too
        rows_file = rated_rows(snapshot, args.study_rows, tmp / "rated.parquet") if full else None
        study_rows = pq.read_metadata(rows_file).num_rows if rows_file else 0
        with ExitStack() as stack:  # the transactional loader's server, then the study and the write-back on it
            _, settings = private_server(stack, BENCH_PASSWORD)
            with open_driver(settings) as driver:
                machine = machine_lines(driver, private=True)
            first, again = transactional(settings, snapshot, reload=full)
            study = [(v, run_variant(settings, rows_file, v, args.rust_ext)) for v in variants] if rows_file else []
            written = write_back(settings, snapshot) if full else {}
        with ExitStack() as stack:  # a fresh server for the bulk import
            home, settings = private_server(stack, BENCH_PASSWORD)
            fast, importer_s = bulk(home, settings, snapshot)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        render(snapshot, machine, first, again, fast, importer_s, study, study_rows, written, load_average())
    )
    log.info("wrote %s", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
