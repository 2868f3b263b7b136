"""etl/match.py: blocking, scoring and decisions on tiny hand-built staged tables, plus the bar on
the real mirror."""

from __future__ import annotations

import csv
import zipfile
from pathlib import Path

import duckdb
import pytest

from cinegraph.errors import CinegraphError
from cinegraph.etl import match, match_scoring, match_sql, warehouse
from cinegraph.etl.match import MatchConfig, evaluation_from_counts, match_titles

Movie = tuple[int, str]  # movie_id, raw ML title
Title = tuple[str, str, str, str, int | None, int]  # tconst, type, primary, original, start_year, votes


@pytest.fixture
def con() -> duckdb.DuckDBPyConnection:
    c = duckdb.connect()
    yield c
    c.close()


def stage(
    con: duckdb.DuckDBPyConnection,
    movies: list[Movie],
    titles: list[Title],
    *,
    links: list[tuple[int, str]] | None = None,
    akas: list[tuple[str, str]] | None = None,
) -> None:
    """Write the stg_* tables match_titles reads, as the staging contract shapes them."""
    con.execute(
        "CREATE OR REPLACE TABLE stg_ml_movies (movie_id BIGINT, title VARCHAR, name VARCHAR, "
        "year INTEGER, genres VARCHAR[])"
    )
    for movie_id, title in movies:
        con.execute("INSERT INTO stg_ml_movies VALUES (?, ?, NULL, NULL, [])", [movie_id, title])
    con.execute(
        "CREATE OR REPLACE TABLE stg_imdb_titles (tconst VARCHAR, title_type VARCHAR, "
        "primary_title VARCHAR, original_title VARCHAR, is_adult BOOLEAN, start_year INTEGER, "
        "runtime_minutes INTEGER, genres VARCHAR[])"
    )
    con.execute("CREATE OR REPLACE TABLE stg_imdb_ratings (tconst VARCHAR, average_rating DOUBLE, num_votes BIGINT)")
    for tconst, kind, primary, original, year, votes in titles:
        con.execute(
            "INSERT INTO stg_imdb_titles VALUES (?, ?, ?, ?, false, ?, 90, [])", [tconst, kind, primary, original, year]
        )
        if votes:
            con.execute("INSERT INTO stg_imdb_ratings VALUES (?, 7.0, ?)", [tconst, votes])
    con.execute("DROP TABLE IF EXISTS stg_ml_links")
    if links is not None:
        con.execute("CREATE TABLE stg_ml_links (movie_id BIGINT, tconst VARCHAR)")
        con.executemany("INSERT INTO stg_ml_links VALUES (?, ?)", links)
    con.execute("DROP TABLE IF EXISTS stg_imdb_akas")
    if akas is not None:
        con.execute("CREATE TABLE stg_imdb_akas (tconst VARCHAR, title VARCHAR, region VARCHAR, language VARCHAR)")
        con.executemany("INSERT INTO stg_imdb_akas VALUES (?, ?, 'US', 'en')", akas)


def decisions(con: duckdb.DuckDBPyConnection) -> dict[int, tuple[str | None, str]]:
    rows = con.execute("SELECT movie_id, tconst, method FROM match_decisions ORDER BY movie_id").fetchall()
    return {movie_id: (tconst, method) for movie_id, tconst, method in rows}


def review_reasons(tmp_path: Path) -> dict[int, str]:
    """Why each movie of the review file is there (one reason per movie, on every candidate row)."""
    with (tmp_path / "review.csv").open(newline="") as fh:
        return {int(r["movie_id"]): r["reason"] for r in csv.DictReader(fh)}


def run(con: duckdb.DuckDBPyConnection, tmp_path: Path, overrides: Path | None = None, **config: object):
    return match_titles(
        con, MatchConfig(**{"mode": "fuzzy", **config}), review_path=tmp_path / "review.csv", overrides_path=overrides
    )


def test_inverted_articles_and_alternate_titles(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    stage(
        con,
        [
            (1, "Cité des enfants perdus, La (City of Lost Children, The) (1995)"),
            (2, "Seven (a.k.a. Se7en) (1995)"),
            (3, "Haus, Das (1984)"),
            (4, "Sherlock Holmes: Dressed to Kill (1946)"),
            (5, "Heat (1995)"),
        ],
        [
            ("tt01", "movie", "The City of Lost Children", "La cité des enfants perdus", 1995, 5000),
            ("tt02", "movie", "Se7en", "Se7en", 1995, 9000),
            ("tt03", "movie", "Das Haus", "Das Haus", 1985, 10),
            ("tt04", "movie", "Dressed to Kill", "Dressed to Kill", 1946, 300),
            ("tt05", "movie", "Heat", "Heat", 1975, 300),
        ],
    )  # 20 years off: outside the block
    report = run(con, tmp_path)
    assert decisions(con) == {
        1: ("tt01", "fuzzy"),
        2: ("tt02", "fuzzy"),
        3: ("tt03", "fuzzy"),
        4: ("tt04", "fuzzy"),
        5: (None, "none"),
    }
    assert (report.matched, report.unmatched, report.review, report.evaluation) == (4, 1, 0, None)
    assert con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name LIKE 'match_%'").fetchall() == [(1,)]


@pytest.mark.parametrize("with_akas", [False, True])
def test_akas_are_candidates_when_staged(con: duckdb.DuckDBPyConnection, tmp_path: Path, with_akas: bool) -> None:
    stage(
        con,
        [(1, "Godzilla (1954)")],
        [("tt01", "movie", "Gojira", "Gojira", 1954, 40000)],
        akas=[("tt01", "Godzilla")] if with_akas else None,
    )
    run(con, tmp_path)
    assert decisions(con)[1] == (("tt01", "fuzzy") if with_akas else (None, "none"))


@pytest.mark.parametrize(("aka_penalty", "expected"), [(0.0, (None, "none")), (3.0, ("tt02", "fuzzy"))])
def test_aka_match_yields_to_the_film_of_that_name(
    con: duckdb.DuckDBPyConnection, tmp_path: Path, aka_penalty: float, expected: tuple[str | None, str]
) -> None:
    """A popular film a year off whose foreign alias equals the title loses to the film of that name
    once an alias counts less than a title's own name; without the penalty its votes put it first,
    and an alias winner facing a film of that name goes to review."""
    stage(
        con,
        [(1, "Berka, The (2011)")],
        [
            ("tt01", "movie", "Kanorro Polka", "Kanorro Polka", 2012, 500_000),
            ("tt02", "movie", "The Berka", "The Berka", 2011, 300),
        ],
        akas=[("tt01", "The Berka")],
    )
    run(con, tmp_path, aka_penalty=aka_penalty)
    assert decisions(con)[1] == expected


@pytest.mark.parametrize("rival_votes", [None, 40])
def test_alias_winner_facing_a_film_of_that_name_goes_to_review(
    con: duckdb.DuckDBPyConnection, tmp_path: Path, rival_votes: int | None
) -> None:
    """A hit of the same year whose alias is the title outranks a little-voted video of that name
    on votes alone: which one MovieLens meant is a person's call. Without the video it matches."""
    titles: list[Title] = [("tt01", "movie", "Kanorro Polka", "Kanorro Polka", 2011, 900_000)]
    if rival_votes is not None:
        titles.append(("tt02", "video", "The Berka", "The Berka", 2011, rival_votes))
    stage(con, [(1, "Berka, The (2011)")], titles, akas=[("tt01", "The Berka")])
    report = run(con, tmp_path)
    assert decisions(con)[1] == ((None, "none") if rival_votes else ("tt01", "fuzzy"))
    assert review_reasons(tmp_path) == ({1: "aka"} if rival_votes else {})
    assert report.review == (1 if rival_votes else 0)


@pytest.mark.parametrize(("tolerance", "expected"), [(0, None), (1, "tt01"), (2, "tt01")])
@pytest.mark.parametrize("offset", [-1, 1])
def test_year_tolerance(
    con: duckdb.DuckDBPyConnection, tmp_path: Path, tolerance: int, expected: str | None, offset: int
) -> None:
    stage(con, [(1, "Nosferatu (1922)")], [("tt01", "movie", "Nosferatu", "Nosferatu", 1922 + offset, 9)])
    run(con, tmp_path, year_tolerance=tolerance)
    assert decisions(con)[1][0] == expected


def test_same_year_homonyms_decided_by_type_then_votes(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    stage(
        con,
        [(1, "Hamlet (1948)"), (2, "Rink, The (1916)"), (3, "Faust (1926)")],
        [
            ("tt10", "movie", "Hamlet", "Hamlet", 1948, 12),
            ("tt11", "movie", "Hamlet", "Hamlet", 1948, 21000),  # same year, far more votes: wins
            ("tt12", "movie", "Hamlet", "Hamlet", 1949, 30),
            ("tt20", "short", "The Rink", "The Rink", 1916, 4500),  # a short is all there is
            ("tt21", "movie", "The Brink", "The Brink", 1915, 0),
            ("tt30", "short", "Faust", "Faust", 1926, 900000),  # a feature beats a short
            ("tt31", "movie", "Faust", "Faust: Eine deutsche Volkssage", 1926, 15000),
        ],
    )
    run(con, tmp_path)
    assert decisions(con) == {1: ("tt11", "fuzzy"), 2: ("tt20", "fuzzy"), 3: ("tt31", "fuzzy")}


@pytest.mark.parametrize("exact_year_votes", [None, 150])
def test_off_year_winner_facing_a_title_of_the_year_goes_to_review(
    con: duckdb.DuckDBPyConnection, tmp_path: Path, exact_year_votes: int | None
) -> None:
    """A far more voted namesake a year off outranks the film of the MovieLens year on votes alone:
    a person decides. With no title of that year, the namesake a year off is the match."""
    titles: list[Title] = [("tt01", "movie", "Valumpol Danjundan", "Valumpol Danjundan", 2019, 2_000_000)]
    if exact_year_votes is not None:
        titles.append(("tt02", "tvMiniSeries", "Valumpol Danjundan", "Valumpol Danjundan", 2020, exact_year_votes))
    stage(con, [(1, "Valumpol Danjundan (2020)")], titles)
    report = run(con, tmp_path)
    assert decisions(con)[1] == ((None, "none") if exact_year_votes else ("tt01", "fuzzy"))
    assert review_reasons(tmp_path) == ({1: "year"} if exact_year_votes else {})
    assert report.review == (1 if exact_year_votes else 0)


def test_undated_movie_blocked_by_title_key(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    stage(
        con,
        [(1, "Babylon 5"), (2, "Cosmos")],
        [
            ("tt01", "tvMiniSeries", "Babylon 5", "Babylon 5", 1993, 100),
            ("tt02", "movie", "Kosmos", "Kosmos", 1980, 10),
        ],
    )  # close but not the same key
    run(con, tmp_path)
    assert decisions(con) == {1: ("tt01", "fuzzy"), 2: (None, "none")}


@pytest.mark.parametrize(
    ("rival_votes", "expected", "reason"),
    [
        (None, "tt01", None),
        (20_000, "tt01", None),  # a namesake of one of the film's names, ten times less voted
        (150_000, None, "tie"),  # namesakes within the tie window
        (2_000_000, None, "margin"),  # the namesake leads, but it bears only one of the two names
    ],
)
def test_film_bearing_both_names_meets_a_namesake_of_one(
    con: duckdb.DuckDBPyConnection, tmp_path: Path, rival_votes: int | None, expected: str | None, reason: str | None
) -> None:
    """For "Original (English)" the film titled both ways and a film titled only "English" are
    namesakes, decided on votes within the tie window, not a different title that must trail by
    the whole margin; a winner bearing one name only still needs the margin over the one bearing both."""
    titles: list[Title] = [("tt01", "movie", "Bicycle Thieves", "Ladri di biciclette", 1948, 170_000)]
    if rival_votes is not None:
        titles.append(("tt02", "movie", "Bicycle Thieves", "Bicycle Thieves", 1948, rival_votes))
    stage(con, [(1, "Ladri di biciclette (Bicycle Thieves) (1948)")], titles)
    report = run(con, tmp_path)
    assert decisions(con)[1][0] == expected
    assert report.review == (reason is not None)
    assert review_reasons(tmp_path) == ({1: reason} if reason else {})


def test_ambiguous_cases_go_to_review(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    stage(
        con,
        [(1, "Color of Night (1994)"), (2, "Twin Town (1997)")],
        [
            ("tt01", "movie", "Colour of Night", "Colour of Night", 1994, 100),  # 96.6
            ("tt02", "movie", "Color of Might", "Color of Might", 1994, 100),  # 92.9: inside the margin
            ("tt03", "movie", "Twin Town", "Twin Town", 1997, 0),  # homonyms, no votes
            ("tt04", "movie", "Twin Town", "Twin Town", 1997, 0),
        ],
    )
    report = run(con, tmp_path)
    assert decisions(con) == {1: (None, "none"), 2: (None, "none")}
    assert report.review == 2
    with (tmp_path / "review.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == match.REVIEW_COLUMNS
    assert [(r["movie_id"], r["rank"], r["tconst"]) for r in rows] == [
        ("1", "1", "tt01"),
        ("1", "2", "tt02"),
        ("2", "1", "tt03"),
        ("2", "2", "tt04"),
    ]
    assert float(rows[0]["score"]) == pytest.approx(96.55, abs=0.01)
    assert review_reasons(tmp_path) == {1: "margin", 2: "tie"}
    # A wider margin of zero accepts the leader; the vote-less homonyms stay ambiguous.
    report = run(con, tmp_path, margin=0.0)
    assert decisions(con) == {1: ("tt01", "fuzzy"), 2: (None, "none")}
    assert report.review == 1


def test_decision_scores_recorded(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    stage(
        con,
        [(1, "Jezebel (1938)"), (2, "Zzz (1938)")],
        [("tt01", "movie", "Jezebel", "Jezebel", 1938, 100), ("tt02", "movie", "Jezebels", "Jezebels", 1938, 1)],
    )
    run(con, tmp_path)
    rows = con.execute("SELECT movie_id, tconst, score, runner_up_score, method FROM match_decisions").fetchall()
    assert rows[0][:3] == (1, "tt01", 100.0)
    assert rows[0][3] == pytest.approx(200 * 7 / 15, abs=0.01)  # "jezebels" vs "jezebel"
    assert rows[1] == (2, None, None, None, "none")
    types = dict(
        con.execute(
            "SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = 'match_decisions'"
        ).fetchall()
    )
    assert types == {
        "movie_id": "BIGINT",
        "tconst": "VARCHAR",
        "score": "DOUBLE",
        "runner_up_score": "DOUBLE",
        "method": "VARCHAR",
    }


def test_overrides_always_win(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    stage(
        con,
        [(1, "Jezebel (1938)"), (2, "Scarface (1932)"), (3, "Freaks (1932)")],
        [
            ("tt0000001", "movie", "Jezebel", "Jezebel", 1938, 100),
            ("tt0000002", "movie", "Scarface", "Scarface", 1932, 100),
            ("tt0000003", "movie", "Freaks", "Freaks", 1932, 100),
        ],
        links=[(1, "tt0000001")],
    )
    overrides = tmp_path / "overrides.csv"
    overrides.write_text("movieId,tconst\n1,tt0000003\n2,\n")
    report = match_titles(con, MatchConfig(mode="links"), review_path=tmp_path / "r.csv", overrides_path=overrides)
    assert decisions(con) == {1: ("tt0000003", "override"), 2: (None, "override"), 3: ("tt0000003", "fuzzy")}
    assert (report.matched, report.unmatched) == (2, 1)


def test_override_file_problems_listed_at_once(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    stage(con, [(1, "Jezebel (1938)"), (2, "Freaks (1932)")], [("tt0000001", "movie", "Jezebel", "Jezebel", 1938, 1)])
    bad = tmp_path / "overrides.csv"
    bad.write_text("movieId,tconst\nx1,tt0000001\n1,tt12\n99,tt0000001\n2,tt9999999\n1,\n2,tt0000001,extra\n")
    with pytest.raises(CinegraphError) as err:
        run(con, tmp_path, overrides=bad)
    message = str(err.value)
    assert "\n" not in message and str(bad) in message and "5 problem(s)" in message
    for part in [
        "line 2: movieId 'x1' is not an integer",
        "line 3: tconst 'tt12' is not like",
        "line 4: movieId 99 is not a staged movie",
        "line 5: tconst tt9999999 is not a staged IMDb title",
        "line 7: expected 2 fields, got 3",
    ]:
        assert part in message
    assert not (tmp_path / "review.csv").exists()  # nothing ran
    bad.write_text("movie,imdb\n1,tt0000001\n")
    with pytest.raises(CinegraphError, match="header must be 'movieId,tconst'"):
        run(con, tmp_path, overrides=bad)
    bad.write_text("movieId,tconst\n1,tt0000001\n1,\n")
    with pytest.raises(CinegraphError, match="line 3: movieId 1 already given on line 2"):
        run(con, tmp_path, overrides=bad)


def _evaluation_fixture(con: duckdb.DuckDBPyConnection) -> None:
    """Linked movies: A right, B matched though its title is absent, C and F missed, E right,
    D linked to an absent title and unmatched; G unlinked (not scored)."""
    stage(
        con,
        [
            (1, "Alpha Centauri (1930)"),
            (2, "Bravo Two (1931)"),
            (3, "Charlie Chaplin Story (1932)"),
            (4, "Delta Force (1933)"),
            (5, "Echo Park (1934)"),
            (6, "Foxtrot Uniform (1935)"),
            (7, "Golf Course (1936)"),
        ],
        [
            ("tt01", "movie", "Alpha Centauri", "Alpha Centauri", 1930, 5),
            ("tt02", "movie", "Bravo Two", "Bravo Two", 1931, 5),  # a homonym, not B's title
            ("tt03", "movie", "Vie de Charlot", "Vie de Charlot", 1932, 5),  # C's title, unrecognisable
            ("tt05", "movie", "Echo Park", "Echo Park", 1934, 5),
            ("tt06", "movie", "Zulu Dawn", "Zulu Dawn", 1935, 5),
            ("tt07", "movie", "Golf Course", "Golf Course", 1936, 5),
        ],
        links=[(1, "tt01"), (2, "tt92"), (3, "tt03"), (4, "tt94"), (5, "tt05"), (6, "tt06")],
    )


@pytest.mark.parametrize("mode", ["links", "fuzzy"])
def test_evaluation_against_links(con: duckdb.DuckDBPyConnection, tmp_path: Path, mode: str) -> None:
    _evaluation_fixture(con)
    report = run(con, tmp_path, mode=mode)
    # made = {A, B, E} = 3, correct = {A, E} = 2, truth pairs = {A, C, E, F} = 4
    assert report.evaluation is not None
    assert report.evaluation.truth_pairs == 4
    assert report.evaluation.precision == pytest.approx(2 / 3)
    assert report.evaluation.recall == pytest.approx(2 / 4)
    assert report.evaluation.f1 == pytest.approx(4 / 7)
    got = decisions(con)
    if mode == "links":  # every link is trusted, staged title or not; unlinked movies fall back to fuzzy
        assert got == {
            1: ("tt01", "link"),
            2: ("tt92", "link"),
            3: ("tt03", "link"),
            4: ("tt94", "link"),
            5: ("tt05", "link"),
            6: ("tt06", "link"),
            7: ("tt07", "fuzzy"),
        }
    else:
        assert got == {
            1: ("tt01", "fuzzy"),
            2: ("tt02", "fuzzy"),
            3: (None, "none"),
            4: (None, "none"),
            5: ("tt05", "fuzzy"),
            6: (None, "none"),
            7: ("tt07", "fuzzy"),
        }


@pytest.mark.parametrize(
    ("made", "correct", "truth", "p", "r", "f1"),
    [
        (10, 9, 12, 0.9, 0.75, 2 * 0.9 * 0.75 / 1.65),
        (0, 0, 5, 0.0, 0.0, 0.0),
        (3, 0, 0, 0.0, 0.0, 0.0),
        (4, 4, 4, 1.0, 1.0, 1.0),
    ],
)
def test_evaluation_from_counts(made: int, correct: int, truth: int, p: float, r: float, f1: float) -> None:
    ev = evaluation_from_counts(made, correct, truth)
    assert (ev.precision, ev.recall, ev.f1, ev.truth_pairs) == (
        pytest.approx(p),
        pytest.approx(r),
        pytest.approx(f1),
        truth,
    )


def test_candidate_and_block_steps(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    """The blocking SQL on its own: spellings collapse per title, a year block reads distinct spellings."""
    stage(
        con,
        [(1, "Heat (1995)")],
        [
            ("tt01", "movie", "Heat", "HEAT", 1995, 1),
            ("tt02", "movie", "Heat", "Heat", 1996, 1),
            ("tt03", "movie", "Heat", "Heat", 1999, 1),
        ],
        akas=[("tt01", "Hitze")],
    )
    match._stage_movies(con)
    warehouse.run_steps(
        con,
        [
            match_sql.candidate_titles_sql(True),
            match_sql.candidate_info_sql(),
            match_sql.needed_titles_sql(1, all_titles=False),
        ],
    )
    assert sorted(con.execute("SELECT * FROM match_candidate_titles").fetchall()) == [
        ("tt01", "HEAT", False),
        ("tt01", "Heat", False),
        ("tt01", "Hitze", True),
        ("tt02", "Heat", False),
        ("tt03", "Heat", False),
    ]
    assert sorted(con.execute("SELECT title FROM match_needed_titles").fetchall()) == [("HEAT",), ("Heat",), ("Hitze",)]
    match_scoring.stage_title_norms(con, batch_rows=2)  # two hash slices: the batches add up to every title
    warehouse.run_steps(con, [match_sql.spelled_sql()])
    assert con.execute("SELECT year, norm, key, derived, tconst FROM match_spelled ORDER BY ALL").fetchall() == [
        (1995, "heat", "heat", False, "tt01"),
        (1995, "hitze", "hitze", False, "tt01"),
        (1996, "heat", "heat", False, "tt02"),
        (1999, "heat", "heat", False, "tt03"),
    ]
    choices = con.execute(match_sql.BLOCK_CHOICES_SQL, {"low": 1994, "high": 1996}).fetchall()
    assert choices == [(4, "heat", False), (5, "hitze", False)]
    assert match_scoring.length_window(10, 86) == (8, 13)  # 200*8/18 = 88.9 >= 86 > 200*7/17 = 82.4
    assert match_scoring.length_window(10, 0) == (0, 1 << 30)


def test_rerun_is_identical(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    _evaluation_fixture(con)
    first = run(con, tmp_path)
    rows = con.execute("SELECT * FROM match_decisions ORDER BY movie_id").fetchall()
    assert run(con, tmp_path) == first
    assert con.execute("SELECT * FROM match_decisions ORDER BY movie_id").fetchall() == rows


@pytest.mark.realdata
@pytest.mark.slow
def test_bar_on_real_mirror(mirror: Path, tmp_path: Path) -> None:
    """ml-latest-small against the real IMDb rows, fuzzy mode: precision >= 0.995, recall >= 0.99."""
    from cinegraph.etl import staging

    with zipfile.ZipFile(mirror / "movielens" / "ml-latest-small.zip") as zf:
        zf.extractall(tmp_path)
    imdb = {
        name: (mirror / "imdb" / f"{name}.tsv.gz")
        for name in ("title.basics", "title.akas", "title.principals", "title.crew", "name.basics", "title.ratings")
    }
    imdb = {name: (path if path.exists() else None) for name, path in imdb.items()}
    con = warehouse.connect(tmp_path / "wh" / "warehouse.duckdb", memory_limit="2GB")
    try:
        staging.stage(con, tmp_path / "ml-latest-small", imdb)
        report = match_titles(con, MatchConfig(mode="fuzzy"), review_path=tmp_path / "review.csv")
        assert report.evaluation is not None
        assert report.evaluation.truth_pairs == 584
        assert report.evaluation.precision >= 0.995
        assert report.evaluation.recall >= 0.99
        assert report.matched + report.unmatched == 9742
        links = match_titles(con, MatchConfig(mode="links"), review_path=tmp_path / "review.csv")
        assert links.evaluation == report.evaluation
        methods = dict(con.execute("SELECT method, count(*) FROM match_decisions GROUP BY 1").fetchall())
        assert methods["link"] == 9742  # links.csv covers every movie; 584 of them are in title.basics
    finally:
        con.close()


@pytest.mark.parametrize("cutoff", [50.0, 86.0, 95.0])
def test_length_window_never_drops_a_reachable_pair(cutoff: float) -> None:
    """The length pruning agrees with brute force: every pair scoring >= cutoff lies in the window."""
    import random

    from rapidfuzz import fuzz

    rng = random.Random(3)
    words = ["heat", "the", "night", "of", "colour", "color", "a", "la", "strada", "2"]
    titles = [" ".join(rng.choice(words) for _ in range(rng.randint(1, 5))) for _ in range(300)]
    for a in titles[:60]:
        low, high = match_scoring.length_window(len(a), cutoff)
        for b in titles:
            if fuzz.ratio(a, b) >= cutoff:
                assert low <= len(b) <= high
