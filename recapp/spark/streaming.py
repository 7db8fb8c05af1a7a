"""Live recommendations on Spark itself: Structured Streaming with one fold-in state per shopper.

:func:`live_recommendations` turns a stream of shopper events into a stream of
each shopper's new top-k. Events are grouped by shopper
(``applyInPandasWithState``); a shopper's state is their fold-in, the very
state the real-time engine keeps (:class:`~recapp.models.foldin.FoldInScorer`'s
normal equations, item confidences and summed weights, plus the items they
bought or rated, which are never recommended again); each micro-batch folds
the shopper's new events in with the model's own scorer, in timestamp order,
and writes their top-k. A shopper the model was trained on starts from their
training history (a static table joined to the stream); a new one from
nothing. Events are checked with :func:`recapp.schema.check_events` (the
engine's rule) and a refused row changes nothing. So a sink holds, for every
shopper, the list :class:`~recapp.realtime.Engine` would show after the same
events (for the factor models: ALS, ALSWR, BPR, LightGCN, RatingMF).

The state is plain columns (binary and numbers): pyspark 4.3's
``applyInPandasWithState`` fails on array state columns (``KeyError:
'elementType'``), so the arrays travel as raw float64/int64 bytes.

In tests the source is a folder of files (:func:`write_event_files`,
:func:`file_stream`). In production it is Kafka (with the
``org.apache.spark:spark-sql-kafka-0-10_2.13:4.3.0`` package)::

    raw = (spark.readStream.format("kafka")
           .option("kafka.bootstrap.servers", "broker:9092").option("subscribe", "shop-events").load())
    events = raw.select(F.from_json(F.col("value").cast("string"), EVENT_SCHEMA).alias("e")).select("e.*")
    lists = live_recommendations(events, model, k=10)
    (lists.selectExpr("CAST(user_id AS STRING) AS key", "to_json(struct(*)) AS value")
          .writeStream.format("kafka").option("kafka.bootstrap.servers", "broker:9092")
          .option("topic", "shop-recommendations").option("checkpointLocation", "s3://.../checkpoints/live")
          .outputMode("append").start())

where ``EVENT_SCHEMA`` is :func:`event_schema` of your log, and the checkpoint
folder keeps every shopper's state across restarts.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import types as T

from recapp import rerank
from recapp.interactions import EVENT_CODES, event_weights_for
from recapp.models.base import check_param
from recapp.models.foldin import FoldInScorer
from recapp.models.live import LiveHistory
from recapp.schema import (
    DEFAULT_EVENT_WEIGHTS,
    EVENT_COL,
    ITEM_COL,
    RANK_COL,
    RATING_COL,
    SCORE_COL,
    TIME_COL,
    USER_COL,
    VALUE_COL,
    check_event_types,
    check_events,
    require_columns,
)
from recapp.spark.events import col

N_EVENTS_COL = "n_events"
N_REFUSED_COL = "n_refused"
STATE_SCHEMA = T.StructType([
    T.StructField("A", T.BinaryType()), T.StructField("b", T.BinaryType()),
    T.StructField("items", T.BinaryType()), T.StructField("raw", T.BinaryType()), T.StructField("conf", T.BinaryType()),
    T.StructField("consumed", T.BinaryType()),
    T.StructField(N_EVENTS_COL, T.LongType()), T.StructField(N_REFUSED_COL, T.LongType()),
])
_SEED = ("__seed_items__", "__seed_raw__", "__seed_consumed__")


# ---- the shopper's state as plain columns ------------------------------------------------------
def encode_state(state: dict, history: LiveHistory, consumed: set, n_events: int, n_refused: int) -> tuple:
    """A fold-in state (``FoldInScorer.start``'s dict), the summed weights and the consumed items as plain values."""
    items = np.fromiter(state["c"].keys(), dtype=np.int64, count=len(state["c"]))
    conf = np.fromiter(state["c"].values(), dtype=np.float64, count=len(state["c"]))
    raw = np.array([history.raw[i] for i in items.tolist()], dtype=np.float64)
    return (np.ascontiguousarray(state["A"], dtype=np.float64).tobytes(), np.asarray(state["b"], dtype=np.float64).tobytes(),
            items.tobytes(), raw.tobytes(), conf.tobytes(), np.array(sorted(consumed), dtype=np.int64).tobytes(),
            int(n_events), int(n_refused))


def decode_state(values) -> tuple[dict, LiveHistory, set, int, int]:
    """The inverse of :func:`encode_state`: (state, history, consumed, n_events, n_refused)."""
    A, b, items, raw, conf, consumed, n_events, n_refused = values
    b = np.frombuffer(b, dtype=np.float64).copy()
    f = len(b)
    items = np.frombuffer(items, dtype=np.int64).tolist()
    state = {"A": np.frombuffer(A, dtype=np.float64).reshape(f, f).copy(), "b": b,
             "c": dict(zip(items, np.frombuffer(conf, dtype=np.float64).tolist())), "scale": 1.0}
    history = LiveHistory(raw=dict(zip(items, np.frombuffer(raw, dtype=np.float64).tolist())), scale=1.0)
    return state, history, set(np.frombuffer(consumed, dtype=np.int64).tolist()), int(n_events), int(n_refused)


# ---- what travels to the executors ------------------------------------------------------------------
def portable_scorer(model) -> FoldInScorer:
    """The model's live scorer without the model: item factors and the confidence rule only.

    Spark ships it to every executor once (a broadcast), so it must not drag the
    training interactions along. Only fold-in scorers (factor models) qualify.
    """
    if not callable(getattr(model, "live_scorer", None)):
        raise TypeError(f"model must be a fitted recapp factor model (ALS, ALSWR, BPR, LightGCN, RatingMF; for a "
                        f"SparkALS, pass its .to_recapp()); got {type(model).__name__}")
    scorer = model.live_scorer()
    out = scorer.detached()
    if out is None:
        raise ValueError(f"live_recommendations needs a factor model served by fold-in (ALS, ALSWR, BPR, LightGCN, "
                         f"RatingMF); {type(model).__name__}'s live scorer is {type(scorer).__name__}")
    return out


def history_seeds(spark: SparkSession, model, *, exclude_events=("purchase", "rating")) -> DataFrame:
    """DataFrame[user_id, seed columns]: each training shopper's summed weights and consumed items, as bytes.

    The weights are summed in time order as :meth:`LiveHistory.from_sequence` does
    when the engine loads a training shopper, so both start from the same numbers.
    """
    inter = model.interactions_
    codes = {EVENT_CODES[e] for e in exclude_events}
    order = inter.seq_order
    frame = inter.frame
    u = frame["uidx"].to_numpy()[order]
    i = frame["iidx"].to_numpy()[order]
    w = frame["weight"].to_numpy(np.float64)[order]
    key = u.astype(np.int64) * inter.n_items + i
    uniq, first, inv = np.unique(key, return_index=True, return_inverse=True)
    sums = np.bincount(inv, weights=w, minlength=len(uniq))
    cu, ci = uniq // inter.n_items, uniq % inter.n_items
    bought = np.zeros(len(uniq), bool)
    bought[inv[np.isin(frame["event_code"].to_numpy()[order], list(codes))]] = True
    starts = np.searchsorted(cu, np.arange(inter.n_users + 1))
    rows = []
    for user in range(inter.n_users):
        a, b = starts[user], starts[user + 1]
        if a == b:
            continue
        rows.append((inter.user_ids[user], ci[a:b].astype(np.int64).tobytes(), sums[a:b].astype(np.float64).tobytes(),
                     ci[a:b][bought[a:b]].astype(np.int64).tobytes()))
    pdf = pd.DataFrame(rows, columns=[USER_COL, *_SEED])
    user_type = T.LongType() if pd.api.types.is_integer_dtype(inter.user_ids.dtype) else T.StringType()
    schema = T.StructType([T.StructField(USER_COL, user_type)] + [T.StructField(c, T.BinaryType()) for c in _SEED])
    pdf[USER_COL] = pdf[USER_COL].astype("int64" if isinstance(user_type, T.LongType) else object)
    return spark.createDataFrame(pdf, schema)


# ---- the stream ------------------------------------------------------------------------------------
def live_recommendations(events: DataFrame, model, k: int = 10, *, exclude_events=("purchase", "rating"),
                         event_weights: dict | None = None, seeds: DataFrame | None = None,
                         col_user: str = USER_COL, col_item: str = ITEM_COL) -> DataFrame:
    """Each shopper's new top-``k`` after each micro-batch of their events (a streaming DataFrame).

    ``events``: a streaming DataFrame with user_id, item_id, event,
    timestamp and optionally rating/value columns. ``model``: a fitted factor
    model (e.g. :meth:`recapp.spark.SparkALS.to_recapp`). Output columns:
    user_id, item_id, score, rank, ``n_events`` (events folded in for that
    shopper so far in this stream) and ``n_refused`` (rows refused by the schema
    check); write it with ``outputMode("append")``. Items the model does not
    know are skipped (the engine would serve them from popularity); a shopper
    with no event on a model item yet gets no rows. ``exclude_events`` and
    ``event_weights`` mean what they mean for :class:`~recapp.realtime.Engine`.
    A shopper's state is kept until the query's checkpoint is deleted (no
    timeout): size the state store for the shoppers you serve. Refused:
    ``events`` that are not a streaming Spark DataFrame (Spark runs this grouped
    state in streaming queries only) and a ``model`` that is not a recapp model
    (a SparkALS needs ``.to_recapp()``).
    """
    if not isinstance(events, DataFrame):
        raise TypeError(f"events must be a streaming Spark DataFrame, got {type(events).__name__}; "
                        "for a pandas frame use recapp.realtime.Engine")
    if not events.isStreaming:
        # Spark refuses applyInPandasWithState in a batch query, and only when the result is first used.
        raise ValueError("events is a static Spark DataFrame; live_recommendations needs a streaming one "
                         "(spark.readStream..., or file_stream(...)); for a static log use recapp.realtime.Engine")
    check_param("k", k, low=1, integer=True)
    check_event_types("exclude_events", exclude_events)
    missing = [c for c in (col_user, col_item, EVENT_COL) if c not in events.columns]
    if missing:
        raise ValueError(f"events is missing column(s) {missing}; columns found: {list(events.columns)}")
    spark = events.sparkSession
    scorer = portable_scorer(model)
    item_ids = model.interactions_.item_ids
    weights = {**DEFAULT_EVENT_WEIGHTS, **(model.interactions_.event_weights or {}), **(event_weights or {})}
    codes = frozenset(EVENT_CODES[e] for e in exclude_events)
    bc = spark.sparkContext.broadcast((scorer, item_ids, weights, codes))
    if seeds is None:
        seeds = history_seeds(spark, model, exclude_events=exclude_events)
    seeds = seeds.withColumnRenamed(USER_COL, col_user) if col_user != USER_COL else seeds
    keep = [c for c in (col_user, col_item, TIME_COL, EVENT_COL, RATING_COL, VALUE_COL) if c in events.columns]
    stream = events.select(*[col(c) for c in keep])
    stream = stream.withColumn(col_user, col(col_user).cast(seeds.schema[col_user].dataType))
    stream = stream.join(seeds, col_user, "left")
    item_type = events.schema[col_item].dataType
    out_schema = T.StructType([
        T.StructField(col_user, seeds.schema[col_user].dataType), T.StructField(col_item, item_type),
        T.StructField(SCORE_COL, T.DoubleType()), T.StructField(RANK_COL, T.IntegerType()),
        T.StructField(N_EVENTS_COL, T.LongType()), T.StructField(N_REFUSED_COL, T.LongType()),
    ])
    kk = int(k)

    def fold_shopper(key, batches, group_state):
        scorer, item_ids, weights, codes = bc.value
        pdf = pd.concat(list(batches), ignore_index=True)
        if group_state.exists:
            state, history, consumed, n_events, n_refused = decode_state(group_state.get)
        else:
            first = pdf.iloc[0]
            seeded = first[_SEED[0]] is not None and not (isinstance(first[_SEED[0]], float))
            if seeded:
                items = np.frombuffer(first[_SEED[0]], dtype=np.int64).tolist()
                raw = np.frombuffer(first[_SEED[1]], dtype=np.float64).tolist()
                history = LiveHistory(raw=dict(zip(items, raw)))
                consumed = set(np.frombuffer(first[_SEED[2]], dtype=np.int64).tolist())
            else:
                history, consumed = LiveHistory(), set()
            state, n_events, n_refused = scorer.start(history), 0, 0
        rows = pdf.drop(columns=list(_SEED)).rename(columns={col_user: USER_COL, col_item: ITEM_COL})
        clean, refused = check_events(rows)
        n_refused += len(refused)
        clean = clean.sort_values(TIME_COL, kind="stable")
        w = event_weights_for(clean, weights)
        idx = item_ids.get_indexer(pd.Index(clean[ITEM_COL].to_numpy()))
        for item, event, t, weight in zip(idx.tolist(), clean[EVENT_COL].tolist(), clean[TIME_COL].tolist(), w.tolist()):
            n_events += 1
            if item < 0 or item >= scorer.n_items:
                continue
            code = EVENT_CODES[event]
            delta = history.add(item, code, t, weight, 1.0)
            if code in codes:
                consumed.add(item)
            scorer.fold(state, history, item, delta, None)
        group_state.update(encode_state(state, history, consumed, n_events, n_refused))
        if not state["c"]:
            return
        s = np.asarray(scorer.scores(state, history), dtype=np.float32).astype(np.float64)
        if consumed:
            rerank.exclude(s, np.fromiter(consumed, dtype=np.int64, count=len(consumed)))
        top = rerank.top_k(s, kk)
        yield pd.DataFrame({
            col_user: [key[0]] * len(top),
            col_item: item_ids.to_numpy()[top],
            SCORE_COL: s[top],
            RANK_COL: np.arange(1, len(top) + 1, dtype=np.int32),
            N_EVENTS_COL: np.full(len(top), n_events, dtype=np.int64),
            N_REFUSED_COL: np.full(len(top), n_refused, dtype=np.int64),
        })

    from pyspark.sql.streaming.state import GroupStateTimeout

    return stream.groupBy(col_user).applyInPandasWithState(fold_shopper, out_schema, STATE_SCHEMA, "append",
                                                           GroupStateTimeout.NoTimeout)


def latest_lists(lists: DataFrame | pd.DataFrame, *, col_user: str = USER_COL) -> pd.DataFrame:
    """From a sink's rows (all micro-batches), each shopper's last list: DataFrame[user_id, item_id, score, rank, ...].

    Raises SchemaError when the rows lack ``col_user``, ``n_events`` or ``rank`` (not a sink of :func:`live_recommendations`).
    """
    pdf = lists.toPandas() if isinstance(lists, DataFrame) else lists
    require_columns(pdf, "lists", col_user, N_EVENTS_COL, RANK_COL)
    last = pdf.groupby(col_user)[N_EVENTS_COL].transform("max")
    return pdf[pdf[N_EVENTS_COL] == last].sort_values([col_user, RANK_COL], ignore_index=True)


# ---- a file source for tests and demos ----------------------------------------------------------------
def event_schema(events) -> T.StructType:
    """The Spark schema of an event frame (pandas or Spark), for ``readStream.schema(...)``; TypeError for anything else."""
    if isinstance(events, DataFrame):
        return events.schema
    if not isinstance(events, pd.DataFrame):
        raise TypeError(f"events must be a pandas or Spark DataFrame, got {type(events).__name__}")
    fields = []
    for name, dtype in events.dtypes.items():
        if pd.api.types.is_integer_dtype(dtype):
            t = T.LongType()
        elif pd.api.types.is_float_dtype(dtype):
            t = T.DoubleType()
        elif pd.api.types.is_bool_dtype(dtype):
            t = T.BooleanType()
        else:
            t = T.StringType()
        fields.append(T.StructField(str(name), t))
    return T.StructType(fields)


def write_event_files(events: pd.DataFrame, folder, n_files: int = 4, *, col_time: str = TIME_COL) -> list[Path]:
    """Write ``events`` in time order as ``n_files`` Parquet files of consecutive periods, oldest first.

    File modification times increase with the period, so a file stream with
    ``maxFilesPerTrigger=1`` reads them in order, one micro-batch each.
    Raises SchemaError when ``events`` has no ``col_time`` column.
    """
    check_param("n_files", n_files, low=1, integer=True)
    require_columns(events, "events", col_time)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    ordered = events.sort_values(col_time, kind="stable").reset_index(drop=True)
    bounds = np.linspace(0, len(ordered), n_files + 1).round().astype(int)
    paths, now = [], time.time() - n_files - 10
    for j in range(n_files):
        path = folder / f"events-{j:05d}.parquet"
        ordered.iloc[bounds[j]:bounds[j + 1]].to_parquet(path, index=False)
        os.utime(path, (now + j, now + j))
        paths.append(path)
    return paths


def file_stream(spark: SparkSession, folder, schema: T.StructType, *, max_files_per_trigger: int = 1) -> DataFrame:
    """A streaming DataFrame over the Parquet files of ``folder`` (one micro-batch per file by default).

    ``schema`` comes from :func:`event_schema`; ``max_files_per_trigger`` must be an
    integer >= 1, checked here rather than when the query starts.
    """
    check_param("max_files_per_trigger", max_files_per_trigger, low=1, integer=True)
    return (spark.readStream.schema(schema).option("maxFilesPerTrigger", int(max_files_per_trigger))
            .parquet(str(folder)))


__all__ = ["live_recommendations", "latest_lists", "history_seeds", "portable_scorer", "encode_state",
           "decode_state", "write_event_files", "file_stream", "event_schema", "STATE_SCHEMA", "N_EVENTS_COL",
           "N_REFUSED_COL"]
