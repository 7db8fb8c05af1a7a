"""The live dashboard: an ipywidgets app that Voilà serves from ``notebooks/dashboard.ipynb``.

An analyst opens their own event log (``$RECAPP_EVENTS``, with an optional
catalogue in ``$RECAPP_ITEMS``), MovieLens-100K or the synthetic shop, picks
any model, and watches it serve live: one shopper at a time (Live), every
shopper's events at a chosen rate (Stream), or two models in a simulated A/B
test whose verdict stays valid under continuous watching (A/B test).

The package holds one idea per file: ``scenarios`` (the data), ``choices`` (the
Data selector's entries; the analyst's log is read with the page's Date format field), ``models`` (the
model cache and background training), ``jobs`` (the page's one background job: a training or the
read of a large log, which the analyst can stop waiting for), ``sources`` and ``session`` (one shopper,
no widgets), ``operations`` (the stream, no widgets), ``views`` and ``figures``
(what is drawn), ``clock`` (the play timer) and the ``app`` with its tabs.
``python -m recapp.dashboard --prepare`` caches the default model so the page starts fast.
"""
from recapp.dashboard.app import Dashboard, build_app
from recapp.dashboard.choices import DemoChoice, LogChoice, as_choice, data_choices
from recapp.dashboard.models import DEFAULT_MODEL, ModelCatalogue, TrainingJob, models_dir
from recapp.dashboard.operations import StreamSession
from recapp.dashboard.scenarios import (
    DataError,
    Scenario,
    UnknownUserError,
    log_scenario,
    movielens_scenario,
    shop_scenario,
)
from recapp.dashboard.session import LiveSession, make_engine
from recapp.dashboard.views import display_explanation

__all__ = ["Dashboard", "build_app", "DEFAULT_MODEL", "ModelCatalogue", "TrainingJob", "models_dir", "StreamSession",
           "DataError", "Scenario", "UnknownUserError", "data_choices", "LogChoice", "DemoChoice", "as_choice", "log_scenario", "movielens_scenario",
           "shop_scenario", "LiveSession", "make_engine", "display_explanation"]
