"""HTML for the dashboard's panels: pure functions from data to markup (escaped), no widgets."""
from __future__ import annotations

import html

import numpy as np
import pandas as pd

from recapp.realtime.engine import EXPLANATION_COL, RANK_CHANGE_COL
from recapp.schema import EVENT_COL, ITEM_COL, RANK_COL, SCORE_COL, TIME_COL

#: Entries in the Live tab's User list: a huge log's every shopper would take seconds to list and
#: megabytes to send to the browser; any other id can still be typed.
USER_OPTIONS = 1000
#: The data report warns when more than this share of replayed shoppers (or replayed events' items)
#: is unknown to the training split: the Live and Stream tabs would then show mostly cold starts.
COLD_SHARE = 0.5

CSS = """
<style>
.recapp-app {font-family: system-ui, -apple-system, 'Segoe UI', sans-serif; font-size: 13px;}
.recapp-app table.recapp-t {border-collapse: collapse; width: 100%;}
.recapp-app table.recapp-t th {text-align: left; color: #555; font-weight: 600; border-bottom: 1px solid #ddd; padding: 3px 6px;}
.recapp-app table.recapp-t td {padding: 3px 6px; border-bottom: 1px solid #f0f0f0; vertical-align: top;}
.recapp-app td.nw {white-space: nowrap;} .recapp-app td.num {text-align: right; font-variant-numeric: tabular-nums;}
.recapp-app .up {color: #1a7f37; font-weight: 600;} .recapp-app .down {color: #c62828; font-weight: 600;}
.recapp-app .new {color: #1565c0; font-weight: 600;} .recapp-app .same {color: #999;}
.recapp-app .why {color: #666; font-size: 12px;} .recapp-app .muted {color: #777;}
.recapp-app .badge {display: inline-block; padding: 0 6px; border-radius: 8px; background: #eef; font-size: 11px;}
.recapp-app .badge.click {background: #e3f6e8;} .recapp-app .badge.rating {background: #fff4d6;}
.recapp-app .kpi {display: inline-block; min-width: 110px; margin: 0 14px 6px 0;}
.recapp-app .kpi b {display: block; font-size: 18px;}
.recapp-app .verdict {font-size: 15px; font-weight: 600;}
.recapp-msg {padding: 6px 10px; border-radius: 4px; margin: 4px 0;}
.recapp-msg.info {background: #e8f1fb; color: #0b3d6b;} .recapp-msg.warn {background: #fff4d6; color: #6b4e00;}
.recapp-msg.problem {background: #fdecea; color: #7f1d1d;}
</style>
"""


def esc(s) -> str:
    """HTML-escaped text."""
    return html.escape(str(s))


def fmt_time(ts: float) -> str:
    """UTC seconds as ``YYYY-MM-DD HH:MM``."""
    return pd.Timestamp(float(ts), unit="s", tz="UTC").strftime("%Y-%m-%d %H:%M")


def message(text: str, level: str = "info") -> str:
    """A message box; ``level`` is info, warn or problem (red). Empty text gives no box."""
    return f"<div class='recapp-msg {esc(level)}'>{esc(text)}</div>" if text else ""


def display_explanation(text: str, verb: str = "viewed") -> str:
    """The engine's reason in the dashboard's words: "because of X" reads "because you <verb> X"."""
    text = str(text)
    return f"because you {verb} " + text[len("because of "):] if text.startswith("because of ") else text


def duration(seconds: float) -> str:
    """``seconds`` as the page says it: "42 s", "3 min 05 s", "2 h 01 min"."""
    s = int(max(0.0, seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def _share(part: int, whole: int) -> str:
    return f"{part:,} of {whole:,} ({part / whole:.0%})" if whole else "0 of 0"


def coverage(cover: dict | None) -> tuple[str, list]:
    """A replay's coverage (:meth:`Scenario.replay_coverage`) as ``(line, warnings)``; warnings when most is unknown."""
    if not cover:
        return "", []
    (users, n_users), (events, n_events) = cover["users"], cover["events"]
    line = (f"the training split knows {_share(users, n_users)} replayed shoppers and the items of "
            f"{_share(events, n_events)} replayed events")
    warnings = []
    if n_users - users > COLD_SHARE * n_users:
        warnings.append(f"{_share(n_users - users, n_users)} replayed shoppers have no events before the time split: "
                        "the model does not know them, so the Live and Stream tabs serve them popular items "
                        "(a cold start) until their own events arrive, and the Stream tab's hit rates count those lists too.")
    if n_events - events > COLD_SHARE * n_events:
        warnings.append(f"{_share(n_events - events, n_events)} replayed events are of items with no events before "
                        "the time split: the model never learned them, so the lists can hold them only once they "
                        "are popular in the replay.")
    return line, warnings


def data_report(scenario) -> str:
    """How the selected data was read: rows kept and dropped by reason, the time split, how much of the replay the
    training split knows (with a warning when most of it is unknown), and how many users the list holds."""
    known, warnings = coverage(scenario.replay_coverage())
    lines = [f"<b>{esc(scenario.label)}</b>"] + [esc(n) for n in scenario.notes] + ([esc(known)] if known else [])
    if len(scenario.users) > USER_OPTIONS:
        lines.append(f"the User list holds the first {USER_OPTIONS:,} of {len(scenario.users):,} users "
                     "(most interesting first); type any other user's id")
    report = scenario.report
    if report is not None and report.n_dropped:
        reasons = "".join(f"<tr><td>{esc(r)}</td><td class='num'>{n:,}</td></tr>" for r, n in report.counts().items())
        lines.append(f"<table class='recapp-t' style='width:auto'><tr><th>dropped because</th><th>rows</th></tr>{reasons}</table>")
    if report is not None and report.renamed:
        lines.append("columns read as: " + esc(", ".join(f"{a} → {b}" for a, b in report.renamed.items())))
    return "<div class='muted'>" + "<br>".join(lines) + "</div>" + "".join(message(w, "warn") for w in warnings)


def profile(scenario, user_id, model_label: str) -> str:
    """The shopper's summary line, favourite tags and last five training events."""
    row = scenario.users.loc[user_id]
    hist = scenario.history(user_id)
    tags = ""
    if scenario.item_tags is not None and len(hist):
        t = scenario.item_tags.reindex(hist[ITEM_COL]).dropna().astype(str).str.split("|").explode()
        top = [g for g in t.value_counts().index[:3] if g]
        tags = f" · likes {', '.join(top)}" if top else ""
    items = []
    for ev in hist.tail(5).iloc[::-1].to_dict("records"):
        stars = f" ★{ev['rating']:g}" if pd.notna(ev.get("rating", np.nan)) else ""
        items.append(f"{esc(scenario.title(ev[ITEM_COL]))}{stars}")
    recent = "; ".join(items) if items else "<i>no history before this session: a cold start</i>"
    return (f"<div><b>User {esc(user_id)}</b> · {esc(row['summary'])}{esc(tags)} "
            f"<span style='color:#888'>({esc(scenario.label)}, model {esc(model_label)})</span><br>"
            f"<span style='color:#555'>Recent history:</span> {recent}</div>")


def _delta(change, first: bool) -> str:
    if first:
        return "<span class='same'>·</span>"   # the session's first list: nothing to compare with
    if pd.isna(change):
        return "<span class='new'>new</span>"
    if change > 0:
        return f"<span class='up'>▲{int(change)}</span>"
    if change < 0:
        return f"<span class='down'>▼{int(-change)}</span>"
    return "<span class='same'>=</span>"


def recommendations(scenario, recs: pd.DataFrame, first: bool) -> str:
    """The top-k table: rank, label, score, rank change and the reason."""
    rows = []
    for r in recs.itertuples(index=False):
        why = display_explanation(getattr(r, EXPLANATION_COL), scenario.history_verb)
        rows.append(f"<tr><td>{int(getattr(r, RANK_COL))}</td><td>{esc(scenario.title(getattr(r, ITEM_COL)))}</td>"
                    f"<td>{float(getattr(r, SCORE_COL)):.3g}</td><td>{_delta(getattr(r, RANK_CHANGE_COL), first)}</td>"
                    f"<td class='why'>{esc(why)}</td></tr>")
    return ("<table class='recapp-t'><tr><th>#</th><th>item</th><th>score</th><th>Δ</th><th>why</th></tr>"
            + "".join(rows) + "</table>")


def feed(scenario, events) -> str:
    """The latest events, newest first."""
    if not events:
        return "<i style='color:#888'>Press ▶ to stream this user's events.</i>"
    rows = []
    for ev in events:
        kind = ev[EVENT_COL]
        label = kind + (f" ★{ev['rating']:g}" if kind == "rating" and "rating" in ev else "")
        label += " · from recs" if ev.get("source") == "recommendation" else ""
        rows.append(f"<tr><td class='nw'>{fmt_time(ev[TIME_COL])}</td><td class='nw'><span class='badge {esc(kind)}'>"
                    f"{esc(label)}</span></td><td>{esc(scenario.title(ev[ITEM_COL]))}</td></tr>")
    return "<table class='recapp-t'><tr><th>time</th><th>event</th><th>item</th></tr>" + "".join(rows) + "</table>"


def status(bits) -> str:
    """A grey status line of ``bits`` joined by dots."""
    return f"<span style='color:#666'>{esc(' · '.join(bits))}</span>"


def training(label: str, elapsed: float, progress: float | None, where: str = "on this data") -> str:
    """What the page says while a model trains; ``where`` says on what or for what (default "on this data")."""
    share = f", {progress:.0%} of its epochs" if progress is not None else ""
    return f"Training {label} {where}… {duration(elapsed)}{share}. The page stays usable; the model is cached when done."


def _kpi(label: str, value: str) -> str:
    return f"<span class='kpi'><span class='muted'>{esc(label)}</span><b>{esc(value)}</b></span>"


def _num(v, fmt: str) -> str:
    return "–" if v is None or (isinstance(v, float) and not np.isfinite(v)) else format(v, fmt)


def operations(scenario, rec: dict, k: int, tick_ms=()) -> str:
    """The Stream tab's counters, "popular now" list and rejected events by reason; ``tick_ms`` the page's tick times."""
    ticks = np.asarray(tick_ms, dtype=float)
    tick = (f"{np.percentile(ticks, 50):.0f} / {np.percentile(ticks, 99):.0f} ms") if len(ticks) else "–"
    kpis = "".join([_kpi("tick p50 / p99", tick),
        _kpi("events", f"{rec['n_events']:,}"), _kpi("events / s", _num(rec["events_per_s"], ".0f")),
        _kpi("latency p50", _num(rec["latency_p50_ms"], ".2f") + " ms"),
        _kpi("latency p99", _num(rec["latency_p99_ms"], ".2f") + " ms"),
        _kpi(f"HR@{k} live", _num(rec["hr_live"], ".3f")), _kpi(f"HR@{k} static", _num(rec["hr_static"], ".3f")),
        _kpi("new shoppers", f"{rec['new_users']:,}"), _kpi("new items", f"{rec['new_items']:,}"),
    ])
    popular = "".join(f"<tr><td>{i + 1}</td><td>{esc(scenario.title(item))}</td></tr>"
                      for i, item in enumerate(rec["popular"][ITEM_COL].tolist()))
    rejected = rec["rejected"]
    if len(rejected):
        rej = "".join(f"<tr><td>{esc(r)}</td><td class='num'>{n:,}</td></tr>" for r, n in rejected.items())
        rej = f"<table class='recapp-t'><tr><th>rejected because</th><th>events</th></tr>{rej}</table>"
    else:
        rej = "<span class='muted'>No events rejected (the store's quarantine is empty and the live model read every event).</span>"
    return (f"<div>{kpis}</div><div style='display:flex;gap:24px'><div style='flex:1'><b>Popular now</b>"
            f"<table class='recapp-t'>{popular}</table></div><div style='flex:1'><b>Rejected events</b><br>{rej}</div></div>")
