"""RunResult: one schema for what a simulated or a real run did, and comparing two of them.

``tasks`` has one row per task: task_id, priority, arrival, start, end, wait, latency
(seconds), worker, attempts, status ('done' | 'failed' | 'lost') and stolen. ``start``
and ``worker`` are those of the final attempt, so ``wait`` includes earlier attempts
and backoff; a lost task's ``end`` is the instant it was lost with a process that kept
no journal (a pool restart in the model), else NaN. ``events`` lists crashes, hangs,
detections, restarts, retries, steals and scale events; ``timeline`` is the step
function (time, workers, busy, queued) as the pool saw it, with a row at every change.
"""

from __future__ import annotations

import itertools
import math
from functools import cached_property
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

STATUS_NAMES = np.array(["lost", "done", "failed"])
FAULT_KINDS = ("crash", "hang")
#: Events after which a run reports its detection and recovery times.
RECOVERED_FROM = (*FAULT_KINDS, "timeout", "pool_crash")


class RunResult:
    """The records of one run; build DataFrames lazily, as a million-task run is large."""

    def __init__(
        self,
        backend: str,
        arrival: npt.NDArray[np.float64],
        priority: npt.NDArray[np.int64],
        ready: npt.NDArray[np.float64],
        start: npt.NDArray[np.float64],
        end: npt.NDArray[np.float64],
        worker: npt.NDArray[np.int64],
        attempts: npt.NDArray[np.int64],
        status: npt.NDArray[np.int8],
        stolen: npt.NDArray[np.bool_],
        attempt_log: npt.NDArray[Any],
        event_rows: list[tuple[float, str, int, int]],
        worker_changes: list[tuple[float, int]],
        duplicates: int,
        meta: dict[str, Any],
    ) -> None:
        self.backend = backend
        self.meta = meta
        self.duplicates = duplicates
        self._arrival, self._priority, self._ready = arrival, priority, ready
        self._start, self._end, self._worker = start, end, worker
        self._attempts, self._status, self._stolen = attempts, status, stolen
        self._attempt_log = attempt_log
        self._event_rows = event_rows
        self._worker_changes = worker_changes

    def __repr__(self) -> str:
        return (
            f"RunResult(backend={self.backend!r}, tasks={len(self._arrival)}, "
            f"policy={self.meta.get('policy')!r})"
        )

    @cached_property
    def tasks(self) -> pd.DataFrame:
        """One row per task (see the module docstring for the columns)."""
        return pd.DataFrame(
            {
                "task_id": np.arange(len(self._arrival), dtype=np.int64),
                "priority": self._priority,
                "arrival": self._arrival,
                "start": self._start,
                "end": self._end,
                "wait": self._start - self._arrival,
                "latency": self._end - self._arrival,
                "worker": self._worker,
                "attempts": self._attempts,
                "status": pd.Categorical.from_codes(
                    self._status.astype(np.int64), categories=pd.Index(list(STATUS_NAMES))
                ),
                "stolen": self._stolen,
            }
        )

    @cached_property
    def events(self) -> pd.DataFrame:
        """One row per event: time, kind, worker, task_id (-1 where none applies)."""
        columns = ["time", "kind", "worker", "task_id"]
        frame = pd.DataFrame(self._event_rows, columns=columns)
        return frame.astype(
            {"time": "float64", "kind": "object", "worker": "int64", "task_id": "int64"}
        )

    @cached_property
    def attempts(self) -> pd.DataFrame:
        """Attempts that did not succeed: task_id, worker, ready, start, stop, outcome."""
        return pd.DataFrame(self._attempt_log).rename(columns={"task": "task_id"})

    @cached_property
    def timeline(self) -> pd.DataFrame:
        """Serving workers, busy workers and queued tasks after every change."""
        done = self._status == 1
        log = self._attempt_log
        never_started = np.isnan(self._start) & (self._status == 0)
        dropped = never_started & ~np.isnan(self._end)  # lost with a process, at its end
        busy_up = np.concatenate([self._start[done], log["start"]])
        busy_down = np.concatenate([self._end[done], log["stop"]])
        queue_up = np.concatenate([self._ready[done], log["ready"], self._ready[never_started]])
        queue_down = np.concatenate([self._start[done], log["start"], self._end[dropped]])
        change_time = np.array([t for t, _ in self._worker_changes])
        change_delta = np.array([d for _, d in self._worker_changes], dtype=np.int64)
        times = np.concatenate([change_time, busy_up, busy_down, queue_up, queue_down])
        kinds = [
            (len(change_time), 0),
            (len(busy_up), 1),
            (len(busy_down), 1),
            (len(queue_up), 2),
            (len(queue_down), 2),
        ]
        signs: list[npt.NDArray[np.int64] | int] = [change_delta, 1, -1, 1, -1]
        deltas = np.zeros((len(times), 3), dtype=np.int64)
        offset = 0
        for (count, column), sign in zip(kinds, signs, strict=True):
            deltas[offset : offset + count, column] = sign
            offset += count
        order = np.argsort(times, kind="stable")
        levels = np.cumsum(deltas[order], axis=0)
        sorted_times = times[order]
        last_of_time = np.append(sorted_times[1:] != sorted_times[:-1], True)
        return pd.DataFrame(
            {
                "time": sorted_times[last_of_time],
                "workers": levels[last_of_time, 0],
                "busy": levels[last_of_time, 1],
                "queued": levels[last_of_time, 2],
            }
        )

    @property
    def makespan(self) -> float:
        """From the first arrival to the last task's end, seconds."""
        finished = self._end[~np.isnan(self._end)]
        if finished.size == 0:
            return 0.0
        return float(finished.max() - self._arrival.min())

    def summary(self, warmup: float = 0.0) -> dict[str, float]:
        """Headline metrics. Latencies count done tasks arriving at or after ``warmup`` s.

        ``throughput``: completed tasks / makespan (tasks/s). ``utilization``: busy
        worker-seconds / serving worker-seconds. ``detection_time`` (only when worker
        faults were injected): mean over detected faults of the time from the fault to its
        detection. ``recovery_time`` (also after a pool restart, which nothing detects):
        mean over detected faults and pool restarts of the time from the fault until the
        pool is whole again and has worked off the backlog: the first instant, at or after
        the failed slot's restart (the restarted pool's start), at which the queue is back
        to its pre-fault level (its time-average from the start to the fault).
        """
        done = self._status == 1
        kept = done & (self._arrival >= warmup)
        latency = self._end[kept] - self._arrival[kept]
        wait = self._start[kept] - self._arrival[kept]
        makespan = self.makespan
        stats: dict[str, float] = {
            "throughput": float(done.sum() / makespan) if makespan > 0 else math.nan,
            "mean_wait": _mean(wait),
            "mean_latency": _mean(latency),
            "p50_latency": _quantile(latency, 0.50),
            "p95_latency": _quantile(latency, 0.95),
            "p99_latency": _quantile(latency, 0.99),
            "utilization": self._utilization(makespan),
            "completed": float(done.sum()),
            "failed": float((self._status == 2).sum()),
            "lost": float((self._status == 0).sum()),
            "duplicates": float(self.duplicates),
            "retried": float(sum(1 for row in self._event_rows if row[1] == "retry")),
            "stolen": float(self._stolen.sum()),
            "makespan": makespan,
        }
        if any(row[1] in RECOVERED_FROM for row in self._event_rows):
            stats.update(self._recovery())
        return stats

    def _utilization(self, makespan: float) -> float:
        if makespan <= 0:
            return math.nan
        done = self._status == 1
        busy = float((self._end[done] - self._start[done]).sum())
        log = self._attempt_log
        busy += float((log["stop"] - log["start"]).sum()) if len(log) else 0.0
        changes = [*self._worker_changes, (makespan + float(self._arrival.min()), 0)]
        serving, level = 0.0, 0
        for (time, delta), (next_time, _) in itertools.pairwise(changes):
            level += delta
            serving += level * max(0.0, next_time - time)
        return busy / serving if serving > 0 else math.nan

    def _recovery(self) -> dict[str, float]:
        timeline = self.timeline
        times = timeline["time"].to_numpy()
        queued = timeline["queued"].to_numpy()
        detections, recoveries = [], []
        for fault_time, kind, worker, _ in self._event_rows:
            if kind == "pool_crash":  # recovered from the restarted pool on; not detected
                restarted = self._next_event(("pool_restart",), fault_time)
                if restarted is not None:
                    recoveries.append(self._back_to_level(times, queued, fault_time, restarted))
                continue
            if kind not in FAULT_KINDS:
                continue
            detected = self._next_event(("detected", "timeout"), fault_time, worker)
            if detected is None:
                continue
            detections.append(detected - fault_time)
            restarted = self._next_event(("restart",), detected, worker)
            if restarted is None:
                restarted = detected
            recoveries.append(self._back_to_level(times, queued, fault_time, restarted))
        figures = {"recovery_time": _mean(np.asarray([r for r in recoveries if not math.isnan(r)]))}
        if any(row[1] in (*FAULT_KINDS, "timeout") for row in self._event_rows):
            figures["detection_time"] = _mean(np.asarray(detections))  # a pool's death: none
        return figures

    def _next_event(
        self, kinds: tuple[str, ...], after: float, worker: int | None = None
    ) -> float | None:
        """The time of the first event of ``kinds`` at or after ``after`` (of ``worker``,
        if given), or None."""
        return next(
            (
                t
                for t, k, w, _ in self._event_rows
                if k in kinds and t >= after and (worker is None or w == worker)
            ),
            None,
        )

    @staticmethod
    def _back_to_level(
        times: npt.NDArray[np.float64], queued: npt.NDArray[Any], fault: float, restarted: float
    ) -> float:
        """Seconds from ``fault`` to the first instant, at or after ``restarted``, when the
        queue is back to its time-average before the fault (NaN: never)."""
        baseline = _time_average(times, queued, fault)
        first = int(np.searchsorted(times, restarted, side="left"))  # times are sorted
        after = np.flatnonzero(queued[first:] <= baseline)
        return float(times[first + after[0]]) - fault if after.size else math.nan


def _time_average(times: npt.NDArray[np.float64], level: npt.NDArray[Any], until: float) -> float:
    """The time-average of the step function ``level`` (changing at the sorted ``times``)
    from the first change to ``until``."""
    inside = int(np.searchsorted(times, until, side="left"))  # the changes before until
    if not inside or until <= 0:
        return 0.0
    edges = np.append(times[:inside], until)
    return float(np.sum(level[:inside] * np.diff(edges)) / until)


def _mean(values: npt.NDArray[np.float64]) -> float:
    return float(values.mean()) if values.size else math.nan


def _quantile(values: npt.NDArray[np.float64], q: float) -> float:
    return float(np.quantile(values, q)) if values.size else math.nan


COMPARED_METRICS = (
    "throughput",
    "mean_wait",
    "mean_latency",
    "p50_latency",
    "p95_latency",
    "p99_latency",
    "utilization",
    "completed",
    "failed",
    "lost",
    "retried",
    "stolen",
    "detection_time",
    "recovery_time",
)


def compare(predicted: RunResult, measured: RunResult, warmup: float = 0.0) -> pd.DataFrame:
    """One row per metric: predicted, measured and rel_error = (predicted - measured) / measured."""
    left, right = predicted.summary(warmup), measured.summary(warmup)
    rows = []
    for metric in COMPARED_METRICS:
        if metric not in left and metric not in right:
            continue
        pred, meas = left.get(metric, math.nan), right.get(metric, math.nan)
        rel = (pred - meas) / meas if meas not in (0.0,) and not math.isnan(meas) else math.nan
        rows.append({"metric": metric, "predicted": pred, "measured": meas, "rel_error": rel})
    return pd.DataFrame(rows, columns=["metric", "predicted", "measured", "rel_error"])
