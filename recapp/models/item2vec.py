"""Item2Vec: skip-gram with negative sampling over shopper sessions (Barkan and Koenigstein, 2016).

Items are words and each shopper's sessions are sentences: a shopper's
time-ordered items, cut where the shopper was inactive for longer than
``session_gap`` seconds (``None``: the whole history is one sentence, the
setting for rating logs such as MovieLens, whose timestamps say when a rating
was entered rather than when the film was watched). Consecutive repeats of an
item (a view, click and purchase of the same product) count once.

The vectors are learned by gensim's ``Word2Vec`` (skip-gram, negative sampling;
a well-kept C implementation), one worker thread by default so that
``random_state`` makes training repeatable. Scoring is item-to-item: a
shopper's score for item j sums the cosine similarities of j's vector to the
vectors of the items in their history (by default every item's similarity to
every other, a dense matrix; with ``neighbours`` only each item's nearest
items with a positive similarity, as :class:`~recapp.models.knn.ItemKNN`). So
new shoppers are served from their events at once, and the engine serves the
model through the same :class:`~recapp.models.live.ItemItemScorer` as EASE and
ItemKNN (one row of the similarity matrix per event). A recency weighting is the
engine's ``recency=`` setting, which decays the history weights the scorer uses.

:func:`word2vec_vectors` (the gensim call and its parameter checks) is shared
with :class:`~recapp.models.content.TfidfContent`'s ``representation="word2vec"``.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from recapp.interactions import Interactions
from recapp.models.base import Recommender, check_param
from recapp.models.memory import check_dense

#: gensim's Cython routine reads at most this many words of one sentence; longer ones are cut into pieces.
MAX_SENTENCE = 10_000


def check_word2vec_params(*, vector_size, window, negative, epochs, min_count, sample, ns_exponent,
                          learning_rate, random_state, workers) -> None:
    """Raise ``ValueError`` naming the first skip-gram hyperparameter out of range."""
    check_param("vector_size", vector_size, low=1, integer=True)
    check_param("window", window, low=1, integer=True)
    check_param("negative", negative, low=1, integer=True)
    check_param("epochs", epochs, low=1, integer=True)
    check_param("min_count", min_count, low=1, integer=True)
    check_param("sample", sample, low=0, high=1)
    check_param("ns_exponent", ns_exponent, low=-1, high=1)
    check_param("learning_rate", learning_rate, low=0, low_inclusive=False)
    check_param("random_state", random_state, low=0, high=2**32 - 1, integer=True)
    check_param("workers", workers, low=1, integer=True)


class _Shuffled:
    """The sentences, each one's tokens in a fresh random order on every pass (gensim iterates once per epoch)."""

    def __init__(self, sentences: list[list[str]], random_state: int):
        self.sentences = sentences
        self.rng = np.random.default_rng(random_state)

    def __iter__(self):
        for s in self.sentences:
            yield [s[j] for j in self.rng.permutation(len(s))]


def word2vec_vectors(sentences: list[list[str]], *, vector_size: int, window: int, negative: int, epochs: int,
                     min_count: int, sample: float, ns_exponent: float, learning_rate: float, random_state: int,
                     workers: int = 1, shuffle: bool = False) -> tuple[dict[str, int], np.ndarray]:
    """Skip-gram with negative sampling (gensim ``Word2Vec``, ``sg=1``) over ``sentences`` of string tokens.

    Returns ``(key_to_index, vectors)``: each token kept (at least ``min_count``
    occurrences) and its row of the float32 input vectors. ``shuffle`` puts each
    sentence's tokens in a new random order on every epoch, so the window draws
    its context from the whole sentence (the sentence is a set, as in the
    Item2Vec paper) at the cost of a small window. With ``workers=1`` the result
    depends only on the sentences and ``random_state``.
    """
    from gensim.models import Word2Vec  # imported here: importing recapp.models stays quick

    pieces = [s[a:a + MAX_SENTENCE] for s in sentences for a in range(0, len(s), MAX_SENTENCE)]
    if not pieces:
        return {}, np.zeros((0, int(vector_size)), dtype=np.float32)
    counts: dict[str, int] = {}
    for s in pieces:
        for t in s:
            counts[t] = counts.get(t, 0) + 1
    if max(counts.values()) < min_count:
        return {}, np.zeros((0, int(vector_size)), dtype=np.float32)
    model = Word2Vec(vector_size=int(vector_size), window=int(window), negative=int(negative),
                     epochs=int(epochs), min_count=int(min_count), sample=float(sample),
                     ns_exponent=float(ns_exponent), alpha=float(learning_rate), min_alpha=float(learning_rate) * 1e-3,
                     sg=1, hs=0, seed=int(random_state), workers=int(workers))
    model.build_vocab(pieces)
    corpus = _Shuffled(pieces, int(random_state)) if shuffle else pieces
    model.train(corpus, total_examples=len(pieces), epochs=int(epochs))
    return dict(model.wv.key_to_index), np.ascontiguousarray(model.wv.vectors, dtype=np.float32)


def sessions(inter: Interactions, session_gap: float | None = None) -> list[list[str]]:
    """Every user's time-ordered items as sentences of item-index tokens, cut at gaps over ``session_gap`` seconds.

    Consecutive repeats of one item collapse to one token; sentences of one
    token (nothing to predict) are left out.
    """
    items, times, indptr = inter.seq_items, inter.seq_times, inter.seq_indptr
    if len(items) == 0:
        return []
    cut = np.zeros(len(items), dtype=bool)
    cut[indptr[:-1][indptr[:-1] < len(items)]] = True       # each user starts a sentence
    if session_gap is not None:
        cut[1:] |= np.diff(times) > session_gap
    repeat = np.zeros(len(items), dtype=bool)
    repeat[1:] = (items[1:] == items[:-1]) & ~cut[1:]
    keep = ~repeat
    tokens = items[keep].astype(str)
    starts = np.flatnonzero(cut[keep])
    bounds = np.append(starts, len(tokens))
    return [tokens[a:b].tolist() for a, b in zip(bounds[:-1], bounds[1:]) if b - a >= 2]


def neighbour_similarity(U: np.ndarray, neighbours: int | None, block: int = 1024) -> sp.csr_matrix | np.ndarray:
    """Cosine similarity of the rows of ``U`` (zero diagonal), pruned to each item's top ``neighbours``.

    Returns a sparse (n x n) float32 matrix S with S[i, j] the similarity of
    item i to target item j, keeping for each target j its ``neighbours`` most
    similar items with a positive similarity; ``neighbours=None`` gives the full
    dense matrix. Rows of zeros (items without a vector) have no neighbours.
    """
    norms = np.linalg.norm(U, axis=1)
    Un = (U / np.where(norms > 0, norms, 1.0)[:, None]).astype(np.float32)
    n = Un.shape[0]
    if neighbours is None:
        S = Un @ Un.T
        np.fill_diagonal(S, 0.0)
        return S
    k = min(int(neighbours), max(n - 1, 1))
    rows, cols, vals = [], [], []
    for start in range(0, n, block):
        stop = min(start + block, n)
        C = Un @ Un[start:stop].T                       # (n, block): column j holds target j's similarities
        C[np.arange(start, stop), np.arange(stop - start)] = 0.0
        idx = np.argpartition(-C, k - 1, axis=0)[:k] if k < n else np.tile(np.arange(n)[:, None], (1, stop - start))
        v = np.take_along_axis(C, idx, axis=0)
        keep = v > 0
        rows.append(idx[keep])
        cols.append(np.broadcast_to(np.arange(start, stop)[None, :], idx.shape)[keep])
        vals.append(v[keep])
    return sp.csr_matrix((np.concatenate(vals).astype(np.float32), (np.concatenate(rows), np.concatenate(cols))),
                         shape=(n, n))


class Item2Vec(Recommender):
    """Item vectors from skip-gram with negative sampling over sessions; item-item cosine scoring.

    ``vector_size``, ``window``, ``negative``, ``epochs``, ``min_count``,
    ``sample``, ``ns_exponent`` and ``learning_rate`` (gensim's ``alpha``) are
    the skip-gram settings; ``session_gap`` (seconds, ``None`` for whole
    histories) cuts histories into sentences; ``shuffle`` puts each sentence in
    a new random order every epoch, so it acts as a set (the Item2Vec paper's
    setting; keep ``False`` where the order within a session matters);
    ``neighbours`` keeps each item's most similar items (``None``: all, a dense
    items x items float32 matrix, checked against the available memory first);
    ``binary`` counts each history item once (else by its summed event weights).
    Items seen fewer than ``min_count`` times get no vector and score 0; ``fit``
    refuses a log where no item gets one (every shopper has one item, or
    ``min_count`` is above every item's count).

    Defaults were tuned on ML-100K with :func:`recapp.tune.grid_search` on
    validation splits carved from the benchmark's *training* split only
    (item-stratified 75/25, NDCG@10; ``python benchmarks/embeddings.py --tune``),
    in stages on validation seed 0, each from the previous winner:
    (1) window {20, 50, 100} x ns_exponent {-0.5, 0, 0.75} x learning_rate
    {0.025, 0.05} at vector_size 64, negative 5, epochs 10, sample 1e-3:
    window 50, ns_exponent 0, learning_rate 0.05 (0.226; window 100 at most
    0.223, window 20 at most 0.172; learning rate 0.025 lost 0.02-0.05 at
    windows 50 and 100); (2) vector_size {32, 64, 128} x
    epochs {10, 20} x session_gap {None, 1 hour}: 64, 20, None (0.236; a
    one-hour gap 0.232); (3) neighbours {50, 100, 200, 400, None} x shuffle
    {False, True}: the three best then on seeds 1 and 2, mean of three seeds:
    neighbours None with shuffle 0.247, without 0.245, 400 with shuffle 0.242
    (EASE on seed 0's split: 0.272). The dense sum needs well-trained vectors:
    with short training (epochs 10, window 20, seed 0) it falls to 0.015, while
    400 neighbours give 0.093 and 200 give 0.158; so with fewer epochs or a
    smaller window than the defaults, set ``neighbours=200``.
    """

    history_based = True
    released_on_refit = ("similarity_",)

    def __init__(self, vector_size: int = 64, window: int = 50, negative: int = 5, epochs: int = 20,
                 min_count: int = 1, sample: float = 1e-3, ns_exponent: float = 0.0, learning_rate: float = 0.05,
                 session_gap: float | None = None, shuffle: bool = True, neighbours: int | None = None,
                 binary: bool = True, random_state: int = 0, workers: int = 1):
        self.vector_size = vector_size
        self.window = window
        self.negative = negative
        self.epochs = epochs
        self.min_count = min_count
        self.sample = sample
        self.ns_exponent = ns_exponent
        self.learning_rate = learning_rate
        self.session_gap = session_gap
        self.shuffle = shuffle
        self.neighbours = neighbours
        self.binary = binary
        self.random_state = random_state
        self.workers = workers

    def _w2v_params(self) -> dict:
        return {name: getattr(self, name) for name in ("vector_size", "window", "negative", "epochs", "min_count", "sample",
                                                         "ns_exponent", "learning_rate", "random_state", "workers")}

    def _validate_params(self) -> None:
        check_word2vec_params(**self._w2v_params())
        if self.session_gap is not None:
            check_param("session_gap", self.session_gap, low=0, low_inclusive=False)
        if self.neighbours is not None:
            check_param("neighbours", self.neighbours, low=1, integer=True)
        check_param("shuffle", self.shuffle, choices=(True, False))
        check_param("binary", self.binary, choices=(True, False))

    # ---- fitting ---------------------------------------------------------------------
    def _fit(self, inter: Interactions) -> None:
        sentences = sessions(inter, self.session_gap)
        keys, W = word2vec_vectors(sentences, shuffle=bool(self.shuffle), **self._w2v_params())
        if not keys:
            # Every item would score 0 for every shopper: the ranking would be arbitrary.
            why = (f"no item occurs min_count={self.min_count} times in the {len(sentences):,} sessions" if sentences else
                   f"no shopper has two different items in a row (session_gap={self.session_gap}) in the {len(inter):,} events")
            raise ValueError(f"Item2Vec has nothing to learn item vectors from: {why}")
        V = np.zeros((inter.n_items, int(self.vector_size)), dtype=np.float32)
        V[np.fromiter((int(t) for t in keys), dtype=np.int64, count=len(keys))] = W
        self.vectors_ = V
        self.__dict__.pop("similarity_", None)  # a refit releases the previous matrix first
        if self.neighbours is None:
            n = inter.n_items
            check_dense("Item2Vec", (n, n), np.float32, copies=1, what="dense item x item cosine similarity (neighbours=None)",
                        alternatives=("Item2Vec(neighbours=400) (each item's 400 nearest items in a sparse matrix; "
                                      "on ML-100K validation NDCG@10 0.242 against 0.247 dense)",))
        self.similarity_ = neighbour_similarity(V, self.neighbours)

    # ---- scoring ---------------------------------------------------------------------
    def _input(self, rows: sp.csr_matrix) -> sp.csr_matrix:
        X = rows[:, : self.vectors_.shape[0]].astype(np.float32).tocsr(copy=True)
        if self.binary:
            X.data[:] = 1.0
        return X

    def _scores(self, user_rows: sp.csr_matrix, uidx: np.ndarray) -> np.ndarray:
        S = self._input(user_rows) @ self.similarity_
        return S.toarray() if sp.issparse(S) else np.asarray(S)

    def similar_items(self, item, k: int = 10):
        """The ``k`` items most cosine-similar to ``item`` (an external id) by the learned vectors, best first."""
        import pandas as pd

        from recapp.schema import ITEM_COL, SCORE_COL

        self._check_fitted()
        check_param("k", k, low=1, integer=True)
        i = int(self.interactions_.item_index([item])[0])
        if i < 0 or i >= self.vectors_.shape[0]:
            raise KeyError(f"unknown item id {item!r}")
        V = self.vectors_
        norms = np.linalg.norm(V, axis=1)
        sims = (V @ V[i]) / np.maximum(norms * norms[i], 1e-12)
        sims[i] = -np.inf
        top = np.argsort(-sims, kind="stable")[:k]
        return pd.DataFrame({ITEM_COL: self.interactions_.item_ids[top], SCORE_COL: sims[top]})

    def live_scorer(self):
        """A row of the similarity matrix per event (:class:`~recapp.models.live.ItemItemScorer`), as ItemKNN."""
        from recapp.models.live import ItemItemScorer

        self._check_fitted()
        return ItemItemScorer(self, self.similarity_, binary=self.binary)

    # ---- persistence ---------------------------------------------------------------------
    def _state(self) -> dict:
        out = {"vectors": np.asarray(self.vectors_, dtype=np.float32)}
        S = self.similarity_
        if sp.issparse(S):
            out.update({"S_data": S.data, "S_indices": S.indices, "S_indptr": S.indptr, "S_shape": np.array(S.shape)})
        else:
            out["S"] = S
        return out

    def _set_state(self, a: dict) -> None:
        self.vectors_ = a["vectors"]
        if "S" in a:
            self.similarity_ = a["S"]
        else:
            self.similarity_ = sp.csr_matrix((a["S_data"], a["S_indices"], a["S_indptr"]), shape=tuple(a["S_shape"]))


__all__ = ["Item2Vec", "sessions", "word2vec_vectors", "neighbour_similarity", "check_word2vec_params"]
