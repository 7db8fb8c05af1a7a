"""What an analyst can do wrong in the dashboard becomes a message or a clear error, never a dead control.

Driven in-process like tests/test_dashboard.py: widgets are set as the browser would set them.
"""
from __future__ import annotations

import html

import pytest

from recapp import dashboard as dash
from recapp.data import synthetic_shop
from recapp.models import Popularity

MODELS = {"Popularity": lambda sc: Popularity()}


def _broken(scenario):
    raise RuntimeError("weights file is missing")


@pytest.fixture
def log(tmp_path):
    """A small shop log with integer ids, written as CSV."""
    shop = synthetic_shop(n_users=60, n_items=50, n_events=1500, random_state=3)
    path = tmp_path / "events.csv"
    shop.events.to_csv(path, index=False)
    return path


def _text(app) -> str:
    return html.unescape(app.message.value)


def _tick(play) -> None:
    # One tick of the browser's Play timer.
    play.playing = True
    play.value = play.value + 1


def test_typing_a_user_before_any_data_is_open_says_so(tmp_path):
    app = dash.build_app(data={"missing": lambda s: dash.log_scenario(tmp_path / "nope.csv")},
                         model_factories=MODELS, models_root=tmp_path / "models", throttle=False)
    assert "does not exist" in _text(app)
    app.live.user_box.value = "36"
    assert "recapp-msg warn" in app.message.value and "No data is open" in _text(app)
    assert "NoneType" not in _text(app) and app.live.user_id is None


def test_play_with_nothing_to_play_says_why(tmp_path, log):
    app = dash.build_app(data={"missing": lambda s: dash.log_scenario(tmp_path / "nope.csv")},
                         model_factories=MODELS, models_root=tmp_path / "models", throttle=False)
    _tick(app.live.play)
    assert "No data is open" in _text(app) and not app.live.play.playing
    _tick(app.stream.clock.play)
    assert "No data is open" in _text(app) and not app.stream.clock.play.playing

    app = dash.build_app(data={"log": lambda s: dash.log_scenario(log, None, s)},
                         model_factories={"Broken": _broken, **MODELS}, models_root=tmp_path / "models",
                         default_model="Broken", throttle=False)
    app.wait_for_training()
    assert "Could not train Broken" in _text(app) and app.model is None
    _tick(app.live.play)
    assert "No model is served on this data" in _text(app) and not app.live.play.playing
    _tick(app.stream.clock.play)
    assert "No model is served on this data" in _text(app) and app.stream.session is None
    app.model_dd.value = "Popularity"
    app.wait_for_training()
    _tick(app.live.play)
    assert app.live.session.n_events == 1, "the page stays usable once a model is served"


def test_empty_selectors_and_an_unknown_default_model_are_refused(tmp_path, log):
    data = {"log": lambda s: dash.log_scenario(log, None, s)}
    root = tmp_path / "models"
    with pytest.raises(ValueError, match="model_factories is empty"):
        dash.build_app(data=data, model_factories={}, models_root=root, throttle=False)
    with pytest.raises(ValueError, match="data is empty"):
        dash.build_app(data={}, model_factories=MODELS, models_root=root, throttle=False)
    with pytest.raises(ValueError, match=r"default_model 'Nope' is not among the models offered: \['Popularity'\]"):
        dash.build_app(data=data, model_factories=MODELS, models_root=root, default_model="Nope", throttle=False)
    # Without a default, DEFAULT_MODEL is not offered here: the first model is served, as before.
    app = dash.build_app(data=data, model_factories=MODELS, models_root=root, throttle=False)
    app.wait_for_training()
    assert app.model_key == "Popularity" and app.live.session is not None


def test_typed_integer_ids_are_read_by_the_log_readers_rule(log):
    sc = dash.log_scenario(log)
    user = int(sc.users.index[0])
    assert sc.parse_user(str(user)) == user and sc.parse_user(sc.user_label(user)) == user
    for typed in (f"00{user}", f"+{user}", f"{user // 10}_{user % 10}" if user >= 10 else f"0{user}"):
        with pytest.raises(dash.UnknownUserError, match="whole numbers written without leading zeros"):
            sc.parse_user(typed)


def test_a_folder_given_as_a_file_is_named_as_a_folder(tmp_path, log):
    with pytest.raises(dash.DataError, match="is a folder, not a file"):
        dash.log_scenario(tmp_path)
    with pytest.raises(dash.DataError, match="items file .* is a folder, not a file"):
        dash.log_scenario(log, items=tmp_path)


def test_cuped_box_is_disabled_where_it_does_not_apply(tmp_path, log):
    app = dash.build_app(data={"log": lambda s: dash.log_scenario(log, None, s)}, model_factories=MODELS,
                         models_root=tmp_path / "models", throttle=False)
    ab = app.ab
    assert not ab.cuped_cb.disabled
    ab.cuped_cb.value = True
    ab.mode_tb.value = "interleaving"
    assert ab.cuped_cb.disabled, "interleaving ignores CUPED: the box must not look live"
    ab.mode_tb.value = "ab"
    assert not ab.cuped_cb.disabled and ab.cuped_cb.value


def test_a_long_user_list_is_capped_and_says_so(tmp_path, log, monkeypatch):
    from recapp.dashboard import views

    monkeypatch.setattr(views, "USER_OPTIONS", 5, raising=False)
    app = dash.build_app(data={"log": lambda s: dash.log_scenario(log, None, s)}, model_factories=MODELS,
                         models_root=tmp_path / "models", throttle=False)
    app.wait_for_training()
    users = app.scenario.users
    assert len(users) > 5 and len(app.live.user_box.options) == 5
    assert f"first 5 of {len(users):,} users" in app.data_info.value
    last = users.index[-1]
    app.live.user_box.value = str(last)      # a user not in the list can still be typed
    assert app.live.user_id == last and app.live.session is not None
