"""real.calibrate: measure this machine, now, for the model to include.

The model predicts the real pool only if it knows what the pool costs beyond a task's
own service and what CPU the process really gets: the Python time a worker spends per
task (dispatch) and a submitter per ``submit``, how much longer than asked a sleep
lasts, how long a thread takes to start, how many cores the process gets when it
computes on many threads (not ``os.cpu_count()``: others may be using some), and what
a hand-over of the interpreter lock costs. See ``docs/model.md`` for how each is used.
"""

from __future__ import annotations

import gc
import itertools
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from typing import Any

import numpy as np

from pool import _validate
from pool.overhead import Overhead
from pool.policies import _choice
from pool.records import Recorder
from pool.tasks import Workload
from real.threaded_pool import ThreadedPool
from real.work import LockFreeWork


def calibrate(
    samples: int = 400,
    sleep_seconds: float = 0.005,
    backend: str = "thread",
    journal: bool = False,
) -> Overhead:
    """Measure this machine's per-task costs, cores and lock hand-over (about 2 s).

    ``samples`` sets how many tasks, sleeps and thread starts are timed; each figure is
    a median or a mean over a batch, in seconds (cores: CPU seconds per second).
    ``backend="process"`` measures a pool of worker processes instead (a few seconds
    more: :mod:`real.process_calibration`), for ``sim.run(..., backend="process")``.
    ``journal=True`` also measures what a journal costs (a few seconds more:
    :mod:`real.journal_calibration`), for ``sim.run(..., journal=True)``.
    """
    samples = _validate.integer_at_least("samples", samples, 10)
    sleep_seconds = _validate.positive("sleep_seconds", sleep_seconds)
    backend = _choice("backend", backend, ("thread", "process"))
    journal = _validate.boolean("journal", journal)
    with _collector_paused():
        figures = _measure(samples, sleep_seconds)
        if backend == "process":
            from real.process_calibration import process_overhead

            figures = process_overhead(figures, samples, sleep_seconds)
    if journal:  # with the collector on: a journal's pool runs with it
        from real.journal_calibration import journal_overhead

        figures = journal_overhead(figures, samples * 5, backend)
    return figures


@contextmanager
def _collector_paused() -> Iterator[None]:
    """No garbage collection while timing: a full collection of a large heap would land
    in one figure (tens of ms amid microseconds); the model has no collector."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _measure(samples: int, sleep_seconds: float) -> Overhead:
    return Overhead(
        dispatch=_dispatch(samples * 10),
        sleep_overshoot=_sleep_overshoot(samples // 4, sleep_seconds),
        thread_start=_thread_start(samples // 4),
        cores=(cores := measure_cores()),
        switch_interval=sys.getswitchinterval(),
        gil_handoff=_lock_handoff(),
        gil_handoff_busy=_lock_handoff(busy_threads=max(1, round(cores))),
        submit=_submit(samples * 10),
    )


def _dispatch(n_tasks: int) -> float:
    """Per-task time of one worker draining a full queue of tasks of no service, run
    as :func:`real.run` runs them (its stand-in service, its done-callback)."""
    from real.injection import Injector

    gate = threading.Event()
    counter = DoneCounter()
    nothing = np.zeros(n_tasks + 1)  # the gate is the pool's task 0
    no_slot = np.full(n_tasks + 1, -1, np.int64)
    workload = Workload(nothing, nothing, np.zeros(n_tasks + 1, np.int64), nothing, no_slot)
    recorder = Recorder(workload, 1)
    with ThreadedPool(
        "fifo", workers=1, thread_name_prefix="poolbench-calibrate", recorder=recorder
    ) as pool:
        injector = Injector(pool._backend, recorder, [], None, frozenset())
        pool.submit(gate.wait)
        futures = [pool.submit(injector.perform, task) for task in range(n_tasks)]
        for future in futures:
            future.add_done_callback(counter)
        started = time.perf_counter()
        gate.set()
        futures[-1].result()
        elapsed = time.perf_counter() - started
    return elapsed / n_tasks


def _submit(n_tasks: int) -> float:
    """Per-call time of ``submit`` plus a done-callback, on the submitting thread."""
    gate = threading.Event()
    counter = DoneCounter()
    with ThreadedPool("fifo", workers=1, thread_name_prefix="poolbench-calibrate") as pool:
        pool.submit(gate.wait)
        submit = pool.submit_with
        started = time.perf_counter()
        for task in range(n_tasks):
            submit(_noop, (task,), priority=0, affinity=None).add_done_callback(counter)
        elapsed = time.perf_counter() - started
        gate.set()
    return elapsed / n_tasks


class DoneCounter:
    """A done-callback as cheap as the one :func:`real.run` uses."""

    def __init__(self) -> None:
        self.count = 0
        self.lock = threading.Lock()

    def __call__(self, _future: Future[Any]) -> None:
        with self.lock:
            self.count += 1


def _noop(*_args: Any) -> None:
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


def measure_cores(seconds: float = 0.3, threads: int | None = None) -> float:
    """CPU seconds per second this process gets computing on ``threads`` threads at once
    (default twice ``os.cpu_count()``), in C code that releases the interpreter lock.

    Each thread hashes for ``seconds`` of its own CPU time; the figure is the CPU time
    all of them received over the wall time they took together, so a core that another
    process holds meanwhile is not counted.
    """
    threads = threads or 2 * (os.cpu_count() or 1)
    work = LockFreeWork(sample_seconds=0.02)
    spans = _in_threads(threads, lambda: _timed(lambda: work.compute(seconds)))
    wall = max(end for _, _, end in spans) - min(start for _, start, _ in spans)
    return float(sum(cpu for cpu, _, _ in spans) / wall)


def _timed(action: Callable[[], None]) -> tuple[float, float, float]:
    """(thread CPU seconds, start, end) of ``action`` on this thread."""
    cpu, started = time.thread_time(), time.perf_counter()
    action()
    return time.thread_time() - cpu, started, time.perf_counter()


def _in_threads(count: int, action: Callable[[], Any]) -> list[Any]:
    results: list[Any] = [None] * count
    barrier = threading.Barrier(count)

    def run(index: int) -> None:
        barrier.wait()
        results[index] = action()

    workers = [threading.Thread(target=run, args=(index,)) for index in range(count)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return results


def _lock_handoff(seconds: float = 0.5, gap: float = 20e-6, busy_threads: int = 0) -> float:
    """How long the interpreter lock is held by nobody when it passes between threads.

    Two threads run pure Python for ``seconds``, so the lock changes hands every switch
    interval. Each notes the spans in which it ran without a break longer than ``gap``;
    merged in time, a span of one thread followed by a span of the other is a hand-over,
    and the time between them is its cost. ``busy_threads`` more threads meanwhile
    compute in C code that releases the lock: with every core busy, the thread the lock
    passes to waits for the scheduler to give it one. Returns the mean cost.
    """
    spans: list[list[tuple[float, float, int]]] = [[], []]
    stop = threading.Event()
    work = LockFreeWork(sample_seconds=0.02) if busy_threads else None

    def compute() -> None:
        while work is not None and not stop.is_set():
            work.compute(0.02)

    others = [threading.Thread(target=compute) for _ in range(busy_threads)]
    for thread in others:
        thread.start()
    deadline = time.perf_counter() + seconds

    def spin(index: int) -> None:
        own = spans[index]
        begin = last = time.perf_counter()
        while (now := time.perf_counter()) < deadline:
            if now - last > gap:
                own.append((begin, last, index))
                begin = now
            last = now
        own.append((begin, last, index))

    try:
        _in_threads_each(spin, 2)
    finally:
        stop.set()
        for thread in others:
            thread.join()
    merged = sorted(spans[0] + spans[1])
    both_running = max(spans[0][0][0], spans[1][0][0])
    costs = [
        max(0.0, after[0] - before[1])
        for before, after in itertools.pairwise(merged)
        if before[2] != after[2] and before[0] >= both_running
    ]
    return statistics.fmean(costs) if costs else 0.0


def _in_threads_each(action: Callable[[int], None], count: int) -> None:
    threads = [threading.Thread(target=action, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
