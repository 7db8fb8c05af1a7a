"""Approximate inner-product search over item vectors (faiss HNSW), for large catalogues."""
from __future__ import annotations

import numpy as np


def faiss_available() -> bool:
    """Whether the optional ``faiss`` package can be imported."""
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


class FaissIndex:
    """Inner-product search over item vectors with faiss HNSW (imported only when used)."""

    def __init__(self, vectors: np.ndarray, m: int = 32, ef_search: int = 128, ef_construction: int = 200):
        import faiss

        x = np.ascontiguousarray(vectors, dtype=np.float32)
        self.index = faiss.IndexHNSWFlat(x.shape[1], m, faiss.METRIC_INNER_PRODUCT)
        self.index.hnsw.efConstruction = ef_construction
        self.index.hnsw.efSearch = ef_search
        self.ef_search = ef_search
        self.index.add(x)
        self.n = x.shape[0]

    def search(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` item indices and inner products for the query vector ``q``."""
        # efSearch must cover k or HNSW returns fewer than k results; set per call from the configured
        # value, or one shopper with a long exclusion list would slow every later search.
        self.index.hnsw.efSearch = max(self.ef_search, k)
        d, i = self.index.search(np.ascontiguousarray(q[None, :], dtype=np.float32), min(k, self.n))
        keep = i[0] >= 0
        return i[0][keep].astype(np.int64), d[0][keep]
