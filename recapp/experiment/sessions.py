"""Running policies against simulated shoppers: arrivals, sessions, arms, drift and memory, step by step.

:class:`~recapp.experiment.simulator.ShopperSimulator` says how a shopper
answers one slate (:meth:`~recapp.experiment.simulator.ShopperSimulator.serve`);
this module says who arrives and when. In each step ``sessions_per_step``
shoppers arrive, drawn by their activity; a session lasts a geometric number
of slates with mean ``session_length``; each shopper sees the policy of their
arm (a salted hash, :func:`recapp.experiment.abtest.assign`). Arrivals and
outcome draws come from their own seeded streams and are drawn before any
policy is asked, so two policies meet the same shoppers and the same coins.
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from recapp.experiment._checks import check_own_policies, distinct_names
from recapp.experiment.abtest import assign
from recapp.experiment.policies import ARM_COL, FEEDBACK_EVENTS, as_policy, feedback_to_events
from recapp.experiment.results import SimulationResult
from recapp.experiment.shopper_memory import ShopperMemory
from recapp.models.base import check_param
from recapp.schema import USER_COL


def _check_arms(policies, n_steps, sessions_per_step) -> None:
    if not isinstance(policies, Mapping):
        raise TypeError(f"policies must be a dict of arm name -> policy, got a {type(policies).__name__}")
    if not policies:
        raise ValueError("policies must name at least one arm")
    # A NaN arm name would drop its shoppers out of every per-arm groupby (summary, funnel), silently.
    distinct_names("list(policies)", list(policies), "every arm needs a label")
    check_own_policies(policies)
    check_param("n_steps", n_steps, low=1, integer=True)
    check_param("sessions_per_step", sessions_per_step, low=1, integer=True)


def run_sessions(sim, policies: dict, n_steps: int = 20, sessions_per_step: int = 100, weights=None,
                 salt: str = "recapp-sim", progress: bool = False) -> SimulationResult:
    """Run ``policies`` (arm name -> policy) side by side on ``sim``'s shoppers; see :meth:`ShopperSimulator.run_ab`.

    Refused: ``policies`` not a dict, an arm name that is missing or blank, one object given to two arms (it is
    not copied), ``n_steps`` or ``sessions_per_step`` not an integer >= 1, ``weights`` that ``assign`` refuses.
    """
    _check_arms(policies, n_steps, sessions_per_step)
    pols = {arm: as_policy(p) for arm, p in policies.items()}
    arms = list(pols)
    if len(arms) == 1 and weights is None:
        assignment = pd.Series(arms[0], index=pd.Index(sim.user_ids, name=USER_COL), name=ARM_COL, dtype=object)
    else:
        assignment = assign(sim.user_ids, arms, weights, salt=salt)
    arm_code = pd.Index(arms).get_indexer(assignment.to_numpy())
    env = sim.environment()
    for p in pols.values():
        p.reset(env)
    seeds = np.random.SeedSequence([int(sim.random_state or 0), 1]).spawn(3)
    rng_arrive, rng_out, rng_drift = (np.random.default_rng(s) for s in seeds)
    drift_state = np.zeros((sim.n_users, sim.drift_dirs_.shape[0])) if sim.drift > 0 else None
    # With both effects off the memory does nothing, and runs are exactly what they were without it.
    memory = ShopperMemory(sim.n_users, sim.n_items, sim.fatigue, sim.fatigue_half_life, sim.churn, sim.random_state)
    imp_parts, slate_parts = [], []
    session_counter = 0
    visits = np.zeros(sim.n_users, dtype=np.int64)
    steps = range(n_steps)
    if progress:
        from tqdm.auto import tqdm
        steps = tqdm(steps, desc="simulating")
    for step in steps:
        users = rng_arrive.choice(sim.n_users, sessions_per_step, p=sim.activity)
        lengths = rng_arrive.geometric(1.0 / sim.session_length, sessions_per_step)
        sessions = session_counter + np.arange(sessions_per_step)
        session_counter += sessions_per_step
        returning = visits[users] > 0
        np.add.at(visits, users, 1)
        churn_draws = memory.draw_churn(sessions_per_step)
        clicked = np.zeros(sessions_per_step, dtype=bool)
        for j in range(int(lengths.max())):
            live = np.flatnonzero(lengths > j)
            # Draw outcomes for every live session before asking policies, so draws do not depend on the policy.
            draws = rng_out.random((len(live), 3))
            t = sim.start + step * sim.step_seconds + j * 60.0 + np.arange(len(live)) * 1e-3
            # A churned shopper's sessions are skipped after the draws, so the others keep theirs.
            stay = ~memory.churned_[users[live]]
            live, draws, t = live[stay], draws[stay], t[stay]
            u_all = users[live]
            for a, arm in enumerate(arms):
                sel = np.flatnonzero(arm_code[u_all] == a)
                if len(sel) == 0:
                    continue
                imp, sl, fb = sim.serve(pols[arm], arm, u_all[sel], draws[sel], t[sel], step, j,
                                        sessions[live[sel]], returning[live[sel]], drift_state, memory)
                clicked[live[sel]] |= sl["clicks"].to_numpy() > 0
                imp_parts.append(imp)
                slate_parts.append(sl)
                pols[arm].observe(fb)
        for p in pols.values():
            p.end_step()
        if drift_state is not None:
            drift_state += sim.drift * rng_drift.standard_normal(drift_state.shape)
        memory.end_step(step, users, clicked, churn_draws)
    impressions = pd.concat(imp_parts, ignore_index=True)
    slates = pd.concat(slate_parts, ignore_index=True)
    events = feedback_to_events(impressions, ("view",) + FEEDBACK_EVENTS)
    params = {"n_steps": n_steps, "sessions_per_step": sessions_per_step, "k": sim.k, "arms": arms, "salt": salt,
              "memory": memory, "churned": memory.churned(sim.user_ids)}
    return SimulationResult(impressions, slates, events, assignment, params)
