"""The driver process of ``benchmarks/journal_soak.py``: a program that keeps its tasks in
a journal and is killed and restarted.

    .venv/bin/python -m benchmarks.journal_driver FILE TASKS WORKERS

It opens a ``ThreadedPool`` on the journal ``FILE``, submits tasks ``t0`` ... with
``submit_with(..., key=...)`` (a key the journal holds gives back that task's future, so
a restarted driver submits everything again safely), waits for every future and prints
``finished``.
"""

from __future__ import annotations

import sys
import time

import real


def work(index: int) -> int:
    """A task: about a millisecond of sleep; returns ``index``."""
    time.sleep(0.001)
    return index


def main(argv: list[str]) -> int:
    """Run the driver (see the module)."""
    path, tasks, workers = argv[0], int(argv[1]), int(argv[2])
    pool = real.ThreadedPool("fifo", workers, journal=path)
    futures = [pool.submit_with(work, (n,), key=f"t{n}") for n in range(tasks)]
    print("submitted", flush=True)
    for future in futures:
        future.result()
    pool.shutdown()
    print("finished", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
