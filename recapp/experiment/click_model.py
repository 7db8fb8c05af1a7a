"""The simulator's choice model, one logged slot at a time: a click model fitted on real logs.

The Open Bandit logs (:func:`recapp.data.load_open_bandit`) record one row per
(item, slot) impression with its click. The shopper simulator's multinomial
logit (:mod:`recapp.experiment.simulator`), restricted to the one logged slot
``p`` holding item ``i``, is a logistic model::

    P(click) = v_p a_i / (w0 + v_p a_i) = sigmoid(b0 + beta_p + u_i)

    beta_p = log v_p     position effect = log examination (beta_1 = 0, v_1 = 1)
    u_i    = log a_i     item appeal = choice_scale * z_i (mean zero over the catalogue)
    b0     = -log w0     the no-click utility is log w0 = -b0

so the three kinds of simulator parameter are fitted as they are. Clicks are
rare (about 38 in 10,000 random rounds, half a click per item), so the item
appeals are pooled: ``u_i ~ N(0, tau^2)``, a random-intercept logistic model.
The intercept and position effects are unpenalised maximum likelihood; given
``tau`` the appeals are the posterior mode (an L2 penalty ``u^2 / 2 tau^2``),
and ``tau`` is chosen by the Laplace-approximate marginal likelihood (empirical
Bayes), by :func:`scipy.optimize.minimize` and ``minimize_scalar``. (statsmodels'
``BinomialBayesMixedGLM`` fits the same model by variational Bayes, but took
7 s per fit here and its variance estimate is set by its prior at 38 clicks.)
Parameter uncertainty comes from draws of the Laplace posterior given ``tau``
or from a bootstrap over the fitting logs' rounds (see :func:`fit_click_model`).

:mod:`recapp.experiment.simulator_calibration` then tests the fitted model
on another policy's logs and builds a simulator from it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from recapp.experiment._checks import check_level, check_values
from recapp.models.base import check_param
from recapp.schema import ITEM_COL, require_columns

POSITION_COL = "position"
CLICK_COL = "click"
#: Bounds of the appeal spread tau searched by empirical Bayes (0.01: the items are alike).
APPEAL_SD_BOUNDS = (0.01, 3.0)


# ---- the model ----------------------------------------------------------------------------
@dataclass
class ClickModel:
    """A fitted position-based click model: ``logit P(click) = intercept + position_effect[p] + appeal[i]``.

    ``theta_`` stacks intercept, the effects of positions 2..P and the appeals
    of ``items``; ``cov_`` is its covariance (the inverse penalised Hessian,
    given ``appeal_sd_``); ``draws_`` holds parameter draws (rows like
    ``theta_``) made as ``intervals`` says; ``appeal_sd_interval_`` is a
    profile-likelihood interval for tau.
    """

    items: np.ndarray
    n_positions: int
    theta_: np.ndarray
    cov_: np.ndarray
    appeal_sd_: float
    appeal_sd_interval_: tuple
    draws_: np.ndarray
    intervals: str
    n_rounds: int
    clicks: int

    @property
    def intercept_(self) -> float:
        """Log-odds of a click on an average item in position 1; the no-click utility is its negative."""
        return float(self.theta_[0])

    @property
    def position_effect_(self) -> np.ndarray:
        """Log examination per position (position 1 is 0)."""
        return np.r_[0.0, self.theta_[1:self.n_positions]]

    @property
    def appeal_(self) -> pd.Series:
        """Item appeals (log attraction relative to the average item), indexed by item_id."""
        return pd.Series(self.theta_[self.n_positions:], index=pd.Index(self.items, name=ITEM_COL), name="appeal")

    def params(self, alpha: float = 0.05) -> pd.DataFrame:
        """One row per parameter: estimate, se (given tau), ci_low/ci_high from the draws and the simulator's own value.

        simulator_parameter names what the value sets in the simulator:
        ``no_click_weight_`` (w0 = exp(-intercept)), ``examination_`` (exp of a
        position effect) or an item's attraction exp(appeal); ``appeal_sd`` is
        tau, with its profile-likelihood interval at the level of the fit.
        """
        P = self.n_positions
        names = ["intercept"] + [f"position {p}" for p in range(2, P + 1)] + [f"item {i}" for i in self.items]
        kinds = ["no-click utility"] + ["position"] * (P - 1) + ["item"] * len(self.items)
        lo, hi = _quantiles(self.draws_, alpha)
        out = pd.DataFrame({"parameter": names, "kind": kinds, "estimate": self.theta_, "se": np.sqrt(np.diag(self.cov_)),
                            "ci_low": lo, "ci_high": hi})
        out["simulator_parameter"] = (["no_click_weight_ = exp(-intercept)"] + [f"examination_[{p - 1}] = exp(effect)"
                                      for p in range(2, P + 1)] + ["attraction = exp(appeal)"] * len(self.items))
        out["simulator_value"] = np.exp(np.where(out["kind"] == "no-click utility", -self.theta_, self.theta_))
        tau = pd.DataFrame([{"parameter": "appeal_sd", "kind": "item spread", "estimate": self.appeal_sd_, "se": np.nan,
                             "ci_low": self.appeal_sd_interval_[0], "ci_high": self.appeal_sd_interval_[1],
                             "simulator_parameter": "sd of log attraction", "simulator_value": self.appeal_sd_}])
        return pd.concat([out, tau], ignore_index=True)


def _quantiles(draws: np.ndarray, alpha: float):
    if len(draws) == 0:
        nan = np.full(draws.shape[1:], np.nan)
        return nan, nan
    return np.quantile(draws, alpha / 2, axis=0), np.quantile(draws, 1 - alpha / 2, axis=0)


def _encode(rounds: pd.DataFrame, items: np.ndarray, n_positions: int, name: str = "rounds"):
    """Item index, 0-based position and click arrays; raises naming the column that is wrong."""
    require_columns(rounds, name, ITEM_COL, POSITION_COL, CLICK_COL)
    # A missing id would become an item of its own ("item nan") or fall into "all other items".
    missing = rounds[ITEM_COL].isna().to_numpy()
    if missing.any():
        raise ValueError(f"{name}[{ITEM_COL!r}] is missing in {int(missing.sum())} row(s), e.g. row "
                         f"{rounds.index[missing].tolist()[0]!r}; every logged impression needs its item")
    pos = rounds[POSITION_COL].to_numpy()
    if len(pos) and (not np.issubdtype(pos.dtype, np.integer) or pos.min() < 1 or pos.max() > n_positions):
        raise ValueError(f"{name}[{POSITION_COL!r}] must hold integer slots 1..{n_positions}; found {np.unique(pos)[:6].tolist()}")
    click = rounds[CLICK_COL].to_numpy()
    if not np.isin(click, (0, 1)).all():
        raise ValueError(f"{name}[{CLICK_COL!r}] must be 0 or 1; found {np.unique(click)[:6].tolist()}")
    return pd.Index(items).get_indexer(rounds[ITEM_COL].to_numpy()), pos.astype(np.int64) - 1, click.astype(np.float64)


def _cells(a, p, y, A, P):
    """Impressions and clicks per (item, position) cell, each shape (A, P)."""
    key = a * P + p
    return (np.bincount(key, minlength=A * P).astype(np.float64).reshape(A, P),
            np.bincount(key, weights=y, minlength=A * P).reshape(A, P))


def _eta(th, A, P):
    """Linear predictor per cell (A, P) from theta = [intercept, positions 2..P, appeals]."""
    return th[0] + np.r_[0.0, th[1:P]][None, :] + th[P:, None]


def _hessian(w, prec):
    """X' diag(w) X + diag(prec) for the cell design, assembled from its blocks (w: (A, P) cell weights).

    Built from sums rather than a dense design matrix: small matrix products
    are slow under threaded BLAS on a busy machine.
    """
    A, P = w.shape
    H = np.zeros((P + A, P + A))
    wp, wa = w.sum(axis=0), w.sum(axis=1)
    H[0, 0] = w.sum()
    H[0, 1:P] = H[1:P, 0] = wp[1:]
    H[1:P, 1:P] = np.diag(wp[1:])
    H[0, P:] = H[P:, 0] = wa
    H[1:P, P:], H[P:, 1:P] = w[:, 1:].T, w[:, 1:]
    H[P:, P:] = np.diag(wa)
    return H + np.diag(prec)


def _penalised_fit(n, c, tau, x0):
    """Posterior mode given tau: unpenalised intercept and positions, N(0, tau^2) appeals. Returns (theta, objective, hessian)."""
    from scipy.optimize import minimize
    from scipy.special import expit

    A, P = n.shape
    prec = np.r_[np.zeros(P), np.full(A, 1.0 / tau**2)]

    def fun(th):
        eta = _eta(th, A, P)
        r = n * expit(eta) - c
        grad = np.r_[r.sum(), r.sum(axis=0)[1:], r.sum(axis=1)] + prec * th
        return float(-(c * eta - n * np.logaddexp(0.0, eta)).sum() + 0.5 * (prec * th**2).sum()), grad

    def hess(th):
        mu = expit(_eta(th, A, P))
        return _hessian(n * mu * (1 - mu), prec)

    res = minimize(fun, x0, jac=True, hess=hess, method="trust-exact", options={"gtol": 1e-8})
    return res.x, float(res.fun), hess(res.x)


def _neg_marginal(n, c, tau, x0):
    """Laplace approximation to -log p(clicks | intercept, positions, tau), with the fit it rests on: (value, theta, hessian)."""
    th, f, H = _penalised_fit(n, c, tau, x0)
    A, P = n.shape
    # The appeals' block of the Hessian is diagonal: each appeal only meets its own cells.
    return f + A * np.log(tau) + 0.5 * np.log(np.diag(H)[P:]).sum(), th, H


def _fit_cells(n, c, appeal_sd, x0):
    """(theta, tau, hessian): tau fixed, or the empirical-Bayes maximiser of the marginal likelihood when "auto"."""
    from scipy.optimize import minimize_scalar

    if appeal_sd == "auto":
        start = x0.copy()

        def objective(log_tau):
            value, th, _ = _neg_marginal(n, c, np.exp(log_tau), start)
            start[:] = th                       # warm start for the next evaluation
            return value

        res = minimize_scalar(objective, bounds=np.log(APPEAL_SD_BOUNDS), method="bounded", options={"xatol": 0.02})
        appeal_sd = float(np.exp(res.x))
    th, _, H = _penalised_fit(n, c, appeal_sd, x0)
    return th, float(appeal_sd), H


def _appeal_sd_interval(n, c, theta, alpha, points: int = 25, tau_hat: float | None = None):
    """Profile-likelihood interval for tau from the Laplace marginal over ``APPEAL_SD_BOUNDS``.

    The taus whose profile value lies within ``chi2(1).ppf(1 - alpha) / 2`` of
    the minimum. The profile is evaluated on a log grid of ``points`` taus
    (plus ``tau_hat``, the estimate, when given), and each endpoint is solved
    with :func:`scipy.optimize.brentq` (in log tau) between the two grid points
    around the crossing, so it does not depend on the grid's spacing. When the
    set reaches the edge of the grid, that end is open: it is reported as the
    bound itself (``APPEAL_SD_BOUNDS[0]`` or ``[1]``), meaning "at most / at
    least what the search range allows".
    """
    from scipy.optimize import brentq
    from scipy.stats import chi2

    grid = np.geomspace(*APPEAL_SD_BOUNDS, points)
    if tau_hat is not None and APPEAL_SD_BOUNDS[0] < tau_hat < APPEAL_SD_BOUNDS[1]:
        grid = np.unique(np.r_[grid, float(tau_hat)])
    values = np.array([_neg_marginal(n, c, t, theta)[0] for t in grid])
    level = values.min() + chi2.ppf(1 - alpha, 1) / 2
    inside = np.flatnonzero(values <= level)
    first, last = int(inside[0]), int(inside[-1])

    def excess(log_tau):
        return _neg_marginal(n, c, float(np.exp(log_tau)), theta)[0] - level

    lg = np.log(grid)
    low = grid[0] if first == 0 else float(np.exp(brentq(excess, lg[first - 1], lg[first], xtol=1e-6)))
    high = grid[-1] if last == len(grid) - 1 else float(np.exp(brentq(excess, lg[last], lg[last + 1], xtol=1e-6)))
    return float(low), float(high)


def fit_click_model(rounds: pd.DataFrame, items=None, n_positions: int | None = None, appeal_sd="auto",
                    intervals: str = "laplace", n_draws: int = 200, alpha: float = 0.05, random_state=0) -> ClickModel:
    """Fit the position-based click model to logged (item_id, position, click) rows (see the module docstring).

    ``items`` fixes the catalogue (default: the logged items); an item never
    shown gets appeal 0, the average. ``appeal_sd`` is tau, or "auto" for the
    empirical-Bayes choice within ``APPEAL_SD_BOUNDS``. ``n_draws`` parameter
    draws carry the uncertainty (0: none): ``intervals="laplace"`` draws from
    the approximate posterior N(theta, cov_) given tau; ``"bootstrap"`` refits
    on rounds resampled with replacement, tau held at its estimate. (Refitting
    tau in row resamples inflates it: a duplicated click looks like item
    heterogeneity; and resampled shrunken appeals vary far less than the
    appeals are known, so the bootstrap understates item uncertainty.) Every
    position needs a click, since position effects are not penalised.
    Refused: empty ``rounds``, repeated ``items``, a non-integer
    ``n_positions`` or ``n_draws``, ``alpha`` outside (0, 1).
    """
    require_columns(rounds, "rounds", ITEM_COL, POSITION_COL, CLICK_COL)
    if rounds.empty:
        raise ValueError("rounds is empty: a click model needs logged impressions")
    items = np.sort(rounds[ITEM_COL].dropna().unique()) if items is None else np.asarray(items)
    dup = pd.Index(items).duplicated()
    if dup.any():
        raise ValueError(f"items repeats {int(dup.sum())} id(s), e.g. {items[dup].tolist()[0]!r}; pass each catalogue item once")
    if n_positions is not None:
        check_param("n_positions", n_positions, low=1)
        if n_positions != int(n_positions):
            raise ValueError(f"n_positions={n_positions!r} must be a whole number of slots")
    P = int(rounds[POSITION_COL].max()) if n_positions is None else int(n_positions)
    a, p, y = _encode(rounds, items, P)
    if (a < 0).any():
        raise ValueError(f"rounds[{ITEM_COL!r}] holds item(s) not in items, e.g. {rounds[ITEM_COL].to_numpy()[a < 0][:5].tolist()}")
    if appeal_sd != "auto":
        check_param("appeal_sd", appeal_sd, low=0, low_inclusive=False)
    if intervals not in ("laplace", "bootstrap"):
        raise ValueError(f"intervals={intervals!r} is not accepted; accepted values: ['laplace', 'bootstrap']")
    check_param("n_draws", n_draws, low=0, integer=True)
    check_level("alpha", alpha)
    per_pos = np.bincount(p, weights=y, minlength=P)
    if (per_pos == 0).any():
        raise ValueError(f"position(s) {(np.flatnonzero(per_pos == 0) + 1).tolist()} have no clicks in rounds; their effects cannot be fitted")
    A = len(items)
    x0 = np.zeros(P + A)
    x0[0] = np.log((y.sum() + 0.5) / (len(y) - y.sum() + 0.5))
    n, c = _cells(a, p, y, A, P)
    theta, tau, H = _fit_cells(n, c, appeal_sd, x0)
    cov = np.linalg.inv(H)
    tau_ci = _appeal_sd_interval(n, c, theta, alpha, tau_hat=tau) if appeal_sd == "auto" else (tau, tau)
    rng = np.random.default_rng(random_state)
    if intervals == "laplace":
        draws = rng.multivariate_normal(theta, cov, size=n_draws, method="cholesky")
    else:
        draws = np.empty((n_draws, P + A))
        for b in range(n_draws):
            idx = rng.integers(0, len(y), len(y))
            while (np.bincount(p[idx], weights=y[idx], minlength=P) == 0).any():   # a slot without clicks: draw again
                idx = rng.integers(0, len(y), len(y))
            draws[b] = _fit_cells(*_cells(a[idx], p[idx], y[idx], A, P), tau, theta)[0]
    return ClickModel(items, P, theta, cov, tau, tau_ci, draws, intervals, len(y), int(y.sum()))


def predict_logged(model: ClickModel, rounds: pd.DataFrame, replicates: bool = False) -> np.ndarray:
    """P(click) of each logged (item, position) row, shape (rows,); with ``replicates`` one row per parameter draw, shape (B, rows).

    Items the model never saw get appeal 0 (the average item).
    """
    a, p, _ = _encode(rounds.assign(**{CLICK_COL: 0}) if CLICK_COL not in rounds.columns else rounds,
                      model.items, model.n_positions)
    theta = model.draws_ if replicates else model.theta_[None, :]
    P = model.n_positions
    pos = np.hstack([np.zeros((len(theta), 1)), theta[:, 1:P]])
    u = np.where(a[None, :] >= 0, theta[:, P + np.maximum(a, 0)], 0.0)
    eta = theta[:, :1] + pos[:, p] + u
    prob = 1.0 / (1.0 + np.exp(-eta))
    return prob if replicates else prob[0]


def synthetic_rounds(n_rounds: int, intercept: float, position_effect, appeal, item_weights=None,
                     random_state=0) -> pd.DataFrame:
    """Logged rows from a known click model: item drawn by ``item_weights`` (uniform when None), slot uniform.

    ``position_effect`` has one entry per slot (the first is usually 0);
    ``appeal`` one per item (item ids 0..len-1). Columns item_id, position
    (1-based), click, propensity_score (of the item, as in Open Bandit) and p_true.
    Refused, named: a non-finite ``intercept``, effect, appeal or weight (a NaN
    made its rows' p_true NaN and never clicked), a negative ``n_rounds``.
    """
    check_param("n_rounds", n_rounds, low=0, integer=True)
    check_param("intercept", intercept)
    beta = check_values("position_effect", position_effect, ndim=1, min_size=1)
    u = check_values("appeal", appeal, ndim=1, min_size=1)
    w = np.ones(len(u)) if item_weights is None else check_values("item_weights", item_weights, low=0.0)
    if w.shape != u.shape or w.sum() <= 0:
        raise ValueError("item_weights must be non-negative, one per appeal, not all zero")
    w = w / w.sum()
    rng = np.random.default_rng(random_state)
    a = rng.choice(len(u), n_rounds, p=w)
    p = rng.integers(0, len(beta), n_rounds)
    prob = 1.0 / (1.0 + np.exp(-(intercept + beta[p] + u[a])))
    return pd.DataFrame({ITEM_COL: a, POSITION_COL: p + 1, CLICK_COL: (rng.random(n_rounds) < prob).astype(np.int64),
                         "propensity_score": w[a], "p_true": prob})


def position_decay_test(model: ClickModel, position_decay: float = 1.0) -> dict:
    """Are the fitted position effects the simulator's examination ``j ** -position_decay``? A Wald test on ``cov_``.

    Also fits the decay itself by generalised least squares on the effects
    (``beta_j = -d log j``). Returns position_decay, chi2, df, p_value,
    fitted_decay and fitted_decay_se.
    """
    from scipy.stats import chi2

    check_param("position_decay", position_decay)
    P = model.n_positions
    if P < 2:
        raise ValueError("a position test needs at least two positions")
    beta, cov = model.theta_[1:P], model.cov_[1:P, 1:P]
    x = -np.log(np.arange(2, P + 1, dtype=np.float64))
    prec = np.linalg.inv(cov)
    diff = beta - position_decay * x
    stat = float(diff @ prec @ diff)
    info = float(x @ prec @ x)
    return {"position_decay": position_decay, "chi2": stat, "df": P - 1, "p_value": float(chi2.sf(stat, P - 1)),
            "fitted_decay": float(x @ prec @ beta) / info, "fitted_decay_se": info ** -0.5}
