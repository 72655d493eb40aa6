"""autoscaling: the autoscaler's decisions and their effect, predicted against measured.

Each cell replays a piecewise-constant Poisson load (a step low -> high -> low, or a
short burst) with 10 ms exponential services on a pool that starts with one worker and
scales between 1 and 8, in the real pool and in the calibrated model. The rows hold the
summary, the scale events (kind and time) and time series of the worker count and of
the latency of tasks by arrival time.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

import real
import sim
from experiments import timelines
from experiments.accuracy import pair_rows
from experiments.definition import Cell, Context, Experiment, Row
from pool import Autoscaling, Workload, dists

MEAN_SERVICE = 0.010
DECISION_INTERVAL = 0.25
SCALE_EVENTS = ("scale_up", "scale_down")
#: The real pool's supervisor acts a little after its tick (under a millisecond on an idle
#: machine), so events one decision interval apart are matched with this much slack.
TICK_SLACK = 0.01
WORKERS_BIN = 0.05
LATENCY_BIN = 0.1


def policy() -> Autoscaling:
    """The autoscaler under test (a fresh object per run): FIFO inside, 1 to 8 workers."""
    return Autoscaling(
        min_workers=1,
        max_workers=8,
        decision_interval=DECISION_INTERVAL,
        cooldown=0.5,
        startup_delay=0.05,
    )


def grid(quick: bool) -> list[Cell]:
    """Load phases as [duration s, arrival rate tasks/s]: the step alone when quick."""
    if quick:
        return [{"scenario": "step", "phases": [[1.5, 80.0], [1.5, 400.0], [2.0, 80.0]]}]
    return [
        {"scenario": "step", "phases": [[2.5, 80.0], [3.0, 400.0], [2.5, 80.0]]},
        {"scenario": "burst", "phases": [[2.0, 80.0], [0.5, 600.0], [3.0, 80.0]]},
    ]


def workload(cell: Cell, seed: int) -> Workload:
    """The cell's phases of Poisson arrivals with 10 ms exponential services."""
    phases = [(float(duration), float(rate)) for duration, rate in cell["phases"]]
    return Workload.steps(phases, dists.Exponential(MEAN_SERVICE), seed=seed)


def run_cell(cell: Cell, context: Context) -> list[Row]:
    """Measure the cell in the real pool, then predict it with the calibrated model."""
    tasks = workload(cell, context.seed)
    measured = real.run(tasks, policy(), 1, seed=context.seed)
    predicted = sim.run(tasks, policy(), 1, seed=context.seed, overhead=context.overhead)
    rows = pair_rows(predicted, measured)
    for result, backend in ((predicted, "sim"), (measured, "real")):
        events = timelines.event_rows(result, backend, SCALE_EVENTS)
        events_of = {kind: [r for r in events if r["metric"] == kind] for kind in SCALE_EVENTS}
        rows += [
            {"backend": backend, "metric": f"{kind}s", "value": float(len(events_of[kind]))}
            for kind in SCALE_EVENTS
        ]
        rows += events
        rows += timelines.series_rows(result, backend, ("workers",), WORKERS_BIN)
        rows += timelines.series_rows(result, backend, ("latency",), LATENCY_BIN)
    return rows


def draw(results: pd.DataFrame, folder: Path) -> list[Path]:
    """Worker count and latency over time, and the scale events paired in a CSV."""
    panels = [
        (f"{scenario} ({_phases(part)})", part)
        for scenario, part in results.groupby("scenario", sort=False)
    ]
    paths = [
        timelines.series_grid(
            panels,
            {
                "workers": "serving workers",
                "latency": "mean latency by arrival (s)",
            },
            folder / "scaling.png",
            "Autoscaling 1-8 workers: predicted (dashed) and measured (solid)",
        ),
        timelines.nearest_events(
            results,
            SCALE_EVENTS,
            ["scenario"],
            DECISION_INTERVAL + TICK_SLACK,
            folder / "scale_events.csv",
        ),
    ]
    return paths


def _phases(part: pd.DataFrame) -> str:
    phases = json.loads(str(part["phases"].iloc[0]))
    return " -> ".join(f"{rate:g}/s for {duration:g} s" for duration, rate in phases)


EXPERIMENT = Experiment(
    name="autoscaling",
    description="autoscaler under a load step and a burst: scale events, workers, latency",
    grid=grid,
    run_cell=run_cell,
    charts=draw,
    needs_real=True,
)
