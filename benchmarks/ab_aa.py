"""A/A runs of the live A/B test: how often does watching every tick declare a winner between identical policies?

Each run puts Popularity against a copy of itself in the dashboard's synthetic
shop (500 shoppers, 300 items, 30,000 training events, seed 0) with
:class:`recapp.experiment.live_ab.ABSimulation` (20 sessions per tick), a new
``random_state`` and a new assignment salt per run, and looks after every
tick. Any winner is a false positive. Rules compared:

* peeking (the old dashboard rule): the fixed-horizon 95% interval of
  ``compare()`` recomputed every tick, a winner as soon as it excludes 0;
* the same peeking rule, but only from the tick the mSPRT starts looking (its
  burn-in), to show that the burn-in is not what protects the new verdict;
* the always-valid mSPRT verdict of ``ABSimulation.step()`` (the new rule);
* the fixed-horizon test, once, at the planned sample size (runs that reach it).

    python benchmarks/ab_aa.py                       # 200 runs x 150 ticks on 2 processes
    python benchmarks/ab_aa.py --runs 20 --ticks 50 --jobs 1
"""
from __future__ import annotations

import os

# One BLAS thread per process: the work is many small arrays, and --jobs processes share the cores.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse
import json
import multiprocessing as mp
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from recapp.data import synthetic_shop
from recapp.experiment.live_ab import ABSimulation, ShopScenario
from recapp.models.popularity import Popularity

_WORLD: dict = {}


def _setup() -> None:
    """Build the shop and fit Popularity once per process."""
    shop = synthetic_shop(n_users=500, n_items=300, n_events=30_000, random_state=0)
    _WORLD["scenario"] = ShopScenario(shop, shop.events)
    _WORLD["model"] = Popularity().fit(shop.events)


def run_one(job: tuple) -> dict:
    """One A/A run of ``ticks`` ticks; the first tick (or None) at which each rule declares a winner."""
    r, ticks, salt, cuped = job
    if not _WORLD:
        _setup()
    model = _WORLD["model"]
    ab = ABSimulation(_WORLD["scenario"], {"Popularity": model, "Popularity (copy)": model}, random_state=r,
                      salt=salt or f"aa-{r}", cuped=cuped)
    out = {"run": r, "peeking": None, "peeking_after_burn_in": None, "msprt": None, "fixed_reached": None,
           "fixed_reject": None, "seconds": 0.0}
    t0 = time.perf_counter()
    for _ in range(ticks):
        row = ab.step()
        tick = row["step"]
        c = ab.compare()
        wrong = c is not None and (float(c["ci_low"]) > 0 or float(c["ci_high"]) < 0)
        if wrong and out["peeking"] is None:
            out["peeking"] = tick
        # The mSPRT's first look is the first tick with a p-value.
        if wrong and out["peeking_after_burn_in"] is None and not np.isnan(row["msprt_p"]):
            out["peeking_after_burn_in"] = tick
        if row["fixed_p"] is not None and out["fixed_reached"] is None:
            out["fixed_reached"], out["fixed_reject"] = tick, bool(row["fixed_p"] < ab.alpha)
    out["msprt"] = ab.verdict_step
    out["variance_reduction"] = row.get("variance_reduction")
    out["seconds"] = time.perf_counter() - t0
    out.update(planned_users=ab.planned_users, mde=ab.mde, baseline_ctr=ab.baseline_ctr, tau=ab.tau, min_users=ab.min_users)
    return out


def summarise(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per rule: runs watched, runs with a (false) winner, the share with a Wilson 95% interval, median first tick."""
    from statsmodels.stats.proportion import proportion_confint

    rules = {
        "peeking: fixed-horizon 95% CI every tick (old)": ("peeking", len(runs)),
        "peeking after the mSPRT burn-in": ("peeking_after_burn_in", len(runs)),
        "always-valid mSPRT verdict (new)": ("msprt", len(runs)),
    }
    rows = []
    for rule, (col, n) in rules.items():
        first = runs[col].dropna()
        rows.append((rule, n, len(first), first))
    reached = runs[runs["fixed_reached"].notna()]
    rows.append(("fixed horizon, one look at the planned n", len(reached), int(reached["fixed_reject"].astype(bool).sum()),
                 reached.loc[reached["fixed_reject"].astype(bool), "fixed_reached"]))
    table = []
    for rule, n, k, first in rows:
        low, high = proportion_confint(k, n, alpha=0.05, method="wilson") if n else (np.nan, np.nan)
        table.append({"rule": rule, "runs": n, "false winners": k, "share": k / n if n else np.nan,
                      "95% CI": f"{low:.1%} to {high:.1%}" if n else "",
                      "median first tick": float(np.median(first)) if len(first) else np.nan})
    return pd.DataFrame(table)


def markdown(table: pd.DataFrame) -> str:
    """The summary as a small markdown table."""
    lines = ["| rule | runs | false winners | share | 95% CI | median tick of first false verdict |",
             "|---|---:|---:|---:|---|---:|"]
    for r in table.itertuples(index=False):
        tick = "" if np.isnan(r[5]) else f"{r[5]:.0f}"
        share = "" if np.isnan(r.share) else f"{r.share:.1%}"
        lines.append(f"| {r.rule} | {r.runs} | {r[2]} | {share} | {r[4]} | {tick} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    """Run the A/A study and print the table."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=200, help="A/A runs, each with its own random_state and salt (default 200)")
    p.add_argument("--ticks", type=int, default=150, help="ticks per run, each one watched (default 150)")
    p.add_argument("--jobs", type=int, default=2, help="worker processes (default 2)")
    p.add_argument("--salt", default=None, help="one assignment salt for every run (default: a new salt per run)")
    p.add_argument("--json", type=Path, help="also write the per-run results here")
    p.add_argument("--cuped", action="store_true", help="the A/B verdict with CUPED on the shoppers' pre-period CTR")
    args = p.parse_args(argv)
    for name in ("runs", "ticks", "jobs"):
        if getattr(args, name) < 1:
            p.error(f"--{name} must be >= 1, got {getattr(args, name)}")
    jobs = [(r, args.ticks, args.salt, args.cuped) for r in range(args.runs)]
    t0 = time.perf_counter()
    if args.jobs == 1:
        results = [run_one(j) for j in jobs]
    else:
        with mp.get_context("fork").Pool(args.jobs, initializer=_setup) as pool:
            results = pool.map(run_one, jobs, chunksize=1)
    wall = time.perf_counter() - t0
    runs = pd.DataFrame(results)
    tick_ms = 1000 * runs["seconds"].sum() / (args.runs * args.ticks)
    print(f"A/A: Popularity vs a copy of itself, {args.runs} runs x {args.ticks} ticks, 20 sessions per tick, "
          f"{args.jobs} process(es); {tick_ms:.1f} ms per tick, wall {wall:.0f} s")
    first = runs.iloc[0]
    print(f"mSPRT tau = {first['tau']:.4f} (the MDE: +{first['mde']:.0%} on a {first['baseline_ctr']:.1%} CTR), looks from "
          f"{first['min_users']} shoppers per arm; fixed horizon planned at {first['planned_users']} shoppers per arm "
          f"(80% power); salt: {args.salt or 'a new one per run'}")
    if args.cuped:
        print(f"CUPED on the pre-period CTR: variance reduction at the last tick, median "
              f"{runs['variance_reduction'].median():.1%} (the mSPRT row uses the CUPED-adjusted difference)")
    print()
    print(markdown(summarise(runs)))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
