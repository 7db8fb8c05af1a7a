"""Models made of other models (Hybrid, TwoStageRanker): their members' specs, fitting, state, config and updates
in one place.

A composite saves each member's own arrays under a prefix (``m0.``, ``r1.``,
...) beside its item popularity, and each member's spec, extra config and
sizes in its JSON config; loading rebuilds every member from those. Updates go
to every member, which then share one history so their indices agree.
"""
from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import pandas as pd

from recapp.models.base import REGISTRY, UNLISTED, Recommender
from recapp.models.live import LiveScorer

_POPULARITY = "__item_popularity"


def model_spec(model: Recommender) -> dict:
    """A JSON-able description of a member: class name and constructor parameters."""
    params = model.get_params()
    return {"class": type(model).__name__, "params": {k: _plain(v) for k, v in params.items()}}


def _plain(value):
    """A parameter as JSON takes it: tuples, numpy arrays and pandas Series as lists, models (a composite's members) as specs."""
    if isinstance(value, Recommender):
        return model_spec(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return np.asarray(value).tolist() if isinstance(value, (np.ndarray, pd.Series, pd.Index)) else value


def model_from_spec(spec) -> Recommender:
    """A fresh, unfitted model from a Recommender instance or a ``{"class", "params"}`` spec.

    A spec may name a class declared ``listed=False`` (:data:`~recapp.models.base.UNLISTED`, such
    as ALSWR once ``recapp.spark`` is imported): a composite given such a member saves it by name
    and must read it back.
    """
    if isinstance(spec, Recommender):
        return type(spec)(**spec.get_params())
    if isinstance(spec, dict) and "class" in spec:
        cls = REGISTRY.get(spec["class"]) or UNLISTED.get(spec["class"])
        if cls is None:
            raise ValueError(f"unknown model class {spec['class']!r}; known: {sorted(REGISTRY)}, "
                             f"and once their modules are imported {sorted(UNLISTED)}")
        params = dict(spec.get("params") or {})
        unknown = sorted(set(params) - set(cls._param_names()))
        if unknown:
            raise ValueError(f"model spec {spec!r:.200}: {cls.__name__} has no parameter(s) {unknown}; "
                             f"parameters: {cls._param_names()}")
        for k, v in params.items():
            if isinstance(v, list) and k in ("layers",):
                params[k] = tuple(v)
        return cls(**params)
    raise ValueError(f"models must be Recommender instances (or {{'class', 'params'}} specs), got {spec!r}")


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
                      if name.startswith(head) and name != head + _POPULARITY})
        m._set_extra_config(extra)
        models.append(m)
    return models


def update_composite(composite, models: list, events):
    """Pass ``events`` to every member, share the first member's history among them and the composite; returns it.

    The composite's ``update``: every member folds the events in its own way,
    then all of them (and the composite) read one history so their indices agree.
    """
    composite._check_fitted()
    if events is None or len(events) == 0:
        return composite
    if isinstance(events, dict):
        events = pd.DataFrame([events])
    for m in models:
        m.update(events)
    shared = models[0].interactions_
    for m in models:
        m.interactions_ = shared
    composite.interactions_ = shared
    composite.item_popularity_ = shared.item_popularity()
    return composite


@contextmanager
def members_as_specs(composite, attr: str):
    """While the composite saves: its constructor's member list ``attr`` as JSON specs (class and parameters),
    and any parameter given as a numpy array or pandas Series (such as a Hybrid's weights) as a list."""
    stored = composite.get_params()
    # json.dumps takes neither; one of them would stop save after state.safetensors is written.
    for name, v in stored.items():
        if isinstance(v, (np.ndarray, pd.Series, pd.Index)):
            setattr(composite, name, _plain(v))
    members = stored[attr]
    setattr(composite, attr, None if members is None else [model_spec(x) if isinstance(x, Recommender) else x for x in members])
    try:
        yield
    finally:
        composite.set_params(**stored)


class CompositeScorer(LiveScorer):
    """A live scorer made of other scorers (``parts``): each part's state and score vector are kept per shopper,
    so an event costs what each part's own fold costs."""

    def __init__(self, model, parts: list, n_items: int | None = None):
        super().__init__(model, n_items)
        self.parts = parts

    def start(self, history):
        return {"states": [s.start(history) for s in self.parts], "vecs": [None] * len(self.parts)}

    def fold(self, state, history, item, delta, vec):
        for j, s in enumerate(self.parts):
            if item < s.n_items and not s.fold(state["states"][j], history, item, delta, state["vecs"][j]):
                state["vecs"][j] = None
        return False

    def part_vectors(self, state, history) -> list:
        """Each part's score vector for this shopper (recomputed only after a fold invalidated it), unscaled."""
        vecs = state["vecs"]
        for j, s in enumerate(self.parts):
            if vecs[j] is None:
                vecs[j] = s.scores(state["states"][j], history)
        return vecs

    def similarity(self, idx):
        for s in self.parts:
            got = s.similarity(idx)
            if got is not None:
                return got
        return None
