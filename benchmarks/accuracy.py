"""Accuracy benchmark on MovieLens-100K (Microsoft Recommenders protocol).

Stratified split per item, 75/25, seed 42; every test interaction is relevant;
top-10 with training items removed; every model through its default constructor.

    python benchmarks/accuracy.py                       # every model, printed table
    python benchmarks/accuracy.py --models EASE ItemKNN
    python benchmarks/accuracy.py --json out.json --readme README.md
"""
from __future__ import annotations

import argparse
import json
import platform
import re
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from recapp.evaluate import compare, default_models, movielens_protocol  # noqa: E402

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
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def main(argv=None) -> int:
    """Run the benchmark and print (and optionally save) the table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="*", help="class names from recapp.models (default: all but the sequence models)")
    parser.add_argument("--json", type=Path, help="write the table as JSON records here")
    parser.add_argument("--readme", type=Path, help="rewrite the accuracy table in this README")
    args = parser.parse_args(argv)
    protocol = movielens_protocol()
    names = args.models or [n for n in default_models() if n not in SEQUENTIAL]
    table = compare(default_models(names), protocol).sort_values("ndcg@10", ascending=False, ignore_index=True)
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
