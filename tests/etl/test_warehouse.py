"""etl/warehouse.py: a real DuckDB file; steps replace tables in one transaction or not at all."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from cinegraph.errors import CinegraphError
from cinegraph.etl.warehouse import Step, connect, count, drop_tables, register_arrow, run_steps, table_exists


@pytest.fixture
def con(tmp_path: Path) -> duckdb.DuckDBPyConnection:
    con = connect(tmp_path / "w" / "warehouse.duckdb", memory_limit="256MB", threads=1)
    con.execute("CREATE TABLE stg_kept AS SELECT 1 AS x")
    return con


def test_connect_creates_the_folder_and_bounds_memory(tmp_path: Path) -> None:
    path = tmp_path / "new" / "folder" / "warehouse.duckdb"
    con = connect(path, memory_limit="300MB", threads=1)
    query = "SELECT name, value FROM duckdb_settings() WHERE name IN ('memory_limit', 'threads', 'temp_directory')"
    settings = dict(con.execute(query).fetchall())
    assert path.exists() and (path.parent / "warehouse.tmp").is_dir()
    assert settings["threads"] == "1" and settings["temp_directory"] == str(path.parent / "warehouse.tmp")
    assert settings["memory_limit"].endswith("MiB") and 250 < float(settings["memory_limit"].split()[0]) <= 300


def test_steps_run_in_order_with_bound_values(con: duckdb.DuckDBPyConnection) -> None:
    steps = [
        Step("SELECT range AS i FROM range($n)", "stg_numbers", {"n": 5}),
        Step("SELECT i * 2 AS j FROM stg_numbers WHERE i >= $low", "stg_doubled", {"low": 3}),
    ]
    run_steps(con, steps, drop=["stg_kept"])
    assert con.execute("SELECT list(j ORDER BY j) FROM stg_doubled").fetchone() == ([6, 8],)
    assert count(con, "stg_numbers") == 5 and not table_exists(con, "stg_kept")


def test_a_failing_step_leaves_every_table_as_it_was(con: duckdb.DuckDBPyConnection) -> None:
    with pytest.raises(duckdb.Error):
        steps = [
            Step("SELECT 2 AS x", "stg_kept"),
            Step("SELECT 1 AS y", "stg_new"),
            Step("SELECT * FROM no_such_table", "stg_broken"),
        ]
        run_steps(con, steps, drop=["stg_kept"])
    assert con.execute("SELECT x FROM stg_kept").fetchall() == [(1,)]
    assert not table_exists(con, "stg_new") and not table_exists(con, "stg_broken")


def test_a_read_error_names_the_file_in_one_line(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    bad = tmp_path / "ratings.csv"
    bad.write_text("userId,rating\n1,2.5\n2,not-a-number\n")
    sql = "SELECT * FROM read_csv($path, columns = {'userId': 'INTEGER', 'rating': 'DOUBLE'}, header = true)"
    step = Step(sql, "stg_ratings", {"path": str(bad)}, source=bad)
    with pytest.raises(CinegraphError) as info:
        run_steps(con, [step])
    message = str(info.value)
    assert message.startswith(f"{bad}: cannot read: ") and "\n" not in message
    assert not table_exists(con, "stg_ratings")


def test_arrow_views_tables_and_drops(con: duckdb.DuckDBPyConnection) -> None:
    register_arrow(con, "raw_arrow", pa.table({"k": [3, 1, 2]}))
    assert not table_exists(con, "raw_arrow")  # a view, never a warehouse table
    run_steps(con, [Step("SELECT k FROM raw_arrow ORDER BY k", "stg_sorted")])
    assert table_exists(con, "stg_sorted") and count(con, "stg_sorted") == 3
    drop_tables(con, ["stg_sorted", "stg_absent"])
    assert not table_exists(con, "stg_sorted") and table_exists(con, "stg_kept")
