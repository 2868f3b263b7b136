"""Who may write an output folder: one exclusive lock per folder, taken by every entry point
that writes it (``cinegraph etl``, the refresh flow and so ``demo``, ``cinegraph export``), and
temporary names that carry their owner's pid so only a dead owner's leftovers are removed.

``fcntl.flock`` locks belong to the open file description, so two runs conflict whether they are
two processes or two threads of one worker. The lock is released by the kernel if a run dies.
"""

from __future__ import annotations

import fcntl
import logging
import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cinegraph.errors import CinegraphError

log = logging.getLogger(__name__)
LOCK_FILE = ".cinegraph.lock"


@contextmanager
def locked(out: Path, *, timeout_s: float = 3600.0, poll_s: float = 0.2) -> Iterator[float]:
    """Hold ``out/.cinegraph.lock`` exclusively; yields the seconds spent waiting for it. A run
    that finds the lock held says so once, naming the holder's pid, and waits."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    start = time.monotonic()
    try:
        told = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not told:
                    holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
                    log.warning("%s is held by another run (pid %s): waiting for it to end", path, holder)
                    told = True
                if time.monotonic() - start > timeout_s:
                    raise CinegraphError(f"{path}: another run has held this lock for over {timeout_s:.0f} s") from None
                time.sleep(poll_s)
        waited = time.monotonic() - start
        if waited > poll_s:
            log.info("waited %.1f s for %s", waited, path)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield waited
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def owned_name(prefix: str) -> str:
    """``<prefix>-<pid>-<random>``: a temporary name that says which process made it."""
    return f"{prefix}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def owner_alive(name: str) -> bool:
    """Whether the process that made ``owned_name`` ``name`` still runs (a name without an owner
    pid counts as alive: it is not ours to remove)."""
    parts = name.split("-")
    if len(parts) < 3 or not parts[-2].isdigit():
        return True
    pid = int(parts[-2])
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
