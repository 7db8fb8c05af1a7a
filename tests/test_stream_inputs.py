"""Bad inputs to the event sources, the prequential replay and the Spark streaming helpers: clear errors, nothing silent."""
import logging
import math
import warnings

import numpy as np
import pandas as pd
import pytest

from recapp.data.synthetic import synthetic_shop
from recapp.models import Popularity
from recapp.realtime import Engine, Replay, ShopperStream, replay_movielens
from recapp.realtime.prequential import movielens_prequential, prequential, run_prequential
from recapp.schema import SchemaError


@pytest.fixture(scope="module")
def small():
    shop = synthetic_shop(n_users=40, n_items=30, n_events=800, random_state=2)
    ev = shop.events.sort_values("timestamp", kind="stable")
    train, test = ev.iloc[:600], ev.iloc[600:700].reset_index(drop=True)
    return shop, Popularity().fit(train), test


def _run(model, test, **kw):
    return prequential(Engine(model, explain=False), test, progress=False, **kw)


# ---- prequential ---------------------------------------------------------------------------------
def test_prequential_needs_an_engine_and_events(small):
    _, model, test = small
    with pytest.raises(TypeError, match=r"Engine\(model\)"):
        prequential(model, test, progress=False)
    with pytest.raises(ValueError, match="no events"):
        _run(model, test.iloc[:0])


def test_prequential_refuses_rows_it_cannot_replay_or_ingest(small):
    _, model, test = small
    no_time = test.copy()
    no_time.loc[3, "timestamp"] = np.nan
    with pytest.raises(SchemaError, match=r"'timestamp' of test has 1 missing.*3: nan"):
        _run(model, no_time)
    no_user = test.copy()
    no_user.loc[5, "user_id"] = np.nan
    for live in (True, False):
        with pytest.raises(SchemaError, match=r"1 event\(s\) the engine would refuse, the first at row 5: missing user_id"):
            _run(model, no_user, live=live)


def test_prequential_reads_datetime_and_iso_timestamps_as_the_engine_does(small):
    _, model, test = small
    test = test.assign(timestamp=np.floor(test["timestamp"]))   # whole seconds, so the text form loses nothing
    expected = _run(model, test)
    as_dates = test.assign(timestamp=pd.to_datetime(test["timestamp"], unit="s"))
    as_text = test.assign(timestamp=as_dates["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%SZ"))
    for frame in (as_dates, as_text):
        got = _run(model, frame)
        pd.testing.assert_series_equal(got["rank"], expected["rank"])
        np.testing.assert_array_equal(got["timestamp"], expected["timestamp"])


def test_prequential_warns_when_test_ids_are_of_another_kind_than_the_model_s(small):
    _, model, test = small
    as_text = test.astype({"user_id": str})
    with pytest.warns(UserWarning, match=r"'user_id' is text \(.*\) but the model's ids are numeric.*all count as new"):
        out = _run(model, as_text)
    assert out["new_user"].sum() == as_text["user_id"].nunique()


def test_run_prequential_checks_models_and_modes(small):
    _, model, test = small
    with pytest.raises(ValueError, match="models must be a non-empty dict"):
        run_prequential({}, test, progress=False)
    with pytest.raises(ValueError, match="modes is empty"):
        run_prequential({"P": model}, test, modes=(), progress=False)
    with pytest.raises(ValueError, match=r"models\['P'\] is a tuple of 1"):
        run_prequential({"P": (model,)}, test, progress=False)
    one = run_prequential({"P": model}, test, modes="static", progress=False)
    assert one.summary["mode"].tolist() == ["static"]


def test_movielens_runs_check_their_arguments_before_loading_data():
    with pytest.raises(ValueError, match="limit=-5"):
        replay_movielens(limit=-5)
    with pytest.raises(ValueError, match="limit=0"):
        movielens_prequential({"P": Popularity()}, limit=0, progress=False)
    with pytest.raises(ValueError, match="models must be a non-empty dict"):
        movielens_prequential({}, limit=10, progress=False)


def test_curve_checks_window_and_warns_when_a_run_is_too_short(small):
    _, model, test = small
    res = run_prequential({"P": model}, test, modes=("static",), progress=False)
    with pytest.raises(ValueError, match="window=0"):
        res.curve(window=0)
    with pytest.warns(UserWarning, match=r"P \(static\): 100.*smaller window"):
        curve = res.curve(window=5000)
    assert curve["hit_rate"].isna().all()


# ---- Replay --------------------------------------------------------------------------------------
def _log(times):
    return pd.DataFrame({"user_id": [1, 2, 1], "item_id": [10, 11, 12], "timestamp": times, "event": "view"})


def _slept(frame, **kw):
    clock = {"t": 0.0}
    slept = []

    def sleep(s):
        slept.append(s)
        clock["t"] += s

    list(Replay(frame, clock=lambda: clock["t"], sleep=sleep, **kw))
    return sum(slept)


@pytest.mark.parametrize("kw, name", [({"speed": math.nan}, "speed"), ({"speed": "fast"}, "speed"),
                                      ({"speed": 10.0, "max_gap": 0.0}, "max_gap"),
                                      ({"speed": 10.0, "max_gap": math.nan}, "max_gap")])
def test_replay_refuses_settings_that_would_silently_never_wait(kw, name):
    with pytest.raises(ValueError, match=name):
        Replay(_log([30.0, 10.0, 20.0]), **kw)


def test_replay_refuses_missing_times_and_non_frames():
    with pytest.raises(SchemaError, match=r"1 missing or unreadable.*0: nan"):
        Replay(_log([np.nan, 10.0, 20.0]))
    with pytest.raises(TypeError, match="DataFrame"):
        Replay(_log([30.0, 10.0, 20.0]).to_dict("records"))


def test_replay_schedules_on_seconds_whatever_the_time_column_holds():
    seconds = np.array([30.0, 10.0, 20.0]) + 1.7e9
    expected = _slept(_log(seconds), speed=10.0, max_gap=1e9)
    assert expected == pytest.approx(2.0)
    dates = pd.to_datetime(seconds, unit="s")
    for times in (seconds * 1000, dates, dates.strftime("%Y-%m-%dT%H:%M:%SZ")):
        assert _slept(_log(times), speed=10.0, max_gap=1e9) == pytest.approx(expected)
    # ISO text with offsets is ordered by the instant, not by the text.
    mixed = pd.DataFrame({"user_id": [1, 2], "item_id": [1, 2], "event": "view",
                          "timestamp": ["2024-01-01T10:00:00+02:00", "2024-01-01T09:00:00Z"]})
    assert [e["user_id"] for e in Replay(mixed)] == [1, 2]


# ---- ShopperStream -------------------------------------------------------------------------------
@pytest.mark.parametrize("name, value", [("k", 0), ("visit_length", 0.5), ("click_bias", math.nan),
                                         ("affinity_slope", math.nan), ("funnel_rates", (1.0, 0.2, 0.3)),
                                         ("funnel_rates", (0.5,)), ("funnel_rates", (math.nan,) * 3),
                                         ("n_candidates", 0), ("start_time", math.nan),
                                         ("seconds_between_visits", -1.0)])
def test_shopper_stream_checks_its_settings_when_made(small, name, value):
    shop, _, _ = small
    with pytest.raises(ValueError, match=name):
        ShopperStream(shop, **{name: value})


def test_shopper_stream_counts_and_reports_ids_it_cannot_show(small, caplog):
    shop, _, _ = small
    stream = ShopperStream(shop, recommender=lambda u, k: [str(i) for i in range(k)], k=3)
    with caplog.at_level(logging.WARNING, logger="recapp.realtime.simulated_shoppers"):
        stream.take(60)
    assert stream.n_unknown_shown == 3 * stream.n_shown > 0
    assert sum("not items of this shop" in r.getMessage() for r in caplog.records) == 1


def test_shopper_stream_names_a_recommend_without_item_ids(small):
    shop, _, _ = small

    class Bad:
        def recommend(self, user, k):
            return pd.DataFrame({"item": range(k)})

    with pytest.raises(TypeError, match="'item_id' column"):
        ShopperStream(shop, recommender=Bad()).take(5)


# ---- Spark streaming helpers ---------------------------------------------------------------------
def test_streaming_helpers_name_wrong_inputs(small, tmp_path):
    pytest.importorskip("pyspark")
    from recapp.spark.streaming import event_schema, latest_lists, live_recommendations, portable_scorer, write_event_files

    _, model, test = small
    with pytest.raises(TypeError, match="Spark DataFrame"):
        live_recommendations(test, model)
    with pytest.raises(TypeError, match="recapp factor model"):
        portable_scorer(object())
    with pytest.raises(SchemaError, match=r"lists is missing column\(s\) \['n_events', 'rank'\]"):
        latest_lists(pd.DataFrame({"user_id": [1], "item_id": [2]}))
    with pytest.raises(SchemaError, match=r"missing column\(s\) \['timestamp'\]"):
        write_event_files(test.drop(columns="timestamp"), tmp_path / "events")
    with pytest.raises(TypeError, match="pandas or Spark DataFrame"):
        event_schema(test.to_dict("records"))


def test_file_stream_checks_its_trigger_setting(spark, small, tmp_path):
    from recapp.spark.streaming import event_schema, file_stream

    _, _, test = small
    with pytest.raises(ValueError, match="max_files_per_trigger=0"):
        file_stream(spark, tmp_path, event_schema(test), max_files_per_trigger=0)


def test_live_recommendations_refuses_a_static_frame(spark, small):
    from recapp.models import ALS
    from recapp.spark.streaming import live_recommendations

    shop, _, test = small
    als = ALS(factors=4, iterations=2, verbose=False).fit(shop.events)
    static = spark.createDataFrame(test.astype({"event": object}))
    with pytest.raises(ValueError, match="static Spark DataFrame"):
        live_recommendations(static, als, k=3)


def test_prequential_warns_when_the_model_has_seen_later_events():
    shop = synthetic_shop(n_users=60, n_items=40, n_events=1500, random_state=2)
    ev = shop.events.sort_values("timestamp", kind="stable")
    train, test = ev.iloc[:1200], ev.iloc[1200:]
    model = Popularity().fit(train)
    with warnings.catch_warnings():
        warnings.simplefilter("error")            # a time split: nothing to say
        prequential(Engine(model, explain=False), test, progress=False)
    # Fitted on everything, the model has seen the test period: every hit there is in-sample.
    leaky = Popularity().fit(ev)
    with pytest.warns(UserWarning, match=r"of 300 test events are earlier than the model's last training event"):
        prequential(Engine(leaky, explain=False), test, progress=False)
