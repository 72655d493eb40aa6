"""Faults in the simulated pool: injection, heartbeat detection, restarts and retries.

Crashes and hangs come from one schedule (:meth:`pool.FaultPlan.schedule`), reach their
worker through the pool core (:meth:`pool.core.PoolCore.inject`) and its process as an
interrupt. A crash ends the process without reporting; a hang
freezes it. Detection follows :meth:`pool.Recovery.detection_time`, the same rule the
real pool's monitor applies tick by tick, so no monitor process is needed here.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any

import simpy

from pool.faults import Fault, FaultPlan, run_faults
from sim.worker import Crashed, SimWorker

if TYPE_CHECKING:
    from sim.simulated_pool import _Run

SimEvents = Generator[simpy.Event, Any, None]


class FaultHandler:
    """Injects the run's faults and detects them; the pool core answers (declare dead,
    retry, restart)."""

    def __init__(self, run: _Run, plan: FaultPlan, workers: int) -> None:
        self.run = run
        self.env = run.env
        self.core = run.core
        self.rec = run.rec
        self.recovery = run.recovery
        self.plan = plan
        self.schedule, self.failures = run_faults(
            plan,
            run.workload,
            workers,
            run.policy.max_workers,
            run.recovery.max_attempts,
            run.streams,
        )
        self.poison = frozenset(plan.poison_tasks)
        #: Whether attempt_started has anything to do (keeps the fault-free path lean).
        self.watch_attempts = bool(self.poison) or self.recovery.task_timeout is not None
        #: Workers declared dead while still running (hung, timed out): their late
        #: results must still be seen and counted after the last task is done.
        self.zombies: list[SimWorker] = []
        #: Worker processes: one that exits is seen through its process sentinel, after
        #: ``exit_detection``; one that stops looks alive for a while (see _inject).
        self.exits_seen = run.config.backend == "process"
        self.exit_detection = run.config.overhead.exit_detection

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
        target = self.core.slots.get(fault.worker)
        if target is not None and target.starting:  # not serving yet: left alone
            return
        reached = self.core.inject(fault, self.env.now)
        if reached is None:
            return
        worker, extension = reached
        now = self.env.now
        token = self._silence(worker, exits=fault.kind == "crash", lag=self._beat_lag(fault))
        if fault.kind == "crash":
            worker.process.interrupt(("crash", 0.0))
            return
        self.run.at(now + fault.duration, lambda: self._hang_over(worker, token))
        worker.process.interrupt(("hang", extension))

    def _beat_lag(self, fault: Fault) -> float:
        """How much later than a hang a worker process looks silent: its heartbeat, written
        every half interval, counts for an interval, so a stopped process looks alive for
        three quarters of an interval on average (threads: the silence is seen at once)."""
        if fault.kind != "hang" or not self.exits_seen:
            return 0.0
        return 0.75 * self.recovery.heartbeat_interval

    def _silence(self, worker: SimWorker, exits: bool = False, lag: float = 0.0) -> float:
        """A crash or a hang stops ``worker``'s heartbeat (seen ``lag`` s later), unless a
        silence runs already; returns when the silence began. A worker process that
        ``exits`` is seen through its sentinel, after ``exit_detection``."""
        token = worker.silent_since
        if token is None:
            token = worker.silent_since = self.env.now + lag
            self._watch(worker)
        if exits and self.exits_seen:
            self.run.at(self.env.now + self.exit_detection, lambda: self._detect(worker, token))
        return token

    def _watch(self, worker: SimWorker) -> None:
        token = worker.silent_since
        assert token is not None
        self.run.at(
            self.recovery.detection_time(token, worker.serving_since),
            lambda: self._detect(worker, token),
        )

    def _detect(self, worker: SimWorker, token: float) -> None:
        if worker.silent_since == token and not worker.declared_dead:
            self.core.declare_dead(worker, "detected")

    def kill(self, worker: SimWorker) -> None:
        """End a worker process declared dead while it runs (a hang, a task timeout)."""
        worker.crashed = True
        if worker.process.is_alive and worker.process is not self.env.active_process:
            worker.process.interrupt(("crash", 0.0))

    def _hang_over(self, worker: SimWorker, token: float) -> None:
        over = self.env.now >= worker.frozen_until
        if over and worker.silent_since == token and not worker.crashed:
            worker.silent_since = None

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
            self.core.poisoned(worker, task, self.env.now)
            self._silence(worker, exits=True)
            raise Crashed
        timeout_at = self.recovery.timeout_time(self.env.now)
        if timeout_at is not None:
            attempt = self.rec.attempts[task]

            def check() -> None:
                same_attempt = worker.task == task and self.rec.attempts[task] == attempt
                if same_attempt and not worker.declared_dead:
                    self.core.declare_dead(worker, "timeout")

            self.run.at(timeout_at, check)

    def attempt_raised(self, task: int) -> bool:
        """Whether this attempt of ``task`` ends in an exception (drawn before the run)."""
        failures = self.failures
        return failures is not None and failures[task][self.rec.attempts[task] - 1]


def _cause(interrupt: simpy.Interrupt) -> tuple[str, float]:
    """The (kind, duration) a fault interrupt carries."""
    kind, duration = interrupt.cause  # type: ignore[misc]
    return str(kind), float(duration)
