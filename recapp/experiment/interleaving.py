"""Team-draft interleaving: compare two rankers on the same shoppers, one merged list at a time.

Each shopper sees one list merged from both rankers' top-k by team draft
(Radlinski, Kurup and Joachims, "How does clickthrough data reflect retrieval
quality?", CIKM 2008): while the list is short, the team with fewer picks
(a fair coin when the teams are equal) adds its highest-ranked item not yet in
the list. A click is credited to the team that placed the clicked item. Both
rankers meet the same shopper at the same moment, so the between-shopper
variance that an A/B test must average away never enters the comparison
(``benchmarks/interleaving.py`` measures the saving in simulated shoppers).

The unit is one impression (one merged list shown to one arriving shopper).
An impression with a click is a *win* for the team with more credited clicks
and a *tie* when both have the same; an impression without a click carries
no preference and is not counted. The preference statistic is

    preference = (wins_B - wins_A) / (wins_A + wins_B + ties)   in [-1, 1], > 0 when B is preferred,

which is the mean of the per-impression outcome (+1, -1, 0) and equals
``-2 x`` Delta_AB of Chapelle, Joachims, Radlinski and Yue ("Large-scale
validation and analysis of interleaved search evaluation", TOIS 2012), whose
``Delta_AB = (wins_A + ties / 2) / (wins_A + wins_B + ties) - 1/2``.
:func:`preference_test` adds the two-sided sign test (``scipy.stats.binomtest``
on wins_B out of wins_A + wins_B, ties dropped) and a bootstrap interval.

Under continuous monitoring (the dashboard looks every tick) the sign test's
p-value is not valid; :func:`preference_sequence` gives the always-valid
verdict: the normal-mixture mSPRT of :mod:`recapp.experiment.sequential` on the
mean outcome (its p-value is the running minimum of ``1 / Lambda``, its
confidence sequence the running intersection of the per-look intervals).
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from recapp.experiment._checks import check_cumulative_counts, check_values
from recapp.experiment.sequential import msprt_interval, msprt_statistic
from recapp.models.base import check_param

TEAMS = ("A", "B")
ALPHA = 0.05
#: Scale of the mSPRT's normal mixture over the preference: a preference near 0.1
#: (B wins 55% of the decisive impressions) is where the sequential test is most sensitive.
TAU = 0.1
#: Impressions with a click before the first sequential look (the variance estimate needs a few).
MIN_CLICKS = 30
N_BOOT = 1000
#: Seconds of simulated time per tick, as in :mod:`recapp.experiment.live_ab`.
STEP_SECONDS = 3600.0


# ---- the merged list -------------------------------------------------------------------
def team_draft(list_a, list_b, k: int, rng=None) -> tuple[np.ndarray, np.ndarray]:
    """Merge two ranked lists by team draft: (merged items, team labels "A"/"B"), both of length <= k.

    While the merged list is shorter than ``k``, the team with fewer picks adds
    its highest-ranked item not yet in the list; when the teams are equal a
    coin decides (``rng.random(k)`` is drawn once, and the coin at position j is
    used if the teams are equal there, so :func:`team_draft_many` with the same
    generator gives the same list). A team with no item left yields its turn;
    the list stops early only when both are exhausted.
    """
    k = check_param("k", k, low=1, integer=True)
    rng = np.random.default_rng(rng)
    lists = {"A": list(np.asarray(list_a).ravel()), "B": list(np.asarray(list_b).ravel())}
    coins = rng.random(k) < 0.5
    merged, teams, used = [], [], set()
    size = {"A": 0, "B": 0}
    nxt = {"A": 0, "B": 0}

    def _advance(team):
        while nxt[team] < len(lists[team]) and lists[team][nxt[team]] in used:
            nxt[team] += 1
        return nxt[team] < len(lists[team])

    for j in range(k):
        first = "B" if size["B"] < size["A"] or (size["A"] == size["B"] and coins[j]) else "A"
        team = first if _advance(first) else ("B" if first == "A" else "A")
        if not _advance(team):
            break
        item = lists[team][nxt[team]]
        merged.append(item)
        teams.append(team)
        used.add(item)
        size[team] += 1
    return np.asarray(merged), np.asarray(teams, dtype="<U1")


def _check_slates(name: str, slates, k: int) -> np.ndarray:
    arr = np.asarray(slates)
    if arr.ndim != 2 or arr.shape[1] < k:
        raise ValueError(f"{name} must be a 2-D array with at least k={k} columns, got shape {arr.shape}")
    arr = arr[:, :k]
    # NaN != NaN: padding a short list with NaN would pass the distinctness test and be merged as items.
    missing = np.argwhere(pd.isna(arr))
    if len(missing):
        raise ValueError(f"{name} has {len(missing)} missing item(s) among its first k={k} columns, the first at row "
                         f"{int(missing[0][0])}, column {int(missing[0][1])}; each row needs k real items")
    srt = np.sort(arr, axis=1)
    if (srt[:, 1:] == srt[:, :-1]).any():
        raise ValueError(f"{name} repeats an item within a row; each row must hold k={k} distinct items")
    return arr


def team_draft_many(slates_a, slates_b, k: int, rng=None, coins=None) -> tuple[np.ndarray, np.ndarray]:
    """Team draft for many shoppers at once: merged (n, k) items and teams (n, k) of "A"/"B".

    ``slates_a`` and ``slates_b`` are (n, >= k) arrays of distinct items per row
    (then neither team runs out, so picks alternate and the coin is used at
    positions 0, 2, 4, ...). ``coins`` (bool, (n, k): True = B picks first when
    the teams are equal) replaces the draws ``rng.random((n, k)) < 0.5``; pass
    it to enumerate every merged list (:func:`expected_credit`).
    """
    k = check_param("k", k, low=1, integer=True)
    a, b = _check_slates("slates_a", slates_a, k), _check_slates("slates_b", slates_b, k)
    if len(a) != len(b):
        raise ValueError(f"slates_a and slates_b must have the same number of rows, got {len(a)} and {len(b)}")
    n = len(a)
    # numpy would turn the ints into strings: item 1 and item "1" would then be merged as one.
    if {a.dtype.kind in "US", b.dtype.kind in "US"} == {True, False} and "O" not in (a.dtype.kind, b.dtype.kind):
        raise ValueError(f"slates_a holds {a.dtype} items and slates_b {b.dtype} ones; item ids must be of one kind")
    if coins is None:
        coins = np.random.default_rng(rng).random((n, k)) < 0.5
    coins = np.asarray(coins, dtype=bool)
    if coins.shape != (n, k):
        raise ValueError(f"coins must have shape {(n, k)}, got {coins.shape}")
    merged = np.empty((n, k), dtype=np.result_type(a, b))
    is_b = np.zeros((n, k), dtype=bool)
    size_a, size_b = np.zeros(n, np.int64), np.zeros(n, np.int64)
    rows = np.arange(n)
    for j in range(k):
        pick_b = (size_b < size_a) | ((size_b == size_a) & coins[:, j])
        src = np.where(pick_b[:, None], b, a)
        taken = (src[:, :, None] == merged[:, None, :j]).any(axis=2)
        merged[:, j] = src[rows, np.argmax(~taken, axis=1)]
        is_b[:, j] = pick_b
        size_b += pick_b
        size_a += ~pick_b
    return merged, np.where(is_b, "B", "A")


# ---- credit and outcomes -----------------------------------------------------------------
def _check_teams(teams) -> np.ndarray:
    t = np.asarray(teams)
    bad = ~np.isin(t, TEAMS)
    if bad.any():
        raise ValueError(f"teams must hold only {list(TEAMS)}, got {sorted(set(t[bad].ravel().tolist()))[:5]}")
    return t


def credit(teams, clicked_positions) -> tuple[int, int]:
    """Clicks credited to each team of one merged list: (clicks A, clicks B).

    ``teams`` is the label per position from :func:`team_draft`;
    ``clicked_positions`` are 0-based positions in the merged list, each at
    most once (whole numbers; a True/False click mask is refused, as it would
    read as positions 0 and 1).
    """
    t = _check_teams(teams).ravel()
    raw = np.asarray(clicked_positions).ravel()
    if raw.dtype == bool:
        raise ValueError(f"clicked_positions holds True/False values {raw.tolist()[:10]}; pass the 0-based positions "
                         "that were clicked (np.flatnonzero(mask)), or use team_clicks for 0/1 clicks")
    pos = check_values("clicked_positions", raw)
    if (pos != np.round(pos)).any():
        raise ValueError(f"clicked_positions must be whole 0-based positions, got {pos.tolist()}")
    pos = pos.astype(np.int64)
    if ((pos < 0) | (pos >= len(t))).any():
        raise ValueError(f"clicked_positions must be 0-based positions in [0, {len(t) - 1}], got {pos.tolist()}")
    if len(np.unique(pos)) != len(pos):
        raise ValueError(f"clicked_positions repeats a position: {pos.tolist()}")
    hit = t[pos]
    return int((hit == "A").sum()), int((hit == "B").sum())


def team_clicks(teams, clicks) -> tuple[np.ndarray, np.ndarray]:
    """Credited clicks per merged list for (n, k) ``teams`` and 0/1 ``clicks``: two arrays of length n.

    ``clicks`` may be click probabilities (:func:`expected_credit`); a value
    outside [0, 1] or missing is refused (a NaN would drop the impression from
    :func:`outcomes` unseen).
    """
    t = _check_teams(teams)
    c = np.asarray(clicks)
    if c.shape != t.shape:
        raise ValueError(f"clicks must have the shape of teams {t.shape}, got {c.shape}")
    check_values("clicks", c, low=0.0, high=1.0)
    return (c * (t == "A")).sum(axis=-1), (c * (t == "B")).sum(axis=-1)


def outcomes(clicks_a, clicks_b) -> tuple[int, int, int]:
    """(wins A, wins B, ties) over impressions: more credited clicks wins; clicked impressions with equal credit tie.

    Impressions without any click are not counted; a missing or negative
    count is refused (it would be dropped or read as a loss).
    """
    ca, cb = np.asarray(clicks_a), np.asarray(clicks_b)
    check_values("clicks_a", ca, low=0.0)
    check_values("clicks_b", cb, low=0.0)
    if ca.shape != cb.shape:
        raise ValueError(f"clicks_a and clicks_b must have the same shape, got {ca.shape} and {cb.shape}")
    clicked = (ca + cb) > 0
    return int((ca > cb).sum()), int((cb > ca).sum()), int((clicked & (ca == cb)).sum())


def _check_counts(**counts) -> list[int]:
    out = []
    for name, v in counts.items():
        if (isinstance(v, bool) or not isinstance(v, (int, np.integer, float, np.floating)) or not np.isfinite(v)
                or v < 0 or v != int(v)):
            raise ValueError(f"{name}={v!r} must be a non-negative whole number")
        out.append(int(v))
    return out


def preference_test(wins_a, wins_b, ties=0, alpha: float = ALPHA, n_boot: int = N_BOOT, random_state=0) -> dict:
    """The preference for B over A with a two-sided sign test and a bootstrap interval.

    Returns a dict: wins_a, wins_b, ties, n (all three), preference
    (``(wins_b - wins_a) / n``, NaN when n = 0), share_b (``wins_b / (wins_a + wins_b)``),
    pvalue (``scipy.stats.binomtest(wins_b, wins_a + wins_b, 0.5)``, two-sided,
    ties dropped; 1.0 without decisive impressions), ci_low and ci_high (the
    percentile bootstrap ``1 - alpha`` interval of the preference over
    ``n_boot`` resamples; NaN when ``n_boot`` is 0). Resampling n impressions
    with replacement only changes how many of each outcome there are, so a
    resample is one multinomial draw of the three counts: exactly the
    nonparametric bootstrap, at a cost independent of n.
    """
    wa, wb, tie = _check_counts(wins_a=wins_a, wins_b=wins_b, ties=ties)
    check_param("alpha", alpha, low=0, high=0.5, low_inclusive=False)
    n_boot = check_param("n_boot", n_boot, low=0, integer=True)
    n, decisive = wa + wb + tie, wa + wb
    pvalue = float(stats.binomtest(wb, decisive, 0.5, alternative="two-sided").pvalue) if decisive else 1.0
    low = high = math.nan
    if n and n_boot:
        draws = np.random.default_rng(random_state).multinomial(n, np.array([wa, wb, tie]) / n, size=n_boot)
        boot = (draws[:, 1] - draws[:, 0]) / n
        low, high = (float(v) for v in np.quantile(boot, [alpha / 2, 1 - alpha / 2]))
    return {"wins_a": wa, "wins_b": wb, "ties": tie, "n": n, "preference": (wb - wa) / n if n else math.nan,
            "share_b": wb / decisive if decisive else math.nan, "pvalue": pvalue, "ci_low": low, "ci_high": high}


def preference_sequence(wins_a, wins_b, ties, tau: float = TAU, alpha: float = ALPHA,
                        min_clicks: int = MIN_CLICKS) -> dict:
    """Always-valid p-values, confidence sequence and verdict for the preference, look by look.

    Inputs are cumulative counts per look along the last axis (more axes: more
    experiments). At each look the mean outcome (the preference) and its sample
    variance go into the normal-mixture mSPRT (:func:`~recapp.experiment.sequential.msprt_statistic`
    with mixture scale ``tau`` in preference units, and :func:`~recapp.experiment.sequential.msprt_interval`).
    Looks start once ``min_clicks`` impressions have a click and the outcomes
    vary. Returns arrays: ``msprt_p`` (running minimum of ``1 / Lambda``),
    ``cs_low``/``cs_high`` (running intersection; NaN before the first look)
    and ``verdict`` (+1: B, -1: A, 0: none), fixed at the first look whose
    sequence excludes 0. With probability at least ``1 - alpha`` (up to the
    normal approximation) the sequence holds the true preference at every
    look at once, so stopping at any look keeps the false-verdict rate <= alpha.
    Refused: counts that are missing, negative, of different shapes, without
    a look, or falling from one look to the next (they must be cumulative).
    """
    check_param("tau", tau, low=0, low_inclusive=False)
    check_param("alpha", alpha, low=0, high=0.5, low_inclusive=False)
    check_param("min_clicks", min_clicks, low=2, integer=True)
    wa, wb, tie = check_cumulative_counts(wins_a=wins_a, wins_b=wins_b, ties=ties)
    n = wa + wb + tie
    with np.errstate(invalid="ignore", divide="ignore"):
        pref = (wb - wa) / n
        var = ((wa + wb) / n - pref**2) * n / (n - 1)
    ok = (n >= min_clicks) & (var > 1e-12)
    v, m = np.where(ok, var, 1.0), np.where(ok, n, 1.0)
    lam = msprt_statistic(np.where(ok, pref, 0.0), v, m, tau)
    low, high = msprt_interval(np.where(ok, pref, 0.0), v / m, tau, alpha)
    started = np.logical_or.accumulate(ok, axis=-1)
    p = np.where(started, np.minimum(1.0, np.minimum.accumulate(np.where(ok, 1.0 / lam, np.inf), axis=-1)), np.nan)
    low = np.where(started, np.maximum.accumulate(np.where(ok, low, -np.inf), axis=-1), np.nan)
    high = np.where(started, np.minimum.accumulate(np.where(ok, high, np.inf), axis=-1), np.nan)
    call = np.where(low > 0, 1, np.where(high < 0, -1, 0))
    first = np.argmax(call != 0, axis=-1)
    decided = np.take_along_axis(call, first[..., None], axis=-1)
    verdict = np.where(np.arange(call.shape[-1]) >= first[..., None], decided, 0)
    return {"msprt_p": p, "cs_low": low, "cs_high": high, "verdict": verdict}
