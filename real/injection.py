"""Fault injection for the threaded pool: crashes, hangs, poison and failing attempts.

:func:`real.run` uses it to make the real pool suffer the very faults the model is given
(the same :meth:`pool.FaultPlan.schedule`). A crash makes the worker thread stop
heartbeating and end without reporting; a hang freezes it and silences its heartbeat
for the hang's duration. Service is performed by :meth:`Injector.perform` in the three
parts of :attr:`pool.Workload.parts`, in their order (see :mod:`real.work`): an
interruptible sleep, a busy loop that holds the interpreter lock, and hashing that
releases it.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Sequence

import numpy as np

from pool.faults import Fault
from pool.records import Recorder
from pool.tasks import Workload
from real.lifecycle import WorkerThreads
from real.work import LockFreeWork, hold_lock_for
from real.worker import ThreadWorker, WorkerCrash


class InjectedError(Exception):
    """The exception a task attempt raises when the FaultPlan says it fails."""


def lock_free_work(workload: Workload) -> LockFreeWork:
    """The lock-free computing of ``workload``'s tasks, its speed measured (about 0.1 s:
    make it before the pool's clock starts)."""
    free = workload.parts[1]
    typical = float(np.median(free[free > 0])) if free.any() else 0.0
    return LockFreeWork(typical_seconds=typical)


class Injector:
    """Performs tasks' service on worker threads and injects the run's faults."""

    def __init__(
        self,
        threads: WorkerThreads,
        recorder: Recorder,
        faults: Sequence[Fault],
        failures: list[list[bool]] | None,
        poison: frozenset[int],
        lock_free: LockFreeWork | None = None,
    ) -> None:
        self.threads = threads
        self.rec = recorder
        self.faults = list(faults)
        self.failures = failures
        self.poison = poison
        held, free, wait = recorder.workload.parts
        self.parts = list(zip(held.tolist(), free.tolist(), wait.tolist(), strict=True))
        #: Made by the caller before the pool's clock starts (see :func:`lock_free_work`).
        self.lock_free = lock_free
        # Faults that reached a worker: (pool time, kind, seconds they freeze it for).
        self._pending: dict[int, deque[tuple[float, str, float]]] = {}
        self._stop = threading.Event()
        self.thread = threading.Thread(
            target=self._inject_all, name="poolbench-injector", daemon=True
        )

    def start(self) -> None:
        """Begin injecting the scheduled faults at their instants."""
        if self.faults:
            self.thread.start()

    def stop(self) -> None:
        """Stop injecting (faults not yet due are dropped) and wait for the thread."""
        self._stop.set()
        if self.thread.is_alive():
            self.thread.join()

    def _inject_all(self) -> None:
        for fault in self.faults:
            if self._stop.wait(max(0.0, fault.time - self.threads.now())):
                return
            self._inject(fault)

    def _inject(self, fault: Fault) -> None:
        threads = self.threads
        with threads.lock:
            now = threads.now()
            reached = threads.core.inject(fault, now)
            if reached is None:
                return
            worker, extension = reached
            worker.fall_silent(now)
            if fault.kind == "hang":
                worker.silent_until = max(worker.silent_until, now + fault.duration)
            threads.core.leave_idle(worker)
            worker.wake.notify()
            self._pending.setdefault(id(worker), deque()).append((now, fault.kind, extension))
            worker.interrupt.set()

    # -- on a worker thread ----------------------------------------------------------------

    def perform(self, task: int) -> None:
        """Carry out ``task``'s service as the workload says, suffering injected faults."""
        worker = self.threads.current_worker()
        assert worker is not None, "perform runs on the pool's worker threads"
        if task in self.poison:
            self._crash_self(worker, task)
        held, free, wait = self.parts[task]
        self._hold(worker, wait)
        if held > 0:
            self._spin(worker, held)
        if free > 0:
            assert self.lock_free is not None, "lock-free parts need lock_free_work()"
            self.lock_free.compute(free)
            if worker.interrupt.is_set():  # faults that came during the call
                self._hold(worker, self._take_faults(worker))
        if self.failures is not None and self.failures[task][self.rec.attempts[task] - 1]:
            raise InjectedError(f"task {task} failed (injected)")

    def _crash_self(self, worker: ThreadWorker, task: int) -> None:
        with self.threads.lock:
            now = self.threads.now()
            self.threads.core.poisoned(worker, task, now)
            worker.fall_silent(now)
        raise WorkerCrash

    def _hold(self, worker: ThreadWorker, seconds: float) -> None:
        """Sleep ``seconds``; a hang extends the sleep, a crash ends the thread."""
        end = time.monotonic() + seconds
        while (remaining := end - time.monotonic()) > 0:
            if worker.interrupt.wait(remaining):
                end += self._take_faults(worker)

    def _spin(self, worker: ThreadWorker, cpu_seconds: float) -> None:
        """Burn ``cpu_seconds`` of this thread's CPU time, holding the interpreter lock;
        a fault that comes meanwhile is served (a hang sleeps, a crash raises) first."""
        end = time.thread_time() + cpu_seconds
        while (remaining := end - time.thread_time()) > 0:
            hold_lock_for(remaining, worker.interrupt.is_set)
            if worker.interrupt.is_set():
                self._hold(worker, self._take_faults(worker))

    def _take_faults(self, worker: ThreadWorker) -> float:
        """Apply the faults that interrupted ``worker``'s current attempt: raise on a crash,
        else return the time it stays frozen. Faults that arrived before the attempt began
        were already served while the worker was idle (``frozen_until``, ``crashed``)."""
        with self.threads.lock:
            pending = self._pending.pop(id(worker), deque())
            worker.interrupt.clear()
            started = worker.attempt_start
        current = [(kind, frozen) for reached, kind, frozen in pending if reached >= started]
        if any(kind == "crash" for kind, _ in current):
            raise WorkerCrash
        return sum(frozen for _, frozen in current)
