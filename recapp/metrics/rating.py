"""Rating error (RMSE, MAE) on the (user, item) pairs both frames hold."""
from __future__ import annotations

import numpy as np

from recapp.metrics.checks import check_id_kinds, check_ids, check_one_value_per_id, check_scores
from recapp.schema import ITEM_COL, PREDICTION_COL, RATING_COL, USER_COL, require_columns


# ---- rating error ----------------------------------------------------------------
def _aligned(rating_true, rating_pred, col_user, col_item, col_rating, col_prediction):
    require_columns(rating_true, "rating_true", col_user, col_item, col_rating)
    require_columns(rating_pred, "rating_pred", col_user, col_item, col_prediction)
    check_ids(rating_true, "rating_true", col_user, col_item)
    check_ids(rating_pred, "rating_pred", col_user, col_item)
    check_id_kinds(rating_true, "rating_true", rating_pred, "rating_pred", col_user, col_item)
    # One NaN or inf on either side would turn the whole error into NaN or inf.
    t = rating_true[[col_user, col_item]].assign(
        __true__=check_scores(rating_true, "rating_true", col_rating, what="rating", finite=True))
    p = rating_pred[[col_user, col_item]].assign(
        __pred__=check_scores(rating_pred, "rating_pred", col_prediction, what="prediction", finite=True))
    # A pair predicted twice would be counted twice by the join; twice with two values, it has no one error.
    check_one_value_per_id(rating_pred, "rating_pred", [col_user, col_item], col_prediction)
    p = p.drop_duplicates([col_user, col_item])
    merged = t.merge(p, on=[col_user, col_item], how="inner")
    if merged.empty:
        raise ValueError("rating_true and rating_pred share no (user, item) pair; nothing to compare")
    return merged["__true__"].to_numpy(np.float64), merged["__pred__"].to_numpy(np.float64)


def rmse(rating_true, rating_pred, *, col_user=USER_COL, col_item=ITEM_COL, col_rating=RATING_COL, col_prediction=PREDICTION_COL) -> float:
    """Root mean squared error, range [0, inf), over (user, item) pairs present in both frames.

    Frames are joined on (user, item) as recommenders' ``merge_rating_true_pred``
    does, except that a pair repeated in ``rating_pred`` is predicted once (repeats
    with different predictions raise SchemaError); each row of ``rating_true``
    is one observed rating. A NaN, infinite or non-numeric rating or prediction
    raises :class:`~recapp.metrics.checks.ScoreError`, a missing user or item id SchemaError.
    """
    y, p = _aligned(rating_true, rating_pred, col_user, col_item, col_rating, col_prediction)
    return float(np.sqrt(np.mean((y - p) ** 2)))


def mae(rating_true, rating_pred, *, col_user=USER_COL, col_item=ITEM_COL, col_rating=RATING_COL, col_prediction=PREDICTION_COL) -> float:
    """Mean absolute error, range [0, inf), over (user, item) pairs present in both frames (checked as :func:`rmse`)."""
    y, p = _aligned(rating_true, rating_pred, col_user, col_item, col_rating, col_prediction)
    return float(np.mean(np.abs(y - p)))
