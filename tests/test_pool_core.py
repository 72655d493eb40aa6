"""The pool core's decisions, step by step, through a backend that only records.

Both pools (the model and the threaded pool) and the model's fast path drive this one
object; here each decision is checked exactly, without a clock or a thread.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from pool import FIFO, Autoscaling, Recovery, WorkStealing
from pool.core import NOTHING, STOLE, PoolCore, WorkerLost, WorkerState
from pool.faults import Fault
from pool.policies import Policy


class Recording:
    """A backend that keeps what the core asks of it; ``clock`` is set by the test."""

    def __init__(self) -> None:
        self.clock = 0.0
        self.woken: list[int] = []
        self.timers: list[tuple[float, Callable[[], None]]] = []
        self.placed: list[int] = []
        self.failures: list[tuple[int, BaseException]] = []
        self.released_slots: list[int] = []
        self.tries: dict[int, int] = {}
        self.core: PoolCore[WorkerState] | None = None

    def now(self) -> float:
        return self.clock

    def spawn(self, slot: int) -> WorkerState:
        return WorkerState(slot, self.clock)

    def wake(self, worker: WorkerState) -> None:
        self.woken.append(worker.slot)

    def at(self, due: float, action: Callable[[], None]) -> None:
        self.timers.append((due, action))

    def place(self, task: int) -> None:
        self.placed.append(task)
        assert self.core is not None
        self.core.submit(task, 0, -1, self.clock)

    def attempts(self, task: int) -> int:
        return self.tries.get(task, 1)

    def failed(self, task: int, error: BaseException) -> None:
        self.failures.append((task, error))

    def released(self, worker: WorkerState) -> None:
        self.released_slots.append(worker.slot)

    def run_timers(self) -> None:
        """Fire every timer in due order, advancing the clock."""
        while self.timers:
            self.timers.sort(key=lambda timer: timer[0])
            due, action = self.timers.pop(0)
            self.clock = due
            action()


def _core(
    policy: Policy, workers: int = 2, recovery: Recovery | None = None, start_cost: float = 0.0
) -> tuple[PoolCore[WorkerState], Recording]:
    backend = Recording()
    policy.reset(range(workers), np.random.default_rng(0))
    core: PoolCore[WorkerState] = PoolCore(
        policy, recovery or Recovery(), backend, start_cost=start_cost
    )
    backend.core = core
    for slot in range(workers):
        core.start_worker(slot)
    return core, backend


def test_submit_wakes_the_worker_that_went_idle_last() -> None:
    core, backend = _core(FIFO(), workers=3)
    for slot in (0, 2, 1):
        core.go_idle(core.slots[slot])
    core.submit(7, 0, -1, 0.0)
    assert backend.woken == [1]
    assert list(core.idle) == [0, 2]
    assert core.take(core.slots[1], 0.0) == 7
    assert core.take(core.slots[1], 0.0) == NOTHING


def test_a_placed_task_wakes_its_own_slot_or_any_idle_thief() -> None:
    core, backend = _core(WorkStealing(placement="affinity"), workers=3)
    for slot in (0, 1, 2):
        core.go_idle(core.slots[slot])
    core.submit(1, 0, 0, 0.0)  # affinity to slot 0: it is idle, so it is woken
    assert backend.woken == [0]
    core.submit(2, 0, 0, 0.0)  # slot 0 is busy now: a thief may take it, the last idle
    assert backend.woken == [0, 2]


def test_an_idle_worker_steals_then_takes_what_it_stole() -> None:
    core, _ = _core(WorkStealing(placement="affinity", steal_latency=0.5), workers=2)
    core.submit(1, 0, 0, 0.0)
    core.submit(2, 0, 0, 0.0)
    thief = core.slots[1]
    assert core.take(thief, 0.0) == STOLE  # the backend waits out the steal latency
    assert core.counts["stolen"] == 1
    assert core.take(thief, 0.5) == 1  # the victim's oldest task


def test_a_steal_that_costs_no_time_hands_over_the_stolen_task_at_once() -> None:
    core, _ = _core(WorkStealing(placement="affinity"), workers=2)
    core.submit(1, 0, 0, 0.0)
    core.submit(2, 0, 0, 0.0)
    assert core.take(core.slots[1], 0.0) == 1
    assert core.counts["stolen"] == 1
    assert core.take(core.slots[0], 0.0) == 2


def test_nothing_queued_means_no_steal_and_no_wake() -> None:
    core, backend = _core(WorkStealing(placement="affinity"), workers=2)
    assert core.take(core.slots[0], 0.0) == NOTHING
    core.pass_wake()
    assert backend.woken == [] and core.counts["stolen"] == 0


def test_declare_dead_retries_the_task_requeues_the_queue_and_restarts() -> None:
    recovery = Recovery(max_attempts=3, restart_delay=0.5)
    core, backend = _core(WorkStealing(placement="affinity"), workers=2, recovery=recovery)
    core.submit(10, 0, 0, 0.0)
    core.submit(11, 0, 0, 0.0)
    victim = core.slots[0]
    task = core.take(victim, 0.0)
    core.begin(victim, task, 0.0)
    assert core.busy == 1
    backend.clock = 2.0
    core.declare_dead(victim, "detected")
    assert victim.declared_dead and 0 not in core.slots and core.busy == 0
    assert backend.placed == [11]  # its queue handed back at once
    assert backend.released_slots == [0]
    assert core.counts["retried"] == 1 and backend.failures == []
    backend.run_timers()  # the retry after its backoff, the restart after its delay
    assert backend.placed == [11, task]
    assert 0 in core.slots and core.counts["restarts"] == 1
    assert core.slots[0] is not victim


def test_the_last_attempt_lost_fails_the_task_with_worker_lost() -> None:
    core, backend = _core(FIFO(), workers=1, recovery=Recovery(max_attempts=1))
    core.submit(3, 0, -1, 0.0)
    worker = core.slots[0]
    core.begin(worker, core.take(worker, 0.0), 0.0)
    core.declare_dead(worker, "timeout")
    [(task, error)] = backend.failures
    assert task == 3 and isinstance(error, WorkerLost) and core.counts["failed"] == 1


def test_a_retiring_worker_hands_back_its_queue_and_is_not_restarted() -> None:
    core, backend = _core(WorkStealing(placement="affinity"), workers=2)
    core.submit(5, 0, 1, 0.0)
    core.go_idle(core.slots[1])
    backend.woken.clear()
    core.retire(1)
    assert core.slots[1].retiring and backend.placed == [5]
    core.retired(core.slots[1])
    assert 1 not in core.slots


def test_a_stopped_core_starts_no_worker() -> None:
    core, backend = _core(FIFO(), workers=1, recovery=Recovery(restart_delay=1.0))
    core.declare_dead(core.slots[0], "detected")
    core.stopped = True
    backend.run_timers()
    assert core.slots == {}


def test_start_cost_delays_every_start() -> None:
    core, backend = _core(FIFO(), workers=1, recovery=Recovery(restart_delay=1.0), start_cost=0.25)
    core.declare_dead(core.slots[0], "detected")
    assert [due for due, _ in backend.timers] == [1.25]


def test_scale_up_then_down_keeps_a_retiring_worker_instead_of_starting_one() -> None:
    policy = Autoscaling(
        min_workers=1,
        max_workers=3,
        metric="queue",
        target=1.0,
        decision_interval=1.0,
        cooldown=0.0,
        startup_delay=0.0,
    )
    core, backend = _core(policy, workers=1)
    for task in range(20):
        core.submit(task, 0, -1, 0.0)
    core.scale(1.0)
    assert set(core.pending_starts) == {1, 2}
    backend.run_timers()
    assert set(core.slots) == {0, 1, 2}
    core.retire(2)
    assert core.slots[2].retiring
    core.scale(2.0)  # still loaded: slot 2 is wanted again while it finishes
    assert not core.slots[2].retiring


def test_hangs_merge_and_a_dead_worker_gets_no_fault() -> None:
    core, _ = _core(FIFO(), workers=1)
    worker, extension = core.inject(Fault(1.0, 0, "hang", 2.0), 1.0) or (None, -1.0)
    assert extension == pytest.approx(2.0) and worker is not None
    assert worker.frozen_until == pytest.approx(3.0)
    _, extension = core.inject(Fault(2.0, 0, "hang", 2.0), 2.0) or (None, -1.0)
    assert extension == pytest.approx(1.0)  # frozen until 4.0: one more second
    assert core.inject(Fault(2.5, 0, "crash"), 2.5) is not None and worker.crashed
    assert core.inject(Fault(3.0, 0, "crash"), 3.0) is None
    assert core.inject(Fault(3.0, 5, "crash"), 3.0) is None  # no worker in slot 5


def test_drain_takes_every_queued_task() -> None:
    core, _ = _core(WorkStealing(placement="affinity"), workers=2)
    for task in range(6):
        core.submit(task, 0, task % 2, 0.0)
    assert sorted(core.drain(0.0)) == list(range(6))
    assert core.queued() == 0 and core.has_room(1)
