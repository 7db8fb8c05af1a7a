"""The dashboard's logic without a browser: build the app, step its clock, read its widgets.

Pressing play is simulated by stepping ``Play.value`` as the browser's timer
would. Timings are printed (never asserted: the machine is shared).
"""
from __future__ import annotations

import functools
import re

import numpy as np
import pytest

from recapp import dashboard as dash
from recapp.models import ItemKNN, Popularity


@functools.cache
def _movielens():
    return dash.movielens_scenario()


@functools.cache
def _shop():
    return dash.shop_scenario()


SCENARIOS = {"replay": _movielens, "simulated": _shop}
# Small, fast models: these tests check the app, not the models.
MODELS = {"ItemKNN": lambda key: ItemKNN(neighbours=50), "Popularity": lambda key: Popularity()}


class Broken:
    """A model factory whose training fails, as a corrupt or missing model would."""

    def __call__(self, key):
        raise RuntimeError("weights file is missing")


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("models")


def _app(cache, **kwargs):
    kwargs.setdefault("model_factories", MODELS)
    kwargs.setdefault("default_model", "ItemKNN")
    return dash.build_app(scenario_factories=SCENARIOS, cache_dir=cache, throttle=False, **kwargs)


def _press_play(app, n: int, play=None) -> None:
    """Do what the browser's Play timer does: set playing, then advance the value one step at a time."""
    play = play or app.play
    play.playing = True
    start = play.value
    for v in range(start + 1, start + n + 1):
        play.value = v


def _rows(html: str) -> int:
    return len(re.findall(r"<tr><td", html))


def test_builds_with_a_list_and_no_message(cache):
    app = _app(cache)
    assert app.message.value == ""
    assert app.model_name == "ItemKNN"
    assert _rows(app.recs.value) == 10
    assert "User " in app.profile.value and "Recent history" in app.profile.value
    assert app.user_box.options and app.user_box.value.startswith(str(app.user_id))
    assert app._repr_mimebundle_()  # what Voilà and Jupyter display


def test_play_updates_feed_list_and_panels(cache, capsys):
    app = _app(cache)
    app.select_user("393")
    assert app.user_id == 393
    before = app.recs.value
    _press_play(app, 30)
    assert app._events == 30
    assert app.recs.value != before, "the top-10 list did not change as events arrived"
    assert _rows(app.feed.value) == dash.FEED_ROWS
    assert _rows(app.recs.value) == 10
    assert "because you rated" in app.recs.value
    assert re.search(r"class='(up|down|new)'", app.recs.value), "no rank change shown"
    hit = app.fig.data[0]
    assert len(hit.x) == 30 and all(0 <= y <= 1 for y in hit.y)
    assert len(app.fig.data[1].y) == 30 and min(app.fig.data[1].y) > 0   # latency panel
    assert len(app.fig.data[3].y) == 0                                      # no CTR for a replay
    assert "30 events" in app.status.value
    with capsys.disabled():
        print(f"\n[dashboard] replay, {type(app.engine.model).__name__}: per-tick handler median "
              f"{np.median(app.tick_ms):.1f} ms (p90 {np.percentile(app.tick_ms, 90):.1f}), "
              f"engine ingest+recommend median {np.median(app.engine_ms):.2f} ms over {len(app.tick_ms)} ticks")


def test_default_model_tick_latency(capsys):
    """The default EASE model on MovieLens (from the shared cache, as `make dashboard` leaves it)."""
    app = dash.build_app(scenario_factories=SCENARIOS, throttle=False)
    assert app.model_name == dash.DEFAULT_MODEL and app.message.value == ""
    app.select_user("393")
    _press_play(app, 40)
    assert app._events == 40
    with capsys.disabled():
        print(f"\n[dashboard] replay, EASE: per-tick handler median {np.median(app.tick_ms):.1f} ms "
              f"(p90 {np.percentile(app.tick_ms, 90):.1f}, max {max(app.tick_ms):.1f}); engine median "
              f"{np.median(app.engine_ms):.2f} ms; clock interval at 1x {dash.SPEEDS['1x']} ms")


def test_pause_resume_speed_and_reset(cache):
    app = _app(cache)
    app.select_user("393")
    _press_play(app, 5)
    app.play.playing = False               # pause: the browser stops sending ticks
    feed = app.feed.value
    assert app.feed.value == feed and app._events == 5
    _press_play(app, 5)                    # resume: the replay continues where it stopped
    assert app._events == 10
    app.speed_dd.value = dash.SPEEDS["4x"]
    assert app.play.interval == dash.SPEEDS["4x"] and app.ab_play.interval == dash.SPEEDS["4x"]
    assert dash.SPEEDS["1x"] <= 200        # at least 5 events per second at 1x
    app.speed_dd.value = dash.SPEEDS["0.5x"]
    assert app.play.interval == dash.SPEEDS["0.5x"]
    app.play.value = 0                     # the stop button rewinds the value: not an event
    assert app._events == 10
    app.reset()
    assert app._events == 0 and not app.play.playing and app.play.value == 0
    assert "Press" in app.feed.value and len(app.fig.data[0].x) == 0
    _press_play(app, 3)
    assert app._events == 3


def test_unknown_user_shows_a_message(cache):
    app = _app(cache)
    user = app.user_id
    for typed in ("999999", "not-a-user", ""):
        app.user_box.value = typed
        assert "recapp-msg" in app.message.value
        assert "Traceback" not in app.message.value
        assert app.user_id == user
    assert "Unknown user" in app.message.value or "Type a user" in app.message.value
    app.user_box.value = "393"
    assert app.user_id == 393 and app.message.value == ""


def test_model_that_fails_to_load_shows_a_message(cache):
    app = _app(cache, model_factories={**MODELS, "Broken": Broken()})
    app.model_dd.value = "Broken"
    assert "Could not load model Broken" in app.message.value
    assert "weights file is missing" in app.message.value
    assert app.model_name == "ItemKNN" and app.model_dd.value == "ItemKNN"
    _press_play(app, 3)                    # the previous model keeps working
    assert app._events == 3


def test_failed_default_model_leaves_a_usable_page(cache):
    app = _app(cache, model_factories={"Broken": Broken(), **MODELS}, default_model="Broken")
    assert "Could not load model Broken" in app.message.value
    _press_play(app, 2)                    # nothing to play, and no exception
    assert app._events == 0
    app.model_dd.value = "Popularity"
    assert app.model_name == "Popularity" and app.message.value == ""


def test_errors_in_callbacks_become_messages(cache, monkeypatch):
    app = _app(cache)
    _press_play(app, 1)

    def boom(*args, **kwargs):
        raise ValueError("index out of range")

    monkeypatch.setattr(app.engine, "recommend", boom)
    _press_play(app, 1)
    assert "Something went wrong" in app.message.value and "index out of range" in app.message.value
    assert not app.play.playing


def test_simulated_shopper_reacts_and_has_ctr(cache, capsys):
    app = _app(cache)
    app.source_tb.value = "simulated"
    assert app.source == "simulated" and app.message.value == ""
    assert app.scenario.key == "shop" and app.user_id in app.scenario.users.index
    before = app.recs.value
    _press_play(app, 40)
    assert app._events == 40 and app.recs.value != before
    ctr = [c for c in app.fig.data[3].y if c is not None]
    assert len(app.fig.data[3].y) == 40 and ctr and all(0 <= c <= 1 for c in ctr)
    sim = app.source_obj.simulator
    assert sim.n_shown > 0 and ctr[-1] == pytest.approx(sim.click_through_rate)
    kinds = set(re.findall(r"class='badge (\w+)'", app.feed.value))
    assert kinds <= {"view", "click", "cart", "purchase"} and kinds
    with capsys.disabled():
        print(f"\n[dashboard] simulated shopper, ItemKNN: per-tick handler median {np.median(app.tick_ms):.1f} ms; "
              f"CTR {sim.n_clicked_recs}/{sim.n_shown} lists")


def test_replay_that_ends_stops_the_clock(cache):
    app = _app(cache)
    users = app.scenario.users
    short = users.index[users["n_replay"] == users["n_replay"].min()][0]
    app.select_user(str(short))
    n = int(users.loc[short, "n_replay"])
    _press_play(app, n + 2)
    assert app._events == n
    assert "Replay finished" in app.message.value and not app.play.playing


def test_ab_tab_runs_two_policies_with_bands(cache, capsys):
    app = _app(cache)
    app.ab_a.value, app.ab_b.value = "Popularity", "ItemKNN"
    _press_play(app, 6, app.ab_play)
    assert len(app.ab.history) == 6
    band_a, line_a, band_b, line_b = app.ab_fig.data
    assert len(line_a.y) == 6 and len(band_a.x) == 12 and len(line_b.y) == 6
    last = app.ab.history[-1]
    for arm in "AB":
        assert last[f"users_{arm}"] > 0 and last[f"low_{arm}"] <= last[f"ctr_{arm}"] <= last[f"high_{arm}"]
    assert "CTR" in app.ab_summary.value and "95% CI" in app.ab_summary.value
    with capsys.disabled():
        print(f"\n[dashboard] A/B tick (one simulated step, two policies): median {np.median(app.ab_ms):.0f} ms")
    app.ab_b.value = "Popularity"          # changing a policy starts a new test
    assert app.ab is None and len(app.ab_fig.data[1].y) == 0


def test_backpressure_slows_a_clock_the_kernel_cannot_follow(cache):
    app = _app(cache)
    app.throttle = True
    app._pace(app.play, [300.0, 320.0, 310.0])
    assert app.play.interval >= 450        # 1.5x the slow handler, so ticks never queue
    app._pace(app.play, [5.0, 5.0, 5.0])
    assert app.play.interval == dash.SPEEDS["1x"]
    assert app._late(app.play, "test") is False
    assert app._late(app.play, "test") is True   # a second tick at once is a queued burst


def test_prepare_caches_the_model(tmp_path):
    calls = []

    def counting(key):
        calls.append(key)
        return Popularity()

    sc = _shop()
    m1 = dash.load_model("Popularity", sc, tmp_path, {"Popularity": counting})
    m2 = dash.load_model("Popularity", sc, tmp_path, {"Popularity": counting})
    assert calls == ["shop"], "the second start must read the cache, not train again"
    assert (tmp_path / sc.fingerprint / "Popularity" / "config.json").exists()
    assert m1.recommend([0], k=5)["item_id"].tolist() == m2.recommend([0], k=5)["item_id"].tolist()
    (tmp_path / sc.fingerprint / "Popularity" / "state.safetensors").write_bytes(b"garbage")
    dash.load_model("Popularity", sc, tmp_path, {"Popularity": counting})  # a corrupt cache is retrained
    assert calls == ["shop", "shop"]
    with pytest.raises(KeyError, match="unknown model"):
        dash.load_model("Nope", sc, tmp_path, {"Popularity": counting})


def test_explanations_read_as_the_issue_asks():
    assert dash.display_explanation("because of Toy Story, Heat") == "because you viewed Toy Story, Heat"
    assert dash.display_explanation("popular now") == "popular now"
    assert dash.display_explanation("because of Heat", "rated") == "because you rated Heat"
