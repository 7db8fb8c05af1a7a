"""Fixtures shared by the tests: the models folder kept out of the user's cache; a small shop and EASE on it; one SparkSession."""
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


@pytest.fixture(scope="session")
def spark(tmp_path_factory):
    """One local[2] SparkSession for the whole run (UI off, 2 shuffle partitions, a temporary local dir), as
    Microsoft Recommenders' conftest makes it; the tests that ask for it are skipped, with the reason, where
    pyspark or Java 17 is missing."""
    from recapp.spark.session import spark_unavailable_reason

    reason = spark_unavailable_reason()
    if reason is not None:
        pytest.skip(f"Spark tests skipped: {reason}")
    from recapp.spark import spark_session

    session = spark_session("recapp-tests", master="local[2]", shuffle_partitions=2, driver_memory="1g",
                            local_dir=str(tmp_path_factory.mktemp("spark-local")),
                            conf={"spark.sql.warehouse.dir": str(tmp_path_factory.mktemp("spark-warehouse"))})
    yield session
    session.stop()
