"""What the journal costs a pool, measured for the model (``real.calibrate(journal=True)``).

Three figures (:class:`pool.Overhead`): ``journal_submit``, what a journaled submit adds
on the submitting thread (the task's row written and committed before it returns);
``journal_replay``, per unfinished task, what a pool opened on a journal spends taking
it back; ``program_start``, from starting :mod:`real.journal_program` (a new interpreter
that imports poolbench and opens a journaled pool) until its pool serves: the model's
cost of a pool restart beyond its downtime. A user's own program starts in its own time
(its imports, its set-up): set ``program_start`` to that where it differs.
"""

from __future__ import annotations

import dataclasses
import pickle
import statistics
import tempfile
import threading
import time
from pathlib import Path

from pool.faults import Recovery
from pool.overhead import Overhead
from pool.policies import resolve
from real.journal_program import ProgramSpec
from real.threaded_pool import ThreadedPool

#: Program starts timed (the median is kept).
PROGRAM_STARTS = 3


def journal_overhead(figures: Overhead, samples: int, backend: str) -> Overhead:
    """``figures`` with the journal's three costs measured on this machine (a few seconds:
    ``samples`` submits and revivals, and :data:`PROGRAM_STARTS` program starts)."""
    with tempfile.TemporaryDirectory(prefix="poolbench-calibrate-") as folder:
        journal = Path(folder) / "tasks.db"
        plain = _submit_seconds(samples, None)
        journaled = _submit_seconds(samples, journal)  # leaves its tasks pending
        replay = _replay_seconds(journal, samples, Path(folder) / "empty.db")
        program = _program_start(Path(folder), backend)
    return dataclasses.replace(
        figures,
        journal_submit=max(0.0, journaled - plain),
        journal_replay=replay,
        program_start=program,
    )


def _submit_seconds(count: int, journal: Path | None) -> float:
    """Per call, ``count`` submits to a pool whose one worker is held; with a journal the
    tasks stay pending in it (cancelled at shutdown)."""
    pool = ThreadedPool("fifo", 1, journal=journal, thread_name_prefix="poolbench-calibrate")
    try:
        pool.submit(_hold)
        started = time.perf_counter()
        for task in range(count):
            pool.submit_with(_noop, (task,))
        elapsed = time.perf_counter() - started
    finally:
        _released.set()
        pool.shutdown(wait=True, cancel_futures=True)
        _released.clear()
    return elapsed / count


_released = threading.Event()


def _hold() -> None:
    """The journaled calibration's first task: holds the worker until it is released."""
    _released.wait(5.0)


def _noop(_task: int) -> None:
    """The journaled calibration's task (importable by name, as the journal needs)."""


def _replay_seconds(journal: Path, count: int, empty: Path) -> float:
    """Per unfinished task, opening a pool on ``journal`` against an empty one."""

    def opening(path: Path) -> float:
        started = time.perf_counter()
        pool = ThreadedPool("fifo", 1, journal=path, thread_name_prefix="poolbench-calibrate")
        elapsed = time.perf_counter() - started
        pool.shutdown(wait=True, cancel_futures=True)
        return elapsed

    opening(empty)  # the first opening pays for what is imported once
    return max(0.0, (opening(journal) - opening(empty)) / count)


def _program_start(folder: Path, backend: str) -> float:
    """Median seconds from starting the journaled program (4 workers, no tasks) to its
    pool serving."""
    from real.restart_replay import kill_session, launch_program, ready_instant

    durations = []
    for attempt in range(PROGRAM_STARTS):
        spec = ProgramSpec(
            [], [], [], [], resolve("fifo"), 4, Recovery(), 0, backend,
            str(folder / f"program{attempt}.db"),
        )  # fmt: skip
        spec_file = folder / f"program{attempt}.pickle"
        spec_file.write_bytes(pickle.dumps(spec))
        launched = time.time()
        program = launch_program(spec_file, None)
        try:
            durations.append(ready_instant(program) - launched)
            program.wait(30.0)
        finally:
            kill_session(program)  # its fork server, if any, with it
            if program.stdout is not None:
                program.stdout.close()
    return statistics.median(durations)
