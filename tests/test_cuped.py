"""CUPED: the adjustment against known truths, its calibration, the ratio-metric version and the simulator path."""
import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from statsmodels.stats.power import NormalIndPower

from recapp.data.synthetic import synthetic_shop
from recapp.experiment import ab_calibration, abtest, cuped, cuped_sim
from recapp.experiment.simulator import Policy, RandomPolicy, RecommenderPolicy, ShopperSimulator
from recapp.models import Popularity


def _pre_post(rng, n, rho, effect=0.0):
    """Pre-period x and experiment y = x + noise with corr(x, y) = rho (+ effect)."""
    x = rng.standard_normal(n)
    noise_sd = np.sqrt(1 / rho**2 - 1)
    return x, x + noise_sd * rng.standard_normal(n) + effect


# ---- the adjustment ---------------------------------------------------------------------------
@pytest.mark.parametrize("rho", [0.3, 0.6, 0.9])
def test_variance_reduction_approaches_the_squared_correlation(rho):
    rng = np.random.default_rng(int(rho * 10))
    x_c, y_c = _pre_post(rng, 20_000, rho)
    x_t, y_t = _pre_post(rng, 20_000, rho)
    res = cuped.compare_means_cuped(y_c, y_t, x_c, x_t)
    assert res["variance_reduction"] == pytest.approx(rho**2, abs=0.015)
    assert res["theta"] == pytest.approx(1.0, abs=0.03)      # y = x + noise: the slope is 1
    raw = abtest.compare_means(y_c, y_t)
    assert res["ci_high"] - res["ci_low"] < (raw["ci_high"] - raw["ci_low"]) * np.sqrt(1 - rho**2) * 1.02


def test_theta_is_the_ols_slope_and_the_mean_is_kept():
    rng = np.random.default_rng(1)
    n = 3000
    X = np.column_stack([rng.poisson(3, n), rng.random(n) < 0.3]).astype(float)
    y = 0.7 * X[:, 0] - 2.0 * X[:, 1] + rng.exponential(2.0, n)
    ols = sm.OLS(y, sm.add_constant(X)).fit()
    assert cuped.cuped_theta(y, X) == pytest.approx(ols.params[1:], rel=1e-10)
    one = sm.OLS(y, sm.add_constant(X[:, 0])).fit()
    assert cuped.cuped_theta(y, X[:, 0]) == pytest.approx(one.params[1], rel=1e-10)
    assert cuped.cuped_theta(y, X[:, 0]) == pytest.approx(np.cov(y, X[:, 0])[0, 1] / X[:, 0].var(ddof=1), rel=1e-10)
    adj = cuped.cuped_adjust(y, X)
    assert adj.mean() == pytest.approx(y.mean(), rel=1e-12)
    # At the OLS theta the adjusted metric is the OLS residual plus the mean: its variance is (1 - R^2) var(y).
    assert adj.var() == pytest.approx((1 - ols.rsquared) * y.var(), rel=1e-9)
    # A fixed theta is applied as given; theta = 0 changes nothing.
    assert cuped.cuped_adjust(y, X[:, 0], theta=0.0) == pytest.approx(y)


def test_adjusted_difference_is_unbiased_and_its_interval_covers():
    rng = np.random.default_rng(2)
    draws, n, effect = 400, 400, 0.25
    diffs, covered, raw_diffs, se_cup = [], 0, [], []
    for _ in range(draws):
        # Skewed covariate and a heterogeneous effect that grows with x: theta differs by arm, pooled stays unbiased.
        x_c, x_t = rng.gamma(2.0, 1.0, n), rng.gamma(2.0, 1.0, n)
        y_c = 2 * x_c + rng.standard_normal(n)
        y_t = 2 * x_t + rng.standard_normal(n) + effect * x_t / 2.0     # E[x] = 2: average effect = effect
        r = cuped.compare_means_cuped(y_c, y_t, x_c, x_t)
        diffs.append(r["diff"])
        covered += r["ci_low"] <= effect <= r["ci_high"]
        se_cup.append(r["se"])
        raw_diffs.append(abtest.compare_means(y_c, y_t)["diff"])
    diffs = np.asarray(diffs)
    # Unbiased: the mean estimate is within 4 standard errors of the planted effect.
    assert abs(diffs.mean() - effect) < 4 * diffs.std(ddof=1) / np.sqrt(draws)
    # The standard error is honest: it matches the spread of the estimates, and the 95% interval covers.
    assert np.mean(se_cup) == pytest.approx(diffs.std(ddof=1), rel=0.1)
    assert 0.92 <= covered / draws <= 0.98
    # And far tighter than the unadjusted difference (corr(x, y) ~ 0.94 here).
    assert diffs.std(ddof=1) < 0.5 * np.std(raw_diffs, ddof=1)


def test_aa_rejection_rate_is_near_alpha_for_means_and_ratios():
    rng = np.random.default_rng(3)
    draws, n, alpha = 800, 600, 0.05
    rej_mean = rej_ratio = 0
    for _ in range(draws):
        # Shoppers with a persistent activity and click propensity, seen before and during the experiment.
        act = rng.lognormal(1.0, 0.8, 2 * n)
        p = rng.beta(1.0, 20.0, 2 * n)
        pre_v, v = 1 + rng.poisson(act), 1 + rng.poisson(act)
        pre_c, c = rng.binomial(pre_v, p), rng.binomial(v, p)
        new = rng.random(2 * n) < 0.2                            # new shoppers, in both arms: no pre-period data
        pre_v[new] = pre_c[new] = 0
        rev = np.where(rng.random(2 * n) < 1 - np.exp(-0.1 * act), rng.lognormal(3.0, 1.0, 2 * n), 0.0)
        cs, ts = slice(0, n), slice(n, 2 * n)
        has = (pre_v > 0).astype(float)
        X = np.column_stack([pre_c, has])
        rej_mean += cuped.compare_means_cuped(rev[cs], rev[ts], X[cs], X[ts])["pvalue"] < alpha
        rej_ratio += cuped.compare_ratio_cuped(c[cs], v[cs], c[ts], v[ts], pre_c[cs], pre_v[cs], pre_c[ts], pre_v[ts],
                                               extra_c=has[cs, None], extra_t=has[ts, None])["pvalue"] < alpha
    # 800 A/A tests: the standard error of a 5% rate is 0.77 points; [3%, 7%] is a 2.6-sigma band.
    assert 0.03 <= rej_mean / draws <= 0.07, rej_mean / draws
    assert 0.03 <= rej_ratio / draws <= 0.07, rej_ratio / draws


# ---- ratio metrics --------------------------------------------------------------------------------
def test_linearised_ratio_carries_the_delta_method_variance():
    sim = ab_calibration.simulate_users(1, 3000, random_state=4)
    clicks, views = sim["clicks"][:, 0], sim["views"][:, 0]
    lin = cuped.linearize_ratio(clicks, views)
    ratio, var = abtest.delta_ratio(clicks, views)
    assert lin.mean() == pytest.approx(ratio, rel=1e-12)
    assert lin.var(ddof=1) / len(lin) == pytest.approx(var, rel=1e-12)


def test_ratio_version_is_the_delta_method_test_when_theta_is_zero():
    c = ab_calibration.simulate_users(1, 2500, random_state=5)
    t = ab_calibration.simulate_users(1, 2700, lift=0.05, random_state=6)
    rng = np.random.default_rng(7)
    pre_v_c, pre_v_t = rng.poisson(5, 2500), rng.poisson(5, 2700)
    args = (c["clicks"][:, 0], c["views"][:, 0], t["clicks"][:, 0], t["views"][:, 0])
    pre = (rng.binomial(pre_v_c, 0.05), pre_v_c, rng.binomial(pre_v_t, 0.05), pre_v_t)
    got = cuped.compare_ratio_cuped(*args, *pre, theta=0.0)
    want = abtest.compare_ratio(*args)
    for key in ("control", "treatment", "diff", "se", "statistic", "pvalue", "ci_low", "ci_high"):
        assert got[key] == pytest.approx(float(want[key]), rel=1e-9), key
    assert got["variance_reduction"] == pytest.approx(0.0, abs=1e-12)


def test_ratio_cuped_uses_a_persistent_click_propensity():
    rng = np.random.default_rng(8)
    n, draws, lift = 2000, 150, 0.1
    diffs, ses, vrs, r2 = [], [], [], []
    for _ in range(draws):
        p = rng.beta(2.0, 30.0, 2 * n)
        pre_v, v = rng.poisson(50, 2 * n), 1 + rng.poisson(50, 2 * n)
        pre_c = rng.binomial(pre_v, p)
        c = rng.binomial(v, np.minimum(p * np.r_[np.ones(n), np.full(n, 1 + lift)], 1))
        r = cuped.compare_ratio_cuped(c[:n], v[:n], c[n:], v[n:], pre_c[:n], pre_v[:n], pre_c[n:], pre_v[n:])
        diffs.append(r["diff"]), ses.append(r["se"]), vrs.append(r["variance_reduction"])
        # The known truth: the squared correlation of the linearised experiment CTR (per arm) with the linearised pre-period CTR.
        y = np.r_[cuped.linearize_ratio(c[:n], v[:n]), cuped.linearize_ratio(c[n:], v[n:])]
        r2.append(np.corrcoef(y, cuped.linearize_ratio(pre_c, pre_v))[0, 1] ** 2)
    truth = lift * 2.0 / 32.0                                      # lift times the mean CTR
    assert np.mean(vrs) == pytest.approx(np.mean(r2), abs=0.01)
    assert np.mean(vrs) > 0.25                                     # about 0.6 x 0.6: persistent share x reliability of pre-CTR
    assert abs(np.mean(diffs) - truth) < 4 * np.std(diffs, ddof=1) / np.sqrt(draws)
    assert np.mean(ses) == pytest.approx(np.std(diffs, ddof=1), rel=0.15)


# ---- sample size ----------------------------------------------------------------------------------
def test_sample_size_scales_with_the_remaining_variance():
    n0 = cuped.sample_size_cuped(sd=2.0, effect=0.1)
    assert n0 == int(np.ceil(NormalIndPower().solve_power(effect_size=0.05, alpha=0.05, power=0.8)))
    assert cuped.sample_size_cuped(sd=2.0, effect=0.1, variance_reduction=0.5) == pytest.approx(n0 / 2, abs=1)
    # For a proportion, sd from the two arms' Bernoulli variances lands close to abtest.sample_size (Cohen's h).
    p0, p1 = 0.10, 0.11
    sd = np.sqrt((p0 * (1 - p0) + p1 * (1 - p1)) / 2)
    assert cuped.sample_size_cuped(sd, p1 - p0) == pytest.approx(abtest.sample_size(p0, 0.10), rel=0.01)
    with pytest.raises(ValueError, match="variance_reduction"):
        cuped.sample_size_cuped(1.0, 0.1, variance_reduction=1.0)
    with pytest.raises(ValueError, match="effect"):
        cuped.sample_size_cuped(1.0, 0.0)


# ---- bad inputs -------------------------------------------------------------------------------------
def test_bad_inputs_raise_clear_errors():
    y = np.arange(10.0)
    with pytest.raises(ValueError, match="x must have one row per user"):
        cuped.cuped_theta(y, np.arange(9.0))
    with pytest.raises(ValueError, match="constant"):
        cuped.cuped_theta(y, np.ones(10))
    with pytest.raises(ValueError, match="constant"):
        cuped.compare_means_cuped(y[:5], y[5:], np.zeros(5), np.zeros(5))
    with pytest.raises(ValueError, match="missing or infinite"):
        cuped.cuped_adjust(y, np.r_[np.arange(9.0), np.nan])
    with pytest.raises(ValueError, match="x_t must have one row"):
        cuped.compare_means_cuped(y[:5], y[5:], y[:5], y[:4])
    with pytest.raises(ValueError, match="theta must have one value per covariate"):
        cuped.cuped_adjust(y, np.column_stack([y, y**2]), theta=[1.0])
    with pytest.raises(ValueError, match="pre_den_c and pre_den_t sum to 0"):
        cuped.compare_ratio_cuped(y, y + 1, y, y + 1, np.zeros(10), np.zeros(10), np.zeros(10), np.zeros(10))
    with pytest.raises(ValueError, match="pre_num_t must have one value per user"):
        cuped.compare_ratio_cuped(y, y + 1, y, y + 1, y, y + 1, y[:3], y + 1)


def _frame(rng, n=2000, all_seen=False):
    pre_v = (1 + rng.poisson(4, n)) * (1 if all_seen else rng.random(n) < 0.7)
    views = 1 + rng.poisson(np.maximum(pre_v, 1))
    return pd.DataFrame({
        "arm": np.where(np.arange(n) % 2, "treatment", "control"), "views": views, "clicks": rng.binomial(views, 0.1),
        "converted": (rng.random(n) < 0.1 + 0.02 * np.minimum(pre_v, 10)).astype(int), "revenue": rng.exponential(20, n),
        "pre_views": pre_v, "pre_clicks": rng.binomial(pre_v, 0.1), "pre_converted": (rng.random(n) < 0.2).astype(int),
        "pre_revenue": rng.exponential(20, n), "has_pre": (pre_v > 0).astype(int),
    }, index=pd.Index(np.arange(n), name="user_id"))


def test_analyze_cuped_drops_constant_covariates_and_says_so():
    rng = np.random.default_rng(9)
    table = cuped.analyze_cuped(_frame(rng, all_seen=True)).set_index(["metric", "adjustment"])
    # Everyone has pre-period data: the indicator is constant and dropped with a note, the rest still adjusts.
    row = table.loc[("conversion", "cuped")]
    assert row["covariates"] == "pre_converted" and "has_pre" in row["note"]
    # A covariate with no information at all: the CUPED row repeats the unadjusted one and says so.
    frame = _frame(rng)
    frame["pre_revenue"] = 0.0
    t = cuped.analyze_cuped(frame, covariates={"revenue_per_user": ["pre_revenue"]}).set_index(["metric", "adjustment"])
    assert t.loc[("revenue_per_user", "cuped"), "note"].startswith("no usable covariate")
    assert t.loc[("revenue_per_user", "cuped"), "variance_reduction"] == 0.0
    assert t.loc[("revenue_per_user", "cuped"), "diff"] == t.loc[("revenue_per_user", "none"), "diff"]
    with pytest.raises(ValueError, match="add_pre_period"):
        cuped.analyze_cuped(frame.drop(columns="pre_clicks"))
    with pytest.raises(ValueError, match="unknown metric"):
        cuped.analyze_cuped(frame, metrics=("nope",))


# ---- the simulator path ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pre_post():
    """A 2-arm test after a pre-period in which every arm shows the control's slates."""
    shop = synthetic_shop(n_users=300, n_items=120, n_events=6000, random_state=5)
    sim = ShopperSimulator.from_synthetic(shop, random_state=5)
    control = RecommenderPolicy(Popularity().fit(shop.events), update=None)
    return cuped_sim.simulate_with_pre_period(sim, {"control": control, "random": RandomPolicy(random_state=1)},
                                          pre_steps=8, n_steps=8, sessions_per_step=100)


class _Recorder(Policy):
    """Random slates; remembers the (step, arm) of every impression it served and how often its step ended."""

    def __init__(self, name):
        self.name = name

    def reset(self, env):
        super().reset(env)
        self.rng_, self.seen_, self.steps_ = np.random.default_rng(0), [], 0

    def slates(self, users, k):
        n_items = len(self.env_.item_ids)
        return self.env_.item_ids[np.argsort(self.rng_.random((len(users), n_items)), axis=1)[:, :k]]

    def observe(self, feedback):
        self.seen_.append(feedback[["step", "arm"]])

    def end_step(self):
        self.steps_ += 1


def test_pre_period_is_served_by_the_control_to_every_arm():
    shop = synthetic_shop(n_users=200, n_items=60, n_events=3000, random_state=6)
    sim = ShopperSimulator.from_synthetic(shop, random_state=6)
    control, treat = _Recorder("control"), _Recorder("treatment")
    # The control need not be the first arm.
    result, per_user = cuped_sim.simulate_with_pre_period(sim, {"treatment": treat, "control": control}, pre_steps=4, n_steps=3,
                                                      sessions_per_step=40, control="control")
    c, t = pd.concat(control.seen_), pd.concat(treat.seen_)
    # Before the experiment the control policy serves both arms; then each arm its own policy.
    assert set(c.loc[c["step"] < 4, "arm"]) == {"control", "treatment"}
    assert set(c.loc[c["step"] >= 4, "arm"]) == {"control"}
    assert t["step"].min() == 4 and set(t["arm"]) == {"treatment"}
    # The shared control policy ends each step once, not once per arm.
    assert control.steps_ == 7 and treat.steps_ == 3
    assert result.impressions["step"].min() == 4 and result.params["pre_steps"] == 4
    assert set(per_user.columns) >= {"pre_views", "pre_clicks", "pre_converted", "pre_revenue", "has_pre"}
    assert 0.2 < per_user["has_pre"].mean() < 1.0
    silent = per_user[per_user["has_pre"] == 0]
    assert (silent[["pre_views", "pre_clicks", "pre_revenue"]] == 0).all().all()
    with pytest.raises(ValueError, match="control"):
        cuped_sim.simulate_with_pre_period(sim, {"a": control}, pre_steps=1, n_steps=1, control="b")


def test_pre_period_rows_match_the_pre_period_log():
    events = pd.DataFrame({"user_id": [1, 1, 1, 2], "item_id": [5, 5, 5, 6], "timestamp": [0, 1, 2, 3],
                           "event": ["view", "click", "purchase", "view"], "value": [0, 0, 12.5, 0]})
    per_user = pd.DataFrame({"arm": ["control", "treatment", "control"], "views": [3, 4, 5]},
                            index=pd.Index([1, 2, 3], name="user_id"))
    out = cuped_sim.add_pre_period(per_user, events)
    assert out.loc[1, ["pre_views", "pre_clicks", "pre_purchases", "pre_revenue", "has_pre"]].tolist() == [1, 1, 1, 12.5, 1]
    assert out.loc[3, ["pre_views", "pre_revenue", "has_pre"]].tolist() == [0, 0, 0]
    assert "pre_views" not in per_user.columns                        # a copy
    with pytest.raises(ValueError, match="accepted"):
        cuped_sim.add_pre_period(per_user, events, columns=("ctr",))


def test_analyze_cuped_on_the_simulator_keeps_the_plain_rows_and_narrows_activity(pre_post):
    _, per_user = pre_post
    table = cuped.analyze_cuped(per_user, metrics=("ctr", "conversion", "revenue_per_user", "views"))
    assert len(table) == 8 and set(table["adjustment"]) == {"none", "cuped"}
    plain = abtest.analyze(per_user).set_index("metric")
    none = table[table["adjustment"] == "none"].set_index("metric")
    # The unadjusted rows are abtest.analyze's estimates (conversion: Welch on 0/1 against the Wald test).
    for metric in ("ctr", "revenue_per_user"):
        assert none.loc[metric, ["diff", "ci_low", "ci_high"]].to_numpy(float) == pytest.approx(
            plain.loc[metric, ["diff", "ci_low", "ci_high"]].to_numpy(float), rel=1e-6, abs=1e-12)
    assert none.loc["conversion", "diff"] == pytest.approx(plain.loc["conversion", "diff"])
    assert none.loc["conversion", "pvalue"] == pytest.approx(plain.loc["conversion", "pvalue"], rel=0.05, abs=1e-4)
    cup = table[table["adjustment"] == "cuped"].set_index("metric")
    # Shoppers' activity persists across periods: views per user lose most of their variance.
    assert cup.loc["views", "variance_reduction"] > 0.5
    assert (cup["variance_reduction"] > -0.02).all()
    assert (cup["se"] <= none["se"] * 1.01).all()
