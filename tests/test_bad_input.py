"""Bad or unusual input to the live path and the log reader: a clear refusal, never a silent change."""
import logging
import re

import numpy as np
import pandas as pd
import pytest

from recapp.data import read_events
from recapp.models import Popularity
from recapp.realtime import Engine, EventStore
from recapp.schema import SchemaError, check_event, check_events, events_frame, validate

BIG = 2**60 + 1        # above 2**53: a float64 column would round it into its neighbours


@pytest.fixture(scope="module")
def big_ids_model():
    train = pd.DataFrame({"user_id": [BIG, BIG, BIG + 1, BIG + 1], "item_id": [1, 2, 2, 3],
                          "timestamp": [1.0, 2.0, 3.0, 4.0], "event": ["view"] * 4})
    return Popularity().fit(train)


def test_a_missing_id_in_a_batch_leaves_the_other_ids_as_sent(big_ids_model):
    engine = Engine(big_ids_model)
    result = engine.ingest([{"user_id": BIG, "item_id": 3, "event": "purchase", "timestamp": 5.0},
                            {"user_id": None, "item_id": 3, "event": "view", "timestamp": 5.0}])
    assert (result.n_ingested, result.rejected["reason"].tolist()) == (1, ["missing user_id"])
    assert engine.history(BIG)["item_id"].tolist() == [1, 2, 3]
    assert 3 not in engine.recommend(BIG, k=2)["item_id"].tolist()      # bought, so excluded


def test_a_store_keeps_integer_ids_beside_a_missing_one(tmp_path, big_ids_model):
    engine = Engine(big_ids_model, store=tmp_path / "events.duckdb")
    engine.ingest([{"user_id": BIG, "item_id": 1, "event": "purchase"}, {"user_id": None, "item_id": 2, "event": "view"}])
    stored = engine.store.sql("SELECT user_id, typeof(user_id) AS kind FROM events")
    assert stored.to_dict("list") == {"user_id": [BIG], "kind": ["BIGINT"]}
    engine.store.close()


def test_events_frame_keeps_id_cells_and_names_a_non_dict_entry():
    frame = events_frame([{"user_id": 7, "item_id": "a", "event_id": 1}, {"user_id": None, "item_id": "b"}])
    assert frame["user_id"].tolist()[0] == 7 and isinstance(frame["user_id"].tolist()[0], int)
    assert frame["event_id"].tolist() == [1, None]
    with pytest.raises(TypeError, match=r"events\[1\] is a NoneType"):
        events_frame([{"user_id": 1}, None])
    with pytest.raises(TypeError, match="got str"):
        events_frame("hello")


@pytest.mark.parametrize("bad, reason", [
    ({"user_id": [1], "item_id": 1}, "user_id [1] is a list"),
    ({"user_id": 1, "item_id": {"a": 1}}, "item_id {'a': 1} is a dict"),
    ({"user_id": True, "item_id": 1}, "user_id True is a boolean"),
])
def test_ids_that_cannot_be_ids_are_rejected_and_change_nothing(big_ids_model, bad, reason):
    engine = Engine(big_ids_model)
    before = engine.popular(3)
    event = {**bad, "event": "view", "timestamp": 5.0}
    assert check_event(event)[1].startswith(reason)
    result = engine.ingest([{"user_id": BIG, "item_id": 1, "event": "view", "timestamp": 5.0}, event])
    assert result.n_ingested == 1 and result.rejected["reason"].iloc[0].startswith(reason)
    assert engine.ingest(event).rejected["reason"].iloc[0].startswith(reason)
    # Only the good event moved the counters.
    assert engine.popular(3)["score"].sum() > before["score"].sum()
    assert engine.n_ingested_ == 1


def test_check_events_refuses_a_boolean_id_column():
    _, rejected = check_events(pd.DataFrame({"user_id": [True, False], "item_id": [1, 2], "event": ["view", "view"]}))
    assert len(rejected) == 2 and all("is a boolean" in r for r in rejected["reason"])


@pytest.mark.parametrize("events", [5, None, "hello", [{"user_id": BIG, "item_id": 1, "event": "view"}, "x"]])
def test_a_batch_that_is_not_dicts_is_refused_whole(big_ids_model, events):
    engine = Engine(big_ids_model)
    with pytest.raises(TypeError, match="event"):
        engine.ingest(events)
    assert engine.n_ingested_ == 0


@pytest.mark.parametrize("answer", [[True], "yes", np.ones((3, 1), dtype=bool), [1, 0, 1, 0, 1]])
def test_a_callable_filter_must_give_one_boolean_per_item(big_ids_model, answer):
    items = pd.DataFrame({"item_id": [1, 2, 3], "category": ["a", "b", "a"]})
    engine = Engine(big_ids_model, items=items)
    with pytest.raises(ValueError, match="one boolean per row"):
        engine.recommend(BIG, k=2, filters=lambda df: answer)
    kept = engine.recommend("someone", k=3, filters=lambda df: df["category"] == "a")["item_id"].tolist()
    assert sorted(kept) == [1, 3]


def test_items_table_rows_without_an_id_or_repeated_are_counted(big_ids_model, caplog):
    items = pd.DataFrame({"item_id": [1, np.nan, 2, 2], "category": ["a", "x", "b", "c"]})
    with caplog.at_level(logging.WARNING, logger="recapp"):
        engine = Engine(big_ids_model, items=items)
    assert "1 row(s) without an item_id dropped" in caplog.text
    assert "1 row(s) repeat an item_id" in caplog.text
    ids = engine.recommend("someone", k=3)["item_id"].tolist()
    assert all(isinstance(i, int) for i in ids)
    assert engine.recommend("someone", k=3, filters={"category": "c"})["item_id"].tolist() == [2]


@pytest.mark.parametrize("kwargs, name", [({"cache_size": -1}, "cache_size"), ({"n_explain": 0}, "n_explain")])
def test_engine_settings_are_checked(big_ids_model, kwargs, name):
    with pytest.raises(ValueError, match=name):
        Engine(big_ids_model, **kwargs)


@pytest.mark.parametrize("k", [0, -1])
def test_popular_checks_k_like_recommend(big_ids_model, k):
    engine = Engine(big_ids_model)
    with pytest.raises(ValueError, match="k"):
        engine.popular(k)
    assert len(engine.popular(2)) == 2


def test_a_repeated_csv_header_is_refused(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("user_id,item_id,timestamp,event,item_id\n1,2,3,view,4\n")
    with pytest.raises(SchemaError, match=r"duplicate column name\(s\) \['item_id'\]"):
        read_events(path)


@pytest.mark.parametrize("name, content", [("empty.csv", b""), ("latin.csv", b"user_id,item_id\n\xe9,1\n"),
                                           ("log.csv.gz", b"not gzip")])
def test_unreadable_files_are_named_in_the_error(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ValueError, match=f"cannot read {path}"):
        read_events(path)


def test_store_refuses_a_non_dict_entry_before_writing(tmp_path):
    with EventStore(tmp_path / "s.duckdb") as store:
        with pytest.raises(TypeError, match=r"events\[0\] is a int"):
            store.append([3])
        assert len(store) == 0


@pytest.mark.parametrize("kwargs, error, match", [
    ({"filters": ["category"]}, TypeError, "filters must be a dict"),
    ({"diversity": "0.5"}, ValueError, "diversity='0.5' must be a finite number"),
    ({"exposure": True}, ValueError, "exposure=True must be a finite number"),
])
def test_list_settings_of_the_wrong_type_are_named(big_ids_model, kwargs, error, match):
    engine = Engine(big_ids_model)
    with pytest.raises(error, match=match):
        engine.recommend(BIG, k=2, **kwargs)
    with pytest.raises(error, match=match):
        Engine(big_ids_model, **kwargs)


def test_engine_names_a_model_that_is_not_one():
    with pytest.raises(TypeError, match="model must be a fitted recapp recommender.*got str"):
        Engine("EASE")


@pytest.mark.parametrize("users, quoted", [([1, True, 3], "line 2: True"), ([1, [2], 3], "line 2: [2]")])
def test_validate_refuses_ids_that_cannot_be_ids(users, quoted):
    log = pd.DataFrame({"user_id": users, "item_id": [1, 2, 3], "timestamp": [1.0, 2.0, 3.0], "event": ["view"] * 3})
    with pytest.raises(SchemaError, match=f"'user_id': 1 value.s. that cannot be ids: {re.escape(quoted)}"):
        validate(log)


def test_store_time_window_reads_times_as_events_do(tmp_path):
    with EventStore(tmp_path / "s.duckdb") as store:
        store.append([{"user_id": 1, "item_id": i, "event": "view", "timestamp": f"2024-01-0{i}T00:00:00Z"}
                      for i in (1, 2, 3)])
        assert store.events(since="2024-01-02T00:00:00Z")["item_id"].tolist() == [2, 3]
        day2 = pd.Timestamp("2024-01-02", tz="UTC").timestamp()
        assert store.events(since=day2 * 1000, until=day2 + 86_400)["item_id"].tolist() == [2]
        with pytest.raises(ValueError, match="since='yesterday' is not a time; accepted: epoch seconds"):
            store.events(since="yesterday")


@pytest.mark.parametrize("column, value, what", [("timestamp", "2024-01-01", "UTC seconds"), ("rating", "five", "numbers")])
def test_fit_names_a_column_that_is_not_numbers(column, value, what):
    log = pd.DataFrame({"user_id": [1, 2], "item_id": [1, 2], "timestamp": [1.0, 2.0], "rating": [3.0, 4.0],
                        "event": ["rating"] * 2}).astype({column: object})
    log.loc[1, column] = value
    with pytest.raises(ValueError, match=f"column '{column}' must hold {what}; it holds '{value}'"):
        Popularity().fit(log)
