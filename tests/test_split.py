"""Tests for recapp.split: determinism, proportions, stratification, time order, errors."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.model_selection import train_test_split

from recapp.schema import ITEM_COL, TIME_COL, USER_COL
from recapp.split import chrono_split, leave_last_out, random_split, stratified_split, temporal_split


@pytest.fixture(scope="module")
def ml100k() -> pd.DataFrame:
    from recapp.data.cache import DataSourceError
    from recapp.data.movielens import load_movielens

    try:
        return load_movielens().interactions
    except DataSourceError as exc:  # offline and no cache: the synthetic tests still run
        pytest.skip(f"MovieLens-100K unavailable: {exc}")


def toy(n_users=6, n_items=8, seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        n = 1 + u * 2  # users of 1, 3, 5, ... events
        items = rng.choice(n_items * 4, size=n, replace=False)
        for j, i in enumerate(items):
            rows.append((u, int(i), float(rng.integers(0, 5) * 100 + j), float(rng.integers(1, 6))))
    return pd.DataFrame(rows, columns=[USER_COL, ITEM_COL, TIME_COL, "rating"])


def reference_stratification(data, ratio, min_rating, filter_by, is_random, seed, col_timestamp=TIME_COL):
    """recommenders' ``_do_stratification`` (python_splitters.py), restated step by step,
    with numpy's *global* generator as it uses it."""
    col = USER_COL if filter_by == "user" else ITEM_COL
    ratio = ratio if isinstance(ratio, list) else [ratio, 1 - ratio]
    if min_rating > 1:
        data = data.groupby(col).filter(lambda x: len(x) >= min_rating)
    data = data.copy()
    if is_random:
        state = np.random.get_state()
        np.random.seed(seed)
        data["random"] = np.random.rand(data.shape[0])
        np.random.set_state(state)
        order_by = "random"
    else:
        order_by = col_timestamp
    data = data.sort_values([col, order_by])
    groups = data.groupby(col)
    data["count"] = groups[col].transform("count")
    data["rank"] = groups.cumcount() + 1
    splits, prev = [], None
    for threshold in np.cumsum(ratio):
        cond = data["rank"] <= round(threshold * data["count"])
        if prev is not None:
            cond &= data["rank"] > round(prev * data["count"])
        splits.append(data[cond].index)
        prev = threshold
    return splits


def assert_partition(parts, df):
    idx = np.concatenate([p.index.to_numpy() for p in parts])
    assert len(idx) == len(set(idx)), "splits overlap"
    assert set(idx) == set(df.index), "splits do not cover the input"


# ---- random ----------------------------------------------------------------------
def test_random_split_proportions_and_determinism():
    df = toy(10)
    train, test = random_split(df, 0.75, random_state=7)
    assert_partition([train, test], df)
    assert len(train) == math.ceil(0.75 * len(df)) or len(train) == math.floor(0.75 * len(df))
    again, _ = random_split(df, 0.75, random_state=7)
    assert train.index.equals(again.index)
    other, _ = random_split(df, 0.75, random_state=8)
    assert not train.index.equals(other.index)


def test_random_split_matches_sklearn_and_recommenders_multi():
    df = toy(10)
    train, test = random_split(df, 0.6, random_state=3)
    sk_train, sk_test = train_test_split(df, train_size=0.6, random_state=3)
    assert train.index.equals(sk_train.index) and test.index.equals(sk_test.index)
    parts = random_split(df, [0.5, 0.3, 0.2], random_state=3)
    assert isinstance(parts, list) and len(parts) == 3
    assert_partition(parts, df)
    shuffled = df.sample(frac=1, random_state=3)
    cut1, cut2 = round(0.5 * len(df)), round(0.8 * len(df))
    assert parts[0].index.equals(shuffled.index[:cut1])
    assert parts[1].index.equals(shuffled.index[cut1:cut2])


# ---- stratified ------------------------------------------------------------------
@pytest.mark.parametrize("filter_by", ["user", "item"])
@pytest.mark.parametrize("min_rating", [1, 3])
def test_stratified_split_matches_recommenders(filter_by, min_rating):
    df = toy(12, seed=1)
    df[ITEM_COL] = df[ITEM_COL] % 7  # items with several rows
    ref = reference_stratification(df, 0.75, min_rating, filter_by, True, 42)
    dropped = len(df) - len(ref[0]) - len(ref[1])
    # What min_rating drops is reported, never silent.
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        train, test = stratified_split(df, 0.75, filter_by=filter_by, min_rating=min_rating, random_state=42)
        parts = stratified_split(df, [0.6, 0.2, 0.2], filter_by=filter_by, min_rating=min_rating, random_state=5)
    reports = [str(w.message) for w in seen if "min_rating" in str(w.message)]
    assert len(reports) == (2 if dropped else 0)
    assert all(f"{dropped:,} of {len(df):,} rows" in r for r in reports)
    assert train.index.equals(ref[0]) and test.index.equals(ref[1])
    ref = reference_stratification(df, [0.6, 0.2, 0.2], min_rating, filter_by, True, 5)
    assert [p.index.tolist() for p in parts] == [r.tolist() for r in ref]


def test_stratified_split_does_not_mutate_or_touch_global_rng():
    df = toy(5)
    before = df.copy()
    np.random.seed(123)
    expected = np.random.rand()
    np.random.seed(123)
    stratified_split(df, 0.75, random_state=42)
    assert np.random.rand() == expected
    pd.testing.assert_frame_equal(df, before)


def test_stratified_split_per_user_guarantees():
    df = toy(8, seed=2)
    train, test = stratified_split(df, 0.75, filter_by="user", random_state=0)
    assert_partition([train, test], df)
    n = df.groupby(USER_COL).size()
    n_train = train.groupby(USER_COL).size().reindex(n.index, fill_value=0)
    # each user's first round(0.75 n) rows (half to even) train: a user of one event trains
    assert (n_train == np.round(0.75 * n).astype(int)).all()
    assert set(train[USER_COL]) == set(df[USER_COL])


def test_stratified_split_determinism_and_seed():
    df = toy(10, seed=3)
    a, _ = stratified_split(df, 0.5, random_state=1)
    b, _ = stratified_split(df, 0.5, random_state=1)
    c, _ = stratified_split(df, 0.5, random_state=2)
    assert a.index.equals(b.index)
    assert not a.index.equals(c.index)


def test_benchmark_protocol_ml100k_item_stratified(ml100k):
    """The benchmark split: ML-100K, stratified per item, 75/25, seed 42."""
    train, test = stratified_split(ml100k, 0.75, filter_by="item", random_state=42)
    assert_partition([train, test], ml100k)
    assert 0.74 <= len(train) / len(ml100k) <= 0.76
    n = ml100k.groupby(ITEM_COL).size()
    in_train = set(train[ITEM_COL])
    # round(0.75 * 1) = 1: single-rating items land wholly in train, as in recommenders
    assert set(n.index) == in_train
    n_train = train.groupby(ITEM_COL).size().reindex(n.index, fill_value=0)
    assert (n_train == np.round(0.75 * n).astype(int)).all()
    ref = reference_stratification(ml100k, 0.75, 1, "item", True, 42)
    assert train.index.equals(ref[0]) and test.index.equals(ref[1])


# ---- chronological ---------------------------------------------------------------
def test_chrono_split_train_precedes_test_per_user():
    df = toy(10, seed=4)
    train, test = chrono_split(df, 0.7)
    assert_partition([train, test], df)
    last_train = train.groupby(USER_COL)[TIME_COL].max()
    first_test = test.groupby(USER_COL)[TIME_COL].min()
    both = last_train.index.intersection(first_test.index)
    assert (last_train[both] <= first_test[both]).all()
    ref = reference_stratification(df, 0.7, 1, "user", False, None)
    assert train.index.equals(ref[0]) and test.index.equals(ref[1])


def test_chrono_split_by_item_and_ties_keep_row_order():
    df = pd.DataFrame({USER_COL: [1, 2, 3, 4], ITEM_COL: [9, 9, 9, 9], TIME_COL: [5.0, 5.0, 5.0, 1.0]})
    train, test = chrono_split(df, 0.75, filter_by="item")
    assert train.index.tolist() == [3, 0, 1] and test.index.tolist() == [2]


def test_chrono_split_ml100k(ml100k):
    train, test = chrono_split(ml100k, 0.8)
    assert 0.78 <= len(train) / len(ml100k) <= 0.81
    gap = train.groupby(USER_COL)[TIME_COL].max() - test.groupby(USER_COL)[TIME_COL].min()
    assert (gap.dropna() <= 0).all()


# ---- temporal / leave-last-out ---------------------------------------------------
def test_temporal_split_cutoff():
    df = toy(10, seed=5)
    train, test = temporal_split(df, cutoff=250.0)
    assert (train[TIME_COL] < 250).all() and (test[TIME_COL] >= 250).all()
    assert_partition([train, test], df)
    train, test = temporal_split(df, quantile=0.5)
    cutoff = df[TIME_COL].quantile(0.5)
    assert (train[TIME_COL] < cutoff).all() and (test[TIME_COL] >= cutoff).all()


def test_temporal_split_accepts_dates():
    df = pd.DataFrame({USER_COL: [1, 1, 2], ITEM_COL: [1, 2, 3],
                       TIME_COL: [pd.Timestamp("2024-01-01", tz="UTC").timestamp(),
                                  pd.Timestamp("2024-03-01", tz="UTC").timestamp(),
                                  pd.Timestamp("2024-02-01", tz="UTC").timestamp()]})
    train, test = temporal_split(df, cutoff="2024-02-01")
    assert train.index.tolist() == [0] and test.index.tolist() == [1, 2]


def test_leave_last_out_picks_latest_events():
    df = pd.DataFrame({
        USER_COL: ["a", "a", "a", "b", "b", "c", "d", "d"],
        ITEM_COL: [1, 2, 3, 4, 5, 6, 7, 8],
        TIME_COL: [30.0, 10.0, 20.0, 5.0, 5.0, 1.0, 2.0, 1.0],
    })
    train, test = leave_last_out(df)
    # a: max time is row 0; b: tie broken by row order (row 4 later); c: single event stays in train
    assert sorted(test.index) == [0, 4, 6]
    assert_partition([train, test], df)
    train2, test2 = leave_last_out(df, n=2)
    assert sorted(test2.index) == [0, 2]   # only user a has more than two events


def test_leave_last_out_ml100k(ml100k):
    train, test = leave_last_out(ml100k)
    assert len(test) == ml100k[USER_COL].nunique()
    latest = ml100k.groupby(USER_COL)[TIME_COL].max()
    assert (test.set_index(USER_COL)[TIME_COL] == latest[test[USER_COL]].to_numpy()).all()


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 4), st.integers(0, 6), st.integers(0, 3)), min_size=1, max_size=40),
       st.integers(1, 3))
def test_splits_partition_rows(rows, n):
    df = pd.DataFrame(rows, columns=[USER_COL, ITEM_COL, TIME_COL]).astype({TIME_COL: float})
    train, test = leave_last_out(df, n=n)
    assert_partition([train, test], df)
    counts = df.groupby(USER_COL).size()
    assert (test.groupby(USER_COL).size() == n).all()
    assert set(test[USER_COL]) == set(counts[counts > n].index)
    for splitter in (stratified_split, chrono_split):
        a, b = splitter(df, 0.5)
        assert_partition([a, b], df)
    a, b = temporal_split(df)
    assert_partition([a, b], df)


# ---- errors ----------------------------------------------------------------------
@pytest.mark.parametrize("ratio", [0.0, 1.0, 1.5, -0.1, [0.5, 0.4], [1.0], [0.5, 0.5, 0.0], "0.7", True])
def test_bad_ratio(ratio):
    df = toy(3)
    for splitter in (random_split, stratified_split, chrono_split):
        with pytest.raises(ValueError, match="ratio"):
            splitter(df, ratio)


def test_bad_filter_by_names_accepted_values():
    with pytest.raises(ValueError, match=r"filter_by='session'.*'user', 'item'"):
        stratified_split(toy(3), filter_by="session")
    with pytest.raises(ValueError, match="filter_by"):
        chrono_split(toy(3), filter_by="session")


def test_missing_column_named():
    df = toy(3).drop(columns=TIME_COL)
    with pytest.raises(ValueError, match=TIME_COL):
        chrono_split(df)
    with pytest.raises(ValueError, match=TIME_COL):
        leave_last_out(df)
    with pytest.raises(ValueError, match=TIME_COL):
        temporal_split(df)
    with pytest.raises(ValueError, match="'uid'"):
        stratified_split(toy(3), col_user="uid")


def test_other_bad_arguments():
    df = toy(3)
    with pytest.raises(ValueError, match="min_rating"):
        stratified_split(df, min_rating=0)
    with pytest.raises(ValueError, match="n=0"):
        leave_last_out(df, n=0)
    with pytest.raises(ValueError, match="quantile"):
        temporal_split(df, quantile=1.2)


def test_times_that_would_sort_wrong_are_refused():
    # Text sorts '2024-1-10' before '2024-1-9'; a missing time sorts last and would be held out as the "latest".
    text = pd.DataFrame({USER_COL: [1, 1, 1], ITEM_COL: [1, 2, 3], TIME_COL: ["2024-1-9", "2024-1-10", "2024-2-1"]})
    gap = text.assign(**{TIME_COL: [1.0, np.nan, 3.0]})
    for split in (leave_last_out, chrono_split, temporal_split):
        with pytest.raises(ValueError, match=f"column '{TIME_COL}' holds .* not times"):
            split(text)
        with pytest.raises(ValueError, match=r"1 missing time\(s\), at rows 1: nan"):
            split(gap)
    dates = pd.DataFrame({TIME_COL: pd.to_datetime(["2024-01-01", "2024-02-01"])})
    assert [len(part) for part in temporal_split(dates, cutoff="2024-01-15")] == [1, 1]
    with pytest.raises(ValueError, match="cutoff=5 is a number but column 'timestamp' holds datetimes"):
        temporal_split(dates, cutoff=5)


def test_rows_without_an_id_are_refused_not_dropped():
    df = toy(3)
    df.loc[df.index[:2], USER_COL] = np.nan
    with pytest.raises(ValueError, match=rf"column '{USER_COL}' has 2 missing id\(s\)"):
        stratified_split(df)
    with pytest.raises(ValueError, match=rf"column '{USER_COL}' has 2 missing id\(s\)"):
        chrono_split(df)
