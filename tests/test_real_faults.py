"""real.run under injected faults: crashes, hangs (shorter and longer than the heartbeat
timeout), poison tasks, failing attempts and task timeouts; a stress run of thousands of
short tasks under random faults for every policy; calibration; and the guard that
``real`` never imports simpy.

The invariants asserted everywhere: one row per task, every task ``done`` or ``failed``,
``lost == 0``, completion recorded once (duplicates are exactly the discarded late
results), attempts consistent with the log of unsuccessful attempts.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import pool
import real
from pool import FaultPlan, Recovery, Workload, dists

pytestmark = pytest.mark.timeout(60)

FAST = Recovery(
    heartbeat_interval=0.02,
    heartbeat_timeout=0.1,
    restart_delay=0.02,
    max_attempts=3,
    retry_backoff=0.005,
)


@pytest.fixture(autouse=True)
def _threads_checked(no_thread_left: None) -> None:
    """Every test here is checked for threads left behind (see conftest.py)."""


def run(workload: Workload, policy: Any = "fifo", workers: int = 4, **kw: Any) -> pool.RunResult:
    kw.setdefault("timeout", 30.0)  # unfinished tasks then show up as lost, not as a hang
    return real.run(workload, policy, workers, **kw)


def workload_of(arrival: list[float] | np.ndarray, service: list[float] | np.ndarray) -> Workload:
    n_tasks = len(arrival)
    return Workload(
        np.asarray(arrival, dtype=np.float64),
        np.asarray(service, dtype=np.float64),
        np.zeros(n_tasks, dtype=np.int64),
        np.zeros(n_tasks),
        np.full(n_tasks, -1, dtype=np.int64),
    )


def busy_workload(n_tasks: int = 120, service: float = 0.02, rate: float = 300.0) -> Workload:
    """4 workers kept busy for the whole arrival phase (offered load 1.5)."""
    return Workload.poisson(
        rate=rate, service=dists.Deterministic(service), n_tasks=n_tasks, seed=2
    )


def events_of(result: pool.RunResult, kind: str) -> pd.DataFrame:
    events = result.events
    return events[events["kind"] == kind]


def assert_accounted(result: pool.RunResult, workload: Workload, recovery: Recovery) -> None:
    """Nothing lost, nothing double-counted, the records agree with one another."""
    tasks = result.tasks
    summary = result.summary()
    assert len(tasks) == len(workload)
    assert tasks["task_id"].tolist() == list(range(len(workload)))
    assert tasks["status"].isin(["done", "failed"]).all(), tasks["status"].value_counts()
    assert summary["lost"] == 0
    assert summary["completed"] + summary["failed"] == len(workload)
    assert tasks["attempts"].between(1, recovery.max_attempts).all()
    # Completion is recorded once: every duplicate is a discarded late result.
    assert summary["duplicates"] == len(events_of(result, "discarded"))
    # Each failed task has one 'failed' event; done tasks have none.
    failed_ids = set(tasks.loc[tasks["status"] == "failed", "task_id"])
    failed_events = events_of(result, "failed")["task_id"].tolist()
    assert sorted(failed_events) == sorted(failed_ids)
    # Unsuccessful attempts logged: attempts - 1 for done tasks, all attempts for failed.
    logged = result.attempts.groupby("task_id").size() if len(result.attempts) else pd.Series()
    logged = logged.reindex(tasks["task_id"], fill_value=0).to_numpy()
    expected = tasks["attempts"].to_numpy() - (tasks["status"] == "done").to_numpy()
    assert (logged == expected).all()
    # A retry event for every attempt after the first.
    assert len(events_of(result, "retry")) == int((tasks["attempts"] - 1).sum())
    done = tasks[tasks["status"] == "done"]
    assert (done["end"] >= done["start"]).all()
    timeline = result.timeline
    assert (timeline["busy"] >= 0).all()
    assert (timeline["workers"] >= 0).all()


# ----------------------------------------------------------------------------- crashes


def test_crashes_detected_restarted_retried() -> None:
    workload = busy_workload()
    faults = FaultPlan(crashes=[(0.1, 1), (0.25, 2), (0.25, 3)])
    result = run(workload, "fifo", 4, faults=faults, recovery=FAST, seed=1)
    assert_accounted(result, workload, FAST)
    assert (result.tasks["status"] == "done").all()
    crashes = events_of(result, "crash")
    assert sorted(crashes["worker"]) == [1, 2, 3]
    assert sorted(events_of(result, "detected")["worker"]) == [1, 2, 3]
    assert sorted(events_of(result, "restart")["worker"]) == [1, 2, 3]
    victims = crashes["task_id"]
    assert (victims >= 0).all(), "every crashed worker was busy"
    tasks = result.tasks.set_index("task_id")
    assert (tasks.loc[victims, "attempts"] == 2).all()
    assert result.summary()["duplicates"] == 0
    assert result.summary()["detection_time"] >= FAST.heartbeat_timeout - FAST.heartbeat_interval
    # Restarted workers serve again: tasks started after the restarts ran on those slots.
    last_restart = float(events_of(result, "restart")["time"].max())
    later = result.tasks[result.tasks["start"] > last_restart]
    assert {1, 2, 3} <= set(later["worker"])


def test_crash_of_an_idle_worker() -> None:
    workload = workload_of([0.0, 0.35, 0.36, 0.37], [0.01] * 4)
    faults = FaultPlan(crashes=[(0.1, 0), (0.1, 1)])
    result = run(workload, "fifo", 2, faults=faults, recovery=FAST, seed=1)
    assert_accounted(result, workload, FAST)
    assert (result.tasks["status"] == "done").all()
    assert (events_of(result, "crash")["task_id"] == -1).all()
    assert sorted(events_of(result, "restart")["worker"]) == [0, 1]
    assert (result.tasks["attempts"] == 1).all()


# ----------------------------------------------------------------------------- hangs


def test_hang_shorter_than_heartbeat_timeout_is_ridden_out() -> None:
    workload = busy_workload()
    duration = 0.04  # well under heartbeat_timeout - heartbeat_interval
    faults = FaultPlan(hangs=[(0.15, 1, duration)])
    result = run(workload, "fifo", 4, faults=faults, recovery=FAST, seed=3)
    assert_accounted(result, workload, FAST)
    assert (result.tasks["status"] == "done").all()
    hangs = events_of(result, "hang")
    assert len(hangs) == 1
    assert events_of(result, "detected").empty
    assert events_of(result, "restart").empty
    assert (result.tasks["attempts"] == 1).all()
    assert result.summary()["duplicates"] == 0
    # The attempt that hung lasted its service plus (about) the hang.
    victim = int(hangs["task_id"].iloc[0])
    assert victim >= 0
    row = result.tasks.set_index("task_id").loc[victim]
    assert row["end"] - row["start"] >= workload.service[victim] + 0.8 * duration


def test_hang_longer_than_heartbeat_timeout_is_declared_dead() -> None:
    workload = busy_workload()
    faults = FaultPlan(hangs=[(0.15, 1, 0.6)])
    result = run(workload, "fifo", 4, faults=faults, recovery=FAST, seed=3)
    assert_accounted(result, workload, FAST)
    assert (result.tasks["status"] == "done").all()
    hang = events_of(result, "hang")
    detected = events_of(result, "detected")
    assert detected["worker"].tolist() == [1]
    assert events_of(result, "restart")["worker"].tolist() == [1]
    victim = int(hang["task_id"].iloc[0])
    assert victim >= 0
    tasks = result.tasks.set_index("task_id")
    assert tasks.loc[victim, "attempts"] == 2
    assert tasks.loc[victim, "status"] == "done"
    # The hung worker came back with a result nobody wanted: dropped and counted.
    discarded = events_of(result, "discarded")
    assert discarded["task_id"].tolist() == [victim]
    assert result.summary()["duplicates"] == 1
    assert float(discarded["time"].iloc[0]) > float(detected["time"].iloc[0])


def test_hang_of_an_idle_worker_long() -> None:
    workload = workload_of([0.0, 0.5, 0.51], [0.01] * 3)
    faults = FaultPlan(hangs=[(0.1, 0, 0.3)])
    result = run(workload, "fifo", 1, faults=faults, recovery=FAST, seed=1)
    assert_accounted(result, workload, FAST)
    assert (result.tasks["status"] == "done").all()
    assert events_of(result, "detected")["worker"].tolist() == [0]
    assert result.summary()["duplicates"] == 0


# ----------------------------------------------------------------------------- poison


def test_poison_task_fails_after_max_attempts() -> None:
    workload = busy_workload(n_tasks=80)
    poison = 7
    faults = FaultPlan(poison_tasks=[poison])
    result = run(workload, "fifo", 3, faults=faults, recovery=FAST, seed=4)
    assert_accounted(result, workload, FAST)
    tasks = result.tasks.set_index("task_id")
    assert tasks.loc[poison, "status"] == "failed"
    assert tasks.loc[poison, "attempts"] == FAST.max_attempts
    others = tasks.drop(index=poison)
    assert (others["status"] == "done").all()
    crashes = events_of(result, "crash")
    assert crashes["task_id"].tolist() == [poison] * FAST.max_attempts
    assert len(events_of(result, "detected")) == FAST.max_attempts
    assert len(events_of(result, "restart")) >= FAST.max_attempts - 1
    assert result.summary()["failed"] == 1


def test_poison_task_with_one_worker() -> None:
    workload = workload_of(np.linspace(0.0, 0.2, 20), [0.005] * 20)
    faults = FaultPlan(poison_tasks=[0, 10])
    result = run(workload, "priority", 1, faults=faults, recovery=FAST, seed=4)
    assert_accounted(result, workload, FAST)
    status = result.tasks["status"]
    assert (status == "failed").sum() == 2
    assert status.iloc[0] == "failed"
    assert status.iloc[10] == "failed"


# ----------------------------------------------------------------------------- failures


def test_task_failures_retried_and_some_fail() -> None:
    workload = Workload.poisson(rate=400.0, service=dists.Exponential(0.004), n_tasks=300, seed=5)
    recovery = Recovery(
        heartbeat_interval=0.02, heartbeat_timeout=0.1, max_attempts=2, retry_backoff=0.002
    )
    faults = FaultPlan(task_failure_prob=0.3)
    result = run(workload, "fifo", 4, faults=faults, recovery=recovery, seed=5)
    assert_accounted(result, workload, recovery)
    summary = result.summary()
    assert summary["retried"] > 0
    assert summary["failed"] > 0  # 0.3**2 of 300 tasks: about 27
    assert events_of(result, "detected").empty
    assert summary["duplicates"] == 0
    outcomes = result.attempts["outcome"]
    assert (outcomes == "error").all()


# ----------------------------------------------------------------------------- timeouts


def test_task_timeout_fails_a_long_task_and_discards_late_results() -> None:
    n_tasks = 40
    service = np.full(n_tasks, 0.005)
    long_task = 3
    service[long_task] = 1.2
    workload = workload_of(np.linspace(0.0, 0.4, n_tasks), service)
    recovery = Recovery(
        heartbeat_interval=0.02,
        heartbeat_timeout=0.1,
        restart_delay=0.02,
        max_attempts=2,
        retry_backoff=0.005,
        task_timeout=0.5,  # well above a 5 ms task's, on a machine that stalls
    )
    result = run(workload, "fifo", 3, recovery=recovery, seed=6)
    assert_accounted(result, workload, recovery)
    tasks = result.tasks.set_index("task_id")
    assert tasks.loc[long_task, "status"] == "failed"
    assert tasks.loc[long_task, "attempts"] == 2
    assert (tasks.drop(index=long_task)["status"] == "done").all()
    timeouts = events_of(result, "timeout")
    assert timeouts["task_id"].tolist() == [long_task, long_task]
    # The second replacement may still be pending when the run ends.
    assert 1 <= len(events_of(result, "restart")) <= 2
    # Both timed-out attempts finished their sleep later: each result discarded.
    assert result.summary()["duplicates"] == 2
    outcomes = result.attempts.set_index("task_id").loc[[long_task], "outcome"]
    assert (outcomes == "timeout").all()


def test_task_timeout_spares_tasks_within_it() -> None:
    workload = busy_workload(n_tasks=60, service=0.01)
    recovery = Recovery(heartbeat_interval=0.02, heartbeat_timeout=0.1, task_timeout=0.5)
    result = run(workload, "fifo", 4, recovery=recovery, seed=6)
    assert_accounted(result, workload, recovery)
    assert (result.tasks["status"] == "done").all()
    assert events_of(result, "timeout").empty
    assert (result.tasks["attempts"] == 1).all()


def test_faults_during_cpu_bound_service() -> None:
    """Crashes and hangs reach a worker in the busy loop (the CPU part) too."""
    workload = Workload.poisson(
        rate=150.0, service=dists.Deterministic(0.01), n_tasks=100, seed=2, cpu_fraction=0.6
    )
    faults = FaultPlan(crashes=[(0.1, 0)], hangs=[(0.2, 1, 0.3), (0.4, 0, 0.03)])
    result = run(workload, "fifo", 2, faults=faults, recovery=FAST, seed=1)
    assert_accounted(result, workload, FAST)
    assert (result.tasks["status"] == "done").all()
    assert sorted(events_of(result, "detected")["worker"]) == [0, 1]
    assert result.summary()["duplicates"] == len(events_of(result, "discarded")) <= 1


def test_faults_on_absent_slots_are_ignored() -> None:
    workload = busy_workload(n_tasks=40, service=0.005)
    faults = FaultPlan(crashes=[(0.05, 5)], hangs=[(0.05, 9, 0.2)])
    result = run(workload, "fifo", 2, faults=faults, recovery=FAST, seed=1)
    assert_accounted(result, workload, FAST)
    assert (result.tasks["status"] == "done").all()
    assert result.events.empty


def test_run_timeout_reports_unfinished_tasks_as_lost() -> None:
    workload = workload_of([0.0] * 8, [0.2] * 8)
    result = real.run(workload, "fifo", 1, timeout=0.3)
    tasks = result.tasks
    assert len(tasks) == 8
    summary = result.summary()
    assert 1 <= summary["completed"] <= 3
    assert summary["lost"] == 8 - summary["completed"]
    assert tasks["status"].isin(["done", "lost"]).all()


# ----------------------------------------------------------------------------- stress

STRESS_FAULTS = FaultPlan(
    crash_mtbf=0.6,
    hang_mtbf=0.8,
    hang_duration=0.15,
    task_failure_prob=0.05,
)
STRESS_RECOVERY = Recovery(
    heartbeat_interval=0.02,
    heartbeat_timeout=0.08,
    restart_delay=0.02,
    max_attempts=4,
    retry_backoff=0.002,
    task_timeout=0.5,
)


def stress_policy(name: str) -> pool.Policy:
    if name == "fifo":
        return pool.FIFO()
    if name == "priority":
        return pool.Priority(aging=0.2)
    if name == "work-stealing":
        return pool.WorkStealing(placement="affinity", victim="longest", amount="half")
    return pool.Autoscaling(
        inner=pool.WorkStealing(),
        min_workers=2,
        max_workers=6,
        target=0.6,
        decision_interval=0.05,
        cooldown=0.1,
        startup_delay=0.01,
        scale_down_ticks=2,
    )


@pytest.mark.timeout(45)
@pytest.mark.parametrize("policy_name", ["fifo", "priority", "work-stealing", "autoscaling"])
def test_stress_random_faults(policy_name: str) -> None:
    n_tasks = 2500
    workload = Workload.poisson(
        rate=1500.0,
        service=dists.Exponential(0.001),
        n_tasks=n_tasks,
        priorities={0: 0.2, 1: 0.5, 2: 0.3},
        seed=12,
    ).with_affinity(4, hot_share=0.5)
    before = {t for t in threading.enumerate()}
    result = run(
        workload,
        stress_policy(policy_name),
        4,
        faults=STRESS_FAULTS,
        recovery=STRESS_RECOVERY,
        seed=12,
    )
    # real.run shuts its pool down and waits: no thread of it is left, without grace.
    assert not [t.name for t in threading.enumerate() if t not in before and t.is_alive()]
    assert_accounted(result, workload, STRESS_RECOVERY)
    summary = result.summary()
    assert summary["completed"] >= 0.95 * n_tasks
    assert summary["retried"] > 0
    # Faults really happened and were answered.
    crashes, hangs = events_of(result, "crash"), events_of(result, "hang")
    assert len(crashes) + len(hangs) > 0
    assert len(events_of(result, "detected")) + len(events_of(result, "timeout")) > 0
    assert len(events_of(result, "restart")) > 0
    max_workers = 6 if policy_name == "autoscaling" else 4
    assert (result.timeline["workers"] <= max_workers).all()
    assert (result.tasks["worker"] < max_workers).all()


# ----------------------------------------------------------------------------- misc


def test_same_pool_policy_object_can_run_twice() -> None:
    workload = busy_workload(n_tasks=40, service=0.005)
    policy = pool.WorkStealing()
    for _ in range(2):
        result = run(workload, policy, 3, seed=1)
        assert_accounted(result, workload, Recovery())
        assert (result.tasks["status"] == "done").all()


@pytest.mark.timeout(30)
def test_calibrate_returns_plausible_overhead() -> None:
    overhead = real.calibrate(samples=100)
    assert isinstance(overhead, pool.Overhead)
    figures = overhead.as_dict()
    assert set(figures) == {
        "dispatch",
        "sleep_overshoot",
        "thread_start",
        "cores",
        "switch_interval",
        "gil_handoff",
        "gil_handoff_busy",
        "submit",
        "remote_call",
        "exit_detection",
        "remote_call_curve",
        "journal_submit",
        "journal_replay",
        "program_start",
    }
    assert figures.pop("remote_call_curve") == ()  # measured for worker processes only
    for name, value in figures.items():
        assert np.isfinite(value), name
        assert value >= 0.0, name
    assert 0.0 < overhead.dispatch < 0.01
    # Threads make no call to another process, and no thread exits to be seen.
    assert overhead.remote_call == 0.0 and overhead.exit_detection == 0.0
    # No journal asked for: its costs are not measured (journal=True measures them).
    assert overhead.journal_submit == overhead.journal_replay == overhead.program_start == 0.0
    assert overhead.sleep_overshoot < 0.05
    assert 0.0 < overhead.thread_start < 0.05
    # The process gets at least one core and at most every core the machine has.
    assert 0.5 <= overhead.cores <= (os.cpu_count() or 1) * 1.05
    assert overhead.switch_interval == sys.getswitchinterval()
    assert 0.0 <= overhead.gil_handoff < 0.005
    assert 0.0 <= overhead.busy_handoff < 0.05
    assert 0.0 < overhead.submit < 0.01
    assert overhead.models_cpu


@pytest.mark.parametrize("samples", [0, 5, 2.5, -1])
def test_calibrate_rejects_bad_samples(samples: Any) -> None:
    with pytest.raises(ValueError, match="samples"):
        real.calibrate(samples=samples)


def test_real_run_bad_input() -> None:
    workload = busy_workload(n_tasks=5)
    with pytest.raises(ValueError, match="workload"):
        real.run([1, 2, 3], "fifo", 2)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="workers"):
        real.run(workload, "fifo", 0)
    with pytest.raises(ValueError, match="policy"):
        real.run(workload, "round-robin", 2)
    with pytest.raises(ValueError, match="faults"):
        real.run(workload, "fifo", 2, faults="crash")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="recovery"):
        real.run(workload, "fifo", 2, recovery=3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="timeout"):
        real.run(workload, "fifo", 2, timeout=-1.0)
    with pytest.raises(ValueError, match="perform"):
        real.run(workload, "fifo", 2, perform=3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="faults"):
        real.run(workload, "fifo", 2, faults=FaultPlan(crashes=[(0.1, 0)]), perform=print)


def test_real_run_performs_the_callers_code_at_the_arrivals() -> None:
    # The workload's own service is a minute a task: had the stand-in run instead of the
    # caller's code, no task would end before the run's 30 s timeout.
    workload = busy_workload(n_tasks=40, service=60.0, rate=400.0)
    seen: list[int] = []
    lock = threading.Lock()

    def perform(task: int) -> None:
        with lock:
            seen.append(task)
        threading.Event().wait(0.002)

    result = run(workload, "fifo", 3, perform=perform)
    assert_accounted(result, workload, Recovery())
    assert sorted(seen) == list(range(40)), "every task performed once, by the caller's code"
    tasks = result.tasks
    assert (tasks["start"] >= tasks["arrival"] - 1e-9).all()


@pytest.mark.timeout(60)
def test_importing_real_does_not_import_simpy() -> None:
    code = "import real, sys; assert 'simpy' not in sys.modules, 'real imported simpy'"
    completed = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=50,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert completed.returncode == 0, completed.stderr
