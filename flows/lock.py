"""An exclusive lock on an output directory, so two refresh runs never interleave their writes.

``fcntl.flock`` locks belong to the open file description, so two runs conflict whether they are
two processes or two threads of one worker. The lock is released by the kernel if a run dies.
"""

from __future__ import annotations

import fcntl
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from graph_store.errors import CinegraphError

log = logging.getLogger(__name__)
LOCK_FILE = ".cinegraph.lock"


@contextmanager
def locked(out: Path, *, timeout_s: float = 3600.0, poll_s: float = 0.2) -> Iterator[float]:
    """Hold ``out/.cinegraph.lock`` exclusively; yields the seconds spent waiting for it."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    start = time.monotonic()
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() - start > timeout_s:
                    raise CinegraphError(
                        f"{path}: another run has held this lock for over {timeout_s:.0f} s"
                    ) from None
                time.sleep(poll_s)
        waited = time.monotonic() - start
        if waited > poll_s:
            log.info("waited %.1f s for %s", waited, path)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield waited
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
