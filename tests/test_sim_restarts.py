"""Exact traces of pool restarts in the model: the whole process dies and a new one
resumes from the journal (:mod:`sim.restarts`)."""

from __future__ import annotations

import numpy as np
import pytest

import sim
from pool import Autoscaling, FaultPlan, Overhead, Recovery, Workload, dists
from tests.test_sim_traces import TOL, assert_events, assert_tasks, assert_timeline, workload

RECOVERY = Recovery(
    heartbeat_interval=0.1,
    heartbeat_timeout=0.3,
    restart_delay=0.25,
    max_attempts=3,
    retry_backoff=0.05,
)
#: Dies at 0.5, down 0.3 s, then 0.2 s to start and 0.01 s a task to read the journal.
RESTART = FaultPlan(pool_restarts=[(0.5, 0.3)])
COSTS = Overhead(program_start=0.2, journal_replay=0.01)
#: Tasks 0 and 1 run when the process dies, task 2 waits, task 3 arrives after it.
FOUR = workload([0.0, 0.1, 0.2, 1.2], [1.0, 1.0, 1.0, 0.5])


def test_a_journaled_pool_restart_runs_the_unfinished_tasks_again_in_submit_order() -> None:
    result = sim.run(
        FOUR, "fifo", 2, faults=RESTART, recovery=RECOVERY, overhead=COSTS, journal=True
    )
    # Back at 0.5 + 0.3 + 0.2 + 3 * 0.01 = 1.03: tasks 0, 1 (their first attempts lost,
    # counted) and 2 queued in submit order; task 3 waits behind them.
    restarted = 1.03
    assert_tasks(
        result,
        [
            (restarted, restarted + 1.0, 0),
            (restarted, restarted + 1.0, 1),
            (restarted + 1.0, restarted + 2.0, 0),
            (restarted + 1.0, restarted + 1.5, 1),
        ],
        attempts=[2, 2, 1, 1],
    )
    assert_events(result, [(0.5, "pool_crash", -1, -1), (restarted, "pool_restart", -1, -1)])
    lost = result.attempts.sort_values("task_id")
    assert lost["task_id"].tolist() == [0, 1]
    assert lost["worker"].tolist() == [1, 0]
    assert lost["start"].tolist() == pytest.approx([0.0, 0.1], abs=TOL)
    assert lost["stop"].tolist() == pytest.approx([0.5, 0.5], abs=TOL)
    assert lost["outcome"].tolist() == ["lost-worker"] * 2
    # No worker serves while the process is down; its tasks are queued from its death.
    assert_timeline(
        result,
        [
            (0.0, 2, 1, 0),
            (0.1, 2, 2, 0),
            (0.2, 2, 2, 1),
            (0.5, 0, 0, 3),
            (restarted, 2, 2, 1),
            (1.2, 2, 2, 2),
            (restarted + 1.0, 2, 2, 0),
            (restarted + 1.5, 2, 1, 0),
            (restarted + 2.0, 2, 0, 0),
        ],
        ("workers", "busy", "queued"),
    )
    summary = result.summary()
    assert summary["completed"] == 4
    assert summary["lost"] == summary["failed"] == 0
    # The queue averaged 0.6 before the death (1 task from 0.2 to 0.5); it is back
    # below that when the first tasks end after the restart.
    assert summary["recovery_time"] == pytest.approx(restarted + 1.0 - 0.5, abs=TOL)


def test_without_a_journal_what_the_dead_process_held_is_lost() -> None:
    result = sim.run(
        FOUR, "fifo", 2, faults=RESTART, recovery=RECOVERY, overhead=COSTS, journal=False
    )
    tasks = result.tasks
    assert tasks["status"].astype(str).tolist() == ["lost", "lost", "lost", "done"]
    # No journal to read: back at 0.5 + 0.3 + 0.2, and task 3 arrives to an idle pool.
    assert tasks.loc[3, ["start", "end"]].tolist() == pytest.approx([1.2, 1.7], abs=TOL)
    assert tasks.loc[:2, "end"].tolist() == pytest.approx([0.5] * 3, abs=TOL)  # lost then
    summary = result.summary()
    assert summary["lost"] == 3
    assert result.events["time"].tolist() == pytest.approx([0.5, 1.0], abs=TOL)
    # What was lost is no longer queued: the queue is empty from the death on.
    assert_timeline(
        result,
        [
            (0.0, 2, 1, 0),
            (0.1, 2, 2, 0),
            (0.2, 2, 2, 1),
            (0.5, 0, 0, 0),
            (1.0, 2, 0, 0),
            (1.2, 2, 1, 0),
            (1.7, 2, 0, 0),
        ],
        ("workers", "busy", "queued"),
    )
    assert summary["recovery_time"] == pytest.approx(1.0 - 0.5, abs=TOL)


def test_a_second_restart_without_a_journal_does_not_lose_tasks_twice() -> None:
    wl = workload([0.0, 0.1, 0.2, 0.3, 0.4, 3.5, 3.6, 3.7], [1.0] * 8)
    plan = FaultPlan(pool_restarts=[(0.5, 0.1), (2.5, 0.1)])
    result = sim.run(wl, "fifo", 1, faults=plan, recovery=RECOVERY, journal=False)
    tasks = result.tasks
    assert tasks["status"].astype(str).tolist() == ["lost"] * 5 + ["done"] * 3
    assert tasks.loc[5:, "end"].tolist() == pytest.approx([4.5, 5.5, 6.5], abs=TOL)


def test_a_task_being_submitted_when_the_process_dies_is_submitted_once_after() -> None:
    # The submit of task 1 holds the lock from 1.0 to 1.01 (its journal write) and the
    # process dies at 1.005: the task was not journaled; it is submitted at the restart.
    plan = FaultPlan(pool_restarts=[(1.005, 0.1)])
    wl = workload([0.0, 1.0], [0.1, 0.1])
    result = sim.run(
        wl, "fifo", 2, faults=plan, overhead=Overhead(journal_submit=0.01), journal=True
    )
    tasks = result.tasks
    assert tasks["attempts"].tolist() == [1, 1]
    assert tasks.loc[1, "start"] == pytest.approx(1.105, abs=TOL)
    assert result.summary()["duplicates"] == 0


def test_a_restarted_pool_of_processes_serves_once_its_program_has_started() -> None:
    # program_start covers the worker processes' start: no second wait for them.
    wl = workload([0.0, 0.7], [0.1, 0.1])
    overhead = Overhead(program_start=0.2, thread_start=0.1)
    result = sim.run(
        wl, "fifo", 1, faults=RESTART, overhead=overhead, backend="process", journal=True
    )
    assert result.tasks["start"].tolist() == pytest.approx([0.0, 1.0], abs=TOL)
    assert result.events["time"].tolist() == pytest.approx([0.5, 1.0], abs=TOL)


def test_a_task_whose_attempts_ran_out_with_the_process_fails_when_the_journal_is_read() -> None:
    recovery = Recovery(max_attempts=1)
    result = sim.run(
        FOUR, "fifo", 2, faults=RESTART, recovery=recovery, overhead=COSTS, journal=True
    )
    tasks = result.tasks
    assert tasks["status"].astype(str).tolist() == ["failed", "failed", "done", "done"]
    assert tasks.loc[[0, 1], "end"].tolist() == pytest.approx([1.03, 1.03], abs=TOL)
    assert tasks["attempts"].tolist() == [1, 1, 1, 1]
    kinds = result.events["kind"].tolist()
    assert kinds == ["pool_crash", "pool_restart", "failed", "failed"]


def test_a_retry_waiting_out_its_backoff_at_the_death_runs_once_after_the_restart() -> None:
    # Every attempt raises. Attempt 1 ends at 0.3; its retry would be queued at 0.35, but
    # the process dies at 0.32: the timer dies with it and the journal's pending task
    # runs at the restart (0.42), then once more after its second backoff (0.1 s): 3
    # attempts, not 4.
    plan = FaultPlan(task_failure_prob=1.0, pool_restarts=[(0.32, 0.1)])
    result = sim.run(
        workload([0.0], [0.3]), "fifo", 1, faults=plan, recovery=RECOVERY, journal=True
    )
    assert_tasks(result, [(0.82, 1.12, 0)], attempts=[3], status=["failed"])
    attempts = result.attempts
    assert attempts["start"].tolist() == pytest.approx([0.0, 0.42, 0.82], abs=TOL)
    # Pending again from the death (the journal's view), not from its first arrival.
    assert attempts["ready"].tolist() == pytest.approx([0.0, 0.32, 0.82], abs=TOL)
    assert attempts["outcome"].tolist() == ["error"] * 3
    assert (result.timeline["queued"] >= 0).all() and (result.timeline["queued"] <= 1).all()


def test_arrivals_while_the_process_is_down_wait_for_it_and_count_their_wait() -> None:
    wl = workload([0.0, 0.6, 0.7], [0.1, 0.1, 0.1])
    result = sim.run(wl, "fifo", 1, faults=RESTART, recovery=RECOVERY, journal=True)
    tasks = result.tasks
    assert tasks["start"].tolist() == pytest.approx([0.0, 0.8, 0.9], abs=TOL)
    assert tasks["wait"].tolist() == pytest.approx([0.0, 0.2, 0.2], abs=TOL)


@pytest.mark.parametrize("backend", ["thread", "process"])
def test_restarts_of_a_computing_scaling_pool_lose_nothing(backend: str) -> None:
    wl = Workload.poisson(300, dists.Exponential(0.01), 1500, cpu_fraction=0.3, seed=3)
    plan = FaultPlan(
        pool_restarts=[(1.0, 0.2), (2.5, 0.0), (3.5, 0.4)], crash_mtbf=2.0, hang_mtbf=3.0
    )
    policy = Autoscaling(min_workers=2, max_workers=6, decision_interval=0.1)
    overhead = Overhead(
        cores=2.0, dispatch=2e-5, submit=1e-5, journal_submit=1e-4, program_start=0.3,
        journal_replay=1e-5, thread_start=1e-3,
    )  # fmt: skip
    result = sim.run(
        wl, policy, 2, faults=plan, recovery=RECOVERY, overhead=overhead, backend=backend,
        journal=True, seed=5,
    )  # fmt: skip
    summary = result.summary()
    assert summary["lost"] == 0
    assert summary["completed"] + summary["failed"] == len(wl)
    if backend == "process":  # a hung thread's late result is discarded; a process is killed
        assert summary["duplicates"] == 0
    # Every attempt is the final one of a done task or one in the log, never both.
    tasks = result.tasks
    logged = result.attempts["task_id"].value_counts().reindex(tasks["task_id"], fill_value=0)
    done = (tasks["status"] == "done").astype(int).to_numpy()
    assert (tasks["attempts"].to_numpy() == logged.to_numpy() + done).all()
    timeline = result.timeline
    assert (timeline["queued"] >= 0).all() and (timeline["busy"] <= timeline["workers"]).all()
    kinds = result.events["kind"].tolist()
    assert kinds.count("pool_crash") == kinds.count("pool_restart") == 3
    assert np.isfinite(summary["recovery_time"])


def test_journal_writes_cost_the_submitting_thread() -> None:
    wl = workload([0.0] * 2000, [1e-6] * 2000)
    overhead = Overhead(journal_submit=1e-3)
    journaled = sim.run(wl, "fifo", 4, overhead=overhead, journal=True).summary()
    plain = sim.run(wl, "fifo", 4, overhead=overhead, journal=False).summary()
    # 1 ms a submit bounds the pool at 1,000 tasks a second; without a journal, free.
    assert journaled["throughput"] == pytest.approx(1000.0, rel=0.01)
    assert plain["throughput"] > 1500.0


@pytest.mark.parametrize(
    ("restarts", "message"),
    [
        ([(1.0,)], "pool_restarts entries must be"),
        ([(1.0, -0.1)], "pool_restarts downtime"),
        ([(-1.0, 0.1)], "pool_restarts time"),
        ([(1.0, 0.5), (1.2, 0.1)], "pool_restarts must not overlap"),
        (3, "pool_restarts must be a sequence"),
    ],
)
def test_bad_pool_restarts_are_refused_naming_them(restarts: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        FaultPlan(pool_restarts=restarts)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["journal_submit", "journal_replay", "program_start"])
def test_negative_journal_costs_are_refused_naming_them(name: str) -> None:
    with pytest.raises(ValueError, match=name):
        Overhead(**{name: -1.0})


def test_journal_must_be_a_bool() -> None:
    with pytest.raises(ValueError, match="journal must be True or False"):
        sim.run(FOUR, journal="yes")  # type: ignore[arg-type]
