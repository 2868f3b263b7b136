"""Synthetic MovieLens + IMDb dumps at a chosen fraction of the full sizes, in the official formats.

    .venv/bin/python benchmarks/synthetic_dumps.py OUT --scale 0.1 --variant ml-25m [--seed 0]

writes OUT in the mirror layout (``movielens/<variant>.zip`` + ``.md5``, ``imdb/<file>.tsv.gz``
for title.basics, title.akas, title.principals, title.crew, name.basics, title.ratings), so
``cinegraph etl --mirror OUT --variant <variant>`` reads it as it reads the real dumps. Scale 1.0
is the 2025 dumps' row counts (11.5M titles, ~52M akas, ~92M principals, 14.5M names) and the
variant's MovieLens sizes (ml-25m: 25M ratings, 62k movies, 162k users).

Shapes that matter to the ETL: three quarters of the titles are TV episodes and ~6 % movies;
votes are heavy-tailed and only ~14 % of titles are rated; films carry many more akas than
episodes; MovieLens movies are the most-voted films (mostly ``movie``), titled the MovieLens way
("Matrix, The (1999)", "Original (English) (1999)", a.k.a. forms, a few typos and years one off);
about one MovieLens film in forty (RIVAL_SHARE) has same-title IMDb rivals of the same or a
nearby year (videos, TV movies, shorts, lesser films) and a few share their title with another
MovieLens movie of another year, so matching precision is really tested. ``links.csv`` is the ground truth.

Every value is a hash of (seed, row, purpose) computed in DuckDB SQL, written by DuckDB's CSV
writer and compressed by ``gzip -1 -n`` beside the next query: the output is the same for a seed,
and no Python loop touches a row.
Generated on demand, never committed.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import shutil
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import duckdb

log = logging.getLogger("synthetic_dumps")

# Full sizes (scale 1.0): the 2025 IMDb dumps and the MovieLens variants.
IMDB_ROWS = {"titles": 11_500_000, "names": 14_500_000}
VARIANTS = {  # movies, users, ratings, tags
    "ml-25m": (62_423, 162_541, 25_000_095, 1_093_360),
    "ml-32m": (87_585, 200_948, 32_000_204, 2_000_072),
}
# MovieLens rating timestamps span (epoch seconds) per variant.
TIME_SPAN = {"ml-25m": (789_652_009, 1_574_327_703), "ml-32m": (789_652_009, 1_697_164_147)}

# titleType mix of the 2025 title.basics (fractions of all rows, cumulative in this order).
TITLE_TYPES = [
    ("tvEpisode", 0.7735),
    ("short", 0.09),
    ("movie", 0.06),
    ("video", 0.026),
    ("tvSeries", 0.024),
    ("tvMovie", 0.013),
    ("tvMiniSeries", 0.005),
    ("tvSpecial", 0.004),
    ("videoGame", 0.0035),
    ("tvShort", 0.001),
]
# Probability that a title of a type is rated (title.ratings holds ~14 % of title.basics).
RATED = {
    "movie": 0.45,
    "tvSeries": 0.45,
    "tvMiniSeries": 0.4,
    "tvMovie": 0.35,
    "video": 0.2,
    "videoGame": 0.3,
    "tvSpecial": 0.2,
    "short": 0.12,
    "tvShort": 0.1,
    "tvEpisode": 0.105,
}
# How likely a rated title of a type is picked by MovieLens (log-vote bonus).
ML_TYPE_BONUS = {
    "movie": 2.5,
    "tvMovie": 0.0,
    "video": -0.5,
    "tvMiniSeries": -0.5,
    "short": -2.0,
    "tvSpecial": -1.5,
    "tvSeries": -3.0,
}
# Share of MovieLens films given same-title rivals. MovieLens films with a same-year namesake
# among the dated films: 0.38 % in the real sample (0.57 % within a year); one film in eight
# (0.12) made that 7.1 % at full size, nineteen times the real rate. One in forty keeps a few
# times the real rate, still a precision test (homonym_rates, benchmarks/results/etl_scale.md).
RIVAL_SHARE = 0.025
SYLLABLES = [
    "ka",
    "lo",
    "mi",
    "ne",
    "ro",
    "sa",
    "tu",
    "vi",
    "ber",
    "dan",
    "gor",
    "hal",
    "jun",
    "kel",
    "mar",
    "nor",
    "pol",
    "ris",
    "sten",
    "tor",
    "val",
    "win",
    "zel",
    "ach",
    "ing",
    "ost",
    "um",
    "ly",
    "lé",
    "mö",
]
VOCAB = len(SYLLABLES) ** 3 + len(SYLLABLES) ** 2  # distinct generated words
ENGLISH_ARTICLES = ["The", "The", "The", "A", "An"]
FOREIGN_ARTICLES = ["La", "Le", "Les", "Der", "Die", "Das", "El", "Il", "Los"]
IMDB_GENRES = [
    "Action",
    "Adult",
    "Adventure",
    "Animation",
    "Biography",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Family",
    "Fantasy",
    "Film-Noir",
    "Game-Show",
    "History",
    "Horror",
    "Music",
    "Musical",
    "Mystery",
    "News",
    "Reality-TV",
    "Romance",
    "Sci-Fi",
    "Short",
    "Sport",
    "Talk-Show",
    "Thriller",
    "War",
    "Western",
]
ML_GENRES = [
    "Action",
    "Adventure",
    "Animation",
    "Children",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "IMAX",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
]
REGIONS = [
    "US",
    "GB",
    "DE",
    "FR",
    "IT",
    "ES",
    "JP",
    "BR",
    "IN",
    "CA",
    "AU",
    "MX",
    "RU",
    "SE",
    "PL",
    "NL",
    "TR",
    "GR",
    "PT",
    "AR",
    "FI",
    "DK",
    "HU",
    "KR",
    "XWW",
]
PROFESSIONS = [
    "actor",
    "actress",
    "director",
    "writer",
    "producer",
    "composer",
    "cinematographer",
    "editor",
    "self",
    "miscellaneous",
    "camera_department",
    "sound_department",
]
# principals category by billing position: actors first, crew after.
CATEGORIES = [
    "actor",
    "actress",
    "actor",
    "actress",
    "self",
    "director",
    "writer",
    "producer",
    "composer",
    "cinematographer",
    "editor",
    "production_designer",
    "casting_director",
    "archive_footage",
]
IMDB_HEADERS = {
    "title.basics": "tconst, titleType, primaryTitle, originalTitle, isAdult, startYear, endYear, "
    "runtimeMinutes, genres",
    "title.akas": "titleId, ordering, title, region, language, types, attributes, isOriginalTitle",
    "title.principals": "tconst, ordering, nconst, category, job, characters",
    "title.crew": "tconst, directors, writers",
    "name.basics": "nconst, primaryName, birthYear, deathYear, primaryProfession, knownForTitles",
    "title.ratings": "tconst, averageRating, numVotes",
}


@dataclass(frozen=True)
class Sizes:
    """Row targets at one scale (MovieLens ratings are drawn then deduplicated: a little fewer)."""

    titles: int
    names: int
    movies: int
    users: int
    ratings: int
    tags: int

    @classmethod
    def at(cls, scale: float, variant: str) -> Sizes:
        movies, users, ratings, tags = VARIANTS[variant]
        return cls(
            titles=max(2_000, round(IMDB_ROWS["titles"] * scale)),
            names=max(2_000, round(IMDB_ROWS["names"] * scale)),
            movies=max(20, round(movies * scale)),
            users=max(10, round(users * scale)),
            ratings=max(200, round(ratings * scale)),
            tags=max(20, round(tags * scale)),
        )


def _list(values: list[str]) -> str:
    """A SQL list literal of this module's constant strings (never data)."""
    return "[" + ", ".join("'" + v.replace("'", "''") + "'" for v in values) + "]"


def _macros(con: duckdb.DuckDBPyConnection, seed: int) -> None:
    """rnd(key, purpose) in [0, 1) and word/phrase generators, all pure functions of the seed."""
    con.execute("SET VARIABLE seed = ?", [seed])
    n = len(SYLLABLES)
    for sql in (
        "CREATE MACRO h(a, b) AS hash(a, b, getvariable('seed'))",
        "CREATE MACRO rnd(a, b) AS ((h(a, b) >> 11)::DOUBLE / 9007199254740992.0)",
        "CREATE MACRO pick(lst, a, b) AS lst[1 + (h(a, b) % len(lst))::BIGINT]",
        f"CREATE MACRO syl(x) AS {_list(SYLLABLES)}[1 + (x % {n})::BIGINT]",
        # Word w (0 <= w < VOCAB): two or three syllables, capitalised.
        f"CREATE MACRO wordi(w) AS upper(syl(w)[1]) || syl(w)[2:] || syl(w // {n}) "
        f"|| CASE WHEN w >= {n * n} THEN syl(w // {n * n} - 1) ELSE '' END",
        # Zipf-like choice: a few words are common, so titles collide now and then as real ones do.
        f"CREATE MACRO word(a, b) AS wordi(floor({VOCAB} * power(rnd(a, b), 1.6))::BIGINT)",
        "CREATE MACRO nwords(a, b) AS CASE WHEN rnd(a, b) < 0.22 THEN 1 WHEN rnd(a, b) < 0.52 THEN 2 "
        "WHEN rnd(a, b) < 0.72 THEN 3 WHEN rnd(a, b) < 0.85 THEN 4 WHEN rnd(a, b) < 0.94 THEN 5 ELSE 6 END",
        "CREATE MACRO phrase(a, b, k) AS array_to_string(list_transform(range(k), lambda j: word(a, b * 16 + j)), ' ')",
        # An English title: optional article, words, optional sequel numeral or colon subtitle.
        f"CREATE MACRO title_of(a) AS CASE WHEN rnd(a, 1) < 0.25 THEN pick({_list(ENGLISH_ARTICLES)}, a, 2) || ' ' "
        "ELSE '' END || phrase(a, 3, nwords(a, 4)) "
        "|| CASE WHEN rnd(a, 5) < 0.03 THEN pick([' 2', ' 3', ' II', ' Part III', ' 4'], a, 6) "
        "WHEN rnd(a, 5) < 0.08 THEN ': ' || phrase(a, 7, 1 + (h(a, 8) % 4)::BIGINT) ELSE '' END",
        f"CREATE MACRO foreign_of(a) AS pick({_list(FOREIGN_ARTICLES)}, a, 9) || ' ' || phrase(a, 10, nwords(a, 11))",
        # MovieLens writes a leading article at the end: "The Matrix" -> "Matrix, The".
        f"CREATE MACRO ml_form(t) AS regexp_replace(t, '^({'|'.join(ENGLISH_ARTICLES[2:] + FOREIGN_ARTICLES)}|The) "
        "(.+)$', '\\2, \\1')",
        # At least 7 digits (lpad would cut the 8-digit ids of a full-size dump, repeating ids).
        "CREATE MACRO tconst(i) AS printf('tt%07d', i)",
        "CREATE MACRO nconst(i) AS printf('nm%07d', i)",
    ):
        con.execute(sql)


# Translations: a letter cipher per language (ASCII, so accent folding cannot undo it), and the
# article that language puts first.
CIPHERS = [
    ("La ", "aeioklmnrst", "eaouchnmlzd"),
    ("Der ", "aeioklmnrstv", "eiaucrnmlzdw"),
    ("El ", "aeiouklnrst", "oaeiuqrmlsc"),
    ("Il ", "aeioklmnrst", "oiaecqnmlrz"),
    ("", "aeiklnorstu", "ioaqmrelzdy"),
]


def _cipher_case(column: str, index: str) -> str:
    """``column`` translated into language ``index % len(CIPHERS)`` (see CIPHERS)."""
    whens = " ".join(
        f"WHEN {n} THEN '{art}' || upper(translate(lower({column}), '{src}', '{dst}')[1]) "
        f"|| translate(lower({column}), '{src}', '{dst}')[2:]"
        for n, (art, src, dst) in enumerate(CIPHERS)
    )
    return f"CASE {index} % {len(CIPHERS)} {whens} END"


def _type_case(column: str) -> str:
    """CASE mapping a uniform ``column`` to a titleType by the cumulative mix."""
    whens, acc = [], 0.0
    for name, share in TITLE_TYPES[:-1]:
        acc += share
        whens.append(f"WHEN {column} < {acc:.6f} THEN '{name}'")
    return f"CASE {' '.join(whens)} ELSE '{TITLE_TYPES[-1][0]}' END"


def _by_type(mapping: dict[str, float], default: float) -> str:
    whens = " ".join(f"WHEN '{k}' THEN {v}" for k, v in mapping.items())
    return f"CASE title_type {whens} ELSE {default} END"


def build_tables(con: duckdb.DuckDBPyConnection, sizes: Sizes) -> None:
    """The few materialised tables everything else derives from: titles (type, year, votes, name
    key), the MovieLens picks and their popularity order."""
    con.execute("SET VARIABLE n_titles = ?", [sizes.titles])
    con.execute("SET VARIABLE n_names = ?", [sizes.names])
    con.execute("SET VARIABLE n_movies = ?", [sizes.movies])
    con.execute(f"""
        CREATE TABLE base AS
        WITH t AS (SELECT i, {_type_case("rnd(i, 20)")} AS title_type FROM range(1, getvariable('n_titles') + 1) r(i))
        SELECT i, title_type,
               CASE WHEN rnd(i, 21) < CASE WHEN title_type = 'tvEpisode' THEN 0.08 ELSE 0.03 END THEN NULL
                    ELSE 2025 - least(131, floor(-ln(1 - rnd(i, 22))
                                                 * CASE WHEN title_type = 'tvEpisode' THEN 14 ELSE 22 END))::INTEGER
                    END AS year,
               CASE WHEN rnd(i, 23) < {_by_type(RATED, 0.1)}
                    THEN least(3000000, floor(5 * power(1 - rnd(i, 24), -1 / 0.6)))::BIGINT ELSE 0 END AS votes
        FROM t""")
    # MovieLens picks: rated film-like titles, ranked by log votes + type bonus + noise.
    con.execute(f"""
        CREATE TABLE ml AS
        WITH scored AS (
            SELECT i, title_type, year, votes, ln(votes) + {_by_type(ML_TYPE_BONUS, -99)} + 2 * (rnd(i, 30) - 0.5) AS s
            FROM base WHERE votes > 0 AND year IS NOT NULL)
        SELECT row_number() OVER (ORDER BY i) AS ml_rank, i, title_type, year, votes,
               row_number() OVER (ORDER BY votes DESC, i) AS pop_rank
        FROM (SELECT * FROM scored ORDER BY s DESC, i LIMIT getvariable('n_movies'))""")
    # Same-title rivals: RIVAL_SHARE of the MovieLens films lend their title to 1-3 other
    # film-like titles, mostly of the same year; 3 % take the title of another MovieLens movie
    # (remakes). A MovieLens TV series neither lends nor takes a title (same-title films of a
    # series' year are rare in the real dumps).
    film = "('movie', 'tvMovie', 'video', 'short', 'tvSpecial', 'tvMiniSeries')"
    con.execute(f"""
        CREATE TABLE renamed AS
        WITH pool AS (SELECT b.i FROM base b ANTI JOIN ml ON ml.i = b.i WHERE b.title_type IN {film}),
        donors AS (
            SELECT p.i, m.i AS target, m.year AS target_year FROM pool p
            JOIN ml m ON m.ml_rank = 1 + (h(p.i, 40) % getvariable('n_movies'))::BIGINT
            WHERE rnd(p.i, 41) < 1.8 * getvariable('n_movies') / (SELECT count(*) FROM pool)
              AND rnd(m.i, 42) < {RIVAL_SHARE} AND m.title_type IN {film}),
        remakes AS (
            SELECT a.i, b.i AS target FROM ml a JOIN ml b
              ON b.ml_rank = 1 + (h(a.i, 43) % getvariable('n_movies'))::BIGINT
            WHERE rnd(a.i, 44) < 0.03 AND a.i <> b.i AND a.title_type IN {film} AND b.title_type IN {film})
        SELECT i, target AS name_key,
               target_year + CASE WHEN rnd(i, 45) < 0.55 THEN 0 WHEN rnd(i, 45) < 0.8
                                  THEN CASE WHEN rnd(i, 46) < 0.5 THEN -1 ELSE 1 END
                                  ELSE (2 + h(i, 47) % 14)::INTEGER * CASE WHEN rnd(i, 46) < 0.5 THEN -1 ELSE 1 END
                             END AS year
        FROM donors
        UNION ALL SELECT r.i, r.target, m.year FROM remakes r JOIN ml m ON m.i = r.i""")
    # A title's texts, written once (title.basics, title.akas and movies.csv all read them):
    # episodes are mostly "Episode #s.e"; 15 % of films are foreign with an original title of their
    # own. Everything derives from name_key, so same-key titles are homonyms.
    # (Sorted before the texts exist: the scan of a sorted table keeps its order, a sort of the
    # texts would move every string.)
    con.execute("""
        CREATE TABLE keyed AS
        SELECT b.i, b.title_type, CASE WHEN r.i IS NULL THEN b.year ELSE least(r.year, 2025) END AS year, b.votes,
               coalesce(r.name_key, b.i) AS name_key
        FROM base b LEFT JOIN (SELECT DISTINCT ON (i) * FROM renamed ORDER BY i, name_key) r ON r.i = b.i
        ORDER BY b.i""")
    con.execute("""
        CREATE TABLE titles AS
        SELECT *,
               CASE WHEN title_type = 'tvEpisode' AND rnd(i, 50) < 0.45
                    THEN 'Episode #' || (1 + h(i, 51) % 12) || '.' || (1 + h(i, 52) % 24)
                    ELSE title_of(name_key) END AS primary_title,
               CASE WHEN title_type <> 'tvEpisode' AND rnd(name_key, 53) < 0.15 THEN foreign_of(name_key)
                    END AS foreign_title
        FROM keyed""")
    con.execute("DROP TABLE keyed")
    con.execute("DROP TABLE base")
    con.execute("DROP TABLE renamed")


def imdb_queries() -> dict[str, str]:
    """One SELECT per IMDb file, in the file's column order and key order: each scans ``titles``
    (written in key order) or a range through projections, filters and unnest only, which keep
    DuckDB's insertion order, so no query sorts its tens of millions of rows."""
    genres = _list(IMDB_GENRES)
    return {
        "title.basics": f"""
            SELECT tconst(i), title_type, primary_title, coalesce(foreign_title, primary_title),
                   CASE WHEN rnd(i, 60) < 0.02 THEN 1 ELSE 0 END, year,
                   CASE WHEN title_type IN ('tvSeries', 'tvMiniSeries') AND year IS NOT NULL AND rnd(i, 61) < 0.6
                        THEN CAST(least(2025, year + (h(i, 62) % 12)::INTEGER) AS VARCHAR) END,
                   CASE WHEN rnd(i, 63) < 0.35 THEN NULL
                        WHEN title_type IN ('movie', 'tvMovie', 'video') THEN 60 + (h(i, 64) % 90)::INTEGER
                        ELSE 5 + (h(i, 64) % 50)::INTEGER END,
                   CASE WHEN rnd(i, 65) < 0.1 THEN NULL ELSE array_to_string(list_sort(list_distinct(
                       [pick({genres}, i, 66), pick({genres}, i, 67), pick({genres}, i, 68)]
                       [1:1 + (h(i, 69) % 3)::INTEGER])), ',') END
            FROM titles""",
        # ordering 1 is the original title; films carry many more akas than episodes, popular ones most.
        # Like the real file, the other akas are the title itself released in another region, its
        # original title, a translation (a per-language letter cipher of the title: a spelling of its
        # own, as "Der Pate" is of "The Godfather"), the title with a regional subtitle, and a few
        # working titles unrelated to it; so an aka rarely spells another film's title.
        "title.akas": f"""
            WITH a AS (
                SELECT i, primary_title, coalesce(foreign_title, primary_title) AS original_title,
                       unnest(range(1, 1 + CASE WHEN title_type = 'tvEpisode' THEN 1 + (h(i, 70) % 9)::INTEGER
                           ELSE 1 + (h(i, 70) % 4)::INTEGER
                                + floor(power(log10(1 + votes), 2) * 2.5 * rnd(i, 71))::INTEGER
                           END)) AS ordering
                FROM titles),
            k AS (SELECT *, i * 1000 + ordering AS k, rnd(i * 1000 + ordering, 72) AS u,
                         (h(i * 1000 + ordering, 76) % {len(REGIONS)})::INTEGER AS r FROM a)
            SELECT tconst(i), ordering,
                   CASE WHEN ordering = 1 THEN original_title
                        WHEN u < 0.6 THEN primary_title
                        WHEN u < 0.7 THEN original_title
                        WHEN u < 0.92 THEN {_cipher_case("primary_title", "r")}
                        WHEN u < 0.97 THEN primary_title || ': ' || phrase(k, 74, 1 + (h(k, 75) % 3)::INTEGER)
                        ELSE phrase(k, 74, nwords(k, 75)) END,
                   CASE WHEN ordering = 1 THEN NULL ELSE {_list(REGIONS)}[1 + r] END,
                   CASE WHEN ordering > 1 AND rnd(k, 77) < 0.2
                        THEN pick(['en', 'fr', 'de', 'ja', 'es', 'ru'], k, 78) END,
                   CASE WHEN ordering = 1 THEN 'original' WHEN u >= 0.97 THEN 'working'
                        WHEN rnd(k, 79) < 0.7 THEN NULL
                        ELSE pick(['imdbDisplay', 'imdbDisplay', 'alternative', 'dvd', 'festival'], k, 80) END,
                   CASE WHEN ordering > 1 AND rnd(k, 81) < 0.04
                        THEN pick(['literal English title', 'new title', 'alternative spelling'], k, 82) END,
                   CASE WHEN ordering = 1 THEN 1 ELSE 0 END
            FROM k""",
        "title.principals": f"""
            WITH p AS (
                SELECT i, unnest(range(1, 1 + CASE WHEN title_type = 'tvEpisode' THEN 1 + (h(i, 90) % 15)::INTEGER
                                                  ELSE 2 + (h(i, 90) % 13)::INTEGER END)) AS ordering
                FROM titles),
            c AS (SELECT i, ordering, CASE WHEN ordering <= 4 THEN {_list(CATEGORIES)}[ordering]
                                           ELSE pick({_list(CATEGORIES)}, i * 100 + ordering, 91) END AS category
                  FROM p)
            SELECT tconst(i), ordering,
                   nconst(1 + floor(getvariable('n_names') * power(rnd(i * 100 + ordering, 92), 1.6))::BIGINT),
                   category,
                   CASE category WHEN 'writer' THEN CASE WHEN rnd(i * 100 + ordering, 93) < 0.5
                                     THEN pick(['screenplay', 'novel', 'story', 'written by'],
                                               i * 100 + ordering, 94) END
                                 WHEN 'producer' THEN pick(['producer', 'executive producer'], i * 100 + ordering, 94)
                                 END,
                   CASE WHEN category IN ('actor', 'actress', 'self') AND rnd(i * 100 + ordering, 95) < 0.85
                        THEN '["' || CASE WHEN category = 'self' THEN 'Self' ELSE word(i * 100 + ordering, 96) END
                             || '"]' END
            FROM c""",
        "title.crew": """
            SELECT tconst(i),
                   CASE WHEN rnd(i, 100) < CASE WHEN title_type = 'tvEpisode' THEN 0.4 ELSE 0.06 END THEN NULL
                        ELSE array_to_string(list_transform(range(1 + CASE WHEN rnd(i, 101) < 0.06 THEN 1 ELSE 0 END),
                             lambda j: nconst(1 + floor(getvariable('n_names')
                                                        * power(rnd(i * 4 + j, 102), 1.6))::BIGINT)), ',')
                        END,
                   CASE WHEN rnd(i, 103) < 0.3 THEN NULL
                        ELSE array_to_string(list_transform(range(1 + (h(i, 104) % 3)::INTEGER),
                             lambda j: nconst(1 + floor(getvariable('n_names')
                                                        * power(rnd(i * 4 + j, 105), 1.6))::BIGINT)), ',')
                        END
            FROM titles""",
        "name.basics": f"""
            SELECT nconst(i), word(i, 110) || ' ' || word(i, 111),
                   CASE WHEN rnd(i, 112) < 0.25 THEN 1880 + (h(i, 113) % 130)::INTEGER END,
                   CASE WHEN rnd(i, 112) < 0.08
                        THEN 1880 + (h(i, 113) % 130)::INTEGER + 20 + (h(i, 114) % 70)::INTEGER END,
                   CASE WHEN rnd(i, 115) < 0.1 THEN NULL ELSE array_to_string(list_distinct(list_transform(
                       range(1 + (h(i, 116) % 3)::INTEGER),
                       lambda j: pick({_list(PROFESSIONS)}, i * 4 + j, 117))), ',') END,
                   CASE WHEN rnd(i, 118) < 0.15 THEN NULL ELSE array_to_string(list_transform(
                       range(1 + (h(i, 119) % 4)::INTEGER),
                       lambda j: tconst(1 + floor(getvariable('n_titles')
                                                  * power(rnd(i * 4 + j, 120), 1.3))::BIGINT)), ',') END
            FROM range(1, getvariable('n_names') + 1) r(i)""",
        "title.ratings": """
            SELECT tconst(i), round(1.5 + 8 * (rnd(i, 130) + rnd(i, 131) + rnd(i, 132)) / 3, 1), votes
            FROM titles WHERE votes > 0""",
    }


def movielens_queries(variant: str) -> dict[str, str]:
    """One SELECT per MovieLens CSV (ratings sorted by user then movie, as GroupLens ships them)."""
    lo, hi = TIME_SPAN[variant]
    return {
        # ML title from the IMDb title: foreign films as "Original (English)", a.k.a. forms, a few
        # typos, years one off, a rare missing year; inverted articles throughout.
        "movies.csv": f"""
            WITH m AS (SELECT ml.ml_rank, ml.i, x.primary_title, x.foreign_title, x.year
                       FROM ml JOIN titles x ON x.i = ml.i),
            named AS (
                SELECT ml_rank, i, year,
                       CASE WHEN foreign_title IS NOT NULL AND rnd(i, 140) < 0.6
                            THEN ml_form(foreign_title) || ' (' || ml_form(primary_title) || ')'
                            WHEN rnd(i, 140) < 0.04
                            THEN ml_form(primary_title) || ' (a.k.a. ' || phrase(i, 141, 2) || ')'
                            ELSE ml_form(primary_title) END AS name
                FROM m)
            SELECT 3 * ml_rank - (h(i, 142) % 3)::INTEGER AS movieId,
                   CASE WHEN rnd(i, 143) < 0.02 AND length(name) > 12
                        THEN left(name, 6 + (h(i, 144) % 4)::INTEGER) || substr(name, 8 + (h(i, 144) % 4)::INTEGER)
                        ELSE name END
                   || CASE WHEN rnd(i, 145) < 0.001 THEN ''
                           ELSE ' (' || (year + CASE WHEN rnd(i, 146) < 0.02
                                                     THEN CASE WHEN rnd(i, 147) < 0.5 THEN -1 ELSE 1 END
                                                     ELSE 0 END) || ')' END AS title,
                   CASE WHEN rnd(i, 148) < 0.01 THEN '(no genres listed)' ELSE array_to_string(list_sort(list_distinct(
                       [pick({_list(ML_GENRES)}, i, 149), pick({_list(ML_GENRES)}, i, 150),
                        pick({_list(ML_GENRES)}, i, 151)][1:1 + (h(i, 152) % 3)::INTEGER])), '|') END AS genres
            FROM named ORDER BY movieId""",
        "ratings.csv": f"""
            WITH u AS (
                SELECT u, 20 + least(getvariable('n_movies') // 2,
                                     floor(57 * getvariable('oversample')
                                           * (power(1 - rnd(u, 160), -0.7) - 1)))::BIGINT AS n
                FROM range(1, getvariable('n_users') + 1) r(u)),
            drawn AS (
                SELECT DISTINCT u, 1 + floor(getvariable('n_movies')
                                             * power(rnd(u * 100000 + k, 161), 2.2))::BIGINT AS pop_rank
                FROM (SELECT u, unnest(range(n)) AS k FROM u))
            SELECT d.u AS userId, 3 * ml.ml_rank - (h(ml.i, 142) % 3)::INTEGER AS movieId,
                   [0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.0, 3.5, 3.5, 3.5, 4.0, 4.0, 4.0, 4.0, 4.5, 4.5, 5.0, 5.0]
                       [1 + (h(d.u * 100000 + ml.ml_rank, 162) % 18)::INTEGER] AS rating,
                   {lo} + (h(d.u, 163) % {hi - lo})::BIGINT // 2
                       + (h(d.u * 100000 + ml.ml_rank, 164) % {(hi - lo) // 2})::BIGINT AS timestamp
            FROM drawn d JOIN ml ON ml.pop_rank = d.pop_rank ORDER BY userId, movieId""",
        "tags.csv": f"""
            SELECT 1 + floor(getvariable('n_users') * power(rnd(k, 170), 2))::BIGINT AS userId,
                   3 * ml.ml_rank - (h(ml.i, 142) % 3)::INTEGER AS movieId,
                   CASE WHEN rnd(k, 172) < 0.01 THEN lower(word(k, 173)) || ', ' || lower(word(k, 174))
                        ELSE lower(phrase(k, 175, 1 + (h(k, 176) % 2)::INTEGER)) END AS tag,
                   {lo} + (h(k, 177) % {hi - lo})::BIGINT AS timestamp
            FROM range(getvariable('n_tags')) r(k)
            JOIN ml ON ml.pop_rank = 1 + floor(getvariable('n_movies') * power(rnd(k, 171), 2.5))::BIGINT
            ORDER BY userId, movieId, timestamp, tag""",
        "links.csv": """
            SELECT 3 * ml_rank - (h(i, 142) % 3)::INTEGER AS movieId, printf('%07d', i) AS imdbId,
                   CASE WHEN rnd(i, 180) < 0.002 THEN NULL ELSE CAST(1 + h(i, 181) % 900000 AS VARCHAR) END AS tmdbId
            FROM ml ORDER BY movieId""",
    }


def generate(
    out: Path, scale: float, variant: str, seed: int = 0, *, memory_limit: str = "3GB", threads: int | None = None
) -> dict[str, float]:
    """Write the synthetic mirror into ``out`` (replaced whole); returns seconds per file."""
    if variant not in VARIANTS:
        raise SystemExit(f"--variant {variant!r}: expected one of {', '.join(VARIANTS)}")
    if not 0 < scale <= 2:
        raise SystemExit(f"--scale {scale}: expected 0 < scale <= 2")
    sizes = Sizes.at(scale, variant)
    _, users, ratings, _ = VARIANTS[variant]
    tmp = out.with_name(f".{out.name}.generating")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "imdb").mkdir(parents=True)
    ml_dir = tmp / "work" / variant
    ml_dir.mkdir(parents=True)
    (tmp / "movielens").mkdir()
    con = duckdb.connect(str(tmp / "work" / "gen.duckdb"))
    timings: dict[str, float] = {}
    gzips: list[subprocess.Popen[bytes]] = []
    try:
        con.execute("SET memory_limit = ?", [memory_limit])
        con.execute("SET temp_directory = ?", [str(tmp / "work" / "spill")])
        con.execute("SET enable_progress_bar = false")
        if threads is not None:
            con.execute("SET threads = ?", [threads])
        _macros(con, seed)
        con.execute("SET VARIABLE n_users = ?", [sizes.users])
        con.execute("SET VARIABLE n_tags = ?", [sizes.tags])
        # Drawn pairs collide on popular movies; draw a little more so ~the target survives.
        con.execute("SET VARIABLE oversample = ?", [sizes.ratings / sizes.users / (ratings / users)])
        start = time.perf_counter()
        build_tables(con, sizes)
        timings["tables"] = time.perf_counter() - start
        for name, sql in imdb_queries().items():
            start = time.perf_counter()
            plain = tmp / "imdb" / f"{name}.tsv"
            con.sql(f"SELECT * FROM ({sql}) q({IMDB_HEADERS[name]})").write_csv(
                str(plain), sep="\t", header=True, quotechar="", na_rep="\\N"
            )
            # gzip -1 is ~3x faster than DuckDB's own gzip writer and runs beside the next query.
            gzips.append(subprocess.Popen(["gzip", "-1", "-n", "-f", str(plain)]))
            timings[name] = time.perf_counter() - start
            log.info("%s: %.1f s", name, timings[name])
        for name, sql in movielens_queries(variant).items():
            start = time.perf_counter()
            con.sql(sql).write_csv(str(ml_dir / name), sep=",", header=True, quotechar='"', na_rep="")
            timings[name] = time.perf_counter() - start
            log.info("%s: %.1f s", name, timings[name])
    finally:
        con.close()
        for proc in gzips:
            if proc.wait() != 0:
                raise SystemExit(f"gzip failed with status {proc.returncode}: {proc.args!r}")
    start = time.perf_counter()
    zip_path = tmp / "movielens" / f"{variant}.zip"
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for name in ("movies.csv", "ratings.csv", "tags.csv", "links.csv"):
            # A fixed entry date keeps the archive (and its md5) the same for a seed.
            entry = zipfile.ZipInfo(f"{variant}/{name}", date_time=(2019, 11, 21, 0, 0, 0))
            entry.compress_type = zipfile.ZIP_DEFLATED
            with (ml_dir / name).open("rb") as src, zf.open(entry, "w") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
    digest = hashlib.md5()
    with zip_path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    (tmp / "movielens" / f"{variant}.zip.md5").write_text(f"{digest.hexdigest()}  {variant}.zip\n")
    timings["zip"] = time.perf_counter() - start
    shutil.rmtree(tmp / "work")
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return timings


FILM_TYPES = ("movie", "tvMovie", "video")
# Title spelling as the statistics compare it: case, accents and punctuation folded.
_NORM = "trim(regexp_replace(lower(strip_accents({})), '[^a-z0-9]+', ' ', 'g'))"


def homonym_rates(con: duckdb.DuckDBPyConnection, imdb: Path) -> dict[str, float]:
    """How crowded a mirror's film titles are, for comparing the generator with the real dumps:
    the share of dated films (movie, tvMovie, video) sharing their folded title with another film
    of the same year and of any year, and (when title.akas exists) the share whose akas spell the
    title of another film of the same year, the crowding fuzzy matching through akas meets."""

    def read(name: str, columns: str) -> str:
        return (
            f"SELECT {columns} FROM read_csv('{imdb / f'{name}.tsv.gz'}', delim='\t', quote='', "
            "nullstr='\\N', header=true, all_varchar=true)"
        )

    con.execute(
        f"CREATE OR REPLACE TEMP TABLE rate_films AS SELECT tconst, {_NORM.format('primaryTitle')} AS norm, "
        f"TRY_CAST(startYear AS INTEGER) AS year FROM ({read('title.basics', '*')}) "
        f"WHERE titleType IN {FILM_TYPES} AND TRY_CAST(startYear AS INTEGER) IS NOT NULL"
    )
    films, same_year, any_year = con.sql("""
        SELECT count(*), avg((same > 1)::INTEGER), avg((anyy > 1)::INTEGER) FROM (
            SELECT count(*) OVER (PARTITION BY norm, year) AS same, count(*) OVER (PARTITION BY norm) AS anyy
            FROM rate_films)""").fetchall()[0]
    rates = {"films": float(films), "same_year": float(same_year or 0), "any_year": float(any_year or 0)}
    if (imdb / "title.akas.tsv.gz").is_file():
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE rate_akas AS
            SELECT DISTINCT f.tconst, f.year, f.norm AS own, {_NORM.format("a.title")} AS norm
            FROM ({read("title.akas", "titleId, title")}) a JOIN rate_films f ON f.tconst = a.titleId""")
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE rate_words AS
            SELECT DISTINCT unnest(string_split({_NORM.format("primaryTitle")}, ' ')) AS word
            FROM ({read("title.basics", "primaryTitle")})""")
        aka_same_year, unrelated = con.sql("""
            WITH other AS (SELECT * FROM rate_akas WHERE norm <> own AND norm <> ''),
            words AS (SELECT tconst, norm, own, unnest(string_split(norm, ' ')) AS word FROM other),
            unrelated AS (
                SELECT tconst, norm FROM words w LEFT JOIN rate_words v USING (word)
                GROUP BY tconst, norm, own
                HAVING bool_and(v.word IS NOT NULL) AND NOT bool_or(list_contains(string_split(own, ' '), w.word)))
            SELECT (SELECT count(DISTINCT a.tconst) FROM other a JOIN rate_films o
                      ON o.norm = a.norm AND o.year = a.year AND o.tconst <> a.tconst)
                   / greatest(1, (SELECT count(*) FROM rate_films)),
                   (SELECT count(*) FROM unrelated) / greatest(1, (SELECT count(*) FROM rate_akas))""").fetchall()[0]
        rates["aka_same_year"] = float(aka_same_year)
        rates["aka_unrelated"] = float(unrelated)
    return rates


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="mirror folder to write (replaced)")
    parser.add_argument("--scale", type=float, default=0.01, help="fraction of the full sizes (default 0.01)")
    parser.add_argument("--variant", choices=sorted(VARIANTS), default="ml-25m")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--memory-limit", default="3GB", help="DuckDB memory_limit while generating")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    start = time.perf_counter()
    timings = generate(args.out, args.scale, args.variant, args.seed, memory_limit=args.memory_limit)
    sizes = {p.relative_to(args.out): p.stat().st_size for p in sorted(args.out.rglob("*")) if p.is_file()}
    for path, size in sizes.items():
        print(f"{path}  {size:,} bytes")
    print(
        f"generated scale {args.scale} {args.variant} seed {args.seed} in {time.perf_counter() - start:.1f} s "
        f"({', '.join(f'{k} {v:.1f}s' for k, v in timings.items())})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
