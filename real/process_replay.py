"""``real.run(..., backend="process")``: a workload replayed on worker processes, its
faults delivered as real signals.

The stand-in service runs in the child (:func:`serve_stand_in`): a sleep for the waiting
part, then a busy loop for all the computing (a child has its interpreter lock to itself,
so the model's lock-holding and lock-free parts are alike there). Each attempt's message
is built when it is sent, so a failure drawn for attempt *k* of a task is raised by
attempt *k*. The FaultPlan's faults reach the worker process in their slot at their
instant: a crash is ``SIGKILL``, a hang ``SIGSTOP`` for its duration and then
``SIGCONT`` (overlapping hangs of one process merge, as in the model), and a poison
task ends its process with ``os._exit``. The pool finds each by itself: an exit through
the process sentinel at once, a stop by the missing heartbeat.
"""

from __future__ import annotations

import functools
import heapq
import itertools
import multiprocessing
import os
import pickle
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing import forkserver
from typing import Any

from pool.faults import Fault, Recovery
from pool.policies import Policy
from pool.records import Recorder
from pool.tasks import Workload
from real.injection import InjectedError
from real.pool_executor import PoolExecutor
from real.process_pool import ProcessPool
from real.process_worker import ProcessWorker, context_named
from real.processes import START_TIMEOUT_S, WorkerProcesses
from real.task_future import TaskFuture
from real.work import hold_lock_for

#: The exit code of a child that a poison task ends.
POISON_EXIT = 70


def serve_stand_in(cpu_seconds: float, wait_seconds: float, poison: bool, fail: bool) -> None:
    """In the child: one attempt of a stand-in task (wait, then compute; see the module)."""
    if poison:
        os._exit(POISON_EXIT)
    if wait_seconds > 0:
        time.sleep(wait_seconds)
    if cpu_seconds > 0:
        hold_lock_for(cpu_seconds)
    if fail:
        raise InjectedError("the attempt failed (injected)")


@dataclass(frozen=True)
class StandIn:
    """What each attempt of a workload's task does in its child."""

    parts: Sequence[tuple[float, float, float]]
    failures: list[list[bool]] | None
    poison: frozenset[int]

    @classmethod
    def of(
        cls, workload: Workload, failures: list[list[bool]] | None, poison: frozenset[int]
    ) -> StandIn:
        """The stand-in service of ``workload`` with the run's drawn failures and poison."""
        held, free, wait = workload.parts
        parts = list(zip(held.tolist(), free.tolist(), wait.tolist(), strict=True))
        return cls(parts, failures, poison)

    def message(self, task: int, attempt: int) -> bytes:
        """The pickled call of ``task``'s attempt number ``attempt`` (from 1)."""
        held, free, wait = self.parts[task]
        fail = self.failures is not None and self.failures[task][attempt - 1]
        call: tuple[Any, ...] = (serve_stand_in, (held + free, wait, task in self.poison, fail), {})
        return pickle.dumps(call, pickle.HIGHEST_PROTOCOL)


def by_index(task: int) -> None:
    """The callable a replay pool's tasks name; never called (their message is built
    from the index: see :class:`ReplayProcesses`)."""
    raise AssertionError(f"task {task} was to run in a worker process")


class ReplayProcesses(WorkerProcesses):
    """Worker processes whose messages the replay's :class:`StandIn` builds per attempt."""

    stand_in: StandIn | None = None

    def message(self, item: TaskFuture) -> bytes:
        assert self.stand_in is not None, "the replay sets stand_in before it submits"
        return self.stand_in.message(item.args[0], item.attempts)


class ReplayPool(ProcessPool):
    """A process pool for :func:`real.run`: a task is submitted as its workload index
    (``args=(task,)``) and its call built when each attempt is sent."""

    _backend_type = ReplayProcesses
    _task = PoolExecutor._task  # the call is not pickled at submit


class SignalInjector:
    """Sends the run's faults to the worker processes as signals, at their instants."""

    def __init__(self, processes: WorkerProcesses, faults: Sequence[Fault]) -> None:
        self.processes = processes
        self.faults = list(faults)
        #: Stopped processes and the pool time until which each stays stopped.
        self._frozen: dict[int, tuple[ProcessWorker, float]] = {}
        self._stop = threading.Event()
        self.thread = threading.Thread(
            target=self._inject_all, name="poolbench-signals", daemon=True
        )

    def start(self) -> None:
        """Begin sending the scheduled faults."""
        if self.faults:
            self.thread.start()

    def stop(self) -> None:
        """Stop sending (faults not yet due are dropped); continue what is still stopped."""
        self._stop.set()
        if self.thread.is_alive():
            self.thread.join()
        with self.processes.lock:
            for pid, (worker, _) in list(self._frozen.items()):
                self._continue(pid, worker)

    def _inject_all(self) -> None:
        order = itertools.count()
        due: list[tuple[float, int, Callable[[], float | None]]] = []
        for fault in self.faults:
            send: Callable[[], float | None] = functools.partial(self._send, fault)
            heapq.heappush(due, (fault.time, next(order), send))
        while due:
            when, _, action = heapq.heappop(due)
            if self._stop.wait(max(0.0, when - self.processes.now())):
                return
            resume_at = action()
            if resume_at is not None:
                heapq.heappush(due, (resume_at, next(order), self._resume_due))

    def _send(self, fault: Fault) -> float | None:
        """Signal the process in ``fault``'s slot; for a hang, when to look at it again."""
        processes = self.processes
        with processes.lock:
            core, now = processes.core, processes.now()
            worker = core.slots.get(fault.worker)
            if not isinstance(worker, ProcessWorker) or worker.declared_dead or core.stopped:
                return None
            process = worker.process
            if worker.beat is None or process is None or process.pid is None:
                return None  # its process is starting: not serving yet, as in the model
            if process.exitcode is not None:
                return None  # gone already
            pid = process.pid
            core.event(now, fault.kind, worker.slot, worker.task)
            if fault.kind == "crash":
                os.kill(pid, signal.SIGKILL)
                return None
            until = max(self._frozen.get(pid, (worker, now))[1], now + fault.duration)
            self._frozen[pid] = (worker, until)
            os.kill(pid, signal.SIGSTOP)
            return until

    def _resume_due(self) -> float | None:
        """Continue every stopped process whose hangs are all over."""
        with self.processes.lock:
            now = self.processes.now()
            for pid, (worker, until) in list(self._frozen.items()):
                if until <= now:
                    self._continue(pid, worker)
        return None

    def _continue(self, pid: int, worker: ProcessWorker) -> None:
        """SIGCONT ``pid`` if it is still ``worker``'s process (lock held)."""
        del self._frozen[pid]
        process = worker.process
        if process is not None and process.pid == pid and process.exitcode is None:
            os.kill(pid, signal.SIGCONT)


def start_process_pool(
    policy: Policy,
    workers: int,
    recovery: Recovery,
    seed: int,
    recorder: Recorder,
    stand_in: StandIn | None,
) -> ProcessPool:
    """A process pool for a replay, every worker process started and ready. The fork
    server is started first, so that the pool's clock does not run through its start."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        context_named(None)  # sets the fork server's preload list
        forkserver.ensure_running()
    kind = ProcessPool if stand_in is None else ReplayPool
    pool = kind(
        policy,
        workers,
        recovery,
        retry_exceptions=(InjectedError,),
        seed=seed,
        name_prefix="poolbench-run",
        recorder=recorder,
    )
    backend = pool._backend
    assert isinstance(backend, WorkerProcesses)
    if isinstance(backend, ReplayProcesses):
        backend.stand_in = stand_in
    wait_until_ready(pool, workers)
    return pool


def wait_until_ready(pool: ProcessPool, workers: int) -> None:
    """Return once ``workers`` worker processes of ``pool`` are ready (or it is broken,
    or their start timed out)."""
    backend = pool._backend
    assert isinstance(backend, WorkerProcesses)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        with backend.lock:
            if backend.ready_children() >= workers or backend.broken is not None:
                return
        time.sleep(0.005)
