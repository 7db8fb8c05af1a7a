"""A synthetic shop: a catalogue, shoppers with latent tastes, and their event log.

The generating model is known, so a simulator can ask for the ground truth:
a shopper's utility for an item is ``user_factors @ item_factors.T + item_bias``
(:func:`true_affinity`). Item factors sit near their category's centroid and
the title's adjective is drawn from the item's factors, so content features
(category, brand, title) carry part of the signal that collaborative models
learn from the log.

Shoppers arrive in sessions. Each session has a focal category drawn from the
shopper's tastes; each view picks, among a handful of candidates from that
category and from the whole catalogue (sampled by popularity), the one with
the highest utility plus Gumbel noise, which samples approximately in
proportion to ``exp(utility)``. A view escalates to click, cart and purchase
with probabilities that rise with utility.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd

from recapp.params import check_param
from recapp.schema import EVENT_COL, FUNNEL, ITEM_COL, TIME_COL, USER_COL, VALUE_COL
from recapp.schema.cells import TIME_BOUNDS, TIME_YEARS

CATEGORIES = (
    ("shoes", ("sneakers", "boots", "loafers")),
    ("outerwear", ("jacket", "parka", "raincoat")),
    ("dresses", ("dress", "sundress", "gown")),
    ("tops", ("t-shirt", "blouse", "hoodie")),
    ("bags", ("backpack", "tote", "crossbody bag")),
    ("watches", ("watch", "chronograph", "smartwatch")),
    ("audio", ("headphones", "earbuds", "speaker")),
    ("kitchen", ("mug", "kettle", "knife set")),
    ("home", ("lamp", "cushion", "throw blanket")),
    ("beauty", ("serum", "lipstick", "moisturiser")),
    ("toys", ("puzzle", "building set", "plush toy")),
    ("sports", ("yoga mat", "running belt", "water bottle")),
)
ADJECTIVES = (
    "classic", "minimal", "vintage", "bold", "cosy", "sleek", "rugged", "playful",
    "elegant", "sporty", "organic", "compact", "premium", "everyday", "retro", "bright",
)
_BRAND_HEADS = ("Nor", "Vel", "Aur", "Kai", "Lum", "Oro", "Zen", "Bri", "Cor", "Fen", "Mar", "Sol", "Tes", "Vio", "Wyn", "Ari")
_BRAND_TAILS = ("dex", "ora", "ia", "en", "ix", "ume", "ara", "o", "ik", "ent", "elle", "ano")
_DIURNAL = np.array([1, 0.6, 0.4, 0.3, 0.3, 0.4, 0.8, 1.2, 1.5, 1.6, 1.7, 1.8,
                     2.0, 1.9, 1.8, 1.8, 1.9, 2.1, 2.5, 2.9, 3.0, 2.7, 2.0, 1.4])
_DAY = 86_400.0


class SyntheticShop(NamedTuple):
    """Event log, catalogue, shoppers and the latent model that generated them.

    ``user_id`` and ``item_id`` equal the row index into ``user_factors`` and
    ``item_factors``/``item_bias``.
    """

    events: pd.DataFrame
    items: pd.DataFrame
    users: pd.DataFrame
    user_factors: np.ndarray
    item_factors: np.ndarray
    item_bias: np.ndarray

    def affinity(self, users=None, items=None) -> np.ndarray:
        """Ground-truth utilities; see :func:`true_affinity`."""
        return true_affinity(self, users, items)


def true_affinity(shop: SyntheticShop, user_idx=None, item_idx=None) -> np.ndarray:
    """Utility ``user_factors[u] @ item_factors[i] + item_bias[i]`` as a users x items matrix.

    ``user_idx``/``item_idx`` are ids (equal to indices), arrays of them, or
    None for all. A scalar user gives a 1-d row. Higher means more preferred;
    the log was generated to favour items in proportion to ``exp(utility)``.
    """
    uf = shop.user_factors if user_idx is None else shop.user_factors[np.asarray(user_idx)]
    items = slice(None) if item_idx is None else np.asarray(item_idx)
    return uf @ shop.item_factors[items].T + shop.item_bias[items]


def _check_int(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _check_reals(name: str, value, n: int, what: str) -> tuple:
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__") or len(value) != n:
        raise ValueError(f"{name} must be {what}; got {value!r}")
    for i, v in enumerate(value):
        check_param(f"{name}[{i}]", v)
    return tuple(value)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _logit(p: float) -> float:
    return float(np.log(p / (1.0 - p)))


def _catalogue(rng: np.random.Generator, n_items: int, n_categories: int, n_factors: int, affinity_scale: float, category_strength: float):
    """Items with categories, brands, prices, titles, and their latent factors."""
    # Every category gets at least one item; the rest follow uneven category sizes.
    cat_weights = rng.dirichlet(np.full(n_categories, 2.0))
    category = np.concatenate([rng.permutation(n_categories), rng.choice(n_categories, n_items - n_categories, p=cat_weights)])
    category = category[rng.permutation(n_items)]
    centroids = rng.standard_normal((n_categories, n_factors))
    noise = rng.standard_normal((n_items, n_factors))
    # Unit-variance entries, then scaled so a user-item dot product has std ~ affinity_scale.
    scale = np.sqrt(affinity_scale / np.sqrt(n_factors))
    item_factors = (category_strength * centroids[category] + noise) / np.sqrt(1 + category_strength**2) * scale

    n_brands = int(np.clip(n_items // 25, 3, 400))
    combos = [h + t for h in _BRAND_HEADS for t in _BRAND_TAILS]
    order = rng.permutation(len(combos))
    brand_names = np.array([combos[order[b % len(combos)]] + ("" if b < len(combos) else f" {b // len(combos) + 1}") for b in range(n_brands)])
    brand_share = 1.0 / np.arange(1, n_brands + 1) ** 0.8
    brand = rng.choice(n_brands, n_items, p=brand_share / brand_share.sum())
    brand_tier = rng.lognormal(0.0, 0.25, n_brands)

    cat_log_price = rng.uniform(np.log(8.0), np.log(250.0), n_categories)
    price = np.round(np.exp(cat_log_price[category] + rng.normal(0.0, 0.45, n_items)) * brand_tier[brand], 2)
    price = np.maximum(price, 0.99)

    # The adjective follows the item's latent style, so titles carry signal too.
    adj_vectors = rng.standard_normal((len(ADJECTIVES), n_factors))
    adjective = np.argmax(item_factors @ adj_vectors.T + rng.gumbel(size=(n_items, len(ADJECTIVES))), axis=1)
    cat_names = np.array([CATEGORIES[c % len(CATEGORIES)][0] + ("" if c < len(CATEGORIES) else f"-{c // len(CATEGORIES) + 1}") for c in range(n_categories)])
    noun_pick = rng.integers(0, 3, n_items)
    nouns = [CATEGORIES[c % len(CATEGORIES)][1][k] for c, k in zip(category.tolist(), noun_pick.tolist())]
    adjs = np.array(ADJECTIVES)[adjective]
    brands = brand_names[brand]
    cats = cat_names[category]
    titles = [f"{b} {a} {n}" for b, a, n in zip(brands.tolist(), adjs.tolist(), nouns)]
    descriptions = [f"{'An' if a[0] in 'aeiou' else 'A'} {a} {n} by {b}, from our {c} range." for b, a, n, c in zip(brands.tolist(), adjs.tolist(), nouns, cats.tolist())]
    items = pd.DataFrame({
        ITEM_COL: np.arange(n_items, dtype=np.int64),
        "category": cats,
        "brand": brands,
        "price": price,
        "title": titles,
        "description": descriptions,
    })
    return items, category, cat_names, centroids, item_factors, scale


def _pick_items(rng, view_user, view_cat, user_factors, item_factors, item_bias, category, n_candidates, n_global, chunk=131_072):
    """Choose one item per view from popularity-sampled candidates by Gumbel-max over utility."""
    n_items = len(item_bias)
    pop = np.exp(item_bias - item_bias.max())
    # Candidate sampling already weighs by exp(bias), so the choice step uses the dot product only:
    # together they sample close to exp(user.item + bias).
    order = np.argsort(category, kind="stable")
    cum = np.cumsum(pop[order])
    global_cum = cum[-1]
    counts = np.bincount(category, minlength=int(category.max()) + 1)
    seg_end = np.cumsum(counts)
    seg_start = seg_end - counts
    lo = np.where(seg_start > 0, cum[np.maximum(seg_start - 1, 0)], 0.0)
    hi = cum[seg_end - 1]
    out = np.empty(len(view_user), dtype=np.int64)
    for s in range(0, len(view_user), chunk):
        u = view_user[s:s + chunk]
        c = view_cat[s:s + chunk]
        m = len(u)
        r = lo[c, None] + rng.random((m, n_candidates)) * (hi - lo)[c, None]
        pos = np.searchsorted(cum, r, side="right")
        pos = np.clip(pos, seg_start[c, None], seg_end[c, None] - 1)
        cands = order[pos]
        if n_global:
            g = np.minimum(np.searchsorted(cum, rng.random((m, n_global)) * global_cum, side="right"), n_items - 1)
            cands = np.concatenate([cands, order[g]], axis=1)
        score = np.einsum("mf,mkf->mk", user_factors[u], item_factors[cands]) + rng.gumbel(size=cands.shape)
        out[s:s + m] = cands[np.arange(m), np.argmax(score, axis=1)]
    return out


def _choose_launches(rng, n_items: int, share: float, window, days: float) -> np.ndarray:
    """Launch time (seconds from the start) per item; NaN for items on sale from the start."""
    launch_time = np.full(n_items, np.nan)
    n_launch = int(round(share * n_items))
    if n_launch:
        launched = rng.choice(n_items, n_launch, replace=False)
        launch_time[launched] = rng.uniform(window[0], window[1], n_launch) * days * _DAY
    return launch_time


def _before_launch(rng, view_item, t_view, category, launch_time):
    """Views of an item before its launch go to a fixed substitute from the same category."""
    on_sale = np.isnan(launch_time)
    if on_sale.all():
        return view_item
    substitute = np.arange(len(category))
    for i in np.flatnonzero(~on_sale):
        pool = np.flatnonzero(on_sale & (category == category[i]))
        pool = pool if len(pool) else np.flatnonzero(on_sale)
        substitute[i] = rng.choice(pool)
    early = t_view < np.nan_to_num(launch_time, nan=-np.inf)[view_item]
    return np.where(early, substitute[view_item], view_item)


def synthetic_shop(
    n_users: int = 1000,
    n_items: int = 500,
    n_events: int = 50_000,
    random_state: int | None = 0,
    n_factors: int = 8,
    n_categories: int | None = None,
    start: str | pd.Timestamp = "2024-01-01",
    days: float = 30.0,
    *,
    session_length: float = 6.0,
    funnel_rates: tuple[float, float, float] = (0.2, 0.25, 0.35),
    affinity_slope: float = 1.0,
    affinity_scale: float = 1.5,
    item_bias_scale: float = 1.0,
    category_strength: float = 1.5,
    activity_sigma: float = 1.2,
    n_candidates: int = 12,
    n_global_candidates: int = 4,
    launch_share: float = 0.0,
    launch_window: tuple[float, float] = (0.5, 0.9),
    launch_boost: float = 1.0,
) -> SyntheticShop:
    """Generate a shop whose log follows a known preference model; deterministic by ``random_state``.

    Returns ``SyntheticShop(events, items, users, user_factors, item_factors, item_bias)``.
    ``events`` has exactly ``n_events`` rows with the schema columns user_id,
    item_id, timestamp (UTC seconds from ``start`` over about ``days`` days,
    sorted), event (view/click/cart/purchase) and value (the price on
    purchases, 0 otherwise). Every click, cart and purchase follows a view of
    the same item by the same shopper, in that order. ``funnel_rates`` are the
    view->click, click->cart and cart->purchase probabilities at average utility;
    ``affinity_slope`` is how much one standard deviation of utility moves
    them on the logit scale.
    ``items`` has item_id, category, brand, price, title and description;
    ``users`` has user_id, favorite_category and activity (expected share of
    views). Activity is log-normal, so a few shoppers produce much of the log.
    Refused (ValueError, naming the parameter): a count that is not an integer,
    a NaN, infinite or non-numeric rate, scale or span, a negative scale or
    spread, and a ``start`` or ``random_state`` that cannot be read.
    """
    n_users = _check_int("n_users", n_users, 1)
    n_items = _check_int("n_items", n_items, 1)
    n_events = _check_int("n_events", n_events, 1)
    n_factors = _check_int("n_factors", n_factors, 1)
    n_categories = min(len(CATEGORIES), n_items) if n_categories is None else _check_int("n_categories", n_categories, 1)
    if n_categories > n_items:
        raise ValueError(f"n_categories={n_categories} exceeds n_items={n_items}; each category needs at least one item")
    rates_what = "three probabilities in (0, 1) for view->click, click->cart, cart->purchase"
    if not all(0.0 < p < 1.0 for p in _check_reals("funnel_rates", funnel_rates, 3, rates_what)):
        raise ValueError(f"funnel_rates must be {rates_what}; got {funnel_rates!r}")
    # A NaN or infinite knob would not fail: it would turn every factor or rate into NaN and the log into noise.
    check_param("days", days, low=0.0, low_inclusive=False)
    check_param("session_length", session_length, low=1.0)
    for name, value, low in (("affinity_slope", affinity_slope, None), ("affinity_scale", affinity_scale, 0.0),
                             ("item_bias_scale", item_bias_scale, 0.0), ("category_strength", category_strength, None),
                             ("activity_sigma", activity_sigma, 0.0), ("launch_boost", launch_boost, None)):
        check_param(name, value, low=low)
    if not 0.0 <= check_param("launch_share", launch_share) < 1.0:
        raise ValueError(f"launch_share must be in [0, 1), got {launch_share!r}")
    if launch_share > 0 and int(round(launch_share * n_items)) >= n_items:
        raise ValueError(
            f"launch_share={launch_share} would launch every one of the n_items={n_items} items "
            f"(round({launch_share} * {n_items}) = {int(round(launch_share * n_items))}); at least one item must be on sale "
            "from the start, since views before a launch go to an item already on sale. Use a smaller launch_share or more items")
    window_what = "two fractions 0 <= a <= b <= 1 of the log's span"
    window = _check_reals("launch_window", launch_window, 2, window_what)
    if not 0.0 <= window[0] <= window[1] <= 1.0:
        raise ValueError(f"launch_window must be {window_what}, got {launch_window!r}")
    _check_int("n_candidates", n_candidates, 1)
    _check_int("n_global_candidates", n_global_candidates, 0)
    try:
        t0 = pd.Timestamp(start)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"start={start!r} is not a date or time ({exc}); give one such as '2024-01-01'") from None
    if t0 is pd.NaT:
        raise ValueError(f"start={start!r} is missing; give a date or time such as '2024-01-01'")
    t0 = t0.tz_localize("UTC") if t0.tzinfo is None else t0.tz_convert("UTC")
    t0 = (t0 - pd.Timestamp(0, tz="UTC")).total_seconds()
    low, high = TIME_BOUNDS
    # A log outside these years is one read_events and the engine refuse, and a huge span overflows the day draw.
    if not (low <= t0 and t0 + days * _DAY < high):
        raise ValueError(f"start={start!r} with days={days!r} puts the log outside the years {TIME_YEARS[0]} to {TIME_YEARS[1]} "
                         "(UTC) that event times may fall in")
    try:
        rng = np.random.default_rng(random_state)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"random_state={random_state!r} cannot seed a generator ({exc}); give an int or None") from None

    items, category, cat_names, centroids, item_factors, scale = _catalogue(rng, n_items, n_categories, n_factors, affinity_scale, category_strength)
    item_bias = rng.normal(0.0, item_bias_scale, n_items)
    launch_time = _choose_launches(rng, n_items, launch_share, launch_window, days) if launch_share > 0 else None
    if launch_time is not None:
        item_bias[~np.isnan(launch_time)] += launch_boost

    fav = rng.integers(0, n_categories, n_users)
    user_noise = rng.standard_normal((n_users, n_factors))
    user_factors = (category_strength * centroids[fav] + user_noise) / np.sqrt(1 + category_strength**2) * scale
    activity = rng.lognormal(0.0, activity_sigma, n_users)
    activity /= activity.sum()
    # Session categories follow the user's taste for each category's centroid.
    cat_logits = user_factors @ (centroids * scale / np.sqrt(1 + category_strength**2)).T
    cat_logits[np.arange(n_users), fav] += 1.0
    cat_p = np.exp(cat_logits - cat_logits.max(axis=1, keepdims=True))
    cat_cdf = np.cumsum(cat_p / cat_p.sum(axis=1, keepdims=True), axis=1)

    # Every chain has at least one row, so n_events views are always enough; the surplus is cut below.
    n_gen = n_events
    view_user = np.sort(rng.choice(n_users, n_gen, p=activity))
    new_session = rng.random(n_gen) < 1.0 / session_length
    new_session[0] = True
    new_session[1:] |= view_user[1:] != view_user[:-1]
    session = np.cumsum(new_session) - 1
    session_user = view_user[new_session]
    n_sessions = len(session_user)
    draw = rng.random(n_sessions)
    session_cat = np.minimum((cat_cdf[session_user] < draw[:, None]).sum(axis=1), n_categories - 1)
    view_item = _pick_items(rng, view_user, session_cat[session], user_factors, item_factors, item_bias, category,
                            n_candidates, n_global_candidates)

    utility = np.einsum("nf,nf->n", user_factors[view_user], item_factors[view_item]) + item_bias[view_item]
    # Standardised so that affinity_slope reads as "logits per standard deviation of utility".
    centred = (utility - utility.mean()) / max(float(utility.std()), 1e-12)
    depth = np.zeros(n_gen, dtype=np.int64)
    alive = np.ones(n_gen, dtype=bool)
    for rate in funnel_rates:
        alive &= rng.random(n_gen) < _sigmoid(_logit(rate) + affinity_slope * centred)
        depth += alive

    # Keep a random subset of chains whose lengths sum to exactly n_events, cutting the last chain short.
    perm = rng.permutation(n_gen)
    total = np.cumsum(depth[perm] + 1)
    k = int(np.searchsorted(total, n_events, side="left"))
    keep = np.zeros(n_gen, dtype=bool)
    keep[perm[:k + 1]] = True
    depth[perm[k]] = n_events - (total[k - 1] if k > 0 else 0) - 1
    view_user, view_item, depth, session = view_user[keep], view_item[keep], depth[keep], session[keep]

    # Session starts follow a daily rhythm; views inside a session are tens of seconds apart.
    n_days = max(1, int(np.ceil(days)))
    hour = rng.choice(24, n_sessions, p=_DIURNAL / _DIURNAL.sum())
    session_start = (rng.integers(0, n_days, n_sessions) * _DAY + (hour + rng.random(n_sessions)) * 3600.0) % (days * _DAY)
    gaps = rng.exponential(45.0, len(view_user)) + 3.0
    csum = np.cumsum(gaps)
    first = np.r_[True, session[1:] != session[:-1]]
    base = np.maximum.accumulate(np.where(first, np.arange(len(session)), 0))
    t_view = session_start[session] + csum - csum[base]
    if launch_time is not None:
        view_item = _before_launch(rng, view_item, t_view, category, launch_time)
    t_click = t_view + rng.exponential(8.0, len(t_view)) + 1.0
    t_cart = t_click + rng.exponential(60.0, len(t_view)) + 5.0
    t_buy = t_cart + rng.exponential(240.0, len(t_view)) + 20.0

    levels = [np.ones(len(depth), bool), depth >= 1, depth >= 2, depth >= 3]
    times = [t_view, t_click, t_cart, t_buy]
    user_col = np.concatenate([view_user[m] for m in levels])
    item_col = np.concatenate([view_item[m] for m in levels])
    time_col = np.concatenate([t[m] for t, m in zip(times, levels)]) + t0
    event_code = np.concatenate([np.full(int(m.sum()), i) for i, m in enumerate(levels)])
    price = items["price"].to_numpy()
    value = np.where(event_code == 3, price[item_col], 0.0)
    order = np.argsort(time_col, kind="stable")
    events = pd.DataFrame({
        USER_COL: user_col[order].astype(np.int64),
        ITEM_COL: item_col[order].astype(np.int64),
        TIME_COL: time_col[order],
        EVENT_COL: np.array(FUNNEL, dtype=object)[event_code[order]],
        VALUE_COL: value[order],
    })
    if launch_time is not None:
        items = items.assign(launch_time=launch_time + t0)
    users = pd.DataFrame({
        USER_COL: np.arange(n_users, dtype=np.int64),
        "favorite_category": cat_names[fav],
        "activity": activity,
    })
    return SyntheticShop(events, items, users, user_factors, item_factors, item_bias)
