"""Chaos soak: both pools, every policy, every kind of fault at once, thousands of tasks.

Run from the repository root::

    .venv/bin/python -m benchmarks.chaos_soak                       # full size: 10,000 tasks
    .venv/bin/python -m benchmarks.chaos_soak --tasks 2000 --policies fifo autoscaling --no-json

For every policy (fifo, priority, work-stealing, autoscaling) the same workload runs
through the real pool (``real.run``, wall-clock replay) and the model (``sim.run``), with
the same FaultPlan, Recovery and seed, so both draw the same fault schedule and the same
failing attempts:

* workload: Poisson arrivals, service Uniform(1 ms, 2 ms), two priority classes
  {0: 0.3, 1: 0.7}; every 1000th task (from task 500) is a deliberately long one of
  0.25 s, which exceeds the task timeout on every attempt; the arrival rate gives an
  offered load of 0.6 on 4 workers, long tasks included;
* faults, all at once: random crashes (``crash_mtbf`` 1.5 s per worker slot), random
  hangs (``hang_mtbf`` 2 s, 0.15 s each, longer than the heartbeat timeout), failing
  attempts (``task_failure_prob`` 0.02), two poison tasks and the task timeout (0.1 s);
* recovery: heartbeat every 20 ms, timeout 80 ms, restart after 20 ms, 3 attempts.

Checked and reported per run: every task ends ``done`` or ``failed``, ``lost == 0``, one
row per task, late duplicates counted (``duplicates`` equals the ``discarded`` events),
the attempt records consistent, threads before and after (``threading.active_count``),
memory (real: VmRSS sampled every 0.5 s by a background thread, start / max / end and
the slope over the second half of the run; model: tracemalloc peak and what stays
allocated once the result is dropped) and wall time. Then the agreement of model and
real pool: retried tasks and mean detection time, predicted against measured.

The model gets the per-task overhead measured by ``real.calibrate()`` at the start.
Figures go to ``benchmarks/results/chaos_soak.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import platform
import sys
import threading
import time
import tracemalloc
from collections.abc import Sequence
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import real
import sim
from benchmarks._common import OneLineParser as _Parser
from benchmarks._common import cpu_model as _cpu_model
from benchmarks._common import git as _git
from benchmarks._common import int_at_least as _int_at_least
from benchmarks._common import load_average as _load_average
from pool import (
    FIFO,
    POLICY_NAMES,
    Autoscaling,
    FaultPlan,
    Overhead,
    Policy,
    Recovery,
    RunResult,
    Workload,
    dists,
    policy_names,
)
from pool.policies import resolve

PROG = "python -m benchmarks.chaos_soak"
ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "chaos_soak.json"

Json = dict[str, Any]

WORKERS = 4
LOAD = 0.6
SERVICE_LOW, SERVICE_HIGH = 0.001, 0.002
PRIORITIES = {0: 0.3, 1: 0.7}
LONG_EVERY, LONG_FIRST, LONG_SERVICE = 1000, 500, 0.25
DEFAULT_TASKS = 10_000
MIN_TASKS = 100
DEFAULT_SEED = 7
SAMPLE_INTERVAL = 0.5

CRASH_MTBF, HANG_MTBF, HANG_DURATION, TASK_FAILURE_PROB = 1.5, 2.0, 0.15, 0.02
RECOVERY = Recovery(
    heartbeat_interval=0.02,
    heartbeat_timeout=0.08,
    restart_delay=0.02,
    max_attempts=3,
    retry_backoff=0.002,
    task_timeout=0.1,
)

#: Agreement tolerances, |predicted - measured| / measured, judged before the runs (see
#: the README): random faults hit busy or idle workers independently in the two pools.
TOLERANCE = {"retried": 0.10, "retried_tasks": 0.10, "detection_time": 0.15}
#: The real pool's RSS may grow by what real.run keeps per task (one Future, ~1.6 KB,
#: plus the recorder's rows) and no more: above this per arriving task, memory is not flat.
RSS_GROWTH_LIMIT_KB_PER_TASK = 2.5


# -- workload, faults, policies -------------------------------------------------------------


def long_tasks(n_tasks: int) -> list[int]:
    """The deliberately long tasks: every ``LONG_EVERY``-th from ``LONG_FIRST``."""
    return list(range(min(LONG_FIRST, n_tasks // 2), n_tasks, LONG_EVERY))


def poison_tasks(n_tasks: int) -> list[int]:
    """Two poison tasks at a third and two thirds of the workload, never a long one."""
    long = set(long_tasks(n_tasks))
    chosen = []
    for task in (n_tasks // 3, 2 * n_tasks // 3):
        while task in long or task in chosen:
            task += 1
        chosen.append(task)
    return chosen


def make_workload(n_tasks: int, seed: int) -> Workload:
    """Short Uniform(1, 2) ms services, a few long tasks, offered load ``LOAD`` on 4 workers."""
    short_mean = (SERVICE_LOW + SERVICE_HIGH) / 2.0
    n_long = len(long_tasks(n_tasks))
    mean_service = ((n_tasks - n_long) * short_mean + n_long * LONG_SERVICE) / n_tasks
    rate = LOAD * WORKERS / mean_service
    base = Workload.poisson(
        rate,
        dists.Uniform(SERVICE_LOW, SERVICE_HIGH),
        n_tasks,
        priorities=PRIORITIES,
        seed=seed,
    )
    service = base.service.copy()
    service[long_tasks(n_tasks)] = LONG_SERVICE
    return base.replace(service=service)


def make_faults(n_tasks: int) -> FaultPlan:
    """Random crashes and hangs, failing attempts and poison tasks, all at once."""
    return FaultPlan(
        crash_mtbf=CRASH_MTBF,
        hang_mtbf=HANG_MTBF,
        hang_duration=HANG_DURATION,
        task_failure_prob=TASK_FAILURE_PROB,
        poison_tasks=poison_tasks(n_tasks),
    )


def make_policy(name: str) -> Policy:
    """A fresh policy object; autoscaling tuned to a run of a few seconds."""
    if name != "autoscaling":
        return resolve(name)  # the defaults; a bad name gets resolve's message
    return Autoscaling(
        inner=FIFO(),
        min_workers=2,
        max_workers=6,
        target=0.6,
        decision_interval=0.1,
        cooldown=0.3,
        startup_delay=0.01,
        scale_down_ticks=3,
    )


# -- checks ---------------------------------------------------------------------------------


def account(result: RunResult, workload: Workload, recovery: Recovery) -> Json:
    """Nothing lost, nothing double-counted, the records consistent: figures and flags."""
    tasks, events, summary = result.tasks, result.events, result.summary()
    n_tasks = len(workload)
    status = tasks["status"].astype(str)
    kinds = events["kind"].value_counts()
    discarded = int(kinds.get("discarded", 0))
    attempts = result.attempts
    if len(attempts):
        logged = attempts.groupby("task_id").size().reindex(tasks["task_id"], fill_value=0)
    else:
        logged = pd.Series(0, index=tasks["task_id"])
    expected_log = tasks["attempts"].to_numpy() - (status == "done").to_numpy()
    failed_ids = sorted(tasks.loc[status == "failed", "task_id"].tolist())
    failed_events = sorted(events.loc[events["kind"] == "failed", "task_id"].tolist())
    figures: Json = {
        "rows": len(tasks),
        "done": int((status == "done").sum()),
        "failed": int((status == "failed").sum()),
        "lost": int(summary["lost"]),
        "duplicates": int(summary["duplicates"]),
        "discarded_events": discarded,
        "retried": int(summary["retried"]),
        "events": {str(kind): int(count) for kind, count in kinds.items()},
        "max_attempts_seen": int(tasks["attempts"].max()),
        # Information, not a check: long tasks should fail by timeout, poison by crashes.
        "long_tasks_failed": int((status.iloc[long_tasks(n_tasks)] == "failed").sum()),
        "poison_tasks_failed": int((status.iloc[poison_tasks(n_tasks)] == "failed").sum()),
    }
    figures["checks"] = {
        "one_row_per_task": len(tasks) == n_tasks
        and tasks["task_id"].tolist() == list(range(n_tasks)),
        "every_task_done_or_failed": bool(status.isin(["done", "failed"]).all()),
        "lost_is_zero": figures["lost"] == 0,
        "done_plus_failed_is_tasks": figures["done"] + figures["failed"] == n_tasks,
        "duplicates_equal_discarded_events": figures["duplicates"] == discarded,
        "attempts_within_max": bool(tasks["attempts"].between(1, recovery.max_attempts).all()),
        "attempt_log_consistent": bool((logged.to_numpy() == expected_log).all()),
        "one_failed_event_per_failed_task": failed_ids == failed_events,
        "retry_event_per_extra_attempt": int(kinds.get("retry", 0))
        == int((tasks["attempts"] - 1).sum()),
    }
    return figures


# -- memory ---------------------------------------------------------------------------------


def vm_rss_kb() -> int | None:
    """This process's resident set (VmRSS), kB, or None where /proc is missing."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


class Sampler:
    """A background thread sampling (time, VmRSS kB, live threads) every ``interval`` s."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.samples: list[tuple[float, int, int]] = []
        self._stop = threading.Event()
        self._t0 = time.monotonic()
        self._thread = threading.Thread(target=self._loop, name="chaos-soak-rss", daemon=True)

    def _sample(self) -> None:
        rss = vm_rss_kb()
        if rss is not None:
            # The sampler itself is not counted among the live threads.
            live = threading.active_count() - 1
            self.samples.append((time.monotonic() - self._t0, rss, live))

    def _loop(self) -> None:
        self._sample()
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self) -> Sampler:
        self._t0 = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()


def rss_figures(samples: list[tuple[float, int, int]], n_tasks: int, span: float) -> Json:
    """Start, max, end RSS (MB) and the least-squares slope over the run's second half."""
    if len(samples) < 2:
        return {"available": False}
    times = np.array([s[0] for s in samples])
    rss_mb = np.array([s[1] for s in samples]) / 1024.0
    half = times[-1] / 2.0
    second = times >= half
    slope = float(np.polyfit(times[second], rss_mb[second], 1)[0]) if second.sum() >= 2 else 0.0
    rate = n_tasks / span if span > 0 else math.nan
    per_task_kb = slope * 1024.0 / rate if rate > 0 else math.nan
    return {
        "available": True,
        "samples": len(samples),
        "start_mb": float(rss_mb[0]),
        "max_mb": float(rss_mb.max()),
        "end_mb": float(rss_mb[-1]),
        "second_half_slope_mb_per_s": slope,
        "second_half_growth_mb": slope * float(times[-1] - times[second][0]),
        "second_half_growth_kb_per_task": per_task_kb,
        "whole_run_growth_kb_per_task": float(rss_mb[-1] - rss_mb[0]) * 1024.0 / n_tasks,
        "limit_kb_per_task": RSS_GROWTH_LIMIT_KB_PER_TASK,
        "flat": bool(per_task_kb <= RSS_GROWTH_LIMIT_KB_PER_TASK),
        "max_live_threads": max(s[2] for s in samples),
        "series": [[round(t, 3), kb] for t, kb, _ in samples],
    }


# -- one run per pool -----------------------------------------------------------------------


def run_real(workload: Workload, policy: str, seed: int, interval: float) -> tuple[Json, RunResult]:
    """``real.run`` with every fault, RSS sampled in the background; figures and result."""
    gc.collect()
    threads_before = threading.active_count()
    present = set(threading.enumerate())
    with Sampler(interval) as sampler:
        began = time.perf_counter()
        result = real.run(
            workload,
            make_policy(policy),
            WORKERS,
            faults=make_faults(len(workload)),
            recovery=RECOVERY,
            seed=seed,
        )
        wall = time.perf_counter() - began
    threads_after = threading.active_count()
    left = [t.name for t in threading.enumerate() if t not in present and t.is_alive()]
    figures = account(result, workload, RECOVERY)
    figures.update(
        {
            "backend": "real",
            "policy": policy,
            "wall_s": wall,
            "threads_before": threads_before,
            "threads_after": threads_after,
            "threads_left": left,
            "memory": rss_figures(sampler.samples, len(workload), workload.duration),
        }
    )
    figures["checks"]["no_thread_left"] = threads_after == threads_before and not left
    figures["checks"]["memory_flat"] = bool(figures["memory"].get("flat", True))
    return figures, result


def run_sim(
    workload: Workload, policy: str, seed: int, overhead: Overhead
) -> tuple[Json, RunResult]:
    """``sim.run`` timed alone, then again under tracemalloc (which must give the same run)."""

    def simulate() -> RunResult:
        return sim.run(
            workload,
            make_policy(policy),
            WORKERS,
            faults=make_faults(len(workload)),
            recovery=RECOVERY,
            seed=seed,
            overhead=overhead,
        )

    gc.collect()
    threads_before = threading.active_count()
    began = time.perf_counter()
    result = simulate()
    wall = time.perf_counter() - began
    threads_after = threading.active_count()
    # Build the result's cached frames now, so that none is allocated while tracing.
    figures = account(result, workload, RECOVERY)
    expected_tasks, expected_events = result.tasks, result.events
    gc.collect()
    tracemalloc.start()
    start = tracemalloc.get_traced_memory()[0]
    traced = simulate()
    end, peak = tracemalloc.get_traced_memory()
    # Whatever the comparison builds is dropped with ``traced`` before ``retained``.
    same = traced.tasks.equals(expected_tasks) and traced.events.equals(expected_events)
    del traced
    gc.collect()
    retained = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    mb = 1024.0 * 1024.0
    figures.update(
        {
            "backend": "sim",
            "policy": policy,
            "wall_s": wall,
            "threads_before": threads_before,
            "threads_after": threads_after,
            "threads_left": [],
            "memory": {
                "tracemalloc_peak_mb": (peak - start) / mb,
                "tracemalloc_end_mb": (end - start) / mb,
                "retained_after_result_dropped_mb": (retained - start) / mb,
                "peak_kb_per_task": (peak - start) / 1024.0 / len(workload),
                "traced_run_identical": bool(same),
            },
        }
    )
    figures["checks"]["no_thread_left"] = threads_after == threads_before
    # Flat: nothing survives the run once its result is gone (allow 1 MB of caches).
    figures["checks"]["memory_flat"] = (retained - start) / mb < 1.0
    figures["checks"]["same_seed_same_run"] = bool(same)
    return figures, result


# -- agreement ------------------------------------------------------------------------------


def agreement(predicted: RunResult, measured: RunResult, poison: Sequence[int]) -> Json:
    """Retries (retry events), retried tasks (tasks run more than once) and mean detection
    time: predicted, measured, relative error, verdict; and the chance spread of retries."""
    left, right = predicted.summary(), measured.summary()
    for summary, result in ((left, predicted), (right, measured)):
        summary["retried_tasks"] = float((result.tasks["attempts"] > 1).sum())
    rows: Json = {}
    for metric, tolerance in TOLERANCE.items():
        pred, meas = left.get(metric, math.nan), right.get(metric, math.nan)
        rel = (pred - meas) / meas if meas and not math.isnan(meas) else math.nan
        rows[metric] = {
            "predicted": pred,
            "measured": meas,
            "rel_error": rel,
            "tolerance": tolerance,
            "pass": bool(abs(rel) <= tolerance) if not math.isnan(rel) else False,
        }
    # How far the retry counts may differ by chance alone: each random crash or hang
    # hits a busy worker with probability u (the utilisation) in each pool, independently,
    # so the difference of hits has variance 2 n u (1 - u). Poison crashes always hit.
    fault_counts = [_random_worker_faults(result, poison) for result in (predicted, measured)]
    faults = sum(fault_counts) / 2.0
    util = (left["utilization"] + right["utilization"]) / 2.0
    sigma = math.sqrt(2.0 * faults * util * (1.0 - util)) if 0 < util < 1 else math.nan
    for metric in ("retried", "retried_tasks"):
        diff = rows[metric]["predicted"] - rows[metric]["measured"]
        rows[metric]["chance_sigma"] = sigma
        rows[metric]["z"] = diff / sigma if sigma and not math.isnan(sigma) else math.nan
    rows["random_worker_faults"] = {"predicted": fault_counts[0], "measured": fault_counts[1]}
    return rows


def _random_worker_faults(result: RunResult, poison: Sequence[int]) -> int:
    """Random crashes and hangs: a poison task's crash (it names its task) is left out."""
    events = result.events
    worker_fault = events["kind"].isin(["crash", "hang"])
    poisoned = (events["kind"] == "crash") & events["task_id"].isin(list(poison))
    return int((worker_fault & ~poisoned).sum())


# -- machine and report ---------------------------------------------------------------------


def machine() -> Json:
    """Where and with what the figures were measured."""
    affinity = getattr(os, "sched_getaffinity", None)
    dirty = _git("status", "--porcelain", "--", "pool", "sim", "real")
    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "usable_cpus": len(affinity(0)) if affinity else None,
        "cpu_model": _cpu_model(),
        "platform": platform.platform(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "switch_interval_s": sys.getswitchinterval(),
        "numpy": metadata.version("numpy"),
        "simpy": metadata.version("simpy"),
        "pandas": metadata.version("pandas"),
        "git_commit": _git("rev-parse", "HEAD"),
        "pool_sim_real_uncommitted_changes": None if dirty is None else bool(dirty),
        "load_average_at_start": _load_average(),
    }


def _mark(ok: bool) -> str:
    return "ok" if ok else "FAIL"


def print_run_table(runs: list[Json]) -> None:
    """One line per (policy, pool): accounting, threads, memory, wall time."""
    header = (
        f"{'policy':<14}{'pool':<5}{'done':>7}{'failed':>7}{'lost':>5}{'rows':>7}"
        f"{'retried':>8}{'dup':>5}{'disc':>5}{'crash':>6}{'hang':>5}{'t/o':>5}"
        f"{'threads':>9}{'memory':>28}{'wall s':>8}  checks"
    )
    print(header)
    print("-" * len(header))
    for row in runs:
        ev = row["events"]
        threads = f"{row['threads_before']}->{row['threads_after']}"
        memory = row["memory"]
        if row["backend"] == "real" and memory.get("available"):
            mem = (
                f"{memory['start_mb']:.0f}/{memory['max_mb']:.0f}/{memory['end_mb']:.0f} MB "
                f"{memory['second_half_slope_mb_per_s']:+.2f}/s"
            )
        elif row["backend"] == "sim":
            mem = (
                f"peak {memory['tracemalloc_peak_mb']:.1f} MB, kept "
                f"{memory['retained_after_result_dropped_mb']:.2f}"
            )
        else:
            mem = "n/a"
        failing = [name for name, ok in row["checks"].items() if not ok]
        print(
            f"{row['policy']:<14}{row['backend']:<5}{row['done']:>7}{row['failed']:>7}"
            f"{row['lost']:>5}{row['rows']:>7}{row['retried']:>8}{row['duplicates']:>5}"
            f"{row['discarded_events']:>5}{ev.get('crash', 0):>6}{ev.get('hang', 0):>5}"
            f"{ev.get('timeout', 0):>5}{threads:>9}{mem:>28}{row['wall_s']:>8.2f}  "
            f"{'all ok' if not failing else 'FAIL: ' + ', '.join(failing)}"
        )


def print_agreement_table(agreements: dict[str, Json]) -> None:
    """Predicted against measured, per policy."""
    header = (
        f"{'policy':<14}{'metric':<16}{'predicted':>11}{'measured':>11}{'rel err':>9}"
        f"{'tol':>6}{'z':>7}  verdict"
    )
    print(header)
    print("-" * len(header))
    for policy, rows in agreements.items():
        for metric in TOLERANCE:
            row = rows[metric]
            scale, unit = (1000.0, " ms") if metric == "detection_time" else (1.0, "")
            z = f"{row['z']:+.1f}" if "z" in row and not math.isnan(row["z"]) else ""
            print(
                f"{policy:<14}{metric:<16}{row['predicted'] * scale:>8.1f}{unit:<3}"
                f"{row['measured'] * scale:>8.1f}{unit:<3}{row['rel_error']:>+9.1%}"
                f"{row['tolerance']:>6.0%}{z:>7}  {'PASS' if row['pass'] else 'FAIL'}"
            )
    print(
        "retried = retry events, retried_tasks = tasks run more than once; z = difference "
        "over the chance sigma sqrt(2 n u (1-u)), n random crashes+hangs, u utilisation"
    )


def verdicts(runs: list[Json], agreements: dict[str, Json]) -> Json:
    """The headline verdicts over every run."""

    def every(check: str) -> bool:
        return all(row["checks"].get(check, True) for row in runs)

    return {
        "zero_lost": every("lost_is_zero") and every("every_task_done_or_failed"),
        "zero_double_counted": every("duplicates_equal_discarded_events")
        and every("done_plus_failed_is_tasks")
        and every("attempt_log_consistent"),
        "one_row_per_task": every("one_row_per_task"),
        "no_thread_left": every("no_thread_left"),
        "memory_flat": every("memory_flat"),
        "agreement": all(
            rows[metric]["pass"] for rows in agreements.values() for metric in TOLERANCE
        ),
        "all_checks": all(all(row["checks"].values()) for row in runs),
    }


# -- command line ---------------------------------------------------------------------------


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}")
    return value


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    parser = _Parser(prog=PROG, description="Chaos soak of both pools under every fault.")
    parser.add_argument(
        "--tasks",
        type=_int_at_least(MIN_TASKS),
        default=DEFAULT_TASKS,
        help=f"tasks per run (default {DEFAULT_TASKS:,}, at least {MIN_TASKS})",
    )
    parser.add_argument(
        "--policies",
        nargs="+",
        choices=policy_names(),
        default=list(POLICY_NAMES),
        metavar="POLICY",
        help=f"policies to soak (default the built-ins: {' '.join(POLICY_NAMES)}; any of"
        f" {' '.join(policy_names())})",
    )
    parser.add_argument(
        "--seed", type=_int_at_least(0), default=DEFAULT_SEED, help="workload and run seed"
    )
    parser.add_argument(
        "--sample-interval",
        type=_positive_float,
        default=SAMPLE_INTERVAL,
        help=f"seconds between RSS samples of the real pool (default {SAMPLE_INTERVAL})",
    )
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help="JSON file (default %(default)s)"
    )
    parser.add_argument("--no-json", action="store_true", help="do not write the JSON file")
    parser.add_argument("--check", action="store_true", help="exit 1 if any verdict fails")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the soak; return the exit code (2 for bad input)."""
    args = parse_args(argv)
    if not args.no_json:
        if args.out.is_dir():
            print(f"{PROG}: error: --out {str(args.out)!r} is a directory", file=sys.stderr)
            return 2
        try:
            args.out.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            print(f"{PROG}: error: --out: {error}", file=sys.stderr)
            return 2
    try:
        report = soak(args, argv)
    except ValueError as error:  # the library rejected a parameter
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 2
    if not args.no_json:
        args.out.write_text(json.dumps(report, indent=2) + "\n")
        print(f"\nwrote {args.out}")
    return 1 if args.check and not report["verdicts"]["all_checks"] else 0


def soak(args: argparse.Namespace, argv: Sequence[str] | None) -> Json:
    """Every requested policy through both pools; the report."""
    policies = list(dict.fromkeys(args.policies))
    info = machine()
    print(
        f"{info['cpu_count']} CPUs ({info['cpu_model']}), {info['python']}, "
        f"load {info['load_average_at_start']}",
        flush=True,
    )
    workload = make_workload(args.tasks, args.seed)
    overhead = real.calibrate()
    print(
        f"{len(workload):,} tasks over {workload.duration:.2f} s, offered load "
        f"{workload.offered_load(WORKERS):.3f} on {WORKERS} workers, "
        f"{len(long_tasks(args.tasks))} long tasks ({LONG_SERVICE} s > timeout "
        f"{RECOVERY.task_timeout} s), poison tasks {poison_tasks(args.tasks)}; calibrated "
        f"dispatch {overhead.dispatch * 1e6:.1f} us, sleep overshoot "
        f"{overhead.sleep_overshoot * 1e6:.0f} us, thread start "
        f"{overhead.thread_start * 1e6:.0f} us",
        flush=True,
    )
    runs: list[Json] = []
    agreements: dict[str, Json] = {}
    for policy in policies:
        measured_row, measured = run_real(workload, policy, args.seed, args.sample_interval)
        print(f"{policy}: real {measured_row['wall_s']:.1f} s", end="", flush=True)
        predicted_row, predicted = run_sim(workload, policy, args.seed, overhead)
        print(f", sim {predicted_row['wall_s']:.2f} s", flush=True)
        runs += [measured_row, predicted_row]
        agreements[policy] = agreement(predicted, measured, poison_tasks(args.tasks))
        del measured, predicted
    info["load_average_at_end"] = _load_average()
    print()
    print_run_table(runs)
    print()
    print_agreement_table(agreements)
    result = verdicts(runs, agreements)
    print()
    for name, ok in result.items():
        print(f"{name:<22}{'PASS' if ok else 'FAIL'}")
    return {
        "benchmark": "chaos_soak",
        "command": " ".join([PROG, *(sys.argv[1:] if argv is None else argv)]),
        "config": {
            "tasks": args.tasks,
            "policies": policies,
            "seed": args.seed,
            "workers": WORKERS,
            "load": LOAD,
            "offered_load": workload.offered_load(WORKERS),
            "duration_s": workload.duration,
            "service": f"Uniform({SERVICE_LOW}, {SERVICE_HIGH}) s",
            "priorities": {str(k): v for k, v in PRIORITIES.items()},
            "long_tasks": long_tasks(args.tasks),
            "long_service_s": LONG_SERVICE,
            "faults": {
                "crash_mtbf": CRASH_MTBF,
                "hang_mtbf": HANG_MTBF,
                "hang_duration": HANG_DURATION,
                "task_failure_prob": TASK_FAILURE_PROB,
                "poison_tasks": poison_tasks(args.tasks),
            },
            "recovery": vars(RECOVERY),
            "autoscaling": make_policy("autoscaling").describe(),
            "overhead": overhead.as_dict(),
            "tolerance": TOLERANCE,
            "rss_growth_limit_kb_per_task": RSS_GROWTH_LIMIT_KB_PER_TASK,
            "sample_interval_s": args.sample_interval,
        },
        "machine": info,
        "runs": runs,
        "agreement": agreements,
        "verdicts": result,
    }


if __name__ == "__main__":
    sys.exit(main())
