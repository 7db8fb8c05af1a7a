"""Bad input to the A/B tools (calibration, run_ab, the run's summary, assign, user_metrics, analyze) gets an error
that names the argument; nothing is lost silently."""
import numpy as np
import pandas as pd
import pytest

from recapp.data import synthetic_shop
from recapp.experiment import abtest
from recapp.experiment.ab_calibration import calibration, simulate_users
from recapp.experiment.simulator import RandomPolicy, ShopperSimulator
from recapp.models import Popularity


@pytest.fixture(scope="module")
def shop():
    return synthetic_shop(n_users=100, n_items=60, n_events=3000, random_state=0)


@pytest.fixture(scope="module")
def sim(shop):
    return ShopperSimulator.from_synthetic(shop, k=5, random_state=0)


@pytest.fixture(scope="module")
def run(sim):
    return sim.run_ab({"a": RandomPolicy(1), "b": RandomPolicy(2)}, n_steps=2, sessions_per_step=30)


# ---- ab_calibration -------------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, match", [
    ({"conversion": np.nan}, r"conversion=nan must be a finite number"),
    ({"conversion": 2.0}, r"conversion=2.0 is out of range"),
    ({"conversion": 0.6, "lift": 1.0}, r"lift=1.0 takes conversion=0.6 to 1.2"),
    ({"n_experiments": 0}, r"n_experiments=0 is out of range"),
    ({"n_users": 1}, r"n_users=1 is out of range; it must be >= 2"),
    ({"n_users": 50.0}, r"n_users=50.0 must be an integer"),
    ({"lift": -1.0}, r"lift=-1.0 is out of range"),
    ({"lift": 30.0}, r"lift=30.0 takes ctr=0.05 to 1.55"),
    ({"ctr": 0.0}, r"ctr=0.0 is out of range"),
    ({"ctr": 1.5}, r"ctr=1.5 is out of range"),
    ({"views_mean": 0.5}, r"views_mean=0.5 is out of range"),
    ({"ctr_concentration": 0.0}, r"ctr_concentration=0.0 is out of range"),
    ({"order_value": 0.0}, r"order_value=0.0 is out of range"),
    ({"order_value": -5.0}, r"order_value=-5.0 is out of range"),
])
def test_calibration_names_the_bad_argument(kwargs, match):
    # Before: a NaN or impossible rate gave a rejection rate of 0.0 as a result, or numpy's "a <= 0" / "lam < 0".
    with pytest.raises(ValueError, match=match):
        calibration(**{"n_experiments": 5, "n_users": 50, **kwargs})


def test_simulate_users_refuses_no_users_and_keeps_valid_draws():
    with pytest.raises(ValueError, match=r"n_users=0 is out of range"):
        simulate_users(3, 0)
    out = simulate_users(4, 30, conversion=1.0, lift=0.0, random_state=1)
    assert out["converted"].shape == (30, 4) and out["converted"].all() and (out["views"] >= 1).all()


# ---- run_ab / run_sessions -------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, match", [
    ({"n_steps": 0}, r"n_steps=0 is out of range"),
    ({"n_steps": -1}, r"n_steps=-1 is out of range"),
    ({"n_steps": 2.0}, r"n_steps=2.0 must be an integer"),
    ({"sessions_per_step": 0}, r"sessions_per_step=0 is out of range"),
    ({"sessions_per_step": -3}, r"sessions_per_step=-3 is out of range"),
])
def test_run_ab_names_bad_step_counts(sim, kwargs, match):
    with pytest.raises(ValueError, match=match):
        sim.run_ab({"a": RandomPolicy(1), "b": RandomPolicy(2)}, **{"n_steps": 2, "sessions_per_step": 10, **kwargs})


def test_run_ab_refuses_a_list_a_missing_arm_name_and_shared_objects(sim, shop):
    with pytest.raises(TypeError, match="policies must be a dict of arm name -> policy, got a list"):
        sim.run_ab([RandomPolicy(1), RandomPolicy(2)], n_steps=1, sessions_per_step=10)
    for missing in (np.nan, None):
        # Before: the arm and its shoppers vanished from summary() (groupby drops a NaN key).
        with pytest.raises(ValueError, match=r"list\(policies\)\[0\] = .* is missing or blank"):
            sim.run_ab({missing: RandomPolicy(1), "b": RandomPolicy(2)}, n_steps=1, sessions_per_step=10)
    shared = RandomPolicy(1)
    with pytest.raises(ValueError, match=r"policies\['b'\] is the same object as policies\['a'\]"):
        sim.run_ab({"a": shared, "b": shared}, n_steps=1, sessions_per_step=10)
    model = Popularity().fit(shop.events)
    with pytest.raises(ValueError, match=r"policies\['b'\] is the same object as policies\['a'\]"):
        sim.run_ab({"a": model, "b": model}, n_steps=1, sessions_per_step=10)


def test_one_arm_weights_are_checked(sim):
    with pytest.raises(ValueError, match="weights must be 1 non-negative"):
        sim.run_ab({"a": RandomPolicy(1)}, n_steps=1, sessions_per_step=5, weights=[0.5, 0.5])
    same = sim.run_ab({"a": RandomPolicy(1)}, n_steps=1, sessions_per_step=5, weights=[1.0])
    plain = sim.run_ab({"a": RandomPolicy(1)}, n_steps=1, sessions_per_step=5)
    pd.testing.assert_frame_equal(same.impressions, plain.impressions)


# ---- the run's summary and regret curve ------------------------------------------------------------------
def test_summary_keeps_an_arm_no_shopper_reached(sim):
    res = sim.run_ab({"a": RandomPolicy(1), "b": RandomPolicy(2)}, n_steps=2, sessions_per_step=20, weights=[1, 0])
    s = res.summary().set_index("arm")
    assert list(s.index) == ["a", "b"]
    assert s.loc["b", "users"] == 0 and s.loc["b", "impressions"] == 0 and np.isnan(s.loc["b", "ctr"])
    assert s.loc["a", "users"] > 0


def test_regret_curve_points_must_be_a_positive_integer(run):
    for points, match in ((-5, r"points=-5 is out of range"), (0, r"points=0 is out of range"),
                          (2.5, r"points=2.5 must be an integer")):
        with pytest.raises(ValueError, match=match):
            run.regret_curve(points)
    assert len(run.regret_curve(None)) == len(run.slates)


# ---- assign, user_metrics, analyze -------------------------------------------------------------------------
def test_assign_refuses_a_string_and_missing_arms():
    # Before: arms="AB" was read as the two arms 'A' and 'B'; a NaN arm was assigned users.
    with pytest.raises(ValueError, match=r"arms='AB' is a single string"):
        abtest.assign(range(10), arms="AB")
    with pytest.raises(ValueError, match=r"arms\[1\] = nan is missing or blank"):
        abtest.assign(range(10), arms=["a", np.nan])
    with pytest.raises(ValueError, match=r"arms\[1\] = 'a' repeats an earlier name"):
        abtest.assign(range(10), arms=["a", "a"])


def test_user_metrics_names_missing_columns_and_a_non_series_assignment(run):
    with pytest.raises(ValueError, match=r"events is missing column\(s\) \['user_id'\]"):
        abtest.user_metrics(run.events.drop(columns="user_id"), run.assignment)
    with pytest.raises(ValueError, match=r"events is missing column\(s\) \['event'\]"):
        abtest.user_metrics(run.events.drop(columns="event"), run.assignment)
    with pytest.raises(TypeError, match="assignment must be a pandas Series"):
        abtest.user_metrics(run.events, run.assignment.to_dict())


def test_analyze_refuses_a_metric_string_no_metrics_and_repeats(run):
    per_user = run.user_metrics()
    with pytest.raises(ValueError, match=r"metrics='ctr' is a single string"):
        abtest.analyze(per_user, control="a", metrics="ctr")
    with pytest.raises(ValueError, match="metrics is empty"):
        abtest.analyze(per_user, control="a", metrics=[])
    # A repeat would count one test twice in the multiple-testing correction.
    with pytest.raises(ValueError, match=r"metrics\[1\] = 'ctr' repeats an earlier name"):
        abtest.analyze(per_user, control="a", metrics=["ctr", "ctr"])
    assert list(abtest.analyze(per_user, control="a", metrics=["ctr"])["metric"]) == ["ctr"]


def test_user_metrics_refuses_event_types_outside_the_schema(run):
    # Before: "VIEW" (or a missing event) was silently counted as nothing, understating views and CTR.
    for bad, shown in (("VIEW", "'VIEW'"), (None, "'nan'")):
        events = run.events.copy()
        events.loc[events.index[0], "event"] = bad
        with pytest.raises(ValueError, match=rf"events\['event'\] has unknown event type\(s\) \[{shown}\]"):
            abtest.user_metrics(events, run.assignment)


def test_analyze_names_a_missing_column_and_a_non_frame(run):
    per_user = run.user_metrics()
    with pytest.raises(ValueError, match=r"per_user is missing column\(s\) \['views'\]"):
        abtest.analyze(per_user.drop(columns="views"), control="a", metrics=["ctr"])
    with pytest.raises(TypeError, match="per_user must be a pandas DataFrame, got dict"):
        abtest.analyze(per_user.to_dict("list"), control="a")


def test_srm_check_reads_a_bool_assignment_as_arms_and_refuses_a_missing_arm():
    # Before: a bool Series was read as counts per position ({0: 1, 1: 0, ...}), a NaN arm's users dropped.
    res = abtest.srm_check(pd.Series([True, False, True, False, True, False]))
    assert res.counts.to_dict() == {False: 3, True: 3} and res.pvalue == pytest.approx(1.0)
    with pytest.raises(ValueError, match=r"observed has no arm for 1 user\(s\)"):
        abtest.srm_check(pd.Series(["a", np.nan, "b", "a"]))
    assert abtest.srm_check({"a": 50, "b": 60}).counts.to_dict() == {"a": 50, "b": 60}
