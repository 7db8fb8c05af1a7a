"""MultVAE, LightGCN and NeuMF checked against independent restatements of their reference implementations.

References: Microsoft Recommenders' ``models/vae/multinomial_vae.py`` (Liang et al.,
WWW 2018), ``models/deeprec/models/graphrec/lightgcn.py`` with
``DataModel/ImplicitCF.py`` (He et al., SIGIR 2020) and ``models/ncf/ncf_singlenode.py``
(He et al., WWW 2017). Each test recomputes the reference's formula in numpy on a
tiny fixed input and compares recapp's number with it.

Deliberate differences, documented in the models' docstrings and not tested as defects:

* MultVAE: ``beta`` reaches ``beta_max`` after ``anneal_steps`` updates (Recommenders
  raises it by ``1/total_anneal_steps`` per update up to ``anneal_cap``: the same
  linear ramp, parametrised by its length); no decoder dropout (the paper has
  none); ``weight_decay`` is Adam's, on every parameter (default 0).
* LightGCN: an epoch visits each observed (user, item) pair once (Recommenders
  draws users uniformly); layer-0 embeddings start from N(0, 0.1^2) (the authors'
  PyTorch code; Recommenders uses Xavier).
* NeuMF: ``layers`` are the hidden widths after the concatenation (Recommenders'
  ``layer_sizes[0]`` is the concatenation's width); the output layer has a bias;
  ``regularization`` is Adam's weight decay; no GMF/MLP pre-training; scores are
  logits (same ranking as the sigmoid).
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

from recapp.models import NeuMF
from recapp.models.lightgcn import LightGCNNet, bpr_loss, normalized_adjacency
from recapp.models.multvae import VAENet, annealed_beta, vae_loss
from recapp.models.neumf import NeuMFNet
from recapp.models.torch_base import sparse_tensor


def _weights(net: torch.nn.Module) -> dict:
    return {k: v.detach().numpy().astype(np.float64) for k, v in net.state_dict().items()}


# ---- LightGCN ----------------------------------------------------------------------------
# Ratings other than 1 (the graph is binary) and item 3 with no user (an isolated node).
X = sp.csr_matrix(np.array([[1, 0, 2, 0], [0, 1, 1, 0], [5, 0, 0, 0]], dtype=np.float32))


def _reference_adjacency(X: sp.csr_matrix) -> np.ndarray:
    """ImplicitCF.create_norm_adj_mat: D^-1/2 A D^-1/2 of [[0, R], [R', 0]], isolated nodes' rows 0."""
    R = (X.toarray() != 0).astype(np.float64)
    n_u, n_i = R.shape
    A = np.zeros((n_u + n_i, n_u + n_i))
    A[:n_u, n_u:], A[n_u:, :n_u] = R, R.T
    d = np.power(A.sum(1) + 1e-9, -0.5)
    return d[:, None] * A * d[None, :]


def test_lightgcn_adjacency_is_the_symmetric_normalisation():
    got = normalized_adjacency(X).toarray()
    np.testing.assert_allclose(got, _reference_adjacency(X), atol=1e-6)
    # user 0 (degree 2) - item 0 (degree 2): 1/sqrt(2*2)
    assert got[0, 3] == pytest.approx(0.5)


def test_lightgcn_propagation_is_the_mean_over_k_plus_one_layers():
    torch.manual_seed(0)
    net = LightGCNNet(3, 4, factors=5, layers=3)
    A = _reference_adjacency(X)
    E = _weights(net)["embedding.weight"]
    layers = [E]
    for _ in range(3):
        layers.append(A @ layers[-1])
    ref = np.mean(layers, axis=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch calls sparse CSR "beta"
        users, items = net.propagate(sparse_tensor(normalized_adjacency(X), "cpu"))
    np.testing.assert_allclose(users.detach().numpy(), ref[:3], atol=1e-6)
    np.testing.assert_allclose(items.detach().numpy(), ref[3:], atol=1e-6)


def test_lightgcn_bpr_loss_and_l2_on_layer0_rows_per_batch():
    g = torch.Generator().manual_seed(1)
    users, items = torch.randn(3, 4, generator=g), torch.randn(5, 4, generator=g)
    E0 = torch.randn(8, 4, generator=g)
    u, i, j = torch.tensor([0, 2, 2]), torch.tensor([1, 0, 4]), torch.tensor([3, 3, 2])
    loss, l2 = bpr_loss(users, items, E0, u, i, j)
    U, I, E = users.numpy().astype(np.float64), items.numpy().astype(np.float64), E0.numpy().astype(np.float64)
    diff = (U[u] * I[i]).sum(1) - (U[u] * I[j]).sum(1)
    ref_loss = np.mean(np.log1p(np.exp(-diff)))  # softplus(-(pos - neg))
    # tf.nn.l2_loss = sum(x^2) / 2 over the layer-0 rows, divided by the batch size; items sit after the 3 users.
    ref_l2 = (np.sum(E[u] ** 2) + np.sum(E[3 + i] ** 2) + np.sum(E[3 + j] ** 2)) / 2 / 3
    assert float(loss) == pytest.approx(ref_loss, rel=1e-5)
    assert float(l2) == pytest.approx(ref_l2, rel=1e-5)


# ---- MultVAE -----------------------------------------------------------------------------
XV = np.array([[1, 0, 2, 0, 0], [0, 3, 1, 0, 1]], dtype=np.float32)


def test_multvae_eval_forward_is_l2_normalised_tanh_encoder_decoder_on_the_mean():
    torch.manual_seed(0)
    net = VAENet(5, 6, 2, dropout=0.5).eval()
    W = _weights(net)
    xn = XV / np.linalg.norm(XV, axis=1, keepdims=True)
    h = np.tanh(xn @ W["enc.weight"].T + W["enc.bias"])
    stats = h @ W["enc_out.weight"].T + W["enc_out.bias"]
    mu, logvar = stats[:, :2], stats[:, 2:]
    ref = np.tanh(mu @ W["dec.weight"].T + W["dec.bias"]) @ W["dec_out.weight"].T + W["dec_out.bias"]
    logits, m, lv = net(torch.tensor(XV))
    np.testing.assert_allclose(logits.detach().numpy(), ref, atol=1e-5)
    np.testing.assert_allclose(m.detach().numpy(), mu, atol=1e-5)
    np.testing.assert_allclose(lv.detach().numpy(), logvar, atol=1e-5)


def test_multvae_dropout_acts_on_the_normalised_input():
    torch.manual_seed(0)
    net = VAENet(5, 6, 2, dropout=0.5).train()
    seen = []
    net.enc.register_forward_pre_hook(lambda mod, args: seen.append(args[0].detach().numpy().copy()))
    net(torch.tensor(XV))
    xn = XV / np.linalg.norm(XV, axis=1, keepdims=True)
    kept = seen[0] != 0
    np.testing.assert_allclose(seen[0][kept], xn[kept] / 0.5, rtol=1e-5)


def test_multvae_loss_is_multinomial_nll_plus_beta_kl():
    g = torch.Generator().manual_seed(2)
    logits, mu, logvar = torch.randn(2, 5, generator=g), torch.randn(2, 3, generator=g), torch.randn(2, 3, generator=g)
    got = float(vae_loss(logits, torch.tensor(XV), mu, logvar, 0.3))
    lo, m, lv = (t.numpy().astype(np.float64) for t in (logits, mu, logvar))
    log_softmax = lo - np.log(np.exp(lo).sum(1, keepdims=True))
    nll = -np.mean((log_softmax * XV).sum(1))
    kl = np.mean(0.5 * np.sum(-1 - lv + m ** 2 + np.exp(lv), axis=1))
    assert got == pytest.approx(nll + 0.3 * kl, rel=1e-5)


def test_multvae_beta_ramps_linearly_to_its_cap():
    assert [annealed_beta(s, 0.5, 10) for s in (0, 4, 10, 11, 1000)] == pytest.approx([0, 0.2, 0.5, 0.5, 0.5])
    assert annealed_beta(0, 0.7, 0) == 0.7


# ---- NeuMF -------------------------------------------------------------------------------
def test_neumf_logit_is_gmf_and_relu_mlp_concatenated_into_one_linear_output():
    torch.manual_seed(0)
    net = NeuMFNet(3, 4, gmf_factors=2, mlp_factors=3, layers=[4, 2]).eval()
    W = _weights(net)
    u, i = np.array([0, 1, 2, 0]), np.array([1, 2, 3, 0])
    gmf = W["user_gmf.weight"][u] * W["item_gmf.weight"][i]
    h = np.concatenate([W["user_mlp.weight"][u], W["item_mlp.weight"][i]], axis=1)
    for k in ("mlp.0", "mlp.2"):
        h = np.maximum(h @ W[f"{k}.weight"].T + W[f"{k}.bias"], 0)
    ref = np.concatenate([gmf, h], axis=1) @ W["out.weight"][0] + W["out.bias"]
    np.testing.assert_allclose(net(torch.tensor(u), torch.tensor(i)).detach().numpy(), ref, atol=1e-6)


@pytest.fixture(scope="module")
def neumf():
    df = pd.DataFrame({"user_id": [0, 0, 0, 0, 1, 1, 2, 2, 3], "item_id": [0, 1, 2, 3, 3, 4, 0, 4, 2],
                       "timestamp": np.arange(9) * 1000.0})
    return NeuMF(gmf_factors=4, mlp_factors=4, layers=(8, 4), n_epochs=1, device="cpu", verbose=False).fit(df)


def _fold_in_pairs(model, monkeypatch, history):
    """(items, labels) of the fold-in's loss, caught at the net's ``logits``."""
    seen = []
    original = model.net_.logits

    def spy(g, m, i, h=None, w=None):
        seen.append(i.detach().cpu().numpy().copy())
        return original(g, m, i, h, w)

    monkeypatch.setattr(model.net_, "logits", spy)
    model.fold_in_embeddings(history)
    monkeypatch.undo()
    return seen


def test_neumf_fold_in_negatives_are_outside_the_history(neumf, monkeypatch):
    history = np.array([0, 1, 2, 3])  # only item 4 is unseen
    seen = _fold_in_pairs(neumf, monkeypatch, history)
    assert len(seen) == neumf.fold_in_steps
    negatives = seen[0][len(history):]
    assert len(negatives) == len(history) * neumf.n_negatives
    assert set(negatives.tolist()) == {4}


def test_neumf_fold_in_of_the_whole_catalogue_keeps_the_start_embeddings(neumf, monkeypatch):
    # No unseen item is left to contrast with: the start point is returned, not a positives-only fit.
    seen = _fold_in_pairs(neumf, monkeypatch, np.array([0, 1, 2, 3, 4]))
    assert seen == []
    g, m = neumf.fold_in_embeddings(np.array([4, 3, 2, 1, 0]), uidx=1)
    np.testing.assert_allclose(g.cpu().numpy(), neumf.net_.user_gmf.weight[1:2].detach().cpu().numpy())
    np.testing.assert_allclose(m.cpu().numpy(), neumf.net_.user_mlp.weight[1:2].detach().cpu().numpy())
    assert np.isfinite(neumf.score_history(np.array([0, 1, 2, 3, 4]))).all()
