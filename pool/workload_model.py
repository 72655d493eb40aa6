"""A model of a pool's workload, fitted from a recorded trace (see :func:`pool.fit`).

It holds what the simulator needs to draw new workloads like the recorded one: the
arrival process (Poisson, or the recorded gaps between arrivals) and, per priority
class, its share of tasks, its service time (the recorded samples, or a parametric law
fitted by maximum likelihood), the part of it spent computing and the part of that
holding the interpreter lock. It draws workloads at any load and round-trips a JSON file.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from pool import _validate
from pool.tasks import Workload

FloatArray = npt.NDArray[np.float64]

#: Parametric service laws :func:`pool.fit` can fit (scipy.stats names, location 0).
LAWS = {"exponential": "expon", "gamma": "gamma", "lognormal": "lognorm", "weibull": "weibull_min"}
FORMAT_VERSION = 1


def scipy_law(law: str) -> Any:
    """The scipy.stats distribution of ``law`` (imported when first needed: scipy is heavy)."""
    from scipy import stats

    return getattr(stats, LAWS[law])


@dataclass(frozen=True)
class ClassModel:
    """One priority class: its ``share`` of tasks and its intrinsic service.

    ``service`` and ``cpu_fraction`` are the fitted per-task samples (seconds, and the
    computing part of each). ``law`` is "empirical" (draw the samples) or a key of
    :data:`LAWS` with its scipy ``params``; ``gil_share`` is the part of computing that
    holds the interpreter lock.
    """

    priority: int
    share: float
    service: list[float]
    cpu_fraction: list[float]
    gil_share: float
    law: str = "empirical"
    params: list[float] = field(default_factory=list)
    note: str = ""

    def draw(self, rng: np.random.Generator, size: int) -> tuple[FloatArray, FloatArray]:
        """``size`` services and their CPU fractions."""
        service = np.asarray(self.service)
        fraction = np.asarray(self.cpu_fraction)
        if self.law == "empirical":
            picked = rng.integers(0, len(service), size)
            return service[picked], fraction[picked]
        law = scipy_law(self.law)
        drawn = np.asarray(law.rvs(*self.params, size=size, random_state=rng), dtype=np.float64)
        # A parametric law keeps the class's share of computing in its service time.
        return np.maximum(drawn, 0.0), np.full(size, self.cpu_share())

    def cpu_share(self) -> float:
        """The part of the class's service time spent computing."""
        service = np.asarray(self.service)
        return float(np.sum(service * np.asarray(self.cpu_fraction)) / np.sum(service))

    def mean(self) -> float:
        """Mean service (seconds) of the fitted law."""
        if self.law == "empirical":
            return float(np.mean(self.service))
        return float(scipy_law(self.law)(*self.params).mean())


@dataclass(frozen=True)
class WorkloadModel:
    """A fitted workload: arrivals, and a :class:`ClassModel` per priority class.

    ``arrival`` is "poisson" (at ``rate`` tasks/s) or "empirical" (the recorded ``gaps``
    between arrivals, in seconds, drawn independently); ``arrival_note`` says why.
    ``source`` keeps what the fit saw (tasks, workers, contention correction).
    """

    arrival: str
    rate: float
    gaps: list[float]
    arrival_note: str
    classes: list[ClassModel]
    source: dict[str, Any] = field(default_factory=dict)

    def workload(self, n_tasks: int, load_scale: float = 1.0, seed: int = 0) -> Workload:
        """Draw ``n_tasks`` tasks arriving ``load_scale`` times as often as recorded."""
        n_tasks = _validate.integer_at_least("n_tasks", n_tasks, 1)
        load_scale = _validate.positive("load_scale", load_scale)
        gap_rng, class_rng, service_rng = (
            np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3)
        )
        if self.arrival == "poisson":
            gaps = gap_rng.exponential(1.0 / self.rate, n_tasks)
        else:
            gaps = np.asarray(self.gaps)[gap_rng.integers(0, len(self.gaps), n_tasks)]
        arrival = np.cumsum(gaps / load_scale)
        shares = np.array([model.share for model in self.classes])
        which = class_rng.choice(len(self.classes), size=n_tasks, p=shares / shares.sum())
        service = np.empty(n_tasks)
        fraction = np.empty(n_tasks)
        gil = np.empty(n_tasks)
        for index, model in enumerate(self.classes):
            rows = np.flatnonzero(which == index)
            service[rows], fraction[rows] = model.draw(service_rng, len(rows))
            gil[rows] = model.gil_share
        priority = np.array([self.classes[i].priority for i in which], dtype=np.int64)
        return Workload(arrival, service, priority, fraction, np.full(n_tasks, -1), gil)

    @property
    def arrival_rate(self) -> float:
        """Recorded arrivals per second."""
        return self.rate

    @property
    def mean_service(self) -> float:
        """Mean intrinsic service over all classes (seconds)."""
        return float(sum(model.share * model.mean() for model in self.classes))

    def describe(self) -> pd.DataFrame:
        """A table a person can read: one row for arrivals, one per priority class."""
        gaps = np.asarray(self.gaps)
        rows = [
            {
                "part": "arrivals",
                "model": self.arrival,
                "tasks_per_s": self.rate,
                "share": 1.0,
                "mean_s": float(gaps.mean()),
                "cv": _cv(gaps),
                "p95_s": float(np.quantile(gaps, 0.95)),
                "cpu_fraction": np.nan,
                "gil_share": np.nan,
                "note": self.arrival_note,
            }
        ]
        for model in self.classes:
            service = np.asarray(model.service)
            law = model.law if model.law == "empirical" else f"{model.law} (MLE)"
            rows.append(
                {
                    "part": f"class {model.priority}",
                    "model": law,
                    "tasks_per_s": self.rate * model.share,
                    "share": model.share,
                    "mean_s": model.mean(),
                    "cv": _cv(service),
                    "p95_s": float(np.quantile(service, 0.95)),
                    "cpu_fraction": model.cpu_share(),
                    "gil_share": model.gil_share,
                    "note": model.note,
                }
            )
        return pd.DataFrame(rows)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the model as JSON to ``path`` (atomically); :meth:`load` reads it back."""
        target = Path(path)
        document = {"format": "poolbench-workload-model", "version": FORMAT_VERSION}
        document.update(asdict(self))
        partial = target.with_name(f".{target.name}.partial")
        try:
            partial.write_text(json.dumps(document))
            os.replace(partial, target)
        finally:
            partial.unlink(missing_ok=True)
        return target

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> WorkloadModel:
        """Read a model written by :meth:`save`."""
        try:
            document = json.loads(Path(path).read_text())
        except (OSError, ValueError) as error:
            raise ValueError(f"cannot read a workload model from {str(path)!r}: {error}") from None
        if not isinstance(document, dict) or document.get("format") != "poolbench-workload-model":
            raise ValueError(f"{str(path)!r} is not a poolbench workload model")
        if document.get("version") != FORMAT_VERSION:
            raise ValueError(
                f"{str(path)!r} has model format version {document.get('version')!r}; "
                f"this poolbench reads version {FORMAT_VERSION}"
            )
        classes = [ClassModel(**entry) for entry in document.pop("classes")]
        for key in ("format", "version"):
            document.pop(key)
        return cls(classes=classes, **document)


def _cv(values: FloatArray) -> float:
    mean = float(np.mean(values))
    return float(np.std(values) / mean) if mean > 0 else 0.0
