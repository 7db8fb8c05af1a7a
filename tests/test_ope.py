"""Off-policy evaluation: unbiasedness on synthetic logs with a known value, and the Open Bandit sample."""
import numpy as np
import pandas as pd
import pytest

from recapp.experiment import ope


def _run_draws(n_draws=200, n_bootstrap=200):
    """Estimates and intervals over repeated draws of the same problem (a misspecified reward model for DM/DR)."""
    rows = []
    for d in range(n_draws):
        s = ope.synthetic_logged(n_rounds=2000, random_state=d)
        ctx, A = s["context"], s["q_true"].shape[1]
        # A deliberately wrong model: per-action mean reward, blind to the context.
        qa = np.array([s["reward"][s["action"] == a].mean() if (s["action"] == a).any() else 0.5 for a in range(A)])
        q_hat = np.broadcast_to(qa, (len(ctx), A))
        ql = q_hat[np.arange(len(ctx)), s["action"]]
        qe = (s["target_dist"][ctx] * q_hat).sum(axis=1)
        res = ope.estimate(s["reward"], s["pscore"], s["target_prob"], ql, qe, n_bootstrap=n_bootstrap, random_state=d)
        res["truth"] = s["truth"]
        rows.append(res)
    return pd.concat(rows, ignore_index=True)


@pytest.fixture(scope="module")
def draws():
    return _run_draws()


def test_ipw_and_dr_are_unbiased_over_repeated_draws(draws):
    truth = draws["truth"].iloc[0]
    for est in ("IPW", "DR"):
        e = draws.loc[draws["estimator"] == est, "estimate"].to_numpy()
        se_of_mean = e.std(ddof=1) / np.sqrt(len(e))
        # The average of 200 estimates sits within 3.5 standard errors of the exact value.
        assert abs(e.mean() - truth) < 3.5 * se_of_mean, (est, e.mean(), truth, se_of_mean)


def test_intervals_cover_the_truth_at_about_the_nominal_rate(draws):
    cover = (draws["ci_low"] <= draws["truth"]) & (draws["truth"] <= draws["ci_high"])
    rate = cover.groupby(draws["estimator"]).mean()
    for est in ("IPW", "SNIPW", "DR"):
        assert 0.88 <= rate[est] <= 0.99, (est, rate[est])


def test_dr_survives_a_wrong_model_that_sinks_dm(draws):
    truth = draws["truth"].iloc[0]
    mean = draws.groupby("estimator")["estimate"].mean()
    spread = draws.groupby("estimator")["estimate"].std()
    assert abs(mean["DM"] - truth) > 0.1                   # the context-blind model is badly biased...
    assert abs(mean["DR"] - truth) < 0.01                  # ...and the importance-weighted correction removes it
    assert spread["DR"] < spread["IPW"]                    # while using the model to cut variance


def test_estimate_validates_its_inputs():
    s = ope.synthetic_logged(n_rounds=100)
    with pytest.raises(ValueError, match="DM and DR need"):
        ope.estimate(s["reward"], s["pscore"], s["target_prob"], estimators=("IPW", "DR"))
    with pytest.raises(ValueError, match="unknown estimator"):
        ope.estimate(s["reward"], s["pscore"], s["target_prob"], estimators=("XYZ",))
    out = ope.estimate(s["reward"], s["pscore"], s["target_prob"], estimators=("IPW", "SNIPW"), n_bootstrap=50)
    assert list(out["estimator"]) == ["IPW", "SNIPW"] and (out["ci_low"] <= out["ci_high"]).all()


def test_policy_from_scores():
    scores = np.array([[3.0, 1.0, 2.0, 0.0], [0.0, 0.0, 5.0, 1.0]])
    top2 = ope.policy_from_scores(scores, top_k=2)
    assert top2.tolist() == [[0.5, 0.0, 0.5, 0.0], [0.0, 0.0, 0.5, 0.5]]
    eps = ope.policy_from_scores(scores, epsilon=0.2)
    assert np.allclose(eps.sum(axis=1), 1) and eps[0, 0] == pytest.approx(0.85) and eps[0, 1] == pytest.approx(0.05)
    soft = ope.policy_from_scores(scores, temperature=1.0)
    assert np.allclose(soft.sum(axis=1), 1) and soft[0].argmax() == 0


# ---- the Open Bandit Dataset sample -----------------------------------------------------------------
@pytest.fixture(scope="module")
def obd():
    from recapp.data.cache import DataSourceError
    from recapp.data.openbandit import load_open_bandit

    try:
        return load_open_bandit("bts", "all"), load_open_bandit("random", "all")
    except DataSourceError as exc:
        pytest.skip(f"Open Bandit sample unavailable: {exc}")


def test_open_bandit_logs_become_arrays(obd):
    bts, rnd = obd
    logged = ope.from_open_bandit(bts)
    assert logged.n_rounds == 10_000 and logged.n_actions == 80 and logged.n_positions == 3
    assert set(np.unique(logged.position)) == {0, 1, 2}
    # Each slot's propensities of the BTS policy are a distribution over the 80 items, so E[w] = 1 under uniform.
    w = (1 / 80) / logged.pscore
    assert w.mean() == pytest.approx(1.0, abs=0.15)
    rlog = ope.from_open_bandit(rnd, action_ids=logged.action_ids)
    assert np.allclose(rlog.pscore, 1 / 80)


def test_random_policy_estimated_from_bts_logs(obd):
    table = ope.random_policy_study(n_bootstrap=200, random_state=0).set_index("estimator")
    truth = table["truth"].iloc[0]
    assert truth == pytest.approx(38 / 10_000)             # the random policy's own logs of the sample
    assert (table["ci_low"] < table["estimate"]).all() and (table["estimate"] < table["ci_high"]).all()
    # About 40 clicks per file: every interval is wide (more than half the truth), as it should be.
    assert ((table["ci_high"] - table["ci_low"]) > 0.5 * truth).all()
    # The importance-weighted estimators are unbiased, so their intervals should hold the truth.
    for est in ("IPW", "SNIPW", "DR"):
        assert table.loc[est, "covers_truth"], table.loc[est]
    assert (table["relative_error"] < 1.0).all()


def test_a_learned_contextual_policy_evaluated_on_random_logs(obd):
    table = ope.learned_policy_study(top_k=10, n_bootstrap=100, estimators=("IPW", "SNIPW", "DR")).set_index("estimator")
    # The random logs' propensities are exactly 1/80, and a top-10 policy matches 1 round in 8: ESS ~ 1,250.
    assert table.loc["IPW", "ess"] == pytest.approx(1250, rel=0.05)
    assert (table["ci_low"] >= 0).all() and (table["ci_high"] > table["random_ctr"]).all()
    assert table["estimate"].between(0.0, 0.02).all()


def test_interval_plot_marks_the_truth():
    from recapp.experiment import plots

    s = ope.synthetic_logged(n_rounds=500)
    table = ope.estimate(s["reward"], s["pscore"], s["target_prob"], estimators=("IPW", "SNIPW"), n_bootstrap=50)
    fig = plots.interval_plot(table, truth=s["truth"], truth_band=(s["truth"] - 0.01, s["truth"] + 0.01),
                              reference={"published": 0.5})
    assert list(fig.data[0].y) == ["IPW", "SNIPW"]
    assert len(fig.layout.shapes) == 3                   # band, truth line, reference line


# ---- review fixes: zero propensities ---------------------------------------------------------
def test_zero_propensity_with_positive_target_names_the_row():
    with pytest.raises(ValueError, match=r"pscore\[1\]"):
        ope.estimate([0, 0, 1], [0.5, 0.0, 0.2], [0.5, 0.3, 0.2], estimators=("IPW", "SNIPW"), n_bootstrap=20)


def test_zero_propensity_and_zero_target_gives_weight_zero():
    got = ope.estimate([0, 1, 1], [0.5, 0.0, 0.2], [0.5, 0.0, 0.2], estimators=("IPW", "SNIPW"), n_bootstrap=50)
    got = got.set_index("estimator")["estimate"]
    assert np.isfinite(got).all()
    assert got["IPW"] == pytest.approx((0 * 1 + 0 + 1 * 1) / 3)       # weights 1, 0, 1
    assert got["SNIPW"] == pytest.approx(0.5)


def test_snipw_with_all_weights_zero_is_nan_with_a_reason():
    with pytest.warns(RuntimeWarning, match="every importance weight is 0"):
        got = ope.estimate([0, 1, 1], [0.5, 0.5, 0.2], [0.0, 0.0, 0.0], estimators=("IPW", "SNIPW"), n_bootstrap=50)
    got = got.set_index("estimator")
    assert np.isnan(got.loc["SNIPW", "estimate"]) and got.loc["IPW", "estimate"] == 0.0
