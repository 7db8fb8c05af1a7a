"""``python -m recapp.data fetch``: download, verify and cache every dataset recapp uses."""
from __future__ import annotations

import argparse
import sys

from recapp.data.cache import DataSourceError, data_dir


def fetch() -> int:
    """Fetch MovieLens-100K and the Open Bandit samples into the cache; print what came from where."""
    from recapp.data import fetch_all

    try:
        sources = fetch_all()
    except DataSourceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for dataset, source in sources.items():
        print(f"{dataset}: {source}")
    print(f"cache: {data_dir()}")
    return 0


def main(argv=None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(prog="python -m recapp.data", description=__doc__)
    parser.add_argument("command", choices=["fetch"])
    parser.parse_args(argv)
    return fetch()


if __name__ == "__main__":
    sys.exit(main())
