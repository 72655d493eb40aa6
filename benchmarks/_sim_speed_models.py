"""What ``benchmarks.sim_speed`` times and how it sums up: the workload, the plain-SimPy
baseline, the two ways to simulate a policy, the medians and ratios, and the memory
subprocess.

* :func:`baseline_mmc`: an M/M/c queue the ordinary SimPy way.
* :func:`time_contender` with ``EVENT_MODEL``: the model's SimPy processes, forced
  (``_Run(SimulatedPool(policy, workers, seed=seed), workload).execute()``), whatever
  the configuration.
* :func:`time_contender` with ``SIM_RUN``: ``sim.run``, which takes the exact fast path
  (:mod:`sim.fast_path`) where it applies, as it does for every configuration here.
"""

from __future__ import annotations

import gc
import json
import math
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Generator, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import simpy

import sim
from pool import Workload, dists
from sim import fast_path
from sim.simulated_pool import SimulatedPool, _Run

#: Arrival rate per worker: the load per worker is the same at every pool size.
RATE_PER_WORKER = 0.8
SERVICE_MEAN = 1.0
PRIORITIES = {0: 0.3, 1: 0.7}
#: Pool size of the memory run (as before the worker counts were added).
MEMORY_WORKERS = 4

BASELINE = "baseline"
POLICIES = ("fifo", "priority", "work-stealing")
#: Minimum ratio of a policy's median tasks/s (run only) to the baseline's at the same
#: worker count; it holds for both contenders.
SPEED_TARGETS = {"fifo": 2.0, "priority": 1.0, "work-stealing": 1.0}
MEMORY_TARGET_MB = 500.0

EVENT_MODEL = "event model"
SIM_RUN = "sim.run"
CONTENDERS = (EVENT_MODEL, SIM_RUN)

ROOT = Path(__file__).resolve().parent.parent

SimEvents = Generator[Any, Any, None]
Json = dict[str, Any]


def rate(workers: int) -> float:
    """Arrivals per second at ``workers`` workers: 0.8 per worker (3.2/s at 4)."""
    return RATE_PER_WORKER * workers


def make_workload(
    n_tasks: int, seed: int, workers: int, priorities: dict[int, float] | None = None
) -> Workload:
    """The benchmark's workload: Poisson arrivals at 0.8/s per worker, exponential
    service of mean 1 s (utilisation 0.8 at every pool size)."""
    return Workload.poisson(
        rate=rate(workers),
        service=dists.Exponential(SERVICE_MEAN),
        n_tasks=n_tasks,
        priorities=priorities,
        seed=seed,
    )


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


def timed(action: Callable[[], Any]) -> tuple[float, Any]:
    """Seconds ``action`` takes (after a ``gc.collect()``) and its value."""
    gc.collect()
    began = time.perf_counter()
    value = action()
    return time.perf_counter() - began, value


def time_baseline(workload: Workload, workers: int) -> tuple[float, list[float]]:
    """Seconds for the baseline model over ``workload`` (list conversion included), and starts."""
    seconds, (start, _end) = timed(
        lambda: baseline_mmc(workload.arrival.tolist(), workload.service.tolist(), workers)
    )
    return seconds, start


def time_contender(
    contender: str, workload: Workload, policy: str, workers: int, seed: int
) -> tuple[float, float, Json]:
    """Seconds for one run alone and with ``result.tasks`` built, plus checks on the result.

    ``contender`` is ``EVENT_MODEL`` (the SimPy processes) or ``SIM_RUN``. The checks
    say whether ``sim.run`` would take the fast path for this configuration.
    """
    pool = SimulatedPool(policy, workers, seed=seed)
    if contender == EVENT_MODEL:
        action: Callable[[], Any] = _Run(pool, workload).execute
    elif contender == SIM_RUN:
        action = partial(sim.run, workload, policy, workers=workers, seed=seed)
    else:
        raise ValueError(f"unknown contender {contender!r}")
    gc.collect()
    began = time.perf_counter()
    result = action()
    ran = time.perf_counter()
    tasks = result.tasks
    built = time.perf_counter()
    status = tasks["status"].astype(str)
    checks: Json = {
        "completed": int((status == "done").sum()),
        "lost": int((status == "lost").sum()),
        "start": tasks["start"].to_numpy(),
        "stolen": int(tasks["stolen"].sum()),
        "fast_path_applies": fast_path.applies(pool, workload),
    }
    return ran - began, built - began, checks


# -- figures -------------------------------------------------------------------------------


def _rates(n_tasks: int, seconds: list[float]) -> list[float]:
    return [n_tasks / s for s in seconds]


def summarise(n_tasks: int, raw: Json, workers: Sequence[int]) -> Json:
    """Median tasks/s of each contender at each worker count, ratios to the baseline,
    verdicts; keyed by worker count (as a string), then policy, then contender."""
    speed: Json = {}
    for count in workers:
        run_s, with_tasks_s = raw["run_seconds"][count], raw["run_with_tasks_seconds"][count]
        base_rates = _rates(n_tasks, run_s[BASELINE])
        base = statistics.median(base_rates)
        table: Json = {
            BASELINE: {
                "median_tasks_per_s": base,
                "min_tasks_per_s": min(base_rates),
                "max_tasks_per_s": max(base_rates),
            }
        }
        for policy in POLICIES:
            table[policy] = {}
            for contender in CONTENDERS:
                seconds = run_s[policy][contender]
                rates = _rates(n_tasks, seconds)
                with_tasks = statistics.median(_rates(n_tasks, with_tasks_s[policy][contender]))
                paired = [b / p for b, p in zip(run_s[BASELINE], seconds, strict=True)]
                median = statistics.median(rates)
                target = SPEED_TARGETS[policy]
                table[policy][contender] = {
                    "median_tasks_per_s": median,
                    "min_tasks_per_s": min(rates),
                    "max_tasks_per_s": max(rates),
                    "median_tasks_per_s_with_tasks_frame": with_tasks,
                    "ratio_to_baseline": median / base,
                    "ratio_to_baseline_with_tasks_frame": with_tasks / base,
                    "median_of_paired_round_ratios": statistics.median(paired),
                    "target_ratio": target,
                    "pass": median / base >= target,
                }
        speed[str(count)] = table
    return speed


def pool_size_scaling(speed: Json, workers: Sequence[int]) -> Json | None:
    """Each contender's median tasks/s at the largest pool over the smallest (None with
    one worker count): 1.0 when the cost per task does not grow with the pool."""
    small, large = str(min(workers)), str(max(workers))
    if small == large:
        return None

    def ratio(row: Json, other: Json) -> float:
        return float(other["median_tasks_per_s"] / row["median_tasks_per_s"])

    scaling: Json = {
        "smallest_workers": int(small),
        "largest_workers": int(large),
        BASELINE: ratio(speed[small][BASELINE], speed[large][BASELINE]),
    }
    for policy in POLICIES:
        scaling[policy] = {
            contender: ratio(speed[small][policy][contender], speed[large][policy][contender])
            for contender in CONTENDERS
        }
    return scaling


def time_workload_builds(n_tasks: int, repeats: int, seed: int) -> list[float]:
    """Seconds to build an ``n_tasks`` workload (4 workers' rate), ``repeats`` times."""
    build = partial(make_workload, n_tasks, workers=MEMORY_WORKERS)
    return [timed(partial(build, seed + index))[0] for index in range(repeats)]


# -- memory (in a fresh subprocess) --------------------------------------------------------


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


def ru_maxrss_mb() -> float:
    """``ru_maxrss`` of this process, MB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes vs KiB


def peak_rss_mb() -> float:
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
    return ru_maxrss_mb()


def memory_child(n_tasks: int, seed: int) -> Json:
    """In a fresh process: build, simulate (FIFO, 4 workers, ``sim.run``), build ``tasks``
    and ``summary()``; peak RSS."""
    after_imports = peak_rss_mb()
    build_s, workload = timed(lambda: make_workload(n_tasks, seed, MEMORY_WORKERS))
    after_workload = peak_rss_mb()
    run_s, result = timed(lambda: sim.run(workload, "fifo", workers=MEMORY_WORKERS, seed=seed))
    after_run = peak_rss_mb()
    tasks_s, tasks = timed(lambda: result.tasks)
    summary_s, summary = timed(result.summary)
    return {
        "n_tasks": n_tasks,
        "workers": MEMORY_WORKERS,
        "rows": len(tasks),
        "completed": summary["completed"],
        "workload_build_s": build_s,
        "run_s": run_s,
        "tasks_frame_s": tasks_s,
        "summary_s": summary_s,
        "peak_rss_mb_after_imports": after_imports,
        "peak_rss_mb_after_workload": after_workload,
        "peak_rss_mb_after_run": after_run,
        "peak_rss_mb": peak_rss_mb(),
        "ru_maxrss_mb": ru_maxrss_mb(),
    }
