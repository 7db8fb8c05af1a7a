"""Fixtures shared by the engine and live-scoring tests."""
import pytest

from recapp.data.synthetic import synthetic_shop
from recapp.models import EASE


@pytest.fixture(scope="session")
def shop():
    """A small synthetic shop: 150 shoppers, 120 items, 6,000 events (a test module may define its own)."""
    return synthetic_shop(n_users=150, n_items=120, n_events=6000, random_state=3)


@pytest.fixture(scope="session")
def ease(shop):
    """EASE fitted on :func:`shop`."""
    return EASE(l2=50.0).fit(shop.events)
