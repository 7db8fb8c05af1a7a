"""Pre-period data for CUPED: each shopper's behaviour before assignment, from a log or from the simulator.

:func:`add_pre_period` adds ``pre_*`` columns (and the ``has_pre`` indicator)
to a per-user frame from the events before the experiment;
:func:`simulate_with_pre_period` runs the shopper simulator with every arm
served by the control for the first ``pre_steps`` steps, so the pre-period
cannot depend on the arm. :mod:`recapp.experiment.cuped` does the adjustment.
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from recapp.experiment._checks import check_own_policies
from recapp.experiment.abtest import user_metrics
from recapp.experiment.cuped import INDICATOR, PRE_COLUMNS, PRE_PREFIX
from recapp.experiment.simulator import FEEDBACK_EVENTS, Policy, SimulationResult, as_policy, feedback_to_events
from recapp.schema import USER_COL


# ---- pre-period data ---------------------------------------------------------------------
def add_pre_period(per_user: pd.DataFrame, pre_events: pd.DataFrame, columns=PRE_COLUMNS, prefix: str = PRE_PREFIX,
                   indicator: str = INDICATOR, col_user: str = USER_COL) -> pd.DataFrame:
    """``per_user`` with each shopper's pre-period counts (``pre_views``, ``pre_clicks``...) and the 0/1 ``has_pre``.

    ``per_user`` is the experiment period's :func:`~recapp.experiment.abtest.user_metrics`
    (index user_id); ``pre_events`` the schema event log from before the
    assignment. Shoppers absent from it get 0 in every pre-period column and
    ``has_pre = 0`` (see the module docstring). Returns a copy.
    """
    bad = [c for c in columns if c not in PRE_COLUMNS]
    if bad:
        raise ValueError(f"unknown pre-period column(s) {bad}; accepted: {list(PRE_COLUMNS)}")
    out = per_user.copy()
    if len(pre_events):
        seen = pd.Index(pd.unique(pre_events[col_user]), name=col_user)
        pre = user_metrics(pre_events, pd.Series("pre", index=seen, dtype=object), col_user=col_user)
    else:
        pre = pd.DataFrame(columns=list(columns), index=pd.Index([], name=col_user))
    for c in columns:
        out[prefix + c] = pre[c].reindex(out.index, fill_value=0).to_numpy(dtype=np.float64 if c == "revenue" else np.int64)
    out[indicator] = out.index.isin(pre.index).astype(np.int64)
    return out


class _PrePeriod(Policy):
    """Serve ``before`` (to every arm) for ``pre_steps`` steps, then ``after``; only the ``owner`` ends ``before``'s steps."""

    def __init__(self, before, after, pre_steps: int, owner: bool):
        self.before, self.after, self.pre_steps, self.owner = before, after, pre_steps, owner
        self.name = getattr(after, "name", type(after).__name__)

    def reset(self, env):
        """Reset both policies (once if they are the same) and the step counter."""
        super().reset(env)
        self.step_ = 0
        for p in {id(self.before): self.before, id(self.after): self.after}.values():
            p.reset(env)

    def _live(self):
        return self.before if self.step_ < self.pre_steps else self.after

    def slates(self, users, k):
        """The live policy's slates."""
        return self._live().slates(users, k)

    def observe(self, feedback):
        """Feedback goes to the policy that served it."""
        self._live().observe(feedback)

    def end_step(self):
        """End the live policy's step (the shared pre-period policy once per step), then count it."""
        p = self._live()
        if p is not self.before or self.owner:
            p.end_step()
        self.step_ += 1


def simulate_with_pre_period(simulator, policies: dict, pre_steps: int, n_steps: int, sessions_per_step: int = 100,
                             control: str | None = None, weights=None, salt: str = "recapp-sim",
                             progress: bool = False) -> tuple[SimulationResult, pd.DataFrame]:
    """An A/B test in :class:`~recapp.experiment.simulator.ShopperSimulator` after a pre-period served by the control.

    One run of ``pre_steps + n_steps`` steps: every shopper is assigned at the
    start, but for the first ``pre_steps`` steps every arm shows the
    ``control`` policy (default: the first arm), so pre-period behaviour
    cannot depend on the arm; then each arm serves its own policy. The same
    shoppers return across both periods (active ones often). Returns the
    experiment period's :class:`~recapp.experiment.simulator.SimulationResult`
    and its per-user frame with the pre-period columns of :func:`add_pre_period`,
    ready for :func:`analyze_cuped`. Refused: ``policies`` not a dict, one object given to two arms (each arm
    needs its own copy, as in :func:`~recapp.experiment.sessions.run_sessions`).
    """
    if not isinstance(policies, Mapping):
        raise TypeError(f"policies must be a dict of arm name -> policy, got a {type(policies).__name__}")
    if not policies:
        raise ValueError("policies must name at least one arm")
    # The per-arm wrappers below are distinct objects, so run_ab cannot see one policy shared by two arms.
    check_own_policies(policies)
    for name, v in (("pre_steps", pre_steps), ("n_steps", n_steps)):
        if int(v) != v or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    control = next(iter(policies)) if control is None else control
    if control not in policies:
        raise ValueError(f"control={control!r} is not an arm; accepted: {list(policies)}")
    pols = {arm: as_policy(p) for arm, p in policies.items()}
    phased = {arm: _PrePeriod(pols[control], p, int(pre_steps), owner=(arm == control)) for arm, p in pols.items()}
    res = simulator.run_ab(phased, n_steps=int(pre_steps + n_steps), sessions_per_step=sessions_per_step, weights=weights,
                           salt=salt, progress=progress)
    events = ("view",) + FEEDBACK_EVENTS
    pre_imp = res.impressions["step"].to_numpy() < pre_steps
    pre_events = feedback_to_events(res.impressions.loc[pre_imp], events)
    imp = res.impressions.loc[~pre_imp].reset_index(drop=True)
    sl = res.slates.loc[res.slates["step"].to_numpy() >= pre_steps].reset_index(drop=True)
    exp = SimulationResult(imp, sl, feedback_to_events(imp, events), res.assignment,
                           {**res.params, "n_steps": int(n_steps), "pre_steps": int(pre_steps), "control": control})
    return exp, add_pre_period(exp.user_metrics(), pre_events)


__all__ = ["add_pre_period", "simulate_with_pre_period"]
