"""``python -m recapp.dashboard --prepare [--events PATH [--items PATH]]``: read the data and cache the models."""
from __future__ import annotations

import argparse
import os
import sys
import time

from recapp.dashboard.models import DEFAULT_MODEL, ModelCatalogue
from recapp.dashboard.scenarios import (EVENTS_ENV, ITEMS_ENV, TIME_FORMAT_ENV, DataError, log_scenario, movielens_scenario,
                                        shop_scenario)


class PrepareError(RuntimeError):
    """Some models could not be prepared; ``failures`` holds one ``<model> on <data>: <message>`` line each."""

    def __init__(self, failures: list[str]):
        super().__init__("; ".join(failures))
        self.failures = failures


def _reason(exc: Exception) -> str:
    # KeyError's str() quotes its message; the analyst should read the message itself.
    if isinstance(exc, KeyError) and exc.args:
        return str(exc.args[0])
    return str(exc) or type(exc).__name__


def prepare(events=None, items=None, models=(DEFAULT_MODEL,), root=None, time_format=None) -> list:
    """Read the data the page will open and train and cache ``models`` on it; returns the scenarios prepared.

    With ``events`` (a log file) only that log is prepared; otherwise MovieLens-100K
    and the synthetic shop (the A/B tab's world) are. A model that cannot be
    trained on a scenario is reported on stderr as ``error: <model> on <data>:
    <message>`` and the others are still prepared; then :class:`PrepareError` is raised.
    """
    catalogue = ModelCatalogue(root=root)
    scenarios = [log_scenario(events, items, time_format=time_format)] if events else [movielens_scenario(), shop_scenario()]
    failures = []
    for scenario in scenarios:
        if scenario.report is not None:
            for note in scenario.notes[:1] + ([scenario.catalogue_note] if scenario.catalogue_note else []):
                print(f"{scenario.label}: {note}")
        for name in models:
            t0 = time.perf_counter()
            try:
                catalogue.get(name, scenario)
            except Exception as exc:  # noqa: BLE001 - one model that cannot train must not stop the others
                failures.append(f"{name} on {scenario.label}: {_reason(exc)}")
                print(f"error: {failures[-1]}", file=sys.stderr, flush=True)
                continue
            print(f"{name} on {scenario.label}: ready in {time.perf_counter() - t0:.1f}s", flush=True)
    if failures:
        raise PrepareError(failures)
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
    parser.add_argument("--time-format", default=os.environ.get(TIME_FORMAT_ENV) or None,
                        help=f"strptime format of the log's date text, e.g. %%d/%%m/%%Y (default ${TIME_FORMAT_ENV})")
    parser.add_argument("--models", nargs="*", default=[DEFAULT_MODEL], help=f"models to cache (default {DEFAULT_MODEL})")
    args = parser.parse_args(argv)
    if not args.prepare:
        parser.print_help()
        return 0
    from recapp.data.cache import DataSourceError

    try:
        prepare(args.events, args.items, args.models, time_format=args.time_format)
    except PrepareError:
        return 1   # each failure was printed as it happened
    except (DataError, DataSourceError, KeyError) as exc:
        print(f"error: {_reason(exc)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
