"""Exact traces of the simulated pool on tiny workloads, every number computed by hand.

Conventions of the simulated pool that the hand computations rely on (each is noted again
where it matters):

- Every worker starts idle at t=0; an arriving task wakes the most recently idled worker
  (so with all workers idle at t=0 the first task goes to the highest slot).
- A worker that finishes picks its next task at once; events at the same instant run in
  the order they were scheduled. The workloads avoid ties where that order would matter.
- Time advances by float sums, so every comparison is ``pytest.approx`` at 1e-12.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import pytest

import sim
from pool import FIFO, Autoscaling, FaultPlan, Priority, Recovery, RunResult, Workload, WorkStealing

TOL = 1e-12

# One recovery for all the fault traces: ticks every 0.1 s, dead after 0.3 s of silence.
RECOVERY = Recovery(
    heartbeat_interval=0.1,
    heartbeat_timeout=0.3,
    restart_delay=0.25,
    max_attempts=3,
    retry_backoff=0.05,
)


def workload(
    arrival: Sequence[float],
    service: Sequence[float],
    priority: Sequence[int] | None = None,
    affinity: Sequence[int] | None = None,
) -> Workload:
    n = len(arrival)
    return Workload(
        arrival=np.array(arrival, dtype=np.float64),
        service=np.array(service, dtype=np.float64),
        priority=np.array(priority if priority is not None else [0] * n, dtype=np.int64),
        cpu_fraction=np.zeros(n),
        affinity=np.array(affinity if affinity is not None else [-1] * n, dtype=np.int64),
    )


def assert_tasks(
    result: RunResult,
    expected: Sequence[tuple[float, float, int]],
    attempts: Sequence[int] | None = None,
    status: Sequence[str] | None = None,
) -> None:
    """Per task: (start, end, worker), and optionally attempts and status."""
    tasks = result.tasks
    assert len(tasks) == len(expected)
    assert tasks["task_id"].tolist() == list(range(len(expected)))
    assert tasks["start"].tolist() == pytest.approx([e[0] for e in expected], abs=TOL)
    assert tasks["end"].tolist() == pytest.approx([e[1] for e in expected], abs=TOL)
    assert tasks["worker"].tolist() == [e[2] for e in expected]
    expected_attempts = list(attempts) if attempts is not None else [1] * len(expected)
    assert tasks["attempts"].tolist() == expected_attempts
    expected_status = list(status) if status is not None else ["done"] * len(expected)
    assert tasks["status"].astype(str).tolist() == expected_status
    assert tasks["wait"].to_numpy() == pytest.approx(
        tasks["start"].to_numpy() - tasks["arrival"].to_numpy(), abs=TOL
    )
    assert tasks["latency"].to_numpy() == pytest.approx(
        tasks["end"].to_numpy() - tasks["arrival"].to_numpy(), abs=TOL
    )


def assert_events(result: RunResult, expected: Sequence[tuple[float, str, int, int]]) -> None:
    """The events, in time order: (time, kind, worker, task_id)."""
    events = result.events
    assert list(zip(events["kind"], events["worker"], events["task_id"], strict=True)) == [
        (kind, worker, task) for _, kind, worker, task in expected
    ]
    assert events["time"].tolist() == pytest.approx([e[0] for e in expected], abs=TOL)


def assert_timeline(
    result: RunResult, expected: Sequence[tuple[float, int, int, int]], columns: Sequence[str]
) -> None:
    timeline = result.timeline
    assert len(timeline) == len(expected), timeline
    assert timeline["time"].tolist() == pytest.approx([e[0] for e in expected], abs=TOL)
    for index, column in enumerate(columns, start=1):
        assert timeline[column].tolist() == [e[index] for e in expected], column


# ----------------------------------------------------------------------------- FIFO


def test_fifo_two_workers_six_tasks() -> None:
    wl = workload(
        arrival=[0.0, 0.2, 0.5, 0.6, 1.1, 3.0],
        service=[1.0, 0.5, 1.5, 0.25, 0.5, 0.5],
    )
    result = sim.run(wl, "fifo", workers=2)
    # t=0    task 0 wakes the most recently idled worker (1): runs 0 -> 1.
    # t=0.2  task 1 -> worker 0: 0.2 -> 0.7.
    # t=0.5, 0.6 tasks 2, 3 queue.  t=0.7 worker 0 takes task 2: 0.7 -> 2.2.
    # t=1.0  worker 1 takes task 3: 1.0 -> 1.25.  t=1.1 task 4 queues.
    # t=1.25 worker 1 takes task 4: 1.25 -> 1.75, then idles; worker 0 idles at 2.2.
    # t=3.0  task 5 wakes the most recently idled worker (0): 3.0 -> 3.5.
    assert_tasks(
        result,
        [
            (0.0, 1.0, 1),
            (0.2, 0.7, 0),
            (0.7, 2.2, 0),
            (1.0, 1.25, 1),
            (1.25, 1.75, 1),
            (3.0, 3.5, 0),
        ],
    )
    assert result.tasks["stolen"].tolist() == [False] * 6
    assert result.events.empty
    assert_timeline(
        result,
        [
            (0.0, 2, 1, 0),
            (0.2, 2, 2, 0),
            (0.5, 2, 2, 1),
            (0.6, 2, 2, 2),
            (0.7, 2, 2, 1),
            (1.0, 2, 2, 0),
            (1.1, 2, 2, 1),
            (1.25, 2, 2, 0),
            (1.75, 2, 1, 0),
            (2.2, 2, 0, 0),
            (3.0, 2, 1, 0),
            (3.5, 2, 0, 0),
        ],
        ("workers", "busy", "queued"),
    )
    summary = result.summary()
    assert summary["completed"] == 6
    assert summary["failed"] == summary["lost"] == summary["duplicates"] == 0
    assert summary["makespan"] == pytest.approx(3.5, abs=TOL)
    assert summary["throughput"] == pytest.approx(6 / 3.5, abs=TOL)
    busy = 1.0 + 0.5 + 1.5 + 0.25 + 0.5 + 0.5
    assert summary["utilization"] == pytest.approx(busy / (2 * 3.5), abs=TOL)
    latencies = [1.0, 0.5, 1.7, 0.65, 0.65, 0.5]
    assert summary["mean_latency"] == pytest.approx(np.mean(latencies), abs=TOL)
    assert summary["mean_wait"] == pytest.approx(np.mean([0, 0, 0.2, 0.4, 0.15, 0]), abs=TOL)


def test_fifo_policy_object_and_name_give_the_same_trace() -> None:
    wl = workload([0.0, 0.1, 0.2, 0.3], [0.4, 0.3, 0.2, 0.1])
    by_name = sim.run(wl, "fifo", workers=2).tasks
    by_object = sim.run(wl, FIFO(), workers=2).tasks
    pd.testing.assert_frame_equal(by_name, by_object)


# ----------------------------------------------------------------------------- Priority


def test_priority_one_worker_class_order_then_fifo_within_class() -> None:
    # Built from a trace frame, rows out of order: from_trace sorts them by arrival.
    frame = pd.DataFrame(
        {
            "arrival": [0.5, 0.0, 0.1, 0.2, 0.3, 0.4],
            "service": [0.25, 1.0, 0.5, 0.25, 0.75, 0.5],
            "priority": [2, 1, 2, 0, 1, 0],
        }
    )
    wl = Workload.from_trace(frame)
    assert wl.arrival.tolist() == [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]
    result = sim.run(wl, "priority", workers=1)
    # Task 0 runs 0 -> 1. At t=1 the queue holds classes 2, 0, 1, 0, 2 (tasks 1..5):
    # class 0 first (tasks 2, 4), then class 1 (task 3), then class 2 (tasks 1, 5).
    assert_tasks(
        result,
        [
            (0.0, 1.0, 0),
            (2.5, 3.0, 0),
            (1.0, 1.25, 0),
            (1.75, 2.5, 0),
            (1.25, 1.75, 0),
            (3.0, 3.25, 0),
        ],
    )
    assert result.tasks["priority"].tolist() == [1, 2, 0, 1, 0, 2]


AGING_WORKLOAD = dict(
    arrival=[0.0, 0.1, 1.0, 1.5],
    service=[2.0, 0.5, 0.5, 0.5],
    priority=[0, 2, 1, 0],
)


def test_priority_without_aging_serves_most_urgent_class() -> None:
    result = sim.run(workload(**AGING_WORKLOAD), Priority(), workers=1)
    # At t=2 tasks 1 (class 2), 2 (class 1), 3 (class 0) wait: 3, then 2, then 1.
    assert_tasks(result, [(0.0, 2.0, 0), (3.0, 3.5, 0), (2.5, 3.0, 0), (2.0, 2.5, 0)])


def test_priority_with_aging_lets_a_long_waiting_task_overtake() -> None:
    result = sim.run(workload(**AGING_WORKLOAD), Priority(aging=0.5), workers=1)
    # Rank = class - wait / aging.
    # t=2.0: task 1: 2 - 1.9/0.5 = -1.8; task 2: 1 - 1.0/0.5 = -1.0; task 3: 0 - 0.5/0.5 = -1.0
    #        -> task 1 runs 2.0 -> 2.5.
    # t=2.5: task 2: 1 - 1.5/0.5 = -2.0; task 3: 0 - 1.0/0.5 = -2.0: a tie goes to the more
    #        urgent class -> task 3 runs 2.5 -> 3.0, then task 2 runs 3.0 -> 3.5.
    assert_tasks(result, [(0.0, 2.0, 0), (2.0, 2.5, 0), (3.0, 3.5, 0), (2.5, 3.0, 0)])


# ----------------------------------------------------------------------------- WorkStealing

ROUND_ROBIN_WORKLOAD = dict(arrival=[0.0, 0.1, 0.2, 0.3], service=[2.0, 0.05, 0.05, 0.1])


def test_work_stealing_round_robin_without_stealing_keeps_tasks_on_their_queue() -> None:
    policy = WorkStealing(placement="round-robin", amount="none")
    result = sim.run(workload(**ROUND_ROBIN_WORKLOAD), policy, workers=2)
    # Round robin: tasks 0, 2 -> slot 0; tasks 1, 3 -> slot 1. Worker 1 is idle at t=0.2,
    # but task 2 waits on worker 0's queue until worker 0 is free at t=2.
    assert_tasks(result, [(0.0, 2.0, 0), (0.1, 0.15, 1), (2.0, 2.05, 0), (0.3, 0.4, 1)])
    assert result.tasks["stolen"].tolist() == [False] * 4
    assert result.events.empty


def test_work_stealing_round_robin_idle_worker_steals() -> None:
    policy = WorkStealing(placement="round-robin", victim="random", amount="one")
    result = sim.run(workload(**ROUND_ROBIN_WORKLOAD), policy, workers=2)
    # Task 2 lands on busy worker 0's queue at t=0.2; idle worker 1 is woken and steals it
    # (slot 0 is the only candidate victim, so "random" is deterministic here).
    assert_tasks(result, [(0.0, 2.0, 0), (0.1, 0.15, 1), (0.2, 0.25, 1), (0.3, 0.4, 1)])
    assert result.tasks["stolen"].tolist() == [False, False, True, False]
    assert_events(result, [(0.2, "steal", 1, 2)])
    assert result.summary()["stolen"] == 1


AFFINITY_WORKLOAD = dict(
    arrival=[0.0, 0.1, 0.2, 0.3], service=[1.0, 1.0, 1.0, 1.0], affinity=[0, 0, 0, 0]
)


def test_work_stealing_affinity_placement_and_steal() -> None:
    policy = WorkStealing(placement="affinity", victim="longest", amount="one")
    result = sim.run(workload(**AFFINITY_WORKLOAD), policy, workers=2)
    # Every task prefers slot 0. Worker 0 runs task 0 (0 -> 1); idle worker 1 steals
    # task 1 at 0.1 (0.1 -> 1.1). At t=1 worker 0 takes task 2 from its own queue; at 1.1
    # worker 1 steals task 3 (1.1 -> 2.1).
    assert_tasks(result, [(0.0, 1.0, 0), (0.1, 1.1, 1), (1.0, 2.0, 0), (1.1, 2.1, 1)])
    assert result.tasks["stolen"].tolist() == [False, True, False, True]
    assert_events(result, [(0.1, "steal", 1, 1), (1.1, "steal", 1, 3)])


def test_work_stealing_steal_latency_delays_the_thief() -> None:
    policy = WorkStealing(placement="affinity", victim="longest", amount="one", steal_latency=0.25)
    result = sim.run(workload(**AFFINITY_WORKLOAD), policy, workers=2)
    # Same steals, each costing the thief 0.25 s: task 1 starts 0.1 + 0.25 = 0.35 and ends
    # 1.35; at 1.35 worker 1 steals task 3, which starts 1.6 and ends 2.6. Worker 0 takes
    # task 2 from its own queue at t=1 (no latency).
    assert_tasks(result, [(0.0, 1.0, 0), (0.35, 1.35, 1), (1.0, 2.0, 0), (1.6, 2.6, 1)])
    assert result.tasks["stolen"].tolist() == [False, True, False, True]
    assert_events(result, [(0.1, "steal", 1, 1), (1.35, "steal", 1, 3)])


def test_work_stealing_affinity_without_stealing_serialises_on_the_preferred_worker() -> None:
    policy = WorkStealing(placement="affinity", amount="none")
    result = sim.run(workload(**AFFINITY_WORKLOAD), policy, workers=2)
    assert_tasks(result, [(0.0, 1.0, 0), (1.0, 2.0, 0), (2.0, 3.0, 0), (3.0, 4.0, 0)])
    assert result.events.empty


def test_work_stealing_half_takes_the_oldest_half_rounded_up() -> None:
    wl = workload(
        arrival=[0.0, 0.0, 0.0, 0.0, 0.0, 0.5],
        service=[1.0, 1.0, 1.0, 1.0, 1.0, 0.1],
        affinity=[0, 0, 0, 0, 0, 1],
    )
    policy = WorkStealing(placement="affinity", victim="longest", amount="half")
    result = sim.run(wl, policy, workers=2)
    # Worker 0 takes task 0; slot 0's queue is then [1, 2, 3, 4]; worker 1 steals its
    # oldest half, tasks 1 and 2, and runs them in order. Task 5 (affinity 1) joins worker
    # 1's queue behind task 2.
    assert_tasks(
        result,
        [(0.0, 1.0, 0), (0.0, 1.0, 1), (1.0, 2.0, 1), (1.0, 2.0, 0), (2.0, 3.0, 0), (2.0, 2.1, 1)],
    )
    assert result.tasks["stolen"].tolist() == [False, True, True, False, False, False]
    assert_events(result, [(0.0, "steal", 1, 1), (0.0, "steal", 1, 2)])


# ----------------------------------------------------------------------------- crashes
#
# Fault instants are kept off the 0.1 s monitor ticks, and the restart delay (0.25 s)
# keeps restarts off them too, so "the last tick before the silence" is unambiguous.


def test_detection_time_rule() -> None:
    rec = RECOVERY
    # Silent at 0.55: last heartbeat at tick 0.5, declared at the first tick >= 0.8.
    assert rec.detection_time(0.55, 0.0) == pytest.approx(0.8, abs=TOL)
    assert rec.detection_time(0.05, 0.0) == pytest.approx(0.3, abs=TOL)
    # A worker that started after the last tick: its start counts as a heartbeat, so
    # silent at 1.07 after starting at 1.05 -> declared at the first tick >= 1.35: 1.4.
    assert rec.detection_time(1.07, 1.05) == pytest.approx(1.4, abs=TOL)
    assert rec.next_tick(0.8) == pytest.approx(0.8, abs=TOL)
    assert rec.next_tick(0.81) == pytest.approx(0.9, abs=TOL)
    # Retry k waits retry_backoff * 2**(k-1); after max_attempts there is none.
    assert [rec.retry_delay(k) for k in (1, 2, 3)] == pytest.approx([0.05, 0.1, None])


def test_crash_detection_retry_and_restart_in_the_same_slot() -> None:
    wl = workload([0.0, 0.1, 0.2], [1.0, 1.0, 1.0])
    faults = FaultPlan(crashes=[(0.55, 1)])
    result = sim.run(wl, "fifo", workers=2, faults=faults, recovery=RECOVERY)
    # Worker 1 runs task 0 from 0 and crashes at 0.55. Its last heartbeat is the tick at
    # 0.5; it is declared dead at the first tick >= 0.5 + 0.3: t=0.8. Task 0 is retried
    # after backoff 0.05 (queued again at 0.85) and slot 1 restarts at 0.8 + 0.25 = 1.05.
    detected = RECOVERY.detection_time(0.55, 0.0)
    assert detected == pytest.approx(0.8, abs=TOL)
    # Queue at t=1.05: task 2 (since 0.2), task 0 (since 0.85). The new worker 1 takes
    # task 2 at 1.05; worker 0 finishes task 1 at 1.1 and takes task 0.
    assert_tasks(
        result,
        [(1.1, 2.1, 0), (0.1, 1.1, 0), (1.05, 2.05, 1)],
        attempts=[2, 1, 1],
    )
    assert_events(
        result,
        [
            (0.55, "crash", 1, 0),
            (0.8, "detected", 1, 0),
            (0.8, "retry", 1, 0),
            (1.05, "restart", 1, -1),
        ],
    )
    attempts = result.attempts
    assert attempts["task_id"].tolist() == [0]
    assert attempts["worker"].tolist() == [1]
    assert attempts["start"].tolist() == pytest.approx([0.0], abs=TOL)
    assert attempts["stop"].tolist() == pytest.approx([0.8], abs=TOL)
    assert attempts["outcome"].tolist() == ["lost-worker"]
    # Serving workers: 2, then 1 from detection, 2 again from the restart. The crashed
    # worker counts as busy until it is declared dead.
    assert_timeline(
        result,
        [
            (0.0, 2, 1, 0),
            (0.1, 2, 2, 0),
            (0.2, 2, 2, 1),
            (0.8, 1, 1, 1),
            (0.85, 1, 1, 2),
            (1.05, 2, 2, 1),
            (1.1, 2, 2, 0),
            (2.05, 2, 1, 0),
            (2.1, 2, 0, 0),
        ],
        ("workers", "busy", "queued"),
    )
    summary = result.summary()
    assert summary["completed"] == 3
    assert summary["lost"] == summary["failed"] == summary["duplicates"] == 0
    assert summary["retried"] == 1
    assert summary["detection_time"] == pytest.approx(0.8 - 0.55, abs=TOL)


def test_crash_of_an_idle_worker_restarts_it_without_retries() -> None:
    wl = workload([0.0, 2.0], [0.5, 0.5])
    faults = FaultPlan(crashes=[(0.25, 0)])
    result = sim.run(wl, "fifo", workers=2, faults=faults, recovery=RECOVERY)
    # Worker 1 takes task 0; worker 0 is idle when it crashes at 0.25: last heartbeat at
    # tick 0.2, declared dead at 0.5, restarted at 0.75. Task 1 at t=2 wakes the most
    # recently idled worker: the restarted worker 0 (idle since 0.75; worker 1 since 0.5).
    assert_tasks(result, [(0.0, 0.5, 1), (2.0, 2.5, 0)])
    assert_events(
        result,
        [(0.25, "crash", 0, -1), (0.5, "detected", 0, -1), (0.75, "restart", 0, -1)],
    )
    assert result.summary()["retried"] == 0


def test_crash_of_a_slot_that_does_not_serve_is_ignored() -> None:
    wl = workload([0.0, 0.1], [0.5, 0.5])
    result = sim.run(wl, "fifo", workers=2, faults=FaultPlan(crashes=[(0.15, 7)]))
    assert_tasks(result, [(0.0, 0.5, 1), (0.1, 0.6, 0)])
    assert result.events.empty


@pytest.mark.parametrize("policy", ["fifo", "work-stealing"])
@pytest.mark.parametrize(
    "faults",
    [FaultPlan(crashes=[(1.05, 1)]), FaultPlan(hangs=[(1.05, 1, 0.2)])],
    ids=["crash", "hang"],
)
def test_task_woken_for_a_worker_that_fails_at_that_instant_goes_to_another(
    policy: str, faults: FaultPlan
) -> None:
    wl = workload([0.0, 1.05], [5.0, 1.0])
    result = sim.run(wl, policy, workers=3, faults=faults, recovery=RECOVERY)
    # Task 1 arrives at 1.05 and wakes idle worker 1, which crashes (or freezes) at that
    # same instant, before it could take the task. Worker 0 (FIFO) or 2 (work stealing,
    # whose worker 0 runs task 0) is idle all along, so task 1 must start at 1.05, not
    # wait for the crash to be detected (1.3), slot 1 to restart (1.55) or the hang to
    # end (1.25).
    tasks = result.tasks
    assert tasks.loc[1, "start"] == pytest.approx(1.05, abs=TOL)
    assert tasks.loc[1, "worker"] != 1
    assert (tasks["status"] == "done").all()


# ----------------------------------------------------------------------------- task failures


def test_task_failures_retry_with_exponential_backoff_then_fail() -> None:
    recovery = Recovery(
        heartbeat_interval=0.1,
        heartbeat_timeout=0.3,
        restart_delay=0.25,
        max_attempts=4,
        retry_backoff=0.1,
    )
    wl = workload([0.0], [1.0])
    result = sim.run(
        wl, "fifo", workers=1, faults=FaultPlan(task_failure_prob=1.0), recovery=recovery
    )
    # Attempt k raises at its end; retry k waits 0.1 * 2**(k-1): 0.1, 0.2, 0.4.
    # [0, 1] -> ready 1.1; [1.1, 2.1] -> ready 2.3; [2.3, 3.3] -> ready 3.7; [3.7, 4.7] failed.
    assert_tasks(result, [(3.7, 4.7, 0)], attempts=[4], status=["failed"])
    assert_events(
        result,
        [(1.0, "retry", 0, 0), (2.1, "retry", 0, 0), (3.3, "retry", 0, 0), (4.7, "failed", 0, 0)],
    )
    attempts = result.attempts
    assert attempts["start"].tolist() == pytest.approx([0.0, 1.1, 2.3, 3.7], abs=TOL)
    assert attempts["stop"].tolist() == pytest.approx([1.0, 2.1, 3.3, 4.7], abs=TOL)
    assert attempts["ready"].tolist() == pytest.approx([0.0, 1.1, 2.3, 3.7], abs=TOL)
    assert attempts["outcome"].tolist() == ["error"] * 4
    backoffs = attempts["ready"].to_numpy()[1:] - attempts["stop"].to_numpy()[:-1]
    assert backoffs.tolist() == pytest.approx([0.1 * 2 ** (k - 1) for k in (1, 2, 3)], abs=TOL)
    assert recovery.retry_delay(4) is None
    summary = result.summary()
    assert summary["failed"] == 1
    assert summary["completed"] == summary["lost"] == 0
    assert summary["retried"] == 3


def test_task_failures_interleave_two_tasks_on_one_worker() -> None:
    wl = workload([0.0, 0.1], [1.0, 0.5])
    result = sim.run(
        wl, "fifo", workers=1, faults=FaultPlan(task_failure_prob=1.0), recovery=RECOVERY
    )
    # Task 0 fails at 1.0 (ready 1.05); task 1 runs 1.0 -> 1.5, fails (ready 1.55); task 0
    # runs 1.5 -> 2.5 (ready 2.6); task 1 runs 2.5 -> 3.0 (ready 3.1); task 0 runs
    # 3.0 -> 4.0 and fails for good; task 1 runs 4.0 -> 4.5 and fails for good.
    assert_tasks(
        result, [(3.0, 4.0, 0), (4.0, 4.5, 0)], attempts=[3, 3], status=["failed", "failed"]
    )
    assert_events(
        result,
        [
            (1.0, "retry", 0, 0),
            (1.5, "retry", 0, 1),
            (2.5, "retry", 0, 0),
            (3.0, "retry", 0, 1),
            (4.0, "failed", 0, 0),
            (4.5, "failed", 0, 1),
        ],
    )


# ----------------------------------------------------------------------------- hangs


def test_hang_shorter_than_the_timeout_only_delays_the_task() -> None:
    wl = workload([0.0, 0.1], [1.0, 1.0])
    faults = FaultPlan(hangs=[(0.55, 1, 0.2)])
    result = sim.run(wl, "fifo", workers=2, faults=faults, recovery=RECOVERY)
    # Worker 1 (task 0) freezes 0.55 -> 0.75: it would be declared dead at 0.8, but it is
    # heartbeating again by then. Task 0 ends 0.2 late, at 1.2.
    assert_tasks(result, [(0.0, 1.2, 1), (0.1, 1.1, 0)])
    assert_events(result, [(0.55, "hang", 1, 0)])
    summary = result.summary()
    assert summary["duplicates"] == 0
    assert summary["retried"] == 0


def test_hang_longer_than_the_timeout_is_detected_and_late_result_discarded() -> None:
    wl = workload([0.0, 0.1], [1.0, 1.0])
    faults = FaultPlan(hangs=[(0.55, 1, 0.4)])
    result = sim.run(wl, "fifo", workers=2, faults=faults, recovery=RECOVERY)
    # Worker 1 freezes 0.55 -> 0.95 and is declared dead at 0.8; task 0 is queued again
    # at 0.85 and slot 1 restarts at 1.05, where the new worker runs task 0: 1.05 -> 2.05.
    # The hung worker resumes at 0.95 and finishes its attempt at 0.95 + 0.45 = 1.4:
    # the result of a worker declared dead is discarded and counted.
    assert_tasks(result, [(1.05, 2.05, 1), (0.1, 1.1, 0)], attempts=[2, 1])
    assert_events(
        result,
        [
            (0.55, "hang", 1, 0),
            (0.8, "detected", 1, 0),
            (0.8, "retry", 1, 0),
            (1.05, "restart", 1, -1),
            (1.4, "discarded", 1, 0),
        ],
    )
    summary = result.summary()
    assert summary["duplicates"] == 1
    assert summary["completed"] == 2
    assert summary["lost"] == 0
    assert summary["detection_time"] == pytest.approx(0.25, abs=TOL)


def test_overlapping_hangs_silence_the_worker_for_their_whole_span() -> None:
    wl = workload([0.0, 0.1], [1.0, 1.0])
    faults = FaultPlan(hangs=[(0.55, 1, 0.2), (0.65, 1, 0.2)])
    result = sim.run(wl, "fifo", workers=2, faults=faults, recovery=RECOVERY)
    # Worker 1 is frozen from 0.55 until at least 0.85 (the second hang ends there): it
    # misses the heartbeats at 0.6, 0.7 and 0.8, so it is declared dead at 0.8 like a
    # single 0.3 s hang would be; task 0 is retried and runs on the restarted slot 1 from
    # 1.05. The hung worker's late result is discarded.
    # The late result's time depends on whether overlapping freezes add up or merge.
    late = float(result.events["time"].iloc[-1])
    assert 1.3 - TOL <= late <= 1.4 + TOL
    assert_events(
        result,
        [
            (0.55, "hang", 1, 0),
            (0.65, "hang", 1, 0),
            (0.8, "detected", 1, 0),
            (0.8, "retry", 1, 0),
            (1.05, "restart", 1, -1),
            (late, "discarded", 1, 0),
        ],
    )
    assert_tasks(result, [(1.05, 2.05, 1), (0.1, 1.1, 0)], attempts=[2, 1])
    assert result.summary()["duplicates"] == 1


# ----------------------------------------------------------------------------- poison tasks


def test_poison_task_fails_after_max_attempts_while_others_finish() -> None:
    wl = workload([0.0, 0.13, 0.27], [1.02, 1.0, 1.0])
    faults = FaultPlan(poison_tasks=[1])
    result = sim.run(wl, "fifo", workers=2, faults=faults, recovery=RECOVERY)
    # Task 0 -> worker 1 (0 -> 1.02). Task 1 -> worker 0 at 0.13: crash; last heartbeat
    # 0.1, declared at 0.4 (retry, ready 0.45); slot 0 restarts at 0.65 and takes task 2
    # (queued since 0.27): 0.65 -> 1.65. At 1.02 worker 1 takes task 1: crash, declared at
    # 1.3 (retry, ready 1.4); slot 1 restarts at 1.55 and takes task 1 again: crash; its
    # start at 1.55 is its last heartbeat, so it is declared at the first tick >= 1.85:
    # 1.9, after its third attempt -> failed.
    assert RECOVERY.detection_time(1.55, 1.55) == pytest.approx(1.9, abs=TOL)
    assert_tasks(
        result,
        [(0.0, 1.02, 1), (1.55, 1.9, 1), (0.65, 1.65, 0)],
        attempts=[1, 3, 1],
        status=["done", "failed", "done"],
    )
    assert_events(
        result,
        [
            (0.13, "crash", 0, 1),
            (0.4, "detected", 0, 1),
            (0.4, "retry", 0, 1),
            (0.65, "restart", 0, -1),
            (1.02, "crash", 1, 1),
            (1.3, "detected", 1, 1),
            (1.3, "retry", 1, 1),
            (1.55, "restart", 1, -1),
            (1.55, "crash", 1, 1),
            (1.9, "detected", 1, 1),
            (1.9, "failed", 1, 1),
        ],
    )
    assert result.attempts["outcome"].tolist() == ["lost-worker"] * 3
    summary = result.summary()
    assert summary["completed"] == 2
    assert summary["failed"] == 1
    assert summary["lost"] == 0


# ----------------------------------------------------------------------------- task timeout


def test_task_timeout_requeues_and_discards_the_late_results() -> None:
    recovery = Recovery(
        heartbeat_interval=0.1,
        heartbeat_timeout=0.3,
        restart_delay=0.25,
        max_attempts=2,
        retry_backoff=0.05,
        task_timeout=0.5,
    )
    wl = workload([0.0, 0.1, 0.2], [0.3, 0.7, 0.2])
    result = sim.run(wl, "fifo", workers=2, recovery=recovery)
    # Task 0 -> worker 1 (0 -> 0.3), then task 2 (0.3 -> 0.5). Task 1 -> worker 0 at 0.1;
    # timed out at the first tick >= 0.6: t=0.6 (retry, ready 0.65; slot 0 restarts at
    # 0.85). Worker 0 still finishes at 0.8: discarded. Idle worker 1 reruns task 1 at
    # 0.65; timed out at the first tick >= 1.15: t=1.2, its last attempt -> failed. That
    # worker too still finishes, at 0.65 + 0.7 = 1.35: discarded and counted, although
    # every task had reached its final state (the restart of slot 1 at 1.45 is not
    # reached).
    assert recovery.timeout_time(0.1) == pytest.approx(0.6, abs=TOL)
    assert recovery.timeout_time(0.65) == pytest.approx(1.2, abs=TOL)
    assert_tasks(
        result,
        [(0.0, 0.3, 1), (0.65, 1.2, 1), (0.3, 0.5, 1)],
        attempts=[1, 2, 1],
        status=["done", "failed", "done"],
    )
    assert_events(
        result,
        [
            (0.6, "timeout", 0, 1),
            (0.6, "retry", 0, 1),
            (0.8, "discarded", 0, 1),
            (0.85, "restart", 0, -1),
            (1.2, "timeout", 1, 1),
            (1.2, "failed", 1, 1),
            (1.35, "discarded", 1, 1),
        ],
    )
    assert result.attempts["outcome"].tolist() == ["timeout", "timeout"]
    summary = result.summary()
    assert summary["duplicates"] == 2
    assert summary["failed"] == 1
    assert summary["completed"] == 2


# ----------------------------------------------------------------------------- autoscaling


def test_autoscaling_scale_up_then_down_at_decision_ticks() -> None:
    policy = Autoscaling(
        min_workers=1,
        max_workers=3,
        metric="queue",
        target=1.0,
        decision_interval=0.25,
        cooldown=0.0,
        startup_delay=0.1,
        scale_down_ticks=2,
        tolerance=0.0,
    )
    wl = workload([0.0, 0.05, 0.1, 0.15], [1.0, 1.0, 1.0, 1.0])
    result = sim.run(wl, policy, workers=1)
    # Tick 0.25: 1 busy + 3 queued = 4 tasks for 1 worker -> wants 4, capped at 3: slots 1
    # and 2 are added, serving from 0.25 + 0.1 = 0.35, where they take tasks 1 and 2.
    # Worker 0 takes task 3 at 1.0. Ticks 1.5 and 1.75 see 1 busy and nothing queued: two
    # consecutive votes for 1 worker -> scale down at 1.75, the highest slots first.
    assert_tasks(result, [(0.0, 1.0, 0), (0.35, 1.35, 1), (0.35, 1.35, 2), (1.0, 2.0, 0)])
    assert_events(
        result,
        [
            (0.25, "scale_up", 1, -1),
            (0.25, "scale_up", 2, -1),
            (1.75, "scale_down", 2, -1),
            (1.75, "scale_down", 1, -1),
        ],
    )
    first_start = result.tasks.loc[result.tasks["worker"] == 1, "start"].min()
    assert first_start == pytest.approx(0.25 + policy.startup_delay, abs=TOL)
    assert_timeline(
        result,
        [
            (0.0, 1, 1, 0),
            (0.05, 1, 1, 1),
            (0.1, 1, 1, 2),
            (0.15, 1, 1, 3),
            (0.35, 3, 3, 1),
            (1.0, 3, 3, 0),
            (1.35, 3, 1, 0),
            (1.75, 1, 1, 0),
            (2.0, 1, 0, 0),
        ],
        ("workers", "busy", "queued"),
    )


def test_autoscaling_cooldown_delays_the_next_scale_up() -> None:
    policy = Autoscaling(
        min_workers=1,
        max_workers=4,
        metric="queue",
        target=1.0,
        decision_interval=0.25,
        cooldown=0.6,
        startup_delay=0.1,
        scale_down_ticks=100,
        tolerance=0.0,
    )
    # Two tasks at t=0, four more at t=0.3. Tick 0.25: 1 busy + 1 queued -> 2 workers
    # (slot 1 added, serving from 0.35, where it takes task 1). Ticks 0.5 and 0.75: 2 busy
    # + 4 queued want 6 (capped at 4) but are within 0.6 s of the event at 0.25. Tick 1.0
    # is not: slots 2 and 3 are added, serving from 1.1.
    wl = workload([0.0, 0.0, 0.3, 0.3, 0.3, 0.3], [2.0] * 6)
    result = sim.run(wl, policy, workers=1)
    events = result.events
    ups = events[events["kind"] == "scale_up"]
    assert ups["time"].tolist() == pytest.approx([0.25, 1.0, 1.0], abs=TOL)
    assert ups["worker"].tolist() == [1, 2, 3]
    assert (events["kind"] != "scale_down").all()
    first = result.tasks.groupby("worker")["start"].min()
    assert first[1] == pytest.approx(0.35, abs=TOL)
    assert first[2] == pytest.approx(1.1, abs=TOL)
    assert first[3] == pytest.approx(1.1, abs=TOL)


def test_autoscaling_scale_up_never_puts_two_workers_in_one_slot() -> None:
    policy = Autoscaling(
        min_workers=1,
        max_workers=2,
        metric="queue",
        target=1.0,
        decision_interval=0.25,
        cooldown=0.0,
        startup_delay=0.0,
        scale_down_ticks=1,
        tolerance=0.0,
    )
    wl = workload([0.0, 0.3, 0.3], [1.0, 1.0, 1.0])
    result = sim.run(wl, policy, workers=2)
    # Tick 0.25: 1 task for 2 workers -> retire slot 1, which is running task 0 until 1.0.
    # Tick 0.5: 3 tasks want 2 workers again. Slot 1 is still occupied by the retiring
    # worker, so the pool must not start a second worker in it: at no time may more than
    # max_workers serve, and a slot runs one task at a time.
    assert result.events["kind"].tolist()[:1] == ["scale_down"]
    assert (result.timeline["workers"] <= policy.max_workers).all(), result.timeline
    tasks = result.tasks
    for _, runs in tasks.sort_values("start").groupby("worker"):
        starts, ends = runs["start"].to_numpy(), runs["end"].to_numpy()
        assert np.all(starts[1:] >= ends[:-1] - TOL), runs
    assert (tasks["status"] == "done").all()


def test_a_slot_retired_while_crashed_and_added_again_keeps_working() -> None:
    policy = Autoscaling(
        inner=WorkStealing(),
        min_workers=1,
        max_workers=2,
        metric="queue",
        target=1.0,
        decision_interval=0.25,
        cooldown=0.0,
        startup_delay=0.0,
        scale_down_ticks=1,
        tolerance=0.0,
    )
    recovery = Recovery(heartbeat_interval=0.1, heartbeat_timeout=0.6, restart_delay=0.25)
    wl = workload([0.3] * 6 + [2.0] * 4, [1.0] * 10)
    faults = FaultPlan(crashes=[(0.05, 1)])
    result = sim.run(wl, policy, workers=2, faults=faults, recovery=recovery)
    # Slot 1 crashes idle at 0.05 (declared dead only at 0.6). Tick 0.25 sees no load and
    # retires slot 1; six tasks arrive at 0.3; tick 0.5 wants 2 workers again. Whatever
    # the pool does with slot 1 meanwhile, once the crashed worker is declared dead the
    # pool has (at most) two healthy workers that share the backlog: from t=1 on, no
    # serving worker is idle while tasks wait, and no more than max_workers serve.
    assert (result.tasks["status"] == "done").all()
    timeline = result.timeline
    assert (timeline["workers"] <= policy.max_workers).all(), timeline
    later = timeline[timeline["time"] >= 1.0]
    waiting = later[later["queued"] > 0]
    assert (waiting["busy"] == waiting["workers"]).all(), timeline
    # Ten one-second tasks, two workers from t <= 1: done well before one worker alone
    # would be (9.3 s).
    assert result.tasks["end"].max() <= 6.5


@pytest.mark.timeout(3)
def test_scale_down_of_a_worker_just_woken_for_a_task_does_not_strand_it() -> None:
    policy = Autoscaling(
        min_workers=1,
        max_workers=2,
        metric="queue",
        target=1.0,
        decision_interval=0.25,
        cooldown=0.0,
        startup_delay=0.0,
        scale_down_ticks=1,
        tolerance=0.0,
    )
    wl = workload([0.0, 0.25], [0.1, 1.0])
    result = sim.run(wl, policy, workers=2)
    # Task 0 runs on worker 1 (0 -> 0.1), which then idles after worker 0. Task 1 arrives
    # at 0.25 and wakes worker 1; the tick at 0.25 (1 task for 2 workers) retires slot 1
    # before that worker took the task. Worker 0 is idle: task 1 must run on it from 0.25
    # (and the run must end, rather than wait forever for a worker to look at the queue).
    assert_tasks(result, [(0.0, 0.1, 1), (0.25, 1.25, 0)])
    assert_events(result, [(0.25, "scale_down", 1, -1)])
