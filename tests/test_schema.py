"""recapp.schema.validate on hand-made logs, and property tests with malformed ones; check_event(s) agree."""
import datetime as dt
import math
import time

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
    check_event,
    check_event_types,
    check_events,
    column_renames,
    normalise_event,
    parse_timestamps,
    validate,
)
from recapp.schema.live import LIVE_TIMES

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
    assert "epoch seconds" in msg and "ISO 8601" in msg and "YYYYMMDD" in msg


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


def test_column_renames_are_validates_renames():
    cols = ["VisitorID", "Item_ID", "ts", "behavior", "event_type", "Rating", "extra"]
    expected = {"VisitorID": "user_id", "Item_ID": "item_id", "ts": "timestamp", "behavior": "event", "Rating": "rating"}
    assert column_renames(cols) == expected                     # the first alias of a column wins, others stay
    assert column_renames(["user_id", "user"]) == {}            # an existing schema column wins over an alias
    assert column_renames(["Who", "item_id"], aliases={"WHO": "user_id"}) == {"Who": "user_id"}
    frame = pd.DataFrame({c: ["view"] if c in ("behavior", "event_type") else [T0] for c in cols})
    assert validate(frame)[1].renamed == expected


def test_check_event_types_names_the_argument_and_the_accepted_types():
    check_event_types("exclude_events", ("purchase", "rating"))
    check_event_types("exclude_events", ())
    with pytest.raises(ValueError, match=r"^exclude_events has unknown event type\(s\) \['Z', 'like'\]; accepted: \["):
        check_event_types("exclude_events", ["view", "Z", "like"])


def test_duplicate_column_names_are_an_error():
    df = pd.DataFrame([[1, 2, T0, "view", 3]], columns=["user_id", "item_id", "timestamp", "event", "user_id"])
    with pytest.raises(SchemaError, match="duplicate column name"):
        validate(df)


def test_non_numeric_value_is_an_error():
    with pytest.raises(SchemaError, match=r"column 'value'.*line 3: 'free'"):
        validate(log(value=[1.0, 2.0, "free", None]))


def test_infinite_rating_is_an_error():
    with pytest.raises(SchemaError, match=r"column 'rating': 1 infinite value\(s\): line 2: inf"):
        validate(log(rating=[1.0, np.inf, None, 3.0]))
    assert check_event({"user_id": 1, "item_id": 2, "timestamp": T0, "event": "rating", "rating": "-inf"})[1] == \
        "infinite rating '-inf'"
    batch = pd.DataFrame({"user_id": [1, 2], "item_id": [2, 3], "timestamp": [T0, T0], "event": ["rating"] * 2,
                          "rating": ["INF", 4.0]})
    assert check_events(batch)[1]["reason"].tolist() == ["infinite rating 'INF'"]


@pytest.mark.parametrize(
    "values, expected",
    [
        ([T0, T0 + 60], [T0, T0 + 60]),
        ([T0 * 1000, (T0 + 60) * 1000], [T0, T0 + 60]),
        ([T0 * 10**6, (T0 + 60) * 10**6], [T0, T0 + 60]),
        ([T0 * 10**9, (T0 + 60) * 10**9], [T0, T0 + 60]),
        ([str(T0 * 1000), str(T0)], [T0, T0]),
        (["2023-11-14T22:13:20Z", "2023-11-14 23:13:20+01:00"], [T0, T0]),
        (["2023-11-14T22:13:20", "2023-11-14"], [T0, T0 - 80_000]),
        (pd.to_datetime([T0, T0 + 1], unit="s"), [T0, T0 + 1]),
        (pd.to_datetime([T0, T0 + 1], unit="s", utc=True).tz_convert("Asia/Tokyo"), [T0, T0 + 1]),
        (np.array([dt.datetime(2023, 11, 14, 22, 13, 20), "2023-11-14T22:13:21Z"], dtype=object), [T0, T0 + 1]),
    ],
    ids=["seconds", "milliseconds", "microseconds", "nanoseconds", "numeric-strings", "iso-tz", "iso-naive", "datetime64", "tz-aware", "datetime-objects"],
)
def test_timestamp_formats(values, expected):
    got = parse_timestamps(pd.Series(values))
    assert got.dtype == np.float64
    np.testing.assert_allclose(got.to_numpy(), expected)
    df = pd.DataFrame({"user_id": [1, 2], "item_id": [1, 2], "timestamp": values, "event": ["view", "view"]})
    out, _ = validate(df)
    np.testing.assert_allclose(out[TIME_COL].to_numpy(), expected)


def _utc(*days):
    return [(pd.Timestamp(d, tz="UTC") - pd.Timestamp(0, tz="UTC")).total_seconds() for d in days]


@pytest.mark.parametrize("values", [[20240115, 20240116, 20231231, 19991231],
                                    ["20240115", "20240116", " 20231231 ", "19991231"],
                                    [20240115.0, 20240116.0, 20231231.0, 19991231.0]], ids=["ints", "text", "floats"])
def test_a_column_of_yyyymmdd_numbers_is_read_as_dates_and_reported(values):
    out, report = validate(log(timestamp=values))
    assert out[TIME_COL].tolist() == _utc("2024-01-15", "2024-01-16", "2023-12-31", "1999-12-31")
    assert len(report.notes) == 1 and "YYYYMMDD" in report.notes[0] and "YYYYMMDD" in report.summary()


@pytest.mark.parametrize("values", [[20240115, 20240231, 20231231, 19991231],     # Feb 31st is no date
                                    [20240115, 20240116, 20231231, T0],           # one epoch second
                                    [20240115, 20240116, 20231231, 20231231.5],   # a fraction
                                    # ISO text whose seconds read like a date number (20040101 s) is a 1970 time
                                    ["1970-08-21T22:41:41Z", "1970-08-21T22:41:42Z", "1970-08-21T22:41:43Z",
                                     "1970-08-21T22:41:44Z"]],
                         ids=["impossible-date", "mixed", "fraction", "iso-1970"])
def test_a_column_with_one_non_date_keeps_epoch_seconds(values):
    out, report = validate(log(timestamp=values))
    np.testing.assert_allclose(out[TIME_COL].to_numpy(), parse_timestamps(pd.Series(values)).to_numpy())
    if isinstance(values[0], str):      # ISO text is no date number: nothing to tell
        assert report.notes == [] and "YYYYMMDD" not in report.summary()
    else:                               # the date-like numbers now sit in 1970, and the report says so
        assert len(report.notes) == 1 and "read as epoch seconds" in report.notes[0]
        assert report.notes[0].startswith("3 of 4 timestamps look like YYYYMMDD") and "line 1: 20240115" in report.notes[0]
        assert "line 4: " in report.notes[0] or "line 2: 20240231" in report.notes[0]
        assert "1970" in report.summary()


def test_one_live_event_keeps_epoch_seconds():
    # A live event carries epoch time; only a whole log is judged to be date numbers.
    event = {"user_id": 1, "item_id": 2, "timestamp": 20240115, "event": "view"}
    assert check_event(event)[0][2] == 20240115.0
    assert check_events(pd.DataFrame([event]))[0][TIME_COL].tolist() == [20240115.0]


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


# --- check_event (one live dict) and check_events (a batch) are one rule ---------------------------

def ev(user=1, item=2, t=T0, event="view", **kw):
    return {"user_id": user, "item_id": item, "timestamp": t, "event": event, **kw}


ACCEPTED = "; accepted: ['view', 'click', 'cart', 'purchase', 'rating']"
ROWS = [  # (row, the reason it is refused or None)
    (ev(), None),
    (ev(t=T0 * 1000, event=" AddToCart "), None),
    (ev(t="2023-11-14T23:13:20+01:00", event="buy", value=9.99), None),
    (ev(t=dt.datetime(2023, 11, 14, 22, 13, 20)), None),
    (ev(np.int64(7), np.int64(8), np.float64(T0), "PV"), None),
    (ev(t=str(T0), event="rating", rating="4.5"), None),
    (ev(t=None), None),                                               # a missing timestamp means now
    (ev(t=" "), None),
    (ev(user=None), "missing user_id"),
    (ev(user=np.nan), "missing user_id"),
    (ev(item=""), "missing item_id"),
    (ev(item="  ", t="garbage"), "missing item_id"),                  # the first problem wins
    (ev(t="yesterday-ish"), "unparseable timestamp 'yesterday-ish'" + LIVE_TIMES),
    (ev(t=math.inf), "unparseable timestamp inf" + LIVE_TIMES),
    (ev(t=True), "unparseable timestamp True" + LIVE_TIMES),
    (ev(t="1_000"), "unparseable timestamp '1_000'" + LIVE_TIMES),
    (ev(event=None), "missing event"),
    (ev(event="teleport"), "unknown event 'teleport'" + ACCEPTED),
    (ev(event=5), "unknown event 5" + ACCEPTED),
    (ev(event="rating", rating="five"), "non-numeric rating 'five'"),
    (ev(event="rating", rating=True), "non-numeric rating True"),
    (ev(event="purchase", value="free"), "non-numeric value 'free'"),
]


def _same(a, b):
    nan_a = a is None or (isinstance(a, float) and math.isnan(a))
    nan_b = b is None or (isinstance(b, float) and math.isnan(b))
    return nan_a and nan_b or a == b


def assert_agree(rows):
    """check_events on a frame of ``rows`` gives, row by row, what check_event gives each dict."""
    before = time.time()
    cols = list(dict.fromkeys([*REQUIRED_COLUMNS, *(c for r in rows for c in r)]))  # an absent key reads as missing
    clean, rejected = check_events(pd.DataFrame({c: pd.Series([r.get(c) for r in rows], dtype=object) for c in cols}))
    singles = [check_event(r) for r in rows]
    assert rejected["reason"].tolist() == [why for row, why in singles if row is None]
    assert rejected["row"].tolist() == [{c: r.get(c) for c in cols} for r, (row, _) in zip(rows, singles) if row is None]
    accepted = [(r, row) for r, (row, _) in zip(rows, singles) if row is not None]
    assert len(clean) == len(accepted)
    for (raw, (user, item, t, event, rating)), c in zip(accepted, clean.itertuples(index=False)):
        assert (c.user_id, c.item_id, c.event) == (user, item, event)
        assert _same(c.rating, rating)
        if raw.get("timestamp") is None or (isinstance(raw.get("timestamp"), str) and not raw["timestamp"].strip()):
            assert before <= t <= time.time() and before <= c.timestamp <= time.time()
        else:
            assert c.timestamp == pytest.approx(t, abs=1e-6)
    return singles


def test_check_event_and_check_events_agree_on_good_and_bad_rows():
    singles = assert_agree([r for r, _ in ROWS])
    assert [why for _, why in singles] == [why for _, why in ROWS]


def test_check_event_returns_plain_values_in_utc_seconds():
    row, why = check_event(ev(np.int64(7), np.int64(8), np.float64(T0 * 1000), "AddToCart"))
    assert why is None and row == (7, 8, float(T0), "cart", None)
    assert all(type(v) in (int, float, str) for v in row[:4])
    assert check_event(ev(t="2023-11-14T23:13:20+01:00", event="rating", rating=np.float32(4)))[0][2:] == (T0, "rating", 4.0)
    assert check_event({"user_id": "u", "item_id": "i", "event": "view"})[0][2] == pytest.approx(time.time(), abs=60)
    assert check_event({"item_id": 1, "event": "view"}) == (None, "missing user_id")


def test_check_events_keeps_its_frame_contract():
    clean, rejected = check_events(pd.DataFrame([ev(), ev(event="nope")]))
    assert list(clean.columns) == ["user_id", "item_id", "timestamp", "event", "rating", "value"]
    assert list(rejected.columns) == ["row", "reason"] and rejected["row"].iloc[0]["event"] == "nope"
    clean, _ = check_events(pd.DataFrame([ev(), ev(event="nope"), ev(item=3)], index=[10, 11, 12]))
    assert clean.index.tolist() == [10, 12]                                       # input labels kept
    _, missing = check_events(pd.DataFrame({"user_id": [1], "item_id": [2], "timestamp": [1.0]}))
    assert missing["reason"].tolist() == ["missing required column 'event'"]
    clean, _ = check_events(pd.DataFrame({"user_id": [1], "item_id": [2], "event": ["view"]}))
    assert clean["timestamp"].iloc[0] == pytest.approx(time.time(), abs=60)      # no timestamp column: now
    empty, none = check_events(pd.DataFrame(columns=["user_id", "item_id", "timestamp", "event"]))
    assert len(empty) == len(none) == 0


def test_one_alias_table_and_one_check_for_every_caller():
    import recapp.realtime.store as store

    assert store.check_events is check_events and store.normalise_event is normalise_event
    assert [normalise_event(v) for v in ("PV", " Add_To_Cart ", "bogus", None, 3)] == ["view", "cart", None, None, None]
    out, _ = validate(log(event=["PV", "clicked", " Add_To_Cart ", "Buy"]))
    assert out["event"].tolist() == ["view", "click", "cart", "purchase"]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.dictionaries(st.sampled_from(["user_id", "item_id", "timestamp", "event", "rating", "value"]), SCALARS),
                min_size=1, max_size=6))
def test_check_event_and_check_events_agree_on_messy_rows(rows):
    assert_agree(rows)
