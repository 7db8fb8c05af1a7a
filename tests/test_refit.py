"""Learning the item side while serving: a background refit learns items launched after training."""
from __future__ import annotations

import threading

import pandas as pd
import pytest

from recapp.data.synthetic import synthetic_shop
from recapp.models import EASE
from recapp.realtime import Engine
from recapp.realtime import threads as blas_threads


@pytest.fixture(scope="module")
def shop():
    return synthetic_shop(n_users=200, n_items=100, n_events=12_000, launch_share=0.1, launch_window=(0.6, 0.7),
                          random_state=2)


def test_launch_share_keeps_launched_items_out_of_the_log_until_launch(shop):
    launch = shop.items.set_index("item_id")["launch_time"]
    assert launch.notna().sum() == 10
    t = shop.events["item_id"].map(launch)
    assert not (shop.events["timestamp"] < t).any()
    assert (t.notna()).sum() > 0


def test_refit_swaps_in_a_model_that_knows_the_launched_items(shop):
    ev = shop.events
    launch = shop.items.set_index("item_id")["launch_time"]
    cut = float(launch.min())
    train, live = ev[ev["timestamp"] < cut], ev[ev["timestamp"] >= cut]
    model = EASE(l2=20.0).fit(train)
    launched = set(launch.dropna().index) - set(model.interactions_.item_ids)
    assert launched
    engine = Engine(model, k=10, explain=True, refit_every=len(live) // 2)
    engine.ingest(live.iloc[: len(live) // 2 + 1])
    assert engine.wait_for_refit(timeout=60)
    stats = engine.stats()
    assert stats["refits"] == 1 and stats["refit_error"] is None
    assert engine.model is not model and engine.stats()["model_items"] == engine.n_items
    # Served items come from the refitted model now, launched ones included.
    fans = live[live["item_id"].isin(launched)]["user_id"].unique()[:20]
    from_model = [r for u in fans for _, r in engine.recommend(u).iterrows() if r["item_id"] in launched]
    assert any(r["explanation"] != "popular now" for r in from_model)
    # Ingest went on during and after the refit; nothing was lost.
    engine.ingest(live.iloc[len(live) // 2 + 1:])
    assert engine.stats()["events_ingested"] == len(live)


def test_a_failing_refit_keeps_serving(shop):
    ev = shop.events
    model = EASE(l2=20.0).fit(ev.iloc[:5000])
    engine = Engine(model, k=5, refit_every=10)
    model.l2 = -1.0      # the copy refuses to fit; the engine must keep the served model
    engine.ingest(ev.iloc[5000:5020])
    assert engine.wait_for_refit(timeout=60)
    assert "l2" in engine.stats()["refit_error"] and engine.model is model
    assert len(engine.recommend(int(ev["user_id"].iloc[5000]))) == 5
    model.l2 = 20.0


def test_refit_every_is_checked(shop):
    with pytest.raises(ValueError, match="refit_every"):
        Engine(EASE().fit(shop.events.iloc[:2000]), refit_every=0)


# ---- refits learn each live event once; a refit that cannot start or a failed BLAS switch hangs nothing ----

_TRAIN = pd.DataFrame({"user_id": [1, 1, 2, 2, 3], "item_id": [10, 11, 10, 12, 11],
                       "timestamp": [1.0, 2, 3, 4, 5], "event": ["view"] * 5})


def _rows(frame):
    return sorted(zip(frame["user_id"], frame["item_id"], frame["timestamp"]))


def test_each_refit_learns_training_rows_plus_every_live_event_exactly_once():
    engine = Engine(EASE().fit(_TRAIN), refit_every=2)
    live = []
    for r in range(4):
        batch = [{"user_id": 1 + (2 * r) % 5, "item_id": 10 + r % 3, "timestamp": 10.0 + 2 * r, "event": "view"},
                 {"user_id": 4 + r, "item_id": 99 + r, "timestamp": 11.0 + 2 * r, "event": "view"}]
        engine.ingest(batch)
        live += batch
        assert engine.wait_for_refit(timeout=60)
        stats = engine.stats()
        assert stats["refits"] == r + 1 and stats["refit_error"] is None
        got = _rows(engine.model.interactions_.frame)
        assert got == _rows(pd.concat([_TRAIN, pd.DataFrame(live)])), f"after refit {r + 1}"


def test_a_refit_thread_that_cannot_start_hangs_nothing_and_the_next_ingest_refits(monkeypatch):
    engine = Engine(EASE().fit(_TRAIN), refit_every=1)
    model = engine.model
    start = threading.Thread.start

    def failing_start(self):
        if self.name == "recapp-refit":
            raise RuntimeError("can't start new thread")
        return start(self)

    monkeypatch.setattr(threading.Thread, "start", failing_start)
    first = {"user_id": 1, "item_id": 12, "timestamp": 10.0, "event": "view"}
    assert engine.ingest(first).n_ingested == 1          # applied, and the ingest does not raise
    assert engine.wait_for_refit(timeout=5)
    assert "can't start new thread" in engine.stats()["refit_error"] and engine.model is model
    assert engine.stats()["events_ingested"] == 1
    monkeypatch.undo()
    second = {"user_id": 2, "item_id": 11, "timestamp": 11.0, "event": "view"}
    engine.ingest(second)
    assert engine.wait_for_refit(timeout=60)
    stats = engine.stats()
    assert stats["refits"] == 1 and stats["refit_error"] is None and engine.model is not model
    # The refit that could not start is not lost: the next one learns its event too, once.
    assert _rows(engine.model.interactions_.frame) == _rows(pd.concat([_TRAIN, pd.DataFrame([first, second])]))


class _FailingBlas:
    def __init__(self, fail_on_set):
        self.num_threads, self.fail_on_set, self.calls = 2, fail_on_set, []

    def set_num_threads(self, n):
        self.calls.append(n)
        if n in self.fail_on_set:
            raise OSError("set_num_threads failed")
        self.num_threads = n


def _background_fit_enters(timeout=3.0) -> bool:
    entered = threading.Event()

    def fit():
        with blas_threads.background_fit():
            entered.set()

    threading.Thread(target=fit, daemon=True).start()
    return entered.wait(timeout)


@pytest.mark.parametrize("fail_on_set", [{1}, {2}], ids=["switching-to-one", "switching-back"])
def test_a_failed_blas_thread_switch_leaves_background_fits_free_to_run(fail_on_set):
    before = blas_threads._events_switched
    ok, other = _FailingBlas(set()), _FailingBlas(fail_on_set)
    try:
        with blas_threads._OneThread([ok, other]):   # an event must not fail for it either
            pass
        assert blas_threads._events_switched == before
        assert ok.num_threads == 2                      # what was switched is put back
        assert _background_fit_enters()
    finally:   # old code: release the stuck counter so later tests do not hang
        with blas_threads._switches:
            blas_threads._events_switched = before
            blas_threads._switches.notify_all()
