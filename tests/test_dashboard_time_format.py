"""The Date format field beside the Data selector: the analyst's log is read with the format typed there.

Widget-level, no browser: the app is built as in tests/test_dashboard.py and the
field is set as a browser would set it (``continuous_update=False``: on Enter or blur).
"""
from __future__ import annotations

import html

import numpy as np
import pandas as pd
import pytest

from recapp import dashboard as dash
from recapp.models import Popularity

MODELS = {"Popularity": lambda sc: Popularity()}
FEB_2024 = (pd.Timestamp("2024-02-01", tz="UTC").timestamp(), pd.Timestamp("2024-03-01", tz="UTC").timestamp())


@pytest.fixture(autouse=True)
def no_format_from_the_environment(monkeypatch):
    monkeypatch.delenv(dash.scenarios.TIME_FORMAT_ENV, raising=False)


@pytest.fixture
def day_first_log(tmp_path):
    """Five events a day through February 2024, dated day first (01/02/2024 ... 28/02/2024).

    The first dates read either way, so a guess reads them month first and the 13th does not fit.
    """
    days = np.repeat(np.arange(1, 29), 5)
    log = pd.DataFrame({"user_id": np.arange(len(days)) % 12, "item_id": np.arange(len(days)) % 25,
                        "timestamp": [f"{d:02d}/02/2024" for d in days], "event": "view"})
    path = tmp_path / "dayfirst.csv"
    log.to_csv(path, index=False)
    return path


def _app(tmp_path, events, **kwargs):
    app = dash.build_app(data=dash.data_choices(events=str(events)), model_factories=MODELS, models_root=tmp_path / "models",
                         default_model="Popularity", throttle=False, **kwargs)
    app.wait_for_training()
    return app


def _in_february(scenario) -> bool:
    times = pd.concat([scenario.train["timestamp"], scenario.replay["timestamp"]])
    return bool(times.min() >= FEB_2024[0] and times.max() < FEB_2024[1])


def _problem(app) -> str:
    assert "recapp-msg problem" in app.message.value, app.message.value
    text = html.unescape(app.message.value)
    assert "Traceback" not in text
    return text


def test_the_field_reads_a_day_first_log(tmp_path, day_first_log):
    app = _app(tmp_path, day_first_log)
    # Empty (no $RECAPP_TIME_FORMAT): the guess reads 01/02 month first and the 13th does not fit.
    assert app.time_format.value == "" and app.time_format.layout.display != "none"
    assert app.scenario is None and "unparseable" in _problem(app) and "Date format field" in _problem(app)
    app.time_format.value = "%d/%m/%Y"
    app.data_dd.value = "Your log: dayfirst.csv"
    app.wait_for_training()
    assert app.scenario.key == "log" and _in_february(app.scenario) and app.model_key == "Popularity"
    assert "recapp-msg problem" not in app.message.value
    assert "'%d/%m/%Y', as time_format gives it" in html.unescape(app.data_info.value)   # the panel names it


def test_a_format_that_does_not_fit_keeps_the_data_in_use(tmp_path, day_first_log):
    app = _app(tmp_path, day_first_log, time_format="%d/%m/%Y")
    scenario, model = app.scenario, app.model
    assert _in_february(scenario)
    app.time_format.value = "%m/%d/%Y"
    text = _problem(app)
    assert "unparseable timestamp" in text and "'13/02/2024'" in text and "'%m/%d/%Y'" in text
    assert "Date format field" in text
    assert app.scenario is scenario and app.model is model and app.live.session is not None
    assert app.time_format.value == "%d/%m/%Y", "the field goes back to the format in use"
    assert app.data_dd.value == "Your log: dayfirst.csv"


@pytest.mark.parametrize("bad, words", [("%d/%m", "must be a strptime format with a year"), ("%d/%m/%Y %Q", "is not a strptime format")])
def test_a_malformed_format_is_a_message(tmp_path, day_first_log, bad, words):
    app = _app(tmp_path, day_first_log, time_format="%d/%m/%Y")
    scenario = app.scenario
    app.time_format.value = bad
    text = _problem(app)
    assert words in text and repr(bad) in text
    assert app.scenario is scenario and app.time_format.value == "%d/%m/%Y"


def test_an_empty_field_uses_the_environment(tmp_path, day_first_log, monkeypatch):
    monkeypatch.setenv(dash.scenarios.TIME_FORMAT_ENV, "%d/%m/%Y")
    app = _app(tmp_path, day_first_log)
    assert app.time_format.value == "%d/%m/%Y", "prefilled from $RECAPP_TIME_FORMAT"
    assert app.scenario is not None and _in_february(app.scenario)
    app.time_format.value = ""
    assert "recapp-msg problem" not in app.message.value, app.message.value
    assert app.scenario is not None and _in_february(app.scenario)


def test_a_guessed_format_is_named_in_the_data_info(tmp_path):
    # Day first from the 13th: the guess can only read it day first.
    days = np.repeat(np.arange(13, 29), 5)
    log = pd.DataFrame({"user_id": np.arange(len(days)) % 9, "item_id": np.arange(len(days)) % 17,
                        "timestamp": [f"{d:02d}/02/2024" for d in days], "event": "view"})
    log.to_csv(tmp_path / "late.csv", index=False)
    app = _app(tmp_path, tmp_path / "late.csv")
    assert _in_february(app.scenario)
    assert "guessed from the first such text" in html.unescape(app.data_info.value) and "%d/%m/%Y" in app.data_info.value


def test_a_format_the_log_does_not_need_is_said(tmp_path, day_first_log):
    iso = pd.read_csv(day_first_log)
    iso["timestamp"] = pd.to_datetime(iso["timestamp"], format="%d/%m/%Y").dt.strftime("%Y-%m-%d")
    iso.to_csv(tmp_path / "iso.csv", index=False)
    app = _app(tmp_path, tmp_path / "iso.csv", time_format="%d/%m/%Y")
    assert _in_february(app.scenario)
    assert "date format '%d/%m/%Y' not needed" in html.unescape(app.data_info.value)


def test_the_field_waits_for_the_log_while_other_data_is_in_use(tmp_path, day_first_log):
    app = _app(tmp_path, day_first_log)          # the log fails (guessed month first)
    movielens = [label for label in app.data_factories if label.startswith("MovieLens")][0]
    app.data_factories[movielens] = lambda share: dash.shop_scenario(n_users=40, n_items=30, n_events=800)
    app.data_dd.value = movielens
    app.wait_for_training()
    assert app.scenario.key == "shop"
    app.time_format.value = "%d/%m/%Y"
    assert app.scenario.key == "shop" and "used when Your log: dayfirst.csv is opened" in app.message.value
    app.data_dd.value = "Your log: dayfirst.csv"
    app.wait_for_training()
    assert app.scenario.key == "log" and _in_february(app.scenario)
