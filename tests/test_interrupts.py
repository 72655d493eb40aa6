"""Shutdown and interruption: of the threaded pool, of ``real.run``, of an experiment.

- ``shutdown(wait=False)`` returns at once while long tasks run; the threads end later.
- A shutdown while tasks are being retried still resolves every future.
- Ctrl-C (SIGINT) during ``real.run``: in a subprocess, the process ends promptly with
  KeyboardInterrupt and leaves no thread; in-process, the interrupt propagates out of
  ``real.run`` promptly and the pool's threads are gone.
- Ctrl-C during ``python -m experiments run``: exit code 130, no temporary file left,
  the saved cells readable, and a rerun completes without redoing them.
- ``experiments.storage.atomic_write``: a failing write leaves the target untouched.

No test asserts speed beyond generous bounds (the machine is small and shared).
"""

from __future__ import annotations

import _thread
import contextlib
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import CancelledError, Future
from concurrent.futures.thread import BrokenThreadPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import real
from experiments import storage
from experiments.local_processes import start_processes
from pool import FIFO, Recovery

pytestmark = pytest.mark.timeout(180)

ROOT = Path(__file__).resolve().parent.parent
NAME = "interrupts"
#: A deadline for things that should happen "soon" (generous: noisy 2-core machine).
SOON = 10.0
FAST = Recovery(
    heartbeat_interval=0.01,
    heartbeat_timeout=0.03,
    restart_delay=0.01,
    max_attempts=3,
    retry_backoff=0.01,
)


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(autouse=True)
def _threads_checked(no_thread_left: None) -> None:
    """Every test here is checked for threads left behind (see conftest.py)."""


@pytest.fixture
def make_pool(gates: Any) -> Iterator[Callable[..., real.ThreadedPool]]:
    """Build pools that are shut down at teardown even when the test fails."""
    made: list[real.ThreadedPool] = []

    def make(*args: Any, **kwargs: Any) -> real.ThreadedPool:
        kwargs.setdefault("thread_name_prefix", NAME)
        p = real.ThreadedPool(*args, **kwargs)
        made.append(p)
        return p

    yield make
    for p in made:
        p.shutdown(wait=False, cancel_pending=True)
    for p in made:
        shutdown_within(p, SOON)


def shutdown_within(p: real.ThreadedPool, limit: float, cancel_pending: bool = False) -> None:
    """``shutdown(wait=True)`` on a helper thread: fail with a message if it hangs."""
    helper = threading.Thread(
        target=p.shutdown, kwargs={"cancel_pending": cancel_pending}, name=f"{NAME}-shutdown"
    )
    helper.daemon = True
    helper.start()
    helper.join(limit)
    assert not helper.is_alive(), f"shutdown(wait=True) still blocked after {limit}s: {p.stats()}"


def wait_until(predicate: Callable[[], bool], timeout: float = SOON, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or predicate}")
        time.sleep(0.005)


def pool_threads(prefix: str = NAME) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(prefix) and t.is_alive()]


class RetryableError(Exception):
    """An exception the pools of these tests retry (``retry_exceptions``)."""


class FailsTwice:
    """A task that raises RetryableError on its first two runs, then returns its value."""

    def __init__(self, value: int) -> None:
        self.value = value
        self.runs = 0
        self._lock = threading.Lock()

    def __call__(self) -> int:
        with self._lock:
            self.runs += 1
            run = self.runs
        if run <= 2:
            raise RetryableError(f"task {self.value}, run {run}")
        return self.value


# ----------------------------------------------------------------------------- shutdown


@pytest.mark.parametrize("cancel_pending", [False, True])
def test_shutdown_without_wait_returns_promptly_while_long_tasks_run(
    make_pool: Any, cancel_pending: bool
) -> None:
    p = make_pool("fifo", workers=2)
    long = [p.submit(time.sleep, 2.0) for _ in range(2)]
    queued = [p.submit(pow, i, 2) for i in range(4)]
    wait_until(lambda: all(f.running() for f in long), what="the long tasks running")
    threads = pool_threads()
    started = time.monotonic()
    p.shutdown(wait=False, cancel_pending=cancel_pending)
    took = time.monotonic() - started
    assert took < 1.0, f"shutdown(wait=False) took {took:.2f}s"
    assert not any(f.done() for f in long), "shutdown(wait=False) waited for running tasks"
    assert any(t.is_alive() for t in threads), "the threads ended before the tasks"
    with pytest.raises(RuntimeError):
        p.submit(pow, 2, 2)
    # The threads finish the running tasks (and the queued ones, unless cancelled), then end.
    assert [f.result(timeout=SOON) for f in long] == [None, None]
    if cancel_pending:
        assert all(f.cancelled() for f in queued)
    else:
        assert [f.result(timeout=SOON) for f in queued] == [0, 1, 4, 9]
    for thread in threads:
        thread.join(SOON)
    assert not pool_threads(), "pool threads still alive after their tasks ended"


@pytest.mark.parametrize("cancel_pending", [False, True])
def test_shutdown_with_retries_queued_resolves_every_future(
    make_pool: Any, gates: Any, cancel_pending: bool
) -> None:
    """The retries of three failed tasks wait in the queue behind a running task when the
    pool shuts down. Without cancel_pending they run; with it they are dropped; either
    way every future must end (a retried task's future is already running: ``cancel()``
    cannot cancel it, so the pool has to give it an outcome)."""
    p = make_pool("fifo", workers=1, recovery=FAST, retry_exceptions=(RetryableError,))
    gate = gates()
    tasks = [FailsTwice(i) for i in range(3)]
    futures = [p.submit(task) for task in tasks]
    blocker = p.submit(gate.wait, SOON)
    wait_until(lambda: blocker.running(), what="the blocker running")
    wait_until(
        lambda: p.stats().retried == 3 and p.stats().queued == 3, what="three retries queued"
    )
    assert [t.runs for t in tasks] == [1, 1, 1]
    p.shutdown(wait=False, cancel_pending=cancel_pending)
    gate.set()
    shutdown_within(p, SOON)
    assert blocker.result(timeout=0) is True
    unresolved = [i for i, f in enumerate(futures) if not f.done()]
    assert not unresolved, f"futures of tasks {unresolved} never resolved: {p.stats()}"
    if not cancel_pending:
        assert [f.result(timeout=0) for f in futures] == [0, 1, 2]
        assert [t.runs for t in tasks] == [3, 3, 3]
    else:
        assert [t.runs for t in tasks] == [1, 1, 1]
        for future in futures:
            assert future.cancelled() or isinstance(future.exception(timeout=0), CancelledError)
    stats = p.stats()
    assert stats.completed + stats.failed + stats.cancelled == 4, stats


@pytest.mark.parametrize("policy", ["fifo", "priority", "work-stealing"])
@pytest.mark.parametrize("cancel_pending", [False, True])
def test_shutdown_during_retries_under_load_resolves_every_future(
    make_pool: Any, policy: str, cancel_pending: bool
) -> None:
    """Many tasks that fail twice (retried after a backoff) plus quick ones; the pool shuts
    down while retries are in flight: queued, waiting out their backoff or running."""
    recovery = Recovery(
        heartbeat_interval=0.01,
        heartbeat_timeout=0.03,
        restart_delay=0.01,
        max_attempts=3,
        retry_backoff=0.02,
    )
    p = make_pool(policy, workers=2, recovery=recovery, retry_exceptions=(RetryableError,))
    flaky = [FailsTwice(i) for i in range(30)]
    futures: list[Future[Any]] = []
    for i, task in enumerate(flaky):
        futures.append(p.submit_with(task, priority=i % 3))
        futures.append(p.submit_with(time.sleep, (0.001,), priority=i % 3))
    wait_until(lambda: p.stats().retried >= 10, what="retries under way")
    p.shutdown(wait=False, cancel_pending=cancel_pending)
    shutdown_within(p, SOON * 2)
    unresolved = [i for i, f in enumerate(futures) if not f.done()]
    assert not unresolved, f"{len(unresolved)} futures never resolved: {p.stats()}"
    for task, future in zip(flaky, futures[::2], strict=True):
        if future.cancelled():
            assert task.runs == 0
        elif future.exception(timeout=0) is None:
            assert (future.result(timeout=0), task.runs) == (task.value, 3)
        else:
            assert cancel_pending, f"task {task.value}: {future.exception(timeout=0)!r}"
            assert 0 < task.runs < 3
    if not cancel_pending:
        assert all(not f.cancelled() and f.exception(timeout=0) is None for f in futures)
    stats = p.stats()
    assert stats.completed + stats.failed + stats.cancelled == len(futures), stats


class RaisingSubmit(FIFO):
    """A FIFO whose ``submit`` raises on its third call: a buggy custom policy, or a
    Ctrl-C that lands while ``ThreadedPool.submit`` holds the pool's lock."""

    def __init__(self, error: type[BaseException]) -> None:
        super().__init__()
        self.error, self.calls = error, 0

    def submit(self, task: int, priority: int, affinity: int, now: float) -> int | None:
        self.calls += 1
        if self.calls == 3:
            raise self.error("raised inside policy.submit")
        return super().submit(task, priority, affinity, now)


def test_ctrl_c_inside_submit_leaves_the_pool_able_to_shut_down() -> None:
    """A Ctrl-C that lands inside the policy's ``submit`` reaches the caller; that task
    never was, the pool still works and shuts down (it must not wait for the lost task)."""
    p = real.ThreadedPool(RaisingSubmit(KeyboardInterrupt), workers=2, thread_name_prefix=NAME)
    try:
        futures = [p.submit(pow, 2, 2), p.submit(pow, 3, 2)]
        with pytest.raises(KeyboardInterrupt):
            p.submit(pow, 4, 2)
        assert [f.result(timeout=SOON) for f in futures] == [4, 9]
        assert p.submit(pow, 5, 2).result(timeout=SOON) == 25
    finally:
        p.shutdown(wait=False, cancel_pending=True)
        shutdown_within(p, 3.0)
    stats = p.stats()
    assert stats.completed + stats.failed + stats.cancelled == 3, stats


def test_a_policy_bug_inside_submit_breaks_the_pool_cleanly() -> None:
    """An exception of the policy's own (a bug) breaks the pool: the caller gets
    BrokenThreadPool caused by it, later submits too, and the pool shuts down."""
    p = real.ThreadedPool(RaisingSubmit(ValueError), workers=2, thread_name_prefix=NAME)
    try:
        futures = [p.submit(pow, 2, 2), p.submit(pow, 3, 2)]
        with pytest.raises(BrokenThreadPool) as raised:
            p.submit(pow, 4, 2)
        assert isinstance(raised.value.__cause__, ValueError)
        for future in futures:  # done before the bug, or failed by it: never left hanging
            error = future.exception(timeout=SOON)
            assert error is None or isinstance(error, BrokenThreadPool), error
        with pytest.raises(BrokenThreadPool):
            p.submit(pow, 5, 2)
    finally:
        shutdown_within(p, 3.0)


# ----------------------------------------------------------------------------- real.run + Ctrl-C

#: A workload of about 5 s (100 tasks/s of 5 ms on 2 workers), optionally with faults.
RUN_SCRIPT = textwrap.dedent(
    """
    import sys, threading, time
    import real
    from pool import FaultPlan, Recovery, Workload, dists

    faults = None
    if sys.argv[1] == "faults":
        faults = FaultPlan(task_failure_prob=0.3, crash_mtbf=0.5)
    workload = Workload.poisson(
        rate=100.0, service=dists.Deterministic(0.005), n_tasks=500, seed=1
    )
    recovery = Recovery(heartbeat_interval=0.02, heartbeat_timeout=0.06, restart_delay=0.02)
    print("started", flush=True)
    try:
        real.run(workload, "fifo", workers=2, faults=faults, recovery=recovery, seed=1)
    except KeyboardInterrupt:
        for thread in threading.enumerate():
            if thread is not threading.main_thread():
                thread.join(2.0)
        print("interrupted", flush=True)
        print("threads", threading.active_count(), flush=True)
        raise
    print("finished", flush=True)
    """
)


def _start(args: list[str], cwd: Path = ROOT, **kwargs: Any) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        args,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


@pytest.mark.parametrize("faults", ["none", "faults"])
def test_ctrl_c_during_real_run_in_a_subprocess(faults: str) -> None:
    process = _start([sys.executable, "-c", RUN_SCRIPT, faults])
    try:
        assert process.stdout is not None
        first = process.stdout.readline()  # imports done, real.run about to start
        assert first.strip() == "started", first + (process.stderr.read() if process.stderr else "")
        time.sleep(1.0)
        assert process.poll() is None, "real.run ended before the interrupt"
        process.send_signal(signal.SIGINT)
        sent = time.monotonic()
        out, err = process.communicate(timeout=30.0)
        took = time.monotonic() - sent
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert took < 10.0, f"the process took {took:.1f}s to end after SIGINT"
    lines = first.splitlines() + out.splitlines()
    assert "interrupted" in lines, f"no KeyboardInterrupt out of real.run: {out!r} {err[-2000:]}"
    assert "finished" not in lines
    assert "threads 1" in lines, f"threads left after real.run was interrupted: {out!r}"
    assert process.returncode != 0
    assert "KeyboardInterrupt" in err


def test_ctrl_c_during_real_run_in_process() -> None:
    """Like Ctrl-C: a KeyboardInterrupt raised in the main thread while ``real.run`` runs
    there. It must come out of ``real.run`` promptly, with the pool's threads ended."""
    from pool import FaultPlan, Workload, dists

    workload = Workload.poisson(rate=100.0, service=dists.Deterministic(0.005), n_tasks=500, seed=2)
    faults = FaultPlan(task_failure_prob=0.3, crash_mtbf=0.5)
    recovery = Recovery(heartbeat_interval=0.02, heartbeat_timeout=0.06, restart_delay=0.02)
    interrupted_at: list[float] = []

    def interrupt() -> None:
        interrupted_at.append(time.monotonic())
        _thread.interrupt_main()

    timer = threading.Timer(1.0, interrupt)
    caught = None
    try:
        timer.start()
        real.run(workload, "fifo", workers=2, faults=faults, recovery=recovery, seed=2)
    except KeyboardInterrupt:
        caught = time.monotonic()
    finally:
        timer.cancel()
        timer.join()
    assert caught is not None and interrupted_at, "real.run finished before the interrupt"
    assert caught - interrupted_at[0] < 10.0, "the interrupt took too long to come out"
    # real.run shuts its pool down (wait=True) before the exception leaves it.
    assert not pool_threads("poolbench-"), [t.name for t in pool_threads("poolbench-")]


# ----------------------------------------------------------------------------- experiments + Ctrl-C


def _cell_files(folder: Path) -> dict[str, tuple[int, int]]:
    """The saved cells: name -> (inode, mtime in ns)."""
    cells = folder / "theory" / "cells"
    if not cells.is_dir():
        return {}
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in cells.glob("*.parquet")}


def _temporary_files(folder: Path) -> list[str]:
    return [
        os.path.join(where, name)
        for where, _, names in os.walk(folder)
        for name in names
        if name.endswith(".tmp")
    ]


@pytest.fixture
def source_snapshot(tmp_path: Path) -> Path:
    """A copy of the project's packages to run the command line from: a result folder is
    tied to a hash of the sources, which must not change between a run and its rerun
    (as it would when someone edits the working tree meanwhile)."""
    snapshot = tmp_path / "src"
    for package in ("pool", "sim", "real", "experiments"):
        shutil.copytree(
            ROOT / package, snapshot / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    return snapshot


@dataclass
class Interrupted:
    """How an experiment run that got SIGINT ended."""

    returncode: int
    stderr: str
    stop_seconds: float
    cells_before: dict[str, tuple[int, int]]
    cells_after: dict[str, tuple[int, int]]


def _run_and_interrupt(args: list[str], cwd: Path, out: Path) -> Interrupted:
    """Start ``args`` in a new session; as soon as a cell is saved, send SIGINT to the
    whole process group (a terminal's Ctrl-C) and wait for the end. (Waiting a fixed few
    seconds as well let a fast machine save every cell before the interrupt.)"""
    process = _start(args, cwd=cwd, start_new_session=True)
    try:
        started = time.monotonic()
        while process.poll() is None and not _cell_files(out):
            if time.monotonic() - started > 120.0:
                break
            time.sleep(0.02)
        assert process.poll() is None, "the experiment ended before the interrupt"
        before = _cell_files(out)
        os.killpg(process.pid, signal.SIGINT)
        sent = time.monotonic()
        _, err = process.communicate(timeout=60.0)
        took = time.monotonic() - sent
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
    # No process of the run (e.g. a cell worker) outlives it.
    deadline = time.monotonic() + SOON
    while _group_alive(process.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _group_alive(process.pid), "processes of the interrupted run are still alive"
    return Interrupted(process.returncode, err, took, before, _cell_files(out))


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True


def _check_interrupted(run: Interrupted, out: Path, cells: int, in_flight: int) -> None:
    assert run.returncode == 130, f"exit code {run.returncode}: {run.stderr[-3000:]}"
    assert "interrupted" in run.stderr, run.stderr[-3000:]
    assert "Traceback" not in run.stderr, run.stderr[-3000:]
    assert run.stop_seconds < 30.0, f"the run took {run.stop_seconds:.1f}s to stop after SIGINT"
    before, after = len(run.cells_before), len(run.cells_after)
    # Cells in flight at the interrupt may still be saved; no other cell may start.
    assert after <= before + in_flight, (
        f"{after - before} cells saved after the interrupt ({before} before it, of {cells}): "
        "the run went on"
    )
    assert 1 <= after < cells, f"{after} of {cells} cells saved"
    assert not _temporary_files(out), _temporary_files(out)
    for name in run.cells_after:
        frame = pd.read_parquet(out / "theory" / "cells" / name)
        assert len(frame) > 0 and {"backend", "metric", "value"} <= set(frame.columns)
    assert not (out / "theory" / "results.parquet").exists()


def test_ctrl_c_during_an_experiment_keeps_saved_cells_and_resumes(
    tmp_path: Path, source_snapshot: Path
) -> None:
    """SIGINT mid-way: exit code 130 soon after, nothing half written, the saved cells
    readable, and a rerun that completes without redoing them."""
    from experiments import registry

    reps = 3  # more cells than a fast machine finishes between two looks
    out = tmp_path / "out"
    args = [sys.executable, "-m", "experiments", "run", "theory", "--quick"]
    args += ["--out", str(out), "--no-progress", "--reps", str(reps)]
    grid = len(registry.get("theory").grid(True))
    cells = grid * reps
    interrupted = _run_and_interrupt(args, source_snapshot, out)
    # Serial: the running cell is interrupted; one may end between the count and SIGINT.
    _check_interrupted(interrupted, out, cells, in_flight=1)

    rerun = subprocess.run(
        args, cwd=source_snapshot, capture_output=True, text=True, timeout=120.0, check=False
    )
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    after = _cell_files(out)
    assert len(after) == cells
    saved = interrupted.cells_after
    changed = [name for name, identity in saved.items() if after.get(name) != identity]
    assert not changed, f"cells saved before the interrupt were redone: {changed}"
    assert not _temporary_files(tmp_path), _temporary_files(tmp_path)
    results = pd.read_parquet(out / "theory" / "results.parquet")
    assert results["cell"].nunique() == grid
    assert len(results[["cell", "replication"]].drop_duplicates()) == cells


def test_ctrl_c_during_a_parallel_experiment_stops_promptly(
    tmp_path: Path, source_snapshot: Path
) -> None:
    """With ``--jobs 2`` the cells run in worker processes, which get the SIGINT too. The
    run must stop: the cells not yet started are not run (only those already handed to
    a worker process, at most two per process, may still finish)."""
    from experiments import registry

    jobs, reps = 2, 3
    out = tmp_path / "out"
    args = [sys.executable, "-m", "experiments", "run", "theory", "--quick"]
    args += ["--out", str(out), "--no-progress", "--jobs", str(jobs), "--reps", str(reps)]
    cells = len(registry.get("theory").grid(True)) * reps
    interrupted = _run_and_interrupt(args, source_snapshot, out)
    _check_interrupted(interrupted, out, cells, in_flight=2 * jobs + 1)


def _interrupt_children(stop: threading.Event) -> None:
    while not stop.is_set():
        for child in multiprocessing.active_children():
            with contextlib.suppress(ProcessLookupError):
                os.kill(child.pid or 0, signal.SIGINT)
        time.sleep(0.002)


@pytest.mark.parametrize("start_method", ["fork", "spawn"])
def test_cell_processes_ignore_ctrl_c_from_their_first_instant(
    start_method: str, capfd: pytest.CaptureFixture[str]
) -> None:
    """Ctrl-C reaches every process of the group; the cell processes leave it to the
    parent, even one interrupted while it starts (the SIGINT is held until it ignores it)."""
    stop = threading.Event()
    interrupter = threading.Thread(target=_interrupt_children, args=(stop,))
    interrupter.start()
    try:
        with start_processes(2, start_method) as executor:
            time.sleep(0.2)
            answers = sorted(executor.map(abs, range(-4, 0)))
    finally:
        stop.set()
        interrupter.join()
    assert answers == [1, 2, 3, 4]
    assert "Traceback" not in capfd.readouterr().err


# ----------------------------------------------------------------------------- atomic_write


@pytest.mark.parametrize("error", [ValueError, KeyboardInterrupt])
@pytest.mark.parametrize("existing", [True, False])
def test_atomic_write_failure_leaves_target_untouched(
    tmp_path: Path, error: type[BaseException], existing: bool
) -> None:
    target = tmp_path / "sub" / "results.csv"
    if existing:
        target.parent.mkdir()
        target.write_text("old contents\n")
    seen: list[Path] = []

    def write(temporary: Path) -> None:
        seen.append(temporary)
        temporary.write_text("half of the new")  # a partial write, then the failure
        raise error("interrupted while writing")

    with pytest.raises(error):
        storage.atomic_write(target, write)
    if existing:
        assert target.read_text() == "old contents\n"
    else:
        assert not target.exists()
    assert seen and seen[0].parent == target.parent and seen[0] != target
    assert sorted(p.name for p in target.parent.iterdir()) == (["results.csv"] if existing else [])


def test_atomic_write_replaces_the_target_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "results.csv"
    target.write_text("old\n")
    storage.atomic_write(target, lambda temporary: temporary.write_text("new\n"))
    assert target.read_text() == "new\n"
    assert [p.name for p in tmp_path.iterdir()] == ["results.csv"]
