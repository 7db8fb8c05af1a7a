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
:func:`file_stream`, from :mod:`recapp.spark.stream_files`). In production it is Kafka (with the
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

import warnings

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from recapp import rerank
from recapp.interactions import EVENT_CODES, event_weights_for, resolve_event_weights
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
    SchemaError,
    check_event_types,
    check_events,
    require_columns,
)
from recapp.spark.checks import check_id_columns, missing_cell
from recapp.spark.events import col
from recapp.spark.stream_files import event_schema, file_stream, write_event_files

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


def id_type(ids: pd.Index) -> T.DataType:
    """The Spark type of a model's ids: bigint for integer ids, else string."""
    return T.LongType() if pd.api.types.is_integer_dtype(ids.dtype) else T.StringType()


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
    ValueError names an unknown event type in ``exclude_events``.
    """
    check_event_types("exclude_events", exclude_events)
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
    user_type = id_type(inter.user_ids)
    schema = T.StructType([T.StructField(USER_COL, user_type)] + [T.StructField(c, T.BinaryType()) for c in _SEED])
    pdf[USER_COL] = pdf[USER_COL].astype("int64" if isinstance(user_type, T.LongType) else object)
    return spark.createDataFrame(pdf, schema)


# ---- the stream ------------------------------------------------------------------------------------
def shopper_key(sdf: DataFrame, col_user: str, user_type: T.DataType) -> DataFrame:
    """``sdf`` with ``col_user`` cast to the model's ``user_type``, null where the id is missing or does not cast exactly.

    Exactly means the value survives the cast and back: text ``'abc'``, ``'007'``
    or a fractional ``7.5`` against a model with integer ids becomes null (Spark's
    plain cast would crash the query on 'abc' under ANSI mode, or merge ``7.5``
    into shopper 7). Those rows then fall in the null shopper, where the schema
    check refuses and counts them.
    """
    source = sdf.schema[col_user].dataType
    raw = col(col_user)
    typed = raw.try_cast(user_type)
    exact = ~missing_cell(source, raw) & typed.isNotNull() & (typed.cast(source) == raw)
    return sdf.withColumn(col_user, F.when(exact, typed).otherwise(F.lit(None).cast(user_type)))


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
    with no event on a model item yet gets no rows, except after a micro-batch
    that refused some of their rows: then one row with null item_id, score and
    rank carries the counts. A row whose user id is missing, or does not cast
    exactly to the model's user type (text 'abc', '007' or 7.5 for integer ids),
    is refused and counted in such rows under a null user_id (see
    :func:`shopper_key`); it is never merged into another shopper.
    An item column of the other kind than the model's item ids (text against
    integers, or the reverse) warns, as none of its items can then be the
    model's; the lists are typed as the model's items then.
    ``exclude_events`` and ``event_weights`` mean what they mean for
    :class:`~recapp.realtime.Engine`. A shopper's state is kept until the
    query's checkpoint is deleted (no timeout): size the state store for the
    shoppers you serve. Refused here, before the query starts: ``events`` that
    are not a streaming Spark DataFrame (Spark runs this grouped state in
    streaming queries only), a ``model`` that is not a recapp model (a
    SparkALS needs ``.to_recapp()``), user or item columns of a type that
    cannot hold ids (boolean, array, map, struct), ``event_weights`` with an
    unknown event type or a weight that is not a finite number, and ``seeds``
    without the columns of :func:`history_seeds`.
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
    check_id_columns(events, col_user, col_item)
    spark = events.sparkSession
    scorer = portable_scorer(model)
    item_ids = model.interactions_.item_ids
    # Checked here: each executor would otherwise raise it inside the running query, once per shopper.
    weights = resolve_event_weights({**DEFAULT_EVENT_WEIGHTS, **(model.interactions_.event_weights or {}),
                                     **(event_weights or {})})
    codes = frozenset(EVENT_CODES[e] for e in exclude_events)
    if seeds is None:
        seeds = history_seeds(spark, model, exclude_events=exclude_events)
    elif (not isinstance(seeds, DataFrame) or set(_SEED) - set(seeds.columns)
          or not {USER_COL, col_user} & set(seeds.columns)):
        found = list(seeds.columns) if isinstance(seeds, DataFrame) else type(seeds).__name__
        raise SchemaError(f"seeds must be a Spark DataFrame of history_seeds(...) with columns {[USER_COL, *_SEED]}; "
                          f"got {found}")
    bc = spark.sparkContext.broadcast((scorer, item_ids, weights, codes))
    seeds = seeds.withColumnRenamed(USER_COL, col_user) if col_user != USER_COL else seeds
    keep = [c for c in (col_user, col_item, TIME_COL, EVENT_COL, RATING_COL, VALUE_COL) if c in events.columns]
    stream = shopper_key(events.select(*[col(c) for c in keep]), col_user, seeds.schema[col_user].dataType)
    stream = stream.join(seeds, col_user, "left")
    item_type = events.schema[col_item].dataType
    if isinstance(item_type, T.StringType) != isinstance(id_type(item_ids), T.StringType):
        # The lists hold the model's items, which a column of the other kind cannot carry.
        item_type = id_type(item_ids)
        warnings.warn(f"events column {col_item!r} is {events.schema[col_item].dataType.simpleString()} but the "
                      f"model's item ids are {item_type.simpleString()}: no event's item is known to the model, so "
                      "every event is skipped as an unknown item (only training shoppers' lists are written)",
                      stacklevel=2)
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
            if len(refused):
                # No list to carry the counts (a null shopper never has one): one row says what was refused.
                yield pd.DataFrame({col_user: [key[0]], col_item: [None], SCORE_COL: [None], RANK_COL: [None],
                                    N_EVENTS_COL: [n_events], N_REFUSED_COL: [n_refused]})
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

    The last list is the one written after the most rows (``n_events`` plus
    ``n_refused``), so a micro-batch whose rows were all refused replaces the
    shopper's list rather than doubling it. A shopper with no list yet keeps
    their counts row (null item_id and rank). The rows under a null user_id
    (ids that were missing or not of the model's user type) are no shopper's:
    they are left out, with a warning giving how many rows were refused there.
    Raises SchemaError when the rows lack ``col_user``, ``n_events`` or ``rank`` (not a sink of :func:`live_recommendations`).
    """
    pdf = lists.toPandas() if isinstance(lists, DataFrame) else lists
    require_columns(pdf, "lists", col_user, N_EVENTS_COL, RANK_COL)
    seen = pdf[N_EVENTS_COL] + pdf[N_REFUSED_COL] if N_REFUSED_COL in pdf.columns else pdf[N_EVENTS_COL]
    nobody = pdf[col_user].isna().to_numpy()
    if nobody.any():
        n = int(pdf.loc[nobody, N_REFUSED_COL].max()) if N_REFUSED_COL in pdf.columns else int(nobody.sum())
        warnings.warn(f"latest_lists left out the sink's rows with a null {col_user}: {n:,} event row(s) were refused "
                      "there for a missing user id or one that is not of the model's user type", stacklevel=2)
    last = seen.groupby(pdf[col_user]).transform("max")
    return pdf[~nobody & (seen == last).to_numpy()].sort_values([col_user, RANK_COL], ignore_index=True)


__all__ = ["live_recommendations", "latest_lists", "history_seeds", "portable_scorer", "encode_state",
           "decode_state", "write_event_files", "file_stream", "event_schema", "STATE_SCHEMA", "N_EVENTS_COL",
           "N_REFUSED_COL"]
