"""``python -m recapp.data fetch``: download, verify and cache every dataset recapp uses."""
from __future__ import annotations

import argparse
import sys

from recapp.data.cache import DataSourceError, data_dir


def fetch() -> int:
    """Fetch MovieLens-100K and the Open Bandit samples into the cache; print what came from where."""
    from recapp.data.movielens import load_movielens
    from recapp.data.openbandit import load_open_bandit

    try:
        ml = load_movielens("100k")
        print(f"MovieLens-100K: {len(ml.interactions):,} ratings from {ml.source}")
        for policy in ("random", "bts"):
            for campaign in ("all", "men", "women"):
                ob = load_open_bandit(policy=policy, campaign=campaign)
                print(f"Open Bandit {policy}/{campaign}: {len(ob.rounds):,} rounds from {ob.source}")
    except DataSourceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
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
