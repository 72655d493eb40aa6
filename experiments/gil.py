"""gil: throughput of CPU-bound tasks in threads, against the number of workers.

A task spends ``cpu_fraction`` of its 10 ms service computing (a busy loop holding the
interpreter lock) and the rest sleeping. A burst of tasks arrives at ten times the
pool's capacity, so the pool is saturated and its throughput is its capacity. Sleeps
overlap, computing does not: the model's interpreter lock (a resource of capacity one
for the CPU parts) predicts the plateau at 1 / (cpu_fraction x service) tasks per
second, whatever the number of workers. Besides throughput, each cell records the CPU
seconds per wall second: predicted, the lock's utilisation (throughput x CPU part);
measured, the process's CPU time over the run's wall time, which shows when the machine
did not give the pool a whole core.
"""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd

import real
import sim
from experiments import charts
from experiments.accuracy import accuracy_table, pair_rows
from experiments.framework import Cell, Context, Experiment, Row, summarize
from pool import Workload, dists

SERVICE = 0.010
OVERLOAD = 10.0
TARGETS = {"throughput": 0.10}


def grid(quick: bool) -> list[Cell]:
    """Workers x CPU fractions; each cell lasts about ``seconds`` at the pool's capacity."""
    workers = [1, 2, 4] if quick else [1, 2, 4, 8]
    fractions = [0.0, 1.0] if quick else [0.0, 0.5, 1.0]
    seconds = 1.5 if quick else 4.0
    return [
        {"cpu_fraction": f, "workers": w, "seconds": seconds} for f in fractions for w in workers
    ]


def capacity(cell: Cell) -> float:
    """Tasks per second the pool can at most complete: the workers' bound, or the
    interpreter lock's for the CPU parts."""
    bound = float(cell["workers"]) / SERVICE
    if cell["cpu_fraction"] > 0:
        bound = min(bound, 1.0 / (cell["cpu_fraction"] * SERVICE))
    return bound


def workload(cell: Cell, seed: int) -> Workload:
    """A burst: Poisson arrivals at ten times the workers' bound, 10 ms services."""
    n_tasks = max(50, int(cell["seconds"] * capacity(cell)))
    rate = OVERLOAD * cell["workers"] / SERVICE
    return Workload.poisson(
        rate,
        dists.Deterministic(SERVICE),
        n_tasks,
        seed=seed,
        cpu_fraction=cell["cpu_fraction"],
    )


def run_cell(cell: Cell, context: Context) -> list[Row]:
    """Measure the burst in the real pool (and the process's CPU use), then predict it."""
    tasks = workload(cell, context.seed)
    wall, cpu = time.perf_counter(), time.process_time()
    measured = real.run(tasks, "fifo", cell["workers"], seed=context.seed)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    predicted = sim.run(
        tasks, "fifo", cell["workers"], seed=context.seed, overhead=context.overhead
    )
    throughput = predicted.summary()["throughput"]
    return [
        *pair_rows(predicted, measured),
        {
            "backend": "sim",
            "metric": "cpu_per_second",
            "value": throughput * cell["cpu_fraction"] * SERVICE,
        },
        {"backend": "real", "metric": "cpu_per_second", "value": cpu / wall},
    ]


def draw(results: pd.DataFrame, folder: Path) -> list[Path]:
    """Throughput against workers per CPU fraction (predicted dashed, measured solid),
    the CPU used per second beside it, and the accuracy table."""
    summary = summarize(results)
    return [
        charts.predicted_measured_lines(
            summary,
            "workers",
            "cpu_fraction",
            "throughput",
            folder / "throughput.png",
            "Threads and the interpreter lock: saturated throughput, 10 ms tasks",
            "throughput (tasks/s)",
            extra={"cpu_per_second": "CPU seconds per second (lock / process)"},
            log2_x=True,
        ),
        accuracy_table(summary, TARGETS, folder / "accuracy.csv"),
    ]


EXPERIMENT = Experiment(
    name="gil",
    description="CPU-bound tasks in threads: throughput vs workers, interpreter lock modelled",
    grid=grid,
    run_cell=run_cell,
    charts=draw,
    needs_real=True,
)
