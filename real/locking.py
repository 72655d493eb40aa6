"""Taking the pool lock under the interpreter lock: yield a few times before sleeping.

Every submit and every worker step takes the pool lock for a few microseconds. When it
is held, the holder is almost always a thread that lost the interpreter lock (the GIL)
inside its short critical section and waits to get it back; a blocking
``acquire`` then puts the caller to sleep in the kernel and costs two context switches,
and the holder, once it releases the lock, wakes a sleeper that must fight for the GIL
in turn (a lock convoy). Yielding the GIL instead (``time.sleep(0)``) lets the holder run
to the end of its section, and the lock is usually free on the next try. After
``SPINS`` tries the caller blocks as usual, so a lock held for long (a policy hook that
blocks) costs no CPU. Measured in ``benchmarks/README.md`` ("A lead over the executor").

The pool lock is an ``RLock`` (its owner is known) so that :func:`take` can give it back
when a KeyboardInterrupt arrives just after an acquire succeeded and before the caller's
``try`` block: a plain ``Lock`` would stay held for ever, and the pool with it.
"""

from __future__ import annotations

import threading
import time
from typing import Any

#: Times a contended caller yields the GIL and retries before it blocks.
SPINS = 8


def new_lock() -> Any:
    """The pool lock: an ``RLock`` (typed Any: typeshed gives it no public class)."""
    return threading.RLock()


def take(lock: Any) -> None:
    """Acquire ``lock`` (from :func:`new_lock`), yielding the GIL up to :data:`SPINS` times
    before blocking. Call it right before the ``try`` whose ``finally`` releases it."""
    try:
        if lock.acquire(False):
            return
        for _ in range(SPINS):
            time.sleep(0)
            if lock.acquire(False):
                return
        lock.acquire()
    except BaseException:  # e.g. Ctrl-C right after an acquire succeeded
        if lock._is_owned():
            lock.release()
        raise
