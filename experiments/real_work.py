"""real_work: the model against the real pool on real code, not stand-ins.

Each task does an HTTP GET to a local server (another process, answering after the
delay the task asks for), parses the JSON it returns and hashes a buffer
(:mod:`experiments.real_tasks`). Four mixes weigh the three kinds of time differently:
I/O-heavy, mixed, lock-heavy (large JSON), lock-free-heavy (large hashes). Per mix and
number of workers, a cell measures:

* each step alone (one task at a time on an idle pool): the model's only knowledge of
  the tasks, with each step's kind; nothing is fitted to what the cell then measures;
* the capacity: a burst at several times what the pool can do (rows with ``load`` 1);
* Poisson arrivals at 0.5 and 0.8 of that measured capacity (rows with their ``load``).

The model gets the same arrivals and server delays, the solo times of the steps, and
the machine as ``real.calibrate`` measured it before the grid (without its sleep
overshoot: a real task's waits are measured whole in its solo time).

As every cell that measures the real pool, it runs with the harness's own heap out of
the garbage collector's reach (:func:`experiments.execution.quiet_collector`): a full
collection of it held the lock for up to 130 ms, and the model has no collector.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd

import real
import sim
from experiments import charts
from experiments.accuracy import accuracy_table, pair_rows
from experiments.definition import Cell, Context, Experiment, Row, summarize
from experiments.real_tasks import (
    MIXES,
    LocalServer,
    Profile,
    RealTask,
    model_workload,
    performer,
    profile,
)
from pool import Overhead, RunResult

TARGETS = {"throughput": 0.05, "mean_latency": 0.10, "p95_latency": 0.15}
LOADS = (0.5, 0.8)
BURST = 5.0  # the capacity burst arrives at this many times the estimated capacity
SATURATED = 1.0  # the load recorded for the capacity burst's rows


def grid(quick: bool) -> list[Cell]:
    """Mixes x workers; each phase of a cell lasts about ``seconds``."""
    mixes = ("I/O-heavy", "lock-heavy") if quick else tuple(MIXES)
    workers = [1, 4] if quick else [1, 2, 4, 8, 16]
    seconds = 2.0 if quick else 5.0
    return [{"mix": mix, "workers": w, "seconds": seconds} for mix in mixes for w in workers]


def run_cell(cell: Cell, context: Context) -> list[Row]:
    """Profile the tasks alone, measure the capacity, then the two loads; predict each."""
    mix, workers, seconds = MIXES[cell["mix"]], cell["workers"], cell["seconds"]
    rng = np.random.default_rng(np.random.SeedSequence(context.seed))
    machine = dataclasses.replace(context.overhead, sleep_overshoot=0.0)
    rows: list[Row] = []
    with LocalServer() as server:
        solo = profile(server, mix, rng)
        estimate = _estimated_capacity(solo, mix.delay, workers, machine.cores)
        n_tasks = max(40, int(seconds * estimate))
        arrival = np.cumsum(rng.exponential(1.0 / (BURST * estimate), n_tasks))
        burst = _pair(server, cell, arrival, rng, solo, machine, context.seed)
        rows += _tagged(pair_rows(*burst), SATURATED)
        capacity = burst[1].summary()["throughput"]
        for load in LOADS:
            n_tasks = max(40, int(seconds * load * capacity))
            arrival = np.cumsum(rng.exponential(1.0 / (load * capacity), n_tasks))
            pair = _pair(server, cell, arrival, rng, solo, machine, context.seed)
            rows += _tagged(pair_rows(*pair, quantiles=True), load)
    rows += [
        {"backend": "solo", "metric": f"solo_{name}", "value": value, "load": SATURATED}
        for name, value in solo.as_dict().items()
    ]
    return rows


def _estimated_capacity(solo: Profile, delay: float, workers: int, cores: float) -> float:
    """Tasks per second the pool can at most complete, from the solo profile: the
    workers', the lock's and the cores' bounds (used only to size the burst)."""
    service = solo.lock_held + solo.lock_free + solo.waiting + delay
    cpu = solo.lock_held + solo.lock_free + solo.server_cpu
    return min(workers / service, 1.0 / max(solo.lock_held, 1e-6), cores / cpu)


def _pair(
    server: LocalServer,
    cell: Cell,
    arrival: np.ndarray,
    rng: np.random.Generator,
    solo: Profile,
    machine: Overhead,
    seed: int,
) -> tuple[RunResult, RunResult]:
    """(predicted, measured) runs of real tasks arriving at ``arrival``."""
    mix = MIXES[cell["mix"]]
    delays = rng.exponential(mix.delay, len(arrival))
    workload = model_workload(arrival, delays, solo)
    task = RealTask(server.port, mix)
    measured = real.run(
        workload, "fifo", cell["workers"], seed=seed, perform=performer(task, delays)
    )
    predicted = sim.run(workload, "fifo", cell["workers"], seed=seed, overhead=machine)
    return predicted, measured


def _tagged(rows: list[Row], load: float) -> list[Row]:
    return [{**row, "load": load} for row in rows]


def draw(results: pd.DataFrame, folder: Path) -> list[Path]:
    """Parity (every phase), capacity against workers per mix, latency CDFs, accuracy."""
    plain = results[~results["metric"].str.startswith(("latency_q", "solo_"))]
    summary = summarize(plain)
    saturated = summary[summary["load"] == SATURATED]
    loaded = summary[summary["load"] != SATURATED]
    paths = [
        charts.parity(
            summary,
            charts.MAIN_METRICS,
            "mix",
            folder / "parity.png",
            "Real tasks: measured against predicted (each point a mix, pool size and load)",
        ),
        charts.predicted_measured_lines(
            saturated,
            "workers",
            "mix",
            "throughput",
            folder / "capacity.png",
            "Real tasks: capacity against workers",
            "throughput at saturation (tasks/s)",
            log2_x=True,
        ),
        charts.cdf_overlay(
            results,
            _panels(results[results["load"] == max(LOADS)]),
            folder / "latency_cdf.png",
            f"Latency CDF at load {max(LOADS)}: predicted (dashed) and measured (solid)",
        ),
        accuracy_table(loaded, TARGETS, folder / "accuracy.csv"),
        accuracy_table(
            saturated, {"throughput": TARGETS["throughput"]}, folder / "accuracy_capacity.csv"
        ),
    ]
    return paths


def _panels(results: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    panels = []
    for (mix, workers), part in results.groupby(["mix", "workers"], sort=True):
        panels.append((f"{mix}, {workers} workers", part))
    return panels[:9]


EXPERIMENT = Experiment(
    name="real_work",
    description="real code (HTTP, JSON, hashing): model vs real pool at 1-16 workers",
    grid=grid,
    run_cell=run_cell,
    charts=draw,
    needs_real=True,
)
