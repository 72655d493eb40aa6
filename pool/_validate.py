"""Argument checks shared by every constructor: each error names the parameter it rejects."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np

T = TypeVar("T")


def positive(name: str, value: Any) -> float:
    """``value`` as a float if finite and > 0, else a ValueError naming ``name``."""
    number = _finite(name, value)
    if number <= 0:
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return number


def boolean(name: str, value: Any) -> bool:
    """``value`` if it is True or False, else a ValueError naming ``name``."""
    if not isinstance(value, bool | np.bool_):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def non_negative(name: str, value: Any) -> float:
    """``value`` as a float if finite and >= 0, else a ValueError naming ``name``."""
    number = _finite(name, value)
    if number < 0:
        raise ValueError(f"{name} must be a non-negative finite number, got {value!r}")
    return number


def probability(name: str, value: Any) -> float:
    """Return ``value`` as a float if it lies in [0, 1], else raise ValueError naming ``name``."""
    number = _finite(name, value)
    if not 0.0 <= number <= 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1], got {value!r}")
    return number


def integer_at_least(name: str, value: Any, minimum: int) -> int:
    """``value`` if an int >= ``minimum`` (bools rejected), else a ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def optional(name: str, value: Any, kind: type[T], default: Callable[[], T]) -> T:
    """``value`` if it is a ``kind``, ``default()`` if it is None; else a ValueError
    naming ``name``."""
    if value is None:
        return default()
    if not isinstance(value, kind):
        raise ValueError(f"{name} must be a {kind.__name__} or None, got {value!r}")
    return value


def _finite(name: str, value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a finite number, got {value!r}") from None
    if not math.isfinite(number):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return number
