"""Argument checks for the public functions of :mod:`phaselab`.

Each check raises :class:`ValueError` with a message that names the parameter and the allowed
range, so that bad input fails loudly at the call rather than deep inside a solver.
"""

from __future__ import annotations

import math
from numbers import Integral, Real
from typing import Any

import numpy as np


def finite_real(name: str, value: Any) -> float:
    """Return ``value`` as a float, or raise if it is not a finite real number."""
    if isinstance(value, bool) or not isinstance(value, (Real, np.floating, np.integer)):
        raise ValueError(f"{name} must be a finite real number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return value


def positive(name: str, value: Any) -> float:
    """A finite real number > 0."""
    value = finite_real(name, value)
    if value <= 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")
    return value


def non_negative(name: str, value: Any) -> float:
    """A finite real number >= 0."""
    value = finite_real(name, value)
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value!r}")
    return value


def in_range(name: str, value: Any, low: float, high: float, *, closed: bool = True) -> float:
    """A finite real number in [low, high] (or (low, high) when ``closed`` is False)."""
    value = finite_real(name, value)
    inside = low <= value <= high if closed else low < value < high
    if not inside:
        interval = f"[{low}, {high}]" if closed else f"({low}, {high})"
        raise ValueError(f"{name} must lie in {interval}, got {value!r}")
    return value


def integer(name: str, value: Any, minimum: int | None = None, maximum: int | None = None) -> int:
    """An integer (not a bool, not a float) within optional bounds."""
    if isinstance(value, bool) or not isinstance(value, (Integral, np.integer)):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {value}")
    return value


def finite_array(name: str, value: Any, *, ndim: int | None = None, positive_entries: bool = False) -> np.ndarray:
    """A float array with finite entries (optionally of a given ``ndim``, optionally all > 0)."""
    try:
        array = np.asarray(value, dtype=float)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be an array of real numbers, got {value!r}") from err
    if ndim is not None and array.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimension(s), got shape {array.shape}")
    if array.size == 0:
        raise ValueError(f"{name} must not be empty")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must have finite entries, got {value!r}")
    if positive_entries and np.any(array <= 0):
        raise ValueError(f"{name} must have entries > 0, got {value!r}")
    return array


def one_of(name: str, value: Any, allowed: tuple[str, ...]) -> str:
    """A string among ``allowed``."""
    if value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
    return value
