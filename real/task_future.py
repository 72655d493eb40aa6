"""A task as the threaded pool keeps it: the future its submit returned, and the call.

:class:`TaskFuture` is a ``concurrent.futures.Future`` (every method inherited unchanged)
that also holds the pool's record of the task, so a submit allocates one object, not a
future and a record beside it. Its condition is a :class:`FutureCondition`: the same
``threading.Condition`` over an ``RLock``, whose lock methods are the class's rather than
five bound methods made per instance. With no-op tasks the garbage collector's work on
those short-lived objects was the larger part of a submit's cost (``benchmarks/README.md``,
"Lock handoff and lean futures").
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from concurrent.futures._base import PENDING
from typing import Any


class FutureCondition(threading.Condition):
    """``threading.Condition()`` (over a new ``RLock``) without per-instance attributes
    beyond its lock and waiters."""

    def __init__(self) -> None:  # no call of Condition.__init__: it binds five methods
        self._lock = threading.RLock()
        self._waiters: deque[Any] = deque()

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        """Acquire the underlying lock (``RLock.acquire``)."""
        return self._lock.acquire(blocking, timeout)

    def release(self) -> None:
        """Release the underlying lock (``RLock.release``)."""
        self._lock.release()

    def _release_save(self) -> Any:
        return self._lock._release_save()  # type: ignore[attr-defined]

    def _acquire_restore(self, state: Any) -> None:
        self._lock._acquire_restore(state)  # type: ignore[attr-defined]

    def _is_owned(self) -> bool:
        owned: bool = self._lock._is_owned()  # type: ignore[attr-defined]
        return owned


class TaskFuture(Future[Any]):
    """The future of ``fn(*args, **kwargs)``, with what the pool needs to schedule it.

    ``fn``, ``args`` and ``kwargs`` are dropped once the task has its outcome, so a future
    kept by its caller holds no reference to them, as with the standard executor.
    """

    __slots__ = (
        "affinity",
        "args",
        "attempts",
        "cpu_time",
        "fn",
        "journal_id",
        "key",
        "kwargs",
        "priority",
        "resumed",
        "started",
        "submitted",
        "worker",
    )

    def __init__(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        priority: int,
        affinity: int,
        key: Hashable | None = None,
    ) -> None:
        # Future.__init__'s state, written here so that its condition is the lean one;
        # tests/test_executor_contract.py checks it against a plain Future's attributes.
        self._condition = FutureCondition()
        self._state = PENDING
        self._result = None
        self._exception: BaseException | None = None
        self._waiters: list[Any] = []
        self._done_callbacks: list[Callable[[Future[Any]], object]] = []
        self.fn: Callable[..., Any] | None = fn
        self.args: tuple[Any, ...] = args
        self.kwargs: dict[str, Any] = kwargs
        self.priority, self.affinity = priority, affinity
        #: The caller's id for the task (``submit_with(key=...)``), unique among live tasks.
        self.key = key
        #: Attempts begun by this pool, and before it (a journal's task resumed).
        self.attempts = self.resumed = 0
        #: The task's row in the pool's journal (-1: not journaled).
        self.journal_id = -1
        #: Recorded only with ``record=True``: pool seconds, and the last attempt's CPU time.
        self.submitted = self.started = self.cpu_time = math.nan
        self.worker = -1

    def forget_call(self) -> None:
        """Drop the callable and its arguments (the task has its outcome)."""
        self.fn, self.args, self.kwargs = None, (), {}
