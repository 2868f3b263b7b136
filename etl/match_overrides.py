"""The overrides file of title matching: ``movieId,tconst`` rows a person settled, validated whole."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import duckdb
import pyarrow as pa

from cinegraph.errors import CinegraphError

_TCONST_RE = re.compile(r"^tt\d{7,}$")


def read_overrides(con: duckdb.DuckDBPyConnection, path: Path) -> pa.Table:
    """Read and fully validate a ``movieId,tconst`` overrides CSV (empty tconst = force no match);
    raise one CinegraphError listing every problem."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise CinegraphError(f"overrides file {path}: cannot read it ({exc})") from exc
    rows = list(csv.reader(text.splitlines()))
    if not rows or [c.strip() for c in rows[0]] != ["movieId", "tconst"]:
        raise CinegraphError(f"overrides file {path}: header must be 'movieId,tconst'")
    problems: list[str] = []
    movie_ids: list[int] = []
    tconsts: list[str | None] = []
    lines: list[int] = []
    seen: dict[int, int] = {}
    for line, row in enumerate(rows[1:], start=2):
        if not any(c.strip() for c in row):
            continue
        if len(row) != 2:
            problems.append(f"line {line}: expected 2 fields, got {len(row)}")
            continue
        raw_id, tconst = row[0].strip(), row[1].strip()
        if not raw_id.isdigit():
            problems.append(f"line {line}: movieId {raw_id!r} is not an integer")
            continue
        if tconst and not _TCONST_RE.match(tconst):
            problems.append(f"line {line}: tconst {tconst!r} is not like 'tt0114709'")
            continue
        movie_id = int(raw_id)
        if movie_id in seen:
            problems.append(f"line {line}: movieId {movie_id} already given on line {seen[movie_id]}")
            continue
        seen[movie_id] = line
        movie_ids.append(movie_id)
        tconsts.append(tconst or None)
        lines.append(line)
    table = pa.table(
        {
            "movie_id": pa.array(movie_ids, pa.int64()),
            "tconst": pa.array(tconsts, pa.string()),
            "line": pa.array(lines, pa.int64()),
        }
    )
    con.register("_match_overrides_in", table)
    try:
        unknown = con.execute("""
            SELECT o.line, o.movie_id, o.tconst, m.movie_id IS NULL AS no_movie,
                   o.tconst IS NOT NULL AND t.tconst IS NULL AS no_title
            FROM _match_overrides_in o LEFT JOIN stg_ml_movies m ON m.movie_id = o.movie_id
            LEFT JOIN (SELECT DISTINCT tconst FROM stg_imdb_titles) t ON t.tconst = o.tconst
            WHERE m.movie_id IS NULL OR (o.tconst IS NOT NULL AND t.tconst IS NULL)""").fetchall()
    finally:
        con.unregister("_match_overrides_in")
    for line, movie_id, tconst, no_movie, no_title in unknown:
        if no_movie:
            problems.append(f"line {line}: movieId {movie_id} is not a staged movie")
        if no_title:
            problems.append(f"line {line}: tconst {tconst} is not a staged IMDb title")
    if problems:
        problems.sort(key=lambda p: int(p.split(":")[0].split()[1]))
        raise CinegraphError(f"overrides file {path}: {len(problems)} problem(s): " + "; ".join(problems))
    return table.drop_columns(["line"])
