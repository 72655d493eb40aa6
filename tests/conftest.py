"""Fixtures shared by the real-pool tests."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest


@pytest.fixture
def no_thread_left() -> Iterator[None]:
    """A test must leave the threads it found, and no other (after a short grace)."""
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 5.0
    for thread in threading.enumerate():
        if thread not in before:
            thread.join(max(0.0, deadline - time.monotonic()))
    left = [t.name for t in threading.enumerate() if t not in before and t.is_alive()]
    assert not left, f"threads left behind: {left}"


@pytest.fixture
def gates() -> Iterator[Callable[[], threading.Event]]:
    """Make gates (events) that are all opened at teardown, so no task blocks forever."""
    made: list[threading.Event] = []

    def make() -> threading.Event:
        gate = threading.Event()
        made.append(gate)
        return gate

    yield make
    for gate in made:
        gate.set()
