"""Mends in recapp.experiment: the ope split, counts in linearize_ratio and CUPED, an all-or-nothing ABSimulation.step."""
import copy

import numpy as np
import pandas as pd
import pytest

import recapp.experiment as experiment
from recapp.experiment import (
    ABSimulation,
    Policy,
    RandomPolicy,
    ShopScenario,
    analyze_cuped,
    compare_ratio,
    compare_ratio_cuped,
    linearize_ratio,
    live_ab,
    ope,
    ope_estimators,
)


# ---- the ope split ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["LoggedFeedback", "estimate", "evaluate", "from_open_bandit", "learned_policy_study",
                                  "random_policy_study", "importance_weights", "policy_from_scores", "uniform_policy",
                                  "synthetic_logged", "ESTIMATORS", "MODEL_ESTIMATORS", "PUBLISHED_CTR",
                                  "ItemPositionModel", "LogisticRewardModel", "make_reward_model"])
def test_ope_names_stay_importable_from_ope(name):
    assert hasattr(ope, name)
    if name in experiment.__all__:
        assert getattr(experiment, name) is getattr(ope, name)


def test_ope_estimate_is_the_estimators_module_one_and_gives_the_same_numbers():
    assert ope.estimate is ope_estimators.estimate and ope.importance_weights is ope_estimators.importance_weights
    s = ope.synthetic_logged(n_rounds=300, random_state=1)
    got = ope.estimate(s["reward"], s["pscore"], s["target_prob"], estimators=("IPW", "SNIPW"), n_bootstrap=30)
    w = s["target_prob"] / s["pscore"]
    assert got.set_index("estimator").loc["IPW", "estimate"] == pytest.approx(np.mean(w * s["reward"]), rel=1e-12)


def _logged(action=(0, 1, 0, 1), position=(0, 0, 0, 0), pscore=(0.5, 0.5, 0.5, 0.5), **kw):
    return ope.LoggedFeedback(action=np.asarray(action), position=np.asarray(position), reward=np.array([1.0, 0, 1, 0]),
                              pscore=np.asarray(pscore, dtype=float), action_ids=np.array([10, 20]), n_positions=1, **kw)


@pytest.mark.parametrize("change, message", [
    ({"action": (0, -1, 0, 1)}, r"logged.action\[1\] = -1 is outside \[0, 1\]"),     # numpy read it as the last item
    ({"action": (0, 2, 0, 1)}, r"logged.action\[1\] = 2 is outside"),
    ({"action": (0.0, 1.0, 0.0, 1.0)}, "logged.action must be a 1-D array of integers"),
    ({"position": (0, -1, 0, 0)}, r"logged.position\[1\] = -1 is outside \[0, 0\]"),   # counted as another item's slot
    ({"position": (0, 5, 0, 0)}, r"logged.position\[1\] = 5"),
    ({"pscore": (0.5, 0.5, 0.5)}, "one value per round"),
    ({"affinity": np.zeros((3, 2))}, "logged.affinity has shape"),
])
def test_evaluate_refuses_logged_rounds_that_index_nothing(change, message):
    good = ope.evaluate(_logged(), np.array([0.9, 0.1]), estimators=("IPW", "DR"), n_bootstrap=20)
    assert np.isfinite(good["estimate"]).all()
    with pytest.raises(ValueError, match=message):
        ope.evaluate(_logged(**change), np.array([0.9, 0.1]), estimators=("IPW", "DR"), n_bootstrap=20)


def test_uniform_policy_refuses_logs_without_actions():
    empty = ope.LoggedFeedback(np.array([], dtype=int), np.array([], dtype=int), np.array([]), np.array([]), np.array([]), 1)
    with pytest.raises(ValueError, match="action_ids is empty"):
        ope.uniform_policy(empty)
    assert np.allclose(ope.uniform_policy(_logged()), [0.5, 0.5])


@pytest.mark.parametrize("kwargs", [{"logging_temperature": 0.0}, {"target_temperature": -1.0}, {"n_actions": 0},
                                    {"n_rounds": 0}])
def test_synthetic_logged_refuses_what_makes_no_problem(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        ope.synthetic_logged(**kwargs)


# ---- counts in linearize_ratio and CUPED ---------------------------------------------------------------
def test_linearize_ratio_refuses_a_negative_numerator_by_position():
    with pytest.raises(ValueError, match=r"num\[1\] = -5\.0"):
        linearize_ratio([1, -5, 2], [3, 4, 5])
    with pytest.raises(ValueError, match=r"den\[1\] = -1\.0"):
        linearize_ratio([1, 2, 2], [3, -1, 5])
    with pytest.raises(ValueError, match="den sums to 0"):
        linearize_ratio([0, 0], [0, 0])
    with pytest.raises(ValueError, match="missing or infinite"):
        linearize_ratio([1, 2, 2], [3, np.nan, 5])


def test_linearize_ratio_refuses_sums_beyond_floating_point():
    with pytest.raises(ValueError, match="beyond floating point"):
        linearize_ratio([1.0, 2.0], [1e308, 1e308])       # the ratio was 0 and every value 0, silently


def test_linearize_ratio_is_unchanged_on_counts():
    num, den = np.array([1.0, 0.0, 2.0, 4.0]), np.array([3.0, 0.0, 5.0, 8.0])
    r = num.sum() / den.sum()
    assert np.array_equal(linearize_ratio(num, den), r + (num - r * den) / den.mean())


def test_compare_ratio_cuped_names_a_negative_count_in_any_argument():
    args = dict(num_c=[1, 2, 0, 1], den_c=[3, 4, 5, 2], num_t=[1, 2, 3, 0], den_t=[3, 4, 5, 3], pre_num_c=[1, 0, 0, 2],
                pre_den_c=[2, 3, 1, 2], pre_num_t=[0, 1, 2, 1], pre_den_t=[3, 2, 1, 1])
    compare_ratio_cuped(**args)
    for name in ("num_t", "pre_num_c"):
        bad = dict(args, **{name: [0, -9, 1, 1]})
        with pytest.raises(ValueError, match=rf"{name}\[1\] = -9\.0"):
            compare_ratio_cuped(**bad)
    # theta=0 still gives compare_ratio's test, which refuses negative clicks too
    got = compare_ratio_cuped(**args, theta=0.0)
    want = compare_ratio(args["num_c"], args["den_c"], args["num_t"], args["den_t"])
    assert got["diff"] == pytest.approx(float(want["diff"])) and got["pvalue"] == pytest.approx(float(want["pvalue"]))


def _per_user(n=40):
    rng = np.random.default_rng(0)
    pu = pd.DataFrame({"arm": ["control"] * (n // 2) + ["B"] * (n - n // 2), "views": rng.integers(1, 10, n),
                       "pre_views": rng.integers(0, 10, n)}, index=pd.Index([f"u{i}" for i in range(n)], name="user_id"))
    pu["clicks"] = rng.integers(0, 2, n)
    pu["pre_clicks"] = np.minimum(rng.integers(0, 3, n), pu["pre_views"])
    pu["has_pre"] = (pu["pre_views"] > 0).astype(int)
    return pu


@pytest.mark.parametrize("column", ["clicks", "views", "pre_clicks", "pre_views"])
def test_analyze_cuped_names_a_negative_ctr_count_by_column_and_user(column):
    pu = _per_user()
    assert len(analyze_cuped(pu, metrics=["ctr"])) == 2
    pu.loc["u25", column] = -3
    with pytest.raises(ValueError, match=rf"per_user\['{column}'\] is below 0.0 in 1 row\(s\), e.g. 'u25': -3"):
        analyze_cuped(pu, metrics=["ctr"])


def test_analyze_cuped_still_accepts_negative_values_of_a_mean_metric():
    pu = _per_user()
    pu["revenue"] = np.linspace(-5, 5, len(pu))           # refunds: a mean metric may be negative
    pu["pre_revenue"] = np.linspace(1, -1, len(pu))
    out = analyze_cuped(pu, metrics=["revenue_per_user"])
    assert np.isfinite(out["diff"]).all()


def test_a_single_string_where_names_go_is_named_not_read_letter_by_letter():
    pu = _per_user()
    with pytest.raises(ValueError, match=r"metrics='ctr' is a single string; pass a list of names, e.g. \['ctr'\]"):
        analyze_cuped(pu, metrics="ctr")             # was "unknown metric 'c'"
    with pytest.raises(ValueError, match=r"covariates\['ctr'\]='has_pre' is a single string"):
        analyze_cuped(pu, metrics=["ctr"], covariates={"ctr": "has_pre"})
    s = ope.synthetic_logged(n_rounds=50)
    with pytest.raises(ValueError, match="estimators='IPW' is a single string"):
        ope.estimate(s["reward"], s["pscore"], s["target_prob"], estimators="IPW", n_bootstrap=20)
    assert len(analyze_cuped(pu, metrics=("ctr",), covariates={"ctr": ("has_pre",)})) == 2


# ---- ABSimulation.step: all or nothing ------------------------------------------------------------------
@pytest.fixture(scope="module")
def scenario(shop):
    return ShopScenario(shop, shop.events)


class _Flaky(Policy):
    """Random slates that raise on demand, as a policy whose model fails might."""

    name = "flaky"

    def __init__(self):
        self.inner, self.fail = RandomPolicy(5), False

    def reset(self, env):
        super().reset(env)
        self.inner.reset(env)

    def slates(self, users, k):
        if self.fail:
            raise RuntimeError("model unavailable")
        return self.inner.slates(users, k)


def _sim(scenario):
    return ABSimulation(scenario, {"random": RandomPolicy(1), "flaky": _Flaky()}, min_users=2, sessions_per_step=30)


def _summary(sim):
    return (pd.DataFrame(sim.history), {a: sim.clicks[a].copy() for a in sim.ARMS},
            {a: sim.views[a].copy() for a in sim.ARMS}, sim.compare(), sim.verdict, sim.verdict_step)


def _same(a, b):
    assert a[0].equals(b[0])
    for i in (1, 2):
        for arm in a[i]:
            np.testing.assert_array_equal(a[i][arm], b[i][arm])
    assert a[3].keys() == b[3].keys() and all(np.allclose(a[3][k], b[3][k], equal_nan=True) for k in a[3])
    assert a[4:] == b[4:]


def _fresh(scenario, n_steps):
    sim = _sim(scenario)
    for _ in range(n_steps):
        sim.step()
    return sim


def _fails_then_recovers(scenario, sim, break_it, mend_it, error):
    """The failed step leaves the summary as it was; the next one is the step a fresh simulation would take."""
    before = copy.deepcopy(_summary(sim))
    break_it(sim)
    with pytest.raises(error):
        sim.step()
    _same(_summary(sim), before)
    mend_it(sim)
    sim.step()
    _same(_summary(sim), _summary(_fresh(scenario, len(before[0]) + 1)))


def test_a_bad_tau_set_between_steps_changes_nothing(scenario):
    sim = _fresh(scenario, 3)
    tau = sim.tau
    _fails_then_recovers(scenario, sim, lambda s: setattr(s, "tau", 0.0), lambda s: setattr(s, "tau", tau), ValueError)
    sim.alpha = float("nan")
    with pytest.raises(ValueError, match="alpha"):
        sim.step()
    assert len(sim.history) == 4


def test_an_error_after_serving_changes_nothing(scenario, monkeypatch):
    sim = _fresh(scenario, 3)
    assert not np.isnan(sim.history[-1]["msprt_p"])         # the failing step reaches the sequential look
    real = live_ab.msprt_statistic

    def boom(*args, **kwargs):
        raise RuntimeError("statistics failed")

    _fails_then_recovers(scenario, sim, lambda s: monkeypatch.setattr(live_ab, "msprt_statistic", boom),
                         lambda s: monkeypatch.setattr(live_ab, "msprt_statistic", real), RuntimeError)


def test_a_policy_error_changes_nothing(scenario):
    sim = _fresh(scenario, 2)
    flaky = sim.policies["B"]
    _fails_then_recovers(scenario, sim, lambda s: setattr(flaky, "fail", True), lambda s: setattr(flaky, "fail", False),
                         RuntimeError)
