"""The pool core: the clock-free state machine that every backend drives.

A pool is slots of workers, a policy that queues tasks, and the pool's answers to what
happens: which idle worker a submit wakes, what a free worker runs next or steals, a
worker declared dead (its task retried or failed, its queue handed back, its slot
restarted), a worker retired, the autoscaler's tick, a fault reaching a worker. All of it
is decided here, once. A backend supplies only what is its own (:class:`Backend`): how
time passes, how a worker is started and woken, and where a task's outcome goes. The
model (``sim/``) drives the core from SimPy processes, the threaded pool (``real/``)
from threads under one lock; neither makes a scheduling decision of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Generic

from pool.autoscaling import plan_scaling
from pool.backend import (
    COUNTERS,
    NOTHING,
    STOLE,
    Backend,
    BrokenPool,
    W,
    WorkerLost,
    WorkerState,
)
from pool.faults import Fault, Recovery
from pool.policies import Policy
from pool.records import Recorder

__all__ = [
    "NOTHING",
    "STOLE",
    "Backend",
    "BrokenPool",
    "PoolCore",
    "WorkerLost",
    "WorkerState",
]


class PoolCore(Generic[W]):
    """Slots, idle workers, the busy count and every decision of a pool over ``policy``.

    ``recorder`` (if given) receives every attempt and event; ``counts`` holds the
    pool's counters (:class:`real.PoolStats`' names). ``start_cost`` (seconds) delays
    every restart and scale-up beyond its own delay: the model's thread start, which a
    real pool pays by itself. Every method runs under the backend's exclusion (the
    model's single process, the real pool's lock).
    """

    def __init__(
        self,
        policy: Policy,
        recovery: Recovery,
        backend: Backend[W],
        recorder: Recorder | None = None,
        start_cost: float = 0.0,
    ) -> None:
        self.policy = policy
        self.recovery = recovery
        self.backend = backend
        self.recorder = recorder
        self.start_cost = start_cost
        self.slots: dict[int, W] = {}
        #: Idle workers by slot, in the order they went idle (the last is woken first).
        self.idle: dict[int, W] = {}
        self.pending_starts: dict[int, object] = {}
        self.busy = 0
        #: Set when the run is over: no worker starts any more and faults stop.
        self.stopped = False
        #: Set once a policy hook has raised (see :class:`BrokenPool`).
        self.broken: BrokenPool | None = None
        #: ``submit`` and ``take`` run for every task: closures over the policy's hooks
        #: (fixed for a run), cheaper to call than methods that look them up each time.
        self.counts = dict.fromkeys(COUNTERS, 0)
        self.submit = self._submitter()
        self.take = self._taker()

    # -- tasks ----------------------------------------------------------------------------

    def _submitter(self) -> Callable[[int, int, int, float], None]:
        policy_submit, can_steal, idle, wake = (
            self.policy.submit,
            self.policy.can_steal,
            self.idle,
            self.backend.wake,
        )

        def submit(task: int, priority: int, affinity: int, now: float) -> None:
            """Hand ``task`` to the policy and wake a worker that can take it: the slot it
            was placed on if that one is idle, else (a shared queue, or a policy that
            steals) the worker that went idle last."""
            try:
                target = policy_submit(task, priority, affinity, now)
            except Exception as error:
                raise self.policy_failed("submit", error) from error
            if not idle:
                return
            worker = idle.pop(target, None) if target is not None else None
            if worker is None and (target is None or can_steal):
                worker = idle.popitem()[1]
            if worker is not None:
                wake(worker)

        return submit

    def _taker(self) -> Callable[[W, float], int]:
        next_task, can_steal, queued, steal, counts = (
            self.policy.next_task,
            self.policy.can_steal,
            self.policy.queued,
            self.policy.steal,
            self.counts,
        )
        steal_is_free = self.policy.steal_latency <= 0

        def take(worker: W, now: float) -> int:
            """What free ``worker`` does now: a task to run, :data:`STOLE` (it stole: wait
            the policy's ``steal_latency``, then take again) or :data:`NOTHING` (go idle).
            After a steal that costs no time it takes again at once."""
            slot = worker.slot
            try:
                task = next_task(slot, now)
                if task is not None:
                    return task
                # With nothing queued a steal finds no victim: skip the call (and any draw).
                if can_steal and queued() and (taken := steal(slot, now)) is not None:
                    counts["stolen"] += len(taken[1])
                    if self.recorder is not None:
                        self._record_steal(slot, taken[1], now)
                    if steal_is_free and (task := next_task(slot, now)) is not None:
                        return task
                    return STOLE
            except Exception as error:
                raise self.policy_failed("next_task, queued or steal", error) from error
            return NOTHING

        return take

    def policy_failed(self, hook: str, error: Exception) -> BrokenPool:
        """The policy raised ``error`` in ``hook``: the pool is broken from now on."""
        if self.broken is None:
            name = type(self.policy).__name__
            self.broken = BrokenPool(f"the policy {name} raised in {hook}: {error!r}")
            self.broken.__cause__ = error
        return self.broken

    @contextmanager
    def _guard(self, hook: str) -> Iterator[None]:
        try:
            yield
        except BrokenPool:
            raise
        except Exception as error:
            raise self.policy_failed(hook, error) from error

    def queued(self) -> int:
        """Tasks waiting in the policy's queues."""
        with self._guard("queued"):
            return self.policy.queued()

    def has_room(self, max_pending: int | None) -> bool:
        """Whether a new task fits under ``max_pending`` queued tasks (None: no bound)."""
        return max_pending is None or self.queued() < max_pending

    def drain(self, now: float) -> list[int]:
        """Take every task out of the serving slots' queues (a shutdown that cancels)."""
        drained = []
        with self._guard("next_task"):
            for slot in list(self.slots):
                while (task := self.policy.next_task(slot, now)) is not None:
                    drained.append(task)
        return drained

    def _record_steal(self, thief: int, stolen: list[int], now: float) -> None:
        assert self.recorder is not None
        for task in stolen:
            self.recorder.stolen[task] = True
            self.recorder.event(now, "steal", thief, task)

    def begin(self, worker: W, task: int, now: float) -> None:
        """``worker`` starts an attempt of ``task`` at ``now``."""
        worker.task = task
        self.busy += 1
        if self.recorder is not None:
            self.recorder.begin(task, worker.slot, now)

    def end(self, worker: W) -> None:
        """``worker``'s attempt ended (its outcome is the backend's to settle)."""
        worker.task = -1
        self.busy -= 1

    def discard(self, worker: W, task: int, now: float) -> None:
        """A worker declared dead came back with a result: drop it and count it."""
        self.counts["discarded"] += 1
        if self.recorder is not None:
            self.recorder.duplicates += 1
        self.event(now, "discarded", worker.slot, task)

    def attempt_failed(
        self, task: int, outcome: str, error: BaseException, retryable: bool = True
    ) -> None:
        """An attempt of ``task`` ended without success (``outcome``: error, timeout,
        lost-worker): retry it after the backoff, or fail it for good with ``error``."""
        backend, recorder = self.backend, self.recorder
        now = backend.now()
        if recorder is not None:
            recorder.abandon(task, now, outcome)
        delay = self.recovery.retry_delay(backend.attempts(task)) if retryable else None
        if self.stopped or self.broken is not None:  # nothing would run the retry
            delay = None
        if delay is None:
            self.counts["failed"] += 1
            if recorder is not None:
                recorder.fail(task, now)
            backend.failed(task, error)
            return
        self.counts["retried"] += 1
        self.event(now, "retry", -1 if recorder is None else recorder.worker[task], task)
        backend.at(now + delay, lambda: self._requeue(task))

    def _requeue(self, task: int) -> None:
        if self.recorder is not None:
            self.recorder.requeue(task, self.backend.now())
        self.backend.place(task)

    # -- workers --------------------------------------------------------------------------

    def start_worker(self, slot: int) -> W:
        """Put a new worker in ``slot``, serving from now."""
        worker = self.backend.spawn(slot)
        self.slots[slot] = worker
        with self._guard("add_worker"):
            self.policy.add_worker(slot)
        return worker

    def go_idle(self, worker: W) -> None:
        """``worker`` found nothing to run: it waits until a submit wakes it."""
        self.idle[worker.slot] = worker

    def leave_idle(self, worker: W) -> bool:
        """Take ``worker`` off the idle set; whether it was there (not yet woken)."""
        if self.idle.get(worker.slot) is worker:
            del self.idle[worker.slot]
            return True
        return False

    def interrupted_idle(self, worker: W) -> None:
        """A fault (or shutdown) reached ``worker`` while it waited idle."""
        if not self.leave_idle(worker):  # it was woken for a task it cannot take now
            self.pass_wake()

    def pass_wake(self) -> None:
        """A worker leaves or freezes, perhaps woken for a queued task: wake another."""
        if self.idle and self.queued():
            self.backend.wake(self.idle.popitem()[1])

    def declare_dead(self, worker: W, kind: str) -> None:
        """The pool gives up on ``worker`` (``kind``: detected, timeout): requeue its
        work, fail or retry its task, and restart its slot."""
        now, slot = self.backend.now(), worker.slot
        self.event(now, kind, slot, worker.task)
        worker.declared_dead = True
        if self.recorder is not None:
            self.recorder.workers_changed(now, -1)
        self.leave_idle(worker)
        orphans: list[int] = []
        if self.slots.get(slot) is worker:  # else retired already: its queue was handed back
            del self.slots[slot]
            with self._guard("remove_worker"):
                orphans = self.policy.remove_worker(slot)
        if worker.task >= 0:
            task, worker.task = worker.task, -1
            self.busy -= 1
            lost = WorkerLost(f"task {task} lost its worker (slot {slot}, {kind})")
            self.attempt_failed(task, "timeout" if kind == "timeout" else "lost-worker", lost)
        for task in orphans:
            self.backend.place(task)
        self.backend.released(worker)
        if not worker.retiring:
            self.start_later(slot, self.recovery.restart_delay, "restart")

    def start_later(self, slot: int, delay: float, kind: str) -> None:
        """Start a worker in ``slot`` after ``delay`` s (plus ``start_cost``) unless
        cancelled meanwhile; ``kind`` is restart or scale_up."""
        token = object()
        self.pending_starts[slot] = token

        def begin() -> None:
            if self.pending_starts.get(slot) is not token or self.stopped:
                return
            del self.pending_starts[slot]
            self.start_worker(slot)
            now = self.backend.now()
            if self.recorder is not None:
                self.recorder.workers_changed(now, +1)
            if kind == "restart":
                self.counts["restarts"] += 1
                self.event(now, "restart", slot)

        self.backend.at(self.backend.now() + delay + self.start_cost, begin)

    def retire(self, slot: int) -> None:
        """Scale-down: ``slot`` takes no new work; it leaves after its running task."""
        worker = self.slots.get(slot)
        if worker is None:
            return
        worker.retiring = True
        with self._guard("remove_worker"):
            orphans = self.policy.remove_worker(slot)
        for task in orphans:
            self.backend.place(task)
        if self.leave_idle(worker):
            self.backend.wake(worker)

    def retired(self, worker: W) -> None:
        """A retiring worker has left its slot."""
        if self.slots.get(worker.slot) is worker:
            del self.slots[worker.slot]
        if self.recorder is not None:
            self.recorder.workers_changed(self.backend.now(), -1)
        self.pass_wake()

    def scale(self, now: float) -> None:
        """The autoscaler's tick due at ``now``: ask the policy for a worker count, then
        start or retire slots (a retiring worker still finishing is kept instead). The
        events carry the time the decision was made (later than ``now`` in a real pool
        whose supervisor ran late)."""
        policy = self.policy
        serving = [slot for slot, worker in self.slots.items() if not worker.retiring]
        slots = set(serving) | set(self.pending_starts)
        with self._guard("desired_workers"):
            desired = policy.desired_workers(now, len(slots), self.busy, policy.queued())
        added, retired = plan_scaling(slots, desired)
        decided = self.backend.now()
        for slot in added:
            self.event(decided, "scale_up", slot)
            leaving = self.slots.get(slot)
            if leaving is not None and leaving.retiring:
                leaving.retiring = False
                with self._guard("add_worker"):
                    policy.add_worker(slot)
            else:
                self.start_later(slot, policy.startup_delay, "scale_up")
        for slot in retired:
            self.event(decided, "scale_down", slot)
            if self.pending_starts.pop(slot, None) is None:
                self.retire(slot)

    def inject(self, fault: Fault, now: float) -> tuple[W, float] | None:
        """A scheduled crash or hang reaches its worker at ``now``: the worker and the
        seconds it freezes beyond a hang already under way, or None if there is none
        to reach (no worker in the slot, one already dead, or the run is over)."""
        worker = self.slots.get(fault.worker)
        if worker is None or worker.crashed or worker.declared_dead or self.stopped:
            return None
        self.event(now, fault.kind, worker.slot, worker.task)
        if fault.kind == "crash":
            worker.crashed = True
            return worker, 0.0
        # Overlapping hangs merge: the worker is frozen until the latest one ends.
        until = now + fault.duration
        extension = max(0.0, until - max(worker.frozen_until, now))
        worker.frozen_until = max(worker.frozen_until, until)
        return worker, extension

    def died(self) -> list[W]:
        """The process that holds the pool died (a pool restart): forget every slot, idle
        worker, pending start and busy count; return the workers that were in the slots
        (their tasks are the backend's to account for)."""
        workers = list(self.slots.values())
        self.slots.clear()
        self.idle.clear()
        self.pending_starts.clear()
        self.busy = 0
        return workers

    def poisoned(self, worker: W, task: int, now: float) -> None:
        """A poison ``task`` crashes ``worker`` as it starts (the backend ends the worker)."""
        self.event(now, "crash", worker.slot, task)
        worker.crashed = True

    def event(self, now: float, kind: str, worker: int = -1, task: int = -1) -> None:
        """Record a rare event (see :data:`pool.records.EVENT_KINDS`)."""
        if self.recorder is not None:
            self.recorder.event(now, kind, worker, task)
