"""What a simulated run produced, with the per-arm summaries, funnels and regret curves read from it."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from recapp.experiment.policies import ARM_COL
from recapp.models.base import check_param
from recapp.schema import USER_COL


@dataclass
class SimulationResult:
    """What a run produced: impressions, slates (with regret), schema events and the assignment."""

    impressions: pd.DataFrame
    slates: pd.DataFrame
    events: pd.DataFrame
    assignment: pd.Series
    params: dict = field(default_factory=dict)

    def summary(self) -> pd.DataFrame:
        """Per arm: users, sessions, slates, impressions, clicks, ctr, carts, purchases, conversion, revenue, regret.

        Every arm of the run has its row: one no shopper reached (weight 0, or few users) shows zeros and NaN rates.
        """
        imp = self.impressions.groupby(ARM_COL, sort=False, dropna=False)
        sl = self.slates.groupby(ARM_COL, sort=False, dropna=False)
        out = pd.DataFrame({
            "users": sl[USER_COL].nunique(),
            "sessions": sl["session"].nunique(),
            "slates": sl.size(),
            "returning_share": sl["returning"].mean(),
            "impressions": imp.size(),
            "clicks": imp["click"].sum(),
            "carts": imp["cart"].sum(),
            "purchases": imp["purchase"].sum(),
            "revenue": imp["revenue"].sum(),
            "expected_clicks": sl["expected_clicks"].sum(),
            "regret": sl["regret"].sum(),
        })
        absent = [a for a in self.params.get("arms", []) if a not in out.index]
        if absent:
            out = out.reindex(out.index.append(pd.Index(absent, dtype=object)), fill_value=0)
            out.loc[absent, "returning_share"] = np.nan
        out["ctr"] = out["clicks"] / out["impressions"]
        out["slate_ctr"] = out["clicks"] / out["slates"]
        buyers = self.impressions[self.impressions["purchase"] > 0].groupby(ARM_COL, dropna=False)[USER_COL].nunique()
        out["conversion"] = buyers.reindex(out.index, fill_value=0) / out["users"]
        out["revenue_per_user"] = out["revenue"] / out["users"]
        out.index.name = ARM_COL
        return out.reset_index()

    def funnel(self) -> pd.DataFrame:
        """Long table arm, stage (view/click/cart/purchase), count: for a funnel chart."""
        g = self.impressions.groupby(ARM_COL, sort=False, dropna=False)
        wide = pd.DataFrame({"view": g.size(), "click": g["click"].sum(), "cart": g["cart"].sum(), "purchase": g["purchase"].sum()})
        wide.index.name = ARM_COL
        return wide.reset_index().melt(id_vars=ARM_COL, var_name="stage", value_name="count")

    def regret_curve(self, points: int | None = 200) -> pd.DataFrame:
        """Cumulative expected reward and regret against the oracle, per arm, as slates accrue.

        Columns arm, slates, cumulative_reward (expected clicks), cumulative_oracle,
        cumulative_regret, clicks (realised, cumulative). ``points`` thins each
        curve to about that many rows for plotting (None keeps all; else an integer >= 1).
        """
        if points is not None:
            check_param("points", points, low=1, integer=True)
        parts = []
        for arm, g in self.slates.groupby(ARM_COL, sort=False, dropna=False):
            n = np.arange(1, len(g) + 1)
            frame = pd.DataFrame({ARM_COL: arm, "slates": n, "cumulative_reward": g["expected_clicks"].cumsum().to_numpy(),
                                  "cumulative_oracle": g["oracle_clicks"].cumsum().to_numpy(),
                                  "cumulative_regret": g["regret"].cumsum().to_numpy(), "clicks": g["clicks"].cumsum().to_numpy()})
            if points and len(frame) > points:
                keep = np.unique(np.r_[np.linspace(0, len(frame) - 1, points).round().astype(int), len(frame) - 1])
                frame = frame.iloc[keep]
            parts.append(frame)
        return pd.concat(parts, ignore_index=True)

    def user_metrics(self) -> pd.DataFrame:
        """Per-user A/B metrics of :func:`recapp.experiment.abtest.user_metrics` over every assigned shopper who arrived."""
        from recapp.experiment.abtest import user_metrics

        arrived = self.assignment[self.assignment.index.isin(self.slates[USER_COL].unique())]
        return user_metrics(self.events, arrived)
