"""Behaviour of the simulated pool beyond plain queueing theory.

(a) Work stealing rescues a pool whose affinity placement overloads one worker.
(b) Autoscaling follows a step in load up and back down, and does not flap.
(c) The interpreter-lock model: CPU parts of tasks serialise, sleeps overlap.
(d) Per-task overhead (``pool.Overhead``) lengthens every task by exactly its amount.

Every run is seeded, so every assertion is deterministic.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import pandas as pd
import pytest

import pool
import sim
from pool import Workload, dists, theory

# ----------------------------------------------------------------------------- helpers


def time_average(timeline: pd.DataFrame, column: str, start: float, stop: float) -> float:
    """Time-average of the step function ``timeline[column]`` over [start, stop)."""
    times = timeline["time"].to_numpy()
    levels = timeline[column].to_numpy()
    edges = np.clip(np.append(times, stop), start, stop)
    return float(np.sum(levels * np.diff(edges)) / (stop - start))


def level_at(timeline: pd.DataFrame, column: str, time: float) -> int:
    """Value of the step function ``timeline[column]`` just after ``time``."""
    index = np.searchsorted(timeline["time"].to_numpy(), time, side="right") - 1
    assert index >= 0, f"no timeline row at or before t={time}"
    return int(timeline[column].iloc[index])


def scale_events(result: pool.RunResult) -> pd.DataFrame:
    events = result.events
    return events[events["kind"].isin(["scale_up", "scale_down"])]


def assert_complete(result: pool.RunResult) -> None:
    """Every task done exactly once, nothing lost."""
    summary = result.summary()
    assert (result.tasks["status"] == "done").all()
    assert summary["lost"] == 0
    assert summary["duplicates"] == 0


# ----------------------------------------------------------------------------- (a) stealing

STEAL_MEAN = 0.010  # seconds of service per task
STEAL_RATE = 280.0  # tasks/s: 0.7 utilisation of 4 workers overall
STEAL_WORKERS = 4
HOT_SHARE = 0.6  # of the tasks prefer worker 0, which then receives 70% of them


@functools.cache
def skewed_workload() -> Workload:
    base = Workload.poisson(STEAL_RATE, dists.Exponential(STEAL_MEAN), 20_000, seed=31)
    return base.with_affinity(workers=STEAL_WORKERS, hot_share=HOT_SHARE, seed=31)


@functools.cache
def stealing_run(amount: str) -> pool.RunResult:
    policy = pool.WorkStealing(placement="affinity", amount=amount)  # type: ignore[arg-type]
    return sim.run(skewed_workload(), policy=policy, workers=STEAL_WORKERS, seed=31)


def test_affinity_skew_overloads_worker_zero_without_stealing() -> None:
    """Without stealing every task runs on the worker it prefers, so worker 0 drowns."""
    workload, result = skewed_workload(), stealing_run("none")
    assert_complete(result)
    tasks = result.tasks
    assert (tasks["worker"].to_numpy() == workload.affinity).all()
    hot_share = float(np.mean(workload.affinity == 0))
    assert hot_share == pytest.approx(HOT_SHARE + (1 - HOT_SHARE) / STEAL_WORKERS, abs=0.01)
    # Worker 0 is offered 0.7 * 280 tasks/s * 10 ms = 1.96 > 1: it is overloaded.
    assert hot_share * STEAL_RATE * STEAL_MEAN > 1.0
    assert not tasks["stolen"].any()
    assert (result.events["kind"] != "steal").all()


@pytest.mark.parametrize("amount", ["one", "half"])
def test_work_stealing_beats_no_stealing(amount: str) -> None:
    """Stealing keeps every worker busy: latency drops from runaway to M/M/4 levels."""
    stolen, baseline = stealing_run(amount), stealing_run("none")
    assert_complete(stolen)
    latency = stolen.summary()["mean_latency"]
    assert latency * 20 < baseline.summary()["mean_latency"]
    # An idle worker steals whenever any queue holds work, so the pool is work-conserving;
    # with exponential service its mean latency is that of one shared M/M/4 queue.
    expected = theory.mmc_sojourn(STEAL_RATE, 1.0 / STEAL_MEAN, STEAL_WORKERS)
    assert latency == pytest.approx(expected, rel=0.10)
    # The work is spread: worker 0 runs little more than a fair share.
    share = stolen.tasks["worker"].value_counts(normalize=True)
    assert share.max() < 0.35


@pytest.mark.parametrize("amount", ["one", "half"])
def test_steals_are_counted_only_with_stealing(amount: str) -> None:
    result = stealing_run(amount)
    tasks, events = result.tasks, result.events
    steals = events[events["kind"] == "steal"]
    assert len(steals) > 0
    assert tasks["stolen"].sum() > 0
    assert result.summary()["stolen"] == tasks["stolen"].sum()
    # Every stolen task has a steal event and vice versa (a task may be stolen twice).
    assert set(steals["task_id"]) == set(tasks.loc[tasks["stolen"], "task_id"])
    assert len(steals) >= tasks["stolen"].sum()
    assert stealing_run("none").summary()["stolen"] == 0


def test_stealing_one_moves_each_stolen_task_to_its_thief() -> None:
    """With amount="one" the thief runs what it took: stolen tasks run off their affinity
    worker (the victim), the others on it; a steal event names the thief."""
    workload, result = skewed_workload(), stealing_run("one")
    tasks, events = result.tasks, result.events
    ran_on = tasks["worker"].to_numpy()
    stolen = tasks["stolen"].to_numpy()
    assert (ran_on[stolen] != workload.affinity[stolen]).all()
    assert (ran_on[~stolen] == workload.affinity[~stolen]).all()
    steals = events[events["kind"] == "steal"]
    assert len(steals) == stolen.sum()  # one task per steal, each stolen once
    thieves = steals["worker"].to_numpy()
    assert (thieves == ran_on[steals["task_id"].to_numpy()]).all()


# ----------------------------------------------------------------------------- (b) scaling

SCALE_MEAN = 0.050  # seconds of service per task
LOW_RATE = 4.0  # tasks/s: 0.2 busy workers
HIGH_RATE = 80.0  # tasks/s: 4 busy workers, 4 / 0.7 -> 6 wanted at the default target
INTERVAL = 0.5
COOLDOWN = 1.0
STARTUP = 0.2


def autoscaler(**overrides: float) -> pool.Autoscaling:
    params: dict[str, float] = {
        "decision_interval": INTERVAL,
        "cooldown": COOLDOWN,
        "startup_delay": STARTUP,
    }
    params.update(overrides)
    return pool.Autoscaling(min_workers=1, max_workers=8, **params)  # type: ignore[arg-type]


@functools.cache
def step_run() -> pool.RunResult:
    workload = Workload.steps(
        [(20.0, LOW_RATE), (20.0, HIGH_RATE), (30.0, LOW_RATE)],
        dists.Exponential(SCALE_MEAN),
        seed=21,
    )
    return sim.run(workload, policy=autoscaler(), workers=1, seed=21)


def test_autoscaling_follows_a_step_up_and_back_down() -> None:
    result = step_run()
    assert_complete(result)
    timeline = result.timeline
    workers = timeline["workers"].to_numpy()
    assert workers.min() >= 1
    assert workers.max() <= 8
    # Low load before the step: at (or near) the minimum.
    assert time_average(timeline, "workers", 5.0, 20.0) <= 1.6
    # The high phase (4 busy workers) is served by 6 or more once the pool has grown.
    assert time_average(timeline, "workers", 25.0, 40.0) >= 6.0
    assert workers[(timeline["time"] >= 20.0) & (timeline["time"] < 40.0)].max() >= 6
    # After the step the pool shrinks back to the minimum and stays near it.
    after = timeline[(timeline["time"] >= 40.0) & (timeline["time"] < 50.0)]
    assert (after["workers"] == 1).any(), "the pool never returned to min_workers"
    assert time_average(timeline, "workers", 50.0, 65.0) <= 1.6
    # The high phase is served without a runaway queue.
    tasks = result.tasks
    high = tasks[(tasks["arrival"] >= 25.0) & (tasks["arrival"] < 40.0)]
    assert high["wait"].mean() < 5 * SCALE_MEAN


def test_autoscaling_events_match_the_timeline() -> None:
    """Scale events happen at decision ticks, at least a cooldown apart; up-scaled workers
    serve after the startup delay; up events in the step, down events after it."""
    result = step_run()
    events, timeline = scale_events(result), result.timeline
    ups = events[events["kind"] == "scale_up"]
    downs = events[events["kind"] == "scale_down"]
    first_up_in_step = ups[ups["time"] >= 20.0]["time"].min()
    assert 20.0 <= first_up_in_step <= 20.0 + 2 * INTERVAL
    assert len(downs[(downs["time"] >= 40.0) & (downs["time"] < 50.0)]) >= 4
    ticks = events["time"].to_numpy() / INTERVAL
    assert np.allclose(ticks, np.round(ticks))
    decisions = np.unique(events["time"].to_numpy())
    assert np.all(np.diff(decisions) >= COOLDOWN - 1e-9)
    # Each up decision of k workers shows in the timeline as +k after the startup delay
    # (the next decision tick comes later, so none is cancelled before it starts).
    for time, count in ups.groupby("time").size().items():
        ready = float(time) + STARTUP
        before = level_at(timeline, "workers", ready - 1e-9)
        assert level_at(timeline, "workers", ready) - before == count
        assert level_at(timeline, "workers", float(time)) == level_at(
            timeline, "workers", ready - 1e-9
        )


@pytest.mark.parametrize(
    ("gap", "service"),
    [(0.13, 0.37), (0.10, 0.285), (0.07, 0.20)],
    ids=["gap0.13", "gap0.10", "gap0.07"],
)
def test_autoscaling_does_not_flap_at_a_threshold(gap: float, service: float) -> None:
    """A constant load hovering at a threshold: deterministic arrivals and service keep
    2 or 3 workers busy (about 2.85, i.e. 4.07 workers at target 0.7). After growing
    to its size the pool makes a bounded number of scale decisions."""
    workload = Workload.renewal(dists.Deterministic(gap), dists.Deterministic(service), 1_000)
    horizon = workload.duration
    assert horizon > 60.0
    result = sim.run(workload, policy=autoscaler(), workers=1, seed=3)
    assert_complete(result)
    events = scale_events(result)
    settled = events[events["time"] > 10.0]
    assert settled["time"].nunique() <= 2, settled.to_string()
    assert len(events) <= 14, events.to_string()
    # Sized for the load it sees at its ticks (2 or 3 busy) and held there.
    assert 3 <= time_average(result.timeline, "workers", 10.0, horizon) <= 6


def test_autoscaling_hysteresis_damps_a_noisy_constant_load() -> None:
    """Poisson load at a threshold (2.8 busy workers = 4 x 0.7): hysteresis and cooldown
    at least halve the scale events of an autoscaler without them, and decisions are
    never closer than the cooldown."""
    workload = Workload.poisson(56.0, dists.Exponential(SCALE_MEAN), 5_600, seed=41)
    damped = sim.run(workload, autoscaler(), workers=4, seed=41)
    eager = sim.run(workload, autoscaler(cooldown=0.0, scale_down_ticks=1), workers=4, seed=41)
    assert_complete(damped)
    damped_events, eager_events = scale_events(damped), scale_events(eager)
    assert len(damped_events) * 2 <= len(eager_events)
    decisions = np.unique(damped_events["time"].to_numpy())
    assert np.all(np.diff(decisions) >= COOLDOWN - 1e-9)
    workers = damped.timeline["workers"].to_numpy()
    assert workers.min() >= 1 and workers.max() <= 8


# ----------------------------------------------------------------------------- (c) GIL

GIL_MEAN = 0.010


@functools.cache
def saturated_workload(cpu_fraction: float) -> Workload:
    """5,000 tasks arriving at 1,000/s: far more than even 4 workers can serve."""
    workload = Workload.poisson(1_000.0, dists.Exponential(GIL_MEAN), 5_000, seed=51)
    return workload.with_cpu_fraction(cpu_fraction)


def saturated_throughput(cpu_fraction: float, workers: int) -> float:
    """Throughput in units of 1 / mean service (so 1.0 is one busy worker's worth)."""
    workload = saturated_workload(cpu_fraction)
    result = sim.run(workload, "fifo", workers=workers, seed=51)
    assert_complete(result)
    return result.summary()["throughput"] * workload.mean_service


@pytest.mark.parametrize("workers", [1, 2, 4])
def test_io_bound_throughput_scales_with_workers(workers: int) -> None:
    assert saturated_throughput(0.0, workers) == pytest.approx(workers, rel=0.03)


@pytest.mark.parametrize("workers", [1, 2, 4])
def test_cpu_bound_throughput_saturates_at_one_worker(workers: int) -> None:
    """The interpreter lock serialises CPU parts: 4 threads do one thread's work."""
    assert saturated_throughput(1.0, workers) == pytest.approx(1.0, rel=0.03)


def test_half_cpu_bound_throughput_is_capped_by_the_lock() -> None:
    """With half of each task on the lock, the lock caps throughput at 2 workers' worth."""
    two, four = saturated_throughput(0.5, 2), saturated_throughput(0.5, 4)
    assert 1.0 < two < 2.0
    assert four == pytest.approx(2.0, rel=0.05)
    assert two < four


def test_cpu_bound_pool_queues_like_a_single_server() -> None:
    """Four workers on fully CPU-bound tasks behave as one M/M/1 server (the lock);
    on I/O-bound tasks as an M/M/4 queue."""
    rate = 0.7 / GIL_MEAN
    base = Workload.poisson(rate, dists.Exponential(GIL_MEAN), 40_000, seed=53)
    cpu = sim.run(base.with_cpu_fraction(1.0), "fifo", workers=4, seed=53)
    io = sim.run(base, "fifo", workers=4, seed=53)
    warmup = float(base.arrival[len(base) // 10])
    assert cpu.summary(warmup)["mean_latency"] == pytest.approx(
        theory.mmc_sojourn(rate, 1.0 / GIL_MEAN, 1), rel=0.10
    )
    assert io.summary(warmup)["mean_latency"] == pytest.approx(
        theory.mmc_sojourn(rate, 1.0 / GIL_MEAN, 4), rel=0.10
    )


# ----------------------------------------------------------------------------- (d) overhead

DISPATCH = 0.001


@functools.cache
def light_workload(cpu_fraction: float = 0.0) -> Workload:
    """10 tasks/s of 10 ms on 4 workers: utilisation 2.5%, almost no queueing."""
    workload = Workload.poisson(10.0, dists.Exponential(0.010), 20_000, seed=61)
    return workload.with_cpu_fraction(cpu_fraction)


def test_dispatch_overhead_adds_its_amount_to_latency_at_low_load() -> None:
    workload = light_workload()
    plain = sim.run(workload, "fifo", workers=4, seed=61)
    costly = sim.run(
        workload, "fifo", workers=4, seed=61, overhead=pool.Overhead(dispatch=DISPATCH)
    )
    assert_complete(costly)
    before, after = plain.summary(), costly.summary()
    assert after["mean_latency"] - before["mean_latency"] == pytest.approx(DISPATCH, rel=0.05)
    assert after["mean_wait"] - before["mean_wait"] < 0.05 * DISPATCH
    # Exactly: every task occupies its worker for its service plus the dispatch cost.
    tasks = costly.tasks
    held = (tasks["end"] - tasks["start"]).to_numpy()
    assert np.allclose(held, workload.service + DISPATCH, rtol=0, atol=1e-9)


@pytest.mark.parametrize(("cpu_fraction", "extra"), [(0.0, DISPATCH), (0.5, DISPATCH), (1.0, 0.0)])
def test_sleep_overshoot_applies_to_the_io_part_only(cpu_fraction: float, extra: float) -> None:
    """A sleep overshoot lengthens tasks that sleep at all, and purely CPU-bound ones not."""
    workload = light_workload(cpu_fraction)
    result = sim.run(
        workload, "fifo", workers=4, seed=61, overhead=pool.Overhead(sleep_overshoot=DISPATCH)
    )
    assert_complete(result)
    tasks = result.tasks
    held = (tasks["end"] - tasks["start"]).to_numpy()
    # Under the lock a task may also wait for it; at 2.5% load that is rare and short.
    assert np.median(held - workload.service) == pytest.approx(extra, abs=1e-9)
    assert math.isclose(float(np.min(held - workload.service)), extra, abs_tol=1e-9)
