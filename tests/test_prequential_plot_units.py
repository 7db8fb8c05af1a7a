"""The prequential figure's time axis for every unit prequential passes on, the latency histogram's checks,
and the public names of the modules split out of interactions and the engine."""
import warnings

import numpy as np
import pandas as pd
import pytest

from recapp.interactions import (
    EVENT_CODES,
    Interactions,
    as_interactions,
    event_weights_for,
    events_fingerprint,
    resolve_event_weights,
)
from recapp.models import Popularity
from recapp.realtime import Engine
from recapp.realtime.engine import EXPLANATION_COL, RANK_CHANGE_COL, RESULT_COLUMNS
from recapp.realtime.plots import latency_histogram, prequential_figure
from recapp.realtime.prequential import PrequentialResult, prequential, run_prequential
from recapp.schema import SchemaError
from recapp.viz import latency_percentiles

T0 = 1.7e9


@pytest.fixture(scope="module")
def setup():
    rng = np.random.default_rng(0)
    n = 160
    log = pd.DataFrame({"user_id": rng.integers(0, 15, n), "item_id": rng.integers(0, 12, n),
                        "timestamp": T0 + 60.0 * np.arange(n), "event": "view"})
    train, test = log.iloc[:120], log.iloc[120:].reset_index(drop=True)
    return Popularity().fit(train), test


def _result(model, test):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return run_prequential({"pop": model}, test, modes="real-time", progress=False)


def _dates(fig) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(fig.data[0].x)


@pytest.mark.parametrize("unit", ["ms", "us", "ns", "datetime", "iso"])
def test_time_axis_is_the_same_dates_whatever_unit_the_log_has(setup, unit):
    model, test = setup
    expected = _dates(prequential_figure(_result(model, test), window=10, x="timestamp"))
    assert expected[0] == pd.Timestamp(test["timestamp"].iloc[0], unit="s")
    seconds = test["timestamp"]
    times = {"ms": (seconds * 1e3).astype("int64"), "us": (seconds * 1e6).astype("int64"),
             "ns": (seconds * 1e9).astype("int64"), "datetime": pd.to_datetime(seconds, unit="s"),
             "iso": pd.to_datetime(seconds, unit="s").dt.strftime("%Y-%m-%dT%H:%M:%S")}[unit]
    res = _result(model, test.assign(timestamp=times))
    fig = prequential_figure(res, window=10, x="timestamp")
    pd.testing.assert_index_equal(_dates(fig), expected)
    assert fig.layout.xaxis.title.text == "time"


def test_position_axis_is_unchanged_by_the_unit(setup):
    model, test = setup
    res = _result(model, test.assign(timestamp=(test["timestamp"] * 1e3).astype("int64")))
    np.testing.assert_array_equal(prequential_figure(res, window=10).data[0].x, np.arange(len(test)))


def test_the_frame_of_one_run_is_refused_with_how_to_wrap_it(setup):
    model, test = setup
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        frame = prequential(Engine(model), test, progress=False)
    with pytest.raises(TypeError, match=r"PrequentialResult\(frame, k\)"):
        prequential_figure(frame)
    # Wrapped as the message says, it draws.
    assert len(prequential_figure(PrequentialResult(frame, 10), window=10).data) == 1


def test_a_result_without_rows_or_columns_is_refused(setup):
    model, test = setup
    res = _result(model, test)
    with pytest.raises(ValueError, match="no rows"):
        prequential_figure(PrequentialResult(res.events.iloc[:0], res.k))
    with pytest.raises(SchemaError, match=r"missing column\(s\) \['timestamp'\]"):
        prequential_figure(PrequentialResult(res.events.drop(columns="timestamp"), res.k))


def test_unreadable_times_are_refused_by_count_and_row(setup):
    model, test = setup
    res = _result(model, test)
    events = res.events.copy()
    events.loc[[3, 7], "timestamp"] = np.nan
    with pytest.raises(SchemaError, match=r"has 2 missing or unreadable timestamp\(s\), at rows 3: nan, 7: nan"):
        prequential_figure(PrequentialResult(events, res.k), window=10, x="timestamp")
    # The position axis does not read times, so it still draws.
    assert len(prequential_figure(PrequentialResult(events, res.k), window=10).data) == 1


def test_split_modules_keep_their_public_names_and_numbers(setup):
    model, test = setup
    inter = as_interactions(test)
    assert isinstance(inter, Interactions) and inter.fingerprint() == events_fingerprint(test)
    assert EVENT_CODES["view"] == 0 and resolve_event_weights()["purchase"] > resolve_event_weights()["view"]
    np.testing.assert_array_equal(event_weights_for(test), np.full(len(test), resolve_event_weights()["view"]))
    back = Interactions.from_saved(*inter.to_saved())
    assert back.fingerprint() == inter.fingerprint() and (back.matrix != inter.matrix).nnz == 0
    engine = Engine(model)
    engine.ingest({"user_id": 99, "item_id": 3, "timestamp": T0 + 1e6, "event": "cart"})
    recs = engine.recommend(99, k=5)
    assert tuple(recs.columns) == RESULT_COLUMNS and {EXPLANATION_COL, RANK_CHANGE_COL} <= set(recs.columns)
    assert recs["rank"].tolist() == list(range(1, len(recs) + 1))
    hist = engine.history(99)
    assert hist.to_dict("list") == {"item_id": [3], "event": ["cart"], "timestamp": [T0 + 1e6]}
    assert len(engine.history("nobody")) == 0


# ---- latency_histogram ----------------------------------------------------------------------------
def test_latency_p99_line_is_the_tables_number():
    lat = {"a": np.random.default_rng(1).exponential(1e-3, 300), "b": [2e-3, 4e-3]}
    fig = latency_histogram(lat, unit="us")
    table = latency_percentiles(lat, unit="us", percentiles=(99,))
    assert [a.text for a in fig.layout.annotations] == [f"{n} p99 {table.loc[n, 'p99']:.2f} us" for n in ("a", "b")]


@pytest.mark.parametrize(("latencies", "kw", "error", "match"), [
    ({"a": [1e-3, np.nan]}, {}, ValueError, r"latencies\['a'\] has 1 value\(s\) that are not finite numbers, first nan at position 1"),
    ({"a": [1e-3, -1e-3]}, {}, ValueError, r"latencies\['a'\] has a negative latency at position 1"),
    ({"a": [0.0, 1e-3]}, {"log_x": True}, ValueError, r"log_x=True needs latencies > 0; latencies\['a'\] has 0 at position 0"),
    ([1e-3, 2e-3], {}, TypeError, r"latencies must be a mapping"),
    ({"a": [1e-3]}, {"bins": -1}, ValueError, r"bins=-1 is out of range"),
])
def test_latency_histogram_refuses_what_it_would_misdraw(latencies, kw, error, match):
    with pytest.raises(error, match=match):
        latency_histogram(latencies, **kw)


def test_an_empty_latency_series_gets_no_p99_line():
    fig = latency_histogram({"empty": [], "b": [1e-3]})
    assert [a.text for a in fig.layout.annotations] == ["b p99 1.00 ms"]
