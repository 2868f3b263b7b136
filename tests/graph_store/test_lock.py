"""The output-folder lock: exclusive across holders, released on exit, bounded wait."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from graph_store.lock import locked
from graph_store.errors import CinegraphError


def test_second_holder_waits_for_the_first(tmp_path: Path) -> None:
    events: list[str] = []
    inside = threading.Event()

    def first() -> None:
        with locked(tmp_path):
            inside.set()
            time.sleep(0.5)
            events.append("first out")

    thread = threading.Thread(target=first)
    thread.start()
    inside.wait(5)
    with locked(tmp_path, poll_s=0.02) as waited:
        events.append("second in")
    thread.join()
    assert events == ["first out", "second in"] and waited >= 0.3


def test_waiting_too_long_is_a_clear_error(tmp_path: Path) -> None:
    with locked(tmp_path), pytest.raises(CinegraphError, match="held this lock"), locked(tmp_path, timeout_s=0.2):
        pass
    with locked(tmp_path) as waited:  # released by both exits
        assert waited < 0.2
