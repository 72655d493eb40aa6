"""An exact fast path of the model for pools without faults, scaling, steal latency or CPU.

With no faults, no task timeout, a fixed pool, no steal latency and tasks that only
wait, the event model's processes reduce to a loop over arrivals and completions that
drives the very same pool core (:mod:`pool.core`) and policy object: a submit wakes the
idle worker the core picks, a worker that finishes or is woken takes what the core
gives it (a task, or a steal), at once, as its process does. Every time is
computed by the same floating-point operations as the SimPy processes (an arrival at
``now + (arrival - now)``, an end at ``start + duration``) and same-instant events are
taken in the event model's order, so the results are bit for bit the event model's
(``tests/test_sim_fast_path.py``), at several times its speed: what a planner running
thousands of models needs.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable

from pool.core import NOTHING, STOLE, PoolCore, WorkerState
from pool.faults import FaultPlan
from pool.records import DONE, Recorder
from pool.results import RunResult
from pool.seeding import run_streams
from pool.tasks import Workload
from sim.simulated_pool import SimulatedPool, run_meta


def applies(config: SimulatedPool, workload: Workload) -> bool:
    """Whether ``config`` on ``workload`` is a case the fast path computes exactly."""
    policy = config.policy
    return (
        policy.decision_interval is None
        and policy.steal_latency == 0
        and config.faults == FaultPlan()
        and config.recovery.task_timeout is None
        and not config.overhead.models_cpu
        and not (config.journal and config.overhead.journal_submit > 0)
        and config.overhead.thread_start == 0
        and not workload.cpu_fraction.any()
    )


def run(config: SimulatedPool, workload: Workload, durations: list[float]) -> RunResult:
    """The run the event model would give; ``durations`` are each task's time on its
    worker as the event model computes it (service, sleep overshoot, dispatch)."""
    policy, rec = config.policy, Recorder(workload, config.workers)
    policy.reset(range(config.workers), run_streams(config.seed).policy)
    backend = _Instant()
    core: PoolCore[WorkerState] = PoolCore(policy, config.recovery, backend, rec)
    take, woken, idle = core.take, backend.woken, core.idle
    push, pop = heapq.heappush, heapq.heappop
    starts, slots = rec.start, rec.worker
    running: list[tuple[float, int, WorkerState, int]] = []  # (end, serial, worker, task)
    serial = 0

    def work(worker: WorkerState, now: float) -> None:
        """A worker that finished or was woken: take a task, steal one, or go idle."""
        nonlocal serial
        while (task := take(worker, now)) == STOLE:
            pass
        if task == NOTHING:
            idle[worker.slot] = worker
            return
        starts[task], slots[task] = now, worker.slot
        push(running, (now + durations[task], serial, worker, task))
        serial += 1

    for worker in [core.start_worker(slot) for slot in range(config.workers)]:
        work(worker, 0.0)
    arrivals, priority = workload.arrival.tolist(), workload.priority.tolist()
    affinity = workload.affinity.tolist()
    submit = core.submit
    # The arrival process's clock: ``last`` is the arrival it last slept until, ``now``
    # the model's time it woke at; it sleeps ``arrival - last`` from ``now``.
    last = now = end_time = 0.0
    task, n_tasks = 0, len(arrivals)
    ends, status, attempts = rec.end, rec.status, rec.attempts
    while task < n_tasks or running:
        due = now
        if task < n_tasks and arrivals[task] > last:
            due = now + (arrivals[task] - last)
        if running and (task >= n_tasks or running[0][0] <= due):
            end_time, _, worker, done = pop(running)
            ends[done], status[done], attempts[done] = end_time, DONE, 1
            work(worker, end_time)
            continue
        now = due
        if arrivals[task] > last:
            last = arrivals[task]
        # The arrival process submits every task due now before a woken worker runs.
        while task < n_tasks and not arrivals[task] > last:
            submit(task, priority[task], affinity[task], now)
            task += 1
        while woken:
            work(woken.popleft(), now)
    return rec.result("sim", run_meta(config, end_time))


class _Instant:
    """The fast path's side of the pool core: no clock of its own and no faults; a
    woken worker is run by the loop once the arrivals due now are submitted."""

    def __init__(self) -> None:
        self.woken: deque[WorkerState] = deque()

    def now(self) -> float:
        raise AssertionError("the fast path has no clock of its own")

    def spawn(self, slot: int) -> WorkerState:
        return WorkerState(slot, 0.0)

    def wake(self, worker: WorkerState) -> None:
        self.woken.append(worker)

    def at(self, due: float, action: Callable[[], None]) -> None:
        raise AssertionError("the fast path schedules nothing")

    def place(self, task: int) -> None:
        raise AssertionError("the fast path requeues nothing")

    def attempts(self, task: int) -> int:
        raise AssertionError("the fast path retries nothing")

    def failed(self, task: int, error: BaseException) -> None:
        raise AssertionError("the fast path fails nothing")

    def released(self, worker: WorkerState) -> None:
        raise AssertionError("the fast path loses no worker")
