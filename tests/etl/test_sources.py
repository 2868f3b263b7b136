"""etl/sources.py: base resolution, md5 formats, and both sources fetched over real HTTP on
127.0.0.1 (the ``http_dir`` fixture) or read in place from a local mirror."""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import logging
import os
import threading
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

from cinegraph.errors import CinegraphError
from cinegraph.etl.download import HTTPStatusError, RetryPolicy
from cinegraph.etl.sources import (
    IMDB_BASE,
    IMDB_FILES,
    MOVIELENS_BASE,
    FetchResult,
    fetch_imdb,
    fetch_imdb_file,
    fetch_movielens,
    parse_md5,
    resolve_bases,
)

FAST = RetryPolicy(attempts=2, backoff_s=0.01, timeout_s=5)
ML_FILES = {
    "movies.csv": b"movieId,title,genres\n1,Toy Story (1995),Adventure|Animation\n",
    "ratings.csv": b"userId,movieId,rating,timestamp\n1,1,4.0,964982703\n",
    "tags.csv": b"userId,movieId,tag,timestamp\n1,1,pixar,1139045764\n",
    "links.csv": b"movieId,imdbId,tmdbId\n1,0114709,862\n",
}
IMDB_TSV = {
    "title.basics": "tconst\ttitleType\tprimaryTitle\toriginalTitle\tisAdult\tstartYear\tendYear\t"
    "runtimeMinutes\tgenres\ntt0114709\tmovie\tToy Story\tToy Story\t0\t1995\t\\N\t81\tAnimation\n",
    "name.basics": "nconst\tprimaryName\tbirthYear\tdeathYear\tprimaryProfession\tknownForTitles\n"
    "nm0005124\tJohn Lasseter\t1957\t\\N\tproducer\ttt0114709\n",
    "title.ratings": "tconst\taverageRating\tnumVotes\ntt0114709\t8.3\t1000000\n",
}
REAL_SHA256 = {  # from ../shared/data/README.md
    "ml-latest-small.zip": "696d65a3dfceac7c45750ad32df2c259311949efec81f0f144fdfb91ebc9e436",
    "title.basics": "cb3fcedab2fba93c059472bd79dc055ba2fdb99bb6accf7867dd8b0dcfebfe30",
    "title.crew": "313376d18fa1d22fbd695bd584171c52c48486c5bddd7f78608791e51ee49511",
    "title.principals": "3a41add3aeb930a8d6c7627229346fd48cbace985c95f6902153ce7ac26d0371",
    "name.basics": "867604aab2d7312f3a619ee88ede88bbe0348b0bef272c4fd152555943e38ae0",
    "title.ratings": "d2b1cb54ba3e0b75ad6cf75be7029dabf7c314f90388284065c026e88501810e",
}


def _write_movielens(
    root: Path, variant: str = "ml-latest-small", md5_format: str | None = "gnu", extra: bytes = b""
) -> Path:
    """``root/movielens/<variant>.zip`` with a top folder, plus its .md5 in the given format."""
    folder = root / "movielens"
    folder.mkdir(parents=True, exist_ok=True)
    zip_path = folder / f"{variant}.zip"
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(f"{variant}/", b"")
        for name, data in ML_FILES.items():
            zf.writestr(f"{variant}/{name}", data + extra)
    digest = hashlib.md5(zip_path.read_bytes()).hexdigest()
    line = {"gnu": f"{digest}  {zip_path.name}\n", "bsd": f"MD5 ({zip_path.name}) = {digest}\n"}
    if md5_format is not None:
        (folder / f"{zip_path.name}.md5").write_text(line[md5_format])
    return zip_path


def _write_imdb(root: Path, names: Iterable[str] = tuple(IMDB_TSV)) -> Path:
    folder = root / "imdb"
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / f"{name}.tsv.gz").write_bytes(gzip.compress(IMDB_TSV[name].encode(), mtime=0))
    return folder


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _ml(raw: Path, base: str, variant: str = "ml-latest-small", **kwargs: object) -> tuple[Path, FetchResult]:
    return fetch_movielens(variant, raw, base, progress=False, retry=FAST, **kwargs)  # type: ignore[arg-type]


def _listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


# --- resolve_bases ---------------------------------------------------------------------------


def test_resolve_bases_defaults_and_urls() -> None:
    assert resolve_bases(None, None, None) == (MOVIELENS_BASE, IMDB_BASE)
    assert resolve_bases("http://127.0.0.1:8000/mirror/", None, None) == (
        "http://127.0.0.1:8000/mirror/movielens",
        "http://127.0.0.1:8000/mirror/imdb",
    )
    assert resolve_bases(None, "https://ml.example/x", None) == ("https://ml.example/x", IMDB_BASE)


def test_resolve_bases_local_mirror_and_explicit_override(tmp_path: Path) -> None:
    (tmp_path / "movielens").mkdir()
    with pytest.raises(CinegraphError, match=rf"^base {tmp_path}/imdb: not a directory"):
        resolve_bases(tmp_path, None, None)
    (tmp_path / "imdb").mkdir()
    assert resolve_bases(tmp_path, None, None) == (str(tmp_path / "movielens"), str(tmp_path / "imdb"))
    assert resolve_bases(tmp_path.as_uri(), None, None) == (str(tmp_path / "movielens"), str(tmp_path / "imdb"))
    assert resolve_bases(str(tmp_path), None, "https://imdb.example") == (
        str(tmp_path / "movielens"),
        "https://imdb.example",
    )


@pytest.mark.parametrize(
    ("mirror", "ml", "imdb", "message"),
    [
        ("/no/such/mirror", None, None, "mirror /no/such/mirror: not a directory"),
        ("s3://bucket/mirror", None, None, "mirror 's3://bucket/mirror': only http\\(s\\) URLs"),
        (None, "ftp://example.org/ml", None, "only http\\(s\\) URLs and local directories"),
        (None, None, "/no/such/imdb", "base /no/such/imdb: not a directory"),
    ],
)
def test_resolve_bases_rejects(mirror: str | None, ml: str | None, imdb: str | None, message: str) -> None:
    with pytest.raises(CinegraphError, match=message):
        resolve_bases(mirror, ml, imdb)


# --- parse_md5 -------------------------------------------------------------------------------

HEX = "31a303aabbc519bd33d025e44d6c2570"


@pytest.mark.parametrize(
    "text",
    [
        f"{HEX}  ml-latest-small.zip\n",
        f"{HEX} *ml-latest-small.zip\n",
        f"MD5 (ml-latest-small.zip) = {HEX}\n",
        f"MD5 (ml-latest-small.zip) = {HEX.upper()}\r\n",
        f"{HEX}\n",
        f"{'0' * 32}  ml-latest.zip\n{HEX}  ml-latest-small.zip\n",
        f"MD5 (ml-25m.zip) = {'0' * 32}\nMD5 (ml-latest-small.zip) = {HEX}\n",
    ],
)
def test_parse_md5_formats(text: str) -> None:
    assert parse_md5(text, "ml-latest-small.zip", source="x.md5") == HEX


@pytest.mark.parametrize("text", ["", "<html>Not Found</html>", f"{'0' * 32}  a.zip\n{'1' * 32}  b.zip"])
def test_parse_md5_rejects(text: str) -> None:
    with pytest.raises(CinegraphError, match=r"^x\.md5: no md5 digest for ml-latest-small\.zip"):
        parse_md5(text, "ml-latest-small.zip", source="x.md5")


# --- MovieLens -------------------------------------------------------------------------------


@pytest.mark.parametrize("md5_format", ["gnu", "bsd"])
def test_movielens_over_http_then_not_modified(http_dir: tuple[str, Path], tmp_path: Path, md5_format: str) -> None:
    base, root = http_dir
    zip_path = _write_movielens(root, md5_format=md5_format)
    raw = tmp_path / "raw"
    folder, result = _ml(raw, f"{base}/movielens")
    assert folder == raw / "movielens" / "ml-latest-small"
    assert {n: (folder / n).read_bytes() for n in ML_FILES} == ML_FILES
    assert result.status == "downloaded" and result.name == "ml-latest-small.zip"
    assert result.url == f"{base}/movielens/ml-latest-small.zip"
    assert result.path == raw / "movielens" / "ml-latest-small.zip"
    assert (result.bytes, result.sha256) == (zip_path.stat().st_size, _sha256(zip_path))
    (folder / "sentinel").touch()  # survives only if the unchanged zip is not extracted again
    folder2, again = _ml(raw, f"{base}/movielens")
    assert (folder2, again.status, again.sha256) == (folder, "not_modified", result.sha256)
    assert (folder / "sentinel").exists()


def test_movielens_changed_upstream_is_extracted_again(http_dir: tuple[str, Path], tmp_path: Path) -> None:
    base, root = http_dir
    _write_movielens(root)
    raw = tmp_path / "raw"
    folder, first = _ml(raw, f"{base}/movielens")
    zip_path = _write_movielens(root, extra=b"2,Jumanji (1995),Adventure\n")
    later = zip_path.stat().st_mtime + 10  # Last-Modified has one-second resolution
    os.utime(zip_path, (later, later))
    folder, second = _ml(raw, f"{base}/movielens")
    assert second.status == "downloaded" and second.sha256 != first.sha256
    assert (folder / "movies.csv").read_bytes().endswith(b"Jumanji (1995),Adventure\n")


def test_movielens_md5_mismatch(http_dir: tuple[str, Path], tmp_path: Path) -> None:
    base, root = http_dir
    zip_path = _write_movielens(root)
    (root / "movielens" / "ml-latest-small.zip.md5").write_text(f"MD5 ({zip_path.name}) = {'0' * 32}\n")
    raw = tmp_path / "raw"
    with pytest.raises(CinegraphError, match=r"^ml-latest-small\.zip: md5 [0-9a-f]{32} does not match"):
        _ml(raw, f"{base}/movielens")
    assert _listing(raw / "movielens") == []


def test_movielens_without_published_md5_is_fetched_and_logged(
    http_dir: tuple[str, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    base, root = http_dir
    _write_movielens(root, variant="ml-100k", md5_format=None)
    with caplog.at_level(logging.WARNING, logger="cinegraph.etl.sources"):
        folder, result = _ml(tmp_path / "raw", f"{base}/movielens", "ml-100k")
    assert result.status == "downloaded" and (folder / "movies.csv").exists()
    assert "no published md5" in caplog.text


def test_movielens_missing_archive_names_the_url(http_dir: tuple[str, Path], tmp_path: Path) -> None:
    base, _ = http_dir
    with pytest.raises(CinegraphError, match=rf"^{base}/movielens/ml-1m\.zip: HTTP 404"):
        fetch_movielens("ml-1m", tmp_path / "raw", f"{base}/movielens", progress=False, retry=FAST)


@pytest.mark.parametrize("as_uri", [False, True])
def test_movielens_local_mirror_in_place(tmp_path: Path, as_uri: bool) -> None:
    zip_path = _write_movielens(tmp_path / "mirror", md5_format="bsd")
    local = tmp_path / "mirror" / "movielens"
    raw = tmp_path / "raw"
    folder, result = _ml(raw, local.as_uri() if as_uri else str(local))
    assert (result.status, result.path, result.url) == ("local", zip_path, str(zip_path))
    assert result.sha256 == _sha256(zip_path)
    assert {n: (folder / n).read_bytes() for n in ML_FILES} == ML_FILES
    assert not (raw / "movielens" / "ml-latest-small.zip").exists()  # used in place, not copied


def test_movielens_local_md5_mismatch_and_absent_zip(tmp_path: Path) -> None:
    zip_path = _write_movielens(tmp_path / "mirror")
    zip_path.with_name("ml-latest-small.zip.md5").write_text(f"{'0' * 32}  ml-latest-small.zip\n")
    base = str(tmp_path / "mirror" / "movielens")
    with pytest.raises(CinegraphError, match=rf"^{zip_path}: md5 [0-9a-f]{{32}} does not match 0{{32}}"):
        fetch_movielens("ml-latest-small", tmp_path / "raw", base, progress=False)
    with pytest.raises(CinegraphError, match=r"ml-25m\.zip: MovieLens archive not found"):
        fetch_movielens("ml-25m", tmp_path / "raw", base, progress=False)


def test_movielens_unknown_variant(tmp_path: Path) -> None:
    with pytest.raises(CinegraphError, match=r"variant 'ml-10m': unknown, expected one of ml-latest-small, "):
        fetch_movielens("ml-10m", tmp_path, str(tmp_path))


def test_movielens_extraction_cap(http_dir: tuple[str, Path], tmp_path: Path) -> None:
    base, root = http_dir
    _write_movielens(root)
    with pytest.raises(CinegraphError, match="exceeds the cap of 100 bytes"):
        fetch_movielens(
            "ml-latest-small", tmp_path / "raw", f"{base}/movielens", progress=False, max_extract_bytes=100, retry=FAST
        )


# --- IMDb ------------------------------------------------------------------------------------


def test_imdb_over_http_optional_missing_then_not_modified(
    http_dir: tuple[str, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    base, root = http_dir
    served = _write_imdb(root)
    raw = tmp_path / "raw"
    with caplog.at_level(logging.WARNING, logger="cinegraph.etl.sources"):
        results = fetch_imdb(raw, f"{base}/imdb", progress=False, retry=FAST)
    assert list(results) == list(IMDB_FILES)
    assert {k: r.status for k, r in results.items()} == {
        "title.basics": "downloaded",
        "title.akas": "missing",
        "title.principals": "missing",
        "title.crew": "missing",
        "name.basics": "downloaded",
        "title.ratings": "downloaded",
    }
    for key in IMDB_TSV:
        r = results[key]
        assert r.path == raw / "imdb" / f"{key}.tsv.gz" and r.url == f"{base}/imdb/{key}.tsv.gz"
        assert (r.sha256, r.bytes) == (_sha256(served / r.name), (served / r.name).stat().st_size)
    akas = results["title.akas"]
    assert (akas.path, akas.sha256, akas.bytes) == (None, None, 0)
    assert akas.url == f"{base}/imdb/title.akas.tsv.gz"
    assert "title.akas.tsv.gz: optional IMDb file absent at" in caplog.text
    again = fetch_imdb(raw, f"{base}/imdb", progress=False, retry=FAST)
    statuses = {k: r.status for k, r in again.items() if k in IMDB_TSV}
    assert statuses == dict.fromkeys(IMDB_TSV, "not_modified")
    assert {k: r.sha256 for k, r in again.items()} == {k: r.sha256 for k, r in results.items()}


@pytest.mark.parametrize("required", ["title.basics", "name.basics"])
def test_imdb_required_file_absent_over_http(http_dir: tuple[str, Path], tmp_path: Path, required: str) -> None:
    base, root = http_dir
    _write_imdb(root, [n for n in IMDB_TSV if n != required])
    message = rf"^{base}/imdb/{required}\.tsv\.gz: HTTP 404 File not found \(a required IMDb file\)$"
    with pytest.raises(CinegraphError, match=message):
        fetch_imdb(tmp_path / "raw", f"{base}/imdb", progress=False, retry=FAST)


class _ForbiddingHandler(http.server.SimpleHTTPRequestHandler):
    """Serves a directory but answers 403 for the paths in ``forbidden``."""

    forbidden: frozenset[str] = frozenset()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass

    def do_GET(self) -> None:
        if self.path in self.forbidden:
            self.send_error(403)
        else:
            super().do_GET()


@pytest.fixture
def forbidding_dir(tmp_path: Path) -> Iterator[tuple[str, Path, set[str]]]:
    root = tmp_path / "www"
    root.mkdir()
    forbidden: set[str] = set()
    handler = type("H", (_ForbiddingHandler,), {"forbidden": forbidden})
    serve = functools.partial(handler, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), serve)
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", root, forbidden
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/imdb/title.basics.tsv.gz", r"title\.basics\.tsv\.gz: HTTP 403 Forbidden \(a required IMDb file\)"),
        ("/imdb/title.ratings.tsv.gz", r"title\.ratings\.tsv\.gz: HTTP 403"),  # optional, but not "absent"
    ],
)
def test_imdb_client_error_is_not_mistaken_for_absence(
    forbidding_dir: tuple[str, Path, set[str]], tmp_path: Path, path: str, message: str
) -> None:
    base, root, forbidden = forbidding_dir
    _write_imdb(root)
    forbidden.add(path)
    with pytest.raises(HTTPStatusError, match=message) as info:  # the status is kept for retry policies
        fetch_imdb(tmp_path / "raw", f"{base}/imdb", progress=False, retry=FAST)
    assert info.value.status == 403
    assert not list((tmp_path / "raw" / "imdb").glob(".*part"))


def test_imdb_local_files_are_used_in_place(tmp_path: Path) -> None:
    served = _write_imdb(tmp_path / "mirror")
    raw = tmp_path / "raw"
    results = fetch_imdb(raw, str(served), progress=False)
    for key in IMDB_TSV:
        r = results[key]
        assert (r.status, r.path, r.url) == ("local", served / r.name, str(served / r.name))
        assert r.sha256 == _sha256(served / r.name)
    assert results["title.crew"].status == "missing" and results["title.crew"].path is None
    assert _listing(raw / "imdb") == []  # nothing copied


def test_imdb_one_file_at_a_time(http_dir: tuple[str, Path], tmp_path: Path) -> None:
    base, root = http_dir
    _write_imdb(root, ["title.ratings"])
    got = fetch_imdb_file("title.ratings", tmp_path / "raw", f"{base}/imdb", progress=False, retry=FAST)
    assert (got.status, got.path) == ("downloaded", tmp_path / "raw" / "imdb" / "title.ratings.tsv.gz")
    with pytest.raises(CinegraphError, match=r"IMDb file 'title.episode': unknown, expected one of"):
        fetch_imdb_file("title.episode", tmp_path / "raw", f"{base}/imdb")


def test_imdb_local_required_file_absent(tmp_path: Path) -> None:
    served = _write_imdb(tmp_path / "mirror", ["title.basics"])
    message = rf"^{served}/name\.basics\.tsv\.gz: required IMDb file not found"
    with pytest.raises(CinegraphError, match=message):
        fetch_imdb(tmp_path / "raw", str(served), progress=False)


# --- the real mirror, served over HTTP ---------------------------------------------------------


@pytest.mark.realdata
def test_real_mirror_over_http(mirror: Path, http_dir: tuple[str, Path], tmp_path: Path) -> None:
    base, root = http_dir
    for sub in ("movielens", "imdb"):
        (root / sub).symlink_to(mirror / sub, target_is_directory=True)
    ml_base, imdb_base = resolve_bases(base, None, None)
    raw = tmp_path / "raw"
    folder, ml = fetch_movielens("ml-latest-small", raw, ml_base, progress=False, retry=FAST)
    assert (ml.status, ml.sha256) == ("downloaded", REAL_SHA256["ml-latest-small.zip"])  # md5 passed
    assert {"movies.csv", "ratings.csv", "tags.csv", "links.csv"} <= {p.name for p in folder.iterdir()}
    assert sum(1 for _ in (folder / "movies.csv").open()) == 9742 + 1
    imdb = fetch_imdb(raw, imdb_base, progress=False, retry=FAST)
    assert imdb["title.akas"].status == "missing"
    assert {k: r.sha256 for k, r in imdb.items() if k != "title.akas"} == {
        k: v for k, v in REAL_SHA256.items() if k in IMDB_FILES
    }
    # A refresh over an unchanged mirror downloads nothing.
    _, ml2 = fetch_movielens("ml-latest-small", raw, ml_base, progress=False, retry=FAST)
    imdb2 = fetch_imdb(raw, imdb_base, progress=False, retry=FAST)
    assert ml2.status == "not_modified"
    assert {r.status for k, r in imdb2.items() if k != "title.akas"} == {"not_modified"}


@pytest.mark.realdata
def test_real_mirror_in_place(mirror: Path, tmp_path: Path) -> None:
    ml_base, imdb_base = resolve_bases(mirror, None, None)
    folder, ml = fetch_movielens("ml-latest-small", tmp_path / "raw", ml_base, progress=False)
    assert (ml.status, ml.sha256) == ("local", REAL_SHA256["ml-latest-small.zip"])
    assert (folder / "ratings.csv").stat().st_size == 2483723
    imdb = fetch_imdb(tmp_path / "raw", imdb_base, progress=False)
    assert imdb["title.basics"].path == mirror / "imdb" / "title.basics.tsv.gz"
    assert {r.status for r in imdb.values()} == {"local", "missing"}
