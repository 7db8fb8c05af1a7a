"""Slate policies the shopper simulator runs, and the adapters that make any model or engine one.

A policy sees an :class:`Environment` (catalogue, shoppers, observable context,
never the true tastes), shows ``slates(users, k)`` and learns from
``observe(feedback)``. :func:`as_policy` asks an object for its policy through
its own ``as_policy`` method: :class:`~recapp.models.base.Recommender` returns a
:class:`RecommenderPolicy`, :class:`~recapp.realtime.Engine` an
:class:`EnginePolicy`, and a :class:`Policy` itself.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd

from recapp.experiment._sim_checks import check_event_names, check_seed, check_slate_size
from recapp.schema import EVENT_COL, ITEM_COL, TIME_COL, USER_COL, VALUE_COL
from recapp.schema.cells import _plain

ARM_COL = "arm"
FEEDBACK_EVENTS = ("click", "cart", "purchase")


# ---- what a policy may know ------------------------------------------------------
@dataclass
class Environment:
    """What the simulator tells a policy before a run: the catalogue, the shoppers and their observable context.

    ``context(user_ids)`` returns the features a shop would know about a shopper
    (a segment, a history embedding), never the true tastes.
    """

    item_ids: np.ndarray
    user_ids: np.ndarray
    prices: np.ndarray
    k: int
    context: Callable[[np.ndarray], np.ndarray]
    n_context: int
    item_features: np.ndarray | None = None

    def item_index(self, items) -> np.ndarray:
        """Positions of item ids in ``item_ids``; -1 for unknown ids."""
        return pd.Index(self.item_ids).get_indexer(pd.Index(np.asarray(items)))


class Policy:
    """A slate policy the simulator can run: ``reset(env)``, ``slates(users, k)``, ``observe(feedback)``.

    ``feedback`` is one row per shown item with columns request (row of the
    ``slates`` call), user_id, item_id, position (1-based), click, cart,
    purchase, revenue and timestamp. ``end_step()`` is called once per step.
    A policy that learns from the slates it showed, and so can take only the
    feedback of its own last ``slates`` call, sets ``learns_from_slates``.
    """

    name: str = "policy"
    #: Whether ``observe`` learns from the policy's own last slates (and refuses any other feedback).
    learns_from_slates: bool = False

    def reset(self, env: Environment) -> None:
        """Prepare for a new run in ``env``."""
        self.env_ = env

    def slates(self, users: np.ndarray, k: int) -> np.ndarray:
        """Item ids to show, shape (len(users), k), best first."""
        raise NotImplementedError

    def observe(self, feedback: pd.DataFrame) -> None:
        """Learn from the outcome of the last ``slates`` call (default: nothing)."""

    def end_step(self) -> None:
        """Called after each simulated step (default: nothing)."""

    def as_policy(self, **kwargs) -> "Policy":
        """A policy is its own policy (``kwargs``, meant for wrappers, do not apply)."""
        return self


def fill_slates(slates: np.ndarray, n_items: int, rng: np.random.Generator) -> np.ndarray:
    """Replace -1 entries of an (n, k) index array with random items not already in the row.

    A recommender may return fewer than k items (everything else seen or
    unknown); the shop still fills the shelf, so the simulator pads at random.
    """
    out = slates.copy()
    for r in np.flatnonzero((out < 0).any(axis=1)):
        row = out[r]
        free = np.setdiff1d(np.arange(n_items), row[row >= 0])
        miss = np.flatnonzero(row < 0)
        out[r, miss] = rng.choice(free, size=min(len(miss), len(free)), replace=False) if len(free) >= len(miss) else -1
    return out


def check_slate_feedback(feedback: pd.DataFrame, shown: np.ndarray, item_idx: np.ndarray, who: str, item_ids) -> None:
    """Refuse feedback that is not exactly one row per slot of ``shown`` (n, k), each naming the item shown there.

    For a policy that learns from the slates it showed: ``item_idx`` are the
    rows' catalogue positions, ``shown`` those of the items it showed, ``who``
    names it in the error. Rows outside the slates, another item than the one
    shown, a repeated or a missing (request, position) are each a
    ``ValueError`` with their count and the first such row. Vectorised: it
    runs on every simulated batch of slates.
    """
    n, k = shown.shape
    req = _slot_column(feedback, "request", 0, n - 1, f"the rows of the last slates() call ({n} slate(s))")
    col = _slot_column(feedback, "position", 1, k, f"the slots of a slate of k={k}") - 1
    slot = req * k + col
    wrong = np.flatnonzero(shown.ravel()[slot] != item_idx)
    if len(wrong):
        i = int(wrong[0])
        raise ValueError(f"feedback['{ITEM_COL}'] holds {_plain(feedback[ITEM_COL].iloc[i])!r} at row {i} (request "
                         f"{int(req[i])}, position {int(col[i]) + 1}), but {who} showed {_plain(item_ids[shown.flat[slot[i]]])!r} "
                         f"there ({len(wrong)} such row(s)); it learns from its own slates: pass its last slates' feedback")
    if len(slot) != n * k or np.bincount(slot, minlength=n * k).max() > 1:
        order = np.argsort(slot, kind="stable")
        repeat = order[1:][slot[order][1:] == slot[order][:-1]]
        if len(repeat):
            i = int(repeat.min())
            raise ValueError(f"feedback repeats (request {int(req[i])}, position {int(col[i]) + 1}) at row {i} "
                             f"({len(repeat)} repeated row(s)); each shown slot takes exactly one row")
        missing = np.setdiff1d(np.arange(n * k), slot)
        raise ValueError(f"feedback has no row for {len(missing)} of the {n * k} shown (request, position) slots, the first "
                         f"(request {int(missing[0] // k)}, position {int(missing[0] % k) + 1}); {who} would learn them "
                         "as shown and not clicked: pass one row per shown item")


def _slot_column(feedback: pd.DataFrame, name: str, low: int, high: int, what: str) -> np.ndarray:
    """``feedback[name]`` as int64, refused unless every value is an integer in [low, high] (``what`` says why)."""
    v = feedback[name].to_numpy()
    if v.dtype.kind not in "iu":
        raise ValueError(f"feedback[{name!r}] has dtype {v.dtype}; it must hold integers in [{low}, {high}] ({what})")
    bad = np.flatnonzero((v < low) | (v > high))
    if len(bad):
        raise ValueError(f"feedback[{name!r}] holds {_plain(v[bad[0]])!r} at row {int(bad[0])} ({len(bad)} such row(s)); "
                         f"it must be an integer in [{low}, {high}]: {what}")
    return v.astype(np.int64, copy=False)


class RecommenderPolicy(Policy):
    """Serve a fitted :class:`~recapp.models.base.Recommender` and fold feedback in with ``update``.

    Only clicks, carts and purchases are fed back (``feedback_events``):
    an impression without a click is not a positive signal. ``update`` is
    "slate" (after every slate: real time), "step" (once per step, cheaper) or
    None (the model stays as fitted). The model is the caller's own object, not
    a copy: with ``update`` set, a run changes it in place (pass
    ``copy.deepcopy(model)`` to keep the fitted one). ``feedback_events`` is a list of names among
    view, click, cart and purchase (a bare string, once read letter by letter so that
    nothing was ever fed back, is refused); ``random_state`` seeds the padding.
    """

    def __init__(self, model, update: str | None = "step", exclude_seen: bool = True,
                 feedback_events=FEEDBACK_EVENTS, name: str | None = None, random_state=0):
        if update not in ("slate", "step", None):
            raise ValueError(f"update={update!r} is not accepted; accepted values: ['slate', 'step', None]")
        self.model = model
        self.update = update
        self.exclude_seen = exclude_seen
        self.feedback_events = check_event_names("feedback_events", feedback_events, ("view",) + FEEDBACK_EVENTS)
        self.name = name or type(model).__name__
        self.random_state = check_seed(random_state, generators=True)

    def reset(self, env: Environment) -> None:
        """Keep the environment, a seeded rng for padding, and an empty feedback buffer."""
        super().reset(env)
        self.rng_ = np.random.default_rng(self.random_state)
        self.buffer_ = []

    def slates(self, users, k):
        """Top-k per user from ``model.recommend``, padded at random to k catalogue items."""
        uniq, inv = np.unique(np.asarray(users), return_inverse=True)
        recs = self.model.recommend(uniq, k=k, exclude_seen=self.exclude_seen)
        return self.env_.item_ids[self._slate_matrix(recs, uniq, k)[inv]]

    def _slate_matrix(self, recs: pd.DataFrame, uniq: np.ndarray, k: int) -> np.ndarray:
        out = np.full((len(uniq), k), -1, dtype=np.int64)
        if len(recs):
            row = pd.Index(uniq).get_indexer(recs[USER_COL].to_numpy())
            col = recs["rank"].to_numpy(dtype=np.int64) - 1
            item = self.env_.item_index(recs[ITEM_COL].to_numpy())
            ok = (row >= 0) & (col < k) & (item >= 0)
            out[row[ok], col[ok]] = item[ok]
        return fill_slates(out, len(self.env_.item_ids), self.rng_)

    def observe(self, feedback):
        """Buffer the clicks, carts and purchases; update now when ``update="slate"``."""
        if self.update is None:
            return
        ev = feedback_to_events(feedback, self.feedback_events)
        if len(ev):
            self.buffer_.append(ev)
        if self.update == "slate":
            self._flush()

    def end_step(self):
        """Apply buffered feedback once per step when ``update="step"``."""
        if self.update == "step":
            self._flush()

    def _flush(self):
        if self.buffer_:
            self.model.update(pd.concat(self.buffer_, ignore_index=True))
            self.buffer_ = []


class EnginePolicy(Policy):
    """Serve a real-time engine: ``recommend(user_id, k)`` per shopper and ``ingest(event)`` per event.

    ``recommend`` may return a DataFrame with an item_id column, a list of ids,
    or a list of (item_id, ...) tuples or dicts. Events are schema dicts
    (user_id, item_id, timestamp, event, value); impressions are passed too
    (as ``view``) when ``ingest_views`` is set, since an engine may track them.
    With ``batch=True`` each slate's events go to ``ingest`` as one DataFrame
    (recapp's Engine accepts both). ``random_state`` (the padding's seed) is None, an int >= 0 or a Generator.
    The engine is the caller's own, not a copy: a run ingests the simulated events into it (and its store).
    """

    def __init__(self, engine, ingest_views: bool = False, batch: bool = False, name: str | None = None, random_state=0):
        self.engine = engine
        self.ingest_views = ingest_views
        self.batch = batch
        self.name = name or type(engine).__name__
        self.random_state = check_seed(random_state, generators=True)

    def reset(self, env):
        """Keep the environment and a seeded rng for padding."""
        super().reset(env)
        self.rng_ = np.random.default_rng(self.random_state)

    def slates(self, users, k):
        """One ``engine.recommend(user_id, k)`` call per distinct shopper, padded to k items."""
        uniq, inv = np.unique(np.asarray(users), return_inverse=True)
        out = np.full((len(uniq), k), -1, dtype=np.int64)
        for r, u in enumerate(uniq.tolist()):
            ids = _item_ids_from(self.engine.recommend(u, k))[:k]
            idx = self.env_.item_index(ids) if len(ids) else np.empty(0, dtype=np.int64)
            idx = idx[idx >= 0]
            out[r, : len(idx)] = idx
        return self.env_.item_ids[fill_slates(out, len(self.env_.item_ids), self.rng_)[inv]]

    def observe(self, feedback):
        """Ingest every click, cart and purchase (and views when asked) as an event dict."""
        events = feedback_to_events(feedback, ("view",) + FEEDBACK_EVENTS if self.ingest_views else FEEDBACK_EVENTS)
        if self.batch:
            if len(events):
                self.engine.ingest(events.drop(columns=ARM_COL, errors="ignore"))
            return
        for ev in events.drop(columns=ARM_COL, errors="ignore").to_dict("records"):
            self.engine.ingest(ev)


def _item_ids_from(recs) -> list:
    if recs is None:
        return []
    if isinstance(recs, pd.DataFrame):
        return recs[ITEM_COL].tolist()
    out = []
    for r in recs:
        if isinstance(r, dict):
            out.append(r[ITEM_COL])
        elif isinstance(r, (tuple, list)):
            out.append(r[0])
        else:
            out.append(r)
    return out


def as_policy(obj, **kwargs) -> Policy:
    """``obj`` as a :class:`Policy`, by its own ``as_policy(**kwargs)``: Recommenders, engines and policies have one.

    Anything else (say an engine of your own) is wrapped explicitly:
    ``EnginePolicy(engine)`` or ``RecommenderPolicy(model)``. Nothing is copied: the policy serves ``obj`` itself,
    so a run's feedback changes the caller's model (``update="step"`` by default; ``update=None`` keeps it as
    fitted), engine or policy in place; pass ``copy.deepcopy(obj)`` to keep the original.
    """
    try:
        convert = obj.as_policy
    except AttributeError:
        raise TypeError(
            f"{type(obj).__name__} is not a policy: pass a Policy, a Recommender or an Engine, or wrap it "
            "in EnginePolicy(...) or RecommenderPolicy(...)"
        ) from None
    policy = convert(**kwargs)
    if not isinstance(policy, Policy):
        # Runs call reset, observe and end_step on every policy; the Policy base class gives them their defaults.
        raise TypeError(f"{type(obj).__name__}.as_policy() returned a {type(policy).__name__}, not a Policy; "
                        "subclass recapp.experiment.Policy")
    return policy


def feedback_to_events(feedback: pd.DataFrame, events=FEEDBACK_EVENTS) -> pd.DataFrame:
    """Schema events (user_id, item_id, timestamp, event, value) from impression-level feedback.

    A shown item is a ``view``; a click adds ``click``, and so on down the
    funnel; a purchase carries the revenue as ``value``. Rows are time-ordered.
    ``events`` is a list of those names; a bare string or an unknown name is refused.
    """
    events = check_event_names("events", events, ("view",) + FEEDBACK_EVENTS)
    parts = []
    flags = {"view": None, "click": "click", "cart": "cart", "purchase": "purchase"}
    for offset, ev in enumerate(("view", "click", "cart", "purchase")):
        if ev not in events:
            continue
        m = np.ones(len(feedback), bool) if flags[ev] is None else feedback[flags[ev]].to_numpy(bool)
        if not m.any():
            continue
        sub = feedback.loc[m]
        part = pd.DataFrame({
            USER_COL: sub[USER_COL].to_numpy(), ITEM_COL: sub[ITEM_COL].to_numpy(),
            # Funnel stages follow each other by a few seconds, so a time-ordered log keeps their order.
            TIME_COL: sub[TIME_COL].to_numpy(dtype=np.float64) + 5.0 * offset,
            EVENT_COL: ev, VALUE_COL: sub["revenue"].to_numpy(dtype=np.float64) if ev == "purchase" else 0.0,
        })
        if ARM_COL in sub.columns:
            part[ARM_COL] = sub[ARM_COL].to_numpy()
        parts.append(part)
    if not parts:
        cols = [USER_COL, ITEM_COL, TIME_COL, EVENT_COL, VALUE_COL] + ([ARM_COL] if ARM_COL in feedback.columns else [])
        return pd.DataFrame({c: [] for c in cols})
    return pd.concat(parts, ignore_index=True).sort_values(TIME_COL, kind="stable", ignore_index=True)


class RandomPolicy(Policy):
    """Uniformly random slates: the floor every policy must beat (``random_state``: None, an int >= 0 or a Generator)."""

    name = "random"

    def __init__(self, random_state=0):
        self.random_state = check_seed(random_state, generators=True)

    def reset(self, env):
        """Keep the environment and a fresh seeded rng."""
        super().reset(env)
        self.rng_ = np.random.default_rng(self.random_state)

    def slates(self, users, k):
        """k distinct random items per shopper; ``k`` is an integer in [1, catalogue size] (more once gave fewer columns)."""
        n_items = len(self.env_.item_ids)
        check_slate_size(k, n_items, "the catalogue")
        idx = np.argsort(self.rng_.random((len(users), n_items)), axis=1)[:, :k]
        return self.env_.item_ids[idx]
