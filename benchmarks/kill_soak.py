"""Kill soak: a ``real.ProcessPool`` serving while its worker processes are killed for real.

Run from the repository root::

    .venv/bin/python -m benchmarks.kill_soak            # 10,000 tasks, a kill every 200 ms
    .venv/bin/python -m benchmarks.kill_soak --tasks 300 --check

4 worker processes (``--workers``) run ``--tasks`` tasks of 1-3 ms (a sleep and a little
hashing), submitted at once. Meanwhile a killer thread sends SIGKILL to a random live
worker process every ``--kill-every-ms``, and every ``--stop-every`` kills sends SIGSTOP
instead (the heartbeat must find that worker, and the pool kill it). ``max_attempts`` is
high (a task may be hit more than once). At the end it checks: every future has its
result (0 lost, none failed); the pool's trace (``record=True``) holds exactly one
completed row per task; after ``shutdown`` no worker process ever seen is alive or a
zombie, and the parent has no child left (``ps``); the parent's resident memory, sampled
once a second, did not grow by more than ``--memory-slack-mb`` after the first quarter.
It reports kills, stops, restarts, retried attempts (executions beyond one per task:
delivery is at-least-once) and throughput, to ``benchmarks/results/kill_soak.json``.
"""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from tqdm import tqdm

import real
from benchmarks._common import OneLineParser, int_at_least, load_average, machine, write_report
from pool import Recovery

PROG = "python -m benchmarks.kill_soak"
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "kill_soak.json"


def work(index: int, seconds: float) -> int:
    """A task: sleep ``seconds``, hash a little, return ``index``."""
    time.sleep(seconds)
    hashlib.sha256(index.to_bytes(8, "little") * 512).digest()
    return index


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


#: multiprocessing's own helpers, children of the parent that outlive a pool by design
#: (the fork server starts the workers, so they are its children, not the parent's).
HELPERS = ("multiprocessing.forkserver", "multiprocessing.resource_tracker")


def _children_of(pid: int) -> list[str]:
    """``ps`` lines of the processes whose parent is ``pid``, except ``ps`` itself and
    multiprocessing's helpers."""
    listing = subprocess.run(
        ["ps", "-ww", "-o", "pid=,stat=,args=", "--ppid", str(pid)],
        capture_output=True,
        text=True,
        check=False,
    )
    lines = [line.strip() for line in listing.stdout.splitlines() if line.strip()]
    return [
        line
        for line in lines
        if not line.split(maxsplit=2)[-1].startswith("ps ")
        and not any(helper in line for helper in HELPERS)
    ]


class Killer(threading.Thread):
    """Every ``every_s`` seconds, SIGKILL (or every ``stop_every``-th time SIGSTOP) a
    random live worker process of ``pool``."""

    def __init__(self, pool: real.ProcessPool, every_s: float, stop_every: int, seed: int):
        super().__init__(name="kill-soak-killer", daemon=True)
        self.pool, self.every_s, self.stop_every = pool, every_s, stop_every
        self.rng = random.Random(seed)
        self.done = threading.Event()
        self.kills = self.stops = 0
        self.seen: set[int] = set()

    def run(self) -> None:
        blows = 0
        while not self.done.wait(self.every_s):
            pids = self.pool.worker_pids()
            self.seen.update(pids)
            if not pids:
                continue
            blows += 1
            victim = self.rng.choice(pids)
            stop = self.stop_every > 0 and blows % self.stop_every == 0
            try:
                os.kill(victim, signal.SIGSTOP if stop else signal.SIGKILL)
            except ProcessLookupError:
                continue
            if stop:
                self.stops += 1
            else:
                self.kills += 1


def soak(args: Any) -> dict[str, Any]:
    """Run the soak; the figures and the checks' outcomes."""
    rng = random.Random(args.seed)
    durations = [rng.uniform(0.001, 0.003) for _ in range(args.tasks)]
    recovery = Recovery(max_attempts=50, heartbeat_timeout=0.3)
    pool = real.ProcessPool("fifo", args.workers, recovery, record=True, max_rows=args.tasks)
    pool.submit(work, 0, 0.0).result(timeout=60)  # the processes are up
    killer = Killer(pool, args.kill_every_ms / 1000, args.stop_every, args.seed)
    memory: list[float] = []
    began = time.perf_counter()
    futures = [pool.submit(work, index, seconds) for index, seconds in enumerate(durations)]
    killer.start()
    results: list[int] = []
    with tqdm(total=args.tasks, desc="kill soak", unit="task", disable=None) as bar:
        for future in futures:
            results.append(future.result(timeout=600))
            bar.update()
            if not memory or time.perf_counter() - began > len(memory):
                memory.append(_rss_mb())
    elapsed = time.perf_counter() - began
    killer.done.set()
    killer.join()
    stats = pool.stats()
    trace = pool.trace()
    killer.seen.update(pool.worker_pids())
    pool.shutdown(wait=True)
    time.sleep(0.2)
    left = sorted(pid for pid in killer.seen if os.path.exists(f"/proc/{pid}"))
    warm = memory[len(memory) // 4 :] or memory
    growth = max(warm) - warm[0]
    rows = trace[trace["task_id"] >= 1]  # task 0 was the warm-up
    return {
        "tasks": args.tasks,
        "lost": sum(1 for i, r in enumerate(results) if r != i),
        "failed": stats.failed,
        "trace_rows": len(rows),
        "trace_all_completed": bool((rows["status"] == "completed").all()),
        "trace_one_row_per_task": bool(rows["task_id"].is_unique and len(rows) == args.tasks),
        "kills": killer.kills,
        "stops": killer.stops,
        "restarts": stats.restarts,
        "retried_attempts": stats.retried,
        "worker_processes_seen": len(killer.seen),
        "processes_left_after_shutdown": left,
        "children_left_after_shutdown": _children_of(os.getpid()),
        "rss_mb_samples": [round(m, 1) for m in memory],
        "rss_growth_after_first_quarter_mb": round(growth, 1),
        "elapsed_s": elapsed,
        "tasks_per_s": args.tasks / elapsed,
    }


def verdicts(figures: dict[str, Any], slack_mb: float) -> dict[str, bool]:
    """Each check of the soak: True when it holds."""
    return {
        "no task lost or failed": figures["lost"] == 0 and figures["failed"] == 0,
        "one completed trace row per task": figures["trace_one_row_per_task"]
        and figures["trace_all_completed"],
        "no worker process left": not figures["processes_left_after_shutdown"]
        and not figures["children_left_after_shutdown"],
        "parent memory flat": figures["rss_growth_after_first_quarter_mb"] <= slack_mb,
        "workers were killed": figures["kills"] > 0,
    }


def main(argv: list[str] | None = None) -> int:
    """Run the soak, print and record its figures; exit 1 with ``--check`` if one fails."""
    parser = OneLineParser(prog=PROG, description=__doc__)
    parser.add_argument("--tasks", type=int_at_least(10), default=10_000)
    parser.add_argument("--workers", type=int_at_least(1), default=4)
    parser.add_argument("--kill-every-ms", type=int_at_least(10), default=200)
    parser.add_argument("--stop-every", type=int_at_least(0), default=5, help="0: no SIGSTOP")
    parser.add_argument("--memory-slack-mb", type=float, default=20.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", default=str(DEFAULT_OUT))
    parser.add_argument("--check", action="store_true", help="exit 1 if a check fails")
    args = parser.parse_args(argv)
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    load = load_average()
    figures = soak(args)
    checks = verdicts(figures, args.memory_slack_mb)
    report = {
        "benchmark": "kill_soak",
        "command": f"{PROG} " + " ".join(argv if argv is not None else sys.argv[1:]),
        "config": {k: v for k, v in vars(args).items() if k not in ("out", "check")},
        "machine": machine(started, load),
        "figures": figures,
        "checks": checks,
    }
    out = write_report(args.out, report)
    print(
        f"{figures['tasks']:,} tasks on {args.workers} worker processes in "
        f"{figures['elapsed_s']:.1f} s ({figures['tasks_per_s']:,.0f}/s): "
        f"{figures['kills']} SIGKILLs, {figures['stops']} SIGSTOPs, "
        f"{figures['restarts']} restarts, {figures['retried_attempts']} attempts retried"
    )
    for name, ok in checks.items():
        print(f"  {'PASS' if ok else 'FAIL'}  {name}")
    print(f"wrote {out}")
    return 1 if args.check and not all(checks.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
