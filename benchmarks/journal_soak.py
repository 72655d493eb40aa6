"""Journal soak: a driver process that keeps its tasks in a journal, killed for real.

Run from the repository root::

    .venv/bin/python -m benchmarks.journal_soak            # 10,000 tasks, 10 kills
    .venv/bin/python -m benchmarks.journal_soak --tasks 500 --kills 3 --rounds 3 --check

Crash soak: ``benchmarks/journal_driver.py`` submits ``--tasks`` journaled tasks (about
1 ms each) to 4 worker threads and waits for them. It is SIGKILLed ``--kills`` times, each
at a random moment (seeded) between its start and the end of its expected run, and
started again each time; then it runs to the end. Checked: the journal holds exactly one
row per task, every one done; ``PRAGMA integrity_check`` is ok. Reported: the attempts
begun beyond one per task (delivery is at least once: a task running at a kill runs
again).

Throughput: ``--throughput-tasks`` no-op tasks through ``ThreadedPool("fifo", 4)``
submitted from one thread and waited for, without a journal and with one (SQLite
``synchronous=NORMAL``, the journal's setting, and ``FULL``, an fsync per commit), in
``--rounds`` alternating rounds; medians. Target: journaled >= 5,000 tasks/s.
Figures go to ``benchmarks/results/journal_soak.json``.
"""

from __future__ import annotations

import random
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from tqdm import tqdm

import real
import real.journal.store
from benchmarks._common import (
    ROOT,
    OneLineParser,
    int_at_least,
    load_average,
    machine,
    write_report,
)

PROG = "python -m benchmarks.journal_soak"
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "journal_soak.json"
WORKERS = 4
TARGET_TASKS_PER_S = 5000.0
CONTENDERS = ("none", "NORMAL", "FULL")


def _driver(path: Path, tasks: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "benchmarks.journal_driver", str(path), str(tasks), str(WORKERS)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )


def soak(path: Path, tasks: int, kills: int, seed: int) -> dict[str, Any]:
    """Kill the driver ``kills`` times, then let it finish; what the journal holds."""
    rng = random.Random(seed)
    run_seconds = tasks * 0.0012 / WORKERS + 1.0  # its start, and the tasks on 4 threads
    moments = []
    for _ in tqdm(range(kills), desc="kills", disable=None):
        driver = _driver(path, tasks)
        moment = rng.uniform(0.2, run_seconds)
        time.sleep(moment)
        driver.send_signal(signal.SIGKILL)
        driver.wait(timeout=30)
        moments.append(round(moment, 3))
    started = time.perf_counter()
    out, _ = _driver(path, tasks).communicate(timeout=600)
    last_run = time.perf_counter() - started
    with sqlite3.connect(path) as db:
        keys = [key for (key,) in db.execute("SELECT key FROM tasks ORDER BY id")]
        states = dict(db.execute("SELECT state, count(*) FROM tasks GROUP BY state").fetchall())
        attempts = db.execute("SELECT sum(attempts) FROM tasks").fetchone()[0] or 0
        integrity = db.execute("PRAGMA integrity_check").fetchone()[0]
    checks = {
        "one_row_per_task": sorted(keys) == sorted(f"t{n}" for n in range(tasks)),
        "every_task_done": states == {"done": tasks},
        "integrity_check_ok": integrity == "ok",
        "last_driver_finished": out.split() == ["submitted", "finished"],
    }
    return {
        "kill_moments_s": moments,
        "states": states,
        "attempts_beyond_one": int(attempts) - tasks,
        "last_run_s": round(last_run, 2),
        "checks": checks,
    }


def throughput(contender: str, tasks: int, folder: Path) -> float:
    """Tasks per second of one run of ``contender`` (see the module)."""
    journal = None if contender == "none" else folder / f"{contender}-{time.monotonic_ns()}.db"
    real.journal.store.SYNCHRONOUS = "NORMAL" if contender == "none" else contender
    pool = real.ThreadedPool("fifo", WORKERS, journal=journal)
    try:
        began = time.perf_counter()
        futures = [pool.submit(work_none, n) for n in range(tasks)]
        for future in futures:
            future.result()
        return tasks / (time.perf_counter() - began)
    finally:
        pool.shutdown()
        real.journal.store.SYNCHRONOUS = "NORMAL"


def work_none(index: int) -> int:
    """A no-op task."""
    return index


def main(argv: list[str] | None = None) -> int:
    """Run the soak and the throughput rounds; write the report."""
    parser = OneLineParser(prog=PROG, description="Journal crash soak and throughput.")
    parser.add_argument("--tasks", type=int_at_least(10), default=10_000)
    parser.add_argument("--kills", type=int_at_least(0), default=10)
    parser.add_argument("--throughput-tasks", type=int_at_least(100), default=20_000)
    parser.add_argument("--rounds", type=int_at_least(1), default=5)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", default=str(DEFAULT_OUT))
    parser.add_argument("--check", action="store_true", help="exit 1 if a check fails")
    args = parser.parse_args(argv)
    started, load = datetime.now(timezone.utc).isoformat(timespec="seconds"), load_average()
    with tempfile.TemporaryDirectory() as folder:
        result = soak(Path(folder) / "soak.db", args.tasks, args.kills, args.seed)
        runs: dict[str, list[float]] = {name: [] for name in CONTENDERS}
        for _ in tqdm(range(args.rounds), desc="throughput rounds", disable=None):
            for name in CONTENDERS:
                runs[name].append(throughput(name, args.throughput_tasks, Path(folder)))
    medians = {name: statistics.median(values) for name, values in runs.items()}
    result["checks"]["journaled_tasks_per_s_at_least_5000"] = (
        medians["NORMAL"] >= TARGET_TASKS_PER_S
    )
    report = {
        "benchmark": "journal_soak",
        "command": f"{PROG} {' '.join(argv if argv is not None else sys.argv[1:])}".strip(),
        "config": vars(args) | {"workers": WORKERS},
        "machine": machine(started, load),
        "soak": result,
        "throughput_median_tasks_per_s": {k: round(v) for k, v in medians.items()},
        "throughput_runs": {k: [round(v) for v in values] for k, values in runs.items()},
        "pass": all(result["checks"].values()),
    }
    print(
        f"soak: {args.tasks} tasks, {args.kills} kills: states {result['states']}, "
        f"attempts beyond one {result['attempts_beyond_one']}"
    )
    for name, passed in result["checks"].items():
        print(f"  {name}: {'PASS' if passed else 'FAIL'}")
    print(
        "throughput (median tasks/s): "
        + ", ".join(
            f"{'no journal' if k == 'none' else 'journal ' + k} {v:,.0f}"
            for k, v in medians.items()
        )
    )
    print(f"wrote {write_report(args.out, report)}")
    return 1 if args.check and not report["pass"] else 0


if __name__ == "__main__":
    sys.exit(main())
