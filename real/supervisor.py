"""The threaded pool's supervisor: one thread that runs timed actions under the pool lock.

It carries the heartbeat monitor (a tick every ``heartbeat_interval`` seconds from the
pool's start, the rule of :class:`pool.Recovery`), the autoscaler's decision ticks,
and the pool core's timed actions (delayed restarts and scale-ups, retries after their
backoff). Actions are short and never block: they only change the pool's state and
notify workers.
"""

from __future__ import annotations

import heapq
import itertools
import math
import threading
from collections.abc import Callable
from concurrent.futures import BrokenExecutor, Future
from concurrent.futures.thread import BrokenThreadPool
from typing import Any, Protocol

from pool.core import PoolCore
from pool.faults import Recovery
from pool.policies import Policy
from real.stats import run_all
from real.worker import ThreadWorker

Action = Callable[[], None]
_EPSILON = 1e-9


class Supervised(Protocol):
    """What the supervisor needs of the pool's threads (:class:`real.lifecycle.WorkerThreads`)."""

    lock: Any  # an RLock (real.locking.new_lock)
    name: str
    policy: Policy
    recovery: Recovery
    core: PoolCore[ThreadWorker]
    shutting_down: bool
    broken: BrokenExecutor | None
    dropped: bool
    outcomes: list[Callable[[], None]]

    def now(self) -> float:
        """Seconds since the pool began."""

    def finished(self) -> bool:
        """Whether the pool is shut down with every task resolved."""

    def take_outcomes(self) -> list[Callable[[], None]]:
        """What settles the futures decided so far, to run outside the lock."""

    def break_pool(self, broken: BrokenExecutor) -> None:
        """A policy hook raised: fail what is not running, accept no more."""

    def close(self, cancel_pending: bool) -> list[Future[Any]]:
        """Stop accepting tasks (idempotent)."""


class Supervisor:
    """Runs ``schedule``d actions at their due time (pool seconds) on its own thread."""

    def __init__(self, pool: Supervised) -> None:
        self.pool = pool
        self.wake = threading.Condition(pool.lock)
        self._heap: list[tuple[float, int, Action]] = []
        self._order = itertools.count()
        self.thread = threading.Thread(target=self._loop, name=f"{pool.name}_supervisor")

    def start(self) -> None:
        """Start the thread and the recurring monitor and scaler ticks."""
        with self.wake:
            self._every(self.pool.recovery.heartbeat_interval, self._monitor_tick)
            interval = self.pool.policy.decision_interval
            if interval is not None:
                self._every(interval, self._scaler_tick)
        self.thread.start()

    def schedule(self, due: float, action: Action) -> None:
        """Run ``action`` under the pool lock at pool time ``due``. Call with the lock held."""
        heapq.heappush(self._heap, (due, next(self._order), action))
        self.wake.notify()

    def _every(self, interval: float, tick: Callable[[float], None]) -> None:
        counter = itertools.count(1)

        def run() -> None:
            due = next(counter) * interval
            tick(due)
            self.schedule(due + interval, run)

        self.schedule(interval, run)

    def _loop(self) -> None:
        pool = self.pool
        while True:
            with self.wake:
                if pool.dropped:  # the ThreadedPool is gone: finish what it queued, then end
                    pool.close(cancel_pending=False)
                finished = pool.finished()
                if not finished:
                    if pool.broken is None:
                        self._run_due()
                    if not pool.outcomes:
                        self.wake.wait(self._until_next() if pool.broken is None else None)
                pending = pool.take_outcomes()
            run_all(pending)
            del pending
            if finished:
                return

    def _run_due(self) -> None:
        while self._heap and self._heap[0][0] <= self.pool.now():
            _, _, action = heapq.heappop(self._heap)
            try:
                action()
            except BrokenThreadPool as broken:  # a policy hook raised
                self.pool.break_pool(broken)
                return

    def _until_next(self) -> float | None:
        return max(0.0, self._heap[0][0] - self.pool.now()) if self._heap else None

    # -- recurring ticks (lock held) -----------------------------------------------------

    def _monitor_tick(self, tick: float) -> None:
        core, recovery = self.pool.core, self.pool.recovery
        for worker in list(core.slots.values()):
            if worker.alive_at(tick):
                worker.last_heartbeat = tick
                due = math.inf
            elif math.isfinite(worker.silent_since):
                # A known silence is judged by the model's rule, whether or not this
                # thread ran the tick before or after the fault reached the worker.
                due = recovery.detection_time(worker.silent_since, worker.serving_since)
            else:  # a thread that died on its own: its last recorded heartbeat
                due = worker.last_heartbeat + recovery.heartbeat_timeout
            if tick >= due - _EPSILON:
                core.declare_dead(worker, "detected")
                continue
            timeout = recovery.task_timeout
            if (
                timeout is not None
                and worker.task >= 0
                and tick - worker.attempt_start >= timeout - _EPSILON
            ):
                core.declare_dead(worker, "timeout")

    def _scaler_tick(self, tick: float) -> None:
        if not self.pool.shutting_down:
            self.pool.core.scale(tick)
