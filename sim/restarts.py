"""Pool restarts in the simulated pool: the whole process dies and a new one resumes.

At a restart's instant (:attr:`pool.FaultPlan.pool_restarts`) the process that holds the
pool is gone: every worker stops where it is (its attempt lost, counted), every queued
task and every timer (retries waiting out their backoff, restarts of slots, detections)
with it, and arrivals are not submitted. After the downtime the program starts again
(``overhead.program_start``), its pool reads the journal (``overhead.journal_replay`` a
task) and queues every unfinished task in the order it was first submitted, with the
attempts it had: one that has used up ``max_attempts`` fails at once, as the real
journal fails it. The arrivals of the downtime follow. Without a journal the tasks the
dead process held are lost with it (``lost``, their ``end`` the instant of the death).
A restart planned before the last one's program is back takes it down the moment it is.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING, Any

import simpy

from pool.records import PENDING

if TYPE_CHECKING:
    from sim.simulated_pool import _Run

SimEvents = Generator[simpy.Event, Any, None]


class PoolRestarts:
    """Kills the run's pool at each planned instant and starts a new one after it."""

    def __init__(self, run: _Run) -> None:
        self.run = run
        self.env = run.env
        self.plan = run.config.faults.pool_restarts
        #: Arrivals while the process is down (submitted when it is back), in order.
        self.held: list[int] = []
        #: Tasks lost with a process that kept no journal.
        self.lost: set[int] = set()

    def start(self) -> None:
        """Begin the planned restarts."""
        if self.plan:
            self.env.process(self._restarts())

    def _restarts(self) -> SimEvents:
        overhead = self.run.config.overhead
        for time, downtime in self.plan:
            if time > self.env.now:
                yield self.env.timeout(time - self.env.now)
            if self.run.core.stopped:
                return
            unfinished = self._die()
            replay = overhead.journal_replay * len(unfinished) if self.run.journal else 0.0
            yield self.env.timeout(downtime + overhead.program_start + replay)
            self._resume(unfinished)

    def _die(self) -> list[int]:
        """The process dies now: stop every worker and forget every queue and timer;
        return the tasks the journal holds unfinished, oldest first."""
        run, core, rec, now = self.run, self.run.core, self.run.rec, self.env.now
        run.down = True
        run.epoch += 1  # every timer set before now is void
        core.event(now, "pool_crash")
        waiting = set(core.drain(now))
        slotted = core.died()
        serving = sum(1 for worker in slotted if not worker.declared_dead)
        for worker in [*slotted, *run.faults.zombies]:
            if worker.task >= 0 and not worker.declared_dead:
                rec.abandon(worker.task, now, "lost-worker")
                waiting.add(worker.task)
                rec.requeue(worker.task, now)
            worker.task = -1
            worker.crashed = worker.declared_dead = True
            if worker.process.is_alive and not worker.starting:
                worker.process.interrupt(("crash", 0.0))
        rec.workers_changed(now, -serving)
        run.faults.zombies.clear()
        status = rec.status
        unfinished = [
            task for task in range(run.arrived) if status[task] == PENDING and task not in self.lost
        ]
        for task in unfinished:
            if task not in waiting:  # its retry's timer died: pending from now
                rec.requeue(task, now)
        if run.journal:
            return unfinished
        for task in unfinished:  # nothing keeps them: lost, nobody runs them again
            rec.end[task] = now
            self.lost.add(task)
            run.finish(task)
        return []

    def _resume(self, unfinished: list[int]) -> None:
        """The program runs again: a new pool, its journal's tasks, then the held arrivals."""
        run, core, rec, now = self.run, self.run.core, self.run.rec, self.env.now
        run.down = False
        run.policy.reset(range(run.config.workers), run.streams.policy)
        run.started = False  # program_start includes its workers' start
        for slot in range(run.config.workers):
            core.start_worker(slot)
        run.started = True
        rec.workers_changed(now, run.config.workers)
        core.event(now, "pool_restart")
        max_attempts = run.recovery.max_attempts
        for task in unfinished:
            if rec.attempts[task] >= max_attempts:  # the journal fails it as it reads it
                core.counts["failed"] += 1
                rec.fail(task, now)
                run.finish(task)
            else:
                run.place(task)
        held, self.held = self.held, []
        for task in held:
            run.place(task)
