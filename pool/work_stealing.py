"""Work stealing: per-worker queues, and idle workers that take from the busy ones.

A steal costs the same however many workers the pool has: the slots whose queue holds
tasks are kept sorted as queues fill and empty, so a random victim is one draw and one
binary search, not a scan of every slot (the longest queue is found among the loaded
slots only).
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections import deque
from collections.abc import Iterable
from typing import Literal

import numpy as np

from pool import _validate
from pool.draws import IndexDraws
from pool.policies import Policy, _choice

Placement = Literal["round-robin", "affinity"]
Victim = Literal["random", "longest"]
Amount = Literal["none", "one", "half"]


class WorkStealing(Policy):
    """Per-worker queues; an idle worker runs its own queue first, then steals.

    ``placement``: "round-robin" over serving slots, or "affinity" (a task goes to the
    slot it prefers when that slot serves, else round-robin). ``victim``: "random" among
    workers with queued tasks, or the "longest" queue. ``amount``: steal "one" task, "half"
    the victim's queue (rounded up), or "none" (no stealing, a baseline). A thief takes the
    victim's oldest tasks, which have waited longest. ``steal_latency`` (seconds) is the
    time a steal costs the thief before it can run what it took. Stolen tasks belong to
    the thief alone until it takes them: no other thief can take them on the way, so a
    lone task cannot bounce between idle thieves for ever.
    """

    def __init__(
        self,
        placement: Placement = "round-robin",
        victim: Victim = "random",
        amount: Amount = "one",
        steal_latency: float = 0.0,
    ) -> None:
        self.placement = _choice("placement", placement, ("round-robin", "affinity"))
        self._by_affinity = self.placement == "affinity"
        self.victim = _choice("victim", victim, ("random", "longest"))
        self._longest = self.victim == "longest"
        self.amount = _choice("amount", amount, ("none", "one", "half"))
        self._steals, self._one = self.amount != "none", self.amount == "one"
        self.steal_latency = _validate.non_negative("steal_latency", steal_latency)
        self._queues: dict[int, deque[int]] = {}
        #: Tasks a slot stole and has not taken yet: it runs them first; nobody steals them.
        self._stolen: dict[int, deque[int]] = {}
        self._slots: list[int] = []
        self._next_slot = 0
        self._count = 0
        self._draws = IndexDraws(np.random.default_rng(0))
        # Tasks submitted while no slot serves (all workers dead at once) wait here.
        self._homeless: deque[int] = deque()
        #: Slots whose own queue holds tasks, sorted: the candidates of a steal.
        self._loaded: list[int] = []

    def reset(self, workers: Iterable[int], rng: np.random.Generator) -> None:
        self._queues = {slot: deque() for slot in workers}
        self._stolen = {slot: deque() for slot in self._queues}
        self._slots = sorted(self._queues)
        self._next_slot, self._count, self._draws = 0, 0, IndexDraws(rng)
        self._homeless = deque()
        self._loaded = []

    def add_worker(self, worker: int) -> None:
        if worker not in self._queues:
            self._queues[worker] = self._homeless
            self._stolen[worker] = deque()
            if self._homeless:
                insort(self._loaded, worker)
            self._homeless = deque()
            self._slots = sorted(self._queues)

    def remove_worker(self, worker: int) -> list[int]:
        queue = self._queues.pop(worker, None)
        if queue is None:
            return []
        tasks = [*self._stolen.pop(worker), *queue]
        if queue:
            self._unload(worker)
        self._slots = sorted(self._queues)
        self._count -= len(tasks)
        return tasks

    def submit(self, task: int, priority: int, affinity: int, now: float) -> int | None:
        self._count += 1
        if not self._slots:
            self._homeless.append(task)
            return None
        queues = self._queues
        if self._by_affinity and affinity in queues:
            slot = affinity
        else:
            slots = self._slots
            slot = slots[self._next_slot % len(slots)]
            self._next_slot += 1
        queue = queues[slot]
        if not queue:
            insort(self._loaded, slot)
        queue.append(task)
        return slot

    def next_task(self, worker: int, now: float) -> int | None:
        stolen = self._stolen.get(worker)
        if stolen:
            self._count -= 1
            return stolen.popleft()
        queue = self._queues.get(worker)
        if not queue:
            return None
        self._count -= 1
        task = queue.popleft()
        if not queue:  # _unload, inline: this runs for most tasks
            loaded = self._loaded
            del loaded[bisect_left(loaded, worker)]
        return task

    def queued(self) -> int:
        return self._count

    def queued_for(self, worker: int) -> int:
        """Tasks waiting for ``worker``: its own queue and what it stole."""
        return len(self._queues.get(worker, ())) + len(self._stolen.get(worker, ()))

    @property
    def can_steal(self) -> bool:
        return self.amount != "none"

    def steal(self, thief: int, now: float) -> tuple[int, list[int]] | None:
        if not self._steals or thief not in self._queues:
            return None
        loaded = self._loaded
        at = bisect_left(loaded, thief)
        own = at < len(loaded) and loaded[at] == thief  # the thief's own queue is no victim
        count = len(loaded) - own
        if not count:
            return None
        if self._longest:
            queues = self._queues
            victim = max((s for s in loaded if s != thief), key=lambda slot: len(queues[slot]))
        else:
            pick = self._draws.below(count)
            victim = loaded[pick + 1 if own and pick >= at else pick]
        source = self._queues[victim]
        if self._one:
            stolen = [source.popleft()]
        else:
            stolen = [source.popleft() for _ in range((len(source) + 1) // 2)]
        if not source:
            del loaded[bisect_left(loaded, victim)]  # _unload, inline
        self._stolen[thief].extend(stolen)
        return victim, stolen

    def _unload(self, slot: int) -> None:
        """``slot``'s queue ran empty: it is no longer a victim."""
        loaded = self._loaded
        del loaded[bisect_left(loaded, slot)]

    def describe(self) -> dict[str, object]:
        return {
            "policy": self.name,
            "placement": self.placement,
            "victim": self.victim,
            "amount": self.amount,
            "steal_latency": self.steal_latency,
        }

    @property
    def name(self) -> str:
        return "work-stealing"
