"""Snapshots of a threaded pool's state, and how a future gets its outcome."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, ClassVar

from pool.backend import COUNTERS

#: A future to resolve outside the pool's lock, with its result or its exception.
Settlement = tuple["Future[Any]", Any, "BaseException | None"]


@dataclass(frozen=True)
class PoolStats:
    """A frozen snapshot: serving ``workers``, ``busy`` ones, ``queued`` tasks, and counts
    since the start of ``completed``, ``failed`` (after their last attempt), ``retried``
    attempts, ``stolen`` tasks, worker ``restarts`` and ``discarded`` late results."""

    COUNTERS: ClassVar[tuple[str, ...]] = COUNTERS

    workers: int
    busy: int
    queued: int
    completed: int = 0
    failed: int = 0
    retried: int = 0
    stolen: int = 0
    restarts: int = 0
    discarded: int = 0
    cancelled: int = 0


def settle(settlement: Settlement) -> None:
    """Give a future its outcome (call without the pool's lock: callbacks may run)."""
    future, value, error = settlement
    if error is None:
        future.set_result(value)
    else:
        future.set_exception(error)


def fail_unstarted(future: Future[Any], error: BaseException) -> None:
    """Fail a future whose task will never run (a broken pool), unless it was cancelled:
    one its task never began is marked running first, as the standard executor does."""
    if future.running() or future.set_running_or_notify_cancel():
        future.set_exception(error)


def run_all(outcomes: list[Callable[[], None]]) -> None:
    """Run what settles futures (outside the pool's lock); a function of its own, so that
    no local of a waiting thread keeps the last one (and its result) alive."""
    for action in outcomes:
        action()
