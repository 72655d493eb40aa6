"""ProcessPool: the pool's policies over worker processes that survive real kills.

Threads cannot run Python code on more than one core; a pool of processes can. Where
``ProcessPoolExecutor`` turns every pending future into ``BrokenProcessPool`` when one
worker is killed, this pool replaces the worker and retries only the task it was running
(up to ``max_attempts``, then ``WorkerLost``). Scheduling is the same pool core and
policy objects as :class:`real.ThreadedPool`, run in the parent: priorities, work
stealing, autoscaling, backpressure, ``stats()`` and ``record=True`` traces behave alike.

Tasks cross the process boundary pickled (the standard ``pickle``: functions and classes
are sent by reference and must be importable in the child, so lambdas and closures are
refused at ``submit`` with the reason; cloudpickle would send them by value, at the cost
of a dependency and of a second serializer to reason about, and is not used). A result
or exception that cannot be pickled fails that future only.
"""

from __future__ import annotations

import itertools
import os
import pickle
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from multiprocessing.context import BaseContext
from typing import Any, ClassVar

from pool import _validate
from pool.faults import Recovery
from pool.policies import Policy
from pool.records import Recorder
from real.pool_executor import PoolExecutor
from real.process_worker import context_named
from real.processes import WorkerProcesses
from real.task_future import TaskFuture

_POOL_NUMBERS = itertools.count()


def _pickled(what: str, value: object) -> bytes:
    try:
        return pickle.dumps(value, pickle.HIGHEST_PROTOCOL)
    except Exception as error:
        raise TypeError(
            f"{what} must be picklable to reach a worker process "
            f"(importable functions and classes, not lambdas or closures): {error}"
        ) from error


class ProcessPool(PoolExecutor):
    """A pool of ``workers`` processes scheduled by ``policy``, recovering per ``recovery``.

    The options shared with :class:`real.ThreadedPool` mean the same. ``mp_context`` is a
    start method ("forkserver", "spawn", "fork") or a multiprocessing context (default
    "forkserver" where available: the parent runs threads, and forking a process with
    threads can deadlock the child). ``max_tasks_per_child`` replaces a worker's process
    after that many tasks, ``max_child_memory_mb`` after a task that leaves its peak
    resident memory (``ru_maxrss``, which counts pages shared with the fork server)
    above that many MB. Each process runs ``initializer(*initargs)`` first (a failure
    breaks the pool: ``BrokenProcessPool``). Processes are named ``{name_prefix}_{slot}``.

    A worker process that exits is noticed at once (its sentinel); one that stops
    answering is noticed by heartbeat (``recovery.heartbeat_timeout``) and killed. A C
    call that holds a child's interpreter lock longer than that counts as a hang.
    ``journal``, ``journal_encoding`` and ``journal_results`` keep the tasks in a journal
    file, as in :class:`real.ThreadedPool`.
    """

    #: The backend that runs the workers (a subclass may build each attempt's message).
    _backend_type: ClassVar[type[WorkerProcesses]] = WorkerProcesses

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
        max_tasks_per_child: int | None = None,
        max_child_memory_mb: float | None = None,
        mp_context: str | BaseContext | None = None,
        name_prefix: str = "",
        initializer: Callable[..., object] | None = None,
        initargs: tuple[Any, ...] = (),
        recorder: Recorder | None = None,
        record: bool = False,
        max_rows: int = 100_000,
        journal: str | os.PathLike[str] | None = None,
        journal_encoding: str = "json",
        journal_results: bool = False,
    ) -> None:
        context = context_named(mp_context)
        if max_tasks_per_child is not None:
            _validate.integer_at_least("max_tasks_per_child", max_tasks_per_child, 1)
        if max_child_memory_mb is not None:
            _validate.positive("max_child_memory_mb", max_child_memory_mb)
        if not isinstance(name_prefix, str):
            raise TypeError(f"name_prefix must be a str, got {name_prefix!r}")
        if initializer is not None:
            _pickled("initializer and initargs", (initializer, initargs))
        self.name_prefix = name_prefix or f"poolbench-process-{next(_POOL_NUMBERS)}"
        self._setup(
            policy,
            workers,
            recovery,
            max_pending=max_pending,
            submit_timeout=submit_timeout,
            retry_exceptions=retry_exceptions,
            seed=seed,
            name=self.name_prefix,
            initializer=initializer,
            initargs=initargs,
            recorder=recorder,
            record=record,
            max_rows=max_rows,
            journal=journal,
            journal_encoding=journal_encoding,
            journal_results=journal_results,
            backend_type=self._backend_type,
            context=context,
            max_tasks_per_child=max_tasks_per_child,
            max_child_memory_mb=max_child_memory_mb,
        )

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        """Schedule ``fn(*args, **kwargs)`` in a worker process; return its future. Refuses
        (TypeError) what cannot be pickled."""
        if not callable(fn):
            raise TypeError(f"fn must be callable, got {fn!r}")
        if self.journal is not None:
            return self._journaled(fn, args, kwargs, 0, -1, None)
        return self._enqueue(self._task(fn, args, kwargs, 0, -1, None))

    def _task(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        priority: int,
        affinity: int,
        key: Hashable | None,
    ) -> TaskFuture:
        """The task with its call pickled (the worker's thread sends these bytes)."""
        _pickled("fn", fn)
        call = _pickled("fn's arguments", (fn, args, kwargs))
        return TaskFuture(fn, (call,), {}, priority, affinity, key)

    def worker_pids(self) -> list[int]:
        """Process ids of the live worker processes."""
        backend = self._backend
        assert isinstance(backend, WorkerProcesses)
        with backend.lock:
            return backend.pids()


__all__ = ["ProcessPool"]
