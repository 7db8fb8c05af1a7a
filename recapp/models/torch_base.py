"""Shared PyTorch plumbing for recapp's learned recommenders.

Every model trained with torch (ALS, BPR, RatingMF, NeuMF, MultVAE, LightGCN,
and the sequential models) needs the same few things, and they live here so
each model file only says what is particular to it:

* :func:`resolve_device` turns ``device="auto"`` into CUDA when a GPU is
  present, else the CPU, and rejects names torch cannot use.
* :func:`seed_everything` makes a run repeatable from ``random_state``, and
  :func:`deterministic_kernels` keeps it so on CUDA; a fit leaves the caller's
  torch random state as it found it (:func:`caller_rng_kept`).
* Early stopping validates on a split carved from the *training* data by
  :func:`recapp.models.holdout_eval.holdout_interactions`, never a test split.
* :func:`fit_epochs` is the training loop: a tqdm bar over epochs that shows the
  loss (and the validation score) in its postfix, early stopping with patience,
  and the best epoch's state restored at the end.
* :class:`TorchMixin` gives a :class:`~recapp.models.base.Recommender` device
  and seed set-up, hyperparameter checks for the common arguments, and saving
  of an ``nn.Module``'s ``state_dict`` through the base class's safetensors
  mechanism (``_state`` / ``_set_state`` / ``_extra_config``); no pickle.

A model using the mixin subclasses ``(TorchMixin, Recommender)``, builds its
network in ``_build_net(**net_config)`` and stores it as ``self.net_`` with the
sizes it was built with in ``self.net_config_``; ``save``/``load`` then work
without further code.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from tqdm.auto import tqdm

from recapp.interactions import Interactions
from recapp.models.base import check_param
from recapp.models.holdout_eval import holdout_interactions
from recapp.models.progress import progress_listened, report_progress
from recapp.models.torch_env import (caller_rng_kept, deterministic_kernels, resolve_device,  # noqa: F401
                                     seed_everything, torch_threads)


# ---- the training loop ----------------------------------------------------------------
@dataclass
class TrainLog:
    """What :func:`fit_epochs` did: per-epoch loss and validation score, and the epoch kept."""

    losses: list = field(default_factory=list)
    valid: list = field(default_factory=list)
    best_epoch: int = -1
    best_valid: float = float("nan")
    stopped_early: bool = False

    def to_frame(self) -> pd.DataFrame:
        """One row per epoch: epoch, loss, valid (NaN where not validated)."""
        v = self.valid + [float("nan")] * (len(self.losses) - len(self.valid))
        return pd.DataFrame({"epoch": np.arange(1, len(self.losses) + 1), "loss": self.losses, "valid": v})


def module_snapshot(module: torch.nn.Module) -> Callable[[], dict]:
    """A callable returning a detached copy of ``module``'s state_dict (for best-epoch restore)."""
    return lambda: {k: v.detach().clone() for k, v in module.state_dict().items()}


def fit_epochs(run_epoch: Callable[[int], float], n_epochs: int, *, validate: Callable[[], float] | None = None,
               snapshot: Callable[[], object] | None = None, restore: Callable[[object], None] | None = None,
               patience: int = 5, eval_every: int = 1, desc: str = "training", verbose: bool = True) -> TrainLog:
    """Run ``run_epoch(epoch) -> loss`` up to ``n_epochs`` times under a tqdm bar showing the loss.

    With ``validate() -> score`` (higher is better) the score is checked every
    ``eval_every`` epochs; training stops after ``patience`` checks without a new
    best, and ``restore(state)`` puts back the best ``snapshot()`` (when both are
    given). Without ``validate`` every epoch runs and the last state is kept.
    """
    log = TrainLog()
    best_state = None
    bad = 0
    # Someone listening for progress (the dashboard's training thread) draws its own bar.
    bar = tqdm(range(n_epochs), desc=desc, disable=not verbose or progress_listened(), leave=False, unit="epoch")
    for epoch in bar:
        loss = float(run_epoch(epoch))
        report_progress(epoch + 1, n_epochs)
        log.losses.append(loss)
        postfix = {"loss": f"{loss:.4g}"}
        if validate is not None and ((epoch + 1) % eval_every == 0 or epoch + 1 == n_epochs):
            score = float(validate())
            log.valid.extend([float("nan")] * (len(log.losses) - 1 - len(log.valid)))
            log.valid.append(score)
            if not (score <= log.best_valid):  # also true for the first (NaN) comparison
                log.best_valid, log.best_epoch, bad = score, epoch, 0
                if snapshot is not None:
                    best_state = snapshot()
            else:
                bad += 1
            postfix.update(val=f"{score:.4f}", best=f"{log.best_valid:.4f}")
            if bad >= patience:
                log.stopped_early = True
                bar.set_postfix(postfix)
                break
        bar.set_postfix(postfix)
    bar.close()
    if validate is None:
        log.best_epoch = len(log.losses) - 1
    elif best_state is not None and restore is not None:
        restore(best_state)
    return log


def batches(n: int, batch_size: int, rng: np.random.Generator | None = None):
    """Index arrays covering ``range(n)`` in chunks of ``batch_size`` (shuffled when ``rng`` is given)."""
    idx = rng.permutation(n) if rng is not None else np.arange(n)
    for start in range(0, n, batch_size):
        yield idx[start:start + batch_size]


def sample_negatives(rng: np.random.Generator, users: np.ndarray, positives: sp.csr_matrix, n_items: int,
                     n: int = 1, retries: int = 3) -> np.ndarray:
    """Items drawn uniformly for each user in ``users`` (shape (len(users), n)), redrawn if the user has them.

    After ``retries`` redraws a remaining collision is kept (rare on sparse data;
    it only adds a little noise to the loss).
    """
    users = np.asarray(users, dtype=np.int64)
    neg = rng.integers(0, n_items, size=(len(users), n))
    pos = positives.tocsr()
    if pos.nnz == 0:
        return neg
    n_rows = pos.shape[0]
    if n_rows * n_items <= 2**25:
        # A dense membership table is the fastest test while it stays small (<= 32 MB).
        table = np.zeros(n_rows * n_items, dtype=bool)
        table[np.repeat(np.arange(n_rows, dtype=np.int64), np.diff(pos.indptr)) * n_items + pos.indices] = True

        def clashes(q):
            return table[q]
    else:
        keys = np.sort(np.repeat(np.arange(n_rows, dtype=np.int64), np.diff(pos.indptr)) * n_items + pos.indices)

        def clashes(q):
            at = np.searchsorted(keys, q).clip(max=len(keys) - 1)
            return keys[at] == q
    for _ in range(retries + 1):
        clash = clashes(users[:, None] * n_items + neg)
        if not clash.any():
            break
        neg[clash] = rng.integers(0, n_items, size=int(clash.sum()))
    return neg


# ---- the mixin ---------------------------------------------------------------------------
class TorchMixin:
    """Device, seeding, common checks and state_dict persistence for torch recommenders.

    Use as ``class MyModel(TorchMixin, Recommender)``. The subclass sets
    ``self.net_`` (an ``nn.Module``) and ``self.net_config_`` (the JSON-able
    keyword arguments of ``self._build_net``) in ``_fit``. Extra learned arrays
    go in ``_extra_state()`` / ``_set_extra_state()``. Loading rebuilds the
    network from ``net_config_`` and loads its weights on ``device``.

    Common hyperparameters (checked by :meth:`_check_torch_params` when the
    subclass has them): ``device``, ``random_state``, ``verbose``,
    ``early_stopping``, ``validation_fraction``, ``patience``.
    """

    net_ = None
    #: CPU threads used while training (see :func:`torch_threads`); ``None`` lets torch use all cores.
    #: Set it on a class or an instance, e.g. ``model.train_threads = None`` on a dedicated machine.
    train_threads: int | None = 1

    def _check_torch_params(self) -> None:
        """Range checks for the common torch hyperparameters a subclass defines."""
        resolve_device(getattr(self, "device", "auto"))
        rs = getattr(self, "random_state", None)
        if rs is not None:
            check_param("random_state", rs, low=0, high=2**64 - 1, integer=True)  # torch.manual_seed's range
        if hasattr(self, "verbose"):
            check_param("verbose", self.verbose, choices=(True, False))
        if hasattr(self, "early_stopping"):
            check_param("early_stopping", self.early_stopping, choices=(True, False))
        if hasattr(self, "validation_fraction"):
            check_param("validation_fraction", self.validation_fraction, low=0, high=0.5, low_inclusive=False)
        if hasattr(self, "patience"):
            check_param("patience", self.patience, low=1, integer=True)

    def _saved_params(self) -> dict:
        params = super()._saved_params()
        if isinstance(params.get("device"), torch.device):
            params["device"] = str(params["device"])  # the name resolve_device reads back as the same device
        return params

    @classmethod
    def _params_for_load(cls, params: dict) -> dict:
        """The saved parameters with a CUDA ``device`` this machine lacks replaced by ``"auto"`` (with a warning).

        The learned arrays are read into host memory and moved to the device
        afterwards, so a model fitted on a GPU runs wherever it is loaded.
        """
        params = super()._params_for_load(params)
        device = params.get("device") if isinstance(params, dict) else None
        if isinstance(device, str) and device.startswith("cuda") and not _cuda_usable(device):
            warnings.warn(f"{cls.__name__} was saved with device={device!r}, which this machine cannot use "
                          f"({torch.cuda.device_count()} CUDA device(s) visible); loaded with device='auto' "
                          f"({resolve_device('auto')})", stacklevel=3)
            params = {**params, "device": "auto"}
        return params

    def fit(self, data, **kwargs):
        """``Recommender.fit`` under :func:`caller_rng_kept`: the caller's torch random state is left as it was."""
        with caller_rng_kept(getattr(self, "device", "auto")):
            return super().fit(data, **kwargs)

    def _setup_torch(self) -> np.random.Generator:
        """Resolve ``self.device`` into ``self.device_`` and seed; returns the numpy Generator to use."""
        self.device_ = resolve_device(getattr(self, "device", "auto"))
        return seed_everything(getattr(self, "random_state", None), self.device_)

    def _split_for_early_stopping(self, inter: Interactions, rng: np.random.Generator, mode: str = "random"):
        """``(train, valid)`` when ``self.early_stopping`` is on, else ``(inter, None)``.

        When no user has enough items to hold any out, the validation split is
        empty: a warning says so and ``(inter, None)`` trains every epoch.
        """
        if not getattr(self, "early_stopping", False):
            return inter, None
        train, valid = holdout_interactions(inter, self.validation_fraction, mode=mode, rng=rng)
        if len(valid) == 0:
            self._warn_no_validation("no user has the 3 distinct items needed to hold one out")
            return inter, None
        return train, valid

    def _warn_no_validation(self, why: str) -> None:
        # Validating on nothing scores every epoch alike, so early stopping would keep the first epoch's state.
        warnings.warn(f"{type(self).__name__}: early_stopping is on but the validation split is empty ({why}); "
                      f"training all n_epochs={self.n_epochs} without it", stacklevel=4)

    def _train_loop(self, run_epoch, n_epochs: int, validate=None, *, desc: str | None = None) -> TrainLog:
        """:func:`fit_epochs` with this model's verbosity and patience, restoring ``self.net_``'s best state."""
        net = self.net_
        with torch_threads(self.train_threads if self.device_.type == "cpu" else None):
            log = fit_epochs(
                run_epoch, n_epochs, validate=validate,
                snapshot=module_snapshot(net) if (validate is not None and net is not None) else None,
                restore=(lambda st: net.load_state_dict(st)) if net is not None else None,
                patience=getattr(self, "patience", 5), desc=desc or type(self).__name__,
                verbose=getattr(self, "verbose", True),
            )
        self.train_log_ = log
        return log

    # ---- persistence through the base class's safetensors file -------------------------
    def _build_net(self, **config) -> torch.nn.Module:
        """Build the (untrained) network from ``net_config_``; subclasses with a net override this."""
        raise NotImplementedError

    def _extra_state(self) -> dict[str, np.ndarray]:
        """Learned arrays other than the network's weights (subclasses extend)."""
        return {}

    def _set_extra_state(self, arrays: dict[str, np.ndarray]) -> None:
        """Restore what ``_extra_state`` saved."""

    def _extra_json(self) -> dict:
        """JSON-able learned values other than ``net_config_`` (subclasses extend)."""
        return {}

    def _set_extra_json(self, extra: dict) -> None:
        """Restore what ``_extra_json`` saved."""

    def _state(self) -> dict[str, np.ndarray]:
        out = {f"extra.{k}": np.asarray(v) for k, v in self._extra_state().items()}
        if self.net_ is not None:
            out.update({f"net.{k}": v.detach().cpu().numpy() for k, v in self.net_.state_dict().items()})
        return out

    def _set_state(self, arrays: dict[str, np.ndarray]) -> None:
        # The base loader restores arrays before the JSON config, and the network's
        # shape lives in the config: keep the weights until _set_extra_config.
        self._pending_net_state = {k[4:]: v for k, v in arrays.items() if k.startswith("net.")}
        self._set_extra_state({k[6:]: v for k, v in arrays.items() if k.startswith("extra.")})

    def _extra_config(self) -> dict:
        # A model that dropped its network after fit (e.g. kept only final embeddings) saves none.
        net_config = getattr(self, "net_config_", None) if self.net_ is not None else None
        return {"net_config": net_config, "extra": self._extra_json()}

    def _set_extra_config(self, extra: dict) -> None:
        self._set_extra_json(extra.get("extra") or {})
        self.device_ = resolve_device(getattr(self, "device", "auto"))
        cfg = extra.get("net_config")
        pending = getattr(self, "_pending_net_state", None) or {}
        if cfg is not None:
            self.net_config_ = cfg
            net = self._build_net(**cfg)
            net.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in pending.items()})
            self.net_ = net.to(self.device_).eval()
        self._pending_net_state = None


def _cuda_usable(device: str) -> bool:
    """Whether the CUDA device ``device`` ("cuda", "cuda:N") exists here; a malformed name passes, for the parameter check to name."""
    try:
        dev = torch.device(device)
    except RuntimeError:
        return True
    if dev.type != "cuda":
        return True
    return torch.cuda.is_available() and (dev.index or 0) < torch.cuda.device_count()


def to_tensor(a, device, dtype=torch.float32) -> torch.Tensor:
    """A numpy array (or scipy sparse matrix, densified) as a tensor on ``device``."""
    if sp.issparse(a):
        a = a.toarray()
    return torch.as_tensor(np.asarray(a), dtype=dtype, device=device)


def sparse_tensor(m: sp.spmatrix, device, dtype=torch.float32) -> torch.Tensor:
    """A scipy sparse matrix as a torch sparse CSR tensor on ``device``."""
    m = m.tocsr()
    return torch.sparse_csr_tensor(
        torch.as_tensor(m.indptr, dtype=torch.int64), torch.as_tensor(m.indices, dtype=torch.int64),
        torch.as_tensor(m.data, dtype=dtype), size=m.shape,
    ).to(device)

