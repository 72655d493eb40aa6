"""pool.fit: a workload model from a recorded trace; bad traces; the model's round trip.

Traces here are made by the model itself (seeded), so what the fit must recover is
known exactly: the intrinsic services before contention stretched them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import pool
import sim
from pool import Overhead, Workload, dists

MACHINE = Overhead(cores=2.0, switch_interval=0.005)


def recorded(workload: Workload, workers: int, overhead: Overhead = MACHINE) -> pd.DataFrame:
    """The trace a recording pool would give for ``workload`` (as the model runs it)."""
    tasks = sim.run(workload, "fifo", workers, overhead=overhead).tasks
    return pd.DataFrame(
        {
            "task_id": tasks["task_id"],
            "submitted": tasks["arrival"],
            "started": tasks["start"],
            "ended": tasks["end"],
            "worker": tasks["worker"],
            "priority": tasks["priority"],
            "status": "completed",
            "attempts": tasks["attempts"],
            "cpu_time": workload.service * workload.cpu_fraction,
            "pool_workers": workers,
        }
    )


def computing_workload(rate: float, n_tasks: int = 1500, seed: int = 3) -> Workload:
    """Half waiting, half pure Python: 8 threads on 2 cores stretch it."""
    return Workload.poisson(rate, dists.Exponential(0.010), n_tasks, seed=seed, cpu_fraction=0.5)


def test_contention_is_removed_from_services() -> None:
    workload = computing_workload(rate=150.0)
    trace = recorded(workload, workers=8)
    wall = float((trace["ended"] - trace["started"]).mean())
    truth = float(workload.service.mean())
    assert wall > 1.3 * truth  # the lock stretched the recorded tasks
    model = pool.fit(trace, overhead=MACHINE)
    assert model.mean_service == pytest.approx(truth, rel=0.03)
    naive = pool.fit(trace, overhead=MACHINE, correct_contention=False)
    assert naive.mean_service == pytest.approx(wall, rel=1e-9)


def test_one_worker_and_eight_workers_fit_alike() -> None:
    workload = computing_workload(rate=60.0)
    alone = pool.fit(recorded(workload, 1), overhead=MACHINE)
    crowded = pool.fit(
        recorded(workload.replace(arrival=workload.arrival / 2.5), 8), overhead=MACHINE
    )
    assert crowded.mean_service == pytest.approx(alone.mean_service, rel=0.05)
    described = crowded.describe().set_index("part")
    assert described.loc["class 0", "cpu_fraction"] == pytest.approx(0.5, abs=0.05)


def test_poisson_arrivals_are_recognised_and_bursts_are_not() -> None:
    service = dists.Exponential(0.001)
    poisson = pool.fit(recorded(Workload.poisson(100.0, service, 2000, seed=1), 4))
    assert poisson.arrival == "poisson" and poisson.rate == pytest.approx(100.0, rel=0.06)
    bursty = Workload.renewal(dists.HyperExponential(0.01, 3.0), service, 2000, seed=1)
    fitted = pool.fit(recorded(bursty, 4))
    assert fitted.arrival == "empirical" and "bursty" in fitted.arrival_note


def test_drawn_workloads_follow_the_fit_and_the_load_scale() -> None:
    workload = Workload.poisson(
        50.0, dists.LogNormal(0.02, 1.0), 3000, priorities={0: 0.3, 1: 0.7}, seed=2
    )
    model = pool.fit(recorded(workload, 4), correct_contention=False)
    drawn = model.workload(20_000, load_scale=2.0, seed=5)
    assert drawn.arrival_rate == pytest.approx(2 * model.rate, rel=0.03)
    assert np.mean(drawn.priority == 0) == pytest.approx(0.3, abs=0.02)
    assert drawn.mean_service == pytest.approx(model.mean_service, rel=0.05)
    again = model.workload(20_000, load_scale=2.0, seed=5)
    assert np.array_equal(drawn.service, again.service)


def test_small_classes_get_a_law_and_laws_can_be_asked_for() -> None:
    workload = Workload.poisson(20.0, dists.LogNormal(0.05, 0.5), 40, seed=4)
    model = pool.fit(recorded(workload, 2), correct_contention=False)
    assert model.classes[0].law in ("gamma", "lognormal", "weibull", "exponential")
    assert model.classes[0].law != "empirical"
    asked = pool.fit(recorded(workload, 2), service="lognormal", correct_contention=False)
    assert asked.classes[0].law == "lognormal"
    assert asked.mean_service == pytest.approx(float(workload.service.mean()), rel=0.15)


def test_model_round_trips_through_a_file(tmp_path: Path) -> None:
    workload = Workload.poisson(30.0, dists.Exponential(0.01), 200, seed=6)
    model = pool.fit(recorded(workload, 2), service="gamma", overhead=MACHINE)
    path = model.save(tmp_path / "model.json")
    loaded = pool.WorkloadModel.load(path)
    assert loaded == model
    first, second = model.workload(500, seed=1), loaded.workload(500, seed=1)
    assert np.array_equal(first.arrival, second.arrival)
    assert np.array_equal(first.service, second.service)


def test_a_newer_model_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "model.json"
    path.write_text('{"format": "poolbench-workload-model", "version": 99}')
    with pytest.raises(ValueError, match="version 99"):
        pool.WorkloadModel.load(path)
    path.write_text("{not json")
    with pytest.raises(ValueError, match="cannot read"):
        pool.WorkloadModel.load(path)


def good_trace() -> pd.DataFrame:
    return recorded(Workload.poisson(30.0, dists.Exponential(0.01), 60, seed=7), 2)


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("submitted", -1.0, "submitted must hold finite times >= 0 s (first at row 5"),
        ("started", np.nan, "started must hold finite times >= 0 s (first at row 5"),
        ("ended", np.inf, "ended must hold finite times >= 0 s (first at row 5"),
        ("ended", 0.0, "ended is before started (first at row 5"),
        ("cpu_time", -0.5, "cpu_time must hold finite times >= 0 s (first at row 5"),
        ("priority", 1.5, "priority must hold integers >= 0 (first at row 5"),
    ],
)
def test_bad_values_name_column_and_row(column: str, value: float, message: str) -> None:
    trace = good_trace()
    trace[column] = trace[column].astype(float)
    trace.loc[5, column] = value
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        pool.fit(trace, correct_contention=False)


def test_bad_traces_and_arguments_are_refused() -> None:
    trace = good_trace()
    with pytest.raises(ValueError, match=r"missing column\(s\) \['ended'\]"):
        pool.fit(trace.drop(columns="ended"))
    with pytest.raises(ValueError, match="19 completed tasks; a fit needs at least 20"):
        pool.fit(trace.head(19))
    with pytest.raises(ValueError, match="pool_workers"):
        pool.fit(trace.drop(columns="pool_workers"))
    with pytest.raises(ValueError, match="service must be one of"):
        pool.fit(trace, service="pareto")
    with pytest.raises(ValueError, match="gil_share"):
        pool.fit(trace, gil_share=1.5)
    at_once = trace.assign(submitted=0.0, started=trace["ended"] * 0)
    with pytest.raises(ValueError, match="submitted at once"):
        pool.fit(at_once, correct_contention=False)
    with pytest.raises(ValueError, match="does not exist"):
        pool.fit("no/such/trace.parquet")
