"""The SQL of title matching: each step is a pure function returning a :class:`Step`, run into a
TEMP table (the working tables never reach the warehouse file)."""

from __future__ import annotations

import duckdb
import pyarrow as pa

from cinegraph.etl.match_config import MatchConfig
from cinegraph.etl.warehouse import Step, register_arrow


def candidate_titles_sql(with_akas: bool) -> Step:
    """Every spelling of every staged title: primary, original and (when staged) a.k.a. titles,
    flagged ``aka`` when it is only an a.k.a. title."""
    akas = (
        (
            "UNION ALL SELECT a.tconst, a.title, true FROM stg_imdb_akas a SEMI JOIN stg_imdb_titles t "
            "ON a.tconst = t.tconst WHERE a.title IS NOT NULL"
        )
        if with_akas
        else ""
    )
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
    where = (
        ""
        if all_titles
        else """
        WHERE EXISTS (SELECT 1 FROM match_movies m WHERE m.year IS NOT NULL
                      AND i.start_year BETWEEN m.year - $tol AND m.year + $tol)"""
    )
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
        SELECT movie_id, norm, tconst, score - $aka_penalty * aka::INTEGER AS score, aka FROM (
            SELECT h.movie_id, s.norm, s.tconst, h.score, s.aka FROM match_hits h
            JOIN match_movies m ON m.movie_id = h.movie_id
            JOIN match_spelled s ON s.norm = h.norm AND s.derived = h.derived
                 AND s.year BETWEEN m.year - $tol AND m.year + $tol
            UNION ALL SELECT movie_id, norm, tconst, score, aka FROM match_key_pairs)"""
    return Step(sql, "match_pairs", {"tol": year_tolerance, "aka_penalty": aka_penalty})


def scored_sql(config: MatchConfig) -> Step:
    """Best score per (movie, title), the spelling it came from (``aka``: only an a.k.a. title), and
    the rank score that orders candidates: fuzzy score minus title-type and year-distance penalties
    plus a bonus per tenfold IMDb votes, so among same-title homonyms the film people rate wins
    unless it is further off."""
    sql = """
        WITH best AS (
            SELECT movie_id, tconst, max(score) AS score, first(norm ORDER BY score DESC, norm) AS matched,
                   first(aka ORDER BY score DESC, norm) AS aka
            FROM match_pairs GROUP BY movie_id, tconst)
        SELECT b.movie_id, b.tconst, b.score, b.matched, b.aka, i.title_type, i.start_year, i.num_votes,
               b.score
               - coalesce(list_extract($pen_values, list_position($pen_types, i.title_type)), $pen_other)
               - $year_penalty * coalesce(abs(i.start_year - m.year), 0)
               + $vote_weight * log10(1 + i.num_votes) AS rank_score
        FROM best b JOIN match_candidate_info i ON i.tconst = b.tconst
        JOIN match_movies m ON m.movie_id = b.movie_id"""
    params = {
        "pen_types": list(config.type_penalty),
        "pen_values": list(config.type_penalty.values()),
        "pen_other": config.other_type_penalty,
        "year_penalty": config.year_penalty,
        "vote_weight": config.vote_weight,
    }
    return Step(sql, "match_scored", params)


def fuzzy_sql(config: MatchConfig) -> Step:
    """One fuzzy verdict per scored movie: 'match', 'review' or 'none'.

    The winner has the top rank score and must reach the score threshold. It must beat the best
    candidate with a different (normalised) title by ``margin`` and every other title, homonyms
    included, by ``tie_window`` (rank scores both: a short from the next year is a weaker rival
    than a feature from the same one). A rival is a namesake when the winner bears (at the
    threshold) every name of it that matches: for "Original (English)" the film titled both ways
    meets a film titled only "English" on votes, while a film titled only "English" must beat the
    one titled both ways by the margin. A winner found only through an a.k.a. title must not face
    another title that reaches the threshold under its own name (a popular film whose alias is
    the name of another film of that year), and a winner off the MovieLens year must not face a
    title of that very year spelled at least as well (votes or type alone put it first): otherwise
    a person decides from the review file. Its ``reason`` is the first that holds: ``margin``,
    ``tie``, ``aka``, ``year``."""
    sql = """
        WITH ranked AS (
            SELECT *, row_number() OVER (PARTITION BY movie_id
                                         ORDER BY rank_score DESC, num_votes DESC, tconst) AS pick
            FROM match_scored),
        win AS (SELECT * FROM ranked WHERE pick = 1),
        rival AS (SELECT movie_id, rank_score AS rival_rank FROM ranked WHERE pick = 2),
        borne AS (SELECT DISTINCT movie_id, tconst, norm FROM match_pairs WHERE score >= $threshold),
        win_borne AS (
            SELECT b.movie_id, b.norm FROM borne b JOIN win w ON w.movie_id = b.movie_id AND w.tconst = b.tconst),
        extra AS (
            SELECT DISTINCT b.movie_id, b.tconst FROM borne b
            ANTI JOIN win_borne o ON o.movie_id = b.movie_id AND o.norm = b.norm),
        runner AS (
            SELECT r.movie_id, max(r.score) AS runner_up, max(r.rank_score) AS runner_up_rank FROM ranked r
            JOIN win w ON w.movie_id = r.movie_id
            LEFT JOIN win_borne o ON o.movie_id = r.movie_id AND o.norm = r.matched
            LEFT JOIN extra e ON e.movie_id = r.movie_id AND e.tconst = r.tconst
            WHERE (r.matched <> w.matched AND o.norm IS NULL) OR e.tconst IS NOT NULL GROUP BY r.movie_id),
        named AS (
            SELECT DISTINCT r.movie_id FROM ranked r JOIN win w ON w.movie_id = r.movie_id
            WHERE w.aka AND NOT r.aka AND r.tconst <> w.tconst AND r.score >= $threshold),
        dated AS (
            SELECT DISTINCT r.movie_id FROM ranked r JOIN win w ON w.movie_id = r.movie_id
            JOIN match_movies m ON m.movie_id = r.movie_id
            WHERE w.start_year IS DISTINCT FROM m.year AND r.start_year = m.year AND r.score >= w.score
              AND r.tconst <> w.tconst)
        SELECT w.movie_id, w.tconst, w.score, ru.runner_up AS runner_up_score,
               CASE WHEN w.score < $threshold THEN NULL
                    WHEN w.rank_score - coalesce(ru.runner_up_rank, -1e9) < $margin THEN 'margin'
                    WHEN w.rank_score - coalesce(rv.rival_rank, -1e9) < $tie_window THEN 'tie'
                    WHEN nm.movie_id IS NOT NULL THEN 'aka'
                    WHEN dt.movie_id IS NOT NULL THEN 'year'
                    END AS reason,
               CASE WHEN w.score < $threshold THEN 'none' WHEN reason IS NOT NULL THEN 'review'
                    ELSE 'match' END AS status
        FROM win w LEFT JOIN runner ru ON ru.movie_id = w.movie_id
        LEFT JOIN rival rv ON rv.movie_id = w.movie_id LEFT JOIN named nm ON nm.movie_id = w.movie_id
        LEFT JOIN dated dt ON dt.movie_id = w.movie_id"""
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
    link_join = (
        "LEFT JOIN match_links l ON l.movie_id = m.movie_id"
        if use_links
        else "LEFT JOIN (SELECT NULL::BIGINT AS movie_id, NULL::VARCHAR AS tconst) l ON false"
    )
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
    """The best few candidates of every movie sent to review, with the reason, for a person to settle."""
    sql = """
        SELECT o.movie_id, m.title AS ml_title, m.year AS ml_year,
               row_number() OVER (PARTITION BY o.movie_id ORDER BY s.rank_score DESC, s.num_votes DESC,
                                  s.tconst) AS rank,
               s.tconst, t.primary_title AS imdb_title, s.start_year, s.title_type, s.num_votes,
               round(s.score, 2) AS score, f.reason
        FROM match_outcome o JOIN match_movies m ON m.movie_id = o.movie_id
        JOIN match_fuzzy f ON f.movie_id = o.movie_id
        JOIN match_scored s ON s.movie_id = o.movie_id JOIN stg_imdb_titles t ON t.tconst = s.tconst
        WHERE o.needs_review QUALIFY rank <= $top_n ORDER BY o.movie_id, rank"""
    return Step(sql, "match_review", {"top_n": top_n})


def run_temp(con: duckdb.DuckDBPyConnection, steps: list[Step]) -> None:
    """Run working steps into TEMP tables: ``warehouse.run_steps`` writes durable tables, and
    writing every intermediate to the warehouse file costs more than the matching itself."""
    for step in steps:
        con.execute(f"CREATE OR REPLACE TEMP TABLE {step.output} AS {step.sql}", dict(step.params))


def register_temp(con: duckdb.DuckDBPyConnection, name: str, table: pa.Table) -> None:
    """Copy an Arrow table into table ``name`` (a registered view would pin Python memory)."""
    register_arrow(con, "_match_arrow", table)
    try:
        run_temp(con, [Step("SELECT * FROM _match_arrow", name)])
    finally:
        con.unregister("_match_arrow")
