"""Match MovieLens movies to IMDb titles: block in DuckDB, score blocks with rapidfuzz, decide in SQL.

Plan (each SQL step is built by a pure function returning a :class:`Step`):

    stg_ml_movies --parse--> match_movies, match_queries (block = year, or -movie_id when undated)
    stg_imdb_titles (+ stg_imdb_akas) --> match_candidate_titles --> match_needed_titles
    --normalise (in batches)--> match_title_norms --> match_spelled (year, norm, key, tconst)
    rapidfuzz cdist per year block, one in memory at a time --> match_hits (+ match_key_pairs for
    undated movies) --> match_pairs --> match_scored --> match_fuzzy
    match_fuzzy + links + overrides --> match_decisions (replace, one row per movie)

A candidate ranks by fuzzy score, minus title-type and year-distance penalties, plus a bonus per
tenfold IMDb votes (real dumps hold many same-year homonyms; the one people rate wins). A match
needs the score threshold, a margin over the best candidate with a *different* title, and a
smaller lead over every other title; otherwise the movie goes to the review file. Overrides always
win. The working tables are TEMP; only match_decisions reaches the warehouse.
"""

from __future__ import annotations

import csv
import logging
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict, Field
from rapidfuzz import fuzz, process

from cinegraph.errors import CinegraphError
from cinegraph.etl.resources import usage
from cinegraph.etl.titles import colon_parts_many, normalize_many, parse_title, query_strings_many, title_key
from cinegraph.etl.warehouse import Step, drop_tables, register_arrow, run_steps, table_exists

log = logging.getLogger(__name__)

_SCORERS = {"ratio": fuzz.ratio, "token_sort_ratio": fuzz.token_sort_ratio}
_TCONST_RE = re.compile(r"^tt\d{7,}$")
# Working tables of one run, TEMP (in memory, not written to the warehouse file) and dropped at its
# end; only match_decisions is a warehouse table (write disposition: replace).
INTERMEDIATE_TABLES = ("match_movies", "match_queries", "match_overrides", "match_candidate_titles",
                       "match_candidate_info", "match_needed_titles", "match_title_norms", "match_spelled",
                       "match_hits", "match_key_pairs", "match_pairs", "match_scored", "match_fuzzy", "match_links",
                       "match_outcome", "match_review", "match_evaluation_counts")
NORM_BATCH_ROWS = 1_000_000  # candidate spellings normalised per batch: bounds Python memory
REVIEW_COLUMNS = ["movie_id", "ml_title", "ml_year", "rank", "tconst", "imdb_title", "start_year",
                  "title_type", "num_votes", "score"]


class MatchConfig(BaseModel):
    """How titles are matched; every field has a default that meets the bar on the real mirror."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: Literal["links", "fuzzy"] = Field("links", description="links: trust links.csv where it resolves")
    threshold: float = Field(90.0, ge=0, le=100, description="minimum fuzzy score (0-100) for a match")
    margin: float = Field(4.0, ge=0, description="winner must beat the best differently-titled candidate by this")
    year_tolerance: int = Field(1, ge=0, description="candidates may start this many years off the ML year")
    year_penalty: float = Field(2.0, ge=0, description="ranking points lost per year off")
    type_penalty: dict[str, float] = Field(
        {"movie": 0.0, "tvMovie": 1.0, "video": 1.0},
        description="ranking points lost per IMDb title type")
    other_type_penalty: float = Field(4.0, description="for title types not listed above (short, tvSpecial, ...)")
    derived_penalty: float = Field(5.0, ge=0, description="score lost when only a colon half matched")
    aka_penalty: float = Field(3.0, ge=0, description="score lost when only an a.k.a. title matched")
    vote_weight: float = Field(1.0, ge=0, description="ranking points per tenfold IMDb votes: popular homonyms win")
    tie_window: float = Field(0.5, ge=0, description="another title ranked this close (even a homonym): review")
    scorer: Literal["ratio", "token_sort_ratio"] = Field("ratio", description="rapidfuzz scorer on normalised titles")
    max_cells: int = Field(20_000_000, ge=1, description="cdist cells per chunk: bounds memory")
    workers: int = Field(-1, description="rapidfuzz threads (-1: all cores)")


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


# ---------------------------------------------------------------- SQL steps (pure functions)


def candidate_titles_sql(with_akas: bool) -> Step:
    """Every spelling of every staged title: primary, original and (when staged) a.k.a. titles,
    flagged ``aka`` when it is only an a.k.a. title."""
    akas = ("UNION ALL SELECT a.tconst, a.title, true FROM stg_imdb_akas a SEMI JOIN stg_imdb_titles t "
            "ON a.tconst = t.tconst WHERE a.title IS NOT NULL") if with_akas else ""
    sql = f"""
        SELECT tconst, title, bool_and(aka) AS aka FROM (
            SELECT tconst, primary_title AS title, false AS aka FROM stg_imdb_titles WHERE primary_title IS NOT NULL
            UNION ALL SELECT tconst, original_title, false FROM stg_imdb_titles WHERE original_title IS NOT NULL
            {akas})
        GROUP BY tconst, title"""
    return Step(sql, "match_candidate_titles")


def candidate_info_sql() -> Step:
    """Type, start year and votes per staged title (votes 0 when unrated)."""
    sql = """
        SELECT t.tconst, t.title_type, t.start_year, coalesce(r.num_votes, 0) AS num_votes
        FROM stg_imdb_titles t LEFT JOIN stg_imdb_ratings r ON r.tconst = t.tconst"""
    return Step(sql, "match_candidate_info")


def needed_titles_sql(year_tolerance: int, all_titles: bool) -> Step:
    """Distinct candidate spellings worth normalising: those within reach of some ML year, or all of
    them when an undated movie must be blocked by title key."""
    where = "" if all_titles else """
        WHERE EXISTS (SELECT 1 FROM match_movies m WHERE m.year IS NOT NULL
                      AND i.start_year BETWEEN m.year - $tol AND m.year + $tol)"""
    sql = f"""
        SELECT DISTINCT c.title FROM match_candidate_titles c
        JOIN match_candidate_info i ON i.tconst = c.tconst {where}"""
    return Step(sql, "match_needed_titles", {} if all_titles else {"tol": year_tolerance})


def spelled_sql() -> Step:
    """Each candidate title's normalised spellings with its start year, once, sorted by year so the
    scorer's per-year reads touch few row groups."""
    sql = """
        SELECT i.start_year AS year, n.norm, n.key, n.derived, c.tconst, bool_and(c.aka) AS aka
        FROM match_candidate_titles c JOIN match_title_norms n ON n.title = c.title
        JOIN match_candidate_info i ON i.tconst = c.tconst WHERE n.norm <> ''
        GROUP BY ALL ORDER BY year, norm, tconst, derived"""
    return Step(sql, "match_spelled")


# The distinct spellings of the titles starting within [$low, $high]: one year block's choices.
BLOCK_CHOICES_SQL = """
    SELECT length(norm) AS len, norm, derived FROM match_spelled WHERE year BETWEEN $low AND $high
    GROUP BY ALL ORDER BY len, norm, derived"""


def pairs_sql(year_tolerance: int, aka_penalty: float) -> Step:
    """Scored spellings back to titles: a dated movie's hit names every title within ±tol years
    spelled that way; an undated movie's pairs were scored per title already (``match_key_pairs``).
    A spelling that is only one of a title's a.k.a. titles loses ``aka_penalty``: a popular film
    whose foreign alias equals this title must not outrank the film of that name."""
    sql = """
        SELECT movie_id, norm, tconst, score - $aka_penalty * aka::INTEGER AS score FROM (
            SELECT h.movie_id, s.norm, s.tconst, h.score, s.aka FROM match_hits h
            JOIN match_movies m ON m.movie_id = h.movie_id
            JOIN match_spelled s ON s.norm = h.norm AND s.derived = h.derived
                 AND s.year BETWEEN m.year - $tol AND m.year + $tol
            UNION ALL SELECT movie_id, norm, tconst, score, aka FROM match_key_pairs)"""
    return Step(sql, "match_pairs", {"tol": year_tolerance, "aka_penalty": aka_penalty})


def scored_sql(config: MatchConfig) -> Step:
    """Best score per (movie, title), the spelling it came from, and the rank score that orders
    candidates: fuzzy score minus title-type and year-distance penalties plus a bonus per tenfold
    IMDb votes, so among same-title homonyms the film people rate wins unless it is further off."""
    sql = """
        WITH best AS (
            SELECT movie_id, tconst, max(score) AS score, first(norm ORDER BY score DESC, norm) AS matched
            FROM match_pairs GROUP BY movie_id, tconst)
        SELECT b.movie_id, b.tconst, b.score, b.matched, i.title_type, i.start_year, i.num_votes,
               b.score
               - coalesce(list_extract($pen_values, list_position($pen_types, i.title_type)), $pen_other)
               - $year_penalty * coalesce(abs(i.start_year - m.year), 0)
               + $vote_weight * log10(1 + i.num_votes) AS rank_score
        FROM best b JOIN match_candidate_info i ON i.tconst = b.tconst
        JOIN match_movies m ON m.movie_id = b.movie_id"""
    params = {"pen_types": list(config.type_penalty), "pen_values": list(config.type_penalty.values()),
              "pen_other": config.other_type_penalty, "year_penalty": config.year_penalty,
              "vote_weight": config.vote_weight}
    return Step(sql, "match_scored", params)


def fuzzy_sql(config: MatchConfig) -> Step:
    """One fuzzy verdict per scored movie: 'match', 'review' or 'none'.

    The winner has the top rank score and must reach the score threshold. It must beat the best
    candidate with a different (normalised) title by ``margin`` and every other title, homonyms
    included, by ``tie_window`` (rank scores both: a short from the next year is a weaker rival
    than a feature from the same one); otherwise a person decides from the review file."""
    sql = """
        WITH ranked AS (
            SELECT *, row_number() OVER (PARTITION BY movie_id
                                         ORDER BY rank_score DESC, num_votes DESC, tconst) AS pick
            FROM match_scored),
        win AS (SELECT * FROM ranked WHERE pick = 1),
        rival AS (SELECT movie_id, rank_score AS rival_rank FROM ranked WHERE pick = 2),
        runner AS (
            SELECT r.movie_id, max(r.score) AS runner_up, max(r.rank_score) AS runner_up_rank FROM ranked r
            JOIN win w ON w.movie_id = r.movie_id AND r.matched <> w.matched GROUP BY r.movie_id)
        SELECT w.movie_id, w.tconst, w.score, ru.runner_up AS runner_up_score,
               CASE WHEN w.score < $threshold THEN 'none'
                    WHEN w.rank_score - coalesce(ru.runner_up_rank, -1e9) < $margin THEN 'review'
                    WHEN w.rank_score - coalesce(rv.rival_rank, -1e9) < $tie_window THEN 'review'
                    ELSE 'match' END AS status
        FROM win w LEFT JOIN runner ru ON ru.movie_id = w.movie_id
        LEFT JOIN rival rv ON rv.movie_id = w.movie_id"""
    params = {"tie_window": config.tie_window, "threshold": config.threshold, "margin": config.margin}
    return Step(sql, "match_fuzzy", params)


def links_sql() -> Step:
    """links.csv rows, one per movie. GroupLens's own mapping is trusted even where title.basics
    lacks the title (a partial dump, or a non-film type): IMDb ratings and people still reach the
    movie through its tconst."""
    sql = """
        SELECT movie_id, min(tconst) AS tconst FROM stg_ml_links
        WHERE tconst IS NOT NULL GROUP BY movie_id"""
    return Step(sql, "match_links")


def decisions_sql(use_links: bool) -> Step:
    """One row per movie: override, else link (links mode), else a fuzzy match, else none.
    ``score`` / ``runner_up_score`` are always the fuzzy scores (0-100) of the best candidate and of
    the best differently-titled one, NULL when none reached the cutoff."""
    link_join = "LEFT JOIN match_links l ON l.movie_id = m.movie_id" if use_links else \
        "LEFT JOIN (SELECT NULL::BIGINT AS movie_id, NULL::VARCHAR AS tconst) l ON false"
    sql = f"""
        SELECT m.movie_id,
               CASE WHEN o.movie_id IS NOT NULL THEN o.tconst
                    WHEN l.movie_id IS NOT NULL THEN l.tconst
                    WHEN f.status = 'match' THEN f.tconst END AS tconst,
               f.score::DOUBLE AS score, f.runner_up_score::DOUBLE AS runner_up_score,
               CASE WHEN o.movie_id IS NOT NULL THEN 'override'
                    WHEN l.movie_id IS NOT NULL THEN 'link'
                    WHEN f.status = 'match' THEN 'fuzzy' ELSE 'none' END AS method,
               coalesce(f.status = 'review', false) AND o.movie_id IS NULL AND l.movie_id IS NULL
                   AS needs_review
        FROM match_movies m LEFT JOIN match_fuzzy f ON f.movie_id = m.movie_id
        {link_join}
        LEFT JOIN match_overrides o ON o.movie_id = m.movie_id
        ORDER BY m.movie_id"""
    return Step(sql, "match_outcome")


def evaluation_sql() -> Step:
    """Fuzzy verdicts against links.csv over linked movies: matches made, correct ones, truth pairs."""
    sql = """
        WITH linked AS (SELECT DISTINCT movie_id, tconst FROM stg_ml_links WHERE tconst IS NOT NULL),
        made AS (SELECT f.movie_id, f.tconst FROM match_fuzzy f
                 WHERE f.status = 'match' AND f.movie_id IN (SELECT movie_id FROM linked))
        SELECT (SELECT count(*) FROM made) AS made,
               (SELECT count(*) FROM made JOIN linked l
                  ON l.movie_id = made.movie_id AND l.tconst = made.tconst) AS correct,
               (SELECT count(DISTINCT l.movie_id) FROM linked l
                  SEMI JOIN stg_imdb_titles t ON t.tconst = l.tconst) AS truth_pairs"""
    return Step(sql, "match_evaluation_counts")


def review_sql(top_n: int = 5) -> Step:
    """The best few candidates of every movie sent to review, for a person to settle."""
    sql = """
        SELECT o.movie_id, m.title AS ml_title, m.year AS ml_year,
               row_number() OVER (PARTITION BY o.movie_id ORDER BY s.rank_score DESC, s.num_votes DESC,
                                  s.tconst) AS rank,
               s.tconst, t.primary_title AS imdb_title, s.start_year, s.title_type, s.num_votes,
               round(s.score, 2) AS score
        FROM match_outcome o JOIN match_movies m ON m.movie_id = o.movie_id
        JOIN match_scored s ON s.movie_id = o.movie_id JOIN stg_imdb_titles t ON t.tconst = s.tconst
        WHERE o.needs_review QUALIFY rank <= $top_n ORDER BY o.movie_id, rank"""
    return Step(sql, "match_review", {"top_n": top_n})


# ---------------------------------------------------------------- Python stages


def _run_temp(con: duckdb.DuckDBPyConnection, steps: list[Step]) -> None:
    """Run working steps into TEMP tables: ``warehouse.run_steps`` writes durable tables, and
    writing every intermediate to the warehouse file costs more than the matching itself."""
    for step in steps:
        con.execute(f"CREATE OR REPLACE TEMP TABLE {step.output} AS {step.sql}", dict(step.params))


def _register(con: duckdb.DuckDBPyConnection, name: str, table: pa.Table) -> None:
    """Copy an Arrow table into table ``name`` (a registered view would pin Python memory)."""
    register_arrow(con, "_match_arrow", table)
    try:
        _run_temp(con, [Step("SELECT * FROM _match_arrow", name)])
    finally:
        con.unregister("_match_arrow")


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
    rows = zip(ids.tolist(), raws, years.tolist(), query_strings_many(raws), strict=True)
    for movie_id, raw, staged_year, spellings in rows:
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
    _register(con, "match_movies", pa.table({"movie_id": pa.array(ids.tolist(), pa.int64()),
                                             "title": pa.array(titles.tolist(), pa.string()),
                                             "year": pa.array(m_year, pa.int32())}))
    _register(con, "match_queries", pa.table({"block": pa.array(q_block, pa.int64()),
                                              "movie_id": pa.array(q_movie, pa.int64()),
                                              "norm": pa.array(q_norm, pa.string()),
                                              "key": pa.array(q_key, pa.string()),
                                              "derived": pa.array(q_derived, pa.bool_())}))
    return sum(1 for y in m_year if y is None)


def _stage_title_norms(con: duckdb.DuckDBPyConnection, batch_rows: int = NORM_BATCH_ROWS) -> None:
    """Normalise each needed candidate spelling once, with the same functions the queries used
    (plus its long colon halves, flagged derived), a hash slice of the titles at a time so the
    Python side holds one batch."""
    _run_temp(con, [Step("SELECT NULL::VARCHAR AS title, NULL::VARCHAR AS norm, NULL::VARCHAR AS key, "
                         "NULL::BOOLEAN AS derived WHERE false", "match_title_norms")])  # fmt: skip
    total = int(con.execute("SELECT count(*) FROM match_needed_titles").fetchall()[0][0])
    parts = max(1, -(-total // batch_rows))
    for part in range(parts):
        titles = con.sql("SELECT title FROM match_needed_titles WHERE hash(title) % $parts = $part",
                         params={"parts": parts, "part": part}).to_arrow_table()["title"].combine_chunks()
        norms = normalize_many(titles)
        colon = titles.filter(pc.match_substring(titles, ":"))
        part_title: list[str] = []
        part_norm: list[str] = []
        colon_list = colon.to_pylist()
        for title, halves in zip(colon_list, colon_parts_many(colon_list), strict=True):
            part_title += [title] * len(halves)
            part_norm += halves
        all_norms = pa.concat_arrays([norms, pa.array(part_norm, pa.string())])
        batch = pa.table({
            "title": pa.concat_arrays([titles, pa.array(part_title, pa.string())]),
            "norm": all_norms,
            "key": pc.replace_substring(all_norms, " ", ""),  # title_key, vectorised
            "derived": pa.array([False] * len(norms) + [True] * len(part_norm), pa.bool_())})  # fmt: skip
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


def _score_blocks(con: duckdb.DuckDBPyConnection, config: MatchConfig) -> None:
    """Score each year block's queries against the distinct spellings of the titles starting
    within ±year_tolerance with ``process.cdist``, one block in memory at a time, and keep the
    cells at or above ``threshold - margin`` (a lower score can neither win nor threaten a winner)
    as match_hits; :func:`pairs_sql` maps them back to titles. Queries of one length meet only the
    candidate lengths that can reach that cutoff (an exact bound, a few times fewer cells). A pair
    involving a derived (colon-half) spelling loses ``derived_penalty``, so a full-title match
    always outranks it. Undated movies meet the titles sharing one of their title keys."""
    scorer = _SCORERS[config.scorer]
    cutoff = max(config.threshold - config.margin, 0.0)
    queries = con.sql("SELECT block, length(norm) AS len, movie_id, norm, derived FROM match_queries "
                      "WHERE block >= 0 ORDER BY block, len, movie_id, norm").to_arrow_table()  # fmt: skip
    q_block, q_len = queries["block"].to_numpy(), queries["len"].to_numpy()
    q_movie, q_norm = queries["movie_id"].to_numpy(), queries["norm"].to_pylist()
    q_derived = queries["derived"].to_numpy(zero_copy_only=False)
    hits: list[pa.Table] = []
    cells = 0
    year_starts = np.flatnonzero(np.r_[True, q_block[1:] != q_block[:-1]]) if len(q_block) else np.array([], int)
    year_ends = np.r_[year_starts[1:], len(q_block)].astype(int) if len(q_block) else year_starts
    for ys, ye in zip(year_starts.tolist(), year_ends.tolist(), strict=True):
        year = int(q_block[ys])
        choices_tab = con.sql(BLOCK_CHOICES_SQL, params={"low": year - config.year_tolerance,
                                                         "high": year + config.year_tolerance}).to_arrow_table()
        if choices_tab.num_rows == 0:
            continue
        b_len, b_norm = choices_tab["len"].to_numpy(), choices_tab["norm"].to_pylist()
        b_derived = choices_tab["derived"].to_numpy(zero_copy_only=False)
        # One group per query length inside the year; queries are sorted that way.
        lens = q_len[ys:ye]
        starts = ys + np.flatnonzero(np.r_[True, lens[1:] != lens[:-1]])
        for qs, qe in zip(starts.tolist(), np.r_[starts[1:], ye].astype(int).tolist(), strict=True):
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
                found = process.cdist(q_norm[r0:r1], choices, scorer=scorer, processor=None,
                                      score_cutoff=cutoff, dtype=np.uint8, workers=config.workers)
                qi, ci = np.nonzero(found)
                exact = process.cpdist([q_norm[r0 + i] for i in qi.tolist()], [choices[i] for i in ci.tolist()],
                                       scorer=scorer, processor=None, score_cutoff=0, dtype=np.float64)
                score = exact - config.derived_penalty * (q_derived[r0:r1][qi] | b_derived[cs:ce][ci])
                keep = score >= cutoff
                take = pa.array(ci[keep] + cs, pa.int64())
                hits.append(pa.table({
                    "movie_id": pa.array(q_movie[r0:r1][qi[keep]], pa.int64()),
                    "norm": choices_tab["norm"].take(take), "derived": choices_tab["derived"].take(take),
                    "score": pa.array(score[keep], pa.float64())}))  # fmt: skip
    empty = pa.table({"movie_id": pa.array([], pa.int64()), "norm": pa.array([], pa.string()),
                      "derived": pa.array([], pa.bool_()), "score": pa.array([], pa.float64())})  # fmt: skip
    _register(con, "match_hits", pa.concat_tables([empty, *hits]).combine_chunks())
    _register(con, "match_key_pairs", _score_undated(con, config, scorer, cutoff))
    _run_temp(con, [pairs_sql(config.year_tolerance, config.aka_penalty)])
    log.info("scored %d cells in %d year blocks, kept %d spellings", cells, len(year_starts),
             sum(t.num_rows for t in hits))  # fmt: skip


def _score_undated(
    con: duckdb.DuckDBPyConnection, config: MatchConfig, scorer: Callable[..., float], cutoff: float
) -> pa.Table:
    """Undated movies against every title sharing one of their title keys (any year), pair by pair."""
    pairs = con.sql("""
        SELECT q.movie_id, q.norm AS query, q.derived AS query_derived, s.norm, s.derived, s.tconst, s.aka
        FROM match_queries q JOIN match_spelled s ON s.key = q.key WHERE q.block < 0
        ORDER BY q.movie_id, s.tconst, s.norm, q.norm""").to_arrow_table()
    score = process.cpdist(pairs["query"].to_pylist(), pairs["norm"].to_pylist(), scorer=scorer, processor=None,
                           score_cutoff=0, dtype=np.float64) if pairs.num_rows else np.array([], np.float64)
    derived = pc.or_(pairs["query_derived"], pairs["derived"]).to_numpy(zero_copy_only=False).astype(bool)
    score = score - config.derived_penalty * derived
    keep = pa.array(score >= cutoff)
    return pa.table({"movie_id": pairs["movie_id"], "norm": pairs["norm"], "tconst": pairs["tconst"],
                     "score": pa.array(score, pa.float64()), "aka": pairs["aka"]}).filter(keep)  # fmt: skip


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
    table = pa.table({"movie_id": pa.array(movie_ids, pa.int64()), "tconst": pa.array(tconsts, pa.string()),
                      "line": pa.array(lines, pa.int64())})
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


def _write_review(con: duckdb.DuckDBPyConnection, review_path: Path) -> int:
    """Write the review CSV (header only when nothing is ambiguous) aside, then rename it in."""
    _run_temp(con, [review_sql()])
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
    _run_temp(con, [evaluation_sql()])
    made, correct, truth = con.execute("SELECT made, correct, truth_pairs FROM match_evaluation_counts").fetchall()[0]
    return evaluation_from_counts(made, correct, truth)


def evaluation_from_counts(made: int, correct: int, truth_pairs: int) -> Evaluation:
    """Precision over matches made, recall over truth pairs, and their harmonic mean (0 when undefined)."""
    precision = correct / made if made else 0.0
    recall = correct / truth_pairs if truth_pairs else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return Evaluation(precision=precision, recall=recall, f1=f1, truth_pairs=truth_pairs)


def match_titles(con: duckdb.DuckDBPyConnection, config: MatchConfig, *, review_path: Path,
                 overrides_path: Path | None = None) -> MatchReport:
    """Decide an IMDb title (or none) for every staged MovieLens movie; replace ``match_decisions``,
    write ambiguous cases to ``review_path``, and score fuzzy matching against links when staged."""
    for table in ("stg_ml_movies", "stg_imdb_titles", "stg_imdb_ratings"):
        if not table_exists(con, table):
            raise CinegraphError(f"warehouse: table {table} is missing; run staging first")
    has_links = table_exists(con, "stg_ml_links")
    overrides = (read_overrides(con, overrides_path) if overrides_path is not None else
                 pa.table({"movie_id": pa.array([], pa.int64()), "tconst": pa.array([], pa.string())}))
    _register(con, "match_overrides", overrides)

    undated = _stage_movies(con)
    with usage("match: candidates"):
        _run_temp(con, [candidate_titles_sql(table_exists(con, "stg_imdb_akas")), candidate_info_sql(),
                        needed_titles_sql(config.year_tolerance, all_titles=undated > 0)])
    with usage("match: normalise"):
        _stage_title_norms(con)
    with usage("match: spellings"):
        _run_temp(con, [spelled_sql()])
    with usage("match: scoring"):
        _score_blocks(con, config)
    log.debug("%d undated movies blocked by title key", undated)
    steps = [scored_sql(config), fuzzy_sql(config)]
    if has_links:
        steps.append(links_sql())
    steps.append(decisions_sql(use_links=has_links and config.mode == "links"))
    _run_temp(con, steps)
    run_steps(con, [Step("SELECT movie_id, tconst, score, runner_up_score, method FROM match_outcome",
                         "match_decisions")])

    review = _write_review(con, review_path)
    evaluation = _evaluate(con) if has_links else None
    matched, total = con.execute("SELECT count(tconst), count(*) FROM match_decisions").fetchall()[0]
    report = MatchReport(mode=config.mode, matched=matched, unmatched=total - matched, review=review,
                         evaluation=evaluation)
    drop_tables(con, INTERMEDIATE_TABLES)
    log.info("match: %s", report.model_dump())
    return report
