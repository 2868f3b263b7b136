"""etl/download.py against a real HTTP server on 127.0.0.1 scripted to fail in the ways networks do."""

from __future__ import annotations

import hashlib
import http.server
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from cinegraph.errors import CinegraphError
from cinegraph.etl.download import Download, FetchState, HTTPStatusError, RetryPolicy, download, fetch_text

FAST = RetryPolicy(attempts=3, backoff_s=0.01, timeout_s=5)
BODY = bytes(range(256)) * 4096  # 1 MiB: several read chunks
LAST_MODIFIED = "Wed, 21 Oct 2015 07:28:00 GMT"


@dataclass
class Script:
    """What the server does next: ``fail`` statuses are answered first, one per request, then
    ``truncate`` cuts the next bodies after so many bytes. ``ranges`` turns on 206 answers,
    ``fail_ranged`` answers the next ranged requests with these statuses, ``misrange`` makes a 206
    start at byte 0 whatever was asked; ``weak`` sends a weak ETag plus Last-Modified."""

    files: dict[str, bytes] = field(default_factory=dict)
    fail: list[int] = field(default_factory=list)
    truncate: list[int] = field(default_factory=list)
    ranges: bool = True
    weak: bool = False
    fail_ranged: list[int] = field(default_factory=list)
    misrange: bool = False
    requests: list[dict[str, str]] = field(default_factory=list)


class _Handler(http.server.BaseHTTPRequestHandler):
    script: Script

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass

    def do_GET(self) -> None:
        script = self.server.script  # type: ignore[attr-defined]
        script.requests.append({"path": self.path, **dict(self.headers)})
        if script.fail:
            self.send_error(script.fail.pop(0))
            return
        body = script.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        etag = f'{"W/" if script.weak else ""}"{hashlib.sha256(body).hexdigest()[:16]}"'
        if self.headers.get("If-None-Match") == etag:
            self.send_response(304)
            self.end_headers()
            return
        start, status = 0, 200
        wanted = self.headers.get("Range", "")
        if wanted and script.fail_ranged:
            self.send_error(script.fail_ranged.pop(0))
            return
        same_version = self.headers.get("If-Range", etag) in (etag, LAST_MODIFIED)
        if script.ranges and wanted.startswith("bytes=") and same_version:
            start, status = (0 if script.misrange else int(wanted[6:].rstrip("-"))), 206
        self.send_response(status)
        self.send_header("ETag", etag)
        if script.weak:
            self.send_header("Last-Modified", LAST_MODIFIED)
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        payload = body[start:]
        if script.truncate:
            payload = payload[: script.truncate.pop(0)]
        self.wfile.write(payload)


@pytest.fixture
def server() -> Iterator[tuple[str, Script]]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.script = Script()  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", httpd.script  # type: ignore[attr-defined]
    finally:
        httpd.shutdown()
        httpd.server_close()


def _get(url: str, dest: Path, **kwargs: object) -> Download:
    state = FetchState(dest.parent / "state.json")
    return download(url, dest, state, progress=False, retry=FAST, **kwargs)  # type: ignore[arg-type]


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name != "state.json")


@pytest.mark.parametrize("status", [500, 502, 503])
def test_retries_after_server_errors(server: tuple[str, Script], tmp_path: Path, status: int) -> None:
    base, script = server
    script.files["/f.bin"] = BODY
    script.fail = [status, status]
    got = _get(f"{base}/f.bin", tmp_path / "f.bin")
    assert got.status == "downloaded" and got.bytes == len(BODY)
    assert (tmp_path / "f.bin").read_bytes() == BODY
    assert got.sha256 == hashlib.sha256(BODY).hexdigest() and got.md5 == hashlib.md5(BODY).hexdigest()
    assert len(script.requests) == 3


def test_gives_up_after_the_last_attempt(server: tuple[str, Script], tmp_path: Path) -> None:
    base, script = server
    script.files["/f.bin"] = BODY
    script.fail = [503, 503, 503]
    with pytest.raises(CinegraphError, match=r"f\.bin: failed after 3 attempts: HTTP 503"):
        _get(f"{base}/f.bin", tmp_path / "f.bin")
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410])
def test_client_errors_are_raised_at_once(server: tuple[str, Script], tmp_path: Path, status: int) -> None:
    base, script = server
    script.files["/f.bin"] = BODY
    script.fail = [status]
    with pytest.raises(HTTPStatusError, match=rf"{base}/f\.bin: HTTP {status}") as info:
        _get(f"{base}/f.bin", tmp_path / "f.bin")
    assert info.value.status == status
    assert len(script.requests) == 1
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("weak", [False, True])
def test_truncated_transfer_resumes_with_range(server: tuple[str, Script], tmp_path: Path, weak: bool) -> None:
    base, script = server
    script.files["/f.bin"] = BODY
    script.weak = weak
    script.truncate = [300_000]
    got = _get(f"{base}/f.bin", tmp_path / "f.bin")
    assert (tmp_path / "f.bin").read_bytes() == BODY
    assert got.sha256 == hashlib.sha256(BODY).hexdigest()
    first, second = script.requests
    assert "Range" not in first
    assert second["Range"] == "bytes=300000-"
    # resumes only the same version of the file; a weak ETag is not allowed in If-Range
    assert second["If-Range"] == (LAST_MODIFIED if weak else f'"{got.sha256[:16]}"')


def test_truncated_transfer_restarts_without_range(server: tuple[str, Script], tmp_path: Path) -> None:
    base, script = server
    script.files["/f.bin"] = BODY
    script.ranges = False
    script.truncate = [300_000, 10]
    got = _get(f"{base}/f.bin", tmp_path / "f.bin")
    assert (tmp_path / "f.bin").read_bytes() == BODY
    assert got.md5 == hashlib.md5(BODY).hexdigest()
    assert len(script.requests) == 3


@pytest.mark.parametrize("script_change", [{"fail_ranged": [416]}, {"misrange": True}])
def test_unusable_range_answer_restarts_from_zero(
    server: tuple[str, Script], tmp_path: Path, script_change: dict[str, object]
) -> None:
    base, script = server
    script.files["/f.bin"] = BODY
    script.truncate = [300_000]
    for key, value in script_change.items():
        setattr(script, key, value)
    got = _get(f"{base}/f.bin", tmp_path / "f.bin")
    assert (tmp_path / "f.bin").read_bytes() == BODY and got.bytes == len(BODY)
    assert ["Range" in r for r in script.requests] == [False, True, False]


def test_partial_file_of_a_killed_run_is_not_resumed(server: tuple[str, Script], tmp_path: Path) -> None:
    base, script = server
    script.files["/f.bin"] = BODY
    (tmp_path / ".f.bin.part").write_bytes(b"some other version")
    _get(f"{base}/f.bin", tmp_path / "f.bin")
    assert (tmp_path / "f.bin").read_bytes() == BODY
    assert "Range" not in script.requests[0] and _leftovers(tmp_path) == ["f.bin"]


def test_truncated_every_time_leaves_nothing(server: tuple[str, Script], tmp_path: Path) -> None:
    base, script = server
    script.files["/f.bin"] = BODY
    script.ranges = False
    script.truncate = [1000, 1000, 1000]
    with pytest.raises(CinegraphError, match="cut short"):
        _get(f"{base}/f.bin", tmp_path / "f.bin")
    assert _leftovers(tmp_path) == []


def test_conditional_get_with_etag(server: tuple[str, Script], tmp_path: Path) -> None:
    base, script = server
    script.files["/f.bin"] = BODY
    first = _get(f"{base}/f.bin", tmp_path / "f.bin")
    second = _get(f"{base}/f.bin", tmp_path / "f.bin")
    assert (first.status, second.status) == ("downloaded", "not_modified")
    assert second.sha256 == first.sha256 and second.bytes == len(BODY)
    assert script.requests[1]["If-None-Match"] == f'"{first.sha256[:16]}"'
    script.files["/f.bin"] = BODY[::-1]  # a new version upstream: new ETag, full download
    third = _get(f"{base}/f.bin", tmp_path / "f.bin")
    assert third.status == "downloaded" and (tmp_path / "f.bin").read_bytes() == BODY[::-1]


def test_unconditional_when_the_file_is_gone(server: tuple[str, Script], tmp_path: Path) -> None:
    base, script = server
    script.files["/f.bin"] = BODY
    _get(f"{base}/f.bin", tmp_path / "f.bin")
    (tmp_path / "f.bin").unlink()
    again = _get(f"{base}/f.bin", tmp_path / "f.bin")
    assert again.status == "downloaded" and (tmp_path / "f.bin").read_bytes() == BODY
    assert "If-None-Match" not in script.requests[1]


def test_md5_mismatch_removes_the_partial_file_and_keeps_the_old_one(
    server: tuple[str, Script], tmp_path: Path
) -> None:
    base, script = server
    (tmp_path / "f.bin").write_bytes(b"previous version")
    script.files["/f.bin"] = BODY
    message = r"^f\.bin: md5 [0-9a-f]{32} does not match the published 0{32}"
    with pytest.raises(CinegraphError, match=message):
        _get(f"{base}/f.bin", tmp_path / "f.bin", expected_md5="0" * 32)
    assert _leftovers(tmp_path) == ["f.bin"]
    assert (tmp_path / "f.bin").read_bytes() == b"previous version"


def test_not_modified_but_corrupt_is_downloaded_again(server: tuple[str, Script], tmp_path: Path) -> None:
    base, script = server
    script.files["/f.bin"] = BODY
    _get(f"{base}/f.bin", tmp_path / "f.bin")
    (tmp_path / "f.bin").write_bytes(b"corrupted on disk")
    got = _get(f"{base}/f.bin", tmp_path / "f.bin", expected_md5=hashlib.md5(BODY).hexdigest())
    assert got.status == "downloaded" and (tmp_path / "f.bin").read_bytes() == BODY
    assert [("If-None-Match" in r) for r in script.requests] == [False, True, False]


def test_connection_refused_is_retried_then_reported(tmp_path: Path) -> None:
    with socket.socket() as sock:  # a port nobody listens on once closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(CinegraphError, match=rf"127\.0\.0\.1:{port}/f\.bin: failed after 3 attempts"):
        _get(f"http://127.0.0.1:{port}/f.bin", tmp_path / "f.bin")
    assert _leftovers(tmp_path) == []


def test_progress_bar_reports_to_stderr(
    server: tuple[str, Script], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base, script = server
    script.files["/f.bin"] = BODY
    download(f"{base}/f.bin", tmp_path / "f.bin", FetchState(tmp_path / "state.json"), retry=FAST)
    assert "f.bin" in capsys.readouterr().err


def test_fetch_text(server: tuple[str, Script]) -> None:
    base, script = server
    script.files["/f.md5"] = b"abc  f\n"
    script.fail = [500]
    assert fetch_text(f"{base}/f.md5", retry=FAST) == "abc  f\n"
    assert fetch_text(f"{base}/absent.md5", retry=FAST) is None
    script.fail = [403]
    with pytest.raises(HTTPStatusError, match="HTTP 403"):
        fetch_text(f"{base}/f.md5", retry=FAST)


def test_state_survives_corruption_and_caches_digests(tmp_path: Path) -> None:
    (tmp_path / "state.json").write_text("{not json")
    state = FetchState(tmp_path / "state.json")
    assert state.validators("http://x/f") == {}
    data = tmp_path / "data.bin"
    data.write_bytes(BODY)
    assert state.digests(data) == (hashlib.sha256(BODY).hexdigest(), hashlib.md5(BODY).hexdigest())
    state.remember("http://x/f", '"e1"', None)
    state.save()
    reloaded = FetchState(tmp_path / "state.json")
    assert reloaded.validators("http://x/f") == {"etag": '"e1"'}
    assert reloaded.digests(data)[0] == hashlib.sha256(BODY).hexdigest()
    data.write_bytes(b"changed size")  # a new size invalidates the cached digest
    assert reloaded.digests(data)[0] == hashlib.sha256(b"changed size").hexdigest()


@pytest.mark.parametrize("kwargs", [{"attempts": 0}, {"backoff_s": -1.0}, {"timeout_s": 0.0}])
def test_retry_policy_rejects_bad_values(kwargs: dict[str, float]) -> None:
    with pytest.raises(CinegraphError, match="must be"):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]
