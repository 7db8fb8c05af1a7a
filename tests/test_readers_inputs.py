"""Inputs an analyst may pass to the readers that used to be misread or to crash naming nothing:
synthetic_shop's knobs, a corrupt Parquet log, aliases that are not a dict, a user's Open Bandit
folder with unreadable or out-of-range files, and a live event that is not a dict."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recapp.data import load_open_bandit, read_events, synthetic_shop
from recapp.schema import SchemaError, check_event, check_events, validate

LOG = pd.DataFrame({"user_id": [1, 2], "item_id": [3, 4], "timestamp": [1.7e9, 1.7e9 + 1], "event": ["view", "click"]})


# synthetic_shop: a NaN, infinite, negative or non-numeric knob used to give a log of noise or a numpy error.
@pytest.mark.parametrize("kwargs, named", [
    (dict(affinity_slope=float("nan")), "affinity_slope"),        # was: no click, cart or purchase at all
    (dict(category_strength=float("nan")), "category_strength"),  # was: NaN factors, a log of noise
    (dict(launch_share=0.2, launch_boost=float("nan")), "launch_boost"),
    (dict(affinity_scale=-1.0), "affinity_scale"),                # was: NaN factors (sqrt of a negative)
    (dict(activity_sigma=-1.0), "activity_sigma"),                # was: numpy "sigma < 0"
    (dict(item_bias_scale=-1.0), "item_bias_scale"),              # was: numpy "scale < 0"
    (dict(days=float("inf")), "days"),                            # was: OverflowError
    (dict(days=1e300), "days"),                                   # was: numpy "high is out of bounds"
    (dict(days="30"), "days"),                                    # was: TypeError comparing str and int
    (dict(session_length="6"), "session_length"),
    (dict(funnel_rates=0.2), "funnel_rates"),                     # was: TypeError len() of a float
    (dict(funnel_rates=(0.2, 0.25, float("nan"))), "funnel_rates"),   # refused before too: a guard
    (dict(launch_share=0.1, launch_window=0.5), "launch_window"),  # was: TypeError len() of a float
    (dict(launch_share=0.1, launch_window=(0.2, float("nan"))), "launch_window"),  # a guard, as above
    (dict(start="yesterdayish"), "start"),                        # was: pandas DateParseError
    (dict(start="1800-01-01"), "start"),                          # a log every reader would refuse
    (dict(random_state="a"), "random_state"),                     # was: numpy SeedSequence TypeError
])
def test_synthetic_shop_refuses_bad_knobs(kwargs, named):
    with pytest.raises(ValueError, match=named):
        synthetic_shop(50, 20, 100, **kwargs)


def test_synthetic_shop_valid_knobs_still_work():
    shop = synthetic_shop(50, 20, 300, affinity_scale=0, days=2, start=pd.Timestamp("2024-03-01"), random_state=np.int64(3))
    assert len(shop.events) == 300
    assert shop.events["timestamp"].min() >= pd.Timestamp("2024-03-01", tz="UTC").timestamp()


def test_corrupt_parquet_names_the_file(tmp_path):
    path = tmp_path / "log.parquet"
    path.write_bytes(b"this is not parquet")
    with pytest.raises(ValueError, match=r"cannot read .*log\.parquet as \.parquet") as info:
        read_events(path)
    assert type(info.value) is ValueError  # was pyarrow's ArrowInvalid


@pytest.mark.parametrize("aliases", [["uid"], "uid", {"uid": None}, {"uid": 1}])
def test_aliases_must_map_names_to_names(aliases):
    frame = LOG.rename(columns={"user_id": "uid"})
    with pytest.raises(SchemaError, match="aliases must"):
        validate(frame, aliases=aliases)  # a list was an AttributeError; None/1 targets left 'uid' silently unrenamed


def test_valid_aliases_unchanged():
    out = read_events(LOG.rename(columns={"user_id": "uid"}), aliases={"uid": "user_id"})
    assert out["user_id"].tolist() == [1, 2]


def _ob_folder(tmp_path, rounds: str, items: str = ",item_id,item_feature_0\n0,1,1\n"):
    folder = tmp_path / "ob"
    folder.mkdir(exist_ok=True)
    (folder / "all.csv").write_text(rounds)
    (folder / "item_context.csv").write_text(items)
    return folder


HEAD = ",timestamp,item_id,position,click,propensity_score"
ROW = "0,2019-11-24 00:00:17+00:00,1"


@pytest.mark.parametrize("rounds, items, pattern", [
    ("", None, r"all\.csv: cannot read"),                                                # was: EmptyDataError
    (f"{HEAD}\n{ROW},1,0,0.1\n", "", r"item_context\.csv: cannot read"),
    (f"{HEAD}\n{ROW},1,0,0.1\n", ",item_id,item_feature_0\n0,x,1\n", r"item_context\.csv: column 'item_id'"),
    (f"{HEAD},user-item_affinity_1\n{ROW},1,0,0.1,abc\n", None, r"'user-item_affinity_1' cannot be read"),
    (f"{HEAD}\n{ROW},7,0,0.1\n", None, r"1 position value\(s\) outside \[1, 2, 3\], first at line 1: 7"),  # was kept
    (f"{HEAD}\n{ROW},1,0,0.1\n{ROW},2,5,0.1\n", None, r"1 click value\(s\) outside \[0, 1\], first at line 2: 5"),
])
def test_open_bandit_user_folder_problems_name_the_file(tmp_path, rounds, items, pattern):
    folder = _ob_folder(tmp_path, rounds, *([items] if items is not None else []))
    with pytest.raises(SchemaError, match=pattern):
        load_open_bandit("random", "all", data_path=folder)


def test_open_bandit_user_folder_valid(tmp_path):
    folder = _ob_folder(tmp_path, f"{HEAD},user-item_affinity_1\n{ROW},3,1,0.5,0.25\n")
    rounds = load_open_bandit("random", "all", data_path=folder).rounds
    assert rounds[["position", "click"]].values.tolist() == [[3, 1]]
    assert rounds["user-item_affinity_1"].tolist() == [0.25]


@pytest.mark.parametrize("event", [None, [1, 2, 0, "view"], "view"])
def test_check_event_refuses_a_non_dict_with_a_reason(event):
    row, reason = check_event(event)  # was AttributeError: the live check never raises for a bad event
    assert row is None and "not an event dict" in reason


def test_check_events_names_a_bad_frame():
    with pytest.raises(TypeError, match="check_events expects a pandas DataFrame"):
        check_events([{"user_id": 1}])
    with pytest.raises(ValueError, match=r"repeated column name\(s\) \['user_id'\]"):  # was numpy "Data must be 1-dimensional"
        check_events(pd.concat([LOG, LOG[["user_id"]]], axis=1))


def test_validate_refuses_a_drop_duplicates_that_is_not_a_flag():
    # Before: drop_duplicates="no" was truthy, so the repeated row was dropped.
    df = pd.DataFrame({"user_id": [1, 1], "item_id": [2, 2], "timestamp": [10, 10], "event": ["view", "view"]})
    with pytest.raises(SchemaError, match=r"drop_duplicates='no' must be True or False"):
        validate(df, drop_duplicates="no")
    assert len(validate(df, drop_duplicates=False)[0]) == 2
