"""The state of one simulated worker, as the simulated pool tracks it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class Crashed(Exception):  # noqa: N818 - a worker event, not an error of the caller
    """Raised inside a worker process when it crashes: the process ends without reporting."""


@dataclass(eq=False, slots=True)
class SimWorker:
    """One worker occupying slot ``slot`` since ``serving_since`` (simulated seconds).

    ``task`` is the attempt the pool believes it runs (-1 when idle). ``silent_since`` is
    when it stopped heartbeating (a crash or a hang), None while healthy. A worker the
    pool ``declared_dead`` may still be running (a hang, a timeout): its late result is
    discarded.
    """

    slot: int
    serving_since: float
    task: int = -1
    attempt_end: float = 0.0
    process: Any = None
    wake: Any = None
    silent_since: float | None = None
    frozen_until: float = float("-inf")
    crashed: bool = False
    declared_dead: bool = False
    retiring: bool = False

    @property
    def busy(self) -> bool:
        """Whether the pool counts it as running a task."""
        return self.task >= 0
