"""The dashboard app: the Data and Model selectors, messages and model training; the tabs do the rest.

Every widget callback goes through :meth:`Dashboard.guarded`, so a failure
shows as a message in the page, never as a traceback. A model that is not
cached trains on a background thread while a poll clock updates the progress
bar, so the page stays responsive and a second click never starts a second training.
A log large enough to freeze the page (:data:`~recapp.dashboard.choices.BACKGROUND_BYTES`)
is read on the same background job. A job can hang (a fit that never returns)
and threads cannot be stopped safely: Stop waiting abandons it, its late result
is never used, and the selectors go back to what the page uses (the job machinery is
:class:`~recapp.dashboard.jobs.JobControl`).
One model trains at a time for the whole page: the Live tab's (whose key the
Model selector shows) or the A/B test's (which never touches the Live tab's
selectors); a request while the other trains is refused with a message saying
which model is training and for what. A selector whose choice fails or is
refused is put back to what the page uses. The analyst's log is opened with
the Date format field beside the Data selector (prefilled from
``$RECAPP_TIME_FORMAT``; empty means that variable, or else a guess); a new
format re-opens the log in use, and one that does not fit keeps the data the page had.
"""
from __future__ import annotations

import functools
import logging
import os
from typing import Callable

from recapp.dashboard import views
from recapp.dashboard.ab_tab import ABTab
from recapp.dashboard.clock import Clock
from recapp.dashboard.live_tab import LiveTab
from recapp.dashboard.jobs import DATA, LIVE, BackgroundJob, DataJob, JobControl
from recapp.dashboard.models import DEFAULT_MODEL, SAVED_PREFIX, ModelCatalogue
from recapp.dashboard.choices import as_choice, check_format_field, data_choices
from recapp.dashboard.scenarios import DEFAULT_REPLAY_SHARE, TIME_FORMAT_ENV, DataError, UnknownUserError
from recapp.dashboard.stream_tab import StreamTab

log = logging.getLogger(__name__)

POLL_MS = 300


class Dashboard(JobControl):
    """The dashboard's state and widgets; :func:`build_app` makes one and Jupyter displays it.

    ``data`` maps Data-selector labels to ``factory(replay_share) -> Scenario``
    or to a choice from :mod:`~recapp.dashboard.choices` (default: :func:`~recapp.dashboard.choices.data_choices`, the analyst's log
    first when ``$RECAPP_EVENTS`` is set); ``model_factories`` maps model names
    to ``factory(scenario)`` (default: every registered model); ``models_root``
    is the models folder. ``time_format`` prefills the Date format field (default
    ``$RECAPP_TIME_FORMAT``). ``throttle=False`` (tests) handles every clock tick.
    ``default_model`` is the model served first (default: ``DEFAULT_MODEL`` when
    offered, else the first model). Refused with a ValueError: no data entries,
    no models, or a ``default_model`` that is neither offered nor a saved model's key.
    A saved ``default_model`` not trained on the data opened is not served: the page says which model is.
    """

    def __init__(self, data: dict | None = None, model_factories: dict | None = None, models_root=None,
                 default_model: str | None = None, throttle: bool = True, random_state: int = 0,
                 time_format: str | None = None):
        import ipywidgets as W

        self.W = W
        self.throttle, self.random_state = throttle, random_state
        self.data_factories = {label: as_choice(f) for label, f in (data_choices() if data is None else data).items()}
        self.catalogue = ModelCatalogue(model_factories, models_root)
        # Checked here: an empty selector would leave a blank page, or fail deep in the tabs' set-up.
        if not self.data_factories:
            raise ValueError("data is empty: give at least one Data entry (label -> factory(replay_share))")
        if not self.catalogue.factories:
            raise ValueError("model_factories is empty: give at least one model (name -> factory(scenario))")
        if default_model is not None and default_model not in self.catalogue.factories \
                and not str(default_model).startswith(SAVED_PREFIX):
            raise ValueError(f"default_model {default_model!r} is not among the models offered: "
                             f"{list(self.catalogue.factories)}")
        self.scenario = None
        self.scenario_label: str | None = None
        self.model = None
        self.model_key: str | None = None
        self.job: BackgroundJob | None = None    # its ``purpose``: LIVE (the Model selector's choice), AB or DATA
        self.abandoned: list[BackgroundJob] = []    # jobs the analyst stopped waiting for, still running or not
        self._after_training: Callable | None = None
        self._share_used: float | None = None   # the replay share of the data in use
        self._format_used = time_format if time_format is not None else os.environ.get(TIME_FORMAT_ENV, "")
        self._quiet = False
        self._build()
        self.guarded(self._start)(default_model)

    # ---- widgets ---------------------------------------------------------------------------
    def _build(self) -> None:
        W = self.W
        self.title = W.HTML("<h2 style='margin:4px 0'>recapp · live recommendations</h2>" + views.CSS)
        self.data_dd = W.Dropdown(options=list(self.data_factories), description="Data", layout=W.Layout(width="380px"))
        self.share = W.FloatSlider(value=DEFAULT_REPLAY_SHARE, min=0.05, max=0.5, step=0.05, description="Replay",
                                   readout_format=".0%", continuous_update=False, layout=W.Layout(width="260px"))
        # Empty reads the log as log_scenario does: $RECAPP_TIME_FORMAT when set, else a guess.
        env_format = os.environ.get(TIME_FORMAT_ENV)
        empty = f"${TIME_FORMAT_ENV} ({env_format})" if env_format else "guess, e.g. %d/%m/%Y"
        self.time_format = W.Text(value=self._format_used, placeholder=empty, description="Date format",
                                  continuous_update=False, layout=W.Layout(width="260px"),
                                  tooltip=f"strptime format of your log's date text; empty: {empty}")
        if not any(as_choice(f).reads_dates for f in self.data_factories.values()):
            self.time_format.layout.display = "none"   # only the analyst's log reads date text
        self.model_dd = W.Dropdown(options=[], description="Model", layout=W.Layout(width="280px"))
        self.progress = W.FloatProgress(value=0.0, min=0.0, max=1.0, layout=W.Layout(width="200px", visibility="hidden"))
        self.stop_wait = W.Button(description="Stop waiting", layout=W.Layout(width="120px", display="none"),
                                  tooltip="Abandon the running job: it cannot be stopped, but its result is not used")
        self.message = W.HTML("")
        self.data_info = W.HTML("")
        self.poll = Clock(W, POLL_MS, throttle=False, css_class="recapp-poll")
        self.poll.play.layout.display = "none"
        for w, cls in ((self.message, "recapp-message"), (self.data_dd, "recapp-data"), (self.model_dd, "recapp-model"),
                       (self.data_info, "recapp-data-info"), (self.progress, "recapp-progress"),
                       (self.time_format, "recapp-time-format"), (self.stop_wait, "recapp-stop-wait")):
            w.add_class(cls)
        self.live = LiveTab(self)
        self.stream = StreamTab(self)
        self.ab = ABTab(self)
        self.tabs = W.Tab(children=[self.live.root, self.stream.root, self.ab.root], titles=("Live", "Stream", "A/B test"))
        self.data_dd.observe(self.guarded(self._on_data), "value")
        self.share.observe(self.guarded(self._on_share), "value")
        self.time_format.observe(self.guarded(self._on_time_format), "value")
        self.model_dd.observe(self.guarded(self._on_model), "value")
        self.poll.on_tick(self._poll_training, self.guarded)
        self.stop_wait.on_click(self.guarded(lambda _button: self.abandon_job()))
        controls = W.HBox([self.data_dd, self.time_format, self.share, self.model_dd, self.progress, self.stop_wait,
                           self.poll.play],
                          layout=W.Layout(flex_flow="row wrap", align_items="center"))
        self.root = W.VBox([self.title, controls, self.data_info, self.message, self.tabs])
        self.root.add_class("recapp-app")

    def _repr_mimebundle_(self, **kwargs):
        return self.root._repr_mimebundle_(**kwargs)

    # ---- messages and errors ---------------------------------------------------------------
    def show_message(self, text: str, level: str = "info") -> None:
        """Show ``text`` above the tabs; ``level`` is info, warn or problem (red)."""
        self.message.value = views.message(text, level)

    def stop_clocks(self) -> None:
        """Pause every tab's clock."""
        for tab in (self.live, self.stream, self.ab):
            tab.stop()

    def guarded(self, fn: Callable) -> Callable:
        """Wrap a callback so any exception stops the clocks and becomes a message, not a traceback."""
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - the page must stay usable whatever fails
                self._show_failure(exc, getattr(fn, "__name__", "callback"))
        return wrapper

    def _show_failure(self, exc: Exception, where: str) -> None:
        # One wording for a failure, whether a callback raised it or a background read ended with it.
        if isinstance(exc, UnknownUserError):
            self.show_message(str(exc), "warn")
            return
        self.stop_clocks()
        if isinstance(exc, DataError):
            self.show_message(str(exc), "problem")
            return
        log.error("dashboard callback %s failed", where, exc_info=exc)
        detail = str(exc) or type(exc).__name__
        self.show_message(f"Something went wrong ({where.strip('_')}): {detail}", "problem")

    def _quietly(self, widget, **values) -> None:
        # Change a selector without re-entering its callback.
        self._quiet = True
        try:
            for name, value in values.items():
                setattr(widget, name, value)
        finally:
            self._quiet = False

    # ---- data ------------------------------------------------------------------------------
    def _start(self, default_model: str | None) -> None:
        self.select_data(self.data_dd.value, default_model)

    def _on_data(self, change) -> None:
        self.select_data(change["new"])

    def _on_share(self, change) -> None:
        self.select_data(self.data_dd.value)

    def _on_time_format(self, change) -> None:
        if self._quiet:
            return
        try:
            check_format_field(change["new"].strip())
        except DataError:
            self._quietly(self.time_format, value=self._format_used)
            raise
        if self.job is not None and self.job.purpose == DATA:
            self.select_data(self.job.key)     # refused: the field goes back to the format of the read under way
            return
        if self.scenario_label in self.data_factories and as_choice(self.data_factories[self.scenario_label]).reads_dates:
            self.select_data(self.scenario_label)    # the log in use is read again with the new format
            return
        self._format_used = change["new"]
        log_label = next((label for label, f in self.data_factories.items() if as_choice(f).reads_dates), None)
        if log_label is not None:
            self.show_message(f"The date format is used when {log_label} is opened: pick it in Data.")

    def _restore_data_controls(self) -> None:
        # Put Data, Date format and Replay back to the data being read, else the data in use (if any),
        # as the Model selector shows the model training.
        job = self.job if self.job is not None and self.job.purpose == DATA else None
        label, fmt, share = ((job.key, job.time_format, job.share) if job is not None else
                             (self.scenario_label, self._format_used, self._share_used))
        self._quietly(self.data_dd, value=label)
        self._quietly(self.time_format, value=fmt)
        if share is not None:
            self._quietly(self.share, value=share)

    def select_data(self, label: str, model_key: str | None = None) -> None:
        """Open the data ``label`` names (read, validate, split) and serve the current model on it.

        The analyst's log is read with the Date format field; a large one on the
        background job (the data in use stays until it is read). Refused while a job
        runs; on a refusal or a failure the Data, Date format and Replay controls go
        back to the data in use, so the page never shows a choice it is not using.
        A saved model that was not trained on the new data is not served: the page says which is, instead.
        """
        if self._quiet or label is None:
            return
        if self.job is not None:
            self.show_message(f"{self._training_note()}; the data can change when it is done.", "warn")
            self._restore_data_controls()
            return
        try:
            if label not in self.data_factories:
                raise DataError(f"unknown data {label!r}; available: {list(self.data_factories)}")
            self.stop_clocks()
            self.show_message(f"Opening {label}…")
            share, fmt = float(self.share.value), self.time_format.value
            choice = as_choice(self.data_factories[label])
            if choice.in_background:
                self._start_job(DataJob(label, lambda: self._read_data(choice, share, fmt), share, fmt, model_key))
                return
            scenario, choices = self._read_data(choice, share, fmt)
        except Exception:
            self._restore_data_controls()
            raise
        self._use_data(label, share, fmt, scenario, choices, model_key)

    def _read_data(self, choice, share: float, fmt: str) -> tuple:
        # The slow part of opening data; it touches no widget, so it may run on the background job.
        scenario = choice(share, fmt)
        return scenario, self.catalogue.choices(scenario)

    def _use_data(self, label: str, share: float, fmt: str, scenario, choices: list, model_key: str | None) -> None:
        self.scenario, self.scenario_label, self._share_used, self._format_used = scenario, label, share, fmt
        self.share.layout.visibility = "visible" if scenario.source == "replay" else "hidden"
        self.data_info.value = views.data_report(scenario)
        self.show_message("")
        keys = [k for _, k in choices]
        asked = model_key or self.model_key
        wanted = asked if asked in keys else (DEFAULT_MODEL if DEFAULT_MODEL in keys else keys[0])
        # Only a saved model can be missing (it belongs to other data): the page says what it serves instead.
        note = "" if asked is None or asked in keys else (
            f" No saved model {self.catalogue.describe(asked)!r} was trained on {label}: "
            f"{self.catalogue.describe(wanted)} is served instead.")
        self.model, self.model_key = None, None
        self._quietly(self.model_dd, options=choices, value=None)
        # The tabs show nothing of the previous data while the new model loads (or if it fails).
        self.live.on_data()
        self.stream.on_data()
        self.model_dd.value = wanted   # loads it through the same path as a click
        if note and self.job is not None and self.job.purpose == LIVE:
            self.job.note = note       # said with the training messages, which replace each other
        elif note and self.model_key == wanted:
            self.show_message(note.strip(), "warn")

    # ---- models ----------------------------------------------------------------------------
    def _on_model(self, change) -> None:
        if self._quiet or change["new"] is None:
            return
        self.select_model(change["new"])

    def _shown_model(self) -> str | None:
        # What the Model selector should show: the Live tab's model in training, else the one served.
        return self.job.key if self.job is not None and self.job.purpose == LIVE else self.model_key

    def select_model(self, key: str) -> None:
        """Serve model ``key`` on the current data: at once if cached, else after training in the background.

        Refused while a model trains (the selector goes back, and the message says
        which model trains for what); a model that cannot be read puts the selector back too.
        """
        if self.job is not None:
            if self.job.purpose != LIVE or self.job.key != key:
                self.show_message(f"{self._training_note()}; pick another model when it is done.", "warn")
            self._quietly(self.model_dd, value=self._shown_model())
            return
        self.stop_clocks()
        try:
            self.request_model(key, self.scenario, self._use_model, LIVE)
        except Exception:
            self._quietly(self.model_dd, value=self._shown_model())
            raise

    def _use_model(self, key: str, model) -> None:
        self.model, self.model_key = model, key
        self._quietly(self.model_dd, value=key)
        self.live.on_model()
        self.stream.on_model()

    def not_ready(self) -> str | None:
        """Why nothing can play now (data still being read, no data open, a model still training, none served), or None once a model is served."""
        if self.job is not None and self.job.purpose == DATA:
            return f"{self.job.key} is still being read: press Play when it is open."
        if self.scenario is None:
            return "No data is open: pick one in Data."
        if self.model is not None:
            return None
        if self.job is not None and self.job.purpose == LIVE:
            return f"{self.catalogue.describe(self.job.key)} is still training: press Play when it is done."
        return "No model is served on this data: pick one in Model."

    @property
    def model_label(self) -> str:
        """The current model's name as the page shows it."""
        return self.catalogue.describe(self.model_key) if self.model_key else "none"


def build_app(**kwargs) -> Dashboard:
    """Build the dashboard; display the returned object (the notebook's last line does)."""
    return Dashboard(**kwargs)
