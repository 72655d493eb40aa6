"""An exact fast path of the model for pools without faults, scaling, steal latency or CPU.

With no faults, no task timeout, a fixed pool, no steal latency and tasks that only
wait, the event model's processes reduce to a loop over arrivals and completions that
calls the very same policy object: a submit wakes the idle worker the event model would
wake (the target slot if idle, else the one that went idle last), a worker that finishes
or is woken takes ``next_task`` or steals, at once, as its process does. Every time is
computed by the same floating-point operations as the SimPy processes (an arrival at
``now + (arrival - now)``, an end at ``start + duration``) and same-instant events are
taken in the event model's order, so the results are bit for bit the event model's
(``tests/test_sim_fast_path.py``), at several times its speed: what a planner running
thousands of models needs.
"""

from __future__ import annotations

import heapq

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
        and config.overhead.thread_start == 0
        and not workload.cpu_fraction.any()
    )


def run(config: SimulatedPool, workload: Workload, durations: list[float]) -> RunResult:
    """The run the event model would give; ``durations`` are each task's time on its
    worker as the event model computes it (service, sleep overshoot, dispatch)."""
    policy, rec = config.policy, Recorder(workload, config.workers)
    policy.reset(range(config.workers), run_streams(config.seed).policy)
    next_task, steal, can_steal = policy.next_task, policy.steal, policy.can_steal
    queued, push, pop = policy.queued, heapq.heappush, heapq.heappop
    starts, slots = rec.start, rec.worker
    idle: dict[int, None] = {}  # insertion order: the last to go idle is woken first
    running: list[tuple[float, int, int, int]] = []  # (end, serial, slot, task)
    serial = 0

    def work(slot: int, now: float) -> None:
        """A worker that finished or was woken: take a task, steal one, or go idle."""
        nonlocal serial
        while True:
            task = next_task(slot, now)
            if task is not None:
                starts[task], slots[task] = now, slot
                push(running, (now + durations[task], serial, slot, task))
                serial += 1
                return
            # Nothing queued: a steal would find no victim (and draw no random number).
            if not (can_steal and queued() and _stole(steal(slot, now), slot, now, rec)):
                idle[slot] = None
                return

    for slot in range(config.workers):
        work(slot, 0.0)
    arrivals, priority = workload.arrival.tolist(), workload.priority.tolist()
    affinity = workload.affinity.tolist()
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
            end_time, _, slot, done = pop(running)
            ends[done], status[done], attempts[done] = end_time, DONE, 1
            work(slot, end_time)
            continue
        now = due
        if arrivals[task] > last:
            last = arrivals[task]
        woken = []
        # The arrival process submits every task due now before a woken worker runs.
        while task < n_tasks and not arrivals[task] > last:
            target = policy.submit(task, priority[task], affinity[task], now)
            if idle:
                if target is not None and target in idle:
                    del idle[target]
                    woken.append(target)
                elif target is None or can_steal:
                    woken.append(idle.popitem()[0])
            task += 1
        for slot in woken:
            work(slot, now)
    return rec.result("sim", run_meta(config, end_time))


def _stole(taken: tuple[int, list[int]] | None, slot: int, now: float, rec: Recorder) -> bool:
    if taken is None:
        return False
    for task in taken[1]:
        rec.stolen[task] = True
        rec.event(now, "steal", slot, task)
    return True
