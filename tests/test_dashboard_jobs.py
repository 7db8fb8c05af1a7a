"""The page's one background job: a large log is read on it, a hung job can be abandoned, fallbacks are said.

Driven in-process like tests/test_dashboard.py: widgets are set as the browser
would set them, and ``wait_for_training`` does what the poll clock does there.
A gate (a threading.Event) holds a read or a fit for as long as a test needs.
"""
from __future__ import annotations

import html
import threading

import pytest

from recapp import dashboard as dash
from recapp.dashboard import choices, jobs
from recapp.data import synthetic_shop
from recapp.models import Popularity

SHOP = "Shop"


def _small_shop(share=None):
    return dash.shop_scenario(n_users=40, n_items=30, n_events=800)


@pytest.fixture
def gate():
    """Holds a gated read or fit until set; set on teardown, so no thread outlives the test."""
    event = threading.Event()
    yield event
    event.set()


@pytest.fixture
def log(tmp_path):
    """A small shop log with integer ids, written as CSV."""
    path = tmp_path / "events.csv"
    synthetic_shop(n_users=60, n_items=50, n_events=1500, random_state=3).events.to_csv(path, index=False)
    return path


def _gated_log(path, gate):
    class GatedLog(dash.LogChoice):
        def __call__(self, replay_share, time_format=None):
            assert gate.wait(60), "the test never opened the gate"
            return super().__call__(replay_share, time_format)
    return GatedLog(str(path))


def _gated_model(gate):
    class Gated(Popularity, listed=False):     # a test double: kept out of the registry of models
        def _fit(self, inter):
            assert gate.wait(60), "the test never opened the gate"
            super()._fit(inter)
    return Gated()


def _text(app) -> str:
    text = html.unescape(app.message.value)
    assert "Traceback" not in text
    return text


def _popularity_app(data: dict, tmp_path):
    """The page over ``data`` serving Popularity, its model cache under ``tmp_path``."""
    return dash.build_app(data=data, model_factories={"Popularity": lambda sc: Popularity()},
                          models_root=tmp_path / "models", throttle=False)


def _background_reads(monkeypatch):
    # Every log counts as large, so the small test logs take the background path.
    monkeypatch.setattr(choices, "BACKGROUND_BYTES", 0, raising=False)


def test_a_large_log_is_read_on_the_background_job(tmp_path, log, gate, monkeypatch):
    _background_reads(monkeypatch)
    data = {"Your log": _gated_log(log, gate), SHOP: _small_shop}
    app = _popularity_app(data, tmp_path)
    # build_app returned while the read is held: the page was never frozen by it.
    assert app.job is not None and app.job.purpose == jobs.DATA and app.scenario is None
    assert "Reading Your log" in _text(app) and app.stop_wait.layout.display != "none"
    app.data_dd.value = SHOP                     # one job at a time: refused, and the selector goes back
    assert "Your log is still being read" in _text(app) and "so far" in _text(app)
    assert app.data_dd.value == "Your log" and app.job.purpose == jobs.DATA
    assert "still being read" in app.not_ready()
    gate.set()
    app.wait_for_training(60)                    # the read, then the training of the model it serves
    assert app.job is None and app.scenario.key == "log" and app.model_key == "Popularity"
    assert app.live.session is not None and app.stop_wait.layout.display == "none"


def test_a_small_log_is_still_read_at_once(tmp_path, log):
    app = dash.build_app(data={"Your log": dash.LogChoice(str(log))},
                         model_factories={"Popularity": lambda sc: Popularity()},
                         models_root=tmp_path / "models", throttle=False)
    assert app.scenario is not None and app.scenario.key == "log", "under BACKGROUND_BYTES the read is not deferred"


def test_a_background_read_that_fails_keeps_the_data_in_use(tmp_path, monkeypatch):
    _background_reads(monkeypatch)
    bad = tmp_path / "bad.csv"
    bad.write_text("user_id,item_id,timestamp\n1,2,13/02/2024\n1,3,14/02/2024\n")
    data = {SHOP: _small_shop, "Your log": dash.LogChoice(str(bad))}
    app = _popularity_app(data, tmp_path)
    app.wait_for_training(60)
    shop = app.scenario
    app.data_dd.value = "Your log"
    assert app.job is not None and app.job.purpose == jobs.DATA
    app.wait_for_training(60)
    assert app.job is None and "recapp-msg problem" in app.message.value and "bad.csv" in _text(app)
    assert app.scenario is shop and app.data_dd.value == SHOP, "the selector goes back to the data in use"


def test_a_hung_training_can_be_abandoned_and_its_late_result_is_dropped(tmp_path, gate):
    factories = {"Gated": lambda sc: _gated_model(gate), "Popularity": lambda sc: Popularity()}
    app = dash.build_app(data={SHOP: _small_shop}, model_factories=factories, models_root=tmp_path / "models",
                         default_model="Gated", throttle=False)
    hung = app.job
    assert hung is not None and hung.key == "Gated" and not hung.wait(0.2)
    app.model_dd.value = "Popularity"
    assert "Gated is still training" in _text(app) and "so far" in _text(app) and "Stop waiting" in _text(app)
    assert app.job is hung and app.model_dd.value == "Gated"
    app.stop_wait.click()
    assert app.job is None and hung.abandoned and not hung.finished
    assert "Stopped waiting for Gated" in _text(app) and "will not be used" in _text(app)
    assert app.stop_wait.layout.display == "none" and app.progress.layout.visibility == "hidden"
    app.model_dd.value = "Popularity"            # no longer refused
    app.wait_for_training(60)
    assert app.model_key == "Popularity" and app.live.session is not None
    gate.set()
    assert hung.wait(60) and hung.error is None
    app.wait_for_training(1)
    app._poll_training()                         # a poll tick after the late end
    assert app.model_key == "Popularity" and app.model_dd.value == "Popularity", "the late model is not swapped in"


def test_an_abandoned_read_keeps_the_data_in_use(tmp_path, log, gate, monkeypatch):
    _background_reads(monkeypatch)
    data = {SHOP: _small_shop, "Your log": _gated_log(log, gate)}
    app = _popularity_app(data, tmp_path)
    app.wait_for_training(60)
    shop, model = app.scenario, app.model
    app.data_dd.value = "Your log"
    reading = app.job
    assert reading is not None and reading.purpose == jobs.DATA
    app.abandon_job()
    assert app.job is None and app.data_dd.value == SHOP and "Stopped waiting for reading Your log" in _text(app)
    gate.set()
    assert reading.wait(60)
    app.wait_for_training(1)
    assert app.scenario is shop and app.model is model, "the late read is not swapped in"


def test_durations_are_said_in_minutes_and_hours():
    assert [jobs.duration(s) for s in (4.7, 125, 7260)] == ["4 s", "2 min 05 s", "2 h 01 min"]


def test_a_saved_default_that_is_not_offered_is_said(tmp_path):
    root = tmp_path / "models"
    for attempt in ("trained", "cached"):
        app = dash.build_app(data={SHOP: _small_shop}, model_factories={"Popularity": lambda sc: Popularity()},
                             models_root=root, default_model="saved:mine/pop", throttle=False)
        app.wait_for_training(60)
        assert app.model_key == "Popularity", "which model is served does not change"
        text = _text(app)
        assert "recapp-msg warn" in app.message.value, (attempt, text)
        assert "No saved model 'mine/pop' was trained on Shop: Popularity is served instead" in text, (attempt, text)


def test_a_saved_model_of_other_data_is_said_when_the_data_changes(tmp_path):
    root = tmp_path / "models"
    Popularity().fit(_small_shop().train).save(root / "mine" / "pop")
    other = lambda share: dash.shop_scenario(n_users=50, n_items=35, n_events=900)   # noqa: E731
    app = dash.build_app(data={SHOP: _small_shop, "Other shop": other},
                         model_factories={"Popularity": lambda sc: Popularity()},
                         models_root=root, default_model="saved:mine/pop", throttle=False)
    assert app.model_key == "saved:mine/pop" and "recapp-msg" not in app.message.value
    app.data_dd.value = "Other shop"
    app.wait_for_training(60)
    assert app.model_key == "Popularity"
    assert "No saved model 'mine/pop' was trained on Other shop: Popularity is served instead" in _text(app)


def test_a_factory_that_returns_no_model_is_named(tmp_path):
    factories = {"Popularity": lambda sc: Popularity(), "Empty": lambda sc: None}
    app = dash.build_app(data={SHOP: _small_shop}, model_factories=factories, models_root=tmp_path / "models",
                         default_model="Popularity", throttle=False)
    app.wait_for_training(60)
    app.model_dd.value = "Empty"
    app.wait_for_training(60)
    text = _text(app)
    assert "recapp-msg problem" in app.message.value and "Could not train Empty" in text
    assert "the factory of model 'Empty' returned NoneType" in text and "not a recapp model" in text
    assert app.model_key == "Popularity" and app.model_dd.value == "Popularity"


def test_the_date_format_waits_for_a_read_under_way(tmp_path, log, gate, monkeypatch):
    _background_reads(monkeypatch)
    data = {SHOP: _small_shop, "Your log": _gated_log(log, gate)}
    app = _popularity_app(data, tmp_path)
    app.wait_for_training(60)
    app.data_dd.value = "Your log"
    app.time_format.value = "%d/%m/%Y"
    assert "Your log is still being read" in _text(app)
    assert app.time_format.value == "", "the field shows the format the log is being read with"
    gate.set()
    app.wait_for_training(60)
    assert app.scenario.key == "log" and app.time_format.value == ""
