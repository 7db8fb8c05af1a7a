"""Loaders for real and synthetic event logs, and the local data cache."""
from recapp.data.cache import DataSourceError, data_dir
from recapp.data.events import read_events
from recapp.data.movielens import MovieLens, load_movielens
from recapp.data.openbandit import OpenBandit, load_open_bandit
from recapp.data.synthetic import SyntheticShop, synthetic_shop, true_affinity



def fetch_all(*, allow_download: bool = True) -> dict[str, str]:
    """Fill the cache with every bundled real dataset; returns ``{dataset: source}``.

    MovieLens-100K and the six Open Bandit samples (random/bts x all/men/women).
    Raises :class:`DataSourceError` naming the first dataset that could not be had.
    """
    sources = {"movielens-100k": load_movielens(allow_download=allow_download).source}
    for policy in ("random", "bts"):
        for campaign in ("all", "men", "women"):
            sources[f"open-bandit/{policy}/{campaign}"] = load_open_bandit(policy, campaign, allow_download=allow_download).source
    return sources


__all__ = [
    "DataSourceError",
    "MovieLens",
    "OpenBandit",
    "SyntheticShop",
    "data_dir",
    "fetch_all",
    "load_movielens",
    "load_open_bandit",
    "read_events",
    "synthetic_shop",
    "true_affinity",
]
