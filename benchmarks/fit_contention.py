"""Does ``pool.fit`` take contention out? The same tasks recorded at 1 and at 8 workers.

Run from the repository root::

    .venv/bin/python -m benchmarks.fit_contention            # 20 s recordings, 3 rounds
    .venv/bin/python -m benchmarks.fit_contention --seconds 5 --rounds 1

Two kinds of task, each the user's own code run by ``real.ThreadedPool(record=True)``:

* ``handler``: waits 6 ms on average (a sleep: a socket in real life), parses a JSON
  document (pure Python, holding the lock) and hashes 512 KiB (C code releasing it);
* ``python``: a pure-Python loop of 4 ms on average (holding the lock throughout).

Each is recorded once on one worker, at 60% of what one worker can serve, and once on
8 workers (4 times the rate, or 90% of what the interpreter lock can serve if that is
less: more threads than the 2 cores, the lock contended, the pool not overloaded). Both
traces are fitted with the machine ``real.calibrate()`` measured and the tasks'
``gil_share`` measured alone (json.loads against sha256, each timed on one thread);
the report gives each fit's mean service, the 8-worker fit over the 1-worker fit (the
target: within 5%), and the same ratio without the correction (the recorded wall times).
Figures go to ``benchmarks/results/fit_contention.json``.
"""

from __future__ import annotations

import hashlib
import json
import platform
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

import pool
import real
from benchmarks._common import OneLineParser, git, int_at_least, load_average

DOCUMENT = json.dumps([{"id": i, "name": f"item {i}", "tags": ["a", "b"]} for i in range(400)])
PAYLOAD = bytes(512 << 10)
WORKER_COUNTS = (1, 8)
LOAD_ONE_WORKER = 0.6
RATE_FACTOR = 4.0  # the 8-worker recording's arrival rate over the 1-worker one, at most
LOCK_LOAD = 0.9  # ... and at most this share of what the interpreter lock can serve


def handler(delay: float) -> None:
    """Wait, parse, hash: a request handler."""
    time.sleep(delay)
    json.loads(DOCUMENT)
    hashlib.sha256(PAYLOAD).digest()


def python_loop(seconds: float) -> None:
    """Pure Python for ``seconds`` of this thread's CPU time."""
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def _solo(fn: Callable[[], object], repeats: int = 30) -> float:
    """Median thread CPU seconds of ``fn`` alone."""
    times = []
    for _ in range(repeats):
        begin = time.thread_time()
        fn()
        times.append(time.thread_time() - begin)
    return float(np.median(times))


def _kinds() -> dict[str, dict[str, Any]]:
    parse = _solo(lambda: json.loads(DOCUMENT))
    digest = _solo(lambda: hashlib.sha256(PAYLOAD).digest())
    return {
        "handler": {
            "fn": handler, "mean_arg": 0.006, "gil_share": parse / (parse + digest),
            "service": 0.006 + parse + digest, "lock_held": parse,
        },
        "python": {
            "fn": python_loop, "mean_arg": 0.004, "gil_share": 1.0, "service": 0.004,
            "lock_held": 0.004,
        },
    }  # fmt: skip


def record(kind: dict[str, Any], workers: int, rate: float, seconds: float, seed: int) -> Any:
    """The trace of ``workers`` threads serving Poisson arrivals of ``kind`` at ``rate``."""
    rng = np.random.default_rng(seed)
    n_tasks = int(rate * seconds)
    arrivals = np.cumsum(rng.exponential(1 / rate, n_tasks)).tolist()
    arguments = rng.exponential(kind["mean_arg"], n_tasks).tolist()
    with real.ThreadedPool("fifo", workers, record=True, max_rows=n_tasks) as recording:
        start = time.monotonic()
        for at, argument in zip(arrivals, arguments, strict=True):
            time.sleep(max(0.0, start + at - time.monotonic()))
            recording.submit(kind["fn"], argument)
    return recording.trace()


def main(argv: list[str] | None = None) -> int:
    """Record, fit and report."""
    parser = OneLineParser(prog="python -m benchmarks.fit_contention", description=__doc__)
    parser.add_argument("--seconds", type=int_at_least(1), default=20, help="recording (s)")
    parser.add_argument("--rounds", type=int_at_least(1), default=3, help="recordings each")
    parser.add_argument(
        "--lock-load", type=float, default=LOCK_LOAD, help="8-worker cap: share of the lock"
    )
    parser.add_argument("--kinds", default="handler,python", help="task kinds to record")
    parser.add_argument("--out", default="benchmarks/results/fit_contention.json")
    args = parser.parse_args(argv)
    seconds, rounds = float(args.seconds), int(args.rounds)
    machine = real.calibrate()
    kinds = {name: kind for name, kind in _kinds().items() if name in args.kinds.split(",")}
    figures: dict[str, Any] = {}
    for name, kind in kinds.items():
        rate = LOAD_ONE_WORKER / kind["service"]
        fitted: dict[int, list[float]] = {w: [] for w in WORKER_COUNTS}
        walls: dict[int, list[float]] = {w: [] for w in WORKER_COUNTS}
        for round_ in range(rounds):
            for workers in WORKER_COUNTS:
                crowded = min(RATE_FACTOR * rate, args.lock_load / kind["lock_held"])
                at = crowded if workers > 1 else rate
                trace = record(kind, workers, at, seconds, seed=round_)
                model = pool.fit(trace, gil_share=kind["gil_share"], overhead=machine)
                fitted[workers].append(model.mean_service)
                walls[workers].append(float((trace["ended"] - trace["started"]).mean()))
                print(
                    f"{name} round {round_} {workers} workers: wall {walls[workers][-1] * 1e3:.2f}"
                    f" ms, fitted {fitted[workers][-1] * 1e3:.2f} ms",
                    flush=True,
                )
        one, eight = (float(np.mean(fitted[w])) for w in WORKER_COUNTS)
        wall_one, wall_eight = (float(np.mean(walls[w])) for w in WORKER_COUNTS)
        figures[name] = {
            "gil_share": kind["gil_share"],
            "fitted_mean_service_s": {"1": one, "8": eight},
            "recorded_mean_wall_s": {"1": wall_one, "8": wall_eight},
            "fitted_ratio_8_over_1": eight / one,
            "uncorrected_ratio_8_over_1": wall_eight / wall_one,
            "per_round_fitted_ratio": [e / o for o, e in zip(fitted[1], fitted[8], strict=True)],
        }
        print(f"{name}: fitted 8/1 = {eight / one:.3f} (uncorrected {wall_eight / wall_one:.3f})")
    document = {
        "benchmark": "fit_contention",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "git": git("rev-parse", "--short", "HEAD"),
        "python": platform.python_version(),
        "load_average": load_average(),
        "seconds": seconds,
        "rounds": rounds,
        "lock_load": args.lock_load,
        "machine": machine.as_dict(),
        "kinds": figures,
    }
    Path(args.out).write_text(json.dumps(document, indent=2) + "\n")
    print(f"figures in {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
