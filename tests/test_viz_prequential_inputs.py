"""Inputs an analyst could plausibly pass to recapp.viz's tables and figures and to PrequentialResult: each is
refused with an error naming it, or read as meant (never merged, dropped or misread silently)."""
import numpy as np
import pandas as pd
import pytest

from recapp import viz
from recapp.models import Popularity
from recapp.realtime import Engine
from recapp.realtime.plots import latency_histogram
from recapp.realtime.prequential import PrequentialResult
from recapp.schema import SchemaError


@pytest.fixture
def events():
    return pd.DataFrame({
        "user_id": [1, 1, 1, 1, 2, 2, 3, 4, 4, 4],
        "item_id": [10, 10, 10, 10, 10, 11, 10, 12, 11, 11],
        "timestamp": 1_704_067_200.0 + np.arange(10) * 7_200.0,
        "event": ["view", "click", "cart", "purchase", "view", "view", "view", "view", "view", "click"],
        "rating": [5.0, 4.0, 3.0, 5.0, 1.0, 2.0, 4.0, 4.0, 5.0, 3.0],
    })


@pytest.fixture
def run():
    return pd.DataFrame({"model": "m", "mode": "static", "position": range(20), "timestamp": np.arange(20.0),
                         "hit": [True, False] * 10, "ndcg": [1.0, 0.0] * 10, "new_user": False, "latency_ms": 1.0})


NEW = pd.DataFrame({"user_id": [9, 9, 1], "item_id": [12, 11, 12], "timestamp": [3.0, 1.0, 2.0],
                    "event": ["view", "view", "click"]})


# ---- latencies -----------------------------------------------------------------------------
def test_latency_names_with_the_same_text_are_refused_not_merged():
    with pytest.raises(ValueError, match=r"latencies has two keys that read '1': 1 and '1'"):
        viz.latency_percentiles({1: [0.1], "1": [0.2]})
    # A name that is not text still works, in the table and in the figure that reads it by its text.
    assert viz.latency_percentiles({1: [0.1, 0.2]}).loc["1", "max"] == pytest.approx(200.0)
    fig = latency_histogram({1: [0.1, 0.2]})
    assert len(fig.data) == 1 and len(fig.layout.shapes) == 1


def test_latency_mapping_empty_or_a_series_of_several_columns():
    with pytest.raises(ValueError, match="latencies is empty"):
        viz.latency_percentiles({})
    with pytest.raises(ValueError, match="latencies is empty"):
        latency_histogram({})
    frame = pd.DataFrame({"user_id": [1000, 2000], "item_id": [5, 6], "total_s": [0.001, 0.002]})
    with pytest.raises(ValueError, match=r"latencies\['a'\] must be one series of numbers, got shape \(2, 3\)"):
        viz.latency_percentiles({"a": frame})
    # One column is one series.
    assert viz.latency_percentiles({"a": frame[["total_s"]]}).loc["a", "max"] == pytest.approx(2.0)


def test_percentiles_given_as_text_are_named_as_numbers():
    table = viz.latency_percentiles({"a": [0.001, 0.002, 0.003]}, percentiles=["50", "99.5"])
    assert list(table.columns) == ["p50", "p99.5", "max", "events"]
    assert table.loc["a", "p50"] == pytest.approx(2.0)


# ---- PrequentialResult ---------------------------------------------------------------------
def test_curve_and_summary_name_a_missing_column(run):
    with pytest.raises(SchemaError, match=r"result.events is missing column\(s\) \['hit'\]"):
        PrequentialResult(run.drop(columns="hit"), 10).curve(window=10)
    with pytest.raises(SchemaError, match=r"result.events is missing column\(s\) \['latency_ms'\]"):
        _ = PrequentialResult(run.drop(columns="latency_ms"), 10).summary
    with pytest.raises(TypeError, match="result.events must be a pandas DataFrame"):
        PrequentialResult(None, 10).curve(window=10)


def test_curve_refuses_an_empty_run_or_rows_it_would_skip(run):
    with pytest.raises(ValueError, match="result.events has no rows"):
        PrequentialResult(run.iloc[:0], 10).curve(window=10)
    with pytest.raises(SchemaError, match=r"column 'model' of result.events has 1 missing id\(s\), at rows 19"):
        PrequentialResult(run.assign(model=["m"] * 19 + [None]), 10).curve(window=10)
    with pytest.raises(ValueError, match=r"column 'hit' of result.events has 1 NaN hit"):
        PrequentialResult(run.assign(hit=[1.0] * 19 + [np.nan]), 10).curve(window=10)
    with pytest.raises(ValueError, match=r"column 'model' of result.events has 1 missing"):
        _ = PrequentialResult(run.assign(model=["m"] * 19 + [None]), 10).summary
    # Valid runs are read as before.
    curve = PrequentialResult(run, 10).curve(window=10)
    assert len(curve) == 20 and curve["cumulative_hit_rate"].iloc[-1] == pytest.approx(0.5)
    assert PrequentialResult(run, 10).summary["events"].tolist() == [20]


# ---- tables --------------------------------------------------------------------------------
def test_head_share_refuses_counts_of_more_than_one_dimension(events):
    counts = viz.activity_counts(events)
    assert viz.head_share(counts, 1 / 3) == pytest.approx(0.6)
    with pytest.raises(ValueError, match=r"counts must be one-dimensional .* got shape \(3, 1\)"):
        viz.head_share(counts.to_frame(), 1 / 3)
    with pytest.raises(ValueError, match=r"counts must be one-dimensional .* got shape \(\)"):
        viz.head_share(5)


def test_by_history_refuses_bins_ids_and_group_it_would_misread(events):
    per_user = pd.DataFrame({"user_id": [2, 3]})
    with pytest.raises(ValueError, match="bins=5 is a single value"):
        viz.by_history(per_user, events, bins=5)
    with pytest.raises(ValueError, match=r"bins must be whole numbers .* got \[0, 1.5, inf\]"):
        viz.by_history(per_user, events, bins=(0, 1.5, np.inf))
    with pytest.raises(SchemaError, match=r"column 'user_id' of per_user has 1 missing id\(s\), at rows 1"):
        viz.by_history(pd.DataFrame({"user_id": [1, np.nan]}), events, bins=(0, 1, np.inf))
    with pytest.raises(SchemaError, match=r"column 'user_id' is non-numeric \(\w+\) in per_user but numeric \(\w+\) in train"):
        viz.by_history(pd.DataFrame({"user_id": ["1", "2"]}), events, bins=(0, 1, np.inf))
    with pytest.raises(ValueError, match="group='n_train' would overwrite"):
        viz.by_history(per_user, events, bins=(0, 1, np.inf), group="n_train")
    assert viz.by_history(per_user, events, bins=(0, 1, 2, np.inf))["history"].tolist() == ["2+", "1"]


def test_per_user_by_history_needs_a_mapping_with_distinct_names(events):
    model = Popularity().fit(events)
    test = events.iloc[6:]
    with pytest.raises(TypeError, match="models must be a mapping"):
        viz.per_user_by_history([model], events, test, k=2)
    with pytest.raises(ValueError, match=r"models has two keys that read '1'"):
        viz.per_user_by_history({1: model, "1": model}, events, test, k=2)


def test_replay_latencies_refuses_what_the_engine_would_not_ingest(events):
    model = Popularity().fit(events)
    with pytest.raises(TypeError, match="wrap a fitted model as Engine"):
        viz.replay_latencies(model, NEW, k=2)
    engine = Engine(model, k=2)
    with pytest.raises(SchemaError, match=r"events has 3 event\(s\) the engine would refuse, the first at row 0: "
                                          r"missing required column 'event'"):
        viz.replay_latencies(engine, NEW.drop(columns="event"), k=2)
    with pytest.raises(SchemaError, match=r"events has 1 event\(s\) .* the first at row 1"):
        viz.replay_latencies(engine, NEW.assign(event=["view", "bogus", "click"]), k=2)
    with pytest.raises(ValueError, match="k=0"):
        viz.replay_latencies(engine, NEW, k=0)
    assert engine.stats()["events_ingested"] == 0     # nothing was ingested by a refused call
    lat = viz.replay_latencies(engine, NEW.rename(columns={"user_id": "uid"}), k=2, col_user="uid")
    assert engine.stats()["events_ingested"] == 3 and lat["uid"].tolist() == [9, 1, 9]
    # A refusal only the engine can see (an event_id it has had before) is counted, not passed over.
    with pytest.warns(UserWarning, match=r"the engine refused 1 of 3 event\(s\) while replaying \(first: duplicate"):
        lat = viz.replay_latencies(Engine(model, k=2), NEW.assign(event_id=["a", "b", "a"]), k=2)
    assert len(lat) == 3


# ---- figures -------------------------------------------------------------------------------
def test_time_patterns_draws_unknown_types_and_refuses_missing_ones(events):
    fig = viz.time_patterns(events.assign(event=["view"] * 5 + ["add_to_cart"] * 5))
    lines = {t.name: int(sum(t.y)) for t in fig.data if t.type == "scatter"}
    assert lines == {"view": 5, "add_to_cart": 5}
    with pytest.raises(SchemaError, match=r"column 'event' of df has 1 missing event type\(s\), at rows 9"):
        viz.time_patterns(events.assign(event=["view"] * 9 + [None]))


def test_bandit_click_rates_refuses_a_list_or_names_with_the_same_text():
    rounds = pd.DataFrame({"position": [1, 2, 1, 2], "click": [0, 1, 1, 1]})
    with pytest.raises(TypeError, match=r"logs must be a rounds DataFrame or \{policy name: rounds\}, got list"):
        viz.bandit_click_rates([rounds, rounds])
    with pytest.raises(ValueError, match=r"logs has two keys that read '1'"):
        viz.bandit_click_rates({1: rounds, "1": rounds})


def test_dataset_summary_counts_events_of_no_known_type(events):
    out = viz.dataset_summary(events.assign(event=["View"] * 3 + ["view"] * 6 + [None]))
    assert out["view events"] == 6 and out["other events"] == 4
    assert "other events" not in viz.dataset_summary(events).index


def test_funnel_refuses_a_repeated_stage(events):
    with pytest.raises(ValueError, match=r"repeats \['view'\]"):
        viz.funnel_counts(events, stages=["view", "click", "view"])


def test_bandit_summary_refuses_a_missing_position():
    # nunique skipped it: two positions were reported for rounds logged at three slots, one unknown.
    rounds = pd.DataFrame({"item_id": [1, 2, 3], "click": [0, 1, 0], "propensity_score": [0.5, 0.5, 0.5],
                           "position": [0, 1, np.nan]})
    with pytest.raises(ValueError, match=r"column 'position' of rounds has 1 missing id\(s\), at rows 2: nan"):
        viz.bandit_summary(rounds)
    assert viz.bandit_summary(rounds.iloc[:2])["positions"] == 2


def test_bandit_click_rates_refuses_positions_of_two_kinds():
    # Sorting failed with "'<' not supported between instances of 'str' and 'int'", naming nothing;
    # and 1 and "1" would have been two bars both labelled 1.
    rounds = pd.DataFrame({"position": [1, "1", 2, 2], "click": [0, 1, 0, 1]})
    with pytest.raises(SchemaError, match=r"column 'position' of logs\['rounds'\] mixes kinds of values \(1 and '1'\)"):
        viz.bandit_click_rates(rounds)
    fig = viz.bandit_click_rates(rounds.assign(position=[1, 1, 2, 2]))
    assert list(fig.data[0].x) == ["1", "2"]
