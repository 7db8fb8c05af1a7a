"""Bad input to recapp.split, recapp.tune and recapp.viz: a clear error naming what and where, never a silent result."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recapp import split, tune, viz
from recapp.data.synthetic import synthetic_shop
from recapp.models import EASE, Popularity
from recapp.schema import ITEM_COL, TIME_COL, USER_COL


@pytest.fixture(scope="module")
def events():
    return synthetic_shop(n_users=40, n_items=20, n_events=600, random_state=5).events


@pytest.fixture
def log():
    return pd.DataFrame({USER_COL: [1, 1, 1, 2, 2, 3], ITEM_COL: [1, 2, 3, 1, 2, 3],
                         TIME_COL: [1.0, 2.0, 3.0, 4.0, 5.0, 6.0], "event": ["view"] * 6})


@pytest.fixture
def rounds():
    return pd.DataFrame({TIME_COL: [0.0, 60.0, 120.0, 180.0], ITEM_COL: [0, 1, 1, 2], "position": [1, 2, 1, 3],
                         "click": [0, 1, 0, 1], "propensity_score": [0.5, 0.25, 0.25, 0.125]})


# ---- split -------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", [1.5, -1, 2**32, "7", True])
def test_a_seed_numpy_cannot_use_is_named(log, seed):
    for call in (lambda: split.random_split(log, 0.5, random_state=seed),
                 lambda: split.random_split(log, [0.5, 0.5], random_state=seed),
                 lambda: split.stratified_split(log, 0.5, random_state=seed)):
        with pytest.raises(ValueError, match=r"random_state=.* is invalid; accepted: an integer in \[0, 2\*\*32 - 1\]"):
            call()


def test_seeds_that_worked_still_work(log):
    a, _ = split.random_split(log, 0.5, random_state=np.int64(3))
    b, _ = split.random_split(log, 0.5, random_state=3)
    assert a.index.tolist() == b.index.tolist()
    assert len(split.random_split(log, 0.5, random_state=np.random.RandomState(0))[0]) == 3
    assert len(split.stratified_split(log, 0.5, random_state=None)) == 2


def test_leave_last_out_refuses_missing_user_ids(log):
    df = log.astype({USER_COL: float})
    df.loc[[0, 3], USER_COL] = np.nan
    with pytest.raises(ValueError, match=rf"column '{USER_COL}' has 2 missing id\(s\), at rows 0: nan, 3: nan"):
        split.leave_last_out(df)


def test_temporal_split_reads_date_cutoffs_as_utc_on_datetime_columns(log):
    utc = pd.to_datetime(log[TIME_COL], unit="s", utc=True)
    paris = log.assign(**{TIME_COL: utc.dt.tz_convert("Europe/Paris")})
    naive = log.assign(**{TIME_COL: utc.dt.tz_localize(None)})
    # 00:00:03 UTC is 01:00:03 in Paris: events at 1 s and 2 s train, whatever zone the column is in.
    for df in (paris, naive):
        for cutoff in ("1970-01-01 00:00:03", "1970-01-01 01:00:03+01:00", pd.Timestamp(3, unit="s", tz="UTC")):
            train, test = split.temporal_split(df, cutoff=cutoff)
            assert train.index.tolist() == [0, 1] and test.index.tolist() == [2, 3, 4, 5]


# ---- tune --------------------------------------------------------------------------------
def test_grid_problems_are_named_before_anything_is_fitted(events, monkeypatch):
    fitted = []
    monkeypatch.setattr(EASE, "fit", lambda self, *a, **kw: fitted.append(1))
    with pytest.raises(ValueError, match=r"param_grid names \['factors'\], which EASE has no parameter"):
        tune.grid_search(EASE, {"l2": [1.0], "factors": [8]}, events, verbose=False)
    with pytest.raises(ValueError, match=r"param_grid\['l2'\] is empty"):
        tune.grid_search(EASE, {"l2": []}, events, verbose=False)
    with pytest.raises(ValueError, match="param_grid must be a dict of lists"):
        tune.grid_search(EASE, None, events, verbose=False)
    with pytest.raises(ValueError, match="k=0 is invalid"):
        tune.grid_search(EASE, {"l2": [1.0]}, events, k=0, verbose=False)
    with pytest.raises(TypeError, match="model must be a Recommender class or instance"):
        tune.grid_search("EASE", {"l2": [1.0]}, events, verbose=False)
    assert fitted == []


def test_validation_frame_without_columns_or_rows_is_refused(events):
    with pytest.raises(ValueError, match=rf"valid is missing column\(s\) \['{USER_COL}'\]"):
        tune.grid_search(Popularity, {"weighted": [True]}, events, valid=events.drop(columns=USER_COL), verbose=False)
    with pytest.raises(ValueError, match="valid has no rows"):
        tune.grid_search(Popularity, {"weighted": [True, False]}, events, valid=events.iloc[:0], verbose=False)
    model = Popularity().fit(events)
    with pytest.raises(ValueError, match="valid is missing column"):
        tune.evaluate(model, events.drop(columns=USER_COL))
    with pytest.raises(ValueError, match="valid has no rows"):
        tune.evaluate(model, events.iloc[:0])


def test_validation_split_names_none_among_accepted_filters(events):
    with pytest.raises(ValueError, match=r"filter_by='session'.*None"):
        tune.validation_split(events, filter_by="session")


# ---- viz: event logs ---------------------------------------------------------------------
def test_missing_ids_are_refused_not_left_out(log):
    no_item = log.astype({ITEM_COL: float})
    no_item.loc[2, ITEM_COL] = np.nan
    no_user = log.astype({USER_COL: float})
    no_user.loc[4, USER_COL] = np.nan
    for call in (lambda: viz.dataset_summary(no_item), lambda: viz.activity_counts(no_item, "item"),
                 lambda: viz.long_tail(no_item)):
        with pytest.raises(ValueError, match=r"column 'item_id' of df has 1 missing id\(s\), at rows 2: nan"):
            call()
    for call in (lambda: viz.dataset_summary(no_user), lambda: viz.funnel_counts(no_user),
                 lambda: viz.event_funnel(no_user, unit="users")):
        with pytest.raises(ValueError, match=r"column 'user_id' of df has 1 missing id\(s\), at rows 4: nan"):
            call()


def test_times_that_are_text_or_missing_are_named(log):
    text = log.assign(**{TIME_COL: "soon"})
    gap = log.assign(**{TIME_COL: [1.0, np.nan, 3.0, 4.0, 5.0, 6.0]})
    for fn in (viz.dataset_summary, viz.time_patterns):
        with pytest.raises(ValueError, match=f"column .{TIME_COL}. of df has 6 missing or unreadable timestamp"):
            fn(text)
        with pytest.raises(ValueError, match=r"1 missing or unreadable timestamp\(s\), at rows 1: nan"):
            fn(gap)
    # Epoch milliseconds are read as the engine reads them (they were seconds in the year 55000, and failed).
    ms = log.assign(**{TIME_COL: log[TIME_COL] * 1000 + 1_700_000_000_000})
    assert viz.dataset_summary(ms)["first event"] == "2023-11-14"
    assert viz.dataset_summary(log.assign(**{TIME_COL: "2024-01-01"}))["first event"] == "2024-01-01"   # read as before
    with pytest.raises(ValueError, match="freq='X' is not a pandas period frequency"):
        viz.time_patterns(log, freq="X")


def test_empty_logs_are_refused(log):
    for fn in (viz.dataset_summary, viz.long_tail):
        with pytest.raises(ValueError, match="df has no rows"):
            fn(log.iloc[:0])


def test_funnel_stages_must_be_a_list_of_event_types(log):
    with pytest.raises(ValueError, match="stages='view' is a single value"):
        viz.funnel_counts(log, stages="view")
    with pytest.raises(ValueError, match="stages is empty"):
        viz.event_funnel(log, stages=[])
    with pytest.raises(ValueError, match=r"unknown event type\(s\) \['purchases'\]"):
        viz.funnel_counts(log, stages=["view", "purchases"])
    fig = viz.event_funnel(log.assign(event="click"))
    assert "nan" not in fig.layout.title.text and "no view events" in fig.layout.title.text


def test_ratings_that_are_text_infinite_or_absent(log):
    with pytest.raises(ValueError, match=r"column 'rating' of df has 1 non-numeric rating\(s\), at rows 2: 'x'"):
        viz.rating_histogram(log.assign(rating=[1, 2, "x", 4, 5, 3]))
    with pytest.raises(ValueError, match="NaN or infinite rating"):
        viz.rating_histogram(log.assign(rating=[1, 2, np.inf, 4, 5, 3]))
    with pytest.raises(ValueError, match="column 'rating' of df has no ratings"):
        viz.rating_histogram(log.assign(rating=np.nan))
    with pytest.raises(ValueError, match="non-numeric rating"):
        viz.dataset_summary(log.assign(rating=[1, 2, "x", 4, 5, 3]))


def test_head_share_refuses_what_is_no_count():
    with pytest.raises(ValueError, match=r"counts has 1 value\(s\) that are not finite counts >= 0, first nan at position 1"):
        viz.head_share([3, np.nan, 1])
    with pytest.raises(ValueError, match="head='0.2' is out of range"):
        viz.head_share([3, 1], "0.2")


# ---- viz: bandit logs --------------------------------------------------------------------
def test_bandit_summary_refuses_empty_or_missing_values(rounds):
    with pytest.raises(ValueError, match="rounds has no rows"):
        viz.bandit_summary(rounds.iloc[:0])
    with pytest.raises(ValueError, match=r"column 'propensity_score' of rounds has 1 NaN or infinite propensity"):
        viz.bandit_summary(rounds.assign(propensity_score=[0.5, np.nan, 0.25, 0.125]))
    with pytest.raises(ValueError, match=r"column 'click' of rounds has 1 NaN reward"):
        viz.bandit_summary(rounds.assign(click=[0, np.nan, 1, 1]))


def test_bandit_click_rates_refuses_rewards_the_whiskers_cannot_use(rounds):
    with pytest.raises(ValueError, match=r"column 'click' of logs\['rounds'\] has 1 NaN reward"):
        viz.bandit_click_rates(rounds.assign(click=[0, np.nan, 1, 1]))
    with pytest.raises(ValueError, match=r"1 reward\(s\) outside \[0, 1\], at rows 1: 5"):
        viz.bandit_click_rates(rounds.assign(click=[0, 5, 1, 1]))
    with pytest.raises(ValueError, match=r"column 'position' of logs\['a'\] has 1 missing id"):
        viz.bandit_click_rates({"a": rounds.assign(position=[1, np.nan, 1, 2])})
    with pytest.raises(ValueError, match="logs is empty"):
        viz.bandit_click_rates({})


# ---- viz: model tables -------------------------------------------------------------------
def test_model_tables_with_text_scores_or_a_single_name():
    table = pd.DataFrame({"model": ["A", "B"], "ndcg@10": [0.2, "n/a"], "coverage": [0.1, 0.2]})
    with pytest.raises(ValueError, match=r"column 'ndcg@10' of table has 1 non-numeric score\(s\), at rows 1: 'n/a'"):
        viz.benchmark_bars(table)
    with pytest.raises(ValueError, match=r"metrics='ndcg@10' is a single value"):
        viz.benchmark_bars(table, "ndcg@10")
    numeric = table.assign(**{"ndcg@10": [0.2, 0.3]})
    with pytest.raises(ValueError, match="column 'coverage' of table has 1 non-numeric score"):
        viz.accuracy_vs_beyond(numeric.assign(coverage=[0.1, "high"]))
    with pytest.raises(ValueError, match="beyond='coverage' is a single value"):
        viz.accuracy_vs_beyond(numeric, beyond="coverage")


def test_metric_by_group_refuses_rows_the_mean_would_skip():
    frame = pd.DataFrame({"history": ["a", "a", "b", "b"], "ndcg_at_k": [0.1, np.nan, 0.3, 0.4]})
    with pytest.raises(ValueError, match=r"column 'ndcg_at_k' of frame has 1 NaN metric value\(s\), at rows 1"):
        viz.metric_by_group(frame)
    with pytest.raises(ValueError, match=r"column 'history' of frame has 1 missing"):
        viz.metric_by_group(frame.assign(ndcg_at_k=0.5, history=["a", None, "b", "b"]))


def test_by_history_bins_must_cover_every_user():
    per_user = pd.DataFrame({USER_COL: [1, 2, 3]})
    train = pd.DataFrame({USER_COL: [1] * 30 + [2]})
    with pytest.raises(ValueError, match=r"1 user\(s\) of per_user have a training count outside the bins \[0, 20\), "
                                         r"e.g. user 1 with 30"):
        viz.by_history(per_user, train, bins=(0, 1, 20))
    with pytest.raises(ValueError, match="increasing edges"):
        viz.by_history(per_user, train, bins=(0, np.nan, np.inf))
    with pytest.raises(ValueError, match="increasing edges"):
        viz.by_history(per_user, train, bins=(0, "a", np.inf))


def test_loss_curves_and_latencies_name_the_bad_series():
    with pytest.raises(TypeError, match="logs must be a mapping"):
        viz.loss_curves([[1.0, 0.5]])
    with pytest.raises(ValueError, match=r"logs\['BPR'\] must be a TrainLog"):
        viz.loss_curves({"BPR": ["x", 1.0]})
    with pytest.raises(ValueError, match=r"column 'loss' of logs\['VAE'\] has 1 non-numeric loss"):
        viz.loss_curves({"VAE": pd.DataFrame({"loss": [1.0, "diverged"]})})
    with pytest.raises(ValueError, match=r"latencies\['a'\] has 1 value\(s\) that are not finite numbers, first nan at position 1"):
        viz.latency_percentiles({"a": [0.1, np.nan]})
    with pytest.raises(ValueError, match=r"percentiles=\[50, 150\] has a value outside \[0, 100\]"):
        viz.latency_percentiles({"a": [0.1]}, percentiles=[50, 150])
    with pytest.raises(TypeError, match="latencies must be a mapping"):
        viz.latency_percentiles([0.1, 0.2])
