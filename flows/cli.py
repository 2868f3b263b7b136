"""The ``cinegraph`` console script: one subcommand per stage, each a thin call into a package."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from pathlib import Path


from graph_store.errors import CinegraphError

Handler = Callable[[argparse.Namespace], int]


def _add_commands(sub: argparse._SubParsersAction) -> None:
    """Each stage registers its subcommand here; handlers import their package lazily so that
    ``cinegraph --help`` stays fast."""
    p = sub.add_parser("neo4j", help="start, stop or inspect the embedded Neo4j server (no Docker)")
    p.add_argument("action", choices=["start", "stop", "status"])
    p.add_argument("--home", type=Path, default=Path(".neo4j/default"), help="pidfile, log and data")
    p.add_argument("--port", type=int, default=7687, help="Bolt port on 127.0.0.1")
    p.add_argument("--heap-mb", type=int, default=1024, help="JVM heap (-Xmx)")
    p.add_argument("--pagecache-mb", type=int, default=512, help="Neo4j page cache")
    p.set_defaults(func=_cmd_neo4j)

    p = sub.add_parser("load", help="load a snapshot into Neo4j (NEO4J_URI/NEO4J_USER/NEO4J_PASSWORD)")
    p.add_argument("--snapshot", type=Path, required=True, help="snapshot directory (manifest.json)")
    p.add_argument("--batch-size", type=int, default=None, help="rows per UNWIND transaction")
    p.add_argument("--database", default="neo4j")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_load)


def _cmd_neo4j(args: argparse.Namespace) -> int:
    import os

    from graph_store import server

    if args.action == "start":
        state = server.start(
            args.home, args.port, password=os.environ.get("NEO4J_PASSWORD", ""),
            heap_mb=args.heap_mb, pagecache_mb=args.pagecache_mb,
        )
    elif args.action == "stop":
        server.stop(args.home)
        state = server.status(args.home)
    else:
        state = server.status(args.home)
    print(state.describe())
    return 0 if state.running or args.action == "stop" else 3


def _cmd_load(args: argparse.Namespace) -> int:
    from graph_store.connection import open_driver, settings_from_env
    from graph_store.load import DEFAULT_BATCH_SIZE, load_snapshot

    with open_driver(settings_from_env()) as driver:
        report = load_snapshot(
            driver, args.snapshot, database=args.database,
            batch_size=args.batch_size or DEFAULT_BATCH_SIZE, progress=not args.no_progress,
        )
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
