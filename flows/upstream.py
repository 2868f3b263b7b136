"""One source file at a time, for the refresh flow's per-file tasks: what version upstream holds
(the cache key) and bringing the local copy up to date (the cached, retried step).

Retrying is left to Prefect (``RetryPolicy(attempts=1)`` here), so each attempt is one task try.
"""

from __future__ import annotations

import logging
import urllib.error
import urllib.request
from pathlib import Path

from etl.download import FetchState, HTTPStatusError, RetryPolicy, download
from etl.sources import IMDB_FILES, STATE_FILE, FetchResult, fetch_movielens
from graph_store.errors import CinegraphError

log = logging.getLogger(__name__)

ONE_TRY = RetryPolicy(attempts=1, backoff_s=0.0, timeout_s=60.0)
MISSING = "missing"


def is_url(base: str) -> bool:
    return base.startswith(("http://", "https://"))


def movielens_location(base: str, variant: str) -> str:
    return f"{base.rstrip('/')}/{variant}.zip" if is_url(base) else str(Path(base) / f"{variant}.zip")


def imdb_location(base: str, key: str) -> str:
    return f"{base.rstrip('/')}/{key}.tsv.gz" if is_url(base) else str(Path(base) / f"{key}.tsv.gz")


def upstream_version(location: str, raw_dir: Path) -> str:
    """What identifies the upstream content without downloading it: the ETag, else Last-Modified
    plus length (HEAD request); for a local file its sha256 (remembered by size and mtime).
    ``"missing"`` when there is no such file (404/410 or absent)."""
    if not is_url(location):
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
        with urllib.request.urlopen(request, timeout=ONE_TRY.timeout_s) as resp:
            headers = resp.headers
    except urllib.error.HTTPError as exc:
        exc.close()
        if exc.code in (404, 410):
            return MISSING
        raise HTTPStatusError(location, exc.code, str(exc.reason)) from None
    if headers.get("ETag"):
        return f"etag:{headers['ETag']}"
    return f"lm:{headers.get('Last-Modified')}|len:{headers.get('Content-Length')}"


def fetch_movielens_file(
    variant: str, raw_dir: Path, base: str, max_extract_bytes: int
) -> tuple[Path, FetchResult]:
    """The variant's zip, verified and extracted (one attempt; Prefect retries)."""
    return fetch_movielens(variant, raw_dir, base, progress=False, retry=ONE_TRY,
                           max_extract_bytes=max_extract_bytes)  # fmt: skip


def fetch_imdb_file(key: str, raw_dir: Path, base: str) -> FetchResult:
    """One IMDb dataset file: used in place from a local mirror, else brought up to date in
    ``raw_dir/imdb`` with a conditional GET. An absent optional file gives status ``missing``."""
    if key not in IMDB_FILES:
        raise CinegraphError(f"IMDb file {key!r}: unknown, expected one of {', '.join(IMDB_FILES)}")
    name, required = f"{key}.tsv.gz", IMDB_FILES[key]
    location = imdb_location(base, key)
    state = FetchState(raw_dir / STATE_FILE)
    if not is_url(base):
        path = Path(location)
        if not path.is_file():
            if required:
                raise CinegraphError(f"{path}: required IMDb file not found")
            log.warning("%s: optional IMDb file absent; the graph is built without it", path)
            return FetchResult(name, location, None, MISSING, 0, None)
        sha256, _ = state.digests(path)
        state.save()
        return FetchResult(name, location, path, "local", path.stat().st_size, sha256)
    try:
        got = download(location, raw_dir / "imdb" / name, state, progress=False, retry=ONE_TRY)
    except HTTPStatusError as exc:
        if required or exc.status not in (404, 410):
            raise
        log.warning("%s: optional IMDb file absent (HTTP %d)", location, exc.status)
        return FetchResult(name, location, None, MISSING, 0, None)
    return FetchResult(name, location, got.path, got.status, got.bytes, got.sha256)
