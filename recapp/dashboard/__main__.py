"""``python -m recapp.dashboard --prepare [--events PATH [--items PATH]]``: read the data and cache the models."""
from __future__ import annotations

import argparse
import os
import sys
import time

from recapp.dashboard.models import DEFAULT_MODEL, ModelCatalogue
from recapp.dashboard.scenarios import EVENTS_ENV, ITEMS_ENV, DataError, log_scenario, movielens_scenario, shop_scenario


def prepare(events=None, items=None, models=(DEFAULT_MODEL,), root=None) -> list:
    """Read the data the page will open and train and cache ``models`` on it; returns the scenarios prepared.

    With ``events`` (a log file) only that log is prepared; otherwise MovieLens-100K
    and the synthetic shop (the A/B tab's world) are.
    """
    catalogue = ModelCatalogue(root=root)
    scenarios = [log_scenario(events, items)] if events else [movielens_scenario(), shop_scenario()]
    for scenario in scenarios:
        if scenario.report is not None:
            print(f"{scenario.label}: {scenario.notes[0]}")
        for name in models:
            t0 = time.perf_counter()
            catalogue.get(name, scenario)
            print(f"{name} on {scenario.label}: ready in {time.perf_counter() - t0:.1f}s")
    return scenarios


def main(argv=None) -> int:
    """Parse the command line; ``--prepare`` caches, and the exit code says whether the data could be used."""
    parser = argparse.ArgumentParser(prog="python -m recapp.dashboard",
                                     description="Prepare the recapp dashboard: read the data and cache the models.")
    parser.add_argument("--prepare", action="store_true", help="read the data and train and cache the models")
    parser.add_argument("--events", default=os.environ.get(EVENTS_ENV) or None,
                        help=f"your event log (CSV/TSV/Parquet; default ${EVENTS_ENV})")
    parser.add_argument("--items", default=os.environ.get(ITEMS_ENV) or None,
                        help=f"your item catalogue, for readable labels (default ${ITEMS_ENV})")
    parser.add_argument("--models", nargs="*", default=[DEFAULT_MODEL], help=f"models to cache (default {DEFAULT_MODEL})")
    args = parser.parse_args(argv)
    if not args.prepare:
        parser.print_help()
        return 0
    from recapp.data.cache import DataSourceError

    try:
        prepare(args.events, args.items, args.models)
    except (DataError, DataSourceError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
