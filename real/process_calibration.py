"""``real.calibrate(backend="process")``: what a pool of worker processes costs here.

Measured as :func:`real.run` runs a workload on processes (a :class:`ReplayPool`, its
stand-in service, its done-callback):

* ``dispatch``: the parent's CPU time per task while one worker process drains a full
  queue of tasks with no service: the dispatching thread's Python (building the call,
  the pipe, the answer, the future), which holds the parent's interpreter lock.
* ``remote_call``: per task of a drain of tasks that each sleep ``sleep_seconds``, the
  time beyond the sleep, its overshoot and the dispatch: the round trip through the pipe
  (the wake-ups of both sides) and the child's side of the call. The same for tasks of
  other lengths (none, 1 ms, 2 ms, 20 ms) gives ``remote_call_curve``: a side that waited
  longer wakes more slowly (0.02 ms a task in a drain of no-op tasks, 0.5 ms after 5 ms
  sleeps here).
* ``submit``: one ``submit_with`` and its done-callback on the submitting thread.
* ``exit_detection`` and ``thread_start``: the single worker process of a pool is
  SIGKILLed a few times; the medians of the time from the kill to its worker declared
  dead, and from its restart to the new process beginning a task (a new process imports
  the parent's main module first).

* ``cores``: the CPU seconds per second that worker processes get, measured with twice
  as many processes as CPUs draining 10 ms tasks of pure Python (about 1.85 of 2 here,
  where threads of one process get 1.97: the parent, its threads and the switches
  between processes take the rest).

The other machine figures (sleep overshoot, the interpreter lock's switch interval and
hand-over) are the threaded pool's (:mod:`real.calibration`): the parent's dispatching
threads share one lock as any threads do.
"""

from __future__ import annotations

import os
import signal
import statistics
import time
from dataclasses import replace

import numpy as np

from pool.faults import Recovery
from pool.overhead import Overhead
from pool.policies import FIFO
from pool.records import Recorder
from pool.tasks import Workload
from real.calibration import DoneCounter
from real.process_replay import ReplayPool, StandIn, by_index, start_process_pool

#: Seconds the first task holds the single worker while the queue is filled.
GATE_SECONDS = 0.3
#: CPU seconds of each task of the drain that measures the cores processes get.
CORES_TASK_SECONDS = 0.01
#: Task lengths (s) at which the remote call is measured besides none and ``sleep_seconds``.
CURVE_SECONDS = (0.001, 0.002, 0.02)


def process_overhead(thread_figures: Overhead, samples: int, sleep_seconds: float) -> Overhead:
    """``thread_figures`` (a thread calibration) with the process pool's own costs."""
    dispatch, beyond_nothing = _drain(samples * 5, 0.0)
    curve = [(0.0, max(0.0, beyond_nothing - dispatch))]
    for task_seconds in sorted({*CURVE_SECONDS, sleep_seconds}):
        n_tasks = max(10, round(samples * min(1.0, sleep_seconds / task_seconds)))
        _, beyond_sleep = _drain(n_tasks, task_seconds)
        remote = beyond_sleep - dispatch - thread_figures.sleep_overshoot
        curve.append((task_seconds, max(0.0, remote)))
    exit_detection, process_start = _restart(max(3, samples // 80))
    return replace(
        thread_figures,
        cores=_process_cores(max(10, samples // 10), dispatch),
        dispatch=dispatch,
        remote_call=dict(curve)[sleep_seconds],
        remote_call_curve=tuple(curve),
        submit=_submit(samples * 5),
        thread_start=process_start,
        exit_detection=exit_detection,
    )


def _pool(n_tasks: int, gate_seconds: float, wait_seconds: float = 0.0) -> ReplayPool:
    """A replay pool of one worker process for ``n_tasks`` tasks that wait
    ``wait_seconds``, the first of which waits ``gate_seconds``."""
    waits = np.full(n_tasks, wait_seconds)
    waits[0] = gate_seconds
    nothing = np.zeros(n_tasks)
    workload = Workload(nothing, waits, np.zeros(n_tasks, np.int64), nothing, np.full(n_tasks, -1))
    stand_in = StandIn.of(workload, None, frozenset())
    pool = start_process_pool(FIFO(), 1, Recovery(), 0, Recorder(workload, 1), stand_in)
    assert isinstance(pool, ReplayPool)
    return pool


def _drain(n_tasks: int, wait_seconds: float) -> tuple[float, float]:
    """Per task of one worker draining a queue of tasks that sleep ``wait_seconds``: the
    parent's CPU seconds, and the wall seconds beyond the sleep. The dispatch is taken
    from a drain without sleeps (the parent's own work; its idle threads' ticks would
    count in a slow drain); the round trip from one with sleeps (after a sleep the
    wake-ups cost more than in a tight loop: 0.7 ms against 0.15 ms a task here)."""
    pool = _pool(n_tasks + 1, GATE_SECONDS, wait_seconds)
    try:
        counter = DoneCounter()
        gate = pool.submit_with(by_index, (0,))
        futures = [pool.submit_with(by_index, (task,)) for task in range(1, n_tasks + 1)]
        for future in futures:
            future.add_done_callback(counter)
        gate.result()
        wall, cpu = time.perf_counter(), time.process_time()
        futures[-1].result()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    finally:
        pool.shutdown(wait=True)
    per_task_cpu = cpu / n_tasks
    return per_task_cpu, max(0.0, wall / n_tasks - wait_seconds)


def _process_cores(tasks_per_worker: int, dispatch: float) -> float:
    """The cores worker processes get: twice as many processes as the machine has CPUs
    drain tasks of pure Python; the CPU seconds delivered (the tasks' and the parent's
    dispatch) per second of the drain."""
    workers = 2 * (os.cpu_count() or 1)
    n_tasks = tasks_per_worker * workers
    cpu = np.full(n_tasks, CORES_TASK_SECONDS)
    nothing = np.zeros(n_tasks)
    workload = Workload(
        nothing, cpu, np.zeros(n_tasks, np.int64), np.ones(n_tasks), np.full(n_tasks, -1)
    )
    stand_in = StandIn.of(workload, None, frozenset())
    pool = start_process_pool(FIFO(), workers, Recovery(), 0, Recorder(workload, workers), stand_in)
    try:
        started = time.perf_counter()
        futures = [pool.submit_with(by_index, (task,)) for task in range(n_tasks)]
        for future in futures:
            future.result()
        wall = time.perf_counter() - started
    finally:
        pool.shutdown(wait=True)
    return n_tasks * (CORES_TASK_SECONDS + dispatch) / wall


def _submit(n_tasks: int) -> float:
    """Per call of ``submit_with`` plus a done-callback, while the worker is held."""
    pool = _pool(n_tasks + 1, 0.5)
    try:
        counter = DoneCounter()
        pool.submit_with(by_index, (0,))
        submit = pool.submit_with
        started = time.perf_counter()
        for task in range(1, n_tasks + 1):
            submit(by_index, (task,), priority=0, affinity=None).add_done_callback(counter)
        elapsed = time.perf_counter() - started
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return elapsed / n_tasks


def _restart(count: int) -> tuple[float, float]:
    """Medians over ``count`` SIGKILLs of a pool's one worker process: (from the kill to
    the worker declared dead, from its restart to the new process beginning a task)."""
    pool = _pool(count + 1, 0.0)
    backend, recorder = pool._backend, pool._backend.recorder
    assert recorder is not None
    detections, starts = [], []
    try:
        pool.submit_with(by_index, (0,)).result()
        for task in range(1, count + 1):
            (pid,) = pool.worker_pids()
            killed = pool.now()
            os.kill(pid, signal.SIGKILL)
            pool.submit_with(by_index, (task,)).result()  # run by the new process
            with backend.lock:
                detected = _first(recorder.events, "detected", killed)
                restarted = _first(recorder.events, "restart", detected)
                detections.append(detected - killed)
                starts.append(recorder.start[task] - restarted)
    finally:
        pool.shutdown(wait=True)
    return statistics.median(detections), statistics.median(starts)


def _first(events: list[tuple[float, str, int, int]], kind: str, since: float) -> float:
    """The time of the first event of ``kind`` at or after ``since``."""
    return min(time for time, what, _, _ in events if what == kind and time >= since)
