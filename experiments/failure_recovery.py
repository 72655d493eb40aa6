"""failure_recovery: crashes, hangs and failing tasks, predicted against measured.

Each cell replays one Poisson workload (4 workers, load 0.7, 10 ms exponential service)
in the real pool with one fault scenario injected, and simulates the same workload with
the same faults and the calibrated overhead. The rows hold the summary (detection and
recovery time, retries, lost and duplicate tasks), the fault, detection and restart
events, and time series of completions and queue length in 0.1 s bins.

Each cell runs on a pool of threads or of worker processes (``pool``). On processes the
faults are real signals (a crash is SIGKILL of the worker process, a hang SIGSTOP then
SIGCONT) and the model is that of processes (``sim.run(backend="process")``, calibrated
by ``real.calibrate(backend="process")``): a killed process is seen at once through its
sentinel instead of a heartbeat later, and a hung one is killed, so it returns no late
result.

The ``pool_restart`` scenario kills the whole program that holds the pool: its pool keeps
a journal, and ``real.run(..., journal=True)`` runs it as a program of its own, SIGKILLed
(its worker processes with it) and started again after ``DOWNTIME`` s, its pool resuming
from the journal; the model (``sim.run(..., journal=True)``) adds the calibrated
program start and the journal's costs (``real.calibrate(journal=True)``).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

import real
import sim
from experiments import charts, storage, timelines
from experiments.accuracy import accuracy_table, pair_rows
from experiments.definition import Cell, Context, Experiment, Row, summarize
from pool import FaultPlan, Recovery, Workload, dists

MEAN_SERVICE = 0.010
LOAD = 0.7
WORKERS = 4
#: Off the heartbeat ticks (multiples of 0.05 s), so detection is not decided by a tie.
FAULT_TIME = 2.013
HANG_SECONDS = 0.5
#: From the program's death until it is started again (a supervisor's restart delay).
DOWNTIME = 0.5
RECOVERY = Recovery(
    heartbeat_interval=0.05, heartbeat_timeout=0.2, restart_delay=0.1, max_attempts=3
)
BIN = 0.1
EVENTS = ("crash", "hang", "detected", "restart", "pool_crash", "pool_restart")
TARGETS = {"recovery_time": 0.15}


def faults(scenario: str) -> FaultPlan:
    """The FaultPlan of a scenario: a crash of worker 1, a hang of worker 2, failing task
    attempts, all three (the hang two seconds after the crash), or the death of the
    pool's whole program (``pool_restart``)."""
    plans = {
        "crash": FaultPlan(crashes=[(FAULT_TIME, 1)]),
        "hang": FaultPlan(hangs=[(FAULT_TIME, 2, HANG_SECONDS)]),
        "task_failure": FaultPlan(task_failure_prob=0.05),
        "combined": FaultPlan(
            crashes=[(FAULT_TIME, 1)],
            hangs=[(FAULT_TIME + 2.0, 2, HANG_SECONDS)],
            task_failure_prob=0.05,
        ),
        "pool_restart": FaultPlan(pool_restarts=[(FAULT_TIME, DOWNTIME)]),
    }
    return plans[scenario]


POOLS = ("thread", "process")


def grid(quick: bool) -> list[Cell]:
    """Pools x scenarios x policies: the crash under fifo and work-stealing and a pool
    restart under fifo when quick. A pool restart's backlog takes seconds to work off,
    so its runs are longer."""
    if quick:
        return [
            {"pool": pool, "scenario": "crash", "policy": policy, "seconds": 3.5}
            for pool in POOLS
            for policy in ("fifo", "work-stealing")
        ] + [
            {"pool": pool, "scenario": "pool_restart", "policy": "fifo", "seconds": RESTART_SECONDS}
            for pool in POOLS
        ]
    return [
        {
            "pool": pool,
            "scenario": scenario,
            "policy": policy,
            "seconds": RESTART_SECONDS if scenario == "pool_restart" else 7.0,
        }
        for pool in POOLS
        for scenario in ("crash", "hang", "task_failure", "combined", "pool_restart")
        for policy in ("fifo", "priority", "work-stealing")
    ]


#: Seconds of arrivals in a pool restart's runs.
RESTART_SECONDS = 12.0


def workload(cell: Cell, seed: int) -> Workload:
    """Poisson arrivals at load 0.7 on 4 workers, two priority classes, 10 ms service."""
    rate = LOAD * WORKERS / MEAN_SERVICE
    return Workload.poisson(
        rate,
        dists.Exponential(MEAN_SERVICE),
        int(rate * cell["seconds"]),
        priorities={0: 0.3, 1: 0.7},
        seed=seed,
    )


def run_cell(cell: Cell, context: Context) -> list[Row]:
    """Measure the scenario in the real pool, then predict it with the calibrated model."""
    tasks, plan = workload(cell, context.seed), faults(cell["scenario"])
    pool = cell.get("pool", "thread")
    options = {
        "faults": plan,
        "recovery": RECOVERY,
        "seed": context.seed,
        "backend": pool,
        "journal": bool(plan.pool_restarts),
    }
    measured = real.run(tasks, cell["policy"], WORKERS, **options)
    overhead = context.overhead if pool == "thread" else context.process_overhead
    predicted = sim.run(tasks, cell["policy"], WORKERS, overhead=overhead, **options)
    rows = pair_rows(predicted, measured)
    for result, backend in ((predicted, "sim"), (measured, "real")):
        rows += timelines.series_rows(result, backend, ("completions", "queued"), BIN)
        rows += timelines.event_rows(result, backend, EVENTS)
    return rows


def draw(results: pd.DataFrame, folder: Path) -> list[Path]:
    """Completions and queue length over time per scenario, the recovery figures as bars
    and CSV, and the accuracy table against the recovery-time target."""
    paths = []
    if "pool" not in results:  # results of a run before the pool axis
        results = results.assign(pool="thread")
    for scenario, part in results.groupby("scenario", sort=False):
        panels = [
            (f"{policy}, {pool}s", cell)
            for (pool, policy), cell in part.groupby(["pool", "policy"], sort=True)
        ]
        paths.append(
            timelines.series_grid(
                panels,
                {
                    "completions": f"completions per {BIN:g} s",
                    "queued": "queued tasks (bin mean)",
                },
                folder / f"timeline_{scenario}.png",
                f"{scenario}: predicted (dashed) and measured (solid)",
                markers={
                    "crash": "red",
                    "hang": "purple",
                    "detected": "grey",
                    "restart": "green",
                    "pool_crash": "black",
                    "pool_restart": "blue",
                },
            )
        )
    summary = summarize(results[results.filter(["time", "event"]).isna().all(axis=1)])
    figures = summary[summary["metric"].isin(RECOVERY_METRICS)].copy()
    figures["label"] = figures["scenario"] + "\n" + figures["policy"] + ", " + figures["pool"]
    paths.append(
        charts.paired_bars(
            figures,
            RECOVERY_METRICS,
            folder / "recovery.png",
            "Recovery: predicted (hatched) and measured (solid), means over replications",
        )
    )
    table = figures[["pool", "scenario", "policy", "metric", "predicted", "measured", "rel_error"]]
    storage.write_csv(table, folder / "recovery.csv")
    paths.append(folder / "recovery.csv")
    paths.append(accuracy_table(summary, TARGETS, folder / "accuracy.csv"))
    return paths


RECOVERY_METRICS = {
    "detection_time": "detection time (s)",
    "recovery_time": "recovery time (s)",
    "retried": "retried attempts",
    "lost": "lost tasks (must be 0)",
    "duplicates": "discarded late results",
}


EXPERIMENT = Experiment(
    name="failure_recovery",
    description="crashes, hangs, failing tasks: detection, recovery, retries, predicted vs real",
    grid=grid,
    run_cell=run_cell,
    charts=draw,
    needs_real=True,
    needs_processes=True,
    needs_journal=True,
)
