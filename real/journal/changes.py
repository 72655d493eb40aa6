"""Changes to a journal's task rows not yet written: each task's latest attempt start,
and outcomes, queued by the pool's threads and written in groups (see ``store.py``).

A task that started and settled between two commits gets one update, not two. Changes
taken for a commit that fails are queued again, so a rolled-back commit loses nothing.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

#: An attempt's start: (attempt number, worker slot, Unix time).
Start = tuple[int, int, float]
#: An outcome: (task id, state, attempts, Unix time, error text, encoded result).
Outcome = tuple[int, str, int, float, str | None, bytes | None]


class Changes:
    """The queue of unwritten changes, with the condition its writer waits on."""

    def __init__(self) -> None:
        self.wake = threading.Condition(threading.Lock())
        self.closing = False
        self._starts: dict[int, Start] = {}
        self._outcomes: list[Outcome] = []

    def started(self, task_id: int, attempt: int, worker: int) -> None:
        """Attempt number ``attempt`` of the task began on ``worker``."""
        with self.wake:
            self._starts[task_id] = (attempt, worker, time.time())  # the latest attempt
            self._notify_first()

    def settled(
        self, task_id: int, state: str, attempts: int, error: str | None, result: bytes | None
    ) -> None:
        """The task is done or failed."""
        with self.wake:
            self._outcomes.append((task_id, state, attempts, time.time(), error, result))
            self._notify_first()

    def _notify_first(self) -> None:
        if len(self._starts) + len(self._outcomes) == 1:
            self.wake.notify()

    def count(self) -> int:
        """Changes queued now."""
        with self.wake:
            return len(self._starts) + len(self._outcomes)

    def wait_for_group(self, window: float) -> bool:
        """The writer's wait: until changes are queued, then ``window`` s more for a
        group to gather; False once closing with nothing left."""
        with self.wake:
            while not (self._starts or self._outcomes) and not self.closing:
                self.wake.wait()
            if not (self._starts or self._outcomes):
                return False
            self.wake.wait(window)
            return True

    def close(self) -> None:
        """No more changes: the writer ends once the queue is empty."""
        with self.wake:
            self.closing = True
            self.wake.notify()

    @contextmanager
    def taken(self) -> Iterator[tuple[dict[int, Start], list[Outcome]]]:
        """The queued changes, taken out; queued again if the block raises."""
        with self.wake:
            starts, self._starts = self._starts, {}
            outcomes, self._outcomes = self._outcomes, []
        try:
            yield dict(starts), outcomes
        except BaseException:
            with self.wake:
                for task_id, start in starts.items():
                    self._starts.setdefault(task_id, start)  # a later start stays
                self._outcomes[:0] = outcomes
            raise


def write(db: sqlite3.Connection, starts: dict[int, Start], outcomes: list[Outcome]) -> None:
    """Write ``starts`` and ``outcomes`` in ``db``'s open transaction; a task with both
    gets one update. A row already done or failed is left alone."""
    if outcomes:
        rows = []
        for task_id, state, attempts, ended, error, result in outcomes:
            attempt, worker, began = starts.pop(task_id, (attempts, None, None))
            rows.append(
                (state, max(attempt, attempts), worker, began, ended, error, result, task_id)
            )
        db.executemany(
            "UPDATE tasks SET state=?, attempts=max(attempts, ?),"
            " worker=coalesce(?, worker), started=coalesce(?, started), ended=?, error=?,"
            " result=? WHERE id=? AND state IN ('pending', 'running')",
            rows,
        )
    if starts:
        db.executemany(
            "UPDATE tasks SET state='running', attempts=?, worker=?, started=?"
            " WHERE id=? AND state IN ('pending', 'running')",
            [
                (attempt, worker, began, task_id)
                for task_id, (attempt, worker, began) in starts.items()
            ],
        )
