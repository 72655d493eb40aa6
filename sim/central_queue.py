"""An exact fast path of the model for one shared queue, no faults and no CPU model.

With FIFO or priority (without aging) scheduling, no faults, no task timeout and tasks
that only wait, the event model reduces to a loop over arrivals and completions: a task
starts when it arrives if a worker is idle (the one that went idle last, as the event
model's idle set hands them out), else when a worker finishes and it is the head of the
queue. This loop computes every time by the same floating-point operations as the
SimPy processes (an arrival at ``now + (arrival - now)``, an end at ``start + duration``),
so its results are bit for bit the event model's (``tests/test_sim_fast_path.py``); it
runs several times faster, which is what a planner running thousands of models needs.
"""

from __future__ import annotations

import heapq
from typing import TYPE_CHECKING

from pool.faults import FaultPlan, Recovery
from pool.overhead import Overhead
from pool.policies import FIFO, Policy, Priority
from pool.records import DONE, Recorder
from pool.results import RunResult
from pool.tasks import Workload

if TYPE_CHECKING:
    from sim.simulated_pool import SimulatedPool


def applies(config: SimulatedPool, workload: Workload) -> bool:
    """Whether ``config`` on ``workload`` is a case the fast path computes exactly."""
    policy: Policy = config.policy
    central = type(policy) is FIFO or (type(policy) is Priority and policy.aging is None)
    return (
        central
        and config.faults == FaultPlan()
        and config.recovery.task_timeout is None
        and not config.overhead.models_cpu
        and config.overhead.thread_start == 0
        and not workload.cpu_fraction.any()
    )


def run(config: SimulatedPool, workload: Workload, durations: list[float]) -> RunResult:
    """The run the event model would give; ``durations`` are each task's service time
    as the event model computes it (service, the sleep overshoot, dispatch)."""
    rec = Recorder(workload, config.workers)
    by_priority = type(config.policy) is Priority
    priority = workload.priority.tolist()
    idle = list(range(config.workers))  # the last to go idle is handed out first
    running: list[tuple[float, int, int]] = []  # (end, serial, slot)
    queue: list[tuple[int, int]] = []  # (class, or 0 for FIFO; task)
    starts, slots = rec.start, rec.worker
    serial = 0

    def begin(task: int, slot: int, at: float) -> None:
        nonlocal serial
        starts[task], slots[task] = at, slot
        heapq.heappush(running, (at + durations[task], serial, slot))
        serial += 1

    def finish_until(limit: float) -> None:
        while running and running[0][0] <= limit:
            end, _, slot = heapq.heappop(running)
            if queue:
                begin(heapq.heappop(queue)[1], slot, end)
            else:
                idle.append(slot)

    arrivals = workload.arrival.tolist()
    now, task, n_tasks = 0.0, 0, len(arrivals)
    while task < n_tasks:
        if arrivals[task] > now:
            now = now + (arrivals[task] - now)
        finish_until(now)
        # Every task arriving at this instant is queued and wakes an idle worker; the
        # woken workers then take the queue's heads (so a more urgent task of the same
        # instant goes first), as the event model's processes do.
        woken = []
        while task < n_tasks and arrivals[task] <= now:
            heapq.heappush(queue, (priority[task] if by_priority else 0, task))
            if idle:
                woken.append(idle.pop())
            task += 1
        for slot in woken:
            begin(heapq.heappop(queue)[1], slot, now)
    finish_until(float("inf"))
    end_time = 0.0
    for index in range(n_tasks):
        rec.attempts[index] = 1
        rec.status[index] = DONE
        rec.end[index] = end = starts[index] + durations[index]
        end_time = max(end_time, end)
    return rec.result("sim", _meta(config, end_time))


def _meta(config: SimulatedPool, end_time: float) -> dict[str, object]:
    recovery: Recovery = config.recovery
    overhead: Overhead = config.overhead
    return {
        "policy": config.policy.describe(),
        "workers": config.workers,
        "seed": config.seed,
        "overhead": overhead.as_dict(),
        "recovery": vars(recovery),
        "end_time": end_time,
    }
