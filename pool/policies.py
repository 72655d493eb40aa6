"""Scheduling policies: pure decision logic, driven alike by the simulated and the real pool.

A policy never sleeps, blocks, yields or locks. The pool that drives it tells it what
happened (a task was submitted, a worker slot joined or left) and asks it what to do
(which task this worker runs next, whether an idle worker may steal and from whom, how
many workers there should be). The simulated pool calls it from SimPy processes, the
threaded pool under one lock, so both run the very same scheduling code.

Tasks are integer ids; the pool keeps their data. Worker slots are integers 0..n-1.
A policy object drives one pool run at a time: the pool calls :meth:`Policy.reset` first.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Iterable

import numpy as np

from pool import _validate


class Policy(ABC):
    """What every policy answers. Subclasses keep their queues; the pool keeps the tasks.

    The contract, as both pools honour it (the model's processes and the real pool's
    threads under its lock; a policy is never called from two threads at once):

    * ``reset(workers, rng)`` first, once per run: the slots that serve at the start and
      the run's own random generator (the only randomness a policy may use).
    * ``submit(task, priority, affinity, now)`` for every new task and every retry. It
      may be called while no slot serves (all workers dead or restarting): keep the task
      and hand it out once a slot is added. Return the slot whose own queue holds it (the
      pool wakes that worker if it is idle, or any idle worker if ``can_steal``), or None
      for a shared queue (the pool wakes any idle worker).
    * ``next_task(worker, now)`` only from a free worker: it has finished its last task
      (or has just started, or was woken). Return a task to run now, removed from the
      queue, or None. At shutdown the pool drains the queues through it.
    * ``queued()``: tasks waiting in all queues, stolen ones included; the pools use it to
      wake workers and to bound ``max_pending``; it must be exact.
    * ``add_worker(slot)`` when a slot starts serving (a restart, a scale-up); it must be
      idempotent. ``remove_worker(slot)`` when it stops (dies, retires): return its
      queued tasks; the pool submits them again.
    * ``can_steal`` and ``steal_latency`` (read once per run, after ``reset``) and
      ``steal(thief, now)``: an idle worker with nothing to run, while tasks are queued, asks;
      move tasks to the thief (return the victim and the tasks, which the thief's next
      ``next_task`` calls return) or return None. ``steal_latency`` seconds pass before
      the thief runs them.
    * ``decision_interval`` (None for a fixed pool) and ``desired_workers(now, workers,
      busy, queued)`` at each tick; ``max_workers`` bounds a scaling policy's pool.
    * A policy never sleeps, blocks, locks, raises for a valid call, or calls the pool.

    ``pool.register_policy(name, factory)`` names a policy for every pool, grid and
    command line.
    """

    #: Seconds between autoscaling decisions, or None for a fixed-size pool.
    decision_interval: float | None = None
    #: The most workers a scaling policy may ask for (None: the pool's size is fixed).
    max_workers: int | None = None
    #: Seconds before a worker added by scaling starts to serve.
    startup_delay: float = 0.0
    #: Seconds an idle worker spends taking tasks from a victim's queue.
    steal_latency: float = 0.0

    @abstractmethod
    def reset(self, workers: Iterable[int], rng: np.random.Generator) -> None:
        """Forget all state; the pool starts with worker slots ``workers``."""

    @abstractmethod
    def submit(self, task: int, priority: int, affinity: int, now: float) -> int | None:
        """Queue ``task``; return the slot whose own queue holds it, or None for a shared queue."""

    @abstractmethod
    def next_task(self, worker: int, now: float) -> int | None:
        """The task ``worker`` runs next, removed from the queue, or None if it has none."""

    @abstractmethod
    def queued(self) -> int:
        """Tasks waiting in all queues."""

    def add_worker(self, worker: int) -> None:  # noqa: B027 - most policies need no notice
        """Slot ``worker`` starts serving (at start, after a restart or a scale-up)."""

    def remove_worker(self, worker: int) -> list[int]:
        """Slot ``worker`` stops serving; return its queued tasks for the pool to resubmit."""
        return []

    @property
    def can_steal(self) -> bool:
        """Whether an idle worker may take tasks from another worker's queue."""
        return False

    def steal(self, thief: int, now: float) -> tuple[int, list[int]] | None:
        """Move tasks from a victim's queue to ``thief``'s; return (victim, task ids) or None."""
        return None

    def desired_workers(self, now: float, workers: int, busy: int, queued: int) -> int:
        """At a decision tick: how many workers the pool should have (fixed-size: ``workers``)."""
        return workers

    def describe(self) -> dict[str, object]:
        """The policy's parameters, for result metadata."""
        return {"policy": self.name}

    @property
    def name(self) -> str:
        """Short name, as accepted by :func:`resolve`."""
        return type(self).__name__.lower()


class FIFO(Policy):
    """One shared queue, first in first out."""

    def __init__(self) -> None:
        self._queue: deque[int] = deque()

    def reset(self, workers: Iterable[int], rng: np.random.Generator) -> None:
        self._queue = deque()

    def submit(self, task: int, priority: int, affinity: int, now: float) -> int | None:
        self._queue.append(task)
        return None

    def next_task(self, worker: int, now: float) -> int | None:
        return self._queue.popleft() if self._queue else None

    def queued(self) -> int:
        return len(self._queue)

    @property
    def name(self) -> str:
        return "fifo"


class Priority(Policy):
    """Non-preemptive priority: class 0 first, FIFO within a class.

    With ``aging`` (seconds), a waiting task gains one class of urgency per ``aging``
    seconds waited, so low classes cannot starve; the queue heads are compared by
    ``class - wait / aging``, ties going to the more urgent class.
    """

    def __init__(self, aging: float | None = None) -> None:
        self.aging = None if aging is None else _validate.positive("aging", aging)
        self._queues: dict[int, deque[int]] = {}
        self._classes: list[int] = []
        self._enqueued_at: dict[int, float] = {}
        self._count = 0

    def reset(self, workers: Iterable[int], rng: np.random.Generator) -> None:
        self._queues, self._classes, self._enqueued_at, self._count = {}, [], {}, 0

    def submit(self, task: int, priority: int, affinity: int, now: float) -> int | None:
        queue = self._queues.get(priority)
        if queue is None:
            queue = self._queues[priority] = deque()
            self._classes = sorted(self._queues)
        queue.append(task)
        if self.aging is not None:
            self._enqueued_at[task] = now
        self._count += 1
        return None

    def next_task(self, worker: int, now: float) -> int | None:
        if not self._count:
            return None
        self._count -= 1
        if self.aging is None:
            queues = self._queues
            for klass in self._classes:
                queue = queues[klass]
                if queue:
                    return queue.popleft()
        queue = self._most_urgent_aged(now)
        task = queue.popleft()
        del self._enqueued_at[task]
        return task

    def _most_urgent_aged(self, now: float) -> deque[int]:
        assert self.aging is not None
        best: deque[int] | None = None
        best_rank = float("inf")
        for klass in self._classes:
            queue = self._queues[klass]
            if queue:
                rank = klass - (now - self._enqueued_at[queue[0]]) / self.aging
                if rank < best_rank:
                    best, best_rank = queue, rank
        assert best is not None
        return best

    def queued(self) -> int:
        return self._count

    def describe(self) -> dict[str, object]:
        return {"policy": self.name, "aging": self.aging}


def _choice(name: str, value: object, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")
    return str(value)


#: The built-in policies' names (:func:`pool.registry.policy_names` adds registered ones).
POLICY_NAMES = ("fifo", "priority", "work-stealing", "autoscaling")


def resolve(policy: str | Policy) -> Policy:
    """A fresh policy object for a name (built-in or registered with
    :func:`pool.register_policy`), or a policy object as it is."""
    from pool.registry import resolve as resolve_registered

    return resolve_registered(policy)
