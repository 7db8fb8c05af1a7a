"""Saved model folders: ids come back exactly, and edited or mismatched files are refused with the file named."""
import json
import shutil

import numpy as np
import pandas as pd
import pytest
from safetensors.numpy import load_file, save_file

from recapp.interactions import events_fingerprint
from recapp.models import EASE, ItemKNN, Popularity, UserKNN, load


def _events(users, items):
    n = len(users)
    return pd.DataFrame({"user_id": users, "item_id": items, "timestamp": np.arange(n, dtype=float), "event": ["view"] * n})


def _shop(n_users=12, n_items=20, seed=0):
    rng = np.random.default_rng(seed)
    rows = [(u, int(i)) for u in range(n_users) for i in rng.choice(n_items, size=6, replace=False)]
    return _events([u for u, _ in rows], [i for _, i in rows])


def _object(values):
    return pd.Series(values, dtype=object)


ID_CASES = {
    "object ints": (_object([1, 2, 3, 1]), _object([10, 11, 12, 12])),
    "mixed": (_object([1, "a", 2, "a"]), _object(["x", 5, 6, 5])),
    "floats": (pd.Series([1.5, 2.5, 3.0, 1.5]), pd.Series([0.25, 1.0, 2.0, 2.0])),
    "uint64 above 2**63": (pd.Series([2**64 - 1, 2**63 + 5, 7, 7], dtype=np.uint64),
                           pd.Series([2**63 + 1, 3, 4, 4], dtype=np.uint64)),
    "int32": (pd.Series([1, 2, 3, 1], dtype=np.int32), pd.Series([10, 11, 12, 12], dtype=np.int32)),
    "int64": (pd.Series([1, 2, 3, 1]), pd.Series([10, 11, 12, 12])),
    "str": (pd.Series(["u1", "u2", "u3", "u1"]), pd.Series(["i1", "i2", "i3", "i3"])),
}


def _same_ids(a: pd.Index, b: pd.Index):
    assert a.dtype == b.dtype and a.tolist() == b.tolist()
    assert [type(v) for v in a.tolist()] == [type(v) for v in b.tolist()]


@pytest.mark.parametrize("case", list(ID_CASES))
def test_ids_of_every_kind_come_back_exactly(case, tmp_path):
    df = _events(*ID_CASES[case])
    m = EASE().fit(df)
    back = load(m.save(tmp_path / "m"))
    _same_ids(back.interactions_.user_ids, m.interactions_.user_ids)
    _same_ids(back.interactions_.item_ids, m.interactions_.item_ids)
    assert back.interactions_.fingerprint() == m.interactions_.fingerprint() == events_fingerprint(df)
    user = df.user_id.iloc[0]
    got, want = back.recommend([user], k=2), m.recommend([user], k=2)
    assert not got.fallback.any()
    assert got.item_id.tolist() == want.item_id.tolist()
    assert [type(v) for v in got.item_id] == [type(v) for v in want.item_id]


@pytest.mark.parametrize("case, dtype", [("int64", "int64"), ("str", "str")])
def test_int64_and_str_ids_keep_their_file_format_and_fingerprint(case, dtype, tmp_path):
    df = _events(*ID_CASES[case])
    path = EASE().fit(df).save(tmp_path / "m")
    config = json.loads((path / "config.json").read_text())
    assert config["user_ids"]["dtype"] == config["item_ids"]["dtype"] == dtype
    assert config["data_fingerprint"] == events_fingerprint(df)


def test_ids_that_json_cannot_hold_are_refused_on_save(tmp_path):
    df = _events(pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-01"]), [1, 2, 3])
    m = Popularity().fit(df)
    with pytest.raises(ValueError, match="user_ids.*datetime64"):
        m.save(tmp_path / "m")


# ---- edited or mismatched files --------------------------------------------------------------
@pytest.fixture()
def saved(tmp_path):
    return EASE().fit(_shop()).save(tmp_path / "m")


def _edit_config(path, change):
    config = json.loads((path / "config.json").read_text())
    config = change(config) or config
    (path / "config.json").write_text(json.dumps(config))


def test_state_of_another_fit_is_refused(saved, tmp_path):
    other = EASE().fit(_shop(n_items=8, seed=1)).save(tmp_path / "other")
    shutil.copy(other / "state.safetensors", saved / "state.safetensors")
    with pytest.raises(ValueError, match="state.safetensors"):
        load(saved)


def test_model_array_of_another_fit_is_refused(saved, tmp_path):
    other = EASE().fit(_shop(n_items=8, seed=1)).save(tmp_path / "other")
    arrays = load_file(str(saved / "state.safetensors"))
    arrays["model.B"] = load_file(str(other / "state.safetensors"))["model.B"]
    save_file(arrays, str(saved / "state.safetensors"))
    n_items = json.loads((saved / "config.json").read_text())["n_items"]
    with pytest.raises(ValueError, match=rf"state.safetensors: model.B has shape \(8, 8\) but the config's {n_items} "
                                         rf"items need \({n_items}, {n_items}\)"):
        load(saved)


def test_another_class_in_the_config_is_refused(saved):
    _edit_config(saved, lambda c: c.update({"class": "ItemKNN", "params": ItemKNN().get_params()}))
    with pytest.raises(ValueError, match=r"state.safetensors.*does not match class ItemKNN.*S_data"):
        load(saved)
    _edit_config(saved, lambda c: c.update({"params": EASE().get_params()}))
    with pytest.raises(ValueError, match=r"config.json.*params.*ItemKNN"):
        load(saved)


@pytest.mark.parametrize("name", ["config.json", "state.safetensors"])
def test_truncated_files_are_named(saved, name):
    data = (saved / name).read_bytes()
    (saved / name).write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=name):
        load(saved)


@pytest.mark.parametrize("change, match", [
    (lambda c: {k: v for k, v in c.items() if k != "params"}, r"config.json: missing key\(s\) \['params'\]"),
    (lambda c: [c], "config.json: must hold a JSON object"),
    (lambda c: c["params"].update(l2=-1), "config.json: params do not fit class EASE: l2=-1"),
    (lambda c: c.update(n_items=c["n_items"] + 5), "config.json: n_items=25"),
    (lambda c: c.update(n_items=3), r"state.safetensors: model.B has shape \(20, 20\) but the config's 3 items"),
    (lambda c: c.update(n_users_fit=c["n_users_fit"] + 1), "config.json: n_users_fit=13"),
    (lambda c: c.update(n_users_fit="12"), "config.json: n_users_fit='12'"),
    (lambda c: c["user_ids"].update(values=c["user_ids"]["values"][:-2]),
     r"config.json and state.safetensors .*array inter.uidx holds index 1\d but user_ids has 10 entries"),
    (lambda c: c["item_ids"].update(values=c["item_ids"]["values"][:1] * len(c["item_ids"]["values"])),
     "item_ids holds duplicate ids"),
    (lambda c: c["user_ids"].update(dtype="complex"), "user_ids has unknown dtype 'complex'"),
    (lambda c: c.update(array_shapes={"model.B": "n_items"}), "config.json: array_shapes"),
    (lambda c: c.update(array_shapes={"model.B": [["n_items"], 1]}), r"config.json: array_shapes\['model.B'\]"),
])
def test_edited_config_is_refused(saved, change, match):
    _edit_config(saved, change)
    with pytest.raises(ValueError, match=match):
        load(saved)


def test_files_without_array_shapes_still_load(saved):
    before = load(saved).recommend(k=3)
    _edit_config(saved, lambda c: c.pop("array_shapes") and None)
    pd.testing.assert_frame_equal(load(saved).recommend(k=3), before)


@pytest.mark.parametrize("cls", [Popularity, ItemKNN, UserKNN, EASE])
def test_updated_models_still_load(cls, tmp_path):
    m = cls().fit(_shop())
    m.update(_events([0, 99, 99], [3, 50, 4]))
    back = load(m.save(tmp_path / "m"))
    users = [0, 99, 1]
    pd.testing.assert_frame_equal(back.recommend(users, k=4), m.recommend(users, k=4))


# ---- ids given to recommend and score --------------------------------------------------------
def test_mixed_user_lists_keep_each_id():
    m = EASE().fit(_shop())
    recs = m.recommend(["x", 1], k=3)
    mine = recs[recs.user_id.map(lambda u: type(u) is int and u == 1)]
    assert len(mine) == 3 and not mine.fallback.any()
    assert mine.item_id.tolist() == m.recommend([1], k=3).item_id.tolist()
    assert recs[recs.user_id == "x"].fallback.all()
    scores = m.score(("x", 1))
    assert scores.index.tolist() == ["x", 1]
    np.testing.assert_allclose(scores.loc[[1]].to_numpy(), m.score([1]).to_numpy())


def test_mixed_item_lists_are_scored():
    m = EASE().fit(_events(_object([1, 1, 2, 2, 3]), _object([10, "b", "b", "c", 10])))
    got = m.score([1, 2], items=[10, "b"])
    assert got.columns.tolist() == [10, "b"]
    np.testing.assert_allclose(got.to_numpy(), m.score([1, 2])[[10, "b"]].to_numpy())


@pytest.mark.parametrize("batch_size", [0, -1, 2.5, True])
def test_batch_size_is_checked(batch_size):
    m = Popularity().fit(_shop())
    with pytest.raises(ValueError, match="batch_size"):
        m.recommend([0, 1], batch_size=batch_size)
    assert len(m.recommend([0, 1], k=2, batch_size=1)) == 4
