"""Inputs to the privacy helpers and the event store that used to be misread, crash obscurely or lose data."""
import decimal

import duckdb
import numpy as np
import pandas as pd
import pytest

from recapp import privacy
from recapp.privacy import Pseudonymizer
from recapp.models import Popularity
from recapp.realtime import Engine, EventStore

KEY = "0123456789abcdef-test-key-not-secret"


def _ev(user, item, t, event="view", **kw):
    return {"user_id": user, "item_id": item, "timestamp": t, "event": event, **kw}


@pytest.fixture()
def p():
    return Pseudonymizer(KEY)


# ---- pseudonymisation ------------------------------------------------------------------------------
def test_a_boolean_id_never_shares_shopper_1s_pseudonym(p, tmp_path):
    # pandas.factorize took True for 1, so a boolean id was silently stored as shopper 1.
    with pytest.raises(TypeError, match=r"True at position 1 is a boolean.*1 of 2"):
        p.many([1, True])
    with pytest.raises(TypeError, match=r"position 0 is a list"):
        p.many([["alice@example.com"], "bob"])
    with EventStore(tmp_path / "p.duckdb", pseudonymizer=p) as store:
        # The boolean row is quarantined alone (never stored as shopper 1); the other row is written.
        res = store.append([_ev(1, 2, 10.0), _ev(True, 3, 11.0)])
        assert (res.n_written, res.n_quarantined) == (1, 1)
        assert "boolean" in res.rejected["reason"].iloc[0]
        assert store.events()["user_id"].tolist() == [p(1)]
    assert p.many([1, 1.0, "1", None]).tolist() == [p(1)] * 3 + [None]


def test_a_decimal_nan_id_stays_missing(p):
    nan = decimal.Decimal("NaN")
    assert p(nan) is nan                       # was the pseudonym of the text "NaN": a shopper called NaN
    assert p.events(_ev(nan, 1, 10.0))["user_id"] is nan


def test_a_short_key_names_the_file_or_variable_it_came_from(tmp_path, monkeypatch):
    path = tmp_path / "short.key"
    path.write_text("abc\n")
    path.chmod(0o600)
    with pytest.raises(ValueError, match=r"short\.key.*3 bytes.*at least 16"):
        Pseudonymizer.from_env(key_file=path)
    monkeypatch.setenv("W1_SHORT_KEY", "short")
    with pytest.raises(ValueError, match=r"\$W1_SHORT_KEY.*5 bytes"):
        Pseudonymizer.from_env("W1_SHORT_KEY")
    with pytest.raises(privacy.MissingKeyError, match="is not a file"):
        Pseudonymizer.from_env(key_file=tmp_path)


def test_numpy_length_and_collision_bound_arguments(p):
    assert Pseudonymizer(KEY, length=np.int64(20)).length == 20
    with pytest.raises(ValueError, match="n_ids"):
        p.collision_bound(-5)


# ---- differentially private counts ------------------------------------------------------------------
def test_noise_refuses_an_unknown_mechanism():
    # Anything but "laplace" used to get Gaussian noise, sensitivity and variance.
    with pytest.raises(ValueError, match=r"mechanism='Laplace'.*accepted"):
        privacy.add_noise([5, 5], 1.0, "Laplace", random_state=0)
    with pytest.raises(ValueError, match="mechanism"):
        privacy.sensitivity("Laplace", 4)
    with pytest.raises(ValueError, match="mechanism"):
        privacy.noise_variance(2.0, "Laplace")


@pytest.mark.parametrize("scale", [0.0, -1.0, float("nan"), float("inf")])
def test_noise_scale_must_be_a_positive_finite_number(scale):
    with pytest.raises(ValueError, match="scale="):
        privacy.add_noise([5], scale, random_state=0)
    with pytest.raises(ValueError, match="scale="):
        privacy.noise_variance(scale)


def test_noise_variance_for_huge_scales():
    assert privacy.noise_variance(1e12, "gaussian") == 1e24          # summing 8e13 terms ran out of memory
    assert privacy.noise_variance(1e20, "laplace") == pytest.approx(2e40, rel=1e-9)   # was a ZeroDivisionError


@pytest.mark.parametrize("counts,match", [
    ([1.7, 2.0], r"counts\[0\] = 1\.7 is not a whole number"),
    ([3, -3], r"counts\[1\] = -3 is negative"),
    ([1.0, np.nan], r"counts\[1\] = nan is not a whole number"),
])
def test_add_noise_refuses_counts_that_are_not_counts(counts, match):
    with pytest.raises(ValueError, match=match):
        privacy.add_noise(counts, 1.0, random_state=0)


@pytest.mark.parametrize("users,items,times,n_items,m,match", [
    ([0, 1.5], [1, 2], [1.0, 2.0], 4, 2, r"users\[1\] = 1\.5 is not a whole number"),
    ([0, 1], [1.9, 2], [1.0, 2.0], 4, 2, r"items\[0\] = 1\.9"),
    ([0, 0], [1, 2], [np.nan, 2.0], 4, 1, r"times\[0\] = nan"),
    ([0, 0], [1, 2], [1.0, 2.0], 4, 0, "max_items_per_user"),
    ([], [], [], -1, 1, "n_items"),
])
def test_clipped_counts_refuse_indices_and_times_they_would_misread(users, items, times, n_items, m, match):
    with pytest.raises(ValueError, match=match):
        privacy.clipped_item_counts(users, items, times, n_items, m)


def test_clipped_counts_unchanged_for_float_indices_that_are_whole():
    counts, dropped = privacy.clipped_item_counts([0.0, 0.0, 1.0], [2.0, 1.0, 1.0], [1.0, 2.0, 3.0], 3, 1)
    assert counts.tolist() == [0, 1, 1] and dropped == pytest.approx(1 / 3)


# ---- the event store ----------------------------------------------------------------------------------
def test_events_users_filter_takes_any_collection_and_matches_stored_ids(tmp_path):
    with EventStore(tmp_path / "int.duckdb") as store:
        store.append([_ev(1, 10, 100.0), _ev(2, 11, 101.0)])
        empty = store.events(users=[])                   # was a DuckDB syntax error ("IN ()")
        assert len(empty) == 0 and list(empty.columns) == ["user_id", "item_id", "timestamp", "event", "rating", "value"]
        assert store.events(users={2})["item_id"].tolist() == [11]          # a set was a DuckDB conversion error
        assert store.events(users=np.array([1, 2]))["item_id"].tolist() == [10, 11]
        assert len(store.events(users=["alice", None, 2 ** 70])) == 0         # ids an integer store cannot hold
    with EventStore(tmp_path / "txt.duckdb") as store:
        store.append([_ev("guest", 10, 100.0), _ev(7, 11, 101.0)])
        assert store.events(users=[7])["item_id"].tolist() == [11]           # an integer is stored as its text


def test_events_refuses_a_window_that_ends_before_it_starts(tmp_path):
    with EventStore(tmp_path / "w.duckdb") as store:
        store.append(_ev(1, 10, 100.0))
        with pytest.raises(ValueError, match=r"since=200\.0 is after until=50\.0"):
            store.events(since=200.0, until=50.0)
        assert len(store.events(since=50.0, until=200.0)) == 1


def test_store_path_must_name_a_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="path is empty"):        # DuckDB opened "" as a throw-away in-memory store
        EventStore("")
    with pytest.raises(TypeError, match="NoneType"):                 # was a file called "None"
        EventStore(None)
    assert not (tmp_path / "None").exists()
    missing = tmp_path / "nope" / "x.duckdb"
    with pytest.raises(FileNotFoundError, match="read_only"):
        EventStore(missing, read_only=True)
    assert not missing.parent.exists()


def test_another_programs_duckdb_file_is_refused_untouched(tmp_path):
    path = tmp_path / "other.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE events (id INTEGER, name VARCHAR)")
    con.close()
    for read_only in (False, True):
        with pytest.raises(ValueError, match=r"not an event store.*'events' lacks column\(s\) \['seq'"):
            EventStore(path, read_only=read_only)
    con = duckdb.connect(str(path))
    tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    con.close()
    assert tables == {"events"}                              # no store tables were added to it


def test_a_closed_store_says_so(tmp_path):
    store = EventStore(tmp_path / "c.duckdb")
    store.append(_ev(1, 10, 100.0))
    store.close()
    assert "closed" in repr(store)                           # repr used to raise
    for use in (len, lambda s: s.events(), lambda s: s.append(_ev(2, 10, 101.0)), lambda s: s.sql("SELECT 1")):
        with pytest.raises(ValueError, match=r"c\.duckdb is closed"):
            use(store)
    with EventStore(tmp_path / "c.duckdb") as again:
        assert len(again) == 1


def test_repeated_columns_and_untypable_column_names(tmp_path):
    dup = pd.DataFrame([[1, 10, 100.0, "view", 2]], columns=["user_id", "item_id", "timestamp", "event", "user_id"])
    with EventStore(tmp_path / "d.duckdb") as store:
        with pytest.raises(ValueError, match=r"repeated column name\(s\) \['user_id'\]"):   # was a pandas shape error
            store.append(dup)
        # A tuple column name used to make json.dumps fail the whole batch.
        odd = pd.DataFrame({"user_id": [1, 2], "item_id": [10, 10], "timestamp": [1.0, 2.0], "event": ["view", "nope"],
                            ("src", "app"): ["a", "b"]})
        res = store.append(odd)
        assert (res.n_written, res.n_quarantined) == (1, 1)
        assert "('src', 'app')" in store.quarantine()["row_json"].iloc[0]
    with pytest.raises(ValueError, match="appear more than once"):
        Pseudonymizer(KEY).frame(dup)
    train = pd.DataFrame({"user_id": [1, 2], "item_id": [10, 11], "timestamp": [1.0, 2.0], "event": ["view"] * 2})
    engine = Engine(Popularity().fit(train))                      # no store: the engine's own row check
    with pytest.raises(ValueError, match=r"repeated column name\(s\) \['user_id'\]"):
        engine.ingest(dup)
    assert engine.n_ingested_ == 0


def test_opening_a_file_two_ways_names_it(tmp_path):
    path = tmp_path / "two.duckdb"
    with EventStore(path) as store:
        store.append(_ev(1, 10, 100.0))
        with pytest.raises(duckdb.Error) as info:
            EventStore(path, read_only=True)
        assert "two.duckdb" in " ".join(getattr(info.value, "__notes__", []))
