"""The live dashboard: an ipywidgets app that Voilà serves from ``notebooks/dashboard.ipynb``.

An analyst picks a shopper and a model, chooses the event source (a replay of
the real MovieLens-100K events after the training cut, or a simulated shopper
in the synthetic shop who reacts to what they are shown) and presses play.
Each tick of an :class:`ipywidgets.Play` clock (a timer in the browser, so it
keeps running under ipykernel 7, where asyncio tasks started from a cell stop)
handles exactly one event: the engine ingests it and re-ranks, and the feed,
the top-10 list and the live panels are redrawn, the figure under one
``batch_update``. The A/B tab runs two policies side by side on simulated
traffic.

Every widget callback goes through :meth:`Dashboard._guarded`, so a failure
shows as a message in the page, never as a traceback.

``python -m recapp.dashboard --prepare`` fetches the data and trains and caches
the default model (under ``$RECAPP_DATA/models``) so the page starts fast.
"""
from __future__ import annotations

import argparse
import copy
import functools
import html
import logging
import os
import shutil
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from recapp.models import EASE, ItemKNN, Popularity, load
from recapp.realtime import Engine
from recapp.realtime.engine import EXPLANATION_COL, RANK_CHANGE_COL
from recapp.schema import EVENT_COL, ITEM_COL, RANK_COL, RATING_COL, SCORE_COL, TIME_COL, USER_COL, VALUE_COL

log = logging.getLogger(__name__)

K = 10
DEFAULT_MODEL = "EASE"
#: Model name -> factory taking the scenario key. Hyperparameters follow the models' defaults,
#: except a smaller EASE penalty for the small synthetic catalogue.
MODEL_FACTORIES: dict[str, Callable[[str], object]] = {
    "EASE": lambda key: EASE(l2=500.0 if key == "movielens" else 50.0),
    "ItemKNN": lambda key: ItemKNN(neighbours=100),
    "Popularity": lambda key: Popularity(),
}
#: Play interval (ms) per speed. The browser schedules each tick only after it has run the last
#: one and redrawn the page (tens of ms on a busy machine), so 1x asks for 150 ms to deliver
#: at least 5 events per second.
SPEEDS = {"0.5x": 300, "1x": 150, "2x": 75, "4x": 40}
SOURCES = {"replay": "Replay MovieLens-100K", "simulated": "Simulated shopper"}
HIT_WINDOW = 20          # events in the rolling hit rate
SERIES_POINTS = 300      # points kept per live series, so each redraw costs the same
FEED_ROWS = 10
#: Logit offset of a simulated shopper's click on a shown item (see open_source).
SIM_CLICK_BIAS = -4.0
#: Events that are a shopper's choice of item (a funnel's click, cart and purchase follow a view).
CHOICE_EVENTS = ("view", "rating")
#: What the engine is given of each event; the simulator's extra fields (source, slate_rank) are for display.
ENGINE_FIELDS = (USER_COL, ITEM_COL, TIME_COL, EVENT_COL, RATING_COL, VALUE_COL)


class UnknownUserError(LookupError):
    """A user id that the current scenario does not know; the message says what is accepted."""


# ---- scenarios: the data each event source needs ------------------------------------------
@dataclass
class Scenario:
    """One catalogue and its shoppers: training events, titles, profiles and (for replay) held-out events.

    ``key`` names the model cache; ``fingerprint`` changes whenever the training
    data would, so a cached model is never used with data it was not trained on.
    """

    key: str
    label: str
    fingerprint: str
    train: pd.DataFrame
    titles: pd.Series                      # item_id -> title
    items: pd.DataFrame                    # the catalogue (item_id, title, ...) for the engine
    users: pd.DataFrame                    # indexed by user_id: profile columns
    replay: pd.DataFrame | None = None     # held-out events in time order (replay scenarios)
    shop: object | None = None             # SyntheticShop (simulated scenarios)
    item_tags: pd.Series | None = None     # item_id -> genres / category, for profiles
    history_verb: str = "viewed"           # what the shopper did: "rated" for rating logs
    _train_by_user: dict = field(default_factory=dict, repr=False)

    def title(self, item_id) -> str:
        """The item's title, or ``item <id>`` when the catalogue has none."""
        return str(self.titles.get(item_id, f"item {item_id}"))

    def user_ids(self) -> list:
        """Users the analyst can pick, most interesting first."""
        return list(self.users.index)

    def user_label(self, user_id) -> str:
        """The text of a user's entry in the searchable list; it starts with the id."""
        row = self.users.loc[user_id]
        return f"{user_id} · {row['summary']}"

    def parse_user(self, text) -> object:
        """The user id a typed text or list entry names; raises :class:`UnknownUserError`."""
        raw = str(text).strip().split("·")[0].strip()
        if not raw:
            raise UnknownUserError("Type a user id or pick one from the list.")
        uid = raw
        if pd.api.types.is_integer_dtype(self.users.index.dtype):
            try:
                uid = int(raw)
            except ValueError:
                raise UnknownUserError(f"Unknown user {raw!r}: user ids here are numbers, e.g. {self.users.index[0]}.") from None
        if uid not in self.users.index:
            hint = f"{len(self.users):,} users can be picked here"
            if self.replay is not None:
                hint += " (those with events in the replay window)"
            raise UnknownUserError(f"Unknown user {raw!r}: {hint}, e.g. {self.users.index[0]}.")
        return uid

    def history(self, user_id) -> pd.DataFrame:
        """The user's training events, oldest first."""
        if not self._train_by_user:
            self._train_by_user.update(dict(tuple(self.train.sort_values(TIME_COL, kind="stable").groupby(USER_COL, sort=False))))
        return self._train_by_user.get(user_id, self.train.iloc[:0])

    def replay_events(self, user_id) -> pd.DataFrame:
        """The user's held-out events in time order (empty for simulated scenarios)."""
        if self.replay is None:
            return self.train.iloc[:0]
        return self.replay[self.replay[USER_COL] == user_id]


def movielens_scenario(quantile: float = 0.8) -> Scenario:
    """MovieLens-100K split at the ``quantile`` of time: the model trains on the past, the rest is replayed."""
    from recapp.data import load_movielens
    from recapp.split import temporal_split

    ml = load_movielens("100k")
    train, test = temporal_split(ml.interactions, quantile=quantile)
    test = test.sort_values(TIME_COL, kind="stable").reset_index(drop=True)
    n_replay = test[USER_COL].value_counts()
    n_train = train[USER_COL].value_counts()
    users = ml.users.set_index(USER_COL).loc[n_replay.index].copy()
    users["n_replay"] = n_replay.to_numpy()
    users["n_train"] = n_train.reindex(users.index, fill_value=0).to_numpy()
    users["has_past"] = users["n_train"] > 0
    # Shoppers with a past and a long future first: their lists start personal and keep moving.
    users = users.sort_values(["has_past", "n_replay"], ascending=False, kind="stable")
    users["summary"] = [f"{r.gender}, {r.age}, {r.occupation} · {r.n_train} past, {r.n_replay} to replay"
                        for r in users.itertuples()]
    titles = ml.items.set_index(ITEM_COL)["title"]
    tags = ml.items.set_index(ITEM_COL)["genres"]
    return Scenario("movielens", "MovieLens-100K films", f"ml100k-q{quantile:g}", train, titles,
                    ml.items[[ITEM_COL, "title", "genres"]], users, replay=test, item_tags=tags, history_verb="rated")


def shop_scenario(n_users: int = 500, n_items: int = 300, n_events: int = 30_000, random_state: int = 0) -> Scenario:
    """The synthetic shop: models train on its whole log; shoppers are simulated from its latent tastes."""
    from recapp.data import synthetic_shop

    shop = synthetic_shop(n_users=n_users, n_items=n_items, n_events=n_events, random_state=random_state)
    counts = shop.events[USER_COL].value_counts()
    users = shop.users.set_index(USER_COL).copy()
    users["n_train"] = counts.reindex(users.index, fill_value=0).to_numpy()
    users = users.sort_values("n_train", ascending=False)
    users["summary"] = [f"likes {r.favorite_category} · {r.n_train} past events" for r in users.itertuples()]
    items = shop.items.set_index(ITEM_COL)
    return Scenario("shop", "synthetic shop", f"shop-{n_users}-{n_items}-{n_events}-s{random_state}", shop.events,
                    items["title"], shop.items[[ITEM_COL, "title", "category", "price"]], users, shop=shop,
                    item_tags=items["category"])


# ---- models: load from the cache or train once ------------------------------------------------
def model_cache_dir(root=None) -> Path:
    """Where trained dashboard models are cached: ``root`` or ``$RECAPP_DATA/models``."""
    if root is not None:
        return Path(root)
    from recapp.data import data_dir

    return data_dir() / "models"


def load_model(name: str, scenario: Scenario, cache_dir=None, factories: dict | None = None):
    """The model ``name`` fitted on ``scenario.train``: read from the cache, or trained and cached.

    Raises ``KeyError`` for an unknown name and lets training errors through;
    the dashboard turns both into a message.
    """
    factories = MODEL_FACTORIES if factories is None else factories
    if name not in factories:
        raise KeyError(f"unknown model {name!r}; available: {sorted(factories)}")
    path = model_cache_dir(cache_dir) / scenario.fingerprint / name
    if (path / "config.json").exists():
        try:
            return load(path)
        except Exception as exc:  # noqa: BLE001 - a corrupt cache is retrained, not fatal
            log.warning("cached model %s is unreadable (%s); retraining", path, exc)
            shutil.rmtree(path, ignore_errors=True)
    model = factories[name](scenario.key).fit(scenario.train)
    try:
        # Written beside the target and renamed, so a concurrent start never reads half a model.
        tmp = path.with_name(f".{name}.{os.getpid()}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        model.save(tmp)
        os.replace(tmp, path)
    except OSError as exc:
        log.info("model cache %s not written: %s", path, exc)
        shutil.rmtree(tmp, ignore_errors=True)
    return model


def prepare(cache_dir=None, models=(DEFAULT_MODEL,)) -> list[Path]:
    """Fetch MovieLens-100K and train and cache ``models`` for both scenarios; returns the cache folders."""
    out = []
    for scenario in (movielens_scenario(), shop_scenario()):
        for name in models:
            t0 = time.perf_counter()
            load_model(name, scenario, cache_dir)
            path = model_cache_dir(cache_dir) / scenario.fingerprint / name
            print(f"{name} on {scenario.label}: ready in {time.perf_counter() - t0:.1f}s ({path})")
            out.append(path)
    return out


# ---- the engine and the event sources -----------------------------------------------------------
def make_engine(model, scenario: Scenario, k: int = K):
    """The real-time engine for one session: ``ingest(event)``, then ``recommend(user, k)``.

    The engine keeps its own per-user state and never changes ``model``, so the
    cached model can serve every session and a reset is a new engine.
    """
    # One contributor per reason keeps "because you viewed X" readable when titles contain commas.
    return Engine(model, k=k, items=scenario.items, n_explain=1)


def display_explanation(text: str, verb: str = "viewed") -> str:
    """The engine's reason in the dashboard's words: "because of X" reads "because you <verb> X"."""
    text = str(text)
    return f"because you {verb} " + text[len("because of "):] if text.startswith("because of ") else text


class EventSource:
    """One shopper's events, one per :meth:`next_event`, from a replay or a simulated shopper.

    ``replay`` is a :class:`recapp.realtime.stream.Replay` of a user's held-out
    events; ``simulator`` a :class:`recapp.realtime.stream.ShopperSimulator` whose
    shopper sees whatever ``shown()`` returns (the list on screen) before each view.
    """

    def __init__(self, events, total: int | None = None, simulator=None):
        self._events = iter(events)
        self.total = total
        self.simulator = simulator

    def next_event(self) -> dict | None:
        """The next event, or None when a replay is over."""
        return next(self._events, None)

    @property
    def click_through_rate(self) -> float | None:
        """Share of lists shown to a simulated shopper that were clicked (None for a replay)."""
        return None if self.simulator is None else self.simulator.click_through_rate


def _forever(simulator, user_id):
    # The simulator's per-visit generator asks for a fresh list before each view,
    # so the shopper reacts to every re-ranking; visits repeat for this one shopper.
    while True:
        yield from simulator._visit(user_id)


def open_source(kind: str, scenario: Scenario, user_id, shown: Callable[[], list], random_state: int = 0) -> EventSource:
    """The event source for ``kind``: "replay" (the user's real held-out events) or "simulated"."""
    from recapp.realtime.stream import Replay, ShopperSimulator

    if kind == "replay":
        replay = Replay(scenario.replay_events(user_id), history=scenario.train)
        return EventSource(replay, total=len(replay))
    if kind == "simulated":
        if scenario.shop is None:
            raise ValueError(f"{scenario.label} has no simulated shoppers; simulation needs the synthetic shop")
        # click_bias -4 (the simulator's default is -1.5) keeps the share of clicked lists near 0.5 for a good
        # model rather than near 1, so the CTR and hit-rate panels move and models can be told apart.
        sim = ShopperSimulator(scenario.shop, recommender=lambda user, k: shown()[:k], click_bias=SIM_CLICK_BIAS,
                               random_state=random_state)
        return EventSource(_forever(sim, int(user_id)), simulator=sim)
    raise ValueError(f"unknown source {kind!r}; accepted: {list(SOURCES)}")


def shop_simulator(scenario: Scenario, random_state: int = 0, **kwargs):
    """Simulated shop traffic for A/B tests (:class:`recapp.experiment.simulator.ShopperSimulator`)."""
    from recapp.experiment.simulator import ShopperSimulator

    if scenario.shop is None:
        raise ValueError(f"{scenario.label} has no simulated shoppers; simulation needs the synthetic shop")
    return ShopperSimulator.from_synthetic(scenario.shop, random_state=random_state, **kwargs)


# ---- A/B on simulated traffic ------------------------------------------------------------------
class ABSimulation:
    """Two policies side by side on simulated shop traffic, one simulator step per :meth:`step`.

    Each step runs :meth:`ShopperSimulator.run_ab` for one step with a fresh
    arrival seed, so the experiment grows tick by tick; the policies keep
    learning from the clicks between steps (``RecommenderPolicy(update="step")``)
    and assignment is a salted hash of the shopper id, so a shopper always sees
    the same arm. CTR is clicks / impressions per arm with the delta-method
    variance over shoppers (the randomisation unit), from
    :mod:`recapp.experiment.abtest`.
    """

    ARMS = ("A", "B")

    def __init__(self, scenario: Scenario, policies: dict, sessions_per_step: int = 20, random_state: int = 0,
                 salt: str = "dashboard-ab"):
        from recapp.experiment.simulator import RecommenderPolicy

        if len(policies) != 2:
            raise ValueError(f"an A/B test needs exactly two policies, got {list(policies)}")
        self.scenario = scenario
        self.names = list(policies)
        # Copies: the policies learn from simulated clicks, which must not reach the cached models.
        self.policies = {arm: RecommenderPolicy(copy.deepcopy(m), update="step", name=f"{arm}: {n}")
                         for arm, (n, m) in zip(self.ARMS, policies.items())}
        self.sessions_per_step = sessions_per_step
        self.random_state = random_state
        self.salt = salt
        self.start = float(scenario.train[TIME_COL].max())
        n = len(scenario.shop.users)
        self.clicks = {a: np.zeros(n) for a in self.ARMS}
        self.views = {a: np.zeros(n) for a in self.ARMS}
        self._pos = pd.Index(scenario.shop.users[USER_COL].to_numpy())
        self.history: list[dict] = []

    def step(self) -> dict:
        """Simulate one more step of traffic; returns and records CTR, 95% band and shoppers per arm."""
        from recapp.experiment.abtest import delta_ratio

        t = len(self.history)
        # One list per shopper per step (session_length=1) keeps a step to one round of serving.
        sim = shop_simulator(self.scenario, random_state=self.random_state * 100_003 + t,
                             start=self.start + 3600.0 * t, session_length=1.0)
        res = sim.run_ab(self.policies, n_steps=1, sessions_per_step=self.sessions_per_step, salt=self.salt)
        imp = res.impressions
        row = {"step": t + 1}
        for arm in self.ARMS:
            mine = imp[imp["arm"] == arm]
            if len(mine):
                g = mine.groupby(USER_COL)["click"].agg(["sum", "size"])
                idx = self._pos.get_indexer(g.index)
                np.add.at(self.clicks[arm], idx, g["sum"].to_numpy())
                np.add.at(self.views[arm], idx, g["size"].to_numpy())
            seen = self.views[arm] > 0
            ratio, half = np.nan, np.nan
            if seen.sum() >= 2:
                ratio, var = delta_ratio(self.clicks[arm][seen], self.views[arm][seen])
                half = 1.96 * float(np.sqrt(max(float(var), 0.0)))
            row[f"ctr_{arm}"], row[f"low_{arm}"], row[f"high_{arm}"] = float(ratio), float(ratio) - half, float(ratio) + half
            row[f"users_{arm}"] = int(seen.sum())
            row[f"impressions_{arm}"] = int(self.views[arm].sum())
        self.history.append(row)
        return row

    def compare(self) -> dict | None:
        """B minus A: CTR difference, 95% interval and p-value, or None before both arms have shoppers."""
        from recapp.experiment.abtest import compare_ratio

        sa, sb = self.views["A"] > 0, self.views["B"] > 0
        if sa.sum() < 2 or sb.sum() < 2:
            return None
        return compare_ratio(self.clicks["A"][sa], self.views["A"][sa], self.clicks["B"][sb], self.views["B"][sb])

# ---- the app -------------------------------------------------------------------------------------
_CSS = """
<style>
.recapp-app {font-family: system-ui, -apple-system, 'Segoe UI', sans-serif; font-size: 13px;}
.recapp-app table.recapp-t {border-collapse: collapse; width: 100%;}
.recapp-app table.recapp-t th {text-align: left; color: #555; font-weight: 600; border-bottom: 1px solid #ddd; padding: 3px 6px;}
.recapp-app table.recapp-t td {padding: 3px 6px; border-bottom: 1px solid #f0f0f0; vertical-align: top;}
.recapp-app td.nw {white-space: nowrap;}
.recapp-app .up {color: #1a7f37; font-weight: 600;} .recapp-app .down {color: #c62828; font-weight: 600;}
.recapp-app .new {color: #1565c0; font-weight: 600;} .recapp-app .same {color: #999;}
.recapp-app .why {color: #666; font-size: 12px;}
.recapp-app .badge {display: inline-block; padding: 0 6px; border-radius: 8px; background: #eef; font-size: 11px;}
.recapp-app .badge.click {background: #e3f6e8;} .recapp-app .badge.rating {background: #fff4d6;}
.recapp-msg {padding: 6px 10px; border-radius: 4px; margin: 4px 0;}
.recapp-msg.info {background: #e8f1fb; color: #0b3d6b;} .recapp-msg.warn {background: #fff4d6; color: #6b4e00;}
.recapp-msg.problem {background: #fdecea; color: #7f1d1d;}
</style>
"""


def _fmt_time(ts: float) -> str:
    return pd.Timestamp(float(ts), unit="s", tz="UTC").strftime("%Y-%m-%d %H:%M")


def _esc(s) -> str:
    return html.escape(str(s))


def _gaps(values: list) -> list:
    """NaN as None: the figure's state travels as JSON, which has no NaN (a gap in plotly either way)."""
    return [None if v is None or (isinstance(v, float) and not np.isfinite(v)) else v for v in values]


class Dashboard:
    """The dashboard's state and widgets; ``build_app()`` makes one and Jupyter displays it.

    ``scenario_factories`` maps a source ("replay", "simulated") to a function
    returning its :class:`Scenario`; ``model_factories`` maps model names to
    factories (tests pass small ones). ``throttle`` drops clock ticks that arrive
    faster than the interval allows (a queue of ticks built up while the kernel
    was busy), so the page never falls behind the clock.
    """

    def __init__(self, scenario_factories: dict | None = None, model_factories: dict | None = None,
                 cache_dir=None, default_model: str = DEFAULT_MODEL, source: str = "replay",
                 throttle: bool = True, random_state: int = 0):
        import ipywidgets as W

        self.W = W
        self._scenario_factories = scenario_factories or {"replay": movielens_scenario, "simulated": shop_scenario}
        self._model_factories = MODEL_FACTORIES if model_factories is None else model_factories
        self.cache_dir = cache_dir
        self.throttle = throttle
        self.random_state = random_state
        self._scenarios: dict[str, Scenario] = {}
        self._models: dict[tuple, object] = {}
        self.tick_ms: list[float] = []       # whole handler time per processed tick
        self.engine_ms: list[float] = []     # ingest + recommend per tick
        self.dropped_ticks = 0
        self.ab_ms: list[float] = []
        self._last_tick: dict = {}
        self._busy = False
        self.model_name = None
        self.user_id = None
        self.source = source
        self._quiet = False
        self.engine = self.source_obj = None
        self._build_widgets(default_model)
        self._clear_session()
        self._guarded(self._start)(default_model)

    # ---- widgets -------------------------------------------------------------------------------
    def _build_widgets(self, default_model: str) -> None:
        W = self.W
        self.title = W.HTML("<h2 style='margin:4px 0'>recapp · live recommendations</h2>" + _CSS)
        self.user_box = W.Combobox(placeholder="type a user id, or search by profile", ensure_option=False,
                                   continuous_update=False, description="User", layout=W.Layout(width="380px"))
        self.model_dd = W.Dropdown(options=list(self._model_factories), value=None, description="Model",
                                   layout=W.Layout(width="200px"))
        self.source_tb = W.ToggleButtons(options=[(v, k) for k, v in SOURCES.items()], value=self.source,
                                         style={"button_width": "170px"})
        self.play = W.Play(value=0, min=0, max=10**7, step=1, interval=SPEEDS["1x"], show_repeat=False,
                           description="Play")
        self.speed_dd = W.Dropdown(options=list(SPEEDS.items()), value=SPEEDS["1x"], description="Speed",
                                   layout=W.Layout(width="160px"))
        self.reset_btn = W.Button(description="Reset", icon="undo", layout=W.Layout(width="90px"))
        self.message = W.HTML("")
        self.profile = W.HTML("")
        self.feed = W.HTML("")
        self.recs = W.HTML("")
        self.status = W.HTML("")
        for w, cls in ((self.message, "recapp-message"), (self.profile, "recapp-profile"), (self.feed, "recapp-feed"),
                       (self.recs, "recapp-recs"), (self.status, "recapp-status"), (self.play, "recapp-play"),
                       (self.user_box, "recapp-user"), (self.model_dd, "recapp-model"), (self.reset_btn, "recapp-reset")):
            w.add_class(cls)
        self.fig = self._live_figure()

        # A/B tab: its own clock, so the live session and the experiment can run independently.
        names = list(self._model_factories)
        self.ab_a = W.Dropdown(options=names, value=names[-1], description="Policy A", layout=W.Layout(width="220px"))
        self.ab_b = W.Dropdown(options=names, value=default_model if default_model in names else names[0],
                               description="Policy B", layout=W.Layout(width="220px"))
        self.ab_play = W.Play(value=0, min=0, max=10**7, step=1, interval=SPEEDS["1x"], show_repeat=False)
        self.ab_reset = W.Button(description="Reset", icon="undo", layout=W.Layout(width="90px"))
        self.ab_summary = W.HTML("<i>Press play to send simulated shoppers to both policies.</i>")
        self.ab_play.add_class("recapp-ab-play")
        self.ab_summary.add_class("recapp-ab-summary")
        self.ab_fig = self._ab_figure()
        self.ab = None

        self.user_box.observe(self._guarded(self._on_user), "value")
        self.model_dd.observe(self._guarded(self._on_model), "value")
        self.source_tb.observe(self._guarded(self._on_source), "value")
        self.play.observe(self._guarded(self._on_tick), "value")
        self.speed_dd.observe(self._guarded(self._on_speed), "value")
        self.reset_btn.on_click(self._guarded(lambda _b: self.reset()))
        self.ab_play.observe(self._guarded(self._on_ab_tick), "value")
        self.ab_reset.on_click(self._guarded(lambda _b: self.reset_ab()))
        self.ab_a.observe(self._guarded(lambda _c: self.reset_ab()), "value")
        self.ab_b.observe(self._guarded(lambda _c: self.reset_ab()), "value")

        controls = W.HBox([self.user_box, self.model_dd, self.source_tb], layout=W.Layout(flex_flow="row wrap"))
        clock = W.HBox([self.play, self.speed_dd, self.reset_btn, self.status], layout=W.Layout(align_items="center"))
        feed_box = W.VBox([W.HTML("<b>Event feed</b>"), self.feed], layout=W.Layout(width="38%", padding="0 12px 0 0"))
        recs_box = W.VBox([W.HTML("<b>Top-10 now</b>"), self.recs], layout=W.Layout(width="62%"))
        live = W.VBox([self.profile, W.HBox([feed_box, recs_box]), self.fig])
        ab_controls = W.HBox([self.ab_a, self.ab_b, self.ab_play, self.ab_reset], layout=W.Layout(align_items="center"))
        ab_tab = W.VBox([W.HTML("Two policies side by side on simulated shop traffic: each tick is one simulated hour in "
                                "which shoppers arrive and see one list from their arm (always the same arm), and the "
                                "policies learn from the clicks. CTR = clicks / impressions; bands are 95% "
                                "delta-method intervals over shoppers."),
                         ab_controls, self.ab_fig, self.ab_summary])
        self.tabs = W.Tab(children=[live, ab_tab], titles=("Live", "A/B test"))
        self.root = W.VBox([self.title, controls, clock, self.message, self.tabs])
        self.root.add_class("recapp-app")

    def _live_figure(self):
        import plotly.graph_objects as go
        from plotly.subplots import make_subplots

        fig = make_subplots(rows=1, cols=3, subplot_titles=(f"Hit rate (last {HIT_WINDOW} events)",
                                                             "Latency ms (purple: engine, grey: whole tick)",
                                                             "CTR (simulated shopper only)"), horizontal_spacing=0.08)
        fig.add_trace(go.Scatter(x=[], y=[], mode="lines", name="hit rate", line=dict(color="#1565c0")), 1, 1)
        fig.add_trace(go.Scatter(x=[], y=[], mode="lines", name="engine", line=dict(color="#6a1b9a")), 1, 2)
        fig.add_trace(go.Scatter(x=[], y=[], mode="lines", name="whole tick", line=dict(color="#bbb")), 1, 2)
        fig.add_trace(go.Scatter(x=[], y=[], mode="lines", name="CTR", line=dict(color="#2e7d32")), 1, 3)
        fig.update_yaxes(range=[0, 1], row=1, col=1)
        fig.update_yaxes(rangemode="tozero", row=1, col=2)
        fig.update_yaxes(range=[0, 1], row=1, col=3)
        fig.update_xaxes(title_text="event")
        fig.add_annotation(text="only for simulated shoppers", x=0.5, y=0.5, xref="x3 domain", yref="y3 domain",
                           showarrow=False, font=dict(color="#999"))
        fig.update_layout(height=260, margin=dict(l=40, r=10, t=30, b=40), showlegend=False, template="plotly_white")
        return go.FigureWidget(fig)

    def _ab_figure(self):
        import plotly.graph_objects as go

        fig = go.Figure()
        for arm, color in (("A", "99,110,250"), ("B", "239,85,59")):
            fig.add_trace(go.Scatter(x=[], y=[], fill="toself", fillcolor=f"rgba({color},0.18)", line=dict(width=0),
                                     hoverinfo="skip", showlegend=False, name=f"{arm} 95%"))
            fig.add_trace(go.Scatter(x=[], y=[], mode="lines", line=dict(color=f"rgb({color})"), name=arm))
        fig.update_layout(height=300, margin=dict(l=60, r=10, t=20, b=40), template="plotly_white",
                          xaxis_title="simulated hour", yaxis=dict(title="CTR", tickformat=".1%", rangemode="tozero"),
                          legend=dict(orientation="h", y=1.12))
        return go.FigureWidget(fig)

    def _repr_mimebundle_(self, **kwargs):
        return self.root._repr_mimebundle_(**kwargs)

    # ---- messages and error handling -----------------------------------------------------------
    def show_message(self, text: str, level: str = "info") -> None:
        """Show ``text`` above the tabs; ``level`` is info, warn or problem (red)."""
        self.message.value = f"<div class='recapp-msg {level}'>{_esc(text)}</div>" if text else ""

    def _guarded(self, fn: Callable) -> Callable:
        """Wrap a callback so any exception stops the clock and becomes a message, not a traceback."""
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except UnknownUserError as exc:
                self.show_message(str(exc), "warn")
            except Exception as exc:  # noqa: BLE001 - the page must stay usable whatever fails
                log.exception("dashboard callback %s failed", getattr(fn, "__name__", fn))
                self.play.playing = False
                self.ab_play.playing = False
                detail = str(exc) or type(exc).__name__
                self.show_message(f"Something went wrong ({getattr(fn, '__name__', 'callback').strip('_')}): {detail}",
                                  "problem")
        return wrapper

    # ---- state ---------------------------------------------------------------------------------
    @property
    def scenario(self) -> Scenario:
        """The scenario behind the current source (built on first use)."""
        if self.source not in self._scenarios:
            self._scenarios[self.source] = self._scenario_factories[self.source]()
        return self._scenarios[self.source]

    def _model(self, name: str, scenario: Scenario):
        key = (scenario.fingerprint, name)
        if key not in self._models:
            self._models[key] = load_model(name, scenario, self.cache_dir, self._model_factories)
        return self._models[key]

    def _start(self, default_model: str) -> None:
        self._fill_users()
        # Setting the dropdown loads the model through the same path as a click would.
        self.model_dd.value = default_model if default_model in self._model_factories else None

    def _fill_users(self) -> None:
        sc = self.scenario
        ids = sc.user_ids()
        self.user_box.options = [sc.user_label(u) for u in ids]
        self.user_id = ids[0]
        self._set_box(sc.user_label(self.user_id))

    def _set_box(self, text: str) -> None:
        self._quiet = True
        try:
            self.user_box.value = text
        finally:
            self._quiet = False

    # ---- callbacks -----------------------------------------------------------------------------
    def _on_user(self, change) -> None:
        if getattr(self, "_quiet", False):
            return
        self.select_user(change["new"])

    def select_user(self, text) -> None:
        """Switch to the user that ``text`` names (an id or a list entry) and reset the session."""
        uid = self.scenario.parse_user(text)
        self.user_id = uid
        self._set_box(self.scenario.user_label(uid))
        self.show_message("")
        self.reset()

    def _on_model(self, change) -> None:
        if change["new"] is None:
            return
        self.select_model(change["new"])

    def select_model(self, name: str) -> None:
        """Load (or train and cache) model ``name``; on failure keep the previous model and say why."""
        self.play.playing = False
        try:
            self.show_message(f"Loading {name}…")
            self._model(name, self.scenario)
        except Exception as exc:  # noqa: BLE001 - the message is the product here
            log.exception("model %s failed to load", name)
            previous = self.model_name
            self.show_message(f"Could not load model {name}: {exc or type(exc).__name__}. "
                              + (f"Still showing {previous}." if previous else "Pick another model."), "problem")
            self._quiet_model(previous)
            return
        self.model_name = name
        self.show_message("")
        self.reset()

    def _quiet_model(self, name) -> None:
        # Put the dropdown back without re-entering select_model.
        self.model_dd.unobserve_all("value")
        try:
            self.model_dd.value = name
        finally:
            self.model_dd.observe(self._guarded(self._on_model), "value")

    def _on_source(self, change) -> None:
        self.select_source(change["new"])

    def select_source(self, source: str) -> None:
        """Switch between the MovieLens replay and the simulated shopper (each has its own catalogue)."""
        if source not in SOURCES:
            raise ValueError(f"unknown source {source!r}; accepted: {list(SOURCES)}")
        self.play.playing = False
        self.source = source
        self.show_message(f"Loading {SOURCES[source].lower()}…")
        self._fill_users()
        if self.model_name is not None:
            self.select_model(self.model_name)
        else:
            self.show_message("")

    def _on_speed(self, change) -> None:
        # Play reads its interval before scheduling each tick, so a change applies at once.
        self.play.interval = int(change["new"])
        self.ab_play.interval = int(change["new"])

    def _clear_session(self) -> None:
        self._events = 0
        self._hits: deque = deque(maxlen=HIT_WINDOW)
        self._feed: deque = deque(maxlen=FEED_ROWS)
        self._series = {n: deque(maxlen=SERIES_POINTS) for n in ("x", "hit", "engine", "tick", "ctr")}
        self._done = False
        self.tick_ms, self.engine_ms, self.dropped_ticks = [], [], 0
        self._last_tick.pop("live", None)
        self.current = pd.DataFrame(columns=[ITEM_COL, SCORE_COL, RANK_COL, EXPLANATION_COL, RANK_CHANGE_COL])

    def reset(self) -> None:
        """Stop the clock and start the session again from the model as trained."""
        self.play.playing = False
        self.play.value = 0
        self._clear_session()
        if self.model_name is None or self.user_id is None:
            return
        sc = self.scenario
        self.engine = make_engine(self._model(self.model_name, sc), sc, k=K)
        self.source_obj = open_source(self.source, sc, self.user_id, lambda: self.current[ITEM_COL].tolist(),
                                      self.random_state)
        self.current = self.engine.recommend(self.user_id, K)
        self._render_profile()
        self._render_recs()
        self._render_feed()
        self._render_figure()
        self._render_status()
        if self.source_obj.total == 0:
            self.show_message(f"User {self.user_id} has no events in the replay window; pick another user "
                              "or switch to a simulated shopper.", "warn")

    def _on_tick(self, change) -> None:
        if change["new"] == 0 or change["new"] < change["old"]:
            return  # a reset or the stop button, not a clock tick
        if self._late(self.play, "live"):
            self.dropped_ticks += 1
            return
        self.step()
        self._pace(self.play, self.tick_ms)

    def _late(self, play, key: str) -> bool:
        """Whether a tick arrived too soon after the last one: a burst queued while the kernel was busy.

        The clock runs in the browser and does not wait for the kernel, so ticks
        that pile up behind a slow one are skipped rather than replayed late.
        """
        if not self.throttle:
            return False
        now = time.perf_counter()
        if now - self._last_tick.get(key, -np.inf) < 0.5 * play.interval / 1000.0:
            return True
        self._last_tick[key] = now
        return False

    def _pace(self, play, handler_ms: list) -> None:
        """Back-pressure: keep the clock's interval above 1.5x the recent handler time.

        A kernel that cannot finish a tick within the interval would fall further
        behind with every tick; slowing the clock keeps the page live instead.
        """
        if not self.throttle or len(handler_ms) < 3:
            return
        need = int(np.ceil(1.5 * np.percentile(handler_ms[-10:], 90) / 10.0) * 10)
        interval = max(int(self.speed_dd.value), need)
        if interval != play.interval:
            play.interval = interval

    def step(self) -> dict | None:
        """Handle one event: ingest, re-rank, redraw; returns the event (None when the source is done)."""
        if self._done or self.engine is None:
            self.play.playing = False
            return None
        t0 = time.perf_counter()
        shown = self.current[ITEM_COL].tolist()
        ev = self.source_obj.next_event()
        if ev is None:
            self._done = True
            self.play.playing = False
            self.show_message(f"Replay finished: {self._events} events of user {self.user_id}. "
                              "Press Reset to watch again, or pick another user.")
            return None
        if ev[EVENT_COL] in CHOICE_EVENTS:
            # Did the list on screen hold the item the shopper chose next? (Funnel steps that follow are no new choice.)
            self._hits.append(ev[ITEM_COL] in shown)
        t1 = time.perf_counter()
        result = self.engine.ingest({k: v for k, v in ev.items() if k in ENGINE_FIELDS})
        if getattr(result, "n_rejected", 0):
            self.show_message(f"The engine rejected an event: {result.rejected['reason'].iloc[0]}", "warn")
        self.current = self.engine.recommend(self.user_id, K)
        engine_ms = (time.perf_counter() - t1) * 1000
        self._events += 1
        self._feed.appendleft(ev)
        s = self._series
        s["x"].append(self._events)
        s["hit"].append(float(np.mean(self._hits)) if self._hits else None)
        s["engine"].append(engine_ms)
        ctr = self.source_obj.click_through_rate
        s["ctr"].append(None if ctr is None or not np.isfinite(ctr) else ctr)
        # The whole-tick series lags one event: a tick's own redraw cannot be timed before it happens.
        s["tick"].append(self.tick_ms[-1] if self.tick_ms else engine_ms)
        self._render_feed()
        self._render_recs()
        self._render_figure()
        self._render_status()
        self.engine_ms.append(engine_ms)
        self.tick_ms.append((time.perf_counter() - t0) * 1000)
        return ev

    # ---- rendering -----------------------------------------------------------------------------
    def _render_status(self) -> None:
        bits = [f"{self._events} events"]
        if self.tick_ms:
            bits.append(f"tick {np.median(self.tick_ms[-50:]):.0f} ms")
        if self.play.interval > int(self.speed_dd.value):
            bits.append(f"clock slowed to {self.play.interval} ms to keep up")
        if self.dropped_ticks:
            bits.append(f"{self.dropped_ticks} late ticks skipped")
        if self.source_obj is not None and self.source_obj.total is not None:
            bits.append(f"{self.source_obj.total - self._events} left to replay")
        self.status.value = f"<span style='color:#666'>{' · '.join(bits)}</span>"

    def _render_profile(self) -> None:
        sc, uid = self.scenario, self.user_id
        row = sc.users.loc[uid]
        hist = sc.history(uid)
        tags = ""
        if sc.item_tags is not None and len(hist):
            t = sc.item_tags.reindex(hist[ITEM_COL]).dropna().str.split("|").explode()
            top = [g for g in t.value_counts().index[:3] if g]
            tags = f" · likes {', '.join(top)}" if top else ""
        items = []
        for ev in hist.tail(5).iloc[::-1].to_dict("records"):
            stars = f" ★{ev['rating']:g}" if pd.notna(ev.get("rating", np.nan)) else ""
            items.append(f"{_esc(sc.title(ev[ITEM_COL]))}{stars}")
        recent_html = "; ".join(items) if items else "<i>no history before this session: a cold start</i>"
        self.profile.value = (f"<div><b>User {_esc(uid)}</b> · {_esc(row['summary'])}{_esc(tags)} "
                              f"<span style='color:#888'>({_esc(sc.label)}, model {_esc(self.model_name)})</span><br>"
                              f"<span style='color:#555'>Recent history:</span> {recent_html}</div>")

    def _render_recs(self) -> None:
        rows = []
        for r in self.current.itertuples(index=False):
            ch = getattr(r, RANK_CHANGE_COL)
            if self._events == 0:
                delta = "<span class='same'>·</span>"   # the session's first list: nothing to compare with
            elif pd.isna(ch):
                delta = "<span class='new'>new</span>"
            elif ch > 0:
                delta = f"<span class='up'>▲{int(ch)}</span>"
            elif ch < 0:
                delta = f"<span class='down'>▼{int(-ch)}</span>"
            else:
                delta = "<span class='same'>=</span>"
            rows.append(f"<tr><td>{int(getattr(r, RANK_COL))}</td><td>{_esc(self.scenario.title(getattr(r, ITEM_COL)))}</td>"
                        f"<td>{float(getattr(r, SCORE_COL)):.3g}</td><td>{delta}</td>"
                        f"<td class='why'>{_esc(display_explanation(getattr(r, EXPLANATION_COL), self.scenario.history_verb))}</td></tr>")
        self.recs.value = ("<table class='recapp-t'><tr><th>#</th><th>title</th><th>score</th><th>Δ</th><th>why</th></tr>"
                           + "".join(rows) + "</table>")

    def _render_feed(self) -> None:
        if not self._feed:
            self.feed.value = "<i style='color:#888'>Press ▶ to stream this user's events.</i>"
            return
        rows = []
        for ev in self._feed:
            kind = ev[EVENT_COL]
            label = kind + (f" ★{ev['rating']:g}" if kind == "rating" and "rating" in ev else "")
            label += " · from recs" if ev.get("source") == "recommendation" else ""
            rows.append(f"<tr><td class='nw'>{_fmt_time(ev[TIME_COL])}</td><td class='nw'><span class='badge {_esc(kind)}'>{_esc(label)}</span></td>"
                        f"<td>{_esc(self.scenario.title(ev[ITEM_COL]))}</td></tr>")
        self.feed.value = "<table class='recapp-t'><tr><th>time</th><th>event</th><th>item</th></tr>" + "".join(rows) + "</table>"

    def _render_figure(self) -> None:
        s = self._series
        x = list(s["x"])
        with self.fig.batch_update():
            self.fig.data[0].x, self.fig.data[0].y = x, _gaps(list(s["hit"]))
            self.fig.data[1].x, self.fig.data[1].y = x, _gaps(list(s["engine"]))
            self.fig.data[2].x, self.fig.data[2].y = x, _gaps(list(s["tick"]))
            self.fig.data[3].x, self.fig.data[3].y = (x, _gaps(list(s["ctr"]))) if self.source == "simulated" else ([], [])
            self.fig.layout.annotations[-1].visible = self.source != "simulated"

    # ---- A/B tab -------------------------------------------------------------------------------
    def reset_ab(self) -> None:
        """Stop the A/B clock and forget its traffic (the policies are reloaded on the next play)."""
        self.ab_play.playing = False
        self.ab_play.value = 0
        self.ab = None
        self.ab_ms = []
        self._last_tick.pop("ab", None)
        with self.ab_fig.batch_update():
            for tr in self.ab_fig.data:
                tr.x, tr.y = [], []
        self.ab_summary.value = "<i>Press play to send simulated shoppers to both policies.</i>"

    def _on_ab_tick(self, change) -> None:
        if change["new"] == 0 or change["new"] < change["old"] or self._late(self.ab_play, "ab"):
            return
        t0 = time.perf_counter()
        self.step_ab()
        self.ab_ms.append((time.perf_counter() - t0) * 1000)
        self._pace(self.ab_play, self.ab_ms)

    def step_ab(self) -> dict:
        """One tick of A/B traffic and a redraw of the CTR bands."""
        if self.ab is None:
            if "simulated" not in self._scenarios:
                self._scenarios["simulated"] = self._scenario_factories["simulated"]()
            sc = self._scenarios["simulated"]
            a, b = self.ab_a.value, self.ab_b.value
            self.ab = ABSimulation(sc, {a: self._model(a, sc), b: self._model(b, sc)}, random_state=self.random_state)
        row = self.ab.step()
        h = pd.DataFrame(self.ab.history).tail(SERIES_POINTS)
        with self.ab_fig.batch_update():
            for j, arm in enumerate(("A", "B")):
                x = h["step"].tolist()
                band, line = self.ab_fig.data[2 * j], self.ab_fig.data[2 * j + 1]
                band.x = x + x[::-1]
                band.y = _gaps(h[f"high_{arm}"].tolist() + h[f"low_{arm}"].tolist()[::-1])
                line.x, line.y = x, _gaps(h[f"ctr_{arm}"].tolist())
                line.name = f"{arm}: {self.ab.names[j]}"
        cmp = self.ab.compare()
        if cmp is not None:
            verdict = "B is better" if cmp["ci_low"] > 0 else "A is better" if cmp["ci_high"] < 0 else "no clear winner yet"
            self.ab_summary.value = (
                f"A ({_esc(self.ab.names[0])}): CTR {cmp['control']:.2%} over {row['users_A']} shoppers · "
                f"B ({_esc(self.ab.names[1])}): CTR {cmp['treatment']:.2%} over {row['users_B']} shoppers<br>"
                f"B − A = {cmp['diff']:+.2%} (95% CI {cmp['ci_low']:+.2%} to {cmp['ci_high']:+.2%}, p = {cmp['pvalue']:.3g}): "
                f"<b>{verdict}</b>")
        return row


def build_app(**kwargs) -> Dashboard:
    """Build the dashboard; display the returned object (the notebook's last line does)."""
    return Dashboard(**kwargs)


def main(argv=None) -> int:
    """``python -m recapp.dashboard --prepare``: fetch data and cache the default model."""
    parser = argparse.ArgumentParser(prog="python -m recapp.dashboard", description=__doc__.split("\n\n")[0])
    parser.add_argument("--prepare", action="store_true", help="fetch the data and train and cache the default model")
    parser.add_argument("--models", nargs="*", default=[DEFAULT_MODEL], help=f"models to cache (default {DEFAULT_MODEL})")
    args = parser.parse_args(argv)
    if not args.prepare:
        parser.print_help()
        return 0
    from recapp.data.cache import DataSourceError

    try:
        prepare(models=args.models)
    except DataSourceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
