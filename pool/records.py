"""Recorder: what a pool writes down while it runs, and the RunResult it makes of it.

Both pools record through this one class, so their results share one schema and one
meaning. Every time is seconds from the run's start, and every quantity is as the pool
sees it: a crashed worker stays busy and serving until the pool declares it dead.

Per task the recorder keeps the final attempt (``start``, ``end``, ``worker``) in plain
lists, which the simulator's hot path writes directly; attempts that did not succeed go
to ``attempt_log``, rare events to ``events``, and changes in the number of serving
workers to ``worker_changes``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from pool.results import RunResult
from pool.tasks import Workload

PENDING, DONE, FAILED = 0, 1, 2

EVENT_KINDS = (
    "crash",
    "hang",
    "detected",
    "timeout",
    "restart",
    "retry",
    "failed",
    "discarded",
    "steal",
    "scale_up",
    "scale_down",
    "pool_crash",
    "pool_restart",
)


class Recorder:
    """Per-task records of one run; :meth:`result` turns them into a :class:`RunResult`."""

    def __init__(self, workload: Workload, initial_workers: int) -> None:
        n_tasks = len(workload)
        self.workload = workload
        self.ready: list[float] = workload.arrival.tolist()
        self.start: list[float] = [math.nan] * n_tasks
        self.end: list[float] = [math.nan] * n_tasks
        self.worker: list[int] = [-1] * n_tasks
        self.attempts: list[int] = [0] * n_tasks
        self.status: list[int] = [PENDING] * n_tasks
        self.stolen: list[bool] = [False] * n_tasks
        #: Attempts that did not succeed: (task, worker, ready, start, stop, outcome).
        self.attempt_log: list[tuple[int, int, float, float, float, str]] = []
        self.events: list[tuple[float, str, int, int]] = []
        self.worker_changes: list[tuple[float, int]] = [(0.0, initial_workers)]
        self.duplicates = 0

    def event(self, time: float, kind: str, worker: int = -1, task: int = -1) -> None:
        """Note a rare event (a kind from :data:`EVENT_KINDS`)."""
        self.events.append((time, kind, worker, task))

    def workers_changed(self, time: float, delta: int) -> None:
        """The number of serving workers changed by ``delta`` at ``time``."""
        self.worker_changes.append((time, delta))

    def begin(self, task: int, worker: int, time: float) -> None:
        """An attempt of ``task`` starts on ``worker``."""
        self.start[task] = time
        self.worker[task] = worker
        self.attempts[task] += 1

    def complete(self, task: int, time: float) -> bool:
        """The running attempt of ``task`` succeeded; False if it was already complete."""
        if self.status[task] != PENDING:
            self.duplicates += 1
            return False
        self.end[task] = time
        self.status[task] = DONE
        return True

    def abandon(self, task: int, time: float, outcome: str) -> None:
        """The running attempt of ``task`` ended without success (``outcome`` says how)."""
        self.attempt_log.append(
            (task, self.worker[task], self.ready[task], self.start[task], time, outcome)
        )

    def requeue(self, task: int, time: float) -> None:
        """``task`` is queued again at ``time`` for another attempt."""
        self.ready[task] = time

    def fail(self, task: int, time: float) -> None:
        """``task`` used up its attempts: it ends ``failed`` at ``time``."""
        self.end[task] = time
        self.status[task] = FAILED
        self.event(time, "failed", self.worker[task], task)

    def result(self, backend: str, meta: dict[str, Any]) -> RunResult:
        """The run's :class:`RunResult`."""
        wl = self.workload
        attempts = np.array(
            self.attempt_log,
            dtype=[
                ("task", "i8"),
                ("worker", "i8"),
                ("ready", "f8"),
                ("start", "f8"),
                ("stop", "f8"),
                ("outcome", "U16"),
            ],
        )
        return RunResult(
            backend=backend,
            arrival=wl.arrival,
            priority=wl.priority,
            ready=np.asarray(self.ready, dtype=np.float64),
            start=np.asarray(self.start, dtype=np.float64),
            end=np.asarray(self.end, dtype=np.float64),
            worker=np.asarray(self.worker, dtype=np.int64),
            attempts=np.asarray(self.attempts, dtype=np.int64),
            status=np.asarray(self.status, dtype=np.int8),
            stolen=np.asarray(self.stolen, dtype=bool),
            attempt_log=attempts,
            event_rows=sorted(self.events, key=lambda row: row[0]),
            worker_changes=sorted(self.worker_changes, key=lambda row: row[0]),
            duplicates=self.duplicates,
            meta=meta,
        )
