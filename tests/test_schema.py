"""recapp.schema.validate on hand-made logs, and property tests with malformed ones."""
import datetime as dt

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recapp.schema import (
    EVENT_TYPES,
    ITEM_COL,
    REQUIRED_COLUMNS,
    TIME_COL,
    USER_COL,
    SchemaError,
    ValidationReport,
    parse_timestamps,
    validate,
)

T0 = 1_700_000_000  # 2023-11-14T22:13:20Z


def log(**overrides):
    base = {
        "user_id": ["u1", "u1", "u2", "u3"],
        "item_id": [10, 11, 10, 12],
        "timestamp": [T0, T0 + 1, T0 + 2, T0 + 3],
        "event": ["view", "click", "cart", "purchase"],
    }
    base.update(overrides)
    return pd.DataFrame(base)


def test_clean_log_passes_unchanged():
    out, report = validate(log())
    assert list(out.columns) == list(REQUIRED_COLUMNS)
    assert out[TIME_COL].dtype == np.float64
    assert out[TIME_COL].tolist() == [T0, T0 + 1, T0 + 2, T0 + 3]
    assert out["event"].tolist() == ["view", "click", "cart", "purchase"]
    assert (report.n_input, report.n_output, report.n_dropped) == (4, 4, 0)
    assert report.counts().empty
    assert "4 rows in, 4 kept, 0 dropped" in report.summary()


def test_missing_columns_named_with_columns_found():
    df = log().drop(columns=["timestamp", "event"])
    with pytest.raises(SchemaError) as err:
        validate(df)
    msg = str(err.value)
    assert "'timestamp'" in msg and "'event'" in msg
    assert "columns found: ['user_id', 'item_id']" in msg


def test_default_event_fills_a_missing_event_column():
    out, _ = validate(log().drop(columns="event"), default_event="purchase")
    assert set(out["event"]) == {"purchase"}


@pytest.mark.parametrize("df", [pd.DataFrame(), log().iloc[:0]])
def test_empty_input_is_an_error(df):
    with pytest.raises(SchemaError, match="empty"):
        validate(df)


def test_not_a_frame_is_an_error():
    with pytest.raises(SchemaError, match="expected a pandas DataFrame, got list"):
        validate([{"user_id": 1}])


def test_unparseable_timestamps_quote_lines_and_accepted_formats():
    df = log(timestamp=[T0, "yesterday", T0 + 2, "n/a"])
    with pytest.raises(SchemaError) as err:
        validate(df)
    msg = str(err.value)
    assert "2 unparseable timestamp(s)" in msg
    assert "line 2: 'yesterday'" in msg and "line 4: 'n/a'" in msg
    assert "epoch seconds" in msg and "ISO 8601" in msg


def test_non_finite_timestamps_are_unparseable():
    with pytest.raises(SchemaError, match="line 3"):
        validate(log(timestamp=[T0, T0, np.inf, T0]))


def test_many_bad_lines_are_summarised():
    n = 20
    df = pd.DataFrame({"user_id": range(n), "item_id": range(n), "timestamp": ["bad"] * n, "event": ["view"] * n})
    with pytest.raises(SchemaError) as err:
        validate(df)
    assert "line 5:" in str(err.value) and "line 6:" not in str(err.value)
    assert "and 15 more" in str(err.value)


def test_unknown_events_quote_lines_and_accepted_values():
    df = log(event=["view", "wishlist", "cart", None])
    with pytest.raises(SchemaError) as err:
        validate(df)
    msg = str(err.value)
    assert "line 2: 'wishlist'" in msg and "line 4" in msg
    assert str(list(EVENT_TYPES)) in msg


def test_event_names_are_normalised_and_aliased():
    out, _ = validate(log(event=[" PV ", "Clicked", "addtocart", "buy"]))
    assert out["event"].tolist() == ["view", "click", "cart", "purchase"]


def test_missing_ids_are_dropped_and_reported():
    df = log(user_id=["u1", None, "u2", "u3"], item_id=[10, 11, np.nan, 12])
    out, report = validate(df)
    assert len(out) == 2
    assert report.n_dropped == 2 and report.n_output + report.n_dropped == report.n_input
    assert report.dropped["line"].tolist() == [2, 3]
    assert report.counts()["missing user or item id"] == 2
    assert "2 missing user or item id" in report.summary()


def test_blank_string_ids_count_as_missing():
    # pandas 3 stores text as the `str` dtype, not object; blank ids must still be caught.
    df = log(user_id=pd.array(["u1", "  ", "u2", ""], dtype="str"))
    out, report = validate(df)
    assert out[USER_COL].tolist() == ["u1", "u2"]
    assert report.dropped["line"].tolist() == [2, 4]


def test_exact_duplicates_are_dropped_and_reported():
    df = log(user_id=["u1", "u1", "u1", "u3"], item_id=[10, 10, 10, 12], timestamp=[T0, T0, T0 + 5, T0], event=["view"] * 4)
    out, report = validate(df)
    assert len(out) == 3
    assert report.dropped["line"].tolist() == [2]
    assert report.counts()["exact duplicate"] == 1
    kept, report = validate(df, drop_duplicates=False)
    assert len(kept) == 4 and report.n_dropped == 0


def test_every_row_dropped_is_an_error():
    with pytest.raises(SchemaError, match="no valid rows left"):
        validate(log(user_id=[None, None, None, None]))


def test_builtin_column_aliases():
    df = pd.DataFrame({
        "VisitorID": [1, 2], "itemid": [5, 6], "ts": [T0, T0 + 1], "behavior_type": ["pv", "buy"], "price": [1.5, "2"],
    })
    out, report = validate(df)
    assert list(out.columns) == ["user_id", "item_id", "timestamp", "event", "value"]
    assert out["value"].tolist() == [1.5, 2.0]
    assert report.renamed == {"VisitorID": "user_id", "itemid": "item_id", "ts": "timestamp", "behavior_type": "event", "price": "value"}
    assert "VisitorID->user_id" in report.summary()
    out, _ = validate(df.rename(columns={"behavior_type": "behavior"}))
    assert out["event"].tolist() == ["view", "purchase"]


def test_user_aliases_match_case_insensitively():
    df = pd.DataFrame({"Shopper": [1], "Article": [2], "When": [T0], "What": ["view"]})
    out, report = validate(df, aliases={"Shopper": "user_id", "ARTICLE": "item_id", "when": "timestamp", "what": "event"})
    assert list(out.columns) == list(REQUIRED_COLUMNS)
    assert len(report.renamed) == 4


def test_an_existing_schema_column_wins_over_an_alias():
    df = log(user=["x"] * 4)
    out, report = validate(df)
    assert out[USER_COL].tolist() == ["u1", "u1", "u2", "u3"]
    assert "user" not in report.renamed


def test_duplicate_column_names_are_an_error():
    df = pd.DataFrame([[1, 2, T0, "view", 3]], columns=["user_id", "item_id", "timestamp", "event", "user_id"])
    with pytest.raises(SchemaError, match="duplicate column name"):
        validate(df)


def test_non_numeric_value_is_an_error():
    with pytest.raises(SchemaError, match=r"column 'value'.*line 3: 'free'"):
        validate(log(value=[1.0, 2.0, "free", None]))


@pytest.mark.parametrize(
    "values, expected",
    [
        ([T0, T0 + 60], [T0, T0 + 60]),
        ([T0 * 1000, (T0 + 60) * 1000], [T0, T0 + 60]),
        ([str(T0 * 1000), str(T0)], [T0, T0]),
        (["2023-11-14T22:13:20Z", "2023-11-14 23:13:20+01:00"], [T0, T0]),
        (["2023-11-14T22:13:20", "2023-11-14"], [T0, T0 - 80_000]),
        (pd.to_datetime([T0, T0 + 1], unit="s"), [T0, T0 + 1]),
        (pd.to_datetime([T0, T0 + 1], unit="s", utc=True).tz_convert("Asia/Tokyo"), [T0, T0 + 1]),
        (np.array([dt.datetime(2023, 11, 14, 22, 13, 20), "2023-11-14T22:13:21Z"], dtype=object), [T0, T0 + 1]),
    ],
    ids=["seconds", "milliseconds", "numeric-strings", "iso-tz", "iso-naive", "datetime64", "tz-aware", "datetime-objects"],
)
def test_timestamp_formats(values, expected):
    got = parse_timestamps(pd.Series(values))
    assert got.dtype == np.float64
    np.testing.assert_allclose(got.to_numpy(), expected)
    df = pd.DataFrame({"user_id": [1, 2], "item_id": [1, 2], "timestamp": values, "event": ["view", "view"]})
    out, _ = validate(df)
    np.testing.assert_allclose(out[TIME_COL].to_numpy(), expected)


def test_csv_style_string_column_with_iso_times():
    # What pandas 3 read_csv produces: a `str` column, not object.
    df = log(timestamp=pd.array(["2023-11-14T22:13:20Z"] * 4, dtype="str"), item_id=[1, 2, 3, 4])
    out, _ = validate(df)
    assert out[TIME_COL].tolist() == [T0] * 4


# --- property tests ---------------------------------------------------------------------------

NAMES = ["user_id", "item_id", "timestamp", "event", "rating", "value", "behavior", "visitorid", "itemid", "ts",
         "price", "User_ID", "junk"]
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=6),
    st.sampled_from(["", " ", "view", "PV", "buy", "cart", "rating", "2024-01-01", "2024-02-30", "1700000000",
                     "1700000000000", "NaN", "inf", "-0", "1e400", "2024-01-01T00:00:00+05:00"]),
    st.datetimes(min_value=dt.datetime(1900, 1, 1), max_value=dt.datetime(2200, 1, 1)),
)


@st.composite
def messy_frames(draw):
    n = draw(st.integers(min_value=0, max_value=8))
    cols = draw(st.lists(st.sampled_from(NAMES), min_size=0, max_size=7, unique=True))
    return pd.DataFrame({c: pd.Series(draw(st.lists(SCALARS, min_size=n, max_size=n)), dtype=object) for c in cols}, index=range(n))


@st.composite
def nearly_valid_frames(draw):
    """Mostly good logs with a few bad cells, so that the later checks run too."""
    n = draw(st.integers(min_value=1, max_value=12))
    ids = st.one_of(st.integers(0, 3), st.sampled_from(["a", "b", " ", ""]), st.none(), st.just(np.nan))
    times = st.one_of(st.integers(T0, T0 + 3), st.integers(T0 * 1000, T0 * 1000 + 3),
                      st.sampled_from(["2024-01-01", "2024-01-01T00:00:01Z", "garbage", None, np.inf]))
    events = st.one_of(st.sampled_from(list(EVENT_TYPES) + ["PV", "buy", " Cart "]), st.sampled_from(["bogus", None]))
    values = st.one_of(st.floats(0, 100), st.none(), st.sampled_from(["3.5", "free"]))
    cols = {
        "user_id": draw(st.lists(ids, min_size=n, max_size=n)),
        "item_id": draw(st.lists(ids, min_size=n, max_size=n)),
        "timestamp": draw(st.lists(times, min_size=n, max_size=n)),
        "event": draw(st.lists(events, min_size=n, max_size=n)),
    }
    if draw(st.booleans()):
        cols["value"] = draw(st.lists(values, min_size=n, max_size=n))
    frame = pd.DataFrame({k: pd.Series(v, dtype=object) for k, v in cols.items()})
    if draw(st.booleans()):
        frame = frame.convert_dtypes()  # nullable / `str` dtypes, as read_csv or Parquet may give
    if draw(st.booleans()):
        frame = pd.concat([frame, frame.iloc[: draw(st.integers(0, n))]], ignore_index=True)
    return frame


def check_contract(df: pd.DataFrame) -> None:
    try:
        out, report = validate(df)
    except SchemaError:
        return
    assert isinstance(report, ValidationReport)
    assert report.n_input == len(df)
    assert report.n_output == len(out) > 0
    assert report.n_output + report.n_dropped == report.n_input
    assert set(REQUIRED_COLUMNS) <= set(out.columns)
    ts = out[TIME_COL].to_numpy()
    assert ts.dtype == np.float64 and np.isfinite(ts).all()
    assert out["event"].isin(EVENT_TYPES).all()
    for col in (USER_COL, ITEM_COL):
        assert out[col].notna().all()
        assert not out[col].map(lambda v: isinstance(v, str) and not v.strip()).any()
    for col in ("rating", "value"):
        if col in out.columns:
            assert out[col].dtype == np.float64
    assert not out.duplicated().any()
    lines = report.dropped["line"].to_numpy()
    assert len(set(lines.tolist())) == len(lines) and ((1 <= lines) & (lines <= len(df))).all()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messy_frames())
def test_messy_frames_give_a_valid_frame_or_a_schema_error(df):
    check_contract(df)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(nearly_valid_frames())
def test_nearly_valid_frames_give_a_valid_frame_or_a_schema_error(df):
    check_contract(df)
