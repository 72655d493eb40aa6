"""real.ThreadedPool as a library: futures, shutdown, stats, priorities, callbacks,
backpressure, crashes and hangs of workers, retries, stealing, autoscaling, bad input.

No test asserts speed. Waits are bounded by generous deadlines; ordering is forced with
gates (``threading.Event``) instead of sleeps wherever possible. Every test leaves no
thread behind.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import CancelledError, Future
from concurrent.futures import wait as wait_futures
from typing import Any

import pytest

import pool
import real
from pool import Recovery

pytestmark = pytest.mark.timeout(60)

#: Quick failure detection for tests: heartbeat every 20 ms, dead after 80 ms of silence.
FAST = Recovery(
    heartbeat_interval=0.02,
    heartbeat_timeout=0.08,
    restart_delay=0.02,
    max_attempts=3,
    retry_backoff=0.005,
)
#: A deadline for things that should happen "soon" (generous: noisy 2-core machine).
SOON = 10.0

# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(autouse=True)
def _threads_checked(no_thread_left: None) -> None:
    """Every test here is checked for threads left behind (see conftest.py)."""


@pytest.fixture
def make_pool(gates: Any) -> Iterator[Callable[..., real.ThreadedPool]]:
    """Build pools that are shut down at teardown even when the test fails."""
    made: list[real.ThreadedPool] = []

    def make(*args: Any, **kwargs: Any) -> real.ThreadedPool:
        p = real.ThreadedPool(*args, **kwargs)
        made.append(p)
        return p

    yield make
    for p in made:
        p.shutdown(wait=False, cancel_pending=True)
    for p in made:
        p.shutdown(wait=True)


def wait_until(predicate: Callable[[], bool], timeout: float = SOON, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or predicate}")
        time.sleep(0.005)


def pool_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("poolbench")]


def square(x: int) -> int:
    return x * x


def boom(message: str = "boom") -> None:
    raise ValueError(message)


class Flaky:
    """A callable that misbehaves (``misbehave()``) on its first ``bad`` calls."""

    def __init__(self, bad: int, misbehave: Callable[[], Any], value: Any = "ok") -> None:
        self.bad, self.misbehave, self.value = bad, misbehave, value
        self.calls = 0
        self._lock = threading.Lock()

    def __call__(self) -> Any:
        with self._lock:
            self.calls += 1
            call = self.calls
        if call <= self.bad:
            return self.misbehave()
        return self.value


def crash() -> None:
    raise real.WorkerCrash


def raiser(error: BaseException) -> Callable[[], None]:
    def throw() -> None:
        raise error

    return throw


# ----------------------------------------------------------------------------- futures


def test_submit_and_result(make_pool: Any) -> None:
    p = make_pool("fifo", workers=2)
    future = p.submit(square, 7)
    assert isinstance(future, Future)
    assert future.result(timeout=SOON) == 49
    kw = p.submit(lambda a, b=0: a - b, 10, b=3)
    assert kw.result(timeout=SOON) == 7
    assert p.stats().completed == 2


def test_map_keeps_order(make_pool: Any) -> None:
    p = make_pool("priority", workers=3)
    assert list(p.map(square, range(50), timeout=SOON)) == [x * x for x in range(50)]
    assert list(p.map(pow, [2, 3], [5, 2])) == [32, 9]


def test_context_manager_finishes_queued_work() -> None:
    ran: list[int] = []
    with real.ThreadedPool("fifo", workers=2) as p:
        futures = [p.submit(ran.append, i) for i in range(100)]
    # Leaving the block waits for every queued task, then stops every thread.
    assert all(f.done() for f in futures)
    assert sorted(ran) == list(range(100))
    assert not [t for t in pool_threads() if t.is_alive()]
    with pytest.raises(RuntimeError):
        p.submit(square, 1)


def test_exception_goes_to_future_and_every_worker_survives(make_pool: Any) -> None:
    workers = 3
    p = make_pool("fifo", workers=workers)
    barrier = threading.Barrier(workers, timeout=SOON)

    def fail_together(i: int) -> None:
        barrier.wait()  # all workers run one of these at once: each gets an exception
        raise ValueError(f"task {i}")

    failing = [p.submit(fail_together, i) for i in range(workers * 3)]
    for i, future in enumerate(failing):
        error = future.exception(timeout=SOON)
        assert isinstance(error, ValueError)
        assert str(error) == f"task {i}"
    # Every worker is still there: a barrier of all of them is passed again.
    names: set[str] = set()

    def meet() -> None:
        barrier.wait()
        names.add(threading.current_thread().name)

    later = [p.submit(meet) for _ in range(workers)]
    for future in later:
        assert future.result(timeout=SOON) is None
    assert len(names) == workers
    stats = p.stats()
    assert stats.failed == workers * 3
    assert stats.restarts == 0
    assert stats.workers == workers


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_base_exception_kills_only_its_worker(make_pool: Any) -> None:
    """A BaseException that is not an Exception kills its worker like a crash: the task
    is retried, then fails with WorkerLost; the pool goes on serving."""

    class Escape(BaseException):
        pass

    p = make_pool("fifo", workers=1, recovery=FAST)
    escaping = Flaky(10**9, raiser(Escape()))
    error = p.submit(escaping).exception(timeout=SOON)
    assert isinstance(error, real.WorkerLost)
    assert escaping.calls == FAST.max_attempts
    assert p.submit(square, 3).result(timeout=SOON) == 9


# ----------------------------------------------------------------------------- cancelling


def test_cancelled_futures_never_run(make_pool: Any, gates: Any) -> None:
    p = make_pool("fifo", workers=1)
    gate = gates()
    blocker = p.submit(gate.wait, SOON)
    wait_until(lambda: blocker.running(), what="blocker running")
    ran: list[int] = []
    futures = [p.submit(ran.append, i) for i in range(10)]
    cancelled = {i for i in range(10) if i % 2 == 0 and futures[i].cancel()}
    assert cancelled == {0, 2, 4, 6, 8}
    assert not blocker.cancel(), "a running future cannot be cancelled"
    gate.set()
    wait_futures([f for i, f in enumerate(futures) if i not in cancelled], timeout=SOON)
    assert sorted(ran) == [1, 3, 5, 7, 9]
    for i in cancelled:
        assert futures[i].cancelled()
        with pytest.raises(CancelledError):
            futures[i].result(timeout=0)
    wait_until(lambda: p.stats().cancelled == 5, what="cancelled count")
    assert p.stats().completed == 6


# ----------------------------------------------------------------------------- shutdown


def test_submit_after_shutdown_raises(make_pool: Any) -> None:
    p = make_pool("fifo", workers=2)
    p.shutdown()
    with pytest.raises(RuntimeError):
        p.submit(square, 2)
    with pytest.raises(RuntimeError):
        list(p.map(square, [1]))


@pytest.mark.parametrize(
    "first,second", [(True, True), (True, False), (False, True), (False, False)]
)
def test_shutdown_is_idempotent(make_pool: Any, first: bool, second: bool) -> None:
    p = make_pool("fifo", workers=2)
    futures = [p.submit(square, i) for i in range(20)]
    p.shutdown(wait=first)
    p.shutdown(wait=second)
    p.shutdown()
    assert [f.result(timeout=SOON) for f in futures] == [i * i for i in range(20)]
    assert not [t for t in pool_threads() if t.is_alive()]


def test_shutdown_wait_true_leaves_no_thread(make_pool: Any) -> None:
    before = set(threading.enumerate())
    p = make_pool("work-stealing", workers=4, recovery=FAST)
    for i in range(50):
        p.submit(square, i)
    p.submit(crash)  # one restart on the way, so a replacement thread exists too
    started = [t for t in threading.enumerate() if t not in before]
    assert len(started) >= 5  # four workers and the supervisor
    p.shutdown(wait=True)
    # wait=True means every thread has ended when shutdown returns: no grace here.
    assert not [t.name for t in threading.enumerate() if t not in before and t.is_alive()]


def test_shutdown_cancel_pending_cancels_queued_futures(make_pool: Any, gates: Any) -> None:
    p = make_pool("priority", workers=1)
    gate = gates()
    blocker = p.submit(gate.wait, SOON)
    wait_until(lambda: blocker.running(), what="blocker running")
    ran: list[int] = []
    queued = [p.submit_with(ran.append, (i,), priority=i % 3) for i in range(10)]
    p.shutdown(wait=False, cancel_pending=True)
    assert all(f.cancelled() for f in queued)
    assert not blocker.cancelled()
    gate.set()
    assert blocker.result(timeout=SOON) is True
    p.shutdown(wait=True)
    assert ran == []


def test_shutdown_cancel_futures_alias(make_pool: Any, gates: Any) -> None:
    p = make_pool("fifo", workers=1)
    gate = gates()
    blocker = p.submit(gate.wait, SOON)
    wait_until(lambda: blocker.running(), what="blocker running")
    queued = [p.submit(square, i) for i in range(5)]
    p.shutdown(wait=False, cancel_futures=True)
    assert all(f.cancelled() for f in queued)
    gate.set()
    p.shutdown(wait=True)


def test_shutdown_without_wait_returns_promptly_and_finishes_queued(
    make_pool: Any, gates: Any
) -> None:
    p = make_pool("fifo", workers=1)
    gate = gates()
    # Opens by itself after a while, so a shutdown that wrongly waits cannot hang the test.
    safety = threading.Timer(8.0, gate.set)
    safety.start()
    try:
        blocker = p.submit(gate.wait, SOON)
        queued = [p.submit(square, i) for i in range(5)]
        wait_until(lambda: blocker.running(), what="blocker running")
        started = time.monotonic()
        p.shutdown(wait=False)
        returned_after = time.monotonic() - started
        assert not gate.is_set(), "shutdown(wait=False) waited for the running task"
        assert returned_after < 5.0
        gate.set()
        assert [f.result(timeout=SOON) for f in queued] == [i * i for i in range(5)]
    finally:
        safety.cancel()
        safety.join()


def test_shutdown_cancel_pending_while_no_worker_serves(make_pool: Any) -> None:
    """Queued futures are cancelled even when the only worker is dead, awaiting restart."""
    recovery = Recovery(
        heartbeat_interval=0.02, heartbeat_timeout=0.06, restart_delay=2.0, max_attempts=1
    )
    p = make_pool("fifo", workers=1, recovery=recovery)
    poisoned = p.submit(crash)
    assert isinstance(poisoned.exception(timeout=SOON), real.WorkerLost)
    assert p.stats().workers == 0  # declared dead; its replacement comes in 2 s
    ran: list[int] = []
    queued = [p.submit(ran.append, i) for i in range(5)]
    p.shutdown(wait=False, cancel_pending=True)
    assert [f.cancelled() for f in queued] == [True] * 5
    p.shutdown(wait=True)
    assert ran == []


# ----------------------------------------------------------------------------- stats


def test_stats_is_a_frozen_snapshot(make_pool: Any, gates: Any) -> None:
    p = make_pool("fifo", workers=2)
    gate = gates()
    running = [p.submit(gate.wait, SOON) for _ in range(2)]
    wait_until(lambda: all(f.running() for f in running), what="two running")
    queued = [p.submit(square, i) for i in range(3)]
    snapshot = p.stats()
    assert isinstance(snapshot, real.PoolStats)
    fields = {f.name for f in dataclasses.fields(snapshot)}
    assert fields == {
        "workers",
        "busy",
        "queued",
        "completed",
        "failed",
        "retried",
        "stolen",
        "restarts",
        "discarded",
        "cancelled",
    }
    assert (snapshot.workers, snapshot.busy, snapshot.queued) == (2, 2, 3)
    assert snapshot.completed == 0
    with pytest.raises(dataclasses.FrozenInstanceError):
        snapshot.completed = 5  # type: ignore[misc]
    gate.set()
    wait_futures(queued, timeout=SOON)
    wait_until(lambda: p.stats().completed == 5, what="all completed")
    # The old snapshot did not change; a new one shows the new state.
    assert (snapshot.busy, snapshot.queued, snapshot.completed) == (2, 3, 0)
    after = p.stats()
    assert (after.busy, after.queued, after.completed) == (0, 0, 5)
    assert after.failed == after.retried == after.restarts == after.discarded == 0


# ----------------------------------------------------------------------------- priority


def test_priority_order_with_one_worker(make_pool: Any, gates: Any) -> None:
    p = make_pool("priority", workers=1)
    gate = gates()
    blocker = p.submit_with(gate.wait, (SOON,), priority=5)
    wait_until(lambda: blocker.running(), what="blocker running")
    order: list[tuple[int, int]] = []
    futures = [p.submit_with(order.append, ((i % 3, i),), priority=i % 3) for i in range(30)]
    gate.set()
    wait_futures(futures, timeout=SOON)
    assert order == sorted(order), "class 0 first, then 1, then 2; FIFO within a class"


def test_priority_aging_object(make_pool: Any) -> None:
    p = make_pool(pool.Priority(aging=0.5), workers=2)
    futures = [p.submit_with(square, (i,), priority=i % 4) for i in range(40)]
    assert [f.result(timeout=SOON) for f in futures] == [i * i for i in range(40)]


# ----------------------------------------------------------------------------- callbacks


def test_callbacks_that_submit_again_do_not_deadlock(make_pool: Any) -> None:
    p = make_pool("fifo", workers=2)
    finished = threading.Event()
    results: list[int] = []
    depth = 60

    def chain(future: Future[int]) -> None:
        value = future.result()
        results.append(value)
        p.stats()  # the callback may also look at the pool
        if value < depth:
            p.submit(lambda v=value: v + 1).add_done_callback(chain)
        else:
            finished.set()

    p.submit(lambda: 0).add_done_callback(chain)
    assert finished.wait(SOON), f"callback chain stalled after {len(results)} steps"
    assert results == list(range(depth + 1))


def test_callback_on_supervisor_settled_future_may_submit(make_pool: Any) -> None:
    """A future failed by the supervisor (worker lost) runs callbacks that submit again."""
    p = make_pool(
        "fifo",
        workers=2,
        recovery=Recovery(
            heartbeat_interval=0.02, heartbeat_timeout=0.06, restart_delay=0.02, max_attempts=1
        ),
    )
    followed: list[Future[int]] = []
    done = threading.Event()

    def follow(future: Future[Any]) -> None:
        followed.append(p.submit(square, 4))
        done.set()

    p.submit(crash).add_done_callback(follow)
    assert done.wait(SOON)
    assert followed[0].result(timeout=SOON) == 16


def test_failing_callback_does_not_kill_the_worker(make_pool: Any) -> None:
    p = make_pool("fifo", workers=1)

    def bad_callback(future: Future[Any]) -> None:
        raise RuntimeError("callback failed")

    first = p.submit(square, 2)
    first.add_done_callback(bad_callback)
    assert first.result(timeout=SOON) == 4
    futures = [p.submit(square, i) for i in range(5)]
    for f in futures:
        f.add_done_callback(bad_callback)
    assert [f.result(timeout=SOON) for f in futures] == [i * i for i in range(5)]
    assert p.stats().restarts == 0


# ----------------------------------------------------------------------------- backpressure


def test_max_pending_blocks_submit_and_submit_timeout_raises(make_pool: Any, gates: Any) -> None:
    gate = gates()
    p = make_pool("fifo", workers=1, max_pending=2, submit_timeout=0.2)
    blocker = p.submit(gate.wait, SOON)
    wait_until(lambda: blocker.running(), what="blocker running")
    queued = [p.submit(square, 1), p.submit(square, 2)]
    assert p.stats().queued == 2
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        p.submit(square, 3)
    assert time.monotonic() - started >= 0.15  # it did wait before giving up
    assert p.stats().queued == 2
    gate.set()
    assert [f.result(timeout=SOON) for f in queued] == [1, 4]


def test_max_pending_submit_blocks_until_space(make_pool: Any, gates: Any) -> None:
    gate = gates()
    p = make_pool("fifo", workers=1, max_pending=1)
    blocker = p.submit(gate.wait, SOON)
    wait_until(lambda: blocker.running(), what="blocker running")
    first = p.submit(square, 5)
    outcome: list[Any] = []

    def blocked_submit() -> None:
        try:
            outcome.append(p.submit(square, 6))
        except BaseException as error:  # report anything to the test thread
            outcome.append(error)

    submitter = threading.Thread(target=blocked_submit, name="test-submitter")
    submitter.start()
    try:
        time.sleep(0.2)
        assert submitter.is_alive(), "submit returned although the queue was full"
        assert outcome == []
        assert p.stats().queued == 1
    finally:
        gate.set()
        submitter.join(SOON)
    assert not submitter.is_alive()
    assert isinstance(outcome[0], Future)
    assert first.result(timeout=SOON) == 25
    assert outcome[0].result(timeout=SOON) == 36


def test_submit_blocked_on_a_full_queue_raises_at_shutdown(make_pool: Any, gates: Any) -> None:
    gate = gates()
    p = make_pool("fifo", workers=1, max_pending=1)
    blocker = p.submit(gate.wait, SOON)
    wait_until(lambda: blocker.running(), what="blocker running")
    p.submit(square, 1)
    outcome: list[BaseException | Future[Any]] = []

    def blocked_submit() -> None:
        try:
            outcome.append(p.submit(square, 2))
        except BaseException as error:  # report anything to the test thread
            outcome.append(error)

    submitter = threading.Thread(target=blocked_submit, name="test-submitter")
    submitter.start()
    try:
        time.sleep(0.1)
        assert submitter.is_alive()
        p.shutdown(wait=False)
        submitter.join(SOON)
        assert not submitter.is_alive(), "shutdown did not release a blocked submit"
        assert len(outcome) == 1
        assert isinstance(outcome[0], RuntimeError)
    finally:
        gate.set()
        submitter.join(SOON)


def test_max_pending_many_submitters_bounded_queue(make_pool: Any) -> None:
    p = make_pool("fifo", workers=2, max_pending=3)
    peak = [0]
    futures: list[Future[Any]] = []
    lock = threading.Lock()

    def produce(base: int) -> None:
        for _ in range(40):
            f = p.submit(time.sleep, 0.0005)
            with lock:
                futures.append(f)
                peak[0] = max(peak[0], p.stats().queued)

    producers = [threading.Thread(target=produce, args=(k,)) for k in range(3)]
    for t in producers:
        t.start()
    for t in producers:
        t.join(SOON * 2)
    assert not any(t.is_alive() for t in producers)
    _, not_done = wait_futures(futures, timeout=SOON)
    assert not not_done
    assert len(futures) == 120
    assert peak[0] <= 3


# ----------------------------------------------------------------------------- worker crash


def test_crash_retried_on_a_new_worker(make_pool: Any) -> None:
    p = make_pool("fifo", workers=2, recovery=FAST)
    flaky = Flaky(1, crash, value=42)
    future = p.submit(flaky)
    assert future.result(timeout=SOON) == 42
    assert flaky.calls == 2
    wait_until(lambda: p.stats().restarts >= 1, what="restart")
    stats = p.stats()
    assert stats.retried == 1
    assert stats.completed == 1
    assert stats.failed == 0
    wait_until(lambda: p.stats().workers == 2, what="back to two workers")


def test_poison_task_fails_with_worker_lost_and_others_complete(make_pool: Any) -> None:
    recovery = FAST
    p = make_pool("fifo", workers=2, recovery=recovery)
    calls = [0]

    def poison() -> None:
        calls[0] += 1
        raise real.WorkerCrash

    started = time.monotonic()
    poisoned = p.submit(poison)
    others = [p.submit(time.sleep, 0.002) for _ in range(40)]
    error = poisoned.exception(timeout=SOON * 2)
    elapsed = time.monotonic() - started
    assert isinstance(error, real.WorkerLost)
    assert calls[0] == recovery.max_attempts
    # Each attempt is detected only after the heartbeat timeout (lower bounds only).
    min_detection = recovery.heartbeat_timeout - recovery.heartbeat_interval
    assert elapsed >= recovery.max_attempts * min_detection * 0.9
    for future in others:
        assert future.result(timeout=SOON) is None
    wait_until(lambda: p.stats().restarts >= recovery.max_attempts, what="restarts")
    stats = p.stats()
    assert stats.failed == 1
    assert stats.retried == recovery.max_attempts - 1
    assert stats.completed == 40
    assert (stats.busy, stats.queued) == (0, 0)
    wait_until(lambda: p.stats().workers == 2, what="workers restored")
    assert p.submit(square, 9).result(timeout=SOON) == 81


def test_poison_with_one_worker_does_not_crash_loop(make_pool: Any) -> None:
    p = make_pool("priority", workers=1, recovery=FAST)
    poisoned = p.submit_with(crash, priority=0)
    after = [p.submit_with(square, (i,), priority=1) for i in range(5)]
    assert isinstance(poisoned.exception(timeout=SOON), real.WorkerLost)
    assert [f.result(timeout=SOON) for f in after] == [i * i for i in range(5)]


# ----------------------------------------------------------------------------- task timeout


def test_task_timeout_retries_and_discards_late_result(make_pool: Any, gates: Any) -> None:
    recovery = Recovery(
        heartbeat_interval=0.02,
        heartbeat_timeout=0.08,
        restart_delay=0.02,
        max_attempts=3,
        retry_backoff=0.005,
        task_timeout=0.5,  # well above a quick attempt's, on a machine that stalls
    )
    p = make_pool("fifo", workers=2, recovery=recovery)
    gate = gates()
    hung = Flaky(1, lambda: (gate.wait(SOON), "late")[1], value="fresh")
    future = p.submit(hung)
    assert future.result(timeout=SOON) == "fresh"
    assert hung.calls == 2
    stats = p.stats()
    assert stats.retried == 1
    assert stats.discarded == 0  # the hung attempt has not come back yet
    wait_until(lambda: p.stats().restarts == 1, what="the timed-out worker replaced")
    gate.set()  # now the hung attempt returns: its result is dropped and counted
    wait_until(lambda: p.stats().discarded == 1, what="late result discarded")
    assert future.result() == "fresh"
    assert p.stats().completed == 1
    p.shutdown(wait=True)
    assert p.stats().discarded == 1


def test_task_timeout_every_attempt_gives_worker_lost(make_pool: Any) -> None:
    recovery = Recovery(
        heartbeat_interval=0.02,
        heartbeat_timeout=0.08,
        restart_delay=0.02,
        max_attempts=2,
        retry_backoff=0.005,
        task_timeout=0.5,  # well above a quick task's, on a machine that stalls
    )
    p = make_pool("fifo", workers=2, recovery=recovery)
    future = p.submit(time.sleep, 1.5)
    quick = [p.submit(square, i) for i in range(10)]
    assert isinstance(future.exception(timeout=SOON), real.WorkerLost)
    assert [f.result(timeout=SOON) for f in quick] == [i * i for i in range(10)]
    p.shutdown(wait=True)
    stats = p.stats()
    assert stats.failed == 1
    assert stats.retried == 1
    assert stats.discarded == 2


def test_long_task_without_timeout_is_not_declared_dead(make_pool: Any) -> None:
    """A worker busy in a long task still heartbeats: no restart, no retry."""
    p = make_pool("fifo", workers=1, recovery=FAST)
    assert p.submit(time.sleep, 0.4).result(timeout=SOON) is None
    stats = p.stats()
    assert (stats.restarts, stats.retried, stats.discarded) == (0, 0, 0)


# ----------------------------------------------------------------------------- retries


def test_retry_exceptions_retries(make_pool: Any) -> None:
    p = make_pool("fifo", workers=2, recovery=FAST, retry_exceptions=(ConnectionError,))
    flaky = Flaky(2, raiser(ConnectionError("flaky")), value="ok")
    assert p.submit(flaky).result(timeout=SOON) == "ok"
    assert flaky.calls == 3
    stats = p.stats()
    assert stats.retried == 2
    assert stats.failed == 0
    assert stats.restarts == 0


def test_retry_exceptions_gives_last_error_after_max_attempts(make_pool: Any) -> None:
    p = make_pool("fifo", workers=2, recovery=FAST, retry_exceptions=(ConnectionError,))
    always = Flaky(10**9, raiser(ConnectionError("down")))
    error = p.submit(always).exception(timeout=SOON)
    assert isinstance(error, ConnectionError)
    assert always.calls == FAST.max_attempts
    # Exceptions outside retry_exceptions are not retried.
    other = Flaky(10**9, lambda: boom("nope"))
    assert isinstance(p.submit(other).exception(timeout=SOON), ValueError)
    assert other.calls == 1
    assert p.stats().retried == FAST.max_attempts - 1


# ----------------------------------------------------------------------------- stealing


def test_work_stealing_with_affinity(make_pool: Any) -> None:
    workers = 4
    p = make_pool(pool.WorkStealing(placement="affinity"), workers=workers)
    names: list[str] = []
    lock = threading.Lock()

    def work(i: int) -> int:
        with lock:
            names.append(threading.current_thread().name)
        time.sleep(0.005)
        return i

    futures = [p.submit_with(work, (i,), affinity=0) for i in range(60)]
    assert [f.result(timeout=SOON) for f in futures] == list(range(60))
    assert p.stats().stolen > 0
    assert len(set(names)) > 1, "other workers stole from worker 0"
    # An affinity past the pool's slots falls back to normal placement.
    assert p.submit_with(square, (3,), affinity=99).result(timeout=SOON) == 9


def test_no_steal_keeps_tasks_on_their_worker(make_pool: Any) -> None:
    p = make_pool(pool.WorkStealing(placement="affinity", amount="none"), workers=3)
    names: list[str] = []
    futures = [
        p.submit_with(lambda: names.append(threading.current_thread().name), affinity=1)
        for _ in range(20)
    ]
    wait_futures(futures, timeout=SOON)
    assert len(set(names)) == 1
    assert p.stats().stolen == 0


@pytest.mark.parametrize("death", ["crash", "timeout"])
def test_dead_workers_queue_is_handed_to_the_others(make_pool: Any, gates: Any, death: str) -> None:
    """Without stealing, tasks queued on a worker that dies are re-placed, not stranded."""
    recovery = Recovery(
        heartbeat_interval=0.02,
        heartbeat_timeout=0.06,
        restart_delay=5.0,  # the dead slot stays empty for the whole test
        max_attempts=1,
        task_timeout=0.1 if death == "timeout" else None,
    )
    policy = pool.WorkStealing(placement="affinity", amount="none")
    p = make_pool(policy, workers=2, recovery=recovery)
    gate = gates()
    started = threading.Event()

    def doomed() -> None:
        started.set()
        if death == "crash":
            gate.wait(SOON)
            raise real.WorkerCrash
        gate.wait(SOON)  # hangs until the test ends

    first = p.submit_with(doomed, affinity=0)
    assert started.wait(SOON)
    behind = [p.submit_with(square, (i,), affinity=0) for i in range(10)]
    if death == "crash":
        gate.set()
    assert isinstance(first.exception(timeout=SOON), real.WorkerLost)
    assert [f.result(timeout=SOON) for f in behind] == [i * i for i in range(10)]
    assert p.stats().workers == 1
    gate.set()


# ----------------------------------------------------------------------------- autoscaling


def test_autoscaling_grows_and_shrinks(make_pool: Any) -> None:
    policy = pool.Autoscaling(
        min_workers=1,
        max_workers=4,
        target=0.7,
        decision_interval=0.05,
        cooldown=0.1,
        startup_delay=0.0,
        scale_down_ticks=2,
    )
    p = make_pool(policy, workers=1)
    assert p.stats().workers == 1
    futures = [p.submit(time.sleep, 0.03) for _ in range(80)]
    peak = [1]

    def grown() -> bool:
        peak[0] = max(peak[0], p.stats().workers)
        return peak[0] >= 3

    wait_until(grown, what="scale-up")
    _, not_done = wait_futures(futures, timeout=SOON * 2)
    assert not not_done
    assert peak[0] <= 4
    wait_until(lambda: p.stats().workers == 1, what="scale-down to min_workers")
    # Still serving after scaling down.
    assert p.submit(square, 5).result(timeout=SOON) == 25
    assert p.stats().completed == 81


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("workers", [0, -1, 1.5, "4", True, None])
def test_bad_workers(workers: Any) -> None:
    with pytest.raises(ValueError, match="workers"):
        real.ThreadedPool("fifo", workers=workers)


@pytest.mark.parametrize("policy", ["lifo", "", None, 3])
def test_bad_policy(policy: Any) -> None:
    with pytest.raises(ValueError, match="policy"):
        real.ThreadedPool(policy, workers=1)


@pytest.mark.parametrize("max_pending", [0, -3, 2.5, "10", True])
def test_bad_max_pending(max_pending: Any) -> None:
    with pytest.raises(ValueError, match="max_pending"):
        real.ThreadedPool("fifo", workers=1, max_pending=max_pending)


@pytest.mark.parametrize("submit_timeout", [-1.0, float("nan"), "soon"])
def test_bad_submit_timeout(submit_timeout: Any) -> None:
    with pytest.raises(ValueError, match="submit_timeout"):
        real.ThreadedPool("fifo", workers=1, max_pending=1, submit_timeout=submit_timeout)


@pytest.mark.parametrize(
    "field,value",
    [
        ("heartbeat_interval", 0.0),
        ("heartbeat_interval", -1.0),
        ("heartbeat_timeout", 0.0),
        ("heartbeat_timeout", 0.01),  # shorter than the interval
        ("restart_delay", -0.1),
        ("max_attempts", 0),
        ("max_attempts", 2.5),
        ("retry_backoff", -1.0),
        ("task_timeout", 0.0),
        ("task_timeout", float("inf")),
    ],
)
def test_bad_recovery_values(field: str, value: Any) -> None:
    with pytest.raises(ValueError, match=field):
        Recovery(**{field: value})


def test_bad_recovery_type() -> None:
    with pytest.raises(ValueError, match="recovery"):
        real.ThreadedPool("fifo", workers=1, recovery={"max_attempts": 3})  # type: ignore[arg-type]


@pytest.mark.parametrize("retry_exceptions", [("not a type",), (ValueError, 3), "ValueError"])
def test_bad_retry_exceptions(retry_exceptions: Any) -> None:
    """Unchecked, a bad ``retry_exceptions`` only blows up inside a worker when a task
    raises, after the task was taken off the books: its future then never resolves."""
    made: list[real.ThreadedPool] = []
    try:
        with pytest.raises((ValueError, TypeError), match="retry_exceptions"):
            made.append(real.ThreadedPool("fifo", workers=1, retry_exceptions=retry_exceptions))
    finally:
        for p in made:
            p.shutdown(wait=False, cancel_pending=True)


def test_bad_submit_arguments(make_pool: Any) -> None:
    p = make_pool("priority", workers=1)
    with pytest.raises(TypeError, match="fn"):
        p.submit(42)
    with pytest.raises(TypeError, match="fn"):
        p.submit(None)
    for priority in (-1, 1.5, "0", None):
        with pytest.raises(ValueError, match="priority"):
            p.submit_with(square, (1,), priority=priority)
    for affinity in (-1, 0.5, "0"):
        with pytest.raises(ValueError, match="affinity"):
            p.submit_with(square, (1,), affinity=affinity)
    # Nothing was queued by the rejected calls, and the pool still works.
    assert p.stats().queued == 0
    assert p.submit_with(square, (2,), priority=3).result(timeout=SOON) == 4
