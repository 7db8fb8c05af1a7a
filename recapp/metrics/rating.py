"""Rating error (RMSE, MAE) on the (user, item) pairs both frames hold."""
from __future__ import annotations

import numpy as np

from recapp.metrics.checks import check_id_kinds
from recapp.schema import ITEM_COL, PREDICTION_COL, RATING_COL, USER_COL, require_columns


# ---- rating error ----------------------------------------------------------------
def _aligned(rating_true, rating_pred, col_user, col_item, col_rating, col_prediction):
    require_columns(rating_true, "rating_true", col_user, col_item, col_rating)
    require_columns(rating_pred, "rating_pred", col_user, col_item, col_prediction)
    check_id_kinds(rating_true, "rating_true", rating_pred, "rating_pred", col_user, col_item)
    t = rating_true[[col_user, col_item, col_rating]].rename(columns={col_rating: "__true__"})
    p = rating_pred[[col_user, col_item, col_prediction]].rename(columns={col_prediction: "__pred__"})
    merged = t.merge(p, on=[col_user, col_item], how="inner")
    if merged.empty:
        raise ValueError("rating_true and rating_pred share no (user, item) pair; nothing to compare")
    return merged["__true__"].to_numpy(np.float64), merged["__pred__"].to_numpy(np.float64)


def rmse(rating_true, rating_pred, *, col_user=USER_COL, col_item=ITEM_COL, col_rating=RATING_COL, col_prediction=PREDICTION_COL) -> float:
    """Root mean squared error, range [0, inf), over (user, item) pairs present in both frames.

    Frames are joined on (user, item) as recommenders' ``merge_rating_true_pred``
    does; each frame is assumed to hold each pair once.
    """
    y, p = _aligned(rating_true, rating_pred, col_user, col_item, col_rating, col_prediction)
    return float(np.sqrt(np.mean((y - p) ** 2)))


def mae(rating_true, rating_pred, *, col_user=USER_COL, col_item=ITEM_COL, col_rating=RATING_COL, col_prediction=PREDICTION_COL) -> float:
    """Mean absolute error, range [0, inf), over (user, item) pairs present in both frames."""
    y, p = _aligned(rating_true, rating_pred, col_user, col_item, col_rating, col_prediction)
    return float(np.mean(np.abs(y - p)))
