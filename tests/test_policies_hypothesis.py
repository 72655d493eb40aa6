"""Property tests of the policy objects, driven directly (no simulator) by hypothesis.

A state machine submits tasks, asks workers for their next task, lets them steal, and
adds and removes worker slots (resubmitting what a removed slot hands back), checking
after every step that no task is handed out twice, none is lost, and ``queued()`` is
the true count, plus each policy's own ordering rule.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from pool import FIFO, Autoscaling, Policy, Priority, WorkStealing
from pool.autoscaling import plan_scaling
from pool.policies import resolve

MAX_SLOTS = 5

POLICY_FACTORIES: dict[str, Callable[[], Policy]] = {
    "fifo": FIFO,
    "priority": Priority,
    "priority-aging": lambda: Priority(aging=0.5),
    "ws-rr-random-one": lambda: WorkStealing("round-robin", "random", "one"),
    "ws-rr-longest-half": lambda: WorkStealing("round-robin", "longest", "half"),
    "ws-affinity-random-half": lambda: WorkStealing("affinity", "random", "half"),
    "ws-affinity-longest-one": lambda: WorkStealing("affinity", "longest", "one"),
    "ws-affinity-none": lambda: WorkStealing("affinity", "random", "none"),
    "auto-fifo": lambda: Autoscaling(inner=FIFO()),
    "auto-priority": lambda: Autoscaling(inner=Priority()),
    "auto-ws": lambda: Autoscaling(inner=WorkStealing("affinity", "longest", "half")),
}


def inner_of(policy: Policy) -> Policy:
    return policy.inner if isinstance(policy, Autoscaling) else policy


class PolicyMachine(RuleBasedStateMachine):
    """Drives one policy object; the model tracks where every task is."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name
        self.policy: Policy = POLICY_FACTORIES[name]()
        self.inner = inner_of(self.policy)
        self.now = 0.0
        self.next_id = 0
        self.priority: dict[int, int] = {}
        self.submitted: set[int] = set()
        self.waiting: dict[int, float] = {}  # task -> time it was (re)submitted
        self.order: list[int] = []  # waiting tasks in (re)submission order
        self.handed_out: list[int] = []
        self.slots: set[int] = set()
        # Work stealing: which slot's queue holds each waiting task (None: no slot yet).
        self.placed: dict[int, int | None] = {}
        # Work stealing: stolen tasks their thief has not taken yet (nobody may steal them).
        self.reserved: set[int] = set()

    # -- set-up ---------------------------------------------------------------------

    @initialize(workers=st.integers(1, 3), seed=st.integers(0, 2**16))
    def setup(self, workers: int, seed: int) -> None:
        self.slots = set(range(workers))
        self.policy.reset(range(workers), np.random.default_rng(seed))

    @property
    def stealing(self) -> bool:
        return isinstance(self.inner, WorkStealing)

    # -- helpers ----------------------------------------------------------------------

    def _enqueue(self, task: int, affinity: int) -> None:
        assert task not in self.waiting, f"task {task} queued twice"
        target = self.policy.submit(task, self.priority[task], affinity, self.now)
        self.waiting[task] = self.now
        self.order.append(task)
        if self.stealing:
            assert isinstance(self.inner, WorkStealing)
            if self.slots:
                assert target in self.slots, f"placed on non-serving slot {target}"
                if self.inner.placement == "affinity" and affinity in self.slots:
                    assert target == affinity
            else:
                assert target is None
            self.placed[task] = target
        else:
            assert target is None

    def _take(self, task: int, worker: int) -> None:
        assert task in self.waiting, f"task {task} handed out but not waiting"
        del self.waiting[task]
        self.order.remove(task)
        self.reserved.discard(task)
        self.handed_out.append(task)
        if self.stealing:
            assert self.placed.pop(task) == worker, "worker ran a task from another queue"

    def _check_choice(self, task: int, worker: int) -> None:
        """The policy's own rule for which waiting task goes first."""
        inner = self.inner
        if isinstance(inner, FIFO):
            assert task == self.order[0]
        elif isinstance(inner, Priority):
            same_class = [t for t in self.order if self.priority[t] == self.priority[task]]
            assert task == same_class[0], "not FIFO within its class"
            if inner.aging is None:
                urgent = min(self.priority[t] for t in self.waiting)
                assert self.priority[task] == urgent, "a more urgent task was waiting"
            else:
                heads: dict[int, int] = {}
                for t in self.order:
                    heads.setdefault(self.priority[t], t)
                rank = {
                    klass: klass - (self.now - self.waiting[head]) / inner.aging
                    for klass, head in heads.items()
                }
                # The lowest rank wins, a tie going to the more urgent class (the model
                # computes the rank with the policy's own arithmetic, so ties are exact).
                best = min(rank, key=lambda klass: (rank[klass], klass))
                assert self.priority[task] == best, rank
        elif isinstance(inner, WorkStealing):
            own = [t for t in self.order if self.placed[t] == worker]
            assert task == own[0], "not the head of the worker's own queue"

    # -- rules ------------------------------------------------------------------------

    @rule(
        priority=st.integers(0, 3),
        affinity=st.integers(-1, MAX_SLOTS),
        dt=st.sampled_from([0.0, 0.0, 0.1, 0.37, 1.0]),
    )
    def submit(self, priority: int, affinity: int, dt: float) -> None:
        self.now += dt
        task = self.next_id
        self.next_id += 1
        self.priority[task] = priority
        self.submitted.add(task)
        self._enqueue(task, affinity)

    @rule(
        batch=st.lists(st.tuples(st.integers(0, 3), st.integers(-1, MAX_SLOTS)), max_size=8),
        dt=st.sampled_from([0.0, 0.2]),
    )
    def submit_batch(self, batch: list[tuple[int, int]], dt: float) -> None:
        for priority, affinity in batch:
            self.submit(priority, affinity, dt)

    @precondition(lambda self: bool(self.slots))
    @rule(data=st.data(), dt=st.sampled_from([0.0, 0.05, 0.5]))
    def next_task(self, data: st.DataObject, dt: float) -> None:
        self.now += dt
        worker = data.draw(st.sampled_from(sorted(self.slots)))
        expected_empty = (
            not any(self.placed[t] == worker for t in self.waiting)
            if self.stealing
            else not self.waiting
        )
        task = self.policy.next_task(worker, self.now)
        if task is None:
            assert expected_empty, "a worker got nothing while its tasks waited"
            return
        assert not expected_empty
        self._check_choice(task, worker)
        self._take(task, worker)

    @precondition(lambda self: bool(self.slots))
    @rule(data=st.data())
    def steal(self, data: st.DataObject) -> None:
        thief = data.draw(st.sampled_from(sorted(self.slots)))
        taken = self.policy.steal(thief, self.now)
        if not self.stealing or self.inner.amount == "none":  # type: ignore[attr-defined]
            assert taken is None
            assert not self.policy.can_steal
            return
        assert self.policy.can_steal
        others = {
            slot: [t for t in self.order if self.placed[t] == slot and t not in self.reserved]
            for slot in self.slots
            if slot != thief
        }
        others = {slot: tasks for slot, tasks in others.items() if tasks}
        if taken is None:
            assert not others, "a steal found nothing although other queues held tasks"
            return
        victim, tasks = taken
        assert victim != thief
        assert victim in others
        queue = others[victim]
        inner = self.inner
        assert isinstance(inner, WorkStealing)
        expected = 1 if inner.amount == "one" else math.ceil(len(queue) / 2)
        assert tasks == queue[:expected], "a thief takes the victim's oldest tasks"
        if inner.victim == "longest":
            assert len(queue) == max(len(q) for q in others.values())
        # The stolen tasks go to the head of the thief's queue, oldest first, behind what
        # it stole before and has not taken: in the model's global order they move just
        # before the thief's first own task. Nobody else can steal them now.
        own = [t for t in self.order if self.placed[t] == thief and t not in self.reserved]
        for task in tasks:
            self.placed[task] = thief
            self.order.remove(task)
        first_own = self.order.index(own[0]) if own else len(self.order)
        self.order[first_own:first_own] = tasks
        self.reserved.update(tasks)

    @precondition(lambda self: len(self.slots) < MAX_SLOTS + 1)
    @rule(data=st.data())
    def add_worker(self, data: st.DataObject) -> None:
        free = sorted(set(range(MAX_SLOTS + 1)) - self.slots)
        slot = data.draw(st.sampled_from(free))
        self.policy.add_worker(slot)
        if self.stealing and not self.slots:
            # Tasks submitted while no slot served go to the first slot that joins.
            for task in self.waiting:
                if self.placed[task] is None:
                    self.placed[task] = slot
        self.slots.add(slot)

    @precondition(lambda self: bool(self.slots))
    @rule(data=st.data(), affinities=st.lists(st.integers(-1, MAX_SLOTS), max_size=20))
    def remove_worker(self, data: st.DataObject, affinities: list[int]) -> None:
        slot = data.draw(st.sampled_from(sorted(self.slots)))
        returned = self.policy.remove_worker(slot)
        self.slots.discard(slot)
        if self.stealing:
            expected = [t for t in self.order if self.placed[t] == slot]
            assert returned == expected, "remove_worker must hand back its queue in order"
        else:
            assert returned == []
        assert len(set(returned)) == len(returned)
        for task in returned:
            del self.waiting[task]
            self.order.remove(task)
            self.reserved.discard(task)
            self.placed.pop(task, None)
        # The pool resubmits them.
        for index, task in enumerate(returned):
            affinity = affinities[index] if index < len(affinities) else -1
            self._enqueue(task, affinity)

    # -- invariants -------------------------------------------------------------------

    @invariant()
    def counts_agree(self) -> None:
        assert self.policy.queued() == len(self.waiting)
        handed = set(self.handed_out)
        assert len(handed) == len(self.handed_out), "a task was handed out twice"
        assert handed.isdisjoint(self.waiting)
        assert handed | set(self.waiting) == self.submitted, "a task was lost"
        if self.stealing:
            inner = self.inner
            assert isinstance(inner, WorkStealing)
            for slot in self.slots:
                expected = sum(1 for t in self.waiting if self.placed[t] == slot)
                assert inner.queued_for(slot) == expected

    def teardown(self) -> None:
        if not self.slots:
            self.policy.add_worker(0)
            if self.stealing:
                for task in self.waiting:
                    self.placed[task] = 0
            self.slots.add(0)
        drained: list[int] = []
        for worker in sorted(self.slots):
            while (task := self.policy.next_task(worker, self.now)) is not None:
                drained.append(task)
                assert len(drained) <= len(self.submitted), "next_task never runs dry"
        assert self.policy.queued() == 0
        everything = self.handed_out + drained
        assert len(everything) == len(set(everything)), "a task was handed out twice"
        assert set(everything) == self.submitted, "a task was lost"


# Deterministic: a fixed derandomised search and no example database; no "explain"
# phase, which costs seconds on a failure and adds little to a shrunk example.
SETTINGS = settings(
    deadline=None,
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.generate, Phase.shrink],
)


@pytest.mark.parametrize("name", sorted(POLICY_FACTORIES))
def test_policy_state_machine(name: str) -> None:
    run_state_machine_as_test(
        lambda: PolicyMachine(name),
        settings=settings(
            SETTINGS,
            max_examples=25,
            stateful_step_count=30,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )


# ----------------------------------------------------------------------------- Priority


@given(
    ops=st.lists(
        st.one_of(st.tuples(st.just("submit"), st.integers(0, 4)), st.just(("next", 0))),
        max_size=80,
    )
)
@settings(SETTINGS, max_examples=60)
def test_priority_never_serves_a_less_urgent_task_first(ops: list[tuple[str, int]]) -> None:
    policy = Priority()
    policy.reset([0], np.random.default_rng(0))
    waiting: list[tuple[int, int]] = []  # (class, task)
    for step, (op, klass) in enumerate(ops):
        if op == "submit":
            policy.submit(step, klass, -1, float(step))
            waiting.append((klass, step))
            continue
        task = policy.next_task(0, float(step))
        if not waiting:
            assert task is None
            continue
        best = min(waiting)  # most urgent class, then earliest task id
        assert task == best[1]
        waiting.remove(best)
    assert policy.queued() == len(waiting)


@given(
    arrivals=st.lists(
        st.tuples(st.integers(0, 3), st.floats(0.0, 2.0, allow_nan=False)), min_size=1, max_size=30
    ),
    aging=st.floats(0.05, 5.0, allow_nan=False),
)
@settings(SETTINGS, max_examples=60)
def test_priority_aging_never_starves_a_class(
    arrivals: list[tuple[int, float]], aging: float
) -> None:
    """With aging, a class-k task that waited over k * aging goes before a new class-0 task."""
    policy = Priority(aging=aging)
    policy.reset([0], np.random.default_rng(0))
    now = 0.0
    for task, (klass, gap) in enumerate(arrivals):
        now += gap
        policy.submit(task, klass, -1, now)
    later = now + max(klass for klass, _ in arrivals) * aging + 1e-3
    newcomer = len(arrivals)
    policy.submit(newcomer, 0, -1, later)
    served = [policy.next_task(0, later) for _ in range(len(arrivals) + 1)]
    assert served[-1] == newcomer
    assert sorted(t for t in served if t is not None) == list(range(len(arrivals) + 1))
    assert policy.next_task(0, later) is None
    assert policy.queued() == 0


# ----------------------------------------------------------------------------- Autoscaling

autoscalers = st.builds(
    lambda lo, extra, metric, target, cooldown, ticks, tolerance, smoothing: Autoscaling(
        min_workers=lo,
        max_workers=lo + extra,
        metric=metric,
        target=target,
        decision_interval=0.5,
        cooldown=cooldown,
        scale_down_ticks=ticks,
        tolerance=tolerance,
        smoothing=smoothing,
    ),
    st.integers(1, 4),
    st.integers(0, 6),
    st.sampled_from(["utilization", "queue"]),
    st.sampled_from([0.3, 0.7, 1.0, 1.5, 3.0]),
    st.sampled_from([0.0, 0.5, 1.0, 2.0]),
    st.integers(1, 4),
    st.sampled_from([0.0, 0.1, 0.3]),
    st.sampled_from([1.0, 0.5, 0.2]),
)


@given(policy=autoscalers, data=st.data())
@settings(SETTINGS, max_examples=60)
def test_desired_workers_stays_within_bounds(policy: Autoscaling, data: st.DataObject) -> None:
    policy.reset(range(policy.min_workers), np.random.default_rng(0))
    workers = policy.min_workers
    for tick in range(1, 25):
        busy = data.draw(st.integers(0, workers))
        queued = data.draw(st.integers(0, 50))
        desired = policy.desired_workers(tick * 0.5, workers, busy, queued)
        assert policy.min_workers <= desired <= policy.max_workers
        workers = desired


@given(policy=autoscalers, data=st.data())
@settings(SETTINGS, max_examples=60)
def test_desired_workers_within_bounds_for_any_reported_size(
    policy: Autoscaling, data: st.DataObject
) -> None:
    """Even a pool started outside [min, max] is told a size within the bounds."""
    policy.reset(range(1), np.random.default_rng(0))
    for tick in range(1, 10):
        workers = data.draw(st.integers(policy.min_workers, policy.max_workers + 5))
        busy = data.draw(st.integers(0, workers))
        queued = data.draw(st.integers(0, 50))
        desired = policy.desired_workers(tick * 0.5, workers, busy, queued)
        assert policy.min_workers <= desired <= policy.max_workers, (workers, busy, queued)


def run_ticks(
    policy: Autoscaling, loads: list[tuple[int, int]], workers: int
) -> list[tuple[int, int, int]]:
    """Apply desired_workers tick by tick; return the (tick, old, new) scale events."""
    policy.reset(range(workers), np.random.default_rng(0))
    events = []
    for tick, (busy, queued) in enumerate(loads, start=1):
        desired = policy.desired_workers(tick * policy.decision_interval, workers, busy, queued)
        if desired != workers:
            events.append((tick, workers, desired))
            workers = desired
    return events


@given(policy=autoscalers, data=st.data())
@settings(SETTINGS, max_examples=60)
def test_scale_events_respect_cooldown_and_hysteresis(
    policy: Autoscaling, data: st.DataObject
) -> None:
    loads = data.draw(
        st.lists(st.tuples(st.integers(0, 12), st.integers(0, 12)), min_size=1, max_size=60)
    )
    workers = policy.min_workers
    events = run_ticks(policy, loads, workers)
    previous = 0  # tick of the last event (0: the start)
    last_time = -math.inf
    for tick, old, new in events:
        time = tick * policy.decision_interval
        assert time - last_time >= policy.cooldown - 1e-9, "scaled within the cooldown"
        if new < old:
            assert tick - previous >= policy.scale_down_ticks, "scaled down without hysteresis"
        previous, last_time = tick, time
    # Hence a bound on the number of events whatever the load: each scale-down needs
    # scale_down_ticks ticks, and between two scale-downs the size can only grow.
    downs = sum(1 for _, old, new in events if new < old)
    assert downs <= len(loads) // policy.scale_down_ticks
    span = policy.max_workers - policy.min_workers
    assert len(events) <= downs + (downs + 1) * span


@pytest.mark.parametrize("ticks", [50, 500])
@pytest.mark.parametrize("target", [0.5, 0.7, 1.0])
def test_load_hovering_at_a_threshold_does_not_flap(ticks: int, target: float) -> None:
    policy = Autoscaling(
        min_workers=1,
        max_workers=10,
        metric="utilization",
        target=target,
        decision_interval=0.5,
        cooldown=1.0,
        scale_down_ticks=3,
        tolerance=0.1,
    )
    # The busy count alternates on either side of the level where the wanted size steps.
    rng = np.random.default_rng(1)
    for level in range(1, 6):
        loads = [(level + (tick % 2), 0) for tick in range(ticks)]
        events = run_ticks(policy, loads, workers=level)
        assert len(events) <= 2, events
        # Jitter of one worker at random: a bounded number of events, not one per tick.
        noisy = [(level + int(rng.integers(0, 2)), 0) for _ in range(ticks)]
        events = run_ticks(policy, noisy, workers=level)
        assert len(events) <= ticks * policy.decision_interval / policy.cooldown + 1


@given(
    slots=st.sets(st.integers(0, 12), max_size=10),
    desired=st.integers(0, 15),
)
@SETTINGS
def test_plan_scaling(slots: set[int], desired: int) -> None:
    added, retired = plan_scaling(slots, desired)
    assert not (added and retired)
    assert len(set(added)) == len(added)
    assert len(set(retired)) == len(retired)
    assert set(added).isdisjoint(slots)
    assert set(retired) <= slots
    after = (set(slots) | set(added)) - set(retired)
    assert len(after) == desired
    # New workers take the lowest free slots, in order; the highest slots retire first.
    free = [s for s in range(max([*slots, 0]) + desired + 1) if s not in slots]
    assert added == free[: len(added)]
    assert retired == sorted(slots, reverse=True)[: len(retired)]
    if desired == len(slots):
        assert added == retired == []


@given(slots=st.sets(st.integers(0, 12), max_size=10), desired=st.integers(1, 15))
@SETTINGS
def test_plan_scaling_is_idempotent(slots: set[int], desired: int) -> None:
    added, retired = plan_scaling(slots, desired)
    after = (set(slots) | set(added)) - set(retired)
    assert plan_scaling(after, desired) == ([], [])


# ----------------------------------------------------------------------------- resolve


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("fifo", FIFO),
        ("priority", Priority),
        ("work-stealing", WorkStealing),
        ("autoscaling", Autoscaling),
    ],
)
def test_resolve_names(name: str, kind: type) -> None:
    policy = resolve(name)
    assert isinstance(policy, kind)
    assert policy.name == name
    assert resolve(policy) is policy
    assert policy.describe()["policy"] == name


@given(st.data())
@settings(SETTINGS, max_examples=50)
def test_work_stealing_round_robin_cycles_over_serving_slots(data: st.DataObject) -> None:
    slots = sorted(data.draw(st.sets(st.integers(0, 8), min_size=1, max_size=6)))
    policy = WorkStealing("round-robin")
    policy.reset(slots, np.random.default_rng(0))
    placed = [policy.submit(task, 0, -1, 0.0) for task in range(3 * len(slots))]
    assert placed == slots * 3
