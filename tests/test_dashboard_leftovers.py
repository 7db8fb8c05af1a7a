"""States of the dashboard that used to leave the analyst guessing: cold replays, a first read, swaps and ends.

Driven in-process like tests/test_dashboard.py: widgets are set as the browser
would set them, and ``wait_for_training`` does what the poll clock does there.
"""
from __future__ import annotations

import html
import threading

import numpy as np
import pandas as pd
import pytest

from recapp import dashboard as dash
from recapp.dashboard import choices, jobs, views
from recapp.data import synthetic_shop
from recapp.models import ItemKNN, Popularity

MODELS = {"Popularity": lambda sc: Popularity()}


def _text(value: str) -> str:
    return html.unescape(value)


@pytest.fixture
def log(tmp_path):
    """A small shop log whose shoppers come back (events on both sides of the time split)."""
    path = tmp_path / "events.csv"
    synthetic_shop(n_users=60, n_items=50, n_events=1500, random_state=3).events.to_csv(path, index=False)
    return path


@pytest.fixture
def one_event_log(tmp_path):
    """400 shoppers with one view each, one a minute: every replayed shopper is after the training cut."""
    rng = np.random.default_rng(0)
    n = 400
    path = tmp_path / "one.csv"
    pd.DataFrame({"user_id": np.arange(n), "item_id": rng.integers(0, 30, n),
                  "timestamp": 1_700_000_000 + 60 * np.arange(n), "event": "view"}).to_csv(path, index=False)
    return path


def _app(tmp_path, data, models=MODELS, **kwargs):
    app = dash.build_app(data=data, model_factories=models, models_root=tmp_path / "models", throttle=False, **kwargs)
    app.wait_for_training(60)
    return app


# ---- 1. cold replayed shoppers are said in the data report ----------------------------------------
def test_a_replay_of_unknown_shoppers_is_warned_in_the_data_report(tmp_path, one_event_log):
    sc = dash.log_scenario(one_event_log)
    assert sc.replay_coverage()["users"] == (0, 80)
    app = _app(tmp_path, {"log": lambda s: dash.log_scenario(one_event_log, None, s)})
    info = _text(app.data_info.value)
    assert "the training split knows 0 of 80 (0%) replayed shoppers" in info
    assert "recapp-msg warn" in app.data_info.value
    assert "80 of 80 (100%) replayed shoppers have no events before the time split" in info
    assert "Live and Stream tabs serve them popular items" in info
    assert "items with no events" not in info, "the items are known: only the shoppers are warned about"


def test_a_replay_of_known_shoppers_is_counted_without_a_warning(log):
    sc = dash.log_scenario(log)
    (users, n_users), (events, n_events) = sc.replay_coverage()["users"], sc.replay_coverage()["events"]
    assert n_users == sc.replay["user_id"].nunique() and n_events == len(sc.replay)
    assert users == int(pd.Series(sc.replay["user_id"].unique()).isin(sc.train["user_id"]).sum())
    assert users * 2 > n_users and events * 2 > n_events
    report = views.data_report(sc)
    assert f"knows {users:,} of {n_users:,}" in _text(report) and "recapp-msg" not in report
    assert views.data_report(dash.shop_scenario(n_users=40, n_items=30, n_events=800)).count("recapp-msg") == 0


def test_a_replay_of_unknown_items_is_warned(tmp_path):
    # 30 shoppers on both sides of the split; the replayed part is all items the past never had.
    rows = [(u, (100 if t >= 8 else 0) + (u + t) % 20, 1_700_000_000 + 3600 * t + u) for t in range(10) for u in range(30)]
    path = tmp_path / "new_items.csv"
    pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"]).assign(event="view").to_csv(path, index=False)
    sc = dash.log_scenario(path)
    assert sc.replay_coverage() == {"users": (30, 30), "events": (0, 60)}
    text = _text(views.data_report(sc))
    assert "60 of 60 (100%) replayed events are of items with no events before the time split" in text
    assert "replayed shoppers have no events" not in text


# ---- 2. a user typed while the first log is read ----------------------------------------------------
def test_typing_a_user_while_the_first_log_is_read_says_it_is_being_read(tmp_path, log, monkeypatch):
    monkeypatch.setattr(choices, "BACKGROUND_BYTES", 0, raising=False)
    gate = threading.Event()

    class GatedLog(dash.LogChoice):
        def __call__(self, replay_share, time_format=None):
            assert gate.wait(60), "the test never opened the gate"
            return super().__call__(replay_share, time_format)

    try:
        app = dash.build_app(data={"Your log": GatedLog(str(log))}, model_factories=MODELS,
                             models_root=tmp_path / "models", throttle=False)
        assert app.scenario is None and app.job is not None and app.job.purpose == jobs.DATA
        app.live.user_box.value = "36"
        text = _text(app.message.value)
        assert "recapp-msg warn" in app.message.value
        assert "Your log is still being read" in text and "pick a user when it is open" in text
        assert "No data is open" not in text
    finally:
        gate.set()
    app.wait_for_training(60)
    uid = app.scenario.user_ids()[1]
    app.live.select_user(str(uid))
    assert app.live.user_id == uid


# ---- 3. durations worded alike ------------------------------------------------------------------------
def test_the_training_message_words_durations_as_the_page_does():
    text = views.training("ItemKNN", 3605, None)
    assert jobs.duration(3605) == "1 h 00 min" and "1 h 00 min" in text and "3605" not in text
    assert "2 min 05 s, 40% of its epochs" in views.training("ALS", 125.4, 0.4)


# ---- 4. swaps and ends that used to be silent ---------------------------------------------------------
def test_a_model_swap_mid_stream_says_what_was_dropped(tmp_path, log):
    models = {"Popularity": lambda sc: Popularity(), "ItemKNN": lambda sc: ItemKNN(neighbours=20)}
    app = _app(tmp_path, {"log": lambda s: dash.log_scenario(log, None, s)}, models, default_model="Popularity")
    app.stream.rate_dd.value = 100
    app.stream.step(seconds=0.5)
    for _ in range(3):
        app.live.step()
    app.model_dd.value = "ItemKNN"
    app.wait_for_training(60)
    assert app.model_key == "ItemKNN" and app.stream.session is None
    panel = _text(app.stream.panel.value)
    assert "Model ItemKNN is served now" in panel and "stream of 50 events with the previous model was dropped" in panel
    status = _text(app.live.status.value)
    assert "started again with model ItemKNN (3 events played with the previous one)" in status
    assert "· 0 events" in status
    app.live.step()
    assert "started again" not in _text(app.live.status.value), "the note leads only the restarted list"


def test_a_finished_stream_counts_every_held_out_event_and_the_rejected(tmp_path, log):
    base = dash.log_scenario(log)
    replay = base.replay.head(40).copy()
    replay.loc[replay.index[5], "event"] = "teleport"
    sc = dash.Scenario("log", "test", base.train, base.titles, base.items, base.users, replay=replay)
    app = _app(tmp_path, {"test": lambda s: sc})
    rec = app.stream.step(seconds=1.0)
    assert rec["done"] and rec["n_events"] == 39
    text = _text(app.message.value)
    assert "all 40 held-out events replayed, 1 of them rejected (see Rejected events)" in text
    assert not app.stream.clock.play.playing


def test_a_shopper_without_held_out_events_is_told_on_play(tmp_path, log):
    base = dash.log_scenario(log)
    replay = base.replay.head(40)
    sc = dash.Scenario("log", "test", base.train, base.titles, base.items, base.users, replay=replay)
    app = _app(tmp_path, {"test": lambda s: sc})
    idle = next(u for u in sc.users.index if u not in set(replay["user_id"]))
    app.live.select_user(str(idle))
    app.show_message("")
    assert app.live.step() is None
    text = _text(app.message.value)
    assert f"User {idle} has no events in the replay window" in text and "Replay finished" not in text
