"""ThreadedPool: a real thread pool driven by a ``pool`` policy object under one lock.

A drop-in for ``concurrent.futures.ThreadPoolExecutor`` (which it subclasses, so asyncio
takes it as its default executor): ``submit(fn, *args, **kwargs)`` passes every argument
through, ``initializer``/``initargs`` and ``thread_name_prefix`` work alike, the
interpreter waits for pending tasks at exit, a pool dropped without ``shutdown`` ends
its threads, and a broken pool (a policy hook or an initializer raised) fails its
pending futures with ``BrokenThreadPool``. Unlike it, a policy decides what runs where (priority,
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

import itertools
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from pool.faults import Recovery
from pool.policies import Policy
from pool.records import Recorder
from real.pool_executor import PoolExecutor
from real.worker import WorkerCrash, WorkerLost

_POOL_NUMBERS = itertools.count()


class ThreadedPool(PoolExecutor, ThreadPoolExecutor):
    """A pool of ``workers`` threads scheduled by ``policy``, recovering per ``recovery``.

    ``max_pending`` bounds the queued tasks: ``submit`` then blocks, for at most
    ``submit_timeout`` seconds (then ``TimeoutError``). ``retry_exceptions`` lists the
    exception types a task is retried on. ``recorder`` (used by :func:`real.run`) records
    every attempt for a :class:`pool.RunResult`. With ``record`` the pool keeps one row per
    finished task, the last ``max_rows`` of them (:meth:`trace`, :meth:`save_trace`), for
    ``pool.fit``. Times are seconds since the pool began. Threads are named
    ``{thread_name_prefix}_{slot}`` (default prefix ``poolbench-N``, N unique per pool);
    each runs ``initializer(*initargs)`` first.

    ``journal`` (a file path): keep every task in that SQLite journal (:mod:`real.journal`)
    so that none is lost with the process: a task is written before ``submit`` returns, as
    its function's importable name and its arguments as JSON (``journal_encoding="pickle"``
    for any picklable arguments: a journal of pickles runs code when it is read), and its
    attempts and outcome follow (its result too with ``journal_results``). A pool opened
    on a journal with unfinished tasks runs them again, counting their earlier attempts
    against ``recovery.max_attempts``; ``pool.journal.tasks()`` lists them all.
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
        thread_name_prefix: str = "",
        initializer: Callable[..., object] | None = None,
        initargs: tuple[Any, ...] = (),
        recorder: Recorder | None = None,
        record: bool = False,
        max_rows: int = 100_000,
        journal: str | os.PathLike[str] | None = None,
        journal_encoding: str = "json",
        journal_results: bool = False,
    ) -> None:
        # ThreadPoolExecutor.__init__ is not called: this pool keeps its own state; the
        # base class is there for isinstance checks (asyncio's default executor).
        if not isinstance(thread_name_prefix, str):
            raise TypeError(f"thread_name_prefix must be a str, got {thread_name_prefix!r}")
        prefix = thread_name_prefix or f"poolbench-{next(_POOL_NUMBERS)}"
        self._thread_name_prefix = prefix
        self._setup(
            policy,
            workers,
            recovery,
            max_pending=max_pending,
            submit_timeout=submit_timeout,
            retry_exceptions=retry_exceptions,
            seed=seed,
            name=prefix,
            initializer=initializer,
            initargs=initargs,
            recorder=recorder,
            record=record,
            max_rows=max_rows,
            journal=journal,
            journal_encoding=journal_encoding,
            journal_results=journal_results,
        )
        self._max_workers = self.workers


__all__ = ["ThreadedPool", "WorkerCrash", "WorkerLost"]
