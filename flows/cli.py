"""The ``cinegraph`` console script: one subcommand per stage, each a thin call into a package."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from pathlib import Path

from cinegraph.errors import CinegraphError

Handler = Callable[[argparse.Namespace], int]
DEMO_PREFECT_SETTINGS = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",  # no telemetry heartbeat racing the run for SQLite
    "PREFECT_SERVER_LOGGING_LEVEL": "WARNING",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",  # a busy 2-core machine needs more than 20 s
}


def _add_commands(sub: argparse._SubParsersAction) -> None:
    """Each stage registers its subcommand here; handlers import their package lazily so that
    ``cinegraph --help`` stays fast."""
    p = sub.add_parser("neo4j", help="start, stop or inspect the embedded Neo4j server (no Docker)")
    p.add_argument("action", choices=["start", "stop", "status"])
    p.add_argument("--home", type=Path, default=Path(".neo4j/default"), help="pidfile, log and data")
    p.add_argument("--port", type=int, default=7687, help="Bolt port on 127.0.0.1")
    p.add_argument(
        "--browser-port", type=int, default=7474, help="Neo4j Browser on http://127.0.0.1:PORT (default 7474; 0: none)"
    )
    p.add_argument("--heap-mb", type=int, default=1024, help="JVM heap (-Xmx)")
    p.add_argument("--pagecache-mb", type=int, default=512, help="Neo4j page cache")
    p.set_defaults(func=_cmd_neo4j)

    p = sub.add_parser("cypher", help="run a Cypher file or bundled query (graph_store/queries) as a table")
    p.add_argument("file", help="a .cypher path or a bundled query name, e.g. also_rated")
    p.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="query parameter (int, float, null, true/false or text); repeatable",
    )
    p.add_argument("--database", default="neo4j")
    p.set_defaults(func=_cmd_cypher)

    p = sub.add_parser("export", help="export a filtered subgraph from Neo4j as a snapshot folder")
    p.add_argument("--out", type=Path, required=True, help="folder to write (replaced whole)")
    p.add_argument("--min-user-ratings", type=int, default=0, help="drop users with fewer kept ratings")
    p.add_argument("--rating-after", type=int, default=None, help="keep ratings at or after (unix s)")
    p.add_argument("--rating-before", type=int, default=None, help="keep ratings before (unix s)")
    p.add_argument("--year-min", type=int, default=None, help="first movie year kept")
    p.add_argument("--year-max", type=int, default=None, help="last movie year kept")
    p.add_argument("--node-types", default=None, help="comma-separated labels (default: all)")
    p.add_argument("--edge-types", default=None, help="comma-separated relationship types (default: all)")
    p.add_argument("--database", default="neo4j")
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser("load", help="load a snapshot into Neo4j (NEO4J_URI/NEO4J_USER/NEO4J_PASSWORD)")
    p.add_argument("--snapshot", type=Path, required=True, help="snapshot directory (manifest.json)")
    p.add_argument("--batch-size", type=_positive_int, default=None, help="rows per UNWIND transaction")
    p.add_argument("--database", default="neo4j")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument(
        "--initial",
        action="store_true",
        help="first load with Neo4j's offline importer (the local server closes and reopens its "
        "databases; the database must be empty); taken by default when the local server's "
        "database is empty",
    )
    p.add_argument("--transactional", action="store_true", help="never use the offline importer")
    p.add_argument(
        "--verify",
        action="store_true",
        help="compare every table with the graph, also those the graph's last snapshot already held "
        "(repairs changes made to the graph by hand; reads the whole graph back)",
    )
    p.add_argument(
        "--home",
        type=Path,
        default=Path(".neo4j/default"),
        help="home of the local server (as given to `cinegraph neo4j start`)",
    )
    p.set_defaults(func=_cmd_load)

    p = sub.add_parser("etl", help="fetch MovieLens + IMDb, stage in DuckDB, match titles, write the snapshot")
    _etl_arguments(p)
    p.set_defaults(func=_cmd_etl)

    p = sub.add_parser("demo", help="the main job: refresh + train (pipeline flow), print the evaluation")
    p.add_argument("--variant", default="ml-latest-small", help="MovieLens variant")
    p.add_argument("--mirror", default=None, help="local mirror directory or URL (default: $CINEGRAPH_MIRROR)")
    p.add_argument("--out", type=Path, default=Path("out"), help="output folder (snapshot/, runs/ inside)")
    p.add_argument("--neo4j", action="store_true", help="start the local Neo4j (NEO4J_PASSWORD), load, write back")
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser("serve", help="serve the Prefect deployments etl-refresh (cron), train and pipeline")
    p.add_argument("--refresh-cron", default="0 3 * * *", help="cron of the scheduled refresh (default daily 03:00)")
    p.add_argument("--timezone", default="UTC", help="time zone of the cron schedule")
    p.add_argument(
        "--mirror",
        default=None,
        help="local mirror directory or URL the refresh reads (default: $CINEGRAPH_MIRROR, else the official sites)",
    )
    p.add_argument("--out", type=Path, default=Path("out"), help="output folder of every run (snapshot/, runs/ inside)")
    p.set_defaults(func=_cmd_serve)

    p = sub.add_parser("train", help="pretrain both branches, fuse and fine-tune one model")
    p.add_argument("--snapshot", type=Path, required=True, help="snapshot folder")
    p.add_argument(
        "--out",
        type=Path,
        required=True,
        help="run folder (results.json, report.md; checkpoints, split and curves per seed)",
    )
    p.add_argument("--config", type=Path, default=None, help="TrainConfig as JSON (default: the defaults)")
    p.add_argument("--device", choices=("cpu", "cuda"), default=None, help="overrides the config's device")
    p.add_argument(
        "--distributed",
        action="store_true",
        help="data-parallel over the processes torchrun starts (gloo on CPU, nccl with --device cuda): "
        "torchrun --nproc-per-node N -m cinegraph.flows.cli train --distributed ...",
    )
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("tune", help="equal-budget hyperparameter search of models on the validation split")
    p.add_argument("--snapshot", type=Path, required=True, help="snapshot folder")
    p.add_argument(
        "--model",
        default="fused",
        help="comma-separated, searched in turn with the same budget: fused, lightgcn, mf_bpr, ease, itemknn, "
        "content_knn (default fused)",
    )
    p.add_argument(
        "--out",
        type=Path,
        required=True,
        help="config JSON to write the best settings into (updated if it exists); every trial goes to "
        "<out>.study.json next to it",
    )
    p.add_argument("--trials", type=int, default=20, help="most trials per model (default 20)")
    p.add_argument("--timeout", type=float, default=None, help="most seconds per model (default: no limit)")
    p.add_argument(
        "--config", type=Path, default=None, help="TrainConfig JSON to start from when --out does not exist yet"
    )
    p.add_argument(
        "--protocol",
        choices=("warm", "cold-items"),
        default=None,
        help="split to tune on (default: the config's, warm)",
    )
    p.add_argument("--device", choices=("cpu", "cuda"), default=None, help="overrides the config's device")
    p.add_argument("--parallel", type=int, default=1, help="trials proposed and trained at once (default 1)")
    p.add_argument(
        "--dask",
        nargs="?",
        const="local",
        default=None,
        metavar="ADDRESS",
        help="run each batch of --parallel trials on a Dask cluster: the scheduler ADDRESS "
        "(e.g. tcp://10.0.0.5:8786), or without one a temporary local cluster",
    )
    p.set_defaults(func=_cmd_tune)

    p = sub.add_parser("benchmark", help="fused model vs baselines and ablations over seeds")
    p.add_argument("--snapshot", type=Path, required=True, help="snapshot folder")
    p.add_argument("--out", type=Path, required=True, help="output folder (results.json, report.md, curves)")
    p.add_argument("--seeds", type=int, default=3, help="number of seeds (default 3)")
    p.add_argument("--config", type=Path, default=None, help="TrainConfig as JSON (default: the defaults)")
    p.add_argument("--device", choices=("cpu", "cuda"), default=None, help="overrides the config's device")
    p.add_argument("--models", default=None, help="comma-separated subset of the models (default: all)")
    p.add_argument(
        "--protocol",
        choices=("warm", "cold-items", "both"),
        default="warm",
        help="warm: held-out ratings of known movies; cold-items: 15%% of movies are new "
        "(no rating or tag in the input), ranked by content; both: one after the other",
    )
    p.set_defaults(func=_cmd_benchmark)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def _etl_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--variant", default="ml-latest-small", help="MovieLens variant (ml-latest-small, ml-1m, ...)")
    p.add_argument("--mirror", default=None, help="local mirror directory or URL (default: $CINEGRAPH_MIRROR)")
    p.add_argument("--match", choices=["links", "fuzzy"], default="links", help="title matching mode")
    p.add_argument("--overrides", type=Path, default=None, help="CSV movieId -> tconst (or none)")
    p.add_argument("--out", type=Path, default=Path("out"), help="output folder (snapshot/ goes inside)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--memory-limit", default=None, help="DuckDB memory limit, e.g. 5GB (default: the config's)")


def _cmd_etl(args: argparse.Namespace) -> int:
    import os

    from pydantic import ValidationError

    from cinegraph.etl.config import EtlConfig
    from cinegraph.etl.match import MatchConfig
    from cinegraph.etl.pipeline import run_etl, summarize

    try:
        config = EtlConfig(
            variant=args.variant,
            out=args.out,
            mirror=args.mirror or os.environ.get("CINEGRAPH_MIRROR"),
            match=MatchConfig(mode=args.match),
            overrides=args.overrides,
            progress=not args.no_progress,
            **({"memory_limit": args.memory_limit} if args.memory_limit else {}),
        )
    except ValidationError as exc:
        raise CinegraphError("; ".join(f"--{e['loc'][0]}: {e['msg']}" for e in exc.errors())) from exc
    print(summarize(run_etl(config)))
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    import os

    # Before Prefect loads its settings: how the temporary server the demo may start behaves.
    for name, value in DEMO_PREFECT_SETTINGS.items():
        os.environ.setdefault(name, value)
    from cinegraph.flows.pipeline import run_demo

    print(run_demo(args.variant, args.out, args.mirror or os.environ.get("CINEGRAPH_MIRROR"), neo4j=args.neo4j))
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    import contextlib
    import json

    from cinegraph.models import distributed
    from cinegraph.models.config import load_config
    from cinegraph.models.report import COST
    from cinegraph.models.runner import TRAIN_MODELS, run, setup_torch

    config = load_config(args.config, device=args.device)
    setup_torch(config)  # before a process group is joined on a device that may not exist
    with distributed.process_group(config.device) if args.distributed else contextlib.nullcontext():
        if not distributed.is_main():  # one process logs and writes
            logging.getLogger("cinegraph").setLevel(logging.WARNING)
        done = run(
            args.snapshot, args.out, config, [config.seed], TRAIN_MODELS, (config.data.protocol,), "cinegraph train"
        )
    for summary in done.values():
        test = {
            name: {k: v["mean"] for k, v in metrics.items() if not k.startswith("valid_") and k not in COST}
            for name, metrics in summary["models"].items()
        }
        print(json.dumps(test, indent=2))
        print(args.out / "report.md")
    return 0


def _cmd_tune(args: argparse.Namespace) -> int:
    import json

    from cinegraph.models.config import load_config
    from cinegraph.models.tune import TUNABLE, tune

    config = load_config(args.out if args.out.exists() else args.config, device=args.device)
    if args.protocol:
        config = config.model_copy(update={"data": config.data.model_copy(update={"protocol": args.protocol})})
    models = args.model.split(",")
    if args.dask is None:
        study = tune(args.snapshot, models, args.out, args.trials, args.timeout, config, args.parallel)
    else:
        from cinegraph.flows.train_params import TuneParams
        from cinegraph.flows.tune import tune as tune_flow

        unknown = [m for m in models if m not in TUNABLE]
        if unknown:
            raise CinegraphError(f"--model {unknown[0]}: nothing to tune; tunable: {list(TUNABLE)}")
        for model in models:  # one flow run per model, each starting from what the previous one wrote
            params = TuneParams(
                snapshot=str(args.snapshot),
                model=model,
                out=str(args.out),
                config=config,
                trials=args.trials,
                timeout_s=args.timeout,
                parallel=args.parallel,
                task_runner="dask",
                dask_address=None if args.dask == "local" else args.dask,
            )
            study = tune_flow(params)
            config = load_config(args.out, device=args.device)
    best = {name: {k: m[k] for k in ("best_value", "trials_done", "seconds")} for name, m in study["models"].items()}
    print(json.dumps(best, indent=2))
    return 0


def _cmd_benchmark(args: argparse.Namespace) -> int:
    from cinegraph.models.benchmark import MODELS, PROTOCOLS
    from cinegraph.models.config import load_config
    from cinegraph.models.runner import run

    config = load_config(args.config, device=args.device)
    models = tuple(args.models.split(",")) if args.models else MODELS
    protocols = PROTOCOLS if args.protocol == "both" else (args.protocol,)
    run(args.snapshot, args.out, config, list(range(args.seeds)), models, protocols, "cinegraph benchmark")
    print(args.out / "report.md")
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    import os

    from cinegraph.flows.deployments import serve

    mirror = args.mirror or os.environ.get("CINEGRAPH_MIRROR")
    return serve(args.refresh_cron, args.timezone, mirror=mirror, out=args.out)


def _cmd_neo4j(args: argparse.Namespace) -> int:
    import os

    from cinegraph.graph_store import server

    if args.action == "start":
        state = server.start(
            args.home,
            args.port,
            password=os.environ.get("NEO4J_PASSWORD", ""),
            heap_mb=args.heap_mb,
            pagecache_mb=args.pagecache_mb,
            browser_port=args.browser_port,
        )
    elif args.action == "stop":
        server.stop(args.home)
        state = server.status(args.home)
    else:
        state = server.status(args.home)
    print(state.describe())
    return 0 if state.running or args.action == "stop" else 3


def _cmd_cypher(args: argparse.Namespace) -> int:
    from cinegraph.graph_store.connection import open_driver, settings_from_env
    from cinegraph.graph_store.cypher import run_cypher_file

    with open_driver(settings_from_env()) as driver:
        print(run_cypher_file(driver, args.file, args.param, database=args.database))
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from cinegraph.graph_store.connection import open_driver, settings_from_env
    from cinegraph.graph_store.export import ExportFilter, export_snapshot

    fields = ["min_user_ratings", "rating_after", "rating_before", "year_min", "year_max"]
    given = {name: getattr(args, name) for name in fields}
    for name in ("node_types", "edge_types"):
        if getattr(args, name):
            given[name] = tuple(s.strip() for s in getattr(args, name).split(",") if s.strip())
    try:
        flt = ExportFilter(**given)
    except ValidationError as exc:
        raise CinegraphError("; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors())) from exc
    with open_driver(settings_from_env()) as driver:
        counts = export_snapshot(driver, args.out, flt, database=args.database)
    print(f"exported to {args.out}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    return 0


def _cmd_load(args: argparse.Namespace) -> int:
    from cinegraph.graph_store.bulk_import import bulk_load, use_bulk
    from cinegraph.graph_store.connection import open_driver, settings_from_env
    from cinegraph.graph_store.load import DEFAULT_BATCH_SIZE, load_snapshot

    if args.initial and args.transactional:
        raise CinegraphError("--initial and --transactional exclude each other")
    settings = settings_from_env()
    with open_driver(settings) as driver:
        bulk = not args.transactional and use_bulk(
            driver, settings.uri, args.home, database=args.database, initial=args.initial
        )
        if not bulk:
            report = load_snapshot(
                driver,
                args.snapshot,
                database=args.database,
                batch_size=args.batch_size or DEFAULT_BATCH_SIZE,
                progress=not args.no_progress,
                verify=args.verify,
            )
    if bulk:
        print(
            bulk_load(
                lambda: open_driver(settings),
                args.snapshot,
                args.home,
                database=args.database,
                progress=not args.no_progress,
            ).summary()
        )
    else:
        print(report.summary())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cinegraph",
        description="MovieLens + IMDb knowledge graph: ETL, Neo4j, dual-branch GNN training.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return args.func(args)
    except CinegraphError as exc:
        print(f"cinegraph {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
