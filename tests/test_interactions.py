import numpy as np
import pandas as pd
import pytest

from recapp.interactions import Interactions, as_interactions, event_weights_for, events_fingerprint
from recapp.schema import SchemaError


def _events():
    return pd.DataFrame({
        "user_id": ["a", "a", "b", "a", "c"],
        "item_id": [10, 11, 10, 10, 12],
        "timestamp": [5.0, 1.0, 2.0, 9.0, 3.0],
        "event": ["view", "click", "purchase", "cart", "rating"],
        "rating": [np.nan, np.nan, np.nan, np.nan, 4.0],
    })


def test_weights_default_and_rating():
    w = event_weights_for(_events())
    assert w.tolist() == [1.0, 2.0, 5.0, 3.0, 4.0]


def test_weights_configurable_and_unknown_rejected():
    assert event_weights_for(_events(), {"view": 0.5})[0] == 0.5
    with pytest.raises(ValueError, match="unknown event type"):
        event_weights_for(_events(), {"wishlist": 1.0})
    for bad in (float("nan"), float("inf"), "2", True):
        with pytest.raises(ValueError, match="not finite numbers: {'view': "):
            event_weights_for(_events(), {"view": bad})


def test_matrix_sums_weights_per_user_item():
    inter = Interactions.from_frame(_events())
    a, i10 = inter.user_index(["a"])[0], inter.item_index([10])[0]
    assert inter.matrix[a, i10] == pytest.approx(1.0 + 3.0)  # view + cart
    assert inter.matrix.shape == (3, 3)
    assert inter.matrix.nnz == 4


def test_sequences_are_time_ordered():
    inter = Interactions.from_frame(_events())
    items, events, times = inter.sequence(inter.user_index(["a"])[0])
    assert list(times) == [1.0, 5.0, 9.0]
    assert list(inter.item_ids[items]) == [11, 10, 10]
    assert len(inter.sequences()) == inter.n_users


def test_seq_order_maps_sequences_to_frame_rows():
    df = pd.concat([_events(), _events().assign(item_id=[12, 12, 11, 11, 10])], ignore_index=True)  # equal times
    inter = Interactions.from_frame(df)
    f = inter.frame
    assert (f["iidx"].to_numpy()[inter.seq_order] == inter.seq_items).all()
    assert (f["timestamp"].to_numpy()[inter.seq_order] == inter.seq_times).all()
    a = inter.user_index(["a"])[0]
    hist = inter.user_events(a)
    assert hist["timestamp"].tolist() == [1.0, 1.0, 5.0, 5.0, 9.0, 9.0]
    assert hist.index.tolist() == [1, 6, 0, 5, 3, 8]                     # equal times keep row order
    grown = inter.append(pd.DataFrame({"user_id": ["a"], "item_id": [13], "timestamp": [0.5], "event": ["view"]}))
    assert grown.user_events(a)["item_id"].iloc[0] == 13
    assert (grown.frame["iidx"].to_numpy()[grown.seq_order] == grown.seq_items).all()


def test_unknown_ids_map_to_minus_one():
    inter = Interactions.from_frame(_events())
    assert inter.user_index(["zzz", "a"]).tolist()[0] == -1
    assert inter.item_index([999]).tolist() == [-1]


def test_fixed_index_shares_id_space_and_append_grows():
    inter = Interactions.from_frame(_events())
    more = pd.DataFrame({"user_id": ["d"], "item_id": [13], "timestamp": [10.0], "event": ["view"]})
    grown = inter.append(more)
    assert grown.n_users == 4 and grown.n_items == 4
    assert list(grown.user_ids[:3]) == list(inter.user_ids)
    assert grown.matrix[3, 3] == 1.0


def test_bad_input_is_an_error():
    with pytest.raises(SchemaError):
        as_interactions(pd.DataFrame())
    bad = _events().assign(event=["view", "like", "view", "view", "view"])
    with pytest.raises(SchemaError, match="like"):
        Interactions.from_frame(bad)
    with pytest.raises(TypeError):
        as_interactions([1, 2, 3])


def test_saved_arrays_give_back_the_same_interactions():
    inter = Interactions.from_frame(_events(), event_weights={"view": 0.5})
    arrays, config = inter.to_saved()
    back = Interactions.from_saved(arrays, config)
    pd.testing.assert_frame_equal(back.frame, inter.frame, check_dtype=False)
    assert back.user_ids.equals(inter.user_ids) and back.item_ids.equals(inter.item_ids)
    assert (back.matrix != inter.matrix).nnz == 0 and back.event_weights == {"view": 0.5}
    assert back.fingerprint() == inter.fingerprint()


def test_catalogue_items_without_events_join_the_item_map():
    inter = Interactions.from_frame(_events())
    grown = inter.with_catalog([12, 13, 10, 14])
    assert grown.item_ids.tolist() == [10, 11, 12, 13, 14]
    assert grown.matrix.shape == (3, 5) and grown.matrix[:, 3:].nnz == 0
    assert inter.with_catalog([10, 11]) is inter


def test_fingerprint_covers_ratings():
    r1 = pd.DataFrame({"user_id": [1, 2], "item_id": [10, 11], "timestamp": [1.0, 2.0], "event": ["rating"] * 2, "rating": [5.0, 1.0]})
    r2 = r1.assign(rating=[1.0, 5.0])
    assert events_fingerprint(r1) != events_fingerprint(r2)
    assert Interactions.from_frame(r1).fingerprint() != Interactions.from_frame(r2).fingerprint()
    assert events_fingerprint(r1) == events_fingerprint(r1.iloc[::-1])  # row order still does not matter
    assert events_fingerprint(r1) != events_fingerprint(r1.drop(columns="rating"))


def test_fingerprint_tells_text_ids_from_number_ids_in_a_mixed_column():
    def log(users):
        return pd.DataFrame({"user_id": pd.Series(users, dtype=object), "item_id": [10, 11], "timestamp": [1.0, 2.0]})

    mixed, swapped, text = log([1, "2"]), log(["1", 2]), log(["1", "2"])
    # Each is a different pair of shoppers; the object column used to be hashed as text, so all three collided.
    assert len({events_fingerprint(mixed), events_fingerprint(swapped), events_fingerprint(text)}) == 3
    # Ids that are one key in the id maps (1 and 1.0) keep one fingerprint.
    assert events_fingerprint(log([1.0, "2"])) == events_fingerprint(mixed)
    for df in (mixed, swapped):
        inter = Interactions.from_frame(df)
        assert inter.fingerprint() == events_fingerprint(df)
        assert Interactions.from_saved(*inter.to_saved()).fingerprint() == inter.fingerprint()
    # Columns of one kind hash as they always did.
    assert events_fingerprint(text) == events_fingerprint(text.astype({"user_id": "str"}))


@pytest.mark.parametrize("drop", [[], ["event"], ["rating"], ["event", "rating"], ["timestamp"], ["timestamp", "event", "rating"]])
def test_fingerprint_of_a_frame_matches_its_interactions(drop):
    df = _events().drop(columns=drop)
    inter = Interactions.from_frame(df)
    assert events_fingerprint(df) == inter.fingerprint()
    arrays, config = inter.to_saved()
    assert Interactions.from_saved(arrays, config).fingerprint() == inter.fingerprint()
    renamed = df.rename(columns={"user_id": "u", "item_id": "i"})
    assert events_fingerprint(renamed, col_user="u", col_item="i") == inter.fingerprint()
