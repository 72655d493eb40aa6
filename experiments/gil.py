"""gil: saturated throughput of computing tasks in threads and in processes, against the
number of workers.

Each mix gives every 10 ms task a share of computing (``cpu_fraction``) and of that
computing a share holding the interpreter lock (``gil_share``): pure Python holds it,
C code such as hashing releases it. A burst arrives at ten times the pool's capacity,
so the pool is saturated and its throughput is its capacity. Waits overlap; computing
that releases the lock overlaps up to the cores the process gets; computing that holds
it does not overlap at all. The model (``sim.cpu``: cores shared by the computing
threads, the lock handed over by CPython's rules) predicts both plateaus, with the cores,
the lock hand-over and the pool's own costs measured by ``real.calibrate`` before the
grid. Besides throughput each cell of threads records CPU seconds per wall second:
predicted, the CPU work the workload asks per second of the predicted run; measured, the
process's CPU time over the run's wall time.

Each cell runs on a pool of threads or of worker processes (``pool``), calibrated
apart (``real.calibrate(backend="process")``). Processes have an interpreter lock each,
so lock-holding computing overlaps there up to the cores; the parent's dispatch is what
they share. (A process pool's CPU use is not measured: its workers are children of the
fork server, out of this process's accounting.)
"""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd

import real
import sim
from experiments import charts
from experiments.accuracy import accuracy_table, pair_rows
from experiments.definition import Cell, Context, Experiment, Row, summarize
from pool import Workload, dists

SERVICE = 0.010
OVERLOAD = 10.0
TARGETS = {"throughput": 0.05}

#: name -> (cpu_fraction, gil_share)
MIXES: dict[str, tuple[float, float]] = {
    "waiting": (0.0, 1.0),
    "python": (1.0, 1.0),
    "half python": (0.5, 1.0),
    "C code": (1.0, 0.0),
    "half C, half python": (1.0, 0.5),
}
QUICK_MIXES = ("waiting", "python", "C code")
POOLS = ("thread", "process")


def grid(quick: bool) -> list[Cell]:
    """Pools x mixes x workers; each cell lasts about ``seconds`` at the pool's capacity."""
    mixes = QUICK_MIXES if quick else tuple(MIXES)
    workers = [1, 2, 8] if quick else [1, 2, 4, 8, 16]
    seconds = 1.5 if quick else 4.0
    return [
        {"pool": pool, "mix": mix, "workers": w, "seconds": seconds}
        for pool in POOLS
        for mix in mixes
        for w in workers
    ]


def capacity(cell: Cell, cores: float = 2.0) -> float:
    """Tasks per second the pool can at most complete: the workers' bound, the lock's for
    the lock-holding computing of threads, or ``cores``' for all computing."""
    cpu_fraction, gil_share = MIXES[cell["mix"]]
    bounds = [float(cell["workers"]) / SERVICE]
    if cpu_fraction * gil_share > 0 and cell.get("pool", "thread") == "thread":
        bounds.append(1.0 / (cpu_fraction * gil_share * SERVICE))
    if cpu_fraction > 0:
        bounds.append(cores / (cpu_fraction * SERVICE))
    return min(bounds)


def workload(cell: Cell, seed: int) -> Workload:
    """A burst: Poisson arrivals at ten times the workers' bound, 10 ms services."""
    cpu_fraction, gil_share = MIXES[cell["mix"]]
    n_tasks = max(50, int(cell["seconds"] * capacity(cell)))
    rate = OVERLOAD * cell["workers"] / SERVICE
    return Workload.poisson(
        rate,
        dists.Deterministic(SERVICE),
        n_tasks,
        seed=seed,
        cpu_fraction=cpu_fraction,
        gil_share=gil_share,
    )


def run_cell(cell: Cell, context: Context) -> list[Row]:
    """Measure the burst in the real pool (and the process's CPU use), then predict it."""
    tasks = workload(cell, context.seed)
    pool = cell.get("pool", "thread")
    overhead = context.overhead if pool == "thread" else context.process_overhead
    wall, cpu = time.perf_counter(), time.process_time()
    measured = real.run(tasks, "fifo", cell["workers"], seed=context.seed, backend=pool)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    predicted = sim.run(
        tasks, "fifo", cell["workers"], seed=context.seed, overhead=overhead, backend=pool
    )
    if pool != "thread":
        return pair_rows(predicted, measured)
    makespan = predicted.summary()["makespan"]
    cpu_work = float((tasks.service * tasks.cpu_fraction).sum())
    return [
        *pair_rows(predicted, measured),
        {"backend": "sim", "metric": "cpu_per_second", "value": cpu_work / makespan},
        {"backend": "real", "metric": "cpu_per_second", "value": cpu / wall},
    ]


def draw(results: pd.DataFrame, folder: Path) -> list[Path]:
    """Throughput against workers per mix (predicted dashed, measured solid), the CPU
    used per second beside it, and the accuracy table."""
    summary = summarize(results)
    if "pool" not in summary:  # results of a run before the pool axis
        summary["pool"] = "thread"
    paths = []
    for pool, name, title in (
        ("thread", "throughput.png", "Threads, cores and the interpreter lock"),
        ("process", "throughput_processes.png", "Worker processes: a lock each, shared cores"),
    ):
        part = summary[summary["pool"] == pool]
        if part.empty:
            continue
        paths.append(
            charts.predicted_measured_lines(
                part,
                "workers",
                "mix",
                "throughput",
                folder / name,
                f"{title}: saturated throughput, 10 ms tasks",
                "throughput (tasks/s)",
                extra={"cpu_per_second": "CPU seconds per second"} if pool == "thread" else None,
                log2_x=True,
                log_y=True,
            )
        )
    return [*paths, accuracy_table(summary, TARGETS, folder / "accuracy.csv")]


EXPERIMENT = Experiment(
    name="gil",
    description="computing tasks in threads and processes: throughput vs workers, cores "
    "and lock modelled",
    grid=grid,
    run_cell=run_cell,
    charts=draw,
    needs_real=True,
    needs_processes=True,
)
