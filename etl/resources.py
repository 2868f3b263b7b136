"""Wall time and peak memory of each ETL stage, so a full-size run shows where its memory goes.

``with usage("match: scoring"):`` logs the stage's seconds and its own peak RSS (the kernel's
high-water mark, reset when the stage starts: Linux ``/proc/self/clear_refs``) and, inside
:func:`recording`, adds it to the run's list, which :func:`etl.pipeline.run_etl` writes to the run
log. Nested stages fold their peak into the enclosing one. Where the mark cannot be reset the peak
is the process's peak so far.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import re
import resource
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")
_HWM_RE = re.compile(r"^VmHWM:\s+(\d+) kB", re.MULTILINE)


@dataclass(frozen=True)
class StageUsage:
    """One finished stage: seconds of wall time and the highest RSS seen while it ran."""

    name: str
    seconds: float
    peak_rss_bytes: int


_records: contextvars.ContextVar[list[StageUsage] | None] = contextvars.ContextVar("etl_usage", default=None)
_open_peaks: contextvars.ContextVar[tuple[list[int], ...]] = contextvars.ContextVar("etl_open", default=())


def peak_rss() -> int:
    """The process's RSS high-water mark in bytes (since the last reset)."""
    try:
        match = _HWM_RE.search(_STATUS.read_text())
    except OSError:
        match = None
    if match is None:  # not Linux: ru_maxrss is kB on Linux, bytes on macOS; never reset
        maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return maxrss if sys.platform == "darwin" else maxrss * 1024
    return int(match.group(1)) * 1024


def reset_peak_rss() -> None:
    """Set the high-water mark of :func:`peak_rss` to the current RSS (Linux; elsewhere nothing)."""
    with contextlib.suppress(OSError):
        _CLEAR_REFS.write_text("5")


@contextmanager
def recording() -> Iterator[list[StageUsage]]:
    """Collect every stage finished inside the block into the yielded list."""
    stages: list[StageUsage] = []
    token = _records.set(stages)
    try:
        yield stages
    finally:
        _records.reset(token)


@contextmanager
def usage(name: str) -> Iterator[None]:
    """Time one stage and record its own peak RSS (see the module docstring)."""
    outer = _open_peaks.get()
    if outer:  # the enclosing stage keeps what it reached before this one resets the mark
        outer[-1][0] = max(outer[-1][0], peak_rss())
    mine = [0]
    token = _open_peaks.set((*outer, mine))
    reset_peak_rss()
    start = time.perf_counter()
    try:
        yield
    finally:
        seconds = time.perf_counter() - start
        mine[0] = max(mine[0], peak_rss())
        _open_peaks.reset(token)
        if outer:
            outer[-1][0] = max(outer[-1][0], mine[0])
        record = StageUsage(name, seconds, mine[0])
        stages = _records.get()
        if stages is not None:
            stages.append(record)
        log.info("stage %s: %.1f s, peak RSS %.0f MB", name, seconds, mine[0] / 2**20)
