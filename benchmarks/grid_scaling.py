"""Grid scaling: one 200-cell simulation grid serially, with ``--jobs 2`` and on Dask.

Run from the repository root (needs the optional extra: ``pip install -e '.[dask]'``)::

    .venv/bin/python -m benchmarks.grid_scaling                # full size: 200 cells, 5 rounds
    .venv/bin/python -m benchmarks.grid_scaling --tasks 2000 --rounds 1 --no-json   # smoke run

The grid is the ``theory`` experiment's kind of cell, sized so that one cell is a fraction
of a second of simulation: 5 queues (M/M/1, M/M/4, M/D/1, M/G/1, priority M/M/4) x 40 loads
(0.300, 0.315, ..., 0.885), one replication, each cell one simulation of ``--tasks`` tasks
(default 25,000). Every contender runs the whole grid into a fresh folder through
``experiments.execution.run_cells``, the code path of ``python -m experiments run``:

* ``serial``: ``jobs=1``, one cell after another in this process;
* ``jobs``: ``jobs=--workers`` (default 2), a ``ProcessPoolExecutor``;
* ``dask``: a ``LocalCluster`` of ``--workers`` processes of one thread each, started for
  the round and closed after it (``connect_dask("local", workers)``, passed to
  ``run_cells`` as ``dask=``); cells go out in groups of about a second
  (``experiments.batching``).

Timed: the grid (``run_cells`` alone: submitting, running, writing every cell's file),
and for Dask also end to end (starting the cluster, the grid, closing it). CPU seconds
(user + system, this process and its exited children, so the pool's and the cluster's
workers; for Dask including the cluster's start and close) show what the parallel
backends cost on top of the work itself. Rounds rotate
the order of the contenders. Each round checks that the three backends wrote the same
cell files, byte for byte. The table reports each contender's median grid time and its
speedup (serial median / its median); the target is 1.7x on 2 cores. The figures go to
``benchmarks/results/grid_scaling.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from benchmarks._common import OneLineParser as _Parser
from benchmarks._common import cpu_model as _cpu_model
from benchmarks._common import int_at_least as _int_at_least
from benchmarks._common import load_average as _load_average
from experiments import dask_backend, execution, storage, theory
from experiments.definition import Cell, Context, cell_seed

PROG = "python -m benchmarks.grid_scaling"
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "grid_scaling.json"
DEFAULT_TASKS = 25_000
DEFAULT_ROUNDS = 5
DEFAULT_WORKERS = 2
LOADS = [round(0.300 + 0.015 * i, 3) for i in range(40)]
CONTENDERS = ("serial", "jobs", "dask")
SPEEDUP_TARGET = 1.7

Json = dict[str, Any]


def grid(tasks: int) -> list[Cell]:
    """The 200 cells: every queue of the theory experiment at 40 loads."""
    return [
        {"queue": queue, "load": load, "tasks": tasks, "runs": 1}
        for queue in theory.QUEUES
        for load in LOADS
    ]


def run_grid(
    contender: str, cells: list[Cell], seed: int, workers: int, folder: Path, version: str
) -> Json:
    """Run the grid once into ``folder``; the seconds it took (and, for Dask, end to end)."""
    tasks = [(cell, Context(cell_seed(seed, cell, 0), 0, False)) for cell in cells]
    experiment = theory.EXPERIMENT
    cpu = _cpu_seconds()
    if contender != "dask":
        jobs = 1 if contender == "serial" else workers
        began = time.perf_counter()
        execution.run_cells(experiment, folder, tasks, version, jobs, progress=False)
        return {"grid_s": time.perf_counter() - began, "cpu_s": _cpu_seconds() - cpu}
    began = time.perf_counter()
    backend = dask_backend.connect_dask("local", workers)
    started = time.perf_counter()
    with backend:
        execution.run_cells(experiment, folder, tasks, version, 1, progress=False, dask=backend)
        ran = time.perf_counter()
    closed = time.perf_counter()
    return {
        "grid_s": ran - started,
        "start_s": started - began,
        "close_s": closed - ran,
        "end_to_end_s": closed - began,
        "cpu_s": _cpu_seconds() - cpu,
    }


def _cpu_seconds() -> float:
    """User + system CPU of this process and of its finished (reaped) children: the pool's
    and the cluster's worker processes count once they have exited."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


def cell_bytes(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted((folder / "cells").glob("*"))}


def run_rounds(cells: list[Cell], rounds: int, seed: int, workers: int) -> Json:
    """Every contender once per round, in rotated order; checks the files agree."""
    times: dict[str, list[Json]] = {name: [] for name in CONTENDERS}
    identical: list[bool] = []
    version = storage.code_version()  # once: cell file names carry it
    for index in range(rounds):
        order = CONTENDERS[index % 3 :] + CONTENDERS[: index % 3]
        with tempfile.TemporaryDirectory(prefix="grid_scaling-") as scratch:
            files = {}
            for name in order:
                folder = Path(scratch) / name
                figures = run_grid(name, cells, seed, workers, folder, version)
                times[name].append(figures)
                files[name] = cell_bytes(folder)
                print(
                    f"round {index + 1}/{rounds} {name:6s} grid {figures['grid_s']:6.2f} s"
                    + (f", end to end {figures['end_to_end_s']:6.2f} s" if name == "dask" else ""),
                    flush=True,
                )
            if len(files["serial"]) != len(cells):
                raise RuntimeError(f"serial wrote {len(files['serial'])} of {len(cells)} cells")
            same = all(files[name] == files["serial"] for name in CONTENDERS)
            if not same:
                raise RuntimeError(f"round {index + 1}: the backends wrote different cell files")
            identical.append(same)
    return {"times": times, "identical": identical}


def summarise(raw: Json, workers: int) -> Json:
    """Median grid seconds per contender and its speedup over the serial median."""
    times = raw["times"]
    serial = statistics.median(t["grid_s"] for t in times["serial"])
    speed: Json = {}
    for name in CONTENDERS:
        grid_s = [t["grid_s"] for t in times[name]]
        median = statistics.median(grid_s)
        entry: Json = {
            "median_grid_s": median,
            "median_cpu_s": statistics.median(t["cpu_s"] for t in times[name]),
            "grid_s": grid_s,
            "speedup": serial / median,
            "paired_speedups": [
                s["grid_s"] / t["grid_s"] for s, t in zip(times["serial"], times[name], strict=True)
            ],
        }
        if name == "dask":
            end_to_end = statistics.median(t["end_to_end_s"] for t in times[name])
            entry |= {
                "median_end_to_end_s": end_to_end,
                "speedup_end_to_end": serial / end_to_end,
                "median_start_s": statistics.median(t["start_s"] for t in times[name]),
                "median_close_s": statistics.median(t["close_s"] for t in times[name]),
            }
        if name != "serial":
            entry["target"] = SPEEDUP_TARGET
            entry["pass"] = entry["speedup"] >= SPEEDUP_TARGET
        speed[name] = entry
    speed["workers"] = workers
    return speed


def machine() -> Json:
    """Where and with what the figures were measured."""
    versions: dict[str, str | None] = {}
    for package in ("numpy", "pandas", "simpy", "dask", "distributed"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "cpu_count": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "packages": versions,
        "git_sha": storage.git_sha(),
        "code_version": storage.code_version(),
        "load_average_at_start": _load_average(),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def print_report(report: Json) -> None:
    speed = report["speed"]
    print()
    print(
        f"{'contender':28s} {'median grid s':>13s} {'CPU s':>7s} {'speedup':>8s} "
        f"{'target':>7s}  verdict"
    )
    labels = {
        "serial": "serial (jobs=1)",
        "jobs": f"--jobs {speed['workers']} (processes)",
        "dask": f"Dask LocalCluster, {speed['workers']} workers",
    }
    for name in CONTENDERS:
        entry = speed[name]
        target = f"{entry['target']:.1f}x" if "target" in entry else "-"
        verdict = ("PASS" if entry["pass"] else "FAIL") if "pass" in entry else "-"
        print(
            f"{labels[name]:28s} {entry['median_grid_s']:13.2f} {entry['median_cpu_s']:7.1f} "
            f"{entry['speedup']:7.2f}x "
            f"{target:>7s}  {verdict}"
        )
    dask = speed["dask"]
    print(
        f"Dask end to end (cluster start {dask['median_start_s']:.2f} s + grid + close "
        f"{dask['median_close_s']:.2f} s): {dask['median_end_to_end_s']:.2f} s, "
        f"{dask['speedup_end_to_end']:.2f}x"
    )
    print(f"identical cell files in every round: {all(report['checks']['identical'])}")


# -- command line --------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    parser = _Parser(prog=PROG, description="Grid scaling: serial, --jobs and Dask.")
    parser.add_argument(
        "--tasks",
        type=_int_at_least(100),
        default=DEFAULT_TASKS,
        help=f"tasks simulated per cell (default {DEFAULT_TASKS:,})",
    )
    parser.add_argument(
        "--rounds",
        type=_int_at_least(1),
        default=DEFAULT_ROUNDS,
        help=f"rounds of all three contenders (default {DEFAULT_ROUNDS})",
    )
    parser.add_argument(
        "--workers",
        type=_int_at_least(2),
        default=DEFAULT_WORKERS,
        help=f"processes for --jobs and Dask workers (default {DEFAULT_WORKERS})",
    )
    parser.add_argument("--seed", type=_int_at_least(0), default=1, help="base seed")
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        help="JSON file for the figures (default %(default)s)",
    )
    parser.add_argument("--no-json", action="store_true", help="do not write the JSON file")
    parser.add_argument("--check", action="store_true", help="exit 1 if a target fails")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; return the exit code (2 for bad input, 1 for a failed run)."""
    args = parse_args(argv)
    if not args.no_json:
        try:
            args.out.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            print(f"{PROG}: error: --out: {error}", file=sys.stderr)
            return 2
        if args.out.is_dir():
            print(f"{PROG}: error: --out {str(args.out)!r} is a directory", file=sys.stderr)
            return 2
    try:
        import distributed  # noqa: F401
    except ImportError:
        print(f"{PROG}: error: needs Dask: {dask_backend.INSTALL_DASK}", file=sys.stderr)
        return 2
    info = machine()
    cells = grid(args.tasks)
    print(
        f"{len(cells)} cells of {args.tasks:,} tasks, {args.rounds} round(s), "
        f"{args.workers} workers; {info['cpu_count']} CPUs ({info['cpu_model']}), "
        f"Python {info['python']}, load {info['load_average_at_start']}",
        flush=True,
    )
    try:
        raw = run_rounds(cells, args.rounds, args.seed, args.workers)
    except RuntimeError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 1
    info["load_average_at_end"] = _load_average()
    report: Json = {
        "benchmark": "grid_scaling",
        "command": " ".join([PROG, *(sys.argv[1:] if argv is None else argv)]),
        "config": {
            "cells": len(cells),
            "queues": list(theory.QUEUES),
            "loads": LOADS,
            "tasks_per_cell": args.tasks,
            "runs_per_cell": 1,
            "replications": 1,
            "rounds": args.rounds,
            "workers": args.workers,
            "seed": args.seed,
        },
        "machine": info,
        "speed": summarise(raw, args.workers),
        "checks": {"identical": raw["identical"]},
        "raw_seconds": raw["times"],
    }
    print_report(report)
    if not args.no_json:
        args.out.write_text(json.dumps(report, indent=2) + "\n")
        print(f"\nwrote {args.out}")
    verdicts = [report["speed"][name]["pass"] for name in ("jobs", "dask")]
    return 1 if args.check and not all(verdicts) else 0


if __name__ == "__main__":
    sys.exit(main())
