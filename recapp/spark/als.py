"""Implicit ALS trained by Spark MLlib, with distributed top-k and an export to the live engine.

:class:`SparkALS` follows recapp's estimator contract on Spark DataFrames: the
constructor stores hyperparameters, ``fit(events)`` sums each (user, item)
cell's event weights (:func:`recapp.spark.events.event_weights`, the weights
recapp's Interactions use) and trains ``pyspark.ml.recommendation.ALS`` with
``implicitPrefs=True``; ``recommend`` ranks every item for each user in
``mapInPandas`` batches against the broadcast item factors, with recapp's
top-k rule (float32 scores, seen items removed, ties by lower item index) and
writes ``user_id, item_id, score, rank``; ``to_recapp()`` hands the factors to
:class:`recapp.spark.model.ALSWR`, which the real-time engine serves per event.

Ids of any type are accepted: integer ids that fit Spark's int are used as
they are, others are mapped to consecutive integers first.
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from recapp.interactions import Interactions, resolve_event_weights
from recapp.models.als import check_factor_params
from recapp.models.base import check_param
from recapp.rerank import top_k_rows
from recapp.schema import EVENT_COL, ITEM_COL, RANK_COL, RATING_COL, SCORE_COL, USER_COL, SchemaError
from recapp.spark.checks import bad_amount, check_id_columns, count_rows, id_conditions, quote_row, refuse_counted
from recapp.spark.events import col, event_weights
from recapp.spark.ids import as_spark_id
from recapp.spark.model import ALSWR
from recapp.spark.report import persist_counted, require_frame

_INT_TYPES = (T.ByteType, T.ShortType, T.IntegerType, T.LongType)
_U, _I, _W = "__u__", "__i__", "__w__"


def _needs_index(sdf: DataFrame, column: str) -> bool:
    """Whether ``column`` must be mapped to Spark ALS's int ids (not an integer type, or out of int range)."""
    dtype = sdf.schema[column].dataType
    if not isinstance(dtype, _INT_TYPES):
        return True
    if isinstance(dtype, T.LongType):
        lo, hi = sdf.agg(F.min(col(column)), F.max(col(column))).collect()[0]
        return lo is not None and (lo < -(2**31) or hi >= 2**31)
    return False


def _index(sdf: DataFrame, column: str, name: str) -> DataFrame:
    """DataFrame[column, name]: each distinct id with a consecutive int."""
    spark = sdf.sparkSession
    ids = sdf.select(col(column)).distinct()
    schema = T.StructType([ids.schema.fields[0], T.StructField(name, T.IntegerType(), False)])
    index = spark.createDataFrame(ids.rdd.zipWithIndex().map(lambda r: (r[0][0], int(r[1]))), schema)
    # Kept, not recomputed: a second pass could number the ids differently (ALS needs one stable numbering).
    return persist_counted(index)[0]


def _top_k_block(pdf: pd.DataFrame, Y: np.ndarray, ids: np.ndarray, pos: pd.Index, k: int) -> pd.DataFrame:
    """recapp's top-k rule for a block of users: float32 scores, seen items out, argpartition then a stable sort."""
    k_eff = min(k, len(ids))
    U = np.stack(pdf["features"].to_numpy()).astype(np.float32)
    scores = (U @ Y.T).astype(np.float64)
    for r, seen in enumerate(pdf["seen"].tolist()):
        if seen is not None and len(seen):
            idx = pos.get_indexer(np.asarray(seen, dtype=np.int64))
            scores[r, idx[idx >= 0]] = -np.inf
    top, top_scores = top_k_rows(scores, k_eff)
    valid = np.isfinite(top_scores)
    n = len(pdf)
    return pd.DataFrame({
        _U: np.repeat(pdf[_U].to_numpy(np.int32), k_eff).reshape(n, k_eff)[valid],
        _I: ids[top[valid]].astype(np.int32),
        SCORE_COL: top_scores[valid],
        RANK_COL: np.tile(np.arange(1, k_eff + 1, dtype=np.int32), (n, 1))[valid],
    })


class SparkALS:
    """Implicit-feedback ALS on Spark (``pyspark.ml.recommendation.ALS``, implicitPrefs) in recapp's style.

    Parameters (recapp's names for Spark's): ``factors`` (rank), ``regularization``
    (regParam; Spark multiplies it by each user's and item's number of items),
    ``alpha`` (confidence ``1 + alpha * w`` of a cell whose summed event weight is
    ``w``), ``iterations`` (maxIter), ``event_weights`` (overrides of
    :data:`recapp.schema.DEFAULT_EVENT_WEIGHTS`), ``random_state`` (seed),
    ``num_blocks`` (user and item blocks; default the session's parallelism),
    ``checkpoint_interval`` (used when the SparkContext has a checkpoint folder).

    Fitted attributes: ``model_`` (the pyspark ``ALSModel``), ``events_`` (the
    training events), ``cells_`` (one row per user-item cell with its summed
    weight, on ALS's int ids), ``user_index_`` / ``item_index_`` (id maps, or None
    when the ids are used as they are). Defaults were chosen on ML-100K like
    recapp's ALS (a validation split carved from the benchmark's training split,
    NDCG@10, factors 32, regularization {0.01, ..., 2} x alpha {0.1, ..., 3}):
    regularization=0.3, alpha=0.3 (validation NDCG@10 0.276). A starting point,
    not a tuned setting for your log.
    """

    def __init__(self, factors: int = 32, regularization: float = 0.3, alpha: float = 0.3, iterations: int = 15,
                 event_weights: dict | None = None, random_state: int = 42, num_blocks: int | None = None,
                 checkpoint_interval: int = 10):
        self.factors = factors
        self.regularization = regularization
        self.alpha = alpha
        self.iterations = iterations
        self.event_weights = event_weights
        self.random_state = random_state
        self.num_blocks = num_blocks
        self.checkpoint_interval = checkpoint_interval

    def get_params(self) -> dict:
        """The constructor arguments as stored on the instance."""
        return {k: getattr(self, k) for k in ("factors", "regularization", "alpha", "iterations", "event_weights",
                                              "random_state", "num_blocks", "checkpoint_interval")}

    def __repr__(self) -> str:
        return f"SparkALS({', '.join(f'{k}={v!r}' for k, v in self.get_params().items())})"

    def _validate_params(self) -> None:
        check_factor_params(self)
        check_param("random_state", self.random_state, low=0, integer=True)
        if self.num_blocks is not None:
            check_param("num_blocks", self.num_blocks, low=1, integer=True)
        check_param("checkpoint_interval", self.checkpoint_interval, low=-1, integer=True)
        resolve_event_weights(self.event_weights)         # raises for unknown event types

    # ---- training ----------------------------------------------------------------------------
    def fit(self, events: DataFrame, *, col_user: str = USER_COL, col_item: str = ITEM_COL,
            col_event: str = EVENT_COL, col_rating: str = RATING_COL) -> "SparkALS":
        """Train on a validated Spark event log (:func:`recapp.spark.validate`); returns ``self``.

        Refused (SchemaError): no events, ids that are missing (null or NaN; the count and a row) or of a
        type that cannot hold ids (boolean, array, map, struct); (ValueError naming the count and a pair) a
        summed (user, item) event weight that is negative or not finite, which recapp's ALS refuses too.
        A summed weight of 0 is kept but warned about (Spark ignores the cell; the exported ALSWR does not).
        A fit that fails leaves the model as it was; the frames a fit keeps in Spark's memory (the training
        cells and id maps) are released when a refit replaces them or a fit fails.
        """
        self._validate_params()
        require_frame(events, "events", col_user, col_item)
        check_id_columns(events, col_user, col_item)
        before = dict(self.__dict__)
        try:
            self._fit(events, col_user, col_item, col_event, col_rating)
        except BaseException:
            self._release(self.__dict__, before)
            self.__dict__ = before      # else a refit that fails would pair the old model with the new events
            raise
        self._release(before, self.__dict__)
        return self

    #: Attributes holding DataFrames a fit persists (they stay in executor memory until unpersisted).
    _PERSISTED = ("cells_", "user_index_", "item_index_")

    @classmethod
    def _release(cls, state: dict, kept: dict) -> None:
        """Unpersist ``state``'s persisted frames that ``kept`` does not hold: every refit kept them all before."""
        for name in cls._PERSISTED:
            frame = state.get(name)
            if frame is not None and frame is not kept.get(name):
                frame.unpersist()

    def _fit(self, events: DataFrame, col_user: str, col_item: str, col_event: str, col_rating: str) -> None:
        from pyspark.ml.recommendation import ALS as MLlibALS

        self.col_user_, self.col_item_, self.col_event_, self.col_rating_ = col_user, col_item, col_event, col_rating
        self.events_ = events
        if col_event not in events.columns:         # as recapp.interactions reads it: every row is a rating
            events = events.withColumn(col_event, F.lit("rating"))
        weight = event_weights(self.event_weights, col_event=col_event, col_rating=col_rating,
                               has_rating=col_rating in events.columns)
        cells = events.select(col(col_user).alias(col_user), col(col_item).alias(col_item), weight.alias(_W))
        # Kept: the check, the id maps and the training cells all read it, and each would repeat the shuffle.
        grouped = cells.groupBy(col_user, col_item).agg(F.sum(_W).alias(_W)).persist()
        try:
            self._check_cells(events, grouped)
            self.user_index_ = _index(grouped, col_user, _U) if _needs_index(grouped, col_user) else None
            self.item_index_ = _index(grouped, col_item, _I) if _needs_index(grouped, col_item) else None
            self.cells_ = self._to_int_ids(grouped).select(_U, _I, _W).persist()
            blocks = self.num_blocks or max(1, int(events.sparkSession.sparkContext.defaultParallelism))
            als = MLlibALS(rank=self.factors, maxIter=self.iterations, regParam=float(self.regularization),
                           alpha=float(self.alpha), implicitPrefs=True, userCol=_U, itemCol=_I, ratingCol=_W,
                           seed=int(self.random_state), numUserBlocks=blocks, numItemBlocks=blocks,
                           checkpointInterval=int(self.checkpoint_interval), coldStartStrategy="drop")
            self.model_ = als.fit(self.cells_)
        finally:
            grouped.unpersist()

    def _check_cells(self, events: DataFrame, cells: DataFrame) -> None:
        """One Spark job: refuse missing ids (Spark's ALS fails on them naming only its own column) and summed
        weights that are not amounts (Spark reads a negative one as a strong "no", the exported ALSWR as a
        negative confidence, so the two models would disagree)."""
        u, i = self.col_user_, self.col_item_
        shown = [c for c in (u, i, self.col_event_, self.col_rating_) if c in events.columns]
        ids = count_rows(events, id_conditions(events, u, i), shown, F.count(F.lit(1)).alias("n_rows"))
        named = cells.select(col(u).alias(u), col(i).alias(i), col(_W).alias("summed_weight"))
        w = col("summed_weight")
        weights = count_rows(named, {"bad_weight": bad_amount(w), "zero_weight": w == 0}, [u, i, "summed_weight"])
        row = ids.crossJoin(weights).collect()[0]
        if row["n_rows"] == 0:
            raise SchemaError("SparkALS cannot fit on events that hold no rows")
        refuse_counted(row, [
            *[(f"missing_{c}", SchemaError, f"events: column {c!r} has {{n}} missing id(s) (null or NaN), e.g. the row "
               "{row}; run recapp.spark.validate first") for c in (u, i)],
            ("bad_weight", ValueError, "SparkALS uses event weights as amounts, but {n} (user, item) pair(s) have a "
             "summed event weight that is negative or not a finite number, e.g. {row}; give finite event weights "
             "and ratings >= 0"),
        ])
        if row["zero_weight"]:
            # Spark's implicit ALS skips a 0 rating (no preference, no ridge), recapp reads the cell as seen.
            warnings.warn(f"SparkALS: {int(row['zero_weight']):,} (user, item) pair(s) have a summed event weight "
                          f"of 0, e.g. {quote_row(row['zero_weight_row'])}: Spark's ALS learns nothing from them, "
                          "while to_recapp()'s ALSWR folds them in as seen items, so its factors for those users "
                          "differ from Spark's; drop such events or give them a weight above 0", stacklevel=4)

    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise RuntimeError("SparkALS is not fitted yet: call fit(events) first")

    def _to_int_ids(self, sdf: DataFrame, item: bool = True) -> DataFrame:
        """``sdf`` with ALS's int ids ``__u__`` (and, with ``item``, ``__i__``) next to the external ones."""
        if self.user_index_ is None:
            sdf = sdf.withColumn(_U, col(self.col_user_).cast("int"))
        else:
            sdf = sdf.join(self.user_index_, self.col_user_)
        if item:
            if self.item_index_ is None:
                sdf = sdf.withColumn(_I, col(self.col_item_).cast("int"))
            else:
                sdf = sdf.join(self.item_index_, self.col_item_)
        return sdf

    def _external(self, sdf: DataFrame, which: str) -> DataFrame:
        """Replace ALS's int id column (``__u__`` or ``__i__``) by the external id column."""
        if which == _U:
            name, index = self.col_user_, self.user_index_
        else:
            name, index = self.col_item_, self.item_index_
        if index is None:
            dtype = self.events_.schema[name].dataType
            return sdf.withColumn(name, F.col(which).cast(dtype)).drop(which)
        return sdf.join(F.broadcast(index) if which == _I else index, which).drop(which)

    # ---- factors ---------------------------------------------------------------------------------
    def user_factors(self) -> DataFrame:
        """DataFrame[user_id, features]: Spark's learned user factors (array<float>)."""
        self._check_fitted()
        return self._external(self.model_.userFactors.withColumnRenamed("id", _U), _U).select(self.col_user_, "features")

    def item_factors(self) -> DataFrame:
        """DataFrame[item_id, features]: Spark's learned item factors (array<float>)."""
        self._check_fitted()
        return self._external(self.model_.itemFactors.withColumnRenamed("id", _I), _I).select(self.col_item_, "features")

    # ---- recommend ---------------------------------------------------------------------------------
    def recommend(self, users=None, k: int = 10, exclude_seen: bool = True) -> DataFrame:
        """Top-``k`` items per user as a lazy DataFrame[user_id, item_id, score, rank].

        ``users``: None (every user with a factor), a list/array of ids, or a
        DataFrame with the user column. Each user's scores ``x_u . y_i`` over every
        item are computed in float32 (as recapp's ALS does) in ``mapInPandas``
        batches against the broadcast item factors; with ``exclude_seen`` the
        user's training items never appear; ties go to the lower item id. Users
        without a factor (never in the training events) get no rows, and so do
        listed ids that no training id equals (``"7"`` where the ids are numbers,
        ``7.5``, None; a warning counts them); listed numbers match by value
        (``5``, ``5.0`` and ``Decimal(5)`` name one id). Refused (SchemaError): a users
        DataFrame without the user column, or whose ids are text where the
        training ids are numbers (or the reverse).
        """
        self._check_fitted()
        check_param("k", k, low=1, integer=True)
        spark = self.events_.sparkSession
        items = self.model_.itemFactors.toPandas().sort_values("id", kind="stable")
        Y = np.ascontiguousarray(np.stack(items["features"].to_numpy()).astype(np.float32))
        item_ids = items["id"].to_numpy(np.int64)
        bc = spark.sparkContext.broadcast((Y, item_ids))
        uf = self.model_.userFactors.withColumnRenamed("id", _U)
        if users is not None:
            uf = uf.join(self._wanted_users(users), _U)
        if exclude_seen:
            seen = self.cells_.groupBy(_U).agg(F.collect_list(_I).alias("seen"))
            uf = uf.join(seen, _U, "left")
        else:
            uf = uf.withColumn("seen", F.lit(None).cast("array<int>"))
        kk = int(k)

        def top_k(batches):
            Y, ids = bc.value
            pos = pd.Index(ids)
            # A few hundred users at a time: a dense block stays about 32 MB whatever the catalogue.
            rows = max(1, int(4_000_000 // max(len(ids), 1)))
            for whole in batches:
                for start in range(0, len(whole), rows):
                    yield _top_k_block(whole.iloc[start:start + rows], Y, ids, pos, kk)

        schema = T.StructType([T.StructField(_U, T.IntegerType()), T.StructField(_I, T.IntegerType()),
                               T.StructField(SCORE_COL, T.DoubleType()), T.StructField(RANK_COL, T.IntegerType())])
        recs = uf.select(_U, "features", "seen").mapInPandas(top_k, schema)
        recs = self._external(self._external(recs, _U), _I)
        return recs.select(self.col_user_, self.col_item_, SCORE_COL, RANK_COL)

    def _wanted_users(self, users) -> DataFrame:
        """DataFrame[__u__] of the requested users that have a factor, matched by value and kind, never by a cast.

        A cast would merge ``"7"`` with user 7 and ``7.5`` with 7, or fail the job on an id past Spark's int;
        recapp's own ``recommend`` treats such users as unknown, so here they get no rows (with a warning).
        """
        c = self.col_user_
        dtype = self.events_.schema[c].dataType
        if isinstance(users, DataFrame):
            require_frame(users, "users", c)
            got = users.schema[c].dataType
            if isinstance(got, T.NumericType) != isinstance(dtype, T.NumericType):
                raise SchemaError(f"users: column {c!r} holds {got.simpleString()} values but the training ids are "
                                  f"{dtype.simpleString()}; ids must have the same kind in both frames")
            wanted = users.select(col(c).alias(c)).distinct()
        else:
            values = list(users) if isinstance(users, (set, frozenset)) else list(np.atleast_1d(np.asarray(users, dtype=object)))
            kept = [v for v in map(lambda v: as_spark_id(v, dtype), values) if v is not None]
            if len(kept) < len(values):
                odd = next(v for v in values if as_spark_id(v, dtype) is None)
                warnings.warn(f"recommend: {len(values) - len(kept):,} of the {len(values):,} requested user(s) cannot "
                              f"be training ids, which are {dtype.simpleString()} (e.g. {odd!r}); they get no rows",
                              stacklevel=3)
            wanted = self.events_.sparkSession.createDataFrame([(v,) for v in kept], T.StructType([T.StructField(c, dtype)]))
        if self.user_index_ is None:
            ids = self.model_.userFactors.select(F.col("id").alias(_U)).withColumn(c, F.col(_U).cast(dtype))
            return ids.join(wanted, c).select(_U)
        return wanted.join(self.user_index_, c).select(_U)

    # ---- export -----------------------------------------------------------------------------------
    def to_recapp(self, events: DataFrame | pd.DataFrame | None = None, *, verbose: bool = False) -> ALSWR:
        """The fitted factors as a recapp :class:`~recapp.spark.model.ALSWR`, ready for ``Engine(model)``.

        ``events`` (default: the training events, collected to the driver) become
        the model's Interactions: the id maps and histories the engine loads a
        shopper from. Their users and items without a Spark factor are folded in
        (items first, then users). The model's hyperparameters are Spark's, so its
        fold-in of a training user's history gives back Spark's factor. Refused
        (SchemaError): ``events`` none of whose user (item) ids is one Spark
        learned, as when they are text and Spark's were numbers.
        """
        self._check_fitted()
        frame = events if isinstance(events, pd.DataFrame) else (self.events_ if events is None else events).toPandas()
        inter = Interactions.from_frame(frame, event_weights=self.event_weights, col_user=self.col_user_,
                                        col_item=self.col_item_, col_event=self.col_event_, col_rating=self.col_rating_)
        model = ALSWR(factors=self.factors, regularization=float(self.regularization), alpha=float(self.alpha),
                      iterations=self.iterations, random_state=self.random_state, verbose=verbose)
        U = self._aligned(self.user_factors(), self.col_user_, inter.user_ids)
        V = self._aligned(self.item_factors(), self.col_item_, inter.item_ids)
        return model.fit(inter, user_factors=U, item_factors=V)

    def _aligned(self, factors: DataFrame, column: str, ids: pd.Index) -> np.ndarray:
        """Factor rows in the order of ``ids`` (NaN rows where Spark has none)."""
        pdf = factors.toPandas()
        out = np.full((len(ids), self.factors), np.nan, dtype=np.float32)
        if len(pdf):
            pos = ids.get_indexer(pd.Index(pdf[column].to_numpy()))
            ok = pos >= 0
            if not ok.any() and len(ids):
                # Ids of another kind ("7" against 7) match nothing: every factor would be folded in from scratch.
                raise SchemaError(f"events: no {column!r} id matches one SparkALS learned (e.g. {ids[0]!r} against "
                                  f"{pdf[column].iloc[0]!r}, {ids.dtype} against Spark's "
                                  f"{self.events_.schema[column].dataType.simpleString()}); give events with the "
                                  "training ids, of the same kind")
            out[pos[ok]] = np.stack(pdf["features"].to_numpy()[ok]).astype(np.float32)
        return out


__all__ = ["SparkALS"]
