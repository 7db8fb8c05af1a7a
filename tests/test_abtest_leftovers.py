"""Inputs the A/B tools used to misread or crash on with a library error: each is now refused by name, or handled."""
import warnings

import numpy as np
import pandas as pd
import pytest

from recapp.data import synthetic_shop
from recapp.experiment import (assign, compare_means, compare_means_cuped, compare_ratio, compare_ratio_cuped, delta_ratio,
                               simulate_with_pre_period)
from recapp.experiment import abtest
from recapp.experiment.simulator import RandomPolicy, ShopperSimulator

RNG = np.random.default_rng(0)
CLICKS = RNG.integers(0, 4, 30).astype(float)
VIEWS = CLICKS + RNG.integers(1, 5, 30)


# ---- compare_ratio / delta_ratio ----------------------------------------------------------------------
@pytest.mark.parametrize("axis", [2, 1, -2, 1.0, True])
def test_compare_ratio_refuses_an_axis_the_input_lacks(axis):
    with pytest.raises(ValueError, match=rf"axis={axis!r} is not an axis of the 1-D input"):
        compare_ratio(CLICKS, VIEWS, CLICKS, VIEWS, axis=axis)


def test_compare_ratio_negative_axis_is_the_same_test():
    assert compare_ratio(CLICKS, VIEWS, CLICKS + 1, VIEWS + 1, axis=-1) == compare_ratio(CLICKS, VIEWS, CLICKS + 1, VIEWS + 1)


def test_compare_ratio_refuses_arms_with_different_test_counts():
    c, t = np.ones((5, 3)), np.ones((5, 2))
    with pytest.raises(ValueError, match=r"num_c/den_c give 3 test\(s\) and num_t/den_t 2"):
        compare_ratio(c, 2 * c, t, 2 * t)
    # One control column against every treatment column still broadcasts, as before.
    assert np.shape(compare_ratio(np.ones((5, 1)), 2 * np.ones((5, 1)), t, 2 * t)["pvalue"]) == (2,)


@pytest.mark.parametrize("num, den, match", [
    ([1.0], [2.0], r"num/den hold 1 user\(s\) along axis 0"),
    ([], [], r"num/den hold 0 user\(s\)"),
    ([0.0, 1.0], [0.0, 0.0], r"den sums to 0"),
    ([1.0, np.nan, 3.0], [1.0, 2.0, 3.0], r"num\[1\] = nan"),
    ([1.0, 2.0], [1.0, 2.0, 3.0], r"num and den must have one value per user each"),
])
def test_delta_ratio_refuses_what_has_no_ratio_or_variance(num, den, match):
    with warnings.catch_warnings():
        warnings.simplefilter("error")      # before: NaN with at most a RuntimeWarning
        with pytest.raises(ValueError, match=match):
            delta_ratio(num, den)
    with pytest.raises(ValueError, match=r"axis=2 is not an axis"):
        delta_ratio(CLICKS, VIEWS, axis=2)


def test_delta_ratio_valid_input_unchanged():
    ratio, var = delta_ratio(CLICKS, VIEWS)
    assert ratio == pytest.approx(CLICKS.sum() / VIEWS.sum())
    assert var > 0
    # Not only counts: the delta method holds for any pairs, so a negative numerator is still accepted.
    assert np.isfinite(delta_ratio(CLICKS - 2, VIEWS)[1])
    both = delta_ratio(np.column_stack([CLICKS, CLICKS]), np.column_stack([VIEWS, VIEWS]))
    assert np.allclose(both[1], var)


# ---- compare_means ------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape_c, shape_t", [((10, 3), (10, 2)), ((10,), (10, 2)), ((10,), (10, 1))])
def test_compare_means_refuses_arms_that_do_not_pair_up(shape_c, shape_t):
    with pytest.raises(ValueError, match=r"x_c and x_t must both be 1-D, or both 2-D"):
        compare_means(RNG.normal(size=shape_c), RNG.normal(size=shape_t))


def test_compare_means_one_control_column_still_serves_every_test():
    c, t = RNG.normal(size=(10, 1)), RNG.normal(size=(12, 3))
    res = compare_means(c, t)
    assert res["pvalue"].shape == (3,)
    assert res["pvalue"][1] == pytest.approx(compare_means(c[:, 0], t[:, 1])["pvalue"])


# ---- assign -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("users", [np.arange(6).reshape(3, 2), [[1, 2], [3, 4]]])
def test_assign_refuses_users_that_are_not_a_list_of_ids(users):
    with pytest.raises(ValueError, match=r"users must be a 1-D list of user ids"):
        assign(users)
    with pytest.raises(ValueError, match=r"users must be a 1-D list of user ids"):
        abtest.hash_unit(users)


def test_assign_refuses_a_missing_user_id():
    # Before, None was hashed as the text "None", so it shared an arm with a user of that name.
    with pytest.raises(ValueError, match=r"users\[1\] = None is a missing user id \(1 such\)"):
        assign([1, None, 3])
    with pytest.raises(ValueError, match=r"users\[0\] = nan is a missing user id"):
        assign(np.array([np.nan, 1.0]))


def test_assign_valid_ids_keep_their_arm_and_dtype():
    a = assign(np.arange(50), salt="left")
    assert a.index.dtype == np.arange(1).dtype
    assert a.loc[7] == assign([7], salt="left").iloc[0]


# ---- CUPED --------------------------------------------------------------------------------------------
def test_compare_means_cuped_names_the_adjusted_metric_when_it_is_constant():
    x = np.arange(10.0)
    for theta in (0, None):
        with pytest.raises(ValueError, match=r"the CUPED-adjusted y_c and the CUPED-adjusted y_t are both constant "
                                             r"\(1\.0 and 2\.0\)"):
            compare_means_cuped(np.ones(10), 2 * np.ones(10), x, x, theta=theta)


def test_compare_ratio_cuped_without_clicks_matches_compare_ratio():
    zero, views, pre = np.zeros(10), np.ones(10), np.arange(10.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")      # before: NaN statistic and p-value, with a RuntimeWarning
        res = compare_ratio_cuped(zero, views, zero, views, pre, views, pre, views, theta=0)
    ref = compare_ratio(zero, views, zero, views)
    assert (res["statistic"], res["pvalue"]) == (ref["statistic"], ref["pvalue"]) == (0.0, 1.0)


def test_simulate_with_pre_period_refuses_one_policy_for_two_arms():
    shop = synthetic_shop(n_users=40, n_items=20, n_events=400, random_state=3)
    sim = ShopperSimulator.from_synthetic(shop, random_state=3)
    shared = RandomPolicy(random_state=1)
    with pytest.raises(ValueError, match=r"policies\['b'\] is the same object as policies\['a'\].*copy\.deepcopy"):
        simulate_with_pre_period(sim, {"a": shared, "b": shared}, pre_steps=1, n_steps=1, sessions_per_step=5)
    with pytest.raises(TypeError, match=r"policies must be a dict"):
        simulate_with_pre_period(sim, [shared], pre_steps=1, n_steps=1)
    _, per_user = simulate_with_pre_period(sim, {"a": shared, "b": RandomPolicy(random_state=2)}, pre_steps=1, n_steps=1,
                                           sessions_per_step=5)
    assert isinstance(per_user, pd.DataFrame) and "has_pre" in per_user.columns
