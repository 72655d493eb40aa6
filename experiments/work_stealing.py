"""work_stealing: stealing variants on an affinity-skewed workload, predicted and measured.

Tasks prefer worker 0 (``hot_share`` of them, the rest spread over all four workers) and
the policy places them by affinity, so without stealing worker 0 is overloaded while
the others idle. Each cell is one stealing variant: none (the baseline), or steal one
task / half the victim's queue from a random victim / the longest queue. The real pool
runs the workload and the calibrated model predicts it: latency and steal counts.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

import real
import sim
from experiments import charts
from experiments.accuracy import accuracy_table, pair_rows
from experiments.definition import Cell, Context, Experiment, Row, summarize
from pool import Workload, WorkStealing, dists
from pool.work_stealing import Amount, Victim

MEAN_SERVICE = 0.010
WORKERS = 4
LOAD = 0.7
TARGETS = {"throughput": 0.03, "mean_latency": 0.10, "p95_latency": 0.15}

#: Variant name -> (amount, victim).
VARIANTS: dict[str, tuple[Amount, Victim]] = {
    "none": ("none", "random"),
    "one/random": ("one", "random"),
    "one/longest": ("one", "longest"),
    "half/random": ("half", "random"),
    "half/longest": ("half", "longest"),
}


def grid(quick: bool) -> list[Cell]:
    """Stealing variants x hot shares (four variants at one share when quick)."""
    variants = ["none", "one/random", "one/longest", "half/longest"] if quick else list(VARIANTS)
    shares = [0.6] if quick else [0.5, 0.7]
    seconds = 3.0 if quick else 10.0
    return [
        {"variant": v, "hot_share": share, "load": LOAD, "seconds": seconds}
        for share in shares
        for v in variants
    ]


def workload(cell: Cell, seed: int) -> Workload:
    """Poisson arrivals at the cell's load on four workers, exponential 10 ms services,
    ``hot_share`` of the tasks preferring worker 0."""
    rate = cell["load"] * WORKERS / MEAN_SERVICE
    n_tasks = max(200, int(rate * cell["seconds"]))
    tasks = Workload.poisson(rate, dists.Exponential(MEAN_SERVICE), n_tasks, seed=seed)
    return tasks.with_affinity(WORKERS, cell["hot_share"], seed=seed)


def policy(cell: Cell) -> WorkStealing:
    """Affinity placement with the cell's stealing amount and victim choice."""
    amount, victim = VARIANTS[cell["variant"]]
    return WorkStealing(placement="affinity", victim=victim, amount=amount)


def run_cell(cell: Cell, context: Context) -> list[Row]:
    """Measure the variant in the real pool, then predict it with the calibrated model."""
    tasks = workload(cell, context.seed)
    measured = real.run(tasks, policy(cell), WORKERS, seed=context.seed)
    predicted = sim.run(tasks, policy(cell), WORKERS, seed=context.seed, overhead=context.overhead)
    return pair_rows(predicted, measured)


def draw(results: pd.DataFrame, folder: Path) -> list[Path]:
    """Latency and steal counts, predicted against measured per variant; accuracy table."""
    summary = summarize(results)
    order = {name: k for k, name in enumerate(VARIANTS)}
    summary = summary.sort_values(
        ["hot_share", "variant"], key=lambda c: c.map(order) if c.name == "variant" else c
    )
    shares = summary["hot_share"].nunique()
    summary["label"] = summary["variant"] + (
        "\nhot " + summary["hot_share"].map("{:g}".format) if shares > 1 else ""
    )
    latency = summary[summary["metric"].isin(["mean_latency", "p95_latency"])].copy()
    latency[["predicted", "measured"]] *= 1e3
    share_text = ", ".join(f"{s:g}" for s in sorted(summary["hot_share"].unique()))
    workload_text = f"4 workers, load {LOAD}, exp. 10 ms service, hot share {share_text}"
    paths = [
        charts.paired_bars(
            latency,
            {"mean_latency": "mean latency (ms)", "p95_latency": "p95 latency (ms)"},
            folder / "latency.png",
            f"Work stealing, predicted vs measured latency ({workload_text})",
            log_y=True,
        ),
        charts.paired_bars(
            summary,
            {"stolen": "tasks stolen per run"},
            folder / "steals.png",
            "Steals, predicted vs measured",
        ),
        accuracy_table(summary, TARGETS, folder / "accuracy.csv"),
    ]
    return paths


EXPERIMENT = Experiment(
    name="work_stealing",
    description="work-stealing variants on an affinity-skewed workload: model vs real pool",
    grid=grid,
    run_cell=run_cell,
    charts=draw,
    needs_real=True,
)
