"""HTTP downloads that survive a flaky network and never leave a half-written file behind.

One file per call, streamed to ``.<name>.part`` beside the destination and renamed into place only
once it is complete (and, when a checksum is published, verified). Connection errors, 5xx answers
and truncated bodies are retried with exponential backoff; a retry resumes with ``Range`` when the
server answers 206 and restarts otherwise. ETag / Last-Modified are remembered per URL in a small
JSON state file so the next call is a conditional GET: a 304 reuses the file already on disk.
Every other 4xx is the caller's problem and is raised at once with the URL and status.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import logging
import os
import re
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from tqdm import tqdm

from cinegraph.errors import CinegraphError

log = logging.getLogger(__name__)

T = TypeVar("T")

_CHUNK = 1 << 20
_USER_AGENT = "cinegraph/0.1 (python urllib)"
_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")
# What a retry can fix: the network, the server's own failure, a body cut short.
_TRANSIENT = (
    urllib.error.URLError,
    ConnectionError,
    TimeoutError,
    ssl.SSLError,
    http.client.HTTPException,
)


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try one URL: ``attempts`` requests in all, sleeping ``backoff_s * 2**k`` after
    the k-th failure (0-based), each request timing out after ``timeout_s`` of socket silence."""

    attempts: int = 5
    backoff_s: float = 1.0
    timeout_s: float = 60.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise CinegraphError(f"attempts={self.attempts} must be at least 1")
        if self.backoff_s < 0 or self.timeout_s <= 0:
            raise CinegraphError(f"backoff_s={self.backoff_s} must be >= 0 and timeout_s={self.timeout_s} > 0")


@dataclass(frozen=True)
class Download:
    """A file now on disk at ``path``: ``downloaded``, or ``not_modified`` (confirmed by a 304)."""

    path: Path
    status: str
    bytes: int
    sha256: str
    md5: str


class HTTPStatusError(CinegraphError):
    """A 4xx answer (or a 5xx that outlived every retry): retrying will not help."""

    def __init__(self, url: str, status: int, reason: str) -> None:
        super().__init__(f"{url}: HTTP {status} {reason}".rstrip())
        self.url = url
        self.status = status
        self.reason = reason


class _TruncatedError(Exception):
    """The body ended before Content-Length, or a 206 did not start where asked: retry."""


class FetchState:
    """ETag / Last-Modified per URL and the digests of files already hashed, kept in one small JSON
    file so that refreshes are conditional and a 1.5 GB dump is not re-hashed when unchanged."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._urls: dict[str, dict[str, str]] = {}
        self._files: dict[str, dict[str, object]] = {}
        if path.is_file():
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
                self._urls = dict(data.get("urls", {}))
                self._files = dict(data.get("files", {}))
            except (ValueError, AttributeError) as exc:
                log.warning("%s: unreadable fetch state (%s); starting afresh", path, exc)

    def validators(self, url: str) -> dict[str, str]:
        return dict(self._urls.get(url, {}))

    def remember(self, url: str, etag: str | None, last_modified: str | None) -> None:
        entry = {k: v for k, v in (("etag", etag), ("last_modified", last_modified)) if v}
        if entry:
            self._urls[url] = entry
        else:
            self._urls.pop(url, None)

    def forget(self, url: str) -> None:
        self._urls.pop(url, None)

    def record_digests(self, path: Path, sha256: str, md5: str) -> None:
        st = path.stat()
        self._files[str(path.resolve())] = {
            "size": st.st_size,
            "mtime_ns": st.st_mtime_ns,
            "sha256": sha256,
            "md5": md5,
        }

    def digests(self, path: Path) -> tuple[str, str]:
        """(sha256, md5) of ``path``, recomputed only when its size or mtime changed."""
        st = path.stat()
        cached = self._files.get(str(path.resolve()))
        if cached and cached.get("size") == st.st_size and cached.get("mtime_ns") == st.st_mtime_ns:
            return str(cached["sha256"]), str(cached["md5"])
        sha, md5 = hashlib.sha256(), hashlib.md5()
        with path.open("rb") as f:
            while chunk := f.read(_CHUNK):
                sha.update(chunk)
                md5.update(chunk)
        self.record_digests(path, sha.hexdigest(), md5.hexdigest())
        return sha.hexdigest(), md5.hexdigest()

    def save(self) -> None:
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        tmp.write_text(json.dumps({"urls": self._urls, "files": self._files}, indent=1, sort_keys=True))
        os.replace(tmp, self.path)


def _retrying(url: str, retry: RetryPolicy, attempt: Callable[[], T]) -> T:
    """Run ``attempt`` until it returns; retry transient failures and 5xx with backoff, raise
    any other HTTP status at once."""
    last = ""
    for k in range(retry.attempts):
        try:
            return attempt()
        except urllib.error.HTTPError as exc:
            exc.close()
            if exc.code < 500:
                raise HTTPStatusError(url, exc.code, str(exc.reason)) from None
            last = f"HTTP {exc.code} {exc.reason}"
        except (_TruncatedError, *_TRANSIENT) as exc:
            last = str(getattr(exc, "reason", None) or exc) or type(exc).__name__
        if k + 1 < retry.attempts:
            delay = retry.backoff_s * 2**k
            log.warning("%s: %s; retry %d of %d in %.2fs", url, last, k + 1, retry.attempts - 1, delay)
            time.sleep(delay)
    raise CinegraphError(f"{url}: failed after {retry.attempts} attempts: {last}")


def _request(url: str, headers: dict[str, str]) -> urllib.request.Request:
    return urllib.request.Request(url, headers={"User-Agent": _USER_AGENT, **headers})


def fetch_text(url: str, *, retry: RetryPolicy = RetryPolicy(), max_bytes: int = 1 << 16) -> str | None:
    """A small text file such as a published ``.md5``; None when the server says it does not exist
    (404 / 410)."""

    def attempt() -> str:
        with urllib.request.urlopen(_request(url, {}), timeout=retry.timeout_s) as resp:
            expected = resp.length
            body = resp.read(max_bytes + 1)
        if len(body) > max_bytes:
            raise CinegraphError(f"{url}: larger than {max_bytes} bytes, not a checksum file")
        if expected is not None and len(body) < expected:
            raise _TruncatedError(f"got {len(body)} of {expected} bytes")
        return body.decode("utf-8", errors="replace")

    try:
        return _retrying(url, retry, attempt)
    except HTTPStatusError as exc:
        if exc.status in (404, 410):
            return None
        raise


def download(
    url: str,
    dest: Path,
    state: FetchState,
    *,
    expected_md5: str | None = None,
    progress: bool = True,
    retry: RetryPolicy = RetryPolicy(),
) -> Download:
    """Bring ``dest`` up to date with ``url`` (conditional GET when ``dest`` and validators exist).

    The state is saved after a successful call. Raises ``CinegraphError`` naming the URL (HTTP
    failure) or the file (md5 mismatch); the partial file is removed either way.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(f".{dest.name}.part")
    part.unlink(missing_ok=True)  # left by a killed process: its version is unknown, never resume it
    conditional = state.validators(url) if dest.is_file() else {}
    # Validator of the response that began the partial file: sent as If-Range on resume so that a
    # file changed upstream between two attempts is restarted, not spliced.
    began_with: dict[str, str | None] = {}

    def attempt() -> Download | None:
        offset = part.stat().st_size if part.exists() else 0
        headers: dict[str, str] = {}
        if offset:
            headers["Range"] = f"bytes={offset}-"
            etag = began_with.get("etag")  # If-Range takes a strong ETag or a date, never a weak tag
            if_range = etag if etag and not etag.startswith("W/") else began_with.get("last_modified")
            if if_range:
                headers["If-Range"] = if_range
        elif conditional:
            if "etag" in conditional:
                headers["If-None-Match"] = conditional["etag"]
            if "last_modified" in conditional:
                headers["If-Modified-Since"] = conditional["last_modified"]
        try:
            resp = urllib.request.urlopen(_request(url, headers), timeout=retry.timeout_s)
        except urllib.error.HTTPError as exc:
            if exc.code == 304 and conditional and not offset:
                exc.close()
                return None
            if exc.code == 416 and offset:
                exc.close()
                part.unlink()
                raise _TruncatedError("range not satisfiable; restarting") from None
            raise
        with resp:
            return _receive(resp, url, part, offset, began_with, progress, dest.name)

    try:
        got = _retrying(url, retry, attempt)
        if got is None:
            sha, md5 = state.digests(dest)
            if expected_md5 is None or md5 == expected_md5:
                log.info("%s: not modified, reusing %s", url, dest)
                state.save()
                return Download(dest, "not_modified", dest.stat().st_size, sha, md5)
            log.warning("%s: md5 %s does not match %s; downloading again", dest, md5, expected_md5)
            state.forget(url)
            return download(url, dest, state, expected_md5=expected_md5, progress=progress, retry=retry)
        if expected_md5 is not None and got.md5 != expected_md5:
            raise CinegraphError(f"{dest.name}: md5 {got.md5} does not match the published {expected_md5} ({url})")
        os.replace(part, dest)
    finally:
        part.unlink(missing_ok=True)
    state.remember(url, began_with.get("etag"), began_with.get("last_modified"))
    state.record_digests(dest, got.sha256, got.md5)
    state.save()
    log.info("%s: downloaded %d bytes to %s", url, got.bytes, dest)
    return Download(dest, "downloaded", got.bytes, got.sha256, got.md5)


def _receive(
    resp: http.client.HTTPResponse,
    url: str,
    part: Path,
    offset: int,
    began_with: dict[str, str | None],
    progress: bool,
    label: str,
) -> Download:
    """Stream one response into ``part`` (appending on a matching 206) and hash the whole file."""
    sha, md5 = hashlib.sha256(), hashlib.md5()
    if resp.status == 206:
        match = _CONTENT_RANGE.match(resp.headers.get("Content-Range", ""))
        if not match or int(match.group(1)) != offset:
            part.unlink(missing_ok=True)
            got = resp.headers.get("Content-Range")
            raise _TruncatedError(f"206 with Content-Range {got!r} when asked for byte {offset} on")
        with part.open("rb") as f:
            while chunk := f.read(_CHUNK):
                sha.update(chunk)
                md5.update(chunk)
        mode = "ab"
    else:
        if offset:
            log.info("%s: server ignored Range; restarting from byte 0", url)
        offset = 0
        began_with.clear()
        began_with.update(etag=resp.headers.get("ETag"), last_modified=resp.headers.get("Last-Modified"))
        mode = "wb"
    length = resp.length
    total = offset + length if length is not None else None
    received = offset
    with (
        part.open(mode) as f,
        tqdm(
            total=total,
            initial=offset,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc=label,
            disable=not progress,
        ) as bar,
    ):
        while chunk := resp.read(_CHUNK):
            f.write(chunk)
            sha.update(chunk)
            md5.update(chunk)
            received += len(chunk)
            bar.update(len(chunk))
        f.flush()
        os.fsync(f.fileno())
    if total is not None and received < total:
        raise _TruncatedError(f"body cut short at {received} of {total} bytes")
    return Download(part, "downloaded", received, sha.hexdigest(), md5.hexdigest())
