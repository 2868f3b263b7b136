"""What to fetch and from where: the MovieLens variants, the IMDb dataset files, and the base URL
or local mirror each source is read from.

A base is either an http(s) URL or a local directory laid out like the upstream sites
(``movielens/<variant>.zip`` (+ ``.md5``) and ``imdb/<name>.tsv.gz`` under a mirror root). Local
files are used in place; remote ones are downloaded into ``raw_dir`` with the guarantees of
``etl.download``. Library functions never read the environment: the CLI resolves
``CINEGRAPH_MIRROR`` and passes it to ``resolve_bases``.
"""

from __future__ import annotations

import logging
import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

from cinegraph.errors import CinegraphError
from cinegraph.etl.download import FetchState, HTTPStatusError, RetryPolicy, download, fetch_text
from cinegraph.etl.extract import DEFAULT_MAX_EXTRACT_BYTES, extract_zip

log = logging.getLogger(__name__)

MOVIELENS_BASE = "https://files.grouplens.org/datasets/movielens"
IMDB_BASE = "https://datasets.imdbws.com"
Variant = Literal["ml-latest-small", "ml-latest", "ml-100k", "ml-1m", "ml-25m", "ml-32m"]
MOVIELENS_VARIANTS: tuple[str, ...] = get_args(Variant)
# IMDb dataset file -> required. The graph can be built without the optional ones.
IMDB_FILES: dict[str, bool] = {
    "title.basics": True,
    "title.akas": False,
    "title.principals": False,
    "title.crew": False,
    "name.basics": True,
    "title.ratings": False,
}
STATE_FILE = "fetch-state.json"

_MD5_BSD = re.compile(r"^MD5 ?\((?P<name>.+)\) ?= ?(?P<hex>[0-9a-fA-F]{32})$")
_MD5_GNU = re.compile(r"^(?P<hex>[0-9a-fA-F]{32})(?:[ \t]+\*?(?P<name>.+))?$")


@dataclass(frozen=True)
class FetchResult:
    """One source file and how this run got it; the snapshot manifest lists these."""

    name: str  # e.g. "ml-latest-small.zip", "title.basics.tsv.gz"
    url: str  # URL or local path it came from
    path: Path | None  # local file (None only for an absent optional IMDb file)
    status: str  # "downloaded" | "not_modified" | "local" | "missing"
    bytes: int
    sha256: str | None


def _parse_base(base: str, what: str = "base") -> str | Path:
    """An http(s) base URL without trailing slash, or an existing local directory (a path or a
    file:// URL)."""
    scheme = urllib.parse.urlsplit(base).scheme.lower()
    if scheme in ("http", "https"):
        return base.rstrip("/")
    if scheme == "file":
        base = urllib.request.url2pathname(urllib.parse.urlsplit(base).path)
    elif len(scheme) > 1:  # one letter is a Windows drive
        raise CinegraphError(f"{what} {base!r}: only http(s) URLs and local directories are supported")
    path = Path(base).expanduser()
    if not path.is_dir():
        raise CinegraphError(f"{what} {base}: not a directory")
    return path


def resolve_bases(mirror: Path | str | None, movielens_base: str | None, imdb_base: str | None) -> tuple[str, str]:
    """(MovieLens base, IMDb base): an explicit base wins, then the mirror (a directory or an
    http(s) URL of the mirror layout), then the official sites."""
    root = None if mirror is None else _parse_base(str(mirror), "mirror")
    if root is None:
        ml, imdb = MOVIELENS_BASE, IMDB_BASE
    elif isinstance(root, Path):
        ml, imdb = str(root / "movielens"), str(root / "imdb")
    else:
        ml, imdb = f"{root}/movielens", f"{root}/imdb"
    ml, imdb = movielens_base or ml, imdb_base or imdb
    for base in (ml, imdb):
        _parse_base(base)
    return ml, imdb


def parse_md5(text: str, name: str, *, source: str) -> str:
    """The hex digest for ``name`` in a published checksum file, in GNU (``<hex>  <name>``) or BSD
    (``MD5 (<name>) = <hex>``) format; a file holding a single digest is taken whatever it names."""
    entries: list[tuple[str | None, str]] = []
    for line in text.splitlines():
        line = line.strip()
        match = _MD5_BSD.match(line) or _MD5_GNU.match(line)
        if match:
            entries.append((match.group("name"), match.group("hex").lower()))
    named = [hex_ for n, hex_ in entries if n is not None and Path(n.strip()).name == name]
    if named:
        return named[0]
    if len(entries) == 1:
        return entries[0][1]
    raise CinegraphError(f"{source}: no md5 digest for {name} in it")


MISSING = "missing"


def source_location(base: str, name: str) -> str:
    """Where file ``name`` lives under a base: a URL or a local path."""
    source = _parse_base(base)
    return str(source / name) if isinstance(source, Path) else f"{source}/{name}"


def upstream_version(location: str, raw_dir: Path, *, timeout_s: float = 60.0) -> str:
    """What identifies upstream content without downloading it, for a scheduler's cache key: the
    ETag, else Last-Modified plus length (one HEAD request); for a local file its sha256
    (remembered by size and mtime in the fetch state). ``MISSING`` when there is no such file."""
    if urllib.parse.urlsplit(location).scheme.lower() not in ("http", "https"):
        path = Path(location)
        if not path.is_file():
            return MISSING
        raw_dir.mkdir(parents=True, exist_ok=True)
        state = FetchState(raw_dir / STATE_FILE)
        sha256, _ = state.digests(path)
        state.save()
        return f"sha256:{sha256}"
    request = urllib.request.Request(location, method="HEAD")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as resp:
            headers = resp.headers
    except urllib.error.HTTPError as exc:
        exc.close()
        if exc.code in (404, 410):
            return MISSING
        raise HTTPStatusError(location, exc.code, str(exc.reason)) from None
    if headers.get("ETag"):
        return f"etag:{headers['ETag']}"
    return f"lm:{headers.get('Last-Modified')}|len:{headers.get('Content-Length')}"


def _raw_subdir(raw_dir: Path, sub: str) -> Path:
    path = raw_dir / sub
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CinegraphError(f"raw_dir {raw_dir}: cannot create {path}: {exc.strerror}") from None
    return path


def fetch_movielens(
    variant: str,
    raw_dir: Path,
    base: str,
    *,
    progress: bool = True,
    max_extract_bytes: int = DEFAULT_MAX_EXTRACT_BYTES,
    retry: RetryPolicy = RetryPolicy(),
) -> tuple[Path, FetchResult]:
    """Fetch ``<variant>.zip``, verify it against the published md5 when there is one, and extract
    it (only when the zip changed); returns the folder holding the variant's data files."""
    if variant not in MOVIELENS_VARIANTS:
        known = ", ".join(MOVIELENS_VARIANTS)
        raise CinegraphError(f"variant {variant!r}: unknown, expected one of {known}")
    name = f"{variant}.zip"
    source = _parse_base(base)
    ml_dir = _raw_subdir(raw_dir, "movielens")
    state = FetchState(raw_dir / STATE_FILE)
    if isinstance(source, Path):
        zip_path = source / name
        if not zip_path.is_file():
            raise CinegraphError(f"{zip_path}: MovieLens archive not found")
        md5_path = source / f"{name}.md5"
        expected = (
            parse_md5(md5_path.read_text(encoding="utf-8", errors="replace"), name, source=str(md5_path))
            if md5_path.is_file()
            else None
        )
        sha256, md5 = state.digests(zip_path)
        if expected is not None and md5 != expected:
            raise CinegraphError(f"{zip_path}: md5 {md5} does not match {expected} in {md5_path}")
        state.save()
        result = FetchResult(name, str(zip_path), zip_path, "local", zip_path.stat().st_size, sha256)
    else:
        url = f"{source}/{name}"
        text = fetch_text(f"{url}.md5", retry=retry)
        expected = parse_md5(text, name, source=f"{url}.md5") if text is not None else None
        got = download(url, ml_dir / name, state, expected_md5=expected, progress=progress, retry=retry)
        zip_path, sha256 = got.path, got.sha256
        result = FetchResult(name, url, zip_path, got.status, got.bytes, sha256)
    if expected is None:
        log.warning("%s: no published md5 next to it; archive not verified", result.url)
    log.info("%s: %s (%d bytes, sha256 %s)", name, result.status, result.bytes, result.sha256)
    folder = extract_zip(zip_path, ml_dir / variant, zip_sha256=sha256, max_bytes=max_extract_bytes)
    return folder, result


def fetch_imdb(
    raw_dir: Path, base: str, *, progress: bool = True, retry: RetryPolicy = RetryPolicy()
) -> dict[str, FetchResult]:
    """Fetch every IMDb dataset file (see ``fetch_imdb_file``), keyed like ``IMDB_FILES``."""
    return {key: fetch_imdb_file(key, raw_dir, base, progress=progress, retry=retry) for key in IMDB_FILES}


def fetch_imdb_file(
    key: str, raw_dir: Path, base: str, *, progress: bool = True, retry: RetryPolicy = RetryPolicy()
) -> FetchResult:
    """One IMDb dataset file: used in place from a local base, else brought up to date in
    ``raw_dir/imdb`` with a conditional GET.

    A missing required file raises ``CinegraphError`` naming its URL or path; a missing optional
    one is logged and reported with status ``missing``.
    """
    if key not in IMDB_FILES:
        raise CinegraphError(f"IMDb file {key!r}: unknown, expected one of {', '.join(IMDB_FILES)}")
    name, required = f"{key}.tsv.gz", IMDB_FILES[key]
    source = _parse_base(base)
    imdb_dir = _raw_subdir(raw_dir, "imdb")
    state = FetchState(raw_dir / STATE_FILE)
    if isinstance(source, Path):
        result = _imdb_local(source / name, required, state)
    else:
        result = _imdb_remote(f"{source}/{name}", imdb_dir / name, required, state, progress, retry)
    state.save()
    log.info("%s: %s (%d bytes)", name, result.status, result.bytes)
    return result


def _imdb_local(path: Path, required: bool, state: FetchState) -> FetchResult:
    if path.is_file():
        sha256, _ = state.digests(path)
        return FetchResult(path.name, str(path), path, "local", path.stat().st_size, sha256)
    if required:
        raise CinegraphError(f"{path}: required IMDb file not found")
    return _missing(path.name, str(path), "not found")


def _imdb_remote(
    url: str, dest: Path, required: bool, state: FetchState, progress: bool, retry: RetryPolicy
) -> FetchResult:
    try:
        got = download(url, dest, state, progress=progress, retry=retry)
    except HTTPStatusError as exc:
        if required:
            raise HTTPStatusError(url, exc.status, f"{exc.reason} (a required IMDb file)") from None
        if exc.status not in (404, 410):
            raise
        return _missing(dest.name, url, f"HTTP {exc.status}")
    return FetchResult(dest.name, url, got.path, got.status, got.bytes, got.sha256)


def _missing(name: str, where: str, why: str) -> FetchResult:
    log.warning("%s: optional IMDb file absent at %s (%s); building without it", name, where, why)
    return FetchResult(name, where, None, "missing", 0, None)
