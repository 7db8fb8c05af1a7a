"""Mult-VAE: variational autoencoder with a multinomial likelihood (Liang et al., WWW 2018)."""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn
from torch.nn import functional as F

from recapp.interactions import Interactions
from recapp.models.base import Recommender, check_param
from recapp.models.holdout_eval import holdout_ndcg, validation_users
from recapp.models.torch_base import TorchMixin, batches, to_tensor


class VAENet(nn.Module):
    """Encoder n_items -> hidden -> (mu, logvar) of size latent; decoder latent -> hidden -> n_items logits."""

    def __init__(self, n_items: int, hidden: int, latent: int, dropout: float):
        super().__init__()
        self.enc = nn.Linear(n_items, hidden)
        self.enc_out = nn.Linear(hidden, 2 * latent)
        self.dec = nn.Linear(latent, hidden)
        self.dec_out = nn.Linear(hidden, n_items)
        self.drop = nn.Dropout(dropout)
        self.latent = latent
        for layer in (self.enc, self.enc_out, self.dec, self.dec_out):
            nn.init.xavier_uniform_(layer.weight)
            nn.init.normal_(layer.bias, std=0.001)

    def forward(self, x: torch.Tensor):
        """Logits, mean and log-variance for a batch of history rows ``x``."""
        x = F.normalize(x, dim=1)
        h = torch.tanh(self.enc(self.drop(x)))
        stats = self.enc_out(h)
        mu, logvar = stats[:, : self.latent], stats[:, self.latent:]
        if self.training:
            z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        else:
            z = mu
        logits = self.dec_out(torch.tanh(self.dec(z)))
        return logits, mu, logvar


def vae_loss(logits: torch.Tensor, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, beta: float) -> torch.Tensor:
    """Negative ELBO of a batch: the multinomial log-likelihood of ``x`` under softmax(``logits``) plus
    ``beta`` * KL(q || N(0, I)), both averaged over the rows."""
    nll = -(F.log_softmax(logits, dim=1) * x).sum(1).mean()
    kl = (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(1)).mean()
    return nll + beta * kl


def annealed_beta(step: int, beta_max: float, anneal_steps: int) -> float:
    """KL weight after ``step`` updates: linear from 0 to ``beta_max`` over ``anneal_steps`` updates, then flat
    (0 steps: ``beta_max`` throughout)."""
    return beta_max if anneal_steps == 0 else min(beta_max, beta_max * step / anneal_steps)


class MultVAE(TorchMixin, Recommender):
    """Mult-VAE^PR: users' item sets encoded to a Gaussian, decoded to a softmax over items.

    The loss is the multinomial log-likelihood of the user's items plus
    ``beta`` times the KL term, with ``beta`` annealed linearly from 0 to
    ``beta_max`` over ``anneal_steps`` updates (the paper's partial
    regularisation; :func:`vae_loss`, :func:`annealed_beta`); input dropout is
    ``dropout``, applied after the L2 normalisation of the input row, and the
    decoder has none, as in the paper. ``weight_decay`` is Adam's, on every
    parameter (the paper's L2 term covers the weights only). Scores come from the
    history row alone, so users with new events (and brand-new users) are
    served at once from their updated history, with no refit.

    ``binary=False`` feeds the event weights (ratings on MovieLens) to the
    encoder and the likelihood, so strongly liked items count more; a negative
    summed weight, or none above 0, is refused.

    Defaults were tuned for MovieLens-100K with :func:`recapp.tune.grid_search`
    on validation splits carved from the training data only (item-stratified,
    seed 0), NDCG@10, hidden 600 / latent 200 (the paper's) and batch_size 128.
    At 75/25, grids beta_max {0.2, 0.5, 1} x n_epochs {25, 35, 50} and then
    beta_max {0.5, 1} x n_epochs {15, 20, 25} x dropout {0.5, 0.7} x batch_size
    {64, 128} kept choosing the shortest, most regularised training: the inner
    training part holds only 56% of the ratings, which biases the choice (that
    choice scored 0.436 on the benchmark's test split). The final round
    therefore used a 90/10 validation split, whose inner part is close to the
    full training set: beta_max {0.5, 1} x dropout {0.5, 0.7} x n_epochs
    {20, 35} at learning_rate 1e-3, plus learning_rate 5e-4 for 60 epochs,
    then binary {True, False}. Selected: beta_max=1, dropout=0.5,
    learning_rate=5e-4, n_epochs=60, anneal_steps=500, binary=False
    (validation NDCG@10 0.1695 against 0.1672 for binary input).
    """

    history_based = True

    def __init__(self, hidden: int = 600, latent: int = 200, dropout: float = 0.5, beta_max: float = 1.0,
                 anneal_steps: int = 500, learning_rate: float = 5e-4, weight_decay: float = 0.0,
                 n_epochs: int = 60, batch_size: int = 128, binary: bool = False,
                 early_stopping: bool = False, validation_fraction: float = 0.1, patience: int = 10,
                 random_state: int | None = 42, device: str = "auto", verbose: bool = True):
        self.hidden = hidden
        self.latent = latent
        self.dropout = dropout
        self.beta_max = beta_max
        self.anneal_steps = anneal_steps
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.n_epochs = n_epochs
        self.batch_size = batch_size
        self.binary = binary
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.random_state = random_state
        self.device = device
        self.verbose = verbose

    def _validate_params(self) -> None:
        check_param("hidden", self.hidden, low=1, integer=True)
        check_param("latent", self.latent, low=1, integer=True)
        check_param("dropout", self.dropout, low=0, high=1, high_inclusive=False)
        check_param("beta_max", self.beta_max, low=0)
        check_param("anneal_steps", self.anneal_steps, low=0, integer=True)
        check_param("learning_rate", self.learning_rate, low=0, low_inclusive=False)
        check_param("weight_decay", self.weight_decay, low=0)
        check_param("n_epochs", self.n_epochs, low=1, integer=True)
        check_param("batch_size", self.batch_size, low=1, integer=True)
        check_param("binary", self.binary, choices=(True, False))
        self._check_torch_params()

    def _build_net(self, n_items: int, hidden: int, latent: int, dropout: float) -> nn.Module:
        return VAENet(n_items, hidden, latent, dropout)

    def _input(self, rows: sp.csr_matrix) -> sp.csr_matrix:
        rows = rows.astype(np.float32)
        if self.binary:
            rows = rows.copy()
            rows.data[:] = 1.0
        return rows

    def _weight_rule(self):
        # The weights are the multinomial's counts: none below 0, and some above 0.
        return None if self.binary else {"allow_negative": False, "need_positive": True}

    def _fit(self, inter: Interactions) -> None:
        rng = self._setup_torch()
        train, valid = self._split_for_early_stopping(inter, rng)
        dev = self.device_
        self.net_config_ = {"n_items": inter.n_items, "hidden": int(self.hidden), "latent": int(self.latent),
                            "dropout": float(self.dropout)}
        self.net_ = net = self._build_net(**self.net_config_).to(dev)
        opt = torch.optim.Adam(net.parameters(), lr=self.learning_rate, weight_decay=self.weight_decay)
        X = self._input(train.matrix)
        active = np.flatnonzero(np.diff(X.indptr) > 0)
        step = [0]

        def run_epoch(epoch: int) -> float:
            net.train()
            total = 0.0
            for idx in batches(len(active), self.batch_size, rng):
                x = to_tensor(X[active[idx]], dev)
                logits, mu, logvar = net(x)
                loss = vae_loss(logits, x, mu, logvar, annealed_beta(step[0], self.beta_max, self.anneal_steps))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                step[0] += 1
                total += loss.item() * len(idx)
            return total / max(len(active), 1)

        validate = None
        if valid is not None:
            val_users = validation_users(valid.matrix)

            def validate() -> float:
                net.eval()
                with torch.no_grad():
                    return holdout_ndcg(lambda rows: net(to_tensor(X[rows], dev))[0], train.matrix, valid.matrix, val_users)

        self._train_loop(run_epoch, self.n_epochs, validate, desc="MultVAE")
        net.eval()

    def _scores(self, user_rows: sp.csr_matrix, uidx: np.ndarray) -> np.ndarray:
        n = self.net_config_["n_items"]
        x = self._input(user_rows[:, :n])
        with torch.no_grad():
            return self.net_(to_tensor(x, self.device_))[0].cpu().numpy()
