"""Fuzzy scoring of title matching with rapidfuzz: candidate spellings normalised in batches, then
each year block's queries scored against the spellings within reach, one block in memory at a time."""

from __future__ import annotations

import logging
from collections.abc import Callable

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from rapidfuzz import fuzz, process

from cinegraph.etl.match_config import MatchConfig
from cinegraph.etl.match_sql import BLOCK_CHOICES_SQL, pairs_sql, register_temp, run_temp
from cinegraph.etl.titles import colon_parts_many, normalize_many
from cinegraph.etl.warehouse import Step, register_arrow

log = logging.getLogger(__name__)

_SCORERS = {"ratio": fuzz.ratio, "token_sort_ratio": fuzz.token_sort_ratio}
NORM_BATCH_ROWS = 1_000_000  # candidate spellings normalised per batch: bounds Python memory


def stage_title_norms(con: duckdb.DuckDBPyConnection, batch_rows: int = NORM_BATCH_ROWS) -> None:
    """Normalise each needed candidate spelling once, with the same functions the queries used
    (plus its long colon halves, flagged derived), a hash slice of the titles at a time so the
    Python side holds one batch."""
    run_temp(
        con,
        [
            Step(
                "SELECT NULL::VARCHAR AS title, NULL::VARCHAR AS norm, NULL::VARCHAR AS key, "
                "NULL::BOOLEAN AS derived WHERE false",
                "match_title_norms",
            )
        ],
    )
    total = int(con.execute("SELECT count(*) FROM match_needed_titles").fetchall()[0][0])
    parts = max(1, -(-total // batch_rows))
    for part in range(parts):
        titles = (
            con.sql(
                "SELECT title FROM match_needed_titles WHERE hash(title) % $parts = $part",
                params={"parts": parts, "part": part},
            )
            .to_arrow_table()["title"]
            .combine_chunks()
        )
        norms = normalize_many(titles)
        colon = titles.filter(pc.match_substring(titles, ":"))
        part_title: list[str] = []
        part_norm: list[str] = []
        colon_list = colon.to_pylist()
        for title, halves in zip(colon_list, colon_parts_many(colon_list), strict=True):
            part_title += [title] * len(halves)
            part_norm += halves
        all_norms = pa.concat_arrays([norms, pa.array(part_norm, pa.string())])
        batch = pa.table(
            {
                "title": pa.concat_arrays([titles, pa.array(part_title, pa.string())]),
                "norm": all_norms,
                "key": pc.replace_substring(all_norms, " ", ""),  # title_key, vectorised
                "derived": pa.array([False] * len(norms) + [True] * len(part_norm), pa.bool_()),
            }
        )
        register_arrow(con, "_match_arrow", batch)
        try:
            con.execute("INSERT INTO match_title_norms SELECT * FROM _match_arrow")
        finally:
            con.unregister("_match_arrow")


def length_window(length: int, cutoff: float) -> tuple[int, int]:
    """Candidate lengths that can reach ``cutoff`` against a query of ``length`` characters:
    ratio = 100 * (1 - indel / (la + lb)) and indel >= |la - lb| bound it by 200 * min / (la + lb)."""
    if cutoff <= 0:
        return 0, 1 << 30
    low = int(np.ceil(length * cutoff / (200 - cutoff) - 1e-9))
    high = int(np.floor(length * (200 - cutoff) / cutoff + 1e-9)) if cutoff < 200 else length
    return low, high


def score_blocks(con: duckdb.DuckDBPyConnection, config: MatchConfig) -> None:
    """Score each year block's queries against the distinct spellings of the titles starting
    within ±year_tolerance with ``process.cdist``, one block in memory at a time, and keep the
    cells at or above ``threshold - margin`` (a lower score can neither win nor threaten a winner)
    as match_hits; :func:`pairs_sql` maps them back to titles. Queries of one length meet only the
    candidate lengths that can reach that cutoff (an exact bound, a few times fewer cells). A pair
    involving a derived (colon-half) spelling loses ``derived_penalty``, so a full-title match
    always outranks it. Undated movies meet the titles sharing one of their title keys."""
    scorer = _SCORERS[config.scorer]
    cutoff = max(config.threshold - config.margin, 0.0)
    queries = con.sql(
        "SELECT block, length(norm) AS len, movie_id, norm, derived FROM match_queries "
        "WHERE block >= 0 ORDER BY block, len, movie_id, norm"
    ).to_arrow_table()
    q_block, q_len = queries["block"].to_numpy(), queries["len"].to_numpy()
    q_movie, q_norm = queries["movie_id"].to_numpy(), queries["norm"].to_pylist()
    q_derived = queries["derived"].to_numpy(zero_copy_only=False)
    hits: list[pa.Table] = []
    cells = 0
    year_starts = np.flatnonzero(np.r_[True, q_block[1:] != q_block[:-1]]) if len(q_block) else np.array([], int)
    year_ends = np.r_[year_starts[1:], len(q_block)].astype(int) if len(q_block) else year_starts
    for ys, ye in zip(year_starts.tolist(), year_ends.tolist(), strict=True):
        year = int(q_block[ys])
        choices_tab = con.sql(
            BLOCK_CHOICES_SQL, params={"low": year - config.year_tolerance, "high": year + config.year_tolerance}
        ).to_arrow_table()
        if choices_tab.num_rows == 0:
            continue
        b_len, b_norm = choices_tab["len"].to_numpy(), choices_tab["norm"].to_pylist()
        b_derived = choices_tab["derived"].to_numpy(zero_copy_only=False)
        # One group per query length inside the year; queries are sorted that way.
        lens = q_len[ys:ye]
        starts = ys + np.flatnonzero(np.r_[True, lens[1:] != lens[:-1]])
        for qs, qe in zip(starts.tolist(), np.r_[starts[1:], ye].astype(int).tolist(), strict=False):
            low, high = length_window(int(q_len[qs]), cutoff)
            cs = int(np.searchsorted(b_len, low, "left"))
            ce = int(np.searchsorted(b_len, high, "right"))
            if cs >= ce:
                continue
            choices = b_norm[cs:ce]
            rows = max(1, config.max_cells // len(choices))
            for r0 in range(qs, qe, rows):
                r1 = min(r0 + rows, qe)
                # uint8 cells (a quarter of the memory to scan); the few hits are rescored exactly.
                cells += (r1 - r0) * len(choices)
                found = process.cdist(
                    q_norm[r0:r1],
                    choices,
                    scorer=scorer,
                    processor=None,
                    score_cutoff=cutoff,
                    dtype=np.uint8,
                    workers=config.workers,
                )
                qi, ci = np.nonzero(found)
                exact = process.cpdist(
                    [q_norm[r0 + i] for i in qi.tolist()],
                    [choices[i] for i in ci.tolist()],
                    scorer=scorer,
                    processor=None,
                    score_cutoff=0,
                    dtype=np.float64,
                )
                score = exact - config.derived_penalty * (q_derived[r0:r1][qi] | b_derived[cs:ce][ci])
                keep = score >= cutoff
                take = pa.array(ci[keep] + cs, pa.int64())
                hits.append(
                    pa.table(
                        {
                            "movie_id": pa.array(q_movie[r0:r1][qi[keep]], pa.int64()),
                            "norm": choices_tab["norm"].take(take),
                            "derived": choices_tab["derived"].take(take),
                            "score": pa.array(score[keep], pa.float64()),
                        }
                    )
                )
    empty = pa.table(
        {
            "movie_id": pa.array([], pa.int64()),
            "norm": pa.array([], pa.string()),
            "derived": pa.array([], pa.bool_()),
            "score": pa.array([], pa.float64()),
        }
    )
    register_temp(con, "match_hits", pa.concat_tables([empty, *hits]).combine_chunks())
    register_temp(con, "match_key_pairs", _score_undated(con, config, scorer, cutoff))
    run_temp(con, [pairs_sql(config.year_tolerance, config.aka_penalty)])
    log.info(
        "scored %d cells in %d year blocks, kept %d spellings", cells, len(year_starts), sum(t.num_rows for t in hits)
    )


def _score_undated(
    con: duckdb.DuckDBPyConnection, config: MatchConfig, scorer: Callable[..., float], cutoff: float
) -> pa.Table:
    """Undated movies against every title sharing one of their title keys (any year), pair by pair."""
    pairs = con.sql("""
        SELECT q.movie_id, q.norm AS query, q.derived AS query_derived, s.norm, s.derived, s.tconst, s.aka
        FROM match_queries q JOIN match_spelled s ON s.key = q.key WHERE q.block < 0
        ORDER BY q.movie_id, s.tconst, s.norm, q.norm""").to_arrow_table()
    score = (
        process.cpdist(
            pairs["query"].to_pylist(),
            pairs["norm"].to_pylist(),
            scorer=scorer,
            processor=None,
            score_cutoff=0,
            dtype=np.float64,
        )
        if pairs.num_rows
        else np.array([], np.float64)
    )
    derived = pc.or_(pairs["query_derived"], pairs["derived"]).to_numpy(zero_copy_only=False).astype(bool)
    score = score - config.derived_penalty * derived
    keep = pa.array(score >= cutoff)
    return pa.table(
        {
            "movie_id": pairs["movie_id"],
            "norm": pairs["norm"],
            "tconst": pairs["tconst"],
            "score": pa.array(score, pa.float64()),
            "aka": pairs["aka"],
        }
    ).filter(keep)
