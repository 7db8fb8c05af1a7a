"""Bad input to the experiment statistics (OPE, A/B tests, sequential monitoring) is refused or counted, never reported as a result."""
import warnings

import numpy as np
import pandas as pd
import pytest

from recapp.experiment import abtest, ope, sequential

R, PS, TP = [1.0, 0, 1, 0, 1], [0.5] * 5, [0.5, 0.2, 0.9, 0.1, 0.3]


# ---- off-policy evaluation ------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, match", [
    ({"pscore": [np.nan, .5, .5, .5, .5]}, r"pscore\[0\] = nan"),
    ({"reward": [np.nan, 0, 1, 0, 1]}, r"reward\[0\] = nan"),
    ({"pscore": [.5, .5, 5.0, .5, .5]}, r"pscore\[2\] = 5.0.*<= 1"),
    ({"target_prob": [.5, -.5, .9, .1, .3]}, r"target_prob\[1\] = -0.5"),
    ({"reward": [1.0]}, r"same length.*'reward': 1"),
    ({"reward": [], "pscore": [], "target_prob": []}, r"reward needs at least 1"),
    ({"alpha": 2.0}, r"alpha=2.0 .*\(0, 1\)"),
    ({"n_bootstrap": 0}, r"n_bootstrap=0 .*>= 2"),
])
def test_estimate_refuses_bad_rounds_naming_the_argument_and_position(kwargs, match):
    args = {"reward": R, "pscore": PS, "target_prob": TP, "estimators": ("IPW", "SNIPW"), "n_bootstrap": 20} | kwargs
    with pytest.raises(ValueError, match=match):
        ope.estimate(**args)


def test_estimate_refuses_a_nan_reward_model_value_and_still_takes_clean_rounds():
    with pytest.raises(ValueError, match=r"q_logged\[0\] = nan"):
        ope.estimate(R, PS, TP, q_logged=[np.nan, 0, 0, 0, 0], q_expected=np.zeros(5), n_bootstrap=20)
    out = ope.estimate(R, PS, TP, estimators=("IPW",), n_bootstrap=200).iloc[0]
    assert out["estimate"] == pytest.approx(np.mean(np.array(R) * np.array(TP) / 0.5))
    assert out["ci_low"] <= out["estimate"] <= out["ci_high"]


def test_evaluate_refuses_a_target_distribution_outside_0_1():
    lf = ope.LoggedFeedback(action=np.array([0, 1, 0, 1]), position=np.zeros(4, int), reward=np.array([1.0, 0, 1, 0]),
                            pscore=np.full(4, 0.5), action_ids=np.array([10, 20]), n_positions=1)
    with pytest.raises(ValueError, match=r"action_dist\[0\] = 1.5"):
        ope.evaluate(lf, np.array([1.5, -0.5]), reward_model=None, estimators=("IPW",), n_bootstrap=20)


@pytest.mark.parametrize("kwargs, match", [({"top_k": 0}, "top_k=0"), ({"top_k": 5}, "top_k=5 .*<= 3"),
                                           ({"temperature": 0.0}, "temperature=0.0"), ({"epsilon": 2.0}, "epsilon=2.0")])
def test_policy_from_scores_refuses_parameters_that_break_the_distribution(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ope.policy_from_scores(np.array([[1.0, 2, 3]]), **kwargs)


# ---- A/B tests --------------------------------------------------------------------------------
def test_assign_refuses_nan_weights():
    with pytest.raises(ValueError, match=r"weights\[0\] = nan"):
        abtest.assign(range(10), weights=[np.nan, 1.0])


@pytest.mark.parametrize("counts, match", [({"a": 0, "b": 0}, "no users"), ({"a": -10, "b": 10}, r"observed\['a'\] = -10"),
                                           ({"a": np.nan, "b": 10}, r"observed\['a'\] = nan")])
def test_srm_check_refuses_counts_that_hold_no_split(counts, match):
    with pytest.raises(ValueError, match=match):
        abtest.srm_check(counts)


EVENTS = pd.DataFrame({"user_id": [1, 2, 3, 3], "event": ["view", "view", "purchase", "view"], "value": [0, 0, 7.0, 0]})
ASSIGNED = pd.Series(["control", "treatment"], index=pd.Index([1, 2], name="user_id"))


def test_user_metrics_counts_and_reports_users_without_an_arm():
    with pytest.warns(RuntimeWarning, match=r"1 user\(s\) with no arm \(2 event\(s\)\)"):
        m = abtest.user_metrics(EVENTS, ASSIGNED)
    assert list(m.index) == [1, 2]
    assert m.attrs["dropped"] == {"events_without_user": 0, "unassigned_users": 1, "unassigned_events": 2}


def test_user_metrics_counts_events_without_a_user():
    with pytest.warns(RuntimeWarning, match=r"2 event\(s\) with no user_id"):
        m = abtest.user_metrics(EVENTS.assign(user_id=[1, 2, np.nan, np.nan]), ASSIGNED)
    assert m.attrs["dropped"]["events_without_user"] == 2


def test_user_metrics_refuses_a_user_in_two_arms_and_a_purchase_without_value():
    with pytest.raises(ValueError, match="user 2 is assigned more than once"):
        abtest.user_metrics(EVENTS, pd.Series(["control", "treatment", "control"], index=pd.Index([1, 2, 2])))
    with pytest.raises(ValueError, match="user 3 has events in several arms"):
        abtest.user_metrics(EVENTS.assign(arm=["control", "treatment", "control", "treatment"]))
    with pytest.raises(ValueError, match="value is nan on 1 purchase"):
        abtest.user_metrics(EVENTS.assign(value=[0, 0, np.nan, 0]), ASSIGNED.reindex([1, 2, 3], fill_value="control"))


def test_user_metrics_on_clean_input_warns_nothing():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = abtest.user_metrics(EVENTS, ASSIGNED.reindex([1, 2, 3], fill_value="control"))
    assert m.loc[3, "revenue"] == 7.0 and m.attrs["dropped"]["unassigned_users"] == 0


@pytest.mark.parametrize("call, match", [
    (lambda: abtest.sample_size(0.1, 0.1, ratio=0), "ratio=0"),
    (lambda: abtest.sample_size(0.1, 0.1, ratio=-1), "ratio=-1"),
    (lambda: abtest.sample_size(0.1, 0.1, power=1.0), r"power=1.0 .*\(0, 1\)"),
    (lambda: abtest.sample_size(0.1, 0.1, alpha=0), "alpha=0"),
    (lambda: abtest.predicted_power(0.1, 0.2, 0), "nobs=0"),
    (lambda: abtest.predicted_power(2, 0.2, 100), "baseline=2"),
    (lambda: abtest.compare_proportions(-1, 10, 5, 10), r"count_c = -1.0"),
    (lambda: abtest.compare_proportions(15, 10, 5, 10), "count_c = 15.0 exceeds nobs_c = 10.0"),
    (lambda: abtest.compare_means([0, 0, 0], [5, 5, 5]), "both constant"),
    (lambda: abtest.compare_means([1.0], [2.0, 3.0]), "at least 2 users"),
    (lambda: abtest.compare_means([1.0, np.nan, 2.0], [2.0, 3.0]), r"x_c\[1\] = nan"),
])
def test_ab_statistics_refuse_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_compare_means_with_both_arms_constant_and_equal_reads_no_difference():
    r = abtest.compare_means([0.0, 0, 0], [0.0, 0, 0])
    assert (r["statistic"], r["pvalue"], r["ci_low"], r["ci_high"]) == (0.0, 1.0, 0.0, 0.0)
    vec = abtest.compare_means(np.array([[0.0, 1], [0, 2], [0, 3]]), np.array([[0.0, 2], [0, 4], [0, 5]]))
    assert vec["pvalue"][0] == 1.0 and 0 < vec["pvalue"][1] < 1


def test_analyze_names_the_accepted_corrections_and_keeps_undefined_tests_nan():
    per_user = pd.DataFrame({"arm": ["control"] * 3 + ["treatment"] * 3, "views": [0] * 6, "clicks": [0] * 6,
                             "converted": [0, 1, 0, 1, 1, 0], "revenue": [0.0, 1, 0, 2, 3, 0]})
    with pytest.raises(ValueError, match="correction='bogus'.*holm"):
        abtest.analyze(per_user, correction="bogus")
    out = abtest.analyze(per_user).set_index("metric")
    assert np.isnan(out.loc["ctr", "pvalue"]) and np.isnan(out.loc["ctr", "pvalue_adj"])
    assert not out.loc["ctr", "significant"]


# ---- sequential monitoring -------------------------------------------------------------------
LOOKS = pd.DataFrame({"users_c": [1000, 2000], "conversions_c": [100, 200], "users_t": [1000, 2000], "conversions_t": [130, 260]})


@pytest.mark.parametrize("looks, match", [
    (LOOKS.iloc[::-1], "users_c falls from 2000 to 1000"),
    (LOOKS.assign(conversions_c=[1500, 2000]), "conversions_c = 1500 exceeds users_c = 1000"),
    (LOOKS.assign(conversions_t=[np.nan, 260]), r"looks\['conversions_t'\]\[0\] = nan"),
    (LOOKS.assign(users_c=[0, 2000]), r"looks\['users_c'\]\[0\] = 0.0"),
])
def test_monitor_refuses_looks_that_are_not_cumulative_counts(looks, match):
    with pytest.raises(ValueError, match=match):
        sequential.monitor(looks, 3000, tau=0.01)


@pytest.mark.parametrize("call, match", [
    (lambda: sequential.alpha_spent([2.0]), r"t\[0\] = 2.0"),
    (lambda: sequential.alpha_spent([0.5, 1.0], alpha=1.5), "alpha=1.5"),
    (lambda: sequential.spending_boundaries([0.5, 1.0], grid_points=1), "grid_points=1"),
    (lambda: sequential.spending_boundaries([0.5, 1.0], alpha=1.5), "alpha=1.5"),
    (lambda: sequential.monitor(LOOKS, 3000, tau=0.01, alpha=2.0), "alpha=2.0"),
    (lambda: sequential.peeking_simulation(n_experiments=0), "n_experiments=0"),
])
def test_sequential_parameters_are_checked(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# ---- the mSPRT pieces and the ratio test refuse what would poison every later look -----------------------
@pytest.mark.parametrize("call, match", [
    (lambda: sequential.msprt_statistic([np.nan, 0.1, 0.5], 0.5, [10, 100, 1000], tau=0.1), r"diff\[0\] = nan"),
    (lambda: sequential.msprt_statistic([0.1], -0.5, [10], tau=0.1), r"variance = -0.5"),
    (lambda: sequential.msprt_statistic([0.1], 0.5, [10], tau=-1.0), "tau=-1.0 is out of range"),
    (lambda: sequential.confidence_sequence([0.1, np.nan], [0.1, 0.1], 0.1), r"diff\[1\] = nan"),
    (lambda: sequential.always_valid_pvalues([1.0, np.nan, 2.0]), r"lam\[1\] = nan"),
])
def test_msprt_inputs_must_be_numbers(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_msprt_keeps_its_answers_on_good_input():
    p = sequential.always_valid_pvalues(sequential.msprt_statistic([0.0, 0.1, 0.5], 0.5, [10, 100, 1000], tau=0.1))
    assert p[0] == 1.0 and p[2] < 1e-50 and np.all(np.diff(p) <= 0)


@pytest.mark.parametrize("args, match", [
    (([1], [3], [1], [4]), "hold 1 user"),
    (([1, 2], [0, 0], [1, 2], [3, 4]), "den_c sums to 0"),
    (([1, np.nan], [3, 3], [1, 2], [3, 4]), r"num_c\[1\] = nan"),
    (([1, 2], [3, 4], [1, 2], [3, 4], 1.5), "alpha=1.5"),
])
def test_compare_ratio_refuses_arms_it_cannot_test(args, match):
    with pytest.raises(ValueError, match=match):
        abtest.compare_ratio(*args)
    assert abtest.compare_ratio([0, 0], [3, 3], [0, 0], [2, 2])["pvalue"] == 1.0
