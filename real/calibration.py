"""real.calibrate: measure this machine's per-task costs, for the model to include.

The model predicts the real pool only if it knows what the pool costs beyond a task's
own service: the time a worker spends between tasks (dispatch), how much longer than
asked a sleep lasts (sleep overshoot), and how long a thread takes to start.
"""

from __future__ import annotations

import statistics
import threading
import time

from pool import _validate
from pool.overhead import Overhead
from real.threaded_pool import ThreadedPool


def calibrate(samples: int = 400, sleep_seconds: float = 0.005) -> Overhead:
    """Measure dispatch overhead, sleep overshoot and thread start time (about a second).

    ``samples`` sets how many tasks, sleeps and thread starts are timed; each figure is
    a median (dispatch: a mean over a batch), in seconds.
    """
    samples = _validate.integer_at_least("samples", samples, 10)
    sleep_seconds = _validate.positive("sleep_seconds", sleep_seconds)
    return Overhead(
        dispatch=_dispatch(samples * 10),
        sleep_overshoot=_sleep_overshoot(samples // 4, sleep_seconds),
        thread_start=_thread_start(samples // 4),
    )


def _dispatch(n_tasks: int) -> float:
    """Per-task time of one worker draining a full queue of no-op tasks."""
    gate = threading.Event()
    with ThreadedPool("fifo", workers=1, name="poolbench-calibrate") as pool:
        pool.submit(gate.wait)
        futures = [pool.submit(_noop) for _ in range(n_tasks)]
        started = time.perf_counter()
        gate.set()
        futures[-1].result()
        elapsed = time.perf_counter() - started
    return elapsed / n_tasks


def _noop() -> None:
    return None


def _sleep_overshoot(count: int, seconds: float) -> float:
    """How much longer than asked an interruptible sleep lasts, as the real runner sleeps."""
    event = threading.Event()
    overshoots = []
    for _ in range(max(count, 5)):
        started = time.monotonic()
        event.wait(seconds)
        overshoots.append(time.monotonic() - started - seconds)
    return max(0.0, statistics.median(overshoots))


def _thread_start(count: int) -> float:
    """From asking for a thread to it running its first line."""
    durations = []
    for _ in range(max(count, 5)):
        running = threading.Event()
        started = time.perf_counter()
        thread = threading.Thread(target=running.set)
        thread.start()
        running.wait()
        durations.append(time.perf_counter() - started)
        thread.join()
    return statistics.median(durations)
