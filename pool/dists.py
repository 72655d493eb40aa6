"""Service-time and inter-arrival distributions, in seconds.

Each distribution knows its ``mean`` and squared coefficient of variation ``scv``
(variance / mean**2), which queueing formulas use, and draws vectorised samples from a
``numpy.random.Generator`` the caller owns, so no global random state is ever touched.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from pool import _validate

FloatArray = npt.NDArray[np.float64]


class Distribution(ABC):
    """A non-negative random variable (seconds) with a known mean and scv."""

    @property
    @abstractmethod
    def mean(self) -> float:
        """Expected value, in seconds."""

    @property
    @abstractmethod
    def scv(self) -> float:
        """Squared coefficient of variation: variance / mean**2."""

    @abstractmethod
    def sample(self, rng: np.random.Generator, size: int) -> FloatArray:
        """Draw ``size`` independent values from ``rng``."""

    @property
    def second_moment(self) -> float:
        """E[X**2] = mean**2 * (1 + scv), the quantity Pollaczek-Khinchine needs."""
        return self.mean**2 * (1.0 + self.scv)

    def scaled(self, factor: float) -> Distribution:
        """The same shape with every value multiplied by ``factor`` (> 0)."""
        return _Scaled(self, _validate.positive("factor", factor))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(mean={self.mean:g}, scv={self.scv:g})"


class Exponential(Distribution):
    """Exponential with the given ``mean`` (seconds); scv 1."""

    def __init__(self, mean: float) -> None:
        self._mean = _validate.positive("mean", mean)

    @property
    def mean(self) -> float:
        return self._mean

    @property
    def scv(self) -> float:
        return 1.0

    def sample(self, rng: np.random.Generator, size: int) -> FloatArray:
        return rng.exponential(self._mean, size)


class Deterministic(Distribution):
    """Always ``value`` seconds; scv 0."""

    def __init__(self, value: float) -> None:
        self._value = _validate.positive("value", value)

    @property
    def mean(self) -> float:
        return self._value

    @property
    def scv(self) -> float:
        return 0.0

    def sample(self, rng: np.random.Generator, size: int) -> FloatArray:
        return np.full(size, self._value)


class Uniform(Distribution):
    """Uniform on [``low``, ``high``] seconds, 0 <= low < high."""

    def __init__(self, low: float, high: float) -> None:
        self._low = _validate.non_negative("low", low)
        self._high = _validate.positive("high", high)
        if self._high <= self._low:
            raise ValueError(f"high must be greater than low, got low={low!r}, high={high!r}")

    @property
    def mean(self) -> float:
        return (self._low + self._high) / 2.0

    @property
    def scv(self) -> float:
        variance = (self._high - self._low) ** 2 / 12.0
        return variance / self.mean**2

    def sample(self, rng: np.random.Generator, size: int) -> FloatArray:
        return rng.uniform(self._low, self._high, size)


class LogNormal(Distribution):
    """Log-normal parametrised by its ``mean`` (seconds) and coefficient of variation ``cv``."""

    def __init__(self, mean: float, cv: float) -> None:
        self._mean = _validate.positive("mean", mean)
        self._cv = _validate.positive("cv", cv)
        self._sigma = math.sqrt(math.log1p(self._cv**2))
        self._mu = math.log(self._mean) - self._sigma**2 / 2.0

    @property
    def mean(self) -> float:
        return self._mean

    @property
    def scv(self) -> float:
        return self._cv**2

    def sample(self, rng: np.random.Generator, size: int) -> FloatArray:
        return rng.lognormal(self._mu, self._sigma, size)


class HyperExponential(Distribution):
    """Two-phase hyperexponential with balanced means, for ``cv`` >= 1 (high variance)."""

    def __init__(self, mean: float, cv: float) -> None:
        self._mean = _validate.positive("mean", mean)
        self._cv = _validate.positive("cv", cv)
        if self._cv < 1.0:
            raise ValueError(f"cv must be >= 1 for a hyperexponential, got {cv!r}")
        scv = self._cv**2
        # Balanced means: p1/mu1 = p2/mu2, the usual two-moment fit.
        self._p_first = 0.5 * (1.0 + math.sqrt((scv - 1.0) / (scv + 1.0)))
        self._mean_first = self._mean / (2.0 * self._p_first)
        self._mean_second = self._mean / (2.0 * (1.0 - self._p_first))

    @property
    def mean(self) -> float:
        return self._mean

    @property
    def scv(self) -> float:
        return self._cv**2

    def sample(self, rng: np.random.Generator, size: int) -> FloatArray:
        first = rng.random(size) < self._p_first
        means = np.where(first, self._mean_first, self._mean_second)
        return rng.exponential(1.0, size) * means


class Empirical(Distribution):
    """Resamples (with replacement) the observed ``samples``, in seconds."""

    def __init__(self, samples: Sequence[float] | FloatArray) -> None:
        try:
            values = np.asarray(samples, dtype=np.float64).ravel()
        except (TypeError, ValueError):
            raise ValueError(f"samples must be numbers, got {samples!r}") from None
        if values.size == 0:
            raise ValueError("samples must not be empty")
        if not np.all(np.isfinite(values)) or np.any(values < 0):
            raise ValueError("samples must be finite and non-negative")
        if values.mean() <= 0:
            raise ValueError("samples must have a positive mean")
        self._values = values

    @property
    def mean(self) -> float:
        return float(self._values.mean())

    @property
    def scv(self) -> float:
        return float(self._values.var() / self._values.mean() ** 2)

    def sample(self, rng: np.random.Generator, size: int) -> FloatArray:
        return rng.choice(self._values, size=size, replace=True)


class _Scaled(Distribution):
    def __init__(self, base: Distribution, factor: float) -> None:
        self._base = base
        self._factor = factor

    @property
    def mean(self) -> float:
        return self._base.mean * self._factor

    @property
    def scv(self) -> float:
        return self._base.scv

    def sample(self, rng: np.random.Generator, size: int) -> FloatArray:
        return self._base.sample(rng, size) * self._factor


def check(name: str, value: object) -> Distribution:
    """Return ``value`` if it is a Distribution, else raise ValueError naming ``name``."""
    if not isinstance(value, Distribution):
        raise ValueError(f"{name} must be a pool.dists distribution, got {value!r}")
    return value
