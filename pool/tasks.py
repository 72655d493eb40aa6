"""Workloads: columnar arrays of tasks, and generators for the usual arrival patterns.

A workload holds one row per task (its index is the task id): ``arrival`` and
``service`` in seconds, ``priority`` (0 is the most urgent), ``cpu_fraction`` (the part
of the service spent computing; the rest waits: sleep, socket, disk), ``affinity`` (a
preferred worker slot, -1 for none) and ``gil_share`` (the part of the computing that
holds the interpreter lock: 1 for pure Python, 0 for C code that releases it, such as
hashlib, zlib or numpy). Arrays, not objects, so a million tasks build in well under a
second and cost a few tens of megabytes.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from pool import _validate, dists, traces

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

TRACE_COLUMNS = ("arrival", "service", "priority", "cpu_fraction", "affinity", "gil_share")


@dataclass(frozen=True, eq=False)
class Workload:
    """A fixed list of tasks; build one with a generator such as :meth:`poisson`."""

    arrival: FloatArray
    service: FloatArray
    priority: IntArray
    cpu_fraction: FloatArray
    affinity: IntArray
    gil_share: FloatArray = None  # type: ignore[assignment]  # None: every task holds the lock

    def __post_init__(self) -> None:
        if self.gil_share is None:
            object.__setattr__(self, "gil_share", np.ones(np.shape(self.arrival)))
        arrays = {name: _numeric(name, getattr(self, name)) for name in TRACE_COLUMNS}
        n_tasks = arrays["arrival"].shape[0]
        for name, array in arrays.items():
            if array.ndim != 1 or array.shape[0] != n_tasks:
                raise ValueError(f"{name} must be a 1-d array of length {n_tasks}")
        _check_columns(arrays)
        for name, array in arrays.items():
            array.setflags(write=False)
            object.__setattr__(self, name, array)

    def __len__(self) -> int:
        return int(self.arrival.shape[0])

    @property
    def n_tasks(self) -> int:
        """Number of tasks."""
        return len(self)

    @property
    def duration(self) -> float:
        """Time of the last arrival, in seconds."""
        return float(self.arrival[-1]) if len(self) else 0.0

    @property
    def arrival_rate(self) -> float:
        """Mean arrival rate over the workload, tasks per second."""
        return len(self) / self.duration if self.duration > 0 else float("inf")

    @property
    def mean_service(self) -> float:
        """Mean service time, seconds."""
        return float(self.service.mean())

    def offered_load(self, workers: int) -> float:
        """Utilisation the workload asks of ``workers`` workers: rate * mean service / workers."""
        workers = _validate.integer_at_least("workers", workers, 1)
        return self.arrival_rate * self.mean_service / workers

    @property
    def parts(self) -> tuple[FloatArray, FloatArray, FloatArray]:
        """Each task's service split in seconds: (lock-holding CPU, lock-free CPU, waiting).

        Both pools perform a task's parts in one order: it waits (a request), then
        computes holding the lock (Python), then computes without it (C code)."""
        cpu = self.service * self.cpu_fraction
        held = cpu * self.gil_share
        return held, cpu - held, self.service - cpu

    def head(self, n_tasks: int) -> Workload:
        """The first ``n_tasks`` tasks."""
        n_tasks = _validate.integer_at_least("n_tasks", n_tasks, 1)
        return Workload(*(getattr(self, name)[:n_tasks] for name in TRACE_COLUMNS))

    def replace(self, **columns: Any) -> Workload:
        """A copy with the named columns (from :data:`TRACE_COLUMNS`) replaced."""
        unknown = sorted(set(columns) - set(TRACE_COLUMNS))
        if unknown:
            raise ValueError(f"unknown workload column(s) {unknown}; columns: {TRACE_COLUMNS}")
        return Workload(**{name: columns.get(name, getattr(self, name)) for name in TRACE_COLUMNS})

    def with_affinity(self, workers: int, hot_share: float, seed: int = 0) -> Workload:
        """A copy where tasks prefer workers unevenly: ``hot_share`` of them prefer slot 0.

        The rest are spread uniformly over all ``workers`` slots. With a round-robin
        placement this is balanced; with affinity placement worker 0 is overloaded,
        which is what work stealing exists to fix.
        """
        workers = _validate.integer_at_least("workers", workers, 1)
        hot_share = _validate.probability("hot_share", hot_share)
        rng = np.random.default_rng(np.random.SeedSequence(_seed(seed)).spawn(1)[0])
        hot = rng.random(len(self)) < hot_share
        affinity = np.where(hot, 0, rng.integers(0, workers, len(self))).astype(np.int64)
        return self.replace(affinity=affinity)

    def with_cpu_fraction(self, cpu_fraction: float, gil_share: float = 1.0) -> Workload:
        """A copy where every task computes for ``cpu_fraction`` of its service, holding the
        interpreter lock for ``gil_share`` of that computing (1: pure Python)."""
        fraction = _validate.probability("cpu_fraction", cpu_fraction)
        share = _validate.probability("gil_share", gil_share)
        return self.replace(
            cpu_fraction=np.full(len(self), fraction), gil_share=np.full(len(self), share)
        )

    def to_frame(self) -> pd.DataFrame:
        """The workload as a DataFrame with the trace columns."""
        return pd.DataFrame({name: getattr(self, name) for name in TRACE_COLUMNS})

    def to_trace(self, path: str | os.PathLike[str]) -> None:
        """Write the workload to ``path`` (.csv or .parquet); :meth:`from_trace` reads it back."""
        traces.write_trace(self, path)

    @classmethod
    def from_trace(cls, source: str | os.PathLike[str] | pd.DataFrame) -> Workload:
        """Read a workload from a DataFrame or a .csv / .parquet file (see :mod:`pool.traces`).

        Columns ``arrival`` and ``service`` (seconds) are required; ``priority``,
        ``cpu_fraction``, ``affinity`` and ``gil_share`` are optional. Rows are sorted by
        arrival; a bad value is reported with its column and first row.
        """
        return traces.read_trace(source)

    @classmethod
    def poisson(
        cls,
        rate: float,
        service: dists.Distribution,
        n_tasks: int,
        priorities: Mapping[int, float] | None = None,
        seed: int = 0,
        cpu_fraction: float = 0.0,
        gil_share: float = 1.0,
    ) -> Workload:
        """Poisson arrivals at ``rate`` tasks/s; services drawn from ``service``.

        ``priorities`` maps class (0 most urgent) to its share of tasks; shares sum to 1.
        Every task computes for ``cpu_fraction`` of its service, ``gil_share`` of that
        holding the interpreter lock.
        """
        rate = _validate.positive("rate", rate)
        return cls.renewal(
            dists.Exponential(1.0 / rate),
            service,
            n_tasks,
            priorities,
            seed,
            cpu_fraction,
            gil_share,
        )

    @classmethod
    def renewal(
        cls,
        interarrival: dists.Distribution,
        service: dists.Distribution,
        n_tasks: int,
        priorities: Mapping[int, float] | None = None,
        seed: int = 0,
        cpu_fraction: float = 0.0,
        gil_share: float = 1.0,
    ) -> Workload:
        """Arrivals with independent gaps drawn from ``interarrival`` (a G/G/c workload)."""
        interarrival = dists.check("interarrival", interarrival)
        n_tasks = _validate.integer_at_least("n_tasks", n_tasks, 1)
        gap_rng, service_rng, class_rng = _generators(seed, 3)
        arrival = np.cumsum(interarrival.sample(gap_rng, n_tasks))
        workload = _assemble(arrival, service, priorities, class_rng, service_rng)
        return workload.with_cpu_fraction(cpu_fraction, gil_share)

    @classmethod
    def steps(
        cls,
        rates: Sequence[tuple[float, float]],
        service: dists.Distribution,
        priorities: Mapping[int, float] | None = None,
        seed: int = 0,
        cpu_fraction: float = 0.0,
        gil_share: float = 1.0,
    ) -> Workload:
        """Piecewise-constant Poisson load: ``rates`` is a list of (duration s, rate tasks/s).

        A rate of 0 gives a quiet phase. Used to drive autoscaling up and down.
        """
        phases = _phases(rates)
        gap_rng, service_rng, class_rng = _generators(seed, 3)
        arrivals: list[FloatArray] = []
        start = 0.0
        for duration, rate in phases:
            duration = _validate.positive("rates duration", duration)
            rate = _validate.non_negative("rates rate", rate)
            if rate > 0:
                count = gap_rng.poisson(rate * duration)
                arrivals.append(np.sort(start + gap_rng.uniform(0.0, duration, count)))
            start += duration
        arrival = np.concatenate(arrivals) if arrivals else np.empty(0)
        if arrival.size == 0:
            raise ValueError("rates produce no tasks; give at least one positive rate")
        workload = _assemble(arrival, service, priorities, class_rng, service_rng)
        return workload.with_cpu_fraction(cpu_fraction, gil_share)

    @classmethod
    def bursty(
        cls,
        rate_on: float,
        rate_off: float,
        mean_on: float,
        mean_off: float,
        service: dists.Distribution,
        n_tasks: int,
        priorities: Mapping[int, float] | None = None,
        seed: int = 0,
    ) -> Workload:
        """Two-state Markov-modulated Poisson arrivals (MMPP-2).

        The source alternates between an "on" phase (rate ``rate_on`` tasks/s, mean
        length ``mean_on`` s) and an "off" phase (``rate_off``, ``mean_off``), each of
        exponential length: bursts that a Poisson workload of the same mean lacks.
        """
        rate_on = _validate.positive("rate_on", rate_on)
        rate_off = _validate.non_negative("rate_off", rate_off)
        mean_on = _validate.positive("mean_on", mean_on)
        mean_off = _validate.positive("mean_off", mean_off)
        n_tasks = _validate.integer_at_least("n_tasks", n_tasks, 1)
        phase_rng, service_rng, class_rng = _generators(seed, 3)
        chunks: list[FloatArray] = []
        produced, start, on = 0, 0.0, True
        while produced < n_tasks:
            length = phase_rng.exponential(mean_on if on else mean_off)
            rate = rate_on if on else rate_off
            count = phase_rng.poisson(rate * length)
            if count:
                chunks.append(np.sort(start + phase_rng.uniform(0.0, length, count)))
                produced += count
            start, on = start + length, not on
        arrival = np.concatenate(chunks)[:n_tasks]
        return _assemble(arrival, service, priorities, class_rng, service_rng)


def _phases(rates: Any) -> list[tuple[Any, Any]]:
    """``rates`` as a list of (duration, rate) pairs, or a ValueError naming it."""
    try:
        phases = [tuple(phase) for phase in rates]
    except TypeError:
        raise ValueError(f"rates must be a list of (duration, rate) pairs, got {rates!r}") from None
    if not phases or any(len(phase) != 2 for phase in phases):
        raise ValueError(f"rates must be a non-empty list of (duration, rate) pairs, got {rates!r}")
    return phases


def _assemble(
    arrival: FloatArray,
    service: dists.Distribution,
    priorities: Mapping[int, float] | None,
    class_rng: np.random.Generator,
    service_rng: np.random.Generator,
) -> Workload:
    service = dists.check("service", service)
    n_tasks = arrival.shape[0]
    priority = _draw_classes(priorities, class_rng, n_tasks)
    return Workload(
        arrival,
        service.sample(service_rng, n_tasks),
        priority,
        np.zeros(n_tasks),
        np.full(n_tasks, -1, dtype=np.int64),
    )


def _draw_classes(
    priorities: Mapping[int, float] | None, rng: np.random.Generator, n_tasks: int
) -> IntArray:
    if priorities is None:
        return np.zeros(n_tasks, dtype=np.int64)
    if not isinstance(priorities, Mapping) or len(priorities) == 0:
        raise ValueError("priorities must be a non-empty mapping of class -> share")
    classes = [_validate.integer_at_least("priorities class", c, 0) for c in priorities]
    shares = np.array([_validate.probability("priorities share", s) for s in priorities.values()])
    if abs(shares.sum() - 1.0) > 1e-9:
        raise ValueError(f"priorities shares must sum to 1, got {shares.sum():g}")
    return np.asarray(classes, dtype=np.int64)[rng.choice(len(classes), n_tasks, p=shares)]


def _numeric(name: str, values: Any) -> npt.NDArray[Any]:
    array = np.ascontiguousarray(values)
    if array.dtype.kind not in "biuf":
        raise ValueError(f"{name} must be an array of numbers, got dtype {array.dtype}")
    if name in ("priority", "affinity") and array.dtype.kind == "f":
        if not np.all(np.isfinite(array)) or np.any(array != np.round(array)):
            raise ValueError(f"{name} must hold whole numbers")
        array = array.astype(np.int64)
    return array


def _check_columns(arrays: Mapping[str, npt.NDArray[Any]]) -> None:
    arrival, service = arrays["arrival"], arrays["service"]
    _require("arrival", arrival, np.isfinite(arrival) & (arrival >= 0), "finite, >= 0 seconds")
    _require("arrival", arrival, np.append(True, np.diff(arrival) >= 0), "in non-decreasing order")
    _require("service", service, np.isfinite(service) & (service >= 0), "finite, >= 0 seconds")
    for name in ("cpu_fraction", "gil_share"):
        values = arrays[name]
        _require(name, values, (values >= 0) & (values <= 1), "in [0, 1]")
    _require("priority", arrays["priority"], arrays["priority"] >= 0, ">= 0 (0 is the most urgent)")
    affinity = arrays["affinity"]
    _require("affinity", affinity, affinity >= -1, "a worker slot >= 0, or -1 for none")


def _require(name: str, values: npt.NDArray[Any], good: npt.NDArray[np.bool_], what: str) -> None:
    """A ValueError naming the column and its first bad row unless every row is ``good``."""
    if not good.all():
        raise ValueError(f"{name} must be {what}" + traces.first_bad_row(name, ~good, values))


def _seed(seed: int) -> int:
    return _validate.integer_at_least("seed", seed, 0)


def _generators(seed: int, count: int) -> list[np.random.Generator]:
    children = np.random.SeedSequence(_seed(seed)).spawn(count)
    return [np.random.default_rng(child) for child in children]
