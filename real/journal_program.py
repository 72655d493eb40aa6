"""The program a replayed pool restart kills: a journaled pool that serves a workload.

    python -m real.journal_program SPEC [START]

:mod:`real.restart_replay` writes ``SPEC`` (a pickle of :class:`ProgramSpec`) and starts
this program; it SIGKILLs it at each of the FaultPlan's pool restarts and starts it
again after the downtime. The program opens its pool on the spec's journal (a restarted
one takes back every unfinished task there), prints ``ready <unix time>`` once the pool
serves, then submits each task of the workload at its arrival (``START``, Unix seconds,
is the instant arrivals count from; the first run's ready instant when not given) with
the task's index as its key: a key the journal holds gives back that task instead of
running it again, so the arrivals of a downtime are submitted at once and the rest at
their instants. It waits for every task and prints ``finished``.
"""

from __future__ import annotations

import pickle
import sys
import time
from concurrent.futures import Future, wait
from dataclasses import dataclass
from typing import Any

from pool.faults import Recovery
from pool.policies import Policy
from real.pool_executor import PoolExecutor
from real.work import LockFreeWork, hold_lock_for


@dataclass(frozen=True)
class ProgramSpec:
    """What the program runs: a workload's arrivals (s from ``START``), each task's
    stand-in parts (lock-holding, lock-free and waiting seconds), priority and affinity
    slot (-1: none), on a pool of ``workers`` of ``backend`` journaled to ``journal``."""

    arrival: list[float]
    parts: list[tuple[float, float, float]]
    priority: list[int]
    affinity: list[int]
    policy: Policy
    workers: int
    recovery: Recovery
    seed: int
    backend: str
    journal: str


_lock_free: LockFreeWork | None = None


def stand_in(held: float, free: float, wait: float) -> None:
    """One attempt of a stand-in task on a thread: wait, then compute (see
    :mod:`real.work`). Importable by name, so the journal can hold it."""
    global _lock_free
    if wait > 0:
        time.sleep(wait)
    if held > 0:
        hold_lock_for(held)
    if free > 0:
        if _lock_free is None:  # measured once per process, on its first use
            _lock_free = LockFreeWork()
        _lock_free.compute(free)


def open_pool(spec: ProgramSpec) -> PoolExecutor:
    """The spec's journaled pool, every worker ready (a worker process takes a while)."""
    options: dict[str, Any] = {"seed": spec.seed, "journal": spec.journal}
    if spec.backend == "thread":
        from real.threaded_pool import ThreadedPool

        return ThreadedPool(spec.policy, spec.workers, spec.recovery, **options)
    from real.process_pool import ProcessPool
    from real.process_replay import wait_until_ready

    pool = ProcessPool(spec.policy, spec.workers, spec.recovery, **options)
    wait_until_ready(pool, spec.workers)
    return pool


def main(argv: list[str]) -> int:
    """Run the program (see the module)."""
    with open(argv[0], "rb") as file:
        spec: ProgramSpec = pickle.load(file)
    if spec.backend == "process":
        from real.process_replay import serve_stand_in

        task_call: Any = serve_stand_in
    else:
        task_call = stand_in
    pool = open_pool(spec)
    ready = time.time()
    start = float(argv[1]) if len(argv) > 1 else ready
    print(f"ready {ready!r}", flush=True)
    futures: list[Future[Any]] = []
    for task, due in enumerate(spec.arrival):
        delay = start + due - time.time()
        if delay > 0:
            time.sleep(delay)
        held, free, wait_seconds = spec.parts[task]
        args: tuple[Any, ...] = (held, free, wait_seconds)
        if spec.backend == "process":  # a child's lock is its own: all computing alike
            args = (held + free, wait_seconds, False, False)
        slot = spec.affinity[task]
        futures.append(
            pool.submit_with(
                task_call,
                args,
                priority=spec.priority[task],
                affinity=None if slot < 0 else slot,
                key=str(task),
            )
        )
    wait(futures)
    pool.shutdown()
    print("finished", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
