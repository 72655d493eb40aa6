"""SimulatedPool: a SimPy model of a worker pool driven by a ``pool`` policy object.

One process per worker and one for arrivals; records go to plain lists. An idle worker
waits on an event of its own and a submit wakes one: the worker the task was placed
on, or, for a shared queue or a stealing policy, any idle worker. Faults, detection,
restarts and retries live in :mod:`sim.recovery`; autoscaling in :mod:`sim.scaling`.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import simpy

from pool import _validate
from pool.faults import FaultPlan, Recovery
from pool.overhead import Overhead
from pool.policies import Policy, resolve
from pool.records import DONE, PENDING, Recorder
from pool.results import RunResult
from pool.seeding import run_streams
from pool.tasks import Workload
from sim import threads
from sim.cpu import Processor
from sim.worker import Crashed, SimWorker

SimEvents = Generator[simpy.Event, Any, None]


class SimulatedPool:
    """A discrete-event model of a pool of ``workers`` running ``policy`` over a workload.

    ``faults`` and ``recovery`` say what goes wrong and how the pool answers;
    ``overhead`` adds a real pool's per-task costs (see :func:`real.calibrate`).
    """

    def __init__(
        self,
        policy: str | Policy = "fifo",
        workers: int = 4,
        faults: FaultPlan | None = None,
        recovery: Recovery | None = None,
        seed: int = 0,
        overhead: Overhead | None = None,
    ) -> None:
        self.policy = resolve(policy)
        self.workers = _validate.integer_at_least("workers", workers, 1)
        if faults is not None and not isinstance(faults, FaultPlan):
            raise ValueError(f"faults must be a FaultPlan or None, got {faults!r}")
        if recovery is not None and not isinstance(recovery, Recovery):
            raise ValueError(f"recovery must be a Recovery or None, got {recovery!r}")
        if overhead is not None and not isinstance(overhead, Overhead):
            raise ValueError(f"overhead must be an Overhead or None, got {overhead!r}")
        self.faults = faults or FaultPlan()
        self.recovery = recovery or Recovery()
        self.seed = _validate.integer_at_least("seed", seed, 0)
        self.overhead = overhead or Overhead()

    def run(self, workload: Workload) -> RunResult:
        """Simulate ``workload`` to the end: every task ``done`` or ``failed``."""
        if not isinstance(workload, Workload):
            raise ValueError(f"workload must be a pool.Workload, got {workload!r}")
        from sim import fast_path

        if fast_path.applies(self, workload):
            return fast_path.run(self, workload, _Run.durations_of(workload, self.overhead))
        return _Run(self, workload).execute()


class _Run:
    """The state of one simulation; :class:`SimulatedPool` stays reusable."""

    def __init__(self, config: SimulatedPool, workload: Workload) -> None:
        from sim.recovery import FaultHandler

        self.env = simpy.Environment()
        self.policy = config.policy
        self.recovery = config.recovery
        self.workload = workload
        self.streams = run_streams(config.seed)
        self.rec = Recorder(workload, config.workers)
        self.policy.reset(range(config.workers), self.streams.policy)
        self.durations = self.durations_of(workload, config.overhead)
        self.priority = workload.priority.tolist()
        self.affinity = workload.affinity.tolist()
        self.slots: dict[int, SimWorker] = {}
        self.idle: dict[int, SimWorker] = {}
        self.busy = 0
        self.unfinished = len(workload)
        self.all_done = self.env.event()
        if not self.unfinished:
            self.all_done.succeed()
        overhead = config.overhead
        self.thread_start = overhead.thread_start
        self.dispatch = overhead.dispatch
        self.cpu: Processor | None = None
        if workload.cpu_fraction.any() or overhead.models_cpu:
            self.cpu = Processor(
                self.env,
                overhead.cores,
                overhead.switch_interval,
                overhead.gil_handoff,
                overhead.busy_handoff,
            )
            held, free, wait = workload.parts
            wait = wait + overhead.sleep_overshoot * (wait > 0)
            self.parts = list(zip(held.tolist(), free.tolist(), wait.tolist(), strict=True))
        self.faults = FaultHandler(self, config.faults, config.workers)
        self.config = config

    @staticmethod
    def durations_of(workload: Workload, overhead: Overhead) -> list[float]:
        """Each task's time on its worker: service, sleep overshoot and dispatch."""
        service = workload.service
        if overhead.sleep_overshoot:
            io_part = service * (1.0 - workload.cpu_fraction)
            service = service + overhead.sleep_overshoot * (io_part > 0)
        durations: list[float] = (service + overhead.dispatch).tolist()
        return durations

    def execute(self) -> RunResult:
        for slot in range(self.config.workers):
            self.start_worker(slot)
        self.env.process(self._arrivals() if self.cpu is None else threads.submitter(self))
        self.faults.start()
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

    # -- tasks -------------------------------------------------------------------------

    def _arrivals(self) -> SimEvents:
        timeout, submit, now = self.env.timeout, self.submit, 0.0
        for task, arrival in enumerate(self.workload.arrival.tolist()):
            if arrival > now:
                yield timeout(arrival - now)
                now = arrival
            submit(task)

    def submit(self, task: int) -> None:
        """Hand ``task`` to the policy and wake a worker that can take it."""
        target = self.policy.submit(task, self.priority[task], self.affinity[task], self.env.now)
        idle = self.idle
        if not idle:
            return
        worker = idle.pop(target, None) if target is not None else None
        if worker is None and (target is None or self.policy.can_steal):
            worker = idle.popitem()[1]
        if worker is not None:
            worker.wake.succeed()

    def finish(self, task: int) -> None:
        """``task`` reached a final state: stop the run after the last one."""
        self.unfinished -= 1
        if not self.unfinished:
            self.all_done.succeed()

    # -- workers -----------------------------------------------------------------------

    def start_worker(self, slot: int) -> SimWorker:
        """Put a new worker in ``slot``, serving from now."""
        worker = SimWorker(slot, self.env.now)
        self.slots[slot] = worker
        self.policy.add_worker(slot)
        worker.process = self.env.process(self._work(worker))
        return worker

    def _work(self, worker: SimWorker) -> SimEvents:
        try:
            yield from (
                self._serve(worker) if self.cpu is None else threads.serve_on_cpu(self, worker)
            )
        except Crashed:
            if self.idle.get(worker.slot) is worker:
                del self.idle[worker.slot]
            self.pass_wake()
        finally:
            if self.cpu is not None:
                self.cpu.forget(worker)

    def _serve(self, worker: SimWorker) -> SimEvents:
        # The hot loop of the model: locals instead of attribute lookups, one read of
        # the clock per step, and what idle_wait, begin and end do written out inline
        # (a method call per task costs a tenth of the model's speed).
        env, policy, rec, slot, idle = self.env, self.policy, self.rec, worker.slot, self.idle
        durations, faults = self.durations, self.faults
        starts, ends, status, workers, attempts = (
            rec.start,
            rec.end,
            rec.status,
            rec.worker,
            rec.attempts,
        )
        next_task, timeout, event = policy.next_task, env.timeout, env.event
        watch_attempts, may_raise = faults.watch_attempts, faults.failures is not None
        can_steal = policy.can_steal
        while not (worker.retiring or worker.declared_dead):
            now = env.now
            task = next_task(slot, now)
            if task is None:
                if can_steal and (yield from self._steal(worker)):
                    continue
                worker.wake = event()
                idle[slot] = worker
                try:
                    yield worker.wake
                except simpy.Interrupt as interrupt:
                    if idle.get(slot) is worker:
                        del idle[slot]
                    else:  # it was woken for a task it cannot take now: pass that on
                        self.pass_wake()
                    yield from faults.resume(worker, interrupt, 0.0)
                continue
            worker.task = task
            self.busy += 1
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
                faults.discard(worker, task)
                break
            worker.task = -1
            self.busy -= 1
            if may_raise and faults.attempt_raised(task):
                faults.attempt_failed(task, "error")
            elif status[task] == PENDING:
                ends[task] = env.now
                status[task] = DONE
                self.unfinished -= 1
                if not self.unfinished:
                    self.all_done.succeed()
            else:
                faults.discard(worker, task)
        if worker.retiring and not worker.declared_dead:
            self.retired(worker)

    def idle_wait(self, worker: SimWorker) -> SimEvents:
        """Wait until a submit wakes this worker (or a fault reaches it)."""
        slot, idle = worker.slot, self.idle
        worker.wake = self.env.event()
        idle[slot] = worker
        try:
            yield worker.wake
        except simpy.Interrupt as interrupt:
            if idle.get(slot) is worker:
                del idle[slot]
            else:  # it was woken for a task it cannot take now: pass that on
                self.pass_wake()
            yield from self.faults.resume(worker, interrupt, 0.0)

    def begin(self, worker: SimWorker, task: int) -> None:
        """``worker`` starts an attempt of ``task`` now."""
        rec, now = self.rec, self.env.now
        worker.task = task
        self.busy += 1
        rec.start[task], rec.worker[task] = now, worker.slot
        rec.attempts[task] += 1
        if self.faults.watch_attempts:
            self.faults.attempt_started(worker, task)

    def end(self, worker: SimWorker, task: int) -> None:
        """``worker``'s attempt of ``task`` ended: it succeeded or raised."""
        rec, faults = self.rec, self.faults
        worker.task = -1
        self.busy -= 1
        if faults.failures is not None and faults.attempt_raised(task):
            faults.attempt_failed(task, "error")
        elif rec.status[task] == PENDING:
            rec.end[task] = self.env.now
            rec.status[task] = DONE
            self.unfinished -= 1
            if not self.unfinished:
                self.all_done.succeed()
        else:
            faults.discard(worker, task)

    def _steal(self, worker: SimWorker) -> Generator[simpy.Event, Any, bool]:
        if not self.take_steal(worker):
            return False
        if self.policy.steal_latency > 0:
            yield from self.faults.hold(worker, self.policy.steal_latency)
        return True

    def take_steal(self, worker: SimWorker) -> bool:
        """``worker`` steals per the policy; whether it took anything."""
        taken = self.policy.steal(worker.slot, self.env.now)
        if taken is None:
            return False
        for task in taken[1]:
            self.rec.stolen[task] = True
            self.rec.event(self.env.now, "steal", worker.slot, task)
        return True

    def retire(self, slot: int) -> None:
        """Scale-down: ``slot`` takes no new work; it leaves after its running task."""
        worker = self.slots.get(slot)
        if worker is None:
            return
        worker.retiring = True
        for task in self.policy.remove_worker(slot):
            self.submit(task)
        if self.idle.get(slot) is worker:
            del self.idle[slot]
            worker.wake.succeed()

    def retired(self, worker: SimWorker) -> None:
        """A retiring worker has left its slot."""
        if self.slots.get(worker.slot) is worker:
            del self.slots[worker.slot]
        self.rec.workers_changed(self.env.now, -1)
        self.pass_wake()

    def pass_wake(self) -> None:
        """A worker leaves or freezes, perhaps woken for a queued task: wake another."""
        if self.idle and self.policy.queued():
            self.idle.popitem()[1].wake.succeed()


def run_meta(config: SimulatedPool, end_time: float) -> dict[str, object]:
    """What a model run records of itself (``RunResult.meta``); ``end_time`` in seconds."""
    return {
        "policy": config.policy.describe(),
        "workers": config.workers,
        "seed": config.seed,
        "overhead": config.overhead.as_dict(),
        "recovery": vars(config.recovery),
        "end_time": end_time,
    }


def run(
    workload: Workload,
    policy: str | Policy = "fifo",
    workers: int = 4,
    faults: FaultPlan | None = None,
    recovery: Recovery | None = None,
    seed: int = 0,
    overhead: Overhead | None = None,
) -> RunResult:
    """Simulate ``workload`` on ``workers`` workers under ``policy``; see :class:`SimulatedPool`."""
    pool = SimulatedPool(policy, workers, faults, recovery, seed, overhead)
    return pool.run(workload)
