"""CUPED in the shopper simulator with returning shoppers: variance reduction, A/A false positives, power, shoppers needed.

A world is the synthetic shop (``--users`` shoppers, 300 items, 30,000 logged
events; seed ``--seed + w``) in :class:`recapp.experiment.ShopperSimulator`
(same seed). Popularity, fitted on the shop's log and never updated, serves
everyone for ``--pre-steps`` simulated hours (the pre-period), then for
``--steps`` more (the experiment), ``--sessions`` sessions an hour; shoppers
arrive by their activity, so active ones return in both periods
(:func:`recapp.experiment.simulate_with_pre_period`). The experiment's users
are those who arrive during it; their pre-period counts are the covariates.

A/A tests re-draw the salted-hash assignment over each world's simulated
shoppers (``--runs`` draws over ``--worlds`` worlds). The policy neither
learns nor sees the arm, so a shopper's outcomes do not depend on the
assignment and each draw *is* a simulator A/A run with another salt; the
script checks this once (a two-arm ``run_ab`` with two copies reproduces the
single-arm impressions). Power: the same draws with a lift planted in the
treatment arm's experiment outcomes (``--lift`` relative: non-buyers converted
at random, revenue scaled, clicks added to unclicked views). Shoppers per arm
for 80% power at a relative ``--mde`` come from the measured per-user spread
(:func:`recapp.experiment.sample_size_cuped`). A last table varies the
pre-period length and the returning rate in one world, with the ceiling that
any covariate built from the shoppers' true activity could reach.

    python benchmarks/cuped.py                                  # 10 worlds x 200 draws = 2,000 A/A runs
    python benchmarks/cuped.py --runs 400 --worlds 4 --seed 1 --no-sweep
"""
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse
import multiprocessing as mp
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.proportion import proportion_confint

from recapp.data import synthetic_shop
from recapp.experiment import ShopperSimulator, abtest, add_pre_period, analyze_cuped, sample_size_cuped, simulate_with_pre_period
from recapp.experiment.simulator import FEEDBACK_EVENTS, RecommenderPolicy, feedback_to_events
from recapp.models import Popularity

METRICS = ("conversion", "revenue_per_user", "ctr")
#: A richer covariate set: the same metric before, plus how much the shopper browsed before (log views) and the indicator.
RICH = {"conversion": ["pre_converted", "pre_purchases", "pre_log_views", "has_pre"],
        "revenue_per_user": ["pre_revenue", "pre_log_views", "has_pre"], "ctr": ["pre_log_views", "has_pre"]}
ALPHA = 0.05


def world(seed: int, n_users: int):
    """The shop, its simulator and a Popularity policy that does not learn."""
    shop = synthetic_shop(n_users=n_users, n_items=300, n_events=30_000, random_state=seed)
    sim = ShopperSimulator.from_synthetic(shop, random_state=seed)
    return sim, Popularity().fit(shop.events)


def plant(frame: pd.DataFrame, lift: float, base: dict, rng: np.random.Generator) -> pd.DataFrame:
    """The treatment arm's experiment outcomes with a relative ``lift`` planted in conversion, revenue and CTR."""
    out = frame.copy()
    t = (out["arm"] == "treatment").to_numpy()
    conv = out["converted"].to_numpy().copy()
    flip = t & (conv == 0) & (rng.random(len(out)) < base["conversion"] * lift / (1 - base["conversion"]))
    conv[flip] = 1
    out["converted"] = conv
    out.loc[t, "revenue"] = out.loc[t, "revenue"] * (1 + lift)
    views, clicks = out["views"].to_numpy(), out["clicks"].to_numpy().copy()
    clicks[t] += rng.binomial(views[t] - clicks[t], base["ctr"] * lift / (1 - base["ctr"]))
    out["clicks"] = clicks
    return out


def _record(table: pd.DataFrame, covariates: str, **extra) -> list[dict]:
    return [{**extra, "metric": r.metric, "adjustment": r.adjustment if r.adjustment == "none" else f"cuped ({covariates})",
             "diff": r.diff, "se": r.se, "sd": r.sd, "control": r.control, "pvalue": r.pvalue, "vr": r.variance_reduction,
             "n_c": extra["n_c"], "n_t": r.users} for r in table.itertuples()]


def run_world(job: tuple) -> tuple[list[dict], dict]:
    """All draws of one world: per draw and metric, the A/A and the planted-lift comparison without and with CUPED."""
    w, seed, draws, args = job
    sim, pop = world(seed + w, args["users"])
    t0 = time.perf_counter()
    _, per_user = simulate_with_pre_period(sim, {"all": RecommenderPolicy(pop, update=None)}, pre_steps=args["pre_steps"],
                                           n_steps=args["steps"], sessions_per_step=args["sessions"])
    sim_s = time.perf_counter() - t0
    per_user["pre_log_views"] = np.log1p(per_user["pre_views"])
    base = {"conversion": per_user["converted"].mean(), "ctr": per_user["clicks"].sum() / per_user["views"].sum(),
            "revenue_per_user": per_user["revenue"].mean()}
    rng = np.random.default_rng([seed, w, 99])
    rows = []
    for d in range(draws):
        arm = abtest.assign(per_user.index, salt=f"cuped-aa-{seed}-{w}-{d}")
        frame = per_user.assign(arm=arm.reindex(per_user.index).to_numpy())
        n_c = int((frame["arm"] == "control").sum())
        for kind, f in (("aa", frame), ("lift", plant(frame, args["lift"], base, rng))):
            common = {"world": w, "draw": d, "kind": kind, "n_c": n_c}
            rows += _record(analyze_cuped(f, metrics=METRICS + ("views",), correction="none"), "same metric", **common)
            rows += _record(analyze_cuped(f, metrics=METRICS, covariates=RICH, correction="none").query("adjustment == 'cuped'"),
                            "+ pre-period browsing", **common)
    info = {"world": w, "users": len(per_user), "coverage": per_user["has_pre"].mean(), "sim_s": sim_s,
            "sessions_per_user": args["steps"] * args["sessions"] / len(per_user), **{f"base_{k}": v for k, v in base.items()}}
    return rows, info


# ---- why the reduction is what it is -----------------------------------------------------------
def ceiling(y: np.ndarray, activity: np.ndarray, bins: int = 20) -> float:
    """Share of var(y) explained by the shoppers' true activity in ``bins`` quantile bins (what a perfect activity covariate reaches)."""
    groups = pd.qcut(np.log(activity), bins, labels=False, duplicates="drop")
    fitted = pd.Series(y).groupby(groups).transform("mean").to_numpy()
    return float(1 - (y - fitted).var() / y.var())


def sweep(seed: int, n_users: int, steps: int, sessions_grid=(250, 1000, 2000), pre_grid=(5, 20, 40)) -> pd.DataFrame:
    """Variance reduction for conversion against the pre-period length and the returning rate, in one world."""
    sim, pop = world(seed, n_users)
    rows = []
    for sessions in sessions_grid:
        res = sim.run(RecommenderPolicy(pop, update=None), n_steps=max(pre_grid) + steps, sessions_per_step=sessions)
        imp = res.impressions
        start = max(pre_grid)
        exp_events = feedback_to_events(imp[imp["step"] >= start], ("view",) + FEEDBACK_EVENTS)
        users = np.sort(exp_events["user_id"].unique())
        arm = abtest.assign(users, salt=f"cuped-sweep-{seed}")
        exp = abtest.user_metrics(exp_events, arm)
        act = sim.activity[sim.user_index(exp.index)]
        for pre in pre_grid:
            pre_imp = imp[(imp["step"] >= start - pre) & (imp["step"] < start)]
            frame = add_pre_period(exp, feedback_to_events(pre_imp, ("view",) + FEEDBACK_EVENTS))
            frame["pre_log_views"] = np.log1p(frame["pre_views"])
            same = analyze_cuped(frame, metrics=("conversion", "views")).query("adjustment == 'cuped'").set_index("metric")
            rich = analyze_cuped(frame, metrics=("conversion",), covariates=RICH)
            rich = rich.query("adjustment == 'cuped'").set_index("metric")
            rows.append({"sessions/hour": sessions, "pre-period hours": pre, "users": len(frame),
                         "sessions per user": steps * sessions / len(frame), "coverage": frame["has_pre"].mean(),
                         "conversion": frame["converted"].mean(),
                         "VR conversion (same metric)": same.loc["conversion", "variance_reduction"],
                         "VR conversion (+ browsing)": rich.loc["conversion", "variance_reduction"],
                         "explained by true activity": ceiling(frame["converted"].to_numpy(float), act),
                         "VR views/user": same.loc["views", "variance_reduction"]})
    return pd.DataFrame(rows)


def aa_equals_simulator_run(seed: int, n_users: int, sessions: int, pre_steps: int, steps: int) -> bool:
    """Does a two-arm A/A run (two copies, hashed assignment) show every shopper exactly what the single-arm run shows?"""
    sim, pop = world(seed, n_users)
    one = sim.run(RecommenderPolicy(pop, update=None), n_steps=pre_steps + steps, sessions_per_step=sessions).impressions
    two = sim.run_ab({"control": RecommenderPolicy(pop, update=None), "treatment": RecommenderPolicy(pop, update=None)},
                     n_steps=pre_steps + steps, sessions_per_step=sessions, salt="cuped-check").impressions
    cols = ["session", "slate", "position", "user_id", "item_id", "click", "cart", "purchase", "revenue"]
    a, b = (x[cols].sort_values(cols[:3], ignore_index=True) for x in (one, two))
    return a.equals(b)


# ---- tables -----------------------------------------------------------------------------------------
def _wilson(k: int, n: int) -> str:
    low, high = proportion_confint(k, n, alpha=0.05, method="wilson")
    return f"{low:.1%} to {high:.1%}"


def summarise(rows: pd.DataFrame, args, mde: float) -> pd.DataFrame:
    """One row per metric and adjustment: variance reduction, A/A rate, power, bias, shoppers per arm."""
    out = []
    planted = {m: args.lift * rows.loc[(rows.kind == "aa") & (rows.metric == m) & (rows.adjustment == "none"), "control"].mean()
               for m in METRICS}
    for (metric, adj), g in rows.groupby(["metric", "adjustment"], sort=False):
        aa, lift = g[g.kind == "aa"], g[g.kind == "lift"]
        k = int((aa.pvalue < ALPHA).sum())
        by_world = aa.groupby("world")["vr"].mean()
        base = rows.loc[(rows.kind == "aa") & (rows.metric == metric) & (rows.adjustment == "none"), ["sd", "control"]].mean()
        plain = adj == "none"
        row = {"metric": metric, "adjustment": adj, "variance reduction": np.nan if plain else by_world.mean(),
               "VR range over worlds": "" if plain else f"{by_world.min():.1%} to {by_world.max():.1%}",
               "A/A runs": len(aa), "A/A false positives": k / len(aa), "A/A 95% CI": _wilson(k, len(aa))}
        if metric in planted and len(lift):
            eff = planted[metric]
            pred = NormalIndPower().power(effect_size=eff / lift["sd"].mean(), nobs1=lift["n_c"].mean(), alpha=ALPHA,
                                          ratio=(lift["n_t"] / lift["n_c"]).mean())
            row.update({"power (planted)": (lift.pvalue < ALPHA).mean(), "power predicted": pred,
                        "mean estimate / planted": lift["diff"].mean() / eff})
        if metric in planted:
            row["shoppers/arm for 80%"] = sample_size_cuped(base["sd"], mde * base["control"],
                                                            variance_reduction=max(0.0, aa["vr"].mean()), alpha=ALPHA)
        out.append(row)
    return pd.DataFrame(out)


def markdown(df: pd.DataFrame, formats: dict) -> str:
    """A DataFrame as a markdown table, with per-column format strings."""
    head = "| " + " | ".join(df.columns) + " |"
    sep = "|" + "|".join("---:" if pd.api.types.is_numeric_dtype(df[c]) else "---" for c in df.columns) + "|"
    lines = [head, sep]
    for r in df.itertuples(index=False):
        cells = []
        for c, v in zip(df.columns, r):
            if isinstance(v, float) and np.isnan(v):
                cells.append("")
            else:
                cells.append(formats.get(c, "{}").format(v))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    """Run the study and print the tables."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=2000, help="A/A assignment draws in all (default 2000)")
    p.add_argument("--worlds", type=int, default=10, help="simulated worlds (seeds) the draws are spread over (default 10)")
    p.add_argument("--seed", type=int, default=0, help="seed of the first world (default 0)")
    p.add_argument("--users", type=int, default=2000, help="shoppers in the shop (default 2000)")
    p.add_argument("--sessions", type=int, default=500, help="sessions per simulated hour (default 500)")
    p.add_argument("--pre-steps", type=int, default=20, help="pre-period hours (default 20)")
    p.add_argument("--steps", type=int, default=20, help="experiment hours (default 20)")
    p.add_argument("--lift", type=float, default=0.10, help="relative lift planted for the power check (default 0.10)")
    p.add_argument("--mde", type=float, default=0.05, help="relative effect for the shoppers-needed column (default 0.05)")
    p.add_argument("--jobs", type=int, default=1, help="worker processes over worlds (default 1)")
    p.add_argument("--no-sweep", action="store_true", help="skip the pre-period length / returning rate table")
    args = p.parse_args(argv)
    for name in ("runs", "worlds", "users", "sessions", "pre_steps", "steps", "jobs"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    t0 = time.perf_counter()
    per = [args.runs // args.worlds + (w < args.runs % args.worlds) for w in range(args.worlds)]
    conf = {"users": args.users, "sessions": args.sessions, "pre_steps": args.pre_steps, "steps": args.steps, "lift": args.lift}
    jobs = [(w, args.seed, per[w], conf) for w in range(args.worlds) if per[w]]
    if args.jobs == 1:
        results = [run_world(j) for j in jobs]
    else:
        with mp.get_context("fork").Pool(args.jobs) as pool:
            results = pool.map(run_world, jobs, chunksize=1)
    rows = pd.DataFrame([r for rs, _ in results for r in rs])
    info = pd.DataFrame([i for _, i in results])
    table = summarise(rows, args, args.mde)
    exact = aa_equals_simulator_run(args.seed, args.users, args.sessions, args.pre_steps, args.steps)
    main_s = time.perf_counter() - t0
    print(f"CUPED in the shopper simulator: {len(info)} worlds (seeds {args.seed}..{args.seed + len(info) - 1}), "
          f"{args.users} shoppers, Popularity for {args.pre_steps} h pre-period + {args.steps} h experiment, "
          f"{args.sessions} sessions/h; {info['users'].mean():.0f} experiment users per world "
          f"({info['sessions_per_user'].mean():.1f} sessions each), {info['coverage'].mean():.0%} seen in the pre-period; "
          f"conversion {info['base_conversion'].mean():.1%}, CTR {info['base_ctr'].mean():.2%}, "
          f"revenue/user {info['base_revenue_per_user'].mean():.1f}")
    print(f"A/A by re-drawing the hashed assignment: {args.runs} runs; a two-arm simulator A/A run reproduces the "
          f"single-arm impressions exactly: {exact}. Planted lift +{args.lift:.0%}; shoppers/arm for +{args.mde:.0%} "
          f"relative at 80% power, alpha {ALPHA}.")
    print()
    fmt = {"variance reduction": "{:.1%}", "A/A false positives": "{:.2%}", "power (planted)": "{:.1%}",
           "power predicted": "{:.1%}", "mean estimate / planted": "{:.3f}", "shoppers/arm for 80%": "{:,.0f}"}
    print(markdown(table, fmt))
    if not args.no_sweep:
        t1 = time.perf_counter()
        sw = sweep(args.seed, args.users, args.steps)
        print()
        print(f"Conversion against the pre-period length and the returning rate (world {args.seed}, {args.steps} h experiment, "
              f"Popularity; sweep {time.perf_counter() - t1:.0f} s). 'explained by true activity': the share of the "
              f"variance of conversion that the shoppers' true activity (20 bins, known only to the simulator) explains:")
        print()
        pct = "{:.1%}"
        print(markdown(sw, {"sessions per user": "{:.1f}", "coverage": "{:.0%}", "conversion": pct,
                            "VR conversion (same metric)": pct, "VR conversion (+ browsing)": pct,
                            "explained by true activity": pct, "VR views/user": pct}))
    print()
    print(f"wall {time.perf_counter() - t0:.0f} s (worlds and A/A draws {main_s:.0f} s, simulation "
          f"{info['sim_s'].sum():.0f} s of it); command: python benchmarks/cuped.py "
          f"{' '.join(sys.argv[1:] if argv is None else argv)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
