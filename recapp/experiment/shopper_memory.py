"""What simulated shoppers remember between slates: fatigue with ignored items, and churn after empty sessions.

Both effects are off by default (``fatigue=0``, ``churn=0``), and then the
simulator behaves exactly as without them. They give a slate a cost that a
myopic policy does not see: what it does to the same shopper's *later* slates.

Fatigue. Each time a shopper is shown an item and does not click it, that
item's standardised utility for that shopper drops by ``fatigue`` (whatever
the position: the shopper saw the shelf and walked past). A clicked item is
not penalised. With ``fatigue_half_life`` (in simulator steps) the penalty
decays by half every that many steps, so a tired shopper recovers; with None
it never does. Under the choice model an item's attraction is
``exp(choice_scale * z)``, so ``n`` ignored shows multiply it by
``exp(-n * fatigue * choice_scale)``: ``fatigue = log(2) / 5`` (about 0.14)
at ``choice_scale=1`` halves the click appeal of a slate ignored five times.

Churn. After a session in which the shopper clicked nothing, they leave for
good with probability ``churn``, decided when the step ends; their later
arrivals are skipped. A click, not a purchase, keeps a shopper: purchases
are rare enough (a few per hundred slates) that churning on "no purchase"
would empty the shop whatever the policy. The churn draws are one uniform per
arriving session from their own seeded stream, drawn whether or not the
shopper is still there, so two policies meet the same draws (common random
numbers) and a comparison stays paired: only which shoppers have left differs.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from recapp.experiment._sim_checks import check_seed
from recapp.models.base import check_param
from recapp.schema import USER_COL


class ShopperMemory:
    """Per-run state of the long-term effects: a (shoppers x items) fatigue penalty and who has churned.

    Built by :func:`recapp.experiment.sessions.run_sessions` for
    every run and returned in ``result.params["memory"]``, so the state at the
    end of a run can be read. With both effects off every method is a no-op. Refused: counts that are not
    integers >= 0, a negative ``fatigue``, a ``fatigue_half_life`` <= 0, ``churn`` outside [0, 1] and a
    ``random_state`` that is not None or an integer >= 0.
    """

    def __init__(self, n_users: int, n_items: int, fatigue: float = 0.0, fatigue_half_life: float | None = None,
                 churn: float = 0.0, random_state=0):
        check_param("n_users", n_users, low=0, integer=True)
        check_param("n_items", n_items, low=0, integer=True)
        check_seed(random_state)
        check_param("fatigue", fatigue, low=0.0)
        if fatigue_half_life is not None:
            check_param("fatigue_half_life", fatigue_half_life, low=0.0, low_inclusive=False)
        check_param("churn", churn, low=0.0, high=1.0)
        self.fatigue = float(fatigue)
        self.fatigue_half_life = fatigue_half_life
        self.churn = float(churn)
        # float32 halves the memory of large catalogues; the penalty needs no more precision.
        self.fatigue_ = np.zeros((n_users, n_items), dtype=np.float32) if fatigue > 0 else None
        self.churned_ = np.zeros(n_users, dtype=bool)
        self.churn_step_ = np.full(n_users, -1, dtype=np.int64)
        # Its own stream, so switching churn on leaves arrivals and outcome draws as they were.
        self.rng_ = np.random.default_rng(np.random.SeedSequence([int(random_state or 0), 3]))

    @staticmethod
    def check(fatigue: float, fatigue_half_life: float | None, churn: float) -> None:
        """Raise ``ValueError`` naming the bad parameter (the simulator checks at construction)."""
        ShopperMemory(0, 0, fatigue, fatigue_half_life, churn)

    # ---- fatigue -------------------------------------------------------------------
    def penalty(self, uidx: np.ndarray, iidx: np.ndarray) -> np.ndarray | float:
        """The utility penalty of items ``iidx`` (n, k) for shoppers ``uidx`` (n,); 0 when fatigue is off."""
        if self.fatigue_ is None:
            return 0.0
        return self.fatigue_[np.asarray(uidx)[:, None], iidx].astype(np.float64)

    def penalty_rows(self, uidx: np.ndarray) -> np.ndarray | float:
        """The penalty of every item for shoppers ``uidx``, shape (n, n_items); 0 when fatigue is off."""
        return 0.0 if self.fatigue_ is None else self.fatigue_[np.asarray(uidx)].astype(np.float64)

    def record(self, uidx: np.ndarray, iidx: np.ndarray, click: np.ndarray) -> None:
        """Tire each shopper of the shown items ``iidx`` (n, k) they did not click (``click`` is 0/1, (n, k))."""
        if self.fatigue_ is None:
            return
        ignored = np.asarray(click) == 0
        rows = np.broadcast_to(np.asarray(uidx)[:, None], iidx.shape)
        # add.at: a shopper with two sessions in one step is tired by both.
        np.add.at(self.fatigue_, (rows[ignored], iidx[ignored]), np.float32(self.fatigue))

    # ---- churn and time ----------------------------------------------------------------
    def draw_churn(self, n_sessions: int) -> np.ndarray | None:
        """One uniform per arriving session (None when churn is off): drawn for every session, gone or not."""
        return self.rng_.random(n_sessions) if self.churn > 0 else None

    def end_step(self, step: int, uidx: np.ndarray, clicked: np.ndarray, draws: np.ndarray | None) -> None:
        """Churn the step's shoppers whose session had no click (with probability ``churn``); let fatigue recover."""
        if draws is not None:
            leave = ~self.churned_[uidx] & ~clicked & (draws < self.churn)
            gone = np.unique(uidx[leave])
            self.churned_[gone] = True
            self.churn_step_[gone] = step
        if self.fatigue_ is not None and self.fatigue_half_life is not None:
            self.fatigue_ *= np.float32(0.5 ** (1.0 / self.fatigue_half_life))

    def churned(self, user_ids: np.ndarray) -> pd.Series:
        """The step each churned shopper left at, indexed by user id (empty when nobody left)."""
        idx = np.flatnonzero(self.churned_)
        return pd.Series(self.churn_step_[idx], index=pd.Index(np.asarray(user_ids)[idx], name=USER_COL), name="churn_step")
