"""Accuracy benchmark on MovieLens-100K (Microsoft Recommenders protocol).

Stratified split per item, 75/25, seed 42; every test interaction is relevant;
top-10 with training items removed; every model through its default constructor.

    python benchmarks/accuracy.py                       # every model, printed table
    python benchmarks/accuracy.py --models EASE ItemKNN
    python benchmarks/accuracy.py --json out.json --readme README.md
    python benchmarks/accuracy.py --models BPR --seeds 16   # NDCG@10 over random_state 0-15

The output starts with the settings a figure depends on: the split's seed, each
model's ``random_state``, torch's threads (and the threads models train on),
the thread variables in the environment and numpy's BLAS, so a run elsewhere
can be set up the same way.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from recapp.evaluate import compare, default_models, evaluate_model, movielens_protocol  # noqa: E402
from recapp.models.torch_base import TorchMixin  # noqa: E402

#: Sequence models are judged on their own protocol (leave-last-out, `benchmarks/realtime.py --sequential`);
#: they can still be run here by name with --models.
SEQUENTIAL = ("GRU4Rec", "SASRec")
MARK_BEGIN, MARK_END = "<!-- accuracy-table:begin -->", "<!-- accuracy-table:end -->"


def to_markdown(table: pd.DataFrame) -> str:
    """A GitHub-flavoured markdown table of the benchmark."""
    cols = ["model", "ndcg@10", "precision@10", "recall@10", "map@10", "coverage", "diversity", "novelty", "train_s"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join(["---"] + ["---:"] * (len(cols) - 1)) + "|"]
    for _, r in table[cols].iterrows():
        cells = [str(r["model"])] + [f"{r[c]:.3f}" for c in cols[1:-2]] + [f"{r['novelty']:.2f}", f"{r['train_s']:.1f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def update_readme(path: Path, markdown: str, command: str) -> None:
    """Replace the table between the accuracy markers in ``path``."""
    text = path.read_text()
    if MARK_BEGIN not in text or MARK_END not in text:
        raise SystemExit(f"{path} has no {MARK_BEGIN} ... {MARK_END} section to update")
    block = f"{MARK_BEGIN}\n{markdown}\n\nProduced by `{command}` on {platform.machine()} with {_cores()} cores.\n{MARK_END}"
    path.write_text(re.sub(re.escape(MARK_BEGIN) + ".*?" + re.escape(MARK_END), lambda _: block, text, flags=re.S))


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


#: Environment variables that set the thread pools of torch (OpenMP, MKL) and numpy (OpenBLAS).
THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "PYTHONHASHSEED")


def run_settings(models: dict, protocol) -> list[str]:
    """Lines naming the seeds and thread settings a run of ``models`` under ``protocol`` uses."""
    seeds = ", ".join(f"{name}={model.random_state}" for name, model in models.items() if hasattr(model, "random_state"))
    train_threads = TorchMixin.train_threads
    lines = [
        f"seeds: split {protocol.name}; models' random_state: "
        + (f"{seeds} (None: fresh each run; models not named draw nothing at random)" if seeds else "none (no model here draws at random)"),
        f"torch {torch.__version__}: {torch.get_num_threads()} intra-op / {torch.get_num_interop_threads()} inter-op threads, "
        f"torch models train on {train_threads if train_threads is not None else 'all'} "
        f"(TorchMixin.train_threads={train_threads}), CPU capability {torch.backends.cpu.get_cpu_capability()}, "
        f"deterministic algorithms {'on' if torch.are_deterministic_algorithms_enabled() else 'off'}",
        "environment: " + " ".join(f"{k}={os.environ.get(k, 'unset')}" for k in THREAD_ENV),
        f"native thread pools (numpy {np.__version__}'s BLAS among them): " + _blas_threads(),
        f"machine: {platform.machine()}, {_cores()} cores available, Python {platform.python_version()}",
    ]
    return lines


def _blas_threads() -> str:
    """numpy's (and torch's OpenMP) native thread pools as threadpoolctl sees them."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "BLAS threads unknown (threadpoolctl is not installed)"
    pools = []
    for pool in threadpool_info():
        n = pool["num_threads"]
        version = f" {pool['version']}" if pool.get("version") else ""
        pools.append(f"{_owner(pool['filepath'])} {pool['internal_api']}{version} {n} thread{'s' if n != 1 else ''}")
    return "; ".join(pools) or "no native thread pools loaded"


def _owner(filepath: str) -> str:
    """The package a native library ships with, from its path (``.../numpy.libs/libscipy_openblas...`` -> numpy)."""
    parts = Path(filepath).parts
    if "site-packages" in parts and parts.index("site-packages") + 1 < len(parts):
        return parts[parts.index("site-packages") + 1].removesuffix(".libs") + ":"
    return Path(filepath).name + ":"


def seed_spread(names: list, protocol, n_seeds: int) -> pd.DataFrame:
    """NDCG@10 of each model (default constructor) over ``random_state`` 0..n_seeds-1: mean, std, min and max."""
    rows = []
    for name in names:
        scores = [evaluate_model(default_models([name])[name].set_params(random_state=s), protocol)["ndcg@10"]
                  for s in range(n_seeds)]
        rows.append({"model": name, "seeds": n_seeds, "mean ndcg@10": np.mean(scores), "std": np.std(scores, ddof=1),
                     "min": np.min(scores), "max": np.max(scores)})
    return pd.DataFrame(rows)


def main(argv=None) -> int:
    """Run the benchmark and print (and optionally save) the table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="*", help="class names from recapp.models (default: all but the sequence models)")
    parser.add_argument("--json", type=Path, help="write the table as JSON records here")
    parser.add_argument("--readme", type=Path, help="rewrite the accuracy table in this README")
    parser.add_argument("--seeds", type=int, help="instead of the table: each model's NDCG@10 over random_state 0..N-1")
    args = parser.parse_args(argv)
    protocol = movielens_protocol()
    names = args.models or [n for n in default_models() if n not in SEQUENTIAL]
    models = default_models(names)
    print("\n".join(run_settings(models, protocol)), flush=True)
    if args.seeds:
        print(seed_spread(names, protocol, args.seeds).to_string(index=False, float_format="{:.4f}".format))
        return 0
    table = compare(models, protocol).sort_values("ndcg@10", ascending=False, ignore_index=True)
    with pd.option_context("display.width", 200, "display.max_columns", 20, "display.float_format", "{:.4f}".format):
        print(f"{protocol.name}: {len(protocol.train):,} train / {len(protocol.test):,} test interactions")
        print(table.to_string(index=False))
    if args.json:
        args.json.write_text(json.dumps(table.to_dict(orient="records"), indent=2))
    if args.readme:
        update_readme(args.readme, to_markdown(table), "python benchmarks/accuracy.py --readme README.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
