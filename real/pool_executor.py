"""What the pools of real workers share: their executor interface over the pool core.

:class:`PoolExecutor` is the ``concurrent.futures.Executor`` of :class:`real.ThreadedPool`
(tasks on threads) and :class:`real.ProcessPool` (tasks in processes): argument checks,
``submit``/``submit_with``, shutdown, ``stats``, the recorded trace, and the finalizer
that ends the workers of a pool dropped without ``shutdown``. Each subclass says which
backend (:class:`real.lifecycle.WorkerThreads` or a subclass) runs its workers.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Callable, Hashable
from concurrent.futures import Executor, Future
from pathlib import Path
from typing import Any

import pandas as pd

from pool import _validate
from pool.faults import Recovery
from pool.policies import Policy, resolve
from pool.records import Recorder
from real.journaled_pool import JournaledSubmits
from real.lifecycle import WorkerThreads
from real.locking import take as take_lock
from real.stats import PoolStats
from real.task_future import TaskFuture
from real.task_trace import TaskTrace
from real.task_trace import save as save_frame
from real.worker import ThreadWorker


class PoolExecutor(JournaledSubmits, Executor):
    """A pool of ``workers`` scheduled by ``policy``, recovering per ``recovery`` (see
    :class:`real.ThreadedPool` for the options)."""

    _backend: WorkerThreads

    def _setup(
        self,
        policy: str | Policy,
        workers: int,
        recovery: Recovery | None,
        *,
        max_pending: int | None,
        submit_timeout: float | None,
        retry_exceptions: tuple[type[BaseException], ...],
        seed: int,
        name: str,
        initializer: Callable[..., object] | None,
        initargs: tuple[Any, ...],
        recorder: Recorder | None,
        record: bool,
        max_rows: int,
        journal: str | os.PathLike[str] | None = None,
        journal_encoding: str = "json",
        journal_results: bool = False,
        backend_type: type[WorkerThreads] = WorkerThreads,
        **backend_options: Any,
    ) -> None:
        """Check the options, open the journal and start the workers, then queue the
        journal's unfinished tasks (subclasses' ``__init__`` call it)."""
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
        if initializer is not None and not callable(initializer):
            raise TypeError(f"initializer must be a callable, got {initializer!r}")
        if not isinstance(initargs, tuple):
            raise TypeError(f"initargs must be a tuple, got {initargs!r}")
        self._open_journal(journal, journal_encoding, journal_results)
        try:
            self._start(
                backend_type,
                seed,
                name,
                initializer,
                initargs,
                recorder,
                record,
                max_rows,
                backend_options,
            )
        except BaseException:
            if self.journal is not None:
                self.journal.close()
            raise
        if self.journal is not None:
            self._backend.journal = self.journal
            try:
                self._resume()
            except BaseException:  # e.g. a failing initializer broke the pool meanwhile
                self._backend.shutdown(True, True)
                self.journal.close()
                raise

    def _start(
        self,
        backend_type: type[WorkerThreads],
        seed: int,
        name: str,
        initializer: Callable[..., object] | None,
        initargs: tuple[Any, ...],
        recorder: Recorder | None,
        record: bool,
        max_rows: int,
        backend_options: dict[str, Any],
    ) -> None:
        self._backend = backend_type(
            self.policy,
            self.recovery,
            workers=self.workers,
            seed=seed,
            name=name,
            retry_exceptions=self.retry_exceptions,
            max_pending=self.max_pending,
            recorder=recorder,
            trace=TaskTrace(max_rows, self.workers) if record else None,
            initializer=initializer,
            initargs=initargs,
            **backend_options,
        )
        # A pool dropped without shutdown: its supervisor sees this and ends the threads
        # once the queued tasks are done (no lock taken here: it may run inside the GC).
        weakref.finalize(self, _dropped, self._backend).atexit = False

    def now(self) -> float:
        """Seconds since the pool began (``time.monotonic`` based)."""
        return self._backend.now()

    # -- the library interface -----------------------------------------------------------

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        """Schedule ``fn(*args, **kwargs)`` (every argument passed through) and return its
        future. Raises RuntimeError after shutdown, BrokenThreadPool once broken."""
        if not callable(fn):
            raise TypeError(f"fn must be callable, got {fn!r}")
        if self.journal is not None:
            return self._journaled(fn, args, kwargs, 0, -1, None)
        return self._enqueue(TaskFuture(fn, args, kwargs, 0, -1))

    def submit_with(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
        *,
        priority: int = 0,
        affinity: int | None = None,
        key: Hashable | None = None,
    ) -> Future[Any]:
        """Schedule ``fn(*args, **kwargs)`` with the pool's own options: ``priority`` (0 is
        most urgent), ``affinity`` (a preferred worker slot) and ``key`` (the caller's id
        for the task, unique among the pool's unfinished tasks). Returns its future.

        With a journal, ``key`` is a str, unique in the journal: a key it already holds
        returns that task's future: the live one while the task is unsettled, else one
        resolved at once from the journal (its result, or a
        :class:`real.journal.JournaledTaskError` with the recorded error's text)."""
        if not callable(fn):
            raise TypeError(f"fn must be callable, got {fn!r}")
        if type(priority) is not int or priority < 0:  # the common case checked cheaply
            priority = _validate.integer_at_least("priority", priority, 0)
        affinity = -1 if affinity is None else _validate.integer_at_least("affinity", affinity, 0)
        if key is not None and not isinstance(key, Hashable):
            raise TypeError(f"key must be hashable, got {key!r}")
        kwargs = {} if kwargs is None else kwargs
        if self.journal is not None:
            return self._journaled(fn, args, kwargs, priority, affinity, key)
        return self._enqueue(self._task(fn, args, kwargs, priority, affinity, key))

    def _task(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        priority: int,
        affinity: int,
        key: Hashable | None,
    ) -> TaskFuture:
        """The future and record of a new task (a process pool pickles the call here)."""
        return TaskFuture(fn, args, kwargs, priority, affinity, key)

    def _enqueue(self, item: TaskFuture, resumed: bool = False) -> Future[Any]:
        """Queue ``item``; one ``resumed`` from the journal needs no room (max_pending)."""
        backend = self._backend
        if backend.trace is not None:
            item.submitted = backend.now()
        take_lock(backend.lock)
        try:
            backend.add(item, self.submit_timeout, needs_room=not resumed)
        finally:
            backend.lock.release()
        return item

    def shutdown(
        self, wait: bool = True, cancel_pending: bool = False, *, cancel_futures: bool = False
    ) -> None:
        """Stop accepting tasks; finish queued ones (or cancel them with ``cancel_pending``)
        and stop the threads. With ``wait``, return once every thread has ended (from one
        of the pool's own tasks: RuntimeError, it would wait for itself). Idempotent.
        ``cancel_futures`` is the ``Executor`` name of ``cancel_pending``. With ``wait``,
        the journal is closed once every outcome is written (cancelled tasks stay pending
        in it); without, at the interpreter's exit."""
        self._backend.shutdown(wait, cancel_pending or cancel_futures)
        if wait:
            self._close_journal()

    def stats(self) -> PoolStats:
        """A frozen snapshot of the pool's state and counters."""
        with self._backend.lock:
            return self._backend.stats()

    def trace(self) -> pd.DataFrame:
        """The recorded tasks, one row per finished task (``record=True`` only).

        Columns: ``task_id``, ``submitted``, ``started``, ``ended`` (pool seconds; ``started``
        and ``ended`` of the last attempt), ``worker``, ``priority``, ``status``
        (completed, failed, cancelled), ``attempts``, ``cpu_time`` (seconds of the worker
        thread's CPU over the last attempt) and ``pool_workers``. ``attrs["dropped"]``
        counts the oldest rows dropped to stay within ``max_rows``.
        """
        backend = self._backend
        if backend.trace is None:
            raise RuntimeError("this pool records no trace: create it with record=True")
        with backend.lock:
            return backend.trace.frame()

    def save_trace(self, path: str | os.PathLike[str]) -> Path:
        """Write :meth:`trace` to ``path`` (``.parquet`` or ``.csv``); returns the path."""
        return save_frame(self.trace(), path)

    def current_worker(self) -> ThreadWorker | None:
        """The worker running the calling thread, or None outside the pool's workers."""
        return self._backend.current_worker()


def _dropped(backend: WorkerThreads) -> None:
    backend.dropped = True
