"""Fit a :class:`pool.WorkloadModel` to a trace recorded by ``ThreadedPool(record=True)``.

What a task costs when it runs alone (its intrinsic service) is not what the trace shows
when threads contended: with more threads than cores, or the interpreter lock held by
others, a task's wall time stretches. The fit recovers the intrinsic service from what
contention cannot inflate, the thread's CPU time, and from the waits, which it finds by
replaying the recorded arrivals through the model (``sim``, with the machine's cores and
lock): the waits are the part of wall time beyond CPU time, scaled down until the model,
replaying the trace, gives the recorded mean wall time (a few runs of the model).

Which part of a task's CPU time held the lock cannot be told from timings: ``gil_share``
is the caller's (1.0, pure Python, is the cautious default: it predicts the most
contention). ``sim`` is imported when a fit corrects contention, not before.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from pool import _validate
from pool.overhead import Overhead
from pool.tasks import Workload
from pool.traces import _read_frame, first_bad_row
from pool.workload_model import LAWS, ClassModel, WorkloadModel, scipy_law

FloatArray = npt.NDArray[np.float64]

#: Fewer completed tasks than this cannot describe a workload.
MIN_TASKS = 20
#: A class with fewer tasks than this gets a parametric law under ``service="auto"``.
SMALL_SAMPLE = 50
#: Arrivals are called Poisson when a KS test against the exponential keeps them at this level.
POISSON_LEVEL = 0.01
SERVICE_CHOICES = ("auto", "empirical", *LAWS)
#: The contention correction stops when the model's mean wall time is this close (relative).
TOLERANCE = 0.002
MAX_ROUNDS = 8


def fit(
    trace: pd.DataFrame | str | os.PathLike[str],
    *,
    service: str = "auto",
    gil_share: float = 1.0,
    workers: int | None = None,
    overhead: Overhead | None = None,
    correct_contention: bool = True,
) -> WorkloadModel:
    """A workload model of ``trace`` (a DataFrame, or a .parquet/.csv file of one).

    ``service``: "empirical" (the fitted samples), one of :data:`pool.workload_model.LAWS`
    (maximum likelihood), or "auto" (empirical, but the best law by AIC for a class of
    fewer than 50 tasks). ``workers``: the recorded pool's size when the trace has no
    ``pool_workers`` column. ``overhead``: the machine (``real.calibrate()``); by default
    :meth:`pool.Overhead.this_machine`. Tasks that never computed need no correction.
    """
    if service not in SERVICE_CHOICES:
        raise ValueError(f"service must be one of {SERVICE_CHOICES}, got {service!r}")
    gil_share = _validate.probability("gil_share", gil_share)
    frame = _read_frame(trace)
    submitted, started, ended, done = _times(frame)
    cpu = _cpu_time(frame, done, ended - started)
    priority = _integers(frame, "priority", 0)[done]
    pool_workers = _pool_workers(frame, workers)
    wall = (ended - started)[done]
    io = np.maximum(wall - cpu, 0.0)
    rounds: list[float] = []
    if correct_contention and (cpu.any() or (overhead is not None and overhead.models_cpu)):
        machine = overhead or Overhead.this_machine()
        replay = _Replay(submitted[done] - submitted.min(), cpu, priority, gil_share, pool_workers)
        io = _remove_stretch(replay, wall, io, machine, rounds)
    arrival, rate, gaps, note = _arrivals(np.sort(submitted))
    source = {
        "tasks": int(done.sum()),
        "rows": len(frame),
        "pool_workers": pool_workers,
        "mean_wall_s": float(np.mean(wall)),
        "mean_cpu_s": float(np.mean(cpu)),
        "contention_rounds_mean_service_s": rounds,
    }
    classes = [
        _class_model(level, priority, cpu, io, gil_share, service) for level in np.unique(priority)
    ]
    return WorkloadModel(arrival, rate, gaps.tolist(), note, classes, source)


def _times(frame: pd.DataFrame) -> tuple[FloatArray, FloatArray, FloatArray, Any]:
    missing = [c for c in ("submitted", "started", "ended") if c not in frame.columns]
    if missing:
        raise ValueError(
            f"trace is missing column(s) {missing}; it needs submitted, started, ended"
        )
    if "status" in frame.columns:
        done = (frame["status"].astype(str) == "completed").to_numpy()
    else:
        done = np.ones(len(frame), dtype=bool)
    columns = {}
    for name in ("submitted", "started", "ended"):
        values = pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=np.float64)
        checked = values if name == "submitted" else np.where(done, values, 0.0)
        bad = ~np.isfinite(checked) | (checked < 0)
        if bad.any():
            raise ValueError(
                f"trace column {name} must hold finite times >= 0 s"
                + first_bad_row(name, bad, values)
            )
        columns[name] = values
    for later, earlier in (("started", "submitted"), ("ended", "started")):
        bad = done & (columns[later] < columns[earlier])
        if bad.any():
            raise ValueError(
                f"trace column {later} is before {earlier}"
                + first_bad_row(later, bad, columns[later])
            )
    if done.sum() < MIN_TASKS:
        raise ValueError(
            f"trace has {int(done.sum())} completed tasks; a fit needs at least {MIN_TASKS}"
        )
    return columns["submitted"], columns["started"], columns["ended"], done


def _cpu_time(frame: pd.DataFrame, done: Any, wall: FloatArray) -> FloatArray:
    if "cpu_time" not in frame.columns:
        return np.zeros(int(done.sum()))
    values = pd.to_numeric(frame["cpu_time"], errors="coerce").to_numpy(dtype=np.float64)
    bad = done & (~np.isfinite(values) | (values < 0))
    if bad.any():
        raise ValueError(
            "trace column cpu_time must hold finite times >= 0 s"
            + first_bad_row("cpu_time", bad, values)
        )
    # A thread cannot compute longer than it ran; timer granularity can say otherwise.
    return np.asarray(np.minimum(values, wall)[done], dtype=np.float64)


def _integers(frame: pd.DataFrame, name: str, default: int) -> npt.NDArray[np.int64]:
    if name not in frame.columns:
        return np.full(len(frame), default, dtype=np.int64)
    values = pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(values) | (values < 0) | (values != np.round(values))
    if bad.any():
        raise ValueError(
            f"trace column {name} must hold integers >= 0" + first_bad_row(name, bad, values)
        )
    return values.astype(np.int64)


def _pool_workers(frame: pd.DataFrame, workers: int | None) -> int:
    if workers is not None:
        return _validate.integer_at_least("workers", workers, 1)
    if "pool_workers" not in frame.columns:
        raise ValueError("trace has no pool_workers column: give the recorded pool's workers=")
    return int(_integers(frame, "pool_workers", 1).max())


@dataclass(frozen=True)
class _Replay:
    """The recorded arrivals and CPU times, to replay through the model."""

    arrivals: FloatArray
    cpu: FloatArray
    priority: npt.NDArray[np.int64]
    gil_share: float
    workers: int

    def mean_wall(self, io: FloatArray, machine: Overhead) -> float:
        """Mean time from start to end of a task in the model, given its waits ``io``."""
        import sim

        order = np.argsort(self.arrivals, kind="stable")
        service = self.cpu + io
        fraction = np.divide(self.cpu, service, out=np.zeros_like(service), where=service > 0)
        n_tasks = len(order)
        workload = Workload(
            self.arrivals[order],
            service[order],
            self.priority[order],
            fraction[order],
            np.full(n_tasks, -1),
            np.full(n_tasks, self.gil_share),
        )
        policy = "priority" if len(np.unique(self.priority)) > 1 else "fifo"
        tasks = sim.run(workload, policy, self.workers, overhead=machine).tasks
        return float((tasks["end"] - tasks["start"]).mean())


def _remove_stretch(
    replay: _Replay, wall: FloatArray, io: FloatArray, machine: Overhead, rounds: list[float]
) -> FloatArray:
    """Scale the waits by the factor in [0, 1] at which the model's mean wall time is the
    recorded one (regula falsi): what remains of a task's wall time beyond its CPU time
    is partly waiting for I/O and partly contention; the model tells the parts apart."""
    target = float(np.mean(wall))

    def excess(scale: float) -> float:
        value = replay.mean_wall(io * scale, machine) - target
        rounds.append(float(np.mean(replay.cpu + io * scale)))
        return value

    low, high = 0.0, 1.0
    at_low, at_high = excess(low), excess(high)
    if at_high <= 0:
        return io
    if at_low >= 0:
        return io * 0.0
    for _ in range(MAX_ROUNDS):
        scale = high - at_high * (high - low) / (at_high - at_low)
        at_scale = excess(scale)
        if abs(at_scale) <= TOLERANCE * target:
            return io * scale
        if at_scale > 0:
            high, at_high, at_low = scale, at_scale, at_low / 2  # Illinois: no stalled end
        else:
            low, at_low, at_high = scale, at_scale, at_high / 2
    return io * scale


def _arrivals(submitted: FloatArray) -> tuple[str, float, FloatArray, str]:
    gaps = np.diff(submitted)
    if gaps.size < 2 or gaps.sum() <= 0:
        raise ValueError(
            "trace column submitted: every task was submitted at once; a fit needs arrivals "
            "spread over time"
        )
    rate = len(gaps) / float(gaps.sum())
    cv = float(np.std(gaps) / np.mean(gaps))
    from scipy import stats

    p_value = float(stats.kstest(gaps, "expon", args=(0, float(np.mean(gaps)))).pvalue)
    if p_value >= POISSON_LEVEL:
        note = f"gaps' cv {cv:.2f}, KS p={p_value:.2f} against the exponential: Poisson"
        return "poisson", rate, gaps, note
    kind = "bursty" if cv > 1 else "smoother than Poisson"
    note = f"gaps' cv {cv:.2f}, KS p={p_value:.1g}: {kind}, so the recorded gaps are drawn"
    return "empirical", rate, gaps, note


def _class_model(
    level: int,
    priority: npt.NDArray[np.int64],
    cpu: FloatArray,
    io: FloatArray,
    gil_share: float,
    service_choice: str,
) -> ClassModel:
    rows = priority == level
    service = cpu[rows] + io[rows]
    fraction = np.divide(cpu[rows], service, out=np.zeros(rows.sum()), where=service > 0)
    law, params, note = "empirical", [], f"{rows.sum()} fitted services"
    if service_choice in LAWS:
        law = service_choice
        params = _mle(law, service)
        note = f"{law} by maximum likelihood, as asked"
    elif service_choice == "auto" and rows.sum() < SMALL_SAMPLE:
        law, params = _best_law(service)
        note = f"only {rows.sum()} tasks: {law}, the best law by AIC"
    return ClassModel(
        int(level),
        float(rows.mean()),
        service.tolist(),
        fraction.tolist(),
        gil_share,
        law,
        params,
        note,
    )


def _mle(law: str, service: FloatArray) -> list[float]:
    positive = np.maximum(service, 1e-9)
    return [float(p) for p in scipy_law(law).fit(positive, floc=0)]


def _best_law(service: FloatArray) -> tuple[str, list[float]]:
    positive = np.maximum(service, 1e-9)
    scored: list[tuple[float, str, list[float]]] = []
    for law in LAWS:
        params = _mle(law, positive)
        loglik = float(np.sum(scipy_law(law).logpdf(positive, *params)))
        free = len(params) - 1  # the location is fixed at 0
        aic = 2 * free - 2 * loglik
        if math.isfinite(aic):
            scored.append((aic, law, params))
    _, law, params = min(scored, key=lambda entry: entry[0])
    return law, params
