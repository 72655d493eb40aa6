"""ThreadedPool as a drop-in ``ThreadPoolExecutor``: what the standard executor promises.

Each test pins one promise of ``concurrent.futures`` (and of its real clients, asyncio)
that the pool once broke: a policy bug must break the pool cleanly instead of hanging
it, the interpreter must wait for pending work, a dropped pool must end its threads, an
idle worker must not keep a result alive, ``shutdown(wait=True)`` from a task must fail
at once, ``submit`` must pass every keyword through, asyncio must accept the pool, and
initializers and thread names must work as in the standard executor.
"""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import traceback
import weakref
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor, as_completed, wait
from concurrent.futures.thread import BrokenThreadPool
from pathlib import Path
from typing import Any

import pytest

import real
import sim
from pool import FIFO, Workload, dists
from pool.core import BrokenPool

SOON = 10.0
ROOT = Path(__file__).resolve().parent.parent


def live_threads(prefix: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(prefix) and t.is_alive()]


def wait_until(predicate: Any, timeout: float = SOON) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


@pytest.fixture
def pools() -> Iterator[list[real.ThreadedPool]]:
    """Pools a test makes; each is shut down (cancelling) and checked to leave no thread."""
    made: list[real.ThreadedPool] = []
    yield made
    for p in made:
        p.shutdown(wait=True, cancel_futures=True)
    for p in made:
        assert not live_threads(p._thread_name_prefix + "_")


class BuggyFIFO(FIFO):
    """A FIFO whose ``next_task`` raises from its ``fail_at``-th call on: a policy bug."""

    def __init__(self, fail_at: int) -> None:
        super().__init__()
        self.fail_at, self.calls = fail_at, 0

    def next_task(self, worker: int, now: float) -> int | None:
        self.calls += 1
        if self.calls >= self.fail_at:
            raise ZeroDivisionError("a bug in next_task")
        return super().next_task(worker, now)


# -- a policy bug or a failed initializer breaks the pool cleanly ---------------------------


def test_a_policy_bug_fails_every_pending_future_and_shutdown_returns(
    pools: list[real.ThreadedPool],
) -> None:
    p = real.ThreadedPool(BuggyFIFO(fail_at=6), workers=2)
    pools.append(p)
    futures = [p.submit(time.sleep, 0.01) for _ in range(20)]
    outcomes = [f.exception(timeout=SOON) for f in futures]
    broken = [error for error in outcomes if error is not None]
    assert broken, "the bug reached no future"
    assert all(isinstance(error, BrokenPool) for error in broken), broken
    assert isinstance(broken[0].__cause__, ZeroDivisionError)
    assert len(broken) + p.stats().completed == len(futures)  # none lost, none twice
    with pytest.raises(BrokenThreadPool):
        p.submit(time.sleep, 0.01)
    closer = threading.Thread(target=p.shutdown)
    closer.start()
    closer.join(SOON)
    assert not closer.is_alive(), "shutdown(wait=True) hung on a broken pool"


def test_a_task_whose_worker_dies_after_the_pool_broke_fails_at_once() -> None:
    class BuggyLater(FIFO):
        def submit(self, task: int, priority: int, affinity: int, now: float) -> int | None:
            if task >= 1:
                raise RuntimeError("policy bug")
            return super().submit(task, priority, affinity, now)

    # A process pool, so that the running task's worker can be killed for real.
    p = real.ProcessPool(BuggyLater(), workers=1)
    try:
        running = p.submit(time.sleep, 5.0)
        deadline = time.monotonic() + SOON
        while not running.running() and time.monotonic() < deadline:
            time.sleep(0.01)
        with pytest.raises(BrokenPool):
            p.submit(pow, 2, 2)
        os.kill(p.worker_pids()[0], signal.SIGKILL)
        # No retry can run in a broken pool: the future fails, it does not hang.
        assert isinstance(running.exception(timeout=SOON), real.WorkerLost)
    finally:
        p.shutdown(wait=True)


def test_an_interrupt_after_the_policy_queued_a_task_leaves_the_pool_working(
    pools: list[real.ThreadedPool],
) -> None:
    class InterruptedOnce(FIFO):
        """Queues task 1, then a Ctrl-C lands before ``submit`` returns."""

        def submit(self, task: int, priority: int, affinity: int, now: float) -> int | None:
            slot = super().submit(task, priority, affinity, now)
            if task == 1:
                raise KeyboardInterrupt
            return slot

    p = real.ThreadedPool(InterruptedOnce(), workers=1)
    pools.append(p)
    gate = threading.Event()
    p.submit(gate.wait, SOON)  # task 0 holds the worker: task 1 stays queued
    with pytest.raises(KeyboardInterrupt):
        p.submit(pow, 2, 1)
    later = [p.submit(pow, 2, n) for n in range(2, 6)]
    gate.set()
    # The policy held task 1: a worker takes it, finds its future cancelled, and goes on;
    # the pool does not break with "next_task returned task 1, which is not queued".
    assert [f.result(timeout=SOON) for f in later] == [4, 8, 16, 32]
    assert wait_until(lambda: p.stats().cancelled == 1), p.stats()
    p.shutdown(wait=True)  # nothing left unresolved


def test_the_model_raises_the_same_error_for_the_same_bug() -> None:
    workload = Workload.poisson(rate=2.0, service=dists.Exponential(0.2), n_tasks=50, seed=1)
    with pytest.raises(BrokenPool) as raised:
        sim.run(workload, BuggyFIFO(fail_at=6), workers=2)
    assert isinstance(raised.value.__cause__, ZeroDivisionError)


def test_a_failed_initializer_breaks_the_pool_and_is_logged(
    pools: list[real.ThreadedPool], caplog: pytest.LogCaptureFixture
) -> None:
    def initializer() -> None:
        raise OSError("no database")

    p = real.ThreadedPool("fifo", workers=2, initializer=initializer)
    pools.append(p)
    try:  # the workers may have broken the pool already: then submit says so
        future = p.submit(pow, 2, 3)
        assert isinstance(future.exception(timeout=SOON), BrokenThreadPool)
    except BrokenThreadPool as error:
        assert isinstance(error.__cause__, OSError)
    assert wait_until(lambda: p._backend.broken is not None)
    with pytest.raises(BrokenThreadPool):
        p.submit(pow, 2, 3)
    # As the standard executor does: a CRITICAL record with the traceback, so that a
    # failing initializer is not silent until someone looks at a future.
    records = [r for r in caplog.records if r.name == "concurrent.futures"]
    assert records and records[0].levelname == "CRITICAL"
    assert "Exception in initializer" in records[0].getMessage()
    assert records[0].exc_info is not None and records[0].exc_info[0] is OSError


def test_initializer_runs_once_in_every_worker_thread_with_its_args(
    pools: list[real.ThreadedPool],
) -> None:
    seen: list[tuple[str, str]] = []
    lock = threading.Lock()

    def initializer(tag: str) -> None:
        with lock:
            seen.append((tag, threading.current_thread().name))

    p = real.ThreadedPool("fifo", workers=3, initializer=initializer, initargs=("db",))
    pools.append(p)
    assert p.submit(pow, 2, 5).result(timeout=SOON) == 32
    assert wait_until(lambda: len(seen) == 3)
    assert sorted(name for _, name in seen) == [f"{p._thread_name_prefix}_{i}" for i in range(3)]
    assert {tag for tag, _ in seen} == {"db"}
    with pytest.raises(TypeError, match="initializer"):
        real.ThreadedPool("fifo", workers=1, initializer="not callable")  # type: ignore[arg-type]


# -- the interpreter waits for pending work; a submit during exit is refused -----------------

EXIT_SCRIPT = textwrap.dedent(
    """
    import threading
    import time
    import real

    pool = real.ThreadedPool("fifo", workers=2)
    printing = threading.Lock()  # two workers printing at once interleave their lines

    def slow(n):
        time.sleep(0.3)
        with printing:
            print("done", n, flush=True)

    def late():
        time.sleep(0.5)
        try:
            pool.submit(print, "never")
        except RuntimeError as error:
            print("refused:", error, flush=True)

    for n in range(3):
        pool.submit(slow, n)
    pool.submit(late)
    print("main exits", flush=True)  # no shutdown: the interpreter must wait
    """
)


def test_the_interpreter_waits_for_pending_futures_and_refuses_submits_at_exit() -> None:
    result = subprocess.run(
        [sys.executable, "-c", EXIT_SCRIPT],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "main exits"
    assert sorted(line for line in lines if line.startswith("done")) == [
        "done 0",
        "done 1",
        "done 2",
    ]
    assert "refused: cannot schedule new futures after interpreter shutdown" in lines
    assert "never" not in lines


# -- a dropped pool ends its threads; an idle worker keeps no result alive -------------------


def test_a_pool_dropped_without_shutdown_ends_its_threads() -> None:
    def use_and_drop() -> Any:
        p = real.ThreadedPool("fifo", workers=4, thread_name_prefix="dropped-pool")
        return p.submit(time.sleep, 0.05)

    future = use_and_drop()
    gc.collect()
    assert future.result(timeout=SOON) is None  # its queued work still ran
    assert wait_until(lambda: not live_threads("dropped-pool")), live_threads("dropped-pool")


class Payload:
    """A result object whose lifetime the test watches."""


def test_an_idle_worker_keeps_no_result_alive(pools: list[real.ThreadedPool]) -> None:
    p = real.ThreadedPool("fifo", workers=1)
    pools.append(p)
    for make in (Payload, lambda: Payload().missing):  # a result, and an exception
        future = p.submit(make)
        future.exception(timeout=SOON)
        outcome = future.exception() or future.result()
        watched = weakref.ref(outcome if not isinstance(outcome, BaseException) else future)
        del future, outcome
        gc.collect()
        assert wait_until(lambda watched=watched: watched() is None), "the idle worker holds it"


# -- shutdown from a task, keyword arguments, names, asyncio ---------------------------------


def test_shutdown_with_wait_from_one_of_its_own_tasks_raises_at_once(
    pools: list[real.ThreadedPool],
) -> None:
    p = real.ThreadedPool("fifo", workers=2)
    pools.append(p)
    future = p.submit(p.shutdown, wait=True)
    assert isinstance(future.exception(timeout=SOON), RuntimeError)
    with pytest.raises(RuntimeError):
        p.submit(pow, 2, 2)  # the shutdown itself took effect, as in the standard executor


def test_submit_passes_every_keyword_through_and_submit_with_takes_the_options(
    pools: list[real.ThreadedPool],
) -> None:
    def echo(*args: Any, **kwargs: Any) -> tuple[Any, ...]:
        return args, kwargs

    p = real.ThreadedPool("priority", workers=2)
    pools.append(p)
    passed = p.submit(echo, 1, priority="mine", affinity="mine too", key="k")
    assert passed.result(timeout=SOON) == (
        (1,),
        {"priority": "mine", "affinity": "mine too", "key": "k"},
    )
    options = p.submit_with(echo, (2,), {"priority": 7}, priority=1, affinity=0, key="job-1")
    assert options.result(timeout=SOON) == ((2,), {"priority": 7})
    gate = threading.Event()
    p.submit_with(gate.wait, (SOON,), key="job-2")
    with pytest.raises(ValueError, match="job-2"):
        p.submit_with(pow, (2, 2), key="job-2")  # unique among unfinished tasks
    gate.set()


def test_thread_names_are_unique_per_pool(pools: list[real.ThreadedPool]) -> None:
    first, second = real.ThreadedPool("fifo", workers=2), real.ThreadedPool("fifo", workers=2)
    pools.extend([first, second])
    names = [
        {f.result(timeout=SOON) for f in [p.submit(lambda: threading.current_thread().name)]}
        for p in (first, second)
    ]
    assert first._thread_name_prefix != second._thread_name_prefix
    assert names[0].isdisjoint(names[1])
    named = real.ThreadedPool("fifo", workers=1, thread_name_prefix="my-pool")
    pools.append(named)
    assert named.submit(lambda: threading.current_thread().name).result(timeout=SOON) == "my-pool_0"


def test_asyncio_takes_it_as_its_default_executor() -> None:
    p = real.ThreadedPool("fifo", workers=2, thread_name_prefix="asyncio-default")
    assert isinstance(p, ThreadPoolExecutor)

    async def main() -> list[str]:
        loop = asyncio.get_running_loop()
        loop.set_default_executor(p)
        first = await loop.run_in_executor(None, lambda: threading.current_thread().name)
        second = await asyncio.to_thread(lambda: threading.current_thread().name)
        return [first, second]

    names = asyncio.run(main())  # which shuts the default executor down at the end
    assert all(name.startswith("asyncio-default_") for name in names), names
    assert wait_until(lambda: not live_threads("asyncio-default"))
    with pytest.raises(RuntimeError):
        p.submit(pow, 2, 2)


class Owner:
    """Something a task's callable refers to, whose lifetime the test watches."""

    def method(self) -> None:
        return None


@pytest.mark.parametrize("keep_future", [False, True], ids=["discarded", "kept"])
def test_a_future_leaves_no_reference_to_its_callable_once_done(
    pools: list[real.ThreadedPool], keep_future: bool
) -> None:
    p = real.ThreadedPool("fifo", workers=2)
    pools.append(p)
    owner = Owner()
    collected = threading.Event()
    watched = weakref.ref(owner, lambda _: collected.set())
    future = p.submit(owner.method)
    if keep_future:  # the standard executor drops its work item, not the future
        assert future.result(timeout=SOON) is None
    else:
        del future
    del owner
    assert collected.wait(SOON), f"the pool still holds {watched()!r}"


def test_its_futures_are_plain_futures_in_state_and_waiting(
    pools: list[real.ThreadedPool],
) -> None:
    p = real.ThreadedPool("fifo", workers=1)
    pools.append(p)
    gate = threading.Event()
    blocker, waiting = p.submit(gate.wait, SOON), p.submit(pow, 2, 10)
    # The pool writes a Future's state itself (a leaner condition): the same attributes
    # as Future.__init__ makes, so a newer Python that adds one fails here first.
    assert set(vars(waiting)) == set(vars(Future()))
    assert isinstance(waiting._condition, threading.Condition)
    done, not_done = wait([blocker, waiting], timeout=0.05)
    assert not done and not_done == {blocker, waiting}
    timer = threading.Timer(0.05, gate.set)
    timer.start()
    done, _ = wait([waiting], timeout=SOON)  # woken through the futures' conditions
    assert done == {waiting} and waiting.result() == 1024
    assert [f.result() for f in as_completed([blocker], timeout=SOON)] == [True]
    timer.join()


def test_a_tasks_exception_carries_the_tasks_own_traceback(
    pools: list[real.ThreadedPool],
) -> None:
    def fails() -> None:
        raise ValueError("boom")

    p = real.ThreadedPool("fifo", workers=1)
    pools.append(p)
    error = p.submit(fails).exception(timeout=SOON)
    assert isinstance(error, ValueError)
    # The task's frame first: no frame of the pool's loop (which holds the pool) is kept
    # alive by a failed future.
    assert [frame.name for frame in traceback.extract_tb(error.__traceback__)] == ["fails"]


def test_shutdown_finishes_every_queued_task_and_map_times_out(
    pools: list[real.ThreadedPool],
) -> None:
    p = real.ThreadedPool("fifo", workers=3)
    pools.append(p)
    with pytest.raises(TimeoutError):
        list(p.map(time.sleep, [0.0, 0.0, 2.0], timeout=0.5))
    futures = [p.submit(time.sleep, 0.01) for _ in range(50)]
    p.shutdown(wait=True)
    assert all(f.done() and f.result() is None for f in futures)
