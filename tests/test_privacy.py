"""Pseudonymisation at ingestion (engine, store, model files) and differentially private popularity."""
import hmac
import math
import os
import pickle

import numpy as np
import pandas as pd
import pytest

from recapp import privacy
from recapp.models import EASE, Popularity, load
from recapp.privacy import MissingKeyError, Pseudonymizer
from recapp.realtime import Engine
from recapp.realtime.store import EventStore

KEY = "0123456789abcdef-test-key-not-secret"
RAW_EMAIL = "alice@example.com"
RAW_INT = 987654321012345          # a large integer id, distinctive in a file's bytes


@pytest.fixture(scope="module")
def p():
    return Pseudonymizer(KEY)


@pytest.fixture(scope="module")
def raw_log(shop):
    """The shop's events with distinctive raw shopper ids: e-mail addresses, and one large integer as text."""
    ev = shop.events.copy()
    ids = ev["user_id"].map(lambda u: f"shopper{u}@example.com").astype(object)
    ids[ev["user_id"] == ev["user_id"].iloc[0]] = str(RAW_INT)
    return ev.assign(user_id=ids)


@pytest.fixture(scope="module")
def private_model(raw_log, p):
    return EASE(l2=50.0).fit(p.frame(raw_log))


def _event(user, item, t, event="view", **kw):
    return {"user_id": user, "item_id": item, "timestamp": t, "event": event, **kw}


def _bytes_under(path) -> bytes:
    if os.path.isfile(path):
        return open(path, "rb").read()
    return b"".join(open(os.path.join(d, f), "rb").read() for d, _, fs in os.walk(path) for f in fs)


# ---- the pseudonym --------------------------------------------------------------------------
def test_same_id_same_pseudonym_and_keys_differ(p):
    q = Pseudonymizer(KEY + "-other")
    assert p(RAW_EMAIL) == p(RAW_EMAIL) == Pseudonymizer(KEY)(RAW_EMAIL)
    assert p(RAW_EMAIL) == hmac.digest(KEY.encode(), RAW_EMAIL.encode(), "sha256").hex()[:32]     # the documented definition
    assert p(RAW_EMAIL) != q(RAW_EMAIL)
    assert p(RAW_EMAIL) != p("bob@example.com")
    assert p(7) == p("7") == p(np.int64(7)) == p(7.0)           # ids are compared as text
    assert len(p(RAW_EMAIL)) == 32 and p.looks_like([p(RAW_EMAIL), RAW_EMAIL, 7]).tolist() == [True, False, False]
    assert len(Pseudonymizer(KEY, length=64)(1)) == 64
    assert p.key_id != q.key_id and KEY not in repr(p)


def test_frame_is_vectorised_and_keeps_missing(p):
    df = pd.DataFrame({"user_id": [RAW_EMAIL, None, "", RAW_EMAIL, RAW_INT], "item_id": range(5)})
    out = p.frame(df)
    assert out["user_id"].tolist() == [p(RAW_EMAIL), None, "", p(RAW_EMAIL), p(RAW_INT)]
    assert df["user_id"].iloc[0] == RAW_EMAIL                  # the input is not changed
    with pytest.raises(KeyError, match="session"):
        p.frame(df, columns=("session",))
    assert privacy.pseudonymize_frame(df, p).equals(out)


def test_collision_bound_is_the_birthday_bound(p):
    assert p.collision_bound(1) == 0.0
    assert math.isclose(p.collision_bound(10**9), 10**9 * (10**9 - 1) / 2 / 16.0**32)
    assert p.collision_bound(10**9) < 1e-20


def test_no_key_is_a_clear_error_never_a_default(monkeypatch, tmp_path):
    monkeypatch.delenv("RECAPP_PSEUDONYM_KEY", raising=False)
    monkeypatch.delenv("RECAPP_PSEUDONYM_KEY_FILE", raising=False)
    with pytest.raises(MissingKeyError, match=r"RECAPP_PSEUDONYM_KEY.*new_key_file"):
        Pseudonymizer.from_env()
    with pytest.raises(MissingKeyError, match="RECAPP_PSEUDONYM_KEY"):
        privacy.pseudonymize_frame(pd.DataFrame({"user_id": [1]}))
    with pytest.raises(MissingKeyError, match="does not exist"):
        Pseudonymizer.from_env(key_file=tmp_path / "nope.key")
    with pytest.raises(ValueError, match="at least 16"):
        Pseudonymizer("short")
    with pytest.raises(ValueError, match="length"):
        Pseudonymizer(KEY, length=8)


def test_key_from_env_and_key_file(monkeypatch, tmp_path):
    monkeypatch.setenv("RECAPP_PSEUDONYM_KEY", KEY)
    assert Pseudonymizer.from_env() == Pseudonymizer(KEY)
    path = privacy.new_key_file(tmp_path / "keys" / "p.key")
    assert path.stat().st_mode & 0o777 == 0o600
    with pytest.raises(FileExistsError):
        privacy.new_key_file(path)
    from_file = Pseudonymizer.from_env(key_file=path)
    assert from_file != Pseudonymizer(KEY)
    monkeypatch.delenv("RECAPP_PSEUDONYM_KEY")
    monkeypatch.setenv("RECAPP_PSEUDONYM_KEY_FILE", str(path))
    assert Pseudonymizer.from_env() == from_file
    with pytest.raises(TypeError, match="never pickled"):
        pickle.dumps(from_file)


# ---- nothing raw reaches a file ---------------------------------------------------------------
def test_store_and_model_files_hold_no_raw_ids(tmp_path, raw_log, private_model, p, shop):
    item, t = int(shop.items["item_id"].iloc[0]), float(shop.events["timestamp"].max()) + 1
    events = [_event(RAW_EMAIL, item, t), _event(RAW_INT, item, t + 1, "purchase"),
              _event(RAW_EMAIL, item, t + 2, "bogus", email=RAW_EMAIL)]          # quarantined, with an extra column
    # Control: without pseudonyms the raw ids are in the file, so the grep below can fail.
    with EventStore(tmp_path / "raw.duckdb") as plain:
        plain.append(events)
    raw_bytes = _bytes_under(tmp_path / "raw.duckdb")
    assert RAW_EMAIL.encode() in raw_bytes and str(RAW_INT).encode() in raw_bytes

    engine = Engine(private_model, pseudonymizer=p, store=tmp_path / "shop.duckdb", explain=False)
    res = engine.ingest(events)
    assert (res.n_ingested, res.n_rejected) == (2, 1)
    assert res.rejected["row"].iloc[0]["user_id"] == p(RAW_EMAIL)
    assert len(engine.recommend(RAW_EMAIL, k=5)) == 5            # callers keep using raw ids
    assert engine.history(RAW_EMAIL)["event"].tolist() == ["view"]
    hist = engine.history(RAW_INT)              # the int id is the training shopper str(RAW_INT): one pseudonym
    assert len(hist) > 1 and hist["event"].iloc[-1] == "purchase"
    assert item not in engine.recommend(RAW_INT, k=20)["item_id"].tolist()          # purchased: excluded
    assert set(engine.store.events()["user_id"]) == {p(RAW_EMAIL), p(RAW_INT)}
    assert RAW_EMAIL not in engine.store.quarantine()["row_json"].iloc[0]
    assert all(isinstance(u, str) and p.looks_like([u])[0] for u in engine.shoppers.users)
    engine.store.close()
    private_model.save(tmp_path / "model")

    for path in (tmp_path / "shop.duckdb", tmp_path / "model"):
        data = _bytes_under(path)
        assert b"example.com" not in data and str(RAW_INT).encode() not in data, path
    # Control: a model fitted on raw ids holds them.
    EASE(l2=50.0).fit(raw_log).save(tmp_path / "raw_model")
    assert b"example.com" in _bytes_under(tmp_path / "raw_model")


def test_engine_refuses_raw_model_and_mismatched_store(tmp_path, raw_log, p, private_model):
    with pytest.raises(ValueError, match="pseudonymizer.frame"):
        Engine(EASE(l2=50.0).fit(raw_log), pseudonymizer=p)
    with EventStore(tmp_path / "s.duckdb", pseudonymizer=p) as store:
        with pytest.raises(ValueError, match="pseudonymizer"):
            Engine(private_model, store=store)                   # the engine would keep raw ids
    with pytest.raises(ValueError, match="pseudonymizer"):
        Engine(private_model, store=tmp_path / "s.duckdb")       # the same, given the path
    other = Pseudonymizer(KEY + "-other")
    with pytest.raises(ValueError, match="key id"):
        EventStore(tmp_path / "s.duckdb", pseudonymizer=other)
    with EventStore(tmp_path / "s.duckdb") as store:
        with pytest.raises(ValueError, match="holds pseudonyms"):
            store.append(_event(RAW_EMAIL, 1, 1e9))
    with EventStore(tmp_path / "raw.duckdb") as store:
        store.append(_event(RAW_EMAIL, 1, 1e9))
    with pytest.raises(ValueError, match="raw user ids"):
        EventStore(tmp_path / "raw.duckdb", pseudonymizer=p)


def test_replay_and_refit_keep_pseudonyms(tmp_path, private_model, p, shop):
    items = shop.items["item_id"].tolist()
    engine = Engine(private_model, pseudonymizer=p, store=tmp_path / "s.duckdb", refit_every=4, explain=False)
    engine.ingest([_event(RAW_EMAIL, items[i], 1e9 + i) for i in range(4)])
    assert engine.wait_for_refit(60) and engine.stats()["refits"] == 1, engine.stats()
    ids = engine.model.interactions_.user_ids.tolist()
    assert p(RAW_EMAIL) in ids and p.looks_like(ids).all()
    before = engine.history(RAW_EMAIL)
    engine.store.close()
    again = Engine.from_store(private_model, tmp_path / "s.duckdb", pseudonymizer=p)
    pd.testing.assert_frame_equal(again.history(RAW_EMAIL), before)
    with pytest.raises(ValueError, match="key id"):
        Engine.from_store(private_model, tmp_path / "s.duckdb", pseudonymizer=Pseudonymizer(KEY + "-other"))
    with EventStore(tmp_path / "s.duckdb", read_only=True) as store:
        replayed = store.replay(Engine(private_model, pseudonymizer=p))
        pd.testing.assert_frame_equal(replayed.history(RAW_EMAIL), before)
        with pytest.raises(ValueError, match="key id"):
            store.replay(Engine(private_model, pseudonymizer=Pseudonymizer(KEY + "-other")))
    with pytest.raises(ValueError, match="pseudonymizer"):
        Engine(private_model, store=tmp_path / "s.duckdb")           # a pseudonymised store needs the key


# ---- differentially private counts --------------------------------------------------------------
@pytest.mark.parametrize("mechanism,scale", [("laplace", 3.0), ("gaussian", 4.0), ("laplace", 0.4), ("gaussian", 0.6)])
def test_noise_variance_matches_theory(mechanism, scale):
    theory = privacy.noise_variance(scale, mechanism)
    if scale >= 2:      # a wide discrete distribution has about its continuous variance (2b^2, sigma^2)
        assert theory == pytest.approx(2 * scale**2 if mechanism == "laplace" else scale**2, rel=0.02)
    seeded = privacy.add_noise(np.zeros(200_000, dtype=np.int64), scale, mechanism, random_state=0)
    # Sample variance: relative sd sqrt((kurtosis - 1) / n) is at most 0.5% here, so 3% is over six sd.
    assert seeded.var() == pytest.approx(theory, rel=0.03)
    assert abs(seeded.mean()) < 6 * math.sqrt(theory / len(seeded))
    assert np.all(seeded == np.round(seeded))                  # integer noise on integer counts
    secure = privacy.add_noise(np.zeros(50_000, dtype=np.int64), scale, mechanism)   # OpenDP's sampler if installed
    assert secure.var() == pytest.approx(theory, rel=0.06)


def test_unseeded_noise_without_opendp_is_fresh(monkeypatch):
    monkeypatch.setattr(privacy.dp, "_opendp_noise", lambda *args: None)      # as where opendp is not installed
    a, b = (privacy.add_noise(np.zeros(20_000, dtype=np.int64), 5.0, "laplace") for _ in range(2))
    assert not np.array_equal(a, b)
    assert a.var() == pytest.approx(privacy.noise_variance(5.0, "laplace"), rel=0.1)


def test_calibrated_scales():
    # Laplace: b = L1 sensitivity / epsilon, with L1 = max_items_per_user.
    assert privacy.noise_scale(1.0, None, "laplace", 1) == 1.0
    assert privacy.noise_scale(0.5, None, "laplace", 20) == 40.0
    # Gaussian: sigma grows with the L2 sensitivity sqrt(m); rho = m / (2 sigma^2) meets
    # Bun and Steinke's eps = rho + 2 sqrt(rho log(1/delta)) with equality.
    for eps, delta, m in ((1.0, 1e-6, 1), (0.3, 1e-5, 50), (8.0, 1e-7, 4)):
        sigma = privacy.noise_scale(eps, delta, "gaussian", m)
        rho = m / (2 * sigma**2)
        assert rho + 2 * math.sqrt(rho * math.log(1 / delta)) == pytest.approx(eps, rel=1e-12)
    assert privacy.noise_scale(1.0, 1e-6, "gaussian", 4) == pytest.approx(2 * privacy.noise_scale(1.0, 1e-6, "gaussian", 1))


@pytest.mark.parametrize("mechanism,epsilon,delta,m", [("laplace", 1.0, None, 50), ("laplace", 0.1, None, 3),
                                                       ("gaussian", 1.0, 1e-6, 50), ("gaussian", 0.2, 1e-5, 7)])
def test_scales_meet_the_guarantee_by_opendps_accounting(mechanism, epsilon, delta, m):
    """An independent check: OpenDP's privacy maps, applied to recapp's noise scale, give at most epsilon."""
    import opendp.prelude as dp

    dp.enable_features("contrib")
    scale = privacy.noise_scale(epsilon, delta, mechanism, m)
    domain = dp.vector_domain(dp.atom_domain(T=int))
    if mechanism == "laplace":
        spent = dp.m.make_laplace(domain, dp.l1_distance(T=int), scale=scale).map(m)
    else:
        zcdp = dp.m.make_gaussian(domain, dp.l2_distance(T=float), scale=scale)
        spent, got_delta = dp.c.make_fix_delta(dp.c.make_zCDP_to_approxDP(zcdp), delta).map(math.sqrt(m))
        assert got_delta == delta
    assert spent <= epsilon * (1 + 1e-9)


def test_clipping_keeps_each_users_earliest_items():
    users = np.array([0, 0, 0, 0, 1, 1])
    items = np.array([2, 0, 1, 2, 1, 1])
    times = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    counts, dropped = privacy.clipped_item_counts(users, items, times, 4, max_items_per_user=2)
    assert counts.tolist() == [1, 1, 1, 0]       # user 0: items 2 then 0 (item 1 clipped); user 1: item 1 once
    assert dropped == pytest.approx(1 / 4)
    full, none_dropped = privacy.clipped_item_counts(users, items, times, 4, max_items_per_user=10)
    assert full.tolist() == [1, 2, 1, 0] and none_dropped == 0.0


@pytest.mark.parametrize("kwargs,match", [
    ({"epsilon": 0}, "epsilon"), ({"epsilon": -1.0}, "epsilon"), ({"epsilon": float("inf")}, "epsilon"),
    ({"epsilon": "1"}, "epsilon"), ({"epsilon": True}, "epsilon"),
    ({"epsilon": 1.0, "mechanism": "exponential"}, "mechanism"),
    ({"epsilon": 1.0, "delta": 1e-6}, "delta"),
    ({"epsilon": 1.0, "mechanism": "gaussian"}, "delta"), ({"epsilon": 1.0, "mechanism": "gaussian", "delta": 1.5}, "delta"),
    ({"epsilon": 1.0, "max_items_per_user": 0}, "max_items_per_user"),
    ({"epsilon": 1.0, "half_life": 3600.0}, "half_life"), ({"epsilon": 1.0, "weighted": True}, "weighted"),
])
def test_dp_parameters_are_validated(shop, kwargs, match):
    with pytest.raises(ValueError, match=match):
        Popularity(**kwargs).fit(shop.events)


def test_dp_popularity_release(shop, tmp_path):
    ev = shop.events
    exact = Popularity().fit(ev)
    a = Popularity(epsilon=1.0, random_state=3).fit(ev)
    b = Popularity(epsilon=1.0, random_state=3).fit(ev)
    np.testing.assert_array_equal(a.dp_counts_, b.dp_counts_)                    # seeded: reproducible
    assert not np.array_equal(a.dp_counts_, exact.counts_)
    assert a.privacy_spent_ == (1.0, 0.0) and a.dp_scale_ == pytest.approx(50.0)
    # A huge epsilon with no clipping recovers the exact counts, so the list is Popularity's.
    loose = Popularity(epsilon=1e9, max_items_per_user=10_000, random_state=0).fit(ev)
    np.testing.assert_allclose(loose.dp_counts_, exact.counts_, atol=1.0)
    assert loose.recommend(["new"], k=10)["item_id"].tolist() == exact.recommend(["new"], k=10)["item_id"].tolist()
    # Every update is a new release with new noise, and the budget adds up.
    before = a.dp_counts_.copy()
    a.update(ev.head(5))
    assert a.privacy_spent_ == (2.0, 0.0) and not np.array_equal(a.dp_counts_, before)
    a.save(tmp_path / "pop")
    back = load(tmp_path / "pop")
    np.testing.assert_array_equal(back.dp_counts_, a.dp_counts_)
    assert back.privacy_spent_ == (2.0, 0.0)


def test_engine_popular_now_uses_the_released_counts(shop):
    model = Popularity(epsilon=0.5, mechanism="gaussian", delta=1e-5, random_state=1).fit(shop.events)
    engine = Engine(model, half_life=None)
    top = engine.popular(10)
    order = np.lexsort((np.arange(len(model.dp_counts_)), -model.dp_counts_))[:10]
    assert top["item_id"].tolist() == [model.interactions_.item_ids[i] for i in order]
    np.testing.assert_allclose(top["score"], model.dp_counts_[order])
    exact = Engine(Popularity().fit(shop.events), half_life=None).popular(10)
    assert top["score"].tolist() != exact["score"].tolist()


def test_batch_of_events_keeps_large_ids_exact(p):
    # One missing id used to turn the column into float64, merging ids above 2**53 into one pseudonym.
    big = 2 ** 60 + 1
    out = p.events([{"user_id": big, "item_id": 1}, {"user_id": big + 1, "item_id": 2}, {"user_id": None, "item_id": 3}])
    assert out["user_id"].tolist()[:2] == [p(big), p(big + 1)]
    assert p(big) != p(big + 1)
    assert pd.isna(out["user_id"].iloc[2])                        # a missing id stays missing, for validation
    assert out["item_id"].tolist() == [1, 2, 3]


def test_canonical_id_refuses_floats_too_large_to_hold_an_exact_integer():
    assert privacy.canonical_id(float(2 ** 53 - 1)) == str(2 ** 53 - 1)
    with pytest.raises(ValueError, match=r"user id 1\.15.*2\*\*53"):
        privacy.canonical_id(float(2 ** 60 + 1))


@pytest.mark.parametrize("users,items,match", [
    ([0, 0, 1], [1, 4, 2], r"items\[1\] = 4 .*n_items=4"),
    ([0, 0, 1], [1, 2, -1], r"items\[2\] = -1 .*n_items=4"),
    ([0, -2, 1], [1, 2, 3], r"users\[1\] = -2"),
])
def test_clipped_counts_refuse_indices_outside_the_universe(users, items, match):
    with pytest.raises(ValueError, match=match):
        privacy.clipped_item_counts(users, items, [1.0, 2.0, 3.0], 4, max_items_per_user=2)
