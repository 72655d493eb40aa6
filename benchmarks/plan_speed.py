"""How long the planner takes on a 20,000-task trace: the whole CLI, fit to chart.

Run from the repository root::

    .venv/bin/python -m benchmarks.plan_speed            # --jobs 2, then --jobs 1
    .venv/bin/python -m benchmarks.plan_speed --jobs 2

The trace is made by the model (so it needs no real run): a pool of 4 workers serving
Poisson arrivals at 60% of its capacity, two priority classes, lognormal services of
10 ms mean (cv 1). The plan is the issue's: ``--slo p95_latency=0.05``, workers 1-32,
policies FIFO, priority, work stealing and autoscaling, loads x1, x1.5, x2, 5 draws
per cell of as many tasks as the trace. Wall time of ``python -m experiments plan``
(in this process, without its interpreter's start) goes to
``benchmarks/results/plan_speed.json``, with how many cells were simulated, reused or
found unstable.
"""

from __future__ import annotations

import json
import platform
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

import sim
from benchmarks._common import OneLineParser, git, int_at_least, load_average
from experiments.__main__ import main as experiments_main
from pool import Workload, dists

N_TASKS = 20_000


def make_trace(path: Path) -> Path:
    """A 20,000-task trace of a 4-worker FIFO pool, as the model records it."""
    workload = Workload.poisson(
        240.0, dists.LogNormal(0.010, 1.0), N_TASKS, priorities={0: 0.2, 1: 0.8}, seed=1
    )
    tasks = sim.run(workload, "fifo", 4).tasks
    frame = pd.DataFrame(
        {
            "task_id": tasks["task_id"],
            "submitted": tasks["arrival"],
            "started": tasks["start"],
            "ended": tasks["end"],
            "priority": tasks["priority"],
            "status": "completed",
            "cpu_time": 0.0,
            "pool_workers": 4,
        }
    )
    frame.to_parquet(path, index=False)
    return path


def main(argv: list[str] | None = None) -> int:
    """Time the plan at each ``--jobs``; write the figures."""
    parser = OneLineParser(prog="python -m benchmarks.plan_speed", description=__doc__)
    parser.add_argument("--jobs", type=int_at_least(1), action="append", help="processes")
    parser.add_argument("--out", default="benchmarks/results/plan_speed.json")
    args = parser.parse_args(argv)
    runs = []
    with tempfile.TemporaryDirectory() as scratch:
        trace = make_trace(Path(scratch) / "trace.parquet")
        for jobs in args.jobs or [2, 1]:
            out = Path(scratch) / f"plan-{jobs}"
            begin = time.perf_counter()
            experiments_main(
                ["plan", "--trace", str(trace), "--slo", "p95_latency=0.05", "--jobs", str(jobs),
                 "--out", str(out), "--no-progress"]
            )  # fmt: skip
            seconds = time.perf_counter() - begin
            basis = pd.read_csv(out / "plan.csv")["basis"].value_counts().to_dict()
            runs.append({"jobs": jobs, "seconds": seconds, "cells_by_basis": basis})
            print(f"--jobs {jobs}: {seconds:.1f} s ({basis})", flush=True)
    document = {
        "benchmark": "plan_speed",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "git": git("rev-parse", "--short", "HEAD"),
        "python": platform.python_version(),
        "load_average": load_average(),
        "trace_tasks": N_TASKS,
        "runs": runs,
    }
    Path(args.out).write_text(json.dumps(document, indent=2) + "\n")
    print(f"figures in {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
