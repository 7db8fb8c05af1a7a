"""GRU4Rec and SASRec: they learn order, use event types, save/load, and serve the engine."""
import numpy as np
import pandas as pd
import pytest
import torch

from recapp.models import load
from recapp.models.sequential import GRU4Rec, SASRec
from recapp.realtime import Engine


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # Tiny models on a shared CPU run fastest on one thread.
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _cycles(n_users=60, n_items=20, length=12, seed=0):
    """Each user walks the catalogue in order from a random start: the next item is always current + 1."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        start = int(rng.integers(n_items))
        for t in range(length):
            rows.append((u, (start + t) % n_items, float(t), "view"))
    return pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp", "event"])


def _event_driven(n_users=80, seed=1):
    """The next item depends on the event type alone: after a cart comes item 0, after a view item 1."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        t = 0.0
        for _ in range(8):
            item = int(rng.integers(2, 12))
            ev = "cart" if rng.random() < 0.5 else "view"
            rows.append((u, item, t, ev))
            rows.append((u, 0 if ev == "cart" else 1, t + 1, "view"))
            t += 2
    return pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp", "event"])


SMALL = dict(embedding_dim=16, max_len=10, n_epochs=40, batch_size=32, learning_rate=1e-2, dropout=0.0,
             early_stopping=False, verbose=False, device="auto", random_state=0)


@pytest.mark.parametrize("cls", [GRU4Rec, SASRec])
def test_learns_the_next_item(cls):
    df = _cycles()
    model = cls(**SMALL).fit(df)
    hist = np.array([3, 4, 5])
    scores = model.score_history(hist)
    assert int(np.argmax(scores)) == 6
    recs = model.recommend([0, 1, 2], k=1, exclude_seen=False)
    last = df.groupby("user_id")["item_id"].last()
    assert (recs["item_id"].to_numpy() == (last.loc[[0, 1, 2]].to_numpy() + 1) % 20).all()


@pytest.mark.parametrize("cls", [GRU4Rec, SASRec])
def test_event_type_is_an_input(cls):
    df = _event_driven()
    model = cls(**SMALL).fit(df)
    after_cart = model.encode(np.array([5]), np.array([2]))      # event code 2 = cart
    after_view = model.encode(np.array([5]), np.array([0]))
    E = model.item_vectors()
    assert int(np.argmax(E @ after_cart)) == 0 and int(np.argmax(E @ after_view)) == 1
    blind = cls(**{**SMALL, "use_events": False}).fit(df)
    np.testing.assert_allclose(blind.encode(np.array([5]), np.array([2])), blind.encode(np.array([5]), np.array([0])))


def test_early_stopping_and_progress_log():
    model = SASRec(**{**SMALL, "early_stopping": True, "n_epochs": 30, "patience": 2}).fit(_cycles())
    log = model.train_log_.to_frame()
    assert log["valid"].notna().any() and len(log) <= 30
    assert model.train_log_.best_valid > 0.5
    # refit (the default) trains again on every event for the chosen number of epochs
    assert model.refit_epochs_ == model.train_log_.best_epoch + 1
    assert int(np.argmax(model.score_history(np.array([2, 3])))) == 4


@pytest.mark.parametrize("cls", [GRU4Rec, SASRec])
def test_save_load_roundtrip(tmp_path, cls):
    model = cls(**{**SMALL, "n_epochs": 3}).fit(_cycles())
    model.save(tmp_path / "m")
    again = load(tmp_path / "m")
    assert type(again) is cls
    np.testing.assert_allclose(again.score([0, 5]).to_numpy(), model.score([0, 5]).to_numpy(), rtol=1e-5, atol=1e-6)


def test_sampled_softmax_runs():
    model = GRU4Rec(**{**SMALL, "n_negatives": 5, "n_epochs": 30}).fit(_cycles())
    assert int(np.argmax(model.score_history(np.array([7, 8])))) == 9


def test_engine_re_encodes_the_user():
    df = _cycles()
    model = SASRec(**SMALL).fit(df)
    engine = Engine(model)
    engine.ingest({"user_id": "new", "item_id": 11, "timestamp": 1.0, "event": "view"})
    engine.ingest({"user_id": "new", "item_id": 12, "timestamp": 2.0, "event": "view"})
    out = engine.recommend("new", k=3)
    assert out["item_id"].iloc[0] == 13
    assert out["explanation"].str.startswith("because of").all()
    engine.ingest({"user_id": "new", "item_id": 13, "timestamp": 3.0, "event": "view"})
    assert engine.recommend("new", k=3)["item_id"].iloc[0] == 14


def test_bad_parameters():
    with pytest.raises(ValueError, match="max_len"):
        SASRec(max_len=0).fit(_cycles())
    with pytest.raises(ValueError, match="device"):
        GRU4Rec(device="tpu").fit(_cycles())
