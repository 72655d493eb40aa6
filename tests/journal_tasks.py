"""Module-level tasks for the journal tests: a journaled callable must import by name,
in the test process, in a driver process and in a worker process alike."""

from __future__ import annotations

import os
import signal
import time


def square(value: int) -> int:
    """``value`` squared."""
    return value * value


def nap(value: int, seconds: float = 0.05) -> int:
    """Sleep ``seconds``, then return ``value``."""
    time.sleep(seconds)
    return value


def fail(value: int) -> None:
    """Raise KeyError(value)."""
    raise KeyError(value)


def pair(value: int) -> tuple[int, int]:
    """A result JSON cannot hold as it is (a tuple)."""
    return value, value


class Holder:
    """A class whose bound methods are not journalable."""

    def method(self) -> int:
        """One."""
        return 1


def end_process(value: int) -> None:
    """Take the whole process down at once (as a segfault or the OOM killer would)."""
    os.kill(os.getpid(), signal.SIGKILL)
