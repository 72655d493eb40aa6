"""The model's fast path for one shared queue is the event model, bit for bit."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pool import FaultPlan, Overhead, Priority, Recovery, Workload, dists
from sim import central_queue
from sim.simulated_pool import SimulatedPool, _Run


def both(workload: Workload, pool: SimulatedPool) -> tuple[object, object]:
    assert central_queue.applies(pool, workload)
    return pool.run(workload), _Run(pool, workload).execute()


def workloads() -> list[Workload]:
    service = dists.LogNormal(0.01, 1.5)
    poisson = Workload.poisson(350.0, service, 4000, priorities={0: 0.3, 1: 0.5, 2: 0.2}, seed=4)
    # Several tasks at one instant: the fast path must hand them out as the event model does.
    ties = poisson.replace(arrival=np.floor(poisson.arrival * 50) / 50)
    return [poisson, ties]


@pytest.mark.parametrize("policy", ["fifo", "priority"])
@pytest.mark.parametrize("workers", [1, 3, 8])
@pytest.mark.parametrize("case", [0, 1], ids=["poisson", "same-instant arrivals"])
def test_fast_path_equals_event_model(policy: str, workers: int, case: int) -> None:
    workload = workloads()[case]
    overhead = Overhead(dispatch=0.0002, sleep_overshoot=0.0003)
    fast, event = both(workload, SimulatedPool(policy, workers, seed=2, overhead=overhead))
    pd.testing.assert_frame_equal(fast.tasks, event.tasks, check_exact=True)  # type: ignore[attr-defined]
    assert fast.summary() == event.summary()  # type: ignore[attr-defined]
    assert fast.meta == event.meta  # type: ignore[attr-defined]


def test_fast_path_is_not_taken_where_it_would_differ() -> None:
    workload = workloads()[0]
    assert not central_queue.applies(SimulatedPool("work-stealing", 4), workload)
    assert not central_queue.applies(SimulatedPool(Priority(aging=0.1), 4), workload)
    faults = FaultPlan(crashes=[(0.5, 1)])
    assert not central_queue.applies(SimulatedPool("fifo", 4, faults=faults), workload)
    timeout = Recovery(task_timeout=1.0)
    assert not central_queue.applies(SimulatedPool("fifo", 4, recovery=timeout), workload)
    assert not central_queue.applies(
        SimulatedPool("fifo", 4, overhead=Overhead(cores=2.0)), workload
    )
    computing = workload.with_cpu_fraction(0.5)
    assert not central_queue.applies(SimulatedPool("fifo", 4), computing)
