"""The DuckDB adapter: connect, register Arrow, execute steps, drop. No ETL logic lives here
(Splink's ``DuckDBAPI``); the SQL comes from pure step functions in :mod:`etl.staging` and
:mod:`etl.snapshot`."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import NamedTuple

import duckdb
import pyarrow as pa

from cinegraph.errors import CinegraphError
from cinegraph.etl.resources import usage

log = logging.getLogger(__name__)


class Step(NamedTuple):
    """One SQL step: ``CREATE OR REPLACE TABLE output AS sql`` (write disposition: replace)."""

    sql: str
    output: str
    params: Mapping[str, object] = {}
    source: Path | None = None  # the file the step reads, named in a read error


def connect(path: Path, *, memory_limit: str = "5GB", threads: int | None = None) -> duckdb.DuckDBPyConnection:
    """Open (or create) the warehouse file with bounded memory; spills go next to the file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    spill = path.parent / f"{path.stem}.tmp"
    spill.mkdir(exist_ok=True)
    con = duckdb.connect(str(path))
    con.execute("SET memory_limit = ?", [memory_limit])
    con.execute("SET temp_directory = ?", [str(spill)])
    # Every output that needs an order says ORDER BY; keeping file order costs big scans memory.
    con.execute("SET preserve_insertion_order = false")
    con.execute("SET enable_progress_bar = false")  # library code does not print
    if threads is not None:
        con.execute("SET threads = ?", [threads])
    return con


def register_arrow(con: duckdb.DuckDBPyConnection, name: str, table: pa.Table) -> None:
    """Expose an Arrow table to SQL as a view called ``name``."""
    con.register(name, table)


def table_exists(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    """Fetches to the end: DuckDB 2 refuses ``register`` while a result is left half-read."""
    query = "SELECT count(*) FROM duckdb_tables() WHERE table_name = ? AND NOT temporary"
    return con.execute(query, [name]).fetchall()[0][0] > 0


def run_steps(
    con: duckdb.DuckDBPyConnection,
    steps: Iterable[Step],
    *,
    drop: Iterable[str] = (),
    verify: Callable[[], None] | None = None,
) -> None:
    """Run the steps and drop the ``drop`` tables in ONE transaction, so a failure leaves every
    table as it was before (atomic replace of a whole stage); ``verify`` runs last, inside it,
    and rolls it back by raising."""
    con.execute("BEGIN TRANSACTION")
    try:
        for name in drop:
            con.execute(f"DROP TABLE IF EXISTS {name}")
        for step in steps:
            try:
                with usage(step.output):
                    con.execute(f"CREATE OR REPLACE TABLE {step.output} AS {step.sql}", dict(step.params))
            except duckdb.Error as exc:
                if step.source is None:
                    raise
                reason = str(exc).splitlines()[0]
                raise CinegraphError(f"{step.source}: cannot read: {reason}") from exc
        if verify is not None:
            verify()
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


def count(con: duckdb.DuckDBPyConnection, table: str) -> int:
    return int(con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0])


def drop_tables(con: duckdb.DuckDBPyConnection, names: Iterable[str]) -> None:
    for name in names:
        con.execute(f"DROP TABLE IF EXISTS {name}")
