"""The setting checks every part of recapp shares (models, experiments, data generators, the engine): numbers and seeds.

Kept apart from :mod:`recapp.models` so that a module checking one setting does not import every model (and torch).
"""
from __future__ import annotations

import numpy as np


def check_param(name: str, value, *, low=None, high=None, choices=None, integer: bool = False, low_inclusive: bool = True,
                high_inclusive: bool = True):
    """Raise ``ValueError`` naming ``name`` and the accepted range unless ``value`` is valid."""
    if choices is not None:
        if value not in choices:
            raise ValueError(f"{name}={value!r} is not accepted; accepted values: {list(choices)}")
        return value
    if integer and (not isinstance(value, (int, np.integer)) or isinstance(value, bool)):
        raise ValueError(f"{name}={value!r} must be an integer")
    if not isinstance(value, (int, float, np.integer, np.floating)) or isinstance(value, bool) \
            or not (isinstance(value, (int, np.integer)) or np.isfinite(value)):  # np.isfinite fails on ints past 64 bits
        raise ValueError(f"{name}={value!r} must be a finite number")
    if low is not None and (value < low if low_inclusive else value <= low):
        op = ">=" if low_inclusive else ">"
        raise ValueError(f"{name}={value!r} is out of range; it must be {op} {low}")
    if high is not None and (value > high if high_inclusive else value >= high):
        op = "<=" if high_inclusive else "<"
        raise ValueError(f"{name}={value!r} is out of range; it must be {op} {high}")
    return value


def check_seed(value, name: str = "random_state", *, generators: bool = False):
    """Refuse a seed that is not None or an integer >= 0 (a Generator or SeedSequence too when ``generators``).

    ``int()`` would truncate 1.7 to 1 and read "5" as 5, and numpy's own error
    names neither the argument nor the value.
    """
    if generators and isinstance(value, (np.random.Generator, np.random.SeedSequence)):
        return value
    if value is None or (isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= 0):
        return value
    also = ", a numpy Generator or a SeedSequence" if generators else ""
    raise ValueError(f"{name}={value!r} is not accepted; a seed must be None, an integer >= 0{also}")
