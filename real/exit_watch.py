"""The process pool's watch on idle workers: a child that exits while its worker waits
for a task is seen at once.

A busy worker's dispatching thread waits on its child's pipe and sentinel together, so
it sees its own child die. An idle one waits on its condition for a task: without this
watch, its child's death (a SIGKILL, the out-of-memory killer) would be found only when
the next task is sent to it, costing that task an attempt, or a heartbeat timeout later.
:class:`ExitWatcher` is one thread per pool that waits on the sentinels of every ready
child (its own duplicates of them, so that a child closed meanwhile by its thread cannot
pull a descriptor from under the wait) and declares an idle worker dead as soon as its
child ends; a busy one it leaves to its thread.
"""

from __future__ import annotations

import contextlib
import os
import threading
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from typing import TYPE_CHECKING

from real.process_worker import ProcessWorker
from real.stats import run_all

if TYPE_CHECKING:
    from real.processes import WorkerProcesses

#: Seconds between looks at whether the pool is finished (the watch then ends).
LOOK_EVERY_S = 0.1


class ExitWatcher:
    """Declares an idle worker dead the moment its child process exits."""

    def __init__(self, processes: WorkerProcesses, name: str) -> None:
        self.processes = processes
        self._read, self._write = os.pipe()
        os.set_blocking(self._write, False)
        #: Our duplicate of a watched child's sentinel -> its worker and process.
        self._watched: dict[int, tuple[ProcessWorker, BaseProcess]] = {}
        #: Children whose end was seen (not watched again while still attached).
        self._ended: list[BaseProcess] = []
        self._closed = False
        self.thread = threading.Thread(target=self._loop, name=f"{name}_exits", daemon=True)

    def start(self) -> None:
        """Begin watching."""
        self.thread.start()

    def changed(self) -> None:
        """A child became ready: look at the children again (pool lock held)."""
        if self._closed:
            return
        with contextlib.suppress(BlockingIOError):  # a wake-up is pending already
            os.write(self._write, b"x")

    def _loop(self) -> None:
        try:
            while True:
                with self.processes.lock:
                    if self.processes.finished():
                        return
                    self._refresh()
                ready = wait([self._read, *self._watched], LOOK_EVERY_S)
                if self._read in ready:
                    os.read(self._read, 4096)
                for end in ready:
                    if end in self._watched:
                        self._ended_child(end)
        finally:
            with self.processes.lock:  # changed() writes to the pipe under the lock
                self._closed = True
            for end in self._watched:
                os.close(end)
            os.close(self._read)
            os.close(self._write)

    def _refresh(self) -> None:
        """Watch every ready child of a serving worker, and no other (lock held)."""
        current = {
            id(worker.process): worker
            for worker in self.processes.core.slots.values()
            if isinstance(worker, ProcessWorker)
            and worker.process is not None
            and worker.beat is not None
            and not worker.declared_dead
        }
        for end, (_, process) in list(self._watched.items()):
            if id(process) not in current:
                del self._watched[end]
                os.close(end)
        self._ended = [process for process in self._ended if id(process) in current]
        watched = {id(process) for _, process in self._watched.values()}
        ended = {id(process) for process in self._ended}
        for key, worker in current.items():
            if key not in watched and key not in ended:
                assert worker.process is not None
                self._watched[os.dup(worker.process.sentinel)] = (worker, worker.process)

    def _ended_child(self, end: int) -> None:
        """A watched child ended: declare its worker dead if it is idle."""
        worker, process = self._watched.pop(end)
        os.close(end)
        self._ended.append(process)
        processes = self.processes
        with processes.lock:
            core = processes.core
            idle = worker.task < 0 and worker.process is process
            if idle and not worker.declared_dead and core.slots.get(worker.slot) is worker:
                core.declare_dead(worker, "detected")
            outcomes = processes.take_outcomes()
        run_all(outcomes)
