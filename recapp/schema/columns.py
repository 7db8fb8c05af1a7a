"""The event schema's column names, event types, default weights, and the aliases public logs use for them."""
from __future__ import annotations

USER_COL = "user_id"
ITEM_COL = "item_id"
TIME_COL = "timestamp"
EVENT_COL = "event"
RATING_COL = "rating"
VALUE_COL = "value"
#: An optional producer-given id per event; a redelivered id is refused as a duplicate.
EVENT_ID_COL = "event_id"
SCORE_COL = "score"
RANK_COL = "rank"
PREDICTION_COL = "prediction"

REQUIRED_COLUMNS = (USER_COL, ITEM_COL, TIME_COL, EVENT_COL)
OPTIONAL_COLUMNS = (RATING_COL, VALUE_COL)

EVENT_TYPES = ("view", "click", "cart", "purchase", "rating")
FUNNEL = ("view", "click", "cart", "purchase")

#: Default implicit weights; a ``rating`` event weighs its rating (or 1 when absent).
DEFAULT_EVENT_WEIGHTS = {"view": 1.0, "click": 2.0, "cart": 3.0, "purchase": 5.0, "rating": None}

#: Names seen in public e-commerce logs, mapped to ours.
COLUMN_ALIASES = {
    "user": USER_COL, "userid": USER_COL, "visitorid": USER_COL, "visitor_id": USER_COL,
    "customer_id": USER_COL, "session_id": USER_COL,
    "item": ITEM_COL, "itemid": ITEM_COL, "product_id": ITEM_COL, "productid": ITEM_COL,
    "movie_id": ITEM_COL, "sku": ITEM_COL,
    "time": TIME_COL, "ts": TIME_COL, "event_time": TIME_COL, "datetime": TIME_COL,
    "unix_timestamp": TIME_COL,
    "behavior": EVENT_COL, "behavior_type": EVENT_COL, "behaviour": EVENT_COL,
    "event_type": EVENT_COL, "action": EVENT_COL, "type": EVENT_COL,
    "price": VALUE_COL, "revenue": VALUE_COL,
}

#: Event names seen in public logs, mapped to ours.
EVENT_ALIASES = {
    "pv": "view", "page_view": "view", "impression": "view", "detail": "view",
    "fav": "click", "clicked": "click",
    "addtocart": "cart", "add_to_cart": "cart", "add-to-cart": "cart", "basket": "cart",
    "buy": "purchase", "transaction": "purchase", "order": "purchase", "checkout": "purchase",
}
