"""Per-task costs of a real pool that a model must include to predict it.

The simulator adds them to every task's service; :func:`real.calibrate` measures them
on this machine. All values are seconds.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from pool import _validate


@dataclass(frozen=True)
class Overhead:
    """Time a real pool spends beyond a task's own service, in seconds.

    ``dispatch``: per task, from the policy handing it out to the end of its bookkeeping.
    ``sleep_overshoot``: how much longer than asked a sleep lasts (added to the I/O part).
    ``thread_start``: time to start a worker thread (added to restarts and scale-ups).
    """

    dispatch: float = 0.0
    sleep_overshoot: float = 0.0
    thread_start: float = 0.0

    def __post_init__(self) -> None:
        _validate.non_negative("dispatch", self.dispatch)
        _validate.non_negative("sleep_overshoot", self.sleep_overshoot)
        _validate.non_negative("thread_start", self.thread_start)

    def as_dict(self) -> dict[str, float]:
        """The three figures by name, for metadata."""
        return asdict(self)
