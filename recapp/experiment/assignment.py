"""Stable user-level assignment to arms and the sample-ratio-mismatch (SRM) check of an A/B test.

Split from :mod:`recapp.experiment.abtest`, which re-exports every name here.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from recapp.experiment._checks import check_level, check_per_arm, check_user_ids, check_values, distinct_names
from recapp.schema import USER_COL

ARM_COL = "arm"
#: Fabijan et al. (2019) flag a sample-ratio mismatch at p < 0.0005-0.001; a real SRM gives p ~ 1e-10.
SRM_THRESHOLD = 0.001


# ---- assignment ---------------------------------------------------------------
def hash_unit(users, salt: str = "recapp") -> np.ndarray:
    """A stable pseudo-uniform number in [0, 1) per user id: sha256 of ``"{salt}:{user}"``.

    The same id and salt give the same number on every machine and Python
    version (unlike ``hash()``), so assignment needs no stored table; a new
    salt per experiment makes experiments independent of each other. Refused
    (ValueError): ``users`` not 1-D (a row of ids would be hashed as one
    text), a missing id (None or NaN, hashed like the text "None" or "nan").
    """
    users = check_user_ids("users", users)
    out = np.empty(len(users), dtype=np.float64)
    for n, u in enumerate(users.tolist()):
        digest = hashlib.sha256(f"{salt}:{u}".encode()).digest()
        out[n] = int.from_bytes(digest[:8], "big") / 2.0**64
    return out


def assign(users, arms=("control", "treatment"), weights=None, salt: str = "recapp") -> pd.Series:
    """Stable user-level assignment: ``Series(arm, index=user_id)``.

    ``weights`` are the arms' shares (equal when None). A user's arm depends
    only on their id, the salt and the weights, never on arrival order. Arms: a list of distinct, non-blank labels.
    ``users``: a 1-D list of ids, none missing (as :func:`hash_unit`).
    """
    arms = distinct_names("arms", arms, "arms must be distinct labels, none missing or blank")
    w = np.full(len(arms), 1.0) if weights is None else check_values("weights", weights, low=0.0)
    if w.shape != (len(arms),) or w.sum() <= 0:
        raise ValueError(f"weights must be {len(arms)} non-negative numbers with a positive sum, got {weights!r}")
    edges = np.cumsum(w / w.sum())
    check_user_ids("users", users)
    users = np.atleast_1d(np.asarray(users))     # not the checked object array: the index keeps the ids' dtype
    idx = np.minimum(np.searchsorted(edges, hash_unit(users, salt), side="right"), len(arms) - 1)
    return pd.Series(np.asarray(arms, dtype=object)[idx], index=pd.Index(users, name=USER_COL), name=ARM_COL)


@dataclass
class SRMResult:
    """Outcome of the sample-ratio-mismatch check."""

    counts: pd.Series
    expected: pd.Series
    statistic: float
    pvalue: float
    threshold: float

    @property
    def mismatch(self) -> bool:
        """True when the observed split is too unlikely under the designed one: do not trust the test."""
        return bool(self.pvalue < self.threshold)

    def __str__(self) -> str:
        flag = "MISMATCH: the analysis is not trustworthy" if self.mismatch else "ok"
        return f"SRM chi-square = {self.statistic:.2f}, p = {self.pvalue:.3g} ({flag}); counts {self.counts.to_dict()}"


def srm_check(observed, weights=None, threshold: float = SRM_THRESHOLD) -> SRMResult:
    """Chi-square goodness-of-fit test of the users per arm against the designed split.

    ``observed`` is an assignment Series (one row per user), or counts per arm
    (dict or Series). A Series of bools or labels is an assignment, and so is a
    numeric one named ``arm`` or indexed by ``user_id`` (arms numbered 0, 1, ...);
    any other numeric Series holds counts. A p-value below ``threshold`` means the randomisation or
    the logging is broken (bots, redirects, lost events), whatever the metrics say.
    Counts must be whole numbers >= 0 with at least one user, weights > 0; a missing arm is refused.
    """
    check_level("threshold", threshold)
    labels = _is_assignment(observed)
    # dropna=False: a user without an arm must not vanish from the counts.
    counts = (observed.value_counts(dropna=False) if labels else pd.Series(observed, dtype="float64")).sort_index()
    if counts.index.isna().any():
        raise ValueError(f"observed has no arm for {counts[counts.index.isna()].sum():g} user(s); every user needs an arm")
    if len(counts) < 2:
        raise ValueError(f"srm_check needs at least two arms, got {counts.to_dict()}")
    check_per_arm("observed", counts, "whole numbers of users >= 0", lambda v: (v >= 0) & (v == np.round(v)))
    if not counts.sum() > 0:
        raise ValueError(f"observed has no users in any arm ({counts.to_dict()}): there is no split to check")
    if weights is None:
        w = pd.Series(1.0, index=counts.index)
    else:
        w = pd.Series(weights, dtype="float64")
        check_per_arm("weights", w, "shares > 0", lambda v: v > 0)
        if set(w.index) != set(counts.index):
            raise ValueError(f"weights must name the arms {sorted(counts.index)}, got {sorted(w.index)}")
        w = w.reindex(counts.index)
    expected = w / w.sum() * counts.sum()
    res = stats.chisquare(counts.to_numpy(dtype=np.float64), expected.to_numpy())
    return SRMResult(counts.astype("int64"), expected, float(res.statistic), float(res.pvalue), threshold)


def _is_assignment(observed) -> bool:
    """Whether ``observed`` is one arm per user (to be counted) rather than counts per arm.

    A bool or text Series is an assignment. So is a numeric one named ``arm``
    (``assign``'s name, a log's arm column) or indexed by ``user_id``: arms
    numbered 0 and 1 were once read as counts, one "arm" per user, and any
    split passed as ok.
    """
    if not isinstance(observed, pd.Series):
        return False
    return (pd.api.types.is_bool_dtype(observed) or not pd.api.types.is_numeric_dtype(observed)
            or observed.name == ARM_COL or observed.index.name == USER_COL)


__all__ = ["ARM_COL", "SRM_THRESHOLD", "SRMResult", "assign", "hash_unit", "srm_check"]
