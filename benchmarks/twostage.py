"""TwoStageRanker on MovieLens-100K: accuracy beside its retrievers, feature importances, live latency.

* **Accuracy** (the README protocol, ``recapp.evaluate.movielens_protocol``): stratified
  split per item, 75/25, seed 42; top-10 with training items removed; NDCG@10,
  precision@10, recall@10, MAP@10, coverage and fit seconds for TwoStageRanker
  (default constructor, item catalogue given), the MultVAE-blend option and
  each of its default retrievers alone. The ranker learns from holdouts carved
  out of the training split only.
* **Feature importances**: gain share and split count per feature of the fitted ranker.
* **Validation** (``--validation``): the ranker with its defaults, the same
  with ALS's own defaults as its ALS retriever, with TfidfContent added, or with
  MultVAE added and ``init_from="blend"`` (also on the test split above), and
  each retriever alone, fitted on three 90/10 splits (seeds 0-2) of the
  protocol's *training* split and scored by NDCG@10 on the held-out tenth: how
  the defaults were chosen, never the test split.
* **Live latency** through ``recapp.realtime.Engine`` (prequential, as
  ``benchmarks/realtime.py``): fit on the first 80% of the log by time, warm the
  engine, replay the next events; before each event the shopper's top-10 is
  asked for, then the event is ingested. p50 / p99 milliseconds of request +
  ingest per event (explanations on), one thread.

    python benchmarks/twostage.py                   # accuracy, importances, live (about 2 minutes on 2 cores)
    python benchmarks/twostage.py --quick           # retrievers skipped, 2,000 live events
    python benchmarks/twostage.py --no-live --json out.json
    python benchmarks/twostage.py --validation --no-live   # the validation table too (about 2 minutes more)
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path


def _args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="skip the retrievers' own rows and replay 2,000 live events")
    p.add_argument("--events", type=int, default=None, help="live events to replay (default 20,001: all; --quick 2,000)")
    p.add_argument("--no-live", action="store_true", help="skip the live latency measurement")
    p.add_argument("--validation", action="store_true", help="also score the defaults on 90/10 splits of the training split")
    p.add_argument("--threads", type=int, default=1, help="BLAS / torch / LightGBM threads (default 1)")
    p.add_argument("--json", metavar="PATH", help="also write the tables as JSON")
    return p.parse_args(argv)


ARGS = _args()
# Thread counts must be fixed before numpy / torch load their libraries.
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = str(ARGS.threads)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from recapp.evaluate import Protocol, evaluate_model, movielens_protocol  # noqa: E402
from recapp.models import REGISTRY, TwoStageRanker  # noqa: E402
from recapp.models.twostage import DEFAULT_RETRIEVERS  # noqa: E402
from recapp.models.members import model_from_spec  # noqa: E402
from recapp.realtime import Engine  # noqa: E402
from recapp.realtime.prequential import prequential  # noqa: E402
from recapp.tune import validation_split  # noqa: E402

#: The option the README weighs against the defaults: MultVAE added, boosting from ALS, EASE and MultVAE's blended ranks.
BLEND_OPTION = "TwoStageRanker + MultVAE, init_from='blend'"
COLUMNS = ["model", "ndcg@10", "precision@10", "recall@10", "map@10", "coverage", "diversity", "novelty", "train_s"]


def blend_option(specs: list, threads: int) -> TwoStageRanker:
    """The ranker over ``specs`` plus MultVAE, starting from the blended ranks of ALS, EASE and MultVAE."""
    return TwoStageRanker(retrievers=specs + [{"class": "MultVAE", "params": {"verbose": False}}], init_from="blend",
                          num_threads=threads)


def accuracy(args) -> tuple[pd.DataFrame, TwoStageRanker]:
    """The protocol's row for TwoStageRanker and (unless --quick) the MultVAE-blend option and each retriever alone."""
    protocol = movielens_protocol()
    ranker = TwoStageRanker(num_threads=args.threads)
    rows = [evaluate_model(ranker, protocol, name="TwoStageRanker")]
    print(f"  TwoStageRanker: NDCG@10 {rows[0]['ndcg@10']:.4f} ({rows[0]['train_s']:.1f} s)", file=sys.stderr)
    if not args.quick:
        rows.append(evaluate_model(blend_option(ranker.retriever_specs_, args.threads), protocol, name=BLEND_OPTION))
        for spec in ranker.retriever_specs_:
            model = model_from_spec(spec)
            rows.append(evaluate_model(model, protocol, name=f"{spec['class']} alone"))
            print(f"  {spec['class']}: NDCG@10 {rows[-1]['ndcg@10']:.4f}", file=sys.stderr)
    return pd.DataFrame(rows)[COLUMNS], ranker


def validation(args) -> pd.DataFrame:
    """Mean validation NDCG@10 over three 90/10 splits of the training split: the ranker, three variants, retrievers alone."""
    protocol = movielens_protocol()
    rows = []
    for seed in (0, 1, 2):
        inner, held = validation_split(protocol.train, 0.9, filter_by="item", random_state=seed)
        split = Protocol(f"validation 90/10 seed {seed}", inner, held, protocol.items, protocol.k)

        def score(model, name):
            rows.append({"model": name, "seed": seed, "ndcg@10": evaluate_model(model, split, name=name)["ndcg@10"]})
            return model

        specs = score(TwoStageRanker(num_threads=args.threads), "TwoStageRanker").retriever_specs_
        own_als = {"class": "ALS", "params": {"verbose": False}}
        score(TwoStageRanker(retrievers=[own_als if s["class"] == "ALS" else s for s in specs], num_threads=args.threads),
              "TwoStageRanker, ALS with its own defaults")
        score(TwoStageRanker(retrievers=specs + [{"class": "TfidfContent", "params": {}}], num_threads=args.threads),
              "TwoStageRanker + TfidfContent")
        score(blend_option(specs, args.threads), BLEND_OPTION)
        for spec in specs + [own_als]:
            params = {k: v for k, v in spec["params"].items() if k != "verbose"}
            score(model_from_spec(spec), f"{spec['class']} {params or ''} alone".replace("  ", " "))
    table = pd.DataFrame(rows).pivot(index="model", columns="seed", values="ndcg@10")
    table.columns = [f"seed {c}" for c in table.columns]
    table.insert(0, "mean ndcg@10", table.mean(axis=1))
    return table.sort_values("mean ndcg@10", ascending=False).reset_index()


def live_latency(args) -> pd.DataFrame:
    """p50 / p99 ms of request + ingest per event through the engine on the ML-100K time split.

    The defaults replay every event (or ``--events``); unless ``--quick``, the
    MultVAE-blend option replays the first 2,000, its live path being slower.
    """
    from recapp.data.movielens import load_movielens
    from recapp.split import temporal_split

    data = load_movielens()
    train, test = temporal_split(data.interactions, quantile=0.8)
    test = test.sort_values("timestamp", kind="stable")
    limit = args.events or (2000 if args.quick else None)
    runs = [("TwoStageRanker", TwoStageRanker(num_threads=args.threads), test.iloc[:limit] if limit else test)]
    if not args.quick:
        specs = [{"class": c, "params": dict(p)} for c, p in DEFAULT_RETRIEVERS]
        runs.append((BLEND_OPTION, blend_option(specs, args.threads), test.iloc[:2000]))
    rows = []
    for name, model, events in runs:
        t0 = time.perf_counter()
        model.fit(train, items=data.items)
        fit_s = time.perf_counter() - t0
        engine = Engine(model)
        engine.warm()
        live = prequential(engine, events, live=True, name=name, progress=False)
        lat = live["latency_ms"].to_numpy()
        rows.append({"model": name, "events": len(events), "live HR@10": live["hit"].mean(),
                     "live NDCG@10": live["ndcg"].mean(), "p50_ms": float(np.percentile(lat, 50)),
                     "p99_ms": float(np.percentile(lat, 99)), "max_ms": float(lat.max()), "p99_target_ms": 10.0,
                     "fit_s": fit_s})
    return pd.DataFrame(rows)


def main(args) -> dict:
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    tables = {}
    print("MovieLens-100K accuracy ...", file=sys.stderr)
    tables["accuracy"], ranker = accuracy(args)
    imp = ranker.feature_importances_
    tables["importances"] = imp[["feature", "gain_share", "split"]]
    tables["ranker"] = pd.DataFrame([{k: v for k, v in ranker.ranker_log_.items() if not isinstance(v, dict)}])
    if args.validation:
        print("validation splits of the training split ...", file=sys.stderr)
        tables["validation"] = validation(args)
    if not args.no_live:
        print("live latency through the engine ...", file=sys.stderr)
        tables["live"] = live_latency(args)
    wall = time.perf_counter() - start
    with pd.option_context("display.width", 220, "display.max_columns", 30, "display.float_format", "{:.4f}".format):
        for name, table in tables.items():
            print(f"\n{name}\n{table.to_string(index=False)}")
    command = "python " + " ".join([sys.argv[0]] + sys.argv[1:])
    print(f"\n`{command}`: {wall:.0f} s wall on {len(os.sched_getaffinity(0))} cores, {args.threads} thread(s); "
          f"models in the registry: {len(REGISTRY)}")
    if args.json:
        Path(args.json).write_text(json.dumps({k: v.to_dict(orient="records") for k, v in tables.items()} | {"wall_s": wall},
                                              indent=2, default=lambda o: o.item() if hasattr(o, "item") else str(o)))
    return tables


if __name__ == "__main__":
    main(ARGS)
