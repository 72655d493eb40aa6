"""real.run: replay a workload in wall-clock time through a real pool and record it.

Each task is submitted at its arrival instant (seconds from the pool's start) and its
service is performed for real: a busy loop for the CPU part, a sleep for the rest. The
run's FaultPlan is injected at the same instants as in the model, and the result has
the same schema as ``sim.run``'s.
"""

from __future__ import annotations

import concurrent.futures
import pickle
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from pool import _validate
from pool.faults import FaultPlan, Recovery, run_faults
from pool.policies import Policy, _choice, resolve
from pool.records import Recorder
from pool.results import RunResult
from pool.seeding import run_streams
from pool.tasks import Workload
from real.injection import InjectedError, Injector, lock_free_work
from real.pool_executor import PoolExecutor
from real.process_replay import SignalInjector, StandIn, by_index, start_process_pool
from real.processes import WorkerProcesses
from real.threaded_pool import ThreadedPool

#: The kinds of worker :func:`run` replays on.
BACKENDS = ("thread", "process")


def run(
    workload: Workload,
    policy: str | Policy = "fifo",
    workers: int = 4,
    faults: FaultPlan | None = None,
    recovery: Recovery | None = None,
    seed: int = 0,
    timeout: float | None = None,
    perform: Callable[[int], Any] | None = None,
    backend: str = "thread",
    journal: bool = False,
) -> RunResult:
    """Run ``workload`` on a real pool of ``workers`` threads under ``policy``.

    ``timeout`` (seconds, default: three times the workload's span plus its total service
    per worker, plus 30 s) bounds the wait; tasks unfinished by then are reported
    ``lost``. Takes as long as the workload lasts in real time. ``perform(task)``, if
    given, is what task ``task`` (its index) does, in place of the stand-in service the
    workload describes: real code, replayed at the workload's arrivals.

    ``backend``: "thread" (a :class:`real.ThreadedPool`; the FaultPlan's crashes and
    hangs interrupt the stand-in service, so they need it) or "process" (a
    :class:`real.ProcessPool`: crashes are ``SIGKILL`` of the worker process, hangs
    ``SIGSTOP`` then ``SIGCONT``, so they reach ``perform`` too; ``perform`` must be
    picklable; see :mod:`real.process_replay`). The replay starts once every worker
    process is ready (``meta["workers_ready"]``, pool seconds: arrivals before it wait).
    Poison tasks need the stand-in service on either backend.

    ``journal=True``: the pool keeps its tasks in a journal, and the FaultPlan's
    ``pool_restarts`` are real: the replay runs in a program of its own, killed with
    ``SIGKILL`` (its worker processes too) at each restart and started again after the
    downtime, its pool resuming from the journal (:mod:`real.restart_replay`). It takes
    the stand-in service and no other faults. Pool restarts need the journal here (the
    model can also say what a pool without one loses).
    """
    if not isinstance(workload, Workload):
        raise ValueError(f"workload must be a pool.Workload, got {workload!r}")
    policy = resolve(policy)
    workers = _validate.integer_at_least("workers", workers, 1)
    faults = _validate.optional("faults", faults, FaultPlan, FaultPlan)
    recovery = _validate.optional("recovery", recovery, Recovery, Recovery)
    if perform is not None and not callable(perform):
        raise ValueError(f"perform must be a callable of the task index, got {perform!r}")
    backend = _choice("backend", backend, BACKENDS)
    journal = _validate.boolean("journal", journal)
    _check_journaled(journal, faults, perform)
    stand_in_faults = faults.crashes or faults.hangs or faults.crash_mtbf or faults.hang_mtbf
    if perform is not None and faults.poison_tasks:
        raise ValueError("faults: poison tasks need the stand-in service, not perform")
    if perform is not None and stand_in_faults and backend == "thread":
        raise ValueError(
            "faults: crashes and hangs of threads need the stand-in service, not perform "
            '(backend="process" delivers them as signals)'
        )
    if perform is not None and backend == "process":
        _check_picklable(perform)
    streams = run_streams(seed)
    total_service = float(workload.service.sum())
    if timeout is None:
        timeout = 3.0 * (workload.duration + total_service / workers) + 30.0
        timeout += sum(downtime for _, downtime in faults.pool_restarts)
    timeout = _validate.positive("timeout", timeout)
    if journal:
        from real.restart_replay import run_journaled

        return run_journaled(workload, policy, workers, faults, recovery, seed, timeout, backend)
    schedule, failures = run_faults(
        faults, workload, workers, policy.max_workers, recovery.max_attempts, streams
    )
    recorder = Recorder(workload, workers)
    poison = frozenset(faults.poison_tasks)
    pool: PoolExecutor
    injector: Injector | SignalInjector
    if backend == "thread":
        # Measured now, not on the pool's clock: the replay must start when the pool does.
        computes = perform is None and workload.parts[1].any()
        lock_free = lock_free_work(workload) if computes else None
        pool = ThreadedPool(
            policy,
            workers,
            recovery,
            retry_exceptions=(InjectedError,),
            seed=seed,
            thread_name_prefix="poolbench-run",
            recorder=recorder,
        )
        injector = Injector(pool._backend, recorder, schedule, failures, poison, lock_free)
        call: Callable[[int], Any] = perform or injector.perform
    else:
        stand_in = None if perform is not None else StandIn.of(workload, failures, poison)
        pool = start_process_pool(policy, workers, recovery, seed, recorder, stand_in)
        assert isinstance(pool._backend, WorkerProcesses)
        injector = SignalInjector(pool._backend, schedule)
        call = perform or by_index  # the replay pool builds each attempt's message
    workers_ready = pool.now()
    try:
        injector.start()
        resolved = _Countdown(len(workload))
        _replay(pool, call, workload, resolved)
        resolved.done.wait(timeout)
    finally:
        injector.stop()
        pool.shutdown(wait=True, cancel_pending=True)
    meta = run_meta(policy, workers, seed, recovery, pool.now(), backend)
    return recorder.result("real", {**meta, "workers_ready": workers_ready})


def run_meta(
    policy: Policy, workers: int, seed: int, recovery: Recovery, end_time: float, backend: str
) -> dict[str, Any]:
    """What a real run records of itself (``RunResult.meta``); ``end_time`` in seconds."""
    return {
        "policy": policy.describe(),
        "workers": workers,
        "seed": seed,
        "recovery": vars(recovery),
        "end_time": end_time,
        "backend": backend,
    }


def _check_journaled(journal: bool, faults: FaultPlan, perform: object) -> None:
    """A journaled replay takes pool restarts and the stand-in service alone; pool
    restarts need the journal."""
    if not journal:
        if faults.pool_restarts:
            raise ValueError(
                "faults: pool_restarts need journal=True (a pool's program "
                "restarted without a journal has nothing to resume)"
            )
        return
    if perform is not None:
        raise ValueError("perform: a journaled replay runs the stand-in service only")
    others = replace(faults, pool_restarts=())
    if others != FaultPlan():
        raise ValueError(
            "faults: a journaled replay injects pool_restarts only, not crashes, hangs, "
            f"failing or poison tasks; got {faults!r}"
        )


def _check_picklable(perform: Callable[[int], Any]) -> None:
    try:
        pickle.dumps(perform)
    except Exception as error:
        raise ValueError(
            f'perform must be picklable for backend="process" (an importable function): {error}'
        ) from error


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
    pool: PoolExecutor,
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
