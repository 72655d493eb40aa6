"""Stand-in computing for replayed workloads: with and without the interpreter lock.

:func:`real.run` performs each task's service in the three kinds the model knows
(:attr:`pool.Workload.parts`): computing that holds the interpreter lock (a pure-Python
loop, timed by the thread's own CPU clock, so it takes that much CPU whatever the
machine's speed), computing that releases it (one call of ``hashlib.sha256`` over a
buffer sized from the measured hashing speed: the lock is released once, for the whole
call, as real C code releases it), and waiting (an interruptible sleep).
"""

from __future__ import annotations

import hashlib
import statistics
import time
from collections.abc import Callable

#: Bytes hashed per call at most; longer lock-free parts take several calls.
_BUFFER_BYTES = 16 << 20


class LockFreeWork:
    """Burns CPU seconds in C code that releases the interpreter lock (SHA-256).

    ``bytes_per_second`` is measured once, on this thread, when the object is made
    (about 0.1 s): a single thread's hashing speed with nothing else running, on calls
    of the size that computing ``typical_seconds`` takes (a call over more memory than
    the caches hold is slower per byte).
    """

    def __init__(self, sample_seconds: float = 0.1, typical_seconds: float = 0.003) -> None:
        self._buffer = memoryview(bytes(_BUFFER_BYTES))
        rough = hashing_speed(self._buffer, sample_seconds / 4, 1 << 20)
        size = int(min(max(typical_seconds * rough, 1 << 16), _BUFFER_BYTES))
        self.bytes_per_second = hashing_speed(self._buffer, sample_seconds, size)

    def compute(self, seconds: float) -> None:
        """Spend about ``seconds`` of this thread's CPU time hashing, without the lock."""
        remaining = int(seconds * self.bytes_per_second)
        while remaining > 0:
            chunk = min(remaining, _BUFFER_BYTES)
            hashlib.sha256(self._buffer[:chunk])
            remaining -= chunk


def hashing_speed(buffer: memoryview, sample_seconds: float, call_bytes: int) -> float:
    """Bytes per CPU second that ``hashlib.sha256`` hashes on this thread, in calls of
    ``call_bytes`` bytes of ``buffer``: the median over the calls of ``sample_seconds``,
    after one untimed call that maps the buffer's pages in."""
    chunk = buffer[: min(len(buffer), call_bytes)]
    hashlib.sha256(chunk)
    rates: list[float] = []
    deadline = time.thread_time() + sample_seconds
    while not rates or time.thread_time() < deadline:
        started = time.thread_time()
        hashlib.sha256(chunk)
        spent = time.thread_time() - started
        if spent > 0:
            rates.append(len(chunk) / spent)
    return statistics.median(rates)


def hold_lock_for(cpu_seconds: float, interrupted: Callable[[], bool] | None = None) -> None:
    """Spend ``cpu_seconds`` of this thread's CPU time in pure Python (holding the lock).

    ``interrupted`` is polled between slices of about 10 µs; when it returns True the
    loop stops early (the caller serves what interrupted it and calls again).
    """
    end = time.thread_time() + cpu_seconds
    while time.thread_time() < end:
        if interrupted is not None and interrupted():
            return
        for _ in range(200):
            pass
