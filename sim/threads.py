"""The threads of a simulated Python process: workers and the submitter, on the CPU.

Where tasks compute (or the machine's figures are given), each worker and the thread
that submits the arrivals runs on :class:`sim.cpu.Processor`: it needs the interpreter
lock to run the pool's code, and a task's parts take the lock, the cores, or neither.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING, Any

import simpy

from pool.core import NOTHING, STOLE
from sim.worker import SimWorker

if TYPE_CHECKING:
    from sim.simulated_pool import _Run

SimEvents = Generator[simpy.Event, Any, None]


def submitter(run: _Run) -> SimEvents:
    """Arrivals as a thread of the process submits them: it sleeps until each is due
    (waking late by the sleep overshoot) and runs ``submit`` (and a journaled pool's
    write of the task) holding the lock."""
    assert run.cpu is not None
    env, cpu, submit = run.env, run.cpu, run.place
    cost, overshoot = run.submit_cost, run.config.overhead.sleep_overshoot
    thread = "submitter"
    for task, arrival in enumerate(run.workload.arrival.tolist()):
        if arrival > env.now:
            yield env.timeout(arrival - env.now + overshoot)
            if (delay := cpu.wake_delay()) > 0:
                yield env.timeout(delay)
        if run.down:  # the process is dead: the arrival waits for its restart
            submit(task)
            run.arrived = task + 1
            continue
        yield from cpu.acquire(thread, _no_faults)
        yield from cpu.hold(thread, cost, _no_faults)
        submit(task)  # while the process was alive, or held for its restart
        run.arrived = task + 1
        cpu.release(thread)


def serve_on_cpu(run: _Run, worker: SimWorker) -> SimEvents:
    """The worker loop where tasks compute (see :mod:`sim.cpu`): the thread needs the
    interpreter lock to run the pool's code, and each task's parts take the lock, the
    cores, or neither (waiting)."""
    cpu, core, faults = run.cpu, run.core, run.faults
    steal_latency = run.policy.steal_latency
    assert cpu is not None
    served = faults.serve_fault(worker)
    task = -1
    while task >= 0 or not (worker.retiring or worker.declared_dead):
        yield from cpu.acquire(worker, served)
        if task >= 0:  # the last attempt ends once its thread runs Python again
            if worker.declared_dead:
                core.discard(worker, task, run.env.now)
                break
            run.complete(worker, task)
            task = -1
            continue
        if worker.retiring or worker.declared_dead:  # while it waited for the lock
            break
        taken = core.take(worker, run.env.now)
        if taken == STOLE and steal_latency > 0:  # the real pool sleeps without its locks
            cpu.release(worker)
            yield from faults.hold(worker, steal_latency)
            continue
        while taken == STOLE:
            taken = core.take(worker, run.env.now)
        if taken == NOTHING:
            cpu.release(worker)
            yield from run.idle_wait(worker)
            yield from faults.hold(worker, cpu.wake_delay())
            continue
        task = taken
        core.begin(worker, task, run.env.now)
        if faults.watch_attempts:
            faults.attempt_started(worker, task)
        held, free, wait = run.parts[task]
        yield from cpu.hold(worker, run.dispatch, served)
        if wait > 0:  # a task waits first (a request), then computes on the answer
            cpu.release(worker)
            yield from faults.hold(worker, wait)
            yield from faults.hold(worker, cpu.wake_delay())
            yield from cpu.acquire(worker, served)
        yield from cpu.hold(worker, held, served)
        if free > 0:
            cpu.release(worker)
            yield from cpu.compute(worker, free, served)
    if worker.retiring and not worker.declared_dead:
        core.retired(worker)


def _no_faults(interrupt: simpy.Interrupt) -> SimEvents:
    """The submitter suffers no faults: nothing interrupts it."""
    raise AssertionError(f"the submitter was interrupted: {interrupt.cause!r}")
    yield
