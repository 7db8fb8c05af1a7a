"""The A/B tab: two models on simulated shop traffic, with a verdict that stays valid while the analyst watches."""
from __future__ import annotations

import numpy as np
import pandas as pd

from recapp.dashboard import figures, views
from recapp.dashboard.clock import Clock
from recapp.dashboard.models import AB
from recapp.dashboard.scenarios import shop_scenario
from recapp.dashboard.session import SERIES_POINTS, make_engine

TICK_MS = 150
#: How an arm serves its model: as trained, updated from its clicks once per simulated hour,
#: or through the live engine, which folds in every click as it happens.
SERVING = {"updated hourly": "model", "live engine": "engine"}
#: How the two policies meet the shoppers: split between arms, or merged into one list per shopper.
MODES = {"A/B split": "ab", "Interleaving": "interleaving"}
#: Panel titles per mode (left, right).
TITLES = {"ab": ("CTR per arm (95% bands)", "B − A (always-valid 95% sequence)"),
          "interleaving": ("lists won by each policy", "preference for B (always-valid 95% sequence)")}
IDLE = "<i>Press play to send simulated shoppers to both policies.</i>"


def ab_figure(names=("", ""), mode: str = "ab"):
    """CTR per arm with 95% bands (left) and B − A with its always-valid confidence sequence (right).

    ``names`` are the arms' policies, shown in the legend as "A: name" and "B: name";
    ``mode`` ("ab" or "interleaving") sets the panel titles and the left axis' format.
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, subplot_titles=TITLES[mode], horizontal_spacing=0.1)
    for arm, color, name in (("A", "99,110,250", names[0]), ("B", "239,85,59", names[1])):
        fig.add_trace(go.Scatter(x=[], y=[], fill="toself", fillcolor=f"rgba({color},0.18)", line=dict(width=0),
                                 hoverinfo="skip", showlegend=False, name=f"{arm} 95%"), 1, 1)
        fig.add_trace(go.Scatter(x=[], y=[], mode="lines", line=dict(color=f"rgb({color})"),
                                 name=f"{arm}: {name}"), 1, 1)
    fig.add_trace(go.Scatter(x=[], y=[], fill="toself", fillcolor="rgba(120,120,120,0.2)", line=dict(width=0),
                             hoverinfo="skip", showlegend=False, name="sequence"), 1, 2)
    fig.add_trace(go.Scatter(x=[], y=[], mode="lines", line=dict(color="#333"), name="B − A"), 1, 2)
    fig.add_hline(y=0, line=dict(color="#c62828", width=1, dash="dot"), row=1, col=2)
    fig.update_yaxes(tickformat=".1%" if mode == "ab" else ",d", rangemode="tozero", row=1, col=1)
    fig.update_yaxes(tickformat=".1%", row=1, col=2)
    fig.update_xaxes(title_text="simulated hour")
    fig.update_layout(height=300, width=figures.WIDTH, margin=dict(l=60, r=10, t=60, b=40), template="plotly_white",
                      legend=dict(orientation="h", y=1.3, x=0))
    return go.FigureWidget(fig)


def _band(x: list, low: list, high: list) -> tuple[list, list]:
    return x + x[::-1], figures.gaps(list(high) + list(low)[::-1])


def verdict_html(row: dict, names: list) -> str:
    """The tick's numbers and verdict in words: always-valid first, the fixed-horizon test once it is due."""
    def pct(v, sign=False):
        return "–" if v is None or not np.isfinite(v) else (f"{v:+.2%}" if sign else f"{v:.2%}")

    verdict = row.get("verdict")
    if verdict is None:
        words = "no winner yet"
    else:
        winner = names[0] if verdict == "A" else names[1]
        words = f"{verdict} ({views.esc(winner)}) is better"
    parts = [f"A ({views.esc(names[0])}): CTR {pct(row['ctr_A'])} over {row['users_A']:,} shoppers · "
             f"B ({views.esc(names[1])}): CTR {pct(row['ctr_B'])} over {row['users_B']:,} shoppers",
             f"B − A = {pct(row['diff'], True)}; always-valid 95% confidence sequence "
             f"{pct(row['cs_low'], True)} to {pct(row['cs_high'], True)}, always-valid p = "
             + ("–" if row["msprt_p"] is None or not np.isfinite(row["msprt_p"]) else f"{row['msprt_p']:.3g}"),
             f"<span class='verdict'>Verdict: {words}</span>"
             + (f" (since hour {row['verdict_step']})" if row.get("verdict_step") else "")]
    vr = row.get("variance_reduction")
    if vr is not None and np.isfinite(vr):
        parts.insert(2, f"<span class='muted'>CUPED: B − A adjusted by each shopper's pre-period CTR; "
                        f"variance {vr:.0%} lower than without.</span>")
    planned = row.get("planned_users")
    if row.get("fixed_p") is None:
        have = min(row["users_A"], row["users_B"])
        parts.append(f"<span class='muted'>Fixed-horizon test: planned for {planned:,} shoppers per arm "
                     f"(80% power); {have:,} so far, so it is not read yet.</span>")
    else:
        parts.append(f"<span class='muted'>Fixed-horizon test at the planned {planned:,} shoppers per arm: "
                     f"B − A = {pct(row['fixed_diff'], True)} (95% CI {pct(row['fixed_low'], True)} to "
                     f"{pct(row['fixed_high'], True)}, p = {row['fixed_p']:.3g}).</span>")
    return "<br>".join(parts)


def interleaving_html(row: dict, names: list) -> str:
    """The tick's interleaving counts and verdict in words: always-valid first, the one-shot sign test after."""
    verdict = row.get("verdict")
    words = "no winner yet" if verdict is None else \
        f"{verdict} ({views.esc(names[0] if verdict == 'A' else names[1])}) is preferred"
    fmt = (lambda v: "–" if v is None or not np.isfinite(v) else f"{v:+.3f}")
    return "<br>".join([
        f"{row['impressions']:,} interleaved lists shown, {row['clicked']:,} with a click · "
        f"won by A ({views.esc(names[0])}): {row['wins_A']:,} · by B ({views.esc(names[1])}): {row['wins_B']:,} · "
        f"ties: {row['ties']:,}",
        f"preference for B = {fmt(row['preference'])}; always-valid 95% confidence sequence "
        f"{fmt(row['cs_low'])} to {fmt(row['cs_high'])}, always-valid p = "
        + ("–" if not np.isfinite(row["msprt_p"]) else f"{row['msprt_p']:.3g}"),
        f"<span class='verdict'>Verdict: {words}</span>"
        + (f" (since hour {row['verdict_step']})" if row.get("verdict_step") else ""),
        f"<span class='muted'>Sign test on the lists won so far (valid once, at a horizon fixed in advance, not "
        f"when read every tick): p = {row['pvalue']:.3g}.</span>"])


class ABTab:
    """Widgets for the A/B simulation; the experiment is a :class:`recapp.experiment.ABSimulation`."""

    def __init__(self, app):
        W = app.W
        self.app = app
        self.sim = None
        self._scenario = None
        #: Counts resets: a training started before a reset must not resume the test after it.
        self.generation = 0
        names = list(app.catalogue.factories)
        self.a_dd = W.Dropdown(options=names, value="Popularity" if "Popularity" in names else names[-1],
                               description="Policy A", layout=W.Layout(width="240px"))
        self.b_dd = W.Dropdown(options=names, value=names[0], description="Policy B", layout=W.Layout(width="240px"))
        self.a_serve = W.Dropdown(options=list(SERVING.items()), value="model", layout=W.Layout(width="140px"))
        self.b_serve = W.Dropdown(options=list(SERVING.items()), value="model", layout=W.Layout(width="140px"))
        self.mode_tb = W.ToggleButtons(options=list(MODES.items()), value="ab", style={"button_width": "110px"})
        self.mode_tb.add_class("recapp-ab-mode")
        self.cuped_cb = W.Checkbox(value=False, description="CUPED (pre-period CTR)", indent=False,
                                   layout=W.Layout(width="200px"))
        self.clock = Clock(W, TICK_MS, app.throttle, "recapp-ab-play")
        self.reset_btn = W.Button(description="Reset", icon="undo", layout=W.Layout(width="90px"))
        self.summary = W.HTML(IDLE)
        self.summary.add_class("recapp-ab-summary")
        self.slot = figures.FigureSlot(W, lambda: ab_figure(self._arm_names(), self.mode_tb.value))
        self.clock.on_tick(self.step, app.guarded)
        self.reset_btn.on_click(app.guarded(self._on_reset))
        for w in (self.a_dd, self.b_dd, self.a_serve, self.b_serve, self.mode_tb, self.cuped_cb):
            w.observe(app.guarded(self._on_reset), "value")
        intro = W.HTML(
            "Two policies side by side on simulated shop traffic: each tick is one simulated hour in which shoppers "
            "arrive and see one list from their arm (always the same arm), and the policies learn from the clicks. "
            "The verdict uses always-valid inference (mSPRT), so it may be read at any tick, however often you look; "
            "the fixed-horizon test is shown only once its planned sample size is reached. Each arm serves its model "
            "either as trained and updated from its clicks every simulated hour, or through the live engine, "
            "which learns from every click as it happens: the same model both ways is a test of real-time serving. "
            "Interleaving shows every shopper one list merged from both policies (team draft) and credits each click "
            "to the policy that placed the item: it needs fewer shoppers, most of all when shoppers return. "
            "CUPED adjusts each shopper's CTR by their CTR before the test (the shop's log), which narrows the "
            "interval by what that history explains.")
        controls = W.HBox([self.a_dd, self.a_serve, self.b_dd, self.b_serve, self.clock.play, self.reset_btn],
                          layout=W.Layout(align_items="center", flex_flow="row wrap"))
        self.root = W.VBox([intro, W.HBox([self.mode_tb, self.cuped_cb], layout=W.Layout(align_items="center")),
                            controls, self.slot.box, self.summary])

    @property
    def fig(self):
        """The figure the experiment draws into (a new one for each experiment)."""
        return self.slot.fig

    @property
    def play(self):
        """The A/B clock's Play widget."""
        return self.clock.play

    def stop(self) -> None:
        """Pause the experiment."""
        self.clock.stop()

    def _on_reset(self, _event) -> None:
        # The Reset button and every setting of the test: a click or a changed value.
        self.reset()

    def reset(self) -> None:
        """Stop and forget the traffic (the policies are fetched again on the next play).

        A policy still training keeps training (and is cached), but the test no longer
        resumes when it is done: press Play again. The CUPED box is disabled in interleaving
        mode, which does not use it.
        """
        self.generation += 1
        # CUPED adjusts the A/B split's per-arm CTR; interleaving ignores it, so the box must not look live.
        self.cuped_cb.disabled = self.mode_tb.value != "ab"
        self.clock.reset()
        self.sim = None
        self.slot.renew()
        self.summary.value = IDLE

    def _arm_names(self) -> list[str]:
        """The two arms' names from the settings: the model, and whether the live engine serves it."""
        keys = (self.a_dd.value, self.b_dd.value)
        modes = (self.a_serve.value, self.b_serve.value)
        names = [k if m == "model" else f"{k}, live engine" for k, m in zip(keys, modes)]
        # The same arm twice is an A/A test: the names must still differ.
        return names if names[0] != names[1] else [f"{names[0]} (A)", f"{names[1]} (B)"]

    def _resume_callback(self):
        generation = self.generation

        def resume_ab_test(_key, _model) -> None:
            if generation == self.generation and self.sim is None:
                self.clock.play.playing = True
        return resume_ab_test

    def scenario(self):
        """The synthetic shop the experiment runs in (built on first use)."""
        if self._scenario is None:
            self._scenario = shop_scenario()
        return self._scenario

    def step(self) -> dict | None:
        """One tick of A/B traffic and a redraw; fetches (or trains) the two models on the first tick."""
        from recapp.experiment import ABSimulation, EnginePolicy, InterleavingSimulation

        if self.sim is None:
            sc = self.scenario()
            keys = (self.a_dd.value, self.b_dd.value)
            models = []
            for key in keys:
                model = self.app.catalogue.ready(key, sc)
                if model is None:
                    # Trained in the background; the clock resumes from the poll when it is done,
                    # unless the test was reset meanwhile. While another model trains the app refuses
                    # and says so: press Play again when it is done.
                    self.stop()
                    self.app.request_model(key, sc, self._resume_callback(), purpose=AB)
                    return None
                models.append(model)
            modes = (self.a_serve.value, self.b_serve.value)
            names = self._arm_names()
            self.slot.renew()          # legend and titles from the settings this experiment runs with
            policies = [EnginePolicy(make_engine(m, sc), name=n) if mode == "engine" else m
                        for m, mode, n in zip(models, modes, names)]
            if self.mode_tb.value == "ab":
                self.sim = ABSimulation(sc, dict(zip(names, policies)), random_state=self.app.random_state,
                                        cuped=self.cuped_cb.value)
            else:
                self.sim = InterleavingSimulation(sc, dict(zip(names, policies)), random_state=self.app.random_state)
        row = self.sim.step()
        h = pd.DataFrame(self.sim.history).tail(SERIES_POINTS)
        x = h["step"].tolist()
        ab = self.mode_tb.value == "ab"
        with self.fig.batch_update():
            for j, arm in enumerate(("A", "B")):
                band, line = self.fig.data[2 * j], self.fig.data[2 * j + 1]
                band.x, band.y = _band(x, h[f"low_{arm}"].tolist(), h[f"high_{arm}"].tolist()) if ab else ([], [])
                line.x, line.y = x, figures.gaps(h[f"ctr_{arm}" if ab else f"wins_{arm}"].tolist())
            self.fig.data[4].x, self.fig.data[4].y = _band(x, h["cs_low"].tolist(), h["cs_high"].tolist())
            self.fig.data[5].x, self.fig.data[5].y = x, figures.gaps(h["diff" if ab else "preference"].tolist())
        self.summary.value = (verdict_html if ab else interleaving_html)(row, self.sim.names)
        return row
