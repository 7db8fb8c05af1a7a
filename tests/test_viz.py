"""Fast unit tests of recapp.viz (figures are built, never shown) and recapp.profile."""
import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from recapp import profile, viz


@pytest.fixture
def events():
    # 4 users, 3 items; user 1 runs the whole funnel on item 10.
    return pd.DataFrame({
        "user_id": [1, 1, 1, 1, 2, 2, 3, 4, 4, 4],
        "item_id": [10, 10, 10, 10, 10, 11, 10, 12, 11, 11],
        "timestamp": 1_704_067_200.0 + np.arange(10) * 7_200.0,   # 2024-01-01 00:00 UTC, every 2 hours
        "event": ["view", "click", "cart", "purchase", "view", "view", "view", "view", "view", "click"],
        "rating": [5.0, 4.0, 3.0, 5.0, 1.0, 2.0, 4.0, 4.0, 5.0, 3.0],
    })


@pytest.fixture
def table():
    return pd.DataFrame({"model": ["Popularity", "EASE", "ItemKNN"], "ndcg@10": [0.25, 0.48, 0.43],
                         "precision@10": [0.2, 0.4, 0.37], "coverage": [0.05, 0.3, 0.25], "novelty": [9.0, 10.5, 10.1],
                         "train_s": [0.1, 2.0, 1.0]})


def test_profile_settings(monkeypatch):
    monkeypatch.setenv("RECAPP_PROFILE", "ci")
    assert profile.profile() == "ci" and profile.is_ci()
    assert profile.settings(ci=1, full=2) == 1
    monkeypatch.setenv("RECAPP_PROFILE", " CI ")
    assert profile.is_ci()
    for value in ("full", "", "anything"):
        monkeypatch.setenv("RECAPP_PROFILE", value)
        assert profile.profile() == "full" and profile.settings(ci=1, full=2) == 2
    monkeypatch.delenv("RECAPP_PROFILE")
    assert profile.settings(ci={"n": 1}, full={"n": 2}) == {"n": 2}


def test_dataset_summary(events):
    s = viz.dataset_summary(events)
    assert s["events"] == 10 and s["users"] == 4 and s["items"] == 3
    assert s["user-item pairs"] == 6
    assert s["density"] == round(6 / 12, 4)
    assert s["view events"] == 6 and s["purchase events"] == 1 and "rating events" not in s.index
    assert s["first event"] == "2024-01-01" and s["mean rating"] == 3.6


def test_activity_counts_and_head_share(events):
    items = viz.activity_counts(events, "item")
    assert items.index.tolist() == [10, 11, 12] and items.tolist() == [6, 3, 1]
    assert viz.activity_counts(events, "user").iloc[0] == 4
    assert viz.head_share(items, 1 / 3) == pytest.approx(0.6)
    assert viz.head_share(np.array([5, 5, 5, 5]), 0.5) == pytest.approx(0.5)
    assert viz.head_share([], 0.2) == 0.0
    with pytest.raises(ValueError, match="by='shop'"):
        viz.activity_counts(events, "shop")
    with pytest.raises(ValueError, match="head"):
        viz.head_share(items, 0.0)


def test_funnel_counts(events):
    f = viz.funnel_counts(events)
    assert f.index.tolist() == ["view", "click", "cart", "purchase"]
    assert f["events"].tolist() == [6, 2, 1, 1]
    assert f["users"].tolist() == [4, 2, 1, 1]
    assert f["step_rate"].tolist() == [1.0, round(2 / 6, 4), 0.5, 1.0]
    assert f["overall_rate"].iloc[-1] == round(1 / 6, 4)


def test_by_history(events):
    per_user = pd.DataFrame({"user_id": [1, 2, 99], "ndcg_at_k": [1.0, 0.5, 0.0]})
    out = viz.by_history(per_user, events, bins=(0, 1, 3, np.inf))
    assert out["n_train"].tolist() == [4, 2, 0]
    assert out["history"].astype(str).tolist() == ["3+", "1-2", "cold (0)"]
    assert out["history"].cat.ordered and list(out["history"].cat.categories) == ["cold (0)", "1-2", "3+"]
    with pytest.raises(ValueError, match="increasing"):
        viz.by_history(per_user, events, bins=(0, 5, 2))


def test_bandit_summary_and_click_rates():
    rounds = pd.DataFrame({"timestamp": [0.0, 60.0, 120.0, 180.0], "item_id": [0, 1, 1, 2], "position": [1, 2, 1, 3],
                           "click": [0, 1, 0, 1], "propensity_score": [0.5, 0.25, 0.25, 0.125]})
    s = viz.bandit_summary(rounds)
    assert (s["rounds"], s["actions"], s["positions"], s["clicks"]) == (4, 3, 3, 2)
    assert s["click rate"] == 0.5 and s["propensity min"] == 0.125 and s["propensity max"] == 0.5
    fig = viz.bandit_click_rates({"a": rounds, "b": rounds}, by="position")
    assert len(fig.data) == 2 and list(fig.data[0].x) == ["1", "2", "3"]
    assert list(fig.data[0].y) == [0.0, 1.0, 1.0]


def test_data_figures(events):
    for fig in (viz.long_tail(events), viz.long_tail(events, by="user"), viz.rating_histogram(events),
                viz.event_funnel(events), viz.event_funnel(events, unit="users"), viz.time_patterns(events),
                viz.time_patterns(events, freq="W")):
        assert isinstance(fig, go.Figure) and len(fig.data) >= 1 and fig.layout.title.text
    lt = viz.long_tail(events)
    assert list(lt.data[0].y) == [6, 3, 1] and lt.data[1].y[-1] == pytest.approx(1.0)
    assert "top 20% of items account for 60%" in lt.layout.title.text
    funnel = viz.event_funnel(events)
    assert list(funnel.data[0].x) == [6, 2, 1, 1]
    tp = viz.time_patterns(events)
    heat = [t for t in tp.data if isinstance(t, go.Heatmap)][0]
    assert np.asarray(heat.z).shape == (7, 24) and np.asarray(heat.z).sum() == len(events)
    assert {t.name for t in tp.data if isinstance(t, go.Scatter)} == {"view", "click", "cart", "purchase"}
    hist = viz.rating_histogram(events)
    assert list(hist.data[0].y) == [1, 1, 2, 3, 3]
    with pytest.raises(ValueError, match="unit"):
        viz.event_funnel(events, unit="sessions")
    with pytest.raises(ValueError, match="rating"):
        viz.rating_histogram(events.drop(columns="rating"))


def test_benchmark_figures(table):
    bars = viz.benchmark_bars(table)
    assert [t.name for t in bars.data] == ["ndcg@10", "precision@10"]
    assert list(bars.data[0].x) == ["EASE", "ItemKNN", "Popularity"]   # best first
    scatter = viz.accuracy_vs_beyond(table)
    assert len(scatter.data) == 2   # diversity is absent and skipped
    assert list(scatter.data[0].y) == [0.25, 0.48, 0.43] and list(scatter.data[0].text) == ["Popularity", "EASE", "ItemKNN"]
    with pytest.raises(ValueError, match="beyond-accuracy"):
        viz.accuracy_vs_beyond(table, beyond=("serendipity",))
    with pytest.raises(ValueError, match="missing"):
        viz.benchmark_bars(table, metrics=["recall@10"])


def test_metric_by_group():
    frame = pd.DataFrame({"history": pd.Categorical(["cold", "cold", "warm", "warm"], ["cold", "warm"], ordered=True),
                          "model": ["A", "A", "A", "A"], "ndcg_at_k": [0.0, 0.2, 0.5, 0.7]})
    fig = viz.metric_by_group(frame, color="model")
    assert len(fig.data) == 1 and list(fig.data[0].x) == ["cold", "warm"]
    assert np.allclose(fig.data[0].y, [0.1, 0.6])
    assert list(fig.data[0].customdata) == [2, 2]


class _Log:
    """Stands in for a torch model's ``train_log_``: anything with ``to_frame()`` -> epoch, loss, valid."""

    def to_frame(self):
        return pd.DataFrame({"epoch": [1, 2, 3], "loss": [4.0, 2.0, 1.0], "valid": [np.nan, 0.1, 0.2]})


def test_loss_curves():
    log = _Log()
    fig = viz.loss_curves({"BPR": log, "VAE": [10.0, 5.0], "NeuMF": pd.DataFrame({"loss": [2.0, 1.0]})})
    losses = [t for t in fig.data if t.xaxis == "x"]
    assert [t.name for t in losses] == ["BPR", "VAE", "NeuMF"]
    assert list(losses[0].y) == [1.0, 0.5, 0.25]                       # relative to epoch 1
    valid = [t for t in fig.data if t.xaxis == "x2"]
    assert len(valid) == 1 and list(valid[0].y) == [0.1, 0.2] and list(valid[0].x) == [2, 3]
    absolute = viz.loss_curves({"VAE": [10.0, 5.0]}, relative=False)
    assert list(absolute.data[0].y) == [10.0, 5.0] and len(absolute.data) == 1


def test_per_user_by_history(events):
    from recapp.models import Popularity

    train = events[events["user_id"] != 4]
    test = pd.DataFrame({"user_id": [1, 4], "item_id": [11, 10], "timestamp": [0.0, 0.0], "event": ["view", "view"]})
    out = viz.per_user_by_history({"pop": Popularity().fit(train)}, train, test, k=2, bins=(0, 1, np.inf))
    assert out["model"].tolist() == ["pop", "pop"]
    assert out.set_index("user_id")["history"].astype(str).to_dict() == {1: "1+", 4: "cold (0)"}
    assert out.set_index("user_id")["hit_rate_at_k"].to_dict() == {1: 1.0, 4: 1.0}
    with pytest.raises(ValueError, match="empty"):
        viz.per_user_by_history({}, train, test)


def test_replay_latencies_and_percentiles(events):
    from recapp.models import Popularity
    from recapp.realtime import Engine

    engine = Engine(Popularity().fit(events), k=2)
    new = pd.DataFrame({"user_id": [9, 9, 1], "item_id": [12, 11, 12], "timestamp": [3.0, 1.0, 2.0],
                        "event": ["view", "view", "click"]})
    lat = viz.replay_latencies(engine, new, k=2)
    assert lat["user_id"].tolist() == [9, 1, 9] and lat["item_id"].tolist() == [11, 12, 12]   # time order
    assert (lat[["ingest_s", "recommend_s"]] > 0).all().all()
    assert np.allclose(lat["total_s"], lat["ingest_s"] + lat["recommend_s"])
    assert engine.stats()["events_ingested"] == 3
    table = viz.latency_percentiles({"a": [0.001, 0.002, 0.003], "b": []})
    assert table.loc["a", "p50"] == pytest.approx(2.0) and table.loc["a", "max"] == pytest.approx(3.0)
    assert table.loc["a", "events"] == 3 and np.isnan(table.loc["b", "p99"])
    with pytest.raises(ValueError, match="unit"):
        viz.latency_percentiles({"a": [1.0]}, unit="s")
