"""JSQ and power-of-d placement; the supermarket-model limit; registering a policy by name."""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import pytest
from scipy import stats

import pool
import real
import sim
from pool import FIFO, JoinShortestQueue, PowerOfD, Workload, dists


def supermarket_sojourn(load: float, d: int) -> float:
    """Mean time in system of the supermarket model (many servers, mean service 1):
    T_d(load) = sum over i >= 1 of load ** ((d**i - d) / (d - 1)) (Mitzenmacher 2001)."""
    total, i = 0.0, 1
    while True:
        term = load ** ((d**i - d) / (d - 1))
        total += term
        if term < 1e-12:
            return total
        i += 1


@pytest.mark.slow
def test_power_of_two_meets_the_supermarket_limit() -> None:
    servers, load, n_tasks = 100, 0.9, 60_000
    means = []
    for rep in range(5):
        workload = Workload.poisson(servers * load, dists.Exponential(1.0), n_tasks, seed=rep)
        result = sim.run(workload, PowerOfD(2), servers, seed=rep)
        means.append(result.summary(warmup=0.1 * workload.duration)["mean_latency"])
    mean = float(np.mean(means))
    half = stats.t.ppf(0.975, len(means) - 1) * np.std(means, ddof=1) / math.sqrt(len(means))
    limit = supermarket_sojourn(load, 2)  # 2.6114: 100 servers add about 1/N to it
    assert abs(mean - limit) <= half + 0.03 * limit, (mean, half, limit)
    # Far from one random choice (each server an M/M/1: 1 / (1 - load) = 10).
    assert mean < 0.5 / (1 - load)


def test_the_supermarket_formula() -> None:
    assert supermarket_sojourn(0.9, 2) == pytest.approx(
        1 + 0.9**2 + 0.9**6 + 0.9**14 + 0.9**30 + 0.9**62, rel=1e-6
    )
    assert supermarket_sojourn(0.5, 3) == pytest.approx(1 + 0.5**3 + 0.5**12 + 0.5**39, rel=1e-9)


def test_jsq_places_on_the_least_loaded_slot_counting_service() -> None:
    policy = JoinShortestQueue()
    policy.reset(range(3), np.random.default_rng(0))
    for slot in range(3):  # every worker asks and finds nothing: all idle
        assert policy.next_task(slot, 0.0) is None
    first = policy.submit(0, 0, -1, 0.0)
    assert policy.next_task(first, 0.0) == 0  # slot `first` now serves task 0
    second = policy.submit(1, 0, -1, 0.0)
    assert second != first
    policy.next_task(second, 0.0)
    third = policy.submit(2, 0, -1, 0.0)
    assert third not in (first, second)
    policy.next_task(third, 0.0)
    assert policy.submit(3, 0, -1, 0.0) in (0, 1, 2)
    assert policy.queued() == 1
    assert policy.next_task(first, 0.0) is None or policy.queued() == 0


def test_power_of_d_with_every_slot_is_jsq_without_random_ties() -> None:
    workload = Workload.poisson(300.0, dists.Exponential(0.01), 3000, seed=1)
    every = sim.run(workload, PowerOfD(d=4), 4, seed=1).summary()
    assert (
        every["mean_latency"]
        < sim.run(workload, PowerOfD(d=1), 4, seed=1).summary()["mean_latency"]
    )
    jsq = sim.run(workload, "jsq", 4, seed=1).summary()
    assert jsq["mean_latency"] == pytest.approx(every["mean_latency"], rel=0.05)


def test_bad_d_is_named() -> None:
    with pytest.raises(ValueError, match="d must be an integer >= 1"):
        PowerOfD(d=0)


@pytest.fixture
def registered() -> Iterator[str]:
    from pool import registry

    class Lifo(FIFO):
        def next_task(self, worker: int, now: float) -> int | None:
            return self._queue.pop() if self._queue else None

        @property
        def name(self) -> str:
            return "lifo"

    pool.register_policy("lifo", Lifo)
    yield "lifo"
    del registry._FACTORIES["lifo"]


def test_a_registered_name_works_in_every_pool(registered: str) -> None:
    assert registered in pool.policy_names()
    workload = Workload.poisson(200.0, dists.Exponential(0.002), 200, seed=3)
    assert sim.run(workload, registered, 2).summary()["completed"] == 200
    assert real.run(workload, registered, 2).summary()["completed"] == 200
    with real.ThreadedPool(registered, 2) as threaded:
        assert threaded.submit(pow, 2, 5).result(timeout=30) == 32
    answer = pool.plan(
        pool.fit(_trace(workload)), {"p95_latency": 1.0}, [2, 3], [registered, "jsq"],
        [1.0], reps=2, n_tasks=300,
    )  # fmt: skip
    assert set(answer.table["policy"]) == {registered, "jsq"}


def _trace(workload: Workload) -> object:
    import pandas as pd

    tasks = sim.run(workload, "fifo", 2).tasks
    return pd.DataFrame(
        {"submitted": tasks["arrival"], "started": tasks["start"], "ended": tasks["end"],
         "pool_workers": 2}
    )  # fmt: skip


def test_registration_refuses_bad_names_and_factories() -> None:
    with pytest.raises(ValueError, match="taken"):
        pool.register_policy("fifo", FIFO)
    with pytest.raises(ValueError, match="lower case"):
        pool.register_policy("My Policy", FIFO)
    with pytest.raises(ValueError, match=r"not a pool\.Policy"):
        pool.register_policy("broken", lambda: object())  # type: ignore[arg-type, return-value]
    with pytest.raises(ValueError, match="policy must be one of fifo, priority"):
        pool.policies.resolve("nope")
