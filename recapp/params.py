"""The hyperparameter and setting check every part of recapp shares (models, experiments, data generators).

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
