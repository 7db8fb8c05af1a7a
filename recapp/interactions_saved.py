"""How :class:`~recapp.interactions.Interactions` is saved: id maps as JSON, events as checked arrays.

A file is read back only after every id map and array is checked against the
others, so a malformed or mismatched file is a ValueError naming what is wrong
rather than an IndexError, or worse, events attached to the wrong ids.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from recapp.schema import EVENT_TYPES

# Id dtypes stored as numbers; "str" (all strings) and "object" (JSON's own str/int/float/bool, mixed) hold the rest.
_NUMERIC_ID_DTYPES = ("int64", "int32", "int16", "int8", "uint64", "uint32", "uint16", "uint8", "float64", "float32", "bool")
_OBJECT_ID_TYPES = (str, bool, int, float, np.bool_, np.integer, np.floating)


def _ids_to_json(index: pd.Index, name: str) -> dict:
    values = index.to_numpy()
    if values.dtype.name in _NUMERIC_ID_DTYPES:
        return {"dtype": values.dtype.name, "values": values.tolist()}
    if values.dtype != object:
        raise ValueError(f"cannot save {name} of dtype {values.dtype}: ids must be integers, floats or strings")
    if all(isinstance(v, str) for v in values):
        return {"dtype": "str", "values": [str(v) for v in values]}
    bad = [v for v in values if not isinstance(v, _OBJECT_ID_TYPES)]
    if bad:
        raise ValueError(f"cannot save {name} of type {type(bad[0]).__name__} (e.g. {bad[0]!r}): "
                         "ids must be integers, floats or strings")
    # JSON keeps str, int, float and bool apart, so mixed ids come back as they were (numpy scalars as Python ones).
    return {"dtype": "object", "values": [v.item() if isinstance(v, np.generic) else v for v in values]}


def _ids_from_json(saved, name: str) -> pd.Index:
    if not isinstance(saved, dict) or not isinstance(saved.get("values"), list):
        # A bad file is a ValueError whatever is wrong in it (TRY004 would have a TypeError here).
        raise ValueError(f"{name} must be an object with a list of 'values', not {saved!r:.80}")  # noqa: TRY004
    dtype, values = saved.get("dtype"), saved["values"]
    if dtype not in ("str", "object", *_NUMERIC_ID_DTYPES):
        raise ValueError(f"{name} has unknown dtype {dtype!r}; known: {['str', 'object', *_NUMERIC_ID_DTYPES]}")
    try:
        if dtype in ("str", "object"):
            if any(not isinstance(v, str if dtype == "str" else (str, bool, int, float)) for v in values):
                raise ValueError(f"values that are not {'strings' if dtype == 'str' else 'strings or numbers'}")
            ids = np.empty(len(values), dtype=object)
            ids[:] = values
        else:
            ids = np.asarray(values, dtype=dtype)
            if ids.ndim != 1 or ids.tolist() != values:
                raise ValueError(f"values that are not all {dtype}")
    except (TypeError, ValueError, OverflowError) as e:
        raise ValueError(f"{name} (dtype {dtype!r}) holds {e}") from e
    index = pd.Index(ids, dtype=object if dtype == "object" else None)
    if not index.is_unique:
        raise ValueError(f"{name} holds duplicate ids, e.g. {index[index.duplicated()][0]!r}")
    return index


def _check_saved_events(arrays: dict, n_users: int, n_items: int) -> None:
    # An index past its id map would raise IndexError deep in from_saved, or worse, name the wrong id.
    n = len(arrays.get("inter.uidx", ()))
    bounds = {"inter.uidx": (n_users, "user_ids"), "inter.iidx": (n_items, "item_ids"),
              "inter.event_code": (len(EVENT_TYPES), "the event types"), "inter.time": None, "inter.weight": None}
    for key, bound in {**bounds, **({"inter.rating": None} if "inter.rating" in arrays else {})}.items():
        a = arrays.get(key)
        if a is None or a.shape != (n,):
            raise ValueError(f"array {key} {'is missing' if a is None else f'has shape {a.shape}'} but inter.uidx has {n} events")
        if bound is not None and not np.issubdtype(a.dtype, np.integer):
            raise ValueError(f"array {key} has dtype {a.dtype}, not integers")
        bad = a[(a < 0) | (a >= bound[0])] if bound is not None else ()
        if len(bad):
            raise ValueError(f"array {key} holds index {bad[0]} but {bound[1]} has {bound[0]} entries")
