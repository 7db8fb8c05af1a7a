"""The bandit policies in the documented setting: regret per 1,000 slates against the oracle, per seed.

The setting of ``recapp.experiment.bandits``' module docstring and the README:
``bandit_simulator(random_state=seed)`` (1,000 shoppers, 50 items, slates of 3,
random-slate CTR 5%, segment context) run for ``DOCUMENTED_SETTING`` (60,000
one-slate sessions), each policy alone against the same shoppers
(``compare_policies``), every learner rewarded by clicks, seeded with the seed.
Prints the table the docstring holds (policies as rows, seeds as columns) and
each policy's range over the seeds, which the README quotes.

    python benchmarks/bandits.py                       # seeds 0-3, every policy, 2 workers (a few minutes)
    python benchmarks/bandits.py --policies UCB1,epsilon-greedy --seeds 0 1
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

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from recapp.experiment.bandits import (DOCUMENTED_SETTING, UCB1, EpsilonGreedy, LinUCB, RandomPolicy,  # noqa: E402
                                       ThompsonSampling, bandit_simulator, compare_policies)
from recapp.experiment.reinforce import ReinforceReRanker  # noqa: E402

#: The docstring's rows, in its order: name -> policy for a seed.
POLICIES = {
    "LinUCB (alpha 0.3)": lambda seed: LinUCB(alpha=0.3, random_state=seed),
    "Thompson sampling": lambda seed: ThompsonSampling(random_state=seed),
    "REINFORCE (all items)": lambda seed: ReinforceReRanker(random_state=seed),
    "epsilon-greedy (0.1)": lambda seed: EpsilonGreedy(0.1, random_state=seed),
    "UCB1": lambda seed: UCB1(random_state=seed),
    "uniform random": lambda seed: RandomPolicy(random_state=seed),
}


def _args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3], help="simulator and policy seeds (0 1 2 3)")
    p.add_argument("--policies", default=None,
                   help="comma-separated names or name prefixes, e.g. UCB1,epsilon-greedy (default: all)")
    p.add_argument("--jobs", type=int, default=2, help="worker processes (default 2)")
    return p.parse_args(argv)


def run(job) -> dict:
    """One policy on one seed: its regret per 1,000 slates and seconds."""
    name, seed = job
    start = time.perf_counter()
    summary, _ = compare_policies(bandit_simulator(random_state=seed), {name: POLICIES[name](seed)}, **DOCUMENTED_SETTING)
    return {"policy": name, "seed": seed, "regret_per_1000": float(summary["regret_per_1000"].iloc[0]),
            "seconds": time.perf_counter() - start}


def main(argv=None) -> pd.DataFrame:
    args = _args(argv)
    wanted = list(POLICIES)
    if args.policies:
        asked = [a.strip() for a in args.policies.split(",") if a.strip()]
        unknown = [a for a in asked if not any(n.startswith(a) for n in POLICIES)]
        if unknown:
            raise SystemExit(f"unknown policies {unknown}; choose among {list(POLICIES)}")
        wanted = [n for n in POLICIES if any(n.startswith(a) for a in asked)]
    jobs = [(name, seed) for name in wanted for seed in args.seeds]
    start = time.perf_counter()
    with mp.get_context("spawn").Pool(max(1, args.jobs)) as pool:
        rows = pool.map(run, jobs, chunksize=1)
    table = pd.DataFrame(rows).pivot(index="policy", columns="seed", values="regret_per_1000").loc[wanted]
    print("regret per 1,000 slates against the oracle (expected clicks), by seed\n")
    print(table.round(1).to_string())
    print("\nrange over the seeds: " + ", ".join(f"{n} {table.loc[n].min():.0f}-{table.loc[n].max():.0f}" for n in wanted))
    print(f"\n`python benchmarks/bandits.py {' '.join(sys.argv[1:] if argv is None else argv)}`: "
          f"{time.perf_counter() - start:.0f} s wall, {args.jobs} worker(s)")
    return table


if __name__ == "__main__":
    main()
