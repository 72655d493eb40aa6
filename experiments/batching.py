"""Grouping an experiment's cells into cluster tasks of about a second each.

A Dask task costs the client, the scheduler and the worker a few milliseconds of CPU
(messages, bookkeeping, a gather), whatever it computes. For cells of a fifth of a
second that is several percent of the machine, so :class:`Batches` hands the cells out
in groups sized from the cells timed so far:

* the first cells go one per task, until one has been timed;
* then a group holds about :data:`TASK_SECONDS` of cells (mean time per cell so far);
* near the end groups shrink (at most the waiting cells over ``TAIL_SHARE x slots``),
  so that the workers run out of work together rather than one finishing a large group
  alone, as guided self-scheduling does;
* a cell being retried goes alone, so that its next failure names it and no other cell
  waits on it; so do the cells of a task that failed as a whole.

Cells go out in grid order, except that cells to run again go first (in their order).
Each cell keeps its own seed, so the results do not depend on the grouping.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from experiments.definition import Cell, Context

TASK_SECONDS = 1.0
"""Aimed-for seconds of cells per task: overhead of ~1% per task, and little work lost
when a run is interrupted or a worker is lost."""
TAIL_SHARE = 2
"""Near the end, a group holds at most the waiting cells over ``TAIL_SHARE x slots``."""


@dataclass
class PendingCell:
    """A cell and replication still to run, where its file goes, how often it failed, and
    whether it must run alone (a member of a task that failed as a whole)."""

    cell: Cell
    context: Context
    path: Path
    failures: int = 0
    alone: bool = False


class Batches:
    """The waiting cells, handed out in groups (see the module docstring).

    ``max_cells`` caps a group (1: one cell per task, as for real measurements);
    ``task_seconds`` is the aimed-for duration of a group."""

    def __init__(
        self,
        cells: Iterable[PendingCell],
        max_cells: int | None = None,
        task_seconds: float = TASK_SECONDS,
    ) -> None:
        if max_cells is not None and max_cells < 1:
            raise ValueError(f"max_cells must be at least 1, got {max_cells}")
        if not task_seconds > 0:
            raise ValueError(f"task_seconds must be positive, got {task_seconds}")
        self._waiting: deque[PendingCell] = deque(cells)
        self.max_cells = max_cells
        self.task_seconds = task_seconds
        self._timed_cells = 0
        self._timed_seconds = 0.0

    def __len__(self) -> int:
        """How many cells are waiting."""
        return len(self._waiting)

    def record(self, seconds: float) -> None:
        """Count one finished cell's duration (seconds) toward the mean."""
        self._timed_cells += 1
        self._timed_seconds += max(seconds, 0.0)

    def requeue(self, cells: list[PendingCell]) -> None:
        """Put cells to run again at the front, in their order; a cell that failed or must
        run alone goes alone."""
        self._waiting.extendleft(reversed(cells))

    def size(self, slots: int) -> int:
        """How many cells the next group holds, for ``slots`` task slots in the cluster."""
        if not self._waiting:
            return 0
        first = self._waiting[0]
        if first.failures or first.alone or self._timed_cells == 0:
            return 1
        mean = self._timed_seconds / self._timed_cells
        waiting = len(self._waiting)
        # Compared as a product: task_seconds / mean overflows for tiny means.
        fits = mean * waiting <= self.task_seconds
        by_time = waiting if fits else math.floor(self.task_seconds / mean)
        tail = waiting // (TAIL_SHARE * max(slots, 1))
        size = max(1, min(by_time, tail))
        return size if self.max_cells is None else min(size, self.max_cells)

    def take(self, slots: int) -> list[PendingCell]:
        """The next group of cells (empty when none wait). Cells to run again wait at the
        front, so one is never grouped with others."""
        return [self._waiting.popleft() for _ in range(self.size(slots))]
