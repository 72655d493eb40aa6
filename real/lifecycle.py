"""The threaded pool's side of the pool core: worker threads under one lock, and futures.

:class:`WorkerThreads` is the :class:`pool.core.Backend` of :class:`real.ThreadedPool`:
it starts and wakes threads, keeps the tasks' callables and futures, and runs each
worker's loop. Every decision (what a worker runs, whom a submit wakes, retries,
restarts, retirement, scaling) is the core's. Everything here runs with the lock held,
except the worker loop's calls of tasks and what settles futures (callbacks may run).

As with the standard executor, the interpreter does not exit before every pool's
pending tasks are done (an exit hook shuts the pools down and waits), and the worker
threads are not daemons.
"""

from __future__ import annotations

import functools
import logging
import math
import threading
import time
import weakref
from collections.abc import Callable, Hashable
from concurrent.futures import BrokenExecutor, CancelledError, Future
from concurrent.futures.thread import BrokenThreadPool
from typing import TYPE_CHECKING, Any, ClassVar

from pool.core import STOLE, PoolCore
from pool.faults import Recovery
from pool.policies import Policy
from pool.records import Recorder
from pool.seeding import run_streams
from real.locking import new_lock
from real.locking import take as take_lock
from real.stats import PoolStats, fail_unstarted, run_all, settle
from real.supervisor import Supervisor
from real.task_future import TaskFuture
from real.task_trace import TaskTrace
from real.worker import ThreadWorker, WorkerCrash

if TYPE_CHECKING:
    from real.journal import Journal

#: The standard executors' logger: a failing initializer is reported there, as by them.
LOGGER = logging.getLogger("concurrent.futures")
_EXIT, _AGAIN = -1, -3
_CANCELLED = object()
#: Pools whose threads may still run, for the exit hook.
_LIVE: weakref.WeakSet[WorkerThreads] = weakref.WeakSet()
_EXITING = threading.Event()


def _at_interpreter_exit() -> None:
    """Before the interpreter joins its threads: let every pool finish its pending tasks."""
    _EXITING.set()
    for threads in list(_LIVE):
        threads.shutdown(wait=True, cancel_pending=False)


# The hook the standard executor uses too: it runs before non-daemon threads are joined.
getattr(threading, "_register_atexit")(_at_interpreter_exit)  # noqa: B009 - private API


def _raised_in_task(error: Exception) -> Exception:
    """``error`` with its traceback from the task's own frame on: the worker loop's frame
    (and all it holds) is not kept alive by a failed future."""
    trace = error.__traceback__
    return error.with_traceback(trace.tb_next if trace is not None else None)


class WorkerThreads:
    """The threads, lock and tasks of one :class:`real.ThreadedPool`, driving its core.

    Times are pool seconds (``time.monotonic`` since the pool began). ``recorder``
    receives every attempt (for :func:`real.run`), ``trace`` one row per finished task.
    A subclass may run tasks elsewhere (:class:`real.processes.WorkerProcesses`): its
    threads then only dispatch, through :meth:`call_elsewhere`.
    """

    #: The state kept per worker.
    worker_type: ClassVar[type[ThreadWorker]] = ThreadWorker
    #: Whether tasks run in :meth:`call_elsewhere` rather than on the worker thread.
    runs_elsewhere: ClassVar[bool] = False

    def __init__(
        self,
        policy: Policy,
        recovery: Recovery,
        *,
        workers: int,
        seed: int,
        name: str,
        retry_exceptions: tuple[type[BaseException], ...],
        max_pending: int | None,
        recorder: Recorder | None,
        trace: TaskTrace | None,
        initializer: Callable[..., object] | None = None,
        initargs: tuple[Any, ...] = (),
    ) -> None:
        self.policy, self.recovery, self.name = policy, recovery, name
        self.retry_exceptions, self.max_pending = retry_exceptions, max_pending
        self.recorder, self.trace = recorder, trace
        self.initializer, self.initargs = initializer, initargs
        #: The pool's journal (set by the pool once it is open), told of every attempt.
        self.journal: Journal | None = None
        #: The pool lock (an RLock, see :mod:`real.locking`).
        self.lock = new_lock()
        #: Notified when queue space frees up (``max_pending``) or the pool shuts down.
        self.space = threading.Condition(self.lock)
        self.items: dict[int, TaskFuture] = {}
        self.keys: dict[Hashable, int] = {}
        self.next_id = 0
        self.threads: list[threading.Thread] = []
        self.unresolved = 0
        self.shutting_down = False
        #: Set when a policy hook or a thread initializer raised: nothing runs any more.
        self.broken: BrokenExecutor | None = None
        #: Set (without the lock) when the ThreadedPool was dropped without shutdown.
        self.dropped = False
        #: What settles futures decided under the lock, to run outside it.
        self.outcomes: list[Callable[[], None]] = []
        self._local = threading.local()
        policy.reset(range(workers), run_streams(seed).policy)
        self.core: PoolCore[ThreadWorker] = PoolCore(policy, recovery, self, recorder)
        self.supervisor = Supervisor(self)
        self._t0 = time.monotonic()
        with self.lock:
            for slot in range(workers):
                self.core.start_worker(slot)
        _LIVE.add(self)
        self.supervisor.start()

    # -- the backend's hooks (pool.core.Backend; lock held) --------------------------------

    def now(self) -> float:
        """Seconds since the pool began."""
        return time.monotonic() - self._t0

    def spawn(self, slot: int) -> ThreadWorker:
        """Start a worker thread for ``slot``; it runs once the lock is free."""
        now = self.now()
        worker = self.worker_type(
            slot, now, wake=threading.Condition(self.lock), last_heartbeat=now
        )
        worker.thread = threading.Thread(
            target=self._work, args=(worker,), name=f"{self.name}_{slot}"
        )
        self.threads.append(worker.thread)
        worker.thread.start()
        return worker

    def wake(self, worker: ThreadWorker) -> None:
        """Wake a worker waiting on its condition."""
        worker.wake.notify()

    def at(self, due: float, action: Callable[[], None]) -> None:
        """Run ``action`` at pool time ``due`` on the supervisor's thread."""
        self.supervisor.schedule(due, action)

    def place(self, task: int) -> None:
        """Submit ``task`` through the core with its priority and affinity."""
        item = self.items.get(task)
        if item is not None:  # else resolved meanwhile (a broken pool failed it)
            self.core.submit(task, item.priority, item.affinity, self.now())

    def attempts(self, task: int) -> int:
        """Attempts of ``task`` begun so far (with those before a journal's restart)."""
        item = self.items[task]
        return item.resumed + item.attempts

    def failed(self, task: int, error: BaseException) -> None:
        """``task`` failed for good: its future gets ``error`` (outside the lock)."""
        if self.trace is not None:
            self.log(task, "failed", self.now())
        self.outcomes.append(functools.partial(settle, (self.items[task], None, error)))
        self.resolve(task)

    def released(self, worker: ThreadWorker) -> None:
        """A worker declared dead: if it waits, let it see so and end."""
        worker.wake.notify()

    # -- tasks (lock held) -----------------------------------------------------------------

    def add(self, item: TaskFuture, submit_timeout: float | None, needs_room: bool = True) -> None:
        """Queue a new task, waiting up to ``submit_timeout`` s for space (``max_pending``)
        unless it ``needs_room`` not (a task taken back from a journal)."""
        if self.shutting_down or (self.max_pending is not None and needs_room):
            self._wait_for_space(submit_timeout)
        if item.key is not None and item.key in self.keys:
            raise ValueError(f"key {item.key!r} is already a task of this pool")
        task = self.next_id
        self.next_id += 1
        self.items[task] = item
        queued_before: int | None = None  # unknown if the interrupt comes first
        try:
            queued_before = self.policy.queued()
            self.core.submit(task, item.priority, item.affinity, self.now())
        except BrokenThreadPool as broken:  # the policy raised: nothing is queued any more
            del self.items[task]
            self.break_pool(broken)
            raise self._broken_error()  # noqa: B904 - its __cause__ is the policy's error
        except BaseException:  # e.g. Ctrl-C, inside the policy's submit or after it
            self._interrupted_submit(task, item, queued_before)
            raise
        if item.key is not None:
            self.keys[item.key] = task
        self.unresolved += 1

    def _interrupted_submit(self, task: int, item: TaskFuture, queued_before: int | None) -> None:
        """A submit was interrupted (its caller gets the exception, not the future). If the
        policy kept the task, leave it to be found cancelled by the worker that takes it,
        and wake every worker (one may have been taken off the idle set, not woken)."""
        try:
            kept = queued_before is not None and self.policy.queued() > queued_before
        except Exception:
            kept = False
        if not kept:  # the task never was
            del self.items[task]
            return
        item.cancel()
        self.unresolved += 1
        for worker in self.core.slots.values():
            worker.wake.notify()

    def _wait_for_space(self, submit_timeout: float | None) -> None:
        deadline = None if submit_timeout is None else time.monotonic() + submit_timeout
        while True:
            if self.broken is not None:
                raise self._broken_error()
            if _EXITING.is_set():
                raise RuntimeError("cannot schedule new futures after interpreter shutdown")
            if self.shutting_down:
                raise RuntimeError("cannot submit to a pool that is shut down")
            if self.core.has_room(self.max_pending):
                return
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise TimeoutError(f"no queue space within submit_timeout={submit_timeout}s")
            self.space.wait(remaining)

    def _broken_error(self) -> BrokenExecutor:
        assert self.broken is not None
        error = type(self.broken)(*self.broken.args)
        error.__cause__ = self.broken.__cause__
        error.__suppress_context__ = True
        return error

    def break_pool(self, broken: BrokenExecutor) -> None:
        """A policy hook or an initializer raised: fail every task not running (outside
        the lock), accept no more, and let the workers end after their running task."""
        if self.broken is not None:
            return
        self.broken, self.shutting_down = broken, True
        self.core.stopped = True  # no restarts; a running task whose worker dies fails now
        running = {worker.task for worker in self.core.slots.values()}
        for task, item in list(self.items.items()):
            if task not in running:
                self.outcomes.append(functools.partial(fail_unstarted, item, broken))
                self.resolve(task)
        self._wake_everyone()

    def close(self, cancel_pending: bool) -> list[Future[Any]]:
        """Stop accepting tasks; with ``cancel_pending`` drain the queues and return the
        futures to cancel. Idempotent."""
        if self.shutting_down:
            return []
        self.shutting_down = True
        try:
            drained = self._drain_queue() if cancel_pending else []
        except BrokenThreadPool as broken:
            self.break_pool(broken)
            drained = []
        self._wake_everyone()
        return drained

    def shutdown(self, wait: bool, cancel_pending: bool) -> None:
        """Close (see :meth:`close`), cancel what was drained and, with ``wait``, join
        every thread. Call without the lock."""
        with self.lock:
            cancelled = self.close(cancel_pending)
            outcomes = self.take_outcomes()
        run_all(outcomes)
        for future in cancelled:
            if not future.cancel():  # a retry waiting in the queue: its future is running
                future.set_exception(CancelledError("cancelled at shutdown before its retry"))
        if not wait:
            return
        if self.current_worker() is not None:
            raise RuntimeError(
                "shutdown(wait=True) from one of the pool's own tasks would wait for itself"
            )
        self.supervisor.thread.join()
        with self.lock:
            started = list(self.threads)
        for thread in started:
            thread.join()
        _LIVE.discard(self)

    def _drain_queue(self) -> list[Future[Any]]:
        now = self.now()
        drained: list[Future[Any]] = []
        for task in self.core.drain(now):
            drained.append(self.items[task])
            if self.trace is not None:
                self.log(task, "cancelled", now)
            self.resolve(task)
        self.core.counts["cancelled"] += len(drained)
        # Queued where no serving worker can reach them (all workers dead or restarting):
        # cancel their futures; whoever dequeues one later skips it and counts it then.
        return drained + [item for item in self.items.values() if item.attempts == 0]

    def resolve(self, task: int) -> None:
        """``task`` has its outcome: forget it; the last one ends a shutdown."""
        item = self.items.pop(task)
        item.forget_call()
        if item.key is not None:
            del self.keys[item.key]
        self.unresolved -= 1
        if self.shutting_down and not self.unresolved:
            self._wake_everyone()

    def _wake_everyone(self) -> None:
        for worker in self.core.slots.values():
            worker.wake.notify()
        self.core.idle.clear()
        self.space.notify_all()
        self.supervisor.wake.notify()

    def finished(self) -> bool:
        """Whether the pool is shut down with every task resolved."""
        return self.shutting_down and not self.unresolved

    def stats(self) -> PoolStats:
        """A snapshot of the pool's state and counters (lock held)."""
        core = self.core
        serving = sum(1 for worker in core.slots.values() if not worker.declared_dead)
        queued = 0 if self.broken is not None else core.queued()
        return PoolStats(workers=serving, busy=core.busy, queued=queued, **core.counts)

    def current_worker(self) -> ThreadWorker | None:
        """The worker running the calling thread, or None outside the pool's workers."""
        worker: ThreadWorker | None = getattr(self._local, "worker", None)
        return worker

    def log(self, task: int, status: str, now: float) -> None:
        """Add ``task``'s row to the trace (callers check that the pool records one)."""
        assert self.trace is not None
        item = self.items[task]
        if status == "cancelled":  # taken from the queue perhaps, but never run
            item.started = item.cpu_time = math.nan
        self.trace.add(task, item, status, now)

    def take_outcomes(self) -> list[Callable[[], None]]:
        """What settles the futures decided so far, to run outside the lock (lock held)."""
        outcomes, self.outcomes = self.outcomes, []
        return outcomes

    # -- a worker's thread -----------------------------------------------------------------

    def _work(self, worker: ThreadWorker) -> None:
        self._local.worker = worker
        if not self.prepare(worker):
            return
        lock, items, clock, thread_time = self.lock, self.items, self.now, time.thread_time
        timed = self.trace is not None
        remote = self.call_elsewhere if self.runs_elsewhere else None
        task, outcome, value, result = _EXIT, _CANCELLED, None, None
        try:
            while True:
                take_lock(lock)
                try:
                    now = clock()
                    if task >= 0 and (worker.crashed or now < worker.frozen_until):
                        now = self._serve_late_fault(worker)
                    done = self._finish(worker, task, outcome, value, now) if task >= 0 else None
                    # An idle worker keeps no result alive: only ``result``, until settled.
                    result, value = (value if done is not None else None), None
                    # Deliver a result before going idle, not after the next task.
                    try:
                        task = self._take(worker, done is None and not self.outcomes, now)
                    except BrokenThreadPool as broken:  # a policy hook raised
                        self.break_pool(broken)
                        task = _EXIT
                    outcomes = self.take_outcomes() if self.outcomes else None
                    item = items[task] if task >= 0 else None
                finally:
                    lock.release()
                if done is not None:
                    done.set_result(result)
                    done = result = None
                if outcomes is not None:
                    run_all(outcomes)
                    outcomes = None
                if task == _AGAIN:
                    continue
                if item is None:
                    return
                if item.attempts == 1 and not item.set_running_or_notify_cancel():
                    outcome, item = _CANCELLED, None
                    continue
                if item.journal_id >= 0 and self.journal is not None:  # it runs: say so
                    self.journal.started(item, worker.slot)
                if remote is not None:  # run elsewhere (a worker process)
                    outcome, value = remote(worker, item)
                    item = None
                    continue
                # The call, inline (it runs for every task); a task's exception is its
                # outcome, never the worker's end.
                began = thread_time() if timed else 0.0
                try:
                    if item.kwargs:
                        value = item.fn(*item.args, **item.kwargs)  # type: ignore[misc]
                    else:  # no empty dict built for the call
                        value = item.fn(*item.args)  # type: ignore[misc]
                    outcome = True
                except Exception as error:
                    outcome, value = False, _raised_in_task(error)
                if timed:  # the CPU time of this thread over the call, for the trace
                    item.cpu_time = thread_time() - began
                item = None
        except WorkerCrash:
            return  # a crash: the thread ends without a word, the monitor will notice

    def _serve_late_fault(self, worker: ThreadWorker) -> float:
        """An injected crash or hang reached ``worker`` after its attempt's last look for
        one: the attempt does not end before the fault is served, as in the model (a crash
        ends the thread; a hang holds the result until it is over). Lock held; returns
        the time after."""
        while True:
            if worker.crashed:
                raise WorkerCrash
            now = self.now()
            if now >= worker.frozen_until:
                return now
            worker.wake.wait(worker.frozen_until - now)

    def call_elsewhere(self, worker: ThreadWorker, item: TaskFuture) -> tuple[bool, Any]:
        """Run ``item`` for ``worker`` elsewhere: (True, result) or (False, exception)."""
        raise NotImplementedError

    def prepare(self, worker: ThreadWorker) -> bool:
        """Before ``worker``'s first task: run the initializer; False if the pool broke."""
        if self.initializer is None:
            return True
        try:
            self.initializer(*self.initargs)
        except BaseException as error:  # as the standard executor: logged, and broken
            LOGGER.critical("Exception in initializer:", exc_info=True)
            broken = BrokenThreadPool("a thread initializer failed: the pool is not usable")
            broken.__cause__ = error
            self.break_and_settle(broken)
            return False
        return True

    def break_and_settle(self, broken: BrokenExecutor) -> None:
        """Break the pool (see :meth:`break_pool`) and settle what that decided (no lock)."""
        with self.lock:
            self.break_pool(broken)
            outcomes = self.take_outcomes()
        run_all(outcomes)

    def _take(self, worker: ThreadWorker, may_wait: bool, now: float) -> int:
        core = self.core
        while True:
            if self.broken is not None:
                return _EXIT
            if worker.crashed or worker.declared_dead:
                core.pass_wake()
                return _EXIT
            if worker.retiring:
                core.retired(worker)
                return _EXIT
            if now < worker.frozen_until:
                core.pass_wake()
                worker.wake.wait(worker.frozen_until - now)
                now = self.now()
                continue
            task = core.take(worker, now)
            if task == STOLE:
                if self.policy.steal_latency > 0:
                    self._steal_pause()
                    now = self.now()
                continue
            if task >= 0:
                return self._begin(worker, task, now)
            if self.finished():
                return _EXIT
            if not may_wait:
                return _AGAIN
            core.go_idle(worker)
            worker.wake.wait()
            core.leave_idle(worker)
            now = self.now()

    def _steal_pause(self) -> None:
        """The policy's steal latency, spent without the lock."""
        self.lock.release()
        try:
            time.sleep(self.policy.steal_latency)
        finally:
            self.lock.acquire()

    def _begin(self, worker: ThreadWorker, task: int, now: float) -> int:
        item = self.items.get(task)
        if item is None:  # the policy handed out a task it does not hold
            error = LookupError(f"next_task returned task {task}, which is not queued")
            raise self.core.policy_failed("next_task", error) from error
        self.core.begin(worker, task, now)
        worker.attempt_start = now
        item.attempts += 1
        if self.trace is not None:
            item.started, item.worker, item.cpu_time = now, worker.slot, math.nan
        if self.max_pending is not None:
            self.space.notify()
        return task

    def _finish(
        self, worker: ThreadWorker, task: int, outcome: object, value: Any, now: float
    ) -> TaskFuture | None:
        """End ``worker``'s attempt of ``task``: the future to give ``value`` (outside the
        lock) if it completed, else None (a failure or cancellation is settled here)."""
        if worker.declared_dead:
            self.core.discard(worker, task, now)
            return None
        self.core.end(worker)
        item = self.items[task]
        if outcome is True:
            if self.recorder is not None:
                self.recorder.complete(task, now)
            self.core.counts["completed"] += 1
            if self.trace is not None:
                self.trace.add(task, item, "completed", now)
            self.resolve(task)
            return item
        if outcome is _CANCELLED:
            self.core.counts["cancelled"] += 1
            if self.trace is not None:
                self.log(task, "cancelled", now)
            self.resolve(task)
            return None
        retryable = isinstance(value, self.retry_exceptions)
        self.core.attempt_failed(task, "error", value, retryable)
        return None
