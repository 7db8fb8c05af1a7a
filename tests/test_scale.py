"""Large catalogues: EASE's Cholesky solve, the memory check before dense allocations, sparse EASE."""
import numpy as np
import pandas as pd
import pytest
import scipy.linalg
import scipy.sparse as sp

import recapp.models.ease as ease_module
from recapp.data.synthetic import synthetic_shop
from recapp.models import EASE, load
from recapp.models import memory
from recapp.models.live import LiveHistory
from recapp.models.memory import ModelTooLargeError, available_memory, check_dense, parse_bytes


def _frame(X: np.ndarray) -> pd.DataFrame:
    """A view event per non-zero cell of the binary matrix ``X`` (users x items)."""
    u, i = np.nonzero(X)
    return pd.DataFrame({"user_id": u, "item_id": i, "timestamp": np.arange(len(u), dtype=float), "event": "view"})


def _closed_form(model: EASE, l2: float) -> np.ndarray:
    """Steck's closed form with SciPy's LU inverse in float64: the solve EASE used before."""
    X = model.interactions_.binary().toarray().astype(np.float64)
    P = scipy.linalg.inv(X.T @ X + l2 * np.eye(X.shape[1]))
    B = -P / np.diag(P)
    np.fill_diagonal(B, 0.0)
    return B


@pytest.fixture(scope="module")
def random_log():
    rng = np.random.default_rng(0)
    return _frame(rng.random((400, 90)) < rng.uniform(0.02, 0.4, 90))


def test_cholesky_solve_matches_the_old_inverse(random_log):
    m = EASE(l2=20.0).fit(random_log)
    B = _closed_form(m, 20.0)
    assert m.B_.dtype == np.float32
    np.testing.assert_allclose(m.B_, B, rtol=0, atol=1e-6 * np.abs(B).max())
    assert np.all(np.diag(m.B_) == 0)


def test_float32_breakdown_falls_back_to_float64():
    # 15 shoppers, 120 items: X'X has rank 15, so with l2 = 1e-6 the float32 factorisation fails.
    rng = np.random.default_rng(1)
    X = (rng.random((15, 120)) < 0.3).astype(np.float32)
    G = X.T @ X + np.float32(1e-6) * np.eye(120, dtype=np.float32)
    assert ease_module._factor(G) is None
    m = EASE(l2=1e-6).fit(_frame(X))
    B = _closed_form(m, 1e-6)
    np.testing.assert_allclose(m.B_, B, rtol=0, atol=1e-5 * np.abs(B).max())


def test_too_large_catalogue_raises_before_allocating(random_log, monkeypatch):
    monkeypatch.setattr(memory, "available_memory", lambda: 3 << 20)  # 3 MiB

    def must_not_run(*args, **kwargs):
        raise AssertionError("EASE allocated its dense matrices before checking the memory")

    monkeypatch.setattr(ease_module, "dense_gram", must_not_run)
    monkeypatch.setattr(ease_module, "_factor", must_not_run)
    with pytest.raises(ModelTooLargeError) as info:
        EASE().fit(random_log)
    msg = str(info.value)
    assert isinstance(info.value, MemoryError)
    assert "EASE" in msg and "90 items" in msg and "90 x 90 float32" in msg
    assert "MiB in all" in msg and "3.0 MiB of memory is available" in msg
    for alternative in ("EASE(sparse=True)", "ItemKNN", "ALS"):
        assert alternative in msg
    # The sparse model does not allocate items x items and still fits.
    assert sp.issparse(EASE(sparse=True, neighbours=10).fit(random_log).B_)


def test_check_dense_counts_copies_and_dtype(monkeypatch):
    need = check_dense("M", (1000, 1000), np.float64, copies=3, available=10**9)
    assert need == 3 * 1000 * 1000 * 8
    with pytest.raises(ModelTooLargeError, match=r"3 arrays of 1,000 x 1,000 float64"):
        check_dense("M", (1000, 1000), np.float64, copies=3, available=need)  # only 90% may be planned
    # A platform that reports no figure is not a reason to refuse.
    monkeypatch.setattr(memory, "available_memory", lambda: None)
    assert check_dense("M", (10**6, 10**6)) == 4 * 10**12


def test_available_memory_sources(tmp_path, monkeypatch):
    info = tmp_path / "meminfo"
    info.write_text("MemTotal:       1000 kB\nMemFree:         10 kB\nMemAvailable:     600 kB\n")
    assert memory._meminfo_available(info) == 600 * 1024
    assert memory._meminfo_available(tmp_path / "missing") is None
    # A container's cgroup limit lowers what the host reports; reclaimable page cache counts as free.
    (tmp_path / "memory.max").write_text("1048576\n")
    (tmp_path / "memory.current").write_text("900000\n")
    (tmp_path / "memory.stat").write_text("anon 800000\ninactive_file 100000\n")
    monkeypatch.setattr(memory, "_CGROUP_V2", tmp_path)
    assert memory._cgroup_available() == 1048576 - 900000 + 100000
    assert available_memory() <= 1048576 - 900000 + 100000
    (tmp_path / "memory.max").write_text("max\n")
    monkeypatch.setattr(memory, "_CGROUP_V1", tmp_path / "no-v1")
    assert memory._cgroup_available() is None
    monkeypatch.setenv("RECAPP_MEMORY_LIMIT", "2MiB")
    assert available_memory() <= 2 << 20
    monkeypatch.setenv("RECAPP_MEMORY_LIMIT", "lots")
    with pytest.raises(ValueError, match="RECAPP_MEMORY_LIMIT"):
        available_memory()
    assert parse_bytes("8GiB") == 8 << 30 and parse_bytes("512M") == 512 << 20 and parse_bytes("100") == 100


def test_sparse_with_every_neighbour_is_exact(random_log):
    dense = EASE(l2=20.0).fit(random_log)
    full = EASE(l2=20.0, sparse=True, neighbours=10_000).fit(random_log)
    np.testing.assert_allclose(full.B_.toarray(), dense.B_, rtol=0, atol=1e-6 * np.abs(dense.B_).max())


def test_sparse_ease_keeps_neighbours_and_serves(random_log, tmp_path):
    m = EASE(l2=20.0, sparse=True, neighbours=8).fit(random_log)
    assert sp.issparse(m.B_) and np.diff(m.B_.tocsc().indptr).max() == 8 and m.B_.diagonal().max() == 0
    # Each column is the ridge regression on its own pattern: (G_NN + l2 I) b = G_Nj.
    X = m.interactions_.binary().toarray().astype(np.float64)
    G = X.T @ X
    col = m.B_.tocsc()[:, 5]
    N = col.indices
    b = np.linalg.solve(G[np.ix_(N, N)] + 20.0 * np.eye(len(N)), G[N, 5])
    np.testing.assert_allclose(col.data, b, rtol=1e-5, atol=1e-7)
    recs = m.recommend([0, 1, 2], k=5)
    assert len(recs) == 15
    again = load(m.save(tmp_path / "sparse-ease"))
    assert sp.issparse(again.B_) and (again.B_ != m.B_).nnz == 0
    scorer = m.live_scorer()
    items = np.array([3, 7, 11])
    history = LiveHistory.from_sequence(items, [0, 0, 0], [0.0, 1.0, 2.0], [1.0] * 3)
    np.testing.assert_allclose(scorer.scores(scorer.start(history), history), m.score_history(items), rtol=1e-5, atol=1e-6)


def test_fit_on_a_3000_item_catalogue():
    events = synthetic_shop(n_users=3000, n_items=3000, n_events=120_000, random_state=0).events
    m = EASE().fit(events)
    n = m.n_items_
    assert n > 2800 and m.B_.shape == (n, n) and np.isfinite(m.B_).all()
    # I - B = P diag(P)^-1 with P = (G + l2 I)^-1, so (G + l2 I)(I - B) is diagonal: check 25 columns.
    X = m.interactions_.binary().astype(np.float64)
    cols = np.random.default_rng(0).choice(n, 25, replace=False)
    I_minus_B = -m.B_[:, cols].astype(np.float64)
    I_minus_B[cols, np.arange(len(cols))] += 1.0
    M = X.T @ (X @ I_minus_B) + 500.0 * I_minus_B
    diagonal = M[cols, np.arange(len(cols))]
    M[cols, np.arange(len(cols))] = 0.0
    assert diagonal.min() > 500.0 and np.abs(M).max() < 1e-4 * diagonal.min()


def test_sparse_ease_within_one_percent_on_movielens():
    from recapp.evaluate import evaluate_model, movielens_protocol

    protocol = movielens_protocol()
    exact = evaluate_model(EASE(), protocol)["ndcg@10"]
    sparse = evaluate_model(EASE(sparse=True), protocol)["ndcg@10"]
    assert sparse >= 0.99 * exact, (sparse, exact)
