"""``real.run(..., journal=True)``: a workload replayed by a journaled program that is
killed for real at the FaultPlan's pool restarts.

The program (:mod:`real.journal_program`) runs in a process of its own session, its
pool journaled to a file in a private folder. At each of ``faults.pool_restarts`` its
whole session (the program, its worker processes, their fork server) gets ``SIGKILL``;
``downtime`` s later the program is started again, and its pool takes back what the
journal holds unfinished. The record is the journal itself, read after each death and at
the end: per task its state, attempts, last start and end; an attempt the journal saw
running when its process died is an attempt lost with it, queued again from that
instant. Times are seconds from the first program's ready instant (when its pool served),
the instant arrivals count from.
"""

from __future__ import annotations

import contextlib
import math
import os
import pickle
import select
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

import real
from pool.faults import FaultPlan, Recovery
from pool.policies import Policy
from pool.records import DONE, FAILED, Recorder
from pool.results import RunResult
from pool.tasks import Workload
from real.journal.store import read_tasks
from real.journal_program import ProgramSpec

#: Seconds a program may take from its start to its pool serving.
READY_TIMEOUT_S = 60.0


def run_journaled(
    workload: Workload,
    policy: Policy,
    workers: int,
    faults: FaultPlan,
    recovery: Recovery,
    seed: int,
    timeout: float,
    backend: str,
) -> RunResult:
    """Replay ``workload`` through the journaled program, killed at every pool restart
    of ``faults`` (see the module); tasks unfinished after ``timeout`` s are lost."""
    held, free, wait = workload.parts
    with tempfile.TemporaryDirectory(prefix="poolbench-restart-") as folder:
        spec = ProgramSpec(
            arrival=workload.arrival.tolist(),
            parts=list(zip(held.tolist(), free.tolist(), wait.tolist(), strict=True)),
            priority=workload.priority.tolist(),
            affinity=workload.affinity.tolist(),
            policy=policy,
            workers=workers,
            recovery=recovery,
            seed=seed,
            backend=backend,
            journal=str(Path(folder) / "tasks.db"),
        )
        spec_file = Path(folder) / "spec.pickle"
        spec_file.write_bytes(pickle.dumps(spec))
        replay = _Replay(workload, workers, spec_file, Path(spec.journal))
        try:
            replay.run(faults.pool_restarts, timeout)
        finally:
            replay.stop()
        from real.runner import run_meta

        meta = run_meta(policy, workers, seed, recovery, time.time() - replay.start, backend)
        return replay.result({**meta, "journal": True, "program_starts": replay.program_starts})


class _Replay:
    """One replay: the running program, the instant arrivals count from, the record."""

    def __init__(self, workload: Workload, workers: int, spec_file: Path, journal: Path):
        self.workload, self.workers = workload, workers
        self.spec_file, self.journal = spec_file, journal
        self.recorder = Recorder(workload, workers)
        self.program: subprocess.Popen[str] | None = None
        self.start = math.nan
        #: Seconds from each program's start until its pool served.
        self.program_starts: list[float] = []
        self.last_kill = -math.inf
        #: (kill, ready) of each restart, s from the start: the ready instant the program
        #: printed, taken once its pool was open; a worker may start a task just before.
        self.resumed: list[tuple[float, float]] = []

    def run(self, restarts: Sequence[tuple[float, float]], timeout: float) -> None:
        """Start the program, kill and restart it as planned, wait for it to finish
        (a program that fails is an error)."""
        self.start = self._launch(None)
        deadline = self.start + timeout
        for instant, downtime in restarts:
            due = self.start + instant
            if due >= deadline or self._ended_within(due - time.time()):
                break  # all done before this restart, or the run is out of time
            back = self._kill() + downtime
            time.sleep(max(0.0, back - time.time()))
            ready = self._launch(self.start)
            self.resumed.append((self.last_kill - self.start, ready - self.start))
        ended = self._ended_within(deadline - time.time())
        code = None if self.program is None else self.program.returncode
        if ended and code != 0:
            raise RuntimeError(f"the journaled program failed (exit code {code})")

    def _ended_within(self, seconds: float) -> bool:
        """Whether the program ends within ``seconds`` (waited for)."""
        assert self.program is not None
        try:
            self.program.wait(max(0.0, seconds))
        except subprocess.TimeoutExpired:
            return False
        return True

    def _launch(self, start: float | None) -> float:
        """Start the program; return when its pool served (Unix seconds)."""
        self._close_output()
        launched = time.time()
        self.program = launch_program(self.spec_file, start)
        ready = ready_instant(self.program)
        self.program_starts.append(ready - launched)
        return ready

    def _kill(self) -> float:
        """SIGKILL the program's whole session now and note what the journal held
        running; return the instant of the kill (Unix seconds)."""
        assert self.program is not None
        # The instant after the signal: once it is sent nothing of the session starts or
        # commits a task, so no start recorded lies after the crash (taken before it, a
        # descheduled moment between the two could put one there).
        kill_session(self.program, wait=False)
        instant = time.time()
        killed = instant - self.start
        self.program.wait()
        self.recorder.event(killed, "pool_crash")
        self.recorder.workers_changed(killed, -self.workers)
        tasks = read_tasks(self.journal)
        # A task taken back that had not started again still shows its earlier start.
        running = tasks[(tasks["state"] == "running") & (tasks["started"] > self.last_kill)]
        self.last_kill = instant
        rec = self.recorder
        for key, worker, started in running[["key", "worker", "started"]].itertuples(False):
            task = int(key)
            rec.worker[task] = int(worker)
            rec.attempt_log.append(
                (task, int(worker), rec.ready[task], started - self.start, killed, "lost-worker")
            )
            rec.requeue(task, killed)
        return instant

    def stop(self) -> None:
        """Leave no process behind: the program (a timeout, an error) or what of its
        session outlives it (its fork server exits a moment after it)."""
        if self.program is not None:
            kill_session(self.program)
        self._close_output()

    def _close_output(self) -> None:
        if self.program is not None and self.program.stdout is not None:
            self.program.stdout.close()

    def result(self, meta: dict[str, Any]) -> RunResult:
        """The run's record, from the journal as the last program left it."""
        rec = self.recorder
        tasks = read_tasks(self.journal)
        keys = tasks["key"].astype(int).to_numpy()
        states, attempts = tasks["state"].to_numpy(), tasks["attempts"].to_numpy()
        worker = tasks["worker"].fillna(-1).astype(int).to_numpy()
        started = tasks["started"].to_numpy(dtype=float) - self.start
        ended = tasks["ended"].to_numpy(dtype=float) - self.start
        for row, task in enumerate(keys.tolist()):
            rec.attempts[task] = int(attempts[row])
            if states[row] not in ("done", "failed"):
                continue  # lost: its program gave up before it ended
            if not math.isnan(started[row]):
                rec.start[task], rec.worker[task] = float(started[row]), int(worker[row])
            rec.end[task] = float(ended[row])
            if states[row] == "done":
                rec.status[task] = DONE
            else:
                rec.status[task] = FAILED
                rec.event(float(ended[row]), "failed", rec.worker[task], task)
        self._record_restarts()
        return rec.result("real", meta)

    def _record_restarts(self) -> None:
        """Each restarted pool serves from its program's ready instant, or from its first
        task's start when a worker took one before the program said ready (a worker
        process is ready a few ms before the last of them, and the journal's tasks are
        queued for it when the pool opens)."""
        rec = self.recorder
        starts = np.array(rec.start + [row[3] for row in rec.attempt_log], dtype=float)
        for killed, ready in self.resumed:
            early = starts[(starts > killed) & (starts < ready)]
            served = float(early.min()) if len(early) else ready
            rec.workers_changed(served, self.workers)
            rec.event(served, "pool_restart")


def launch_program(spec_file: Path, start: float | None) -> subprocess.Popen[str]:
    """Start the journaled program of ``spec_file`` (``start``: the instant its arrivals
    count from; None: its ready instant) in a session of its own, so that its worker
    processes die with it."""
    argv = [sys.executable, "-m", "real.journal_program", str(spec_file)]
    return subprocess.Popen(
        [*argv, *([] if start is None else [repr(start)])],
        stdout=subprocess.PIPE,
        text=True,
        env=program_environment(),
        start_new_session=True,
    )


def program_environment() -> dict[str, str]:
    """The environment of the journaled program: this one, with poolbench importable."""
    source = str(Path(real.__file__).resolve().parent.parent)
    paths = (source, os.environ.get("PYTHONPATH", ""))
    return {**os.environ, "PYTHONPATH": os.pathsep.join(path for path in paths if path)}


def ready_instant(program: subprocess.Popen[str]) -> float:
    """The Unix instant the program printed as its pool's ready one (killed if it does
    not print it within :data:`READY_TIMEOUT_S`)."""
    stdout = program.stdout
    assert stdout is not None
    deadline = time.monotonic() + READY_TIMEOUT_S
    while (left := deadline - time.monotonic()) > 0:
        if not select.select([stdout], [], [], left)[0]:
            break  # silent until the deadline
        line = stdout.readline()  # the program prints whole lines
        if line.startswith("ready "):
            return float(line.split()[1])
        if not line:  # it ended
            break
    kill_session(program)
    raise RuntimeError(f"the journaled program did not start (exit code {program.poll()})")


def kill_session(program: subprocess.Popen[str], wait: bool = True) -> None:
    """SIGKILL the program's session (it, its worker processes and their fork server)
    and, with ``wait``, reap the program; a session whose program has ended is killed too
    (the group outlives its leader only while a member lives, so its id cannot name
    another's)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(program.pid, signal.SIGKILL)
    if wait:
        program.wait()
