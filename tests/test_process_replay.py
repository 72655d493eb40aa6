"""real.run and sim.run with ``backend="process"``: a workload replayed on worker
processes, its faults delivered as real signals, and the model of it.

Each fault test runs the model and the real pool of processes on the same workload and
FaultPlan and checks what the process backend promises over threads: a worker that exits
(SIGKILL, a poison task) is seen at once, not after a heartbeat timeout; a stopped one
(SIGSTOP) is found by heartbeat and killed, so it returns no late result; a short stop is
survived; failures are drawn per attempt. Only behaviour is asserted, never speed.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest
from test_contract import answered_before_the_kill

import pool
import real
import sim
from pool import FaultPlan, Recovery, Workload, dists
from pool.seeding import run_streams

pytestmark = pytest.mark.timeout(120)

Runner = Callable[..., pool.RunResult]
#: Quick detection for short runs: a missed heartbeat is noticed within ~0.1 s.
FAST = Recovery(
    heartbeat_interval=0.02,
    heartbeat_timeout=0.08,
    restart_delay=0.02,
    max_attempts=3,
    retry_backoff=0.005,
)
#: A heartbeat that finds a long stop within the run, but not a child a loaded machine
#: left unscheduled for a while (a child's heartbeat is judged by the wall clock).
STEADY = Recovery(
    heartbeat_interval=0.05,
    heartbeat_timeout=0.5,
    restart_delay=0.02,
    max_attempts=3,
    retry_backoff=0.005,
)
#: A heartbeat too slow to find anything within the run: what is found, the sentinel found.
SLOW_HEARTBEAT = Recovery(
    heartbeat_interval=0.5,
    heartbeat_timeout=3.0,
    restart_delay=0.02,
    max_attempts=3,
    retry_backoff=0.005,
)


def _real(workload: Workload, policy: Any, workers: int, **kw: Any) -> pool.RunResult:
    kw.setdefault("timeout", 30.0)
    result = real.run(workload, policy, workers, backend="process", **kw)
    assert _children_end(), "a worker process outlived the run"
    return result


def _sim(workload: Workload, policy: Any, workers: int, **kw: Any) -> pool.RunResult:
    return sim.run(workload, policy, workers, backend="process", **kw)


def _children_end(timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while multiprocessing.active_children() and time.monotonic() < deadline:
        time.sleep(0.02)
    return not multiprocessing.active_children()


@pytest.fixture(params=["sim", "real"])
def runner(request: pytest.FixtureRequest) -> Runner:
    """``run(workload, policy, workers, **kw)`` of the model or the real pool, on processes."""
    return _sim if request.param == "sim" else _real


def overloaded(n_tasks: int = 120) -> Workload:
    """20 ms tasks arriving at 300/s on 4 workers: all busy for the first ~0.4 s."""
    return Workload.poisson(rate=300.0, service=dists.Deterministic(0.020), n_tasks=n_tasks, seed=3)


def events_of(result: pool.RunResult, kind: str) -> pd.DataFrame:
    events = result.events
    return events[events["kind"] == kind]


def assert_all_done(result: pool.RunResult, workload: Workload) -> None:
    tasks = result.tasks
    assert tasks["task_id"].tolist() == list(range(len(workload)))
    assert (tasks["status"] == "done").all(), tasks["status"].value_counts().to_dict()
    assert result.summary()["lost"] == 0
    assert result.summary()["duplicates"] == 0


@pytest.mark.parametrize("policy_name", ["fifo", "priority", "work-stealing"])
def test_every_task_is_done_once(runner: Runner, policy_name: str) -> None:
    workload = Workload.poisson(
        200.0, dists.Exponential(0.008), 300, priorities={0: 0.3, 1: 0.7}, seed=1, cpu_fraction=0.5
    )
    result = runner(workload, policy_name, 4, seed=2)
    assert_all_done(result, workload)
    assert (result.tasks["start"] >= result.tasks["arrival"] - 1e-9).all()
    assert result.meta["backend"] == "process"


def test_a_killed_worker_is_seen_at_once_and_only_its_task_retried(runner: Runner) -> None:
    workload = overloaded()
    faults = FaultPlan(crashes=[(0.2, 1)])
    result = runner(workload, "fifo", 4, faults=faults, recovery=SLOW_HEARTBEAT, seed=8)
    assert_all_done(result, workload)
    crash, detected = events_of(result, "crash"), events_of(result, "detected")
    assert crash["worker"].tolist() == detected["worker"].tolist() == [1]
    # Seen through the process sentinel: long before a heartbeat could tell (3 s).
    assert float(detected["time"].iloc[0]) - float(crash["time"].iloc[0]) < 1.0
    victim = int(crash["task_id"].iloc[0])
    retried = events_of(result, "retry")["task_id"].tolist()
    if result.backend == "real" and retried != [victim]:
        victim = answered_before_the_kill(result, victim, 1)
    assert retried == [victim]
    assert result.tasks.set_index("task_id").loc[victim, "attempts"] == 2
    assert events_of(result, "restart")["worker"].tolist() == [1]


def test_a_long_stop_is_found_by_heartbeat_and_killed_a_short_one_survived(
    runner: Runner,
) -> None:
    workload = overloaded()
    faults = FaultPlan(hangs=[(0.2, 1, 1.5), (0.2, 2, 0.02)])
    result = runner(workload, "fifo", 4, faults=faults, recovery=STEADY, seed=8)
    assert_all_done(result, workload)  # the killed process returns no late result
    assert sorted(events_of(result, "hang")["worker"].tolist()) == [1, 2]
    detected = events_of(result, "detected")
    assert detected["worker"].tolist() == [1]
    hung_at = float(events_of(result, "hang")["time"].min())
    assert float(detected["time"].iloc[0]) - hung_at >= STEADY.heartbeat_timeout - 0.03
    assert events_of(result, "discarded").empty


def test_failures_are_drawn_per_attempt(runner: Runner) -> None:
    workload = Workload.poisson(200.0, dists.Exponential(0.005), 150, seed=1)
    faults, seed = FaultPlan(task_failure_prob=0.3), 9
    result = runner(workload, "fifo", 4, faults=faults, recovery=SLOW_HEARTBEAT, seed=seed)
    max_attempts = SLOW_HEARTBEAT.max_attempts
    failures = faults.attempt_failures(len(workload), max_attempts, run_streams(seed).failures)
    assert failures is not None
    expected = np.where(failures.all(axis=1), max_attempts, np.argmin(failures, axis=1) + 1)
    assert result.tasks["attempts"].tolist() == expected.tolist()
    failed = (result.tasks["status"] == "failed").to_numpy()
    assert (failed == failures.all(axis=1)).all()
    assert events_of(result, "detected").empty  # an attempt that raises kills no process


def test_a_poison_task_ends_its_processes_and_fails_alone(runner: Runner) -> None:
    workload = overloaded(60)
    result = runner(
        workload, "fifo", 4, faults=FaultPlan(poison_tasks=[10]), recovery=SLOW_HEARTBEAT, seed=3
    )
    tasks = result.tasks.set_index("task_id")
    assert tasks.loc[10, "status"] == "failed"
    assert tasks.loc[10, "attempts"] == SLOW_HEARTBEAT.max_attempts
    assert (tasks.drop(index=10)["status"] == "done").all()
    detected = events_of(result, "detected")
    assert len(detected) == SLOW_HEARTBEAT.max_attempts
    assert result.summary()["makespan"] < SLOW_HEARTBEAT.heartbeat_timeout  # no heartbeat wait


def perform_task(task: int) -> int:
    """Real code for the replay (importable, so a worker process can run it)."""
    time.sleep(0.01)
    return task * task


def test_real_code_on_processes_suffers_real_kills() -> None:
    workload = overloaded(80)
    faults = FaultPlan(crashes=[(0.1, 0)])
    result = _real(
        workload, "fifo", 4, faults=faults, recovery=SLOW_HEARTBEAT, perform=perform_task
    )
    assert_all_done(result, workload)
    assert len(events_of(result, "retry")) == 1


@pytest.mark.parametrize(
    ("call", "named"),
    [
        (lambda w: real.run(w, backend="teleport"), "backend"),
        (lambda w: sim.run(w, backend="teleport"), "backend"),
        (lambda w: real.run(w, backend="process", perform=lambda task: task), "perform"),
        (
            lambda w: real.run(w, faults=FaultPlan(poison_tasks=[0]), perform=perform_task),
            "poison",
        ),
    ],
)
def test_bad_input_names_the_parameter(call: Callable[[Workload], Any], named: str) -> None:
    with pytest.raises(ValueError, match=named):
        call(overloaded(5))


def test_calibrating_processes_measures_their_own_costs() -> None:
    with pytest.raises(ValueError, match="backend"):
        real.calibrate(samples=10, backend="teleport")
    figures = real.calibrate(samples=10, backend="process")
    # The round trip is what a slow drain takes beyond its sleeps, its overshoot and the
    # dispatch: about half a millisecond here, but a small sample may find it all in those.
    assert figures.dispatch > 0 and figures.remote_call >= 0
    task_seconds = [task for task, _ in figures.remote_call_curve]
    assert task_seconds == [0.0, 0.001, 0.002, 0.005, 0.02]
    assert dict(figures.remote_call_curve)[0.005] == figures.remote_call
    # The cores worker processes get, measured with processes (not the threads' figure).
    assert 0.5 < figures.cores <= (os.cpu_count() or 1) * 1.05
    assert figures.thread_start > 0 and figures.submit > 0
    assert 0 < figures.exit_detection < 1.0  # the sentinel, not a heartbeat
    assert _children_end()


@pytest.mark.parametrize("cores", [math.inf, 2.0], ids=["no-cpu-model", "cpu-model"])
def test_the_model_waits_the_remote_call_of_each_tasks_length(cores: float) -> None:
    """A task's remote call is interpolated on the calibrated curve by the task's length:
    none after a no-op task, the long tasks' figure after a long one."""
    curve = ((0.0, 0.0), (0.010, 0.002), (0.020, 0.004))
    overhead = pool.Overhead(cores=cores, remote_call=0.003, remote_call_curve=curve)
    services = [0.0, 0.005, 0.010, 0.030]
    workload = Workload(
        np.zeros(4), np.array(services), np.zeros(4, np.int64), np.zeros(4), np.full(4, -1)
    )
    tasks = sim.run(workload, "fifo", 1, overhead=overhead, backend="process").tasks
    took = (tasks["end"] - tasks["start"]).to_numpy()
    remote = np.array([0.0, 0.001, 0.002, 0.004])
    assert took == pytest.approx(np.array(services) + remote, abs=1e-9)
    threads = sim.run(workload, "fifo", 1, overhead=overhead).tasks  # no remote call
    assert (threads["end"] - threads["start"]).to_numpy() == pytest.approx(services, abs=1e-9)
    flat = pool.Overhead(cores=cores, remote_call=0.003)
    tasks = sim.run(workload, "fifo", 1, overhead=flat, backend="process").tasks
    assert (tasks["end"] - tasks["start"]).to_numpy() == pytest.approx(
        np.array(services) + 0.003, abs=1e-9
    )
    again = pool.Overhead.from_dict(json.loads(json.dumps(overhead.as_dict())))
    assert again == overhead


def test_the_model_sees_an_exit_after_its_calibrated_delay_and_a_stop_by_the_beat_rule() -> None:
    workload = overloaded()
    overhead = pool.Overhead(exit_detection=0.004)
    crashed = sim.run(
        workload, "fifo", 4, FaultPlan(crashes=[(0.2, 1)]), SLOW_HEARTBEAT, 8, overhead, "process"
    )
    crash, detected = events_of(crashed, "crash"), events_of(crashed, "detected")
    assert float(detected["time"].iloc[0]) == pytest.approx(float(crash["time"].iloc[0]) + 0.004)
    hang_at = 0.205
    hung = sim.run(
        workload, "fifo", 4, FaultPlan(hangs=[(hang_at, 1, 0.6)]), FAST, 8, overhead, "process"
    )
    # A stopped process's last beat counts for an interval: it looks silent 3/4 of an
    # interval later on average, and the heartbeat rule applies from there.
    seen_silent = hang_at + 0.75 * FAST.heartbeat_interval
    expected = FAST.detection_time(seen_silent, 0.0)
    assert float(events_of(hung, "detected")["time"].iloc[0]) == pytest.approx(expected)
    assert expected > FAST.detection_time(hang_at, 0.0)  # later than a thread's
