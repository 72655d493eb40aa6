"""The contract both pools keep: the same workload and the same policy type, run by the
simulated pool (``sim.run``) and by the real pool (``real.run``), on worker threads and on
worker processes, must behave alike at the level the design promises.

Every test is parametrized over a ``runner`` fixture: ``sim.run`` or ``real.run``, each
with ``backend="thread"`` or ``"process"``; only behaviour is asserted (never wall-clock
speed). Real workloads last at most a couple of seconds with services of 5-20 ms.
Where the backends differ by design (a process worker declared dead is killed, so it
returns no late result) the test says so.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest

import pool
import real
import sim
from pool import FaultPlan, Recovery, Workload, dists
from pool.policies import resolve
from pool.seeding import run_streams

pytestmark = pytest.mark.timeout(60)

Runner = Callable[..., pool.RunResult]

TASK_COLUMNS = [
    "task_id",
    "priority",
    "arrival",
    "start",
    "end",
    "wait",
    "latency",
    "worker",
    "attempts",
    "status",
    "stolen",
]
EVENT_COLUMNS = ["time", "kind", "worker", "task_id"]
TIMELINE_COLUMNS = ["time", "workers", "busy", "queued"]
SUMMARY_KEYS = {
    "throughput",
    "mean_wait",
    "mean_latency",
    "p50_latency",
    "p95_latency",
    "p99_latency",
    "utilization",
    "completed",
    "failed",
    "lost",
    "duplicates",
    "makespan",
}
#: A quick recovery for short runs: detection within ~0.1 s, restart 20 ms later.
FAST_RECOVERY = Recovery(
    heartbeat_interval=0.02,
    heartbeat_timeout=0.08,
    restart_delay=0.02,
    max_attempts=3,
    retry_backoff=0.005,
)
#: Where the heartbeat is not under test, processes get a slower one: a child's heartbeat
#: is judged by the wall clock, and one not run for ~70 ms on a loaded machine would look
#: dead under FAST_RECOVERY (a process's exit is seen through its sentinel anyway).
PROCESS_HEARTBEAT = {"heartbeat_interval": 0.05, "heartbeat_timeout": 0.5}
#: Slack for the real pool's timing (noisy 2-core machine): only lower bounds are tight.
REAL_SLACK = 1.0


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(autouse=True)
def _threads_checked(no_thread_left: None) -> None:
    """Every test here is checked for threads left behind (see conftest.py)."""


def _real_run(workload: Workload, policy: Any, workers: int, **kw: Any) -> pool.RunResult:
    # A bounded wait, so a pool that never finishes reports lost tasks instead of hanging.
    kw.setdefault("timeout", 20.0)
    return real.run(workload, policy, workers, **kw)


def _children_end(timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while multiprocessing.active_children() and time.monotonic() < deadline:
        time.sleep(0.02)
    return not multiprocessing.active_children()


def _real_processes(workload: Workload, policy: Any, workers: int, **kw: Any) -> pool.RunResult:
    kw.setdefault("recovery", Recovery(**PROCESS_HEARTBEAT))
    result = _real_run(workload, policy, workers, backend="process", **kw)
    assert _children_end(), "a worker process outlived the run"
    return result


def _sim_processes(workload: Workload, policy: Any, workers: int, **kw: Any) -> pool.RunResult:
    kw.setdefault("recovery", Recovery(**PROCESS_HEARTBEAT))
    return sim.run(workload, policy, workers, backend="process", **kw)


RUNNERS: dict[str, Runner] = {
    "sim": sim.run,
    "real": _real_run,
    "sim-process": _sim_processes,
    "real-process": _real_processes,
}


@pytest.fixture(params=list(RUNNERS))
def runner(request: pytest.FixtureRequest) -> Runner:
    """``run(workload, policy, workers, **kw)`` of the simulated or of the real pool, on
    worker threads or on worker processes."""
    return RUNNERS[request.param]


def on_processes(runner: Runner) -> bool:
    """Whether ``runner`` runs its workers as processes."""
    return runner in (_sim_processes, _real_processes)


def recovery_for(runner: Runner, recovery: Recovery = FAST_RECOVERY) -> Recovery:
    """``recovery``, with :data:`PROCESS_HEARTBEAT` when ``runner`` runs processes."""
    return dataclasses.replace(recovery, **PROCESS_HEARTBEAT) if on_processes(runner) else recovery


def workload_of(
    arrival: list[float],
    service: list[float],
    priority: list[int] | None = None,
    affinity: list[int] | None = None,
) -> Workload:
    """A workload given task by task."""
    n_tasks = len(arrival)
    return Workload(
        np.asarray(arrival, dtype=np.float64),
        np.asarray(service, dtype=np.float64),
        np.asarray(priority if priority is not None else [0] * n_tasks, dtype=np.int64),
        np.zeros(n_tasks),
        np.asarray(affinity if affinity is not None else [-1] * n_tasks, dtype=np.int64),
    )


def basic_workload() -> Workload:
    """About 1.5 s of Poisson arrivals at 200/s, 8 ms services, two classes."""
    return Workload.poisson(
        rate=200.0,
        service=dists.Exponential(mean=0.008),
        n_tasks=300,
        priorities={0: 0.3, 1: 0.7},
        seed=1,
    )


def overloaded_workload(n_tasks: int = 120) -> Workload:
    """Tasks of 20 ms arriving at 300/s on 4 workers: every worker stays busy while the
    arrivals last (0.4 s) and the backlog drains by about 0.7 s."""
    return Workload.poisson(rate=300.0, service=dists.Deterministic(0.020), n_tasks=n_tasks, seed=3)


def make_policy(name: str) -> pool.Policy:
    if name != "autoscaling":
        return resolve(name)
    return pool.Autoscaling(
        min_workers=2, max_workers=6, decision_interval=0.05, cooldown=0.1, startup_delay=0.01
    )


def events_of(result: pool.RunResult, kind: str) -> pd.DataFrame:
    events = result.events
    return events[events["kind"] == kind]


def assert_all_done(result: pool.RunResult, workload: Workload) -> None:
    """One row per task, every task done exactly once, nothing lost."""
    tasks = result.tasks
    assert len(tasks) == len(workload)
    assert tasks["task_id"].tolist() == list(range(len(workload)))
    assert (tasks["status"] == "done").all(), tasks["status"].value_counts().to_dict()
    summary = result.summary()
    assert summary["lost"] == 0
    assert summary["failed"] == 0
    assert summary["completed"] == len(workload)
    assert (tasks["end"] >= tasks["start"]).all()


def assert_sane_timeline(result: pool.RunResult, max_workers: int) -> None:
    timeline = result.timeline
    assert list(timeline.columns) == TIMELINE_COLUMNS
    assert (timeline["busy"] >= 0).all()
    # A negative queue means some task started before it was queued (see the causality test).
    assert (timeline["queued"] >= 0).all(), f"queued went to {timeline['queued'].min()}"
    assert (timeline["workers"] >= 0).all()
    assert (timeline["workers"] <= max_workers).all()
    assert timeline["time"].is_monotonic_increasing
    last = timeline.iloc[-1]
    assert last["busy"] == 0
    assert last["queued"] == 0


# ----------------------------------------------------------------------------- basics


@pytest.mark.parametrize("policy_name", ["fifo", "priority", "work-stealing", "autoscaling"])
def test_every_task_done_once(runner: Runner, policy_name: str) -> None:
    workload = basic_workload()
    policy = make_policy(policy_name)
    result = runner(workload, policy, 4, seed=1)
    assert_all_done(result, workload)
    tasks = result.tasks
    assert (tasks["attempts"] == 1).all()
    assert result.summary()["duplicates"] == 0
    assert tasks["worker"].between(0, 5).all()
    assert_sane_timeline(result, max_workers=6)
    assert result.meta["policy"]["policy"] == policy.name


def test_no_task_starts_before_it_arrives(runner: Runner) -> None:
    """Causality: wait = start - arrival is never negative (dense arrivals, idle workers)."""
    workload = Workload.poisson(
        rate=2000.0, service=dists.Exponential(mean=0.001), n_tasks=800, seed=11
    )
    result = runner(workload, pool.FIFO(), 4, seed=11)
    assert_all_done(result, workload)
    tasks = result.tasks
    early = tasks[tasks["start"] < tasks["arrival"]]
    assert early.empty, (
        f"{len(early)} tasks started before they arrived, by up to "
        f"{float((early['arrival'] - early['start']).max()) * 1e6:.0f} us"
    )
    assert (tasks["wait"] >= 0).all()


def test_policy_names_and_objects_agree(runner: Runner) -> None:
    workload = basic_workload().head(60)
    by_name = runner(workload, "priority", 2, seed=2)
    assert_all_done(by_name, workload)
    assert by_name.meta["policy"] == pool.Priority().describe()


def test_result_schema_is_identical() -> None:
    """Both pools return the same columns, dtypes and summary keys, with and without faults."""
    workload = overloaded_workload(80)
    faults = FaultPlan(crashes=[(0.15, 1)])
    options: list[dict[str, Any]] = [{}, {"faults": faults, "recovery": FAST_RECOVERY}]
    for kwargs in options + [{"backend": "process", **extra} for extra in options]:
        predicted = sim.run(workload, pool.FIFO(), 4, seed=5, **kwargs)
        measured = _real_run(workload, pool.FIFO(), 4, seed=5, **kwargs)
        assert predicted.backend == "sim"
        assert measured.backend == "real"
        for name, columns in (
            ("tasks", TASK_COLUMNS),
            ("events", EVENT_COLUMNS),
            ("timeline", TIMELINE_COLUMNS),
        ):
            left, right = getattr(predicted, name), getattr(measured, name)
            assert list(left.columns) == columns, name
            assert list(right.columns) == columns, name
            assert left.dtypes.to_dict() == right.dtypes.to_dict(), name
        assert set(predicted.summary()) == set(measured.summary())
        assert set(measured.summary()) >= SUMMARY_KEYS
        if "faults" in kwargs:
            assert set(measured.summary()) >= {"recovery_time", "detection_time"}
        comparison = pool.compare(predicted, measured)
        assert list(comparison.columns) == ["metric", "predicted", "measured", "rel_error"]
        assert "throughput" in set(comparison["metric"])


# ----------------------------------------------------------------------------- priority


def test_priority_order_with_one_worker(runner: Runner) -> None:
    """Tasks arriving while the only worker is busy run class 0 first, FIFO within a class."""
    n_waiting = 12
    arrival = [0.0] + [0.01 + 0.01 * i for i in range(n_waiting)]
    service = [0.25] + [0.005] * n_waiting
    priority = [1] + [1 if i % 2 == 0 else 0 for i in range(n_waiting)]
    workload = workload_of(arrival, service, priority)
    result = runner(workload, pool.Priority(), 1, seed=0)
    assert_all_done(result, workload)
    waiting = result.tasks.iloc[1:]
    urgent = waiting[waiting["priority"] == 0]
    lazy = waiting[waiting["priority"] == 1]
    assert urgent["start"].max() < lazy["start"].min()
    for klass in (urgent, lazy):
        order = klass.sort_values("start")["task_id"].tolist()
        assert order == sorted(order), "FIFO within a class"


# ----------------------------------------------------------------------------- stealing


def test_work_stealing_on_affinity_skew(runner: Runner) -> None:
    workers = 4
    workload = Workload.poisson(
        rate=200.0, service=dists.Exponential(mean=0.008), n_tasks=300, seed=4
    ).with_affinity(workers, hot_share=0.8)
    policy = pool.WorkStealing(placement="affinity")
    result = runner(workload, policy, workers, seed=4)
    assert_all_done(result, workload)
    tasks = result.tasks
    stolen = tasks[tasks["stolen"]]
    assert len(stolen) > 0
    assert result.summary()["stolen"] == len(stolen)
    steals = events_of(result, "steal")
    assert set(steals["task_id"]) == set(stolen["task_id"])
    # A stolen task runs on its thief, never on the worker it was placed on.
    affinity = workload.affinity[stolen["task_id"].to_numpy()]
    assert (stolen["worker"].to_numpy() != affinity).all()
    # Stealing moves tasks, it never duplicates them on healthy workers.
    assert (tasks["attempts"] == 1).all()
    assert result.summary()["duplicates"] == 0
    assert tasks["worker"].nunique() == workers


def test_no_stealing_baseline_keeps_placement(runner: Runner) -> None:
    workers = 3
    workload = Workload.poisson(
        rate=150.0, service=dists.Exponential(mean=0.005), n_tasks=120, seed=6
    ).with_affinity(workers, hot_share=0.8)
    policy = pool.WorkStealing(placement="affinity", amount="none")
    result = runner(workload, policy, workers, seed=6)
    assert_all_done(result, workload)
    tasks = result.tasks
    assert not tasks["stolen"].any()
    assert (tasks["worker"].to_numpy() == workload.affinity).all()


# ----------------------------------------------------------------------------- autoscaling


def test_autoscaling_scales_up_and_down(runner: Runner) -> None:
    workload = Workload.steps(
        [(0.2, 20.0), (1.0, 400.0), (1.0, 10.0)], dists.Deterministic(0.008), seed=7
    )
    policy = pool.Autoscaling(
        min_workers=1,
        max_workers=6,
        target=0.7,
        decision_interval=0.05,
        cooldown=0.1,
        startup_delay=0.02,
        scale_down_ticks=3,
    )
    result = runner(workload, policy, 1, seed=7)
    assert_all_done(result, workload)
    ups, downs = events_of(result, "scale_up"), events_of(result, "scale_down")
    assert len(ups) > 0
    assert len(downs) > 0
    assert downs["time"].max() > ups["time"].min()
    timeline = result.timeline
    assert (timeline["workers"] >= 1).all()
    assert (timeline["workers"] <= 6).all()
    peak = int(timeline["workers"].max())
    assert peak >= 3
    assert int(timeline["workers"].iloc[-1]) < peak
    # Scaling never drops work and never runs a task twice.
    assert (result.tasks["attempts"] == 1).all()
    assert result.summary()["duplicates"] == 0


# ----------------------------------------------------------------------------- faults


def test_crash_is_detected_restarted_and_retried(runner: Runner) -> None:
    workload = overloaded_workload()
    crash_time, slot = 0.2, 1
    faults = FaultPlan(crashes=[(crash_time, slot)])
    rec = recovery_for(runner)
    result = runner(workload, pool.FIFO(), 4, faults=faults, recovery=rec, seed=8)
    assert_all_done(result, workload)
    crashes = events_of(result, "crash")
    detected = events_of(result, "detected")
    restarts = events_of(result, "restart")
    retries = events_of(result, "retry")
    assert crashes["worker"].tolist() == [slot]
    assert detected["worker"].tolist() == [slot]
    assert restarts["worker"].tolist() == [slot]
    crashed_at = float(crashes["time"].iloc[0])
    detected_at = float(detected["time"].iloc[0])
    restarted_at = float(restarts["time"].iloc[0])
    assert crashed_at >= crash_time - 1e-9
    if not on_processes(runner):
        # Detection follows the heartbeat rule: never earlier than timeout minus one interval.
        assert detected_at - crashed_at >= rec.heartbeat_timeout - rec.heartbeat_interval - 1e-6
    # (A process's exit is seen through its sentinel, sooner: test_process_replay.py.)
    assert detected_at >= crashed_at
    assert detected_at - crashed_at <= rec.heartbeat_timeout + rec.heartbeat_interval + REAL_SLACK
    assert restarted_at >= detected_at + rec.restart_delay - 1e-6
    # The task the crashed worker ran is retried and completes on a second attempt.
    victim = int(crashes["task_id"].iloc[0])
    assert victim >= 0, "the worker was busy when it crashed"
    if runner is _real_processes and retries["task_id"].tolist() != [victim]:
        victim = answered_before_the_kill(result, victim, slot)
    assert retries["task_id"].tolist() == [victim]
    tasks = result.tasks.set_index("task_id")
    assert tasks.loc[victim, "attempts"] == 2
    assert tasks.loc[victim, "status"] == "done"
    assert int((result.tasks["attempts"] > 1).sum()) == 1
    assert result.summary()["lost"] == 0
    assert result.summary()["duplicates"] == 0
    assert "recovery_time" in result.summary()
    assert_sane_timeline(result, max_workers=4)


def answered_before_the_kill(result: pool.RunResult, crashed: int, slot: int) -> int:
    """The task lost instead of ``crashed`` when a killed child had sent ``crashed``'s
    answer just before the SIGKILL: that one completed at once, and the next task its
    slot sent to the dead child is the attempt lost."""
    tasks = result.tasks.set_index("task_id")
    assert tasks.loc[crashed, "attempts"] == 1 and tasks.loc[crashed, "status"] == "done"
    lost = result.attempts
    assert len(lost) == 1 and int(lost["worker"].iloc[0]) == slot
    return int(lost["task_id"].iloc[0])


def expected_attempts(faults: FaultPlan, recovery: Recovery, n_tasks: int, seed: int) -> np.ndarray:
    """Attempts per task implied by the run's pre-drawn attempt failures."""
    failures = faults.attempt_failures(n_tasks, recovery.max_attempts, run_streams(seed).failures)
    assert failures is not None
    first_success = np.argmin(failures, axis=1) + 1
    return np.where(failures.all(axis=1), recovery.max_attempts, first_success)


def test_task_failures_are_retried(runner: Runner) -> None:
    workload = basic_workload().head(150)
    faults = FaultPlan(task_failure_prob=0.3)
    seed, recovery = 9, recovery_for(runner)
    result = runner(workload, pool.FIFO(), 4, faults=faults, recovery=recovery, seed=seed)
    attempts = expected_attempts(faults, recovery, len(workload), seed)
    failures = faults.attempt_failures(
        len(workload), recovery.max_attempts, run_streams(seed).failures
    )
    assert failures is not None
    all_failed = failures.all(axis=1)
    tasks = result.tasks
    assert len(tasks) == len(workload)
    assert tasks["status"].isin(["done", "failed"]).all()
    assert result.summary()["lost"] == 0
    assert tasks["attempts"].tolist() == attempts.tolist()
    assert ((tasks["status"] == "failed").to_numpy() == all_failed).all()
    retries = events_of(result, "retry")
    assert len(retries) == int((attempts - 1).sum()) > 0
    assert result.summary()["retried"] == len(retries)
    assert result.summary()["failed"] == int(all_failed.sum())
    assert result.summary()["duplicates"] == 0
    # No worker died: attempts that raise never kill a worker.
    assert events_of(result, "detected").empty
    assert events_of(result, "restart").empty


@pytest.mark.parametrize("scenario", ["hang", "task_timeout"])
def test_late_results_of_dead_workers_are_discarded_and_counted(
    runner: Runner, scenario: str
) -> None:
    """A worker thread declared dead (a long hang, a task timeout) still finishes its
    attempt; the late result is dropped and counted as a duplicate, even when it comes back
    after every other task is done. A worker process declared dead is killed: no late
    result. Both pools count the same duplicates."""
    if scenario == "hang":
        workload = overloaded_workload()
        faults = FaultPlan(hangs=[(0.2, 1, 0.9)])  # returns long after the backlog drains
        recovery, expected, given_up = recovery_for(runner), 1, "detected"
    else:
        n_tasks = 40
        service = [0.005] * n_tasks
        service[3] = 1.2  # every attempt of task 3 times out and comes back late
        workload = workload_of(list(np.linspace(0.0, 0.4, n_tasks)), service)
        faults = FaultPlan()
        # A timeout well above a 5 ms task's: a stalled machine does not time that out.
        recovery = Recovery(
            heartbeat_interval=0.02,
            heartbeat_timeout=0.08,
            restart_delay=0.02,
            max_attempts=2,
            retry_backoff=0.005,
            task_timeout=0.5,
        )
        recovery = recovery_for(runner, recovery)
        expected, given_up = 2, "timeout"
    result = runner(workload, pool.FIFO(), 4, faults=faults, recovery=recovery, seed=10)
    tasks = result.tasks
    assert tasks["status"].isin(["done", "failed"]).all()
    assert result.summary()["lost"] == 0
    assert len(events_of(result, given_up)) == expected
    if on_processes(runner):
        expected = 0
    discarded = events_of(result, "discarded")
    assert len(discarded) == expected
    assert result.summary()["duplicates"] == expected
