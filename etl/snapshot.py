"""Build the graph snapshot: ``snap_*`` tables in SQL, then one Parquet file per node and edge
type (typed by :mod:`cinegraph.schema`), ``matches.parquet`` and ``manifest.json``, written as
a new version and swapped in whole by the shared writer (write disposition: replace; a failed or
killed run keeps the old one).

Step functions are pure and name columns only through the schema objects: each SELECT lists
expressions in schema column order and :func:`_select` attaches the schema's names.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from cinegraph import schema
from cinegraph.etl.warehouse import Step, run_steps, table_exists
from cinegraph.graph_store.snapshot_io import SnapshotWriter
from cinegraph.schema import EdgeType, NodeType

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
    cols = [
        "m.movie_id",
        "m.name",
        "m.year",
        "d.tconst",
        "t.primary_title",
        "t.title_type",
        "t.start_year",
        "t.runtime_minutes",
        "t.genres",
        "r.average_rating",
        "r.num_votes",
    ]
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
        Step(f"SELECT {_select(schema.IN_GENRE, ['movie_id', 'genre'])} FROM ({genres})", snap_table(schema.IN_GENRE)),
    ]


def activity_steps() -> list[Step]:
    return [
        Step(
            f"SELECT {_select(schema.RATED, ['user_id', 'movie_id', 'rating', 'timestamp'])} FROM stg_ml_ratings",
            snap_table(schema.RATED),
        ),
        Step(
            f"SELECT {_select(schema.TAGGED, ['user_id', 'movie_id', 'tag', 'timestamp'])} FROM stg_ml_tags",
            snap_table(schema.TAGGED),
        ),
    ]


def person_edge_step(edge: EdgeType) -> Step:
    """Person -> matched Movie edges of one type, one per (person, movie) (and category for
    WORKED_ON), only for people present in name.basics so no edge dangles.

    principals map by category (schema.PRINCIPAL_CATEGORY_EDGES, the rest is WORKED_ON), crew
    by column (schema.CREW_EDGES, deduplicated with principals), KNOWN_FOR from knownForTitles.
    """
    out = snap_table(edge)
    if edge is schema.KNOWN_FOR:
        pairs = "SELECT nconst, unnest(known_for) AS tconst FROM stg_imdb_names"
        sql = (
            f"SELECT DISTINCT {_select(edge, ['k.nconst', 'm.movie_id'])} FROM ({pairs}) k "
            f"JOIN {_MATCHED} m ON m.tconst = k.tconst"
        )
        return Step(sql, out)
    if edge is schema.WORKED_ON:
        sql = (
            f"SELECT DISTINCT {_select(edge, ['p.nconst', 'm.movie_id', 'p.category'])} "
            f"FROM stg_imdb_principals p JOIN {_MATCHED} m ON m.tconst = p.tconst "
            f"WHERE NOT list_contains($mapped, p.category) AND p.{_NAMED}"
        )
        return Step(sql, out, {"mapped": list(schema.PRINCIPAL_CATEGORY_EDGES)})
    categories = [c for c, e in schema.PRINCIPAL_CATEGORY_EDGES.items() if e is edge]
    roles = [r for r, e in schema.CREW_EDGES.items() if e is edge]
    if edge.properties:  # ACTED_IN: characters and ordering of the person's first billing
        exprs = ["p.nconst", "m.movie_id", *(f"arg_min(p.{p.name}, p.ordering)" for p in edge.properties)]
        sql = (
            f"SELECT {_select(edge, exprs)} FROM stg_imdb_principals p "
            f"JOIN {_MATCHED} m ON m.tconst = p.tconst "
            f"WHERE list_contains($categories, p.category) AND p.{_NAMED} GROUP BY ALL"
        )
        return Step(sql, out, {"categories": categories})
    people = (
        "SELECT tconst, nconst FROM stg_imdb_principals WHERE list_contains($categories, category) "
        "UNION SELECT tconst, nconst FROM stg_imdb_crew WHERE list_contains($roles, role)"
    )
    sql = (
        f"SELECT DISTINCT {_select(edge, ['p.nconst', 'm.movie_id'])} FROM ({people}) p "
        f"JOIN {_MATCHED} m ON m.tconst = p.tconst WHERE p.{_NAMED}"
    )
    return Step(sql, out, {"categories": categories, "roles": roles})


def person_step() -> Step:
    """People with at least one edge to a matched movie."""
    linked = " UNION ".join(f"SELECT src FROM {snap_table(e)}" for e in schema.IMDB_EDGE_TYPES)
    cols = ["nconst", "primary_name", "birth_year", "death_year", "professions"]
    return Step(
        f"SELECT {_select(schema.PERSON, cols)} FROM stg_imdb_names WHERE nconst IN ({linked})",
        snap_table(schema.PERSON),
    )


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


def _indexed_strings(nt: NodeType) -> dict[str, int]:
    """Non-key string properties with a Neo4j index, and the longest value (bytes) it takes."""
    return {
        p.name: schema.INDEX_MAX_BYTES[p.index]
        for p in nt.properties
        if p.index is not None and pa.types.is_string(p.type)
    }


def fit_to_indexes(
    batches: Iterable[pa.RecordBatch], limits: Mapping[str, int], truncated: dict[str, int], label: str
) -> Iterator[pa.RecordBatch]:
    """Cut each value of an indexed property longer than its index takes to that many UTF-8
    bytes, on a character boundary, counting cuts in ``truncated["Label.property"]``: a value
    Neo4j cannot index would make the whole load fail."""
    for batch in batches:
        for name, limit in limits.items():
            i = batch.schema.get_field_index(name)
            column = batch.column(i)
            if not pc.any(pc.greater(pc.binary_length(column), limit)).as_py():
                continue
            values = column.to_pylist()
            cut = [
                v if v is None or len(v.encode()) <= limit else v.encode()[:limit].decode(errors="ignore")
                for v in values
            ]
            truncated[f"{label}.{name}"] = truncated.get(f"{label}.{name}", 0) + sum(
                a is not b for a, b in zip(values, cut, strict=True)
            )
            batch = batch.set_column(i, name, pa.array(cut, column.type))
        yield batch


def write_snapshot(
    con: duckdb.DuckDBPyConnection,
    out: Path,
    *,
    sources: Sequence[Mapping[str, Any]],
    rejects: Mapping[str, int],
    match: Mapping[str, Any],
) -> tuple[Path, dict[str, Any]]:
    """Build snap_* from the staged tables and ``match_decisions`` and stream them, sorted by key
    (a rerun on the same input gives the same rows in the same order), into a new version of
    ``out/snapshot`` that replaces the old one atomically (:class:`SnapshotWriter`). Returns
    (path, manifest); the manifest's ``truncated`` counts values cut to fit an index."""
    run_steps(con, snapshot_steps(table_exists(con, "stg_ml_users")))
    target = out / SNAPSHOT_DIR
    truncated: dict[str, int] = {}
    with SnapshotWriter(target) as writer:
        for nt in schema.NODE_TYPES:
            reader = con.sql(f"SELECT * FROM {snap_table(nt)} ORDER BY {nt.key}").to_arrow_reader(BATCH_ROWS)
            writer.write_table(nt.label, fit_to_indexes(reader, _indexed_strings(nt), truncated, nt.label))
        for et in schema.EDGE_TYPES:
            writer.write_table(
                et.rel, con.sql(f"SELECT * FROM {snap_table(et)} ORDER BY ALL").to_arrow_reader(BATCH_ROWS)
            )
        writer.write_file(
            schema.MATCHES_FILE, con.sql("SELECT * FROM match_decisions ORDER BY movie_id").to_arrow_reader(BATCH_ROWS)
        )
        manifest = writer.commit(
            sources=[dict(s) for s in sources],
            rejects=dict(sorted(rejects.items())),
            match=dict(match),
            truncated=dict(sorted(truncated.items())),
        )
    for name, n in truncated.items():
        log.warning("%s: %d values cut to the index limit (manifest 'truncated')", name, n)
    log.info("snapshot written to %s: %s", target, manifest["counts"])
    return target, manifest
