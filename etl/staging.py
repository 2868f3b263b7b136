"""Stage MovieLens and IMDb files into DuckDB ``stg_*`` tables with DuckDB's own CSV reader.

Every function here except :func:`stage` is pure: it returns ``Step``s (``(sql, output_table)``
plus bound values) that :func:`etl.warehouse.run_steps` executes in one transaction, so a rerun
replaces the whole stage atomically. Rows the reader cannot parse (field count, numbers) come from
DuckDB's ``store_rejects`` tables; rows that parse but fail a check (range, unknown id, missing
value) are kept aside by the same CASE that filters them. Both land in ``rejects``.
"""

from __future__ import annotations

import gzip
import logging
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb

from cinegraph import schema
from cinegraph.errors import CinegraphError
from cinegraph.etl.sources import IMDB_FILES
from cinegraph.etl.warehouse import Step, count, drop_tables, run_steps

log = logging.getLogger(__name__)

# Title types staged and matched. MovieLens lists some TV series and mini-series (Band of Brothers,
# Planet Earth); they rank below films (MatchConfig.other_type_penalty). Episodes, three quarters
# of title.basics, stay out.
FILM_TITLE_TYPES = ("movie", "tvMovie", "video", "short", "tvShort", "tvSpecial", "tvMiniSeries", "tvSeries")
# A trailing "(1995)" or "(2006-2007)" / "(2006– )" in a MovieLens title.
YEAR_RE = r"\s*\((\d{4})(?:\s*[-–]\s*(?:\d{4})?\s*)?\)\s*$"
# ml-100k u.item genre flag columns, in file order (u.genre); "unknown" is not a genre.
ML100K_GENRES = (
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
)
# ml-1m users.dat occupation codes 0..20 (README of ml-1m).
ML1M_OCCUPATIONS = (
    "other",
    "academic/educator",
    "artist",
    "clerical/admin",
    "college/grad student",
    "customer service",
    "doctor/health care",
    "executive/managerial",
    "farmer",
    "homemaker",
    "K-12 student",
    "lawyer",
    "programmer",
    "retired",
    "sales/marketing",
    "scientist",
    "self-employed",
    "technician/engineer",
    "tradesman/craftsman",
    "unemployed",
    "writer",
)

REJECTS = "rejects"
ML_TABLES = ("stg_ml_movies", "stg_ml_ratings", "stg_ml_tags", "stg_ml_links", "stg_ml_users")
IMDB_REQUIRED = tuple(name for name, required in IMDB_FILES.items() if required)


@dataclass(frozen=True)
class RawFile:
    """How one source file is read: columns in file order with DuckDB types, dialect, header."""

    name: str  # file name inside its folder, also the ``rejects.file`` label
    table: str  # raw_* table (or the stg_* table an IMDb file streams into)
    columns: tuple[tuple[str, str], ...]
    delim: str
    quote: str = ""
    header: tuple[str, ...] | None = None  # expected header; None: the file has none
    encoding: str = "utf-8"
    nullstr: str = ""

    @property
    def rejects_table(self) -> str:
        return f"{self.table}_rejects"


@dataclass(frozen=True)
class StageReport:
    """What staging produced: the MovieLens format, staged rows and rejected rows per file."""

    ml_format: str  # "csv" | "ml-1m" | "ml-100k"
    rows: dict[str, int]
    rejects: dict[str, int]

    def reject_fraction(self, name: str) -> float:
        total = self.rows.get(name, 0) + self.rejects.get(name, 0)
        return self.rejects.get(name, 0) / total if total else 0.0


def _csv(name: str, table: str, header: tuple[str, ...], columns: Sequence[tuple[str, str]]) -> RawFile:
    return RawFile(name, table, tuple(columns), delim=",", quote='"', header=header)


ML_CSV = {
    "movies": _csv(
        "movies.csv",
        "raw_ml_movies",
        ("movieId", "title", "genres"),
        [("movie_id", "BIGINT"), ("title", "VARCHAR"), ("genres", "VARCHAR")],
    ),
    "ratings": _csv(
        "ratings.csv",
        "raw_ml_ratings",
        ("userId", "movieId", "rating", "timestamp"),
        [("user_id", "BIGINT"), ("movie_id", "BIGINT"), ("rating", "DOUBLE"), ("timestamp", "BIGINT")],
    ),
    "tags": _csv(
        "tags.csv",
        "raw_ml_tags",
        ("userId", "movieId", "tag", "timestamp"),
        [("user_id", "BIGINT"), ("movie_id", "BIGINT"), ("tag", "VARCHAR"), ("timestamp", "BIGINT")],
    ),
    "links": _csv(
        "links.csv",
        "raw_ml_links",
        ("movieId", "imdbId", "tmdbId"),
        [("movie_id", "BIGINT"), ("imdb_id", "VARCHAR"), ("tmdb_id", "VARCHAR")],
    ),
}
_RATING_COLUMNS = (("user_id", "BIGINT"), ("movie_id", "BIGINT"), ("rating", "DOUBLE"), ("timestamp", "BIGINT"))
ML_1M = {
    "movies": RawFile(
        "movies.dat",
        "raw_ml_movies",
        (("movie_id", "BIGINT"), ("title", "VARCHAR"), ("genres", "VARCHAR")),
        delim="::",
        encoding="latin-1",
    ),
    "ratings": RawFile("ratings.dat", "raw_ml_ratings", _RATING_COLUMNS, delim="::", encoding="latin-1"),
    "users": RawFile(
        "users.dat",
        "raw_ml_users",
        (
            ("user_id", "BIGINT"),
            ("gender", "VARCHAR"),
            ("age", "INTEGER"),
            ("occupation", "INTEGER"),
            ("zip_code", "VARCHAR"),
        ),
        delim="::",
        encoding="latin-1",
    ),
}
ML_100K = {
    "movies": RawFile(
        "u.item",
        "raw_ml_movies",
        (
            ("movie_id", "BIGINT"),
            ("title", "VARCHAR"),
            ("release_date", "VARCHAR"),
            ("video_release_date", "VARCHAR"),
            ("imdb_url", "VARCHAR"),
            *((f"g{i}", "INTEGER") for i in range(len(ML100K_GENRES))),
        ),
        delim="|",
        encoding="latin-1",
    ),
    "ratings": RawFile("u.data", "raw_ml_ratings", _RATING_COLUMNS, delim="\t"),
    "users": RawFile(
        "u.user",
        "raw_ml_users",
        (
            ("user_id", "BIGINT"),
            ("age", "INTEGER"),
            ("gender", "VARCHAR"),
            ("occupation", "VARCHAR"),
            ("zip_code", "VARCHAR"),
        ),
        delim="|",
        encoding="latin-1",
    ),
}


def _imdb(name: str, table: str, columns: Sequence[tuple[str, str]]) -> RawFile:
    header = tuple(c for c, _ in columns)
    return RawFile(f"{name}.tsv.gz", table, tuple(columns), delim="\t", header=header, nullstr="\\N")


IMDB = {
    "title.basics": _imdb(
        "title.basics",
        "stg_imdb_titles",
        [
            ("tconst", "VARCHAR"),
            ("titleType", "VARCHAR"),
            ("primaryTitle", "VARCHAR"),
            ("originalTitle", "VARCHAR"),
            ("isAdult", "INTEGER"),
            ("startYear", "INTEGER"),
            ("endYear", "VARCHAR"),
            ("runtimeMinutes", "INTEGER"),
            ("genres", "VARCHAR"),
        ],
    ),
    "title.akas": _imdb(
        "title.akas",
        "stg_imdb_akas",
        [
            ("titleId", "VARCHAR"),
            ("ordering", "VARCHAR"),
            ("title", "VARCHAR"),
            ("region", "VARCHAR"),
            ("language", "VARCHAR"),
            ("types", "VARCHAR"),
            ("attributes", "VARCHAR"),
            ("isOriginalTitle", "VARCHAR"),
        ],
    ),
    "title.ratings": _imdb(
        "title.ratings",
        "stg_imdb_ratings",
        [("tconst", "VARCHAR"), ("averageRating", "DOUBLE"), ("numVotes", "BIGINT")],
    ),
    "title.principals": _imdb(
        "title.principals",
        "stg_imdb_principals",
        [
            ("tconst", "VARCHAR"),
            ("ordering", "INTEGER"),
            ("nconst", "VARCHAR"),
            ("category", "VARCHAR"),
            ("job", "VARCHAR"),
            ("characters", "VARCHAR"),
        ],
    ),
    "title.crew": _imdb(
        "title.crew", "stg_imdb_crew", [("tconst", "VARCHAR"), ("directors", "VARCHAR"), ("writers", "VARCHAR")]
    ),
    "name.basics": _imdb(
        "name.basics",
        "stg_imdb_names",
        [
            ("nconst", "VARCHAR"),
            ("primaryName", "VARCHAR"),
            ("birthYear", "INTEGER"),
            ("deathYear", "INTEGER"),
            ("primaryProfession", "VARCHAR"),
            ("knownForTitles", "VARCHAR"),
        ],
    ),
}
# Optional IMDb tables that exist empty when their file is absent (akas is dropped instead).
_EMPTY_IMDB = {
    "title.ratings": "SELECT NULL::VARCHAR AS tconst, NULL::DOUBLE AS average_rating, "
    "NULL::BIGINT AS num_votes WHERE false",
    "title.principals": "SELECT NULL::VARCHAR AS tconst, NULL::INTEGER AS ordering, "
    "NULL::VARCHAR AS nconst, NULL::VARCHAR AS category, NULL::VARCHAR[] AS characters WHERE false",
    "title.crew": "SELECT NULL::VARCHAR AS tconst, NULL::VARCHAR AS nconst, NULL::VARCHAR AS role WHERE false",
}


# --- input checks -------------------------------------------------------------------------------


def check_file(path: Path, raw: RawFile, *, need_rows: bool = False) -> None:
    """Fail early, in one line naming the file, on a missing or empty file, a gzip cut short in
    its first block, a header other than the official one, or (``need_rows``) no row after it."""
    if not path.is_file():
        raise CinegraphError(f"{path}: file not found")
    try:
        opener = gzip.open if path.name.endswith(".gz") else open
        with opener(path, "rb") as fh:
            first = fh.readline()
            second = fh.readline() if need_rows else b""
    except (OSError, EOFError, zlib.error) as exc:
        raise CinegraphError(f"{path}: cannot read: {exc}") from exc
    if not first.strip():
        raise CinegraphError(f"{path}: empty file")
    if raw.header is not None:
        found = tuple(first.decode(raw.encoding, "replace").rstrip("\r\n").split(raw.delim))
        if found != raw.header:
            raise CinegraphError(
                f"{path}: wrong header {raw.delim.join(found)!r}, expected {raw.delim.join(raw.header)!r}"
            )
    if need_rows and not second.strip():
        raise CinegraphError(f"{path}: no rows after the header; this file is required")


def count_data_lines(path: Path, raw: RawFile) -> int:
    """Lines after the header, counted on the bytes (blank lines included); refuses a file that
    mixes CRLF and LF line endings, naming the first line that switches."""
    newlines = crlf = 0
    last = b""
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 24):
            newlines += chunk.count(b"\n")
            crlf += chunk.count(b"\r\n") + (last == b"\r" and chunk[:1] == b"\n")
            last = chunk[-1:]
    if 0 < crlf < newlines:
        with path.open("rb") as fh:
            first_crlf = fh.readline().endswith(b"\r\n")
            switch = next(
                n for n, line in enumerate(fh, 2) if line.endswith(b"\r\n") != first_crlf and line.endswith(b"\n")
            )
        names = ("LF", "CRLF")
        raise CinegraphError(
            f"{path}: mixed line endings: line 1 ends with {names[first_crlf]}, line {switch} with "
            f"{names[not first_crlf]} ({crlf:,} CRLF and {newlines - crlf:,} LF lines); convert the "
            "file to one line ending"
        )
    return newlines + (last not in (b"", b"\n")) - (raw.header is not None)


def check_rows_read(con: duckdb.DuckDBPyConnection, raw: RawFile, path: Path, data_lines: int) -> None:
    """Rows read plus lines rejected by the reader must cover every data line. A quote that
    opens and never closes on its line makes the CSV reader take the following lines into one
    value; that fails the stage naming the line (its tables stay as they were) instead of losing
    the rest of the file."""
    rows = count(con, raw.table)
    rejected = con.execute(
        f"SELECT count(DISTINCT line) FROM {raw.rejects_table} "
        f"WHERE scan_id = (SELECT max(scan_id) FROM {raw.rejects_table})"
    ).fetchall()[0][0]
    if rows + rejected == data_lines:
        return
    blank, unbalanced = 0, None
    with path.open("rb") as fh:
        for n, line in enumerate(fh, 1):
            if n == 1 and raw.header is not None:
                continue
            blank += not line.strip(b"\r\n")
            if unbalanced is None and raw.quote and line.count(raw.quote.encode()) % 2:
                unbalanced = (n, line.decode(raw.encoding, "replace").rstrip("\r\n"))
    if rows + rejected == data_lines - blank:  # the reader skips blank lines
        return
    counts = f"{data_lines - blank:,} data lines, {rows:,} rows read, {rejected:,} rejected"
    if unbalanced is not None:
        n, text = unbalanced
        raise CinegraphError(
            f"{path}: line {n}: unbalanced quote in {text[:80]!r}: the CSV reader takes the lines after "
            f"it into one value ({counts}); fix or remove the line"
        )
    raise CinegraphError(f"{path}: {counts}: the reader lost lines")


def ml_format(folder: Path) -> str:
    """Which MovieLens layout a variant folder holds, from the movies file it ships."""
    for fmt, marker in (("csv", "movies.csv"), ("ml-1m", "movies.dat"), ("ml-100k", "u.item")):
        if (folder / marker).is_file():
            return fmt
    raise CinegraphError(f"{folder}: no movies.csv, movies.dat or u.item: not a MovieLens folder")


# --- pure step builders -------------------------------------------------------------------------


def read_sql(raw: RawFile) -> str:
    """``read_csv`` of one file with every dialect option explicit (no sniffing) and bad rows
    kept in ``raw.rejects_table``; binds ``$path``."""
    columns = ", ".join(f"'{name}': '{typ}'" for name, typ in raw.columns)
    return (
        f"read_csv($path, delim={_lit(raw.delim)}, quote={_lit(raw.quote)}, escape={_lit(raw.quote)}, "
        f"header={str(raw.header is not None).lower()}, nullstr={_lit(raw.nullstr)}, "
        f"encoding={_lit(raw.encoding)}, auto_detect=false, columns={{{columns}}}, "
        f"store_rejects=true, rejects_table='{raw.rejects_table}', "
        f"rejects_scan='{raw.rejects_table}_scan')"
    )


def _lit(value: str) -> str:
    """A SQL literal for one of this module's dialect constants (never for data)."""
    return "'" + value.replace("'", "''") + "'"


def read_step(raw: RawFile, path: Path) -> Step:
    return Step(f"SELECT * FROM {read_sql(raw)}", raw.table, {"path": str(path)}, path)


def _checked(raw_table: str, checks: Sequence[tuple[str, str]]) -> str:
    """The raw rows with ``_reason``: the first failed check's reason, or NULL for a good row."""
    whens = " ".join(f"WHEN NOT coalesce({cond}, false) THEN '{reason}'" for reason, cond in checks)
    return f"SELECT r AS _raw, r.*, CASE {whens} END AS _reason FROM {raw_table} r"


@dataclass(frozen=True)
class Checked:
    """A staged table built from a raw table by checks; failures become rejects of ``file``."""

    file: str
    raw_table: str
    output: str
    select: str
    checks: tuple[tuple[str, str], ...]

    def step(self) -> Step:
        return Step(
            f"SELECT {self.select} FROM ({_checked(self.raw_table, self.checks)}) WHERE _reason IS NULL", self.output
        )

    def rejects_sql(self, param: str) -> str:
        return (
            f"SELECT ${param} AS file, NULL::BIGINT AS line, _reason AS reason, "
            f"CAST(_raw AS VARCHAR) AS raw FROM ({_checked(self.raw_table, self.checks)}) "
            "WHERE _reason IS NOT NULL"
        )


def _not_null(*cols: str) -> tuple[str, str]:
    return ("missing value", " AND ".join(f"{c} IS NOT NULL" for c in cols))


_KNOWN_MOVIE = ("unknown movie_id", "movie_id IN (SELECT movie_id FROM stg_ml_movies)")
_KNOWN_USER = ("unknown user_id", "user_id IN (SELECT user_id FROM stg_ml_users)")


def ml_steps(folder: Path, fmt: str) -> tuple[list[Step], list[Checked], list[RawFile], list[str]]:
    """Steps staging one MovieLens variant folder: (read steps + checked steps, the checked
    tables, the files read, the stg tables this format does not ship and that must be dropped)."""
    files = {"csv": ML_CSV, "ml-1m": ML_1M, "ml-100k": ML_100K}[fmt]
    present = {k: f for k, f in files.items() if k not in ("tags", "links") or (folder / f.name).is_file()}
    reads = [read_step(f, folder / f.name) for f in present.values()]
    has_users = "users" in present
    user_check = (_KNOWN_USER,) if has_users else ()
    checked: list[Checked] = []
    if has_users:
        users = present["users"]
        occupation = "$occupations[occupation + 1]" if fmt == "ml-1m" else "occupation"
        checked.append(
            Checked(
                users.name,
                users.table,
                "stg_ml_users",
                f"user_id, gender, age, {occupation} AS occupation, zip_code",
                (
                    _not_null("user_id"),
                    ("duplicate user_id", "row_number() OVER (PARTITION BY user_id ORDER BY zip_code) = 1"),
                ),
            )
        )
    movies = present["movies"]
    genres = (
        "list_where($genres100k, [" + ", ".join(f"g{i} = 1" for i in range(1, len(ML100K_GENRES))) + "])"
        if fmt == "ml-100k"
        else "string_split(genres, '|')"
    )
    checked.append(
        Checked(
            movies.name,
            movies.table,
            "stg_ml_movies",
            "movie_id, title, trim(regexp_replace(trim(title), $year_re, '')) AS name, "
            "TRY_CAST(regexp_extract(trim(title), $year_re, 1) AS INTEGER) AS year, "
            f"list_filter({genres}, lambda g: g <> '' AND g <> $no_genre) AS genres",
            (
                _not_null("movie_id", "title"),
                ("duplicate movie_id", "row_number() OVER (PARTITION BY movie_id ORDER BY title) = 1"),
            ),
        )
    )
    ratings = present["ratings"]
    checked.append(
        Checked(
            ratings.name,
            ratings.table,
            "stg_ml_ratings",
            "user_id, movie_id, CAST(rating AS FLOAT) AS rating, timestamp",
            (
                _not_null("user_id", "movie_id", "rating", "timestamp"),
                ("rating out of range", "rating BETWEEN 0.5 AND 5"),
                _KNOWN_MOVIE,
                *user_check,
                (
                    "duplicate rating, a later one kept",
                    "row_number() OVER (PARTITION BY user_id, movie_id ORDER BY timestamp DESC, rating DESC) = 1",
                ),
            ),
        )
    )
    if "tags" in present:
        tags = present["tags"]
        checked.append(
            Checked(
                tags.name,
                tags.table,
                "stg_ml_tags",
                "user_id, movie_id, tag, timestamp",
                (_not_null("user_id", "movie_id", "tag", "timestamp"), _KNOWN_MOVIE, *user_check),
            )
        )
    if "links" in present:
        links = present["links"]
        checked.append(
            Checked(
                links.name,
                links.table,
                "stg_ml_links",
                # At least 7 digits, as IMDb writes them; lpad would cut 8-digit ids (tt10000000 on).
                "movie_id, printf('tt%07d', CAST(imdb_id AS BIGINT)) AS tconst",
                (
                    _not_null("movie_id", "imdb_id"),
                    ("bad imdbId", "regexp_full_match(trim(imdb_id), '[0-9]{1,9}')"),
                    _KNOWN_MOVIE,
                ),
            )
        )
    params = {
        "year_re": YEAR_RE,
        "no_genre": schema.NO_GENRES,
        "genres100k": list(ML100K_GENRES[1:]),
        "occupations": list(ML1M_OCCUPATIONS),
    }
    steps = reads + [_bind(c.step(), params) for c in checked]
    if "tags" not in present:
        steps.append(
            Step(
                "SELECT NULL::BIGINT AS user_id, NULL::BIGINT AS movie_id, "
                "NULL::VARCHAR AS tag, NULL::BIGINT AS timestamp WHERE false",
                "stg_ml_tags",
            )
        )
    absent = [t for t in ML_TABLES if t not in {c.output for c in checked} | {"stg_ml_tags"}]
    return steps, checked, list(present.values()), absent


def _bind(step: Step, params: Mapping[str, object]) -> Step:
    """Keep only the values a step's SQL names (DuckDB rejects unused named parameters)."""
    used = {k: v for k, v in params.items() if f"${k}" in step.sql}
    return step._replace(params={**step.params, **used})


def _unique(key: str) -> tuple[str, str]:
    """The check that keeps one row per ``key`` (the least by value, so reruns keep the same one)."""
    return (f"duplicate {key}, one kept", f"row_number() OVER (PARTITION BY {key} ORDER BY r) = 1")


def imdb_steps(
    files: Mapping[str, Path | None], title_types: Sequence[str], *, with_links: bool
) -> tuple[list[Step], list[RawFile], list[Checked], list[str]]:
    """Steps staging IMDb: titles are filtered to film-like types while reading, every other
    file is semi-joined to those titles (and to MovieLens links) while reading, so full dumps
    never sit whole in memory. A file keyed by one id (titles, ratings, people) is read into a
    ``<table>_read`` table first and checked for repeated ids, each repeat a reject. Returns
    (steps, files read, checks, tables to drop)."""
    for name in IMDB_REQUIRED:
        if files.get(name) is None:
            raise CinegraphError(f"{name}.tsv.gz: required IMDb file is missing")
    wanted = "(SELECT tconst FROM stg_imdb_titles" + (" UNION SELECT tconst FROM stg_ml_links)" if with_links else ")")
    steps: list[Step] = []
    read: list[RawFile] = []
    checked: list[Checked] = []
    drop: list[str] = []

    def add(name: str, sql: str, params: Mapping[str, object] | None = None, key: str | None = None) -> None:
        path = files.get(name)
        raw = IMDB[name]
        if path is None:
            if name in _EMPTY_IMDB:
                steps.append(Step(_EMPTY_IMDB[name], raw.table))
            else:
                drop.append(raw.table)
            log.info("IMDb %s absent: building without it", name)
            return
        output = f"{raw.table}_read" if key else raw.table
        steps.append(
            Step(sql.format(src=read_sql(raw), wanted=wanted), output, {"path": str(path), **(params or {})}, path)
        )
        read.append(raw)
        if key:
            check = Checked(raw.name, output, raw.table, "* EXCLUDE (_raw, _reason)", (_unique(key),))
            steps.append(check.step())
            checked.append(check)

    add(
        "title.basics",
        "SELECT tconst, titleType AS title_type, primaryTitle AS primary_title, "
        "originalTitle AS original_title, isAdult <> 0 AS is_adult, startYear AS start_year, "
        "runtimeMinutes AS runtime_minutes, string_split(genres, ',') AS genres "
        "FROM {src} WHERE list_contains($types, titleType)",
        {"types": list(title_types)},
        key="tconst",
    )
    add("title.akas", "SELECT titleId AS tconst, title, region, language FROM {src} WHERE titleId IN {wanted}")
    add(
        "title.ratings",
        "SELECT tconst, averageRating AS average_rating, numVotes AS num_votes FROM {src} WHERE tconst IN {wanted}",
        key="tconst",
    )
    add(
        "title.principals",
        "SELECT tconst, ordering, nconst, category, CASE WHEN json_valid(characters) AND "
        "json_type(characters) = 'ARRAY' THEN from_json(characters, '[\"VARCHAR\"]') END AS characters "
        "FROM {src} WHERE tconst IN {wanted}",
    )
    crew = " UNION ALL ".join(
        f"SELECT tconst, unnest(string_split({role}, ',')) AS nconst, '{role}' AS role FROM c WHERE {role} IS NOT NULL"
        for role in schema.CREW_EDGES
    )
    add("title.crew", f"WITH c AS (SELECT * FROM {{src}} WHERE tconst IN {{wanted}}) {crew}")
    # n is read twice (known-for pairs, then the people kept) rather than held whole: a
    # materialised 14.5M-row CTE of the full dump does not fit the memory budget.
    people = ["SELECT nconst FROM kf"]
    if files.get("title.principals") is not None:
        people.append("SELECT nconst FROM stg_imdb_principals")
    if files.get("title.crew") is not None:
        people.append("SELECT nconst FROM stg_imdb_crew")
    add(
        "name.basics",
        "WITH n AS NOT MATERIALIZED (SELECT nconst, primaryName AS primary_name, birthYear AS birth_year, "
        "deathYear AS death_year, string_split(primaryProfession, ',') AS professions, "
        "string_split(knownForTitles, ',') AS known_for FROM {src}), "
        "kf AS (SELECT nconst FROM (SELECT nconst, unnest(known_for) AS tconst FROM n) "
        "WHERE tconst IN {wanted}) "
        f"SELECT * FROM n WHERE nconst IN ({' UNION '.join(people)})",
        key="nconst",
    )
    return steps, read, checked, drop


def rejects_step(read: Sequence[RawFile], checked: Sequence[Checked]) -> Step:
    """The ``rejects`` table: reader rejects (one row per bad line, exact line number) and check
    rejects (line NULL: the reader does not number good rows; ``raw`` holds the parsed values)."""
    parts: list[str] = []
    params: dict[str, object] = {}
    for i, raw in enumerate(read):
        params[f"r{i}"] = raw.name
        parts.append(
            f"SELECT $r{i} AS file, CAST(line AS BIGINT) AS line, "
            "string_agg(DISTINCT lower(CAST(error_type AS VARCHAR)) || coalesce(' ' || column_name, ''), "
            "'; ') AS reason, any_value(trim(csv_line, chr(13) || chr(10))) AS raw "
            f"FROM {raw.rejects_table} WHERE scan_id = (SELECT max(scan_id) FROM {raw.rejects_table}) "
            "GROUP BY line"
        )
    for i, chk in enumerate(checked):
        params[f"c{i}"] = chk.file
        parts.append(chk.rejects_sql(f"c{i}"))
    parts.append("SELECT NULL::VARCHAR, NULL::BIGINT, NULL::VARCHAR, NULL::VARCHAR WHERE false")
    return Step(
        f"SELECT * FROM ({' UNION ALL '.join(parts)}) ORDER BY file, line NULLS LAST, raw",
        REJECTS,
        params,
    )


# --- runner -------------------------------------------------------------------------------------


def stage(
    con: duckdb.DuckDBPyConnection,
    ml_folder: Path,
    imdb_files: Mapping[str, Path | None],
    *,
    title_types: Sequence[str] = FILM_TITLE_TYPES,
    max_reject_fraction: float = 0.01,
) -> StageReport:
    """Stage one MovieLens variant folder and the IMDb files (name -> path, None when absent),
    replacing every staged table in one transaction; then fail if any file's rejects exceed
    ``max_reject_fraction`` (the tables stay, so ``rejects`` can be inspected)."""
    fmt = ml_format(ml_folder)
    ml, checked, ml_read, ml_absent = ml_steps(ml_folder, fmt)
    data_lines = {}
    for raw in ml_read:
        check_file(ml_folder / raw.name, raw)
        data_lines[raw.name] = count_data_lines(ml_folder / raw.name, raw)
    for name, path in imdb_files.items():
        if path is not None:
            check_file(path, IMDB[name], need_rows=name in IMDB_REQUIRED)
    imdb, imdb_read, imdb_checked, imdb_drop = imdb_steps(
        imdb_files, title_types, with_links=any(c.output == "stg_ml_links" for c in checked)
    )
    checked += imdb_checked
    # The raw_* and *_read tables are intermediate; checks read them, then they go.
    raw_tables = [r.table for r in ml_read] + [c.raw_table for c in imdb_checked]
    # The reader appends to its rejects tables and leaves them as they were after a clean read.
    drop_tables(con, [t for r in (*ml_read, *imdb_read) for t in (r.rejects_table, f"{r.rejects_table}_scan")])

    def every_line_read() -> None:
        for raw in ml_read:
            check_rows_read(con, raw, ml_folder / raw.name, data_lines[raw.name])

    run_steps(
        con,
        [*ml, *imdb, rejects_step([*ml_read, *imdb_read], checked)],
        drop=[*ml_absent, *imdb_drop],
        verify=every_line_read,
    )
    drop_tables(con, raw_tables)

    rows = {c.file: count(con, c.output) for c in checked}
    rows.update({r.name: count(con, r.table) for r in imdb_read})
    rejects = dict.fromkeys(rows, 0)
    rejects.update(con.execute(f"SELECT file, count(*) FROM {REJECTS} GROUP BY file").fetchall())
    report = StageReport(fmt, rows, rejects)
    for name, n in sorted(rejects.items()):
        if n:
            log.warning(
                "%s: %d rejected rows (%.3f%%), see table %s", name, n, 100 * report.reject_fraction(name), REJECTS
            )
    too_many = [
        f"{name} {report.reject_fraction(name):.2%}"
        for name in sorted(rejects)
        if report.reject_fraction(name) > max_reject_fraction
    ]
    if too_many:
        raise CinegraphError(
            f"rejected rows above max_reject_fraction={max_reject_fraction:g}: {', '.join(too_many)} "
            f"(see table {REJECTS})"
        )
    return report
