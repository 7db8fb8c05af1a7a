"""EASE: embarrassingly shallow autoencoder (Steck, WWW 2019), exact or restricted to each item's neighbours.

The exact model needs P = (X'X + l2 I)^-1, a dense item x item inverse. It is
computed by a Cholesky factorisation and ``cholesky_inverse`` in torch (its
own LAPACK, MKL in the CPU wheels) in float32. SciPy's bundled OpenBLAS has
crashed the process inverting 16,000 x 16,000 matrices (issue 11); the float32
Cholesky path factorised and inverted such a matrix (16,000 items of a 5 M-event
shop) in 35 s with two copies of it in memory, float64 in 96 s with twice the
memory, and the two gave identical top-10 lists for 2,000 shoppers (largest
difference in B 1.5e-7) and identical NDCG@10 on ML-100K. Before allocating,
the memory it needs is checked against what is available
(:func:`recapp.models.memory.check_dense`), so a catalogue too large for the
machine raises :class:`~recapp.models.memory.ModelTooLargeError` instead of
taking the kernel down.

``EASE(sparse=True)`` solves the same objective with each item's column of B
restricted to its ``neighbours`` most cosine-similar items (the sparsity
pattern of fsSLIM, Ning and Karypis 2011, and of Steck's sparse MRF
approximation, NeurIPS 2019). The objective splits by columns, so each column
is one small ridge regression (G_NN + l2 I) b = G_Nj; memory grows with the
sparse Gram matrix and items x neighbours, not items^2.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from recapp.interactions import Interactions
from recapp.models.base import Recommender, check_param
from recapp.models.memory import check_dense
from recapp.models.torch_base import torch_threads

#: What the memory error suggests instead of the exact model.
ALTERNATIVES = (
    "EASE(sparse=True) (each item's weights restricted to its nearest items; memory grows with items x neighbours)",
    "ItemKNN (a sparse neighbour matrix)",
    "ALS (factors grow linearly with the catalogue)",
    "fewer items (drop items with few events before fitting)",
)

#: Bytes of the temporaries used while a dense Gram matrix is assembled block by block.
_BLOCK_BYTES = 1 << 27
#: Most items whose Gram block a batch of neighbourhood solves shares (a float32 block of 64 MiB).
_MAX_UNION = 4096


class EASE(Recommender):
    """Closed-form item-item model: B = I - P / diag(P) with P = (X'X + l2 I)^-1, diag(B) = 0.

    Trained on the binary user x item matrix (``binary=True``, the paper's
    setting) or on the event weights (a summed weight that is not finite is then
    refused by fit and update, ValueError naming the pair). A user's scores are their history row times
    B, so users with new events are served at once with no refit.

    ``sparse=False`` (default) is the exact model: two dense items x items
    float32 arrays during fit and one (``B_``) after; the memory is checked first
    and :class:`~recapp.models.memory.ModelTooLargeError` names the alternatives
    when it does not fit. ``sparse=True`` keeps for each item only its
    ``neighbours`` most cosine-similar items and solves the EASE objective on that
    pattern exactly (``B_`` is then a sparse matrix; ``neighbours`` is used only
    then). With 200 neighbours its NDCG@10 on the ML-100K benchmark split is 0.66%
    below the exact model's (0.4% to 1.0% on three other split seeds), and on a
    5 M-event shop of 20,000 items it matched it (0.0452 against 0.0450) in 61%
    of the fit time and 65% of the memory.

    Default ``l2=500``: the best of {100, 200, 500, 1000, 2000} by mean
    validation NDCG@10 over three validation splits of the ML-100K training
    split (``benchmarks/tune_baselines.py``).
    """

    history_based = True
    released_on_refit = ("B_",)

    def __init__(self, l2: float = 500.0, binary: bool = True, sparse: bool = False, neighbours: int = 200):
        self.l2 = l2
        self.binary = binary
        self.sparse = sparse
        self.neighbours = neighbours

    def _validate_params(self) -> None:
        check_param("l2", self.l2, low=0, low_inclusive=False)
        check_param("binary", self.binary, choices=(True, False))
        check_param("sparse", self.sparse, choices=(True, False))
        check_param("neighbours", self.neighbours, low=1, integer=True)

    def _input(self, rows: sp.csr_matrix) -> sp.csr_matrix:
        if not self.binary:
            return rows
        b = rows.copy()
        b.data[:] = 1.0
        return b

    def _weight_rule(self):
        return None if self.binary else {}

    def _fit(self, inter: Interactions) -> None:
        X = self._input(inter.matrix)
        # A refit releases the previous B first: base.fit has already moved on to the new data.
        self.__dict__.pop("B_", None)
        if self.sparse:
            self.B_ = neighbourhood_weights(X, float(self.l2), int(self.neighbours))
        else:
            self.B_ = dense_weights(X, float(self.l2))

    def _scores(self, user_rows: sp.csr_matrix, uidx: np.ndarray) -> np.ndarray:
        X = self._input(user_rows)[:, : self.B_.shape[0]]
        S = X @ self.B_
        return S.toarray() if sp.issparse(S) else np.asarray(S)

    def live_scorer(self):
        """A row of B per event (:class:`~recapp.models.live.ItemItemScorer`, dense or sparse)."""
        from recapp.models.live import ItemItemScorer

        self._check_fitted()
        return ItemItemScorer(self, self.B_, binary=self.binary)

    def _state(self) -> dict:
        B = self.B_
        if sp.issparse(B):
            return {"B_data": B.data, "B_indices": B.indices, "B_indptr": B.indptr, "B_shape": np.array(B.shape)}
        return {"B": B}

    def _set_state(self, arrays: dict) -> None:
        if "B" in arrays:
            self.B_ = arrays["B"]
        else:
            self.B_ = sp.csr_matrix((arrays["B_data"], arrays["B_indices"], arrays["B_indptr"]),
                                    shape=tuple(arrays["B_shape"]))


# ---- exact EASE ----------------------------------------------------------------------
def dense_gram(X: sp.spmatrix, dtype=np.float32) -> np.ndarray:
    """Dense X'X (items x items) assembled in column blocks, so the full sparse Gram matrix is never held.

    Each block's product is computed in float64 and stored in ``dtype``.
    """
    X = sp.csc_matrix(X, dtype=np.float64)
    n = X.shape[1]
    G = np.empty((n, n), dtype=dtype)
    XT = X.T.tocsr()
    # A block's sparse product (<= 12 bytes per cell) and its dense float64 copy stay within _BLOCK_BYTES.
    block = max(1, _BLOCK_BYTES // (20 * max(n, 1)))
    for start in range(0, n, block):
        stop = min(start + block, n)
        G[:, start:stop] = (XT @ X[:, start:stop]).toarray()
    return G


def _factor(G: np.ndarray):
    """Lower Cholesky factor (a torch tensor) of the symmetric positive definite ``G``, or None if it breaks down."""
    L, info = torch.linalg.cholesky_ex(torch.from_numpy(G))
    return None if int(info) != 0 else L


def _inverse(L: torch.Tensor) -> np.ndarray:
    """(L L')^-1 from the Cholesky factor ``L``, as a row-major numpy array (one more array of L's size)."""
    # LAPACK's potri gained nothing from a second thread in any measurement here and lost 2-4x on a shared
    # 2-core machine (19,696 items: 59 s with 1 thread against 106 s with 2; under heavy load 90 s against 358 s).
    with torch_threads(1):
        P = torch.cholesky_inverse(L).numpy()
    # torch returns P column-major; P is symmetric, so its transpose is the same matrix in row-major order,
    # which sparse @ dense products and the live scorer read without a copy of items x items.
    return P if P.flags.c_contiguous else P.T


def dense_weights(X: sp.spmatrix, l2: float) -> np.ndarray:
    """The exact EASE matrix B (float32, items x items) of the user x item matrix ``X``.

    Checks the memory first (two float32 items x items arrays plus the Gram
    assembly's temporaries and its two float64 copies of ``X``) and raises
    :class:`~recapp.models.memory.ModelTooLargeError` before allocating anything
    when it does not fit. At most two items x items arrays are alive at once: the
    Gram matrix and its factor, then the factor and the inverse, which becomes B
    in place. float32 is used unless its Cholesky factorisation breaks down (a
    tiny ``l2`` for the data); then the factorisation is repeated in float64
    after a second memory check.
    """
    n = X.shape[1]
    what = f"dense item x item solve of {n:,} items (Gram matrix and its Cholesky factor)"
    work = _BLOCK_BYTES + 24 * X.nnz
    check_dense("EASE", (n, n), np.float32, copies=2, what=what, extra_bytes=work, alternatives=ALTERNATIVES)
    G = dense_gram(X, np.float32)
    G[np.diag_indices_from(G)] += np.float32(l2)
    L = _factor(G)
    if L is None:
        check_dense("EASE", (n, n), np.float64, copies=2, what=what + " in float64, as float32 broke down",
                    extra_bytes=G.nbytes, alternatives=ALTERNATIVES)
        G = G.astype(np.float64)
        L = _factor(G)
        if L is None:
            raise ValueError(f"EASE: X'X + l2 I is not positive definite in float64 with l2={l2!r}; "
                             "check the event weights for non-finite values or use a larger l2")
    del G
    P = _inverse(L)
    del L
    P = P.astype(np.float32, copy=False)
    # B = I - P diag(1/diag(P)), in place: column j divided by -P_jj, then a zero diagonal.
    P /= -np.diag(P).copy()
    P[np.diag_indices_from(P)] = 0.0
    return P


# ---- EASE restricted to each item's neighbours --------------------------------------------
def neighbour_pattern(G: sp.csr_matrix, k: int) -> np.ndarray:
    """(n_items x k) indices of each item's ``k`` most cosine-similar other items under the Gram matrix ``G``.

    Computed in row blocks of the symmetric ``G``. Items that never co-occur
    (similarity 0) fill the pattern when an item has fewer than ``k`` co-occurring
    ones, so with ``k = n_items - 1`` every other item is a neighbour.
    """
    n = G.shape[0]
    norms = np.sqrt(np.maximum(G.diagonal(), 0.0))
    norms[norms == 0] = 1.0
    out = np.empty((n, k), dtype=np.int64)
    block = max(1, (_BLOCK_BYTES // 2) // (4 * max(n, 1)))
    for start in range(0, n, block):
        stop = min(start + block, n)
        C = G[start:stop].toarray()
        C /= norms[start:stop, None]
        C /= norms[None, :]
        C[np.arange(stop - start), np.arange(start, stop)] = -np.inf
        # k <= n - 1, so the diagonal (-inf) is never among the k largest.
        out[start:stop] = np.sort(np.argpartition(-C, k - 1, axis=1)[:, :k], axis=1)
    return out


def _batches(N: np.ndarray, max_union: int, max_batch: int):
    """Groups of target items whose neighbourhoods (and themselves) together span at most ``max_union`` items."""
    n = N.shape[0]
    order = np.lexsort((np.arange(n), N[:, 0]))  # items sharing their first neighbour sit together
    seen = np.zeros(n, dtype=bool)
    batch, union, size = [], [], 0
    for j in order.tolist():
        cand = np.append(N[j], j)
        new = cand[~seen[cand]]
        if batch and (len(batch) >= max_batch or size + len(new) > max_union):
            yield np.asarray(batch), np.concatenate(union)
            seen[np.concatenate(union)] = False
            batch, union, size = [], [], 0
            new = cand
        seen[new] = True
        batch.append(j)
        union.append(new)
        size += len(new)
    if batch:
        yield np.asarray(batch), np.concatenate(union)


def neighbourhood_weights(X: sp.spmatrix, l2: float, neighbours: int) -> sp.csr_matrix:
    """EASE with column j of B restricted to item j's ``neighbours`` nearest items (sparse, float32).

    Column j solves min ||X_j - X_N b||^2 + l2 ||b||^2 over its neighbours N, the
    exact EASE objective on that sparsity pattern: (G_NN + l2 I) b = G_Nj with
    G = X'X. Items are solved in batches whose neighbourhoods share a small dense
    block of G, by batched Cholesky in float64. With ``neighbours >= n_items - 1``
    it equals the exact model.
    """
    X = sp.csr_matrix(X, dtype=np.float32)
    n = X.shape[1]
    k = min(int(neighbours), n - 1)
    if k < 1:
        return sp.csr_matrix((n, n), dtype=np.float32)
    G = (X.T @ X).tocsr()
    G.sort_indices()
    N = neighbour_pattern(G, k)
    max_union = max(_MAX_UNION, 4 * k)
    max_batch = max(1, _BLOCK_BYTES // (8 * k * k))
    diag = np.arange(k)
    pos = np.full(n, -1, dtype=np.int64)
    values = np.empty((n, k), dtype=np.float32)
    # One thread: a batch is many small factorisations, and on a busy machine a second thread made
    # them ten times slower (0.6 ms against 8 ms per 200 x 200 Cholesky on 2 shared cores).
    with torch_threads(1):
        for items, union in _batches(N, max_union, max_batch):
            union = np.sort(union)
            pos[union] = np.arange(len(union))
            D = G[union][:, union].toarray()
            nb = pos[N[items]]
            # A[b] = D[nb[b]][:, nb[b]] + l2 I, gathered through flat indices (twice as fast as 2-d fancy indexing).
            A = np.take(D, nb[:, :, None] * len(union) + nb[:, None, :]).astype(np.float64)
            A[:, diag, diag] += l2
            rhs = D[nb, pos[items][:, None]].astype(np.float64)[:, :, None]
            L = torch.linalg.cholesky(torch.from_numpy(A))
            values[items] = torch.cholesky_solve(torch.from_numpy(rhs), L)[:, :, 0].numpy()
            pos[union] = -1
    B = sp.csc_matrix((values.ravel(), N.ravel(), np.arange(0, n * k + 1, k)), shape=(n, n))
    return B.tocsr()
