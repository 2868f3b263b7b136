"""Match MovieLens movies to IMDb titles: block in DuckDB, score blocks with rapidfuzz, decide in SQL.

Plan (SQL steps in :mod:`etl.match_sql`, rapidfuzz scoring in :mod:`etl.match_scoring`,
the overrides file in :mod:`etl.match_overrides`):

    stg_ml_movies --parse--> match_movies, match_queries (block = year, or -movie_id when undated)
    stg_imdb_titles (+ stg_imdb_akas) --> match_candidate_titles --> match_needed_titles
    --normalise (in batches)--> match_title_norms --> match_spelled (year, norm, key, tconst)
    rapidfuzz cdist per year block, one in memory at a time --> match_hits (+ match_key_pairs for
    undated movies) --> match_pairs --> match_scored --> match_fuzzy
    match_fuzzy + links + overrides --> match_decisions (replace, one row per movie)

A candidate ranks by fuzzy score, minus title-type and year-distance penalties, plus a bonus per
tenfold IMDb votes (real dumps hold many same-year homonyms; the one people rate wins). A match
needs the score threshold, a margin over the best candidate with a *different* title (one with a
matching name the winner does not bear), and a smaller lead over every other title; a winner
found only through an a.k.a. title, or off the MovieLens year, must not face a title matching
under its own name or of that very year. Otherwise the movie goes to the review file. Overrides
always win. The working tables are TEMP; only match_decisions reaches the warehouse.
"""

from __future__ import annotations

import csv
import logging
import os
from pathlib import Path
from typing import Literal

import duckdb
import pyarrow as pa
from pydantic import BaseModel

from cinegraph.errors import CinegraphError
from cinegraph.etl.match_config import MatchConfig
from cinegraph.etl.match_overrides import read_overrides
from cinegraph.etl.match_scoring import score_blocks, stage_title_norms
from cinegraph.etl.match_sql import (
    candidate_info_sql,
    candidate_titles_sql,
    decisions_sql,
    evaluation_sql,
    fuzzy_sql,
    links_sql,
    needed_titles_sql,
    register_temp,
    review_sql,
    run_temp,
    scored_sql,
    spelled_sql,
)
from cinegraph.etl.resources import usage
from cinegraph.etl.titles import parse_title, query_strings_many, title_key
from cinegraph.etl.warehouse import Step, drop_tables, run_steps, table_exists

__all__ = ["Evaluation", "MatchConfig", "MatchReport", "evaluation_from_counts", "match_titles"]

log = logging.getLogger(__name__)

# Working tables of one run, TEMP (in memory, not written to the warehouse file) and dropped at its
# end; only match_decisions is a warehouse table (write disposition: replace).
INTERMEDIATE_TABLES = (
    "match_movies",
    "match_queries",
    "match_overrides",
    "match_candidate_titles",
    "match_candidate_info",
    "match_needed_titles",
    "match_title_norms",
    "match_spelled",
    "match_hits",
    "match_key_pairs",
    "match_pairs",
    "match_scored",
    "match_fuzzy",
    "match_links",
    "match_outcome",
    "match_review",
    "match_evaluation_counts",
)
REVIEW_COLUMNS = [
    "movie_id",
    "ml_title",
    "ml_year",
    "rank",
    "tconst",
    "imdb_title",
    "start_year",
    "title_type",
    "num_votes",
    "score",
    "reason",
]


class Evaluation(BaseModel):
    """Fuzzy matching scored against links.csv over the linked movies."""

    precision: float
    recall: float
    f1: float
    truth_pairs: int


class MatchReport(BaseModel):
    """What a matching run decided; ``review`` counts the movies written to the review file."""

    mode: Literal["links", "fuzzy"]
    matched: int
    unmatched: int
    review: int
    evaluation: Evaluation | None


# ---------------------------------------------------------------- Python stages


def _stage_movies(con: duckdb.DuckDBPyConnection) -> int:
    """Parse every MovieLens title into match_movies and its query spellings into match_queries."""
    ids, titles, years = con.execute("SELECT movie_id, title, year FROM stg_ml_movies").fetchnumpy().values()
    m_year: list[int | None] = []
    q_block: list[int] = []
    q_movie: list[int] = []
    q_norm: list[str] = []
    q_key: list[str] = []
    q_derived: list[bool] = []
    raws = [t or "" for t in titles.tolist()]
    for movie_id, raw, staged_year, spellings in zip(
        ids.tolist(), raws, years.tolist(), query_strings_many(raws), strict=True
    ):
        parsed_year = parse_title(raw).year
        year = parsed_year if parsed_year is not None else staged_year
        year = None if year is None or year != year else int(year)  # masked/NaN -> None
        m_year.append(year)
        for norm, derived in spellings:
            q_block.append(year if year is not None else -movie_id)
            q_movie.append(movie_id)
            q_norm.append(norm)
            q_key.append(title_key(norm))
            q_derived.append(derived)
    register_temp(
        con,
        "match_movies",
        pa.table(
            {
                "movie_id": pa.array(ids.tolist(), pa.int64()),
                "title": pa.array(titles.tolist(), pa.string()),
                "year": pa.array(m_year, pa.int32()),
            }
        ),
    )
    register_temp(
        con,
        "match_queries",
        pa.table(
            {
                "block": pa.array(q_block, pa.int64()),
                "movie_id": pa.array(q_movie, pa.int64()),
                "norm": pa.array(q_norm, pa.string()),
                "key": pa.array(q_key, pa.string()),
                "derived": pa.array(q_derived, pa.bool_()),
            }
        ),
    )
    return sum(1 for y in m_year if y is None)


def _write_review(con: duckdb.DuckDBPyConnection, review_path: Path) -> int:
    """Write the review CSV (header only when nothing is ambiguous) aside, then rename it in."""
    run_temp(con, [review_sql()])
    rows = con.execute(f"SELECT {', '.join(REVIEW_COLUMNS)} FROM match_review").fetchall()
    review_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = review_path.with_name(review_path.name + ".tmp")
    with tmp.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(REVIEW_COLUMNS)
        writer.writerows(rows)
    os.replace(tmp, review_path)
    return len({r[0] for r in rows})


def _evaluate(con: duckdb.DuckDBPyConnection) -> Evaluation:
    run_temp(con, [evaluation_sql()])
    made, correct, truth = con.execute("SELECT made, correct, truth_pairs FROM match_evaluation_counts").fetchall()[0]
    return evaluation_from_counts(made, correct, truth)


def evaluation_from_counts(made: int, correct: int, truth_pairs: int) -> Evaluation:
    """Precision over matches made, recall over truth pairs, and their harmonic mean (0 when undefined)."""
    precision = correct / made if made else 0.0
    recall = correct / truth_pairs if truth_pairs else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return Evaluation(precision=precision, recall=recall, f1=f1, truth_pairs=truth_pairs)


def match_titles(
    con: duckdb.DuckDBPyConnection, config: MatchConfig, *, review_path: Path, overrides_path: Path | None = None
) -> MatchReport:
    """Decide an IMDb title (or none) for every staged MovieLens movie; replace ``match_decisions``,
    write ambiguous cases to ``review_path``, and score fuzzy matching against links when staged."""
    for table in ("stg_ml_movies", "stg_imdb_titles", "stg_imdb_ratings"):
        if not table_exists(con, table):
            raise CinegraphError(f"warehouse: table {table} is missing; run staging first")
    has_links = table_exists(con, "stg_ml_links")
    overrides = (
        read_overrides(con, overrides_path)
        if overrides_path is not None
        else pa.table({"movie_id": pa.array([], pa.int64()), "tconst": pa.array([], pa.string())})
    )
    register_temp(con, "match_overrides", overrides)

    undated = _stage_movies(con)
    with usage("match: candidates"):
        run_temp(
            con,
            [
                candidate_titles_sql(table_exists(con, "stg_imdb_akas")),
                candidate_info_sql(),
                needed_titles_sql(config.year_tolerance, all_titles=undated > 0),
            ],
        )
    with usage("match: normalise"):
        stage_title_norms(con)
    with usage("match: spellings"):
        run_temp(con, [spelled_sql()])
    with usage("match: scoring"):
        score_blocks(con, config)
    log.debug("%d undated movies blocked by title key", undated)
    steps = [scored_sql(config), fuzzy_sql(config)]
    if has_links:
        steps.append(links_sql())
    steps.append(decisions_sql(use_links=has_links and config.mode == "links"))
    run_temp(con, steps)
    run_steps(
        con, [Step("SELECT movie_id, tconst, score, runner_up_score, method FROM match_outcome", "match_decisions")]
    )

    review = _write_review(con, review_path)
    evaluation = _evaluate(con) if has_links else None
    matched, total = con.execute("SELECT count(tconst), count(*) FROM match_decisions").fetchall()[0]
    report = MatchReport(
        mode=config.mode, matched=matched, unmatched=total - matched, review=review, evaluation=evaluation
    )
    drop_tables(con, INTERMEDIATE_TABLES)
    log.info("match: %s", report.model_dump())
    return report
