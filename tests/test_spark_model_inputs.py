"""recapp.spark's batch model path refuses what recapp's own ALS refuses, and never matches ids across kinds.

ALSWR (no Spark needed) refuses negative or non-finite summed weights and
unusable adopted factors; SparkALS refuses missing ids and such weights with a
count and a row before Spark's ALS sees them, keeps its previous fit when a refit
fails, and matches requested users by value and kind (``"1"`` and ``1.5`` are
not user 1); spark_session refuses settings it would misread and leaves a
running session's settings as they are. The SparkSession
is the run's one, tests/conftest.py's ``spark``.
"""
import warnings

import numpy as np
import pandas as pd
import pytest

from recapp.interactions import Interactions
from recapp.schema import SchemaError
from recapp.spark import ALSWR

EVENTS = pd.DataFrame({"user_id": [1, 1, 2, 2, 3, 3], "item_id": [10, 11, 10, 12, 11, 12],
                       "event": ["rating"] * 6, "rating": [5.0, 4.0, 3.0, 1.0, 2.0, 4.0]})


# ---- ALSWR (no Spark) ------------------------------------------------------------------------------
def test_alswr_refuses_negative_summed_weights_as_als_does():
    bad = EVENTS.assign(rating=[5.0, -4.0, 3.0, 1.0, 2.0, 4.0])
    with pytest.raises(ValueError, match=r"1 \(user, item\) pair\(s\).*negative.*user np.int64\(1\), item np.int64\(11\): -4.0"):
        ALSWR(factors=2, iterations=2, verbose=False).fit(bad)
    # binary=True reads no amounts, so the same log trains.
    assert ALSWR(factors=2, iterations=2, binary=True, verbose=False).fit(bad).is_fitted


def test_alswr_refuses_unusable_adopted_factors():
    inter = Interactions.from_frame(EVENTS)
    U, V = np.ones((inter.n_users, 2)), np.ones((inter.n_items, 2))
    V[1, 0] = np.inf
    with pytest.raises(ValueError, match=r"item_factors has 1 row\(s\) with an infinite value.*row 1, column 0"):
        ALSWR(factors=2, verbose=False).fit(inter, user_factors=U, item_factors=V)
    with pytest.raises(ValueError, match="user_factors must be an array of numbers"):
        ALSWR(factors=2, verbose=False).fit(inter, user_factors="abc", item_factors=np.ones((inter.n_items, 2)))
    # NaN rows are still solved.
    U[0] = np.nan
    m = ALSWR(factors=2, verbose=False).fit(inter, user_factors=U, item_factors=np.ones((inter.n_items, 2)))
    assert np.isfinite(m.user_factors_).all()


# ---- spark_session ---------------------------------------------------------------------------------------
def test_session_refuses_settings_it_would_misread(spark):
    from recapp.spark import spark_session

    with pytest.raises(ValueError, match=r"ui='false' is not accepted"):
        spark_session(ui="false")
    with pytest.raises(ValueError, match="conf must be a dict"):
        spark_session(conf=[("spark.sql.shuffle.partitions", "3")])
    with pytest.raises(ValueError, match="log_level='verbose' is not accepted"):
        spark_session(log_level="verbose")
    # A running session is returned as it is: this call's runtime settings do not overwrite its own.
    with pytest.warns(UserWarning, match=r"already running.*shuffle_partitions='7' \(running: '2'\)"):
        again = spark_session(shuffle_partitions=7, conf={"spark.sql.session.timeZone": "Europe/Paris"})
    assert again is spark
    assert spark.conf.get("spark.sql.shuffle.partitions") == "2"
    assert spark.conf.get("spark.sql.session.timeZone") == "UTC"


# ---- SparkALS.fit -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def fitted(spark):
    from recapp.spark import SparkALS

    return SparkALS(factors=2, iterations=3).fit(spark.createDataFrame(EVENTS))


@pytest.mark.parametrize("rating, pattern", [
    (-4.0, r"SparkALS uses event weights as amounts, but 1 \(user, item\) pair\(s\).*user_id=1, item_id=11, summed_weight=-4.0"),
    (np.inf, r"1 \(user, item\) pair\(s\).*summed_weight=inf"),
])
def test_spark_als_refuses_weights_recapp_refuses(spark, rating, pattern):
    from recapp.spark import SparkALS

    bad = EVENTS.assign(rating=[5.0, rating, 3.0, 1.0, 2.0, 4.0])
    with pytest.raises(ValueError, match=pattern):
        SparkALS(factors=2, iterations=2).fit(spark.createDataFrame(bad))


def test_spark_als_refuses_missing_ids_and_keeps_its_previous_fit(spark, fitted):
    from recapp.spark import SparkALS

    nulls = spark.createDataFrame(EVENTS.astype({"user_id": "Int64"}).assign(user_id=[1, 1, None, 2, 3, None]))
    with pytest.raises(SchemaError, match=r"column 'user_id' has 2 missing id\(s\).*user_id=None, item_id=10"):
        SparkALS(factors=2, iterations=2).fit(nulls)
    empty = spark.createDataFrame([], "user_id long, item_id long, event string, rating double")
    with pytest.raises(SchemaError, match="SparkALS cannot fit on events that hold no rows"):
        SparkALS(factors=2, iterations=2).fit(empty)
    booleans = spark.createDataFrame(EVENTS.assign(user_id=[True, True, False, False, True, False]))
    with pytest.raises(SchemaError, match=r"column 'user_id': its values cannot be ids: Spark type boolean"):
        SparkALS(factors=2, iterations=2).fit(booleans)
    model, events = fitted.model_, fitted.events_
    with pytest.raises(SchemaError, match="missing id"):
        fitted.fit(nulls)
    assert fitted.model_ is model and fitted.events_ is events
    assert len(fitted.recommend([1], k=1).toPandas()) == 1


# ---- SparkALS.recommend(users=...) ----------------------------------------------------------------------
def test_recommend_matches_users_by_value_and_kind_as_recapp_does(spark, fitted):
    def users_of(users):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            got = sorted(fitted.recommend(users, k=1).toPandas()["user_id"].tolist())
        return got, [str(w.message) for w in caught if "requested user" in str(w.message)]

    assert users_of([1, np.int64(2)]) == ([1, 2], [])
    assert users_of([1.0]) == ([1], [])                  # pandas' get_indexer matches 1.0 with 1 too
    assert users_of([10**12]) == ([], [])              # an id of the right kind, past Spark's int: unknown
    for odd in (["1"], [1.5], [None], [2**63]):
        got, said = users_of(odd)
        assert got == [] and len(said) == 1 and "cannot be training ids, which are bigint" in said[0], odd
    assert users_of([]) == ([], [])
    with pytest.raises(SchemaError, match=r"users is missing column\(s\) \['user_id'\]"):
        fitted.recommend(spark.createDataFrame(pd.DataFrame({"uid": [1]})))
    with pytest.raises(SchemaError, match="holds string values but the training ids are bigint"):
        fitted.recommend(spark.createDataFrame(pd.DataFrame({"user_id": ["1"]})))
    frame = spark.createDataFrame(pd.DataFrame({"user_id": [1.5, 2.0, 1e12]}))
    assert sorted(fitted.recommend(frame, k=1).toPandas()["user_id"].tolist()) == [2]


def test_recommend_with_text_ids_does_not_cast_numbers(spark):
    from recapp.spark import SparkALS

    als = SparkALS(factors=2, iterations=2).fit(spark.createDataFrame(EVENTS.assign(user_id=EVENTS["user_id"].astype(str))))
    with pytest.warns(UserWarning, match="1 of the 2 requested user"):
        got = als.recommend(["1", 2], k=1).toPandas()
    assert got["user_id"].tolist() == ["1"]


def test_spark_als_warns_of_cells_spark_ignores(spark):
    from recapp.spark import SparkALS

    zero = EVENTS.assign(rating=[5.0, 0.0, 3.0, 1.0, 2.0, 4.0])
    with pytest.warns(UserWarning, match=r"1 \(user, item\) pair\(s\) have a summed event weight of 0, e\.g\. "
                                         r"user_id=1, item_id=11"):
        als = SparkALS(factors=2, iterations=2).fit(spark.createDataFrame(zero))
    assert als.cells_.count() == 6          # kept: recommend still treats the item as seen
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        SparkALS(factors=2, iterations=2).fit(spark.createDataFrame(EVENTS))
    assert not [w for w in caught if "summed event weight" in str(w.message)]


def test_to_recapp_refuses_events_whose_ids_match_nothing_spark_learned(fitted):
    with pytest.raises(SchemaError, match=r"no 'user_id' id matches one SparkALS learned \(e.g. '1' against .*Spark's bigint\)"):
        fitted.to_recapp(EVENTS.assign(user_id=EVENTS["user_id"].astype(str)))
    with pytest.raises(SchemaError, match=r"no 'item_id' id matches one SparkALS learned"):
        fitted.to_recapp(EVENTS.assign(item_id=EVENTS["item_id"].astype(str)))
    # Events that share some ids still fold the others in, as documented.
    more = pd.concat([EVENTS, pd.DataFrame({"user_id": [99], "item_id": [10], "event": ["view"], "rating": [np.nan]})])
    model = fitted.to_recapp(more)
    assert model.interactions_.n_users == 4 and np.isfinite(model.user_factors_).all()


def test_both_validates_refuse_a_drop_duplicates_that_is_not_a_flag(spark):
    # Before: drop_duplicates="no" was truthy, so both dropped the repeated row.
    import recapp.spark as rs
    from recapp.schema import validate

    df = pd.DataFrame({"user_id": [1, 1], "item_id": [2, 2], "timestamp": [10, 10], "event": ["view", "view"]})
    for check in (lambda: validate(df, drop_duplicates="no"), lambda: rs.validate(spark.createDataFrame(df), drop_duplicates="no")):
        with pytest.raises(SchemaError, match=r"drop_duplicates='no' must be True or False"):
            check()


def test_refits_release_what_the_previous_fit_kept_in_spark_memory(spark):
    # Each fit persists its training cells (and id maps, for text ids): before, a refit left the previous fit's
    # cached in executor memory for good, one more set per refit.
    from recapp.spark import SparkALS

    def kept(model) -> list:
        return [model.cells_, model.user_index_, model.item_index_]

    def cached(frame) -> bool:
        level = frame.storageLevel                  # asks Spark's cache manager, not a Python-side flag
        return level.useMemory or level.useDisk

    text = EVENTS.astype({"user_id": str, "item_id": str})
    model = SparkALS(factors=2, iterations=2).fit(spark.createDataFrame(text))
    first = kept(model)
    assert all(cached(f) for f in first)
    model.fit(spark.createDataFrame(text))
    assert not any(cached(f) for f in first)
    second = kept(model)
    bad = spark.createDataFrame(text.assign(rating=[5.0, -4.0, 3.0, 1.0, 2.0, 4.0]))
    with pytest.raises(ValueError, match="negative"):
        model.fit(bad)
    assert all(a is b for a, b in zip(kept(model), second)) and all(cached(f) for f in second)   # still serving
    assert len(model.recommend(["1"], k=1).toPandas()) == 1
    for frame in second:
        frame.unpersist()
