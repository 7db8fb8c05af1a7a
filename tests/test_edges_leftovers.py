"""Left-overs at the edges: spark_session's memory sizes, Spark frames a failed fit kept cached, Decimal users of
SparkALS.recommend, folders in the data cache, an Open Bandit folder of another policy, the Live tab's rejections."""
import html
import warnings
from decimal import Decimal

import pandas as pd
import pytest

from recapp import dashboard as dash
from recapp.data import DataSourceError, load_movielens, load_open_bandit, synthetic_shop
from recapp.models import Popularity


# ---- spark_session: memory sizes ------------------------------------------------------------------------
@pytest.mark.parametrize("memory", [2, 2.0, "2", "2 g", "2gb", True])
def test_driver_memory_without_a_unit_is_refused_before_any_session_starts(memory):
    # Before, 2 went to Spark as "2": a 2 MiB heap, and the JVM died with "Too small maximum heap".
    from recapp.spark import spark_session

    with pytest.raises(ValueError, match=rf"driver_memory={memory!r} is not a memory size with a unit: .*'2g'"):
        spark_session(driver_memory=memory)


def test_a_running_session_compares_memory_sizes_as_bytes(spark):
    # The fixture's session runs with driver_memory="1g"; before, "1024m" was warned about as a different setting.
    from recapp.spark import spark_session

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert spark_session(driver_memory="1024m") is spark
        assert spark_session(driver_memory="1G") is spark
    with pytest.warns(UserWarning, match=r"driver_memory='1025m' \(running: '1g'\)"):
        spark_session(driver_memory="1025m")


# ---- Spark frames a failed fit or validation persisted --------------------------------------------------
def test_a_fit_or_validation_whose_count_fails_leaves_nothing_persisted(spark, monkeypatch):
    from recapp.spark import SparkALS, validate

    frame_class = type(spark.range(1))
    persisted, persist = [], frame_class.persist

    def recording_persist(self, *args, **kwargs):
        persisted.append(self)
        return persist(self, *args, **kwargs)

    def failing_count(self):
        raise RuntimeError("simulated job failure")

    events = spark.createDataFrame(pd.DataFrame({"user_id": ["a", "b", "c"], "item_id": ["x", "y", "x"],
                                                 "event": "view", "timestamp": [1.0, 2.0, 3.0]}))
    monkeypatch.setattr(frame_class, "persist", recording_persist)
    monkeypatch.setattr(frame_class, "count", failing_count)
    for run in (lambda: SparkALS(factors=2, iterations=1).fit(events), lambda: validate(events)):
        persisted.clear()
        with pytest.raises(RuntimeError, match="simulated job failure"):
            run()
        assert persisted, "the run persisted a frame before its count"
        levels = [f.storageLevel for f in persisted]
        assert not any(lv.useMemory or lv.useDisk for lv in levels), f"left persisted: {levels}"


# ---- SparkALS.recommend: Decimal users on integer ids ---------------------------------------------------
def test_decimal_users_match_integer_training_ids_by_value(spark):
    from recapp.spark import SparkALS

    pairs = [(u, (u + j) % 5) for u in range(4) for j in range(2)]
    events = spark.createDataFrame(pd.DataFrame({"user_id": [u for u, _ in pairs], "item_id": [i for _, i in pairs],
                                                 "event": "view"}))
    als = SparkALS(factors=2, iterations=2).fit(events)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        got = als.recommend([Decimal(1), Decimal("2.0"), 3], k=1).toPandas()
    # Before, Decimal(1) got no rows ("cannot be training ids, which are bigint") though 1.0 was matched.
    assert sorted(got["user_id"].tolist()) == [1, 2, 3]
    with pytest.warns(UserWarning, match=r"1 of the 2 requested user\(s\) cannot be training ids.*Decimal\('1\.5'\)"):
        assert als.recommend([Decimal("1.5"), 0], k=1).toPandas()["user_id"].tolist() == [0]


# ---- folders in the data cache ---------------------------------------------------------------------------
def test_a_folder_where_the_cached_movielens_zip_belongs_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv("RECAPP_DATA", str(tmp_path))
    folder = tmp_path / "movielens-100k" / "ml-100k.zip"
    folder.mkdir(parents=True)
    # Before: a bare IsADirectoryError from the checksum read.
    with pytest.raises(DataSourceError, match=r"expects a file at .*ml-100k\.zip but finds a folder.*move it away"):
        load_movielens(allow_download=False)
    assert folder.is_dir()


def test_a_folder_behind_a_missing_cached_file_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv("RECAPP_DATA", str(tmp_path))
    (tmp_path / "open-bandit" / "random" / "men" / "item_context.csv").mkdir(parents=True)
    # Before: "not in the cache", and with downloads the write failed with a bare IsADirectoryError.
    with pytest.raises(DataSourceError, match=r"expects a file at .*men.item_context\.csv but finds a folder"):
        load_open_bandit("random", "men", allow_download=False)


# ---- Open Bandit: a campaign folder of another policy ----------------------------------------------------
def test_an_open_bandit_campaign_folder_of_another_policy_is_refused(tmp_path):
    folder = tmp_path / "bts" / "all"
    folder.mkdir(parents=True)
    (folder / "all.csv").write_text(",timestamp,item_id,position,click,propensity_score\n"
                                    "0,2019-11-24 00:00:17+00:00,1,1,0,0.1\n")
    (folder / "item_context.csv").write_text(",item_id,item_feature_0\n0,1,1\n")
    # Before: read and labelled policy="random", though its propensities are the bts policy's.
    with pytest.raises(ValueError, match=r"holds the 'bts' policy's all files .* policy='random' was asked: "
                                         r"pass policy='bts'"):
        load_open_bandit("random", "all", data_path=folder)
    assert load_open_bandit("bts", "all", data_path=folder).policy == "bts"
    assert load_open_bandit("bts", "all", data_path=tmp_path).policy == "bts"


# ---- the Live tab counts the engine's rejections ---------------------------------------------------------
def test_the_live_tab_counts_rejected_events_beside_the_latest_reason(tmp_path):
    path = tmp_path / "events.csv"
    synthetic_shop(n_users=60, n_items=50, n_events=1500, random_state=3).events.to_csv(path, index=False)
    base = dash.log_scenario(path)
    replay = base.replay.head(40).copy()
    uid = replay["user_id"].value_counts().index[0]
    rows = replay.index[replay["user_id"] == uid]
    replay.loc[rows[0], "event"] = "teleport"
    replay.loc[rows[1], "event"] = "warp"
    sc = dash.Scenario("log", "test", base.train, base.titles, base.items, base.users, replay=replay)
    app = dash.build_app(data={"test": lambda s: sc}, model_factories={"Popularity": lambda s: Popularity()},
                         models_root=tmp_path / "models", throttle=False)
    app.wait_for_training(60)
    app.live.select_user(str(uid))
    app.live.step()
    app.live.step()
    # Before: "The engine rejected an event: unknown event 'warp'", the teleport's rejection lost and uncounted.
    text = html.unescape(app.message.value)
    assert "rejected 2 event(s) of this replay so far; the latest: unknown event 'warp'" in text
    assert "2 rejected" in html.unescape(app.live.status.value)
    while app.live.step() is not None:
        pass
    assert f"Replay finished: {len(rows)} events of user {uid} (2 of them rejected by the engine)" in \
        html.unescape(app.message.value)


@pytest.mark.parametrize("where", ["itself", "above"])
def test_a_file_where_the_data_cache_folder_belongs_is_named(tmp_path, monkeypatch, where):
    blocker = tmp_path / "recapp-data"
    blocker.write_text("not a folder")
    monkeypatch.setenv("RECAPP_DATA", str(blocker if where == "itself" else blocker / "cache"))
    # Before: a bare FileExistsError (or NotADirectoryError) from mkdir, naming neither the cache nor RECAPP_DATA.
    with pytest.raises(DataSourceError, match=r"data cache folder .*recapp-data.* cannot be created: .*set RECAPP_DATA"):
        load_movielens(allow_download=False)
    assert blocker.read_text() == "not a folder"


def test_a_session_has_a_checkpoint_folder_that_als_cuts_its_lineage_with(spark):
    # Without one, a 15-iteration ALS's lineage overflowed the JVM's stack now and then when a task over its
    # factors was serialized (StackOverflowError in the README's Spark block, on a loaded machine).
    from pathlib import Path

    from recapp.spark import SparkALS

    local = Path(spark.sparkContext.getConf().get("spark.local.dir").split(",")[0])
    folder = spark.sparkContext.getCheckpointDir()
    assert folder is not None and Path(folder.removeprefix("file:")).parent == local / "checkpoints"
    pairs = [(u, (u + j) % 7) for u in range(20) for j in range(3)]
    events = spark.createDataFrame(pd.DataFrame({"user_id": [u for u, _ in pairs], "item_id": [i for _, i in pairs],
                                                 "event": "view"}))
    before = set(Path(folder.removeprefix("file:")).glob("rdd-*"))
    SparkALS(factors=2, iterations=6, checkpoint_interval=2).fit(events)
    assert set(Path(folder.removeprefix("file:")).glob("rdd-*")) - before, "ALS wrote no checkpoint"
