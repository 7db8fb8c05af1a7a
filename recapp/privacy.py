"""Privacy: keyed pseudonyms for shopper ids, and differentially private item counts.

Pseudonymisation
----------------
A :class:`Pseudonymizer` maps a shopper id to ``HMAC-SHA256(key, canonical id)``
as lowercase hex, truncated to ``length`` characters (32 by default: 128 bits).
The same id always maps to the same pseudonym under one key; without the key
the mapping cannot be recomputed or inverted, so a leaked store or model file
names no shopper. ``7``, ``7.0`` and ``"7"`` are one id (ids are compared as
text, integral floats as integers). Missing ids (None, NaN, blank) pass through
unchanged so validation still reports them. Two distinct ids share a pseudonym
with probability at most ``n * (n - 1) / 2 / 16 ** length`` for ``n`` ids (the
birthday bound, :meth:`Pseudonymizer.collision_bound`): about 1.5e-21 for a
billion ids at 32 hex characters.

The key comes from the caller, ``$RECAPP_PSEUDONYM_KEY``, or a key file
(``$RECAPP_PSEUDONYM_KEY_FILE``); there is never a default key.

>>> p = Pseudonymizer.from_env()                     # or Pseudonymizer(key)
>>> model = EASE().fit(p.frame(train))               # the model file holds pseudonyms
>>> engine = Engine(model, pseudonymizer=p, store="shop.duckdb")
>>> engine.ingest({"user_id": "alice@example.com", ...}); engine.recommend("alice@example.com")

Differentially private counts
-----------------------------
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

import hmac
import math
import os
import re
import secrets
import stat
import warnings
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from recapp.models.base import check_param
from recapp.schema import USER_COL, events_frame
from recapp.schema.cells import _missing, _number, _plain, id_problems

KEY_ENV = "RECAPP_PSEUDONYM_KEY"
MIN_KEY_BYTES = 16
DEFAULT_LENGTH = 32
MECHANISMS = ("laplace", "gaussian")
#: Floats at or above this size may stand for more than one integer (2**53 + 1 rounds to 2**53).
MAX_EXACT_FLOAT_INT = 2 ** 53
# What pandas.api.types.infer_dtype calls a column that can hold no boolean and no unhashable id.
_PLAIN_ID_KINDS = ("string", "integer", "floating", "mixed-integer-float", "decimal", "empty")
#: Above this sigma the discrete Gaussian's variance is sigma**2 to double precision (the gap is
#: about exp(-2 pi**2 sigma**2)), and summing its 80 * sigma terms would exhaust memory.
_GAUSS_SUM_MAX_SIGMA = 1e4


class MissingKeyError(RuntimeError):
    """No pseudonymisation key was configured (there is never a default key)."""


# ---- pseudonymisation ------------------------------------------------------------------
# A missing id is the schema's missing value (None, NaN, NA, NaT, Decimal NaN, blank text), so what
# passes through here unchanged is exactly what validation then reports as missing.


def canonical_id(v) -> str:
    """The text an id is keyed by: integers (and integral floats) in decimal, anything else ``str(v)``.

    Raises ``ValueError`` for a float of magnitude 2**53 or more: it no longer
    tells neighbouring integers apart, so distinct shoppers would share a pseudonym.
    """
    if isinstance(v, (bool, np.bool_)):
        raise TypeError(f"user id {v!r} is a boolean; ids are integers or strings")
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)) and float(v).is_integer():
        if abs(float(v)) >= MAX_EXACT_FLOAT_INT:
            raise ValueError(f"user id {v!r} is a float at or above 2**53, so it may stand for several integer ids; "
                             "keep large ids as int or str (e.g. read the column with dtype=object or 'Int64')")
        return str(int(v))
    if isinstance(v, bytes):
        return v.decode("utf-8")
    try:
        hash(v)
    except TypeError:
        raise TypeError(f"user id {v!r:.80} is a {type(v).__name__}; ids are integers or strings") from None
    return str(v)


def new_key_file(path) -> Path:
    """Write a fresh random key (32 bytes, hex) to ``path`` with owner-only permissions; never overwrites."""
    path = Path(path).expanduser()
    if path.exists():
        raise FileExistsError(f"{path} already exists; a key file is never overwritten (pseudonyms would change)")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_hex(32) + "\n")
    return path


_HOW_TO = (f"set ${KEY_ENV} to a secret of at least {MIN_KEY_BYTES} bytes, or ${KEY_ENV}_FILE to a key file; create one "
           "with `python -c \"import recapp.privacy as p; p.new_key_file('~/.config/recapp/pseudonym.key')\"` "
           "and keep it out of version control")


class Pseudonymizer:
    """Keyed pseudonyms: ``HMAC-SHA256(key, canonical_id(id))`` as hex, the first ``length`` characters.

    ``key`` is bytes or text (text is UTF-8 encoded) of at least
    :data:`MIN_KEY_BYTES` bytes. ``length`` is 16 to 64 hex characters.
    The key never appears in ``repr``; :attr:`key_id` is a fingerprint that
    tells two keys apart without revealing either.
    """

    def __init__(self, key, *, length: int = DEFAULT_LENGTH):
        if isinstance(key, str):
            key = key.encode("utf-8")
        if not isinstance(key, (bytes, bytearray)):
            raise TypeError(f"key must be bytes or str, got {type(key).__name__}")
        if len(key) < MIN_KEY_BYTES:
            raise ValueError(f"key is {len(key)} bytes; a pseudonymisation key needs at least {MIN_KEY_BYTES} "
                             f"(use secrets.token_hex(32) or recapp.privacy.new_key_file)")
        if not (isinstance(length, (int, np.integer)) and not isinstance(length, (bool, np.bool_)) and 16 <= length <= 64):
            raise ValueError(f"length={length!r} must be an integer number of hex characters in [16, 64]")
        length = int(length)
        self._key = bytes(key)
        self._mac = hmac.new(self._key, digestmod="sha256")     # copied per id: the key schedule is done once
        self.length = length
        self.key_id = hmac.digest(self._key, b"recapp pseudonym key id", "sha256").hex()[:16]
        self._pattern = re.compile(f"[0-9a-f]{{{length}}}")

    @classmethod
    def from_env(cls, var: str = KEY_ENV, key_file=None, *, length: int = DEFAULT_LENGTH) -> "Pseudonymizer":
        """The key from ``key_file``, else ``$var``, else the file named by ``$var_FILE``; else :class:`MissingKeyError`.

        A key that is too short is refused with an error naming the file or variable it came from.
        """
        if key_file is None and not os.environ.get(var) and os.environ.get(f"{var}_FILE"):
            key_file = os.environ[f"{var}_FILE"]
        if key_file is not None:
            path = Path(key_file).expanduser()
            if not path.is_file():
                what = "is not a file" if path.exists() else "does not exist"
                raise MissingKeyError(f"key_file {str(path)!r} {what}; " + _HOW_TO)
            if os.name == "posix" and path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
                warnings.warn(f"key file {path} is readable by other users; chmod 600 it", stacklevel=2)
            return cls._from_source(path.read_bytes().strip(), f"key file {str(path)!r}", length)
        value = os.environ.get(var)
        if not value:
            raise MissingKeyError(f"no pseudonymisation key: ${var} is not set; " + _HOW_TO.replace(KEY_ENV, var))
        return cls._from_source(value, f"${var}", length)

    @classmethod
    def _from_source(cls, key, source: str, length) -> "Pseudonymizer":
        try:
            return cls(key, length=length)
        except ValueError as exc:
            if not str(exc).startswith("key is"):
                raise
            # The bare message would not say which file or variable holds the short key.
            raise ValueError(f"{source}: {exc}") from None

    def __call__(self, user_id) -> str:
        """The pseudonym of one id (a missing id is returned unchanged)."""
        if _missing(user_id):
            return user_id
        mac = self._mac.copy()
        mac.update(canonical_id(user_id).encode("utf-8"))
        return mac.hexdigest()[: self.length]

    def many(self, values) -> np.ndarray:
        """Pseudonyms of many ids (object array); each distinct id is hashed once.

        Refuses (``TypeError`` naming the first one's position and the count) a batch
        holding an id that is a boolean or unhashable, before hashing any.
        """
        if isinstance(values, (str, bytes)) or not np.iterable(values):
            raise TypeError(f"values must be a list or array of ids, got {type(values).__name__}; "
                            "call the pseudonymizer itself for one id")
        ids = pd.Series(list(values), dtype=object)
        if pd.api.types.infer_dtype(ids, skipna=True) not in _PLAIN_ID_KINDS:
            # factorize would merge True with 1 (equal and same hash), giving a boolean shopper 1's pseudonym.
            whys = id_problems(ids)
            bad = np.flatnonzero(pd.notna(whys))
            if len(bad):
                i = int(bad[0])
                raise TypeError(f"user id {_plain(ids.iloc[i])!r:.80} at position {i} {whys[i]}; {len(bad)} of "
                                f"{len(ids)} ids cannot be pseudonymised, so none were")
        codes, uniques = pd.factorize(ids, use_na_sentinel=True)
        mapped = np.array([self(u) for u in uniques] + [None], dtype=object)
        return mapped[codes]

    def frame(self, df: pd.DataFrame, columns=(USER_COL,)) -> pd.DataFrame:
        """A copy of ``df`` with the id ``columns`` replaced by pseudonyms (missing ids kept missing).

        Refuses an id column that is absent (``KeyError``) or repeated (``ValueError``), and ids :meth:`many` refuses.
        """
        columns = (columns,) if isinstance(columns, str) else tuple(columns)
        unknown = [c for c in columns if c not in df.columns]
        if unknown:
            raise KeyError(f"columns {unknown} are not in the frame; columns: {list(df.columns)}")
        repeated = [c for c in columns if (df.columns == c).sum() > 1]
        if repeated:
            raise ValueError(f"columns {repeated} appear more than once in the frame; columns: {list(df.columns)}")
        return df.assign(**{c: pd.Series(self.many(df[c].to_numpy(dtype=object)), index=df.index, dtype=object)
                            for c in columns})

    def events(self, events):
        """An event (dict), a list of them or a DataFrame with ``user_id`` replaced (a list comes back as a frame)."""
        if isinstance(events, Mapping):
            return {**events, USER_COL: self(events[USER_COL])} if USER_COL in events else events
        if not isinstance(events, pd.DataFrame):
            events = events_frame(events)
        return self.frame(events) if USER_COL in events.columns else events

    def looks_like(self, values) -> np.ndarray:
        """Which ``values`` have the form of a pseudonym of this length (a format check, not a key check)."""
        return np.fromiter((isinstance(v, str) and self._pattern.fullmatch(v) is not None for v in values),
                           dtype=bool, count=len(values))

    def collision_bound(self, n_ids: int) -> float:
        """Upper bound on the probability that any two of ``n_ids`` distinct ids share a pseudonym (``n_ids``: an integer >= 0)."""
        check_param("n_ids", n_ids, low=0, integer=True)
        return min(1.0, n_ids * (n_ids - 1) / 2 / 16.0 ** self.length)

    def __eq__(self, other) -> bool:
        return isinstance(other, Pseudonymizer) and other.key_id == self.key_id and other.length == self.length

    def __hash__(self) -> int:
        return hash((self.key_id, self.length))

    def __reduce__(self):
        raise TypeError("a Pseudonymizer holds a secret key and is never pickled; rebuild it with Pseudonymizer.from_env()")

    def __repr__(self) -> str:
        return f"Pseudonymizer(key_id={self.key_id!r}, length={self.length})"


def pseudonymize_frame(df: pd.DataFrame, pseudonymizer: Pseudonymizer | None = None, columns=(USER_COL,)) -> pd.DataFrame:
    """``df`` with shopper ids replaced by pseudonyms, to fit a model that never holds raw ids.

    ``pseudonymizer`` defaults to :meth:`Pseudonymizer.from_env`, so
    ``model.fit(pseudonymize_frame(train))`` needs only ``$RECAPP_PSEUDONYM_KEY``.
    """
    return (pseudonymizer or Pseudonymizer.from_env()).frame(df, columns)


# ---- differentially private counts --------------------------------------------------------
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


__all__ = [
    "KEY_ENV", "MIN_KEY_BYTES", "MECHANISMS", "MAX_EXACT_FLOAT_INT", "MissingKeyError", "Pseudonymizer", "canonical_id", "new_key_file",
    "pseudonymize_frame", "check_dp_params", "clipped_item_counts", "sensitivity", "noise_scale", "noise_variance",
    "add_noise",
    "private_item_counts",
]
