"""predicted_vs_measured: the model against the real pool on the same workloads.

Each cell replays one workload (policy x load x workers x service distribution) in the
real pool and simulates it with the calibrated overhead; the two runs share every
arrival and service time, so what differs is the pool alone. ``pool``: a pool of
threads, or of worker processes (predicted by ``sim.run(backend="process")`` with
``real.calibrate(backend="process")``).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

import real
import sim
from experiments import charts
from experiments.accuracy import accuracy_table, pair_rows
from experiments.definition import Cell, Context, Experiment, Row, summarize
from pool import Workload, dists

MEAN_SERVICE = 0.010
TARGETS = {"throughput": 0.03, "mean_latency": 0.10, "p95_latency": 0.15}


def grid(quick: bool) -> list[Cell]:
    """Pools x policies x loads x workers x service distributions (a corner of it when
    quick: worker processes under fifo alone)."""
    loads = [0.5, 0.9] if quick else [0.5, 0.7, 0.9]
    workers = [4] if quick else [2, 4, 8]
    services = ["exponential"] if quick else ["exponential", "lognormal"]
    seconds = 4.0 if quick else 10.0
    policies = {
        "thread": ["fifo", "priority", "work-stealing"],
        "process": ["fifo"] if quick else ["fifo", "priority", "work-stealing"],
    }
    return [
        {"pool": pool, "policy": p, "load": load, "workers": w, "service": s, "seconds": seconds}
        for pool, names in policies.items()
        for p in names
        for load in loads
        for w in workers
        for s in services
    ]


def workload(cell: Cell, seed: int) -> Workload:
    """The cell's workload: Poisson arrivals, two priority classes, mean service 10 ms."""
    rate = cell["load"] * cell["workers"] / MEAN_SERVICE
    service = (
        dists.Exponential(MEAN_SERVICE)
        if cell["service"] == "exponential"
        else dists.LogNormal(MEAN_SERVICE, cv=1.5)
    )
    n_tasks = max(200, int(rate * cell["seconds"]))
    return Workload.poisson(rate, service, n_tasks, priorities={0: 0.3, 1: 0.7}, seed=seed)


def run_cell(cell: Cell, context: Context) -> list[Row]:
    """Measure the cell in the real pool, then predict it with the calibrated model."""
    tasks = workload(cell, context.seed)
    pool = cell.get("pool", "thread")
    overhead = context.overhead if pool == "thread" else context.process_overhead
    options = {"seed": context.seed, "backend": pool}
    measured = real.run(tasks, cell["policy"], cell["workers"], **options)
    predicted = sim.run(tasks, cell["policy"], cell["workers"], overhead=overhead, **options)
    return pair_rows(predicted, measured, quantiles=True)


def draw(results: pd.DataFrame, folder: Path) -> list[Path]:
    """Parity plots, latency CDF overlays and the accuracy table against the targets."""
    if "pool" not in results:  # results of a run before the pool axis
        results = results.assign(pool="thread")
    summary = summarize(results[~results["metric"].str.startswith("latency_q")])
    summary["pool and policy"] = summary["policy"] + " (" + summary["pool"] + "s)"
    paths = [
        charts.parity(
            summary,
            charts.MAIN_METRICS,
            "pool and policy",
            folder / "parity.png",
            "Measured against predicted (each point one cell)",
        )
    ]
    panels = [
        (
            f"{c['policy']} ({c['pool']}s), {c['workers']} workers, load {c['load']}, "
            f"{c['service']}",
            part,
        )
        for c, part in _cells(results)
    ][:9]
    paths.append(
        charts.cdf_overlay(
            results,
            panels,
            folder / "latency_cdf.png",
            "Latency CDF: predicted (dashed) and measured (solid)",
        )
    )
    paths.append(accuracy_table(summary, TARGETS, folder / "accuracy.csv"))
    return paths


def _cells(results: pd.DataFrame) -> list[tuple[dict[str, object], pd.DataFrame]]:
    keys = ["pool", "policy", "workers", "load", "service"]
    return [
        (dict(zip(keys, values, strict=True)), part)
        for values, part in results.groupby(keys, sort=True)
    ]


EXPERIMENT = Experiment(
    name="predicted_vs_measured",
    description="model vs real pool: throughput, mean and p95 latency, latency CDFs",
    grid=grid,
    run_cell=run_cell,
    charts=draw,
    needs_real=True,
    needs_processes=True,
)
