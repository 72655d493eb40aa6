"""What runs inside a worker process of :class:`real.ProcessPool`.

The parent sends each task as one pickled ``(fn, args, kwargs)`` message over a pipe; the
child answers with one pickled ``(completed, result or exception, traceback text, CPU
seconds, peak memory)``: the CPU time of its thread over the call (for ``record=True``
traces) and its peak resident memory so far (``ru_maxrss``, kB on Linux), against which
the parent may recycle it. An empty message asks it to end. A daemon thread writes
``time.monotonic()`` into a shared double every half heartbeat interval: a child that
is stopped (SIGSTOP) or stuck in C code that holds its interpreter lock falls silent,
and the parent's heartbeat monitor notices. A child ignores SIGINT: Ctrl-C is the parent's.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import resource
import signal
import threading
import time
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection, wait
from typing import Any

#: The message that asks a child to end.
STOP = b""


class RemoteTracebackError(Exception):
    """The traceback of an exception raised in a worker process (its ``__cause__``)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class ResultPicklingError(Exception):
    """A task's result (or exception) could not be pickled back to the parent."""


def _beat(beat: Any, interval_s: float) -> None:
    """Write the heartbeat every ``interval_s``; end this process if its parent is gone
    (a forked child holds the parent's end of the pipes and would never see EOF)."""
    parent = multiprocessing.parent_process()
    watched = [] if parent is None else [parent.sentinel]
    while True:
        beat.value = time.monotonic()
        if watched and wait(watched, interval_s):
            os._exit(1)
        if not watched:
            time.sleep(interval_s)


Answer = tuple[bool, Any, str, float, int]


def _answer(outcome: Answer) -> bytes:
    try:
        return pickle.dumps(outcome, pickle.HIGHEST_PROTOCOL)
    except Exception as error:  # the result or the exception cannot cross
        what = "result" if outcome[0] else f"exception {outcome[1]!r}"
        failure = ResultPicklingError(f"the task's {what} could not be pickled: {error!r}")
        return pickle.dumps((False, failure, *outcome[2:]), pickle.HIGHEST_PROTOCOL)


def serve(
    conn: Connection,
    beat: Any,
    beat_interval_s: float,
    initializer: Callable[..., object] | None,
    initargs: tuple[Any, ...],
) -> None:
    """The child's main: start beating, run ``initializer``, then answer tasks until
    :data:`STOP` or the parent's end of the pipe closes."""
    # A terminal's Ctrl-C reaches the whole process group: the parent decides what it
    # stops (its shutdown ends the children), so a running task is not cut in the middle.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_beat, args=(beat, beat_interval_s), daemon=True).start()
    if initializer is not None:
        try:
            initializer(*initargs)
        except BaseException as error:
            conn.send_bytes(_answer((False, error, traceback.format_exc(), 0.0, 0)))
            return
    conn.send_bytes(_answer((True, None, "", 0.0, 0)))  # ready
    while True:
        try:
            message = conn.recv_bytes()
        except (EOFError, OSError):  # the parent is gone
            return
        if message == STOP:
            return
        began = time.thread_time()
        try:
            fn, args, kwargs = pickle.loads(message)
            outcome: Answer = (True, fn(*args, **kwargs), "", 0.0, 0)
        except Exception as error:
            outcome = (False, error, traceback.format_exc(), 0.0, 0)
        cpu_seconds = time.thread_time() - began
        peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        conn.send_bytes(_answer((*outcome[:3], cpu_seconds, peak_kb)))
        del message, outcome
