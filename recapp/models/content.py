"""TfidfContent: content-based recommendations from item text (title, genres or category, description).

Items are represented by TF-IDF vectors (``representation="tfidf"``) or by the
mean of word vectors trained with skip-gram on the catalogue's own documents
(``representation="word2vec"``, gensim through :func:`recapp.models.item2vec.word2vec_vectors`).
"""
from __future__ import annotations

import re
import warnings

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.preprocessing import normalize

from recapp.interactions import Interactions, as_interactions
from recapp.models.base import Recommender, check_param
from recapp.models.item2vec import check_word2vec_params, word2vec_vectors
from recapp.schema import ITEM_COL, SchemaError
from recapp.schema.cells import _blank, id_problems
from recapp.schema.errors import _quote_rows

#: Free-text columns used when present (tokenised into words).
TEXT_COLUMNS = ("title", "name", "description")
#: Categorical columns used when present: each value (or each "|"-separated value) is one token.
CATEGORY_COLUMNS = ("genres", "category", "categories", "brand", "year")
_TOKEN = r"(?u)\b\w+\b"
REPRESENTATIONS = ("tfidf", "word2vec")


def _category_tokens(col: str, values: pd.Series) -> pd.Series:
    """'Sci-Fi|Drama' in column genres -> 'genres_sci_fi genres_drama': whole values stay one token."""
    def one(v) -> str:
        if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA:
            return ""
        parts = [re.sub(r"\W+", "_", p.strip().lower()).strip("_") for p in re.split(r"[|,;/]", str(v))]
        return " ".join(f"{col}_{p}" for p in parts if p)
    return values.map(one).astype(str)


def check_catalog(items, name: str = "items") -> None:
    """Raise unless ``items`` is a DataFrame with an ``item_id`` column whose every cell is an id.

    A missing (None, NaN, blank) or unusable id would join the item id space as an item of its own.
    """
    if not isinstance(items, pd.DataFrame) or ITEM_COL not in items.columns:
        found = f"; columns found: {list(items.columns)}" if isinstance(items, pd.DataFrame) else f", got {type(items).__name__}"
        raise ValueError(f"{name} must be a DataFrame with an {ITEM_COL!r} column{found}")
    ids = items[ITEM_COL]
    bad = _blank(ids) | (id_problems(ids) != None)  # noqa: E711 (elementwise)
    if bad.any():
        raise SchemaError(f"{name} column {ITEM_COL!r} has {int(bad.sum()):,} missing or unusable id(s): "
                          f"{_quote_rows(items, bad, ITEM_COL)}")


class TfidfContent(Recommender):
    """Scores items by the TF-IDF similarity of their text to the items in the user's history.

    ``fit(train, items=items_df)`` takes item metadata with an ``item_id``
    column (a missing id is refused; when an id repeats, its last row is used,
    with a warning; items of ``train`` missing from it get no text and score 0,
    with a warning). Free text (``text_columns``, default ``None``: any of title, name,
    description; ``()`` for none) is split into words; categorical columns
    (``category_columns``, default: any of genres, category, categories, brand)
    give one token per value, weighted by ``category_weight`` against the words.
    Each item is an L2-normalised TF-IDF vector; a user's profile is the
    event-weighted mean of their items' vectors (``weighting="event"``) or the
    plain mean (``"binary"``), and an item's score is its dot product with it.

    Items in ``items`` with no interactions join the id space at fit, so they
    get scores and can be recommended (cold start); :meth:`add_items` adds
    items that arrive later. Any user with events is served from their history,
    new ones included.

    Defaults were tuned for MovieLens-100K (title, genres, year) with
    :func:`recapp.tune.grid_search` on a validation split carved from the
    training data only (item-stratified 75/25, seed 0), NDCG@10: grid
    category_columns {(genres), (genres, year)} x category_weight {0.5, 1, 2} x
    weighting {event, binary}. Selected: genres and year as categories (hence
    ``year`` among the default category columns), category_weight=1,
    weighting="event" (validation NDCG@10 0.045, against about 0.02 for a random ranking).

    ``representation="word2vec"`` replaces the TF-IDF vectors by word vectors
    learned on the catalogue itself: each item's document (its words, then its
    category tokens) is a sentence for skip-gram with negative sampling
    (``vector_size``, ``window``, ``epochs``, ``random_state``; words seen fewer
    than ``min_df`` times are dropped), and an item's vector is the mean of its
    words' vectors, category tokens weighted by ``category_weight``, minus the
    catalogue's mean item vector (the component every item shares), L2-normalised.
    Similar words then match where TF-IDF needs the same word. Its defaults were
    tuned by ``python benchmarks/embeddings.py --tune`` on a validation split of
    the ML-100K training split (item-stratified 75/25, seed 0) by NDCG@10 of
    ranking the cold items (fewer than 5 events in the inner training part):
    grid vector_size {32, 64, 128} x window {5, 10} x epochs {20, 50, 100},
    other settings as tuned for TF-IDF. Selected: 32, 10, 100 (0.030, against
    TF-IDF 0.022 and a random order 0.018; 20 epochs 0.010-0.020); centring the
    item vectors doubled it (0.028 against 0.015 uncentred, at 64, 10, 50).
    """

    history_based = True

    def __init__(self, text_columns: tuple | None = None, category_columns: tuple | None = None,
                 category_weight: float = 1.0, weighting: str = "event", min_df: int = 1,
                 max_features: int | None = 50_000, sublinear_tf: bool = True, representation: str = "tfidf",
                 vector_size: int = 32, window: int = 10, epochs: int = 100, random_state: int = 0):
        self.text_columns = text_columns
        self.category_columns = category_columns
        self.category_weight = category_weight
        self.weighting = weighting
        self.min_df = min_df
        self.max_features = max_features
        self.sublinear_tf = sublinear_tf
        self.representation = representation
        self.vector_size = vector_size
        self.window = window
        self.epochs = epochs
        self.random_state = random_state

    def _validate_params(self) -> None:
        for name in ("text_columns", "category_columns"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, (list, tuple)) or not all(isinstance(c, str) for c in v)):
                raise ValueError(f"{name}={v!r} must be None or a list of column names")
        check_param("category_weight", self.category_weight, low=0)
        check_param("weighting", self.weighting, choices=("event", "binary"))
        check_param("min_df", self.min_df, low=1, integer=True)
        if self.max_features is not None:
            check_param("max_features", self.max_features, low=1, integer=True)
        check_param("sublinear_tf", self.sublinear_tf, choices=(True, False))
        check_param("representation", self.representation, choices=REPRESENTATIONS)
        if self.representation == "word2vec":
            check_word2vec_params(**self._w2v_params())

    def _w2v_params(self) -> dict:
        return dict(vector_size=self.vector_size, window=self.window, negative=5, epochs=self.epochs,
                    min_count=self.min_df, sample=1e-3, ns_exponent=0.75, learning_rate=0.025,
                    random_state=self.random_state, workers=1)

    # ---- fitting ------------------------------------------------------------------
    def fit(self, data, items: pd.DataFrame | None = None) -> "TfidfContent":
        """Learn item vectors from ``items`` (item metadata) and keep ``data``'s histories; returns ``self``."""
        self._validate_params()
        if items is None:
            raise ValueError(
                "TfidfContent needs item text: call fit(train, items=items_df) with an "
                f"{ITEM_COL!r} column and text columns such as {list(TEXT_COLUMNS + CATEGORY_COLUMNS)}"
            )
        self._columns(items)
        inter = as_interactions(data).with_catalog(items[ITEM_COL].to_numpy())
        return super().fit(inter, items=items)

    def fit_with_items(self, data, items: pd.DataFrame | None = None) -> "TfidfContent":
        """``fit(data, items=items)``: this model learns from the catalogue's text."""
        return self.fit(data, items=items)

    def _columns(self, items: pd.DataFrame) -> tuple[list[str], list[str]]:
        check_catalog(items)
        # An empty tuple means "no such columns", not the defaults.
        text = [c for c in (TEXT_COLUMNS if self.text_columns is None else self.text_columns) if c in items.columns]
        cats = [c for c in (CATEGORY_COLUMNS if self.category_columns is None else self.category_columns) if c in items.columns]
        missing = [c for c in list(self.text_columns or []) + list(self.category_columns or []) if c not in items.columns]
        if missing:
            raise ValueError(f"items has no column(s) {missing}; columns found: {list(items.columns)}")
        if not text and not cats:
            raise ValueError(f"items has none of the text columns {list(TEXT_COLUMNS + CATEGORY_COLUMNS)}; "
                             f"columns found: {list(items.columns)}. Name them with text_columns=/category_columns=")
        return text, cats

    def _documents(self, items: pd.DataFrame, item_ids: pd.Index) -> tuple[pd.Series, pd.Series]:
        text_cols, cat_cols = self._columns(items)
        repeated = items[ITEM_COL].duplicated(keep="last").to_numpy()
        if repeated.any():
            warnings.warn(f"items has {int(repeated.sum()):,} row(s) whose {ITEM_COL} occurs again further down "
                          f"(first: {items[ITEM_COL][repeated].iloc[0]!r}); only the last row of each id is used", stacklevel=3)
        absent = ~item_ids.isin(items[ITEM_COL])
        if absent.any():
            warnings.warn(f"{int(absent.sum()):,} of {len(item_ids):,} item(s) in the events are not in items "
                          f"(first: {list(item_ids[absent][:5])}): they have no text and score 0", stacklevel=3)
        meta = items.drop_duplicates(ITEM_COL, keep="last").set_index(ITEM_COL).reindex(item_ids)
        words = pd.Series("", index=meta.index, dtype=object)
        for c in text_cols:
            words = words + " " + meta[c].fillna("").astype(str)
        cats = pd.Series("", index=meta.index, dtype=object)
        for c in cat_cols:
            cats = cats + " " + _category_tokens(c, meta[c])
        return words, cats

    def _vectorizer(self, vocabulary=None) -> TfidfVectorizer:
        return TfidfVectorizer(token_pattern=_TOKEN, sublinear_tf=self.sublinear_tf, min_df=self.min_df,
                               max_features=self.max_features, vocabulary=vocabulary)

    def _fit(self, inter: Interactions, items: pd.DataFrame | None = None) -> None:
        words, cats = self._documents(items, inter.item_ids)
        if self.representation == "word2vec":
            self._fit_word2vec(words, cats)
            return
        self.vocabularies_, self.idfs_ = [], []
        blocks, pruned = [], []
        for docs, weight in ((words, 1.0), (cats, float(self.category_weight))):
            if not docs.str.strip().astype(bool).any():
                self.vocabularies_.append([])
                self.idfs_.append(np.zeros(0))
                continue
            vec = self._vectorizer()
            try:
                M = vec.fit_transform(docs.to_numpy())
            except ValueError as e:  # no token in any document, or none left after min_df
                pruned.append(str(e))
                self.vocabularies_.append([])
                self.idfs_.append(np.zeros(0))
                continue
            vocab = vec.get_feature_names_out().tolist()
            self.vocabularies_.append(vocab)
            self.idfs_.append(vec.idf_.astype(np.float64))
            blocks.append(M * weight)
        if not blocks:
            if pruned:
                raise ValueError(f"items has no token in at least min_df={self.min_df} item(s) "
                                 f"({len(words):,} items): lower min_df ({pruned[0]})")
            raise ValueError("items has no usable text: every document is empty")
        self.item_vectors_ = normalize(sp.hstack(blocks, format="csr").astype(np.float32))
        if not self.item_vectors_.count_nonzero():
            # Every item would score 0 for every shopper: the ranking would be arbitrary.
            raise ValueError(f"every item vector is zero: the only tokens are category tokens and category_weight={self.category_weight}")

    # ---- word vectors -------------------------------------------------------------------
    @staticmethod
    def _sentences(words: pd.Series, cats: pd.Series) -> tuple[list[list[str]], list[int]]:
        """Each item's tokens (lower-cased words, then category tokens) and how many of them are words."""
        pattern = re.compile(_TOKEN)
        w = [pattern.findall(d.lower()) for d in words.to_numpy()]
        c = [d.split() for d in cats.to_numpy()]
        return [a + b for a, b in zip(w, c)], [len(a) for a in w]

    def _mean_vectors(self, words: pd.Series, cats: pd.Series) -> np.ndarray:
        """Each document's weighted mean word vector (words 1, category tokens ``category_weight``), uncentred."""
        sentences, n_words = self._sentences(words, cats)
        index = {t: k for k, t in enumerate(self.vocabularies_[0])}
        cw = float(self.category_weight)
        rows, cols, vals = [], [], []
        for r, (toks, nw) in enumerate(zip(sentences, n_words)):
            for j, t in enumerate(toks):
                c = index.get(t)
                if c is not None:
                    rows.append(r)
                    cols.append(c)
                    vals.append(1.0 if j < nw else cw)
        C = sp.csr_matrix((vals, (rows, cols)), shape=(len(sentences), len(index)), dtype=np.float64)
        sums = np.asarray(C.sum(axis=1)).ravel()
        C = sp.diags(np.where(sums > 0, 1.0 / np.maximum(sums, 1e-12), 0.0)) @ C
        return np.asarray(C @ self.word_vectors_.astype(np.float64))

    def _fit_word2vec(self, words: pd.Series, cats: pd.Series) -> None:
        sentences, _ = self._sentences(words, cats)
        keys, W = word2vec_vectors(sentences, **self._w2v_params())
        if not keys:
            raise ValueError(f"items has no word seen at least min_df={self.min_df} times: nothing to learn word vectors from")
        self.vocabularies_ = [list(keys), []]
        self.idfs_ = []
        self.word_vectors_ = W
        M = self._mean_vectors(words, cats)
        has = np.abs(M).sum(axis=1) > 0
        self.mean_vector_ = M[has].mean(axis=0) if has.any() else np.zeros(W.shape[1])
        self.item_vectors_ = self._finish(M)

    def _finish(self, M: np.ndarray) -> np.ndarray:
        """Centred (items with no known word stay zero) and L2-normalised float32 item vectors."""
        has = np.abs(M).sum(axis=1) > 0
        M = np.where(has[:, None], M - self.mean_vector_, 0.0)
        return normalize(M).astype(np.float32)

    def _transform(self, words: pd.Series, cats: pd.Series) -> sp.csr_matrix | np.ndarray:
        if self.representation == "word2vec":
            return self._finish(self._mean_vectors(words, cats))
        blocks = []
        for docs, vocab, idf, weight in zip((words, cats), self.vocabularies_, self.idfs_, (1.0, float(self.category_weight))):
            if not vocab:
                continue
            vec = self._vectorizer(vocabulary={t: k for k, t in enumerate(vocab)})
            vec.fit([" ".join(vocab)])  # builds the analyser; idf is set below
            vec.idf_ = idf
            blocks.append(vec.transform(docs.to_numpy()) * weight)
        return normalize(sp.hstack(blocks, format="csr").astype(np.float32))

    def add_items(self, items: pd.DataFrame) -> "TfidfContent":
        """Add (or re-describe) catalog items after fit with the fitted vocabulary; they can be recommended at once.

        ``items`` is refused as in ``fit`` (no ``item_id`` column, a missing id).
        """
        self._check_fitted()
        check_catalog(items)
        inter = self.interactions_.with_catalog(items[ITEM_COL].to_numpy())
        self.interactions_ = inter
        self.item_popularity_ = inter.item_popularity()
        words, cats = self._documents(items, pd.Index(pd.unique(items[ITEM_COL].to_numpy())))
        V = self._transform(words, cats)
        rows = inter.item_index(words.index)
        n = inter.n_items
        old = self.item_vectors_
        if not sp.issparse(old):
            grown = np.zeros((n, old.shape[1]), dtype=np.float32)
            grown[: old.shape[0]] = old
            grown[rows] = V
            self.item_vectors_ = grown
            return self
        if old.shape[0] < n:
            old = sp.vstack([old, sp.csr_matrix((n - old.shape[0], old.shape[1]), dtype=np.float32)], format="csr")
        keep = np.ones(n, dtype=bool)
        keep[rows] = False
        # Replace the rows of the described items, keep the others.
        P = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, np.arange(len(rows)))), shape=(n, len(rows)))
        self.item_vectors_ = (sp.diags(keep.astype(np.float32)) @ old + P @ V).tocsr()
        return self

    # ---- scoring ---------------------------------------------------------------------
    def user_profiles(self, user_rows: sp.csr_matrix) -> sp.csr_matrix:
        """Weighted mean of the item vectors in each history row."""
        V = self.item_vectors_
        R = user_rows[:, : V.shape[0]].astype(np.float32).tocsr(copy=True)
        if self.weighting == "binary":
            R.data[:] = 1.0
        sums = np.asarray(R.sum(axis=1)).ravel()
        R = sp.diags(np.where(sums > 0, 1.0 / np.maximum(sums, 1e-12), 0.0).astype(np.float32)) @ R
        P = R @ V
        return P.tocsr() if sp.issparse(P) else np.asarray(P)

    def _scores(self, user_rows: sp.csr_matrix, uidx: np.ndarray) -> np.ndarray:
        S = self.user_profiles(user_rows) @ self.item_vectors_.T
        return np.asarray(S.toarray() if sp.issparse(S) else S)

    # ---- persistence --------------------------------------------------------------------
    def _state(self) -> dict:
        V = self.item_vectors_
        if not sp.issparse(V):
            return {"V": np.asarray(V, dtype=np.float32), "word_vectors": self.word_vectors_,
                    "mean_vector": np.asarray(self.mean_vector_, dtype=np.float64)}
        out = {"V_data": V.data, "V_indices": V.indices, "V_indptr": V.indptr, "V_shape": np.array(V.shape)}
        for k, idf in enumerate(self.idfs_):
            out[f"idf{k}"] = np.asarray(idf, dtype=np.float64)
        return out

    def _set_state(self, a: dict) -> None:
        if "V" in a:
            self.item_vectors_, self.word_vectors_, self.mean_vector_ = a["V"], a["word_vectors"], a["mean_vector"]
            self.idfs_ = []
            return
        self.item_vectors_ = sp.csr_matrix((a["V_data"], a["V_indices"], a["V_indptr"]), shape=tuple(a["V_shape"]))
        self.idfs_ = [a[f"idf{k}"] for k in range(2) if f"idf{k}" in a]

    def _extra_config(self) -> dict:
        return {"vocabularies": self.vocabularies_}

    def _set_extra_config(self, extra: dict) -> None:
        self.vocabularies_ = extra["vocabularies"]
