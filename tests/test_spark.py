"""recapp.spark on a local[2] SparkSession: the same rules, splits, metrics and live lists as recapp's own.

Spark tests are skipped, with the reason, where pyspark or Java 17 is missing
(``make test`` installs both); the ALSWR tests need neither and always run.
One session serves the whole run (UI off, two shuffle partitions, a temporary
``spark.local.dir``), as Microsoft Recommenders' ``tests/conftest.py`` does.
"""
import datetime
import sys
import warnings

import numpy as np
import pandas as pd
import pytest

from recapp import metrics, split
from recapp.data import load_movielens
from recapp.data.synthetic import synthetic_shop
from recapp.interactions import event_weights_for
from recapp.models import ALS, EASE, load
from recapp.realtime import Engine
from recapp.schema import SchemaError, validate
from recapp.spark.model import ALSWR
from recapp.spark.session import JAVA_MISSING, spark_unavailable_reason

REASON = spark_unavailable_reason()
needs_spark = pytest.mark.skipif(REASON is not None, reason=f"Spark tests skipped: {REASON}")


# ---- fixtures (the session-wide ``spark`` is tests/conftest.py's) --------------------------------
@pytest.fixture(scope="module")
def ml():
    return load_movielens("100k").interactions


@pytest.fixture(scope="module")
def ml_sdf(spark, ml):
    sdf = spark.createDataFrame(ml).cache()
    sdf.count()
    yield sdf
    sdf.unpersist()


@pytest.fixture(scope="module")
def temporal(ml):
    return split.temporal_split(ml, quantile=0.8)


@pytest.fixture(scope="module")
def spark_als(spark, temporal):
    """Spark MLlib ALS on ML-100K's first 80% in time (the fit the export, engine and stream tests share)."""
    from recapp.spark import SparkALS

    train = spark.createDataFrame(temporal[0]).cache()
    return SparkALS(factors=16, iterations=8).fit(train)


@pytest.fixture(scope="module")
def exported(spark_als):
    return spark_als.to_recapp()


def messy_log() -> pd.DataFrame:
    """Aliased columns, blank and Unicode-blank ids, every timestamp form, event aliases, duplicates, text ratings."""
    return pd.DataFrame({
        "visitorid": ["1", "2", " ", None, "5", "5", "u\u00a0", "\u2003", "7", "8", "9", "9"],
        "ItemId": [10, 11, 12, 13, 14, 14, 15, 16, 17, 18, 19, 19],
        "ts": ["1700000000", "1700000000000", "2024-01-01T00:00:00Z", "1700000000", "2024-01-02 10:00:00",
               "2024-01-02T10:00:00+00:00", "1.7e9", "1700000000", " 1700000001 ", "1700000002", "1700000003",
               "1700000003.0"],
        "behavior": ["pv", "AddToCart", "view", "buy", " View ", "view", "click", "view", "fav", "transaction",
                     "rating", "rating"],
        "rating": ["", "3.5", None, "4", "1e0", "1e0", None, None, " 2 ", None, "4", "4.0"],
    })


def _spark_frame(spark, pdf: pd.DataFrame):
    return spark.createDataFrame(pdf.astype(object).where(pdf.notna(), None))


def assert_same_top_k(got_items, got_scores, exp_items, exp_scores, tol=1e-5):
    """Equal lists, except that two items whose scores are within ``tol`` may swap places (float rounding)."""
    got_items, exp_items = list(got_items), list(exp_items)
    exp_scores = np.asarray(exp_scores, dtype=np.float64)
    assert len(got_items) == len(exp_items)
    np.testing.assert_allclose(got_scores, exp_scores, rtol=0, atol=tol)
    for pos, (g, e) in enumerate(zip(got_items, exp_items)):
        if g != e:
            near = [abs(exp_scores[pos] - exp_scores[j]) < tol for j in (pos - 1, pos + 1) if 0 <= j < len(exp_scores)]
            assert any(near) or pos == len(exp_items) - 1, f"position {pos + 1}: {g} != {e}, and no near tie"


def _sorted(df: pd.DataFrame) -> pd.DataFrame:
    cols = list(df.columns)
    out = df.astype({c: object for c in cols}).sort_values(cols, key=lambda s: s.astype(str), ignore_index=True)
    return out.where(out.notna(), None)


# ---- session -----------------------------------------------------------------------------------
@needs_spark
def test_session_has_local_defaults(spark, tmp_path_factory):
    conf = spark.sparkContext.getConf()
    assert conf.get("spark.ui.enabled") == "false"
    assert spark.conf.get("spark.sql.shuffle.partitions") == "2"
    assert spark.conf.get("spark.sql.session.timeZone") == "UTC"
    assert "spark-local" in conf.get("spark.local.dir")
    assert conf.get("spark.pyspark.python") == sys.executable
    assert spark.sparkContext.master == "local[2]"


def test_session_reports_missing_java(monkeypatch):
    from recapp.spark import session

    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", "")
    assert session.java_version() is None
    if session.pyspark_available():
        assert session.spark_unavailable_reason() == JAVA_MISSING
        with pytest.raises(RuntimeError, match="Java was not found"):
            session.spark_session()


def test_notebook_guard_skips_the_rest_without_java(monkeypatch, capsys):
    """Where Java is missing, the guard says so and every later notebook cell becomes a no-op."""
    from IPython.core.interactiveshell import InteractiveShell

    from recapp.spark import session

    monkeypatch.setattr(session, "spark_unavailable_reason", lambda: JAVA_MISSING)
    shell = InteractiveShell.instance()
    try:
        result = shell.run_cell("from recapp.spark.session import notebook_guard\nok = notebook_guard()")
        assert result.success and shell.user_ns["ok"] is False
        assert "Skipping the rest of this notebook: Java was not found" in capsys.readouterr().out
        assert shell.run_cell("x = 1 / 0").success and "x" not in shell.user_ns
    finally:
        if session._skip_cell in shell.input_transformers_post:
            shell.input_transformers_post.remove(session._skip_cell)
        InteractiveShell.clear_instance()
    monkeypatch.setattr(session, "spark_unavailable_reason", lambda: None)
    assert session.notebook_guard() is True


@needs_spark
def test_session_rejects_bad_settings(spark):
    from recapp.spark import spark_session

    with pytest.raises(ValueError, match="shuffle_partitions=0"):
        spark_session(shuffle_partitions=0)


# ---- validate --------------------------------------------------------------------------------------
@needs_spark
def test_validate_matches_recapp_schema(spark):
    from recapp.spark import validate as spark_validate

    raw = messy_log()
    clean, report = validate(raw)
    sclean, sreport = spark_validate(_spark_frame(spark, raw))
    got = sclean.toPandas()
    assert list(got.columns) == list(clean.columns)
    pd.testing.assert_frame_equal(_sorted(got), _sorted(clean), check_dtype=False)
    assert sreport.summary() == report.summary()
    assert sreport.counts().to_dict() == report.counts().to_dict()
    pd.testing.assert_frame_equal(sreport.dropped_lines(), report.dropped.sort_values("line", ignore_index=True),
                                  check_dtype=False)
    sclean.unpersist()


@needs_spark
@pytest.mark.parametrize("column, values", [
    ("ts", ["garbage", "1700000000", "2024-13-45", "1700000000", "1700000000", "1700000000",
            "1700000000", "1700000000", "1700000000", "1700000000", "1700000000", "1700000000"]),
    ("behavior", ["pv", "view", "view", "view", "wat", "view", "view", "view", "view", "view", "huh", "view"]),
    ("rating", ["x", "1", "2", "3", "1_000", "4", "5", "3", "2", "1", "4", "4"]),
])
def test_validate_raises_as_recapp_schema_does(spark, column, values):
    from recapp.spark import validate as spark_validate

    raw = messy_log()
    raw[column] = values
    with pytest.raises(SchemaError) as expected:
        validate(raw)
    with pytest.raises(SchemaError) as got:
        spark_validate(_spark_frame(spark, raw))
    assert str(got.value) == str(expected.value)
    assert "line" in str(got.value)


@needs_spark
def test_validate_refuses_unusable_logs(spark):
    from recapp.spark import validate as spark_validate

    with pytest.raises(SchemaError, match="missing required column"):
        spark_validate(spark.createDataFrame(pd.DataFrame({"user_id": [1], "item_id": [2], "timestamp": [3.0]})))
    empty = spark.createDataFrame(pd.DataFrame({"user_id": [1], "item_id": [2]})).limit(0)
    with pytest.raises(SchemaError, match="empty"):
        spark_validate(empty)
    with pytest.raises(SchemaError, match="no valid rows"):
        spark_validate(_spark_frame(spark, pd.DataFrame({"user_id": [None, " "], "item_id": [1, 2],
                                                          "timestamp": [1.0, 2.0], "event": ["view", "view"]})))
    with pytest.raises(SchemaError, match="Spark DataFrame"):
        spark_validate(pd.DataFrame({"user_id": [1]}))
    # A boolean id column: pandas quotes the lines, Spark names the column's type; both refuse it.
    flags = pd.DataFrame({"user_id": [True, False], "item_id": [1, 2], "timestamp": [1.0, 2.0], "event": ["view"] * 2})
    with pytest.raises(SchemaError, match="'user_id': 2 value.s. that cannot be ids: line 1: True"):
        validate(flags)
    with pytest.raises(SchemaError, match="'user_id': its values cannot be ids: Spark type boolean"):
        spark_validate(spark.createDataFrame(flags))


@needs_spark
def test_blank_ids_follow_python_strip(spark):
    """A text id is missing exactly when Python's str.strip leaves nothing, for every whitespace character."""
    from pyspark.sql import types as T

    from recapp.spark.events import _blank, col

    spaces = [chr(c) for c in range(0x3100) if chr(c).isspace()]
    others = ["\u200b", "\ufeff", "x", "_", "\x00", "\x1b", "\u180e", "a b"]
    values = spaces + [s * 3 for s in spaces] + [" " + o + " " for o in others] + others + ["", " \t\n"]
    sdf = spark.createDataFrame(pd.DataFrame({"v": values}), "v string")
    flags = sdf.select(_blank(T.StringType(), col("v")).alias("blank")).toPandas()["blank"].tolist()
    assert flags == [not v.strip() for v in values]


@needs_spark
def test_timestamp_types_read_as_utc_seconds(spark):
    from pyspark.sql import types as T

    from recapp.spark import validate as spark_validate

    moments = [datetime.datetime(2024, 3, 10, 2, 30, 15, 250000), datetime.datetime(1999, 12, 31, 23, 59, 59)]
    expected = [(pd.Timestamp(m, tz="UTC") - pd.Timestamp(0, tz="UTC")).total_seconds() for m in moments]
    for dtype in (T.TimestampType(), T.TimestampNTZType()):
        schema = T.StructType([T.StructField("user_id", T.LongType()), T.StructField("item_id", T.LongType()),
                               T.StructField("timestamp", dtype), T.StructField("event", T.StringType())])
        values = [m.replace(tzinfo=datetime.timezone.utc) if isinstance(dtype, T.TimestampType) else m for m in moments]
        sdf = spark.createDataFrame([(1, i, v, "view") for i, v in enumerate(values)], schema)
        clean, _ = spark_validate(sdf)
        got = clean.orderBy("item_id").toPandas()["timestamp"].tolist()
        assert got == expected, dtype
    dates = spark.createDataFrame([(1, 1, datetime.date(2024, 1, 2), "view")], "user_id long, item_id long, timestamp date, event string")
    clean, _ = spark_validate(dates)
    assert clean.toPandas()["timestamp"].tolist() == [1704153600.0]


@needs_spark
@pytest.mark.parametrize("values, dates", [
    ([20240115, 20240116, 19991231], True),
    (["20240115", " 20240116 ", "19991231"], True),
    ([20240115, 20240231, 19991231], False),                   # Feb 31st: epoch seconds after all
    ([20240115, 20240116, 1_700_000_000], False),
    (["1970-08-21T22:41:41Z", "1970-08-21T22:41:42Z", "1970-08-21T22:41:43Z"], False),
], ids=["ints", "text", "impossible-date", "mixed", "iso-1970"])
def test_yyyymmdd_columns_read_as_recapp_reads_them(spark, values, dates):
    from recapp.spark import validate as spark_validate

    pdf = pd.DataFrame({"user_id": 1, "item_id": range(len(values)), "timestamp": pd.Series(values, dtype=object),
                        "event": "view"})
    expected, report = validate(pdf)
    assert any("read as YYYYMMDD dates" in n for n in report.notes) == dates
    assert bool(report.notes) == (values[0] != "1970-08-21T22:41:41Z")      # mixed columns get a note too
    sdf = spark.createDataFrame(pdf.astype({"timestamp": type(values[0])}))
    clean, spark_report = spark_validate(sdf, persist=False)
    got = clean.orderBy("item_id").toPandas()["timestamp"].tolist()
    assert got == expected.sort_values("item_id")["timestamp"].tolist()
    assert spark_report.notes == report.notes and spark_report.summary() == report.summary()


@needs_spark
def test_epoch_numbers_read_in_every_unit_as_recapp_reads_them(spark):
    from pyspark.sql import functions as F

    from recapp.schema import parse_timestamps
    from recapp.spark import validate as spark_validate

    # One moment in seconds, milli-, micro- and nanoseconds (negative: before 1970), and small plain seconds.
    epochs = [1_700_000_000, 1_700_000_000_123, 1_700_000_000_123_456, 1_700_000_000_123_456_789,
              -1_700_000_000_000, 86_400, 0]
    pdf = pd.DataFrame({"user_id": 1, "item_id": range(len(epochs)), "timestamp": epochs, "event": "view"})
    expected = parse_timestamps(pdf["timestamp"]).tolist()
    assert expected[:4] == pytest.approx([1_700_000_000, 1_700_000_000.123, 1_700_000_000.123456, 1_700_000_000.123456789])
    for cast in ("long", "double"):
        sdf = spark.createDataFrame(pdf).withColumn("timestamp", F.col("timestamp").cast(cast))
        clean, _ = spark_validate(sdf)
        got = clean.orderBy("item_id").toPandas()["timestamp"].tolist()
        assert got == pytest.approx(expected, rel=1e-15, abs=1e-6), cast


@needs_spark
def test_event_weights_match_interactions(spark):
    from recapp.spark import event_weights

    frame = pd.DataFrame({"event": ["view", "click", "cart", "purchase", "rating", "rating", "rating"],
                          "rating": [np.nan, 2.0, np.nan, 1.0, 4.5, np.nan, 0.5]})
    custom = {"purchase": 10.0, "view": 0.5}
    for weights in (None, custom):
        got = spark.createDataFrame(frame).select(event_weights(weights).alias("w")).toPandas()["w"].to_numpy()
        np.testing.assert_array_equal(got, event_weights_for(frame, weights))
    with pytest.raises(ValueError, match="unknown event type"):
        event_weights({"like": 1.0})


@needs_spark
def test_read_events_from_csv(spark, tmp_path):
    from recapp.data.events import read_events as pandas_read
    from recapp.spark import read_events

    path = tmp_path / "log.csv"
    messy_log().to_csv(path, index=False)
    clean, report = read_events(spark, path)
    expected, expected_report = pandas_read(path, return_report=True)
    assert report.summary() == expected_report.summary()
    assert clean.count() == len(expected)
    with pytest.raises(ValueError, match="format="):
        read_events(spark, tmp_path / "log.xyz")


# ---- splits ---------------------------------------------------------------------------------------
@needs_spark
def test_exact_quantile_equals_pandas(ml_sdf, ml):
    from recapp.spark.split import exact_quantile

    for q in (0.8, 0.5, 0.123, 0.999):
        assert exact_quantile(ml_sdf, "timestamp", q) == ml["timestamp"].quantile(q)


@needs_spark
def test_temporal_split_matches_recapp(ml_sdf, ml, temporal):
    from recapp.spark import temporal_split

    train, test = temporal_split(ml_sdf, quantile=0.8)
    cols = ["user_id", "item_id", "timestamp"]
    for got, exp in zip((train, test), temporal):
        pd.testing.assert_frame_equal(got.toPandas()[cols].sort_values(cols, ignore_index=True),
                                      exp[cols].sort_values(cols, ignore_index=True))
    train2, _ = temporal_split(ml_sdf, cutoff="1998-01-01")
    assert train2.count() == len(split.temporal_split(ml, cutoff="1998-01-01")[0])
    with pytest.raises(ValueError, match="quantile=1.5"):
        temporal_split(ml_sdf, quantile=1.5)


@needs_spark
def test_chrono_split_matches_recapp(ml_sdf, ml):
    from recapp.spark import chrono_split

    cols = ["user_id", "item_id", "timestamp"]
    # ML-100K has many equal timestamps per user: they keep input order on both sides.
    for kwargs in (dict(ratio=0.75), dict(ratio=[0.6, 0.2, 0.2], min_rating=30), dict(ratio=0.5, filter_by="item")):
        with warnings.catch_warnings():
            # Both report what min_rating drops (tests/test_spark_checks.py compares the reports).
            warnings.filterwarnings("ignore", "min_rating=", UserWarning)
            got = chrono_split(ml_sdf, **kwargs)
            exp = split.chrono_split(ml, **kwargs)
        assert len(got) == len(exp)
        for g, e in zip(got, exp):
            pd.testing.assert_frame_equal(g.toPandas()[cols].sort_values(cols, ignore_index=True),
                                          e[cols].sort_values(cols, ignore_index=True))
    with pytest.raises(ValueError, match="filter_by='shop'"):
        chrono_split(ml_sdf, filter_by="shop")


# ---- metrics ------------------------------------------------------------------------------------------
@needs_spark
def test_ranking_metrics_equal_recapp_on_ml100k(spark):
    """The parity test: recapp.metrics and recapp.spark's metrics on the same ML-100K lists agree to 1e-9."""
    from recapp.evaluate import movielens_protocol
    from recapp.spark import per_user_ranking_metrics, ranking_metrics

    protocol = movielens_protocol()
    recs = EASE().fit(protocol.train).recommend(protocol.test["user_id"].unique(), k=20)
    recs = recs.drop(columns="fallback")
    # Coarse scores make ties, broken by rank on both sides.
    recs["score"] = recs["score"].round(1)
    test_sdf, recs_sdf = spark.createDataFrame(protocol.test).cache(), spark.createDataFrame(recs).cache()
    for k in (1, 20):
        expected = metrics.ranking_metrics(protocol.test, recs, k)
        got = ranking_metrics(test_sdf, recs_sdf, k)
        assert got.keys() == expected.keys()
        for name in expected:
            assert abs(got[name] - expected[name]) < 1e-9, (k, name)
    table = per_user_ranking_metrics(test_sdf, recs_sdf, 10).toPandas().sort_values("user_id", ignore_index=True)
    exp = metrics.per_user_ranking_metrics(protocol.test, recs, 10).sort_values("user_id", ignore_index=True)
    pd.testing.assert_frame_equal(table[exp.columns], exp, check_dtype=False, atol=1e-12, rtol=0)


@needs_spark
def test_ranking_metrics_edge_cases(spark):
    from recapp.spark import ndcg_at_k, precision_at_k, ranking_metrics

    truth = pd.DataFrame({"user_id": [1, 1, 2, 3], "item_id": [10, 11, 20, 30]})
    # User 1's items 12 and 10 tie: pandas keeps row order (12 first), the rank column says the same.
    pred = pd.DataFrame({"user_id": [1, 1, 1, 2, 4], "item_id": [11, 12, 10, 21, 40], "score": [0.9, 0.8, 0.8, 1.0, 1.0],
                         "rank": [1, 2, 3, 1, 1]})
    t, p = spark.createDataFrame(truth), spark.createDataFrame(pred)
    for k in (1, 2, 3):
        assert abs(ndcg_at_k(t, p, k) - metrics.ndcg_at_k(truth, pred, k)) < 1e-12
        assert abs(precision_at_k(t, p, k) - metrics.precision_at_k(truth, pred, k)) < 1e-12
    # Without a rank column ties go to the lower item id: 10 before 12, a hit at rank 2 instead of 3.
    by_id = ndcg_at_k(t, p.drop("rank"), 2)
    assert abs(by_id - metrics.ndcg_at_k(truth, pred.iloc[[0, 2, 1, 3, 4]], 2)) < 1e-12
    assert by_id > metrics.ndcg_at_k(truth, pred, 2)
    assert ranking_metrics(t, p.filter("user_id = 4"), 5) == {name: 0.0 for name in metrics.RANKING_METRICS}
    # A pair listed twice is one recommendation, at its best score: no metric passes 1, and recapp agrees.
    twice = pd.DataFrame({"user_id": [2, 2, 2], "item_id": [20, 20, 21], "score": [3.0, 2.0, 1.0], "rank": [1, 2, 3]})
    got = ranking_metrics(t, spark.createDataFrame(twice), 3)
    assert got == pytest.approx(metrics.ranking_metrics(truth, twice, 3), abs=1e-12)
    assert got["recall_at_k"] == 1.0 and got["ndcg_at_k"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="k=0"):
        ranking_metrics(t, p, 0)
    with pytest.raises(ValueError, match="unknown metric 'auc'"):
        ranking_metrics(t, p, 5, metrics=["auc"])
    with pytest.raises(SchemaError, match="same type"):
        ranking_metrics(t, spark.createDataFrame(pred.astype({"item_id": str})), 5)


# ---- Spark ALS, its export and the engine ------------------------------------------------------------------
@needs_spark
def test_spark_als_recommends_like_recapp(spark_als, exported, temporal):
    """Distributed top-k: seen items removed, ranks 1..k, and the same lists as the exported model's recommend."""
    train, test = temporal
    users = np.intersect1d(test["user_id"].unique(), train["user_id"].unique())
    recs_sdf = spark_als.recommend(users.tolist(), k=10).persist()
    recs = recs_sdf.toPandas().sort_values(["user_id", "rank"], ignore_index=True)
    assert recs.groupby("user_id")["rank"].apply(list).map(lambda r: r == list(range(1, 11))).all()
    assert set(recs["user_id"]) == set(users.tolist())
    seen = recs.merge(train[["user_id", "item_id"]].drop_duplicates(), on=["user_id", "item_id"])
    assert seen.empty, "a training item was recommended"
    mine = exported.recommend(users, k=10)
    assert (recs["item_id"].to_numpy() == mine["item_id"].to_numpy()).mean() > 0.999
    np.testing.assert_allclose(recs["score"], mine["score"], rtol=1e-5, atol=1e-6)
    # Spark's metrics on Spark's lists equal recapp's on the same lists.
    from recapp.spark import ranking_metrics

    got = ranking_metrics(recs_sdf.sparkSession.createDataFrame(test), recs_sdf, 10)
    expected = metrics.ranking_metrics(test, recs, 10)
    assert all(abs(got[n] - expected[n]) < 1e-9 for n in expected)
    recs_sdf.unpersist()


@needs_spark
def test_export_folds_in_spark_user_factors(spark_als, exported):
    """Spark's last half-step solved each user against the final item factors: the fold-in gives it back."""
    assert isinstance(exported, ALSWR) and isinstance(exported, ALS)
    assert exported.get_params()["regularization"] == spark_als.regularization
    factors = spark_als.user_factors().toPandas()
    inter = exported.interactions_
    assert exported.user_factors_.shape == (inter.n_users, spark_als.factors)
    rng = np.random.default_rng(0)
    for user in rng.choice(factors["user_id"].to_numpy(), 25, replace=False):
        u = int(inter.user_index([user])[0])
        m = inter.matrix
        folded = exported.fold_in_vector(m.indices[m.indptr[u]:m.indptr[u + 1]], m.data[m.indptr[u]:m.indptr[u + 1]])
        spark_factor = np.asarray(factors.loc[factors["user_id"] == user, "features"].iloc[0], dtype=np.float64)
        np.testing.assert_allclose(folded, spark_factor, rtol=1e-4, atol=1e-5)
    # recapp's plain ALS with one ridge for everyone would not: the ridge must grow with the history.
    plain = exported.regularization * np.eye(spark_als.factors)
    big = int(np.argmax(np.diff(inter.matrix.indptr)))
    a, b = inter.matrix.indptr[big], inter.matrix.indptr[big + 1]
    from recapp.models.foldin import fold_in

    single = fold_in(exported.item_factors_, exported.YtY_ + plain, inter.matrix.indices[a:b],
                     exported._fold_in_confidence(inter.matrix.data[a:b]))
    assert np.abs(single - exported.user_factors_[big]).max() > 1e-3


@needs_spark
@pytest.mark.parametrize("names", [{}, {"user_id": "uid", "item_id": "iid", "rating": "stars"}])
def test_export_of_a_log_without_event_types_weighs_ratings_as_recapp_does(spark, names):
    """No event column means every row is a rating (recapp.interactions): Spark trains and exports with the same weights."""
    from recapp.spark import SparkALS

    rng = np.random.default_rng(3)
    log = pd.DataFrame({"user_id": rng.integers(0, 40, 600), "item_id": rng.integers(0, 30, 600),
                        "rating": rng.integers(1, 6, 600).astype(float), "timestamp": np.arange(600.0)})
    log = log.drop_duplicates(["user_id", "item_id"]).rename(columns=names)
    cols = {f"col_{k.split('_')[0]}": v for k, v in names.items()}
    als = SparkALS(factors=4, iterations=5, regularization=0.1).fit(spark.createDataFrame(log), **cols)
    model = als.to_recapp()
    m, factors = model.interactions_.matrix, als.user_factors().toPandas()
    assert sorted(np.unique(m.data)) == [1.0, 2.0, 3.0, 4.0, 5.0]          # the ratings are the weights
    for user in factors[cols.get("col_user", "user_id")].to_numpy()[:10]:
        u = int(model.interactions_.user_index([user])[0])
        folded = model.fold_in_vector(m.indices[m.indptr[u]:m.indptr[u + 1]], m.data[m.indptr[u]:m.indptr[u + 1]])
        spark_factor = np.asarray(factors.loc[factors[cols.get("col_user", "user_id")] == user, "features"].iloc[0])
        np.testing.assert_allclose(folded, spark_factor, rtol=1e-4, atol=1e-5)


@needs_spark
def test_engine_serves_spark_top_k(spark_als, exported, temporal):
    """Same events, same top-k: the engine loads each shopper's training events and shows Spark's list."""
    train, _ = temporal
    users = train["user_id"].drop_duplicates().sample(60, random_state=1).tolist()
    spark_recs = spark_als.recommend(users, k=10).toPandas()
    engine = Engine(exported, explain=False)
    for user in users:
        got = engine.recommend(user, k=10)
        exp = spark_recs[spark_recs["user_id"] == user].sort_values("rank")
        assert_same_top_k(got["item_id"], got["score"], exp["item_id"], exp["score"])


@needs_spark
def test_exported_model_saves_and_loads(exported, tmp_path):
    from recapp.models import REGISTRY
    from recapp.spark import load as spark_load

    path = exported.save(tmp_path / "alswr")
    with pytest.raises(ValueError, match="unknown model class 'ALSWR'"):
        load(path)
    again = spark_load(path)
    assert type(again) is ALSWR and "ALSWR" not in REGISTRY
    assert type(spark_load(EASE().fit(exported.interactions_).save(tmp_path / "ease"))) is EASE
    users = exported.interactions_.user_ids[:20]
    pd.testing.assert_frame_equal(again.recommend(users, k=5), exported.recommend(users, k=5))


@needs_spark
def test_spark_als_string_ids_and_checks(spark):
    from recapp.spark import SparkALS

    shop = synthetic_shop(n_users=60, n_items=40, n_events=1500, random_state=4)
    events = shop.events.assign(user_id=lambda d: "shopper-" + d["user_id"].astype(str))
    als = SparkALS(factors=4, iterations=3).fit(spark.createDataFrame(events))
    assert als.user_index_ is not None and als.item_index_ is None
    recs = als.recommend(["shopper-1", "shopper-2", "nobody"], k=5).toPandas()
    assert set(recs["user_id"]) == {"shopper-1", "shopper-2"}
    model = als.to_recapp()
    assert pd.api.types.is_string_dtype(model.interactions_.user_ids.dtype)
    engine = Engine(model, exclude_events=(), exclude_viewed=True, explain=False)
    got = engine.recommend("shopper-1", k=5)
    exp = recs[recs["user_id"] == "shopper-1"].sort_values("rank")
    assert_same_top_k(got["item_id"], got["score"], exp["item_id"], exp["score"])
    with pytest.raises(ValueError, match="factors=0"):
        SparkALS(factors=0).fit(spark.createDataFrame(events))
    with pytest.raises(RuntimeError, match="not fitted"):
        SparkALS().recommend()


# ---- streaming ---------------------------------------------------------------------------------------------
@needs_spark
def test_streaming_lists_equal_engine(spark, exported, temporal, tmp_path):
    """ML-100K's last 20% replayed as files: each shopper's final list in the sink is the engine's."""
    from recapp.spark import event_schema, file_stream, latest_lists, live_recommendations, write_event_files

    _, test = temporal
    users = test["user_id"].drop_duplicates().sample(50, random_state=2)
    events = test[test["user_id"].isin(users)].copy()
    events["event"] = events["event"].astype(object)
    first, last = events.iloc[0], events.iloc[-1]
    # A row the schema check refuses and an item the model has never seen.
    extra = pd.DataFrame({"user_id": [first.user_id, last.user_id], "item_id": [first.item_id, 99_999],
                          "rating": [3.0, 4.0], "timestamp": [last.timestamp, last.timestamp], "event": ["wat", "rating"]})
    events = pd.concat([events, extra], ignore_index=True)
    write_event_files(events, tmp_path / "events", n_files=3)
    stream = file_stream(spark, tmp_path / "events", event_schema(events))
    query = (live_recommendations(stream, exported, k=10).writeStream.format("memory").queryName("live_lists")
             .outputMode("append").option("checkpointLocation", str(tmp_path / "checkpoint"))
             .trigger(availableNow=True).start())
    query.awaitTermination()
    assert len(query.recentProgress) == 3, "one micro-batch per file"
    got = latest_lists(spark.table("live_lists"))

    engine = Engine(exported, explain=False)
    result = engine.ingest(events)
    assert result.n_rejected == 1
    assert set(got["user_id"]) == set(users)
    totals = got.groupby("user_id")[["n_events", "n_refused"]].max()
    expected_counts = events[events["event"] != "wat"].groupby("user_id").size()
    pd.testing.assert_series_equal(totals["n_events"], expected_counts, check_names=False, check_dtype=False)
    assert totals["n_refused"].sum() == 1
    for user in users:
        exp = engine.recommend(user, k=10)
        mine = got[got["user_id"] == user]
        assert mine["item_id"].tolist() == exp["item_id"].tolist(), user
        np.testing.assert_allclose(mine["score"], exp["score"], rtol=1e-6, atol=1e-7)


def test_state_round_trips_through_bytes():
    from recapp.models.live import LiveHistory
    from recapp.spark.model import WeightedFoldInScorer

    pytest.importorskip("pyspark")
    from recapp.spark.streaming import decode_state, encode_state

    rng = np.random.default_rng(0)
    Y = rng.normal(size=(30, 4)).astype(np.float32)
    scorer = WeightedFoldInScorer(None, Y, Y.astype(np.float64).T @ Y, lambda w: 0.5 * np.asarray(w), 0.1)
    history = LiveHistory(raw={3: 2.0, 7: 1.0})
    state = scorer.start(history)
    for item in (7, 11, 3):
        scorer.fold(state, history, item, history.add(item, 0, 1.0, 1.0), None)
    values = encode_state(state, history, {3, 11}, 5, 1)
    assert all(isinstance(v, (bytes, int)) for v in values)
    st2, h2, consumed, n, refused = decode_state(values)
    np.testing.assert_array_equal(st2["A"], state["A"])
    np.testing.assert_array_equal(st2["b"], state["b"])
    assert st2["c"] == state["c"] and h2.raw == history.raw and consumed == {3, 11} and (n, refused) == (5, 1)


# ---- ALSWR (no Spark needed) ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def alswr(shop):
    return ALSWR(factors=8, regularization=0.1, alpha=2.0, iterations=6, verbose=False).fit(shop.events)


def test_alswr_is_unlisted_yet_recapp_spark_load_reads_it(alswr, tmp_path):
    from recapp.models import REGISTRY
    from recapp.models.base import UNLISTED
    from recapp.spark import load as spark_load

    assert "ALSWR" not in REGISTRY and UNLISTED["ALSWR"] is ALSWR
    path = alswr.save(tmp_path / "alswr")
    with pytest.raises(ValueError, match="unknown model class 'ALSWR'"):
        load(path)
    again = spark_load(path)
    assert type(again) is ALSWR and "ALSWR" not in REGISTRY
    users = alswr.interactions_.user_ids[:10]
    pd.testing.assert_frame_equal(again.recommend(users, k=5), alswr.recommend(users, k=5))


def test_alswr_fit_is_the_fixed_point_of_its_fold_in(alswr):
    inter = alswr.interactions_
    m = inter.matrix
    for u in (0, 5, 40):
        folded = alswr.fold_in_vector(m.indices[m.indptr[u]:m.indptr[u + 1]], m.data[m.indptr[u]:m.indptr[u + 1]])
        np.testing.assert_allclose(folded, alswr.user_factors_[u], rtol=1e-4, atol=1e-6)
    losses = alswr.train_log_.losses
    assert losses[-1] < losses[0]


def test_alswr_live_scorer_matches_score_history(alswr):
    from recapp.models.live import LiveHistory

    scorer = alswr.live_scorer()
    history = LiveHistory()
    state = scorer.start(history)
    for item, w in [(3, 1.0), (9, 2.0), (3, 5.0), (40, 1.0)]:
        delta = history.add(item, 0, 0.0, w)
        scorer.fold(state, history, item, delta, None)
    idx, w = history.weights(scorer.n_items)
    np.testing.assert_allclose(scorer.scores(state, history), alswr.score_history(idx, w), rtol=1e-5, atol=1e-6)
    # The ridge grows by regularization with each new item: three items, three times it.
    G = alswr.YtY_
    c = alswr._fold_in_confidence(w)
    V = alswr.item_factors_.astype(np.float64)[idx]
    np.testing.assert_allclose(state["A"], G + (V.T * c) @ V + 3 * alswr.regularization * np.eye(8), rtol=1e-10)


def test_alswr_update_and_factor_checks(alswr, shop):
    model = ALSWR(factors=8, iterations=2, update_items=False, verbose=False).fit(shop.events)
    before = model.item_factors_.copy()
    model.update(pd.DataFrame({"user_id": [10_000, 10_000], "item_id": [1, 2], "timestamp": [1e9, 1e9 + 1],
                               "event": ["view", "purchase"]}))
    u = int(model.interactions_.user_index([10_000])[0])
    items = model.interactions_.item_index([1, 2])
    np.testing.assert_array_equal(model.item_factors_, before)
    # update() solves the new shopper with Spark's ridge: 2 items, 2 x regularization.
    np.testing.assert_allclose(model.user_factors_[u], model.fold_in_vector(items, [1.0, 5.0]), rtol=1e-4, atol=1e-6)
    inter = model.interactions_
    with pytest.raises(ValueError, match="user_factors must have shape"):
        ALSWR(factors=8).fit(inter, user_factors=np.zeros((3, 8)), item_factors=np.zeros((inter.n_items, 8)))
    with pytest.raises(ValueError, match="both user_factors and item_factors"):
        ALSWR(factors=8).fit(inter, user_factors=np.zeros((inter.n_users, 8)))
    with pytest.raises(ValueError, match="regularization=-1"):
        ALSWR(regularization=-1).fit(shop.events)


def test_composite_with_an_alswr_member_saves_and_loads(shop, tmp_path):
    from recapp.models import Hybrid

    member = ALSWR(factors=8, regularization=0.1, alpha=2.0, iterations=4, verbose=False)
    hybrid = Hybrid([member, EASE()], weights=[0.5, 0.5]).fit(shop.events)
    again = load(hybrid.save(tmp_path / "hybrid"))
    assert type(again.members_[0]) is ALSWR
    users = hybrid.interactions_.user_ids[:10]
    pd.testing.assert_frame_equal(again.recommend(users, k=5), hybrid.recommend(users, k=5))
