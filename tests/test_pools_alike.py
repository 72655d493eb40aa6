"""The executor contract, run over both real pools: ``ThreadedPool`` and ``ProcessPool``.

The same promises of ``concurrent.futures`` and of the pools' own options, checked on
threads and on processes alike: results in order, exceptions to their future, ``map``
with a timeout, the context manager, no submit after shutdown, cancelling queued work at
shutdown, priorities, backpressure (``max_pending``, ``submit_timeout``), keys unique
among live tasks, ``stats()`` counts and the ``record=True`` trace.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import Executor
from typing import Any

import pytest

import real

SOON = 30.0

PoolMaker = Callable[..., Any]


def square(x: int) -> int:
    return x * x


def nap(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def fail(message: str) -> None:
    raise KeyError(message)


@pytest.fixture(params=["threads", "processes"])
def make_pool(request: pytest.FixtureRequest) -> Iterator[PoolMaker]:
    """A maker of pools of the kind under test; every pool made is shut down after."""
    kind = real.ThreadedPool if request.param == "threads" else real.ProcessPool
    made: list[Executor] = []

    def make(*args: Any, **kwargs: Any) -> Any:
        pool = kind(*args, **kwargs)
        made.append(pool)
        return pool

    yield make
    for pool in made:
        pool.shutdown(wait=True, cancel_futures=True)


def started(pool: Any) -> None:
    """Wait until ``pool``'s workers serve (processes take a moment to start)."""
    pool.submit(square, 0).result(timeout=SOON)


def test_results_exceptions_and_map(make_pool: PoolMaker) -> None:
    pool = make_pool("fifo", workers=2)
    futures = [pool.submit(square, x) for x in range(20)]
    assert [f.result(timeout=SOON) for f in futures] == [x * x for x in range(20)]
    error = pool.submit(fail, "missing").exception(timeout=SOON)
    assert isinstance(error, KeyError) and error.args == ("missing",)
    assert list(pool.map(square, range(10), timeout=SOON)) == [x * x for x in range(10)]
    with pytest.raises(TimeoutError):
        list(pool.map(nap, [0.0, 3.0], timeout=0.5))
    stats = pool.stats()
    assert stats.failed == 1 and stats.completed >= 30


def test_the_context_manager_shuts_down_and_submit_is_refused_after(
    make_pool: PoolMaker,
) -> None:
    with make_pool("fifo", workers=2) as pool:
        future = pool.submit(nap, 0.1)
    assert future.done() and future.result() == 0.1
    with pytest.raises(RuntimeError):
        pool.submit(square, 2)
    pool.shutdown()  # idempotent


def test_shutdown_cancels_queued_work_and_lets_running_work_finish(
    make_pool: PoolMaker,
) -> None:
    pool = make_pool("fifo", workers=1)
    started(pool)
    running = pool.submit(nap, 0.3)
    deadline = time.monotonic() + SOON
    while not running.running() and time.monotonic() < deadline:
        time.sleep(0.01)
    queued = [pool.submit(nap, 10.0) for _ in range(5)]
    pool.shutdown(wait=True, cancel_futures=True)
    assert running.result() == 0.3
    assert all(f.cancelled() for f in queued)
    assert pool.stats().cancelled == 5


def test_priorities_decide_the_order_of_a_queue(make_pool: PoolMaker) -> None:
    pool = make_pool("priority", workers=1)
    started(pool)
    gate = pool.submit(nap, 0.4)
    order: list[int] = []  # completion order (a done callback runs as each finishes)
    for level in (3, 1, 2, 0):
        future = pool.submit_with(square, (level,), priority=level)
        future.add_done_callback(lambda _, level=level: order.append(level))
    gate.result(timeout=SOON)
    pool.shutdown(wait=True)
    assert order == [0, 1, 2, 3]


def test_backpressure_blocks_submit_then_times_out(make_pool: PoolMaker) -> None:
    pool = make_pool("fifo", workers=1, max_pending=2, submit_timeout=0.2)
    started(pool)
    running = pool.submit(nap, 1.0)
    deadline = time.monotonic() + SOON
    while not running.running():  # it runs: the queue is empty
        assert time.monotonic() < deadline
        time.sleep(0.005)
    pool.submit(nap, 0.0)
    pool.submit(nap, 0.0)
    began = time.monotonic()
    with pytest.raises(TimeoutError):
        pool.submit(nap, 0.0)
    assert time.monotonic() - began >= 0.15


def test_keys_are_unique_among_unfinished_tasks(make_pool: PoolMaker) -> None:
    pool = make_pool("fifo", workers=1)
    first = pool.submit_with(nap, (0.3,), key="job-1")
    with pytest.raises(ValueError, match="job-1"):
        pool.submit_with(square, (2,), key="job-1")
    assert first.result(timeout=SOON) == 0.3
    deadline = time.monotonic() + SOON
    while True:  # once finished, the key is free again
        try:
            assert pool.submit_with(square, (3,), key="job-1").result(timeout=SOON) == 9
            break
        except ValueError:
            assert time.monotonic() < deadline
            time.sleep(0.01)


def test_a_recorded_trace_has_one_row_per_finished_task(make_pool: PoolMaker) -> None:
    pool = make_pool("fifo", workers=2, record=True)
    for future in [pool.submit(nap, 0.01) for _ in range(10)]:
        future.result(timeout=SOON)
    trace = pool.trace()
    assert len(trace) == 10 and (trace["status"] == "completed").all()
    assert (trace["ended"] >= trace["started"]).all()
    assert (trace["started"] >= trace["submitted"]).all()
    assert trace["cpu_time"].notna().all()
