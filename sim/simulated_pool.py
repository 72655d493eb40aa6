"""SimulatedPool: a SimPy model of a worker pool driven by a ``pool`` policy object.

One process per worker and one for arrivals; records go to plain lists. Every decision
(which worker a submit wakes, what a free worker runs or steals, retries, restarts,
scaling) is the pool core's (:mod:`pool.core`), the same object the threaded pool
drives; here is only how time passes and how a worker waits: an idle worker waits on
an event of its own. Fault injection and detection live in :mod:`sim.recovery`, the
autoscaler's clock in :mod:`sim.scaling`.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any

import numpy as np
import simpy

from pool import _validate
from pool.core import STOLE, PoolCore
from pool.faults import FaultPlan, Recovery
from pool.overhead import Overhead
from pool.policies import Policy, _choice, resolve
from pool.records import DONE, PENDING, Recorder
from pool.results import RunResult
from pool.seeding import run_streams
from pool.tasks import Workload
from sim import threads
from sim.cpu import Processor
from sim.worker import Crashed, SimWorker

SimEvents = Generator[simpy.Event, Any, None]

#: What the model's workers can be (see :class:`SimulatedPool`).
BACKENDS = ("thread", "process")


class SimulatedPool:
    """A discrete-event model of a pool of ``workers`` running ``policy`` over a workload.

    ``faults`` and ``recovery`` say what goes wrong and how the pool answers;
    ``overhead`` adds a real pool's per-task costs (see :func:`real.calibrate`).

    ``backend``: what the workers are. "thread" (the default): threads of one process,
    sharing its interpreter lock. "process" (:class:`real.ProcessPool`): each worker a
    process with a lock of its own, so a task's lock-holding computing runs beside the
    others' (only the parent's dispatch, ``overhead.dispatch``, holds the parent's lock),
    a call also waits its remote call (the round trip, ``overhead.remote_calls``: after
    a task of that length), a worker that exits (a crash, a poison task) is seen after
    ``overhead.exit_detection``, one that stops looks alive a while longer (its last
    heartbeat counts for an interval), and a worker declared dead while running (a hang,
    a task timeout) is killed: it returns no late result.

    ``journal``: the pool keeps its tasks in a journal (``journal=`` of the real pools):
    each submit also writes the task (``overhead.journal_submit``, holding the lock), and
    after a pool restart (``faults.pool_restarts``, :mod:`sim.restarts`) the new pool
    runs every unfinished task again; without one they are lost with the process.
    """

    def __init__(
        self,
        policy: str | Policy = "fifo",
        workers: int = 4,
        faults: FaultPlan | None = None,
        recovery: Recovery | None = None,
        seed: int = 0,
        overhead: Overhead | None = None,
        backend: str = "thread",
        journal: bool = False,
    ) -> None:
        self.policy = resolve(policy)
        self.workers = _validate.integer_at_least("workers", workers, 1)
        self.faults = _validate.optional("faults", faults, FaultPlan, FaultPlan)
        self.recovery = _validate.optional("recovery", recovery, Recovery, Recovery)
        self.seed = _validate.integer_at_least("seed", seed, 0)
        self.overhead = _validate.optional("overhead", overhead, Overhead, Overhead)
        self.backend = _choice("backend", backend, BACKENDS)
        self.journal = _validate.boolean("journal", journal)

    def run(self, workload: Workload) -> RunResult:
        """Simulate ``workload`` to the end: every task ``done`` or ``failed``."""
        if not isinstance(workload, Workload):
            raise ValueError(f"workload must be a pool.Workload, got {workload!r}")
        from sim import fast_path

        if fast_path.applies(self, workload):
            durations = _Run.durations_of(workload, self.overhead, self.backend)
            return fast_path.run(self, workload, durations)
        return _Run(self, workload).execute()


class _Run:
    """The state of one simulation, and the model's side of the pool core: how time
    passes and how a worker waits (:class:`pool.core.Backend`). :class:`SimulatedPool`
    stays reusable."""

    def __init__(self, config: SimulatedPool, workload: Workload) -> None:
        from sim.recovery import FaultHandler
        from sim.restarts import PoolRestarts

        self.env = simpy.Environment()
        self.policy = config.policy
        self.recovery = config.recovery
        self.workload = workload
        self.streams = run_streams(config.seed)
        self.rec = Recorder(workload, config.workers)
        self.policy.reset(range(config.workers), self.streams.policy)
        overhead = config.overhead
        # A thread starts before its slot serves; a worker process is placed in its slot
        # first and starts its process there (its first task waits for it), as the real
        # pool's dispatching thread does.
        self.process_start = overhead.thread_start if config.backend == "process" else 0.0
        start_cost = overhead.thread_start - self.process_start
        self.core: PoolCore[SimWorker] = PoolCore(
            self.policy, self.recovery, self, self.rec, start_cost
        )
        self.durations = self.durations_of(workload, overhead, config.backend)
        self.priority = workload.priority.tolist()
        self.affinity = workload.affinity.tolist()
        self.unfinished = len(workload)
        self.all_done = self.env.event()
        if not self.unfinished:
            self.all_done.succeed()
        self.dispatch = overhead.dispatch
        self.journal = config.journal
        self.submit_cost = overhead.submit + (overhead.journal_submit if config.journal else 0.0)
        self.cpu: Processor | None = None
        if workload.cpu_fraction.any() or overhead.models_cpu or self.submit_cost > 0:
            self.cpu = Processor(
                self.env,
                overhead.cores,
                overhead.switch_interval,
                overhead.gil_handoff,
                overhead.busy_handoff,
            )
            held, free, wait = workload.parts
            wait = wait + overhead.sleep_overshoot * (wait > 0)
            if config.backend == "process":  # every child has a lock of its own
                held, free = 0.0 * held, held + free
                wait = wait + overhead.remote_calls(workload.service)  # wake-ups, not CPU
            self.parts = list(zip(held.tolist(), free.tolist(), wait.tolist(), strict=True))
        self.config = config
        self.started = False
        self.faults = FaultHandler(self, config.faults, config.workers)
        #: Arrivals submitted so far; whether the pool's process is dead (a pool restart);
        #: timers set before the last death are void (see :meth:`at`).
        self.arrived, self.down, self.epoch = 0, False, 0
        self.restarts = PoolRestarts(self)

    @staticmethod
    def durations_of(workload: Workload, overhead: Overhead, backend: str) -> list[float]:
        """Each task's time on its worker: service, sleep overshoot and dispatch (and on
        processes the remote call)."""
        service = workload.service
        if overhead.sleep_overshoot:
            io_part = service * (1.0 - workload.cpu_fraction)
            service = service + overhead.sleep_overshoot * (io_part > 0)
        per_task = np.full(len(service), overhead.dispatch)
        if backend == "process":
            per_task += overhead.remote_calls(workload.service)
        durations: list[float] = (service + per_task).tolist()
        return durations

    def execute(self) -> RunResult:
        for slot in range(self.config.workers):
            self.core.start_worker(slot)
        self.started = True  # the first processes started with the pool, before its clock
        self.env.process(self._arrivals() if self.cpu is None else threads.submitter(self))
        self.faults.start()
        self.restarts.start()
        if self.policy.decision_interval is not None:
            from sim.scaling import scaler

            self.env.process(scaler(self))
        try:
            self.env.run(until=self.all_done)
            running = [w.process for w in self.faults.zombies if w.process.is_alive]
            if running:
                self.env.run(until=simpy.AllOf(self.env, running))
        except RuntimeError as error:
            if "No scheduled events left" not in str(error):
                raise
        return self.rec.result("sim", run_meta(self.config, self.env.now))

    # -- the backend's hooks (pool.core.Backend) ---------------------------------------

    def now(self) -> float:
        """The model's time in seconds."""
        return float(self.env.now)

    def spawn(self, slot: int) -> SimWorker:
        """A new worker process for ``slot``, serving from now."""
        worker = SimWorker(slot, self.env.now)
        worker.starting = self.started and self.process_start > 0
        worker.process = self.env.process(self._work(worker))
        return worker

    def wake(self, worker: SimWorker) -> None:
        """Wake an idle worker: its wait event fires."""
        worker.wake.succeed()

    def at(self, due: float, action: Callable[[], None]) -> None:
        """Run ``action`` at model time ``due``, unless the pool's process dies first."""
        event = self.env.timeout(max(0.0, due - self.env.now))
        epoch = self.epoch

        def fire(_: simpy.Event) -> None:
            if self.epoch == epoch:
                action()

        event.callbacks.append(fire)

    def place(self, task: int) -> None:
        """Submit ``task`` (an arrival, a retry, a queue handed back) through the core;
        while the pool's process is dead an arrival waits for its restart."""
        if self.down:
            self.restarts.held.append(task)
            return
        self.core.submit(task, self.priority[task], self.affinity[task], self.env.now)

    def attempts(self, task: int) -> int:
        """Attempts of ``task`` begun so far."""
        return self.rec.attempts[task]

    def failed(self, task: int, error: BaseException) -> None:
        """``task`` failed for good: one fewer to wait for."""
        self.finish(task)

    def released(self, worker: SimWorker) -> None:
        """A worker declared dead but still running: its late result is still awaited
        (a thread), or it is killed (a process)."""
        if worker.crashed:
            return
        if self.config.backend == "process":
            self.faults.kill(worker)
        else:
            self.faults.zombies.append(worker)

    # -- tasks -------------------------------------------------------------------------

    def _arrivals(self) -> SimEvents:
        timeout, place, now = self.env.timeout, self.place, 0.0
        for task, arrival in enumerate(self.workload.arrival.tolist()):
            if arrival > now:
                yield timeout(arrival - now)
                now = arrival
            place(task)
            self.arrived = task + 1  # submitted (journaled) once placed

    def finish(self, task: int) -> None:
        """``task`` reached a final state: stop the run after the last one."""
        self.unfinished -= 1
        if not self.unfinished:
            self.core.stopped = True
            self.all_done.succeed()

    def complete(self, worker: SimWorker, task: int) -> None:
        """``worker``'s attempt of ``task`` ended: it succeeded, raised, or came too late."""
        rec, faults = self.rec, self.faults
        self.core.end(worker)
        if faults.failures is not None and faults.attempt_raised(task):
            self.core.attempt_failed(task, "error", _RAISED)
        elif rec.status[task] == PENDING:
            rec.end[task] = self.env.now
            rec.status[task] = DONE
            self.finish(task)
        else:
            self.core.discard(worker, task, self.env.now)

    # -- workers -----------------------------------------------------------------------

    def _work(self, worker: SimWorker) -> SimEvents:
        if worker.starting:  # its process starts: no task, no fault reaches it meanwhile
            yield self.env.timeout(self.process_start)
            worker.starting = False
        try:
            yield from (
                self._serve(worker) if self.cpu is None else threads.serve_on_cpu(self, worker)
            )
        except Crashed:
            self.core.leave_idle(worker)
            self.core.pass_wake()
        finally:
            if self.cpu is not None:
                self.cpu.forget(worker)

    def _serve(self, worker: SimWorker) -> SimEvents:
        # The hot loop of the model: locals instead of attribute lookups, one read of
        # the clock per step, and what idle_wait, core.begin and complete do written
        # out inline (a method call per task costs a tenth of the model's speed).
        env, core, rec, slot = self.env, self.core, self.rec, worker.slot
        idle, take, durations, faults = core.idle, core.take, self.durations, self.faults
        starts, ends, status, workers, attempts = (
            rec.start,
            rec.end,
            rec.status,
            rec.worker,
            rec.attempts,
        )
        timeout, event, steal_latency = env.timeout, env.event, self.policy.steal_latency
        watch_attempts, may_raise = faults.watch_attempts, faults.failures is not None
        while not (worker.retiring or worker.declared_dead):
            now = env.now
            task = take(worker, now)
            if task < 0:
                if task == STOLE:
                    if steal_latency > 0:
                        yield from faults.hold(worker, steal_latency)
                    continue
                worker.wake = event()
                idle[slot] = worker
                try:
                    yield worker.wake
                except simpy.Interrupt as interrupt:
                    core.interrupted_idle(worker)
                    yield from faults.resume(worker, interrupt, 0.0)
                continue
            worker.task = task
            core.busy += 1
            starts[task], workers[task] = now, slot
            attempts[task] += 1
            if watch_attempts:
                faults.attempt_started(worker, task)
            duration = durations[task]
            worker.attempt_end = now + duration
            try:
                yield timeout(duration)
            except simpy.Interrupt as interrupt:
                yield from faults.resume(worker, interrupt, worker.attempt_end - env.now)
            if worker.declared_dead:
                core.discard(worker, task, env.now)
                break
            if may_raise or status[task] != PENDING:
                self.complete(worker, task)
                continue
            worker.task = -1
            core.busy -= 1
            ends[task] = env.now
            status[task] = DONE
            self.unfinished -= 1
            if not self.unfinished:
                core.stopped = True
                self.all_done.succeed()
        if worker.retiring and not worker.declared_dead:
            core.retired(worker)

    def idle_wait(self, worker: SimWorker) -> SimEvents:
        """Wait until a submit wakes this worker (or a fault reaches it)."""
        worker.wake = event = self.env.event()
        self.core.go_idle(worker)
        try:
            yield event
        except simpy.Interrupt as interrupt:
            self.core.interrupted_idle(worker)
            yield from self.faults.resume(worker, interrupt, 0.0)


#: The error a model task's failed attempt carries (the model has no exception object).
_RAISED = RuntimeError("the attempt raised (modelled)")


def run_meta(config: SimulatedPool, end_time: float) -> dict[str, object]:
    """What a model run records of itself (``RunResult.meta``); ``end_time`` in seconds."""
    return {
        "policy": config.policy.describe(),
        "workers": config.workers,
        "seed": config.seed,
        "overhead": config.overhead.as_dict(),
        "recovery": vars(config.recovery),
        "end_time": end_time,
        "backend": config.backend,
        "journal": config.journal,
    }


def run(
    workload: Workload,
    policy: str | Policy = "fifo",
    workers: int = 4,
    faults: FaultPlan | None = None,
    recovery: Recovery | None = None,
    seed: int = 0,
    overhead: Overhead | None = None,
    backend: str = "thread",
    journal: bool = False,
) -> RunResult:
    """Simulate ``workload`` on ``workers`` workers under ``policy``; see :class:`SimulatedPool`."""
    pool = SimulatedPool(policy, workers, faults, recovery, seed, overhead, backend, journal)
    return pool.run(workload)
