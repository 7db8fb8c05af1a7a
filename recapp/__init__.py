"""recapp: a Jupyter-native lab for real-time e-commerce recommendation.

Submodules load on first use (``recapp.models``, ``recapp.metrics`` ...) so that
``import recapp`` stays fast and torch is only imported by the models that need it.
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

_SUBMODULES = {
    "schema", "data", "interactions", "split", "metrics", "models", "evaluate", "tune", "rerank",
    "realtime", "experiment", "viz", "dashboard", "profile",
}


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f"recapp.{name}")
    raise AttributeError(f"module 'recapp' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_SUBMODULES))
