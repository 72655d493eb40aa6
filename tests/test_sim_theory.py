"""Statistical agreement of the simulated pool (``sim.run``) with exact queueing theory.

Method, the same for every case: ``REPS`` independent replications (distinct, fixed
seeds, so the test is deterministic), each a long run of one workload; the first
``WARMUP_SHARE`` of the tasks (by arrival) is dropped as warm-up; per replication the
mean waiting time in queue (``start - arrival`` of the ``done`` tasks) is one
observation, per priority class where there are classes. The 95% confidence interval
(Student t over the replications) must contain the exact value of :mod:`pool.theory`,
and must be narrow (half-width below ``MAX_REL_HALF_WIDTH`` of the value), so the
check has power. A second group of tests shows it does: plausible but wrong theory
values (one server too many, the M/M/1 formula for deterministic service, FIFO waits
for a priority queue, +-20%) all fall outside the same intervals.

Loads are 0.7-0.8; a case costs about 300k simulated tasks (a few seconds), the
high-variance M/G/1 case three times that.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest
from scipy import stats

import sim
from pool import Workload, dists, theory

REPS = 10
N_TASKS = 30_000
WARMUP_SHARE = 0.10
CONFIDENCE = 0.95
MAX_REL_HALF_WIDTH = 0.10


# ----------------------------------------------------------------------------- machinery


@dataclass(frozen=True)
class Case:
    """One queue: how to build replication ``seed``'s workload, how to run it, the theory."""

    make: Callable[[int], Workload]
    policy: str
    workers: int
    classes: int
    base_seed: int


@dataclass(frozen=True)
class Replications:
    """Per-replication statistics: ``waits[r, k]`` mean wait of class k, ``waited[r]``
    the share of (post-warm-up) tasks that waited at all."""

    waits: np.ndarray
    waited: np.ndarray


def confidence_interval(samples: np.ndarray) -> tuple[float, float, float]:
    """(mean, low, high): the Student-t ``CONFIDENCE`` interval of the mean of ``samples``."""
    samples = np.asarray(samples, dtype=np.float64)
    n = samples.size
    mean = float(samples.mean())
    half = float(stats.t.ppf(0.5 + CONFIDENCE / 2, n - 1) * samples.std(ddof=1) / math.sqrt(n))
    return mean, mean - half, mean + half


def per_class_services(
    workload: Workload, services: dict[int, dists.Distribution], seed: int
) -> Workload:
    """A copy of ``workload`` whose class-k tasks draw their service from ``services[k]``."""
    rng = np.random.default_rng([seed, 7])
    service = np.empty(len(workload))
    for klass, dist in services.items():
        mask = workload.priority == klass
        service[mask] = dist.sample(rng, int(mask.sum()))
    assert set(np.unique(workload.priority)) <= set(services)
    return Workload(
        workload.arrival, service, workload.priority, workload.cpu_fraction, workload.affinity
    )


# Class-dependent service for the priority M/G/1 case: short deterministic urgent tasks,
# long high-variance background tasks.
MG1_MIXED_SERVICES: dict[int, dists.Distribution] = {
    0: dists.Deterministic(0.5),
    1: dists.HyperExponential(mean=1.25, cv=1.5),
}


CASES: dict[str, Case] = {
    "mm1": Case(
        lambda s: Workload.poisson(0.8, dists.Exponential(1.0), N_TASKS, seed=s),
        "fifo",
        1,
        1,
        1_000,
    ),
    "mm2": Case(
        lambda s: Workload.poisson(1.5, dists.Exponential(1.0), N_TASKS, seed=s),
        "fifo",
        2,
        1,
        2_000,
    ),
    "mm4": Case(
        lambda s: Workload.poisson(3.0, dists.Exponential(1.0), N_TASKS, seed=s),
        "fifo",
        4,
        1,
        3_000,
    ),
    "md1": Case(
        lambda s: Workload.poisson(0.75, dists.Deterministic(1.0), N_TASKS, seed=s),
        "fifo",
        1,
        1,
        4_000,
    ),
    "mg1_hyperexp": Case(
        # scv 4 relaxes slowly: three times the tasks for a comparably tight interval.
        lambda s: Workload.poisson(
            0.7, dists.HyperExponential(mean=1.0, cv=2.0), 3 * N_TASKS, seed=s
        ),
        "fifo",
        1,
        1,
        5_000,
    ),
    "prio_mm2_two_classes": Case(
        lambda s: Workload.poisson(
            1.5, dists.Exponential(1.0), N_TASKS, priorities={0: 0.4, 1: 0.6}, seed=s
        ),
        "priority",
        2,
        2,
        6_000,
    ),
    "prio_mm4_three_classes": Case(
        lambda s: Workload.poisson(
            3.0, dists.Exponential(1.0), N_TASKS, priorities={0: 0.2, 1: 0.3, 2: 0.5}, seed=s
        ),
        "priority",
        4,
        3,
        7_000,
    ),
    "prio_mg1_lognormal": Case(
        lambda s: Workload.poisson(
            0.75, dists.LogNormal(mean=1.0, cv=1.0), N_TASKS, priorities={0: 0.3, 1: 0.7}, seed=s
        ),
        "priority",
        1,
        2,
        8_000,
    ),
    "prio_mg1_mixed_services": Case(
        lambda s: per_class_services(
            Workload.poisson(
                0.8, dists.Exponential(1.0), N_TASKS, priorities={0: 0.4, 1: 0.6}, seed=s
            ),
            MG1_MIXED_SERVICES,
            s,
        ),
        "priority",
        1,
        2,
        9_000,
    ),
}


# Exact per-class mean waits in queue, from pool.theory.
THEORY: dict[str, list[float]] = {
    "mm1": [theory.mmc_wait(0.8, 1.0, 1)],
    "mm2": [theory.mmc_wait(1.5, 1.0, 2)],
    "mm4": [theory.mmc_wait(3.0, 1.0, 4)],
    "md1": [theory.md1_wait(0.75, 1.0)],
    "mg1_hyperexp": [theory.mg1_wait(0.7, 1.0, 4.0)],
    "prio_mm2_two_classes": theory.priority_mmc_wait([0.6, 0.9], 1.0, 2),
    "prio_mm4_three_classes": theory.priority_mmc_wait([0.6, 0.9, 1.5], 1.0, 4),
    "prio_mg1_lognormal": theory.priority_mg1_wait([0.225, 0.525], [1.0, 1.0], [1.0, 1.0]),
    "prio_mg1_mixed_services": theory.priority_mg1_wait(
        [0.32, 0.48],
        [MG1_MIXED_SERVICES[0].mean, MG1_MIXED_SERVICES[1].mean],
        [MG1_MIXED_SERVICES[0].scv, MG1_MIXED_SERVICES[1].scv],
    ),
}


@functools.cache
def replicate(name: str) -> Replications:
    """Run case ``name`` ``REPS`` times (cached: the wrong-theory tests reuse the runs)."""
    case = CASES[name]
    waits = np.empty((REPS, case.classes))
    waited = np.empty(REPS)
    for rep in range(REPS):
        seed = case.base_seed + rep
        workload = case.make(seed)
        result = sim.run(workload, policy=case.policy, workers=case.workers, seed=seed)
        tasks = result.tasks
        assert (tasks["status"] == "done").all(), "a fault-free run must complete every task"
        kept = tasks.iloc[int(len(tasks) * WARMUP_SHARE) :]
        kept = kept[kept["status"] == "done"]
        wait = kept["wait"].to_numpy()
        assert np.all(wait >= 0.0)
        priority = kept["priority"].to_numpy()
        for klass in range(case.classes):
            in_class = wait[priority == klass]
            assert in_class.size > 1_000, f"{name}: too few class-{klass} tasks"
            waits[rep, klass] = in_class.mean()
        waited[rep] = float(np.mean(wait > 0.0))
    return Replications(waits, waited)


def _describe(name: str, klass: int, expected: float, interval: tuple[float, float, float]) -> str:
    mean, low, high = interval
    return (
        f"{name} class {klass}: theory {expected:.5f}, simulated mean {mean:.5f}, "
        f"{CONFIDENCE:.0%} CI [{low:.5f}, {high:.5f}] over {REPS} replications"
    )


# ----------------------------------------------------------------------------- agreement


def test_cases_are_at_the_intended_loads() -> None:
    """The cases sit at utilisation 0.7-0.8, where waits are long and the check is strict."""
    for name, case in CASES.items():
        workload = case.make(case.base_seed)
        load = workload.offered_load(case.workers)
        assert 0.65 < load < 0.85, f"{name}: offered load {load:.3f}"


@pytest.mark.parametrize("name", list(CASES))
def test_mean_wait_matches_theory(name: str) -> None:
    """The exact mean wait (per class) lies inside the 95% CI, and the CI is narrow."""
    reps = replicate(name)
    for klass, expected in enumerate(THEORY[name]):
        interval = confidence_interval(reps.waits[:, klass])
        _, low, high = interval
        message = _describe(name, klass, expected, interval)
        assert low <= expected <= high, message
        assert (high - low) / 2 < MAX_REL_HALF_WIDTH * expected, "CI too wide: " + message


@pytest.mark.parametrize(
    ("name", "arrival_rate", "servers"), [("mm1", 0.8, 1), ("mm2", 1.5, 2), ("mm4", 3.0, 4)]
)
def test_probability_of_waiting_matches_erlang_c(
    name: str, arrival_rate: float, servers: int
) -> None:
    """FIFO M/M/c: the share of tasks that wait at all estimates Erlang C (rho for c=1)."""
    expected = theory.erlang_c(servers, arrival_rate / 1.0)
    interval = confidence_interval(replicate(name).waited)
    _, low, high = interval
    assert low <= expected <= high, _describe(name, 0, expected, interval)
    assert (high - low) / 2 < 0.05 * expected


def test_priority_classes_are_ordered() -> None:
    """Class 0 waits least: a sanity check independent of the formulas."""
    for name in ("prio_mm2_two_classes", "prio_mm4_three_classes", "prio_mg1_mixed_services"):
        means = replicate(name).waits.mean(axis=0)
        assert np.all(np.diff(means) > 0), f"{name}: per-class mean waits {means}"


# ----------------------------------------------------------------------------- power


def _wrong_values() -> list[tuple[str, int, float, str]]:
    """(case, class, wrong theory value, why it is wrong)."""
    fifo_mm2 = theory.mmc_wait(1.5, 1.0, 2)
    fifo_mm4 = theory.mmc_wait(3.0, 1.0, 4)
    return [
        ("mm1", 0, 1.2 * THEORY["mm1"][0], "20% too high"),
        ("mm1", 0, 0.8 * THEORY["mm1"][0], "20% too low"),
        ("mm2", 0, theory.mmc_wait(1.5, 1.0, 3), "M/M/c with one server too many"),
        ("mm2", 0, 1.2 * THEORY["mm2"][0], "20% too high"),
        ("mm4", 0, theory.mmc_wait(3.0, 1.0, 5), "M/M/c with one server too many"),
        ("mm4", 0, 0.8 * THEORY["mm4"][0], "20% too low"),
        ("mm4", 0, theory.mmc_wait(0.75, 1.0, 1), "four independent M/M/1 queues"),
        ("md1", 0, theory.mmc_wait(0.75, 1.0, 1), "M/M/1 formula: ignores service variance"),
        ("md1", 0, 1.2 * THEORY["md1"][0], "20% too high"),
        ("mg1_hyperexp", 0, theory.mg1_wait(0.7, 1.0, 1.0), "scv 1 instead of 4"),
        ("mg1_hyperexp", 0, 0.8 * THEORY["mg1_hyperexp"][0], "20% too low"),
        ("prio_mm2_two_classes", 0, fifo_mm2, "FIFO wait for the urgent class"),
        ("prio_mm2_two_classes", 1, fifo_mm2, "FIFO wait for the background class"),
        (
            "prio_mm2_two_classes",
            0,
            theory.priority_mmc_wait([0.9, 0.6], 1.0, 2)[1],
            "class order swapped",
        ),
        ("prio_mm4_three_classes", 1, fifo_mm4, "FIFO wait for the middle class"),
        ("prio_mm4_three_classes", 2, 1.2 * THEORY["prio_mm4_three_classes"][2], "20% too high"),
        (
            "prio_mg1_lognormal",
            1,
            theory.priority_mg1_wait([0.225, 0.525], [1.0, 1.0], [0.0, 0.0])[1],
            "deterministic service instead of cv 1",
        ),
        (
            "prio_mg1_mixed_services",
            0,
            theory.priority_mg1_wait([0.32, 0.48], [0.5, 1.25], [0.0, 1.0])[0],
            "exponential instead of hyperexponential background class",
        ),
        (
            "prio_mg1_mixed_services",
            1,
            theory.mg1_wait(0.8, 0.4 * 0.5 + 0.6 * 1.25, 1.0),
            "FIFO M/M/1 for the background class",
        ),
    ]


@pytest.mark.parametrize(
    ("name", "klass", "wrong", "why"),
    _wrong_values(),
    ids=[f"{n}-class{k}-{w.replace(' ', '_')}" for n, k, _, w in _wrong_values()],
)
def test_wrong_theory_falls_outside_the_interval(
    name: str, klass: int, wrong: float, why: str
) -> None:
    """The comparison has power: a plausible but wrong value is rejected."""
    interval = confidence_interval(replicate(name).waits[:, klass])
    _, low, high = interval
    assert not low <= wrong <= high, f"not rejected ({why}): " + _describe(
        name, klass, wrong, interval
    )
