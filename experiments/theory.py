"""theory: the model against exact queueing results (simulation only).

Each cell is one queue (M/M/1, M/M/4, M/D/1, M/G/1 with hyperexponential service of
cv 2, non-preemptive priority M/M/4 with two classes) at one load. A cell simulates
``runs`` independent replications (distinct workloads); each gives one ``sim`` row per
metric: the mean wait in queue of its tasks after the first 10% (warm-up) are deleted,
per class for the priority queue. The cell also gives a ``theory`` row per metric with
the exact value, under the same metric name, so ``summary.csv`` shows the two side by
side (columns ``sim`` and ``theory``). The 95% confidence interval (Student t) is taken
over every ``sim`` row of a cell: ``runs`` times ``--reps`` independent replications.
Time unit: the mean service time (1 s), so waits read as multiples of it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

import sim
from experiments import charts, storage
from experiments.definition import Cell, Context, Experiment, Row
from pool import Workload, dists, theory

MEAN_SERVICE = 1.0
WARMUP_SHARE = 0.10
CONFIDENCE = 0.95
CLASS_SHARES = {0: 0.4, 1: 0.6}
SERIES = {"mean_wait": "all tasks", "mean_wait_class0": "class 0", "mean_wait_class1": "class 1"}


@dataclass(frozen=True)
class Queue:
    """One queue the model is checked on: its service, servers and policy."""

    label: str
    service: dists.Distribution
    workers: int
    policy: str = "fifo"

    @property
    def classes(self) -> int:
        return len(CLASS_SHARES) if self.policy == "priority" else 1

    def metrics(self) -> list[str]:
        if self.classes == 1:
            return ["mean_wait"]
        return [f"mean_wait_class{k}" for k in range(self.classes)]

    def arrival_rate(self, load: float) -> float:
        return load * self.workers / self.service.mean

    def exact(self, load: float) -> dict[str, float]:
        """The exact mean wait(s) in queue at ``load``, from :mod:`pool.theory`."""
        rate, mean = self.arrival_rate(load), self.service.mean
        if self.policy == "priority":
            rates = [share * rate for share in CLASS_SHARES.values()]
            waits = theory.priority_mmc_wait(rates, 1.0 / mean, self.workers)
            return dict(zip(self.metrics(), waits, strict=True))
        if isinstance(self.service, dists.Exponential):
            return {"mean_wait": theory.mmc_wait(rate, 1.0 / mean, self.workers)}
        if self.workers != 1:
            raise ValueError(f"{self.label}: exact values need exponential service or 1 worker")
        if isinstance(self.service, dists.Deterministic):
            return {"mean_wait": theory.md1_wait(rate, mean)}
        return {"mean_wait": theory.mg1_wait(rate, mean, self.service.scv)}


QUEUES = {
    "mm1": Queue("M/M/1", dists.Exponential(MEAN_SERVICE), 1),
    "mm4": Queue("M/M/4", dists.Exponential(MEAN_SERVICE), 4),
    "md1": Queue("M/D/1", dists.Deterministic(MEAN_SERVICE), 1),
    "mg1": Queue("M/G/1 (H2 service cv 2)", dists.HyperExponential(MEAN_SERVICE, cv=2.0), 1),
    "prio_mm4": Queue(
        "priority M/M/4 (2 classes 40/60)", dists.Exponential(MEAN_SERVICE), 4, "priority"
    ),
}


def grid(quick: bool) -> list[Cell]:
    """Queues x loads; each cell runs ``runs`` replications of ``tasks`` tasks."""
    loads = [0.5, 0.9] if quick else [0.3, 0.5, 0.7, 0.8, 0.9, 0.95]
    tasks, runs = (10_000, 5) if quick else (40_000, 5)
    return [
        {"queue": name, "load": load, "tasks": tasks, "runs": runs}
        for name in QUEUES
        for load in loads
    ]


def run_cell(cell: Cell, context: Context) -> list[Row]:
    """``runs`` independent simulations (one sim row per run and metric) and the exact
    value (one theory row per metric)."""
    queue = QUEUES[cell["queue"]]
    seeds = np.random.SeedSequence(context.seed).generate_state(cell["runs"]).tolist()
    rows: list[Row] = []
    for seed in seeds:
        workload = Workload.poisson(
            queue.arrival_rate(cell["load"]),
            queue.service,
            cell["tasks"],
            priorities=CLASS_SHARES if queue.classes > 1 else None,
            seed=seed,
        )
        tasks = sim.run(workload, queue.policy, queue.workers, seed=seed).tasks
        kept = tasks.iloc[int(len(tasks) * WARMUP_SHARE) :]
        kept = kept[kept["status"] == "done"]
        for klass, metric in enumerate(queue.metrics()):
            waits = (
                kept["wait"] if queue.classes == 1 else kept.loc[kept["priority"] == klass, "wait"]
            )
            rows.append({"backend": "sim", "metric": metric, "value": float(waits.mean())})
    rows += [
        {"backend": "theory", "metric": metric, "value": value}
        for metric, value in queue.exact(cell["load"]).items()
    ]
    return rows


def table(results: pd.DataFrame) -> pd.DataFrame:
    """Per queue, load and metric: exact value, simulated mean, its 95% CI over all
    replications, relative error and whether the exact value lies inside the CI."""
    rows = []
    for (name, load, metric), part in results.groupby(["queue", "load", "metric"], sort=False):
        simulated = part.loc[part["backend"] == "sim", "value"].to_numpy(dtype=float)
        exact = float(part.loc[part["backend"] == "theory", "value"].mean())
        mean, low, high = _interval(simulated)
        rows.append(
            {
                "queue": QUEUES[str(name)].label,
                "load": load,
                "metric": metric,
                "exact": exact,
                "simulated": mean,
                "ci_low": low,
                "ci_high": high,
                "replications": simulated.size,
                "rel_error": (mean - exact) / exact,
                "inside_ci": bool(low <= exact <= high) if simulated.size > 1 else None,
            }
        )
    return pd.DataFrame(rows)


def _interval(samples: np.ndarray) -> tuple[float, float, float]:
    mean = float(samples.mean())
    if samples.size < 2:
        return mean, math.nan, math.nan
    quantile = stats.t.ppf(0.5 + CONFIDENCE / 2, samples.size - 1)
    half = float(quantile * samples.std(ddof=1) / math.sqrt(samples.size))
    return mean, mean - half, mean + half


def draw(results: pd.DataFrame, folder: Path) -> list[Path]:
    """Mean wait against load per queue (simulated with 95% CI, exact curve), and the table."""
    summary = table(results)
    path = folder / "theory_table.csv"
    storage.write_csv(summary, path)
    loads = np.linspace(0.2, 0.96, 77)
    curves = {
        (queue.label, metric): (loads, np.array([queue.exact(x)[metric] for x in loads]))
        for queue in QUEUES.values()
        for metric in queue.metrics()
    }
    points = summary.rename(
        columns={
            "queue": "panel",
            "load": "x",
            "simulated": "estimate",
            "ci_low": "low",
            "ci_high": "high",
        }
    )
    points["series"] = points["metric"].map(SERIES)
    chart = charts.estimates_against_exact(
        points,
        {(panel, SERIES[metric]): curve for (panel, metric), curve in curves.items()},
        folder / "mean_wait_vs_load.png",
        "Simulated mean wait in queue (95% CI) against the exact value (line)",
        xlabel="load (utilisation)",
        ylabel="mean wait (multiples of mean service)",
        estimate_label="simulated",
        relative_panel=True,
    )
    return [chart, path]


EXPERIMENT = Experiment(
    name="theory",
    description="model vs exact queueing theory: M/M/1, M/M/4, M/D/1, M/G/1, priority M/M/4",
    grid=grid,
    run_cell=run_cell,
    charts=draw,
    needs_real=False,
)
