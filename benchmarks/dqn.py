"""DQN slate re-ranker against LinUCB, REINFORCE, greedy and random, over seeds.

(a) The documented bandit setting (``bandits.bandit_simulator(seed)``: 1,000
shoppers, 50 items, slates of 3, one slate per visit, random-slate CTR 5%,
segment context) for ``--slates`` slates (60,000 = ``DOCUMENTED_SETTING``):
regret per 1,000 slates against the oracle's expected clicks, mean and
standard deviation over ``--seeds`` seeds. Every learner is rewarded by clicks.

(b) Returning shoppers with a memory (``dqn.returning_simulator(seed,
**dqn.LONG_TERM_EFFECTS)``): the same shop cut to ``--shoppers`` shoppers (300)
with sessions of about three slates, run for ``--steps`` hours of 50 sessions,
so each shopper comes back many times; an item shown and not clicked loses
``--fatigue`` of utility for that shopper (log(2)/5: a slate ignored five times
keeps half its click appeal), recovering with a half-life of ``--half-life``
hours (24), and a session without a click loses the shopper for good with
probability ``--churn`` (0.1). These values were fixed from that reading of
the knobs before any policy was run with them. Measured: purchases per shopper
over the whole run (every shopper who arrived), for the DQN (reward shaped
towards purchases: 0.1 click + 0.3 cart + 1 purchase; gamma 0.5 and 0.9, and
gamma 0 as the myopic ablation), the greedy policy (always the items with the
best click rate so far: ``EpsilonGreedy(epsilon=0)``), LinUCB and random
(``dqn.compare_long_term``), and the share of shoppers who churned. Arrivals,
outcome and churn draws are shared between policies (common random numbers),
so differences are paired by seed: against greedy and against the myopic DQN,
each with a 95% t interval over seeds. ``--fatigue 0 --churn 0`` is the
memoryless shop of earlier versions.

    python benchmarks/dqn.py                    # 5 seeds, 2 workers: 272 s wall on 2 shared cores
    python benchmarks/dqn.py --seeds 3 --slates 20000 --steps 60
    python benchmarks/dqn.py --part b --seeds 10   # only the returning shoppers, ten seeds (51 s)
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
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from recapp.experiment import DQNReranker, RandomPolicy, compare_long_term, returning_simulator  # noqa: E402
from recapp.experiment.dqn import LONG_TERM_EFFECTS  # noqa: E402
from recapp.experiment.bandits import EpsilonGreedy, LinUCB, bandit_simulator, compare_policies  # noqa: E402
from recapp.experiment.reinforce import ReinforceReRanker  # noqa: E402

SESSIONS_PER_STEP = 50
SHAPED = {"click": 0.1, "cart": 0.3, "purchase": 1.0}
MYOPIC = "DQN (gamma 0, shaped)"


def bandit_policies(seed: int) -> dict:
    """The policies of part (a), all rewarded by clicks."""
    return {"DQN (gamma 0.5)": DQNReranker(random_state=seed), "LinUCB (alpha 0.3)": LinUCB(alpha=0.3, random_state=seed),
            "REINFORCE": ReinforceReRanker(random_state=seed), "greedy": EpsilonGreedy(0.0, random_state=seed),
            "random": RandomPolicy(random_state=seed)}


def shopper_policies(seed: int) -> dict:
    """The policies of part (b)."""
    return {"DQN (gamma 0.9, shaped)": DQNReranker(random_state=seed, reward_weights=SHAPED, gamma=0.9),
            "DQN (gamma 0.5, shaped)": DQNReranker(random_state=seed, reward_weights=SHAPED),
            MYOPIC: DQNReranker(random_state=seed, reward_weights=SHAPED, gamma=0.0),
            "LinUCB (alpha 0.3)": LinUCB(alpha=0.3, random_state=seed), "greedy": EpsilonGreedy(0.0, random_state=seed),
            "random": RandomPolicy(random_state=seed)}


def run_bandit(job) -> list[dict]:
    """Part (a) for one seed: regret per 1,000 slates of every policy."""
    seed, slates = job
    sim = bandit_simulator(random_state=seed)
    rows = []
    for name, pol in bandit_policies(seed).items():
        t = time.perf_counter()
        summary, _ = compare_policies(sim, {name: pol}, n_steps=max(1, slates // SESSIONS_PER_STEP),
                                      sessions_per_step=SESSIONS_PER_STEP)
        rows.append({"seed": seed, "policy": name, "regret_per_1000": float(summary["regret_per_1000"].iloc[0]),
                     "seconds": time.perf_counter() - t})
    return rows


def run_shoppers(job) -> list[dict]:
    """Part (b) for one seed: purchases, clicks and slates per shopper of every policy."""
    seed, shoppers, steps, effects = job
    sim = returning_simulator(random_state=seed, n_users=shoppers, **effects)
    rows = []
    for name, pol in shopper_policies(seed).items():
        t = time.perf_counter()
        row = compare_long_term(sim, {name: pol}, n_steps=steps, sessions_per_step=SESSIONS_PER_STEP).iloc[0].to_dict()
        rows.append({**row, "seed": seed, "seconds": time.perf_counter() - t})
    return rows


def t_interval(x) -> tuple[float, float, float]:
    """Mean and 95% t interval over seeds."""
    x = np.asarray(x, dtype=np.float64)
    m = float(x.mean())
    if len(x) < 2:
        return m, np.nan, np.nan
    h = float(stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x)))
    return m, m - h, m + h


def bandit_table(rows: pd.DataFrame) -> str:
    g = rows.groupby("policy", sort=False)["regret_per_1000"]
    seeds = sorted(rows["seed"].unique())
    out = ["| policy | regret / 1,000 slates (mean ± sd) | " + " | ".join(f"seed {s}" for s in seeds) + " | s per run |",
           "|---|---:|" + "---:|" * len(seeds) + "---:|"]
    for name, x in sorted(g, key=lambda kv: kv[1].mean()):
        per = rows[rows["policy"] == name].set_index("seed")
        out.append(f"| {name} | {x.mean():.1f} ± {x.std(ddof=1) if len(x) > 1 else 0:.1f} | "
                   + " | ".join(f"{per.loc[s, 'regret_per_1000']:.1f}" for s in seeds)
                   + f" | {per['seconds'].mean():.1f} |")
    return "\n".join(out)


def shopper_table(rows: pd.DataFrame) -> str:
    out = ["| policy | purchases / shopper (mean, 95% CI over seeds) | vs greedy (paired, 95% CI) | "
           "vs DQN gamma 0 (paired, 95% CI) | clicks / shopper | slates / shopper | churned | "
           "regret / 1,000 slates | s per run |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    ref = {base: rows[rows["policy"] == base].set_index("seed")["purchases_per_shopper"] for base in ("greedy", MYOPIC)}
    order = rows.groupby("policy", sort=False)["purchases_per_shopper"].mean().sort_values(ascending=False).index
    for name in order:
        r = rows[rows["policy"] == name].set_index("seed")
        m, lo, hi = t_interval(r["purchases_per_shopper"])
        vs = []
        for base, x in ref.items():
            d, dlo, dhi = t_interval(r["purchases_per_shopper"] - x.reindex(r.index))
            vs.append("" if name == base or x.empty else f"{d:+.3f} [{dlo:+.3f}, {dhi:+.3f}]")
        out.append(f"| {name} | {m:.3f} [{lo:.3f}, {hi:.3f}] | {vs[0]} | {vs[1]} | {r['clicks_per_shopper'].mean():.2f} | "
                   f"{r['slates_per_shopper'].mean():.1f} | {r['churned_share'].mean():.0%} | "
                   f"{r['regret_per_1000'].mean():.1f} | {r['seconds'].mean():.1f} |")
    return "\n".join(out)


def _map(fn, jobs, n_jobs):
    if n_jobs == 1:
        return [fn(j) for j in jobs]
    with mp.get_context("fork").Pool(n_jobs) as pool:
        return pool.map(fn, jobs, chunksize=1)


def main(argv=None) -> int:
    """Run both parts and print their tables."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, default=5, help="seeds 0..N-1 (default 5)")
    p.add_argument("--slates", type=int, default=60_000, help="slates per run in part (a) (default 60,000, the documented run)")
    p.add_argument("--shoppers", type=int, default=300, help="shoppers in part (b) (default 300)")
    p.add_argument("--steps", type=int, default=100, help="hours of 50 sessions in part (b) (default 100)")
    p.add_argument("--jobs", type=int, default=2, help="worker processes over seeds (default 2)")
    p.add_argument("--part", choices=("a", "b", "both"), default="both", help="which part to run (default both)")
    p.add_argument("--fatigue", type=float, default=LONG_TERM_EFFECTS["fatigue"],
                   help="part (b): utility lost per ignored impression (default log(2)/5 = 0.139)")
    p.add_argument("--half-life", type=float, default=LONG_TERM_EFFECTS["fatigue_half_life"],
                   help="part (b): hours for fatigue to halve (default 24; 0 = never recovers)")
    p.add_argument("--churn", type=float, default=LONG_TERM_EFFECTS["churn"],
                   help="part (b): probability of leaving after a session without a click (default 0.1)")
    args = p.parse_args(argv)
    for name in ("seeds", "slates", "shoppers", "steps", "jobs"):
        if getattr(args, name) < 1:
            p.error(f"--{name} must be >= 1, got {getattr(args, name)}")
    if args.fatigue < 0 or args.half_life < 0 or not 0 <= args.churn <= 1:
        p.error(f"need --fatigue >= 0, --half-life >= 0 and 0 <= --churn <= 1; got {args.fatigue}, {args.half_life}, {args.churn}")
    effects = {"fatigue": args.fatigue, "fatigue_half_life": args.half_life or None, "churn": args.churn}
    t0 = time.perf_counter()
    seeds = range(args.seeds)
    if args.part in ("a", "both"):
        a = pd.DataFrame([r for rs in _map(run_bandit, [(s, args.slates) for s in seeds], args.jobs) for r in rs])
        n_steps = max(1, args.slates // SESSIONS_PER_STEP)
        print(f"(a) Documented bandit setting: {n_steps * SESSIONS_PER_STEP:,} one-slate visits per run, seeds "
              f"0..{args.seeds - 1}; regret per 1,000 slates against the oracle (expected clicks; lower is better). "
              f"{time.perf_counter() - t0:.0f} s.")
        print()
        print(bandit_table(a))
        print()
    if args.part in ("b", "both"):
        t1 = time.perf_counter()
        b = pd.DataFrame([r for rs in _map(run_shoppers, [(s, args.shoppers, args.steps, effects) for s in seeds],
                                           args.jobs) for r in rs])
        half = f"{args.half_life:g} h" if args.half_life else "never"
        print(f"(b) Returning shoppers: {args.shoppers} shoppers, sessions of ~3 slates, {args.steps} h x {SESSIONS_PER_STEP} "
              f"sessions ({b['slates_per_shopper'].mean():.0f} slates per arriving shopper, {b['shoppers'].mean():.0f} "
              f"shoppers arrived per seed), fatigue {args.fatigue:.3f} per ignored show (half-life {half}), churn "
              f"{args.churn:g} after a session without a click; seeds 0..{args.seeds - 1}; purchases per shopper over "
              f"the whole run. {time.perf_counter() - t1:.0f} s.")
        print()
        print(shopper_table(b))
        print()
    print(f"wall {time.perf_counter() - t0:.0f} s; command: python benchmarks/dqn.py "
          f"{' '.join(sys.argv[1:] if argv is None else argv)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
