"""The learned second stage of :class:`~recapp.models.twostage.TwoStageRanker`: LightGBM LambdaRank over candidate features.

:class:`RankingStage` is what the ranker learns and serves: the base
retrievers whose ranks the boosting starts from, the features it uses and the
booster. :func:`train_lambdarank` fits the booster; :func:`group_ndcg` scores
an order of grouped rows (the base retrievers are chosen with it).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

#: The retrievers whose ranks ``init_from="blend"`` averages (those among the ranker's retrievers).
BLEND = ("ALS", "EASE", "MultVAE")


class RankingStage:
    """A LambdaRank booster over candidate features, boosting from the blended ranks of some retrievers.

    ``retriever_names`` and ``feature_names`` describe the full feature matrix
    (:func:`~recapp.models.ranking_features.feature_names`: each retriever's
    score and rank come first); ``used_features`` are the columns the booster
    sees; ``base_retrievers`` those whose mean -log2(1 + rank) is the starting
    score (none: start from zero).
    """

    def __init__(self, retriever_names: list, feature_names: list, used_features: list, base_retrievers: list,
                 booster_text: str | None = None):
        self.retriever_names = list(retriever_names)
        self.feature_names = list(feature_names)
        self.used_features = list(used_features)
        self.base_retrievers = list(base_retrievers)
        self.columns = np.array([self.feature_names.index(n) for n in self.used_features], dtype=np.int64)
        self.booster = None if booster_text is None else lightgbm().Booster(model_str=booster_text)
        self.importances = None if self.booster is None else importances(self.booster)

    # ---- choices made before training --------------------------------------------------
    @staticmethod
    def select_features(feature_names: list, features: list | None) -> list:
        """The features kept (all when ``features`` is None), in the matrix's order; unknown names raise."""
        if features is None:
            return list(feature_names)
        unknown = sorted(set(features) - set(feature_names))
        if unknown:
            raise ValueError(f"features has unknown name(s) {unknown}; available: {list(feature_names)}")
        return [n for n in feature_names if n in set(features)]

    @staticmethod
    def check_init_from(init_from, retriever_names: list) -> None:
        """Raise when ``init_from`` names a retriever that is not among ``retriever_names``."""
        named = [] if init_from in (None, "best", "blend") else [init_from] if isinstance(init_from, str) else list(init_from)
        if any(r not in retriever_names for r in named):
            raise ValueError(f"init_from={init_from!r} is not accepted; accepted: None, 'best', 'blend' or names among "
                             f"{list(retriever_names)}")

    @staticmethod
    def choose_base(init_from, retriever_names: list, quality: dict) -> list:
        """The retrievers the boosting starts from: see ``TwoStageRanker``'s ``init_from`` (``quality``: holdout NDCG)."""
        if init_from is None:
            return []
        if init_from == "blend":
            present = [r for r in BLEND if r in retriever_names]
            if present:
                return present
        if init_from in ("best", "blend"):
            return [max(quality, key=quality.get)]
        return [init_from] if isinstance(init_from, str) else list(init_from)

    # ---- training and scoring ------------------------------------------------------------
    def base(self, X: np.ndarray) -> np.ndarray:
        """The starting score of every row: the mean -log2(1 + rank) over the base retrievers (0 without one)."""
        if not self.base_retrievers:
            return np.zeros(len(X))
        cols = [2 * self.retriever_names.index(r) + 1 for r in self.base_retrievers]
        return -np.mean(np.log2(1.0 + X[:, cols].astype(np.float64)), axis=1)

    def train(self, group: np.ndarray, X: np.ndarray, y: np.ndarray, n_users: int, *, init_from, params: dict,
              n_rounds: int, validation_fraction: float, early_stopping_rounds: int | None,
              random_state: int | None) -> dict:
        """Choose the base and boost on rows grouped by ``group`` (fold * n_users + user, ascending); returns the log.

        Groups without a positive are dropped (they teach nothing);
        ``validation_fraction`` of the users drive early stopping only. The
        log's ``base_ndcg@10`` is the base's order on the users the trees learn
        from; ``validation_base_ndcg@10`` and ``validation_ndcg@10`` are the
        base's and the boosted order on the early-stopping users, the pair that
        shows what the trees add (None without a base or early stopping).
        """
        keep = np.bincount(group, weights=(y > 0).astype(np.float64))[group] > 0
        group, X, y = group[keep], X[keep], y[keep]
        if len(group) == 0:
            raise ValueError("no holdout event is among the retrievers' candidates: raise n_candidates or holdout_fraction")
        users = np.unique(group % n_users)
        n_valid = int(round(validation_fraction * len(users))) if early_stopping_rounds else 0
        valid_user = np.zeros(n_users, dtype=bool)
        if 0 < n_valid < len(users):
            valid_user[np.random.default_rng(random_state).choice(users, n_valid, replace=False)] = True
        valid = valid_user[group % n_users]
        fit = ~valid
        quality = {r: group_ndcg(group[fit], -X[fit, 2 * j + 1], y[fit]) for j, r in enumerate(self.retriever_names)}
        self.base_retrievers = self.choose_base(init_from, self.retriever_names, quality)
        init = self.base(X)
        base_score = group_ndcg(group[fit], init[fit], y[fit]) if self.base_retrievers else None
        # The base's order on the early-stopping users: what the boosted validation figure is a change from.
        valid_base = group_ndcg(group[valid], init[valid], y[valid]) if valid.any() and self.base_retrievers else None
        text, best, score = train_lambdarank(group, X[:, self.columns], y, init, self.used_features, params,
                                             n_rounds, valid, early_stopping_rounds)
        # Keep exactly the trees that are served (and saved): the best iteration's.
        self.booster = lightgbm().Booster(model_str=text)
        self.importances = importances(self.booster)
        return {"users": int(len(users) - valid_user.sum()), "validation_users": int(valid_user.sum()),
                "rows": int(len(y)), "positives": int((y > 0).sum()), "base": self.base_name,
                "retriever_ndcg@10": {k: float(v) for k, v in quality.items()}, "base_ndcg@10": base_score,
                "best_iteration": int(best), "validation_base_ndcg@10": valid_base,
                "validation_ndcg@10": None if score is None else float(score)}

    @property
    def base_name(self) -> str | None:
        """The base retrievers joined by "+" (None when boosting starts from zero)."""
        return "+".join(self.base_retrievers) or None

    def predict(self, X: np.ndarray, num_threads: int = 1) -> np.ndarray:
        """Scores of candidate rows (the full feature matrix): base + trees, ties broken by mean reciprocal rank."""
        if len(X) == 0:
            return np.zeros(0)
        pred = self.base(X) + self.booster.predict(X[:, self.columns], num_threads=int(num_threads))
        # Trees give piecewise-constant scores: break ties by the retrievers' mean reciprocal rank, not item order.
        ranks = X[:, 1: 2 * len(self.retriever_names): 2].astype(np.float64)
        return pred + 1e-7 * np.mean(1.0 / ranks, axis=1)

    # ---- persistence -------------------------------------------------------------------------
    def to_config(self) -> dict:
        """JSON-ready description (the booster as LightGBM's text model, never pickled)."""
        return {"booster": self.booster.model_to_string(), "feature_names": self.feature_names,
                "used_features": self.used_features, "base_retrievers": self.base_retrievers,
                "retriever_names": self.retriever_names}

    @classmethod
    def from_config(cls, config: dict) -> "RankingStage":
        """The stage :meth:`to_config` described."""
        base = config.get("base_retrievers")
        if base is None:                   # saved before a blend of retrievers could be the base
            base = [] if config.get("base_retriever") is None else [config["base_retriever"]]
        return cls(config["retriever_names"], config["feature_names"], config["used_features"], base, config["booster"])


def group_ndcg(group: np.ndarray, score: np.ndarray, y: np.ndarray, k: int = 10) -> float:
    """Mean NDCG@k (graded gains 2**y - 1) over the groups of ``group`` (rows grouped, ascending), ordering by ``score``."""
    if len(group) == 0:
        return 0.0
    _, start, counts = np.unique(group, return_index=True, return_counts=True)
    gid = np.repeat(np.arange(len(start)), counts)
    order = np.lexsort((-np.asarray(score, dtype=np.float64), gid))
    pos = np.arange(len(group)) - np.repeat(start, counts)
    disc = np.where(pos < k, 1.0 / np.log2(pos + 2.0), 0.0)
    gain = np.exp2(np.asarray(y, dtype=np.float64)) - 1.0
    dcg = np.bincount(gid, weights=gain[order] * disc, minlength=len(start))
    ideal = np.lexsort((-gain, gid))
    idcg = np.bincount(gid, weights=gain[ideal] * disc, minlength=len(start))
    ok = idcg > 0
    return float(np.mean(dcg[ok] / idcg[ok])) if ok.any() else 0.0


def lightgbm():
    """The lightgbm module, with a clear message when it is missing."""
    try:
        import lightgbm as lgb
    except ImportError as e:  # pragma: no cover - a declared dependency
        raise ImportError("TwoStageRanker needs lightgbm: pip install 'lightgbm>=4.7'") from e
    return lgb


def train_lambdarank(group: np.ndarray, X: np.ndarray, y: np.ndarray, init: np.ndarray, names: list[str], params: dict,
                     n_rounds: int, valid: np.ndarray, early_stopping_rounds: int | None) -> tuple[str, int, float | None]:
    """Boost from ``init`` on rows grouped by ``group`` (ascending); rows ``valid`` only drive early stopping.

    Returns the LightGBM text model holding the best iteration's trees, that
    iteration, and its validation NDCG@10 (None without validation rows).
    """
    lgb = lightgbm()

    def dataset(sel, reference=None):
        _, sizes = np.unique(group[sel], return_counts=True)
        return lgb.Dataset(X[sel], y[sel], group=sizes, init_score=init[sel], feature_name=list(names),
                           reference=reference, free_raw_data=True)

    dtrain = dataset(~valid)
    kwargs = {}
    if valid.any() and early_stopping_rounds:
        kwargs = {"valid_sets": [dataset(valid, dtrain)], "valid_names": ["valid"],
                  "callbacks": [lgb.early_stopping(int(early_stopping_rounds), verbose=False)]}
    booster = lgb.train(params, dtrain, num_boost_round=int(n_rounds), **kwargs)
    best = booster.best_iteration if booster.best_iteration > 0 else booster.current_iteration()
    score = booster.best_score.get("valid", {}).get("ndcg@10") if kwargs else None
    return booster.model_to_string(num_iteration=best), int(best), None if score is None else float(score)


def importances(booster) -> pd.DataFrame:
    """Gain, split count and gain share per feature of a LightGBM booster, most gain first."""
    out = pd.DataFrame({
        "feature": booster.feature_name(),
        "gain": booster.feature_importance("gain"),
        "split": booster.feature_importance("split").astype(np.int64),
    }).sort_values("gain", ascending=False, kind="stable", ignore_index=True)
    total = out["gain"].sum()
    out["gain_share"] = out["gain"] / (total if total > 0 else 1.0)
    return out
