"""A recorded pool's trace: one row per finished task, kept in bounded memory.

``ThreadedPool(record=True)`` fills a :class:`TaskTrace` while it serves real callables;
``pool.fit`` turns the rows into a model of the workload. Times are seconds since the
pool began; ``cpu_time`` is the CPU time of the worker's thread over the task's last
attempt (``time.thread_time``), which is what a model needs to tell computing from
waiting when threads contend for cores and the interpreter lock.
"""

from __future__ import annotations

import os
from collections import deque
from pathlib import Path
from typing import Protocol

import pandas as pd

#: The columns of a recorded trace, in order.
COLUMNS = (
    "task_id",
    "submitted",
    "started",
    "ended",
    "worker",
    "priority",
    "status",
    "attempts",
    "cpu_time",
    "pool_workers",
)

Row = tuple[int, float, float, float, int, int, str, int, float, int]


class Finished(Protocol):
    """What a row is made of: a task's times (pool seconds), worker slot, priority,
    attempts and last attempt's CPU time (``real.task_future.TaskFuture`` has them)."""

    submitted: float
    started: float
    worker: int
    priority: int
    attempts: int
    cpu_time: float


class TaskTrace:
    """The last ``max_rows`` finished tasks of a pool of ``pool_workers`` workers.

    Older rows are dropped once ``max_rows`` are held and counted in ``dropped``: a pool
    that runs for months keeps a fixed amount of memory.
    """

    def __init__(self, max_rows: int, pool_workers: int) -> None:
        self.rows: deque[Row] = deque(maxlen=max_rows)
        self.pool_workers = pool_workers
        self.finished = 0

    @property
    def dropped(self) -> int:
        """Rows dropped to stay within ``max_rows``."""
        return self.finished - len(self.rows)

    def add(self, task_id: int, task: Finished, status: str, ended: float) -> None:
        """Record a finished task that ``ended`` at that pool time, with ``status``."""
        self.rows.append(
            (
                task_id,
                task.submitted,
                task.started,
                ended,
                task.worker,
                task.priority,
                status,
                task.attempts,
                task.cpu_time,
                self.pool_workers,
            )
        )
        self.finished += 1

    def frame(self) -> pd.DataFrame:
        """The rows as a DataFrame sorted by submission; ``attrs["dropped"]`` counts the lost."""
        frame = pd.DataFrame(list(self.rows), columns=list(COLUMNS))
        frame = frame.sort_values("task_id", kind="stable").reset_index(drop=True)
        frame.attrs["dropped"] = self.dropped
        return frame


def save(frame: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Write a trace to ``path``: parquet for ``.parquet``, CSV for ``.csv``; atomically."""
    target = Path(path)
    suffix = target.suffix.lower()
    if suffix not in (".parquet", ".csv"):
        raise ValueError(f"path must end in .parquet or .csv, got {str(path)!r}")
    partial = target.with_name(f".{target.name}.partial")
    try:
        if suffix == ".parquet":
            frame.to_parquet(partial, index=False)
        else:
            frame.to_csv(partial, index=False)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return target
