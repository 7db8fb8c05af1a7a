"""Rating error (RMSE, MAE) on the (user, item) pairs both frames hold."""
from __future__ import annotations

import numpy as np

from recapp.metrics.checks import check_id_kinds, check_scores
from recapp.schema import ITEM_COL, PREDICTION_COL, RATING_COL, USER_COL, require_columns


# ---- rating error ----------------------------------------------------------------
def _aligned(rating_true, rating_pred, col_user, col_item, col_rating, col_prediction):
    require_columns(rating_true, "rating_true", col_user, col_item, col_rating)
    require_columns(rating_pred, "rating_pred", col_user, col_item, col_prediction)
    check_id_kinds(rating_true, "rating_true", rating_pred, "rating_pred", col_user, col_item)
    # One NaN or inf on either side would turn the whole error into NaN or inf.
    t = rating_true[[col_user, col_item]].assign(
        __true__=check_scores(rating_true, "rating_true", col_rating, what="rating", finite=True))
    p = rating_pred[[col_user, col_item]].assign(
        __pred__=check_scores(rating_pred, "rating_pred", col_prediction, what="prediction", finite=True))
    merged = t.merge(p, on=[col_user, col_item], how="inner")
    if merged.empty:
        raise ValueError("rating_true and rating_pred share no (user, item) pair; nothing to compare")
    return merged["__true__"].to_numpy(np.float64), merged["__pred__"].to_numpy(np.float64)


def rmse(rating_true, rating_pred, *, col_user=USER_COL, col_item=ITEM_COL, col_rating=RATING_COL, col_prediction=PREDICTION_COL) -> float:
    """Root mean squared error, range [0, inf), over (user, item) pairs present in both frames.

    Frames are joined on (user, item) as recommenders' ``merge_rating_true_pred``
    does; each frame is assumed to hold each pair once. A NaN, infinite or
    non-numeric rating or prediction raises :class:`~recapp.metrics.checks.ScoreError`.
    """
    y, p = _aligned(rating_true, rating_pred, col_user, col_item, col_rating, col_prediction)
    return float(np.sqrt(np.mean((y - p) ** 2)))


def mae(rating_true, rating_pred, *, col_user=USER_COL, col_item=ITEM_COL, col_rating=RATING_COL, col_prediction=PREDICTION_COL) -> float:
    """Mean absolute error, range [0, inf), over (user, item) pairs present in both frames (checked as :func:`rmse`)."""
    y, p = _aligned(rating_true, rating_pred, col_user, col_item, col_rating, col_prediction)
    return float(np.mean(np.abs(y - p)))
