"""Experiments before anything ships: simulated shoppers, A/B tests, sequential monitoring, bandits, off-policy evaluation.

Modules: :mod:`~recapp.experiment.simulator` (shoppers with known tastes),
:mod:`~recapp.experiment.abtest` (assignment, SRM, per-user tests, power),
:mod:`~recapp.experiment.ab_calibration` (the tests' false-positive rate and power on simulated experiments),
:mod:`~recapp.experiment.sequential` (alpha spending, mSPRT, peeking),
:mod:`~recapp.experiment.live_ab` (a live A/B test with an always-valid verdict),
:mod:`~recapp.experiment.bandits` (epsilon-greedy, UCB1, Thompson, LinUCB),
:mod:`~recapp.experiment.reinforce` (REINFORCE), :mod:`~recapp.experiment.dqn` (a DQN slate re-ranker for returning
shoppers), :mod:`~recapp.experiment.ope` (IPW, SNIPW, DM, DR on logged data)
and :mod:`~recapp.experiment.plots` (plotly figures).
"""
from recapp.experiment.ab_calibration import calibration
from recapp.experiment.abtest import (
    analyze,
    assign,
    compare_means,
    compare_proportions,
    compare_ratio,
    delta_ratio,
    predicted_power,
    sample_size,
    srm_check,
    user_metrics,
)
from recapp.experiment.bandits import (
    UCB1,
    BanditPolicy,
    EpsilonGreedy,
    LinUCB,
    ThompsonSampling,
    bandit_simulator,
    compare_policies,
)
from recapp.experiment.click_model import ClickModel, fit_click_model, position_decay_test, predict_logged, synthetic_rounds
from recapp.experiment.cuped import (
    analyze_cuped,
    compare_means_cuped,
    compare_ratio_cuped,
    cuped_adjust,
    cuped_theta,
    linearize_ratio,
    sample_size_cuped,
)
from recapp.experiment.cuped_sim import add_pre_period, simulate_with_pre_period
from recapp.experiment.dqn import DQNReranker, compare_long_term, returning_simulator
from recapp.experiment.interleaving import (
    credit,
    outcomes,
    preference_sequence,
    preference_test,
    team_clicks,
    team_draft,
    team_draft_many,
)
from recapp.experiment.interleaving_sim import InterleavedPolicy, InterleavingSimulation, expected_credit, run_interleaving
from recapp.experiment.live_ab import ABSimulation, ShopScenario
from recapp.experiment.ope import LoggedFeedback, estimate, evaluate, from_open_bandit, learned_policy_study, random_policy_study
from recapp.experiment.reinforce import ReinforceReRanker
from recapp.experiment.simulator_calibration import (
    calibration_report,
    random_ctr_check,
    simulator_from_open_bandit,
    simulator_random_ctr,
)
from recapp.experiment.sequential import (
    alpha_spent,
    always_valid_pvalues,
    confidence_sequence,
    monitor,
    msprt_interval,
    msprt_statistic,
    peeking_simulation,
    spending_boundaries,
)
from recapp.experiment.simulator import (
    EnginePolicy,
    Policy,
    RandomPolicy,
    RecommenderPolicy,
    ShopperSimulator,
    SimulationResult,
    as_policy,
)

__all__ = [
    "analyze", "assign", "calibration", "compare_means", "compare_proportions", "compare_ratio", "delta_ratio",
    "predicted_power", "sample_size", "srm_check", "user_metrics",
    "LoggedFeedback", "estimate", "evaluate", "from_open_bandit", "learned_policy_study", "random_policy_study",
    "ClickModel", "fit_click_model", "predict_logged", "synthetic_rounds",
    "calibration_report", "position_decay_test", "random_ctr_check", "simulator_from_open_bandit", "simulator_random_ctr",
    "add_pre_period", "analyze_cuped", "compare_means_cuped", "compare_ratio_cuped", "cuped_adjust", "cuped_theta",
    "linearize_ratio", "sample_size_cuped", "simulate_with_pre_period",
    "ABSimulation", "ShopScenario",
    "InterleavedPolicy", "InterleavingSimulation", "credit", "expected_credit", "outcomes", "preference_sequence",
    "preference_test", "run_interleaving", "team_clicks", "team_draft", "team_draft_many",
    "alpha_spent", "always_valid_pvalues", "confidence_sequence", "monitor", "msprt_interval", "msprt_statistic",
    "peeking_simulation", "spending_boundaries",
    "EnginePolicy", "Policy", "RandomPolicy", "RecommenderPolicy", "ShopperSimulator", "SimulationResult", "as_policy",
    "BanditPolicy", "EpsilonGreedy", "UCB1", "ThompsonSampling", "LinUCB", "ReinforceReRanker", "bandit_simulator",
    "compare_policies",
    "DQNReranker", "compare_long_term", "returning_simulator",
]
