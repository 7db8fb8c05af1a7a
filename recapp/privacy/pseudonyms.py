"""Keyed pseudonyms for shopper ids.

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
"""
from __future__ import annotations

import hmac
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
from recapp.schema.cells import _missing, _plain, id_problem, id_problems

KEY_ENV = "RECAPP_PSEUDONYM_KEY"
MIN_KEY_BYTES = 16
DEFAULT_LENGTH = 32
#: Floats at or above this size may stand for more than one integer (2**53 + 1 rounds to 2**53).
MAX_EXACT_FLOAT_INT = 2 ** 53
# What pandas.api.types.infer_dtype calls a column that can hold no boolean and no unhashable id.
_PLAIN_ID_KINDS = ("string", "integer", "floating", "mixed-integer-float", "decimal", "empty")


class MissingKeyError(RuntimeError):
    """No pseudonymisation key was configured (there is never a default key)."""


class WithheldId:
    """Stands for a user id that is no id (a list, a dict) in a batch of events being pseudonymised.

    Unhashable like what it replaces, so the event check refuses its row with the
    usual reason, while the store's quarantine and the engine's report never hold
    the value itself (a list may well hold a raw shopper id). Its class is named
    after the replaced value's type, so the reason says what was sent.
    """

    __hash__ = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} withheld>"


_WITHHELD_TYPES: dict = {}


def _withheld(v):
    """``v`` as a pseudonymised batch keeps it when it is no id: a boolean as is (it names no one), else a WithheldId."""
    if isinstance(v, (bool, np.bool_)):
        return v
    name = type(v).__name__
    if name not in _WITHHELD_TYPES:
        _WITHHELD_TYPES[name] = type(name, (WithheldId,), {"__module__": __name__, "__doc__": WithheldId.__doc__})
    return _WITHHELD_TYPES[name]()


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

    def many(self, values, *, withhold: bool = False) -> np.ndarray:
        """Pseudonyms of many ids (object array); each distinct id is hashed once.

        Refuses (``TypeError`` naming the first one's position and the count) a batch
        holding an id that is a boolean or unhashable, before hashing any; with
        ``withhold=True`` such an id is not hashed but kept for the event check to
        refuse: a boolean as it is, anything else as a :class:`WithheldId`.
        """
        if isinstance(values, (str, bytes)) or not np.iterable(values):
            raise TypeError(f"values must be a list or array of ids, got {type(values).__name__}; "
                            "call the pseudonymizer itself for one id")
        ids = pd.Series(list(values), dtype=object)
        if pd.api.types.infer_dtype(ids, skipna=True) not in _PLAIN_ID_KINDS:
            # factorize would merge True with 1 (equal and same hash), giving a boolean shopper 1's pseudonym.
            whys = id_problems(ids)
            bad = np.flatnonzero(pd.notna(whys))
            if len(bad) and withhold:
                good = np.ones(len(ids), dtype=bool)
                good[bad] = False
                out = np.empty(len(ids), dtype=object)
                out[good] = self.many(ids[good].tolist())
                out[bad] = [_withheld(v) for v in ids.iloc[bad]]
                return out
            if len(bad):
                i = int(bad[0])
                raise TypeError(f"user id {_plain(ids.iloc[i])!r:.80} at position {i} {whys[i]}; {len(bad)} of "
                                f"{len(ids)} ids cannot be pseudonymised, so none were")
        codes, uniques = pd.factorize(ids, use_na_sentinel=True)
        mapped = np.array([self(u) for u in uniques] + [None], dtype=object)
        return mapped[codes]

    def frame(self, df: pd.DataFrame, columns=(USER_COL,), *, withhold: bool = False) -> pd.DataFrame:
        """A copy of ``df`` with the id ``columns`` replaced by pseudonyms (missing ids kept missing).

        Refuses an id column that is absent (``KeyError``) or repeated (``ValueError``), and ids :meth:`many`
        refuses (unless ``withhold=True``, passed on to :meth:`many`).
        """
        columns = (columns,) if isinstance(columns, str) else tuple(columns)
        unknown = [c for c in columns if c not in df.columns]
        if unknown:
            raise KeyError(f"columns {unknown} are not in the frame; columns: {list(df.columns)}")
        repeated = [c for c in columns if (df.columns == c).sum() > 1]
        if repeated:
            raise ValueError(f"columns {repeated} appear more than once in the frame; columns: {list(df.columns)}")
        return df.assign(**{c: pd.Series(self.many(df[c].to_numpy(dtype=object), withhold=withhold), index=df.index, dtype=object)
                            for c in columns})

    def events(self, events):
        """An event (dict), a list of them or a DataFrame with ``user_id`` replaced (a list comes back as a frame).

        For ingestion: a user id that is no id (a boolean, a list) is withheld as :meth:`many` does with
        ``withhold=True``, so the event check refuses that row alone and the rest of the batch goes on.
        """
        if isinstance(events, Mapping):
            if USER_COL not in events:
                return events
            user = events[USER_COL]
            return {**events, USER_COL: self(user) if id_problem(user) is None else _withheld(user)}
        if not isinstance(events, pd.DataFrame):
            events = events_frame(events)
        return self.frame(events, withhold=True) if USER_COL in events.columns else events

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


__all__ = ["KEY_ENV", "MIN_KEY_BYTES", "MAX_EXACT_FLOAT_INT", "MissingKeyError", "Pseudonymizer", "WithheldId",
           "canonical_id", "new_key_file", "pseudonymize_frame"]
