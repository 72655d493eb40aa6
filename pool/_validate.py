"""Argument checks shared by every constructor: each error names the parameter it rejects."""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def positive(name: str, value: Any) -> float:
    """``value`` as a float if finite and > 0, else a ValueError naming ``name``."""
    number = _finite(name, value)
    if number <= 0:
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return number


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
