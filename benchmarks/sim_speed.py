"""Simulator speed and memory: the model (its SimPy event model and ``sim.run``) against a
plain SimPy model of the same queue, at several pool sizes.

Run from the repository root::

    .venv/bin/python -m benchmarks.sim_speed                  # full size: 200k tasks, 5 rounds
    .venv/bin/python -m benchmarks.sim_speed --tasks 20000 --rounds 3 --memory-tasks 0

What it measures, all in this one process except the memory figure, at each worker count
``c`` of ``--workers`` (default 4 and 512):

* ``baseline``: an M/M/c queue written the ordinary SimPy way (a ``simpy.Resource`` of
  capacity c, a source process, one process per customer, start/end recorded into lists),
  fed the very arrival and service draws of the workload below.
* ``fifo``, ``priority``, ``work-stealing`` on
  ``Workload.poisson(rate=0.8 * c, service=Exponential(1.0), n_tasks=N, seed=s)`` (the
  load per worker is the same at every c: 3.2/s at 4 workers; priority with classes
  {0: 0.3, 1: 0.7}, which leaves the arrival and service draws unchanged), c workers,
  ``seed=s``, each by two contenders: ``event model``, the model's SimPy processes forced
  through ``_Run(SimulatedPool(policy, c, seed=s), workload).execute()``, and ``sim.run``,
  which takes the exact fast path (``sim/fast_path.py``) where it applies (everywhere
  here; the script records it). Timed: the run alone (the workload is built beforehand)
  and the run plus building ``result.tasks``. The two contenders' start times must agree
  bit for bit, and FIFO's must equal the baseline's. The share of tasks stolen is
  recorded too: a pool size can change how many steals a task takes, not just their cost.

Runs alternate (for each worker count: baseline, then each policy by the event model and
by ``sim.run``; then the next worker count, ...) for ``--rounds`` rounds, round ``r``
using seed ``--seed + r``; the table reports the median tasks/s of each contender and its
ratio to the baseline's median at the same worker count, and how each contender's tasks/s
at the largest pool compares with the smallest (1.0: the cost per task does not grow
with the pool). The memory figure, measured first, is the peak resident set of a fresh
subprocess that builds a ``--memory-tasks`` workload, simulates it under FIFO at 4
workers with ``sim.run`` and builds ``result.tasks`` and ``summary()``: its ``VmHWM`` on
Linux, as ``ru_maxrss`` there carries over the parent's peak at spawn (``ru_maxrss`` is
recorded too, elsewhere it is the figure). The figures go to
``benchmarks/results/sim_speed.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
from collections.abc import Sequence
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks._common import OneLineParser as _Parser
from benchmarks._common import cpu_model as _cpu_model
from benchmarks._common import git as _git
from benchmarks._common import int_at_least as _int_at_least
from benchmarks._common import load_average as _load_average
from benchmarks._sim_speed_models import (
    BASELINE,
    CONTENDERS,
    EVENT_MODEL,
    MEMORY_TARGET_MB,
    MEMORY_WORKERS,
    POLICIES,
    PRIORITIES,
    RATE_PER_WORKER,
    SERVICE_MEAN,
    SIM_RUN,
    make_workload,
    measure_memory,
    memory_child,
    pool_size_scaling,
    rate,
    summarise,
    time_baseline,
    time_contender,
    time_workload_builds,
)

PROG = "python -m benchmarks.sim_speed"
ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "sim_speed.json"

DEFAULT_WORKERS = (4, 512)
DEFAULT_TASKS = 200_000
DEFAULT_ROUNDS = 5
DEFAULT_MEMORY_TASKS = 1_000_000

WORKLOAD_BUILD_TARGET_S = 1.0

Json = dict[str, Any]
#: Seconds per round: by worker count, then "baseline" or policy, then contender.
Seconds = dict[int, dict[str, Any]]


# -- the benchmark -------------------------------------------------------------------------


def _empty_seconds(workers: Sequence[int], with_baseline: bool) -> Seconds:
    seconds: Seconds = {}
    for count in workers:
        seconds[count] = {policy: {name: [] for name in CONTENDERS} for policy in POLICIES}
        if with_baseline:
            seconds[count][BASELINE] = []
    return seconds


def _run_one_pool_size(n_tasks: int, round_seed: int, count: int, raw: Json, checks: Json) -> str:
    """One round at ``count`` workers: baseline, then each policy by each contender."""
    run_s, with_tasks_s = raw["run_seconds"][count], raw["run_with_tasks_seconds"][count]
    plain = make_workload(n_tasks, round_seed, count)
    classed = make_workload(n_tasks, round_seed, count, PRIORITIES)
    checks["priority_workload_same_draws"] &= bool(
        np.array_equal(plain.arrival, classed.arrival)
        and np.array_equal(plain.service, classed.service)
    )
    seconds, baseline_start = time_baseline(plain, count)
    run_s[BASELINE].append(seconds)
    line = [f"{count} workers: baseline {seconds:.2f} s"]
    for policy in POLICIES:
        workload = classed if policy == "priority" else plain
        starts: dict[str, np.ndarray] = {}
        times = []
        for contender in CONTENDERS:
            ran, built, result = time_contender(contender, workload, policy, count, round_seed)
            if result["completed"] != n_tasks or result["lost"]:
                raise RuntimeError(
                    f"{policy} ({contender}, {count} workers): {result['completed']} of "
                    f"{n_tasks} tasks done, {result['lost']} lost"
                )
            if contender == SIM_RUN:
                checks["fast_path_applies"][count][policy] = result["fast_path_applies"]
                checks["stolen_share"][count][policy].append(result["stolen"] / n_tasks)
            starts[contender] = result["start"]
            run_s[policy][contender].append(ran)
            with_tasks_s[policy][contender].append(built)
            times.append(f"{ran:.2f}")
        same = np.array_equal(starts[EVENT_MODEL], starts[SIM_RUN])
        checks["event_model_equals_sim_run"][count][policy] &= bool(same)
        if policy == "fifo":
            gap = max(float(np.abs(s - np.asarray(baseline_start)).max()) for s in starts.values())
            previous = checks["fifo_vs_baseline_max_abs_start_diff"].get(count, 0.0)
            checks["fifo_vs_baseline_max_abs_start_diff"][count] = max(previous, gap)
        line.append(f"{policy} {'/'.join(times)} s")
    return ", ".join(line)


def run_rounds(n_tasks: int, rounds: int, seed: int, workers: Sequence[int]) -> Json:
    """Alternate baseline and contenders, pool size after pool size, for ``rounds``
    rounds; raw seconds and checks."""
    raw: Json = {
        "run_seconds": _empty_seconds(workers, with_baseline=True),
        "run_with_tasks_seconds": _empty_seconds(workers, with_baseline=False),
    }
    checks: Json = {
        "fifo_vs_baseline_max_abs_start_diff": {},
        "event_model_equals_sim_run": {c: dict.fromkeys(POLICIES, True) for c in workers},
        "fast_path_applies": {c: dict.fromkeys(POLICIES, False) for c in workers},
        "stolen_share": {c: {p: [] for p in POLICIES} for c in workers},
        "priority_workload_same_draws": True,
    }
    for index in range(rounds):
        round_seed = seed + index
        for count in workers:
            line = _run_one_pool_size(n_tasks, round_seed, count, raw, checks)
            print(
                f"round {index + 1}/{rounds} (seed {round_seed}), {line} ({EVENT_MODEL}/{SIM_RUN})",
                flush=True,
            )
    raw["checks"] = checks
    return raw


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


def _print_speed(report: Json) -> None:
    n_tasks, speed = report["config"]["tasks"], report["speed"]
    print()
    print(
        f"M/M/c at {RATE_PER_WORKER}/s per worker, mean service {SERVICE_MEAN} s, "
        f"{n_tasks:,} tasks, {report['config']['rounds']} alternating rounds (median tasks/s)"
    )
    header = (
        f"{'workers':>7}  {'contender':<28}{'run tasks/s':>12}{'min..max':>19}"
        f"{'+tasks frame':>14}{'ratio':>7}{'target':>8}  verdict"
    )
    print(header)
    print("-" * len(header))
    for count, table in speed.items():
        base = table[BASELINE]
        spread = f"{base['min_tasks_per_s']:,.0f}..{base['max_tasks_per_s']:,.0f}"
        print(
            f"{count:>7}  {BASELINE:<28}{base['median_tasks_per_s']:>12,.0f}{spread:>19}"
            f"{'':>14}{1.0:>7.2f}"
        )
        for policy in POLICIES:
            for contender in CONTENDERS:
                row = table[policy][contender]
                spread = f"{row['min_tasks_per_s']:,.0f}..{row['max_tasks_per_s']:,.0f}"
                target = f">={row['target_ratio']:g}x"
                print(
                    f"{count:>7}  {policy + ' / ' + contender:<28}"
                    f"{row['median_tasks_per_s']:>12,.0f}{spread:>19}"
                    f"{row['median_tasks_per_s_with_tasks_frame']:>14,.0f}"
                    f"{row['ratio_to_baseline']:>7.2f}{target:>8}  {_verdict(row['pass'])}"
                )
    scaling = report["pool_size_scaling"]
    if scaling is not None:
        parts = [f"{BASELINE} {scaling[BASELINE]:.2f}"]
        for policy in POLICIES:
            for contender in CONTENDERS:
                parts.append(f"{policy} / {contender} {scaling[policy][contender]:.2f}")
        print(
            f"tasks/s at {scaling['largest_workers']} workers over {scaling['smallest_workers']}"
            f" (1.00: cost per task flat): " + ", ".join(parts)
        )


def _print_checks(checks: Json) -> None:
    gaps = checks["fifo_vs_baseline_max_abs_start_diff"]
    print(
        "check: FIFO start times (both contenders) equal the baseline's within "
        + ", ".join(f"{gap:.3g} s at {count}" for count, gap in gaps.items())
        + f"; priority workload has the same arrival/service draws: "
        f"{checks['priority_workload_same_draws']}"
    )
    same = all(all(row.values()) for row in checks["event_model_equals_sim_run"].values())
    fast = all(all(row.values()) for row in checks["sim_run_takes_fast_path"].values())
    print(
        f"check: {EVENT_MODEL} and {SIM_RUN} start times equal bit for bit everywhere: "
        f"{same}; {SIM_RUN} took the fast path everywhere: {fast}"
    )
    stolen = checks["stolen_share_by_round"]
    print(
        "work stealing: share of tasks stolen (median of rounds) "
        + ", ".join(
            f"{statistics.median(row['work-stealing']):.3f} at {count}"
            for count, row in stolen.items()
        )
    )


def print_report(report: Json) -> None:
    """The tidy table of figures and verdicts."""
    _print_speed(report)
    _print_checks(report["checks"])
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
        f"memory, {memory['n_tasks']:,}-task FIFO run ({MEMORY_WORKERS} workers) in a "
        f"subprocess: peak RSS {memory['peak_rss_mb']:.0f} MB (target < "
        f"{MEMORY_TARGET_MB:g} MB)  {_verdict(memory['pass'])}"
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
        "--workers",
        type=_int_at_least(1),
        nargs="+",
        default=list(DEFAULT_WORKERS),
        metavar="C",
        help="worker counts, every contender runs at each; arrivals at 0.8/s per worker "
        f"(default {' '.join(map(str, DEFAULT_WORKERS))})",
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
    args = parser.parse_args(argv)
    args.workers = list(dict.fromkeys(args.workers))  # each count once, in the given order
    return args


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


def _by_workers(seconds: Seconds) -> Json:
    return {str(count): value for count, value in seconds.items()}


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
    raw = run_rounds(args.tasks, args.rounds, args.seed, args.workers)
    info["load_average_at_end"] = _load_average()
    speed = summarise(args.tasks, raw, args.workers)
    checks = raw["checks"]
    report: Json = {
        "benchmark": "sim_speed",
        "command": " ".join([PROG, *(sys.argv[1:] if argv is None else argv)]),
        "config": {
            "tasks": args.tasks,
            "rounds": args.rounds,
            "seed": args.seed,
            "workers": args.workers,
            "rate_per_worker": RATE_PER_WORKER,
            "rates": {str(count): rate(count) for count in args.workers},
            "service_mean": SERVICE_MEAN,
            "priorities": {str(k): v for k, v in PRIORITIES.items()},
            "contenders": [BASELINE, *CONTENDERS],
            "memory_tasks": args.memory_tasks,
            "memory_workers": MEMORY_WORKERS,
        },
        "machine": info,
        "speed": speed,
        "pool_size_scaling": pool_size_scaling(speed, args.workers),
        "checks": {
            "fifo_vs_baseline_max_abs_start_diff": _by_workers(
                checks["fifo_vs_baseline_max_abs_start_diff"]
            ),
            "event_model_equals_sim_run": _by_workers(checks["event_model_equals_sim_run"]),
            "sim_run_takes_fast_path": _by_workers(checks["fast_path_applies"]),
            "stolen_share_by_round": _by_workers(checks["stolen_share"]),
            "priority_workload_same_draws": checks["priority_workload_same_draws"],
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
            "run": _by_workers(raw["run_seconds"]),
            "run_with_tasks_frame": _by_workers(raw["run_with_tasks_seconds"]),
        },
    }
    print_report(report)
    if not args.no_json:
        args.out.write_text(json.dumps(report, indent=2) + "\n")
        print(f"\nwrote {args.out}")
    verdicts = [
        row["pass"] for table in speed.values() for p in POLICIES for row in table[p].values()
    ]
    verdicts.append(report["workload_build"]["pass"])
    if memory is not None:
        verdicts.append(memory["pass"])
    return 1 if args.check and not all(verdicts) else 0


if __name__ == "__main__":
    sys.exit(main())
