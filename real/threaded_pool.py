"""ThreadedPool: a real thread pool driven by a ``pool`` policy object under one lock.

Like ``concurrent.futures.ThreadPoolExecutor`` (which it subclasses) it runs callables
on threads and returns futures; unlike it, a policy decides what runs where (priority,
work stealing, autoscaling), dead or hung workers are detected by heartbeat and
replaced, their tasks retried, and ``max_pending`` bounds the queue.

Every policy call and every change of the pool's state happens under ``_lock``; futures
are resolved outside it, so a callback may submit again. A task's exception goes to its
future and never kills its worker. In library use a task is retried only when its
worker dies (a crash, a hang past the heartbeat timeout, a ``task_timeout``) or when
it raises one of ``retry_exceptions``; delivery is then at-least-once, completion once.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import CancelledError, Executor, Future
from pathlib import Path
from typing import Any

import pandas as pd

from pool import _validate
from pool.faults import Recovery
from pool.policies import Policy, resolve
from pool.records import Recorder
from pool.seeding import run_streams
from real.lifecycle import WorkerLifecycle, _Item
from real.stats import PoolStats, Settlement
from real.supervisor import Supervisor
from real.task_trace import TaskTrace
from real.task_trace import save as save_frame
from real.worker import ThreadWorker, WorkerCrash, WorkerLost


class ThreadedPool(WorkerLifecycle, Executor):
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
        if recovery is not None and not isinstance(recovery, Recovery):
            raise ValueError(f"recovery must be a pool.Recovery or None, got {recovery!r}")
        self.recovery = recovery or Recovery()
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
        self._name = name
        self._recorder = recorder
        if not isinstance(record, bool):
            raise ValueError(f"record must be True or False, got {record!r}")
        max_rows = _validate.integer_at_least("max_rows", max_rows, 1)
        self._trace = TaskTrace(max_rows, self.workers) if record else None
        self._lock = threading.Lock()
        self._space = threading.Condition(self._lock)
        self._items: dict[int, _Item] = {}
        self._next_id = 0
        self._slots: dict[int, ThreadWorker] = {}
        self._idle: dict[int, ThreadWorker] = {}
        self._pending_starts: dict[int, object] = {}
        self._threads: list[threading.Thread] = []
        self._busy = 0
        self._unresolved = 0
        self._shutdown = False
        self._settlements: list[Settlement] = []
        self._counts = dict.fromkeys(PoolStats.COUNTERS, 0)
        self._local = threading.local()
        self.policy.reset(range(self.workers), run_streams(seed).policy)
        self.supervisor = Supervisor(self)
        self._t0 = time.monotonic()
        with self._lock:
            for slot in range(self.workers):
                self._start_worker(slot)
        self.supervisor.start()

    def now(self) -> float:
        """Seconds since the pool began (``time.monotonic`` based)."""
        return time.monotonic() - self._t0

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
        if self._trace is not None:
            item.submitted = self.now()
        with self._lock:
            if self._shutdown or self.max_pending is not None:
                self._wait_for_space()
            task = self._next_id
            self._next_id += 1
            self._items[task] = item
            try:
                self._enqueue(task)
            except BaseException:  # e.g. Ctrl-C inside the policy: the task never was
                del self._items[task]
                raise
            self._unresolved += 1
        return item.future

    def _wait_for_space(self) -> None:
        deadline = None if self.submit_timeout is None else time.monotonic() + self.submit_timeout
        while True:
            if self._shutdown:
                raise RuntimeError("cannot submit to a pool that is shut down")
            if self.max_pending is None or self.policy.queued() < self.max_pending:
                return
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise TimeoutError(f"no queue space within submit_timeout={self.submit_timeout}s")
            self._space.wait(remaining)

    def shutdown(
        self, wait: bool = True, cancel_pending: bool = False, *, cancel_futures: bool = False
    ) -> None:
        """Stop accepting tasks; finish queued ones (or cancel them with ``cancel_pending``)
        and stop the threads. With ``wait``, return once every thread has ended.
        Idempotent. ``cancel_futures`` is the ``Executor`` name of ``cancel_pending``."""
        cancelled: list[Future[Any]] = []
        with self._lock:
            if not self._shutdown:
                self._shutdown = True
                if cancel_pending or cancel_futures:
                    cancelled = self._drain_queue()
                self._wake_everyone()
        for future in cancelled:
            if not future.cancel():  # a retry waiting in the queue: its future is running
                future.set_exception(CancelledError("cancelled at shutdown before its retry"))
        if wait:
            self.supervisor.thread.join()
            with self._lock:
                threads = list(self._threads)
            for thread in threads:
                thread.join()

    def stats(self) -> PoolStats:
        """A frozen snapshot of the pool's state and counters."""
        with self._lock:
            serving = sum(1 for worker in self._slots.values() if not worker.declared_dead)
            return PoolStats(
                workers=serving, busy=self._busy, queued=self.policy.queued(), **self._counts
            )

    def trace(self) -> pd.DataFrame:
        """The recorded tasks, one row per finished task (``record=True`` only).

        Columns: ``task_id``, ``submitted``, ``started``, ``ended`` (pool seconds; ``started``
        and ``ended`` of the last attempt), ``worker``, ``priority``, ``status``
        (completed, failed, cancelled), ``attempts``, ``cpu_time`` (seconds of the worker
        thread's CPU over the last attempt) and ``pool_workers``. ``attrs["dropped"]``
        counts the oldest rows dropped to stay within ``max_rows``.
        """
        if self._trace is None:
            raise RuntimeError("this pool records no trace: create it with record=True")
        with self._lock:
            return self._trace.frame()

    def save_trace(self, path: str | os.PathLike[str]) -> Path:
        """Write :meth:`trace` to ``path`` (``.parquet`` or ``.csv``); returns the path."""
        return save_frame(self.trace(), path)

    def current_worker(self) -> ThreadWorker | None:
        """The worker running the calling thread, or None outside the pool's workers."""
        worker: ThreadWorker | None = getattr(self._local, "worker", None)
        return worker

    # -- queueing (lock held) --------------------------------------------------------------

    def _enqueue(self, task: int) -> None:
        item = self._items[task]
        target = self.policy.submit(task, item.priority, item.affinity, self.now())
        idle = self._idle
        if not idle:
            return
        worker = idle.pop(target) if target is not None and target in idle else None
        if worker is None and (target is None or self.policy.can_steal):
            worker = idle.popitem()[1]
        if worker is not None:
            worker.wake.notify()

    def _drain_queue(self) -> list[Future[Any]]:
        now, drained = self.now(), []
        for slot in list(self._slots):
            while (task := self.policy.next_task(slot, now)) is not None:
                drained.append(self._items[task].future)
                if self._trace is not None:
                    self._log(task, "cancelled", now)
                self._resolve(task)
        self._counts["cancelled"] += len(drained)
        # Queued where no serving worker can reach them (all workers dead or restarting):
        # cancel their futures; whoever dequeues one later skips it and counts it then.
        return drained + [item.future for item in self._items.values() if item.attempts == 0]

    def _resolve(self, task: int) -> None:
        del self._items[task]
        self._unresolved -= 1
        if self._shutdown and not self._unresolved:
            self._wake_everyone()

    def _wake_everyone(self) -> None:
        for worker in self._slots.values():
            worker.wake.notify()
        self._idle.clear()
        self._space.notify_all()
        self.supervisor.wake.notify()

    def _finished(self) -> bool:
        return self._shutdown and not self._unresolved

    def _event(self, time_s: float, kind: str, worker: int = -1, task: int = -1) -> None:
        if self._recorder is not None:
            self._recorder.event(time_s, kind, worker, task)


__all__ = ["ThreadedPool", "WorkerCrash", "WorkerLost"]
