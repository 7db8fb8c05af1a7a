"""Write a small shop event log and catalogue, as an analyst's export would look, for trying the dashboard.

    python docs/make_sample_log.py docs/sample
    make dashboard EVENTS=docs/sample/events.csv ITEMS=docs/sample/items.csv

The log is RetailRocket-style (``timestamp`` in milliseconds, ``visitorid``,
``event`` with ``view``/``addtocart``/``transaction``, ``itemid``) with a few
rows lacking a visitor, as real exports have, so the page's validation report
has something to say. The shoppers come from :func:`recapp.data.synthetic_shop`.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from recapp.data import synthetic_shop

#: Rows written without a visitor id (dropped and reported by the page's validation).
N_MISSING_VISITOR = 5


def write_sample(folder, n_users: int = 300, n_items: int = 200, n_events: int = 12_000, random_state: int = 7) -> tuple[Path, Path]:
    """Write ``events.csv`` and ``items.csv`` into ``folder``; returns their paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    shop = synthetic_shop(n_users=n_users, n_items=n_items, n_events=n_events, random_state=random_state)
    ev = shop.events.rename(columns={"user_id": "visitorid", "item_id": "itemid"})
    ev["timestamp"] = (ev["timestamp"] * 1000).round().astype("int64")
    ev["event"] = ev["event"].replace({"cart": "addtocart", "purchase": "transaction"})
    ev = ev[["timestamp", "visitorid", "event", "itemid"]].astype({"visitorid": "Int64"})
    rng = np.random.default_rng(random_state)
    ev.loc[rng.choice(ev.index, N_MISSING_VISITOR, replace=False), "visitorid"] = None
    events = folder / "events.csv"
    ev.to_csv(events, index=False)
    items = folder / "items.csv"
    shop.items.rename(columns={"title": "name"})[["item_id", "name", "category", "price"]].to_csv(items, index=False)
    return events, items


def main(argv=None) -> int:
    """Command line: the output folder (default docs/sample)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", nargs="?", default=str(Path(__file__).parent / "sample"))
    args = parser.parse_args(argv)
    events, items = write_sample(args.folder)
    print(f"wrote {events} ({events.stat().st_size:,} bytes) and {items}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
