"""Chaos: both pools, every policy, every kind of fault at once (a small chaos soak).

1,200 tasks per run (1-2 ms services, three deliberately long tasks of 0.5 s that exceed
the 0.1 s task timeout on every attempt, one poison task; offered load 0.6 on 4 workers,
counting a long task as the pool time its timed-out attempts take) under random crashes,
random hangs longer than the heartbeat timeout, failing attempts and the task timeout.
The full-size version is ``python -m benchmarks.chaos_soak``.

Asserted for the real pool and the model alike: one row per task, every task ``done``
or ``failed``, ``lost == 0``, completion recorded once (duplicates are exactly the
``discarded`` late results), attempt records consistent, faults really injected and
answered; for the real pool, no thread left behind. Model and real pool run the same
fault schedule with the same seed, but random faults hit busy or idle workers
independently in the two (timing differs), so their retried counts agree only up to
that chance: the tolerance is 30% of the measured count or 12 retries, whichever is
larger (the chance spread alone is about 3 retries, one sigma, at this size).
"""

from __future__ import annotations

import threading

import numpy as np
import pandas as pd
import pytest

import real
import sim
from pool import (
    FIFO,
    Autoscaling,
    FaultPlan,
    Policy,
    Recovery,
    RunResult,
    Workload,
    dists,
)
from pool.policies import resolve

pytestmark = pytest.mark.timeout(30)

N_TASKS = 1200
WORKERS = 4
LOAD = 0.6
SEED = 11
SHORT_LOW, SHORT_HIGH = 0.001, 0.002
LONG_TASKS = (200, 600, 1000)
LONG_SERVICE = 0.5
POISON_TASKS = (401,)

FAULTS = FaultPlan(
    crash_mtbf=0.5,
    hang_mtbf=0.7,
    hang_duration=0.15,
    task_failure_prob=0.03,
    poison_tasks=POISON_TASKS,
)
RECOVERY = Recovery(
    heartbeat_interval=0.02,
    heartbeat_timeout=0.08,
    restart_delay=0.02,
    max_attempts=3,
    retry_backoff=0.002,
    task_timeout=0.1,
)
#: |predicted - measured| retried tasks allowed: this share of measured, or the floor.
RETRIED_REL_TOLERANCE = 0.30
RETRIED_ABS_FLOOR = 12

POLICIES = ("fifo", "priority", "work-stealing", "autoscaling")


def make_policy(name: str) -> Policy:
    """A fresh policy object per run (autoscaling tuned to a one-second run)."""
    if name != "autoscaling":
        return resolve(name)
    return Autoscaling(
        inner=FIFO(),
        min_workers=2,
        max_workers=6,
        target=0.6,
        decision_interval=0.05,
        cooldown=0.15,
        startup_delay=0.01,
        scale_down_ticks=3,
    )


def make_workload() -> Workload:
    """Uniform(1, 2) ms services, three long tasks, offered load 0.6 on 4 workers."""
    short_mean = (SHORT_LOW + SHORT_HIGH) / 2.0
    assert RECOVERY.task_timeout is not None
    # A long task holds a worker for max_attempts timed-out attempts, not its service.
    long_total = len(LONG_TASKS) * RECOVERY.max_attempts * RECOVERY.task_timeout
    mean = ((N_TASKS - len(LONG_TASKS)) * short_mean + long_total) / N_TASKS
    base = Workload.poisson(
        LOAD * WORKERS / mean,
        dists.Uniform(SHORT_LOW, SHORT_HIGH),
        N_TASKS,
        priorities={0: 0.3, 1: 0.7},
        seed=SEED,
    )
    service = base.service.copy()
    service[list(LONG_TASKS)] = LONG_SERVICE
    return base.replace(service=service)


WORKLOAD = make_workload()


@pytest.fixture(autouse=True)
def _threads_checked(no_thread_left: None) -> None:
    """Every test here is checked for threads left behind (see conftest.py)."""


def count(result: RunResult, kind: str) -> int:
    return int((result.events["kind"] == kind).sum())


def assert_accounted(result: RunResult, label: str) -> None:
    """Nothing lost, nothing double-counted, the records agree with one another."""
    tasks, summary = result.tasks, result.summary()
    status = tasks["status"].astype(str)
    assert len(tasks) == N_TASKS, label
    assert tasks["task_id"].tolist() == list(range(N_TASKS)), label
    assert status.isin(["done", "failed"]).all(), (label, status.value_counts().to_dict())
    assert summary["lost"] == 0, label
    assert summary["completed"] + summary["failed"] == N_TASKS, label
    # Completion is recorded once: every duplicate is a discarded late result.
    assert summary["duplicates"] == count(result, "discarded"), label
    assert tasks["attempts"].between(1, RECOVERY.max_attempts).all(), label
    # Unsuccessful attempts logged: attempts - 1 for done tasks, all attempts for failed.
    attempts = result.attempts
    logged = (
        attempts.groupby("task_id").size().reindex(tasks["task_id"], fill_value=0)
        if len(attempts)
        else pd.Series(0, index=tasks["task_id"])
    )
    expected = tasks["attempts"].to_numpy() - (status == "done").to_numpy()
    assert np.array_equal(logged.to_numpy(), expected), label
    assert count(result, "retry") == int((tasks["attempts"] - 1).sum()), label
    failed_events = sorted(result.events.loc[result.events["kind"] == "failed", "task_id"])
    assert failed_events == sorted(tasks.loc[status == "failed", "task_id"]), label
    # Every kind of fault happened and was answered.
    assert count(result, "crash") > 0 and count(result, "hang") > 0, label
    assert count(result, "detected") > 0 and count(result, "restart") > 0, label
    assert count(result, "timeout") >= len(LONG_TASKS), label
    assert count(result, "discarded") > 0, label
    assert summary["retried"] > 0, label
    # Long tasks time out and poison tasks kill their worker on every attempt.
    # (The real pool judges a timeout when its monitor runs: a stall of the whole process
    # longer than 0.5 - 0.12 s would let a long task finish first. Hence the wide margin.)
    doomed = list(LONG_TASKS + POISON_TASKS)
    assert (status.iloc[doomed] == "failed").all(), (
        label,
        tasks.iloc[doomed][["task_id", "status", "attempts", "start", "end"]].to_dict("records"),
    )


@pytest.mark.parametrize("policy", POLICIES)
def test_chaos_both_pools(policy: str) -> None:
    before = threading.active_count()
    measured = real.run(
        WORKLOAD,
        make_policy(policy),
        WORKERS,
        faults=FAULTS,
        recovery=RECOVERY,
        seed=SEED,
        timeout=20.0,  # unfinished tasks would show up as lost, not as a hang
    )
    # real.run shuts its pool down and joins its threads: none is left, without grace.
    assert threading.active_count() == before
    predicted = sim.run(
        WORKLOAD, make_policy(policy), WORKERS, faults=FAULTS, recovery=RECOVERY, seed=SEED
    )
    assert threading.active_count() == before
    assert_accounted(measured, f"real {policy}")
    assert_accounted(predicted, f"sim {policy}")
    pred, meas = predicted.summary()["retried"], measured.summary()["retried"]
    allowed = max(RETRIED_REL_TOLERANCE * meas, RETRIED_ABS_FLOOR)
    assert abs(pred - meas) <= allowed, f"retried: predicted {pred}, measured {meas}"
