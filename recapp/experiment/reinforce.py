"""A policy-gradient slate policy: :class:`ReinforceReRanker` (REINFORCE, Williams 1992, in PyTorch).

It is a :class:`~recapp.experiment.bandits.BanditPolicy` like LinUCB and the
DQN (:mod:`recapp.experiment.dqn`), and lives in its own module for the same
reason: the bandits module keeps the classic count- and regression-based
policies. It learns from the slates it showed (``learns_from_slates``), so
``observe`` refuses feedback that does not match its last ``slates`` call.
``recapp.experiment`` exports it with the other policies. Its regret in
the documented setting is in :mod:`recapp.experiment.bandits`.
"""
from __future__ import annotations

import numpy as np

from recapp.experiment.bandits import BanditPolicy
from recapp.models.base import check_param
from recapp.models.torch_base import torch_threads

__all__ = ["ReinforceReRanker"]


class ReinforceReRanker(BanditPolicy):
    """A Plackett-Luce slate policy trained online with REINFORCE (PyTorch).

    The logit of candidate i for a shopper with context x is
    ``w_rank * -log(rank_i) + mlp(x) . e_i + b_i``: ``rank_i`` is the item's
    rank in the base Recommender's candidate list (all 1 without one), ``e_i``
    a learned item embedding. ``w_rank`` starts at ``rank_prior``, so the
    policy begins close to the base model's order and learns corrections. A
    slate is sampled without replacement in proportion to ``exp(logit)``
    (Gumbel top-k); after each batch of feedback the policy takes one
    ``optimizer`` step on ``-(reward - baseline) * log P(slate)`` with a
    moving-average baseline, minus a small entropy bonus. ``random_state``
    seeds torch too, so it is None or an integer >= 0 (a Generator is refused).
    """

    learns_from_slates = True           # _step reads last_ by the feedback's request
    seeds_torch = True                  # reset seeds torch with int(random_state)

    def __init__(self, hidden: int = 16, lr: float = 0.01, optimizer: str = "sgd", entropy: float = 0.0,
                 baseline_decay: float = 0.95, rank_prior: float = 2.0, device: str = "cpu", **kwargs):
        if optimizer not in ("sgd", "adam"):
            raise ValueError(f"optimizer={optimizer!r} is not accepted; accepted values: ['sgd', 'adam']")
        check_param("hidden", hidden, low=1, integer=True)
        check_param("lr", lr, low=0.0, low_inclusive=False)
        check_param("entropy", entropy, low=0.0)
        check_param("baseline_decay", baseline_decay, low=0.0, high=1.0)
        check_param("rank_prior", rank_prior)
        super().__init__(**kwargs)
        self.hidden = hidden
        self.lr = lr
        self.optimizer = optimizer
        self.entropy = entropy
        self.baseline_decay = baseline_decay
        self.rank_prior = rank_prior
        self.device = device

    def reset(self, env):
        """Build a fresh network and optimiser (seeded)."""
        import torch

        super().reset(env)
        gen = torch.Generator().manual_seed(int(self.random_state or 0))
        d, n, h = env.n_context, len(env.item_ids), self.hidden
        self.net_ = torch.nn.Sequential(torch.nn.Linear(d, h), torch.nn.Tanh(), torch.nn.Linear(h, h))
        with torch.no_grad():
            for p in self.net_.parameters():
                p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
        self.net_.to(self.device)
        self.item_emb_ = torch.nn.Parameter((torch.randn(n, h, generator=gen) * 0.3).to(self.device))
        self.item_bias_ = torch.nn.Parameter(torch.zeros(n, device=self.device))
        self.rank_weight_ = torch.nn.Parameter(torch.tensor(float(self.rank_prior), device=self.device))
        params = list(self.net_.parameters()) + [self.item_emb_, self.item_bias_, self.rank_weight_]
        # Plain SGD by default: Adam rescales every gradient to unit size, which turns
        # the noise of sparse click rewards into a random walk of the logits.
        self.opt_ = (torch.optim.SGD(params, lr=self.lr) if self.optimizer == "sgd" else torch.optim.Adam(params, lr=self.lr))
        self.baseline_ = None

    def _logits(self, users, cand):
        import torch

        x = torch.as_tensor(self.env_.context(users), dtype=torch.float32, device=self.device)
        c = torch.as_tensor(np.ascontiguousarray(cand), device=self.device)
        # Candidate columns are in the base model's rank order (all items: no order, so no prior).
        neg_log_rank = (-torch.log(torch.arange(1, cand.shape[1] + 1, dtype=torch.float32, device=self.device))
                        if self.candidates is not None else torch.zeros(cand.shape[1], device=self.device))
        return (torch.einsum("nh,nmh->nm", self.net_(x), self.item_emb_[c]) + self.item_bias_[c]
                + self.rank_weight_ * neg_log_rank[None, :])

    def _scores(self, users, cand):
        import torch

        with torch.no_grad(), torch_threads(1):
            logits = self._logits(users, cand).cpu().numpy()
        # Gumbel-perturbed logits: their top-k is a Plackett-Luce sample without replacement.
        return logits + self.rng_.gumbel(size=logits.shape)

    def _learn(self, feedback, idx, r):
        with torch_threads(1):
            self._step(feedback, r)

    def _step(self, feedback, r):
        import torch

        users, cand, pos = self.last_                              # pos: column of each shown item in its row
        n, k = pos.shape
        reward = np.zeros(n)
        np.add.at(reward, feedback["request"].to_numpy(), r)
        logits = self._logits(users, cand)                         # (n, m)
        pos_t = torch.as_tensor(pos, device=self.device)
        chosen_logits = torch.gather(logits, 1, pos_t)             # (n, k)
        mask = torch.zeros_like(logits, dtype=torch.bool)
        logp = torch.zeros(n, device=self.device)
        for j in range(k):
            masked = logits.masked_fill(mask, float("-inf"))
            logp = logp + chosen_logits[:, j] - torch.logsumexp(masked, dim=1)
            mask = mask.scatter(1, pos_t[:, j:j + 1], True)
        mean_r = float(reward.mean())
        self.baseline_ = mean_r if self.baseline_ is None else self.baseline_decay * self.baseline_ + (1 - self.baseline_decay) * mean_r
        adv = torch.as_tensor(reward - self.baseline_, dtype=torch.float32, device=self.device)
        # Summed over the batch (not averaged) so the step size does not shrink with the batch.
        loss = -(adv * logp).sum()
        if self.entropy:
            probs = torch.softmax(logits, dim=1)
            loss = loss + self.entropy * (probs * torch.log(probs + 1e-12)).sum()
        self.opt_.zero_grad()
        loss.backward()
        self.opt_.step()
