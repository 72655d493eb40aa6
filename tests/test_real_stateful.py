"""A hypothesis state machine drives a real ``real.ThreadedPool``.

Small pools (1-3 workers) under every policy family, with fast failure detection. The
rules submit tasks of several kinds (quick ones, ones blocked on a gate, ones that
raise, ones that fail with a retryable exception, ones that crash their worker thread
once, poison tasks that crash every worker they touch), cancel random futures, release
gates, submit bursts (to make the autoscaler scale) and shut the pool down. Every task
records its runs in a shared log. Checked after every step and at the end:

- a task whose ``cancel()`` returned True never runs;
- no task runs more than ``max_attempts`` times or succeeds twice, and each future is
  set exactly once (its done-callbacks run once, no pool thread dies of an error);
- the ``stats()`` counters agree with the futures and the log: nothing counted twice;
- after ``shutdown(wait=True)`` every future is done with the outcome its kind implies,
  and no thread of the pool is left.

Timing is real, so no run is bit-for-bit repeatable; the search is random on purpose,
and a failure prints the whole sequence of steps (no shrinking).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import CancelledError, Future
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

import real
from pool import FIFO, Autoscaling, Policy, Priority, Recovery, WorkStealing

pytestmark = pytest.mark.timeout(240)

RECOVERY = Recovery(
    heartbeat_interval=0.01,
    heartbeat_timeout=0.03,
    restart_delay=0.01,
    max_attempts=3,
    retry_backoff=0.002,
)
MAX_ATTEMPTS = RECOVERY.max_attempts
#: A gate nobody opens lets its task finish anyway after this long (a safety net).
GATE_TIMEOUT = 15.0
#: How long ``shutdown(wait=True)`` may take before the test calls it hung.
SHUTDOWN_LIMIT = 30.0
NAME = "stateful"

POLICIES: dict[str, Callable[[], Policy]] = {
    "fifo": FIFO,
    "priority": Priority,
    "ws-random-one": lambda: WorkStealing("round-robin", "random", "one"),
    "ws-affinity-longest-half": lambda: WorkStealing("affinity", "longest", "half"),
    "auto-fifo": lambda: _autoscaling(FIFO()),
    "auto-ws": lambda: _autoscaling(WorkStealing("round-robin", "longest", "half")),
}
#: The largest number of worker slots any configuration can have.
MAX_SLOTS = 3


def _autoscaling(inner: Policy) -> Autoscaling:
    return Autoscaling(
        inner=inner,
        min_workers=1,
        max_workers=MAX_SLOTS,
        metric="queue",
        target=1.0,
        decision_interval=0.01,
        cooldown=0.02,
        startup_delay=0.005,
        scale_down_ticks=2,
        tolerance=0.0,
    )


class RetryableError(Exception):
    """Raised by ``flaky`` tasks; the pool retries it (``retry_exceptions``)."""


#: Runs each kind takes when nothing interferes, and how it ends.
EXPECTED_RUNS = {"ok": 1, "gate": 1, "raise": 1, "flaky": 3, "crash": 2, "poison": MAX_ATTEMPTS}
EXPECTED_ERROR: dict[str, type[BaseException] | None] = {
    "ok": None,
    "gate": None,
    "raise": ValueError,
    "flaky": None,
    "crash": None,
    "poison": real.WorkerLost,
}


@dataclass(eq=False)
class Task:
    tid: int
    kind: str
    sleep: float = 0.0
    priority: int = 0
    affinity: int | None = None
    gate: threading.Event | None = None
    future: Future[Any] | None = None
    cancel_returned_true: bool = False
    callbacks: int = 0


@dataclass
class RunLog:
    """What the tasks themselves saw: runs started and successful returns, per task."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    runs: dict[int, int] = field(default_factory=dict)
    successes: dict[int, int] = field(default_factory=dict)

    def start(self, tid: int) -> int:
        with self.lock:
            self.runs[tid] = self.runs.get(tid, 0) + 1
            return self.runs[tid]

    def succeed(self, tid: int) -> None:
        with self.lock:
            self.successes[tid] = self.successes.get(tid, 0) + 1

    def snapshot(self) -> tuple[dict[int, int], dict[int, int]]:
        with self.lock:
            return dict(self.runs), dict(self.successes)


def body(log: RunLog, task: Task) -> tuple[str, int]:
    """The function every submitted task runs."""
    run = log.start(task.tid)
    if task.kind == "poison" or (task.kind == "crash" and run == 1):
        raise real.WorkerCrash  # ends this worker thread, as a crash would
    if task.kind == "raise":
        raise ValueError(f"task {task.tid} raises")
    if task.kind == "flaky" and run < EXPECTED_RUNS["flaky"]:
        raise RetryableError(f"task {task.tid} run {run}")
    if task.gate is not None and not task.gate.wait(GATE_TIMEOUT):
        raise RuntimeError(f"task {task.tid}: its gate was never opened")
    if task.sleep:
        time.sleep(task.sleep)
    log.succeed(task.tid)
    return ("done", task.tid)


class PoolMachine(RuleBasedStateMachine):
    def __init__(self, policy_name: str, thread_errors: list[str]) -> None:
        super().__init__()
        self.policy_name = policy_name
        self.autoscaling = policy_name.startswith("auto")
        self.thread_errors = thread_errors
        self.log = RunLog()
        self.tasks: list[Task] = []
        self.pool: real.ThreadedPool | None = None
        self.is_shut_down = False
        self.cancel_pending = False
        self.callback_lock = threading.Lock()

    # -- set-up --------------------------------------------------------------------------

    @initialize(workers=st.integers(1, MAX_SLOTS), cancel_at_the_end=st.booleans())
    def start_pool(self, workers: int, cancel_at_the_end: bool) -> None:
        # How the closing shutdown runs when no ``shutdown`` rule ran before the end.
        self.cancel_pending = cancel_at_the_end
        self.pool = real.ThreadedPool(
            POLICIES[self.policy_name](),
            workers,
            RECOVERY,
            retry_exceptions=(RetryableError,),
            thread_name_prefix=NAME,
        )

    # -- helpers -------------------------------------------------------------------------

    @property
    def p(self) -> real.ThreadedPool:
        assert self.pool is not None
        return self.pool

    def _submit(self, task: Task) -> None:
        task.future = self.p.submit_with(
            body, (self.log, task), priority=task.priority, affinity=task.affinity
        )
        task.future.add_done_callback(lambda _f, task=task: self._called_back(task))
        self.tasks.append(task)

    def _called_back(self, task: Task) -> None:
        with self.callback_lock:
            task.callbacks += 1

    def _new(self, kind: str, **kwargs: Any) -> Task:
        return Task(len(self.tasks), kind, **kwargs)

    def _open_gates(self) -> None:
        for task in self.tasks:
            if task.gate is not None:
                task.gate.set()

    # -- rules ---------------------------------------------------------------------------

    @precondition(lambda self: not self.is_shut_down)
    @rule(
        specs=st.lists(
            st.tuples(
                st.sampled_from(["ok", "ok", "ok", "raise", "flaky"]),
                st.integers(0, 3),
                st.integers(0, 2),
                st.none() | st.integers(0, MAX_SLOTS - 1),
            ),
            min_size=1,
            max_size=4,
        )
    )
    def submit(self, specs: list[tuple[str, int, int, int | None]]) -> None:
        """Tasks that return after 0-3 ms, raise, or fail retryably before succeeding."""
        for kind, sleep_ms, priority, affinity in specs:
            task = self._new(kind, sleep=sleep_ms / 1000, priority=priority, affinity=affinity)
            self._submit(task)

    @precondition(lambda self: not self.is_shut_down)
    @rule(priorities=st.lists(st.integers(0, 2), min_size=1, max_size=2))
    def submit_gated(self, priorities: list[int]) -> None:
        """Tasks that block their worker until their gate opens: the queue builds up."""
        for priority in priorities:
            self._submit(self._new("gate", gate=threading.Event(), priority=priority))

    @precondition(lambda self: not self.is_shut_down)
    @rule(poison=st.booleans(), priority=st.integers(0, 2))
    def crash_a_worker(self, poison: bool, priority: int) -> None:
        """A task that raises WorkerCrash in its worker thread: once, or on every run."""
        self._submit(self._new("poison" if poison else "crash", priority=priority))

    @precondition(lambda self: bool(self.tasks))
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        # Mostly recent tasks, likely still queued. (Choose by index, never by state that
        # depends on timing, so that hypothesis can replay the choice.)
        count = len(self.tasks)
        back = data.draw(st.integers(0, min(count, 4) - 1) | st.integers(0, count - 1))
        task = self.tasks[count - 1 - back]
        assert task.future is not None
        if task.future.cancel():
            task.cancel_returned_true = True

    @precondition(lambda self: any(t.gate and not t.gate.is_set() for t in self.tasks))
    @rule(data=st.data())
    def release_gates(self, data: st.DataObject) -> None:
        closed = [t for t in self.tasks if t.gate is not None and not t.gate.is_set()]
        chosen = data.draw(st.lists(st.sampled_from(closed), min_size=1, unique=True))
        for task in chosen:
            assert task.gate is not None
            task.gate.set()

    @precondition(lambda self: self.autoscaling and not self.is_shut_down)
    @rule(size=st.integers(4, 12), sleep_ms=st.integers(1, 3))
    def burst(self, size: int, sleep_ms: int) -> None:
        """Many short tasks at once: the queue grows and the autoscaler scales up."""
        for _ in range(size):
            self._submit(self._new("ok", sleep=sleep_ms / 1000))

    @rule(ms=st.sampled_from([0, 5, 20, 50]))
    def let_time_pass(self, ms: int) -> None:
        time.sleep(ms / 1000)

    @precondition(lambda self: not self.is_shut_down)
    @rule(cancel_pending=st.booleans(), open_gates_first=st.booleans())
    def shutdown(self, cancel_pending: bool, open_gates_first: bool) -> None:
        """Shut down: possibly first without waiting while gated tasks still block."""
        self.is_shut_down, self.cancel_pending = True, cancel_pending
        if not open_gates_first:
            started = time.monotonic()
            self.p.shutdown(wait=False, cancel_pending=cancel_pending)
            assert time.monotonic() - started < 5.0, "shutdown(wait=False) blocked"
        self._open_gates()
        self._shutdown_and_wait(cancel_pending)

    @precondition(lambda self: self.is_shut_down)
    @rule()
    def submit_after_shutdown(self) -> None:
        with pytest.raises(RuntimeError):
            self.p.submit(body, self.log, self._new("ok"))

    def _shutdown_and_wait(self, cancel_pending: bool) -> None:
        """``shutdown(wait=True)`` on a helper thread, so a hang fails with a message."""
        errors: list[BaseException] = []

        def call() -> None:
            try:
                self.p.shutdown(wait=True, cancel_pending=cancel_pending)
            except BaseException as error:  # pragma: no cover - reported below
                errors.append(error)

        helper = threading.Thread(target=call, name=f"{NAME}-test-shutdown", daemon=True)
        helper.start()
        helper.join(SHUTDOWN_LIMIT)
        assert not helper.is_alive(), (
            f"shutdown(wait=True) still blocked after {SHUTDOWN_LIMIT}s; stats {self.p.stats()}"
        )
        assert not errors, f"shutdown raised {errors[0]!r}"

    # -- invariants ----------------------------------------------------------------------

    @invariant()
    def runs_are_bounded(self) -> None:
        runs, successes = self.log.snapshot()
        for task in self.tasks:
            n = runs.get(task.tid, 0)
            if task.cancel_returned_true:
                assert n == 0, f"task {task.tid} ran {n}x although cancel() returned True"
            assert n <= MAX_ATTEMPTS, f"task {task.tid} ({task.kind}) ran {n} times"
            assert successes.get(task.tid, 0) <= 1, f"task {task.tid} succeeded twice"

    @invariant()
    def counters_are_consistent(self) -> None:
        if self.pool is None:
            return
        # Read futures, then counters, then the log: each is monotone and later in the
        # chain of events (task returns -> counter -> future), so these bounds are exact.
        results = sum(1 for t in self.tasks if _has_result(t.future))
        stats = self.p.stats()
        _, successes = self.log.snapshot()
        submitted = len(self.tasks)
        resolved = stats.completed + stats.failed + stats.cancelled
        assert resolved <= submitted, f"{resolved} tasks resolved of {submitted}: {stats}"
        assert results <= stats.completed <= sum(successes.values()), stats
        assert stats.busy >= 0 and 0 <= stats.queued <= submitted, stats
        assert 0 <= stats.workers <= MAX_SLOTS, stats
        assert stats.discarded == 0, stats  # no hangs, no timeouts: no late results
        assert not self.thread_errors, f"a pool thread died: {self.thread_errors}"

    # -- the end -------------------------------------------------------------------------

    def teardown(self) -> None:
        if self.pool is None:
            return
        self._open_gates()
        if not self.is_shut_down:
            self.is_shut_down = True
            self._shutdown_and_wait(self.cancel_pending)
        self._final_checks()

    def _final_checks(self) -> None:
        stats = self.p.stats()
        runs, successes = self.log.snapshot()
        not_done = [(t.tid, t.kind, runs.get(t.tid, 0)) for t in self.tasks if not t.future.done()]
        assert not not_done, f"futures never resolved (tid, kind, runs): {not_done}; {stats}"
        results = cancelled = errors = 0
        for task in self.tasks:
            future, tid, kind = task.future, task.tid, task.kind
            assert future is not None
            n, wins = runs.get(tid, 0), successes.get(tid, 0)
            where = f"task {tid} ({kind}, runs {n}, successes {wins})"
            assert task.callbacks == 1, f"{where}: done-callbacks ran {task.callbacks}x"
            if future.cancelled():
                cancelled += 1
                assert n == 0, f"{where}: cancelled but ran"
                assert task.cancel_returned_true or self.cancel_pending, where
                continue
            assert not task.cancel_returned_true, f"{where}: cancel() was True, not cancelled"
            error = future.exception(timeout=0)
            expected = EXPECTED_ERROR[kind]
            if error is None:
                results += 1
                assert expected is None, f"{where}: succeeded, expected {expected}"
                assert future.result(timeout=0) == ("done", tid), where
                assert wins == 1 and n == EXPECTED_RUNS[kind], where
                continue
            errors += 1
            assert wins == 0, f"{where}: ended with {error!r} yet succeeded once"
            if expected is not None and isinstance(error, expected):
                assert n == EXPECTED_RUNS[kind], f"{where}: {error!r}"
            else:
                # Only a shutdown that cancels pending work may cut a retried task short.
                assert self.cancel_pending and 0 < n < EXPECTED_RUNS[kind], (
                    f"{where}: unexpected {error!r}"
                )
                assert isinstance(error, CancelledError | real.WorkerLost), where
        assert stats.completed == results, f"completed {stats.completed} != {results}: {stats}"
        counted = stats.completed + stats.failed + stats.cancelled
        assert counted == len(self.tasks), (
            f"completed+failed+cancelled = {counted} for {len(self.tasks)} tasks "
            f"({results} results, {errors} errors, {cancelled} cancelled): {stats}"
        )
        retries = sum(max(n - 1, 0) for n in runs.values())
        assert stats.retried >= retries, stats
        if not self.cancel_pending:
            assert stats.retried == retries, stats
        crashes = sum(
            n if t.kind == "poison" else min(n, 1)
            for t in self.tasks
            if t.kind in ("crash", "poison") and (n := runs.get(t.tid, 0))
        )
        assert stats.restarts <= crashes, stats
        assert stats.busy == 0 and stats.queued == 0, stats
        left = [t.name for t in threading.enumerate() if t.name.startswith(NAME) and t.is_alive()]
        assert not left, f"threads left behind: {left}"


def _has_result(future: Future[Any] | None) -> bool:
    return (
        future is not None
        and future.done()
        and not future.cancelled()
        and future.exception(timeout=0) is None
    )


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(autouse=True)
def _threads_checked(no_thread_left: None) -> None:
    """Every test here is checked for threads left behind (see conftest.py)."""


@pytest.fixture
def thread_errors() -> Iterator[list[str]]:
    """Uncaught exceptions in threads (e.g. a future set twice in a worker), collected."""
    errors: list[str] = []
    previous = threading.excepthook

    def hook(args: threading.ExceptHookArgs) -> None:
        name = args.thread.name if args.thread is not None else "?"
        errors.append(f"{name}: {args.exc_type.__name__}: {args.exc_value}")
        previous(args)

    threading.excepthook = hook
    yield errors
    threading.excepthook = previous


# ----------------------------------------------------------------------------- the tests

SETTINGS = settings(
    max_examples=25,
    stateful_step_count=20,
    deadline=None,
    database=None,
    # No shrinking: outcomes depend on thread timing, so replays of a failure need not
    # fail alike; the full failing sequence is reported as found.
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow],
)


@pytest.mark.parametrize("policy_name", sorted(POLICIES))
def test_threaded_pool_state_machine(policy_name: str, thread_errors: list[str]) -> None:
    run_state_machine_as_test(lambda: PoolMachine(policy_name, thread_errors), settings=SETTINGS)


def test_cancel_pending_while_no_worker_serves_counts_each_task_once() -> None:
    """Regression: queued tasks cancelled at shutdown while the only worker is dead (its
    restart pending) were counted as cancelled twice: once by the shutdown, again when
    the restarted worker dequeued and skipped them."""
    recovery = Recovery(
        heartbeat_interval=0.01, heartbeat_timeout=0.03, restart_delay=0.3, max_attempts=1
    )
    p = real.ThreadedPool("fifo", workers=1, recovery=recovery, thread_name_prefix=NAME)
    try:
        poisoned = p.submit(body, RunLog(), Task(0, "poison"))
        assert isinstance(poisoned.exception(timeout=10), real.WorkerLost)
        queued = [p.submit(time.sleep, 0) for _ in range(5)]
        p.shutdown(wait=False, cancel_pending=True)
        assert all(f.cancelled() for f in queued)
    finally:
        p.shutdown(wait=True)
    stats = p.stats()
    assert (stats.failed, stats.cancelled) == (1, 5), stats
    assert stats.completed + stats.failed + stats.cancelled == 6, stats


def test_crashed_worker_retired_then_its_slot_reused_still_retries_its_task() -> None:
    """Regression: a worker crashes (undetected yet, heartbeat_timeout 1 s); a scale-down
    retires its slot (the highest); a scale-up re-adds that slot before detection. A new
    worker used to replace the dead one in the pool's slot table, which is all the
    monitor looks at: the dead worker was never declared dead, its task never retried,
    its future never resolved and ``shutdown(wait=True)`` blocked forever."""
    policy = Autoscaling(
        inner=WorkStealing("affinity", "random", "none"),  # tasks stay where they are put
        min_workers=1,
        max_workers=2,
        metric="queue",
        target=2.0,
        decision_interval=0.5,  # ticks at 0.5 s, 1.0 s, ... of pool time
        cooldown=0.0,
        startup_delay=0.0,
        scale_down_ticks=1,
        tolerance=0.0,
    )
    recovery = Recovery(heartbeat_interval=0.05, heartbeat_timeout=1.0, restart_delay=0.0)
    p = real.ThreadedPool(policy, workers=2, recovery=recovery, thread_name_prefix=NAME)
    gate = threading.Event()
    log = RunLog()
    try:
        gated = p.submit_with(gate.wait, (GATE_TIMEOUT,), affinity=0)  # slot 0 stays busy
        crashing = p.submit_with(body, (log, Task(0, "crash")), affinity=1)  # slot 1 dies
        while log.snapshot()[0].get(0, 0) == 0 and p.now() < 0.45:
            time.sleep(0.005)
        if log.snapshot()[0].get(0, 0) == 0:
            pytest.skip("the machine is too busy: the crash came after the first scaler tick")
        # Tick at 0.5 s: load = 2 busy (one of them the dead worker) -> 1 worker: slot 1
        # (the crashed one) retires.
        time.sleep(max(0.0, 0.7 - p.now()))
        # Tick at 1.0 s: load = 2 busy + 3 queued -> 2 workers: slot 1 is added again.
        queued = [p.submit_with(time.sleep, (0.001,), affinity=0) for _ in range(3)]
        time.sleep(max(0.0, 1.2 - p.now()))
        gate.set()
        # The crash is detected about 1 s after it happened, and the task retried.
        assert crashing.result(timeout=10.0) == ("done", 0)
        assert gated.result(timeout=10.0) is True
        assert [f.result(timeout=10.0) for f in queued] == [None] * 3
    finally:
        gate.set()
        p.shutdown(wait=False, cancel_pending=True)
        helper = threading.Thread(target=p.shutdown, name=f"{NAME}-test-shutdown", daemon=True)
        helper.start()
        helper.join(10.0)
    assert not helper.is_alive(), "shutdown(wait=True) blocked"
