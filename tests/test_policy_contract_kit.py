"""pool.testing.check_policy: every built-in passes; broken policies are caught."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from pool import (
    FIFO,
    Autoscaling,
    JoinShortestQueue,
    Policy,
    PowerOfD,
    Priority,
    WorkStealing,
)
from pool.testing import check_policy

BUILT_INS: dict[str, Callable[[], Policy]] = {
    "fifo": FIFO,
    "priority": Priority,
    "priority aged": lambda: Priority(aging=0.5),
    "work-stealing": WorkStealing,
    "work-stealing affinity half": lambda: WorkStealing("affinity", "longest", "half"),
    "autoscaling": lambda: Autoscaling(WorkStealing(), min_workers=1, max_workers=4),
    "jsq": JoinShortestQueue,
    "power-of-d": lambda: PowerOfD(3),
}


@pytest.mark.parametrize("name", list(BUILT_INS))
def test_built_ins_keep_the_contract(name: str) -> None:
    check_policy(BUILT_INS[name], max_examples=150)


class OverCounting(FIFO):
    """Says one task more waits than does."""

    def queued(self) -> int:
        return len(self._queue) + 1 if self._queue else 0


class Twice(FIFO):
    """Hands the same task out twice."""

    def next_task(self, worker: int, now: float) -> int | None:
        return self._queue[0] if self._queue else None


class Unseeded(FIFO):
    """Picks with global randomness: not the same decisions on the same seed."""

    def next_task(self, worker: int, now: float) -> int | None:
        import random

        if not self._queue:
            return None
        index = random.randrange(len(self._queue))
        task = self._queue[index]
        del self._queue[index]
        return task


@pytest.mark.parametrize(
    ("broken", "message"),
    [(OverCounting, "queued"), (Twice, "twice|not waiting"), (Unseeded, "same seed")],
)
def test_broken_policies_are_caught(broken: Callable[[], Policy], message: str) -> None:
    with pytest.raises(AssertionError, match=message):
        check_policy(broken, max_examples=100)
