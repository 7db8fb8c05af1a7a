"""Fixtures shared by the tests: the models folder kept out of the user's cache; a small shop and EASE on it."""
import os

import pytest

from recapp.data.synthetic import synthetic_shop
from recapp.models import EASE


@pytest.fixture(scope="session", autouse=True)
def models_folder(tmp_path_factory):
    """``$RECAPP_MODELS`` points at a temporary folder for the whole run, so no test writes to ``~/.cache/recapp/models``.

    The dataset cache (``$RECAPP_DATA``, filled by ``make data``) is still read.
    The previous value is restored at the end of the session.
    """
    folder = tmp_path_factory.mktemp("models")
    before = os.environ.get("RECAPP_MODELS")
    os.environ["RECAPP_MODELS"] = str(folder)
    yield folder
    if before is None:
        os.environ.pop("RECAPP_MODELS", None)
    else:
        os.environ["RECAPP_MODELS"] = before


@pytest.fixture(scope="session")
def shop():
    """A small synthetic shop: 150 shoppers, 120 items, 6,000 events (a test module may define its own)."""
    return synthetic_shop(n_users=150, n_items=120, n_events=6000, random_state=3)


@pytest.fixture(scope="session")
def ease(shop):
    """EASE fitted on :func:`shop`."""
    return EASE(l2=50.0).fit(shop.events)
