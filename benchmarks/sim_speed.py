"""Simulator speed and memory: ``sim.run`` against a plain SimPy model of the same queue.

Run from the repository root::

    .venv/bin/python -m benchmarks.sim_speed                  # full size: 200k tasks, 5 rounds
    .venv/bin/python -m benchmarks.sim_speed --tasks 20000 --rounds 3 --memory-tasks 0

What it measures, all in this one process except the memory figure:

* ``baseline``: an M/M/4 queue written the ordinary SimPy way (a ``simpy.Resource`` of
  capacity 4, a source process, one process per customer, start/end recorded into lists),
  fed the very arrival and service draws of the workload below.
* ``fifo``, ``priority``, ``work-stealing``: ``sim.run`` on
  ``Workload.poisson(rate=3.2, service=Exponential(1.0), n_tasks=N, seed=s)`` (priority
  with classes {0: 0.3, 1: 0.7}, which leaves the arrival and service draws unchanged),
  4 workers, ``seed=s``. Timed: the run alone (the workload is built beforehand) and the
  run plus building ``result.tasks``.

Runs alternate (baseline, fifo, priority, work-stealing, baseline, ...) for ``--rounds``
rounds, round ``r`` using seed ``--seed + r``; the table reports the median tasks/s of
each contender and its ratio to the baseline's median. The memory figure, measured
first, is the peak resident set of a fresh subprocess that builds a ``--memory-tasks``
workload, simulates it under FIFO and builds ``result.tasks`` and ``summary()``: its
``VmHWM`` on Linux, as ``ru_maxrss`` there carries over the parent's peak at spawn
(``ru_maxrss`` is recorded too, elsewhere it is the figure). The figures go to
``benchmarks/results/sim_speed.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Generator, Sequence
from datetime import datetime, timezone
from functools import partial
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import simpy

import sim
from benchmarks._common import OneLineParser as _Parser
from benchmarks._common import cpu_model as _cpu_model
from benchmarks._common import git as _git
from benchmarks._common import int_at_least as _int_at_least
from benchmarks._common import load_average as _load_average
from pool import Workload, dists

PROG = "python -m benchmarks.sim_speed"
ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "sim_speed.json"

RATE = 3.2
SERVICE_MEAN = 1.0
WORKERS = 4
PRIORITIES = {0: 0.3, 1: 0.7}
DEFAULT_TASKS = 200_000
DEFAULT_ROUNDS = 5
DEFAULT_MEMORY_TASKS = 1_000_000

BASELINE = "baseline"
POLICIES = ("fifo", "priority", "work-stealing")
#: Minimum ratio of a policy's median tasks/s (run only) to the baseline's.
SPEED_TARGETS = {"fifo": 2.0, "priority": 1.0, "work-stealing": 1.0}
MEMORY_TARGET_MB = 500.0
WORKLOAD_BUILD_TARGET_S = 1.0

SimEvents = Generator[Any, Any, None]
Json = dict[str, Any]


# -- the contenders ------------------------------------------------------------------------


def baseline_mmc(
    arrival: Sequence[float], service: Sequence[float], servers: int
) -> tuple[list[float], list[float]]:
    """An M/M/c queue the ordinary SimPy way; returns each customer's (start, end) lists."""
    env = simpy.Environment()
    server = simpy.Resource(env, capacity=servers)
    start: list[float] = [math.nan] * len(arrival)
    end: list[float] = [math.nan] * len(arrival)

    def customer(index: int, duration: float) -> SimEvents:
        with server.request() as request:
            yield request
            start[index] = env.now
            yield env.timeout(duration)
            end[index] = env.now

    def source() -> SimEvents:
        for index, (at, duration) in enumerate(zip(arrival, service, strict=True)):
            yield env.timeout(at - env.now)
            env.process(customer(index, duration))

    env.process(source())
    env.run()
    return start, end


def make_workload(n_tasks: int, seed: int, priorities: dict[int, float] | None = None) -> Workload:
    """The benchmark's workload: Poisson arrivals at 3.2/s, exponential service of mean 1 s."""
    return Workload.poisson(
        rate=RATE,
        service=dists.Exponential(SERVICE_MEAN),
        n_tasks=n_tasks,
        priorities=priorities,
        seed=seed,
    )


def _timed(action: Callable[[], Any]) -> tuple[float, Any]:
    gc.collect()
    began = time.perf_counter()
    value = action()
    return time.perf_counter() - began, value


def time_baseline(workload: Workload) -> tuple[float, list[float]]:
    """Seconds for the baseline model over ``workload`` (list conversion included), and starts."""
    seconds, (start, _end) = _timed(
        lambda: baseline_mmc(workload.arrival.tolist(), workload.service.tolist(), WORKERS)
    )
    return seconds, start


def time_policy(workload: Workload, policy: str, seed: int) -> tuple[float, float, Json]:
    """Seconds for ``sim.run`` alone and with ``result.tasks`` built, plus checks on the result."""
    gc.collect()
    began = time.perf_counter()
    result = sim.run(workload, policy, workers=WORKERS, seed=seed)
    ran = time.perf_counter()
    tasks = result.tasks
    built = time.perf_counter()
    status = tasks["status"].astype(str)
    checks: Json = {
        "completed": int((status == "done").sum()),
        "lost": int((status == "lost").sum()),
        "start": tasks["start"].to_numpy(),
    }
    return ran - began, built - began, checks


# -- the benchmark -------------------------------------------------------------------------


def run_rounds(n_tasks: int, rounds: int, seed: int) -> Json:
    """Alternate baseline and policies for ``rounds`` rounds; raw seconds and checks."""
    run_s: dict[str, list[float]] = {name: [] for name in (BASELINE, *POLICIES)}
    with_tasks_s: dict[str, list[float]] = {name: [] for name in POLICIES}
    fifo_start_gap: list[float] = []
    same_draws = True
    for index in range(rounds):
        round_seed = seed + index
        plain = make_workload(n_tasks, round_seed)
        classed = make_workload(n_tasks, round_seed, PRIORITIES)
        same_draws &= bool(
            np.array_equal(plain.arrival, classed.arrival)
            and np.array_equal(plain.service, classed.service)
        )
        seconds, baseline_start = time_baseline(plain)
        run_s[BASELINE].append(seconds)
        line = [f"round {index + 1}/{rounds} (seed {round_seed}): baseline {seconds:.2f} s"]
        for policy in POLICIES:
            workload = classed if policy == "priority" else plain
            ran, built, checks = time_policy(workload, policy, round_seed)
            if checks["completed"] != n_tasks or checks["lost"]:
                raise RuntimeError(
                    f"{policy}: {checks['completed']} of {n_tasks} tasks done, "
                    f"{checks['lost']} lost"
                )
            if policy == "fifo":
                gap = np.abs(checks["start"] - np.asarray(baseline_start))
                fifo_start_gap.append(float(gap.max()))
            run_s[policy].append(ran)
            with_tasks_s[policy].append(built)
            line.append(f"{policy} {ran:.2f} s")
        print(", ".join(line), flush=True)
    return {
        "run_seconds": run_s,
        "run_with_tasks_seconds": with_tasks_s,
        "fifo_vs_baseline_max_abs_start_diff": max(fifo_start_gap),
        "priority_workload_same_draws": same_draws,
    }


def summarise(n_tasks: int, raw: Json) -> Json:
    """Median tasks/s of each contender, ratios to the baseline, verdicts."""
    run_s: dict[str, list[float]] = raw["run_seconds"]
    with_tasks_s: dict[str, list[float]] = raw["run_with_tasks_seconds"]
    base_rates = [n_tasks / s for s in run_s[BASELINE]]
    base = statistics.median(base_rates)
    table: Json = {
        BASELINE: {
            "median_tasks_per_s": base,
            "min_tasks_per_s": min(base_rates),
            "max_tasks_per_s": max(base_rates),
        }
    }
    for policy in POLICIES:
        rates = [n_tasks / s for s in run_s[policy]]
        with_tasks = [n_tasks / s for s in with_tasks_s[policy]]
        paired = [b / p for b, p in zip(run_s[BASELINE], run_s[policy], strict=True)]
        median = statistics.median(rates)
        ratio = median / base
        target = SPEED_TARGETS[policy]
        table[policy] = {
            "median_tasks_per_s": median,
            "min_tasks_per_s": min(rates),
            "max_tasks_per_s": max(rates),
            "median_tasks_per_s_with_tasks_frame": statistics.median(with_tasks),
            "ratio_to_baseline": ratio,
            "ratio_to_baseline_with_tasks_frame": statistics.median(with_tasks) / base,
            "median_of_paired_round_ratios": statistics.median(paired),
            "target_ratio": target,
            "pass": ratio >= target,
        }
    return table


def time_workload_builds(n_tasks: int, repeats: int, seed: int) -> list[float]:
    """Seconds to build an ``n_tasks`` workload, ``repeats`` times."""
    return [_timed(partial(make_workload, n_tasks, seed + index))[0] for index in range(repeats)]


def _ru_maxrss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes vs KiB


def _peak_rss_mb() -> float:
    """This program's peak resident set, MB.

    On Linux ``ru_maxrss`` survives ``fork`` and ``execve``: a subprocess reports its
    parent's high-water mark if that is larger. ``VmHWM`` in /proc/self/status belongs
    to the running program image alone, so it is read where it exists.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 2**10  # kB
    except (OSError, ValueError, IndexError):
        pass
    return _ru_maxrss_mb()


def memory_child(n_tasks: int, seed: int) -> Json:
    """In a fresh process: build, simulate (FIFO), build ``tasks`` and ``summary()``; peak RSS."""
    after_imports = _peak_rss_mb()
    build_s, workload = _timed(lambda: make_workload(n_tasks, seed))
    after_workload = _peak_rss_mb()
    run_s, result = _timed(lambda: sim.run(workload, "fifo", workers=WORKERS, seed=seed))
    after_run = _peak_rss_mb()
    tasks_s, tasks = _timed(lambda: result.tasks)
    summary_s, summary = _timed(result.summary)
    return {
        "n_tasks": n_tasks,
        "rows": len(tasks),
        "completed": summary["completed"],
        "workload_build_s": build_s,
        "run_s": run_s,
        "tasks_frame_s": tasks_s,
        "summary_s": summary_s,
        "peak_rss_mb_after_imports": after_imports,
        "peak_rss_mb_after_workload": after_workload,
        "peak_rss_mb_after_run": after_run,
        "peak_rss_mb": _peak_rss_mb(),
        "ru_maxrss_mb": _ru_maxrss_mb(),
    }


def measure_memory(n_tasks: int, seed: int) -> Json:
    """Run :func:`memory_child` in a subprocess and read back its figures."""
    command = [sys.executable, "-m", "benchmarks.sim_speed", "--memory-child", str(n_tasks)]
    done = subprocess.run(
        [*command, "--seed", str(seed)], cwd=ROOT, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"memory subprocess exited with {done.returncode}: {last}")
    figures: Json = json.loads(done.stdout.strip().splitlines()[-1])
    figures["target_mb"] = MEMORY_TARGET_MB
    figures["pass"] = figures["peak_rss_mb"] < MEMORY_TARGET_MB
    return figures


# -- machine and report --------------------------------------------------------------------


def machine() -> Json:
    """Where and with what the figures were measured."""
    affinity = getattr(os, "sched_getaffinity", None)
    dirty = _git("status", "--porcelain", "--", "pool", "sim")
    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "usable_cpus": len(affinity(0)) if affinity else None,
        "cpu_model": _cpu_model(),
        "platform": platform.platform(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "numpy": metadata.version("numpy"),
        "simpy": metadata.version("simpy"),
        "pandas": metadata.version("pandas"),
        "git_commit": _git("rev-parse", "--short", "HEAD"),
        "pool_sim_uncommitted_changes": None if dirty is None else bool(dirty),
        "load_average_at_start": _load_average(),
    }


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def print_report(report: Json) -> None:
    """The tidy table of figures and verdicts."""
    n_tasks, speed = report["config"]["tasks"], report["speed"]
    print()
    print(
        f"M/M/{WORKERS}, rate {RATE}/s, mean service {SERVICE_MEAN} s, {n_tasks:,} tasks, "
        f"{report['config']['rounds']} alternating rounds (median tasks/s)"
    )
    header = (
        f"{'contender':<14}{'run tasks/s':>13}{'min..max':>19}{'+tasks frame':>14}"
        f"{'ratio':>8}{'target':>8}  verdict"
    )
    print(header)
    print("-" * len(header))
    base = speed[BASELINE]
    spread = f"{base['min_tasks_per_s']:,.0f}..{base['max_tasks_per_s']:,.0f}"
    print(f"{BASELINE:<14}{base['median_tasks_per_s']:>13,.0f}{spread:>19}{'':>14}{1.0:>8.2f}")
    for policy in POLICIES:
        row = speed[policy]
        spread = f"{row['min_tasks_per_s']:,.0f}..{row['max_tasks_per_s']:,.0f}"
        target = f">={row['target_ratio']:g}x"
        print(
            f"{policy:<14}{row['median_tasks_per_s']:>13,.0f}{spread:>19}"
            f"{row['median_tasks_per_s_with_tasks_frame']:>14,.0f}"
            f"{row['ratio_to_baseline']:>8.2f}{target:>8}  {_verdict(row['pass'])}"
        )
    checks = report["checks"]
    print(
        f"check: FIFO start times equal the baseline's within "
        f"{checks['fifo_vs_baseline_max_abs_start_diff']:.3g} s; priority workload has the "
        f"same arrival/service draws: {checks['priority_workload_same_draws']}"
    )
    build = report["workload_build"]
    print()
    print(
        f"workload build, {build['n_tasks']:,} tasks: median {build['median_s']:.3f} s "
        f"(target < {WORKLOAD_BUILD_TARGET_S:g} s)  {_verdict(build['pass'])}"
    )
    memory = report["memory"]
    if memory is None:
        print("memory: skipped (--memory-tasks 0)")
        return
    print(
        f"memory, {memory['n_tasks']:,}-task FIFO run in a subprocess: peak RSS "
        f"{memory['peak_rss_mb']:.0f} MB (target < {MEMORY_TARGET_MB:g} MB)  "
        f"{_verdict(memory['pass'])}"
    )
    print(f"  ru_maxrss {memory['ru_maxrss_mb']:.0f} MB (Linux: >= the parent's peak at spawn)")
    print(
        f"  RSS after imports {memory['peak_rss_mb_after_imports']:.0f} MB, after workload "
        f"{memory['peak_rss_mb_after_workload']:.0f} MB, after run "
        f"{memory['peak_rss_mb_after_run']:.0f} MB; run {memory['run_s']:.1f} s, tasks frame "
        f"{memory['tasks_frame_s']:.2f} s, summary {memory['summary_s']:.2f} s"
    )


# -- command line --------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    parser = _Parser(prog=PROG, description="Simulator speed and memory benchmark.")
    parser.add_argument(
        "--tasks",
        type=_int_at_least(1),
        default=DEFAULT_TASKS,
        help=f"tasks per speed run (default {DEFAULT_TASKS:,}; the targets are set at 200,000)",
    )
    parser.add_argument(
        "--rounds",
        type=_int_at_least(3),
        default=DEFAULT_ROUNDS,
        help=f"alternating rounds, at least 3 (default {DEFAULT_ROUNDS})",
    )
    parser.add_argument(
        "--memory-tasks",
        type=_int_at_least(0),
        default=DEFAULT_MEMORY_TASKS,
        help=f"tasks of the memory run and the workload-build timing (default "
        f"{DEFAULT_MEMORY_TASKS:,}); 0 skips the memory run and times a {DEFAULT_MEMORY_TASKS:,}"
        "-task build",
    )
    parser.add_argument("--seed", type=_int_at_least(0), default=1, help="first round's seed")
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        help="JSON file for the figures (default %(default)s)",
    )
    parser.add_argument("--no-json", action="store_true", help="do not write the JSON file")
    parser.add_argument("--check", action="store_true", help="exit 1 if any target fails")
    parser.add_argument("--memory-child", type=_int_at_least(1), help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; return the exit code (2 for bad input, 1 for a failed run)."""
    args = parse_args(argv)
    try:
        return _benchmark(args, argv)
    except ValueError as error:  # the library rejected a parameter
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 2
    except RuntimeError as error:  # a run came out wrong (lost tasks, a crashed subprocess)
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 1


def _benchmark(args: argparse.Namespace, argv: Sequence[str] | None) -> int:
    if args.memory_child is not None:
        print(json.dumps(memory_child(args.memory_child, args.seed)))
        return 0
    if not args.no_json:
        try:
            args.out.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            print(f"{PROG}: error: --out: {error}", file=sys.stderr)
            return 2
        if args.out.is_dir():
            print(f"{PROG}: error: --out {str(args.out)!r} is a directory", file=sys.stderr)
            return 2
    info = machine()
    print(
        f"{info['cpu_count']} CPUs ({info['cpu_model']}), {info['python']}, numpy "
        f"{info['numpy']}, simpy {info['simpy']}, load {info['load_average_at_start']}",
        flush=True,
    )
    # The memory subprocess goes first, while this process is still small.
    memory = measure_memory(args.memory_tasks, args.seed) if args.memory_tasks else None
    build_tasks = args.memory_tasks or DEFAULT_MEMORY_TASKS
    builds = time_workload_builds(build_tasks, args.rounds, args.seed)
    raw = run_rounds(args.tasks, args.rounds, args.seed)
    info["load_average_at_end"] = _load_average()
    report: Json = {
        "benchmark": "sim_speed",
        "command": " ".join([PROG, *(sys.argv[1:] if argv is None else argv)]),
        "config": {
            "tasks": args.tasks,
            "rounds": args.rounds,
            "seed": args.seed,
            "rate": RATE,
            "service_mean": SERVICE_MEAN,
            "workers": WORKERS,
            "priorities": {str(k): v for k, v in PRIORITIES.items()},
            "memory_tasks": args.memory_tasks,
        },
        "machine": info,
        "speed": summarise(args.tasks, raw),
        "checks": {
            "fifo_vs_baseline_max_abs_start_diff": raw["fifo_vs_baseline_max_abs_start_diff"],
            "priority_workload_same_draws": raw["priority_workload_same_draws"],
        },
        "workload_build": {
            "n_tasks": build_tasks,
            "seconds": builds,
            "median_s": statistics.median(builds),
            "target_s": WORKLOAD_BUILD_TARGET_S,
            "pass": statistics.median(builds) < WORKLOAD_BUILD_TARGET_S,
        },
        "memory": memory,
        "raw_seconds": {
            "run": raw["run_seconds"],
            "run_with_tasks_frame": raw["run_with_tasks_seconds"],
        },
    }
    print_report(report)
    if not args.no_json:
        args.out.write_text(json.dumps(report, indent=2) + "\n")
        print(f"\nwrote {args.out}")
    verdicts = [report["speed"][p]["pass"] for p in POLICIES]
    verdicts.append(report["workload_build"]["pass"])
    if memory is not None:
        verdicts.append(memory["pass"])
    return 1 if args.check and not all(verdicts) else 0


if __name__ == "__main__":
    sys.exit(main())
