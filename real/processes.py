"""The process pool's side of the pool core: a dispatching thread per worker process.

:class:`WorkerProcesses` is :class:`real.lifecycle.WorkerThreads` whose threads run no
task themselves: each owns one child process (:mod:`real.child`) and sends it its tasks
over a pipe, so every scheduling decision, retry, restart and statistic is the threaded
pool's, made by the same pool core and policy. What processes add:

* A child that exits (SIGKILL, a segfault, ``os._exit``, the out-of-memory killer) is
  seen at once through its process sentinel: its worker is declared dead, its task
  retried (or failed with ``WorkerLost`` after ``max_attempts``) and its slot restarted
  with a new process; no other future is touched.
* A child that stops answering (SIGSTOP, C code that never returns the interpreter lock)
  stops heartbeating; the monitor declares its worker dead after ``heartbeat_timeout``
  and the child is killed.
* ``max_tasks_per_child`` replaces a child after that many tasks, and
  ``max_child_memory_mb`` after a task that left its peak resident memory above that
  ceiling, in place (the slot keeps serving).
"""

from __future__ import annotations

import contextlib
import math
import pickle
import threading
import time
from concurrent.futures.process import BrokenProcessPool
from multiprocessing.connection import wait
from typing import Any, ClassVar

from pool.faults import Recovery
from pool.policies import Policy
from real.child import STOP, RemoteTracebackError, ResultPicklingError, serve
from real.exit_watch import ExitWatcher
from real.lifecycle import LOGGER, WorkerThreads
from real.process_worker import Child, ProcessWorker
from real.stats import run_all
from real.task_future import TaskFuture
from real.worker import ThreadWorker, WorkerCrash

#: Seconds a child gets to end after STOP before it is killed.
STOP_GRACE_S = 2.0
#: Children in a row that exit by themselves while starting (an import error, say)
#: before the pool counts as broken; children killed by a signal do not count.
MAX_FAILED_STARTS = 3
#: Seconds a child may take to start (a child stopped while starting is killed then).
START_TIMEOUT_S = 10.0


class WorkerProcesses(WorkerThreads):
    """The threads, processes, lock and tasks of one :class:`real.ProcessPool`."""

    worker_type: ClassVar[type[ThreadWorker]] = ProcessWorker
    runs_elsewhere: ClassVar[bool] = True

    def __init__(
        self,
        policy: Policy,
        recovery: Recovery,
        *,
        context: Any,
        max_tasks_per_child: int | None,
        max_child_memory_mb: float | None,
        **kwargs: Any,
    ) -> None:
        #: A multiprocessing context (typed Any: typeshed's BaseContext lacks Process).
        self.context, self.max_tasks_per_child = context, max_tasks_per_child
        self.max_child_memory_kb = (
            None if max_child_memory_mb is None else max_child_memory_mb * 1024
        )
        #: Children in a row that died before they were ready (no lock: a count).
        self.failed_starts = 0
        #: The first children, started before the pool's clock (see :meth:`_prestart`).
        self._prestarted: dict[int, Child] = {}
        self.initializer, self.initargs = kwargs.get("initializer"), kwargs.get("initargs", ())
        self._prestart(kwargs["name"], kwargs["workers"], recovery.heartbeat_interval)
        #: Sees a child exit while its worker is idle (:mod:`real.exit_watch`).
        self.exits = ExitWatcher(self, kwargs["name"])
        super().__init__(policy, recovery, **kwargs)
        self.exits.start()

    def _prestart(self, name: str, workers: int, interval: float) -> None:
        """Start the first ``workers`` children together and wait (up to
        :data:`START_TIMEOUT_S`) until each has answered: the pool's clock starts with its
        workers ready, so the first tasks do not wait for processes to start (nor does a
        replay's record count that wait). A failed start is dealt with by its slot's
        thread, as any other (:meth:`prepare`)."""
        try:
            children = [self._launch(name, slot, interval) for slot in range(workers)]
        except Exception:  # e.g. a start method that cannot start children here:
            return  # each slot's thread meets the error again and breaks the pool
        self._prestarted = dict(enumerate(children))
        deadline = time.monotonic() + START_TIMEOUT_S
        while children and (left := deadline - time.monotonic()) > 0:
            wait([end for child in children for end in (child.conn, child.process.sentinel)], left)
            children = [c for c in children if c.process.exitcode is None and not c.conn.poll()]

    def shutdown(self, wait: bool, cancel_pending: bool) -> None:
        """As for threads; with ``wait``, the exit watch has ended too on return."""
        super().shutdown(wait, cancel_pending)
        if wait and threading.current_thread() is not self.exits.thread:
            self.exits.thread.join()

    def pids(self) -> list[int]:
        """Process ids of the live worker processes (lock held)."""
        return [
            worker.process.pid
            for worker in self.core.slots.values()
            if isinstance(worker, ProcessWorker)
            and worker.process is not None
            and worker.process.pid is not None
            and worker.process.is_alive()
        ]

    # -- a worker's thread (no lock held) -----------------------------------------------

    def prepare(self, worker: ThreadWorker) -> bool:
        """Start ``worker``'s child; False if it could not start (its slot restarts) or
        its initializer failed (the pool breaks, as it does after
        :data:`MAX_FAILED_STARTS` children in a row died while starting, or when a child
        cannot be started at all)."""
        assert isinstance(worker, ProcessWorker)
        if self.broken is not None:
            return False
        try:
            ready, answer = self._start_child(worker)
        except WorkerCrash:
            self._failed_start(worker)
            return False
        except Exception as error:  # e.g. a start method that cannot start children here
            broken = BrokenProcessPool(f"a worker process could not be started: {error!r}")
            broken.__cause__ = error
            self.break_and_settle(broken)
            return False
        self.failed_starts = 0
        if not ready:  # the answer is the initializer's exception
            self._initializer_failed(answer)
            return False
        return True

    def _initializer_failed(self, error: BaseException) -> None:
        LOGGER.critical("Exception in initializer:", exc_info=error)
        broken = BrokenProcessPool("a process initializer failed: the pool is not usable")
        broken.__cause__ = error
        self.break_and_settle(broken)

    def _failed_start(self, worker: ProcessWorker) -> None:
        code = worker.process.exitcode if worker.process is not None else None
        if code is None or code < 0:  # killed by a signal (or by us, stuck): not its fault
            return
        self.failed_starts += 1
        if self.failed_starts >= MAX_FAILED_STARTS:
            self.break_and_settle(
                BrokenProcessPool(
                    f"{self.failed_starts} worker processes in a row exited while starting "
                    f"(the last with exit code {code}): the pool is not usable"
                )
            )

    def _launch(self, name: str, slot: int, interval: float) -> Child:
        """Start a child for ``slot`` (it answers once ready); heartbeats every half
        ``interval`` seconds."""
        ours, theirs = self.context.Pipe()
        beat = self.context.RawValue("d", time.monotonic())
        process = self.context.Process(
            target=serve,
            args=(theirs, beat, interval / 2, self.initializer, self.initargs),
            name=f"{name}_{slot}",
            daemon=True,
        )
        process.start()
        theirs.close()
        return Child(process, ours, beat)

    def _start_child(self, worker: ProcessWorker) -> tuple[bool, Any]:
        interval = self.recovery.heartbeat_interval
        child = self._prestarted.pop(worker.slot, None)
        if child is None:
            child = self._launch(self.name, worker.slot, interval)
        with self.lock:  # pids() and released() read these under the lock
            worker.process, worker.conn, worker.tasks_done = child.process, child.conn, 0
            worker.origin, worker.beat_window = self._t0, interval
        # "ready", or the initializer's error; a child stuck while starting is killed.
        completed, value = self._receive(worker, START_TIMEOUT_S)
        worker.beat = child.beat  # judged from now: starting can outlast a heartbeat
        with self.lock:
            self.exits.changed()
        return completed, value

    def _work(self, worker: ThreadWorker) -> None:
        try:
            super()._work(worker)
        finally:
            assert isinstance(worker, ProcessWorker)
            self._stop_child(worker)
            unused = self._prestarted.pop(worker.slot, None)  # the pool broke first
            if unused is not None:
                unused.process.kill()
                unused.process.join()
                unused.conn.close()

    def call_elsewhere(self, worker: ThreadWorker, item: TaskFuture) -> tuple[bool, Any]:
        """Send ``item``'s pickled call to ``worker``'s child and wait for its answer. A
        child due for replacement is replaced first: the time that takes does not count
        against ``task_timeout``, and a result already received is never at stake."""
        assert isinstance(worker, ProcessWorker)
        if worker.replace_due:
            self._replace_child(worker)
        assert worker.conn is not None
        try:
            worker.conn.send_bytes(self.message(item))
        except OSError:  # the child is gone
            self._child_lost(worker)
        outcome = self._receive(worker, item=item)
        worker.tasks_done += 1
        limit, ceiling_kb = self.max_tasks_per_child, self.max_child_memory_kb
        worker.replace_due = (limit is not None and worker.tasks_done >= limit) or (
            ceiling_kb is not None and worker.peak_kb > ceiling_kb
        )
        return outcome

    def message(self, item: TaskFuture) -> bytes:
        """What the child is sent for this attempt of ``item``: its call, pickled at submit."""
        call: bytes = item.args[0]
        return call

    def ready_children(self) -> int:
        """Worker processes that have started and answered ready (lock held)."""
        return sum(
            isinstance(worker, ProcessWorker) and worker.beat is not None
            for worker in self.core.slots.values()
        )

    def _replace_child(self, worker: ProcessWorker) -> None:
        worker.replace_due = False
        self._stop_child(worker)
        ready, error = self._start_child(worker)  # WorkerCrash: its task is retried
        if not ready:
            self._initializer_failed(error)
            self._child_lost(worker)  # the task never ran: it fails with the pool
        with self.lock:
            worker.attempt_start = self.now()

    def _receive(
        self, worker: ProcessWorker, timeout: float | None = None, item: TaskFuture | None = None
    ) -> tuple[bool, Any]:
        """The child's next answer (``item`` gets the call's CPU time); raises WorkerCrash
        if the child ends first (its worker declared dead) or ``timeout`` s pass."""
        assert worker.conn is not None and worker.process is not None
        conn, process = worker.conn, worker.process
        ready = wait([conn, process.sentinel], timeout)
        if not ready:  # the timeout passed
            process.kill()
            process.join()
        if conn not in ready:
            self._child_lost(worker)
        try:
            answer = conn.recv_bytes()
        except (EOFError, OSError):
            self._child_lost(worker)
        try:
            completed, value, trace, cpu_seconds, worker.peak_kb = pickle.loads(answer)
        except Exception as error:  # e.g. an exception class that cannot be rebuilt here
            failure = ResultPicklingError(f"the task's answer could not be unpickled: {error!r}")
            completed, value, trace, cpu_seconds = False, failure, "", math.nan
        if item is not None:
            item.cpu_time = cpu_seconds
        if trace:
            value.__cause__ = RemoteTracebackError(trace)
        return completed, value

    def _child_lost(self, worker: ProcessWorker) -> None:
        """The child died: declare its worker dead now (unless the monitor did) and end
        this thread (raises WorkerCrash)."""
        with self.lock:
            if not worker.declared_dead and self.core.slots.get(worker.slot) is worker:
                self.core.declare_dead(worker, "detected")
            outcomes = self.take_outcomes()
        run_all(outcomes)
        raise WorkerCrash

    def _stop_child(self, worker: ProcessWorker) -> None:
        with self.lock:  # detached first: pids() and released() read these under the lock
            process, conn = worker.process, worker.conn
            worker.process = worker.conn = worker.beat = None
        if process is None or conn is None:
            return
        with contextlib.suppress(OSError):  # the child is gone already
            conn.send_bytes(STOP)
        process.join(STOP_GRACE_S)
        if process.is_alive():
            process.kill()
            process.join()
        conn.close()
        process.close()

    # -- hooks of the core (lock held) --------------------------------------------------

    def released(self, worker: ThreadWorker) -> None:
        """A worker declared dead: kill its child (a hang, a timeout) so that its thread
        sees the child end, and let a waiting thread see it too."""
        assert isinstance(worker, ProcessWorker)
        process = worker.process
        if process is not None and process.exitcode is None:
            process.kill()
        super().released(worker)
