"""Interleaving against A/B: how many simulated shoppers each needs to find the better ranker.

The world is the dashboard's synthetic shop (500 shopper profiles, 300 items,
30,000 training events, seed 0) and its :class:`ShopperSimulator`; every
model is fitted once on the whole log and served as fitted. The truth comes
from the simulator: a ranker's expected CTR is the activity-weighted mean of
``click_probabilities`` on its own slates, and the better ranker of a pair is
the one with the higher expected CTR. Interleaving's expected outcome is exact
too (:func:`recapp.experiment.interleaving_sim.expected_credit` enumerates the
coin flips of team draft).

A shopper arrives with a profile drawn by activity and sees ``--visits``
lists. The A/B test randomises shoppers to the arms and compares CTR with the
per-shopper delta method (every shopper has the same number of views, so it
reduces to the variance of the per-shopper click counts); interleaving shows
every shopper team-drafted lists and applies the two-sided sign test to the
impressions with a click. An experiment "detects" the better ranker when it
is significant at alpha = 0.05 in the true direction. For each method the
normal approximation predicts the shoppers needed for 80% power; ``--runs``
experiments at five sample sizes around it (drawn from the exact per-profile
probabilities: profile counts are multinomial, outcomes binomial) give the
simulated power curve, whose 80% crossing is reported. A validation step
checks the exact probabilities against the simulator itself (team draft and
the choice model, shopper by shopper).

Also: the agreement of the two verdicts at the A/B test's 80%-power size; the
dashboard race (ticks until the always-valid verdict of ``InterleavingSimulation``
and ``ABSimulation``, Popularity vs EASE, 20 shoppers per tick); and the
false-verdict rate of the always-valid interleaving verdict in A/A.

    python benchmarks/interleaving.py                       # about 70 s on 2 cores
    python benchmarks/interleaving.py --runs 200 --visits 1 --live-runs 3
"""
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from recapp.data import synthetic_shop
from recapp.experiment import (
    InterleavingSimulation,
    expected_credit,
    outcomes,
    preference_sequence,
    preference_test,
    run_interleaving,
)
from recapp.experiment.live_ab import ABSimulation, ShopScenario
from recapp.experiment.simulator import RecommenderPolicy, ShopperSimulator
from recapp.models import ALS, EASE, ItemKNN, Popularity

ALPHA, POWER = 0.05, 0.8
MODELS = {
    "Popularity": lambda: Popularity(),
    "EASE": lambda: EASE(l2=50.0),
    "EASE l2=500": lambda: EASE(l2=500.0),
    "ALS": lambda: ALS(random_state=0, verbose=False),
    "ItemKNN": lambda: ItemKNN(neighbours=100),
}
#: From far apart to very close (relative CTR gap about 58%, 3%, 1%, 0.2%).
PAIRS = [("Popularity", "EASE"), ("EASE", "ALS"), ("EASE", "EASE l2=500"), ("ALS", "ItemKNN")]


def build_world(seed: int) -> dict:
    """The shop, its simulator, every model fitted once and its fixed slates for every profile."""
    shop = synthetic_shop(n_users=500, n_items=300, n_events=30_000, random_state=0)
    sim = ShopperSimulator.from_synthetic(shop, random_state=seed, session_length=1.0)
    env = sim.environment()
    models, slates = {}, {}
    for name, make in MODELS.items():
        models[name] = make().fit(shop.events)
        pol = RecommenderPolicy(models[name], update=None)
        pol.reset(env)
        slates[name] = pol.slates(sim.user_ids, sim.k)
    return {"shop": shop, "sim": sim, "models": models, "slates": slates}


def pair_truth(world: dict, a: str, b: str) -> dict:
    """Per-profile P(click on the slate) of each ranker and P(click credited to A / B) when interleaved."""
    sim, sl = world["sim"], world["slates"]
    c = {}
    for name in (a, b):
        idx = sim.environment().item_index(sl[name].ravel()).reshape(sl[name].shape)
        c[name] = sim.click_probabilities(sim.user_ids, idx).sum(axis=1)
    p_a, p_b = expected_credit(sim, sim.user_ids, sl[a], sl[b])
    w = sim.activity
    ctr_a, ctr_b = float(w @ c[a]) / sim.k, float(w @ c[b]) / sim.k
    return {"c_a": c[a], "c_b": c[b], "p_a": p_a, "p_b": p_b, "ctr_a": ctr_a, "ctr_b": ctr_b,
            "truth": int(np.sign(ctr_b - ctr_a)), "pref": float(w @ (p_b - p_a) / (w @ (p_a + p_b)))}


# ---- sample sizes from the normal approximation ------------------------------------------
def predicted_interleaving(t: dict, w: np.ndarray, visits: int) -> float:
    """Shoppers for the sign test to reach POWER in the preferred direction (normal approximation)."""
    pa, pb = float(w @ t["p_a"]), float(w @ t["p_b"])
    q = pb / (pa + pb)
    za, zb = stats.norm.isf(ALPHA / 2), stats.norm.ppf(POWER)
    decisive = ((0.5 * za + zb * np.sqrt(q * (1 - q))) / abs(q - 0.5)) ** 2
    return decisive / (pa + pb) / visits


def predicted_ab(t: dict, w: np.ndarray, visits: int) -> float:
    """Shoppers (both arms) for a two-sided z-test on CTR; per-shopper variance = between + within profiles."""
    var = 0.0
    for c in (t["c_a"], t["c_b"]):
        m = w @ c
        var += w @ (c - m) ** 2 + (w @ (c * (1 - c))) / visits
    za, zb = stats.norm.isf(ALPHA / 2), stats.norm.ppf(POWER)
    return 2 * (za + zb) ** 2 * var / (w @ (t["c_b"] - t["c_a"])) ** 2


# ---- simulated experiments ------------------------------------------------------------------
def sign_pvalues(wins_a: np.ndarray, wins_b: np.ndarray) -> np.ndarray:
    """Two-sided exact sign-test p-values, vectorised (equal to ``binomtest(wins_b, n, 0.5).pvalue``)."""
    n = wins_a + wins_b
    return np.where(n > 0, np.minimum(1.0, 2 * stats.binom.cdf(np.minimum(wins_a, wins_b), n, 0.5)), 1.0)


def sim_interleaving(rng, n: int, visits: int, w, t, runs: int):
    """(wins_A, wins_B) per experiment of ``n`` shoppers: profile counts multinomial, outcomes binomial."""
    imps = rng.multinomial(n, w, size=runs) * visits
    wb = rng.binomial(imps, t["p_b"])
    wa = rng.binomial(imps - wb, t["p_a"] / (1 - t["p_b"]))
    return wa.sum(axis=1), wb.sum(axis=1)


def sim_ab(rng, n: int, visits: int, w, t, runs: int, k: int):
    """(CTR B - CTR A, its per-shopper delta-method SE) per experiment of ``n`` shoppers split at random."""
    m = rng.multinomial(n, w, size=runs)
    m_b = rng.binomial(m, 0.5)
    out = []
    x = np.arange(visits + 1)
    for mm, c in ((m - m_b, t["c_a"]), (m_b, t["c_b"])):
        pmf = stats.binom.pmf(x[None, :], visits, c[:, None])          # (profiles, visits + 1)
        counts = rng.multinomial(mm, pmf)                               # shoppers with 0..visits clicks
        size = counts.sum(axis=(1, 2)).astype(np.float64)
        s1, s2 = (counts * x).sum(axis=(1, 2)), (counts * x**2).sum(axis=(1, 2))
        # Views are k * visits for every shopper, so the delta method reduces to the clicks' variance.
        out.append((s1 / (size * k * visits), (s2 - s1**2 / size) / (size - 1) / size / (k * visits) ** 2))
    (ra, va), (rb, vb) = out
    return rb - ra, np.sqrt(va + vb)


def power_at(method: str, rng, n: int, visits: int, w, t, runs: int, k: int) -> float:
    """Share of ``runs`` experiments of ``n`` shoppers significant in the true direction."""
    if method == "interleaving":
        wa, wb = sim_interleaving(rng, n, visits, w, t, runs)
        hit = (sign_pvalues(wa, wb) < ALPHA) & (np.sign(wb - wa) == t["truth"])
    else:
        diff, se = sim_ab(rng, n, visits, w, t, runs, k)
        hit = (2 * stats.norm.sf(np.abs(diff / se)) < ALPHA) & (np.sign(diff) == t["truth"])
    return float(hit.mean())


def n80(method: str, rng, predicted: float, visits: int, w, t, runs: int, k: int) -> tuple[float, list]:
    """The 80%-power crossing of the simulated power curve (log-linear), from five sizes around the prediction.

    The grid is widened (doubling or halving, up to three times) until it brackets 80%.
    """
    if method == "interleaving" and np.sign(t["pref"]) != t["truth"]:
        return np.inf, []
    curve = {}
    for s in np.maximum(2, np.round(predicted * 2.0 ** np.array([-1, -0.5, 0, 0.5, 1]))).astype(np.int64):
        curve.setdefault(int(s), power_at(method, rng, int(s), visits, w, t, runs, k))
    for _ in range(3):
        lo, hi = min(curve), max(curve)
        if curve[hi] < POWER:
            curve[2 * hi] = power_at(method, rng, 2 * hi, visits, w, t, runs, k)
        elif curve[lo] >= POWER and lo > 2:
            curve[lo // 2] = power_at(method, rng, lo // 2, visits, w, t, runs, k)
    sizes = np.array(sorted(curve))
    mono = np.maximum.accumulate([curve[s] for s in sizes])
    if mono[-1] < POWER:
        return np.nan, sorted(curve.items())
    j = int(np.argmax(mono >= POWER))
    if j == 0:
        return float(sizes[0]), sorted(curve.items())
    x0, x1, y0, y1 = np.log(sizes[j - 1]), np.log(sizes[j]), mono[j - 1], mono[j]
    return float(np.exp(x0 + (POWER - y0) / max(y1 - y0, 1e-12) * (x1 - x0))), sorted(curve.items())


def agreement(rng, n: int, visits: int, w, t, runs: int, k: int) -> dict:
    """At ``n`` shoppers per experiment: shares of runs whose verdict signs agree, and that match the truth."""
    wa, wb = sim_interleaving(rng, n, visits, w, t, runs)
    diff, _ = sim_ab(rng, n, visits, w, t, runs, k)
    s_il, s_ab = np.sign(wb - wa), np.sign(diff)
    return {"agree": float((s_il == s_ab).mean()), "il_right": float((s_il == t["truth"]).mean()),
            "ab_right": float((s_ab == t["truth"]).mean())}


# ---- checks against the simulator itself ---------------------------------------------------
def validate(world: dict, a: str, b: str, t: dict, steps: int = 40, sessions: int = 500) -> str:
    """Real team-drafted lists in the simulator vs the exact probabilities (chi-square), and delta-method parity."""
    from recapp.experiment.abtest import compare_ratio

    sim, models = world["sim"], world["models"]
    log = run_interleaving(sim, RecommenderPolicy(models[a], update=None), RecommenderPolicy(models[b], update=None),
                           n_steps=steps, sessions_per_step=sessions, random_state=1)
    wa, wb, ties = outcomes(log["clicks_A"].to_numpy(), log["clicks_B"].to_numpy())
    # Arrivals in the simulator follow activity, so the expected shares are activity-weighted.
    pa, pb = float(sim.activity @ t["p_a"]), float(sim.activity @ t["p_b"])
    n = len(log)
    chi = stats.chisquare([wa, wb, n - wa - wb], n * np.array([pa, pb, 1 - pa - pb]))
    # The shortcut SE of sim_ab equals compare_ratio on per-shopper rows when views are constant.
    rng = np.random.default_rng(5)
    k = sim.k
    xa, xb = rng.binomial(1, 0.2, 300).astype(float), rng.binomial(1, 0.25, 280).astype(float)
    ref = compare_ratio(xa, np.full(300, k), xb, np.full(280, k))
    se = np.sqrt(xa.var(ddof=1) / 300 / k**2 + xb.var(ddof=1) / 280 / k**2)
    parity = abs(float(sign_pvalues(np.array([wa]), np.array([wb]))[0]) - preference_test(wa, wb, ties, n_boot=0)["pvalue"])
    return (f"validation ({a} vs {b}, {n:,} simulated shoppers through team draft and the choice model): wins A {wa}, "
            f"wins B {wb}, ties {ties}; expected {n * pa:.0f} / {n * pb:.0f}; chi-square p = {chi.pvalue:.2f}. "
            f"Delta-method SE via compare_ratio {float(ref['se']):.6f} = shortcut {se:.6f}; "
            f"vectorised sign test vs binomtest: |difference| {parity:.1e}.")


def live_race(world: dict, runs: int, ticks: int) -> pd.DataFrame:
    """Ticks to the always-valid verdict in the dashboard: InterleavingSimulation vs ABSimulation, Popularity vs EASE."""
    shop, models = world["shop"], world["models"]
    sc = ShopScenario(shop, shop.events)
    rows = []
    for r in range(runs):
        pair = {"Popularity": models["Popularity"], "EASE": models["EASE"]}
        for label, sim in (("interleaving", InterleavingSimulation(sc, pair, random_state=r)),
                           ("A/B", ABSimulation(sc, pair, random_state=r, salt=f"race-{r}"))):
            for _ in range(ticks):
                if sim.step()["verdict"] is not None:
                    break
            rows.append({"method": label, "run": r, "verdict": sim.verdict, "tick": sim.verdict_step})
    return pd.DataFrame(rows)


def aa_sequential(rng, paths: int, ticks: int, sessions: int, click_rate: float) -> dict:
    """A/A at the dashboard's rate: false verdicts of the always-valid rule vs peeking at the sign test every tick."""
    from statsmodels.stats.proportion import proportion_confint

    decisive = rng.binomial(sessions, click_rate, (paths, ticks))
    wb = np.cumsum(rng.binomial(decisive, 0.5), axis=1)
    wa = np.cumsum(decisive, axis=1) - wb
    seq = preference_sequence(wa, wb, np.zeros_like(wa))
    false_seq = int((seq["verdict"][:, -1] != 0).sum())
    false_peek = int((sign_pvalues(wa, wb)[:, 1:] < ALPHA).any(axis=1).sum())
    out = {}
    for name, k in (("always-valid verdict", false_seq), ("peeking at the sign test every tick", false_peek)):
        low, high = proportion_confint(k, paths, alpha=0.05, method="wilson")
        out[name] = (k / paths, low, high)
    return out


def fmt_n(v: float) -> str:
    """Shoppers as an integer with thousands separators; "never" for infinity, "> grid" for NaN."""
    if np.isinf(v):
        return "never"
    return "> grid" if np.isnan(v) else f"{v:,.0f}"


def main(argv=None) -> int:
    """Run the study and print the tables."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=1000, help="simulated experiments per sample size (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="simulator and experiment seed (default 0)")
    p.add_argument("--visits", type=str, default="1,10,50", help="lists per shopper, comma-separated (default 1,10,50)")
    p.add_argument("--live-runs", type=int, default=10, help="dashboard races per method (default 10)")
    p.add_argument("--ticks", type=int, default=150, help="ticks per dashboard race (default 150)")
    args = p.parse_args(argv)
    if args.runs < 20:
        p.error(f"--runs={args.runs} is too few; use at least 20")
    visits_list = [int(v) for v in args.visits.split(",")]
    if not visits_list or min(visits_list) < 1:
        p.error(f"--visits={args.visits!r} must be positive integers")
    t0 = time.perf_counter()
    world = build_world(args.seed)
    sim = world["sim"]
    w, k = sim.activity, sim.k
    truths = {(a, b): pair_truth(world, a, b) for a, b in PAIRS}
    rng = np.random.default_rng(args.seed)
    print(f"# Team-draft interleaving vs A/B on CTR ({args.runs} simulated experiments per sample size)\n")
    print("| pair (A vs B) | CTR A | CTR B | CTR gap | interleaving preference | better (truth) | interleaving prefers |")
    print("|---|---:|---:|---:|---:|---|---|")
    for (a, b), t in truths.items():
        prefers = b if t["pref"] > 0 else a
        better = b if t["truth"] > 0 else a
        print(f"| {a} vs {b} | {t['ctr_a']:.4%} | {t['ctr_b']:.4%} | {t['ctr_b'] / t['ctr_a'] - 1:+.2%} | "
              f"{t['pref']:+.4f} | {better} | {prefers} |")
    for visits in visits_list:
        print(f"\n## {visits} list(s) per shopper: shoppers needed for {POWER:.0%} power at alpha {ALPHA}\n")
        print("| pair | interleaving (predicted) | interleaving (simulated) | A/B (predicted) | A/B (simulated) | "
              "A/B ÷ interleaving | signs agree | interleaving right | A/B right |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for (a, b), t in truths.items():
            pred_il, pred_ab = predicted_interleaving(t, w, visits), predicted_ab(t, w, visits)
            if np.sign(t["pref"]) != t["truth"]:
                pred_il = np.inf
            sim_il, _ = n80("interleaving", rng, pred_il, visits, w, t, args.runs, k)
            sim_ab_n, _ = n80("ab", rng, pred_ab, visits, w, t, args.runs, k)
            ratio = sim_ab_n / sim_il if np.isfinite(sim_il) and np.isfinite(sim_ab_n) else np.nan
            at = int(round(sim_ab_n if np.isfinite(sim_ab_n) else pred_ab))
            ag = agreement(rng, at, visits, w, t, args.runs, k)
            print(f"| {a} vs {b} | {fmt_n(pred_il)} | {fmt_n(sim_il)} | {fmt_n(pred_ab)} | {fmt_n(sim_ab_n)} | "
                  f"{'–' if np.isnan(ratio) else f'{ratio:.1f}×'} | {ag['agree']:.1%} | {ag['il_right']:.1%} | "
                  f"{ag['ab_right']:.1%} |")
    print("\nSigns agree / right: share of experiments at the A/B test's 80%-power size whose interleaving and A/B "
          "verdict signs agree, and whose sign matches the simulator's truth (higher expected CTR).")
    a, b = PAIRS[1]
    print("\n" + validate(world, a, b, truths[(a, b)]))
    if args.live_runs > 0:
        race = live_race(world, args.live_runs, args.ticks)
        print(f"\n## Dashboard race, Popularity (A) vs EASE (B), 20 shoppers per tick, {args.live_runs} runs, "
              f"up to {args.ticks} ticks\n")
        print("| method | verdicts | correct (B) | median tick of the verdict (runs with one) |")
        print("|---|---:|---:|---:|")
        for method, g in race.groupby("method", sort=False):
            done = g[g["verdict"].notna()]
            med = f"{done['tick'].median():.0f}" if len(done) else "–"
            print(f"| {method} | {len(done)}/{len(g)} | {int((done['verdict'] == 'B').sum())} | {med} |")
    click_rate = float(w @ (truths[PAIRS[0]]["c_a"]))        # Popularity against itself
    aa = aa_sequential(rng, 2000, args.ticks, 20, click_rate)
    print(f"\n## A/A (Popularity twice): 2000 paths of {args.ticks} ticks x 20 shoppers\n")
    print("| rule | false verdicts | 95% CI |")
    print("|---|---:|---|")
    for rule, (share, low, high) in aa.items():
        print(f"| {rule} | {share:.1%} | {low:.1%} to {high:.1%} |")
    print(f"\ncommand: python benchmarks/interleaving.py --runs {args.runs} --seed {args.seed} --visits {args.visits} "
          f"--live-runs {args.live_runs} --ticks {args.ticks}")
    print(f"wall time: {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
