"""live_recommendations and latest_lists: rows refused for their user id are counted in the sink, never lost or merged."""
import warnings

import numpy as np
import pandas as pd
import pytest

from recapp.data.synthetic import synthetic_shop
from recapp.schema import SchemaError

pytest.importorskip("pyspark")
from recapp.spark import event_schema, file_stream, latest_lists, live_recommendations, write_event_files  # noqa: E402

K = 3


@pytest.fixture(scope="module")
def als():
    from recapp.models import ALS

    shop = synthetic_shop(n_users=30, n_items=20, n_events=600, random_state=3)
    return ALS(factors=4, iterations=2, verbose=False).fit(shop.events)


def _sink(spark, model, events, tmp_path, name, n_files=2):
    """Run ``events`` through live_recommendations, one file per period, and return every row of the sink."""
    write_event_files(events, tmp_path / "events", n_files=n_files)
    stream = file_stream(spark, tmp_path / "events", event_schema(events))
    query = (live_recommendations(stream, model, k=K).writeStream.format("memory").queryName(name)
             .outputMode("append").option("checkpointLocation", str(tmp_path / "checkpoint"))
             .trigger(availableNow=True).start())
    query.awaitTermination()
    return spark.table(name).toPandas()


def _events(users, items, kinds, times):
    return pd.DataFrame({"user_id": users, "item_id": items, "event": kinds, "timestamp": times})


def test_ids_that_do_not_cast_to_the_model_s_users_are_counted_under_a_null_user(spark, als, tmp_path):
    """Text ids against integer users: 'abc' no longer stops the query, and with a missing id and '007' it is
    refused and counted under a null user_id; shopper 7 is not fed '007'."""
    u, item = int(als.interactions_.user_ids[7]), int(als.interactions_.item_ids[0])
    events = _events([str(u), "abc", None, "0" + str(u)], [item] * 4, ["view"] * 4, [1e9, 1e9, 2e9, 2e9])
    sink = _sink(spark, als, events, tmp_path, "refused_text")
    nobody = sink[sink["user_id"].isna()]
    assert nobody["n_refused"].max() == 3
    assert nobody["item_id"].isna().all() and nobody["rank"].isna().all() and (nobody["n_events"] == 0).all()
    shopper = sink[sink["user_id"] == u]
    assert len(shopper) == K and (shopper["n_events"] == 1).all() and (shopper["n_refused"] == 0).all()


def test_fractional_and_missing_ids_are_refused_not_merged(spark, als, tmp_path):
    """7.5 against integer users was cast to 7 and folded into shopper 7; a NaN id vanished without a count."""
    u, item = int(als.interactions_.user_ids[7]), int(als.interactions_.item_ids[0])
    events = _events([float(u), u + 0.5, np.nan], [item] * 3, ["view"] * 3, [1e9, 1e9, 1e9])
    sink = _sink(spark, als, events, tmp_path, "refused_float", n_files=1)
    shopper = sink[sink["user_id"] == u]
    assert (shopper["n_events"] == 1).all() and len(shopper) == K
    assert sink.loc[sink["user_id"].isna(), "n_refused"].tolist() == [2]
    with pytest.warns(UserWarning, match="2 event row"):
        latest = latest_lists(sink)
    assert latest["user_id"].tolist() == [u] * K


def test_a_shopper_without_a_list_still_reports_refused_rows(spark, als, tmp_path):
    """A new shopper whose only row is refused got no output at all; a listed shopper whose next micro-batch was
    all refused got a second list that latest_lists kept beside the first."""
    u, item = int(als.interactions_.user_ids[3]), int(als.interactions_.item_ids[1])
    events = _events([u, 999_999, u], [item, item, item], ["view", "wat", "wat"], [1e9, 1e9, 2e9])
    sink = _sink(spark, als, events, tmp_path, "refused_new")
    new = sink[sink["user_id"] == 999_999]
    assert len(new) == 1 and new["item_id"].isna().all() and new["n_refused"].tolist() == [1]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        latest = latest_lists(sink)
    mine = latest[latest["user_id"] == u]
    assert mine["rank"].tolist() == list(range(1, K + 1)) and (mine["n_refused"] == 1).all()
    assert latest.loc[latest["user_id"] == 999_999, "n_refused"].tolist() == [1]


def test_latest_lists_takes_the_list_written_after_the_most_rows():
    """Two lists with the same n_events (the second after a refused row): only the later one is the last."""
    first = pd.DataFrame({"user_id": 5, "item_id": [1, 2], "score": [0.9, 0.8], "rank": [1, 2], "n_events": 4,
                          "n_refused": 0})
    later = first.assign(item_id=[2, 1], n_refused=1)
    got = latest_lists(pd.concat([first, later], ignore_index=True))
    assert got["item_id"].tolist() == [2, 1] and (got["n_refused"] == 1).all()


def test_latest_lists_warns_about_rows_refused_for_their_user_id():
    sink = pd.DataFrame({"user_id": [1.0, np.nan, np.nan], "item_id": [4, None, None], "rank": [1, None, None],
                         "n_events": [1, 0, 0], "n_refused": [0, 2, 5]})
    with pytest.warns(UserWarning, match=r"5 event row\(s\) were refused"):
        got = latest_lists(sink)
    assert got["user_id"].tolist() == [1.0]


@pytest.fixture()
def stream(spark, als, tmp_path):
    events = _events([int(als.interactions_.user_ids[0])], [int(als.interactions_.item_ids[0])], ["view"], [1e9])
    write_event_files(events, tmp_path / "events", n_files=1)
    return file_stream(spark, tmp_path / "events", event_schema(events))


@pytest.mark.parametrize("weights, message", [({"view": float("nan")}, "event_weights.*not finite"),
                                              ({"wishlist": 1.0}, "event_weights has unknown event type")])
def test_event_weights_are_checked_before_the_query_starts(stream, als, weights, message):
    """They were only read on the executors, so the running query died with a Python worker error."""
    with pytest.raises(ValueError, match=message):
        live_recommendations(stream, als, event_weights=weights)


def test_seeds_without_the_seed_columns_are_refused(spark, stream, als):
    seeds = spark.createDataFrame(pd.DataFrame({"user_id": [int(als.interactions_.user_ids[0])]}))
    with pytest.raises(SchemaError, match="seeds must be a Spark DataFrame.*'__seed_items__'"):
        live_recommendations(stream, als, seeds=seeds)


def test_a_boolean_user_column_is_refused(spark, als, tmp_path):
    """Cast to the model's integer ids, True became shopper 1."""
    flags = _events([True], [int(als.interactions_.item_ids[0])], ["view"], [1e9])
    write_event_files(flags, tmp_path / "flags", n_files=1)
    with pytest.raises(SchemaError, match="column 'user_id'.*boolean"):
        live_recommendations(file_stream(spark, tmp_path / "flags", event_schema(flags)), als)


def test_datetime_timestamps_stream_as_the_engine_reads_them(spark, als, tmp_path):
    """event_schema called datetimes text, so reading the files back stopped the query."""
    from recapp.realtime import Engine

    u, items = int(als.interactions_.user_ids[2]), als.interactions_.item_ids[:2].tolist()
    events = _events([u, u], items, ["view", "cart"], pd.to_datetime([1.6e9, 1.7e9], unit="s", utc=True))
    assert event_schema(events.assign(timestamp=events["timestamp"].dt.tz_localize(None)))["timestamp"].dataType \
        .simpleString() == "timestamp_ntz"
    latest = latest_lists(_sink(spark, als, events, tmp_path, "datetimes"))
    engine = Engine(als, explain=False)
    engine.ingest(events)
    assert latest["item_id"].tolist() == engine.recommend(u, k=K)["item_id"].tolist()
    assert (latest["n_events"] == 2).all()


def test_an_item_column_of_the_other_kind_warns_and_lists_keep_the_model_s_items(spark, als, tmp_path):
    """Text items against integer item ids stopped the query (the lists' column was typed as the events')."""
    u = int(als.interactions_.user_ids[4])
    events = _events([u], [str(als.interactions_.item_ids[0])], ["view"], [1e9])
    with pytest.warns(UserWarning, match="'item_id' is string but the model's item ids are bigint"):
        sink = _sink(spark, als, events, tmp_path, "text_items", n_files=1)
    assert len(sink) == K and set(sink["item_id"]) <= set(als.interactions_.item_ids.tolist())


def test_history_seeds_names_an_unknown_excluded_event(spark, als):
    """It was a bare KeyError: 'buy'."""
    from recapp.spark.streaming import history_seeds

    with pytest.raises(ValueError, match=r"exclude_events has unknown event type\(s\) \['buy'\]"):
        history_seeds(spark, als, exclude_events=("buy",))
