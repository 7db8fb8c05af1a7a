"""NeuMF: neural collaborative filtering, GMF + MLP towers (He et al., WWW 2017)."""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from recapp.interactions import Interactions
from recapp.models.base import Recommender, check_param, history_arrays
from recapp.models.live import LiveScorer
from recapp.models.holdout_eval import holdout_ndcg, validation_users
from recapp.models.torch_base import TorchMixin, sample_negatives


def time_context(timestamps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(hour of day 0-23, weekday 0-6 with Monday 0) of UTC epoch seconds."""
    t = np.asarray(timestamps, dtype=np.float64)
    t = np.where(np.isfinite(t), t, 0.0)
    hours = (t // 3600).astype(np.int64)
    # 1970-01-01 was a Thursday (weekday 3).
    return hours % 24, (hours // 24 + 3) % 7


def unseen_items(rng: np.random.Generator, seen: np.ndarray, n_items: int, size: int) -> np.ndarray:
    """``size`` items drawn uniformly from ``range(n_items)`` minus ``seen`` (none when ``seen`` covers it all)."""
    neg = rng.integers(0, n_items, size=size)
    hit = np.isin(neg, seen)
    if hit.any():
        # A seen item labelled 0 would push down the very items the history says the shopper likes.
        free = np.ones(n_items, dtype=bool)
        free[seen] = False
        pool = np.flatnonzero(free)
        if len(pool) == 0:
            return pool
        neg[hit] = pool[rng.integers(0, len(pool), size=int(hit.sum()))]
    return neg


class NeuMFNet(nn.Module):
    """GMF tower (element-wise product of id embeddings) and MLP tower, joined by one linear layer."""

    def __init__(self, n_users: int, n_items: int, gmf_factors: int, mlp_factors: int, layers: list[int],
                 time_factors: int = 0, dropout: float = 0.0):
        super().__init__()
        self.user_gmf = nn.Embedding(n_users, gmf_factors)
        self.item_gmf = nn.Embedding(n_items, gmf_factors)
        self.user_mlp = nn.Embedding(n_users, mlp_factors)
        self.item_mlp = nn.Embedding(n_items, mlp_factors)
        self.time_factors = time_factors
        if time_factors:
            self.hour = nn.Embedding(24, time_factors)
            self.weekday = nn.Embedding(7, time_factors)
        dims = [2 * mlp_factors + 2 * time_factors] + list(layers)
        mlp = []
        for a, b in zip(dims[:-1], dims[1:]):
            mlp += [nn.Linear(a, b), nn.ReLU()]
            if dropout:
                mlp.append(nn.Dropout(dropout))
        self.mlp = nn.Sequential(*mlp)
        self.out = nn.Linear(gmf_factors + dims[-1], 1)
        for e in (self.user_gmf, self.item_gmf, self.user_mlp, self.item_mlp):
            nn.init.normal_(e.weight, std=0.01)
        if time_factors:
            nn.init.normal_(self.hour.weight, std=0.01)
            nn.init.normal_(self.weekday.weight, std=0.01)

    def forward(self, u: torch.Tensor, i: torch.Tensor, hour=None, weekday=None) -> torch.Tensor:
        """Logits for pairs (u, i), with the (hour, weekday) context when the net has time features."""
        return self.logits(self.user_gmf(u), self.user_mlp(u), i, hour, weekday)

    def logits(self, user_gmf: torch.Tensor, user_mlp: torch.Tensor, i: torch.Tensor, hour=None, weekday=None) -> torch.Tensor:
        """Logits of items ``i`` for given user embeddings (rows aligned with ``i``, or one row broadcast)."""
        user_gmf, user_mlp = user_gmf.expand(len(i), -1), user_mlp.expand(len(i), -1)
        gmf = user_gmf * self.item_gmf(i)
        parts = [user_mlp, self.item_mlp(i)]
        if self.time_factors:
            parts += [self.hour(hour).expand(len(i), -1), self.weekday(weekday).expand(len(i), -1)]
        h = self.mlp(torch.cat(parts, dim=-1))
        return self.out(torch.cat([gmf, h], dim=-1))[..., 0]


class NeuMF(TorchMixin, Recommender):
    """Neural matrix factorisation: a GMF and an MLP tower over user and item id embeddings.

    Trained on implicit feedback with the binary cross-entropy of each observed
    pair against ``n_negatives`` uniformly sampled unobserved items, by Adam in
    mini-batches. With ``time_features=True`` the MLP tower also sees the hour
    of day and weekday of the event (embeddings of ``time_factors``); when
    scoring, the context is the time of the user's latest event, so after
    ``update`` the lists follow the shopper's current time of day.

    Served live (``live_scorer``) or asked to ``score_history``, a shopper's two
    user embeddings are fitted to their history with the towers frozen: a few
    Adam steps (``fold_in_steps``, class attributes) on the same loss as training
    (each history item against ``n_negatives`` items drawn uniformly from those
    outside the history; none left: no steps), starting from the
    shopper's learned embeddings or, for a new shopper, the training users' mean.
    The MLP tower makes a closed form impossible, and gradient steps on the
    shopper's own vector keep the towers as trained; the steps always restart
    from the same point on the last ``fold_in_max_items`` events, so the result
    depends on the history only, not on the order it arrived in.

    Deliberate differences from the paper / Microsoft Recommenders' NCF:
    ``layers`` are the MLP's hidden widths after the concatenated embeddings
    (their ``layer_sizes[0]`` is the concatenation's width), the output layer
    has a bias, ``regularization`` is Adam's weight decay on every parameter,
    the towers are trained jointly from scratch (no GMF/MLP pre-training), and
    scores are logits (the sigmoid would not change the ranking).

    Updated users keep their learned embeddings (their new items are excluded,
    and their context moves to their latest event); users first seen after
    ``fit`` get the popularity fallback.

    Defaults were tuned for MovieLens-100K with :func:`recapp.tune.grid_search`
    on a validation split carved from the training data only (item-stratified
    75/25, seed 0), NDCG@10, layers (64, 32, 16) and batch_size 4096 fixed.
    Round 1 (stopped after 5 of its 12 candidates to save time): learning_rate
    {0.001, 0.002} x gmf_factors {32, 64} x n_negatives {4, 8} at 20 epochs --
    0.001 beat 0.002 every time, best 0.248 with gmf_factors=32, n_negatives=4;
    round 2: learning_rate {0.0005, 0.001} x n_epochs {15, 25} (best 0.242 at
    0.001 / 15). Selected: learning_rate=0.001, n_epochs=20, gmf_factors=32,
    mlp_factors=32, n_negatives=4. Larger rates overfit within a few epochs.
    """

    def __init__(self, gmf_factors: int = 32, mlp_factors: int = 32, layers: tuple = (64, 32, 16),
                 n_negatives: int = 4, learning_rate: float = 0.001, regularization: float = 0.0,
                 dropout: float = 0.0, n_epochs: int = 20, batch_size: int = 4096, time_features: bool = False,
                 time_factors: int = 4, early_stopping: bool = False, validation_fraction: float = 0.1,
                 patience: int = 3, random_state: int | None = 42, device: str = "auto", verbose: bool = True):
        self.gmf_factors = gmf_factors
        self.mlp_factors = mlp_factors
        self.layers = layers
        self.n_negatives = n_negatives
        self.learning_rate = learning_rate
        self.regularization = regularization
        self.dropout = dropout
        self.n_epochs = n_epochs
        self.batch_size = batch_size
        self.time_features = time_features
        self.time_factors = time_factors
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.random_state = random_state
        self.device = device
        self.verbose = verbose

    def _validate_params(self) -> None:
        check_param("gmf_factors", self.gmf_factors, low=1, integer=True)
        check_param("mlp_factors", self.mlp_factors, low=1, integer=True)
        if not isinstance(self.layers, (list, tuple)) or len(self.layers) == 0:
            raise ValueError(f"layers={self.layers!r} must be a non-empty list of positive layer widths, e.g. (64, 32, 16)")
        for w in self.layers:
            check_param("layers[...]", w, low=1, integer=True)
        check_param("n_negatives", self.n_negatives, low=1, integer=True)
        check_param("learning_rate", self.learning_rate, low=0, low_inclusive=False)
        check_param("regularization", self.regularization, low=0)
        check_param("dropout", self.dropout, low=0, high=0.95)
        check_param("n_epochs", self.n_epochs, low=1, integer=True)
        check_param("batch_size", self.batch_size, low=1, integer=True)
        check_param("time_features", self.time_features, choices=(True, False))
        check_param("time_factors", self.time_factors, low=1, integer=True)
        self._check_torch_params()

    def _build_net(self, n_users: int, n_items: int, gmf_factors: int, mlp_factors: int, layers: list,
                   time_factors: int = 0, dropout: float = 0.0) -> nn.Module:
        return NeuMFNet(n_users, n_items, gmf_factors, mlp_factors, layers, time_factors, dropout)

    def _fit(self, inter: Interactions) -> None:
        rng = self._setup_torch()
        train, valid = self._split_for_early_stopping(inter, rng)
        dev = self.device_
        self.net_config_ = {
            "n_users": inter.n_users, "n_items": inter.n_items, "gmf_factors": int(self.gmf_factors),
            "mlp_factors": int(self.mlp_factors), "layers": [int(w) for w in self.layers],
            "time_factors": int(self.time_factors) if self.time_features else 0, "dropout": float(self.dropout),
        }
        self.net_ = net = self._build_net(**self.net_config_).to(dev)
        opt = torch.optim.Adam(net.parameters(), lr=self.learning_rate, weight_decay=self.regularization)
        X = train.matrix.tocsr()
        f = train.frame
        # One training row per distinct (user, item); its context is the time of the latest such event.
        pairs = f.groupby(["uidx", "iidx"], sort=True)["timestamp"].max()
        pos_u = pairs.index.get_level_values(0).to_numpy(np.int64)
        pos_i = pairs.index.get_level_values(1).to_numpy(np.int64)
        pos_h, pos_w = time_context(pairs.to_numpy())
        n_neg = int(self.n_negatives)
        loss_fn = nn.BCEWithLogitsLoss()

        def run_epoch(epoch: int) -> float:
            net.train()
            neg = sample_negatives(rng, pos_u, X, inter.n_items, n_neg)
            u = np.concatenate([pos_u, np.repeat(pos_u, n_neg)])
            i = np.concatenate([pos_i, neg.ravel()])
            h = np.concatenate([pos_h, np.repeat(pos_h, n_neg)])
            w = np.concatenate([pos_w, np.repeat(pos_w, n_neg)])
            y = np.concatenate([np.ones(len(pos_u), np.float32), np.zeros(len(pos_u) * n_neg, np.float32)])
            order = rng.permutation(len(u))
            U, I, H, W, Y = (torch.as_tensor(a[order], device=dev) for a in (u, i, h, w, y))
            total = 0.0
            for start in range(0, len(order), self.batch_size):
                s = slice(start, start + self.batch_size)
                logits = net(U[s], I[s], H[s], W[s])
                loss = loss_fn(logits, Y[s])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total += loss.item() * len(logits)
            return total / len(order)

        validate = None
        if valid is not None:
            users_v = validation_users(valid.matrix)

            def validate() -> float:
                return holdout_ndcg(lambda rows: self._all_scores(rows, inter), train.matrix, valid.matrix, users_v)

        self._train_loop(run_epoch, self.n_epochs, validate, desc="NeuMF")
        net.eval()

    def _all_scores(self, uidx: np.ndarray, inter: Interactions) -> np.ndarray:
        net, dev = self.net_, self.device_
        net.eval()
        n_items = self.net_config_["n_items"]
        # Context per user: the time of their latest event.
        last = np.zeros(len(uidx))
        indptr = inter.seq_indptr
        has = indptr[uidx + 1] > indptr[uidx]
        last[has] = inter.seq_times[indptr[uidx[has] + 1] - 1]
        hours, days = time_context(last)
        out = np.empty((len(uidx), n_items), dtype=np.float32)
        items = torch.arange(n_items, device=dev)
        chunk = max(1, (1 << 20) // max(n_items, 1))
        with torch.no_grad():
            for a in range(0, len(uidx), chunk):
                b = min(a + chunk, len(uidx))
                n = b - a
                u = torch.as_tensor(uidx[a:b], device=dev).repeat_interleave(n_items)
                h = torch.as_tensor(hours[a:b], device=dev).repeat_interleave(n_items)
                w = torch.as_tensor(days[a:b], device=dev).repeat_interleave(n_items)
                out[a:b] = net(u, items.repeat(n), h, w).reshape(n, n_items).cpu().numpy()
        net.train(False)
        return out

    def _scores(self, user_rows: sp.csr_matrix, uidx: np.ndarray) -> np.ndarray:
        return self._all_scores(np.asarray(uidx, dtype=np.int64), self.interactions_)

    # ---- fold-in ------------------------------------------------------------------------------
    #: Adam steps, step size and history length of the per-shopper fold-in (see the class docstring), chosen on
    #: a prequential replay of the last 20% (by time) of ML-100K's training part among (steps, rate, items)
    #: (10, 0.05, 200), (20, 0.05, 200), (5, 0.1, 200), (5, 0.1, 100), (3, 0.2, 100): HR@10 0.121, p99 3.4 ms
    #: (chosen while the fold-in still drew negatives from the whole catalogue, history items included).
    fold_in_steps = 5
    fold_in_learning_rate = 0.1
    fold_in_max_items = 100

    def fold_in_embeddings(self, items, weights=None, uidx: int = -1, last_time: float | None = None):
        """(gmf, mlp) user embeddings fitted to a history with the towers frozen (deterministic).

        ``items`` and ``weights`` are checked as :func:`~recapp.models.checks.history_arrays` does (the
        weights are then ignored); ``uidx`` must be an integer (-1: no learned row) and ``last_time``
        None or a number of epoch seconds.
        """
        self._check_fitted()
        items, _ = history_arrays(items, weights)
        check_param("uidx", uidx, integer=True)
        # A missing time (NaN) stays accepted: time_context reads it as the epoch, as in training.
        if last_time is not None and (isinstance(last_time, bool) or not isinstance(last_time, (int, float, np.number))):
            raise ValueError(f"last_time={last_time!r} must be None or a number of epoch seconds")
        net, dev = self.net_, self.device_
        n_items = self.net_config_["n_items"]
        known = items[items < n_items]
        items = known[-self.fold_in_max_items:]
        with torch.no_grad():
            if 0 <= uidx < self.net_config_["n_users"]:
                g0, m0 = net.user_gmf.weight[uidx:uidx + 1], net.user_mlp.weight[uidx:uidx + 1]
            else:
                g0, m0 = net.user_gmf.weight.mean(0, keepdim=True), net.user_mlp.weight.mean(0, keepdim=True)
        g, m = g0.detach().clone().requires_grad_(True), m0.detach().clone().requires_grad_(True)
        if len(items) == 0:
            return g.detach(), m.detach()
        rng = np.random.default_rng(len(items))
        neg = unseen_items(rng, known, n_items, len(items) * int(self.n_negatives))
        if len(neg) == 0:
            return g.detach(), m.detach()
        i = torch.as_tensor(np.concatenate([items, neg]), device=dev)
        y = torch.as_tensor(np.concatenate([np.ones(len(items)), np.zeros(len(neg))]), dtype=torch.float32, device=dev)
        h, w = self._context(last_time)
        opt = torch.optim.Adam([g, m], lr=self.fold_in_learning_rate)
        net.eval()
        for p in net.parameters():
            p.requires_grad_(False)
        try:
            for _ in range(self.fold_in_steps):
                loss = nn.functional.binary_cross_entropy_with_logits(net.logits(g, m, i, h, w), y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
        finally:
            for p in net.parameters():
                p.requires_grad_(True)
        return g.detach(), m.detach()

    def _context(self, last_time):
        dev = self.device_
        hour, day = time_context(np.array([0.0 if last_time is None else last_time]))
        return torch.as_tensor(hour, device=dev), torch.as_tensor(day, device=dev)

    def score_history(self, items, weights=None, uidx: int = -1, last_time: float | None = None) -> np.ndarray:
        """Scores over the fitted items after fitting the shopper's embeddings to ``items`` (see the class docstring).

        Refused as :meth:`fold_in_embeddings` refuses.
        """
        g, m = self.fold_in_embeddings(items, weights, uidx, last_time)
        all_items = torch.arange(self.net_config_["n_items"], device=self.device_)
        h, w = self._context(last_time)
        with torch.no_grad():
            return self.net_.logits(g, m, all_items, h, w).cpu().numpy().astype(np.float64)

    def live_scorer(self) -> LiveScorer:
        """Re-fits the shopper's embeddings after each event (:meth:`score_history` with their row and time)."""
        self._check_fitted()
        return NeuMFScorer(self)


class NeuMFScorer(LiveScorer):
    """NeuMF live: the shopper's embeddings fitted to the history (warm-started from their learned ones)."""

    def scores(self, state, history):
        idx = np.asarray(history.items, dtype=np.int64)
        last = history.times[-1] if history.times else None
        return self.model.score_history(idx, None, uidx=history.uidx, last_time=last).astype(np.float32)

