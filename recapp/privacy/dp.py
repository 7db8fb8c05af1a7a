"""Differentially private item counts.

:func:`private_item_counts` releases the number of distinct users per item with
user-level differential privacy. Neighbouring datasets differ by *all* events
of one user (added or removed). One user can touch many items, so each user's
contribution is first clipped to their ``max_items_per_user`` earliest distinct
items (ties by item index; the choice depends on that user's own events only).
Adding or removing a user then changes at most ``m = max_items_per_user``
counts by 1 each: L1 sensitivity ``m``, L2 sensitivity ``sqrt(m)``.

* ``"laplace"``: discrete Laplace noise, ``P(k) ~ exp(-|k| / b)`` with
  ``b = m / epsilon``, on every count: epsilon-DP (``delta`` must be None or 0).
* ``"gaussian"``: discrete Gaussian noise, ``P(k) ~ exp(-k**2 / (2 sigma**2))``:
  ``rho = m / (2 sigma**2)`` zero-concentrated DP, hence (epsilon, delta)-DP for
  ``epsilon = rho + 2 sqrt(rho log(1/delta))`` (Bun and Steinke 2016, Prop. 1.3);
  sigma solves that equation. OpenDP's tighter conversion would allow ~15% less noise.

These are the mechanisms of Canonne, Kamath and Steinke (2020), the ones OpenDP's
``make_laplace`` / ``make_gaussian`` apply to integers; noise on integers avoids
the floating-point attack on textbook Laplace (Mironov 2012). With
``random_state=None`` the noise comes from OpenDP's cryptographically secure
samplers when ``opendp`` is installed (``pip install opendp``: do so for a real
release), else from numpy seeded by the operating system's entropy. An integer
``random_state`` draws the same distributions reproducibly, for experiments;
anyone who knows the seed can subtract that noise, so such a release is *not*
private. The item universe is taken to be public (the catalogue): an item that
exists only because one user touched it would reveal them. Each release spends
its (epsilon, delta); k releases on overlapping data spend k times that (basic
composition).
"""
from __future__ import annotations

import math
import secrets

import numpy as np

from recapp.models.base import check_param
from recapp.schema.cells import _number, _plain

MECHANISMS = ("laplace", "gaussian")
#: Above this sigma the discrete Gaussian's variance is sigma**2 to double precision (the gap is
#: about exp(-2 pi**2 sigma**2)), and summing its 80 * sigma terms would exhaust memory.
_GAUSS_SUM_MAX_SIGMA = 1e4


def check_dp_params(epsilon, delta, mechanism, max_items_per_user) -> None:
    """Raise ``ValueError`` naming the bad argument unless the DP settings are valid."""
    if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float, np.integer, np.floating)) \
            or not math.isfinite(epsilon) or epsilon <= 0:
        raise ValueError(f"epsilon={epsilon!r} must be a finite number > 0 (smaller is more private), or None for no noise")
    if mechanism not in MECHANISMS:
        raise ValueError(f"mechanism={mechanism!r} is not accepted; accepted values: {list(MECHANISMS)}")
    if mechanism == "laplace" and delta not in (None, 0, 0.0):
        raise ValueError(f"delta={delta!r}: the Laplace mechanism is pure epsilon-DP; leave delta None "
                         "or use mechanism='gaussian'")
    if mechanism == "gaussian" and (isinstance(delta, bool) or not isinstance(delta, (float, np.floating))
                                    or not 0.0 < delta < 1.0):
        raise ValueError(f"delta={delta!r}: the Gaussian mechanism needs a delta in (0, 1), e.g. 1e-6 "
                         "(well below 1 / number of users)")
    if isinstance(max_items_per_user, bool) or not isinstance(max_items_per_user, (int, np.integer)) \
            or max_items_per_user < 1:
        raise ValueError(f"max_items_per_user={max_items_per_user!r} must be an integer >= 1 "
                         "(each user's contribution is clipped to that many items)")


def _whole_numbers(name: str, values, *, nonnegative: bool = True) -> np.ndarray:
    """``values`` (1-D) as int64, refused (``ValueError`` naming the first offender) unless all are whole numbers (>= 0).

    A cast alone would read an index 1.7 as 1 and a NaN as an arbitrary integer.
    """
    a = np.asarray(values)
    if a.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {a.shape}")
    if a.dtype.kind in "iu":
        f = a
    else:
        f = a.astype(np.float64) if a.dtype.kind == "f" else np.array([_number(v) for v in a.tolist()], dtype=np.float64)
        with np.errstate(invalid="ignore"):
            bad = np.flatnonzero(~np.isfinite(f) | (f != np.floor(f)))
        if len(bad):
            raise ValueError(f"{name}[{bad[0]}] = {_plain(a[bad[0]])!r:.80} is not a whole number ({len(bad)} are not)")
    bad = np.flatnonzero(f < 0) if nonnegative else []
    if len(bad):
        raise ValueError(f"{name}[{bad[0]}] = {_plain(a[bad[0]])!r} is negative; {name} must be >= 0 ({len(bad)} are negative)")
    return f.astype(np.int64)


def clipped_item_counts(users, items, times, n_items: int, max_items_per_user: int) -> tuple[np.ndarray, float]:
    """Distinct users per item when each user counts only for their ``max_items_per_user`` earliest items.

    ``users`` and ``items`` are internal indices (one row per event). Returns
    (integer counts of length ``n_items``, share of distinct user-item pairs dropped).
    Raises ``ValueError`` naming the first index outside ``users >= 0`` or ``0 <= items < n_items``
    or not a whole number, or the first time that is not a finite number.
    """
    check_param("n_items", n_items, low=0, integer=True)
    check_param("max_items_per_user", max_items_per_user, low=1, integer=True)
    users, items = _whole_numbers("users", users), _whole_numbers("items", items, nonnegative=False)
    if not len(users) == len(items) == len(times):
        raise ValueError(f"users, items and times have lengths {len(users)}, {len(items)}, {len(times)}; "
                         "they need one entry per event")
    try:
        times = np.asarray(times, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"times must be numbers (epoch seconds): {exc}") from None
    bad = np.flatnonzero(~np.isfinite(times))
    if len(bad):          # NaN would sort last, silently making it a user's latest item
        raise ValueError(f"times[{bad[0]}] = {float(times[bad[0]])!r} is not a finite number ({len(bad)} are not)")
    # An out-of-range index would collide in the pair key u * n_items + i, or release a count for an item
    # outside the public universe.
    bad = np.flatnonzero((items < 0) | (items >= n_items))
    if len(bad):
        raise ValueError(f"items[{bad[0]}] = {items[bad[0]]} is outside the item universe [0, n_items={n_items}); "
                         f"{len(bad)} item indices are out of range")
    if len(users) == 0:
        return np.zeros(n_items, dtype=np.int64), 0.0
    order = np.lexsort((items, times, users))
    u, i = users[order], items[order]
    _, first = np.unique(u * np.int64(n_items) + i, return_index=True)
    keep_pairs = np.sort(first)                      # first event of each pair, still in (user, time) order
    u, i = u[keep_pairs], i[keep_pairs]
    starts = np.flatnonzero(np.r_[True, u[1:] != u[:-1]])
    rank = np.arange(len(u)) - np.repeat(starts, np.diff(np.r_[starts, len(u)]))
    kept = rank < max_items_per_user
    return np.bincount(i[kept], minlength=n_items).astype(np.int64), float(1.0 - kept.mean())


def _opendp_noise(counts: np.ndarray, scale: float, mechanism: str) -> np.ndarray | None:
    """OpenDP's secure sampler on integer counts, or None when opendp is not installed."""
    try:
        import opendp.prelude as dp
    except ImportError:
        return None
    dp.enable_features("contrib")
    domain = dp.vector_domain(dp.atom_domain(T=int))
    make = dp.m.make_laplace if mechanism == "laplace" else dp.m.make_gaussian
    metric = dp.l1_distance(T=int) if mechanism == "laplace" else dp.l2_distance(T=float)
    return np.asarray(make(domain, metric, scale=scale)(counts.tolist()), dtype=np.float64)


def _check_noise(scale, mechanism) -> None:
    # An unknown mechanism used to fall through to the Gaussian branch: noise other than the one asked for.
    check_param("mechanism", mechanism, choices=MECHANISMS)
    check_param("scale", scale, low=0, low_inclusive=False)


def sensitivity(mechanism: str, max_items_per_user: int) -> float:
    """L1 (Laplace) or L2 (Gaussian) sensitivity of clipped distinct-user counts: ``m`` or ``sqrt(m)``.

    Refuses a mechanism other than :data:`MECHANISMS` and ``m`` that is not an integer >= 1.
    """
    check_param("mechanism", mechanism, choices=MECHANISMS)
    check_param("max_items_per_user", max_items_per_user, low=1, integer=True)
    return float(max_items_per_user) if mechanism == "laplace" else math.sqrt(max_items_per_user)


def noise_scale(epsilon: float, delta=None, mechanism: str = "laplace", max_items_per_user: int = 1) -> float:
    """Laplace ``b = m / epsilon``, or the Gaussian sigma whose zCDP gives (epsilon, delta) by Bun and Steinke's bound."""
    check_dp_params(epsilon, delta, mechanism, max_items_per_user)
    if mechanism == "laplace":
        return sensitivity(mechanism, max_items_per_user) / float(epsilon)
    log_d = math.log(1.0 / float(delta))
    rho = (math.sqrt(log_d + float(epsilon)) - math.sqrt(log_d)) ** 2
    return sensitivity(mechanism, max_items_per_user) / math.sqrt(2.0 * rho)


def noise_variance(scale: float, mechanism: str = "laplace") -> float:
    """Variance of the integer noise: discrete Laplace ``2e^(-1/b) / (1 - e^(-1/b))^2``, discrete Gaussian summed exactly.

    ``scale`` must be a finite number > 0 and ``mechanism`` one of :data:`MECHANISMS`.
    """
    _check_noise(scale, mechanism)
    if mechanism == "laplace":
        r = math.exp(-1.0 / scale)
        # 1 - r rounds to 0 once b passes ~1e16; expm1 keeps the gap there.
        return 2.0 * r / ((1.0 - r) or -math.expm1(-1.0 / scale)) ** 2
    if scale > _GAUSS_SUM_MAX_SIGMA:
        return float(scale) ** 2
    k = np.arange(-int(40 * scale) - 1, int(40 * scale) + 2, dtype=np.float64)
    w = np.exp(-k * k / (2.0 * scale * scale))
    return float((k * k * w).sum() / w.sum())


def _discrete_laplace(rng: np.random.Generator, scale: float, n: int) -> np.ndarray:
    p = -math.expm1(-1.0 / scale)                 # 1 - e^(-1/b): the difference of two geometrics is discrete Laplace
    return rng.geometric(p, n) - rng.geometric(p, n)


def _discrete_gaussian(rng: np.random.Generator, sigma: float, n: int) -> np.ndarray:
    # Canonne, Kamath and Steinke (2020), Algorithm 3: rejection from a discrete Laplace of scale t.
    t = math.floor(sigma) + 1
    out = np.empty(n, dtype=np.int64)
    todo = np.arange(n)
    while len(todo):
        y = _discrete_laplace(rng, t, len(todo))
        accept = rng.random(len(todo)) < np.exp(-((np.abs(y) - sigma * sigma / t) ** 2) / (2.0 * sigma * sigma))
        out[todo[accept]] = y[accept]
        todo = todo[~accept]
    return out


def add_noise(counts, scale: float, mechanism: str = "laplace", random_state=None) -> np.ndarray:
    """Integer counts plus discrete Laplace (scale ``b``) or discrete Gaussian (sigma) noise, as floats.

    ``random_state=None`` samples with OpenDP's secure sampler when installed,
    else numpy seeded from the OS; an integer uses a seeded numpy generator with
    the same distributions (reproducible, not private). Refuses (``ValueError``
    naming the first offender) counts that are not whole numbers >= 0, a
    ``scale`` that is not a finite number > 0 and an unknown ``mechanism``.
    """
    _check_noise(scale, mechanism)
    counts = _whole_numbers("counts", counts)
    if random_state is None:
        got = _opendp_noise(counts, scale, mechanism)
        if got is not None:
            return got
        random_state = secrets.randbits(128)
    rng = np.random.default_rng(random_state)
    sample = _discrete_laplace if mechanism == "laplace" else _discrete_gaussian
    return (counts + sample(rng, scale, len(counts))).astype(np.float64)


def private_item_counts(users, items, times, n_items: int, *, epsilon: float, delta=None, mechanism: str = "laplace",
                        max_items_per_user: int = 50, random_state=None) -> dict:
    """One user-level DP release of distinct users per item (see the module docstring for the guarantee).

    Returns a dict: ``counts`` (noisy, float, may be negative), ``scale`` (b or
    sigma), ``sensitivity`` (L1 ``m`` or L2 ``sqrt(m)``), ``clipped_share`` (pairs
    dropped by clipping; computed from the data, so not itself released privately),
    ``epsilon``, ``delta`` and ``mechanism``.
    """
    check_dp_params(epsilon, delta, mechanism, max_items_per_user)
    exact, clipped = clipped_item_counts(users, items, times, n_items, int(max_items_per_user))
    scale = noise_scale(epsilon, delta, mechanism, int(max_items_per_user))
    return {"counts": add_noise(exact, scale, mechanism, random_state), "scale": scale,
            "sensitivity": sensitivity(mechanism, int(max_items_per_user)), "clipped_share": clipped,
            "epsilon": float(epsilon), "delta": None if delta in (None, 0) else float(delta), "mechanism": mechanism}


__all__ = ["MECHANISMS", "check_dp_params", "clipped_item_counts", "sensitivity", "noise_scale", "noise_variance",
           "add_noise", "private_item_counts"]
