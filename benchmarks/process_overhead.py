"""Process-pool overhead: ``real.ProcessPool`` against ``concurrent.futures.ProcessPoolExecutor``.

Run from the repository root::

    .venv/bin/python -m benchmarks.process_overhead                 # 10,000 tasks, 7 rounds
    .venv/bin/python -m benchmarks.process_overhead --tasks 500 --rounds 2

Both pools get 4 worker processes from the same fork server (ProcessPool's default start
method, preloading this module and ``real.child`` as ProcessPool's default does) and run
no-op tasks (``fn`` returns its argument). Per round and contender: build the pool, run
200 tasks to start its processes, then time ``--tasks`` submits and the wait for every
result (the steady state), then shut down (timed apart, with the start-up, as end to end).
Rounds alternate the contenders. The table gives the median tasks/s of each phase and the
ratio of the medians; the target is ProcessPool >= 1.0x the executor in the steady state.
Figures go to ``benchmarks/results/process_overhead.json``.
"""

from __future__ import annotations

import multiprocessing
import statistics
import sys
import time
from concurrent.futures import Executor, ProcessPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from tqdm import tqdm

import real
from benchmarks._common import OneLineParser, int_at_least, load_average, machine, write_report

PROG = "python -m benchmarks.process_overhead"
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "process_overhead.json"
WORKERS = 4
WARMUP_TASKS = 200
CONTENDERS = ("executor", "process-pool")
TARGET_RATIO = 1.0


def echo(value: int) -> int:
    """A no-op task."""
    return value


def make(name: str) -> Executor:
    """A fresh pool of ``WORKERS`` processes for contender ``name``."""
    context = multiprocessing.get_context("forkserver")
    if name == "executor":
        return ProcessPoolExecutor(WORKERS, mp_context=context)
    return real.ProcessPool("fifo", WORKERS, mp_context="forkserver")


def one_run(name: str, n_tasks: int) -> dict[str, float]:
    """Seconds of each phase of one run."""
    began = time.perf_counter()
    pool = make(name)
    for future in [pool.submit(echo, i) for i in range(WARMUP_TASKS)]:
        future.result()
    warm = time.perf_counter()
    futures = [pool.submit(echo, i) for i in range(n_tasks)]
    if [f.result() for f in futures] != list(range(n_tasks)):
        raise RuntimeError(f"{name}: wrong results")
    done = time.perf_counter()
    pool.shutdown(wait=True)
    ended = time.perf_counter()
    return {"start_s": warm - began, "steady_s": done - warm, "end_to_end_s": ended - began}


def main(argv: list[str] | None = None) -> int:
    """Run the rounds, print the table, write the JSON (exit 1 with --check if it fails)."""
    parser = OneLineParser(prog=PROG, description=__doc__)
    parser.add_argument("--tasks", type=int_at_least(10), default=10_000)
    parser.add_argument("--rounds", type=int_at_least(1), default=7)
    parser.add_argument("--out", default=str(DEFAULT_OUT))
    parser.add_argument("--check", action="store_true", help="exit 1 if the target fails")
    args = parser.parse_args(argv)
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    load = load_average()
    # One fork server serves both pools: preload what ProcessPool's default preloads, so
    # neither pays the imports of this module (and numpy, pandas) in each new child.
    multiprocessing.get_context("forkserver").set_forkserver_preload(["__main__", "real.child"])
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in CONTENDERS}
    with tqdm(total=args.rounds * len(CONTENDERS), desc="process overhead", disable=None) as bar:
        for _ in range(args.rounds):
            for name in CONTENDERS:
                runs[name].append(one_run(name, args.tasks))
                bar.update()
    table: dict[str, Any] = {}
    for name in CONTENDERS:
        table[name] = {
            "median_steady_tasks_per_s": statistics.median(
                args.tasks / run["steady_s"] for run in runs[name]
            ),
            "median_start_s": statistics.median(run["start_s"] for run in runs[name]),
            "median_end_to_end_s": statistics.median(run["end_to_end_s"] for run in runs[name]),
        }
    steady = {name: table[name]["median_steady_tasks_per_s"] for name in CONTENDERS}
    ratio = steady["process-pool"] / steady["executor"]
    report = {
        "benchmark": "process_overhead",
        "command": f"{PROG} " + " ".join(argv if argv is not None else sys.argv[1:]),
        "config": {"tasks": args.tasks, "rounds": args.rounds, "workers": WORKERS},
        "machine": machine(started, load),
        "table": table,
        "ratio_steady_to_executor": ratio,
        "target_ratio": TARGET_RATIO,
        "pass": ratio >= TARGET_RATIO,
        "raw_runs": runs,
    }
    out = write_report(args.out, report)
    for name in CONTENDERS:
        row = table[name]
        print(
            f"{name:<14}{row['median_steady_tasks_per_s']:>10,.0f} tasks/s steady"
            f"{row['median_start_s']:>8.2f} s start{row['median_end_to_end_s']:>8.2f} s end to end"
        )
    verdict = "PASS" if report["pass"] else "FAIL"
    print(f"process-pool vs executor, steady state: {ratio:.2f}x ({verdict}, target >= 1.0x)")
    print(f"wrote {out}")
    return 1 if args.check and not report["pass"] else 0


if __name__ == "__main__":
    sys.exit(main())
