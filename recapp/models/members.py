"""Models made of other models (Hybrid, TwoStageRanker): their members' specs, fitting, state, config and updates
in one place.

A composite saves each member's own arrays under a prefix (``m0.``, ``r1.``,
...) beside its item popularity, and each member's spec, extra config and
sizes in its JSON config; loading rebuilds every member from those. Updates go
to every member, which then share one history so their indices agree.
"""
from __future__ import annotations

import numpy as np

from recapp.interactions import Interactions
from recapp.models.base import REGISTRY, Recommender

_POPULARITY = "__item_popularity"


def model_spec(model: Recommender) -> dict:
    """A JSON-able description of a member: class name and constructor parameters."""
    params = model.get_params()
    return {"class": type(model).__name__, "params": {k: (list(v) if isinstance(v, tuple) else v) for k, v in params.items()}}


def model_from_spec(spec) -> Recommender:
    """A fresh, unfitted model from a Recommender instance or a ``{"class", "params"}`` spec."""
    if isinstance(spec, Recommender):
        return type(spec)(**spec.get_params())
    if isinstance(spec, dict) and "class" in spec:
        cls = REGISTRY.get(spec["class"])
        if cls is None:
            raise ValueError(f"unknown model class {spec['class']!r}; known: {sorted(REGISTRY)}")
        params = dict(spec.get("params") or {})
        for k, v in params.items():
            if isinstance(v, list) and k in ("layers",):
                params[k] = tuple(v)
        return cls(**params)
    raise ValueError(f"models must be Recommender instances (or {{'class', 'params'}} specs), got {spec!r}")


def fit_member(model: Recommender, inter: Interactions, items):
    """Fit one member on ``inter`` (with the catalogue ``items`` for those that read it); returns the model."""
    return model.fit_with_items(inter, items)


def member_state(models: list, prefix: str) -> dict:
    """Every member's ``_state()`` arrays (and item popularity) under ``{prefix}{k}.``."""
    out = {}
    for k, m in enumerate(models):
        out.update({f"{prefix}{k}.{name}": a for name, a in m._state().items()})
        out[f"{prefix}{k}.{_POPULARITY}"] = np.asarray(m.item_popularity_, dtype=np.float64)
    return out


def member_config(models: list) -> tuple[list, list, list]:
    """Each member's spec, extra config and [n_items, n_users_fit], for the composite's JSON config."""
    return ([model_spec(m) for m in models], [m._extra_config() for m in models],
            [[int(m.n_items_), int(m.n_users_fit_)] for m in models])


def restore_members(specs: list, extras: list, sizes: list, arrays: dict, prefix: str, interactions) -> list:
    """The fitted members rebuilt from what :func:`member_state` and :func:`member_config` wrote."""
    models = []
    for k, (spec, extra, size) in enumerate(zip(specs, extras, sizes)):
        m = model_from_spec(spec)
        m.interactions_ = interactions
        m.n_items_, m.n_users_fit_ = size
        head = f"{prefix}{k}."
        m.item_popularity_ = arrays[head + _POPULARITY]
        m._set_state({name[len(head):]: a for name, a in arrays.items()
                      if name.startswith(head) and not name.endswith(_POPULARITY)})
        m._set_extra_config(extra)
        models.append(m)
    return models


def update_members(models: list, events):
    """Pass ``events`` to every member, then give them all the first member's history; returns that history."""
    for m in models:
        m.update(events)
    # Every member appended the same events; one shared history keeps their indices in step.
    shared = models[0].interactions_
    for m in models:
        m.interactions_ = shared
    return shared
