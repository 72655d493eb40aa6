"""The model's fast path (fixed pool, no faults, no CPU) is the event model, bit for bit."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pool import (
    FIFO,
    FaultPlan,
    Overhead,
    Policy,
    Priority,
    Recovery,
    Workload,
    WorkStealing,
    dists,
)
from sim import fast_path
from sim.simulated_pool import SimulatedPool, _Run

POLICIES = {
    "fifo": FIFO,
    "priority": Priority,
    "priority aged": lambda: Priority(aging=0.02),
    "stealing": WorkStealing,
    "stealing longest half": lambda: WorkStealing(victim="longest", amount="half"),
    "stealing by affinity": lambda: WorkStealing(placement="affinity"),
    "no stealing": lambda: WorkStealing(amount="none"),
}


def workloads() -> list[Workload]:
    service = dists.LogNormal(0.01, 1.5)
    poisson = Workload.poisson(350.0, service, 3000, priorities={0: 0.3, 1: 0.5, 2: 0.2}, seed=4)
    poisson = poisson.with_affinity(8, hot_share=0.5, seed=1)
    # Several tasks at one instant: handed out as the event model's processes do.
    ties = poisson.replace(arrival=np.floor(poisson.arrival * 50) / 50)
    return [poisson, ties]


@pytest.mark.parametrize("policy", list(POLICIES))
@pytest.mark.parametrize("workers", [1, 3, 8])
@pytest.mark.parametrize("case", [0, 1], ids=["poisson", "same-instant arrivals"])
def test_fast_path_equals_event_model(policy: str, workers: int, case: int) -> None:
    workload = workloads()[case]
    overhead = Overhead(dispatch=0.0002, sleep_overshoot=0.0003)

    def pool() -> SimulatedPool:
        made: Policy = POLICIES[policy]()  # type: ignore[operator]
        return SimulatedPool(made, workers, seed=2, overhead=overhead)

    fast_pool = pool()
    assert fast_path.applies(fast_pool, workload)
    fast, event = fast_pool.run(workload), _Run(pool(), workload).execute()
    pd.testing.assert_frame_equal(fast.tasks, event.tasks, check_exact=True)
    pd.testing.assert_frame_equal(fast.events, event.events, check_exact=True)
    assert fast.summary() == event.summary()
    assert fast.meta == event.meta


def test_fast_path_is_not_taken_where_it_would_differ() -> None:
    workload = workloads()[0]
    assert not fast_path.applies(SimulatedPool("autoscaling", 4), workload)
    latency = WorkStealing(steal_latency=0.001)
    assert not fast_path.applies(SimulatedPool(latency, 4), workload)
    faults = FaultPlan(crashes=[(0.5, 1)])
    assert not fast_path.applies(SimulatedPool("fifo", 4, faults=faults), workload)
    timeout = Recovery(task_timeout=1.0)
    assert not fast_path.applies(SimulatedPool("fifo", 4, recovery=timeout), workload)
    assert not fast_path.applies(SimulatedPool("fifo", 4, overhead=Overhead(cores=2.0)), workload)
    assert not fast_path.applies(SimulatedPool("fifo", 4), workload.with_cpu_fraction(0.5))
