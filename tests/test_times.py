"""Times far outside any real log are refused, and one time column is read one way, in pandas and on Spark alike."""
import math

import numpy as np
import pandas as pd
import pytest

from recapp.data import read_events
from recapp.schema import (
    SchemaError,
    check_event,
    check_events,
    parse_timestamps,
    validate,
)
from recapp.schema.live import LIVE_TIMES
from recapp.spark.session import spark_unavailable_reason

T0 = 1_700_000_000  # 2023-11-14T22:13:20Z
REASON = spark_unavailable_reason()
needs_spark = pytest.mark.skipif(REASON is not None, reason=f"Spark tests skipped: {REASON}")


def log(times) -> pd.DataFrame:
    n = len(times)
    return pd.DataFrame({"user_id": 1, "item_id": range(n), "timestamp": pd.Series(times, dtype=object), "event": "view"})


def utc(*texts):
    return [(pd.Timestamp(t, tz="UTC") - pd.Timestamp(0, tz="UTC")).total_seconds() for t in texts]


def ev(t):
    return {"user_id": 1, "item_id": 2, "timestamp": t, "event": "view"}


# ---- plausible range ---------------------------------------------------------------------------
FAR = [1e300, -1e300, 99999999999999999999999, "99999999999999999999999", "1e300", "2500-01-01T00:00:00Z",
       "1899-12-31T23:59:59Z", "2201-01-01"]


@pytest.mark.parametrize("far", FAR, ids=[str(v)[:12] for v in FAR])
def test_validate_refuses_a_time_outside_1900_to_2200_naming_line_value_and_range(far):
    with pytest.raises(SchemaError) as err:
        validate(log([T0, far, T0 + 2]))
    msg = str(err.value)
    assert f"1 unparseable timestamp(s): line 2: {far!r}" in msg
    assert "from the year 1900 to 2200 (UTC)" in msg
    assert math.isnan(parse_timestamps(pd.Series([far], dtype=object)).iloc[0])


@pytest.mark.parametrize("far", FAR, ids=[str(v)[:12] for v in FAR])
def test_live_checks_reject_a_far_time_with_a_reason_and_never_raise(far):
    row, why = check_event(ev(far))
    assert row is None and why == f"unparseable timestamp {far!r}{LIVE_TIMES}"
    clean, rejected = check_events(pd.DataFrame({c: pd.Series(v, dtype=object) for c, v in
                                                 {"user_id": [1, 1], "item_id": [2, 3], "timestamp": [T0, far],
                                                  "event": ["view", "view"]}.items()}))
    assert clean["timestamp"].tolist() == [T0]
    assert rejected["reason"].tolist() == [why]


def test_real_times_at_the_edges_of_the_range_are_kept():
    times = [0, 1, 2, -1_700_000_000, -1_700_000_000_000, "1900-01-01T00:00:00Z", "2200-12-31T23:59:59Z",
             "1969-07-20T20:17:00Z", T0 * 10**9]
    expected = [0, 1, 2, -1_700_000_000, -1_700_000_000, *utc("1900-01-01", "2200-12-31T23:59:59", "1969-07-20T20:17"), T0]
    out, report = validate(log(times))
    np.testing.assert_allclose(out.sort_values("item_id")["timestamp"].to_numpy(), expected)
    assert report.notes == []
    assert [check_event(ev(t))[0][2] for t in times] == pytest.approx(expected)


# ---- one reading per column ---------------------------------------------------------------------
def test_day_and_month_are_read_one_way_for_the_whole_column():
    with pytest.raises(SchemaError) as err:
        validate(log(["01/02/2024", "13/02/2024"]))
    msg = str(err.value)
    assert "1 unparseable timestamp(s): line 2: '13/02/2024'" in msg
    assert "'%m/%d/%Y', guessed from the first such text '01/02/2024'" in msg


def test_time_format_reads_an_ambiguous_column_the_log_s_own_way(tmp_path):
    texts = ["01/02/2024", "13/02/2024", "2024-01-15T00:00:00Z"]
    with pytest.raises(SchemaError, match=r"pass time_format='\.\.\.' to read the column with another format"):
        validate(log(texts))
    out, report = validate(log(texts), time_format="%d/%m/%Y")
    assert out.sort_values("item_id")["timestamp"].tolist() == utc("2024-02-01", "2024-02-13", "2024-01-15")
    assert "'%d/%m/%Y', as time_format gives it" in report.notes[0]
    path = tmp_path / "log.csv"
    log(texts).to_csv(path, index=False)
    assert read_events(path, time_format="%d/%m/%Y")["timestamp"].tolist() == utc("2024-02-01", "2024-02-13", "2024-01-15")
    with pytest.raises(SchemaError, match="line 1: '01/02/2024'.*'%Y-%d-%m', as time_format gives it"):
        validate(log(texts), time_format="%Y-%d-%m")
    for bad in ("%d/%m", 5):
        with pytest.raises(SchemaError, match="must be a strptime format with a year"):
            validate(log(texts), time_format=bad)
    # An unknown directive was pandas' own ValueError from deep inside the read, naming no argument.
    with pytest.raises(SchemaError, match=r"time_format='%d/%m/%Y %Q' is not a strptime format \('Q' is a bad directive"):
        validate(log(texts), time_format="%d/%m/%Y %Q")
    # A format only matters for text that is not ISO 8601: a column without any gets no note.
    assert validate(log([T0, "2024-01-15"]), time_format="%d/%m/%Y")[1].notes == []


def test_a_day_first_column_is_read_day_first_and_the_report_names_the_format():
    texts = ["13/02/2024", "01/02/2024", " 05/03/2024 "]
    for column in (pd.Series(texts, dtype=object), pd.Series(texts, dtype="str")):     # str: what read_csv gives
        out, report = validate(log(texts).assign(timestamp=column))
        assert out.sort_values("item_id")["timestamp"].tolist() == utc("2024-02-13", "2024-02-01", "2024-03-05")
        assert len(report.notes) == 1 and "'%d/%m/%Y'" in report.notes[0] and "'%d/%m/%Y'" in report.summary()


def test_iso_text_needs_no_format_and_sits_beside_one():
    iso = ["2024-01-15", "2024-01-15T10:00:00Z", "2024-01-15 11:00:00.5+01:00", "2024-01-15T10:00:00.123456789",
           " 2024-01-16 "]
    out, report = validate(log(iso))
    np.testing.assert_allclose(out.sort_values("item_id")["timestamp"].to_numpy(),
                               utc("2024-01-15", "2024-01-15T10:00", "2024-01-15T10:00:00.5",
                                   "2024-01-15T10:00:00.123456789", "2024-01-16"))
    assert report.notes == []
    out, report = validate(log(["2024-01-15T00:00:00Z", "02/01/2024", T0]))
    assert out.sort_values("item_id")["timestamp"].tolist() == [*utc("2024-01-15", "2024-02-01"), T0]
    assert "'%m/%d/%Y'" in report.notes[0]


def test_unreadable_text_before_the_dates_does_not_pick_the_format():
    with pytest.raises(SchemaError) as err:
        validate(log(["garbage", "01/02/2024", "25/12/2024"]))
    assert "2 unparseable timestamp(s): line 1: 'garbage', line 3: '25/12/2024'" in str(err.value)
    assert "'%m/%d/%Y'" in str(err.value)


def test_a_live_event_takes_iso_text_and_refuses_other_text_as_a_one_row_batch_does():
    # One value cannot show its day/month order, and a per-event guess would read a stream two ways.
    for text in ("01/02/2024", "13/02/2024", "Jan 5 2024"):
        assert check_event(ev(text)) == (None, f"unparseable timestamp {text!r}{LIVE_TIMES}")
        clean, rejected = check_events(pd.DataFrame([ev(text)]))
        assert clean.empty and rejected["reason"].tolist() == [f"unparseable timestamp {text!r}{LIVE_TIMES}"]
        assert math.isnan(parse_timestamps(pd.Series([text])).iloc[0])
    assert check_event(ev("2024-01-02T00:00:00+01:00"))[0][2] == utc("2024-01-01T23:00")[0]


# ---- Spark reads the same ------------------------------------------------------------------------
# values -> what both layers must give: the start of the error's quote, or the seconds and the note's format.
SAME = {
    "far-double": ([float(T0), 1e300, float(T0 + 2), float(T0 + 3)], "line 2: 1e+300"),
    "far-text-number": (["1700000000", "99999999999999999999999", "1700000002", "1700000003"],
                        "line 2: '99999999999999999999999'"),
    "far-iso": (["2023-11-14T22:13:20Z", "2500-01-01", "1899-12-31T23:59:59Z", "2023-11-14T22:13:23Z"],
                "line 2: '2500-01-01', line 3: '1899-12-31T23:59:59Z'"),
    "month-first-then-day-first": (["01/02/2024", "02/03/2024", "13/02/2024", "14/02/2024"],
                                   "line 3: '13/02/2024', line 4: '14/02/2024'"),
    "day-first": (["13/02/2024", "01/02/2024", "02/03/2024", "14/02/2024"],
                  (utc("2024-02-13", "2024-02-01", "2024-03-02", "2024-02-14"), "%d/%m/%Y")),
    "iso-and-other": (["2024-01-15T00:00:00Z", "02/01/2024", "1700000000", "2024-01-16 10:00:00+01:00"],
                      (utc("2024-01-15", "2024-02-01", "2023-11-14T22:13:20", "2024-01-16T09:00"), "%m/%d/%Y")),
    "garbage-first": (["garbage", "01/02/2024", "01/03/2024", "25/12/2024"], "line 1: 'garbage', line 4: '25/12/2024'"),
    "edges": ([0.0, 1.0, -1_700_000_000_000.0, float(T0 * 10**9)], ([0.0, 1.0, -1_700_000_000.0, T0], None)),
    "given-format": (["01/02/2024", "13/02/2024", "02/03/2024", "14/02/2024"],
                     (utc("2024-02-01", "2024-02-13", "2024-03-02", "2024-02-14"), "%d/%m/%Y"), "%d/%m/%Y"),
}


@needs_spark
@pytest.mark.parametrize("values, outcome, time_format", [(*v, None)[:3] for v in SAME.values()], ids=list(SAME))
def test_spark_validate_reads_these_times_as_pandas_does(spark, values, outcome, time_format):
    from recapp.spark import validate as spark_validate

    pdf = log(values).astype({"timestamp": type(values[0])})
    # Two partitions: the rows after the first half must still be read with the column's one format.
    sdf = spark.createDataFrame(pdf).repartitionByRange(2, "item_id")
    assert sdf.rdd.getNumPartitions() == 2
    if isinstance(outcome, str):
        with pytest.raises(SchemaError, match="unparseable timestamp") as expected:
            validate(pdf)
        assert f": {outcome}. Accepted:" in str(expected.value)
        with pytest.raises(SchemaError) as got:
            spark_validate(sdf, persist=False)
        assert str(got.value) == str(expected.value)
        return
    seconds, fmt = outcome
    expected, report = validate(pdf, time_format=time_format)
    assert expected.sort_values("item_id")["timestamp"].tolist() == seconds
    assert (f"{fmt!r}" in report.notes[0]) if fmt else report.notes == []
    clean, spark_report = spark_validate(sdf, persist=False, time_format=time_format)
    assert clean.orderBy("item_id").toPandas()["timestamp"].tolist() == seconds
    assert spark_report.notes == report.notes and spark_report.summary() == report.summary()
