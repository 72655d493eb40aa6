"""The threaded pool's side of the pool core: worker threads under one lock, and futures.

:class:`WorkerThreads` is the :class:`pool.core.Backend` of :class:`real.ThreadedPool`:
it starts and wakes threads, keeps the tasks' callables and futures, and runs each
worker's loop. Every decision (what a worker runs, whom a submit wakes, retries,
restarts, retirement, scaling) is the core's. Everything here runs with the lock held,
except the worker loop's calls of tasks and the settling of futures."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from pool.core import STOLE, PoolCore
from pool.faults import Recovery
from pool.policies import Policy
from pool.records import Recorder
from pool.seeding import run_streams
from real.stats import PoolStats, Settlement, settle
from real.supervisor import Supervisor
from real.task_trace import TaskTrace
from real.worker import ThreadWorker, WorkerCrash

_EXIT, _AGAIN = -1, -3
_CANCELLED = object()


@dataclass(eq=False, slots=True)
class _Item:
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    future: Future[Any]
    priority: int
    affinity: int
    attempts: int = 0
    #: Recorded only with ``record=True``: pool seconds, and the last attempt's CPU time.
    submitted: float = math.nan
    started: float = math.nan
    cpu_time: float = math.nan
    worker: int = -1


class WorkerThreads:
    """The threads, lock and tasks of one :class:`real.ThreadedPool`, driving its core.

    Times are pool seconds (``time.monotonic`` since the pool began). ``recorder``
    receives every attempt (for :func:`real.run`), ``trace`` one row per finished task.
    """

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
    ) -> None:
        self.policy, self.recovery, self.name = policy, recovery, name
        self.retry_exceptions, self.max_pending = retry_exceptions, max_pending
        self.recorder, self.trace = recorder, trace
        self.lock = threading.Lock()
        #: Notified when queue space frees up (``max_pending``) or the pool shuts down.
        self.space = threading.Condition(self.lock)
        self.items: dict[int, _Item] = {}
        self.next_id = 0
        self.threads: list[threading.Thread] = []
        self.unresolved = 0
        self.shutting_down = False
        #: Futures decided under the lock, to resolve outside it.
        self.settlements: list[Settlement] = []
        self._local = threading.local()
        self.core: PoolCore[ThreadWorker] = PoolCore(policy, recovery, self, recorder)
        policy.reset(range(workers), run_streams(seed).policy)
        self.supervisor = Supervisor(self)
        self._t0 = time.monotonic()
        with self.lock:
            for slot in range(workers):
                self.core.start_worker(slot)
        self.supervisor.start()

    # -- the backend's hooks (pool.core.Backend; lock held) --------------------------------

    def now(self) -> float:
        """Seconds since the pool began."""
        return time.monotonic() - self._t0

    def spawn(self, slot: int) -> ThreadWorker:
        """Start a worker thread for ``slot``; it runs once the lock is free."""
        now = self.now()
        worker = ThreadWorker(slot, now, wake=threading.Condition(self.lock), last_heartbeat=now)
        worker.thread = threading.Thread(
            target=self._work, args=(worker,), daemon=True, name=f"{self.name}-worker-{slot}"
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
        item = self.items[task]
        self.core.submit(task, item.priority, item.affinity, self.now())

    def attempts(self, task: int) -> int:
        """Attempts of ``task`` begun so far."""
        return self.items[task].attempts

    def failed(self, task: int, error: BaseException) -> None:
        """``task`` failed for good: its future gets ``error`` (outside the lock)."""
        if self.trace is not None:
            self.log(task, "failed", self.now())
        self.settlements.append((self.items[task].future, None, error))
        self.resolve(task)

    def released(self, worker: ThreadWorker) -> None:
        """A worker declared dead: if it waits, let it see so and end."""
        worker.wake.notify()

    # -- tasks (lock held) -----------------------------------------------------------------

    def add(self, item: _Item, submit_timeout: float | None) -> None:
        """Queue a new task, waiting up to ``submit_timeout`` s for space (``max_pending``)."""
        if self.shutting_down or self.max_pending is not None:
            self._wait_for_space(submit_timeout)
        task = self.next_id
        self.next_id += 1
        self.items[task] = item
        try:
            self.place(task)
        except BaseException:  # e.g. Ctrl-C inside the policy: the task never was
            del self.items[task]
            raise
        self.unresolved += 1

    def _wait_for_space(self, submit_timeout: float | None) -> None:
        deadline = None if submit_timeout is None else time.monotonic() + submit_timeout
        while True:
            if self.shutting_down:
                raise RuntimeError("cannot submit to a pool that is shut down")
            if self.core.has_room(self.max_pending):
                return
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise TimeoutError(f"no queue space within submit_timeout={submit_timeout}s")
            self.space.wait(remaining)

    def close(self, cancel_pending: bool) -> list[Future[Any]]:
        """Stop accepting tasks; with ``cancel_pending`` drain the queues and return the
        futures to cancel. Idempotent."""
        if self.shutting_down:
            return []
        self.shutting_down = True
        drained = self._drain_queue() if cancel_pending else []
        self._wake_everyone()
        return drained

    def _drain_queue(self) -> list[Future[Any]]:
        now, drained = self.now(), []
        for task in self.core.drain(now):
            drained.append(self.items[task].future)
            if self.trace is not None:
                self.log(task, "cancelled", now)
            self.resolve(task)
        self.core.counts["cancelled"] += len(drained)
        # Queued where no serving worker can reach them (all workers dead or restarting):
        # cancel their futures; whoever dequeues one later skips it and counts it then.
        return drained + [item.future for item in self.items.values() if item.attempts == 0]

    def resolve(self, task: int) -> None:
        """``task`` has its outcome: forget it; the last one ends a shutdown."""
        del self.items[task]
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
        serving = sum(1 for worker in self.core.slots.values() if not worker.declared_dead)
        return PoolStats(
            workers=serving, busy=self.core.busy, queued=self.core.queued(), **self.core.counts
        )

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
        times = (item.submitted, item.started, now)
        self.trace.add(
            task, times, item.worker, item.priority, status, item.attempts, item.cpu_time
        )

    def take_settlements(self) -> list[Settlement]:
        """The futures decided so far, to resolve outside the lock (lock held)."""
        pending, self.settlements = self.settlements, []
        return pending

    # -- a worker's thread -----------------------------------------------------------------

    def _work(self, worker: ThreadWorker) -> None:
        self._local.worker = worker
        lock, items, timed = self.lock, self.items, self.trace is not None
        task, outcome, value = _EXIT, _CANCELLED, None
        try:
            while True:
                with lock:
                    done = self._finish(worker, task, outcome, value) if task >= 0 else None
                    decided = self.take_settlements() if self.settlements else None
                    # Deliver a result before going idle, not after the next task.
                    task = self._take(worker, may_wait=done is None and decided is None)
                    item = items[task] if task >= 0 else None
                if done is not None:
                    settle(done)
                for settlement in decided or ():
                    settle(settlement)
                if task == _AGAIN:
                    continue
                if item is None:
                    return
                if item.attempts == 1 and not item.future.set_running_or_notify_cancel():
                    outcome = _CANCELLED
                    continue
                if timed:
                    outcome, value = _call_timed(item)
                    continue
                try:
                    outcome, value = True, item.fn(*item.args, **item.kwargs)
                except Exception as error:
                    outcome, value = False, error
        except WorkerCrash:
            return  # a crash: the thread ends without a word, the monitor will notice

    def _take(self, worker: ThreadWorker, may_wait: bool = True) -> int:
        core, slot = self.core, worker.slot
        while True:
            if worker.crashed or worker.declared_dead:
                core.pass_wake()
                return _EXIT
            if worker.retiring:
                core.retired(worker)
                return _EXIT
            now = self.now()
            if now < worker.frozen_until:
                core.pass_wake()
                worker.wake.wait(worker.frozen_until - now)
                continue
            task = core.take(worker, now)
            if task == STOLE:
                self._steal_pause()
                continue
            if task >= 0:
                return self._begin(worker, task, now)
            if self.finished():
                return _EXIT
            if not may_wait:
                return _AGAIN
            core.go_idle(worker)
            worker.wake.wait()
            if core.idle.get(slot) is worker:
                del core.idle[slot]

    def _steal_pause(self) -> None:
        """The policy's steal latency, spent without the lock."""
        latency = self.policy.steal_latency
        if latency > 0:
            self.lock.release()
            try:
                time.sleep(latency)
            finally:
                self.lock.acquire()

    def _begin(self, worker: ThreadWorker, task: int, now: float) -> int:
        self.core.begin(worker, task, now)
        worker.attempt_start = now
        item = self.items[task]
        item.attempts += 1
        if self.trace is not None:
            item.started, item.worker, item.cpu_time = now, worker.slot, math.nan
        if self.max_pending is not None:
            self.space.notify()
        return task

    def _finish(
        self, worker: ThreadWorker, task: int, outcome: object, value: Any
    ) -> Settlement | None:
        now = self.now()
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
                self.log(task, "completed", now)
            self.resolve(task)
            return item.future, value, None
        if outcome is _CANCELLED:
            self.core.counts["cancelled"] += 1
            if self.trace is not None:
                self.log(task, "cancelled", now)
            self.resolve(task)
            return None
        retryable = isinstance(value, self.retry_exceptions)
        self.core.attempt_failed(task, "error", value, retryable)
        return None


def _call_timed(item: _Item) -> tuple[bool, Any]:
    """Call a task, keeping its thread's CPU time for the pool's trace."""
    begin = time.thread_time()
    try:
        return True, item.fn(*item.args, **item.kwargs)
    except Exception as error:
        return False, error
    finally:
        item.cpu_time = time.thread_time() - begin
