"""Taking the pool lock under the interpreter lock: yield a few times before sleeping.

Every submit and every worker step takes the pool lock for a few microseconds. When it
is held, the holder is almost always a thread that lost the interpreter lock (the GIL)
inside its short critical section and waits to get it back; a blocking
``Lock.acquire`` then puts the caller to sleep in the kernel and costs two context
switches, and the holder, once it releases the lock, wakes a sleeper that must fight for
the GIL in turn (a lock convoy). Yielding the GIL instead (``time.sleep(0)``) lets the
holder run to the end of its section, and the lock is usually free on the next try.
After ``SPINS`` tries the caller blocks as usual, so a lock held for long (a policy hook
that blocks) costs no CPU. Measured in ``benchmarks/README.md`` ("Lock handoff").
"""

from __future__ import annotations

import threading
import time

#: Times a contended caller yields the GIL and retries before it blocks.
SPINS = 8


def take(lock: threading.Lock) -> None:
    """Acquire ``lock``, yielding the GIL up to :data:`SPINS` times before blocking."""
    if lock.acquire(False):
        return
    for _ in range(SPINS):
        time.sleep(0)
        if lock.acquire(False):
            return
    lock.acquire()
