"""Predicted against measured on worker processes: ``sim.run(backend="process")`` with
``real.calibrate(backend="process")`` against ``real.run(backend="process")``.

Run from the repository root::

    .venv/bin/python -m benchmarks.process_model                 # 3 rounds, ~3 min
    .venv/bin/python -m benchmarks.process_model --tasks 200 --rounds 1

Four workloads on 4 worker processes (FIFO), each replayed for real and predicted by the
model calibrated once at the start, the seed changing per round:

* ``cpu-overload``: Poisson arrivals at 300/s of 10 ms (mean) pure-Python computing:
  more than the machine's cores can serve, so throughput is the cores' (target: the
  prediction within 5%).
* ``cpu-mixed``: 150/s, 10 ms, 60% computing and 40% waiting.
* ``kills``: 100/s of 20 ms (half the workers' capacity), 20% computing, a random
  worker SIGKILLed about every 250 ms and one SIGSTOPped for 0.5 s about every second
  (targets: throughput within 3%, detection and recovery time within 15%).
* ``kills-busy``: the same at 150/s (three quarters of the capacity before the faults
  take their share), where queueing magnifies every difference; the same targets.

Per case the report gives the medians over rounds of the measured and predicted figures
and of the relative error (predicted / measured - 1). Figures go to
``benchmarks/results/process_model.json``; ``--check`` exits 1 if a target fails.
"""

from __future__ import annotations

import statistics
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from tqdm import tqdm

import real
import sim
from benchmarks._common import OneLineParser, int_at_least, load_average, machine, write_report
from pool import FaultPlan, Recovery, Workload, dists

PROG = "python -m benchmarks.process_model"
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "process_model.json"
WORKERS = 4
FIGURES = ("throughput", "mean_latency", "p95_latency", "detection_time", "recovery_time")
#: Case -> figure -> the largest relative error allowed.
TARGETS = {
    "cpu-overload": {"throughput": 0.05},
    "kills": {"throughput": 0.03, "detection_time": 0.15, "recovery_time": 0.15},
    "kills-busy": {"throughput": 0.03, "detection_time": 0.15, "recovery_time": 0.15},
}
CASES = ("cpu-overload", "cpu-mixed", "kills", "kills-busy")


def case(name: str, n_tasks: int, seed: int) -> tuple[Workload, FaultPlan]:
    """The workload and faults of case ``name``."""
    rate, mean, computing = {
        "cpu-overload": (300.0, 0.010, 1.0),
        "cpu-mixed": (150.0, 0.010, 0.6),
        "kills": (100.0, 0.020, 0.2),
        "kills-busy": (150.0, 0.020, 0.2),
    }[name]
    workload = Workload.poisson(
        rate, dists.Exponential(mean), n_tasks, seed=seed, cpu_fraction=computing
    )
    if not name.startswith("kills"):
        return workload, FaultPlan()
    return workload, FaultPlan(crash_mtbf=1.0, hang_mtbf=4.0, hang_duration=0.5)


def one_round(n_tasks: int, seed: int, overhead: Any, bar: tqdm[Any]) -> dict[str, Any]:
    """Measured and predicted figures of every case, for one seed."""
    rows: dict[str, Any] = {}
    for name in CASES:
        workload, faults = case(name, n_tasks, seed)
        options: dict[str, Any] = {"faults": faults, "recovery": Recovery(), "seed": seed}
        measured = real.run(workload, "fifo", WORKERS, backend="process", **options).summary()
        predicted = sim.run(
            workload, "fifo", WORKERS, backend="process", overhead=overhead, **options
        ).summary()
        rows[name] = {
            figure: {"measured": measured.get(figure), "predicted": predicted.get(figure)}
            for figure in FIGURES
        }
        bar.update()
    return rows


def _median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None and v == v]  # drop None and NaN
    return statistics.median(present) if present else None


def summarise(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Per case and figure: medians of measured, predicted and relative error."""
    table: dict[str, Any] = {}
    for name in rounds[0]:
        table[name] = {}
        for figure in FIGURES:
            pairs = [r[name][figure] for r in rounds]
            errors = [
                p["predicted"] / p["measured"] - 1.0
                for p in pairs
                if p["measured"] and p["predicted"] is not None
            ]
            table[name][figure] = {
                "measured": _median([p["measured"] for p in pairs]),
                "predicted": _median([p["predicted"] for p in pairs]),
                "relative_error": _median(errors),  # type: ignore[arg-type]
            }
    return table


def main(argv: list[str] | None = None) -> int:
    """Run the rounds, print the table, write the JSON (exit 1 with --check if it fails)."""
    parser = OneLineParser(prog=PROG, description=__doc__)
    parser.add_argument("--tasks", type=int_at_least(20), default=1500)
    parser.add_argument("--rounds", type=int_at_least(1), default=3)
    parser.add_argument("--out", default=str(DEFAULT_OUT))
    parser.add_argument("--check", action="store_true", help="exit 1 if a target fails")
    args = parser.parse_args(argv)
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    load = load_average()
    overhead = real.calibrate(backend="process")
    with tqdm(total=args.rounds * len(CASES), desc="process model", disable=None) as bar:
        rounds = [one_round(args.tasks, seed, overhead, bar) for seed in range(args.rounds)]
    table = summarise(rounds)
    verdicts = {
        f"{name}/{figure}": (error := table[name][figure]["relative_error"]) is not None
        and abs(error) <= limit
        for name, limits in TARGETS.items()
        for figure, limit in limits.items()
    }
    report = {
        "benchmark": "process_model",
        "command": f"{PROG} " + " ".join(argv if argv is not None else sys.argv[1:]),
        "config": {"tasks": args.tasks, "rounds": args.rounds, "workers": WORKERS},
        "machine": machine(started, load),
        "calibration": overhead.as_dict(),
        "table": table,
        "targets": TARGETS,
        "verdicts": verdicts,
        "pass": all(verdicts.values()),
        "raw_rounds": rounds,
    }
    out = write_report(args.out, report)
    for name, figures in table.items():
        for figure, row in figures.items():
            if row["measured"] is None:
                continue
            error = row["relative_error"]
            shown = "n/a" if error is None else f"{error:+.1%}"
            print(
                f"{name:<13}{figure:<15}measured {row['measured']:>10.4f}"
                f"  predicted {row['predicted'] or float('nan'):>10.4f}  error {shown}"
            )
    for target, passed in verdicts.items():
        print(f"{target}: {'PASS' if passed else 'FAIL'}")
    print(f"wrote {out}")
    return 1 if args.check and not report["pass"] else 0


if __name__ == "__main__":
    sys.exit(main())
