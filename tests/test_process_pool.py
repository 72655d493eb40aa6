"""ProcessPool: the pool's policies over worker processes, killed for real.

Each test checks one promise: results, exceptions and keywords cross the process
boundary; a worker killed by SIGKILL, or a task that ends its own process, costs only
that task a retry (or ``WorkerLost`` after ``max_attempts``) while the pool serves on;
a stopped worker (SIGSTOP) is found by heartbeat and killed; what cannot be pickled is
refused at submit, and a result that cannot be pickled fails its future alone; the
initializer, ``max_tasks_per_child`` and the memory ceiling work; and no child process is
left after shutdown (the executor contract shared with threads: ``test_pools_alike.py``).
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures.process import BrokenProcessPool

import pytest

import real
from pool import Recovery
from real.child import RemoteTracebackError, ResultPicklingError

SOON = 30.0
MARK = "unset"


def square(x: int) -> int:
    return x * x


def echo(*args: object, **kwargs: object) -> tuple[object, ...]:
    return args, kwargs


def own_pid() -> int:
    return os.getpid()


def nap(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def spin(cpu_seconds: float) -> None:
    end = time.thread_time() + cpu_seconds
    while time.thread_time() < end:
        pass


def fail() -> None:
    raise ValueError("boom")


def exit_now() -> None:
    os._exit(7)


def lock_result() -> object:
    return threading.Lock()


def set_mark(value: str) -> None:
    global MARK
    MARK = value


def get_mark() -> str:
    return MARK


HELD: list[bytearray] = []


def hold_megabytes(megabytes: int) -> int:
    """Keep ``megabytes`` of touched memory alive in this process; return its pid."""
    HELD.append(bytearray(megabytes * 1024 * 1024))
    return os.getpid()


def peak_megabytes() -> float:
    """This process's peak resident memory (MB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class TwoPartError(Exception):
    """Pickles, but cannot be rebuilt from its args on the other side."""

    def __init__(self, what: str, detail: str) -> None:
        super().__init__(f"{what}: {detail}")


def raise_two_part() -> None:
    raise TwoPartError("bad", "input")


def refuse_to_start() -> None:
    raise RuntimeError("no")


def running(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie counts: it was not reaped)."""
    return os.path.exists(f"/proc/{pid}")


def until(predicate: Callable[[], bool], timeout: float = SOON) -> bool:
    """Poll ``predicate`` until it holds (True) or ``timeout`` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


@pytest.fixture
def pools() -> Iterator[list[real.ProcessPool]]:
    """Pools a test makes; each is shut down and checked to leave no child process."""
    made: list[real.ProcessPool] = []
    yield made
    for p in made:
        pids = p.worker_pids()
        p.shutdown(wait=True, cancel_futures=True)
        assert not [pid for pid in pids if running(pid)], pids


def test_results_exceptions_and_keywords_cross_the_process_boundary(
    pools: list[real.ProcessPool],
) -> None:
    p = real.ProcessPool("fifo", workers=2)
    pools.append(p)
    assert list(p.map(square, range(8))) == [x * x for x in range(8)]
    assert p.submit(echo, 1, priority=5).result(timeout=SOON) == ((1,), {"priority": 5})
    error = p.submit(fail).exception(timeout=SOON)
    assert isinstance(error, ValueError) and str(error) == "boom"
    assert isinstance(error.__cause__, RemoteTracebackError)
    assert "in fail" in str(error.__cause__)
    ran_in = p.submit(own_pid).result(timeout=SOON)
    assert ran_in != os.getpid() and ran_in in p.worker_pids()


def test_a_killed_worker_is_replaced_and_only_its_task_retried(
    pools: list[real.ProcessPool],
) -> None:
    p = real.ProcessPool("fifo", workers=1)
    pools.append(p)
    victim = p.submit(own_pid).result(timeout=SOON)
    slow = p.submit(nap, 1.0)
    queued = [p.submit(square, x) for x in range(5)]
    assert until(slow.running)  # sent to the child: the kill loses this attempt
    time.sleep(0.05)
    os.kill(victim, signal.SIGKILL)
    assert slow.result(timeout=SOON) == 1.0  # run again in the new process
    assert [f.result(timeout=SOON) for f in queued] == [x * x for x in range(5)]
    stats = p.stats()
    assert (stats.restarts, stats.retried, stats.failed) == (1, 1, 0)
    assert victim not in p.worker_pids() and not running(victim)


def test_a_task_that_ends_its_process_fails_alone_after_max_attempts(
    pools: list[real.ProcessPool],
) -> None:
    p = real.ProcessPool("fifo", workers=2, recovery=Recovery(max_attempts=2))
    pools.append(p)
    doomed = p.submit(exit_now)
    others = [p.submit(square, x) for x in range(20)]
    assert isinstance(doomed.exception(timeout=SOON), real.WorkerLost)
    assert [f.result(timeout=SOON) for f in others] == [x * x for x in range(20)]
    assert p.submit(square, 3).result(timeout=SOON) == 9
    assert until(lambda: p.stats().restarts == 2), p.stats()  # both slots restarted


def test_a_stopped_worker_is_found_by_heartbeat_and_killed(
    pools: list[real.ProcessPool],
) -> None:
    p = real.ProcessPool("fifo", workers=1, recovery=Recovery(heartbeat_timeout=0.3))
    pools.append(p)
    victim = p.submit(own_pid).result(timeout=SOON)
    slow = p.submit(nap, 0.5)
    time.sleep(0.2)
    os.kill(victim, signal.SIGSTOP)
    assert slow.result(timeout=SOON) == 0.5
    assert p.stats().restarts == 1
    assert until(lambda: not running(victim))


def test_what_cannot_be_pickled_is_refused_at_submit_and_the_pool_goes_on(
    pools: list[real.ProcessPool],
) -> None:
    p = real.ProcessPool("fifo", workers=1)
    pools.append(p)
    with pytest.raises(TypeError, match="fn must be picklable"):
        p.submit(lambda: 1)
    with pytest.raises(TypeError, match="fn's arguments must be picklable"):
        p.submit(square, threading.Lock())
    with pytest.raises(TypeError, match="fn's arguments"):
        p.submit_with(echo, kwargs={"lock": threading.Lock()}, priority=1)
    assert p.submit(square, 3).result(timeout=SOON) == 9
    assert p.stats().completed == 1


def test_a_result_that_cannot_be_pickled_fails_its_future_alone(
    pools: list[real.ProcessPool],
) -> None:
    p = real.ProcessPool("fifo", workers=1)
    pools.append(p)
    error = p.submit(lock_result).exception(timeout=SOON)
    assert isinstance(error, ResultPicklingError)
    assert p.submit(square, 4).result(timeout=SOON) == 16


def test_an_exception_that_cannot_be_rebuilt_here_fails_its_future_alone(
    pools: list[real.ProcessPool],
) -> None:
    p = real.ProcessPool("fifo", workers=1)
    pools.append(p)
    error = p.submit(raise_two_part).exception(timeout=SOON)
    assert isinstance(error, ResultPicklingError) and "TwoPartError" in str(error)
    stats = p.stats()
    assert (stats.failed, stats.retried, stats.restarts) == (1, 0, 0)  # run once
    assert p.submit(square, 5).result(timeout=SOON) == 25


def test_the_initializer_runs_in_every_process_and_a_failing_one_breaks_the_pool(
    pools: list[real.ProcessPool], caplog: pytest.LogCaptureFixture
) -> None:
    p = real.ProcessPool("fifo", workers=2, initializer=set_mark, initargs=("ready",))
    pools.append(p)
    assert {f.result(timeout=SOON) for f in [p.submit(get_mark) for _ in range(6)]} == {"ready"}
    broken = real.ProcessPool("fifo", workers=1, initializer=refuse_to_start)
    pools.append(broken)
    # The first process starts with the pool: it may be broken before this submit.
    try:
        future = broken.submit(square, 2)
    except BrokenProcessPool:
        pass
    else:
        assert isinstance(future.exception(timeout=SOON), BrokenProcessPool)
    with pytest.raises(BrokenProcessPool):
        broken.submit(square, 2)
    logged = [r for r in caplog.records if r.name == "concurrent.futures"]
    assert logged and "Exception in initializer" in logged[0].getMessage()
    assert logged[0].exc_info is not None and logged[0].exc_info[0] is RuntimeError


def test_a_recorded_trace_holds_the_cpu_time_of_the_childs_call(
    pools: list[real.ProcessPool],
) -> None:
    p = real.ProcessPool("fifo", workers=1, record=True)
    pools.append(p)
    p.submit(spin, 0.05).result(timeout=SOON)
    p.submit(nap, 0.05).result(timeout=SOON)
    trace = p.trace()
    assert list(trace["status"]) == ["completed", "completed"]
    assert trace.loc[0, "cpu_time"] >= 0.045  # computed in the child, not the parent
    assert trace.loc[1, "cpu_time"] < 0.02 <= trace.loc[1, "ended"] - trace.loc[1, "started"]


def test_max_tasks_per_child_replaces_the_process_in_place(
    pools: list[real.ProcessPool],
) -> None:
    p = real.ProcessPool("fifo", workers=1, max_tasks_per_child=2)
    pools.append(p)
    pids = [p.submit(own_pid).result(timeout=SOON) for _ in range(6)]
    assert len(set(pids)) == 3 and pids[0] == pids[1] != pids[2]
    assert p.stats().restarts == 0  # a recycled process is no failure


def test_a_child_over_its_memory_ceiling_is_replaced_after_its_task(
    pools: list[real.ProcessPool],
) -> None:
    probe = real.ProcessPool("fifo", workers=1)
    pools.append(probe)
    baseline = probe.submit(peak_megabytes).result(timeout=SOON)  # shared pages included
    p = real.ProcessPool("fifo", workers=1, max_child_memory_mb=baseline + 60)
    pools.append(p)
    first = p.submit(own_pid).result(timeout=SOON)
    assert p.submit(hold_megabytes, 20).result(timeout=SOON) == first  # under the ceiling
    assert p.submit(hold_megabytes, 80).result(timeout=SOON) == first  # over it after
    assert p.submit(own_pid).result(timeout=SOON) != first  # a fresh process
    assert p.stats().restarts == 0 and not running(first)


def test_shutdown_cancelling_returns_promptly_and_leaves_no_child() -> None:
    p = real.ProcessPool("fifo", workers=2)
    p.submit(own_pid).result(timeout=SOON)  # the processes have started
    pids = p.worker_pids()
    running_task = p.submit(nap, 0.3)
    assert until(running_task.running)
    queued = [p.submit(nap, 5.0) for _ in range(4)]
    began = time.monotonic()
    p.shutdown(wait=True, cancel_futures=True)
    assert time.monotonic() - began < 10.0
    assert running_task.result() == 0.3
    assert sum(f.cancelled() for f in queued) >= 3
    assert pids and not [pid for pid in pids if running(pid)]
    with pytest.raises(RuntimeError):
        p.submit(square, 1)


@pytest.mark.parametrize(
    ("options", "error", "named"),
    [
        ({"workers": 0}, ValueError, "workers"),
        ({"mp_context": "teleport"}, ValueError, "mp_context"),
        ({"max_tasks_per_child": 0}, ValueError, "max_tasks_per_child"),
        ({"max_child_memory_mb": 0}, ValueError, "max_child_memory_mb"),
        ({"initializer": lambda: None}, TypeError, "initializer"),
        ({"name_prefix": 3}, TypeError, "name_prefix"),
    ],
)
def test_bad_options_name_the_parameter(
    options: dict[str, object], error: type[Exception], named: str
) -> None:
    with pytest.raises(error, match=named):
        real.ProcessPool("fifo", **options)  # type: ignore[arg-type]


INTERRUPTED_SCRIPT = """
import os, signal, sys, threading, time
import real
from test_process_pool import nap, own_pid

pool = real.ProcessPool("fifo", workers=2)
print(*[pool.submit(own_pid).result(timeout=30) for _ in range(4)], flush=True)
print(*pool.worker_pids(), flush=True)
futures = [pool.submit(nap, 0.2) for _ in range(6)]
# sys.argv[1]: "process" interrupts this process alone, "group" its whole process group
# (a terminal's Ctrl-C, which reaches the children as well).
interrupt = os.kill if sys.argv[1] == "process" else os.killpg
threading.Timer(0.3, interrupt, (os.getpid(), signal.SIGINT)).start()
for future in futures:
    future.result()
print("never", flush=True)
"""


@pytest.mark.parametrize("reaches", ["process", "group"])
def test_ctrl_c_in_the_parent_leaves_no_child_behind(reaches: str) -> None:
    tests = os.path.dirname(os.path.abspath(__file__))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([tests, os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run(
        [sys.executable, "-c", INTERRUPTED_SCRIPT, reaches],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        start_new_session=True,
    )
    assert result.returncode != 0 and "KeyboardInterrupt" in result.stderr, result.stderr
    assert result.stderr.count("Traceback") == 1, result.stderr  # the parent's alone
    pids = {int(pid) for pid in result.stdout.split()[4:] if pid.isdigit()}
    assert len(pids) == 2 and "never" not in result.stdout
    assert until(lambda: not [pid for pid in pids if running(pid)], timeout=10), pids


def test_shutdown_with_a_stopped_worker_returns_once_the_heartbeat_finds_it(
    pools: list[real.ProcessPool],
) -> None:
    p = real.ProcessPool("fifo", workers=2)
    pools.append(p)  # shut down again after (idempotent) if the test fails midway
    p.submit(own_pid).result(timeout=SOON)
    victims = p.worker_pids()
    running_tasks = [p.submit(nap, 0.3) for _ in range(2)]
    queued = [p.submit(nap, 0.3) for _ in range(4)]
    assert until(lambda: all(f.running() for f in running_tasks))
    for pid in victims:
        os.kill(pid, signal.SIGSTOP)
    began = time.monotonic()
    p.shutdown(wait=True, cancel_futures=True)
    # Found after heartbeat_timeout (0.2 s), killed, its task run again in a new process.
    assert time.monotonic() - began < 10.0
    assert [f.result() for f in running_tasks] == [0.3, 0.3]
    assert all(f.cancelled() for f in queued)
    assert not [pid for pid in victims if running(pid)]


def test_an_idle_worker_whose_process_is_killed_is_replaced_before_any_task(
    pools: list[real.ProcessPool],
) -> None:
    # A heartbeat too slow to tell: only the process sentinel can.
    slow = Recovery(heartbeat_interval=1.0, heartbeat_timeout=30.0, restart_delay=0.01)
    p = real.ProcessPool("fifo", workers=2, recovery=slow, record=True)
    pools.append(p)
    victim = p.worker_pids()[0]
    os.kill(victim, signal.SIGKILL)
    assert until(lambda: len(p.worker_pids()) == 2 and victim not in p.worker_pids())
    futures = [p.submit(square, n) for n in range(8)]
    assert [f.result(timeout=SOON) for f in futures] == [n * n for n in range(8)]
    assert (p.trace()["attempts"] == 1).all()  # no task was sent to the dead process
    assert p.stats().restarts == 1
