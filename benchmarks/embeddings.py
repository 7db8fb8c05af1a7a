"""Embedding models on MovieLens-100K: Item2Vec, and TfidfContent's word vectors on cold items.

Tables (printed as markdown):

* **Accuracy protocol** (``recapp.evaluate.movielens_protocol``: stratified per
  item 75/25, seed 42, top-10 with training items removed, as
  ``benchmarks/accuracy.py``): Item2Vec beside EASE, ItemKNN and ALS fitted in
  the same run, every model by its default constructor.
* **Leave-last-out** (the protocol of ``benchmarks/realtime.py --sequential``:
  each user's last event by time is the test item, full ranking, training items
  removed): HR@10 / NDCG@10 of Item2Vec beside Popularity, EASE and GRU4Rec
  (``--skip-gru`` leaves GRU4Rec out; it trains for a few minutes on CPU).
* **Cold items**: test items with fewer than 5 training interactions (0 to 4)
  on the accuracy protocol's split. Two measures:
  *cold ranking*: every test user with an event on a cold item gets the cold
  items they have no training event on ranked by the model (items a model does
  not know rank below the ones it does; ties broken at random, seed 0);
  relevant = that user's cold test items; HR@10 and NDCG@10, and HR@10 on
  the events on items with no training event at all ("0-event").
  *full ranking*: the model's ordinary top-10 over every item, scored against
  the test events on cold items only (the README's "NDCG@10 on cold items").
  TfidfContent with TF-IDF and with word2vec vectors, Popularity, a random
  ranking; EASE and Item2Vec for reference.

``--tune`` instead runs the validation grids behind the defaults, on
validation splits carved from the protocol's *training* split only
(``recapp.tune.validation_split``: item-stratified, 75% kept for training):

* Item2Vec, by validation NDCG@10 (``recapp.tune.grid_search``), seed 0, in
  stages, each starting from the previous winner: (1) window {20, 50, 100} x
  ns_exponent {-0.5, 0, 0.75} x learning_rate {0.025, 0.05} at vector_size 64,
  negative 5, epochs 10; (2) vector_size {32, 64, 128} x epochs {10, 20} x
  session_gap {None, 1 hour}; (3) neighbours {50, 100, 200, 400, None} x shuffle
  {False, True}; then the three best of stage 3 on seeds 1 and 2 (mean of the
  three seeds decides).
* TfidfContent(representation="word2vec"), by validation cold-ranking NDCG@10
  (cold: fewer than 5 events in the inner training part), seed 0: vector_size
  {32, 64, 128} x window {5, 10} x epochs {20, 50, 100}; TF-IDF for reference.

    python benchmarks/embeddings.py                 # the three tables
    python benchmarks/embeddings.py --skip-gru      # without GRU4Rec's few minutes
    python benchmarks/embeddings.py --tables cold   # one table
    python benchmarks/embeddings.py --tune          # the validation grids (about 30 minutes on one core)
    python benchmarks/embeddings.py --json out.json
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path


TABLES = ("accuracy", "cold", "leave-last-out")


def _args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--skip-gru", action="store_true", help="leave GRU4Rec out of the leave-last-out table")
    p.add_argument("--tune", action="store_true", help="run the validation grids behind the defaults instead")
    p.add_argument("--threads", type=int, default=1, help="BLAS / torch threads (default 1)")
    p.add_argument("--tables", nargs="*", default=list(TABLES), choices=list(TABLES), help="which tables (default: all)")
    p.add_argument("--json", metavar="PATH", help="also write the tables as JSON")
    return p.parse_args(argv)


ARGS = _args() if __name__ == "__main__" else None
if ARGS is not None:
    # Thread counts must be fixed before numpy / torch load their libraries.
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(ARGS.threads)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from recapp import metrics  # noqa: E402
from recapp.evaluate import evaluate_model, movielens_protocol  # noqa: E402
from recapp.schema import ITEM_COL, SCORE_COL, USER_COL  # noqa: E402

COLD_THRESHOLD = 5


# ---- cold items -------------------------------------------------------------------------------------
def cold_items(train: pd.DataFrame, catalogue, threshold: int = COLD_THRESHOLD) -> pd.Index:
    """Catalogue items with fewer than ``threshold`` training interactions (none included)."""
    catalogue = pd.Index(pd.unique(np.asarray(catalogue)))
    counts = train[ITEM_COL].value_counts().reindex(catalogue).fillna(0).to_numpy()
    return catalogue[counts < threshold]


def cold_ranking(model, train: pd.DataFrame, test: pd.DataFrame, cold: pd.Index, *, k: int = 10,
                 random_state: int = 0) -> pd.DataFrame:
    """Each test user's top-``k`` among the cold items they have no training event on, as a recs frame.

    ``model`` is a fitted Recommender, or None for a random ranking. Items the
    model does not know rank below every item it does; ties are broken at random.
    """
    users = pd.unique(test.loc[test[ITEM_COL].isin(cold), USER_COL].to_numpy())
    rng = np.random.default_rng(random_state)
    if model is None:
        S = rng.random((len(users), len(cold)))
    else:
        idx = model.interactions_.item_index(cold)
        full = model.score(users).to_numpy()
        S = np.full((len(users), len(cold)), np.nan)
        S[:, idx >= 0] = full[:, idx[idx >= 0]]
        finite = S[np.isfinite(S)]
        S[~np.isfinite(S)] = (finite.min() if len(finite) else 0.0) - 1.0
    seen = train[train[ITEM_COL].isin(cold) & train[USER_COL].isin(users)]
    r = pd.Index(users).get_indexer(seen[USER_COL])
    c = cold.get_indexer(seen[ITEM_COL])
    S[r, c] = -np.inf
    order = np.lexsort((rng.random(S.shape), -S), axis=-1)[:, :k]
    ok = np.isfinite(np.take_along_axis(S, order, axis=1))
    ranks = np.tile(np.arange(1, order.shape[1] + 1), (len(users), 1))
    return pd.DataFrame({USER_COL: np.repeat(users, order.shape[1]).reshape(order.shape)[ok],
                         ITEM_COL: cold.to_numpy()[order[ok]], SCORE_COL: -ranks[ok].astype(float)})


def cold_metrics(model, train, test, cold, k: int = 10) -> dict:
    """Cold-ranking HR@k / NDCG@k (all cold test events, and those on items with no training event) and
    full-ranking HR@k / NDCG@k on the test events on ``cold`` items."""
    test_c = test[test[ITEM_COL].isin(cold)]
    recs = cold_ranking(model, train, test, cold, k=k)
    out = {"cold HR@10": metrics.hit_rate_at_k(test_c, recs, k=k), "cold NDCG@10": metrics.ndcg_at_k(test_c, recs, k=k)}
    test_0 = test_c[~test_c[ITEM_COL].isin(train[ITEM_COL])]
    out["0-event HR@10"] = metrics.hit_rate_at_k(test_0, recs, k=k) if len(test_0) else float("nan")
    users = pd.unique(test_c[USER_COL].to_numpy())
    if model is None:
        full = cold_ranking(None, train, test, pd.Index(pd.unique(pd.concat([train[ITEM_COL], test[ITEM_COL]]))), k=k)
        full = full[full[USER_COL].isin(users)]
    else:
        full = model.recommend(users, k=k, exclude_seen=True)
    out["full-ranking HR@10"] = metrics.hit_rate_at_k(test_c, full, k=k)
    out["full-ranking NDCG@10"] = metrics.ndcg_at_k(test_c, full, k=k)
    return out


# ---- the tables ---------------------------------------------------------------------------------------
def accuracy_table(protocol) -> tuple[pd.DataFrame, dict]:
    """Item2Vec, EASE, ItemKNN and ALS on the accuracy protocol; returns the table and the fitted models."""
    from recapp.models import ALS, EASE, Item2Vec, ItemKNN

    models = {"Item2Vec": Item2Vec(), "EASE": EASE(), "ItemKNN": ItemKNN(), "ALS": ALS(verbose=False)}
    rows = []
    for name, m in models.items():
        rows.append(evaluate_model(m, protocol, name=name))
        print(f"  {name}: NDCG@10 {rows[-1]['ndcg@10']:.4f} ({rows[-1]['train_s']:.1f}s)", flush=True)
    return pd.DataFrame(rows).sort_values("ndcg@10", ascending=False, ignore_index=True), models


def leave_last_out_table(skip_gru: bool) -> pd.DataFrame:
    """The protocol of ``benchmarks/realtime.py --sequential`` for Popularity, EASE, Item2Vec and GRU4Rec."""
    from recapp.data.movielens import load_movielens
    from recapp.models import EASE, GRU4Rec, Item2Vec, Popularity
    from recapp.split import leave_last_out

    train, test = leave_last_out(load_movielens().interactions, n=1)
    models = {"Popularity": Popularity(), "EASE": EASE(), "Item2Vec": Item2Vec()}
    if not skip_gru:
        models["GRU4Rec"] = GRU4Rec(verbose=False, device="cpu")
    rows = []
    for name, model in models.items():
        start = time.perf_counter()
        model.fit(train)
        fit_s = time.perf_counter() - start
        recs = model.recommend(test[USER_COL].unique(), k=10, exclude_seen=True)
        rows.append({"model": name, "HR@10": metrics.hit_rate_at_k(test, recs), "NDCG@10": metrics.ndcg_at_k(test, recs),
                     "train_s": fit_s})
        print(f"  {name}: HR@10 {rows[-1]['HR@10']:.4f} ({fit_s:.1f}s)", flush=True)
    return pd.DataFrame(rows)


def cold_table(protocol, fitted: dict | None = None) -> pd.DataFrame:
    """Word2vec content vs TF-IDF content vs popularity (and a random ranking) on the cold test items."""
    from recapp.models import EASE, Item2Vec, Popularity, TfidfContent

    fitted = fitted or {"EASE": EASE().fit(protocol.train), "Item2Vec": Item2Vec().fit(protocol.train)}
    cold = cold_items(protocol.train, protocol.items[ITEM_COL])
    models = {"TfidfContent (word2vec)": TfidfContent(representation="word2vec"), "TfidfContent (TF-IDF)": TfidfContent(),
              "Popularity": Popularity()}
    rows = []
    for name, m in models.items():
        m.fit_with_items(protocol.train, protocol.items)
        rows.append({"model": name, **cold_metrics(m, protocol.train, protocol.test, cold)})
    rows.append({"model": "random", **cold_metrics(None, protocol.train, protocol.test, cold)})
    for name in ("EASE", "Item2Vec"):
        rows.append({"model": f"{name} (reference)", **cold_metrics(fitted[name], protocol.train, protocol.test, cold)})
    on_cold = protocol.test[ITEM_COL].isin(cold)
    n_users = protocol.test.loc[on_cold, USER_COL].nunique()
    n_zero = int((on_cold & ~protocol.test[ITEM_COL].isin(protocol.train[ITEM_COL])).sum())
    print(f"  cold items: {len(cold)} catalogue items with fewer than {COLD_THRESHOLD} training interactions; "
          f"{int(on_cold.sum())} test events on them from {n_users} users ({n_zero} on items with none)", flush=True)
    return pd.DataFrame(rows)


def markdown(df: pd.DataFrame, cols: list[str], digits: int = 3) -> str:
    """A GitHub-flavoured markdown table of ``cols`` (the first is text)."""
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join(["---"] + ["---:"] * (len(cols) - 1)) + "|"]
    for _, r in df.iterrows():
        cells = [str(r[cols[0]])] + [f"{r[c]:.1f}" if c.endswith("_s") else f"{r[c]:.{digits}f}" for c in cols[1:]]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# ---- the validation grids -------------------------------------------------------------------------------
ITEM2VEC_STAGES = [
    {"window": [20, 50, 100], "ns_exponent": [-0.5, 0.0, 0.75], "learning_rate": [0.025, 0.05]},
    {"vector_size": [32, 64, 128], "epochs": [10, 20], "session_gap": [None, 3600.0]},
    {"neighbours": [50, 100, 200, 400, None], "shuffle": [False, True]},
]
ITEM2VEC_START = {"vector_size": 64, "negative": 5, "epochs": 10}
CONTENT_GRID = {"vector_size": [32, 64, 128], "window": [5, 10], "epochs": [20, 50, 100]}


def tune_item2vec(train: pd.DataFrame) -> tuple[dict, list[pd.DataFrame]]:
    """The staged Item2Vec search (module docstring); returns the chosen parameters and each stage's ranked table."""
    from recapp.models import Item2Vec
    from recapp.tune import grid_search

    params, tables = dict(ITEM2VEC_START), []
    for s, grid in enumerate(ITEM2VEC_STAGES, 1):
        print(f"\nItem2Vec stage {s} from {params}", flush=True)
        res = grid_search(Item2Vec(**params), grid, train, random_state=0)
        tables.append(res.results)
        params.update(res.best_params)
    top = tables[-1].head(3)
    keys = list(ITEM2VEC_STAGES[-1])
    rows = []
    for _, r in top.iterrows():
        cand = {**params, **{k: (None if pd.isna(r[k]) else r[k]) for k in keys}}
        cand = {k: (int(v) if isinstance(v, (float, np.floating)) and k == "neighbours" else v) for k, v in cand.items()}
        scores = [float(r["ndcg"])]
        for seed in (1, 2):
            scores.append(grid_search(Item2Vec(**cand), {"random_state": [0]}, train, random_state=seed,
                                      verbose=False).best_score)
        rows.append({**{k: cand[k] for k in keys}, "seed 0": scores[0], "seed 1": scores[1], "seed 2": scores[2],
                     "mean": float(np.mean(scores))})
        print(f"  {rows[-1]}", flush=True)
    confirm = pd.DataFrame(rows).sort_values("mean", ascending=False, ignore_index=True)
    tables.append(confirm)
    best = confirm.iloc[0]
    params.update({k: (None if pd.isna(best[k]) else best[k].item() if isinstance(best[k], np.generic) else best[k])
                   for k in keys})
    return params, tables


def tune_content(train: pd.DataFrame, items: pd.DataFrame) -> pd.DataFrame:
    """Word2vec content by validation cold-ranking NDCG@10 (seed 0), TF-IDF for reference; ranked."""
    import itertools

    from recapp.models import Popularity, TfidfContent
    from recapp.tune import validation_split

    inner, valid = validation_split(train, 0.75, filter_by="item", random_state=0)
    cold = cold_items(inner, items[ITEM_COL])
    rows = []
    for name, m in (("TF-IDF", TfidfContent()), ("Popularity", Popularity())):
        m.fit_with_items(inner, items)
        rows.append({"model": name, **cold_metrics(m, inner, valid, cold)})
    keys = list(CONTENT_GRID)
    for vals in itertools.product(*CONTENT_GRID.values()):
        kw = dict(zip(keys, vals))
        m = TfidfContent(representation="word2vec", **kw).fit(inner, items=items)
        rows.append({"model": "word2vec", **kw, **cold_metrics(m, inner, valid, cold)})
        print(f"  word2vec {kw}: cold NDCG@10 {rows[-1]['cold NDCG@10']:.4f}", flush=True)
    return pd.DataFrame(rows).sort_values("cold NDCG@10", ascending=False, ignore_index=True)


def main(args) -> dict:
    import torch

    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    protocol = movielens_protocol()
    out = {}
    with pd.option_context("display.width", 200, "display.max_columns", 20, "display.float_format", "{:.4f}".format):
        if args.tune:
            params, stages = tune_item2vec(protocol.train)
            for s, t in enumerate(stages, 1):
                print(f"\nItem2Vec stage {s} (validation NDCG@10, best first)" if s <= len(ITEM2VEC_STAGES)
                      else "\nItem2Vec: the best three of the last stage on validation seeds 0, 1, 2")
                print(t.to_string(index=False))
            print(f"\nItem2Vec selected: {params}")
            content = tune_content(protocol.train, protocol.items)
            print("\nTfidfContent(representation='word2vec') on the validation split's cold items (best first)")
            print(content.to_string(index=False))
            out = {"item2vec": {"selected": params, "stages": [t.to_dict(orient="records") for t in stages]},
                   "content": content.to_dict(orient="records")}
        else:
            print(f"{protocol.name}: {len(protocol.train):,} train / {len(protocol.test):,} test interactions")
            fitted = None
            if "accuracy" in args.tables:
                acc, fitted = accuracy_table(protocol)
                out["accuracy"] = acc.to_dict(orient="records")
                print("\n**Accuracy protocol** (ML-100K stratified-by-item 75/25 seed 42, top-10)\n")
                print(markdown(acc, ["model", "ndcg@10", "precision@10", "recall@10", "map@10", "coverage", "train_s"]))
            if "cold" in args.tables:
                print("\n**Cold items** (test items with fewer than 5 training interactions)", flush=True)
                cold = cold_table(protocol, fitted)
                out["cold"] = cold.to_dict(orient="records")
                print()
                print(markdown(cold, ["model", "cold HR@10", "cold NDCG@10", "0-event HR@10", "full-ranking HR@10",
                                      "full-ranking NDCG@10"]))
            if "leave-last-out" in args.tables:
                print("\n**Leave-last-out** (each user's last event; full ranking, training items removed)", flush=True)
                llo = leave_last_out_table(args.skip_gru)
                out["leave_last_out"] = llo.to_dict(orient="records")
                print()
                print(markdown(llo, ["model", "HR@10", "NDCG@10", "train_s"]))
    wall = time.perf_counter() - start
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    command = "python benchmarks/embeddings.py" + " ".join([""] + sys.argv[1:])
    print(f"\nProduced by `{command}` in {wall:.0f} s on {cores} cores, {args.threads} thread(s).")
    out["wall_s"] = wall
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2, default=str))
    return out


if __name__ == "__main__":
    main(ARGS)
