"""The dashboard's logic without a browser: build the app, step its clocks, read its widgets.

Pressing play is simulated by stepping ``Play.value`` as the browser's timer
would. Nothing here asserts a wall-clock time (the machine is shared); the
soak benchmark (benchmarks/dashboard_soak.py) measures the page's speed.
"""
from __future__ import annotations

import functools
import html
import re

import numpy as np
import pandas as pd
import pytest

from recapp import dashboard as dash
from recapp.dashboard.__main__ import main as dashboard_main
from recapp.dashboard.__main__ import prepare
from recapp.dashboard.live_tab import SPEEDS
from recapp.dashboard.session import FEED_ROWS
from recapp.data import synthetic_shop
from recapp.models import REGISTRY, ItemKNN, Popularity


@functools.cache
def _movielens():
    return dash.movielens_scenario()


@functools.cache
def _shop():
    return dash.shop_scenario()


DATA = {"MovieLens": lambda share: _movielens(), "Shop": lambda share: _shop()}
# Small, fast models: these tests check the app, not the models.
MODELS = {"ItemKNN": lambda sc: ItemKNN(neighbours=50), "Popularity": lambda sc: Popularity()}


class Broken:
    """A model factory whose training fails, as a corrupt or missing model would."""

    def __call__(self, scenario):
        raise RuntimeError("weights file is missing")


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="module")
def shop_log(tmp_path_factory):
    """A RetailRocket-style log (visitorid, itemid, ms timestamps, addtocart) with 3 rows lacking a shopper, and a catalogue."""
    folder = tmp_path_factory.mktemp("shoplog")
    shop = synthetic_shop(n_users=150, n_items=120, n_events=6000, random_state=3)
    ev = shop.events.rename(columns={"user_id": "visitorid", "item_id": "itemid"})
    ev["timestamp"] = (ev["timestamp"] * 1000).astype("int64")
    ev["event"] = ev["event"].replace({"cart": "addtocart", "purchase": "transaction"})
    ev = ev[["timestamp", "visitorid", "event", "itemid"]].astype({"visitorid": "float64"})
    ev.loc[ev.index[:3], "visitorid"] = np.nan
    ev.to_csv(folder / "events.csv", index=False)
    shop.items.rename(columns={"title": "name"})[["item_id", "name", "category", "price"]].to_csv(folder / "items.csv", index=False)
    return folder


def _app(root, **kwargs):
    kwargs.setdefault("data", DATA)
    kwargs.setdefault("model_factories", MODELS)
    kwargs.setdefault("default_model", "ItemKNN")
    app = dash.build_app(models_root=root, throttle=False, **kwargs)
    app.wait_for_training()
    return app


def _press_play(play, n: int) -> None:
    """Do what the browser's Play timer does: set playing, then advance the value one step at a time."""
    play.playing = True
    start = play.value
    for v in range(start + 1, start + n + 1):
        if not play.playing:
            break
        play.value = v


def _rows(html: str) -> int:
    return len(re.findall(r"<tr><td", html))


# ---- the analyst's own log ---------------------------------------------------------------------
def test_opens_the_log_named_by_the_environment(shop_log, root, monkeypatch):
    monkeypatch.setenv(dash.scenarios.EVENTS_ENV, str(shop_log / "events.csv"))
    monkeypatch.setenv(dash.scenarios.ITEMS_ENV, str(shop_log / "items.csv"))
    choices = dash.data_choices()
    assert list(choices)[0] == "Your log: events.csv"
    app = _app(root, data=choices)
    assert app.scenario.key == "log" and app.model_key == "ItemKNN"
    assert "recapp-msg problem" not in app.message.value
    info = app.data_info.value
    assert "6,000 rows read, 5,997 kept, 3 dropped" in info and "missing user or item id" in info
    assert "visitorid → user_id" in info and "(20%) are replayed" in info
    # Labels come from the catalogue: name, category and price.
    first = app.live.session.current["item_id"].iloc[0]
    items = pd.read_csv(shop_log / "items.csv").set_index("item_id")
    assert items.loc[first, "name"] in app.live.recs.value and items.loc[first, "category"] in app.live.recs.value
    before = app.live.recs.value
    _press_play(app.live.play, 25)
    assert app.live.session.n_events == 25 and app.live.recs.value != before


def test_a_log_dated_by_yyyymmdd_numbers_says_how_it_was_read(shop_log, tmp_path):
    ev = pd.read_csv(shop_log / "events.csv")
    ev["timestamp"] = pd.to_datetime(ev["timestamp"], unit="ms").dt.strftime("%Y%m%d").astype(int)   # a day per event
    ev.to_csv(tmp_path / "daily.csv", index=False)
    sc = dash.log_scenario(tmp_path / "daily.csv")
    assert any("YYYYMMDD" in note for note in sc.notes), sc.notes
    assert sc.train["timestamp"].min() > 1e9          # dates, not seconds in 1970


def test_a_day_first_log_is_read_with_the_time_format_it_is_given(shop_log, tmp_path, monkeypatch):
    ev = pd.read_csv(shop_log / "events.csv")
    days = pd.to_datetime(ev["timestamp"], unit="ms")
    # The first dates read either way (day <= 12), so the guess is month first and a later 13th does not fit.
    ev["timestamp"] = days.dt.strftime("%d/%m/%Y %H:%M:%S")
    ev = ev.iloc[np.argsort(days.dt.day.to_numpy() > 12, kind="stable")]
    ev.to_csv(tmp_path / "european.csv", index=False)
    with pytest.raises(dash.DataError, match="failed validation.*set RECAPP_TIME_FORMAT"):
        dash.log_scenario(tmp_path / "european.csv")
    monkeypatch.setenv("RECAPP_TIME_FORMAT", "%d/%m/%Y %H:%M:%S")
    sc = dash.log_scenario(tmp_path / "european.csv")
    assert any("'%d/%m/%Y %H:%M:%S', as time_format gives it" in note for note in sc.notes), sc.notes
    assert sc.train["timestamp"].min() >= days.min().floor("s").timestamp()


def test_replay_share_moves_the_split(shop_log, root):
    app = _app(root, data={"log": lambda share: dash.log_scenario(shop_log / "events.csv", None, share)})
    n20 = len(app.scenario.replay)
    app.share.value = 0.4
    assert len(app.scenario.replay) > 1.8 * n20 and "(40%) are replayed" in app.data_info.value
    assert app.job is not None, "a new split is new training data: the model trains again"
    app.wait_for_training()
    assert app.live.session is not None and app.model_key == "ItemKNN"
    # Without a catalogue an item is "item <id>".
    assert re.search(r"<td>item \d+</td>", app.live.recs.value)


def test_bad_logs_are_messages_in_the_page(tmp_path, shop_log, root):
    (tmp_path / "garbage.csv").write_text("a,b\n1,2\n")
    (tmp_path / "broken.parquet").write_bytes(b"not a parquet file")
    pd.read_csv(shop_log / "events.csv").head(30).to_csv(tmp_path / "tiny.csv", index=False)
    data = {"good": DATA["MovieLens"], "missing": lambda s: dash.log_scenario(tmp_path / "nope.csv"),
            "garbage": lambda s: dash.log_scenario(tmp_path / "garbage.csv"),
            "unreadable": lambda s: dash.log_scenario(tmp_path / "broken.parquet"),
            "tiny": lambda s: dash.log_scenario(tmp_path / "tiny.csv")}
    app = _app(root, data=data)
    expected = {"missing": "does not exist", "garbage": "missing required column(s) ['user_id'",
                "unreadable": "could not be read", "tiny": "too small to split"}
    for label, words in expected.items():
        app.data_dd.value = label
        assert "recapp-msg problem" in app.message.value and words in html.unescape(app.message.value), label
        assert "Traceback" not in app.message.value
        assert app.data_dd.value == "good" and app.scenario.key == "movielens", "the page keeps the data it had"
    _press_play(app.live.play, 3)
    assert app.live.session.n_events == 3


def test_a_log_that_fails_first_leaves_a_usable_page(tmp_path, root):
    app = _app(root, data={"missing": lambda s: dash.log_scenario(tmp_path / "nope.csv"), **DATA})
    assert "does not exist" in app.message.value and app.model is None
    _press_play(app.live.play, 2)          # nothing to play, and no exception
    app.data_dd.value = "MovieLens"
    app.wait_for_training()
    assert app.model_key == "ItemKNN" and app.live.session is not None


# ---- models ------------------------------------------------------------------------------------
def test_model_selector_offers_every_registered_model():
    catalogue = dash.ModelCatalogue(root="/nonexistent")
    assert set(catalogue.factories) == set(REGISTRY) and list(catalogue.factories)[0] == dash.DEFAULT_MODEL
    assert [k for _, k in catalogue.choices(_shop())] == list(catalogue.factories)


def test_training_runs_in_the_background_once_then_comes_from_the_cache(tmp_path):
    calls = []

    def counting(scenario):
        model = Popularity()
        fit = model.fit

        def counted_fit(*args, **kwargs):
            calls.append(scenario.key)
            return fit(*args, **kwargs)

        model.fit = counted_fit
        return model

    app = dash.build_app(data=DATA, model_factories={"Counting": counting, **MODELS}, models_root=tmp_path,
                         default_model="Counting", throttle=False)
    job = app.job
    assert job is not None and "Training Counting" in app.message.value
    app.model_dd.value = "ItemKNN"         # a second click while training: no second training
    assert app.job is job and "still training" in app.message.value and app.model_dd.value == "Counting"
    app.wait_for_training()
    assert app.job is None and app.model_key == "Counting" and "trained in" in app.message.value
    assert calls == ["movielens"]
    again = dash.build_app(data=DATA, model_factories={"Counting": counting, **MODELS}, models_root=tmp_path,
                           default_model="Counting", throttle=False)
    assert again.job is None and again.model_key == "Counting", "the second open must read the cache"
    assert calls == ["movielens"]
    cached = list((tmp_path / "dashboard").glob("movielens-*/Counting-*/config.json"))
    assert len(cached) == 1
    (cached[0].parent / "state.safetensors").write_bytes(b"garbage")   # a corrupt cache entry is retrained
    assert dash.ModelCatalogue({"Counting": counting}, tmp_path).get("Counting", _movielens()) is not None
    assert calls == ["movielens", "movielens"]


def test_background_training_reports_epochs(tmp_path):
    from recapp.models import ALS

    job = dash.TrainingJob(dash.ModelCatalogue({"ALS": lambda sc: ALS(iterations=4)}, tmp_path), "ALS", _shop())
    assert job.wait(120) and job.error is None and job.model.is_fitted
    assert job.progress == 1.0, "every epoch was reported to the page"


def test_saved_models_trained_on_this_data_are_offered(tmp_path):
    ml, shop = _movielens(), _shop()
    Popularity().fit(ml.train).save(tmp_path / "notebook02" / "pop-ml")
    Popularity().fit(shop.train).save(tmp_path / "notebook02" / "pop-shop")
    app = _app(tmp_path, default_model="Popularity")
    keys = [k for _, k in app.model_dd.options]
    assert "saved:notebook02/pop-ml" in keys and "saved:notebook02/pop-shop" not in keys
    app.model_dd.value = "saved:notebook02/pop-ml"
    assert app.job is None and app.model_key == "saved:notebook02/pop-ml"
    assert "model notebook02/pop-ml" in app.live.profile.value
    app.data_dd.value = "Shop"
    keys = [k for _, k in app.model_dd.options]
    assert "saved:notebook02/pop-shop" in keys and "saved:notebook02/pop-ml" not in keys


def test_model_that_fails_to_train_shows_a_message(root):
    app = _app(root, model_factories={**MODELS, "Broken": Broken()})
    app.model_dd.value = "Broken"
    app.wait_for_training()
    assert "Could not train Broken" in app.message.value and "weights file is missing" in app.message.value
    assert app.model_key == "ItemKNN" and app.model_dd.value == "ItemKNN"
    _press_play(app.live.play, 3)          # the previous model keeps working
    assert app.live.session.n_events == 3


def test_failed_default_model_leaves_a_usable_page(root):
    app = _app(root, model_factories={"Broken": Broken(), **MODELS}, default_model="Broken")
    assert "Could not train Broken" in app.message.value
    _press_play(app.live.play, 2)
    assert app.live.session is None
    app.model_dd.value = "Popularity"
    app.wait_for_training()
    assert app.model_key == "Popularity" and app.live.session is not None


# ---- the Live tab -------------------------------------------------------------------------------
def test_play_updates_feed_list_and_panels(root):
    app = _app(root)
    live = app.live
    live.select_user("393")
    assert live.user_id == 393 and _rows(live.recs.value) == 10
    assert "User 393" in live.profile.value and "Recent history" in live.profile.value
    before = live.recs.value
    _press_play(live.play, 30)
    s = live.session
    assert s.n_events == 30 and live.recs.value != before, "the top-10 list did not change as events arrived"
    assert _rows(live.feed.value) == FEED_ROWS and _rows(live.recs.value) == 10
    assert "because you rated" in live.recs.value
    assert re.search(r"class='(up|down|new)'", live.recs.value), "no rank change shown"
    hit = live.fig.data[0]
    assert len(hit.x) == 30 and all(0 <= y <= 1 for y in hit.y)
    assert len(live.fig.data[1].y) == 30 and min(live.fig.data[1].y) > 0   # latency panel
    assert len(live.fig.data[3].y) == 0                                      # no CTR for a replay
    assert live.fig.layout.annotations[-1].visible                            # ... and the panel says why
    assert "30 events" in live.status.value
    assert app._repr_mimebundle_()                                           # what Voilà and Jupyter display


def test_live_session_records_each_event():
    sc = _movielens()
    model = Popularity().fit(sc.train)
    s = dash.LiveSession(sc, model, 393)
    expected = sc.replay_events(393)
    rec = s.step()
    assert rec["event"]["item_id"] == expected["item_id"].iloc[0] and rec["hit"] in (True, False)
    assert rec["rejected"] is None and len(rec["recommendations"]) == 10 and s.remaining == len(expected) - 1


def test_pause_resume_speed_and_reset(root):
    app = _app(root)
    live = app.live
    live.select_user("393")
    _press_play(live.play, 5)
    live.play.playing = False
    live.play.value = 0                    # the stop button rewinds the value: not an event
    assert live.session.n_events == 5
    _press_play(live.play, 5)              # resume: the replay continues where it stopped
    assert live.session.n_events == 10
    live.speed_dd.value = SPEEDS["4x"]
    assert live.play.interval == SPEEDS["4x"]
    assert SPEEDS["1x"] <= 200             # at least 5 events per second at 1x
    live.reset()
    assert live.session.n_events == 0 and not live.play.playing and live.play.value == 0
    assert "Press" in live.feed.value and len(live.fig.data[0].x) == 0
    _press_play(live.play, 3)
    assert live.session.n_events == 3


def test_unknown_user_shows_a_message(root):
    app = _app(root)
    live = app.live
    user = live.user_id
    for typed in ("999999", "not-a-user", ""):
        live.user_box.value = typed
        assert "recapp-msg warn" in app.message.value and "Traceback" not in app.message.value
        assert live.user_id == user
    live.user_box.value = "393"
    assert live.user_id == 393 and app.message.value == ""


def test_errors_in_callbacks_become_messages(root, monkeypatch):
    app = _app(root)
    _press_play(app.live.play, 1)

    def boom(*args, **kwargs):
        raise ValueError("index out of range")

    monkeypatch.setattr(app.live.session.engine, "recommend", boom)
    _press_play(app.live.play, 1)
    assert "Something went wrong" in app.message.value and "index out of range" in app.message.value
    assert not app.live.play.playing


def test_simulated_shopper_reacts_and_has_ctr(root):
    app = _app(root)
    app.data_dd.value = "Shop"
    app.wait_for_training()
    live = app.live
    assert app.scenario.key == "shop" and live.user_id in app.scenario.users.index
    assert app.share.layout.visibility == "hidden"
    before = live.recs.value
    _press_play(live.play, 40)
    assert live.session.n_events == 40 and live.recs.value != before
    ctr = [c for c in live.fig.data[3].y if c is not None]
    assert len(live.fig.data[3].y) == 40 and ctr and all(0 <= c <= 1 for c in ctr)
    assert live.fig.layout.annotations[-1].visible is False                  # the CTR panel applies
    stream = live.session.source.stream
    assert stream.n_shown > 0 and ctr[-1] == pytest.approx(stream.click_through_rate)
    kinds = set(re.findall(r"class='badge (\w+)'", live.feed.value))
    assert kinds and kinds <= {"view", "click", "cart", "purchase"}


def test_replay_that_ends_stops_the_clock(root):
    app = _app(root)
    users = app.scenario.users
    short = users.index[users["n_replay"] == users["n_replay"].min()][0]
    app.live.select_user(str(short))
    n = int(users.loc[short, "n_replay"])
    _press_play(app.live.play, n + 2)
    assert app.live.session.n_events == n
    assert "Replay finished" in app.message.value and not app.live.play.playing


def test_clock_skips_queued_ticks_and_slows_for_a_slow_kernel():
    import ipywidgets as W

    from recapp.dashboard.clock import Clock

    clock = Clock(W, 150, throttle=True)
    clock.handler_ms = [300.0, 320.0, 310.0]
    clock._pace()
    assert clock.play.interval >= 450 and clock.slowed   # 1.5x the slow handler, so ticks never queue
    clock.handler_ms = [5.0, 5.0, 5.0]
    clock._pace()
    assert clock.play.interval == 150 and not clock.slowed
    assert clock._late() is False
    assert clock._late() is True                          # a second tick at once is a queued burst


# ---- the Stream tab ----------------------------------------------------------------------------
def test_stream_tab_streams_every_shopper(root):
    app = _app(root)
    tab = app.stream
    tab.rate_dd.value = 100
    made_with_the_page = tab.fig
    rec = tab.step(seconds=1.0)            # one second's worth at 100 events/s
    assert rec["n_events"] == 100
    assert tab.fig is not made_with_the_page, "the stream must draw into a figure built when it starts"
    rec = tab.step(seconds=0.5)
    assert rec["n_events"] == 150 and rec["events_per_s"] > 0
    assert 0 <= rec["hr_live"] <= 1 and 0 <= rec["hr_static"] <= 1
    assert 0 < rec["latency_p50_ms"] <= rec["latency_p99_ms"]
    assert len(rec["popular"]) == 10 and "Popular now" in tab.panel.value
    assert len(tab.fig.data[0].x) == 2 and "events / s" in tab.panel.value
    assert tab.session.live.stats()["events_ingested"] == 150
    assert len(tab.session.store) == 150   # every streamed event is in the store
    users = set(app.scenario.replay["user_id"].iloc[:150])
    assert len(users) > 1, "the stream mixes shoppers"
    tab.reset()
    assert tab.session is None and len(tab.fig.data[0].x) == 0


def test_stream_quarantines_bad_events_and_counts_new_shoppers():
    sc = _movielens()
    model = Popularity().fit(sc.train)
    replay = sc.replay.head(50).copy()
    replay.loc[replay.index[5], "event"] = "teleport"
    replay.loc[replay.index[7], "user_id"] = 10**6       # a shopper the model never saw
    scenario = dash.Scenario("movielens", "test", sc.train, sc.titles, sc.items, sc.users, replay=replay)
    s = dash.StreamSession(scenario, model)
    try:
        rec = s.step(100)
        assert rec["done"] and rec["n_events"] == 49
        assert rec["rejected"].sum() == 1 and "teleport" in rec["rejected"].index[0]
        assert rec["new_users"] >= 1 and 10**6 in s.new_users
        static = s.static.stats()["events_ingested"]
        assert static == 0, "the static engine never learns"
    finally:
        s.close()


def test_stream_counts_events_the_live_model_cannot_read():
    # ALS reads a rating as the confidence 1 + alpha * rating: -7 from a new shopper is below 0. The store keeps
    # the row (another model may read it); the live engine refuses it, and the tab now counts it by reason.
    from recapp.models import ALS

    sc = _movielens()
    model = ALS(binary=False, factors=4, iterations=2, verbose=False).fit(sc.train)
    replay = sc.replay.head(30).copy()
    replay.loc[replay.index[4], ["user_id", "event", "rating"]] = [10**6, "rating", -7.0]
    scenario = dash.Scenario("movielens", "test", sc.train, sc.titles, sc.items, sc.users, replay=replay)
    s = dash.StreamSession(scenario, model)
    try:
        rec = s.step(100)
        assert rec["done"] and rec["n_events"] == 30 and len(s.store) == 30
        assert rec["rejected"].to_dict() == {"ALS's live scorer cannot fold it in": 1}
        assert s.live.stats()["events_ingested"] == 29
    finally:
        s.close()


# ---- the A/B tab ---------------------------------------------------------------------------------
def test_ab_tab_shows_an_always_valid_verdict(tmp_path):
    app = _app(tmp_path)                   # a fresh model cache: the shop's models are not trained yet
    ab = app.ab
    assert ab.fig.data[1].name.startswith("A: ") and ab.fig.data[3].name.startswith("B: ")
    ab.a_dd.value, ab.b_dd.value = "Popularity", "ItemKNN"
    assert [ab.fig.data[1].name, ab.fig.data[3].name] == ["A: Popularity", "B: ItemKNN"]
    for _ in range(2):                     # each model trains on the shop in the background, then play resumes
        _press_play(ab.play, 1)
        assert app.job is not None and not ab.play.playing and ab.sim is None
        app.wait_for_training()
        assert ab.play.playing
    _press_play(ab.play, 6)
    assert len(ab.sim.history) == 6
    last = ab.sim.history[-1]
    assert last["verdict"] in (None, "A", "B")
    for arm in "AB":
        assert last[f"users_{arm}"] > 0 and last[f"low_{arm}"] <= last[f"ctr_{arm}"] <= last[f"high_{arm}"]
    band_a, line_a, band_b, line_b, seq, diff = ab.fig.data
    assert len(line_a.y) == 6 and len(band_a.x) == 12 and len(diff.y) == 6
    text = ab.summary.value
    assert "always-valid" in text and "Verdict:" in text and f"planned for {last['planned_users']:,} shoppers" in text
    ab.b_dd.value = "Popularity"           # changing a policy starts a new test (an A/A test)
    assert ab.sim is None and len(ab.fig.data[1].y) == 0
    # The legend names the arms as soon as the settings change, before any traffic.
    assert [ab.fig.data[1].name, ab.fig.data[3].name] == ["A: Popularity (A)", "B: Popularity (B)"]
    _press_play(ab.play, 2)
    assert ab.sim.names == ["Popularity (A)", "Popularity (B)"]
    ab.cuped_cb.value = True                # CUPED on the pre-period CTR
    assert ab.sim is None
    _press_play(ab.play, 3)
    assert ab.sim.cuped and "CUPED" in ab.summary.value and "variance_reduction" in ab.sim.history[-1]
    ab.cuped_cb.value = False
    ab.b_dd.value, ab.b_serve.value = "ItemKNN", "engine"   # the same model served live against hourly updates
    ab.a_dd.value = "ItemKNN"
    _press_play(ab.play, 3)
    assert ab.sim.names == ["ItemKNN", "ItemKNN, live engine"] and len(ab.sim.history) == 3
    assert ab.sim.history[-1]["impressions_B"] > 0


def test_ab_tab_interleaving_mode(root):
    app = _app(root)
    ab = app.ab
    ab.a_dd.value, ab.b_dd.value = "Popularity", "ItemKNN"
    ab.mode_tb.value = "interleaving"
    assert ab.fig.layout.annotations[0].text.startswith("lists won")
    for _ in range(4):                     # models for the shop may still need training
        _press_play(ab.play, 1)
        if app.job is not None:
            app.wait_for_training()
    _press_play(ab.play, 5)
    last = ab.sim.history[-1]
    assert type(ab.sim).__name__ == "InterleavingSimulation" and last["verdict"] in (None, "A", "B")
    assert last["impressions"] > 0 and last["wins_A"] + last["wins_B"] + last["ties"] == last["clicked"]
    assert "interleaved lists shown" in ab.summary.value and "Verdict:" in ab.summary.value
    assert list(ab.fig.data[1].y) == [h["wins_A"] for h in ab.sim.history]       # the lists A won, tick by tick
    assert list(ab.fig.data[5].y) == [h["preference"] for h in ab.sim.history]
    ab.mode_tb.value = "ab"                # switching back starts a new A/B test
    assert ab.sim is None and ab.fig.layout.annotations[0].text.startswith("CTR")


# ---- preparing and the command line ------------------------------------------------------------------
def test_prepare_caches_and_the_cli_reports_bad_data(shop_log, tmp_path, capsys):
    scenarios = prepare(shop_log / "events.csv", shop_log / "items.csv", models=("Popularity",), root=tmp_path)
    assert [s.key for s in scenarios] == ["log"]
    assert list((tmp_path / "dashboard").glob("log-*/Popularity-*/config.json"))
    assert dashboard_main(["--prepare", "--events", str(tmp_path / "nope.csv")]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_explanations_read_as_the_issue_asks():
    assert dash.display_explanation("because of Toy Story, Heat") == "because you viewed Toy Story, Heat"
    assert dash.display_explanation("popular now") == "popular now"
    assert dash.display_explanation("because of Heat", "rated") == "because you rated Heat"


# ---- one training at a time, and the selectors show what the page serves --------------------------
def _gated(gate):
    """A Popularity factory whose training waits for ``gate``, so a test knows a training is still running."""
    def factory(scenario):
        model = Popularity()
        fit = model.fit

        def gated_fit(*args, **kwargs):
            assert gate.wait(60), "the test never opened the gate"
            return fit(*args, **kwargs)

        model.fit = gated_fit
        return model
    return factory


def _text(widget) -> str:
    return html.unescape(re.sub(r"<[^>]+>", " ", widget.value))


def _training_threads() -> list:
    import threading

    return [t.name for t in threading.enumerate() if t.name.startswith("recapp-train")]


def test_ab_play_never_replaces_a_live_training(tmp_path):
    import threading

    gate = threading.Event()
    app = _app(tmp_path, model_factories={**MODELS, "Gated": _gated(gate)}, default_model="Popularity")
    try:
        app.model_dd.value = "Gated"           # the Live tab's model trains
        job = app.job
        assert job is not None and job.key == "Gated"
        ab = app.ab
        ab.a_dd.value, ab.b_dd.value = "Popularity", "ItemKNN"   # not trained on the shop yet
        for _ in range(2):
            _press_play(ab.play, 1)
            assert app.job is job, "A/B play must not replace the Live tab's training"
            assert not ab.play.playing and "Gated" in _text(app.message) and "Live" in _text(app.message)
    finally:
        gate.set()
    app.wait_for_training(60)
    assert app.job is None and app.model_key == "Gated" and app.model_dd.value == "Gated"
    assert app.live.session is not None and not ab.play.playing


def _ab_training(tmp_path):
    """An app whose A/B test has just started training the gated model A (set the gate to let it finish)."""
    import threading

    gate = threading.Event()
    app = _app(tmp_path, model_factories={**MODELS, "Gated": _gated(gate)}, default_model="Popularity")
    app.ab.a_dd.value, app.ab.b_dd.value = "Gated", "Popularity"
    _press_play(app.ab.play, 1)
    assert app.job is not None and app.job.key == "Gated"
    return app, app.ab, gate


def test_a_double_click_on_ab_play_trains_once(tmp_path):
    app, ab, gate = _ab_training(tmp_path)
    try:
        job = app.job
        _press_play(ab.play, 1)                # the second click while it trains
        assert app.job is job and _training_threads().count("recapp-train-Gated") == 1
    finally:
        gate.set()
    app.wait_for_training(60)
    assert ab.play.playing, "the A/B test resumes once its model is trained"


def test_ab_training_leaves_the_live_selectors_alone(tmp_path):
    app, ab, gate = _ab_training(tmp_path)
    try:
        assert app.model_dd.value == "Popularity" and "A/B" in _text(app.message)
        app.model_dd.value = "ItemKNN"         # the Live tab's model cannot change now: said, and the selector is put back
        assert app.model_dd.value == "Popularity" == app.model_key
        assert "A/B" in _text(app.message) and "Gated" in _text(app.message)
        app.data_dd.value = "Shop"
        assert app.data_dd.value == "MovieLens" and app.scenario.key == "movielens" and "A/B" in _text(app.message)
    finally:
        gate.set()
    app.wait_for_training(60)
    assert app.model_dd.value == "Popularity" == app.model_key, "the A/B model is never the Live tab's"
    assert "model Popularity" in app.live.profile.value
    assert "A/B" in _text(app.message) and ab.play.playing
    app.model_dd.value = "ItemKNN"             # and the Live tab's selectors work again
    app.wait_for_training(60)
    assert app.model_key == "ItemKNN"


def test_ab_reset_cancels_a_pending_resume(tmp_path):
    import threading

    gate1, gate2 = threading.Event(), threading.Event()
    app = _app(tmp_path, model_factories={**MODELS, "Gated": _gated(gate1), "Gated2": _gated(gate2)},
               default_model="Popularity")
    ab = app.ab
    ab.a_dd.value, ab.b_dd.value = "Gated", "Popularity"
    try:
        _press_play(ab.play, 1)
        ab.reset_btn.click()                   # Reset while its model trains
        ab.mode_tb.value = "interleaving"
    finally:
        gate1.set()
    app.wait_for_training(60)
    assert not ab.play.playing and ab.sim is None, "a reset test must not start when the training ends"
    ab.a_dd.value = "Gated2"
    try:
        _press_play(ab.play, 1)
        job = app.job
        ab.reset_btn.click()
        _press_play(ab.play, 1)                # play again while the same model trains: no second training
        assert app.job is job
    finally:
        gate2.set()
    app.wait_for_training(60)
    assert ab.play.playing


def test_failed_choices_put_the_selectors_back(tmp_path):
    import threading

    def offline(share):
        raise OSError("the network is unreachable")

    gate = threading.Event()
    ml = _movielens()
    Popularity().fit(ml.train).save(tmp_path / "mine")
    for f in (tmp_path / "mine").iterdir():
        if f.name != "config.json":
            f.write_bytes(b"garbage")
    app = _app(tmp_path, data={"good": DATA["MovieLens"], "offline": offline},
               model_factories={**MODELS, "Gated": _gated(gate)}, default_model="Popularity")
    for _ in range(2):                         # choosing it again shows the problem again
        app.show_message("")
        app.data_dd.value = "offline"
        assert "network is unreachable" in _text(app.message) and "lambda" not in _text(app.message)
        assert app.data_dd.value == "good" and app.scenario.key == "movielens"
    for _ in range(2):
        app.show_message("")
        app.model_dd.value = "saved:mine"      # a corrupt saved model
        assert "could not be read" in _text(app.message) and "lambda" not in _text(app.message)
        assert app.model_dd.value == "Popularity" == app.model_key
    try:
        app.model_dd.value = "Gated"
        app.share.value = 0.4                  # refused while the model trains
        assert app.share.value == pytest.approx(0.2) and "still training" in _text(app.message)
    finally:
        gate.set()
    app.wait_for_training(60)
    assert app.model_key == "Gated"


def test_a_data_switch_clears_the_live_and_stream_tabs(tmp_path):
    app = _app(tmp_path, default_model="Popularity")
    live, stream = app.live, app.stream
    _press_play(live.play, 5)
    stream.step(seconds=1.0)
    assert "5 events" in live.status.value and "Popular now" in stream.panel.value
    app.data_dd.value = "Shop"                 # Popularity is not trained on the shop yet
    assert app.job is not None
    assert live.session is None and "MovieLens" not in live.profile.value
    assert _rows(live.recs.value) == 0 and _rows(live.feed.value) == 0 and "events" not in live.status.value
    assert len(live.fig.data[0].x) == 0
    assert stream.session is None and "Popular now" not in stream.panel.value and len(stream.fig.data[0].x) == 0
    app.wait_for_training(60)
    assert live.session is not None and "synthetic shop" in live.profile.value


def test_catalogue_problems_are_counted_and_ids_match_the_log(shop_log, tmp_path):
    items = pd.read_csv(shop_log / "items.csv")
    bad = pd.concat([items, items.head(10).assign(name="DUPLICATE"), items.head(5).assign(item_id=np.nan)],
                    ignore_index=True).astype({"item_id": object})
    bad.loc[len(bad)] = ["SKU-X", "stray", "misc", 1.0]          # one id the log's integer ids can never match
    bad.to_csv(tmp_path / "items.csv", index=False)
    sc = dash.log_scenario(shop_log / "events.csv", tmp_path / "items.csv")
    logged = pd.concat([sc.train.item_id, sc.replay.item_id]).nunique()
    note = next(n for n in sc.notes if n.startswith("catalogue"))
    assert f"{len(bad):,} rows" in note and "5 without an item id" in note and "10 repeating an item id" in note
    assert "1 whose id is not a whole number" in note and "SKU-X" in note
    assert f"{logged:,} of {logged:,} logged items labelled" in note
    assert note in html.unescape(dash.views.data_report(sc))
    assert not sc.titles.str.startswith("item ").any(), "the catalogue's ids match the log's"
    assert pd.api.types.is_integer_dtype(sc.items.item_id)
    assert sc.title(int(items.item_id[0])).startswith("DUPLICATE")    # the last row of a repeated id
    # Zero-padded ids, written as text in both files, label the log's items too.
    ev = pd.read_csv(shop_log / "events.csv")
    ev["itemid"] = ev["itemid"].astype(str).str.zfill(5)
    ev.to_csv(tmp_path / "padded.csv", index=False)
    items.assign(item_id=items.item_id.astype(str).str.zfill(5)).to_csv(tmp_path / "padded_items.csv", index=False)
    sc = dash.log_scenario(tmp_path / "padded.csv", tmp_path / "padded_items.csv")
    labelled, logged = map(int, re.search(r"(\d+) of (\d+) logged items labelled", sc.notes[-1]).groups())
    assert not sc.titles.str.startswith("item ").any() and labelled == logged


def test_prepare_reports_a_model_that_cannot_train(shop_log, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RECAPP_MODELS", str(tmp_path))
    code = dashboard_main(["--prepare", "--events", str(shop_log / "events.csv"), "--models", "TfidfContent", "Popularity"])
    out = capsys.readouterr()
    assert code == 1 and "Traceback" not in out.err
    assert "error: TfidfContent on your log (events.csv): items has none of the text columns" in out.err
    assert "Popularity on your log (events.csv): ready" in out.out
    assert list((tmp_path / "dashboard").glob("log-*/Popularity-*/config.json"))
