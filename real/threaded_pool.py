"""ThreadedPool: a real thread pool driven by a ``pool`` policy object under one lock.

Like ``concurrent.futures.ThreadPoolExecutor`` (which it subclasses) it runs callables
on threads and returns futures; unlike it, a policy decides what runs where (priority,
work stealing, autoscaling), dead or hung workers are detected by heartbeat and
replaced, their tasks retried, and ``max_pending`` bounds the queue.

Its decisions are the pool core's (:mod:`pool.core`), driven by the worker threads of
:mod:`real.lifecycle` under one lock; futures are resolved outside it, so a callback may
submit again. A task's exception goes to its
future and never kills its worker. In library use a task is retried only when its
worker dies (a crash, a hang past the heartbeat timeout, a ``task_timeout``) or when
it raises one of ``retry_exceptions``; delivery is then at-least-once, completion once.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import CancelledError, Executor, Future
from pathlib import Path
from typing import Any

import pandas as pd

from pool import _validate
from pool.faults import Recovery
from pool.policies import Policy, resolve
from pool.records import Recorder
from real.lifecycle import WorkerThreads, _Item
from real.stats import PoolStats
from real.task_trace import TaskTrace
from real.task_trace import save as save_frame
from real.worker import ThreadWorker, WorkerCrash, WorkerLost


class ThreadedPool(Executor):
    """A pool of ``workers`` threads scheduled by ``policy``, recovering per ``recovery``.

    ``max_pending`` bounds the queued tasks: ``submit`` then blocks, for at most
    ``submit_timeout`` seconds (then ``TimeoutError``). ``retry_exceptions`` lists the
    exception types a task is retried on. ``recorder`` (used by :func:`real.run`) records
    every attempt for a :class:`pool.RunResult`. With ``record`` the pool keeps one row per
    finished task, the last ``max_rows`` of them (:meth:`trace`, :meth:`save_trace`), for
    ``pool.fit``. Times are seconds since the pool began.
    """

    def __init__(
        self,
        policy: str | Policy = "fifo",
        workers: int = 4,
        recovery: Recovery | None = None,
        *,
        max_pending: int | None = None,
        submit_timeout: float | None = None,
        retry_exceptions: tuple[type[BaseException], ...] = (),
        seed: int = 0,
        name: str = "poolbench",
        recorder: Recorder | None = None,
        record: bool = False,
        max_rows: int = 100_000,
    ) -> None:
        self.policy = resolve(policy)
        self.workers = _validate.integer_at_least("workers", workers, 1)
        self.recovery = _validate.optional("recovery", recovery, Recovery, Recovery)
        if max_pending is not None:
            _validate.integer_at_least("max_pending", max_pending, 1)
        self.max_pending = max_pending
        if submit_timeout is not None:
            _validate.non_negative("submit_timeout", submit_timeout)
        self.submit_timeout = submit_timeout
        if not isinstance(retry_exceptions, tuple) or not all(
            isinstance(kind, type) and issubclass(kind, BaseException) for kind in retry_exceptions
        ):
            raise ValueError(
                f"retry_exceptions must be a tuple of exception types, got {retry_exceptions!r}"
            )
        self.retry_exceptions = retry_exceptions
        if not isinstance(record, bool):
            raise ValueError(f"record must be True or False, got {record!r}")
        max_rows = _validate.integer_at_least("max_rows", max_rows, 1)
        self._threads = WorkerThreads(
            self.policy,
            self.recovery,
            workers=self.workers,
            seed=seed,
            name=name,
            retry_exceptions=retry_exceptions,
            max_pending=max_pending,
            recorder=recorder,
            trace=TaskTrace(max_rows, self.workers) if record else None,
        )

    def now(self) -> float:
        """Seconds since the pool began (``time.monotonic`` based)."""
        return self._threads.now()

    # -- the library interface -----------------------------------------------------------

    def submit(  # type: ignore[override]
        self,
        fn: Callable[..., Any],
        /,
        *args: Any,
        priority: int = 0,
        affinity: int | None = None,
        **kwargs: Any,
    ) -> Future[Any]:
        """Schedule ``fn(*args, **kwargs)``; ``priority`` 0 is most urgent, ``affinity`` a
        preferred worker slot. Returns its future. Raises RuntimeError after shutdown."""
        if not callable(fn):
            raise TypeError(f"fn must be callable, got {fn!r}")
        if type(priority) is not int or priority < 0:  # the common case checked cheaply
            priority = _validate.integer_at_least("priority", priority, 0)
        affinity = -1 if affinity is None else _validate.integer_at_least("affinity", affinity, 0)
        item = _Item(fn, args, kwargs, Future(), priority, affinity)
        threads = self._threads
        if threads.trace is not None:
            item.submitted = threads.now()
        with threads.lock:
            threads.add(item, self.submit_timeout)
        return item.future

    def shutdown(
        self, wait: bool = True, cancel_pending: bool = False, *, cancel_futures: bool = False
    ) -> None:
        """Stop accepting tasks; finish queued ones (or cancel them with ``cancel_pending``)
        and stop the threads. With ``wait``, return once every thread has ended.
        Idempotent. ``cancel_futures`` is the ``Executor`` name of ``cancel_pending``."""
        threads = self._threads
        with threads.lock:
            cancelled = threads.close(cancel_pending or cancel_futures)
        for future in cancelled:
            if not future.cancel():  # a retry waiting in the queue: its future is running
                future.set_exception(CancelledError("cancelled at shutdown before its retry"))
        if wait:
            threads.supervisor.thread.join()
            with threads.lock:
                started = list(threads.threads)
            for thread in started:
                thread.join()

    def stats(self) -> PoolStats:
        """A frozen snapshot of the pool's state and counters."""
        with self._threads.lock:
            return self._threads.stats()

    def trace(self) -> pd.DataFrame:
        """The recorded tasks, one row per finished task (``record=True`` only).

        Columns: ``task_id``, ``submitted``, ``started``, ``ended`` (pool seconds; ``started``
        and ``ended`` of the last attempt), ``worker``, ``priority``, ``status``
        (completed, failed, cancelled), ``attempts``, ``cpu_time`` (seconds of the worker
        thread's CPU over the last attempt) and ``pool_workers``. ``attrs["dropped"]``
        counts the oldest rows dropped to stay within ``max_rows``.
        """
        threads = self._threads
        if threads.trace is None:
            raise RuntimeError("this pool records no trace: create it with record=True")
        with threads.lock:
            return threads.trace.frame()

    def save_trace(self, path: str | os.PathLike[str]) -> Path:
        """Write :meth:`trace` to ``path`` (``.parquet`` or ``.csv``); returns the path."""
        return save_frame(self.trace(), path)

    def current_worker(self) -> ThreadWorker | None:
        """The worker running the calling thread, or None outside the pool's workers."""
        return self._threads.current_worker()


__all__ = ["ThreadedPool", "WorkerCrash", "WorkerLost"]
