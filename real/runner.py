"""real.run: replay a workload in wall-clock time through a ThreadedPool and record it.

Each task is submitted at its arrival instant (seconds from the pool's start) and its
service is performed for real: a busy loop for the CPU part, a sleep for the rest. The
run's FaultPlan is injected at the same instants as in the model, and the result has
the same schema as ``sim.run``'s.
"""

from __future__ import annotations

import concurrent.futures
import threading
import time
from collections.abc import Callable
from typing import Any

from pool import _validate
from pool.faults import FaultPlan, Recovery, run_faults
from pool.policies import Policy, resolve
from pool.records import Recorder
from pool.results import RunResult
from pool.seeding import run_streams
from pool.tasks import Workload
from real.injection import InjectedError, Injector, lock_free_work
from real.threaded_pool import ThreadedPool


def run(
    workload: Workload,
    policy: str | Policy = "fifo",
    workers: int = 4,
    faults: FaultPlan | None = None,
    recovery: Recovery | None = None,
    seed: int = 0,
    timeout: float | None = None,
    perform: Callable[[int], Any] | None = None,
) -> RunResult:
    """Run ``workload`` on a real pool of ``workers`` threads under ``policy``.

    ``timeout`` (seconds, default: three times the workload's span plus its total service
    per worker, plus 30 s) bounds the wait; tasks unfinished by then are reported
    ``lost``. Takes as long as the workload lasts in real time. ``perform(task)``, if
    given, is what task ``task`` (its index) does, in place of the stand-in service the
    workload describes: real code, replayed at the workload's arrivals; the FaultPlan's
    crashes and hangs then cannot be injected (they interrupt the stand-in service).
    """
    if not isinstance(workload, Workload):
        raise ValueError(f"workload must be a pool.Workload, got {workload!r}")
    policy = resolve(policy)
    workers = _validate.integer_at_least("workers", workers, 1)
    faults = _validate.optional("faults", faults, FaultPlan, FaultPlan)
    recovery = _validate.optional("recovery", recovery, Recovery, Recovery)
    if perform is not None and not callable(perform):
        raise ValueError(f"perform must be a callable of the task index, got {perform!r}")
    stand_in_faults = faults.crashes or faults.hangs or faults.crash_mtbf or faults.hang_mtbf
    if perform is not None and (stand_in_faults or faults.poison_tasks):
        raise ValueError("faults: crashes, hangs and poison need the stand-in service, not perform")
    streams = run_streams(seed)
    total_service = float(workload.service.sum())
    if timeout is None:
        timeout = 3.0 * (workload.duration + total_service / workers) + 30.0
    timeout = _validate.positive("timeout", timeout)
    schedule, failures = run_faults(
        faults, workload, workers, policy.max_workers, recovery.max_attempts, streams
    )
    recorder = Recorder(workload, workers)
    # Measured now, not on the pool's clock: the replay must start when the pool does.
    lock_free = lock_free_work(workload) if perform is None and workload.parts[1].any() else None
    pool = ThreadedPool(
        policy,
        workers,
        recovery,
        retry_exceptions=(InjectedError,),
        seed=seed,
        thread_name_prefix="poolbench-run",
        recorder=recorder,
    )
    poison = frozenset(faults.poison_tasks)
    injector = Injector(pool._backend, recorder, schedule, failures, poison, lock_free)
    try:
        injector.start()
        resolved = _Countdown(len(workload))
        _replay(pool, perform or injector.perform, workload, resolved)
        resolved.done.wait(timeout)
    finally:
        injector.stop()
        pool.shutdown(wait=True, cancel_pending=True)
    meta: dict[str, Any] = {
        "policy": policy.describe(),
        "workers": workers,
        "seed": seed,
        "recovery": vars(recovery),
        "end_time": pool.now(),
    }
    return recorder.result("real", meta)


class _Countdown:
    """Counts futures as they resolve, so a replay keeps none of them alive."""

    def __init__(self, count: int) -> None:
        self.remaining = count
        self.lock = threading.Lock()
        self.done = threading.Event()
        if not count:
            self.done.set()

    def __call__(self, _future: concurrent.futures.Future[Any]) -> None:
        with self.lock:
            self.remaining -= 1
            if not self.remaining:
                self.done.set()


def _replay(
    pool: ThreadedPool,
    perform: Callable[[int], Any],
    workload: Workload,
    resolved: _Countdown,
) -> None:
    arrival, priority = workload.arrival.tolist(), workload.priority.tolist()
    affinity = workload.affinity.tolist()
    for task, due in enumerate(arrival):
        wait = due - pool.now()
        if wait > 0:  # never early: a task must not start before it arrives
            time.sleep(wait)
        slot = affinity[task]
        future = pool.submit_with(
            perform, (task,), priority=priority[task], affinity=None if slot < 0 else slot
        )
        future.add_done_callback(resolved)
