"""The shopper simulator: determinism, the choice model, the funnel, policies (Recommender and engine), drift, A/B runs."""
import numpy as np
import pandas as pd
import pytest

from recapp.data import synthetic_shop
from recapp.experiment import abtest
from recapp.experiment.simulator import (
    EnginePolicy,
    Policy,
    RandomPolicy,
    RecommenderPolicy,
    ShopperSimulator,
    as_policy,
    feedback_to_events,
)
from recapp.models import EASE, Popularity
from recapp.realtime import Engine
from recapp.schema import validate


@pytest.fixture(scope="module")
def shop():
    return synthetic_shop(n_users=400, n_items=200, n_events=20_000, random_state=0)


@pytest.fixture(scope="module")
def sim(shop):
    return ShopperSimulator.from_synthetic(shop, k=5, target_ctr=0.1, random_state=0)


def test_runs_are_deterministic_and_share_arrivals(sim):
    a = sim.run(RandomPolicy(random_state=1), n_steps=5, sessions_per_step=40)
    b = sim.run(RandomPolicy(random_state=1), n_steps=5, sessions_per_step=40)
    pd.testing.assert_frame_equal(a.impressions, b.impressions)
    # Another policy meets the same shoppers in the same order (common random numbers)...
    c = sim.run(RandomPolicy(random_state=2), n_steps=5, sessions_per_step=40)
    assert (a.slates["user_id"].to_numpy() == c.slates["user_id"].to_numpy()).all()
    assert not (a.impressions["item_id"].to_numpy() == c.impressions["item_id"].to_numpy()).all()
    # ...and another simulator seed meets other shoppers.
    other = ShopperSimulator.from_synthetic(synthetic_shop(n_users=400, n_items=200, n_events=20_000, random_state=0), k=5, random_state=9)
    d = other.run(RandomPolicy(random_state=1), n_steps=5, sessions_per_step=40)
    assert not (len(a.slates) == len(d.slates) and (a.slates["user_id"].to_numpy() == d.slates["user_id"].to_numpy()).all())


def test_choice_model_has_position_bias_and_a_no_click_option(sim):
    users = sim.user_ids[:50]
    same = np.tile(np.full(sim.k, 7), (50, 1))              # the same item in every slot
    p = sim.click_probabilities(users, same)
    assert (np.diff(p, axis=1) < 0).all()                   # lower slots are examined less
    assert (p.sum(axis=1) < 1).all()                        # room for "no click"
    # A random slate is clicked at about target_ctr; the oracle's slate much more often.
    res = sim.run(RandomPolicy(), n_steps=20, sessions_per_step=100)
    assert res.summary()["slate_ctr"].iloc[0] == pytest.approx(0.1, abs=0.025)
    best = sim.run(sim.oracle(), n_steps=20, sessions_per_step=100).summary().iloc[0]
    assert best["slate_ctr"] > 2.5 * res.summary()["slate_ctr"].iloc[0]
    assert best["regret"] == pytest.approx(0.0, abs=1e-9)
    assert (res.slates["regret"] >= -1e-12).all()


def test_funnel_revenue_sessions_and_event_log(sim, shop):
    res = sim.run(RandomPolicy(), n_steps=10, sessions_per_step=100)
    imp = res.impressions
    assert (imp["cart"] <= imp["click"]).all() and (imp["purchase"] <= imp["cart"]).all()
    assert imp.groupby("request").ngroups > 0
    bought = imp[imp["purchase"] == 1]
    assert len(bought) > 0
    price = shop.items.set_index("item_id")["price"]
    assert np.allclose(bought["revenue"], price.loc[bought["item_id"]].to_numpy())
    # At most one click per slate (a multinomial choice).
    assert imp.groupby(["step", "session", "slate"])["click"].sum().max() <= 1
    # Sessions hold several slates and shoppers come back.
    s = res.summary().iloc[0]
    assert s["slates"] > s["sessions"] and s["returning_share"] > 0.2
    # The event log is a valid schema log whose funnel matches the impressions.
    clean, report = validate(res.events.drop(columns="arm"), drop_duplicates=False)
    assert report.n_dropped == 0
    counts = clean["event"].value_counts()
    assert counts["view"] == len(imp) and counts["click"] == imp["click"].sum() and counts["purchase"] == imp["purchase"].sum()
    f = res.funnel().set_index("stage")["count"]
    assert f["view"] >= f["click"] >= f["cart"] >= f["purchase"]


def test_recommenders_are_policies_and_better_models_earn_more(sim, shop):
    ease = as_policy(EASE(l2=200.0).fit(shop.events))
    assert isinstance(ease, RecommenderPolicy)
    pop = RecommenderPolicy(Popularity().fit(shop.events), update=None)
    kw = dict(n_steps=10, sessions_per_step=60)
    r_ease = sim.run(ease, **kw).summary().iloc[0]
    r_pop = sim.run(pop, **kw).summary().iloc[0]
    r_rand = sim.run(RandomPolicy(), **kw).summary().iloc[0]
    assert r_ease["expected_clicks"] > r_pop["expected_clicks"] > r_rand["expected_clicks"]
    assert r_ease["regret"] < r_rand["regret"]


def test_recommender_policy_learns_from_feedback(shop):
    sim = ShopperSimulator.from_synthetic(shop, k=5, random_state=1)
    model = EASE(l2=200.0).fit(shop.events)
    n_before = len(model.interactions_)
    res = sim.run(RecommenderPolicy(model, update="slate"), n_steps=3, sessions_per_step=30)
    fed = res.impressions[["click", "cart", "purchase"]].to_numpy().sum()
    assert len(model.interactions_) == n_before + fed
    # A clicked item is in the shopper's history now, so exclude_seen keeps it off their next slate.
    clicked = res.impressions[res.impressions["click"] == 1].iloc[0]
    again = model.recommend([clicked["user_id"]], k=5)
    assert clicked["item_id"] not in set(again["item_id"])


class FakeEngine:
    """Stands in for recapp.realtime.Engine: recommend(user_id, k) and ingest(event)."""

    def __init__(self, items):
        self.items = list(items)
        self.ingested = []

    def recommend(self, user_id, k=10):
        clicked = {e["item_id"] for e in self.ingested if e["user_id"] == user_id}
        return [{"item_id": i, "score": 1.0} for i in self.items if i not in clicked][:k]

    def ingest(self, event):
        self.ingested.append(event)


def test_engine_adapter(sim):
    engine = FakeEngine(sim.item_ids[:20])
    with pytest.raises(TypeError, match="EnginePolicy"):
        as_policy(engine)          # an engine of one's own is wrapped explicitly
    pol = EnginePolicy(engine)
    res = sim.run(pol, n_steps=4, sessions_per_step=30)
    assert len(engine.ingested) == res.impressions[["click", "cart", "purchase"]].to_numpy().sum() > 0
    assert {"user_id", "item_id", "timestamp", "event", "value"} <= set(engine.ingested[0])
    assert set(res.impressions["item_id"]) <= set(sim.item_ids[:20].tolist())


def test_drift_moves_tastes_away_from_a_fixed_oracle(shop):
    still = ShopperSimulator.from_synthetic(shop, k=5, random_state=0)
    moving = ShopperSimulator.from_synthetic(shop, k=5, drift=0.15, random_state=0)
    r_still = still.run(still.oracle(), n_steps=15, sessions_per_step=40).slates
    r_move = moving.run(moving.oracle(), n_steps=15, sessions_per_step=40).slates
    assert r_still["regret"].abs().max() < 1e-9
    late = r_move[r_move["step"] >= 10]["regret"].mean()
    early = r_move[r_move["step"] < 3]["regret"].mean()
    assert late > early and late > 0.01


def test_truth_from_a_model_fitted_on_a_log(shop):
    truth = EASE(l2=300.0).fit(shop.events)
    sim = ShopperSimulator.from_model(truth, prices=shop.items.set_index("item_id")["price"], k=5, random_state=0)
    n_users, n_items = shop.events["user_id"].nunique(), shop.events["item_id"].nunique()
    assert sim.utility_.shape == (n_users, n_items) and sim.user_context_.shape[1] == 9
    res = sim.run(RandomPolicy(), n_steps=5, sessions_per_step=50)
    assert res.summary()["revenue"].iloc[0] > 0
    assert sim.run(sim.oracle(), n_steps=5, sessions_per_step=50).summary()["slate_ctr"].iloc[0] > res.summary()["slate_ctr"].iloc[0]


def test_ab_run_end_to_end(sim, shop):
    policies = {"control": RandomPolicy(random_state=3),
                "treatment": RecommenderPolicy(EASE(l2=200.0).fit(shop.events), update=None)}
    res = sim.run_ab(policies, n_steps=12, sessions_per_step=100, salt="exp-7")
    # Assignment is the hashed one: every shopper's arm in the log is their assigned arm.
    expected = abtest.assign(sim.user_ids, ["control", "treatment"], salt="exp-7")
    seen = res.slates.groupby("user_id")["arm"].first()
    assert (seen == expected.loc[seen.index]).all()
    per_user = res.user_metrics()
    assert not abtest.srm_check(per_user["arm"]).mismatch
    table = abtest.analyze(per_user, control="control").set_index("metric")
    assert table.loc["ctr", "significant"] and table.loc["ctr", "diff"] > 0


def test_bad_policies_are_reported(sim):
    class Short(Policy):
        def slates(self, users, k):
            return np.zeros((len(users), k - 1), dtype=int)
    with pytest.raises(ValueError, match="shape"):
        sim.run(Short(), n_steps=1, sessions_per_step=5)
    with pytest.raises(TypeError, match="not a policy"):
        as_policy(object())

    class SlatesOnly:                 # converts itself into something without reset / observe / end_step
        def as_policy(self):
            return self

        def slates(self, users, k):
            return np.zeros((len(users), k), dtype=int)
    with pytest.raises(TypeError, match="returned a SlatesOnly, not a Policy"):
        sim.run(SlatesOnly(), n_steps=1, sessions_per_step=5)
    assert feedback_to_events(pd.DataFrame({"user_id": [], "item_id": [], "timestamp": [], "click": [], "cart": [],
                                            "purchase": [], "revenue": []})).empty


@pytest.mark.parametrize("batch", [False, True])
def test_the_realtime_engine_runs_in_the_simulator(sim, shop, batch):
    engine = Engine(EASE(l2=200.0).fit(shop.events), k=5, explain=False)
    pol = as_policy(engine, batch=batch)
    assert isinstance(pol, EnginePolicy)
    res = sim.run(pol, n_steps=4, sessions_per_step=30)
    fed = int(res.impressions[["click", "cart", "purchase"]].to_numpy().sum())
    assert fed > 0 and engine.n_ingested_ == fed
    assert res.summary()["slate_ctr"].iloc[0] > 0.1


def test_funnel_figure(sim):
    from recapp.experiment import plots

    res = sim.run_ab({"a": RandomPolicy(1), "b": RandomPolicy(2)}, n_steps=3, sessions_per_step=30)
    fig = plots.funnel_plot(res.funnel())
    assert [t.name for t in fig.data] == ["a", "b"] and list(fig.data[0].y) == ["view", "click", "cart", "purchase"]


# ---- long-term effects: fatigue and churn -----------------------------------------------
class FixedSlate(Policy):
    """Shows everyone the same slate: the items a shopper tires of are known."""

    name = "fixed"

    def __init__(self, items):
        self.items = np.asarray(items)

    def slates(self, users, k):
        return np.tile(self.items[:k], (len(users), 1))


def test_without_fatigue_or_churn_a_run_is_what_it_was(shop, sim):
    # Figures of this run measured with the simulator before fatigue and churn existed.
    res = sim.run(RandomPolicy(random_state=1), n_steps=4, sessions_per_step=30)
    sl, imp = res.slates, res.impressions
    assert (len(sl), imp["click"].sum(), imp["purchase"].sum(), imp["item_id"].sum(), sl["user_id"].sum()) == (375, 23, 4, 187514, 72539)
    assert sl["expected_clicks"].sum() == pytest.approx(31.370175688619934, rel=1e-12)
    assert sl["regret"].sum() == pytest.approx(116.30838731152011, rel=1e-12)
    assert res.params["churned"].empty
    # Naming the knobs at zero changes nothing either (a half-life without fatigue is inert).
    off = ShopperSimulator.from_synthetic(shop, k=5, target_ctr=0.1, random_state=0, fatigue=0.0, churn=0.0, fatigue_half_life=5)
    pd.testing.assert_frame_equal(off.run(RandomPolicy(random_state=1), n_steps=4, sessions_per_step=30).slates, sl)


def test_fatigue_tires_a_shopper_of_the_items_they_ignored_and_no_one_else(shop, sim):
    tired_sim = ShopperSimulator.from_synthetic(shop, k=5, target_ctr=0.1, random_state=0, fatigue=0.3)
    fixed = FixedSlate(sim.item_ids[:5])
    kw = dict(n_steps=8, sessions_per_step=40)
    fresh, tired = sim.run(fixed, **kw), tired_sim.run(fixed, **kw)
    memory = tired.params["memory"]
    # The penalty is 0.3 per ignored impression of that item by that shopper, and nothing else.
    imp = tired.impressions
    ignored = imp[imp["click"] == 0].groupby(["user_id", "item_id"]).size()
    expect = np.zeros_like(memory.fatigue_)
    expect[tired_sim.user_index(ignored.index.get_level_values(0)), ignored.index.get_level_values(1)] = 0.3 * ignored.to_numpy()
    assert np.allclose(memory.fatigue_, expect, atol=1e-5) and memory.fatigue_.max() >= 0.9
    # Arrivals are shared: the same slates in the same order, but a returning shopper now clicks less...
    assert (fresh.slates["user_id"].to_numpy() == tired.slates["user_id"].to_numpy()).all()
    first = ~tired.slates.duplicated("user_id")
    assert np.allclose(tired.slates.loc[first, "expected_clicks"], fresh.slates.loc[first, "expected_clicks"])
    assert (tired.slates.loc[~first, "expected_clicks"] < fresh.slates.loc[~first, "expected_clicks"] - 1e-9).any()
    assert tired.slates["expected_clicks"].sum() < 0.9 * fresh.slates["expected_clicks"].sum()
    # ...while a shopper's first slate is untouched by what others ignored: fatigue is per shopper.
    u_tired = ignored.idxmax()[0]
    u_new = np.setdiff1d(sim.user_ids, imp["user_id"].unique())[0]
    slate = np.tile(np.arange(5), (2, 1))
    p_mem = tired_sim.click_probabilities([u_tired, u_new], slate, memory=memory)
    p_raw = tired_sim.click_probabilities([u_tired, u_new], slate)
    assert p_mem[0].sum() < 0.8 * p_raw[0].sum() and np.allclose(p_mem[1], p_raw[1])
    # The oracle judges the slate on the shopper's current, tired utilities, so regret stays >= 0,
    # also for a policy showing the fresh oracle's slates, which are the best ones until fatigue builds.
    assert (tired.slates["regret"] >= -1e-12).all()
    near_best = tired_sim.run(tired_sim.oracle(), **kw).slates
    assert (near_best["regret"] >= -1e-12).all() and (near_best["regret"] < 1e-9).any()


def test_fatigue_recovers_with_its_half_life():
    from recapp.experiment.shopper_memory import ShopperMemory

    m = ShopperMemory(3, 4, fatigue=0.5, fatigue_half_life=2.0)
    m.record(np.array([1, 1]), np.array([[0, 2], [0, 3]]), np.array([[0, 1], [0, 0]]))
    assert m.penalty(np.array([1, 0]), np.array([[0, 2, 3], [0, 2, 3]])).tolist() == [[1.0, 0.0, 0.5], [0.0, 0.0, 0.0]]
    for step in range(2):
        m.end_step(step, np.array([1]), np.array([True]), None)
    assert m.fatigue_[1, 0] == pytest.approx(0.5) and m.fatigue_[1, 3] == pytest.approx(0.25)


def test_churn_removes_shoppers_after_a_session_without_a_click(shop, sim):
    kw = dict(n_steps=10, sessions_per_step=40)
    fixed = FixedSlate(sim.item_ids[:5])
    stay = sim.run(fixed, **kw).slates
    leaving = ShopperSimulator.from_synthetic(shop, k=5, target_ctr=0.1, random_state=0, churn=1.0)
    res = leaving.run(fixed, **kw)
    sl, churned = res.slates, res.params["churned"]
    # With churn=1 a shopper whose session had no click never comes back; one with clicks in every session stays.
    per_session = sl.groupby(["user_id", "step", "session"])["clicks"].sum().reset_index()
    empty = per_session[per_session["clicks"] == 0].groupby("user_id")["step"].min()
    assert len(empty) > 20 and set(churned.index) == set(empty.index)
    assert (churned == empty.loc[churned.index]).all()
    last = sl.groupby("user_id")["step"].max()
    assert (last.loc[empty.index] == empty).all()
    assert len(sl) < 0.8 * len(stay)
    # Paired with the run without churn: the sessions that remain are the same sessions with the same outcomes.
    keys = ["step", "session", "slate", "user_id"]
    both = sl.merge(stay, on=keys, suffixes=("", "_stay"))
    assert len(both) == len(sl) and (both["clicks"] == both["clicks_stay"]).all()
    assert set(sl["user_id"]) == set(stay["user_id"])        # every shopper still arrives once
    # A smaller churn loses fewer shoppers; churn is a probability.
    some = ShopperSimulator.from_synthetic(shop, k=5, target_ctr=0.1, random_state=0, churn=0.2).run(fixed, **kw)
    assert 0 < len(some.params["churned"]) < len(churned)
    for kwargs, match in [({"churn": 1.5}, "churn"), ({"fatigue": -0.1}, "fatigue"), ({"fatigue_half_life": 0}, "fatigue_half_life")]:
        with pytest.raises(ValueError, match=match):
            ShopperSimulator.from_synthetic(shop, k=5, **kwargs)
