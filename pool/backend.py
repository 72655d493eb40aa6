"""What the pool core and its backends share: a worker's state, the backend's hooks,
the core's answers and the pool's errors (see :mod:`pool.core`)."""

from __future__ import annotations

import math
from collections.abc import Callable
from concurrent.futures.thread import BrokenThreadPool
from dataclasses import dataclass
from typing import Protocol, TypeVar

#: The pool's counters (:attr:`PoolCore.counts`, :class:`real.PoolStats`).
COUNTERS = ("completed", "failed", "retried", "stolen", "restarts", "discarded", "cancelled")
#: What :meth:`PoolCore.take` returns when the worker has nothing to run.
NOTHING = -1
#: What :meth:`PoolCore.take` returns after a steal: wait ``steal_latency``, then take.
STOLE = -2


class WorkerLost(Exception):  # noqa: N818 - named after what happened to the task
    """Set on a task's future when every attempt of it died with its worker."""


class BrokenPool(BrokenThreadPool):
    """A hook of the pool's policy raised (a bug in the policy): the pool cannot know
    what is queued any more, so it schedules nothing more. Its ``__cause__`` is the
    policy's exception. The model raises it from ``sim.run``; the threaded pool sets it
    on every task not yet running and raises it from ``submit``."""


@dataclass(eq=False, slots=True)
class WorkerState:
    """One worker in slot ``slot``, serving since ``serving_since`` (pool seconds).

    ``task`` is the attempt the pool believes it runs (-1 when idle). A crash sets
    ``crashed``; a hang freezes it until ``frozen_until``. A worker the pool
    ``declared_dead`` may still run (a hang, a timeout): its late result is discarded.
    A ``retiring`` worker takes no new task and leaves after its running one.
    """

    slot: int
    serving_since: float
    task: int = -1
    crashed: bool = False
    declared_dead: bool = False
    retiring: bool = False
    frozen_until: float = -math.inf


W = TypeVar("W", bound=WorkerState)


class Backend(Protocol[W]):
    """What a backend supplies to the core: time, workers, and where outcomes go."""

    def now(self) -> float:
        """The pool's time in seconds."""

    def spawn(self, slot: int) -> W:
        """Create and start a worker serving ``slot`` from now."""

    def wake(self, worker: W) -> None:
        """Wake ``worker``, which the core has just taken off the idle set."""

    def at(self, due: float, action: Callable[[], None]) -> None:
        """Run ``action`` at pool time ``due`` (seconds)."""

    def place(self, task: int) -> None:
        """Submit ``task`` again (a retry, or a queue handed back), with its own priority
        and affinity, through :meth:`PoolCore.submit`."""

    def attempts(self, task: int) -> int:
        """The attempts of ``task`` begun so far."""

    def failed(self, task: int, error: BaseException) -> None:
        """``task`` has failed for good with ``error``."""

    def released(self, worker: W) -> None:
        """``worker`` was declared dead; it may still be running."""
