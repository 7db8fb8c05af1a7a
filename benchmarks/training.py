"""Training time per model on the MovieLens-100K benchmark split (stratified per item, 75/25, seed 42).

Each model is fitted by its default constructor on the training DataFrame as
loaded; the table gives wall-clock seconds, the epochs run (for models that
train by epochs, with early stopping) and the device used.

    python benchmarks/training.py
    python benchmarks/training.py --models BPR EASE --repeats 3 --json training.json
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from recapp.evaluate import default_models, fit_model, movielens_protocol  # noqa: E402


def time_model(name: str, protocol, repeats: int = 1) -> dict:
    """Median fit seconds of a fresh default ``name`` over ``repeats`` fits."""
    seconds, model = [], None
    for _ in range(repeats):
        model, s = fit_model(default_models([name])[name], protocol.train, protocol.items)
        seconds.append(s)
    log = getattr(model, "train_log_", None)
    return {
        "model": name,
        "train_s": float(np.median(seconds)),
        "epochs": len(log.losses) if log is not None else None,
        "stopped_early": bool(log.stopped_early) if log is not None else None,
        "device": str(getattr(model, "device_", "cpu")),
    }


def main(argv=None) -> int:
    """Time every model's training and print the table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="*", help="class names from recapp.models (default: all)")
    parser.add_argument("--repeats", type=int, default=1, help="fits per model; the median is reported")
    parser.add_argument("--json", type=Path, help="write the table as JSON records here")
    args = parser.parse_args(argv)
    protocol = movielens_protocol()
    names = args.models or list(default_models())
    table = pd.DataFrame([time_model(n, protocol, args.repeats) for n in names]).sort_values("train_s", ignore_index=True)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"training time on {protocol.name} ({len(protocol.train):,} interactions), {cores} cores")
    print(table.to_string(index=False, float_format="{:.2f}".format))
    if args.json:
        args.json.write_text(json.dumps(table.to_dict(orient="records"), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
