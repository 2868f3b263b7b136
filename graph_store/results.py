"""Write a training run's outputs back into the graph: top-K recommendations and movie embeddings.

Both writers are safe to re-run: a run's RECOMMENDED edges are deleted before its new ones are
written, so a re-run replaces, never duplicates. The new edges are then known to be absent and are
CREATEd (a MERGE on the run id would let the planner seek the run-id index and compare against every
edge of the run written so far: quadratic); a batch is one transaction, retried by the driver only
when it did not commit. Embeddings are set on the movie nodes, with the vector index rebuilt only
when the dimension changes.

Rows travel in batches of Arrow record batches (never one Python dict per row of the whole
table), with a progress bar per phase.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import neo4j
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from tqdm import tqdm

from cinegraph.errors import CinegraphError
from cinegraph.schema import (
    MOVIE,
    MOVIE_EMBEDDING_INDEX,
    MOVIE_EMBEDDING_PROPERTY,
    RECOMMENDED,
    USER,
)

log = logging.getLogger(__name__)

REC_COLUMNS = ("user_id", "movie_id", "score", "rank")

_DELETE_RUN = (
    f"MATCH (:{USER.label})-[r:{RECOMMENDED.rel} {{run_id: $run_id}}]->(:{MOVIE.label}) "
    "WITH r LIMIT $batch DELETE r RETURN count(*) AS deleted"
)
_WRITE_RECS = (
    f"UNWIND $rows AS row "
    f"MATCH (u:{USER.label} {{{USER.key}: row.user_id}}) "
    f"MATCH (m:{MOVIE.label} {{{MOVIE.key}: row.movie_id}}) "
    f"CREATE (u)-[r:{RECOMMENDED.rel} {{run_id: $run_id}}]->(m) "
    "SET r.score = row.score, r.rank = row.rank, r.model = $model "
    "RETURN count(r) AS written"
)
RUN_ID_INDEX = f"{RECOMMENDED.rel.lower()}_run_id"  # speeds up replacing a run's edges

_RUN_INDEX = f"CREATE INDEX {RUN_ID_INDEX} IF NOT EXISTS FOR ()-[r:{RECOMMENDED.rel}]-() ON (r.run_id)"
_MISSING_KEYS = (
    "UNWIND $ids AS id WITH id WHERE NOT EXISTS {{ MATCH (:{label} {{{key}: id}}) }} RETURN collect(id) AS missing"
)
_SET_EMBEDDINGS = (
    f"UNWIND $rows AS row MATCH (m:{MOVIE.label} {{{MOVIE.key}: row.movie_id}}) "
    "CALL db.create.setNodeVectorProperty(m, $property, row.embedding) "
    "RETURN count(m) AS written"
)
_EMBEDDED_MOVIES = f"MATCH (m:{MOVIE.label}) WHERE m.{MOVIE_EMBEDDING_PROPERTY} IS NOT NULL RETURN m.{MOVIE.key} AS id"
_CLEAR_EMBEDDINGS = (
    f"UNWIND $ids AS id MATCH (m:{MOVIE.label} {{{MOVIE.key}: id}}) "
    f"REMOVE m.{MOVIE_EMBEDDING_PROPERTY} RETURN count(m) AS cleared"
)
_INDEX_DIMENSIONS = (
    "SHOW VECTOR INDEXES YIELD name, options WHERE name = $name "
    "RETURN options.indexConfig['vector.dimensions'] AS dimensions"
)


_REC_TYPES = {"user_id": pa.int64(), "movie_id": pa.int64(), "score": pa.float64(), "rank": pa.int64()}
_KEY_CHECK_BATCH = 50_000


def _rec_table(recs: pa.Table | Sequence[Mapping[str, Any]]) -> pa.Table:
    """Recommendation rows as a typed table of :data:`REC_COLUMNS`, validated all at once."""
    table = recs if isinstance(recs, pa.Table) else pa.Table.from_pylist(list(recs))
    missing = [c for c in REC_COLUMNS if c not in table.column_names]
    if missing:
        raise CinegraphError(f"recommendations: missing column(s) {missing}; expected {list(REC_COLUMNS)}")
    try:
        table = table.select(list(REC_COLUMNS)).cast(pa.schema([pa.field(c, _REC_TYPES[c]) for c in REC_COLUMNS]))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise CinegraphError(f"recommendations: {exc}") from exc
    problems = [f"{c}: {table.column(c).null_count} nulls" for c in REC_COLUMNS if table.column(c).null_count]
    pairs = table.group_by(["user_id", "movie_id"]).aggregate([("rank", "count")])
    dup = pc.sum(pc.greater(pairs.column("rank_count"), 1)).as_py() or 0
    if dup:
        problems.append(f"{dup} (user_id, movie_id) pairs appear more than once")
    if problems:
        raise CinegraphError("recommendations: " + "; ".join(problems))
    return table


def _batches(table: pa.Table, size: int) -> Iterator[list[dict[str, Any]]]:
    for batch in table.to_batches(max_chunksize=size):
        yield batch.to_pylist()


def _value(tx: neo4j.ManagedTransaction, query: str, /, **params: Any) -> Any:
    """The one value of ``query``'s one row; a transaction function, so the driver may retry it."""
    return tx.run(query, params).single(strict=True)[0]


def _check_keys_exist(session: neo4j.Session, what: str, label: str, key: str, ids: Iterable[int]) -> None:
    query = _MISSING_KEYS.format(label=label, key=key)
    unique = sorted(set(ids))
    missing: list[int] = []
    for start in range(0, len(unique), _KEY_CHECK_BATCH):
        chunk = unique[start : start + _KEY_CHECK_BATCH]
        missing += session.execute_read(_value, query, ids=chunk)
    if missing:
        raise CinegraphError(f"{what}: {len(missing)} {label} id(s) not in the graph, e.g. {missing[:5]}")


def _delete_in_batches(session: neo4j.Session, query: str, params: dict[str, Any], batch: int) -> int:
    total = 0
    while True:
        n = session.execute_write(_value, query, **params, batch=batch)
        total += n
        if n == 0:
            return total


def write_recommendations(
    driver: neo4j.Driver,
    recs: pa.Table | Sequence[Mapping[str, Any]],
    *,
    run_id: str,
    model: str,
    database: str = "neo4j",
    batch_size: int = 10_000,
    progress: bool = True,
) -> int:
    """Replace a run's top-K as ``(:User)-[:RECOMMENDED {score, rank, model, run_id}]->(:Movie)``.

    Args:
        recs: rows with ``user_id``, ``movie_id``, ``score``, ``rank`` (a table or dicts).
        run_id: the training run; its previous edges are removed first.
        model: the model name stored on each edge.

    Returns:
        The number of edges written (one per row).

    Raises:
        CinegraphError: missing columns, nulls, a repeated (user, movie) pair, or ids absent
            from the graph (checked before anything is written).
    """
    if not run_id:
        raise CinegraphError("run_id must be a non-empty string")
    if batch_size < 1:
        raise CinegraphError(f"batch_size {batch_size}: must be at least 1")
    table = _rec_table(recs)
    driver.execute_query(_RUN_INDEX, database_=database)
    driver.execute_query("CALL db.awaitIndex($name, 300)", name=RUN_ID_INDEX, database_=database)
    with driver.session(database=database) as session:
        _check_keys_exist(session, "recommendations", USER.label, USER.key, pc.unique(table["user_id"]).to_pylist())
        _check_keys_exist(session, "recommendations", MOVIE.label, MOVIE.key, pc.unique(table["movie_id"]).to_pylist())
        removed = _delete_in_batches(session, _DELETE_RUN, {"run_id": run_id}, batch_size)
        written = 0
        with tqdm(
            total=table.num_rows, desc="write RECOMMENDED", unit="edge", disable=not progress, leave=False
        ) as bar:
            for chunk in _batches(table, batch_size):
                written += session.execute_write(_value, _WRITE_RECS, rows=chunk, run_id=run_id, model=model)
                bar.update(len(chunk))
    log.info("run %s: replaced %d RECOMMENDED edges with %d", run_id, removed, written)
    return written


def ensure_vector_index(driver: neo4j.Driver, dimensions: int, *, database: str = "neo4j") -> None:
    """Create the cosine vector index on movie embeddings, recreating it when the dimension
    differs; waits until it is online. Quantization is off: a few thousand movies fit easily,
    and scores stay the exact cosine."""
    if dimensions < 1:
        raise CinegraphError(f"embedding dimension {dimensions} must be positive")
    records, _, _ = driver.execute_query(_INDEX_DIMENSIONS, name=MOVIE_EMBEDDING_INDEX, database_=database)
    if records and records[0]["dimensions"] != dimensions:
        log.info("dropping vector index %s (dimension %s)", MOVIE_EMBEDDING_INDEX, records[0][0])
        driver.execute_query(f"DROP INDEX {MOVIE_EMBEDDING_INDEX} IF EXISTS", database_=database)
    # Index options take no parameters; `dimensions` is a checked int.
    driver.execute_query(
        f"CREATE VECTOR INDEX {MOVIE_EMBEDDING_INDEX} IF NOT EXISTS "
        f"FOR (m:{MOVIE.label}) ON m.{MOVIE_EMBEDDING_PROPERTY} "
        f"OPTIONS {{indexConfig: {{`vector.dimensions`: {int(dimensions)}, "
        "`vector.similarity_function`: 'cosine', `vector.quantization.enabled`: false}}",
        database_=database,
    )
    driver.execute_query("CALL db.awaitIndex($name, 300)", name=MOVIE_EMBEDDING_INDEX, database_=database)


def write_movie_embeddings(
    driver: neo4j.Driver,
    movie_ids: Sequence[int],
    embeddings: np.ndarray,
    *,
    database: str = "neo4j",
    batch_size: int = 2_000,
    progress: bool = True,
) -> int:
    """Store one embedding per movie as its vector property and index it for similarity search.

    Movies not in ``movie_ids`` lose any embedding of an earlier run, so the index only ever
    holds one run's vectors. Returns the number of movies written.

    Raises:
        CinegraphError: shape mismatch, non-finite values, repeated or unknown movie ids.
    """
    emb = np.asarray(embeddings, dtype=np.float32)
    ids = [int(i) for i in movie_ids]
    problems = []
    if emb.ndim != 2:
        problems.append(f"embeddings must be 2-D [movies, dim], got shape {emb.shape}")
    elif emb.shape[0] != len(ids):
        problems.append(f"{emb.shape[0]} embeddings for {len(ids)} movie ids")
    if len(set(ids)) != len(ids):
        problems.append(f"{len(ids) - len(set(ids))} repeated movie ids")
    if emb.size and not np.isfinite(emb).all():
        problems.append("embeddings hold NaN or infinite values")
    if problems:
        raise CinegraphError("movie embeddings: " + "; ".join(problems))
    with driver.session(database=database) as session:
        _check_keys_exist(session, "movie embeddings", MOVIE.label, MOVIE.key, ids)
    ensure_vector_index(driver, emb.shape[1], database=database)
    written = 0
    with (
        driver.session(database=database) as session,
        tqdm(total=len(ids), desc="write embeddings", unit="movie", disable=not progress, leave=False) as bar,
    ):
        for start in range(0, len(ids), batch_size):
            chunk = [
                {"movie_id": i, "embedding": v.tolist()}
                for i, v in zip(ids[start : start + batch_size], emb[start : start + batch_size], strict=True)
            ]
            written += session.execute_write(_value, _SET_EMBEDDINGS, rows=chunk, property=MOVIE_EMBEDDING_PROPERTY)
            bar.update(len(chunk))
        kept = set(ids)
        stale = [
            i for i in session.execute_read(lambda tx: [r["id"] for r in tx.run(_EMBEDDED_MOVIES)]) if i not in kept
        ]
        cleared = 0
        for start in range(0, len(stale), batch_size):
            cleared += session.execute_write(_value, _CLEAR_EMBEDDINGS, ids=stale[start : start + batch_size])
    log.info("wrote %d movie embeddings (dim %d), cleared %d stale", written, emb.shape[1], cleared)
    return written
