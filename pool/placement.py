"""Two placement policies written only through the public plug-in path, as examples.

Both keep a queue per worker and place each task when it arrives, counting the task a
worker is serving: a worker that asks for its next task has finished the one before
(both pools call ``next_task`` only from a free worker). Neither steals.

* ``"jsq"``: join the shortest queue: the slot with the fewest tasks, ties at random.
* ``"power-of-d"``: ``PowerOfD(d=2)``, the supermarket model: the least loaded of ``d``
  slots drawn at random. With many servers it comes close to JSQ at a fraction of the
  looking (Mitzenmacher 2001; ``tests/test_placement.py`` checks the limit).

They subclass :class:`pool.Policy` and are named with :func:`pool.register_policy`, as a
user's own policy would be.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

import numpy as np

from pool.policies import Policy
from pool.registry import register_policy


class _PerWorkerQueues(Policy):
    """Queues per slot, a count of the task each slot serves, and the slot choice left open."""

    def __init__(self) -> None:
        self._queues: dict[int, deque[int]] = {}
        self._serving: dict[int, int] = {}
        self._slots: list[int] = []
        self._homeless: deque[int] = deque()  # submitted while no slot serves
        self._count = 0
        self._rng = np.random.default_rng(0)

    def reset(self, workers: Iterable[int], rng: np.random.Generator) -> None:
        self._queues = {slot: deque() for slot in workers}
        self._serving = dict.fromkeys(self._queues, 0)
        self._slots = sorted(self._queues)
        self._homeless, self._count, self._rng = deque(), 0, rng

    def add_worker(self, worker: int) -> None:
        if worker not in self._queues:
            self._queues[worker], self._homeless = self._homeless, deque()
            self._serving[worker] = 0
            self._slots = sorted(self._queues)

    def remove_worker(self, worker: int) -> list[int]:
        queue = self._queues.pop(worker, None)
        if queue is None:
            return []
        del self._serving[worker]
        self._slots = sorted(self._queues)
        self._count -= len(queue)
        return list(queue)

    def submit(self, task: int, priority: int, affinity: int, now: float) -> int | None:
        self._count += 1
        if not self._slots:
            self._homeless.append(task)
            return None
        slot = self._choose()
        self._queues[slot].append(task)
        return slot

    def next_task(self, worker: int, now: float) -> int | None:
        queue = self._queues.get(worker)
        if queue is None:
            return None
        if not queue:
            self._serving[worker] = 0
            return None
        self._serving[worker] = 1
        self._count -= 1
        return queue.popleft()

    def queued(self) -> int:
        return self._count

    def load(self, slot: int) -> int:
        """Tasks at ``slot``: queued there, and the one it serves."""
        return len(self._queues[slot]) + self._serving[slot]

    def _choose(self) -> int:
        raise NotImplementedError


class JoinShortestQueue(_PerWorkerQueues):
    """Each task joins the slot with the fewest tasks (queued and in service), ties at random."""

    def _choose(self) -> int:
        loads = [self.load(slot) for slot in self._slots]
        least = min(loads)
        ties = [slot for slot, load in zip(self._slots, loads, strict=True) if load == least]
        return ties[0] if len(ties) == 1 else ties[int(self._rng.integers(len(ties)))]

    @property
    def name(self) -> str:
        return "jsq"


class PowerOfD(_PerWorkerQueues):
    """Each task joins the least loaded of ``d`` distinct slots drawn at random (ties: the
    first drawn); with ``d`` at least the number of slots, it is JSQ without random ties."""

    def __init__(self, d: int = 2) -> None:
        super().__init__()
        if type(d) is not int or d < 1:
            raise ValueError(f"d must be an integer >= 1, got {d!r}")
        self.d = d

    def _choose(self) -> int:
        slots, rng = self._slots, self._rng
        count = len(slots)
        if self.d >= count:
            drawn = slots
        else:  # Floyd's sampling: d distinct indices with d draws
            picked: list[int] = []
            for top in range(count - self.d, count):
                index = int(rng.integers(top + 1))
                picked.append(top if index in picked else index)
            drawn = [slots[index] for index in picked]
        return min(drawn, key=self.load)

    def describe(self) -> dict[str, object]:
        return {"policy": self.name, "d": self.d}

    @property
    def name(self) -> str:
        return "power-of-d"


register_policy("jsq", JoinShortestQueue)
register_policy("power-of-d", PowerOfD)
