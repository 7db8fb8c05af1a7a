"""Simulated shoppers who react to what they see: :class:`ShopperStream`, a live event source for the engine.

It is a plain iterator of event dicts in the schema of :mod:`recapp.schema`,
as :class:`~recapp.realtime.stream.Replay` is, so a notebook, the dashboard and
a test drive either the same way::

    shoppers = ShopperStream(synthetic_shop(), recommender=engine)
    for event in itertools.islice(shoppers, 1000):   # each slate sees the events before it
        engine.ingest(event)

For measuring policies (A/B tests, bandits, off-policy evaluation) use
:class:`recapp.experiment.ShopperSimulator`, a batch simulator with a
calibrated choice model and common random numbers across policies.
"""
from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Callable, Iterator

import numpy as np

from recapp.params import check_param, check_seed
from recapp.schema import EVENT_COL, FUNNEL, ITEM_COL, TIME_COL, USER_COL, VALUE_COL
from recapp.schema.cells import _is_number

log = logging.getLogger(__name__)


class ShopperStream:
    """Endless events from shoppers of a :func:`~recapp.data.synthetic.synthetic_shop` who react to what they see.

    Use it to *drive* something live: feed an :class:`~recapp.realtime.Engine`
    event by event, fill the dashboard's "simulated shopper", soak-test a
    pipeline. Events are plain dicts in the schema, one at a time, and each
    slate is asked for right before the view it leads to, so an engine that
    ingests every event before the next sees the shoppers react to its updates.
    To *measure* policies against each other (A/B tests, bandits, off-policy
    evaluation) use :class:`recapp.experiment.ShopperSimulator` instead: it
    runs in steps of whole sessions, its choice model is a multinomial logit
    with a no-click option calibrated to a target click-through rate, it has
    prices that move purchases and taste drift, and it shares random draws
    between policies so that their differences are sharper. This stream's
    model is simpler and per item (below), and it also emits organic views.

    Each visit: a shopper arrives (in proportion to their activity) and views
    about ``visit_length`` items. Before each view they are shown the top-``k``
    of ``recommender``, examine the slate top-down with position bias
    ``1 / log2(rank + 1)`` and view a shown item with probability
    ``sigmoid(click_bias + affinity_slope * z)``, where ``z`` is the item's
    standardised true utility for that shopper. Without a click they browse on
    their own (an item drawn by ``exp(utility)`` among ``n_candidates``
    popularity-sampled candidates). A view goes on to click, cart and purchase
    with the shop's funnel rates moved by utility, as in the generator. Events
    are dicts with the schema columns plus ``source`` ("recommendation" or
    "organic") and ``slate_rank`` (1-based, 0 when organic), and ``value``
    (the price) on purchases.

    ``recommender`` is one of:

    * a callable ``(user_id, k) -> item ids`` (best first);
    * an object with a ``recommend(user_id, k)`` method that returns a
      DataFrame with an ``item_id`` column, such as an
      :class:`~recapp.realtime.Engine` (its ``recommend`` is called for every slate);
    * None: nothing is shown, every view is organic.

    Iterate over the stream for shoppers drawn at random, or over
    :meth:`visits` for one shopper. Settings are checked when the stream is
    made (ValueError naming the argument): ``k`` and ``n_candidates`` integers
    >= 1, ``visit_length`` >= 1, ``funnel_rates`` three probabilities in (0, 1),
    ``seconds_between_visits`` >= 0, the others finite numbers, ``random_state`` None, an
    integer >= 0 or a numpy Generator; ``shop`` must be a synthetic shop (TypeError otherwise)
    whose ``users["activity"]`` are finite, >= 0 and not all 0.
    """

    def __init__(self, shop=None, recommender=None, *, k: int = 10, visit_length: float = 3.0,
                 click_bias: float = -1.5, affinity_slope: float = 1.0, funnel_rates=(0.2, 0.25, 0.35),
                 n_candidates: int = 16, start_time: float | None = None, seconds_between_visits: float = 20.0,
                 random_state: int | None = 0):
        # numpy's own error for "abc" or 1.5 names no argument, and True would seed as 1.
        check_seed(random_state, generators=True)
        if shop is None:
            from recapp.data.synthetic import synthetic_shop

            shop = synthetic_shop(random_state=random_state)
        # Checked here: a bad value would otherwise fail (or go NaN) only at some later event.
        check_param("k", k, low=1, integer=True)
        check_param("visit_length", visit_length, low=1)
        check_param("click_bias", click_bias)
        check_param("affinity_slope", affinity_slope)
        check_funnel_rates(funnel_rates)
        check_param("n_candidates", n_candidates, low=1, integer=True)
        if start_time is not None:
            check_param("start_time", start_time)
        check_param("seconds_between_visits", seconds_between_visits, low=0)
        missing = [a for a in _SHOP_PARTS if not hasattr(shop, a)]
        if missing:
            raise TypeError(f"shop must be a synthetic shop (recapp.data.synthetic_shop()); got {type(shop).__name__} "
                            f"without {missing}")
        self.shop = shop
        self.recommender = recommender
        self.k = int(k)
        self.visit_length = float(visit_length)
        self.click_bias = float(click_bias)
        self.affinity_slope = float(affinity_slope)
        self.funnel_rates = tuple(funnel_rates)
        self.n_candidates = int(n_candidates)
        self.rng = np.random.default_rng(random_state)
        ev = shop.events
        self.now = float(start_time if start_time is not None else (ev[TIME_COL].max() + 1.0 if len(ev) else 0.0))
        self.seconds_between_visits = float(seconds_between_visits)
        self.activity = shop.users["activity"].to_numpy(dtype=np.float64) if "activity" in shop.users else np.ones(len(shop.users))
        self.activity = _check_activity(self.activity) / self.activity.sum()
        u = shop.user_factors @ shop.item_factors.T + shop.item_bias
        # Standardise utility once, as the generator does, so the funnel rates mean the same here.
        self._mu, self._sd = float(u.mean()), max(float(u.std()), 1e-12)
        self._pop = np.exp(shop.item_bias - shop.item_bias.max())
        self._pop_cdf = np.cumsum(self._pop / self._pop.sum())
        self.price = shop.items["price"].to_numpy(dtype=np.float64) if "price" in shop.items else np.zeros(len(shop.items))
        self.n_shown = 0
        self.n_clicked_recs = 0
        #: Ids shown that are not items of the shop (dropped from their slates, since nobody can click them).
        self.n_unknown_shown = 0

    @property
    def recommender(self):
        """What shows the slates (see the class docstring); may be replaced between events."""
        return self._recommender

    @recommender.setter
    def recommender(self, recommender) -> None:
        self._show = _slate_function(recommender)
        self._recommender = recommender

    # ---- the shopper's behaviour ---------------------------------------------------------
    def _z(self, user: int, items: np.ndarray) -> np.ndarray:
        s = self.shop
        return (s.user_factors[user] @ s.item_factors[items].T + s.item_bias[items] - self._mu) / self._sd

    def _slate(self, user: int) -> list:
        if self._show is None:
            return []
        got = self._show(user, self.k)
        if got is None or isinstance(got, (str, bytes)) or not hasattr(got, "__iter__"):
            # list(None) would fail with "NoneType is not iterable", naming neither the recommender nor the user.
            raise TypeError(f"the recommender must return a list of item ids for (user_id, k); for user {user} "
                            f"it returned {type(got).__name__} {got!r:.80}")
        return list(got)

    def _organic(self, user: int) -> int:
        cands = np.minimum(np.searchsorted(self._pop_cdf, self.rng.random(self.n_candidates)), len(self._pop) - 1)
        z = self._z(user, cands) * self._sd   # back to the utility scale for the Gumbel choice
        return int(cands[np.argmax(z + self.rng.gumbel(size=len(cands)))])

    def _funnel(self, user: int, item: int, source: str, slate_rank: int) -> list[dict]:
        z = float(self._z(user, np.array([item]))[0])
        events = []
        t = self.now
        for depth, name in enumerate(FUNNEL):
            if depth > 0:
                rate = self.funnel_rates[depth - 1]
                p = 1.0 / (1.0 + math.exp(-(math.log(rate / (1 - rate)) + self.affinity_slope * z)))
                if self.rng.random() >= p:
                    break
                t += float(self.rng.exponential(30.0)) + 1.0
            ev = {USER_COL: user, ITEM_COL: item, TIME_COL: t, EVENT_COL: name, "source": source, "slate_rank": slate_rank}
            if name == "purchase":
                ev[VALUE_COL] = float(self.price[item])
            events.append(ev)
        return events

    def visit(self, user: int | None = None) -> list[dict]:
        """One shopper visit (several views, each maybe continuing down the funnel) as a list of events.

        Every slate of the visit is asked for before any of its events is returned;
        iterate over the stream (or over :meth:`visits`) instead to let an engine
        react within a visit.
        """
        return list(self._visit(self._check_user(user)))

    def visits(self, user: int) -> Iterator[dict]:
        """Endless events of one shopper, visit after visit; a fresh slate is asked for before each view.

        ``user`` is a row of the shop (0 to ``n_users - 1``), checked now rather
        than at the first event. Ingest each event before taking the next and the
        shopper reacts to every re-ranking::

            for event in itertools.islice(stream.visits(7), 50):
                engine.ingest(event)
        """
        if user is None:
            raise ValueError("user=None: visits() follows one shopper; iterate over the stream for shoppers at random")
        user = self._check_user(user)
        # Lazy: each visit (and each of its slates) starts only when the previous visit's events are taken.
        return itertools.chain.from_iterable(self._visit(user) for _ in itertools.repeat(None))

    def _check_user(self, user):
        if user is None:
            return None
        n_users = len(self.activity)
        if not (_is_index(user) and 0 <= user < n_users):
            raise ValueError(f"user={user!r} is not a shopper of this shop; accepted values: integers 0 to {n_users - 1}")
        return int(user)

    def _visit(self, user: int | None = None) -> Iterator[dict]:
        if user is None:
            user = int(self.rng.choice(len(self.activity), p=self.activity))
        n_views = int(self.rng.geometric(1.0 / self.visit_length))
        for _ in range(max(1, n_views)):
            self.now += float(self.rng.exponential(self.seconds_between_visits / max(n_views, 1))) + 1.0
            slate = self._slate(user)
            chosen, rank = None, 0
            if slate:
                self.n_shown += 1
                items = np.asarray([i for i in slate if _is_index(i) and 0 <= i < len(self._pop)], dtype=np.int64)
                if len(items) < len(slate):
                    self._unknown_shown(slate)
                if len(items):
                    z = self._z(user, items)
                    p = 1.0 / (1.0 + np.exp(-(self.click_bias + self.affinity_slope * z)))
                    p *= 1.0 / np.log2(np.arange(2, len(items) + 2))
                    clicked = np.flatnonzero(self.rng.random(len(items)) < p)
                    if len(clicked):
                        chosen, rank = int(items[clicked[0]]), int(clicked[0]) + 1
                        self.n_clicked_recs += 1
            if chosen is None:
                chosen = self._organic(user)
            evs = self._funnel(user, chosen, "recommendation" if rank else "organic", rank)
            self.now = max(self.now, evs[-1][TIME_COL])
            # A generator: the caller ingests these before the next slate is asked for.
            yield from evs

    def _unknown_shown(self, slate: list) -> None:
        # A shopper can only click items of the shop; ids that are not its rows are counted, and said once.
        bad = [i for i in slate if not (_is_index(i) and 0 <= i < len(self._pop))]
        if not self.n_unknown_shown:
            log.warning("the recommender showed %d id(s) that are not items of this shop (rows 0 to %d), e.g. %r; "
                        "they cannot be clicked (count in n_unknown_shown)", len(bad), len(self._pop) - 1, bad[0])
        self.n_unknown_shown += len(bad)

    def __iter__(self) -> Iterator[dict]:
        """Endless events; a caller that ingests each one before the next sees the shoppers react to it."""
        while True:
            yield from self._visit()

    def take(self, n: int) -> list[dict]:
        """The next ``n`` events as a list (``n`` an integer >= 0, else ValueError)."""
        check_param("n", n, low=0, integer=True)
        return list(itertools.islice(iter(self), int(n)))

    @property
    def click_through_rate(self) -> float:
        """Share of shown slates in which the shopper picked a recommended item."""
        return self.n_clicked_recs / self.n_shown if self.n_shown else float("nan")


_SHOP_PARTS = ("events", "users", "items", "user_factors", "item_factors", "item_bias")


def _is_index(v) -> bool:
    """An integer row number; True is an int to isinstance but names no shopper or item."""
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _check_activity(activity: np.ndarray) -> np.ndarray:
    """Shoppers' activities as arrival weights: finite, >= 0 and not all 0 (numpy's "Probabilities contain NaN" otherwise)."""
    bad = np.flatnonzero(~np.isfinite(activity) | (activity < 0))
    if len(bad):
        raise ValueError(f"shop.users['activity'] must be finite numbers >= 0; {len(bad)} row(s) are not, "
                         f"first at row {int(bad[0])}: {float(activity[bad[0]])!r}")
    if not activity.sum() > 0:
        raise ValueError("shop.users['activity'] are all 0; no shopper would ever arrive")
    return activity


def check_funnel_rates(funnel_rates) -> None:
    """ValueError unless ``funnel_rates`` are three probabilities in (0, 1), the rule of :func:`~recapp.data.synthetic.synthetic_shop`."""
    # 0 or 1 has no logit, NaN would send every view down to a purchase, and a missing rate fails mid-funnel.
    rates = list(funnel_rates) if isinstance(funnel_rates, (list, tuple, np.ndarray)) else None
    if rates is None or len(rates) != len(FUNNEL) - 1 or not all(_is_number(p) and not math.isnan(p) and 0.0 < p < 1.0 for p in rates):
        raise ValueError(f"funnel_rates must be three probabilities in (0, 1) for view->click, click->cart, "
                         f"cart->purchase; got {funnel_rates!r}")


def _slate_function(recommender) -> Callable[[int, int], list] | None:
    """``recommender`` as a function ``(user_id, k) -> item ids``; None when nothing is shown."""
    if recommender is None or callable(recommender):
        return recommender
    recommend = getattr(recommender, "recommend", None)
    if not callable(recommend):
        raise TypeError(f"recommender={recommender!r} is not accepted; pass a callable (user_id, k) -> item ids, "
                        "an object whose recommend(user_id, k) returns a DataFrame with an item_id column "
                        "(such as an Engine), or None")

    def show(user: int, k: int) -> list:
        recs = recommend(user, k)
        if ITEM_COL not in getattr(recs, "columns", ()):
            raise TypeError(f"{type(recommender).__name__}.recommend(user_id, k) must return a DataFrame with an "
                            f"{ITEM_COL!r} column; got {type(recs).__name__} {list(getattr(recs, 'columns', []))}")
        return recs[ITEM_COL].tolist()

    return show


__all__ = ["ShopperStream", "check_funnel_rates"]
