"""Bad settings of the shopper simulator, its policies, the reward models, sequential tests and interleaving are refused
with a message naming the argument (they were misread, gave a wrong number, or failed inside numpy/scipy)."""
import numpy as np
import pandas as pd
import pytest

from recapp.data import synthetic_shop
from recapp.experiment import (
    Policy,
    RandomPolicy,
    RecommenderPolicy,
    ShopperSimulator,
    always_valid_pvalues,
    expected_credit,
    monitor,
    msprt_interval,
    msprt_statistic,
    peeking_simulation,
    spending_boundaries,
)
from recapp.experiment.ope import ItemPositionModel, LogisticRewardModel, LoggedFeedback, evaluate, uniform_policy
from recapp.experiment.shopper_memory import ShopperMemory
from recapp.experiment.simulator import feedback_to_events
from recapp.models import Popularity


@pytest.fixture(scope="module")
def sim():
    return ShopperSimulator(np.random.default_rng(0).standard_normal((20, 15)), k=3)


@pytest.mark.parametrize("seed", [1.7, "5", -1, True])
def test_a_seed_that_is_not_a_whole_number_is_refused(seed):
    # 1.7 ran as seed 1 and "5" as 5; -1 failed inside numpy without naming the argument.
    with pytest.raises(ValueError, match=r"random_state=.* a seed must be None, an integer >= 0"):
        ShopperSimulator(np.ones((4, 5)), k=2, random_state=seed)
    with pytest.raises(ValueError, match="random_state="):
        ShopperMemory(4, 5, random_state=seed)


def test_policy_and_peeking_seeds_are_checked_when_given():
    for make in (lambda: RandomPolicy(random_state=1.5), lambda: RecommenderPolicy(object(), random_state="x"),
                 lambda: peeking_simulation(5, 100, 2, random_state=1.5)):
        with pytest.raises(ValueError, match="random_state="):
            make()
    # A Generator stays accepted by the policies, as numpy's default_rng accepts it.
    assert isinstance(RandomPolicy(random_state=np.random.default_rng(0)).random_state, np.random.Generator)


@pytest.mark.parametrize("kwargs, match", [
    ({"user_ids": [0] * 4}, r"user_ids\[1\] = 0 repeats an earlier id \(3 repeat"),
    ({"item_ids": ["a", "b", "a", "c", "d"]}, r"item_ids\[2\] = 'a' repeats"),
    ({"user_ids": [1.0, np.nan, 3.0, 4.0]}, r"user_ids\[1\] is missing"),
    ({"item_ids": [1, 2, 3]}, r"item_ids has shape \(3,\); expected 5"),
])
def test_ids_must_be_distinct_present_and_one_per_row(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ShopperSimulator(np.random.default_rng(1).standard_normal((4, 5)), k=2, **kwargs)


def test_a_utility_matrix_and_factors_together_are_refused():
    # The factors were silently ignored in favour of the matrix.
    with pytest.raises(ValueError, match="not both"):
        ShopperSimulator(np.ones((3, 4)), user_factors=np.ones((3, 2)), item_factors=np.ones((4, 2)), k=2)


@pytest.mark.parametrize("slates, match", [
    ([[-1, 0, 1]], r"slates\[0, 0\] = -1 is outside the catalogue"),      # read the last item's utility
    ([[0, 1, 99]], r"slates\[0, 2\] = 99 is outside the catalogue"),
    ([[0.0, 1.0, 2.0]], "dtype float64; it holds item indices"),
    ([0, 1, 2], r"slates has shape \(3,\)"),
    ([[0, 1, 2, 3, 4]], r"slates has shape \(1, 5\).*1 to 3 column"),
])
def test_click_probabilities_refuse_slates_that_are_not_catalogue_indices(sim, slates, match):
    with pytest.raises(ValueError, match=match):
        sim.click_probabilities([0], slates)


def test_click_probabilities_need_one_slate_per_user(sim):
    # One slate for two users was broadcast to both.
    with pytest.raises(ValueError, match=r"2 row\(s\) \(one per shopper\)"):
        sim.click_probabilities([0, 1], [[0, 1, 2]])
    assert sim.click_probabilities([0, 1], [[0, 1, 2], [3, 4, 5]]).shape == (2, 3)


@pytest.mark.parametrize("k", [0, 16, 2.0])
def test_oracle_slates_refuse_a_k_outside_the_catalogue(sim, k):
    # k=0 returned empty slates; 16 and 2.0 failed inside numpy's partition.
    with pytest.raises(ValueError, match=r"k=.* must be an integer in \[1, 15\] \(the catalogue\)"):
        sim.oracle_slates([0], k)


class _Repeats(Policy):
    name = "repeats"

    def slates(self, users, k):
        return np.tile(np.r_[0, 0, np.arange(1, k - 1)], (len(users), 1))


def test_a_slate_showing_one_item_twice_is_refused(sim):
    # The repeated item's attraction counted twice: CTR and regret were silently wrong.
    with pytest.raises(ValueError, match=r"policy 'repeats''s slates row 0 shows an item twice \(\[0, 0, 1\]"):
        sim.run(_Repeats(), n_steps=1, sessions_per_step=5)


def test_random_policy_refuses_a_k_above_the_catalogue(sim):
    pol = RandomPolicy()
    pol.reset(sim.environment())
    with pytest.raises(ValueError, match=r"k=40 is not accepted; it must be an integer in \[1, 15\]"):
        pol.slates([0], 40)        # returned 15 columns, silently


def test_feedback_events_must_be_a_list_of_known_names(sim):
    # "click" was read as ('c', 'l', 'i', 'c', 'k'): the model was never updated.
    with pytest.raises(ValueError, match="feedback_events='click' is a single string"):
        RecommenderPolicy(object(), feedback_events="click")
    with pytest.raises(ValueError, match=r"feedback_events holds \['clicks'\]"):
        RecommenderPolicy(object(), feedback_events=["clicks"])
    imp = sim.run(RandomPolicy(), n_steps=1, sessions_per_step=5).impressions
    with pytest.raises(ValueError, match=r"events holds \['clicks'\]"):
        feedback_to_events(imp, ["clicks"])       # selected nothing
    assert len(feedback_to_events(imp, ["view"])) == len(imp)


def test_from_model_needs_a_whole_n_context():
    shop = synthetic_shop(n_users=60, n_items=30, n_events=1500, random_state=0)
    truth = Popularity().fit(shop.events)
    for bad in (0, 2.5):                        # 0 ran as 1; 2.5 failed inside scipy
        with pytest.raises(ValueError, match="n_context="):
            ShopperSimulator.from_model(truth, n_context=bad, k=3)


def test_reward_model_settings_and_order_of_calls():
    logged = LoggedFeedback(action=np.array([0, 1, 0, 1]), position=np.zeros(4, int), reward=np.array([1.0, 0, 1, 0]),
                            pscore=np.full(4, 0.5), action_ids=np.array(["a", "b"]), n_positions=1)
    with pytest.raises(ValueError, match="prior_strength=0"):
        ItemPositionModel(0)                    # an unshown (item, slot) was 0 / 0
    with pytest.raises(ValueError, match="C=0"):
        LogisticRewardModel(C=0)
    with pytest.raises(ValueError, match="not fitted yet"):
        ItemPositionModel().predict(logged)
    with pytest.raises(TypeError, match=r"is a class; pass an instance, e.g. ItemPositionModel\(\)"):
        evaluate(logged, uniform_policy(logged), reward_model=ItemPositionModel)


def test_msprt_inputs_of_different_shapes_are_named():
    with pytest.raises(ValueError, match=r"diff, variance, n must have one shape.*'variance': \(4,\)"):
        msprt_statistic([0.1, 0.2, 0.3], [1, 1, 1, 1], [10, 20, 30], 0.1)
    with pytest.raises(ValueError, match="diff, variance must have one shape"):
        msprt_interval([0.1, 0.2], [1, 1, 1], 0.1)


def test_always_valid_pvalues_of_one_look_and_a_bad_axis():
    assert float(always_valid_pvalues(5.0)) == pytest.approx(0.2)
    with pytest.raises(ValueError, match="axis=1 is not an axis"):
        always_valid_pvalues([1.0, 2.0], axis=1)


def test_spending_boundaries_refuse_text_information():
    with pytest.raises(ValueError, match="information must be increasing fractions"):
        spending_boundaries("0.5,1")


LOOKS = pd.DataFrame({"users_c": [100, 200], "conversions_c": [10, 20], "users_t": [100, 200],
                      "conversions_t": [12, 25]})


@pytest.mark.parametrize("column, values, match", [
    ("conversions_c", [10, "x"], r"looks\['conversions_c'\] must hold numbers"),
    ("users_c", [100.5, 200], r"looks\['users_c'\] = 100.5 at row 0 is not a whole number"),
    ("conversions_t", pd.array([12, None], dtype="Int64"), r"looks\['conversions_t'\]\[1\] = nan"),
])
def test_monitor_names_a_count_that_is_not_a_whole_number(column, values, match):
    looks = LOOKS.copy()
    looks[column] = values
    with pytest.raises(ValueError, match=match):
        monitor(looks, 400)


def test_monitor_needs_a_dataframe():
    with pytest.raises(TypeError, match="looks must be a DataFrame"):
        monitor(LOOKS.to_dict("list"), 400)
    assert monitor(LOOKS, 400)["z"].notna().all()


@pytest.mark.parametrize("a, users, match", [
    ([[0, 1]], [0], r"slates_a has shape \(1, 2\).*at least 3"),
    ([[0, 1, 2]], [0, 1], r"slates_a has shape \(1, 3\).*2 row"),
    ([0, 1, 2], [0], r"slates_a has shape \(3,\)"),
])
def test_expected_credit_names_slates_of_the_wrong_shape(sim, a, users, match):
    b = np.tile([5, 6, 7], (len(users), 1))
    with pytest.raises(ValueError, match=match):
        expected_credit(sim, users, a, b)
