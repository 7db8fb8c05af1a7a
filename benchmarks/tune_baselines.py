"""How the baselines' default hyperparameters were found.

For each baseline, ``recapp.tune.grid_search`` scores a grid on validation
splits carved from the ML-100K *training* split only (stratified per item
75/25, as the benchmark), once per validation seed; the mean NDCG@10 over the
seeds picks the default. The test split is never touched.

``--ratio`` is the share of the training split the models fit on (0.75 by
default: 56% of ML-100K). ``--models ALS --ratio 0.9`` (67.5%, nearer the
benchmark's 75%) is the search that chose the ALS retriever inside
``TwoStageRanker``, whose retrievers fit on 90% of the training data; ALS's own
defaults come from the rounds its docstring lists.

``--test`` then fits the model's own defaults and the grid's best setting on
the whole training split and scores both on the benchmark's test split. This
is a report made after the choice, never an input to it: it shows whether a
validation gain carries over to the test split.

    python benchmarks/tune_baselines.py            # prints the ranked grids
    python benchmarks/tune_baselines.py --models ALS --ratio 0.9
    python benchmarks/tune_baselines.py --models ALS --test
    python benchmarks/tune_baselines.py --json tune.json
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from recapp import models  # noqa: E402
from recapp.evaluate import evaluate_model, movielens_protocol  # noqa: E402
from recapp.tune import grid_search  # noqa: E402

GRIDS = {
    "EASE": (models.EASE, {"l2": [100.0, 200.0, 500.0, 1000.0, 2000.0]}),
    "ItemKNN": (models.ItemKNN, {"neighbours": [50, 100, 200, 400], "similarity": ["cosine", "jaccard"],
                                 "shrink": [0.0, 10.0, 50.0]}),
    "UserKNN": (models.UserKNN, {"neighbours": [50, 100, 200, 400], "shrink": [0.0, 10.0, 50.0]}),
    "Popularity": (models.Popularity, {"weighted": [False, True]}),
    "ALS": (models.ALS(verbose=False), {"factors": [32, 64, 128, 256], "regularization": [20.0, 30.0, 35.0, 40.0, 50.0],
                                        "alpha": [0.5, 1.0, 1.5]}),
}
SEEDS = (0, 1, 2)


def search(name: str, train: pd.DataFrame, seeds=SEEDS, ratio: float = 0.75) -> pd.DataFrame:
    """Mean and spread of validation NDCG@10 over ``seeds`` for one baseline's grid, best first."""
    cls, grid = GRIDS[name]
    runs = [grid_search(cls, grid, train, ratio=ratio, random_state=s, verbose=False).results.assign(seed=s)
            for s in seeds]
    allr = pd.concat(runs, ignore_index=True)
    keys = list(grid)
    table = allr.groupby(keys, dropna=False)["ndcg"].agg(["mean", "std"]).reset_index()
    return table.sort_values("mean", ascending=False, ignore_index=True)


def own_defaults(name: str):
    """(the baseline as constructed, its own values of the grid's parameters)."""
    cls, grid = GRIDS[name]
    base = cls() if isinstance(cls, type) else cls
    return base, {key: base.get_params()[key] for key in grid}


def own_defaults_row(name: str, table: pd.DataFrame) -> str:
    """The line saying where the model's own defaults rank in ``table`` (or that the grid does not hold them)."""
    _, defaults = own_defaults(name)
    hit = np.logical_and.reduce([table[key] == value for key, value in defaults.items()])
    if not hit.any():
        return f"own defaults {defaults}: not in the grid"
    rank = int(np.flatnonzero(hit)[0])
    row = table.iloc[rank]
    return f"own defaults {defaults}: rank {rank + 1} of {len(table)}, mean {row['mean']:.4f}, std {row['std']:.4f}"


def test_check(name: str, best: dict, protocol) -> pd.DataFrame:
    """Test-split NDCG@10 of ``name``'s own defaults and of the grid's ``best`` setting (reported after the choice)."""
    base, defaults = own_defaults(name)
    rows = []
    for label, params in (("own defaults", defaults), ("grid's best", best)):
        row = evaluate_model(type(base)(**{**base.get_params(), **params}), protocol)
        rows.append({"setting": label, **params, "test ndcg@10": row["ndcg@10"]})
    return pd.DataFrame(rows)


def main(argv=None) -> int:
    """Run every baseline's search and print the ranked grids."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="*", default=list(GRIDS), choices=list(GRIDS))
    parser.add_argument("--ratio", type=float, default=0.75, help="share of the training split fitted on (default 0.75)")
    parser.add_argument("--test", action="store_true",
                        help="then score the own defaults and the grid's best on the test split (a report, not a choice)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    protocol = movielens_protocol()
    train = protocol.train
    out = {}
    for name in args.models:
        table = search(name, train, ratio=args.ratio)
        out[name] = table.to_dict(orient="records")
        print(f"\n{name}: validation NDCG@10 over seeds {list(SEEDS)}, fitted on {args.ratio:.0%} of the training split (best first)")
        print(table.head(8).to_string(index=False, float_format="{:.4f}".format))
        print(own_defaults_row(name, table))
        if args.test:
            # Column by column, so each keeps its own type (a row would make 128 factors 128.0).
            best = {key: table[key].tolist()[0] for key in GRIDS[name][1]}
            check = test_check(name, best, protocol)
            out[f"{name} test"] = check.to_dict(orient="records")
            print(f"{name} on the test split (a report after the choice):")
            print(check.to_string(index=False, float_format="{:.4f}".format))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
