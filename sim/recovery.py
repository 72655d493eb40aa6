"""Faults in the simulated pool: injection, heartbeat detection, restarts and retries.

Crashes and hangs come from one schedule (:meth:`pool.FaultPlan.schedule`) and reach a
worker's process as an interrupt. A crash ends the process without reporting; a hang
freezes it. Detection follows :meth:`pool.Recovery.detection_time`, the same rule the
real pool's monitor applies tick by tick, so no monitor process is needed here.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any

import simpy

from pool.faults import Fault, FaultPlan, fault_horizon
from sim.worker import Crashed, SimWorker

if TYPE_CHECKING:
    from sim.simulated_pool import _Run

SimEvents = Generator[simpy.Event, Any, None]


class FaultHandler:
    """Injects the run's faults and carries out the pool's recovery."""

    def __init__(self, run: _Run, plan: FaultPlan, workers: int) -> None:
        self.run = run
        self.env = run.env
        self.rec = run.rec
        self.recovery = run.recovery
        self.plan = plan
        max_workers = run.policy.max_workers or workers
        wl = run.workload
        horizon = fault_horizon(wl.duration, float(wl.service.sum()), workers)
        self.schedule = plan.schedule(range(max(workers, max_workers)), horizon, run.streams.faults)
        failures = plan.attempt_failures(len(wl), self.recovery.max_attempts, run.streams.failures)
        self.failures = None if failures is None else failures.tolist()
        self.poison = frozenset(plan.poison_tasks)
        #: Whether attempt_started has anything to do (keeps the fault-free path lean).
        self.watch_attempts = bool(self.poison) or self.recovery.task_timeout is not None
        self.pending_starts: dict[int, object] = {}
        #: Workers declared dead while still running (hung, timed out): their late
        #: results must still be seen and counted after the last task is done.
        self.zombies: list[SimWorker] = []

    def start(self) -> None:
        """Begin injecting the scheduled faults."""
        if self.schedule:
            self.env.process(self._inject_all())

    def _inject_all(self) -> SimEvents:
        for fault in self.schedule:
            if fault.time > self.env.now:
                yield self.env.timeout(fault.time - self.env.now)
            self._inject(fault)

    def _inject(self, fault: Fault) -> None:
        worker = self.run.slots.get(fault.worker)
        if worker is None or worker.crashed or worker.declared_dead or not self.run.unfinished:
            return  # the real pool, too, stops injecting once every task has ended
        now = self.env.now
        self.rec.event(now, fault.kind, worker.slot, worker.task)
        if fault.kind == "crash":
            self._crash(worker)
            worker.process.interrupt(("crash", 0.0))
            return
        if worker.silent_since is None:
            worker.silent_since = now
            self._watch(worker)
        token = worker.silent_since
        # Overlapping hangs merge: the worker is frozen until the latest one ends.
        extension = max(0.0, now + fault.duration - max(worker.frozen_until, now))
        worker.frozen_until = max(worker.frozen_until, now + fault.duration)
        self._at(now + fault.duration, lambda: self._hang_over(worker, token))
        worker.process.interrupt(("hang", extension))

    def _crash(self, worker: SimWorker) -> None:
        worker.crashed = True
        if worker.silent_since is None:
            worker.silent_since = self.env.now
            self._watch(worker)

    def _watch(self, worker: SimWorker) -> None:
        token = worker.silent_since
        assert token is not None
        detect_at = self.recovery.detection_time(token, worker.serving_since)

        def check() -> None:
            if worker.silent_since == token and not worker.declared_dead:
                self.declare_dead(worker, "detected")

        self._at(detect_at, check)

    def _hang_over(self, worker: SimWorker, token: float) -> None:
        over = self.env.now >= worker.frozen_until
        if over and worker.silent_since == token and not worker.crashed:
            worker.silent_since = None

    def _at(self, time: float, action: Callable[[], None]) -> None:
        event = self.env.timeout(max(0.0, time - self.env.now))
        event.callbacks.append(lambda _: action())

    # -- inside a worker's process -------------------------------------------------------

    def resume(self, worker: SimWorker, interrupt: simpy.Interrupt, remaining: float) -> SimEvents:
        """After an interrupt: a crash ends the worker; a hang freezes it, then it goes on
        with the ``remaining`` seconds of what it was doing."""
        kind, duration = _cause(interrupt)
        if kind == "crash":
            raise Crashed
        yield from self.hold(worker, remaining + duration)

    def serve_fault(self, worker: SimWorker) -> Callable[[simpy.Interrupt], SimEvents]:
        """How ``worker`` answers a fault that interrupts its computing or its wait for
        the interpreter lock: a crash ends it, a hang freezes it (see :meth:`resume`)."""
        return lambda interrupt: self.resume(worker, interrupt, 0.0)

    def hold(self, worker: SimWorker, duration: float) -> SimEvents:
        """Spend ``duration`` seconds working; hangs extend it, a crash ends the worker."""
        end = self.env.now + duration
        while self.env.now < end:
            try:
                yield self.env.timeout(end - self.env.now)
            except simpy.Interrupt as interrupt:
                kind, frozen = _cause(interrupt)
                if kind == "crash":
                    raise Crashed from None
                end += frozen

    def wait_for(self, worker: SimWorker, event: simpy.Event) -> SimEvents:
        """Wait for ``event`` (the interpreter lock); hangs meanwhile are served after it."""
        frozen = 0.0
        while not event.processed:
            try:
                yield event
            except simpy.Interrupt as interrupt:
                kind, duration = _cause(interrupt)
                if kind == "crash":
                    raise Crashed from None
                frozen += duration
        if frozen:
            yield from self.hold(worker, frozen)

    def attempt_started(self, worker: SimWorker, task: int) -> None:
        """A poison task crashes its worker at once; a task timeout starts counting."""
        if task in self.poison:
            self.rec.event(self.env.now, "crash", worker.slot, task)
            self._crash(worker)
            raise Crashed
        timeout_at = self.recovery.timeout_time(self.env.now)
        if timeout_at is not None:
            attempt = self.rec.attempts[task]

            def check() -> None:
                same_attempt = worker.task == task and self.rec.attempts[task] == attempt
                if same_attempt and not worker.declared_dead:
                    self.declare_dead(worker, "timeout")

            self._at(timeout_at, check)

    def attempt_raised(self, task: int) -> bool:
        """Whether this attempt of ``task`` ends in an exception (drawn before the run)."""
        failures = self.failures
        return failures is not None and failures[task][self.rec.attempts[task] - 1]

    def discard(self, worker: SimWorker, task: int) -> None:
        """A worker declared dead came back with a result: drop it and count it."""
        self.rec.duplicates += 1
        self.rec.event(self.env.now, "discarded", worker.slot, task)

    # -- the pool's answers ---------------------------------------------------------------

    def attempt_failed(self, task: int, outcome: str) -> None:
        """An attempt ended without success: retry after backoff, or fail the task."""
        now = self.env.now
        self.rec.abandon(task, now, outcome)
        delay = self.recovery.retry_delay(self.rec.attempts[task])
        if delay is None:
            self.rec.fail(task, now)
            self.run.finish(task)
            return
        self.rec.event(now, "retry", self.rec.worker[task], task)
        self._at(now + delay, lambda: self._requeue(task))

    def _requeue(self, task: int) -> None:
        self.rec.requeue(task, self.env.now)
        self.run.submit(task)

    def declare_dead(self, worker: SimWorker, kind: str) -> None:
        """The pool gives up on ``worker``: requeue its work and restart its slot."""
        run, now, slot = self.run, self.env.now, worker.slot
        self.rec.event(now, kind, slot, worker.task)
        worker.declared_dead = True
        if not worker.crashed:
            self.zombies.append(worker)
        self.rec.workers_changed(now, -1)
        if run.idle.get(slot) is worker:
            del run.idle[slot]
        orphans: list[int] = []
        if run.slots.get(slot) is worker:  # else retired already: its queue was handed back
            del run.slots[slot]
            orphans = run.policy.remove_worker(slot)
        if worker.task >= 0:
            task, worker.task = worker.task, -1
            run.busy -= 1
            self.attempt_failed(task, "timeout" if kind == "timeout" else "lost-worker")
        for task in orphans:
            run.submit(task)
        if not worker.retiring:
            self.start_later(slot, self.recovery.restart_delay, "restart")

    def start_later(self, slot: int, delay: float, kind: str) -> None:
        """Start a worker in ``slot`` after ``delay`` s (plus thread start), unless cancelled."""
        token = object()
        self.pending_starts[slot] = token

        def begin() -> None:
            if self.pending_starts.get(slot) is not token or not self.run.unfinished:
                return
            del self.pending_starts[slot]
            self.run.start_worker(slot)
            self.rec.workers_changed(self.env.now, +1)
            if kind == "restart":
                self.rec.event(self.env.now, "restart", slot)

        self._at(self.env.now + delay + self.run.thread_start, begin)


def _cause(interrupt: simpy.Interrupt) -> tuple[str, float]:
    """The (kind, duration) a fault interrupt carries."""
    kind, duration = interrupt.cause  # type: ignore[misc]
    return str(kind), float(duration)
