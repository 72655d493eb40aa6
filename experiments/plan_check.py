"""plan_check: record a real pool, fit it, plan it, and measure whether the plan holds.

Per mix of real tasks (:mod:`experiments.real_tasks`: HTTP to a local server, JSON,
SHA-256), a cell does what a user of :func:`pool.plan` does:

1. record: a ``ThreadedPool("fifo", 4, record=True)`` serves Poisson arrivals of real
   tasks (about half its capacity); its trace is all the model learns of the tasks,
   with the share of their CPU that holds the lock (from a solo profile: what a user
   knows of their code);
2. fit the trace (:func:`pool.fit`, on the calibrated machine) and plan FIFO pools of
   1-12 workers at load x1 and x1.5 for an SLO on p95 latency, set at ``SLO_FACTOR``
   times the fitted p95 service time (waiting for a worker, a core or the lock may add
   as much again);
3. check: fresh real tasks (new arrivals and server delays) at each load on the real pool
   at the recommended size and at one worker fewer (or, where the plan finds no size in
   range, at the largest); the p95 is compared with the plan's.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
import pandas as pd

import pool
import real
from experiments import plan_check_charts
from experiments.definition import Cell, Context, Experiment, Row
from experiments.real_tasks import MIXES, LocalServer, Mix, RealTask, performer, profile
from pool import Workload

SLO_FACTOR = 2.0
LOADS = (1.0, 1.5)
RECORD_WORKERS = 4
RECORD_LOAD = 0.5  # the recorded pool's utilisation, from the solo profile
PLAN_WORKERS = range(1, 13)
WARMUP_SHARE = 0.1
PLAN_TASKS = 5000  # tasks per planned draw: the plan's own p95 known to a few percent


def grid(quick: bool) -> list[Cell]:
    """Mixes; each phase (recording, every check) lasts about ``seconds``."""
    mixes = ("I/O-heavy",) if quick else ("I/O-heavy", "mixed")
    # A p95 of a few hundred tasks moves by 10-20% from run to run: full checks run
    # long enough (about 3,000 tasks) for the 15% comparison to measure the model.
    seconds = 3.0 if quick else 30.0
    return [{"mix": mix, "seconds": seconds, "reps": 3 if quick else 5} for mix in mixes]


def run_cell(cell: Cell, context: Context) -> list[Row]:
    """Record, fit, plan, then measure the recommended size and the one below it."""
    mix, seconds = MIXES[cell["mix"]], cell["seconds"]
    rng = np.random.default_rng(np.random.SeedSequence(context.seed))
    machine = dataclasses.replace(context.overhead, sleep_overshoot=0.0)
    with LocalServer() as server:
        solo = profile(server, mix, rng)
        computing = solo.lock_held + solo.lock_free
        gil_share = solo.lock_held / computing if computing > 0 else 1.0
        service = computing + solo.waiting + mix.delay
        rate = RECORD_LOAD * RECORD_WORKERS / service
        trace = _record(server, mix, rate, int(seconds * rate), rng)
        model = pool.fit(trace, gil_share=gil_share, overhead=machine)
        slo = SLO_FACTOR * float(
            np.quantile(np.concatenate([c.service for c in model.classes]), 0.95)
        )
        answer = pool.plan(
            model, {"p95_latency": slo}, PLAN_WORKERS, ("fifo",), LOADS, cell["reps"],
            n_tasks=max(PLAN_TASKS, len(trace)), overhead=machine, seed=context.seed,
        )  # fmt: skip
        rows = _fit_rows(model, trace, slo) + _plan_rows(answer)
        rows += [
            {"backend": "solo", "metric": f"solo_{name}", "value": value, "load": 0.0}
            for name, value in solo.as_dict().items()
        ]
        for load in LOADS:
            rows += _check(server, mix, model, answer, load, seconds, rng, context.seed)
    return rows


def _record(
    server: LocalServer, mix: Mix, rate: float, n_tasks: int, rng: np.random.Generator
) -> pd.DataFrame:
    """The trace of a recording pool serving ``n_tasks`` real tasks arriving at ``rate``."""
    delays = rng.exponential(mix.delay, n_tasks).tolist()
    arrival = np.cumsum(rng.exponential(1.0 / rate, n_tasks)).tolist()
    task = RealTask(server.port, mix)
    with real.ThreadedPool(
        "fifo", RECORD_WORKERS, record=True, thread_name_prefix="poolbench-record"
    ) as pool_:
        start = time.monotonic()
        futures = []
        for at, delay in zip(arrival, delays, strict=True):
            pause = start + at - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            futures.append(pool_.submit(task, delay))
        for future in futures:
            future.result()
    return pool_.trace()


def _fit_rows(model: pool.WorkloadModel, trace: pd.DataFrame, slo: float) -> list[Row]:
    wall = float((trace["ended"] - trace["started"]).mean())
    kept = trace[trace["submitted"] >= WARMUP_SHARE * trace["submitted"].max()]
    figures = {
        "slo_p95_latency": slo,
        "recorded_tasks": float(len(trace)),
        "recorded_rate": model.rate,
        "recorded_mean_wall": wall,
        "recorded_mean_cpu": float(trace["cpu_time"].mean()),
        "fitted_mean_service": model.mean_service,
    }
    rows: list[Row] = [
        {"backend": "fit", "metric": k, "value": v, "load": 0.0} for k, v in figures.items()
    ]
    # The recorded pool itself, at its size and today's load: the plan's first check.
    recorded_p95 = float(np.quantile(kept["ended"] - kept["submitted"], 0.95))
    rows.append(
        {"backend": "recorded", "metric": "p95_latency", "value": recorded_p95, "load": 1.0,
         "workers": RECORD_WORKERS}
    )  # fmt: skip
    return rows


def _plan_rows(answer: pool.Plan) -> list[Row]:
    """The plan's predicted p95 (mean, 95% bounds) at every size and load."""
    rows: list[Row] = []
    for cell in answer.table.itertuples():
        for metric in ("p95_latency", "p95_latency_low", "p95_latency_high"):
            rows.append(
                {"backend": "plan", "metric": metric, "value": getattr(cell, metric),
                 "load": cell.load_scale, "workers": cell.workers}
            )  # fmt: skip
    return rows


def _check(
    server: LocalServer,
    mix: Mix,
    model: pool.WorkloadModel,
    answer: pool.Plan,
    load: float,
    seconds: float,
    rng: np.random.Generator,
    seed: int,
) -> list[Row]:
    """Rows for the recommended size and the one below it at ``load``: predicted (the
    plan's mean and CI) and measured on fresh real tasks."""
    recommended = answer.recommendation.set_index("load_scale")["workers"]
    choice = recommended.get(load)
    table = answer.table[answer.table["load_scale"] == load].set_index("workers")
    if choice is None or pd.isna(choice):
        # "None within range" is an answer too: the largest pool must miss when measured.
        checked = [("largest", max(PLAN_WORKERS))]
        rows: list[Row] = [{"backend": "plan", "metric": "recommended", "value": np.nan,
                            "load": load}]  # fmt: skip
    else:
        checked = [("recommended", int(choice)), ("below", int(choice) - 1)]
        rows = [{"backend": "plan", "metric": "recommended", "value": float(choice), "load": load}]
    for role, workers in checked:
        if workers < 1:
            continue
        predicted = table.loc[workers]
        measured = _measure(server, mix, model, load, workers, seconds, rng, seed)
        tag = {"load": load, "role": role, "workers": workers}
        for metric in ("p95_latency", "mean_latency", "throughput"):
            rows += [
                {**tag, "backend": "predicted", "metric": metric, "value": predicted[metric]},
                {**tag, "backend": "predicted", "metric": f"{metric}_high",
                 "value": predicted[f"{metric}_high"]},
                {**tag, "backend": "predicted", "metric": f"{metric}_low",
                 "value": predicted[f"{metric}_low"]},
                {**tag, "backend": "measured", "metric": metric, "value": measured[metric]},
            ]  # fmt: skip
    return rows


def _measure(
    server: LocalServer,
    mix: Mix,
    model: pool.WorkloadModel,
    load: float,
    workers: int,
    seconds: float,
    rng: np.random.Generator,
    seed: int,
) -> dict[str, float]:
    """The real pool's metrics on fresh tasks arriving at ``load`` times the recorded rate."""
    n_tasks = max(40, int(seconds * load * model.rate))
    arrival = np.cumsum(rng.exponential(1.0 / (load * model.rate), n_tasks))
    delays = rng.exponential(mix.delay, n_tasks)
    replay = Workload(
        arrival, np.zeros(n_tasks), np.zeros(n_tasks, np.int64), np.zeros(n_tasks),
        np.full(n_tasks, -1),
    )  # fmt: skip
    task = RealTask(server.port, mix)
    result = real.run(replay, "fifo", workers, seed=seed, perform=performer(task, delays))
    return result.summary(arrival[0] + WARMUP_SHARE * float(arrival[-1]))


def draw(results: pd.DataFrame, folder: Path) -> list[Path]:
    """Predicted against measured p95 at each checked size, and the accuracy table."""
    return plan_check_charts.draw(results, folder)


EXPERIMENT = Experiment(
    name="plan_check",
    description="record a real pool, fit, plan a size for an SLO, then measure it",
    grid=grid,
    run_cell=run_cell,
    charts=draw,
    needs_real=True,
)
