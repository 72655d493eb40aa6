"""Real-pool overhead: ``real.ThreadedPool`` against ``concurrent.futures.ThreadPoolExecutor``.

Run from the repository root::

    .venv/bin/python -m benchmarks.pool_overhead                   # full size: 100k tasks, 7 rounds
    .venv/bin/python -m benchmarks.pool_overhead --tasks 10000 --rounds 3 --latency-tasks 200

What it measures, all in this one process, 4 workers throughout:

* Throughput of no-op tasks (``fn`` returns None). Each contender builds its pool, submits
  ``--tasks`` futures from the main thread, waits for every one (``f.result()`` in
  submission order) and shuts the pool down. The headline figure *includes* construction
  and shutdown for every contender (end to end, what a caller pays); the submit-and-wait
  phase alone (both excluded) is recorded too. Contenders: ``executor``
  (``ThreadPoolExecutor(4)``), ``fifo`` (``ThreadedPool("fifo", workers=4)``),
  ``fifo+record`` (``ThreadedPool("fifo", workers=4, record=True)``: the same pool keeping
  one trace row per finished task, with the thread CPU time measured around each call),
  ``priority`` (``ThreadedPool("priority", 4)``, each task a random priority 0-2 drawn
  beforehand) and ``work-stealing`` (``ThreadedPool("work-stealing", 4)``). After the
  timing, the recording pool's trace is checked to hold one row per task.
* Dispatch latency at low load: ``--latency-tasks`` tasks submitted one at a time; each
  records ``time.perf_counter()`` when it starts, against the reading taken just before
  its ``submit``. The caller waits for the task's future and then sleeps ``--gap-ms``
  before the next submit, so every task finds an idle pool. A few unrecorded tasks first
  let the executor start its (lazily created) thread. ``fifo+record`` is not in the latency
  runs (throughput only).

Runs alternate (executor, fifo, fifo+record, priority, work-stealing, executor, ...) for
``--rounds`` rounds after one small unrecorded warm-up round; in each round the latency runs
follow the throughput runs in the same order. The table reports each contender's median
tasks/s over the rounds, its ratio to the executor's median (FIFO's target: >= 1.3x, a lead
over the executor; DESIGN.md's bar is parity) and, for fifo+record, priority and work
stealing, the ratio to FIFO's median (targets: fifo+record >= 0.90, recording costs at most
10%; work stealing >= 0.90).
Latency percentiles are over all rounds' samples pooled. The figures go to
``benchmarks/results/pool_overhead.json`` (``--out``).
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
import sys
import time
from collections.abc import Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

import real
from benchmarks._common import OneLineParser as _Parser
from benchmarks._common import cpu_model as _cpu_model
from benchmarks._common import git as _git
from benchmarks._common import int_at_least as _int_at_least
from benchmarks._common import load_average as _load_average

PROG = "python -m benchmarks.pool_overhead"
ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "pool_overhead.json"

WORKERS = 4
PRIORITY_LEVELS = 3  # priorities 0, 1, 2
DEFAULT_TASKS = 100_000
DEFAULT_ROUNDS = 7
DEFAULT_LATENCY_TASKS = 2_000
DEFAULT_GAP_MS = 0.5
WARMUP_TASKS = 5_000
LATENCY_WARMUP_TASKS = 2 * WORKERS

EXECUTOR = "executor"
RECORD = "fifo+record"
POLICIES = ("fifo", "priority", "work-stealing")
#: The latency runs' contenders; the throughput runs add ``RECORD`` after FIFO.
CONTENDERS = (EXECUTOR, *POLICIES)
THROUGHPUT_CONTENDERS = (EXECUTOR, "fifo", RECORD, "priority", "work-stealing")
#: Contenders whose table row has ratios to FIFO's median.
VERSUS_FIFO = (*POLICIES, RECORD)
LABELS = {
    EXECUTOR: "ThreadPoolExecutor(4)",
    "fifo": 'ThreadedPool("fifo", 4)',
    RECORD: 'ThreadedPool("fifo", 4, record=True)',
    "priority": 'ThreadedPool("priority", 4)',
    "work-stealing": 'ThreadedPool("work-stealing", 4)',
}
#: Minimum ratio of FIFO's median end-to-end tasks/s to the executor's (a lead, not parity).
FIFO_TARGET_RATIO = 1.3
#: Minimum ratio of fifo+record's median end-to-end tasks/s to FIFO's (recording's budget).
RECORD_TARGET_RATIO = 0.90
#: Minimum ratio of work stealing's median end-to-end tasks/s to FIFO's.
STEALING_TARGET_RATIO = 0.90
#: Each contender's minimum ratio to FIFO's median.
TARGETS_VERSUS_FIFO = {RECORD: RECORD_TARGET_RATIO, "work-stealing": STEALING_TARGET_RATIO}

Json = dict[str, Any]


# -- the tasks and the pools ---------------------------------------------------------------


def _noop() -> None:
    return None


def _stamp(started: list[float], index: int) -> None:
    started[index] = time.perf_counter()


def make_pool(name: str) -> Executor:
    """A fresh pool of ``WORKERS`` threads for contender ``name``."""
    if name == EXECUTOR:
        return ThreadPoolExecutor(max_workers=WORKERS)
    if name == RECORD:
        return real.ThreadedPool("fifo", workers=WORKERS, record=True)
    return real.ThreadedPool(name, workers=WORKERS)


def submit_all(pool: Executor, n_tasks: int, priorities: list[int] | None) -> list[Future[Any]]:
    """Submit ``n_tasks`` no-op tasks (with ``priorities`` when given); return their futures."""
    if priorities is None:
        submit = pool.submit
        return [submit(_noop) for _ in range(n_tasks)]
    if not isinstance(pool, real.ThreadedPool):
        raise RuntimeError("only a ThreadedPool takes priorities")
    submit_with = pool.submit_with
    return [submit_with(_noop, priority=priority) for priority in priorities]


def time_throughput(name: str, n_tasks: int, priorities: list[int] | None) -> Json:
    """Seconds of each phase of one no-op run (build, submit, wait, shutdown) and checks."""
    gc.collect()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu_began = time.process_time()
    began = time.perf_counter()
    pool = make_pool(name)
    built = time.perf_counter()
    futures = submit_all(pool, n_tasks, priorities)
    submitted = time.perf_counter()
    for future in futures:
        future.result()
    waited = time.perf_counter()
    pool.shutdown(wait=True)
    ended = time.perf_counter()
    cpu_s = time.process_time() - cpu_began
    after = resource.getrusage(resource.RUSAGE_SELF)
    done = sum(1 for future in futures if future.done() and not future.cancelled())
    if done != n_tasks:
        raise RuntimeError(f"{name}: {done} of {n_tasks} futures resolved")
    figures: Json = {
        "construct_s": built - began,
        "submit_s": submitted - built,
        "wait_s": waited - submitted,
        "shutdown_s": ended - waited,
        "submit_and_wait_s": waited - built,
        "end_to_end_s": ended - began,
        "cpu_s": cpu_s,
        "voluntary_switches": after.ru_nvcsw - usage.ru_nvcsw,
        "involuntary_switches": after.ru_nivcsw - usage.ru_nivcsw,
    }
    if isinstance(pool, real.ThreadedPool):
        stats = pool.stats()
        if stats.completed != n_tasks or stats.failed or stats.queued:
            raise RuntimeError(
                f"{name}: pool counted {stats.completed} of {n_tasks} completed, "
                f"{stats.failed} failed, {stats.queued} still queued"
            )
        figures["stolen"] = stats.stolen
    if name == RECORD and isinstance(pool, real.ThreadedPool):  # checked after the timing
        trace = pool.trace()
        rows, dropped = len(trace), trace.attrs["dropped"]
        if rows + dropped != n_tasks or (trace["status"] != "completed").any():
            raise RuntimeError(
                f"{name}: trace holds {rows} rows (+{dropped} dropped) for {n_tasks} tasks"
            )
        if trace["cpu_time"].isna().any():
            raise RuntimeError(f"{name}: trace rows without a cpu_time")
    return figures


def measure_latency(name: str, n_tasks: int, gap_s: float) -> list[float]:
    """Seconds from just before ``submit`` to the task's start, one task in flight at a time."""
    pool = make_pool(name)
    try:
        warm: list[float] = [math.nan] * LATENCY_WARMUP_TASKS
        for index in range(LATENCY_WARMUP_TASKS):
            pool.submit(_stamp, warm, index).result()
            time.sleep(gap_s)
        started: list[float] = [math.nan] * n_tasks
        submitted: list[float] = [math.nan] * n_tasks
        gc.collect()
        for index in range(n_tasks):
            submitted[index] = time.perf_counter()
            pool.submit(_stamp, started, index).result()
            time.sleep(gap_s)
    finally:
        pool.shutdown(wait=True)
    return [start - at for start, at in zip(started, submitted, strict=True)]


# -- the benchmark -------------------------------------------------------------------------


def draw_priorities(n_tasks: int, seed: int) -> list[int]:
    """Random priorities 0..PRIORITY_LEVELS-1, uniform, as Python ints."""
    rng = np.random.default_rng(seed)
    return [int(p) for p in rng.integers(0, PRIORITY_LEVELS, size=n_tasks)]


def run_rounds(n_tasks: int, rounds: int, latency_tasks: int, gap_s: float, seed: int) -> Json:
    """One warm-up round, then ``rounds`` alternating rounds; raw figures per contender."""
    warm = min(n_tasks, WARMUP_TASKS)
    for name in THROUGHPUT_CONTENDERS:
        time_throughput(name, warm, draw_priorities(warm, seed) if name == "priority" else None)
    throughput: dict[str, list[Json]] = {name: [] for name in THROUGHPUT_CONTENDERS}
    latency: dict[str, list[list[float]]] = {name: [] for name in CONTENDERS}
    for index in range(rounds):
        priorities = draw_priorities(n_tasks, seed + index)
        line = [f"round {index + 1}/{rounds}:"]
        for name in THROUGHPUT_CONTENDERS:
            figures = time_throughput(name, n_tasks, priorities if name == "priority" else None)
            throughput[name].append(figures)
            line.append(f"{name} {n_tasks / figures['end_to_end_s']:,.0f}/s")
        if latency_tasks:
            for name in CONTENDERS:
                samples = measure_latency(name, latency_tasks, gap_s)
                latency[name].append(samples)
            p50s = [
                f"{name} {1e6 * statistics.median(latency[name][-1]):.0f}" for name in CONTENDERS
            ]
            line.append("| latency p50 us: " + ", ".join(p50s))
        print(" ".join(line), flush=True)
    return {"throughput": throughput, "latency": latency}


def _rates(runs: list[Json], key: str, n_tasks: int) -> list[float]:
    return [n_tasks / run[key] for run in runs]


def summarise_throughput(n_tasks: int, runs: dict[str, list[Json]]) -> Json:
    """Median tasks/s of each contender, end to end and submit-and-wait, ratios, verdict."""
    table: Json = {}
    medians = {
        key: {
            name: statistics.median(_rates(runs[name], key, n_tasks))
            for name in THROUGHPUT_CONTENDERS
        }
        for key in ("end_to_end_s", "submit_and_wait_s")
    }
    for name in THROUGHPUT_CONTENDERS:
        rates = _rates(runs[name], "end_to_end_s", n_tasks)
        row: Json = {
            "median_tasks_per_s": medians["end_to_end_s"][name],
            "min_tasks_per_s": min(rates),
            "max_tasks_per_s": max(rates),
            "median_tasks_per_s_submit_and_wait": medians["submit_and_wait_s"][name],
            "median_phase_s": {
                phase: statistics.median(run[phase] for run in runs[name])
                for phase in ("construct_s", "submit_s", "wait_s", "shutdown_s")
            },
            "median_cpu_us_per_task": statistics.median(
                1e6 * run["cpu_s"] / n_tasks for run in runs[name]
            ),
            "median_context_switches_per_task": statistics.median(
                (run["voluntary_switches"] + run["involuntary_switches"]) / n_tasks
                for run in runs[name]
            ),
            "ratio_to_executor": medians["end_to_end_s"][name] / medians["end_to_end_s"][EXECUTOR],
            "ratio_to_executor_submit_and_wait": medians["submit_and_wait_s"][name]
            / medians["submit_and_wait_s"][EXECUTOR],
            "median_of_paired_round_ratios_to_executor": statistics.median(
                e["end_to_end_s"] / r["end_to_end_s"]
                for e, r in zip(runs[EXECUTOR], runs[name], strict=True)
            ),
        }
        if name in VERSUS_FIFO:
            row["ratio_to_fifo"] = medians["end_to_end_s"][name] / medians["end_to_end_s"]["fifo"]
            row["ratio_to_fifo_submit_and_wait"] = (
                medians["submit_and_wait_s"][name] / medians["submit_and_wait_s"]["fifo"]
            )
            row["median_of_paired_round_ratios_to_fifo"] = statistics.median(
                f["end_to_end_s"] / r["end_to_end_s"]
                for f, r in zip(runs["fifo"], runs[name], strict=True)
            )
        if name == "fifo":
            row["target_ratio_to_executor"] = FIFO_TARGET_RATIO
            row["pass"] = row["ratio_to_executor"] >= FIFO_TARGET_RATIO
        if name in TARGETS_VERSUS_FIFO:
            row["target_ratio_to_fifo"] = TARGETS_VERSUS_FIFO[name]
            row["pass"] = row["ratio_to_fifo"] >= TARGETS_VERSUS_FIFO[name]
        if name == "work-stealing":
            row["median_stolen"] = statistics.median(run["stolen"] for run in runs[name])
        table[name] = row
    return table


def summarise_latency(samples: dict[str, list[list[float]]]) -> Json:
    """Percentiles of dispatch latency (microseconds) over all rounds' samples pooled."""
    table: Json = {}
    for name in CONTENDERS:
        if not samples[name]:
            continue
        pooled = np.concatenate([np.asarray(s) for s in samples[name]]) * 1e6
        p50, p90, p99 = np.percentile(pooled, [50, 90, 99])
        table[name] = {
            "samples": int(pooled.size),
            "p50_us": float(p50),
            "p90_us": float(p90),
            "p99_us": float(p99),
            "mean_us": float(pooled.mean()),
            "max_us": float(pooled.max()),
            "per_round_p50_us": [float(np.median(s) * 1e6) for s in samples[name]],
            "per_round_p99_us": [float(np.percentile(s, 99) * 1e6) for s in samples[name]],
        }
    if EXECUTOR in table:
        base = table[EXECUTOR]
        for row in table.values():
            row["p50_ratio_to_executor"] = row["p50_us"] / base["p50_us"]
            row["p99_ratio_to_executor"] = row["p99_us"] / base["p99_us"]
    return table


# -- machine and report --------------------------------------------------------------------


def machine() -> Json:
    """Where and with what the figures were measured."""
    affinity = getattr(os, "sched_getaffinity", None)
    dirty = _git("status", "--porcelain", "--", "pool", "real")
    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "usable_cpus": len(affinity(0)) if affinity else None,
        "cpu_model": _cpu_model(),
        "platform": platform.platform(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "gil_switch_interval_s": sys.getswitchinterval(),
        "numpy": metadata.version("numpy"),
        "git_commit": _git("rev-parse", "--short", "HEAD"),
        "pool_real_uncommitted_changes": None if dirty is None else bool(dirty),
        "load_average_at_start": _load_average(),
    }


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def print_report(report: Json) -> None:
    """The tidy tables of figures and verdicts."""
    config, speed = report["config"], report["throughput"]
    print()
    print(
        f"no-op tasks, {config['tasks']:,} per run, {WORKERS} workers, {config['rounds']} "
        "alternating rounds (median tasks/s; end to end = construct + submit + wait + shutdown)"
    )
    header = (
        f"{'contender':<38}{'end to end/s':>13}{'min..max':>17}{'submit+wait/s':>15}"
        f"{'cpu us/task':>12}{'csw/task':>9}{'vs executor':>13}{'vs fifo':>9}  verdict"
    )
    print(header)
    print("-" * len(header))
    for name in THROUGHPUT_CONTENDERS:
        row = speed[name]
        spread = f"{row['min_tasks_per_s']:,.0f}..{row['max_tasks_per_s']:,.0f}"
        vs_fifo = f"{row['ratio_to_fifo']:.2f}" if "ratio_to_fifo" in row else "-"
        verdict = ""
        if "target_ratio_to_executor" in row:
            target = f">= {row['target_ratio_to_executor']:g}x executor"
            verdict = f"{_verdict(row['pass'])} (target {target})"
        if "target_ratio_to_fifo" in row:
            verdict = f"{_verdict(row['pass'])} (target >= {row['target_ratio_to_fifo']:g}x fifo)"
        print(
            f"{LABELS[name]:<38}{row['median_tasks_per_s']:>13,.0f}{spread:>17}"
            f"{row['median_tasks_per_s_submit_and_wait']:>15,.0f}"
            f"{row['median_cpu_us_per_task']:>12.1f}{row['median_context_switches_per_task']:>9.2f}"
            f"{row['ratio_to_executor']:>13.2f}{vs_fifo:>9}  {verdict}"
        )
    fifo = speed["fifo"]
    print(
        f"fifo vs executor: submit+wait only {fifo['ratio_to_executor_submit_and_wait']:.2f}x, "
        f"median of paired round ratios {fifo['median_of_paired_round_ratios_to_executor']:.2f}x;"
        f" work stealing stole a median {speed['work-stealing']['median_stolen']:,.0f} tasks/run"
    )
    record = speed[RECORD]
    print(
        f"fifo+record vs fifo: {record['median_tasks_per_s']:,.0f} / "
        f"{fifo['median_tasks_per_s']:,.0f} tasks/s = {record['ratio_to_fifo']:.3f}x "
        f"(submit+wait only {record['ratio_to_fifo_submit_and_wait']:.3f}x, median of paired "
        f"round ratios {record['median_of_paired_round_ratios_to_fifo']:.3f}x, cpu "
        f"{record['median_cpu_us_per_task']:.1f} vs {fifo['median_cpu_us_per_task']:.1f} us/task)"
    )
    latency = report["latency"]
    if not latency:
        print("\nlatency: skipped (--latency-tasks 0)")
        return
    print()
    print(
        f"dispatch latency, submit -> task start, one task in flight, {config['gap_ms']:g} ms "
        f"gap, {config['latency_tasks']:,} tasks x {config['rounds']} rounds (microseconds)"
    )
    header = f"{'contender':<38}{'p50':>8}{'p90':>8}{'p99':>8}{'mean':>8}{'p50 vs ex':>11}"
    header += f"{'p99 vs ex':>11}"
    print(header)
    print("-" * len(header))
    for name in CONTENDERS:
        row = latency[name]
        print(
            f"{LABELS[name]:<38}{row['p50_us']:>8.0f}{row['p90_us']:>8.0f}{row['p99_us']:>8.0f}"
            f"{row['mean_us']:>8.0f}{row['p50_ratio_to_executor']:>11.2f}"
            f"{row['p99_ratio_to_executor']:>11.2f}"
        )


# -- command line --------------------------------------------------------------------------


def _milliseconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value) or not 0.0 <= value <= 1000.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1000 ms, got {text}")
    return value


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    parser = _Parser(prog=PROG, description="Real-pool overhead benchmark.")
    parser.add_argument(
        "--tasks",
        type=_int_at_least(1),
        default=DEFAULT_TASKS,
        help=f"no-op tasks per throughput run (default {DEFAULT_TASKS:,})",
    )
    parser.add_argument(
        "--rounds",
        type=_int_at_least(3),
        default=DEFAULT_ROUNDS,
        help=f"alternating rounds, at least 3 (default {DEFAULT_ROUNDS})",
    )
    parser.add_argument(
        "--latency-tasks",
        type=_int_at_least(0),
        default=DEFAULT_LATENCY_TASKS,
        help=f"tasks per latency run (default {DEFAULT_LATENCY_TASKS:,}; 0 skips latency)",
    )
    parser.add_argument(
        "--gap-ms",
        type=_milliseconds,
        default=DEFAULT_GAP_MS,
        help=f"pause between latency submits, ms (default {DEFAULT_GAP_MS:g})",
    )
    parser.add_argument("--seed", type=_int_at_least(0), default=1, help="priorities' seed")
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
    try:
        return _benchmark(args, argv)
    except ValueError as error:  # the library rejected a parameter
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 2
    except RuntimeError as error:  # a run came out wrong (unresolved futures)
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 1


def _benchmark(args: argparse.Namespace, argv: Sequence[str] | None) -> int:
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
        f"{info['cpu_count']} CPUs ({info['cpu_model']}), {info['python']}, switch interval "
        f"{info['gil_switch_interval_s'] * 1e3:g} ms, load {info['load_average_at_start']}",
        flush=True,
    )
    raw = run_rounds(args.tasks, args.rounds, args.latency_tasks, args.gap_ms / 1e3, args.seed)
    info["load_average_at_end"] = _load_average()
    report: Json = {
        "benchmark": "pool_overhead",
        "command": " ".join([PROG, *(sys.argv[1:] if argv is None else argv)]),
        "config": {
            "tasks": args.tasks,
            "rounds": args.rounds,
            "workers": WORKERS,
            "latency_tasks": args.latency_tasks,
            "gap_ms": args.gap_ms,
            "seed": args.seed,
            "priority_levels": PRIORITY_LEVELS,
            "warmup_tasks": min(args.tasks, WARMUP_TASKS),
            "headline_includes_construction_and_shutdown": True,
            "wait": "future.result() for each future, in submission order",
            "throughput_contenders": list(THROUGHPUT_CONTENDERS),
            "latency_contenders": list(CONTENDERS),
        },
        "machine": info,
        "throughput": summarise_throughput(args.tasks, raw["throughput"]),
        "latency": summarise_latency(raw["latency"]),
        "raw_throughput_runs": raw["throughput"],
    }
    print_report(report)
    if not args.no_json:
        args.out.write_text(json.dumps(report, indent=2) + "\n")
        print(f"\nwrote {args.out}")
    passed = all(report["throughput"][name]["pass"] for name in ("fifo", *TARGETS_VERSUS_FIFO))
    return 1 if args.check and not passed else 0


if __name__ == "__main__":
    sys.exit(main())
