"""Staging on tiny files written in the official formats, hostile ones included."""

from __future__ import annotations

import gzip
import shutil
import zipfile
from pathlib import Path

import duckdb
import pytest

from cinegraph.errors import CinegraphError
from cinegraph.etl import staging, warehouse
from cinegraph.etl.sources import IMDB_FILES

IMDB_ROWS = {
    "title.basics": [
        "tconst\ttitleType\tprimaryTitle\toriginalTitle\tisAdult\tstartYear\tendYear\truntimeMinutes\tgenres",
        'tt0000001\tmovie\tThe "Great" Escape\tThe "Great" Escape\t0\t1963\t\\N\t172\tAdventure,War',
        'tt0000002\tshort\t"Quoted\tStart\t0\t\\N\t\\N\t\\N\t\\N',
        "tt0000003\tvideoGame\tA Game\tA Game\t0\t1990\t\\N\t30\tAction",
        "tt0000004\tmovie\tBad Runtime\tBad Runtime\t0\t2001\t\\N\tninety\tDrama",
        "tt0000005\ttvEpisode\tAn Episode\tAn Episode\t0\t1991\t\\N\t30\tDrama",
        "tt0000006\ttvSeries\tA Series\tA Series\t0\t1990\t1995\t30\tDrama",
    ],
    "title.ratings": [
        "tconst\taverageRating\tnumVotes",
        "tt0000001\t8.2\t250000",
        "tt0000003\t7.0\t100",
        "tt0114709\t8.3\t1000000",
    ],
    "title.principals": [
        "tconst\tordering\tnconst\tcategory\tjob\tcharacters",
        'tt0000001\t1\tnm0000001\tactor\t\\N\t["Hilts \\"The Cooler King\\""]',
        "tt0000001\t2\tnm0000002\tdirector\t\\N\t\\N",
        'tt0000003\t1\tnm0000003\tactor\t\\N\t["Someone"]',
    ],
    "title.crew": [
        "tconst\tdirectors\twriters",
        "tt0000001\tnm0000002\tnm0000004,nm0000005",
        "tt0000002\t\\N\t\\N",
        "tt0000003\tnm0000003\t\\N",
    ],
    "name.basics": [
        "nconst\tprimaryName\tbirthYear\tdeathYear\tprimaryProfession\tknownForTitles",
        "nm0000001\tSteve McQueen\t1930\t1980\tactor,producer\ttt0000001",
        "nm0000002\tJohn Sturges\t1910\t1992\tdirector\t\\N",
        "nm0000003\tGame Person\t\\N\t\\N\t\\N\ttt0000003",
        "nm0000004\tWriter One\t\\N\t\\N\twriter\t\\N",
        'nm0000005\tWriter "Two"\t\\N\t\\N\t\\N\t\\N',
        "nm0000006\tLinked Only\t\\N\t\\N\tactor\ttt0114709",
    ],
}


def write_imdb(folder: Path, rows: dict[str, list[str]] = IMDB_ROWS) -> dict[str, Path | None]:
    folder.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path | None] = dict.fromkeys(IMDB_FILES)
    for name, lines in rows.items():
        path = folder / f"{name}.tsv.gz"
        path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
        files[name] = path
    return files


def write_ml_csv(folder: Path, *, crlf: bool = True, extra_ratings: list[str] = ()) -> Path:
    """ml-latest style CSVs; movies.csv with CRLF line ends, quoted titles and a bad row."""
    folder.mkdir(parents=True, exist_ok=True)
    eol = "\r\n" if crlf else "\n"
    movies = [
        "movieId,title,genres",
        '1,"Great Escape, The (1963)",Adventure|War',
        "2,Toy Story (1995),Animation|Children's|Comedy",
        "3,Babylon 5,(no genres listed)",
        "4,Sunset Blvd. (a.k.a. Sunset Boulevard) (1950),Drama|Film-Noir",
        'x5,"Bad id (2000)",Drama',
    ]
    (folder / "movies.csv").write_bytes((eol.join(movies) + eol).encode())
    ratings = [
        "userId,movieId,rating,timestamp",
        "1,1,4.5,964982703",
        "1,2,3.0,964982704",
        "2,1,5.0,964982705",
        "2,4,0.5,964982706",
        *extra_ratings,
    ]
    (folder / "ratings.csv").write_text("\n".join(ratings) + "\n")
    tags = [
        "userId,movieId,tag,timestamp",
        '1,1,"motorcycle, jump",1445714994',
        '2,2,"said ""to infinity""",1445714995',
        "3,99,orphan,1445714996",
    ]
    (folder / "tags.csv").write_text("\n".join(tags) + "\n")
    # imdbId without zeros (114709) and with 8 digits, as IMDb ids have from tt10000000 on.
    links = ["movieId,imdbId,tmdbId", "1,0000001,5925", "2,114709,862", "3,,", "4,10872600,"]
    (folder / "links.csv").write_text("\n".join(links) + "\n")
    return folder


BAD_RATINGS = ["1,3,7.0,964982707", "1,abc,4.0,964982708", "1,2,4.0", "3,999,4.0,964982709"]


@pytest.fixture
def con(tmp_path: Path) -> duckdb.DuckDBPyConnection:
    c = warehouse.connect(tmp_path / "wh" / "warehouse.duckdb", memory_limit="1GB")
    yield c
    c.close()


def stage(con: duckdb.DuckDBPyConnection, ml: Path, imdb: dict[str, Path | None]) -> staging.StageReport:
    """Stage with no reject limit: the fixtures are hostile on purpose."""
    return staging.stage(con, ml, imdb, max_reject_fraction=1.0)


def rows(con: duckdb.DuckDBPyConnection, sql: str) -> list[tuple]:
    return con.execute(sql).fetchall()


def test_csv_variant_and_imdb(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    ml = write_ml_csv(tmp_path / "ml", extra_ratings=BAD_RATINGS)
    report = stage(con, ml, write_imdb(tmp_path / "imdb"))

    assert report.ml_format == "csv"
    assert rows(con, "SELECT movie_id, name, year, genres FROM stg_ml_movies ORDER BY movie_id") == [
        (1, "Great Escape, The", 1963, ["Adventure", "War"]),
        (2, "Toy Story", 1995, ["Animation", "Children's", "Comedy"]),
        (3, "Babylon 5", None, []),
        (4, "Sunset Blvd. (a.k.a. Sunset Boulevard)", 1950, ["Drama", "Film-Noir"]),
    ]
    assert rows(con, "SELECT tag FROM stg_ml_tags ORDER BY tag") == [("motorcycle, jump",), ('said "to infinity"',)]
    assert rows(con, "SELECT * FROM stg_ml_links ORDER BY movie_id") == [
        (1, "tt0000001"),
        (2, "tt0114709"),
        (4, "tt10872600"),
    ]
    assert report.rows["ratings.csv"] == 4
    # Every bad row is in rejects with its reason; reader rejects carry the line number.
    got = rows(con, "SELECT file, line, reason FROM rejects ORDER BY file, line, reason")
    assert [(f, r) for f, _, r in got if f == "ratings.csv"] == [
        ("ratings.csv", "cast movie_id"),
        ("ratings.csv", "missing columns timestamp"),
        ("ratings.csv", "rating out of range"),
        ("ratings.csv", "unknown movie_id"),
    ]
    assert ("ratings.csv", 7, "cast movie_id") in got
    assert ("movies.csv", 6, "cast movie_id") in got
    assert ("tags.csv", None, "unknown movie_id") in got
    assert ("links.csv", None, "missing value") in got
    assert report.rejects == {
        "movies.csv": 1,
        "ratings.csv": 4,
        "tags.csv": 1,
        "links.csv": 1,
        "title.basics.tsv.gz": 1,
        "title.ratings.tsv.gz": 0,
        "title.principals.tsv.gz": 0,
        "title.crew.tsv.gz": 0,
        "name.basics.tsv.gz": 0,
    }
    assert report.reject_fraction("ratings.csv") == pytest.approx(4 / 8)

    # IMDb: stray quotes survive, \N is NULL, films and series but no episode or game, unparsable
    # runtime rejected.
    assert rows(con, "SELECT * FROM stg_imdb_titles ORDER BY tconst") == [
        ("tt0000001", "movie", 'The "Great" Escape', 'The "Great" Escape', False, 1963, 172, ["Adventure", "War"]),
        ("tt0000002", "short", '"Quoted', "Start", False, None, None, None),
        ("tt0000006", "tvSeries", "A Series", "A Series", False, 1990, 30, ["Drama"]),
    ]
    # Semi-joins keep what touches a staged title or a MovieLens link, nothing else.
    assert rows(con, "SELECT tconst FROM stg_imdb_ratings ORDER BY 1") == [("tt0000001",), ("tt0114709",)]
    assert rows(con, "SELECT nconst, characters FROM stg_imdb_principals ORDER BY ordering") == [
        ("nm0000001", ['Hilts "The Cooler King"']),
        ("nm0000002", None),
    ]
    assert rows(con, "SELECT * FROM stg_imdb_crew ORDER BY role, nconst") == [
        ("tt0000001", "nm0000002", "directors"),
        ("tt0000001", "nm0000004", "writers"),
        ("tt0000001", "nm0000005", "writers"),
    ]
    assert rows(con, "SELECT nconst FROM stg_imdb_names ORDER BY 1") == [(f"nm000000{i}",) for i in (1, 2, 4, 5, 6)]
    assert not warehouse.table_exists(con, "stg_imdb_akas")
    assert not warehouse.table_exists(con, "raw_ml_ratings")


def test_repeated_imdb_ids_keep_one_row_and_count_the_rest(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    """A title, rating or person id that repeats would give a node key twice: one row stays (the same
    one on every run), every other is a reject of its file; no intermediate table is left."""
    imdb = {name: list(lines) for name, lines in IMDB_ROWS.items()}
    imdb["title.basics"].insert(3, "tt0000001\tmovie\tA Stranger\tA Stranger\t0\t1999\t\\N\t90\tDrama")
    imdb["title.ratings"] += ["tt0000001\t1.0\t5", "tt0000001\t8.2\t250000"]
    imdb["name.basics"].append("nm0000002\tJohn Sturges\t1910\t1992\tdirector\t\\N")
    report = stage(con, write_ml_csv(tmp_path / "ml"), write_imdb(tmp_path / "imdb", imdb))

    assert rows(con, "SELECT tconst, primary_title FROM stg_imdb_titles ORDER BY 1") == [
        ("tt0000001", "A Stranger"),  # the least row by value: "A Stranger" < "The ..."
        ("tt0000002", '"Quoted'),
        ("tt0000006", "A Series"),
    ]
    ratings = rows(con, "SELECT * FROM stg_imdb_ratings ORDER BY 1")
    assert ratings == [("tt0000001", 1.0, 5), ("tt0114709", 8.3, 1000000)]
    assert rows(con, "SELECT count(*), count(DISTINCT nconst) FROM stg_imdb_names") == [(5, 5)]
    got = rows(con, "SELECT file, reason, raw FROM rejects WHERE reason LIKE 'duplicate%' ORDER BY file, raw")
    assert [(f, r) for f, r, _ in got] == [
        ("name.basics.tsv.gz", "duplicate nconst, one kept"),
        ("title.basics.tsv.gz", "duplicate tconst, one kept"),
        ("title.ratings.tsv.gz", "duplicate tconst, one kept"),
        ("title.ratings.tsv.gz", "duplicate tconst, one kept"),
    ]
    assert "Great" in got[1][2] and "8.2" in got[2][2]
    assert report.rejects["title.ratings.tsv.gz"] == 2 and report.rows["title.ratings.tsv.gz"] == 2
    assert not any(warehouse.table_exists(con, f"{t}_read") for t in ("stg_imdb_titles", "stg_imdb_names"))


def test_reject_fraction_fails_with_file_named(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    ml = write_ml_csv(tmp_path / "ml", extra_ratings=BAD_RATINGS)
    with pytest.raises(CinegraphError, match=r"ratings\.csv 50\.00%") as err:
        staging.stage(con, ml, write_imdb(tmp_path / "imdb"), max_reject_fraction=0.3)
    assert "movies.csv" not in str(err.value) and "\n" not in str(err.value)
    # The staged tables stay for inspection.
    assert warehouse.count(con, "rejects") == 8


def test_ml_1m_latin1(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    ml = tmp_path / "ml-1m"
    ml.mkdir()
    (ml / "movies.dat").write_bytes(
        "1::Toy Story (1995)::Animation|Children's|Comedy\n"
        "2::Amélie (Fabuleux destin d'Amélie Poulain, Le) (2001)::Comedy|Romance\n"
        '3::"Quoted" Film (1999)::Drama\n'.encode("latin-1")
    )
    (ml / "ratings.dat").write_text("1::1::5::978300760\n1::2::3::978302109\n2::3::4::978301968\n")
    (ml / "users.dat").write_text("1::F::1::10::48067\n2::M::56::16::70072\n")
    stage(con, ml, write_imdb(tmp_path / "imdb"))
    assert rows(con, "SELECT name, year FROM stg_ml_movies WHERE movie_id IN (2, 3) ORDER BY 1") == [
        ('"Quoted" Film', 1999),
        ("Amélie (Fabuleux destin d'Amélie Poulain, Le)", 2001),
    ]
    assert rows(con, "SELECT * FROM stg_ml_users ORDER BY user_id") == [
        (1, "F", 1, "K-12 student", "48067"),
        (2, "M", 56, "self-employed", "70072"),
    ]
    assert warehouse.count(con, "stg_ml_ratings") == 3
    assert warehouse.count(con, "stg_ml_tags") == 0
    assert not warehouse.table_exists(con, "stg_ml_links")


def test_ml_100k(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    ml = tmp_path / "ml-100k"
    ml.mkdir()
    flags = lambda *on: "|".join("1" if i in on else "0" for i in range(19))  # noqa: E731
    (ml / "u.item").write_bytes(
        (
            f"1|Toy Story (1995)|01-Jan-1995||http://us.imdb.com/M/title-exact?Toy%20Story%20(1995)|{flags(3, 4, 5)}\n"
            f"267|unknown||||{flags(0)}\n"
            f"2|Cité des enfants perdus, La (1995)|01-Jan-1995|||{flags(8, 15)}\n"
        ).encode("latin-1")
    )
    (ml / "u.data").write_text("196\t1\t3\t881250949\n186\t2\t3\t891717742\n196\t3\t1\t881250950\n")
    (ml / "u.user").write_text("196|49|M|writer|55105\n186|39|F|executive|00000\n")
    stage(con, ml, write_imdb(tmp_path / "imdb"))
    assert rows(con, "SELECT movie_id, name, year, genres FROM stg_ml_movies ORDER BY movie_id") == [
        (1, "Toy Story", 1995, ["Animation", "Children's", "Comedy"]),
        (2, "Cité des enfants perdus, La", 1995, ["Drama", "Sci-Fi"]),
        (267, "unknown", None, []),
    ]
    assert rows(con, "SELECT line, reason FROM rejects WHERE file = 'u.data'") == [(None, "unknown movie_id")]
    assert rows(con, "SELECT occupation FROM stg_ml_users ORDER BY user_id") == [("executive",), ("writer",)]


def _truncated_gzip(path: Path) -> None:
    body = "tconst\taverageRating\tnumVotes\n" + "".join(
        f"tt{i:07d}\t{i % 10}.5\t{i * 7919 % 100003}\n" for i in range(200_000)
    )
    data = gzip.compress(body.encode())
    path.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize(
    ("target", "damage", "message"),
    [
        ("ml/ratings.csv", lambda p: p.write_bytes(b""), "ratings.csv: empty file"),
        (
            "ml/movies.csv",
            lambda p: p.write_text("id,title,genres\n1,A (1990),Drama\n"),
            "movies.csv: wrong header 'id,title,genres'",
        ),
        (
            "imdb/name.basics.tsv.gz",
            lambda p: p.write_bytes(gzip.compress(b"nconst\tname\n")),
            "name.basics.tsv.gz: wrong header",
        ),
        ("imdb/title.crew.tsv.gz", lambda p: p.write_bytes(gzip.compress(b"")), "title.crew.tsv.gz: empty file"),
        ("imdb/title.ratings.tsv.gz", _truncated_gzip, "title.ratings.tsv.gz: cannot read"),
    ],
)
def test_bad_file_is_one_line_error_and_keeps_previous_tables(
    con: duckdb.DuckDBPyConnection, tmp_path: Path, target: str, damage, message: str
) -> None:
    ml, imdb = write_ml_csv(tmp_path / "ml"), write_imdb(tmp_path / "imdb")
    stage(con, ml, imdb)
    before = rows(con, "SELECT * FROM stg_imdb_ratings ORDER BY tconst")
    damage(tmp_path / target)
    with pytest.raises(CinegraphError, match=message) as err:
        stage(con, ml, imdb)
    assert "\n" not in str(err.value)
    assert rows(con, "SELECT * FROM stg_imdb_ratings ORDER BY tconst") == before
    assert warehouse.count(con, "stg_ml_ratings") == 4


def test_rerun_replaces_tables_of_another_variant(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    imdb = write_imdb(tmp_path / "imdb")
    stage(con, write_ml_csv(tmp_path / "ml"), imdb)
    assert warehouse.table_exists(con, "stg_ml_links")
    ml = tmp_path / "ml-1m"
    ml.mkdir()
    (ml / "movies.dat").write_text("1::Toy Story (1995)::Animation\n")
    (ml / "ratings.dat").write_text("1::1::5::978300760\n")
    (ml / "users.dat").write_text("1::F::1::10::48067\n")
    stage(con, ml, imdb)
    assert not warehouse.table_exists(con, "stg_ml_links")
    assert warehouse.count(con, "stg_ml_movies") == 1
    # Without links, only film-like titles drive the semi-joins.
    assert rows(con, "SELECT tconst FROM stg_imdb_ratings") == [("tt0000001",)]


def test_missing_required_imdb_file(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    imdb = write_imdb(tmp_path / "imdb")
    imdb["name.basics"] = None
    with pytest.raises(CinegraphError, match=r"name\.basics\.tsv\.gz: required"):
        staging.stage(con, write_ml_csv(tmp_path / "ml"), imdb)


@pytest.mark.parametrize(
    ("title", "name", "year"),
    [
        ("Shawshank Redemption, The (1994)", "Shawshank Redemption, The", 1994),
        ("Babylon 5 (1994-1998)", "Babylon 5", 1994),
        ("Fawlty Towers (1975–1979) ", "Fawlty Towers", 1975),
        ("Black Mirror", "Black Mirror", None),
        ("1984 (1956)", "1984", 1956),
    ],
)
def test_movie_title_step(con: duckdb.DuckDBPyConnection, title: str, name: str, year: int | None) -> None:
    """The checked movies step alone, on a hand-made raw table."""
    con.execute(
        "CREATE TABLE raw_ml_movies AS SELECT 1::BIGINT AS movie_id, ? AS title, 'Drama|(no genres listed)' AS genres",
        [title],
    )
    steps, _, _, _ = staging.ml_steps(Path("unused"), "csv")
    (movies,) = [s for s in steps if s.output == "stg_ml_movies"]
    warehouse.run_steps(con, [movies])
    assert rows(con, "SELECT name, year, genres FROM stg_ml_movies") == [(name, year, ["Drama"])]


# --- hostile edits of the real MovieLens files -----------------------------------------------


@pytest.fixture(scope="session")
def real_ml(mirror: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ml-latest-small's CSVs, extracted once from the real mirror."""
    folder = tmp_path_factory.mktemp("real-ml")
    with zipfile.ZipFile(mirror / "movielens" / "ml-latest-small.zip") as zf:
        for name in ("movies.csv", "ratings.csv", "tags.csv", "links.csv"):
            (folder / name).write_bytes(zf.read(f"ml-latest-small/{name}"))
    return folder


def edited_copy(real: Path, dest: Path, name: str, edit) -> Path:
    """A copy of the real folder where ``edit(lines) -> lines`` rewrote one file; lines come
    without their line end and get the file's own (GroupLens writes CRLF) back."""
    shutil.copytree(real, dest)
    data = (dest / name).read_bytes()
    eol = b"\r\n" if data.splitlines(keepends=True)[0].endswith(b"\r\n") else b"\n"
    (dest / name).write_bytes(b"".join(line + eol for line in edit(data.splitlines())))
    return dest


def data_lines(path: Path) -> int:
    return sum(1 for line in path.read_bytes().splitlines()[1:] if line.strip())


def _quote_after_first_comma(line_no: int):
    def edit(lines: list[bytes]) -> list[bytes]:
        lines[line_no - 1] = lines[line_no - 1].replace(b",", b',"', 1)
        return lines

    return edit


@pytest.mark.realdata
@pytest.mark.parametrize(("name", "line_no"), [("ratings.csv", 50_001), ("movies.csv", 6), ("tags.csv", 1_000)])
def test_stray_quote_fails_naming_file_and_line(
    con: duckdb.DuckDBPyConnection, real_ml: Path, tmp_path: Path, name: str, line_no: int
) -> None:
    """An unclosed quote would make the reader swallow the rest of the file into one value:
    the run fails naming the line instead of staging half the file."""
    ml = edited_copy(real_ml, tmp_path / "ml", name, _quote_after_first_comma(line_no))
    with pytest.raises(CinegraphError, match=rf"{name}: line {line_no}: unbalanced quote") as err:
        stage(con, ml, write_imdb(tmp_path / "imdb"))
    assert "\n" not in str(err.value)


@pytest.mark.realdata
def test_real_files_every_data_line_is_a_row_or_a_reject(
    con: duckdb.DuckDBPyConnection, real_ml: Path, tmp_path: Path
) -> None:
    """A line the reader cannot parse costs that line only: rows read + rejected == data lines,
    with the reject's line number; a blank line is no data line."""

    def edit(lines: list[bytes]) -> list[bytes]:
        lines[1_000 - 1] = b"610,abc,4.0,1493846415"  # not a number: the reader rejects it
        lines[2_000 - 1] = b'610,"170875",3.0,1493846415'  # quoted, balanced: a good row
        lines.insert(3_000 - 1, b"")
        return lines

    ml = edited_copy(real_ml, tmp_path / "ml", "ratings.csv", edit)
    report = stage(con, ml, write_imdb(tmp_path / "imdb"))
    for name in ("movies.csv", "ratings.csv", "tags.csv", "links.csv"):
        assert report.rows[name] + report.rejects[name] == data_lines(ml / name), name
    assert rows(con, "SELECT line, reason FROM rejects WHERE file = 'ratings.csv' AND line IS NOT NULL") == [
        (1_000, "cast movie_id")
    ]


@pytest.mark.realdata
@pytest.mark.parametrize("first_crlf", [True, False])
def test_mixed_line_endings_say_so(
    con: duckdb.DuckDBPyConnection, real_ml: Path, tmp_path: Path, first_crlf: bool
) -> None:
    ml = edited_copy(real_ml, tmp_path / "ml", "ratings.csv", lambda lines: lines)
    head, tail = (b"\r\n", b"\n") if first_crlf else (b"\n", b"\r\n")
    lines = (ml / "ratings.csv").read_bytes().splitlines()
    (ml / "ratings.csv").write_bytes(b"".join(line + (head if i < 100 else tail) for i, line in enumerate(lines)))
    with pytest.raises(
        CinegraphError,
        match=r"ratings\.csv: mixed line endings: line 1 ends with "
        r"(CRLF|LF), line 101 with",
    ) as err:
        stage(con, ml, write_imdb(tmp_path / "imdb"))
    assert "\n" not in str(err.value)


@pytest.mark.realdata
def test_duplicate_rating_keeps_the_latest(con: duckdb.DuckDBPyConnection, real_ml: Path, tmp_path: Path) -> None:
    # line 2 is "1,1,4.0,964982703": the same pair rated again later, and once earlier.
    ml = edited_copy(
        real_ml, tmp_path / "ml", "ratings.csv", lambda lines: [*lines, b"1,1,2.5,964982999", b"1,1,5.0,964982000"]
    )
    report = stage(con, ml, write_imdb(tmp_path / "imdb"))
    assert rows(con, "SELECT rating, timestamp FROM stg_ml_ratings WHERE user_id = 1 AND movie_id = 1") == [
        (2.5, 964982999)
    ]
    assert sorted(rows(con, "SELECT raw FROM rejects WHERE reason LIKE 'duplicate rating%'")) == [
        ("{'user_id': 1, 'movie_id': 1, 'rating': 4.0, 'timestamp': 964982703}",),
        ("{'user_id': 1, 'movie_id': 1, 'rating': 5.0, 'timestamp': 964982000}",),
    ]
    assert report.rows["ratings.csv"] == 100_836
    assert report.rows["ratings.csv"] + report.rejects["ratings.csv"] == data_lines(ml / "ratings.csv")


@pytest.mark.parametrize("name", staging.IMDB_REQUIRED)
def test_required_imdb_file_with_only_a_header(con: duckdb.DuckDBPyConnection, tmp_path: Path, name: str) -> None:
    imdb = write_imdb(tmp_path / "imdb", IMDB_ROWS | {name: IMDB_ROWS[name][:1]})
    with pytest.raises(CinegraphError, match=rf"{name}\.tsv\.gz: no rows after the header") as err:
        stage(con, write_ml_csv(tmp_path / "ml"), imdb)
    assert "\n" not in str(err.value)


@pytest.mark.realdata
def test_unclosed_quote_keeps_the_previous_tables(
    con: duckdb.DuckDBPyConnection, real_ml: Path, tmp_path: Path
) -> None:
    imdb = write_imdb(tmp_path / "imdb")
    stage(con, real_ml, imdb)
    ml = edited_copy(real_ml, tmp_path / "ml", "ratings.csv", _quote_after_first_comma(50_001))
    with pytest.raises(CinegraphError, match="line 50001: unbalanced quote"):
        stage(con, ml, imdb)
    assert warehouse.count(con, "stg_ml_ratings") == 100_836
    assert not warehouse.table_exists(con, "raw_ml_ratings")


def test_every_fetched_imdb_file_has_a_reader() -> None:
    assert set(staging.IMDB) == set(IMDB_FILES)
    assert staging.IMDB_REQUIRED == ("title.basics", "name.basics")
