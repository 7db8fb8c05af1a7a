"""Privacy and fair exposure on ML-100K: what differential privacy, calibration and exposure re-ranking cost.

Three tables, all on the Microsoft Recommenders ML-100K protocol
(:func:`recapp.evaluate.movielens_protocol`: stratified by item 75/25, seed 42):

1. NDCG@10 of :class:`recapp.models.Popularity` against epsilon, user-level DP
   (each user clipped to ``--max-items`` earliest items; Laplace, and Gaussian
   with delta ``--delta``), mean and sd over ``--seeds`` noise draws; then the
   clipping bound's trade-off at epsilon = 1.
2. EASE's top-50 re-ranked to 10 per test user (:func:`recapp.fairness.rerank_recommendations`):
   calibration (Steck 2018) for several lambda, exposure-aware smooth xQuAD
   for several beta (each list aims at its user's head share, or at a fixed
   head share of 0.2): NDCG@10, ``popularity_bias``, ``calibration_kl`` (genres), seconds.
3. Costs in the live engine: pseudonymising a shopper id, ``ingest`` per event
   with and without a pseudonymizer, and ``recommend`` per call with each re-ranking.

Noise here is seeded for reproducibility (not private; ``random_state=None``
is for a real release).

    python benchmarks/privacy_fairness.py
    python benchmarks/privacy_fairness.py --seeds 3 --events 1000
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from recapp import metrics
from recapp.evaluate import movielens_protocol
from recapp.fairness import rerank_recommendations
from recapp.models import EASE, Popularity
from recapp.privacy import Pseudonymizer
from recapp.realtime import Engine

K = 10


def _md(df: pd.DataFrame) -> str:
    cols = list(df.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)


def dp_table(proto, seeds: int, max_items: int, delta: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    users = proto.test["user_id"].unique()

    def ndcg(**kw) -> float:
        model = Popularity(**kw).fit(proto.train)
        return metrics.ndcg_at_k(proto.test, model.recommend(users, k=K), k=K), model

    exact, _ = ndcg()
    rows = [{"epsilon": "inf (exact)", "mechanism": "-", "noise scale": 0, "NDCG@10": f"{exact:.4f}"}]
    for eps in (10.0, 1.0, 0.1):
        for mech in ("laplace", "gaussian"):
            d = delta if mech == "gaussian" else None
            got = [ndcg(epsilon=eps, delta=d, mechanism=mech, max_items_per_user=max_items, random_state=s) for s in range(seeds)]
            vals = np.array([g[0] for g in got])
            rows.append({"epsilon": eps, "mechanism": mech + (f" (delta {delta:g})" if d else ""),
                         "noise scale": f"{got[0][1].dp_scale_:.1f}", "NDCG@10": f"{vals.mean():.4f} ± {vals.std(ddof=1):.4f}"})
    clip = []
    for m in (5, 20, 50, 200):
        for mech in ("laplace", "gaussian"):
            d = delta if mech == "gaussian" else None
            got = [ndcg(epsilon=1.0, delta=d, mechanism=mech, max_items_per_user=m, random_state=s) for s in range(seeds)]
            vals = np.array([g[0] for g in got])
            clip.append({"max_items_per_user": m, "mechanism": mech, "pairs clipped": f"{got[0][1].clipped_share_:.1%}",
                         "noise scale": f"{got[0][1].dp_scale_:.1f}", "NDCG@10 (eps=1)": f"{vals.mean():.4f} ± {vals.std(ddof=1):.4f}"})
    return pd.DataFrame(rows), pd.DataFrame(clip)


def rerank_table(proto, candidates: pd.DataFrame) -> pd.DataFrame:
    train, test, items = proto.train, proto.test, proto.items
    settings = [("none", {})] + [(f"calibration lambda={v}", {"calibration": v}) for v in (0.3, 0.5, 0.7, 0.9)] \
        + [(f"exposure beta={v} (user's head share)", {"exposure": v}) for v in (0.5, 0.9)] \
        + [(f"exposure beta={v} (head share 0.2)", {"exposure": v, "exposure_target": 0.2}) for v in (0.5, 0.9)]
    rows = []
    for name, kw in settings:
        t0 = time.perf_counter()
        recs = rerank_recommendations(candidates, train, k=K, items=items, categories="genres", **kw)
        secs = time.perf_counter() - t0
        rows.append({"re-ranking": name, "NDCG@10": f"{metrics.ndcg_at_k(test, recs, k=K):.4f}",
                     "popularity_bias": f"{metrics.popularity_bias(train, recs):.4f}",
                     "calibration KL": f"{metrics.calibration_kl(train, recs, items):.4f}", "seconds": f"{secs:.2f}"})
    return pd.DataFrame(rows)


def live_table(proto, ease, n_events: int) -> pd.DataFrame:
    p = Pseudonymizer("benchmark-key-0123456789abcdef")
    train = proto.train
    raw = train.assign(user_id="shopper" + train["user_id"].astype(str) + "@example.com")
    private = EASE().fit(p.frame(raw))
    rng = np.random.default_rng(0)
    users = train["user_id"].unique()
    item_ids = train["item_id"].unique()
    picks_u = rng.choice(users, n_events)
    picks_i = rng.choice(item_ids, n_events)
    t0 = float(train["timestamp"].max()) + 1
    rows = []
    ids = [f"shopper{u}@example.com" for u in picks_u]
    start = time.perf_counter()
    for u in ids:
        p(u)
    rows.append({"operation": "pseudonymise one id (HMAC-SHA256)", "µs per call": (time.perf_counter() - start) / n_events * 1e6})
    # Both engines ingest the same events in alternating chunks (the machine is shared): the median chunk counts.
    engines = {"ingest, raw ids": (Engine(ease, explain=False, cache_size=0), picks_u.tolist()),
               "ingest, pseudonymised": (Engine(private, pseudonymizer=p, explain=False, cache_size=0), ids)}
    for engine, who in engines.values():
        engine.warm(sorted(set(who), key=str))
    per_chunk = {name: [] for name in engines}
    for chunk in np.array_split(np.arange(n_events), 8):
        for name, (engine, who) in engines.items():
            start = time.perf_counter()
            for j in chunk.tolist():
                engine.ingest({"user_id": who[j], "item_id": int(picks_i[j]), "timestamp": t0 + j, "event": "view"})
            per_chunk[name].append((time.perf_counter() - start) / len(chunk) * 1e6)
    rows += [{"operation": name, "µs per call": float(np.median(v))} for name, v in per_chunk.items()]
    engine = Engine(ease, items=proto.items, categories="genres", explain=False, cache_size=0)
    some = users[:300].tolist()
    engine.warm(some)                              # state and score vectors ready, as a server does at start-up
    for name, kw in (("recommend, no re-ranking", {}), ("recommend, calibration 0.5", {"calibration": 0.5}),
                     ("recommend, exposure 0.5", {"exposure": 0.5}), ("recommend, MMR diversity 0.7", {"diversity": 0.7})):
        engine.recommend(some[0], **kw)
        start = time.perf_counter()
        for u in some:
            engine.recommend(u, **kw)
        rows.append({"operation": name, "µs per call": (time.perf_counter() - start) / len(some) * 1e6})
    out = pd.DataFrame(rows)
    out["µs per call"] = out["µs per call"].map(lambda v: f"{v:.0f}")
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=5, help="noise draws per epsilon")
    ap.add_argument("--max-items", type=int, default=50, help="max_items_per_user (clipping bound) of table 1")
    ap.add_argument("--delta", type=float, default=1e-6, help="delta of the Gaussian mechanism")
    ap.add_argument("--events", type=int, default=2000, help="events ingested per engine in table 3")
    args = ap.parse_args(argv)
    t_start = time.perf_counter()
    proto = movielens_protocol(k=K)
    print(f"command: python benchmarks/privacy_fairness.py {' '.join(sys.argv[1:] if argv is None else argv)}".rstrip())
    print(f"data: {proto.name}; {len(proto.train):,} train / {len(proto.test):,} test rows\n")

    dp, clip = dp_table(proto, args.seeds, args.max_items, args.delta)
    print(f"## Popularity with user-level differential privacy (max_items_per_user={args.max_items}, "
          f"{args.seeds} seeds, mean ± sd)\n")
    print(_md(dp), "\n")
    print("## The clipping bound at epsilon = 1\n")
    print(_md(clip), "\n")

    ease = EASE().fit(proto.train)
    candidates = ease.recommend(proto.test["user_id"].unique(), k=50)
    print("## EASE top-50 re-ranked to 10: accuracy against popularity bias and calibration\n")
    print(_md(rerank_table(proto, candidates)), "\n")

    print(f"## Live costs (EASE engine, {args.events:,} events, 300 recommend calls, no result cache)\n")
    print(_md(live_table(proto, ease, args.events)), "\n")
    print(f"wall time: {time.perf_counter() - t_start:.0f} s")


if __name__ == "__main__":
    main()
