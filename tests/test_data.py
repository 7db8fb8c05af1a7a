"""Data loaders: MovieLens, Open Bandit, event files and the synthetic shop."""
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import recapp.data as data
from recapp.data import DataSourceError, data_dir, load_movielens, load_open_bandit, read_events, synthetic_shop
from recapp.data import movielens as ml
from recapp.data import openbandit as ob
from recapp.data.cache import file_digest
from recapp.data.synthetic import true_affinity
from recapp.schema import EVENT_TYPES, FUNNEL, REQUIRED_COLUMNS, SchemaError, validate

SCHEMA_COLUMNS = ["user_id", "item_id", "timestamp", "event", "value"]


@pytest.fixture(scope="session")
def real_cache() -> Path:
    """The cache `make data` fills (``$RECAPP_DATA`` or ``~/.cache/recapp``), before any test moves it."""
    return data_dir()


@pytest.fixture
def empty_cache(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "cache"
    monkeypatch.setenv("RECAPP_DATA", str(root))
    return root


def copy_wheel(cache: Path, requirement: str, sha: str) -> None:
    """Put a verified wheel into a temporary cache so fallbacks run offline."""
    from recapp.data.cache import fetch_wheel

    wheel = fetch_wheel(requirement, sha)  # from the real cache: RECAPP_DATA is not patched yet
    (cache / "wheels").mkdir(parents=True, exist_ok=True)
    shutil.copy(wheel, cache / "wheels" / wheel.name)


def fail(*args, **kwargs):
    raise DataSourceError("simulated outage")


# --- MovieLens --------------------------------------------------------------------------------

def test_movielens_counts_columns_and_dtypes(real_cache):
    interactions, items, users, source = load_movielens()
    assert len(interactions) == 100_000
    assert interactions["user_id"].nunique() == 943 and interactions["item_id"].nunique() == 1_682
    assert list(interactions.columns) == ["user_id", "item_id", "rating", "timestamp", "event"]
    assert interactions.dtypes[["user_id", "item_id"]].eq(np.int64).all()
    assert interactions.dtypes[["rating", "timestamp"]].eq(np.float64).all()
    assert set(interactions["event"]) == {"rating"}
    assert interactions["rating"].between(1, 5).all()
    assert interactions["timestamp"].between(8.7e8, 8.95e8).all()  # Sept 1997 - April 1998
    assert list(items.columns) == ["item_id", "title", "year", "genres"] and len(items) == 1_682
    assert list(users.columns) == ["user_id", "age", "gender", "occupation"] and len(users) == 943
    assert "Toy Story" in items.loc[items["item_id"] == 1, "title"].iloc[0]
    _, report = validate(interactions)
    assert report.n_dropped == 0


def test_movielens_corrupted_cache_is_detected_and_replaced(real_cache, tmp_path, monkeypatch):
    load_movielens()  # make sure the real cache is filled
    cache = tmp_path / "cache"
    copy_wheel(cache, ml.RECBOLE_WHEEL, ml.RECBOLE_WHEEL_SHA256)
    shutil.copytree(real_cache / "movielens-100k" / "recbole", cache / "movielens-100k" / "recbole")
    inter = cache / "movielens-100k" / "recbole" / "ml-100k.inter"
    with open(inter, "r+b") as fh:
        fh.seek(200)
        fh.write(b"9")  # one flipped digit: a rating that silently changed
    monkeypatch.setenv("RECAPP_DATA", str(cache))
    monkeypatch.setattr(ml, "download", fail)  # GroupLens unreachable: the wheel must serve
    m = load_movielens()
    assert "recbole" in m.source and len(m.interactions) == 100_000
    assert file_digest(inter) == ml.RECBOLE_FILES["ml-100k.inter"]
    assert load_movielens().source.startswith("cache")


def test_movielens_failed_sources_are_named(empty_cache, monkeypatch):
    monkeypatch.setattr(ml, "download", fail)
    monkeypatch.setattr(ml, "fetch_wheel", fail)
    with pytest.raises(DataSourceError) as err:
        load_movielens()
    assert "GroupLens" in str(err.value) and "recbole==1.2.1" in str(err.value) and "simulated outage" in str(err.value)
    with pytest.raises(DataSourceError, match="downloads are disabled"):
        load_movielens(allow_download=False)
    with pytest.raises(ValueError, match=r"accepted values: \['100k'\]"):
        load_movielens("1m")


def _truncated_zip(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"PK\x03\x04 truncated")


def _tampered_zip(path: Path) -> None:
    """A well-formed zip whose content is not the publisher's."""
    import zipfile

    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("ml-100k/u.data", "1\t1\t5\t0\n")


@pytest.mark.parametrize("make_bad", [_truncated_zip, _tampered_zip])
def test_movielens_bad_cached_zip_is_removed_and_replaced(real_cache, tmp_path, monkeypatch, make_bad):
    cache = tmp_path / "cache"
    copy_wheel(cache, ml.RECBOLE_WHEEL, ml.RECBOLE_WHEEL_SHA256)
    zip_path = cache / "movielens-100k" / "ml-100k.zip"
    make_bad(zip_path)
    monkeypatch.setenv("RECAPP_DATA", str(cache))
    tried = []

    def unreachable(url, dest, **kwargs):
        tried.append(url)
        raise DataSourceError("simulated outage")

    monkeypatch.setattr(ml, "download", unreachable)
    m = load_movielens()
    assert tried == [ml.GROUPLENS_URL]  # the bad copy did not stop the download being tried
    assert "recbole" in m.source and len(m.interactions) == 100_000
    assert not zip_path.exists()


@pytest.mark.parametrize("make_bad", [_truncated_zip, _tampered_zip])
def test_movielens_bad_cached_zip_without_downloads_is_named(empty_cache, make_bad):
    zip_path = empty_cache / "movielens-100k" / "ml-100k.zip"
    make_bad(zip_path)
    with pytest.raises(DataSourceError, match="ml-100k.zip") as err:
        load_movielens(allow_download=False)
    assert "downloads are disabled" in str(err.value)
    assert not zip_path.exists()


def _serve_once(response: bytes) -> str:
    """A one-shot HTTP server on 127.0.0.1 that answers ``response``; returns its URL."""
    import socket
    import threading

    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    srv.settimeout(10)

    def serve():
        try:
            conn, _ = srv.accept()
            with conn:
                conn.recv(4096)
                conn.sendall(response)
        except OSError:
            pass
        finally:
            srv.close()

    threading.Thread(target=serve, daemon=True).start()
    return f"http://127.0.0.1:{srv.getsockname()[1]}/ml-100k.zip"


SHORT_BODY = b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"PK" * 100


def test_download_errors_are_data_source_errors(tmp_path):
    from recapp.data.cache import download

    url = _serve_once(SHORT_BODY)
    with pytest.raises(DataSourceError, match="could not download http://127.0.0.1:") as err:
        download(url, tmp_path / "x.zip", md5=ml.GROUPLENS_MD5)
    assert url in str(err.value)
    with pytest.raises(DataSourceError, match="could not download 'no-scheme/ml-100k.zip'|could not download no-scheme/ml-100k.zip"):
        download("no-scheme/ml-100k.zip", tmp_path / "y.zip")
    assert list(tmp_path.iterdir()) == []


def test_movielens_truncated_download_falls_back(empty_cache, monkeypatch):
    url = _serve_once(SHORT_BODY)
    monkeypatch.setattr(ml, "fetch_wheel", fail)
    with pytest.raises(DataSourceError) as err:
        load_movielens(url=url)
    assert f"GroupLens ({url})" in str(err.value) and "simulated outage" in str(err.value)
    assert not (empty_cache / "movielens-100k" / "ml-100k.zip").exists()


# --- Open Bandit ------------------------------------------------------------------------------

@pytest.mark.parametrize("policy", ["random", "bts"])
def test_open_bandit_sample(policy, real_cache):
    d = load_open_bandit(policy, "all")
    r = d.rounds
    assert (d.policy, d.campaign) == (policy, "all")
    assert len(r) == 10_000
    assert list(r.columns[:6]) == ["timestamp", "datetime", "item_id", "position", "click", "propensity_score"]
    assert r["timestamp"].dtype == np.float64 and r["timestamp"].is_monotonic_increasing
    assert r["timestamp"].between(1574553600, 1575158400).all()  # the week of 24-30 November 2019 (UTC)
    assert r["datetime"].dt.tz is not None
    assert set(r["position"].unique()) == {1, 2, 3}
    p = r["propensity_score"].to_numpy()
    assert ((p > 0) & (p <= 1)).all()
    assert 10 <= r["click"].sum() <= 200 and set(r["click"].unique()) <= {0, 1}
    assert [c for c in r.columns if c.startswith("user_feature_")] == [f"user_feature_{k}" for k in range(4)]
    assert isinstance(r["user_feature_0"].dtype, pd.CategoricalDtype)
    affinity = [c for c in r.columns if c.startswith("user-item_affinity_")]
    assert len(affinity) == 80 and (r[affinity].dtypes == np.float64).all()
    items = d.item_context
    assert len(items) == 80 and items["item_id"].tolist() == list(range(80))
    assert r["item_id"].isin(items["item_id"]).all()
    if policy == "random":
        np.testing.assert_allclose(p, 1 / 80)  # uniform over 80 items
    else:
        assert p.std() > 0


def test_open_bandit_bad_arguments():
    with pytest.raises(ValueError, match=r"policy='ucb'.*\['random', 'bts'\]"):
        load_open_bandit("ucb")
    with pytest.raises(ValueError, match=r"campaign='kids'.*\['all', 'men', 'women'\]"):
        load_open_bandit("random", "kids")


def test_open_bandit_corrupted_cache_is_replaced(real_cache, tmp_path, monkeypatch):
    load_open_bandit("random", "men")
    cache = tmp_path / "cache"
    copy_wheel(cache, ob.OBP_WHEEL, ob.OBP_WHEEL_SHA256)
    folder = cache / "open-bandit" / "random" / "men"
    shutil.copytree(real_cache / "open-bandit" / "random" / "men", folder)
    (folder / "men.csv").write_text("truncated")
    monkeypatch.setenv("RECAPP_DATA", str(cache))
    d = load_open_bandit("random", "men")
    assert d.source == "the obp==0.4.1 wheel" and len(d.rounds) == 10_000
    assert file_digest(folder / "men.csv") == ob.OBD_FILES["random/men/men.csv"]


def test_open_bandit_failed_source_is_named(empty_cache, monkeypatch):
    monkeypatch.setattr(ob, "fetch_wheel", fail)
    with pytest.raises(DataSourceError, match=r"obp==0\.4\.1 wheel: simulated outage"):
        load_open_bandit("bts", "women")
    with pytest.raises(DataSourceError, match="downloads are disabled"):
        load_open_bandit("bts", "women", allow_download=False)


def test_a_folder_where_a_cached_file_belongs_is_named(empty_cache):
    # Before, the checksum read raised IsADirectoryError, naming no cache and no way out.
    (empty_cache / "open-bandit" / "random" / "men" / "men.csv").mkdir(parents=True)
    with pytest.raises(DataSourceError, match=r"expects a file at .*men\.csv but finds a folder"):
        load_open_bandit("random", "men", allow_download=False)


def test_open_bandit_from_a_user_folder(real_cache, tmp_path):
    load_open_bandit("bts", "men")
    src = real_cache / "open-bandit" / "bts" / "men"
    root = tmp_path / "obd"
    shutil.copytree(src, root / "bts" / "men")
    d = load_open_bandit("bts", "men", data_path=root)
    assert d.source == f"folder {root / 'bts' / 'men'}" and len(d.rounds) == 10_000
    # The campaign folder itself is accepted too.
    assert len(load_open_bandit("bts", "men", data_path=root / "bts" / "men").rounds) == 10_000
    with pytest.raises(FileNotFoundError, match=r"random.*men\.csv"):
        load_open_bandit("random", "men", data_path=root)
    broken = pd.read_csv(src / "men.csv").drop(columns="propensity_score")
    broken.to_csv(root / "bts" / "men" / "men.csv", index=False)
    with pytest.raises(SchemaError, match=r"men\.csv: missing Open Bandit column\(s\) \['propensity_score'\]"):
        load_open_bandit("bts", "men", data_path=root)


# --- read_events ------------------------------------------------------------------------------

def raw_log() -> pd.DataFrame:
    return pd.DataFrame({
        "visitorid": [1, 1, 2, 2, 2, None],
        "itemid": ["a", "b", "a", "a", "c", "c"],
        "ts": [1_700_000_000_000, 1_700_000_001_000, 1_700_000_002_000, 1_700_000_002_000, 1_700_000_003_000, 1_700_000_004_000],
        "behavior": ["pv", "pv", "addtocart", "addtocart", "buy", "pv"],
    })


@pytest.mark.parametrize("suffix", [".csv", ".csv.gz", ".parquet", ".tsv"])
def test_read_events_files(tmp_path, suffix):
    path = tmp_path / f"log{suffix}"
    raw = raw_log()
    if suffix == ".parquet":
        raw.to_parquet(path)
    else:
        raw.to_csv(path, index=False, sep="\t" if suffix == ".tsv" else ",")
    df, report = read_events(path, return_report=True)
    assert list(df.columns) == list(REQUIRED_COLUMNS)
    assert df["event"].tolist() == ["view", "view", "cart", "purchase"]
    assert df["timestamp"].tolist() == [1_700_000_000.0, 1_700_000_001.0, 1_700_000_002.0, 1_700_000_003.0]
    assert (report.n_input, report.n_output) == (6, 4)
    assert df["user_id"].dtype == np.int64 and df["user_id"].tolist() == [1, 1, 2, 2]
    assert report.counts().to_dict() == {"missing user or item id": 1, "exact duplicate": 1}
    assert df.attrs["validation_report"] == report.summary()
    assert isinstance(read_events(str(path)), pd.DataFrame)


def test_read_events_csv_ids_are_read_as_written(tmp_path):
    # Zero-padded ids stay text: "007" and "7" are two items, not one duplicate.
    (tmp_path / "lz.csv").write_text("user_id,item_id,timestamp,event\n1,007,100,view\n1,7,100,view\n2,0042,200,view\n")
    df, report = read_events(tmp_path / "lz.csv", return_report=True)
    assert df["item_id"].tolist() == ["007", "7", "0042"] and report.n_dropped == 0
    assert df["user_id"].dtype == np.int64 and df["user_id"].tolist() == [1, 1, 2]
    # Ids beyond 2**53 survive a blank cell exactly (a float column would round them).
    (tmp_path / "big.tsv").write_text(
        "visitorid\titemid\tts\tbehavior\n9007199254740993\t1\t100\tpv\n\t2\t100\tpv\n9007199254740995\t1\t100\tpv\n")
    df, report = read_events(tmp_path / "big.tsv", return_report=True)
    assert df["user_id"].dtype == np.int64 and df["user_id"].tolist() == [9007199254740993, 9007199254740995]
    assert report.counts().to_dict() == {"missing user or item id": 1}
    # Custom aliases are resolved before the id columns are picked; ids that do not read back
    # exactly (" 5", "+6", "-0", or past int64) keep the column as text.
    for ids in (["5", " 5"], ["5", "+6"], ["5", "-0"], ["5", str(2**63)]):
        (tmp_path / "odd.csv").write_text("Shopper,SKU,When,What\n" + "".join(f"{u},{i},{i},view\n" for i, u in enumerate(ids, 1)))
        df = read_events(tmp_path / "odd.csv", aliases={"shopper": "user_id", "sku": "item_id", "when": "timestamp", "what": "event"})
        assert df["user_id"].tolist() == ids, ids
        assert df["item_id"].dtype == np.int64
    for ids in (["-3", "4"], ["1.0", "2.0"], ["1", "1.0"], ["1.0", "2.5"]):
        (tmp_path / "ids.csv").write_text("user_id,item_id,timestamp,event\n" + "".join(f"{u},1,{t},view\n" for t, u in enumerate(ids)))
        got = read_events(tmp_path / "ids.csv")["user_id"]
        if ids in (["-3", "4"], ["1.0", "2.0"]):  # one uniform integer form: int64
            assert got.dtype == np.int64 and got.tolist() == [int(float(v)) for v in ids]
        else:  # "1" and "1.0" would merge, "2.5" is no integer: text, as written
            assert got.tolist() == ids


def test_read_events_frame_custom_aliases_and_options():
    raw = pd.DataFrame({"Shopper": ["x", "x"], "SKU": [1, 1], "When": ["2024-01-01T00:00:00Z"] * 2, "What": ["view"] * 2})
    df = read_events(raw, aliases={"shopper": "user_id", "when": "timestamp", "what": "event"}, drop_duplicates=False)
    assert len(df) == 2 and df["timestamp"].tolist() == [1704067200.0] * 2
    assert "2 rows in, 2 kept" in df.attrs["validation_report"]
    assert raw.columns.tolist() == ["Shopper", "SKU", "When", "What"]  # the caller's frame is untouched


def test_read_events_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        read_events(tmp_path / "nope.csv")
    (tmp_path / "log.xlsx").write_text("x")
    with pytest.raises(ValueError, match=r"'\.xlsx'.*accepted suffixes: \['\.csv'"):
        read_events(tmp_path / "log.xlsx")
    with pytest.raises(TypeError, match="got int"):
        read_events(3)
    (tmp_path / "bad.csv").write_text("user_id,item_id,timestamp\n1,2,3\n")
    with pytest.raises(SchemaError, match="missing required column"):
        read_events(tmp_path / "bad.csv")


# --- synthetic shop ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def shop():
    return synthetic_shop(n_users=300, n_items=200, n_events=20_000, random_state=7)


def test_synthetic_is_deterministic_by_seed(shop):
    again = synthetic_shop(n_users=300, n_items=200, n_events=20_000, random_state=7)
    for a, b in zip(shop, again):
        if isinstance(a, pd.DataFrame):
            pd.testing.assert_frame_equal(a, b)
        else:
            np.testing.assert_array_equal(a, b)
    other = synthetic_shop(n_users=300, n_items=200, n_events=20_000, random_state=8)
    assert not other.events.equals(shop.events)


def test_synthetic_events_follow_the_schema(shop):
    e = shop.events
    assert list(e.columns) == SCHEMA_COLUMNS and len(e) == 20_000
    assert e["timestamp"].is_monotonic_increasing
    start = pd.Timestamp("2024-01-01", tz="UTC").timestamp()
    assert e["timestamp"].min() >= start and e["timestamp"].max() < start + 31 * 86_400
    assert set(e["event"]) == set(FUNNEL) and set(e["event"]) <= set(EVENT_TYPES)
    out, report = validate(e)
    assert report.n_dropped == 0 and len(out) == len(e)
    assert e["user_id"].between(0, 299).all() and e["item_id"].between(0, 199).all()


def test_synthetic_funnel(shop):
    e = shop.events
    counts = e["event"].value_counts()
    assert counts["purchase"] <= counts["cart"] <= counts["click"] <= counts["view"]
    assert 0.01 < counts["purchase"] / counts["view"] < 0.2
    # Within each shopper-item pair, every step is preceded by the step before it.
    steps = pd.DataFrame({s: (e["event"] == s).astype(int) for s in FUNNEL})
    cum = steps.groupby([e["user_id"], e["item_id"]]).cumsum()
    for before, after in zip(FUNNEL, FUNNEL[1:]):
        assert (cum[after] <= cum[before]).all(), f"a {after} came before its {before}"
    purchase = e["event"] == "purchase"
    price = shop.items.set_index("item_id")["price"]
    np.testing.assert_allclose(e.loc[purchase, "value"], price.loc[e.loc[purchase, "item_id"]].to_numpy())
    assert (e.loc[~purchase, "value"] == 0).all()


def test_synthetic_catalogue_users_and_ground_truth(shop):
    items, users = shop.items, shop.users
    assert list(items.columns) == ["item_id", "category", "brand", "price", "title", "description"]
    assert items["item_id"].tolist() == list(range(200)) and (items["price"] > 0).all()
    assert all(b in t for b, t in zip(items["brand"], items["title"]))
    assert list(users.columns) == ["user_id", "favorite_category", "activity"]
    np.testing.assert_allclose(users["activity"].sum(), 1.0)
    util = true_affinity(shop)
    assert util.shape == (300, 200)
    np.testing.assert_allclose(util, shop.user_factors @ shop.item_factors.T + shop.item_bias)
    np.testing.assert_allclose(shop.affinity([3, 5], [1, 2]), util[np.ix_([3, 5], [1, 2])])
    assert true_affinity(shop, 4).shape == (200,)
    e = shop.events
    # Shoppers view what they like, and buy what they like best.
    viewed = util[e["user_id"], e["item_id"]]
    bought = (e["event"] == "purchase").to_numpy()
    assert viewed.mean() > util.mean() + 1 and viewed[bought].mean() > viewed.mean()
    # Activity is long-tailed: the busiest tenth of shoppers make far more than a tenth of the log.
    per_user = e["user_id"].value_counts()
    assert per_user.iloc[: len(per_user) // 10].sum() > 0.25 * len(e)
    # Content carries signal: most events fall in the shopper's favourite category's neighbourhood.
    cat = items["category"].to_numpy()[e["item_id"]]
    fav = users["favorite_category"].to_numpy()[e["user_id"]]
    assert (cat == fav).mean() > 3 / items["category"].nunique()


@pytest.mark.parametrize("n_users, n_items, n_events", [(1, 1, 1), (2, 3, 7), (5, 40, 1_000)])
def test_synthetic_small_sizes(n_users, n_items, n_events):
    s = synthetic_shop(n_users=n_users, n_items=n_items, n_events=n_events)
    assert len(s.events) == n_events and len(s.items) == n_items and len(s.users) == n_users
    assert s.events["event"].iloc[0] == "view"


def test_synthetic_bad_arguments():
    with pytest.raises(ValueError, match="n_items must be an integer >= 1"):
        synthetic_shop(n_items=0)
    with pytest.raises(ValueError, match="n_categories=20 exceeds n_items=5"):
        synthetic_shop(n_items=5, n_categories=20)
    with pytest.raises(ValueError, match="funnel_rates"):
        synthetic_shop(funnel_rates=(0.5, 1.5, 0.2))
    for n_items, share in ((2, 0.75), (1, 0.6), (4, 0.9)):
        with pytest.raises(ValueError, match=rf"launch_share={share} would launch every one of the n_items={n_items} items"):
            synthetic_shop(n_users=5, n_items=n_items, n_events=50, launch_share=share)
    assert len(synthetic_shop(n_users=5, n_items=4, n_events=50, launch_share=0.6).events) == 50


def test_synthetic_default_size():
    s = synthetic_shop()
    assert len(s.events) == 50_000


@pytest.mark.slow
def test_synthetic_large_catalogue():
    # Generation time is measured by benchmarks/realtime.py (the shop-size catalogue's generate_s).
    s = synthetic_shop(n_users=20_000, n_items=100_000, n_events=1_000_000, random_state=1)
    assert len(s.events) == 1_000_000 and len(s.items) == 100_000


def test_package_exports():
    for name in ("load_movielens", "load_open_bandit", "read_events", "synthetic_shop", "data_dir", "DataSourceError"):
        assert hasattr(data, name), name


def test_fetch_all_reports_every_dataset(real_cache):
    sources = data.fetch_all()
    assert len(sources) == 7
    assert set(sources) >= {"movielens-100k", "open-bandit/random/all", "open-bandit/bts/women"}
