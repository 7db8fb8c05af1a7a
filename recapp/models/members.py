"""Models made of other models (Hybrid, TwoStageRanker): their members' state, config and updates in one place.

A composite saves each member's own arrays under a prefix (``m0.``, ``r1.``,
...) beside its item popularity, and each member's spec, extra config and
sizes in its JSON config; loading rebuilds every member from those. Updates go
to every member, which then share one history so their indices agree.
"""
from __future__ import annotations

import numpy as np

_POPULARITY = "__item_popularity"


def member_state(models: list, prefix: str) -> dict:
    """Every member's ``_state()`` arrays (and item popularity) under ``{prefix}{k}.``."""
    out = {}
    for k, m in enumerate(models):
        out.update({f"{prefix}{k}.{name}": a for name, a in m._state().items()})
        out[f"{prefix}{k}.{_POPULARITY}"] = np.asarray(m.item_popularity_, dtype=np.float64)
    return out


def member_config(models: list) -> tuple[list, list, list]:
    """Each member's spec, extra config and [n_items, n_users_fit], for the composite's JSON config."""
    from recapp.models.hybrid import _spec

    return ([_spec(m) for m in models], [m._extra_config() for m in models],
            [[int(m.n_items_), int(m.n_users_fit_)] for m in models])


def restore_members(specs: list, extras: list, sizes: list, arrays: dict, prefix: str, interactions) -> list:
    """The fitted members rebuilt from what :func:`member_state` and :func:`member_config` wrote."""
    from recapp.models.hybrid import _from_spec

    models = []
    for k, (spec, extra, size) in enumerate(zip(specs, extras, sizes)):
        m = _from_spec(spec)
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
