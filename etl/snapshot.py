"""Build the graph snapshot: ``snap_*`` tables in SQL, then one Parquet file per node and edge
type (typed by :mod:`graph_store.schema`), ``matches.parquet`` and ``manifest.json``, written to a
temporary folder and swapped in whole (write disposition: replace; a failed run keeps the old one).

Step functions are pure and name columns only through the schema objects: each SELECT lists
expressions in schema column order and :func:`_select` attaches the schema's names.
"""

from __future__ import annotations

import json
import logging
import shutil
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from etl.warehouse import Step, run_steps, table_exists
from graph_store import schema
from graph_store.schema import EdgeType, NodeType

log = logging.getLogger(__name__)

SNAPSHOT_DIR = "snapshot"
BATCH_ROWS = 1 << 20
# Matched movies: the only movies IMDb edges may point to.
_MATCHED = "(SELECT movie_id, tconst FROM match_decisions WHERE tconst IS NOT NULL)"
_NAMED = "nconst IN (SELECT nconst FROM stg_imdb_names)"


def snap_table(t: NodeType | EdgeType) -> str:
    """``snap_<label>`` / ``snap_<rel>``, lower case."""
    return f"snap_{(t.label if isinstance(t, NodeType) else t.rel).lower()}"


def _select(t: NodeType | EdgeType, exprs: Sequence[str]) -> str:
    """``expr AS column`` for each schema column, in schema order."""
    if len(exprs) != len(t.columns):
        raise ValueError(f"{snap_table(t)}: {len(exprs)} expressions for columns {t.columns}")
    return ", ".join(f"{e} AS {c}" for e, c in zip(exprs, t.columns, strict=True))


def user_step(has_users_table: bool) -> Step:
    """Users with demographics where the variant ships them, else every rater or tagger."""
    if has_users_table:
        sql = "SELECT " + _select(schema.USER, ["user_id", "gender", "age", "occupation", "zip_code"])
        return Step(sql + " FROM stg_ml_users", snap_table(schema.USER))
    ids = "SELECT user_id FROM stg_ml_ratings UNION SELECT user_id FROM stg_ml_tags"
    sql = "SELECT " + _select(schema.USER, ["user_id", "NULL", "NULL", "NULL", "NULL"])
    return Step(f"{sql} FROM ({ids})", snap_table(schema.USER))


def movie_step() -> Step:
    """Every MovieLens movie; IMDb properties from its matched title (NULL when unmatched)."""
    cols = ["m.movie_id", "m.name", "m.year", "d.tconst", "t.primary_title", "t.title_type",
            "t.start_year", "t.runtime_minutes", "t.genres", "r.average_rating", "r.num_votes"]  # fmt: skip
    return Step(
        f"SELECT {_select(schema.MOVIE, cols)} FROM stg_ml_movies m "
        "LEFT JOIN match_decisions d ON d.movie_id = m.movie_id "
        "LEFT JOIN stg_imdb_titles t ON t.tconst = d.tconst "
        "LEFT JOIN stg_imdb_ratings r ON r.tconst = d.tconst",
        snap_table(schema.MOVIE),
    )


def genre_steps() -> list[Step]:
    genres = "SELECT DISTINCT movie_id, unnest(genres) AS genre FROM stg_ml_movies"
    return [
        Step(f"SELECT DISTINCT {_select(schema.GENRE, ['genre'])} FROM ({genres})", snap_table(schema.GENRE)),
        Step(f"SELECT {_select(schema.IN_GENRE, ['movie_id', 'genre'])} FROM ({genres})",
             snap_table(schema.IN_GENRE)),
    ]  # fmt: skip


def activity_steps() -> list[Step]:
    return [
        Step(f"SELECT {_select(schema.RATED, ['user_id', 'movie_id', 'rating', 'timestamp'])} "
             "FROM stg_ml_ratings", snap_table(schema.RATED)),
        Step(f"SELECT {_select(schema.TAGGED, ['user_id', 'movie_id', 'tag', 'timestamp'])} "
             "FROM stg_ml_tags", snap_table(schema.TAGGED)),
    ]  # fmt: skip


def person_edge_step(edge: EdgeType) -> Step:
    """Person -> matched Movie edges of one type, one per (person, movie) (and category for
    WORKED_ON), only for people present in name.basics so no edge dangles.

    principals map by category (schema.PRINCIPAL_CATEGORY_EDGES, the rest is WORKED_ON), crew
    by column (schema.CREW_EDGES, deduplicated with principals), KNOWN_FOR from knownForTitles.
    """
    out = snap_table(edge)
    if edge is schema.KNOWN_FOR:
        pairs = "SELECT nconst, unnest(known_for) AS tconst FROM stg_imdb_names"
        sql = (f"SELECT DISTINCT {_select(edge, ['k.nconst', 'm.movie_id'])} FROM ({pairs}) k "
               f"JOIN {_MATCHED} m ON m.tconst = k.tconst")  # fmt: skip
        return Step(sql, out)
    if edge is schema.WORKED_ON:
        sql = (f"SELECT DISTINCT {_select(edge, ['p.nconst', 'm.movie_id', 'p.category'])} "
               f"FROM stg_imdb_principals p JOIN {_MATCHED} m ON m.tconst = p.tconst "
               f"WHERE NOT list_contains($mapped, p.category) AND p.{_NAMED}")  # fmt: skip
        return Step(sql, out, {"mapped": list(schema.PRINCIPAL_CATEGORY_EDGES)})
    categories = [c for c, e in schema.PRINCIPAL_CATEGORY_EDGES.items() if e is edge]
    roles = [r for r, e in schema.CREW_EDGES.items() if e is edge]
    if edge.properties:  # ACTED_IN: characters and ordering of the person's first billing
        exprs = ["p.nconst", "m.movie_id", *(f"arg_min(p.{p.name}, p.ordering)" for p in edge.properties)]
        sql = (f"SELECT {_select(edge, exprs)} FROM stg_imdb_principals p "
               f"JOIN {_MATCHED} m ON m.tconst = p.tconst "
               f"WHERE list_contains($categories, p.category) AND p.{_NAMED} GROUP BY ALL")  # fmt: skip
        return Step(sql, out, {"categories": categories})
    people = ("SELECT tconst, nconst FROM stg_imdb_principals WHERE list_contains($categories, category) "
              "UNION SELECT tconst, nconst FROM stg_imdb_crew WHERE list_contains($roles, role)")  # fmt: skip
    sql = (f"SELECT DISTINCT {_select(edge, ['p.nconst', 'm.movie_id'])} FROM ({people}) p "
           f"JOIN {_MATCHED} m ON m.tconst = p.tconst WHERE p.{_NAMED}")  # fmt: skip
    return Step(sql, out, {"categories": categories, "roles": roles})


def person_step() -> Step:
    """People with at least one edge to a matched movie."""
    linked = " UNION ".join(f"SELECT src FROM {snap_table(e)}" for e in schema.IMDB_EDGE_TYPES)
    cols = ["nconst", "primary_name", "birth_year", "death_year", "professions"]
    return Step(f"SELECT {_select(schema.PERSON, cols)} FROM stg_imdb_names WHERE nconst IN ({linked})",
                snap_table(schema.PERSON))  # fmt: skip


def snapshot_steps(has_users_table: bool) -> list[Step]:
    """Every snap_* table, persons last (they depend on the person edges)."""
    return [
        user_step(has_users_table),
        movie_step(),
        *genre_steps(),
        *activity_steps(),
        *(person_edge_step(e) for e in schema.IMDB_EDGE_TYPES),
        person_step(),
    ]


# --- writing ------------------------------------------------------------------------------------


def _write_parquet(con: duckdb.DuckDBPyConnection, sql: str, target: pa.Schema | None, path: Path) -> int:
    """Stream a query into one Parquet file, cast to the schema's Arrow types; returns rows."""
    reader = con.sql(sql).to_arrow_reader(BATCH_ROWS)
    arrow_schema = target if target is not None else reader.schema
    rows = 0
    path.parent.mkdir(parents=True, exist_ok=True)
    with pq.ParquetWriter(path, arrow_schema) as writer:
        for batch in reader:
            table = pa.Table.from_batches([batch]).rename_columns(arrow_schema.names).cast(arrow_schema)
            writer.write_table(table)
            rows += table.num_rows
    return rows


def write_snapshot(
    con: duckdb.DuckDBPyConnection,
    out: Path,
    *,
    sources: Sequence[Mapping[str, Any]],
    rejects: Mapping[str, int],
    match: Mapping[str, Any],
) -> tuple[Path, dict[str, Any]]:
    """Build snap_* from the staged tables and ``match_decisions``, write them under
    ``out/.snapshot-tmp-*`` sorted by key (a rerun on the same input gives the same rows in the
    same order), then swap the folder into ``out/snapshot``. Returns (path, manifest)."""
    run_steps(con, snapshot_steps(table_exists(con, "stg_ml_users")))
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f".snapshot-tmp-{uuid.uuid4().hex[:12]}"
    try:
        counts: dict[str, dict[str, int]] = {"nodes": {}, "edges": {}}
        for nt in schema.NODE_TYPES:
            sql = f"SELECT * FROM {snap_table(nt)} ORDER BY {nt.key}"
            counts["nodes"][nt.label] = _write_parquet(con, sql, nt.arrow_schema(), tmp / schema.node_path(nt.label))
        for et in schema.EDGE_TYPES:
            sql = f"SELECT * FROM {snap_table(et)} ORDER BY ALL"
            counts["edges"][et.rel] = _write_parquet(con, sql, et.arrow_schema(), tmp / schema.edge_path(et.rel))
        _write_parquet(con, "SELECT * FROM match_decisions ORDER BY movie_id", None, tmp / schema.MATCHES_FILE)
        manifest = {
            "schema_version": schema.SCHEMA_VERSION,
            "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "sources": [dict(s) for s in sources],
            "counts": counts,
            "rejects": dict(sorted(rejects.items())),
            "match": dict(match),
        }
        (tmp / schema.MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")
        final = _swap(tmp, out / SNAPSHOT_DIR)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("snapshot written to %s: %s", final, counts)
    return final, manifest


def _swap(tmp: Path, final: Path) -> Path:
    """Replace ``final`` by ``tmp`` with two renames; the old folder is restored if the second
    rename fails and deleted once the new one is in place."""
    old = final.with_name(f".snapshot-old-{uuid.uuid4().hex[:12]}")
    if final.exists():
        final.rename(old)
    try:
        tmp.rename(final)
    except BaseException:
        if old.exists():
            old.rename(final)
        raise
    shutil.rmtree(old, ignore_errors=True)
    return final
