"""What :class:`~recapp.realtime.Engine`'s constructor refuses, checked before any part of the engine is built.

A list's own settings (``k``, filters, the re-rankers) are :class:`~recapp.realtime.options.ListOptions`';
here are the model, the exclusions, the catalogue columns the re-rankers read, the pseudonymizer and the
engine-wide numbers. Each refusal names the argument and the value (never a raw user id: see below).
"""
from __future__ import annotations

from recapp.models.base import check_param
from recapp.realtime.options import ListOptions, check_category_columns
from recapp.schema import check_event_types

#: What ``ann=`` accepts: exact search, faiss, or faiss from ``ann_min_items`` items.
ANN_CHOICES = (None, "faiss", "auto")


def check_model(model) -> None:
    """Refuse (TypeError) what is no recapp recommender, and (the model's own error) one not fitted yet."""
    if not callable(getattr(model, "live_scorer", None)):
        raise TypeError(f"model must be a fitted recapp recommender (recapp.models); got {type(model).__name__}")
    model._check_fitted()


def check_engine_args(model, options: ListOptions, items, *, exclude_events, pseudonymizer, recency: float,
                      half_life, cache_size: int, n_explain: int, ann) -> None:
    """Refuse the constructor's arguments the engine cannot serve with, each naming it, in this order:

    ``exclude_events`` naming an unknown event type; a re-ranker told to read a column ``items`` lacks; a
    ``pseudonymizer`` for a model fitted on ids that are not pseudonyms; ``recency`` outside (0, 1];
    ``half_life`` not a number above 0 (or None); ``cache_size`` not an integer >= 0; ``n_explain`` not an
    integer >= 1; ``ann`` other than None, "faiss" or "auto".
    """
    check_event_types("exclude_events", exclude_events)
    check_category_columns(options, items)
    if pseudonymizer is not None:
        raw = ~pseudonymizer.looks_like(model.interactions_.user_ids.tolist())
        if raw.any():
            # The message never shows the ids: they may be the raw ones the caller wants kept out of logs.
            raise ValueError(f"pseudonymizer is set but the model was fitted on {int(raw.sum())} user id(s) that "
                             "are not pseudonyms; fit it on pseudonymizer.frame(train)")
    check_param("recency", recency, low=0, low_inclusive=False, high=1)   # text failed inside the comparison
    if half_life is not None:
        check_param("half_life", half_life, low=0, low_inclusive=False)   # seconds; text failed in a comparison
    check_param("cache_size", cache_size, low=0, integer=True)
    check_param("n_explain", n_explain, low=1, integer=True)
    if ann not in ANN_CHOICES:
        raise ValueError(f"ann={ann!r} is not accepted; accepted values: [None, 'faiss', 'auto']")


__all__ = ["ANN_CHOICES", "check_engine_args", "check_model"]
