"""Conservation laws and determinism of the simulated pool, on seeded random workloads."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

import sim
from pool import (
    FIFO,
    Autoscaling,
    FaultPlan,
    Overhead,
    Policy,
    Priority,
    Recovery,
    RunResult,
    Workload,
    WorkStealing,
    dists,
)

FAULTS = FaultPlan(
    crash_mtbf=4.0,
    hang_mtbf=4.0,
    hang_duration=0.4,
    task_failure_prob=0.1,
)
RECOVERY = Recovery(
    heartbeat_interval=0.05,
    heartbeat_timeout=0.2,
    restart_delay=0.1,
    max_attempts=3,
    retry_backoff=0.01,
    task_timeout=1.2,
)


def make_policy(name: str) -> Policy:
    """Fresh policy objects with parameters that exercise their features."""
    if name == "fifo":
        return FIFO()
    if name == "priority":
        return Priority()
    if name == "priority-aging":
        return Priority(aging=0.5)
    if name == "work-stealing":
        return WorkStealing(placement="round-robin", victim="random", amount="one")
    if name == "work-stealing-affinity":
        return WorkStealing(
            placement="affinity", victim="longest", amount="half", steal_latency=0.01
        )
    if name == "autoscaling":
        return Autoscaling(
            min_workers=1,
            max_workers=6,
            metric="queue",
            target=1.5,
            decision_interval=0.2,
            cooldown=0.4,
            startup_delay=0.05,
            scale_down_ticks=2,
        )
    if name == "autoscaling-work-stealing":
        return Autoscaling(
            inner=WorkStealing(victim="longest"),
            min_workers=2,
            max_workers=6,
            decision_interval=0.2,
            cooldown=0.2,
            startup_delay=0.05,
            scale_down_ticks=2,
        )
    raise AssertionError(name)


POLICIES = [
    "fifo",
    "priority",
    "priority-aging",
    "work-stealing",
    "work-stealing-affinity",
    "autoscaling",
    "autoscaling-work-stealing",
]


def mixed_workload(seed: int, n_tasks: int = 400) -> Workload:
    wl = Workload.poisson(
        rate=9.0,
        service=dists.Exponential(0.3),
        n_tasks=n_tasks,
        priorities={0: 0.3, 1: 0.5, 2: 0.2},
        seed=seed,
    )
    return wl.with_affinity(workers=4, hot_share=0.5, seed=seed)


def time_integral(times: np.ndarray, levels: np.ndarray) -> float:
    """Integral of the right-continuous step function (times, levels) up to its last time."""
    return float(np.sum(levels[:-1] * np.diff(times)))


# ----------------------------------------------------------------------------- Little's law


@pytest.mark.parametrize("policy", ["fifo", "priority", "work-stealing"])
def test_littles_law_on_mm2(policy: str) -> None:
    wl = Workload.poisson(
        rate=1.6,
        service=dists.Exponential(1.0),
        n_tasks=4000,
        priorities={0: 0.5, 1: 0.5},
        seed=11,
    )
    result = sim.run(wl, policy, workers=2, seed=3)
    timeline = result.timeline
    in_system = (timeline["busy"] + timeline["queued"]).to_numpy()
    times = timeline["time"].to_numpy()
    summary = result.summary()
    first_arrival, last_end = float(wl.arrival[0]), float(result.tasks["end"].max())
    assert summary["makespan"] == pytest.approx(last_end - first_arrival, rel=1e-12)
    # Nothing is in the system before the first arrival or after the last end.
    assert in_system[times < first_arrival].sum() == 0
    assert in_system[-1] == 0
    mean_in_system = time_integral(times, in_system) / summary["makespan"]
    littles = summary["throughput"] * summary["mean_latency"]
    # L = lambda * W holds exactly over a busy period; "a few %" is the brief's bar, the
    # timeline must in fact match to rounding error.
    assert mean_in_system == pytest.approx(littles, rel=0.03)
    assert mean_in_system == pytest.approx(littles, rel=1e-9)
    # And the busy part alone gives the utilisation: busy worker-seconds over serving
    # worker-seconds (two workers from t=0 to the last end).
    busy = time_integral(times, timeline["busy"].to_numpy())
    assert busy / (2 * last_end) == pytest.approx(summary["utilization"], rel=1e-9)
    # Offered load 0.8 per worker: the long-run utilisation is close to it.
    assert summary["utilization"] == pytest.approx(0.8, abs=0.05)


# ----------------------------------------------------------------------------- faults


def check_conservation(result: RunResult, wl: Workload, recovery: Recovery) -> None:
    tasks = result.tasks
    summary = result.summary()
    n = len(wl)
    # One row per task, in task order.
    assert len(tasks) == n
    assert tasks["task_id"].tolist() == list(range(n))
    assert tasks["task_id"].is_unique
    # Every task ends done or failed; nothing is lost.
    status = tasks["status"].astype(str)
    assert set(status) <= {"done", "failed"}
    assert summary["lost"] == 0
    counts = status.value_counts()
    assert summary["completed"] == counts.get("done", 0)
    assert summary["failed"] == counts.get("failed", 0)
    assert summary["completed"] + summary["failed"] == n
    # Attempts: at least one, at most max_attempts; failed tasks used them all.
    attempts = tasks["attempts"].to_numpy()
    assert attempts.min() >= 1
    assert attempts.max() <= recovery.max_attempts
    assert (tasks.loc[status == "failed", "attempts"] == recovery.max_attempts).all()
    # Every attempt is either the final success or a logged failure: none counted twice.
    done = (status == "done").to_numpy()
    assert attempts.sum() == len(result.attempts) + done.sum()
    # Each late result of a worker declared dead is one discarded event.
    events = result.events
    assert summary["duplicates"] == (events["kind"] == "discarded").sum()
    assert summary["retried"] == (events["kind"] == "retry").sum()
    # Times are ordered; a done task ran at least its service.
    start, end = tasks["start"].to_numpy(), tasks["end"].to_numpy()
    arrival = tasks["arrival"].to_numpy()
    assert np.all(start >= arrival - 1e-12)
    assert np.all(end >= start - 1e-12)
    assert np.all(end[done] - start[done] >= wl.service[done] - 1e-9)
    assert np.isfinite(end).all()
    # Events are sorted in time and of known kinds.
    assert events["time"].is_monotonic_increasing
    assert set(events["kind"]) <= {
        "crash",
        "hang",
        "detected",
        "timeout",
        "restart",
        "retry",
        "failed",
        "discarded",
        "steal",
        "scale_up",
        "scale_down",
    }
    assert (events["kind"] == "failed").sum() == summary["failed"]


def check_timeline(result: RunResult) -> None:
    timeline = result.timeline
    assert timeline["time"].is_monotonic_increasing
    assert timeline["time"].is_unique
    assert (timeline["time"] >= 0).all()
    assert (timeline["workers"] >= 0).all()
    assert (timeline["busy"] >= 0).all()
    assert (timeline["queued"] >= 0).all()
    assert (timeline["busy"] <= timeline["workers"]).all()
    last = timeline.iloc[-1]
    assert last["busy"] == 0
    assert last["queued"] == 0


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_faults_lose_nothing_and_count_nothing_twice(policy: str, seed: int) -> None:
    wl = mixed_workload(seed)
    result = sim.run(
        wl, make_policy(policy), workers=4, faults=FAULTS, recovery=RECOVERY, seed=seed
    )
    check_conservation(result, wl, RECOVERY)
    check_timeline(result)
    kinds = set(result.events["kind"])
    # The run did exercise the faults it was given.
    assert {"crash", "hang", "detected", "restart", "retry"} <= kinds


MACHINE = Overhead(dispatch=1e-4, sleep_overshoot=1e-4, cores=2.0, gil_handoff=5e-5, submit=2e-5)


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("seed", [1, 2])
def test_random_faults_on_the_cpu_model_lose_nothing(policy: str, seed: int) -> None:
    # Tasks that compute, half of it holding the lock, on two cores: faults now reach
    # workers while they wait for the lock, hold it or compute beside it.
    wl = mixed_workload(seed).with_cpu_fraction(0.6, gil_share=0.5)
    result = sim.run(
        wl,
        make_policy(policy),
        workers=4,
        faults=FAULTS,
        recovery=RECOVERY,
        seed=seed,
        overhead=MACHINE,
    )
    check_conservation(result, wl, RECOVERY)
    check_timeline(result)
    assert {"crash", "hang", "detected", "restart", "retry"} <= set(result.events["kind"])


@pytest.mark.parametrize("policy", POLICIES)
def test_poison_tasks_and_crashes_under_every_policy(policy: str) -> None:
    wl = mixed_workload(seed=7, n_tasks=200)
    faults = FaultPlan(crash_mtbf=3.0, poison_tasks=[0, 17, 150], task_failure_prob=0.05)
    result = sim.run(wl, make_policy(policy), workers=3, faults=faults, recovery=RECOVERY, seed=5)
    check_conservation(result, wl, RECOVERY)
    check_timeline(result)
    tasks = result.tasks.set_index("task_id")
    for poison in (0, 17, 150):
        assert tasks.loc[poison, "status"] == "failed"
        assert tasks.loc[poison, "attempts"] == RECOVERY.max_attempts


@pytest.mark.parametrize("policy", POLICIES)
def test_fault_free_runs_complete_every_task_once(policy: str) -> None:
    wl = mixed_workload(seed=4)
    result = sim.run(wl, make_policy(policy), workers=4, seed=4)
    check_conservation(result, wl, Recovery())
    check_timeline(result)
    tasks = result.tasks
    assert (tasks["status"] == "done").all()
    assert (tasks["attempts"] == 1).all()
    # Without faults a task runs exactly its service.
    duration = (tasks["end"] - tasks["start"]).to_numpy()
    assert duration == pytest.approx(wl.service, abs=1e-9)
    assert result.summary()["duplicates"] == 0
    assert len(result.attempts) == 0


@pytest.mark.parametrize("policy", ["fifo", "priority", "work-stealing"])
def test_fault_free_workers_run_one_task_at_a_time(policy: str) -> None:
    wl = mixed_workload(seed=9)
    tasks = sim.run(wl, make_policy(policy), workers=3, seed=9).tasks
    for _, runs in tasks.sort_values("start").groupby("worker"):
        starts, ends = runs["start"].to_numpy(), runs["end"].to_numpy()
        assert np.all(starts[1:] >= ends[:-1] - 1e-12)
    # A work-conserving shared queue never leaves a worker idle while a task waits, so
    # every FIFO/priority task starts at its arrival or at some task's end.
    if policy != "work-stealing":
        instants = np.concatenate([tasks["arrival"].to_numpy(), tasks["end"].to_numpy()])
        for start in tasks["start"].to_numpy():
            assert np.min(np.abs(instants - start)) < 1e-9


def test_fifo_serves_in_arrival_order() -> None:
    wl = mixed_workload(seed=12)
    tasks = sim.run(wl, "fifo", workers=3).tasks
    order = tasks.sort_values(["start", "task_id"])["task_id"].to_numpy()
    assert np.all(np.diff(order) > 0)


# ----------------------------------------------------------------------------- determinism


@pytest.mark.parametrize("policy", POLICIES)
def test_same_seed_same_result_other_seed_differs(policy: str) -> None:
    wl = mixed_workload(seed=21, n_tasks=250)

    def run(seed: int) -> RunResult:
        return sim.run(
            wl, make_policy(policy), workers=4, faults=FAULTS, recovery=RECOVERY, seed=seed
        )

    first, again, other = run(5), run(5), run(6)
    pd.testing.assert_frame_equal(first.tasks, again.tasks)
    pd.testing.assert_frame_equal(first.events, again.events)
    pd.testing.assert_frame_equal(first.timeline, again.timeline)
    assert first.summary() == pytest.approx(again.summary(), nan_ok=True)
    with pytest.raises(AssertionError):
        pd.testing.assert_frame_equal(first.tasks, other.tasks)


def test_a_policy_object_can_be_reused_across_runs() -> None:
    wl = mixed_workload(seed=22, n_tasks=200)
    policy = make_policy("work-stealing")
    first = sim.run(wl, policy, workers=3, faults=FAULTS, recovery=RECOVERY, seed=8)
    second = sim.run(wl, policy, workers=3, faults=FAULTS, recovery=RECOVERY, seed=8)
    pd.testing.assert_frame_equal(first.tasks, second.tasks)
    pd.testing.assert_frame_equal(first.events, second.events)


def test_workload_generators_are_deterministic() -> None:
    service = dists.LogNormal(0.1, 1.5)
    for build in (
        lambda seed: Workload.poisson(5.0, service, 300, {0: 0.4, 1: 0.6}, seed=seed),
        lambda seed: Workload.steps([(2.0, 5.0), (1.0, 0.0), (2.0, 20.0)], service, seed=seed),
        lambda seed: Workload.bursty(50.0, 2.0, 0.5, 1.0, service, 300, seed=seed),
    ):
        a, b, c = build(1), build(1), build(2)
        pd.testing.assert_frame_equal(a.to_frame(), b.to_frame())
        assert not a.to_frame().equals(c.to_frame())
        assert np.all(np.diff(a.arrival) >= 0)


# ----------------------------------------------------------------------------- edge cases


@pytest.mark.timeout(20)
@pytest.mark.parametrize("policy", POLICIES)
def test_single_worker_survives_crashes(policy: str) -> None:
    wl = mixed_workload(seed=31, n_tasks=120)
    faults = FaultPlan(crashes=[(1.0, 0), (3.0, 0), (3.05, 0)], crash_mtbf=6.0)
    result = sim.run(wl, make_policy(policy), workers=1, faults=faults, recovery=RECOVERY, seed=2)
    check_conservation(result, wl, RECOVERY)
    check_timeline(result)


@pytest.mark.timeout(20)
@pytest.mark.parametrize("policy", POLICIES)
def test_all_workers_crash_at_once(policy: str) -> None:
    wl = mixed_workload(seed=32, n_tasks=150)
    faults = FaultPlan(crashes=[(2.0, 0), (2.0, 1), (2.0, 2)])
    recovery = Recovery(heartbeat_interval=0.05, heartbeat_timeout=0.2, restart_delay=0.1)
    result = sim.run(wl, make_policy(policy), workers=3, faults=faults, recovery=recovery, seed=2)
    check_conservation(result, wl, recovery)
    check_timeline(result)
    # One lost attempt each, then the restarted workers finish everything.
    assert (result.tasks["status"] == "done").all()
    if policy.startswith("autoscaling"):
        return  # the pool size at t=2 is the autoscaler's choice
    lost = result.attempts
    assert sorted(lost["worker"]) == [0, 1, 2]
    assert (lost["outcome"] == "lost-worker").all()
    restarts = result.events[result.events["kind"] == "restart"]
    assert sorted(restarts["worker"]) == [0, 1, 2]
    restart_at = recovery.detection_time(2.0, 0.0) + recovery.restart_delay
    assert restarts["time"].tolist() == pytest.approx([restart_at] * 3, abs=1e-12)


@pytest.mark.timeout(2)
@pytest.mark.parametrize("policy", POLICIES)
def test_empty_workload_finishes(policy: str) -> None:
    empty = Workload(
        np.empty(0), np.empty(0), np.empty(0, np.int64), np.empty(0), np.empty(0, np.int64)
    )
    result = sim.run(empty, make_policy(policy), workers=2)
    assert len(result.tasks) == 0
    assert result.summary()["completed"] == 0


def test_cpu_bound_tasks_serialise_on_the_interpreter_lock() -> None:
    wl = Workload(
        arrival=np.zeros(4),
        service=np.full(4, 1.0),
        priority=np.zeros(4, np.int64),
        cpu_fraction=np.full(4, 1.0),
        affinity=np.full(4, -1, np.int64),
    )
    no_switching = Overhead(switch_interval=math.inf)
    tasks = sim.run(wl, "fifo", workers=4, overhead=no_switching).tasks
    # Four pure-CPU tasks on four workers take turns on one lock: with no switch interval
    # each keeps it to its end, so they end at 1, 2, 3, 4.
    assert sorted(tasks["end"].tolist()) == pytest.approx([1.0, 2.0, 3.0, 4.0], abs=1e-12)
    # With CPython's 5 ms switch interval they share it in 5 ms turns: all end near 4 s,
    # one turn apart.
    shared = sorted(sim.run(wl, "fifo", workers=4).tasks["end"].tolist())
    assert shared == pytest.approx([3.985, 3.99, 3.995, 4.0], abs=1e-9)
    io = Workload(wl.arrival, wl.service, wl.priority, np.zeros(4), wl.affinity)
    assert sim.run(io, "fifo", workers=4).tasks["end"].tolist() == pytest.approx([1.0] * 4)


AUTOSCALERS: dict[str, dict[str, float]] = {
    "moderate": dict(target=1.5, decision_interval=0.2, cooldown=0.4, scale_down_ticks=2),
    "eager": dict(
        target=1.0, decision_interval=0.1, cooldown=0.0, scale_down_ticks=1, tolerance=0.0
    ),
}


@pytest.mark.parametrize("config", sorted(AUTOSCALERS))
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_autoscaling_respects_max_workers_and_one_worker_per_slot(seed: int, config: str) -> None:
    phases = [(3.0, 20.0), (2.0, 2.0), (3.0, 25.0), (2.0, 1.0)]
    wl = Workload.steps(phases, dists.Exponential(0.2), seed=seed)
    policy = Autoscaling(
        min_workers=1,
        max_workers=6,
        metric="queue",
        startup_delay=0.05,
        **AUTOSCALERS[config],  # type: ignore[arg-type]
    )
    result = sim.run(wl, policy, workers=2, seed=seed)
    check_conservation(result, wl, Recovery())
    check_timeline(result)
    timeline = result.timeline
    assert timeline["workers"].max() <= policy.max_workers
    assert timeline["workers"].min() >= policy.min_workers
    events = result.events
    ups, downs = (events["kind"] == "scale_up").sum(), (events["kind"] == "scale_down").sum()
    assert ups > 0 and downs > 0
    # Scale events happen only at decision ticks.
    scale = events[events["kind"].isin(["scale_up", "scale_down"])]
    ticks = scale["time"].to_numpy() / policy.decision_interval
    assert np.abs(ticks - np.round(ticks)).max() < 1e-6
    # No slot ever runs two tasks at once.
    tasks = result.tasks
    for _, runs in tasks.sort_values("start").groupby("worker"):
        starts, ends = runs["start"].to_numpy(), runs["end"].to_numpy()
        assert np.all(starts[1:] >= ends[:-1] - 1e-12)
