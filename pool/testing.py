"""A contract kit for policies: run it on your own before you register it.

``check_policy(factory)`` drives fresh policies from ``factory`` through sequences of
pool events drawn by hypothesis (submits, free workers asking for tasks, steals, slots
dying, restarting and scaling, ticks) as both pools make them, and checks the contract
of :class:`pool.Policy`: no task lost or handed out twice, ``queued()`` exact, tasks
submitted while no slot serves handed out once one does, a dead slot's tasks returned,
``add_worker`` idempotent, a steal's tasks run next by the thief, every queued task
reachable at the end, and the same decisions on the same seed (both pools then make the
same choices). A failure raises AssertionError with the shortest sequence that shows it.
Needs hypothesis (``pip install hypothesis``; the ``dev`` extra has it).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from pool.policies import Policy

SLOTS = 5
Operation = tuple[str, int, int]


def check_policy(factory: Callable[[], Policy], *, max_examples: int = 300) -> None:
    """Check the policies ``factory`` makes against the contract; AssertionError if not."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    kinds = ["submit", "submit", "submit", "next", "next", "steal", "add", "remove", "tick"]
    operation = st.tuples(
        st.sampled_from(kinds), st.integers(0, SLOTS - 1), st.integers(-1, SLOTS - 1)
    )

    @settings(max_examples=max_examples, deadline=None, derandomize=True, database=None)
    @given(st.lists(operation, max_size=120), st.integers(0, 2**32 - 1))
    def check(operations: list[Operation], seed: int) -> None:
        first = exercise(factory, operations, seed)
        assert exercise(factory, operations, seed) == first, "different decisions, same seed"

    check()


def exercise(
    factory: Callable[[], Policy], operations: Sequence[Operation], seed: int
) -> list[Any]:
    """Apply ``operations`` to a fresh policy as a pool would, checking the contract after
    each; return every answer the policy gave (to compare two runs)."""
    policy = factory()
    assert isinstance(policy, Policy), f"factory made {policy!r}, not a pool.Policy"
    state = _Pool(policy, seed)
    for kind, slot, extra in operations:
        state.apply(kind, slot, extra)
        assert policy.queued() == len(state.queued), (
            f"queued() says {policy.queued()}, {len(state.queued)} tasks wait after {kind}"
        )
    state.drain()
    return state.answers


class _Pool:
    """What a pool knows: which slots serve, which tasks wait, which ran."""

    def __init__(self, policy: Policy, seed: int) -> None:
        self.policy = policy
        self.serving = set(range(SLOTS - 2))
        policy.reset(sorted(self.serving), np.random.default_rng(seed))
        self.queued: set[int] = set()
        self.ran: set[int] = set()
        self.next_id = 0
        self.answers: list[Any] = []

    def apply(self, kind: str, slot: int, extra: int) -> None:
        if kind == "submit":
            self.submit(self.next_id, priority=abs(extra) % 3, affinity=extra)
            self.next_id += 1
        elif kind == "next" and slot in self.serving:
            self.take(slot)
        elif kind == "steal" and slot in self.serving and self.policy.can_steal:
            self.steal(slot)
        elif kind == "add":
            self.serving.add(slot)
            self.policy.add_worker(slot)
            self.policy.add_worker(slot)  # idempotent, as the contract says
        elif kind == "remove" and slot in self.serving:
            self.remove(slot)
        elif kind == "tick" and self.policy.decision_interval is not None:
            wanted = self.policy.desired_workers(1.0, len(self.serving), 0, len(self.queued))
            self.answers.append(("tick", wanted))
            limit = self.policy.max_workers
            assert limit is None or wanted <= limit, f"asked for {wanted} > max_workers {limit}"

    def submit(self, task: int, priority: int, affinity: int) -> None:
        target = self.policy.submit(task, priority, affinity, 0.0)
        assert target is None or target in self.serving, f"task {task} placed at {target}"
        self.queued.add(task)
        self.answers.append(("submit", task, target))

    def take(self, slot: int) -> int | None:
        task = self.policy.next_task(slot, 0.0)
        self.answers.append(("next", slot, task))
        if task is not None:
            assert task in self.queued, f"task {task} handed out but not waiting"
            self.queued.remove(task)
            assert task not in self.ran, f"task {task} handed out twice"
            self.ran.add(task)
        return task

    def steal(self, thief: int) -> None:
        taken = self.policy.steal(thief, 0.0)
        self.answers.append(("steal", thief, taken))
        if taken is None:
            return
        victim, tasks = taken
        assert victim != thief and tasks, f"steal by {thief} returned {taken}"
        assert set(tasks) <= self.queued, f"stolen tasks {tasks} were not waiting"
        task = self.take(thief)
        assert task in tasks, f"thief {thief} ran {task}, not what it stole ({tasks})"

    def remove(self, slot: int) -> None:
        self.serving.discard(slot)
        orphans = self.policy.remove_worker(slot)
        self.answers.append(("remove", slot, list(orphans)))
        assert set(orphans) <= self.queued, f"slot {slot} returned tasks not waiting: {orphans}"
        self.queued -= set(orphans)
        for task in orphans:  # the pool submits them again
            self.submit(task, priority=0, affinity=-1)

    def drain(self) -> None:
        """Bring every slot back and run everything: no task may stay unreachable."""
        for slot in range(SLOTS):
            self.serving.add(slot)
            self.policy.add_worker(slot)
        while self.queued:
            progress = False
            for slot in range(SLOTS):
                while self.take(slot) is not None:
                    progress = True
                if self.policy.can_steal and self.queued:
                    # Stolen tasks stay waiting until the thief takes them (next round).
                    progress |= self.policy.steal(slot, 0.0) is not None
            assert progress, f"tasks {sorted(self.queued)} wait where no slot can take them"
        assert self.policy.queued() == 0, f"queued() says {self.policy.queued()} after draining"
