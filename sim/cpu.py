"""The CPU of one simulated Python process: its cores and its interpreter lock.

Threads compute on ``cores`` processors shared equally among the threads that are
computing at the moment (processor sharing: Linux's fair scheduler, seen at the scale
of tasks rather than of its few-millisecond slices); a thread never gets more than one
core. Code that holds the interpreter lock (pure Python) computes only while its thread
holds the lock; C code that releases the lock (hashlib, zlib, numpy) computes beside it.

The lock follows CPython's rules (``Python/ceval_gil.h``, 3.10-3.12): a thread that
finds the lock free takes it at once; otherwise it waits in line. A waiter that has
waited a whole ``switch_interval`` (``sys.getswitchinterval()``) with no change of
holder asks the holder to drop the lock; the holder, if it is running Python, drops it
and queues behind the others. Every time the lock passes to a waiting thread, nobody
holds it for ``handoff`` seconds (waking the waiter), or ``busy_handoff`` seconds when
every core is busy computing (the woken thread waits for the scheduler to give it a
core). A thread coming back from I/O therefore waits up to a switch interval behind a
computing thread: the convoy effect. A thread that wakes while every core is busy
(its I/O done, a task for it, the submitter's next arrival) first waits for a core, the
same wait for the scheduler (:meth:`Processor.wake_delay`).

Every simulated thread is named by an object of the caller's (a worker, the submitter).
The generators are driven from SimPy processes; a SimPy interrupt that reaches one is
passed to ``interrupted``, a generator that serves the fault (a hang) or raises (a
crash), after the thread has left the cores and the lock.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Callable, Generator, Hashable
from dataclasses import dataclass
from typing import Any

import simpy

SimEvents = Generator[simpy.Event, Any, None]
Interrupted = Callable[[simpy.Interrupt], SimEvents]

#: CPU seconds below which a job counts as finished (float rounding of virtual time).
_EPSILON = 1e-9


@dataclass(eq=False, slots=True)
class _Job:
    """``who`` computing until the shared virtual clock reaches ``finish``."""

    who: Hashable
    finish: float
    done: simpy.Event
    preemptible: bool
    active: bool = True
    remaining: float = 0.0


@dataclass(eq=False, slots=True)
class _Waiter:
    """A thread waiting for the lock since ``since``; ``granted`` fires when it has it."""

    who: Hashable
    since: float
    granted: simpy.Event


class Processor:
    """``cores`` processors and one interpreter lock, in simulated seconds."""

    def __init__(
        self,
        env: simpy.Environment,
        cores: float,
        switch_interval: float,
        handoff: float,
        busy_handoff: float | None = None,
    ) -> None:
        self.env = env
        self.cores = cores
        self.switch_interval = switch_interval
        self.handoff = handoff
        self.busy_handoff = handoff if busy_handoff is None else busy_handoff
        # Processor sharing in virtual time: every computing thread has received
        # ``_virtual`` CPU seconds since the start, advancing at the current rate.
        self._virtual = 0.0
        self._virtual_at = 0.0
        self._heap: list[tuple[float, int, _Job]] = []
        self._running: dict[Hashable, _Job] = {}
        self._sequence = 0
        self._timer = 0
        self.holder: Hashable | None = None
        self.acquired_at = 0.0
        self.waiters: deque[_Waiter] = deque()
        self._drop_timer = 0
        #: Seconds of CPU each thread was given, and of lock hand-overs (for checks).
        self.busy_seconds = 0.0
        self.handovers = 0

    # -- the cores ---------------------------------------------------------------------

    def compute(self, who: Hashable, seconds: float, interrupted: Interrupted) -> SimEvents:
        """``who`` computes ``seconds`` of CPU without the lock."""
        remaining = seconds
        while remaining > _EPSILON:
            job = self._start(who, remaining, preemptible=False)
            try:
                yield job.done
                return
            except simpy.Interrupt as interrupt:
                remaining = self._stop(job)
                yield from interrupted(interrupt)

    def wake_delay(self) -> float:
        """How long a thread that wakes now (its wait ended) waits for a core before it
        runs: nothing while a core is free; with every core busy computing, what a
        woken thread waits for the scheduler beyond a hand-over on free cores."""
        if len(self._running) < self.cores:
            return 0.0
        return max(0.0, self.busy_handoff - self.handoff)

    def _rate(self) -> float:
        running = len(self._running)
        return 1.0 if running <= self.cores else self.cores / running

    def _advance(self) -> None:
        now = self.env.now
        if now > self._virtual_at:
            rate = self._rate()
            self._virtual += (now - self._virtual_at) * rate
            self.busy_seconds += (now - self._virtual_at) * rate * len(self._running)
            self._virtual_at = now

    def _start(self, who: Hashable, seconds: float, preemptible: bool) -> _Job:
        self._advance()
        job = _Job(who, self._virtual + seconds, self.env.event(), preemptible)
        self._sequence += 1
        heapq.heappush(self._heap, (job.finish, self._sequence, job))
        self._running[who] = job
        self._reschedule()
        return job

    def _stop(self, job: _Job) -> float:
        """Take ``job`` off the cores; returns the CPU seconds it still needed."""
        if not job.active:
            return job.remaining
        self._advance()
        job.active = False
        job.remaining = max(0.0, job.finish - self._virtual)
        del self._running[job.who]
        self._reschedule()
        return job.remaining

    def _reschedule(self) -> None:
        heap = self._heap
        while heap and not heap[0][2].active:
            heapq.heappop(heap)
        self._timer += 1
        if heap:
            delay = max(0.0, (heap[0][0] - self._virtual) / self._rate())
            timer = self._timer
            self.env.timeout(delay).callbacks.append(lambda _: self._finish_due(timer))

    def _finish_due(self, timer: int) -> None:
        if timer != self._timer:
            return
        self._advance()
        heap, finished = self._heap, []
        while heap and heap[0][0] <= self._virtual + _EPSILON:
            job = heapq.heappop(heap)[2]
            if job.active:
                job.active = False
                del self._running[job.who]
                finished.append(job)
        self._reschedule()
        for job in finished:
            job.done.succeed(True)

    # -- the interpreter lock ----------------------------------------------------------

    def acquire(
        self, who: Hashable, interrupted: Interrupted, since: float | None = None
    ) -> SimEvents:
        """``who`` takes the lock, waiting in line if another thread holds it.

        ``since``: when its wait counts from (a thread made to drop the lock starts
        waiting once the next holder has it); by default now.
        """
        while self.holder is not who:
            if self.holder is None and not self.waiters:
                self.holder, self.acquired_at = who, self.env.now
                return
            start = self.env.now if since is None else since
            waiter = _Waiter(who, start, self.env.event())
            self.waiters.append(waiter)
            self._arm_drop()
            try:
                yield waiter.granted
            except simpy.Interrupt as interrupt:
                self._withdraw(waiter)
                since = None
                yield from interrupted(interrupt)

    def release(self, who: Hashable) -> None:
        """``who`` drops the lock; the longest waiter gets it after the hand-off."""
        if self.holder is not who:
            return
        self._drop_timer += 1
        if self.waiters:
            self._hand_over(self.waiters.popleft())
        else:
            self.holder = None

    def hold(self, who: Hashable, seconds: float, interrupted: Interrupted) -> SimEvents:
        """``who``, holding the lock, runs ``seconds`` of Python; it keeps the lock after.

        Asked to drop the lock (a waiter's switch interval ran out), it queues again for
        it and goes on once it has it back. A fault frees the lock while it is served.
        """
        remaining = seconds
        while remaining > _EPSILON:
            job = self._start(who, remaining, preemptible=True)
            self._arm_drop()
            try:
                finished = yield job.done
            except simpy.Interrupt as interrupt:
                remaining = self._stop(job)
                self.release(who)
                yield from interrupted(interrupt)
                yield from self.acquire(who, interrupted)
                continue
            if finished:
                return
            remaining = job.remaining
            yield from self.acquire(who, interrupted, since=self.acquired_at)

    def forget(self, who: Hashable) -> None:
        """``who`` has ended (a crash, a retired or a discarded worker): free what it held."""
        job = self._running.get(who)
        if job is not None:
            self._stop(job)
        for waiter in list(self.waiters):
            if waiter.who is who:
                self._withdraw(waiter)
        self.release(who)

    def _withdraw(self, waiter: _Waiter) -> None:
        if self.holder is waiter.who:  # granted during the hand-off: pass it on
            self.release(waiter.who)
        elif waiter in self.waiters:
            self.waiters.remove(waiter)

    def _hand_over(self, waiter: _Waiter) -> None:
        self.handovers += 1
        busy = len(self._running) >= self.cores
        delay = self.busy_handoff if busy else self.handoff
        self.holder, self.acquired_at = waiter.who, self.env.now + delay
        event = waiter.granted
        event._ok, event._value = True, None  # succeed it after the hand-off delay
        self.env.schedule(event, delay=delay)

    def _arm_drop(self) -> None:
        """If a waiter waits behind a thread running Python, ask it to drop the lock when
        some waiter's switch interval ends with the same holder throughout."""
        job = self._running.get(self.holder) if self.holder is not None else None
        if job is None or not job.preemptible or not self.waiters:
            return
        if not math.isfinite(self.switch_interval):
            return
        due = min(self._request_time(waiter) for waiter in self.waiters)
        self._drop_timer += 1
        timer = self._drop_timer
        delay = max(0.0, due - self.env.now)
        self.env.timeout(delay).callbacks.append(lambda _: self._drop_due(timer, job))

    def _request_time(self, waiter: _Waiter) -> float:
        """When ``waiter`` asks for a drop: the end of the first of its switch intervals
        (counted from when it began to wait) that lies wholly within this holder's tenure."""
        interval, tenure, since = self.switch_interval, self.acquired_at, waiter.since
        if since >= tenure:
            return since + interval
        return since + interval * math.ceil((tenure + interval - since) / interval - 1e-9)

    def _drop_due(self, timer: int, job: _Job) -> None:
        if timer != self._drop_timer or not job.active or not self.waiters:
            return
        self._advance()
        if job.finish - self._virtual <= _EPSILON:
            return  # it ends now: it will drop the lock, or keep it, by itself
        job.remaining = self._stop(job)
        self.release(job.who)
        job.done.succeed(False)
