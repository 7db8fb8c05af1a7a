"""The dashboard app: the Data and Model selectors, messages and model training; the tabs do the rest.

Every widget callback goes through :meth:`Dashboard.guarded`, so a failure
shows as a message in the page, never as a traceback. A model that is not
cached trains on a background thread while a poll clock updates the progress
bar, so the page stays responsive and a second click never starts a second training.
"""
from __future__ import annotations

import functools
import logging
from typing import Callable

from recapp.dashboard import views
from recapp.dashboard.ab_tab import ABTab
from recapp.dashboard.clock import Clock
from recapp.dashboard.live_tab import LiveTab
from recapp.dashboard.models import DEFAULT_MODEL, ModelCatalogue, TrainingJob
from recapp.dashboard.scenarios import DEFAULT_REPLAY_SHARE, DataError, UnknownUserError, data_choices
from recapp.dashboard.stream_tab import StreamTab

log = logging.getLogger(__name__)

POLL_MS = 300


class Dashboard:
    """The dashboard's state and widgets; :func:`build_app` makes one and Jupyter displays it.

    ``data`` maps Data-selector labels to ``factory(replay_share) -> Scenario``
    (default: :func:`~recapp.dashboard.scenarios.data_choices`, the analyst's log
    first when ``$RECAPP_EVENTS`` is set); ``model_factories`` maps model names
    to ``factory(scenario)`` (default: every registered model); ``models_root``
    is the models folder. ``throttle=False`` (tests) handles every clock tick.
    """

    def __init__(self, data: dict | None = None, model_factories: dict | None = None, models_root=None,
                 default_model: str = DEFAULT_MODEL, throttle: bool = True, random_state: int = 0):
        import ipywidgets as W

        self.W = W
        self.throttle, self.random_state = throttle, random_state
        self.data_factories = data_choices() if data is None else dict(data)
        self.catalogue = ModelCatalogue(model_factories, models_root)
        self.scenario = None
        self.scenario_label: str | None = None
        self.model = None
        self.model_key: str | None = None
        self.job: TrainingJob | None = None
        self._after_training: Callable | None = None
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
        self.model_dd = W.Dropdown(options=[], description="Model", layout=W.Layout(width="280px"))
        self.progress = W.FloatProgress(value=0.0, min=0.0, max=1.0, layout=W.Layout(width="200px", visibility="hidden"))
        self.message = W.HTML("")
        self.data_info = W.HTML("")
        self.poll = Clock(W, POLL_MS, throttle=False, css_class="recapp-poll")
        self.poll.play.layout.display = "none"
        for w, cls in ((self.message, "recapp-message"), (self.data_dd, "recapp-data"), (self.model_dd, "recapp-model"),
                       (self.data_info, "recapp-data-info"), (self.progress, "recapp-progress")):
            w.add_class(cls)
        self.live = LiveTab(self)
        self.stream = StreamTab(self)
        self.ab = ABTab(self)
        self.tabs = W.Tab(children=[self.live.root, self.stream.root, self.ab.root], titles=("Live", "Stream", "A/B test"))
        self.data_dd.observe(self.guarded(lambda c: self.select_data(c["new"])), "value")
        self.share.observe(self.guarded(lambda c: self.select_data(self.data_dd.value)), "value")
        self.model_dd.observe(self.guarded(self._on_model), "value")
        self.poll.on_tick(self._poll_training, self.guarded)
        controls = W.HBox([self.data_dd, self.share, self.model_dd, self.progress, self.poll.play],
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
            except UnknownUserError as exc:
                self.show_message(str(exc), "warn")
            except DataError as exc:
                self.stop_clocks()
                self.show_message(str(exc), "problem")
            except Exception as exc:  # noqa: BLE001 - the page must stay usable whatever fails
                log.exception("dashboard callback %s failed", getattr(fn, "__name__", fn))
                self.stop_clocks()
                detail = str(exc) or type(exc).__name__
                self.show_message(f"Something went wrong ({getattr(fn, '__name__', 'callback').strip('_')}): {detail}",
                                  "problem")
        return wrapper

    def _quietly(self, widget, **values) -> None:
        # Change a selector without re-entering its callback.
        self._quiet = True
        try:
            for name, value in values.items():
                setattr(widget, name, value)
        finally:
            self._quiet = False

    # ---- data ------------------------------------------------------------------------------
    def _start(self, default_model: str) -> None:
        self.select_data(self.data_dd.value, default_model)

    def select_data(self, label: str, model_key: str | None = None) -> None:
        """Open the data ``label`` names (read, validate, split) and serve the current model on it."""
        if self._quiet or label is None:
            return
        if self.job is not None:
            self.show_message(f"{self.catalogue.describe(self.job.key)} is still training; the data can change when it is done.", "warn")
            self._quietly(self.data_dd, value=self.scenario_label)
            return
        if label not in self.data_factories:
            raise DataError(f"unknown data {label!r}; available: {list(self.data_factories)}")
        self.stop_clocks()
        self.show_message(f"Opening {label}…")
        try:
            scenario = self.data_factories[label](float(self.share.value))
        except DataError:
            if self.scenario is not None:
                self._quietly(self.data_dd, value=self.scenario_label)
            raise
        self.scenario, self.scenario_label = scenario, label
        self.share.layout.visibility = "visible" if scenario.source == "replay" else "hidden"
        self.data_info.value = views.data_report(scenario)
        self.show_message("")
        choices = self.catalogue.choices(scenario)
        keys = [k for _, k in choices]
        wanted = model_key or self.model_key
        wanted = wanted if wanted in keys else (DEFAULT_MODEL if DEFAULT_MODEL in keys else keys[0])
        self.model, self.model_key = None, None
        self._quietly(self.model_dd, options=choices, value=None)
        self.live.on_data()
        self.model_dd.value = wanted   # loads it through the same path as a click

    # ---- models ----------------------------------------------------------------------------
    def _on_model(self, change) -> None:
        if self._quiet or change["new"] is None:
            return
        self.select_model(change["new"])

    def select_model(self, key: str) -> None:
        """Serve model ``key`` on the current data: at once if cached, else after training in the background."""
        if self.job is not None:
            if self.job.key != key:
                self.show_message(f"{self.catalogue.describe(self.job.key)} is still training; pick another model when it is done.", "warn")
            self._quietly(self.model_dd, value=self.job.key)
            return
        self.stop_clocks()
        self.request_model(key, self.scenario, self._use_model)

    def request_model(self, key: str, scenario, then: Callable) -> None:
        """Call ``then(key, model)`` with the fitted model: now if it is cached, else when training ends."""
        model = self.catalogue.ready(key, scenario)
        if model is not None:
            then(key, model)
            return
        self.job, self._after_training = TrainingJob(self.catalogue, key, scenario), then
        self.progress.value, self.progress.layout.visibility = 0.0, "visible"
        self.show_message(views.training(self.catalogue.describe(key), 0.0, None))
        self.poll.play.playing = True

    def _poll_training(self) -> None:
        job = self.job
        if job is None:
            self.poll.stop()
            return
        if not job.finished:
            # Without epochs to count, the bar fills slowly towards 90% so it still shows life.
            self.progress.value = job.progress if job.progress is not None else min(0.9, job.elapsed / (job.elapsed + 20.0))
            self.show_message(views.training(self.catalogue.describe(job.key), job.elapsed, job.progress))
            return
        self.poll.stop()
        self.job, then = None, self._after_training
        self.progress.layout.visibility = "hidden"
        if job.error is not None:
            self.show_message(f"Could not train {self.catalogue.describe(job.key)}: {job.error or type(job.error).__name__}. "
                              + (f"Still showing {self.catalogue.describe(self.model_key)}." if self.model_key else
                                 "Pick another model."), "problem")
            self._quietly(self.model_dd, value=self.model_key)
            return
        self.show_message(f"{self.catalogue.describe(job.key)} trained in {job.elapsed:.1f} s and cached.")
        then(job.key, job.model)

    def wait_for_training(self, timeout: float | None = None) -> None:
        """Block until a background training ends and apply it (what the poll clock does in the browser)."""
        if self.job is not None:
            self.job.wait(timeout)
            self._poll_training()

    def _use_model(self, key: str, model) -> None:
        self.model, self.model_key = model, key
        self._quietly(self.model_dd, value=key)
        self.live.on_model()
        self.stream.on_model()

    @property
    def model_label(self) -> str:
        """The current model's name as the page shows it."""
        return self.catalogue.describe(self.model_key) if self.model_key else "none"


def build_app(**kwargs) -> Dashboard:
    """Build the dashboard; display the returned object (the notebook's last line does)."""
    return Dashboard(**kwargs)
