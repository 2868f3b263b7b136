"""The ``cinegraph`` console script: one subcommand per stage, each a thin call into a package."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable


from graph_store.errors import CinegraphError

Handler = Callable[[argparse.Namespace], int]


def _add_commands(sub: argparse._SubParsersAction) -> None:
    """Each stage registers its subcommand here; handlers import their package lazily so that
    ``cinegraph --help`` stays fast."""


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
