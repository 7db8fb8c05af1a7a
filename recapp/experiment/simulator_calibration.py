"""Is the simulator telling the truth? Test a click model fitted on one policy's logs against another's.

:func:`calibration_report` predicts another policy's logged impressions (the
Bernoulli Thompson Sampling logs of Open Bandit) with a
:class:`~recapp.experiment.click_model.ClickModel` fitted on the random
policy's, and compares predicted with observed click rates per slot, per item
and overall. :func:`simulator_from_open_bandit` builds a
:class:`~recapp.experiment.simulator.ShopperSimulator` with the fitted
parameters, and :func:`random_ctr_check` sets its random-policy CTR beside the
off-policy estimates of :func:`recapp.experiment.ope.random_policy_study`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from recapp.experiment._checks import check_level
from recapp.experiment.click_model import (
    CLICK_COL,
    ClickModel,
    fit_click_model,
    predict_logged,
    _encode,
    _quantiles,
)
from recapp.models.base import check_param
from recapp.schema import ITEM_COL


# ---- predicted against observed --------------------------------------------------------------
@dataclass
class CalibrationReport:
    """Predicted against observed click rates on another policy's logs.

    ``positions`` and ``items`` have one row per group: impressions, clicks,
    observed_ctr with a Wilson interval (obs_low, obs_high), predicted_ctr with
    the parameter-uncertainty interval (pred_low, pred_high), the predictive
    interval of the observed rate (parameters and click noise: ppi_low,
    ppi_high), p_value (two-sided, predictive) and flag (observed outside the
    predictive interval). ``tests`` holds the overall checks.
    """

    positions: pd.DataFrame
    items: pd.DataFrame
    tests: pd.DataFrame


def _predictive_clicks(draws: np.ndarray, groupings: dict, n_sims: int, rng) -> dict:
    """Simulated click counts per group, one row per simulation: each simulation takes one parameter draw and Bernoulli clicks."""
    import scipy.sparse as sp

    onehots = {k: sp.csr_matrix((np.ones(len(g)), (np.arange(len(g)), g)), shape=(len(g), g.max() + 1)) for k, g in groupings.items()}
    out = {k: [] for k in groupings}
    pick = rng.integers(0, len(draws), n_sims)
    for start in range(0, n_sims, 100):
        sims = sp.csr_matrix(rng.random((min(100, n_sims - start), draws.shape[1])) < draws[pick[start:start + 100]], dtype=np.float64)
        for k, m in onehots.items():
            out[k].append((sims @ m).toarray())
    return {k: np.vstack(v) for k, v in out.items()}


def _group_table(group, y, pred, draws, sims, labels, alpha) -> pd.DataFrame:
    """Observed and predicted CTR per group code, with intervals and flags (see :class:`CalibrationReport`)."""
    from statsmodels.stats.proportion import proportion_confint

    G = len(labels)
    n = np.bincount(group, minlength=G).astype(np.float64)
    clicks = np.bincount(group, weights=y, minlength=G)
    obs_low, obs_high = proportion_confint(clicks, n, alpha=alpha, method="wilson")
    pred_draw = np.stack([np.bincount(group, weights=d, minlength=G) for d in draws]) / n
    sim_ctr = sims / n
    p_le, p_ge = (sims <= clicks).mean(0), (sims >= clicks).mean(0)
    out = pd.DataFrame({"group": labels, "impressions": n.astype(np.int64), "clicks": clicks.astype(np.int64),
                        "observed_ctr": clicks / n, "obs_low": obs_low, "obs_high": obs_high,
                        "predicted_ctr": np.bincount(group, weights=pred, minlength=G) / n,
                        "pred_low": np.quantile(pred_draw, alpha / 2, axis=0), "pred_high": np.quantile(pred_draw, 1 - alpha / 2, axis=0),
                        "ppi_low": np.quantile(sim_ctr, alpha / 2, axis=0), "ppi_high": np.quantile(sim_ctr, 1 - alpha / 2, axis=0),
                        "p_value": np.minimum(1.0, 2 * np.minimum(p_le, p_ge))})
    out["flag"] = (out["observed_ctr"] < out["ppi_low"]) | (out["observed_ctr"] > out["ppi_high"])
    return out


def _chi2_test(name, group, y, pred, sims, G) -> dict:
    """Pearson chi-square of clicks over groups against the point predictions; p-values from chi2(G) and from the simulations."""
    from scipy.stats import chi2

    e = np.bincount(group, weights=pred, minlength=G)
    v = np.bincount(group, weights=pred * (1 - pred), minlength=G)
    keep = v > 0

    def stat(o):
        return (((o - e) ** 2)[..., keep] / v[keep]).sum(axis=-1)

    t, t_sim = float(stat(np.bincount(group, weights=y, minlength=G))), stat(sims)
    return {"test": name, "groups": int(keep.sum()), "statistic": t, "p_chi2": float(chi2.sf(t, int(keep.sum()))),
            "p_predictive": float((1 + (t_sim >= t).sum()) / (1 + len(t_sim)))}


def calibration_report(model: ClickModel, rounds: pd.DataFrame, top_items: int = 10, bins: int = 5,
                       n_sims: int = 2000, alpha: float = 0.05, random_state=0) -> CalibrationReport:
    """Does the model predict ``rounds`` (another policy's logs)? Per position, per item and overall.

    Items: the ``top_items`` most shown in ``rounds`` and one row for all
    others. The predictive intervals and p-values simulate ``n_sims`` logs of
    the same impressions, each with one of the model's parameter draws and
    Bernoulli clicks, so they hold both the parameter and the click noise.
    Tests (rows of ``tests``): total clicks; Pearson chi-square over
    positions, over all items and over ``bins`` equal-size bins of predicted
    CTR (Hosmer-Lemeshow style), each with a chi2(groups) p-value (no
    parameter was fitted on ``rounds``; too liberal with few clicks) and a
    p-value from the simulations (p_predictive). Refused: empty ``rounds``, a
    model without draws, ``top_items``/``bins``/``n_sims`` not integers >= 1,
    ``alpha`` outside (0, 1).
    """
    a, p, y = _encode(rounds, model.items, model.n_positions)
    if len(y) == 0:
        raise ValueError("rounds is empty: there are no logged impressions to check the model against")
    if len(model.draws_) == 0:
        raise ValueError("the model has no parameter draws; fit it with n_draws > 0")
    for name, value in (("top_items", top_items), ("bins", bins), ("n_sims", n_sims)):
        check_param(name, value, low=1, integer=True)
    check_level("alpha", alpha)
    pred, draws = predict_logged(model, rounds), predict_logged(model, rounds, replicates=True)
    ids = rounds[ITEM_COL].to_numpy()
    shown = pd.Series(ids).value_counts()
    top = shown.index[:top_items].to_numpy()
    item_code = np.where(np.isin(ids, top), pd.Index(top).get_indexer(ids), len(top))
    item_codes = pd.Index(np.sort(np.unique(ids))).get_indexer(ids)
    bin_code = pd.qcut(pd.Series(pred).rank(method="first"), min(bins, len(pred)), labels=False).to_numpy()
    groupings = {"position": p, "item": item_code, "all_items": item_codes, "bin": bin_code, "total": np.zeros(len(y), np.int64)}
    sims = _predictive_clicks(draws, groupings, n_sims, np.random.default_rng(random_state))
    positions = _group_table(p, y, pred, draws, sims["position"], np.arange(1, model.n_positions + 1), alpha)
    items = _group_table(item_code, y, pred, draws, sims["item"], [str(i) for i in top] + ["all other items"], alpha)
    items.insert(1, "share", items["impressions"] / len(y))
    total = _group_table(groupings["total"], y, pred, draws, sims["total"], ["all"], alpha).iloc[0]
    tests = pd.DataFrame([
        {"test": "total clicks", "groups": 1, "statistic": float(total["clicks"]), "p_chi2": np.nan, "p_predictive": float(total["p_value"])},
        _chi2_test("chi-square over positions", p, y, pred, sims["position"], model.n_positions),
        _chi2_test("chi-square over items", item_codes, y, pred, sims["all_items"], int(item_codes.max()) + 1),
        _chi2_test(f"Hosmer-Lemeshow ({bins} bins of predicted CTR)", bin_code, y, pred, sims["bin"], int(bin_code.max()) + 1),
    ])
    tests["observed_clicks"], tests["predicted_clicks"] = float(total["clicks"]), float(pred.sum())
    return CalibrationReport(positions, items, tests)


# ---- the simulator with the fitted parameters -------------------------------------------------------
def simulator_from_open_bandit(model: ClickModel, draw: int | None = None, **kwargs):
    """A :class:`~recapp.experiment.simulator.ShopperSimulator` whose choice model is the fitted one.

    One shopper type (the model has no context) sees ``n_positions`` slots;
    its utilities are the item appeals, with ``choice_scale=1``, no
    standardisation (``mu_ = 0``, ``sd_ = 1``), ``examination_ = exp(position
    effects)`` and ``no_click_weight_ = exp(-intercept)``: the learned
    attributes the constructor would otherwise set from ``position_decay`` and
    ``target_ctr``. A one-item slate in slot p is then clicked with exactly the
    fitted probability; a full slate's items compete (multinomial logit), which
    at Open Bandit's CTR lowers each slot's rate by under 1%. ``draw`` uses one
    parameter draw instead of the estimate. ``kwargs`` go to the constructor
    (funnel, prices, random_state); Open Bandit calibrates only the click.
    ``draw`` must index ``model.draws_`` (0 to n_draws - 1).
    """
    from recapp.experiment.simulator import ShopperSimulator

    if draw is not None:
        # A negative index would silently pick a draw from the end.
        check_param("draw", draw, integer=True)
        if not 0 <= draw < len(model.draws_):
            raise ValueError(f"draw={draw!r} is out of range: the model has {len(model.draws_)} parameter draw(s), "
                             f"numbered 0 to {len(model.draws_) - 1}")
    theta = model.theta_ if draw is None else model.draws_[draw]
    P = model.n_positions
    ctr = float(1.0 / (1.0 + np.exp(-theta[0])))
    sim = ShopperSimulator(theta[None, P:], user_ids=np.array([0]), item_ids=model.items, k=P, choice_scale=1.0,
                           target_ctr=ctr, **kwargs)
    sim.mu_, sim.sd_ = 0.0, 1.0
    sim.examination_ = np.exp(np.r_[0.0, theta[1:P]])
    sim.no_click_weight_ = float(np.exp(-theta[0]))
    return sim


def simulator_random_ctr(model: ClickModel, n_slates: int = 20_000, run_slates: int = 100_000, alpha: float = 0.05,
                         random_state=0) -> pd.DataFrame:
    """The simulator's click rate per impression under uniformly random slates.

    Row "simulator, expected": mean ``click_probabilities`` over ``n_slates``
    random slates, with an interval over the model's parameter draws. Row
    "simulator, run": ``run_slates`` slates served by
    :class:`~recapp.experiment.simulator.RandomPolicy` through ``run`` (clicks
    drawn by the simulator), with a Wilson interval for its Monte Carlo noise.
    ``n_slates`` and ``run_slates`` must be integers >= 1.
    """
    from statsmodels.stats.proportion import proportion_confint

    from recapp.experiment.simulator import RandomPolicy

    check_param("n_slates", n_slates, low=1, integer=True)
    check_param("run_slates", run_slates, low=1, integer=True)
    check_level("alpha", alpha)
    rng = np.random.default_rng(random_state)
    slates = np.argsort(rng.random((n_slates, len(model.items))), axis=1)[:, :model.n_positions]   # item indices
    users = np.zeros(n_slates, dtype=np.int64)

    def expected(draw):
        return float(simulator_from_open_bandit(model, draw, random_state=random_state).click_probabilities(users, slates).mean())

    per_draw = np.array([expected(d) for d in range(len(model.draws_))])
    lo, hi = _quantiles(per_draw[:, None], alpha)
    sim = simulator_from_open_bandit(model, session_length=1.0, random_state=random_state)
    steps = max(1, run_slates // 5000)
    imp = sim.run(RandomPolicy(random_state), n_steps=steps, sessions_per_step=max(1, run_slates // steps)).impressions
    k, n = int(imp["click"].sum()), len(imp)
    run_lo, run_hi = proportion_confint(k, n, alpha=alpha, method="wilson")
    return pd.DataFrame([
        {"method": "simulator, expected", "estimate": expected(None), "ci_low": lo[0], "ci_high": hi[0],
         "interval": f"{model.intervals} parameter draws", "n": n_slates * model.n_positions},
        {"method": "simulator, run", "estimate": k / n, "ci_low": run_lo, "ci_high": run_hi,
         "interval": "Wilson, Monte Carlo", "n": n},
    ])


def random_ctr_check(campaign: str = "all", n_draws: int = 200, ope_bootstrap: int = 500, intervals: str = "laplace",
                     alpha: float = 0.05, random_state=0, data_path=None, run_slates: int = 100_000) -> pd.DataFrame:
    """The uniform-random policy's CTR three ways: measured in its own logs, off-policy from the BTS logs, simulated.

    Rows: the measured truth (random logs, Wilson interval); IPW, SNIPW, DM
    and DR from :func:`recapp.experiment.ope.random_policy_study`; the
    simulator calibrated on the random logs (expected and run, see
    :func:`simulator_random_ctr`; in-sample, so it should sit on the truth);
    and the simulator calibrated on the BTS logs (a model-based off-policy
    estimate, like DM). Columns method, fitted_on, estimate, ci_low, ci_high,
    interval, covers_truth and overlaps_simulator (the interval meets that of
    the random-calibrated simulator's expected CTR).
    """
    from statsmodels.stats.proportion import proportion_confint

    from recapp.data.openbandit import load_open_bandit
    from recapp.experiment.ope import random_policy_study

    rnd, bts = load_open_bandit("random", campaign, data_path), load_open_bandit("bts", campaign, data_path)
    items = np.sort(rnd.item_context[ITEM_COL].unique())
    k, n = int(rnd.rounds[CLICK_COL].sum()), len(rnd.rounds)
    lo, hi = proportion_confint(k, n, alpha=alpha, method="wilson")
    rows = [pd.DataFrame([{"method": "measured", "fitted_on": "random logs", "estimate": k / n, "ci_low": lo, "ci_high": hi,
                           "interval": "Wilson", "n": n}])]
    ope = random_policy_study(campaign, n_bootstrap=ope_bootstrap, alpha=alpha, random_state=random_state, data_path=data_path)
    rows.append(ope.rename(columns={"estimator": "method", "n_rounds": "n"})[["method", "estimate", "ci_low", "ci_high", "n"]]
                .assign(fitted_on="BTS logs", interval="bootstrap"))
    for label, ob in (("random logs", rnd), ("BTS logs", bts)):
        model = fit_click_model(ob.rounds, items=items, intervals=intervals, n_draws=n_draws, alpha=alpha, random_state=random_state)
        sim = simulator_random_ctr(model, alpha=alpha, random_state=random_state, run_slates=run_slates)
        rows.append(sim.assign(fitted_on=label) if label == "random logs" else sim.iloc[:1].assign(fitted_on=label))
    out = pd.concat(rows, ignore_index=True)[["method", "fitted_on", "estimate", "ci_low", "ci_high", "interval", "n"]]
    out["covers_truth"] = (out["ci_low"] <= k / n) & (k / n <= out["ci_high"])
    ref = out[(out["method"] == "simulator, expected") & (out["fitted_on"] == "random logs")].iloc[0]
    out["overlaps_simulator"] = (out["ci_low"] <= ref["ci_high"]) & (ref["ci_low"] <= out["ci_high"])
    return out
