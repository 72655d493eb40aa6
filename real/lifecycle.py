"""The life of the threaded pool's workers: taking tasks, finishing attempts, dying,
restarting and retiring. Everything here runs with the pool's lock held, except the
worker loop's calls of tasks and the settling of futures."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from real.stats import Settlement, settle
from real.worker import ThreadWorker, WorkerCrash, WorkerLost

if TYPE_CHECKING:
    from pool.faults import Recovery
    from pool.policies import Policy
    from pool.records import Recorder
    from real.supervisor import Supervisor
    from real.task_trace import TaskTrace

_EXIT, _AGAIN = -1, -2
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


class WorkerLifecycle:
    """The worker side of :class:`real.ThreadedPool` (a mixin: the pool holds the state)."""

    policy: Policy
    recovery: Recovery
    retry_exceptions: tuple[type[BaseException], ...]
    max_pending: int | None
    supervisor: Supervisor
    _name: str
    _recorder: Recorder | None
    _trace: TaskTrace | None
    _lock: threading.Lock
    _space: threading.Condition
    _items: dict[int, _Item]
    _slots: dict[int, ThreadWorker]
    _idle: dict[int, ThreadWorker]
    _pending_starts: dict[int, object]
    _threads: list[threading.Thread]
    _busy: int
    _unresolved: int
    _shutdown: bool
    _settlements: list[Settlement]
    _counts: dict[str, int]
    _local: threading.local

    def now(self) -> float:
        raise NotImplementedError

    def _enqueue(self, task: int) -> None:
        raise NotImplementedError

    def _resolve(self, task: int) -> None:
        raise NotImplementedError

    def _finished(self) -> bool:
        raise NotImplementedError

    def _event(self, time_s: float, kind: str, worker: int = -1, task: int = -1) -> None:
        raise NotImplementedError

    # -- a worker's thread -----------------------------------------------------------------

    def _start_worker(self, slot: int) -> ThreadWorker:
        now = self.now()
        worker = ThreadWorker(slot, now, threading.Condition(self._lock), last_heartbeat=now)
        self._slots[slot] = worker
        self.policy.add_worker(slot)
        worker.thread = threading.Thread(
            target=self._work, args=(worker,), daemon=True, name=f"{self._name}-worker-{slot}"
        )
        self._threads.append(worker.thread)
        worker.thread.start()
        return worker

    def _work(self, worker: ThreadWorker) -> None:
        self._local.worker = worker
        lock, items, timed = self._lock, self._items, self._trace is not None
        task, outcome, value = _EXIT, _CANCELLED, None
        try:
            while True:
                with lock:
                    done = self._finish(worker, task, outcome, value) if task >= 0 else None
                    # Deliver a result before going idle, not after the next task.
                    task = self._take(worker, may_wait=done is None)
                    item = items[task] if task >= 0 else None
                if done is not None:
                    settle(done)
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
        policy, slot = self.policy, worker.slot
        while True:
            if worker.crashed or worker.declared_dead:
                self._pass_wake()
                return _EXIT
            if worker.retiring:
                self._retired(worker)
                self._pass_wake()
                return _EXIT
            now = self.now()
            if now < worker.frozen_until:
                self._pass_wake()
                worker.wake.wait(worker.frozen_until - now)
                continue
            task = policy.next_task(slot, now)
            if task is None and policy.can_steal and self._steal(worker, now):
                task = policy.next_task(slot, now)
            if task is not None:
                return self._begin(worker, task, now)
            if self._finished():
                return _EXIT
            if not may_wait:
                return _AGAIN
            self._idle[slot] = worker
            worker.wake.wait()
            if self._idle.get(slot) is worker:
                del self._idle[slot]

    def _pass_wake(self) -> None:
        """This worker leaves or freezes, perhaps woken for a queued task: wake another."""
        if self._idle and self.policy.queued():
            self._idle.popitem()[1].wake.notify()

    def _steal(self, worker: ThreadWorker, now: float) -> bool:
        taken = self.policy.steal(worker.slot, now)
        if taken is None:
            return False
        for task in taken[1]:
            self._counts["stolen"] += 1
            if self._recorder is not None:
                self._recorder.stolen[task] = True
            self._event(now, "steal", worker.slot, task)
        latency = self.policy.steal_latency
        if latency > 0:
            self._lock.release()
            try:
                time.sleep(latency)
            finally:
                self._lock.acquire()
        return True

    def _begin(self, worker: ThreadWorker, task: int, now: float) -> int:
        worker.task, worker.attempt_start = task, now
        self._busy += 1
        self._items[task].attempts += 1
        if self._recorder is not None:
            self._recorder.begin(task, worker.slot, now)
        if self._trace is not None:
            item = self._items[task]
            item.started, item.worker, item.cpu_time = now, worker.slot, math.nan
        if self.max_pending is not None:
            self._space.notify()
        return task

    def _finish(
        self, worker: ThreadWorker, task: int, outcome: object, value: Any
    ) -> Settlement | None:
        now = self.now()
        if worker.declared_dead:
            self._counts["discarded"] += 1
            if self._recorder is not None:
                self._recorder.duplicates += 1
            self._event(now, "discarded", worker.slot, task)
            return None
        worker.task = -1
        self._busy -= 1
        item = self._items[task]
        if outcome is True:
            if self._recorder is not None:
                self._recorder.complete(task, now)
            self._counts["completed"] += 1
            if self._trace is not None:
                self._log(task, "completed", now)
            self._resolve(task)
            return item.future, value, None
        if outcome is _CANCELLED:
            self._counts["cancelled"] += 1
            if self._trace is not None:
                self._log(task, "cancelled", now)
            self._resolve(task)
            return None
        return self._attempt_failed(task, "error", value, isinstance(value, self.retry_exceptions))

    # -- the pool's answers (supervisor or worker, lock held) ----------------------------

    def _attempt_failed(
        self, task: int, outcome: str, error: BaseException, retryable: bool
    ) -> Settlement | None:
        now, item = self.now(), self._items[task]
        if self._recorder is not None:
            self._recorder.abandon(task, now, outcome)
        delay = self.recovery.retry_delay(item.attempts) if retryable else None
        if delay is None:
            self._counts["failed"] += 1
            if self._recorder is not None:
                self._recorder.fail(task, now)
            if self._trace is not None:
                self._log(task, "failed", now)
            self._resolve(task)
            return item.future, None, error
        self._counts["retried"] += 1
        worker = self._recorder.worker[task] if self._recorder is not None else -1
        self._event(now, "retry", worker, task)
        self.supervisor.schedule(now + delay, lambda: self._requeue(task))
        return None

    def _requeue(self, task: int) -> None:
        if self._recorder is not None:
            self._recorder.requeue(task, self.now())
        self._enqueue(task)

    def _declare_dead(self, worker: ThreadWorker, kind: str) -> None:
        now, slot = self.now(), worker.slot
        self._event(now, kind, slot, worker.task)
        worker.declared_dead = True
        if self._recorder is not None:
            self._recorder.workers_changed(now, -1)
        if self._idle.get(slot) is worker:
            del self._idle[slot]
        orphans: list[int] = []
        if self._slots.get(slot) is worker:  # else retired already: its queue was handed back
            del self._slots[slot]
            orphans = self.policy.remove_worker(slot)
        if worker.task >= 0:
            task, worker.task = worker.task, -1
            self._busy -= 1
            lost = WorkerLost(f"task {task} lost its worker (slot {slot}, {kind})")
            outcome = "timeout" if kind == "timeout" else "lost-worker"
            done = self._attempt_failed(task, outcome, lost, retryable=True)
            if done is not None:
                self._settlements.append(done)
        for task in orphans:
            self._enqueue(task)
        worker.wake.notify()
        if not worker.retiring:
            self._start_later(slot, self.recovery.restart_delay, "restart")

    def _start_later(self, slot: int, delay: float, kind: str) -> None:
        token = object()
        self._pending_starts[slot] = token

        def begin() -> None:
            if self._pending_starts.get(slot) is not token:
                return
            del self._pending_starts[slot]
            self._start_worker(slot)
            if self._recorder is not None:
                self._recorder.workers_changed(self.now(), +1)
            if kind == "restart":
                self._counts["restarts"] += 1
                self._event(self.now(), "restart", slot)

        self.supervisor.schedule(self.now() + delay, begin)

    def _log(self, task: int, status: str, now: float) -> None:
        """Add ``task``'s row to the trace (callers check that the pool records one)."""
        assert self._trace is not None
        item = self._items[task]
        if status == "cancelled":  # taken from the queue perhaps, but never run
            item.started = item.cpu_time = math.nan
        times = (item.submitted, item.started, now)
        self._trace.add(
            task, times, item.worker, item.priority, status, item.attempts, item.cpu_time
        )

    def _retire(self, slot: int) -> None:
        worker = self._slots.get(slot)
        if worker is None:
            return
        worker.retiring = True
        for task in self.policy.remove_worker(slot):
            self._enqueue(task)
        if self._idle.get(slot) is worker:
            del self._idle[slot]
        worker.wake.notify()

    def _retired(self, worker: ThreadWorker) -> None:
        if self._slots.get(worker.slot) is worker:
            del self._slots[worker.slot]
        if self._recorder is not None:
            self._recorder.workers_changed(self.now(), -1)

    def _settle(self) -> None:
        """Resolve futures that supervisor actions decided (call without the lock)."""
        with self._lock:
            pending, self._settlements = self._settlements, []
        for settlement in pending:
            settle(settlement)


def _call_timed(item: _Item) -> tuple[bool, Any]:
    """Call a task, keeping its thread's CPU time for the pool's trace."""
    begin = time.thread_time()
    try:
        return True, item.fn(*item.args, **item.kwargs)
    except Exception as error:
        return False, error
    finally:
        item.cpu_time = time.thread_time() - begin
