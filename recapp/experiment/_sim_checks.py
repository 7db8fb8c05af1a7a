"""Input checks of the shopper simulator, its sessions and the bandit policies (re-exported by
:mod:`recapp.experiment._checks`, where the other experiment checks live).

Each raises ``ValueError`` naming the argument, the first offending position
and value, and what is accepted.
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from recapp.schema import ITEM_COL


# ---- the shopper simulator and the bandit policies ------------------------------------------------
def finite_array(name: str, value, *, shape: tuple | None = None, ndim: int | None = None) -> np.ndarray:
    """``value`` as a float64 array, refused unless it has ``shape`` (or ``ndim`` dimensions) and every entry is finite."""
    from recapp.experiment._checks import check_values    # _checks imports this module: a top-level import would cycle
    a = check_values(name, value, ndim=ndim)
    if shape is not None and a.shape != shape:
        raise ValueError(f"{name} has shape {a.shape}; expected {shape}")
    return a


def positive_entries(name: str, a: np.ndarray, *, allow_zero: bool) -> None:
    """Refuse a negative entry of ``a`` (and a zero one unless ``allow_zero``), naming its position."""
    from recapp.experiment._checks import check_values
    check_values(name, a, low=0.0, low_inclusive=allow_zero)


def check_slate_size(k, n_candidates: int) -> None:
    """Refuse a slate size ``k`` that is not an integer in [1, ``n_candidates``] (numpy's partition would fail obscurely)."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= n_candidates:
        raise ValueError(f"k={k!r} is not accepted; it must be an integer in [1, {n_candidates}] "
                         f"(the candidates per shopper: n_candidates or the catalogue, whichever is smaller)")


def check_feedback(feedback: pd.DataFrame, item_idx: np.ndarray, columns) -> None:
    """Refuse feedback with an item outside the catalogue (``item_idx`` -1) or a reward column not in [0, 1].

    ``Policy.observe`` takes the outcome of the policy's own last slates, so an
    unknown item is a caller's mistake, not a row to skip; numpy would count it
    for the last item (index -1). A NaN reward would stay in the sums for good.
    """
    unknown = np.flatnonzero(item_idx < 0)
    if len(unknown):
        items = feedback[ITEM_COL].to_numpy()[unknown[:5]].tolist()
        raise ValueError(f"feedback rows {unknown[:5].tolist()} have {ITEM_COL} {items} outside the catalogue; "
                         f"observe takes the feedback of this policy's own slates (catalogue items only)")
    for col in columns:
        try:
            r = feedback[col].to_numpy(dtype=np.float64)
        except (TypeError, ValueError) as err:
            raise ValueError(f"feedback[{col!r}] must hold numbers in [0, 1]; {err}") from None
        bad = ~((r >= 0.0) & (r <= 1.0))          # NaN fails both comparisons
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise ValueError(f"feedback[{col!r}] holds {float(r[row])!r} at row {row}; rewards must be finite numbers "
                             f"in [0, 1] (each impression is one Bernoulli trial)")


def check_own_policies(policies: Mapping) -> None:
    """Refuse one policy (or model) object given to two arms: it would learn from both arms' feedback.

    Shared by every runner that serves arms side by side (``run_sessions``,
    ``simulate_with_pre_period``); each arm needs its own copy.
    """
    first = {}
    for arm, p in policies.items():
        if id(p) in first:
            raise ValueError(f"policies[{arm!r}] is the same object as policies[{first[id(p)]!r}]; each arm needs its own "
                             "policy, or its learned state would mix both arms' feedback: pass each arm a copy "
                             "(copy.deepcopy(policy))")
        first[id(p)] = arm
