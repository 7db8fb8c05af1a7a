"""The data behind the dashboard: a scenario is one catalogue, its training events and its shoppers.

Three kinds: the analyst's own event log (``log_scenario``: any file
:func:`recapp.data.read_events` accepts, split by time, the last part replayed),
MovieLens-100K (``movielens_scenario``: the same, on real film ratings) and the
synthetic shop (``shop_scenario``: models train on its whole log and shoppers
are simulated from its latent tastes). Problems with the analyst's files raise
:class:`DataError` with a message that names the file and what is wrong; the
app shows it in the page.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from recapp.interactions import events_fingerprint
from recapp.schema import ITEM_COL, TIME_COL, USER_COL, SchemaError, ValidationReport

#: Environment variables the served notebook reads: the analyst's event log and (optional) catalogue, and the
#: strptime format of the log's date text when it is neither ISO 8601 nor read right by the guess (``%d/%m/%Y``).
EVENTS_ENV, ITEMS_ENV, TIME_FORMAT_ENV = "RECAPP_EVENTS", "RECAPP_ITEMS", "RECAPP_TIME_FORMAT"
DEFAULT_REPLAY_SHARE = 0.2
#: The fewest events a log needs on each side of the time split for a model and a replay to mean anything.
MIN_SPLIT_EVENTS = 20
#: Catalogue columns used for readable labels, first match wins.
TITLE_COLUMNS = ("title", "name", "product_name", "item_name", "description")
CATEGORY_COLUMNS = ("category", "categoryid", "category_id", "genres", "genre", "department", "brand")
PRICE_COLUMNS = ("price", "value", "unit_price")


class DataError(ValueError):
    """The analyst's data cannot be opened or used; the message says which file and why."""


class UnknownUserError(LookupError):
    """A user id that the current scenario does not know; the message says what is accepted."""


@dataclass
class Scenario:
    """One catalogue and its shoppers: training events, labels, profiles and (for replay) held-out events.

    ``fingerprint`` changes whenever the training data does (it hashes the
    training events themselves), so a cached or saved model is never used with
    data it was not trained on. ``report`` is the validation report of an
    analyst's log; ``notes`` are lines the page shows about how the data was read,
    ``catalogue_note`` among them when an item catalogue was read.
    """

    key: str
    label: str
    train: pd.DataFrame
    titles: pd.Series                      # item_id -> readable label
    items: pd.DataFrame                    # the catalogue (item_id, title, ...) for the engine
    users: pd.DataFrame                    # indexed by user_id: profile columns, "summary" among them
    replay: pd.DataFrame | None = None     # held-out events in time order (replay scenarios)
    shop: object | None = None             # SyntheticShop (simulated scenarios)
    item_tags: pd.Series | None = None     # item_id -> genres / category, for profiles
    history_verb: str = "viewed"           # what the shopper did: "rated" for rating logs
    report: ValidationReport | None = None
    notes: list = field(default_factory=list)
    catalogue_note: str | None = None      # the line about the analyst's catalogue (also among ``notes``)
    _train_by_user: dict = field(default_factory=dict, repr=False)
    _fingerprint: str | None = field(default=None, repr=False)
    _coverage: dict | None = field(default=None, repr=False)

    @property
    def data_fingerprint(self) -> str:
        """:func:`recapp.interactions.events_fingerprint` of the training events (what a saved model records)."""
        if self._fingerprint is None:
            self._fingerprint = events_fingerprint(self.train)
        return self._fingerprint

    @property
    def fingerprint(self) -> str:
        """The model-cache key of this data: the kind of scenario and a digest of its training events."""
        return f"{self.key}-{self.data_fingerprint[:16]}"

    @property
    def source(self) -> str:
        """Where live events come from: ``"replay"`` (held-out events) or ``"simulated"`` (shoppers)."""
        return "simulated" if self.shop is not None else "replay"

    def title(self, item_id) -> str:
        """The item's label, or ``item <id>`` when the catalogue has none."""
        return str(self.titles.get(item_id, f"item {item_id}"))

    def user_ids(self) -> list:
        """Users the analyst can pick, most interesting first."""
        return list(self.users.index)

    def user_label(self, user_id) -> str:
        """The text of a user's entry in the searchable list; it starts with the id."""
        return f"{user_id} · {self.users.loc[user_id, 'summary']}"

    def parse_user(self, text) -> object:
        """The user id a typed text or list entry names; raises :class:`UnknownUserError`.

        Integer ids are read by the event log reader's rule, so ``"007"`` (or ``"+7"``) never names user 7.
        """
        raw = str(text).strip().split("·")[0].strip()
        if not raw:
            raise UnknownUserError("Type a user id or pick one from the list.")
        uid = raw
        if pd.api.types.is_integer_dtype(self.users.index.dtype):
            uid = _int_id(raw)
            if uid is None:
                raise UnknownUserError(f"Unknown user {raw!r}: user ids here are whole numbers written without "
                                       f"leading zeros or signs, e.g. {self.users.index[0]}.")
        if uid not in self.users.index:
            hint = f"{len(self.users):,} users can be picked here"
            if self.replay is not None:
                hint += " (those with events in the replay window)"
            raise UnknownUserError(f"Unknown user {raw!r}: {hint}, e.g. {self.users.index[0]}.")
        return uid

    def history(self, user_id) -> pd.DataFrame:
        """The user's training events, oldest first."""
        if not self._train_by_user:
            ordered = self.train.sort_values(TIME_COL, kind="stable")
            self._train_by_user.update(dict(tuple(ordered.groupby(USER_COL, sort=False))))
        return self._train_by_user.get(user_id, self.train.iloc[:0])

    def replay_coverage(self) -> dict | None:
        """What the training split knows of the replay, as ``(known, total)`` pairs; None without a replay.

        ``users``: replayed shoppers with training events (the others start cold, on
        popularity); ``events``: replayed events whose item has training events.
        """
        if self.replay is None:
            return None
        if self._coverage is None:
            shoppers = pd.Series(pd.unique(self.replay[USER_COL]))
            self._coverage = {"users": (int(shoppers.isin(self.train[USER_COL]).sum()), len(shoppers)),
                              "events": (int(self.replay[ITEM_COL].isin(self.train[ITEM_COL]).sum()), len(self.replay))}
        return self._coverage

    def replay_events(self, user_id) -> pd.DataFrame:
        """The user's held-out events in time order (empty for simulated scenarios)."""
        if self.replay is None:
            return self.train.iloc[:0]
        return self.replay[self.replay[USER_COL] == user_id]


# ---- helpers shared by the replay scenarios ------------------------------------------------------
def split_for_replay(events: pd.DataFrame, replay_share: float, where: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split ``events`` by time: the first ``1 - replay_share`` trains, the rest is replayed in time order."""
    from recapp.split import temporal_split

    if not 0.0 < float(replay_share) < 1.0:
        raise DataError(f"replay share {replay_share!r} is out of range: choose a share strictly between 0 and 1")
    if events[TIME_COL].nunique() < 2:
        raise DataError(f"{where}: every event has the same timestamp, so it cannot be split by time")
    train, test = temporal_split(events, quantile=1.0 - float(replay_share))
    if len(train) < MIN_SPLIT_EVENTS or len(test) < MIN_SPLIT_EVENTS:
        raise DataError(f"{where} is too small to split: {len(events):,} events give {len(train):,} to train on and "
                        f"{len(test):,} to replay at a {replay_share:.0%} replay share; at least {MIN_SPLIT_EVENTS} "
                        "are needed on each side (give a longer log or change the replay share)")
    return train, test.sort_values(TIME_COL, kind="stable").reset_index(drop=True)


def split_note(train: pd.DataFrame, test: pd.DataFrame, replay_share: float, noun: str = "events") -> str:
    """One line saying where the time split fell and how many events fall on each side."""
    cut = pd.Timestamp(float(test[TIME_COL].iloc[0]), unit="s")
    return (f"{len(train):,} {noun} before {cut:%Y-%m-%d %H:%M} UTC train the model; the last {len(test):,} "
            f"({replay_share:.0%}) are replayed")


def replay_users(train: pd.DataFrame, test: pd.DataFrame, profile: pd.DataFrame | None = None) -> pd.DataFrame:
    """Users with held-out events, those with a past and a long future first (their lists start personal and move)."""
    n_replay = test[USER_COL].value_counts()
    users = pd.DataFrame(index=n_replay.index) if profile is None else profile.reindex(n_replay.index)
    users.index.name = USER_COL
    users["n_replay"] = n_replay.to_numpy()
    users["n_train"] = train[USER_COL].value_counts().reindex(users.index, fill_value=0).to_numpy()
    users["has_past"] = users["n_train"] > 0
    return users.sort_values(["has_past", "n_replay"], ascending=False, kind="stable")


def _first_column(frame: pd.DataFrame, names) -> str | None:
    lower = {str(c).lower(): c for c in frame.columns}
    return next((lower[n] for n in names if n in lower), None)


def item_labels(items: pd.DataFrame | None, item_ids) -> tuple[pd.Series, pd.Series | None]:
    """Readable labels per item from whatever catalogue columns exist (title/name, category, price), else ``item <id>``.

    Returns ``(labels, tags)``: tags are the category (or genres) per item, or None.
    """
    ids = pd.Index(pd.unique(np.asarray(item_ids)))
    fallback = pd.Series([f"item {i}" for i in ids], index=ids)
    if items is None or items.empty:
        return fallback, None
    cat = items.set_index(ITEM_COL)
    cat = cat[~cat.index.duplicated()]
    title_col, cat_col, price_col = (_first_column(cat, n) for n in (TITLE_COLUMNS, CATEGORY_COLUMNS, PRICE_COLUMNS))
    base = cat[title_col].astype(str) if title_col else pd.Series([f"item {i}" for i in cat.index], index=cat.index)
    extras = []
    if cat_col and cat_col != title_col:
        extras.append(cat[cat_col].astype(str))
    if price_col:
        price = pd.to_numeric(cat[price_col], errors="coerce")
        extras.append(price.map(lambda p: "" if pd.isna(p) else f"{p:,.2f}"))
    labels = base
    for extra in extras:
        labels = labels + extra.map(lambda s: f" · {s}" if s and s != "nan" else "")
    labels = labels.combine_first(fallback)
    tags = cat[cat_col].astype(str) if cat_col else None
    return labels, tags


def _id_text(value) -> str:
    # An id as text; a whole number read as a float (12.0) is written as the integer ("12").
    if isinstance(value, (float, np.floating)) and np.isfinite(value) and float(value).is_integer():
        return str(int(value))
    return str(value)


def _and(parts: list) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def _int_id(text: str) -> int | None:
    # The int64 an id written canonically ("12", or "12.0" as pandas writes integers beside a
    # blank cell) stands for, by the event log reader's rule (so "007" is never 7); else None.
    from recapp.data.events import _exact_int

    for tail in ("", ".0"):
        if _exact_int(text, tail):
            return int(text[: len(text) - len(tail)])
    return None


def ids_like(values: pd.Series, like: pd.Series) -> tuple[pd.Series, pd.Series]:
    """``values`` (catalogue item ids) as the type of ``like`` (the log's item ids) where they can be.

    Returns ``(ids, unmatched)``: ``unmatched`` marks ids that cannot have the log's
    type (text such as ``"SKU-X"`` or ``"007"`` among integer ids), whose ``ids`` entry is meaningless.
    """
    text = values.map(_id_text)
    if pd.api.types.is_integer_dtype(like.dtype):
        ints = text.map(_int_id)
        unmatched = ints.isna()
        return ints.where(~unmatched, 0).astype("int64"), unmatched
    if pd.api.types.is_float_dtype(like.dtype):
        num = pd.to_numeric(text, errors="coerce").astype("float64")
        return num, num.isna()
    return text, pd.Series(False, index=values.index)


def read_catalogue(path, log_ids: pd.Series) -> tuple[pd.DataFrame, str]:
    """An item catalogue file (CSV/TSV/Parquet) with an item id column; raises :class:`DataError`.

    The file is read as the event log is (same separators, column aliases, and item
    ids read as text from a CSV/TSV), and ids take the type of ``log_ids`` (the log's
    item ids) where they can, so the catalogue labels the log's items.
    Rows without an id, rows whose id cannot be one of the log's, and rows repeating
    an id (the last row of each id is kept) are dropped and counted. Returns
    ``(items, note)``: the note is the line the page shows about the catalogue.
    """
    from recapp.data.events import _checked_path, _csv_id_columns, read_raw
    from recapp.schema import column_renames

    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(f"items file {path} " + ("is a folder, not a file" if path.is_dir() else "does not exist"))
    try:
        path, suffix = _checked_path(path)
        items = read_raw(path, text_columns=_csv_id_columns(path, suffix, None, (ITEM_COL,)))
    except Exception as exc:  # noqa: BLE001 - any reader failure is the same message to the analyst
        raise DataError(f"items file {path} could not be read: {exc}") from exc
    renames = {c: t for c, t in column_renames(items.columns).items() if t == ITEM_COL}
    if ITEM_COL not in items.columns and not renames:
        raise DataError(f"items file {path} has no item id column (looked for {ITEM_COL!r} and its aliases); "
                        f"its columns are {list(items.columns)[:10]}")
    # Other item id aliases than the one used are dropped.
    others = [c for c in items.columns if c != ITEM_COL and c not in renames and column_renames([c]).get(c) == ITEM_COL]
    items = items.drop(columns=others).rename(columns=renames)
    n_rows = len(items)
    raw = items[ITEM_COL]
    no_id = raw.isna() | raw.map(lambda v: isinstance(v, str) and not v.strip())
    items = items[~no_id]
    ids, unmatched = ids_like(items[ITEM_COL], log_ids)
    odd = items.loc[unmatched, ITEM_COL]
    items = items[~unmatched].assign(**{ITEM_COL: ids[~unmatched]})
    repeated = items[ITEM_COL].duplicated(keep="last")
    items = items[~repeated].reset_index(drop=True)
    dropped = []
    if no_id.any():
        dropped.append(f"{int(no_id.sum()):,} without an item id")
    if len(odd):
        examples = ", ".join(repr(_id_text(v)) for v in odd.head(3))
        kind = "a whole number" if pd.api.types.is_integer_dtype(log_ids.dtype) else "a number"
        dropped.append(f"{len(odd):,} whose id is not {kind} like the log's ({examples}{', …' if len(odd) > 3 else ''})")
    if repeated.any():
        dropped.append(f"{int(repeated.sum()):,} repeating an item id (the last row of each id kept)")
    note = f"catalogue {path.name}: {n_rows:,} rows" + (f", {_and(dropped)} dropped" if dropped else "")
    logged = pd.Index(pd.unique(log_ids))
    note += f"; {int(logged.isin(items[ITEM_COL]).sum()):,} of {len(logged):,} logged items labelled"
    return items, note


# ---- the three kinds of scenario -----------------------------------------------------------------
def log_scenario(events, items=None, replay_share: float = DEFAULT_REPLAY_SHARE, time_format: str | None = None,
                 *, format_hint: str | None = None) -> Scenario:
    """The analyst's event log, validated and split by time; ``items`` (a path) gives readable labels.

    ``time_format`` (default ``$RECAPP_TIME_FORMAT``) reads the log's non-ISO date
    text, as :func:`recapp.data.read_events` does; ``format_hint`` says how the
    analyst gives it, for messages about the format (default: the environment
    variable, make and the command line). Raises :class:`DataError` for a missing
    or unreadable file, a log that fails validation (the message is the
    validator's) or a log too small to split.
    """
    from recapp.data import read_events

    path = Path(events).expanduser()
    if path.is_dir():
        raise DataError(f"event log {path} is a folder, not a file: set {EVENTS_ENV} or --events to a CSV/TSV/Parquet file")
    if not path.is_file():
        raise DataError(f"event log {path} does not exist (set {EVENTS_ENV} or --events to a CSV/TSV/Parquet file)")
    time_format = time_format if time_format is not None else os.environ.get(TIME_FORMAT_ENV) or None
    try:
        events_df, report = read_events(path, return_report=True, time_format=time_format)
    except SchemaError as exc:
        # The validator speaks of read_events' argument; here it comes from the environment, the command line or the page.
        hint = format_hint or f"set {TIME_FORMAT_ENV}, make dashboard TIME_FORMAT=..., or --time-format"
        how = f" ({hint})" if "time_format" in str(exc) else ""
        raise DataError(f"event log {path} failed validation: {exc}{how}") from exc
    except Exception as exc:  # noqa: BLE001 - an unreadable file is one message, whatever the reader raised
        raise DataError(f"event log {path} could not be read: {exc}") from exc
    train, test = split_for_replay(events_df, replay_share, f"event log {path.name}")
    logged = pd.concat([train[ITEM_COL], test[ITEM_COL]], ignore_index=True)
    catalogue, catalogue_note = read_catalogue(items, logged) if items is not None else (None, None)
    labels, tags = item_labels(catalogue, logged)
    users = replay_users(train, test)
    users["summary"] = [f"{r.n_train} past, {r.n_replay} to replay" for r in users.itertuples()]
    # The catalogue as given (content models read its text); without one, only the ids, so a model
    # that needs item text says so rather than learning from made-up labels.
    item_frame = pd.DataFrame({ITEM_COL: labels.index})
    if catalogue is not None:
        item_frame = pd.concat([catalogue, item_frame[~item_frame[ITEM_COL].isin(catalogue[ITEM_COL])]], ignore_index=True)
    notes = [f"{report.n_input:,} rows read, {report.n_output:,} kept, {report.n_dropped:,} dropped",
             *report.notes, split_note(train, test, replay_share)]
    if time_format and not any(repr(time_format) in note for note in report.notes):
        # A format that read nothing is said, so the analyst does not think it was applied.
        notes.insert(1 + len(report.notes), f"date format {time_format!r} not needed: the log's times are numbers or ISO 8601")
    if catalogue_note:
        notes.append(catalogue_note)
    return Scenario("log", f"your log ({path.name})", train, labels, item_frame, users, replay=test,
                    item_tags=tags, report=report, notes=notes, catalogue_note=catalogue_note)


def movielens_scenario(replay_share: float = DEFAULT_REPLAY_SHARE) -> Scenario:
    """MovieLens-100K split by time: the model trains on the past, the rest is replayed."""
    from recapp.data import load_movielens

    ml = load_movielens("100k")
    train, test = split_for_replay(ml.interactions, replay_share, "MovieLens-100K")
    users = replay_users(train, test, ml.users.set_index(USER_COL))
    users["summary"] = [f"{r.gender}, {r.age}, {r.occupation} · {r.n_train} past, {r.n_replay} to replay"
                        for r in users.itertuples()]
    catalogue = ml.items.set_index(ITEM_COL)
    return Scenario("movielens", "MovieLens-100K films", train,
                    catalogue["title"], ml.items[[ITEM_COL, "title", "genres"]], users, replay=test,
                    item_tags=catalogue["genres"], history_verb="rated",
                    notes=[split_note(train, test, replay_share, "ratings")])


def shop_scenario(n_users: int = 500, n_items: int = 300, n_events: int = 30_000, random_state: int = 0) -> Scenario:
    """The synthetic shop: models train on its whole log; shoppers are simulated from its latent tastes."""
    from recapp.data import synthetic_shop

    shop = synthetic_shop(n_users=n_users, n_items=n_items, n_events=n_events, random_state=random_state)
    counts = shop.events[USER_COL].value_counts()
    users = shop.users.set_index(USER_COL).copy()
    users["n_train"] = counts.reindex(users.index, fill_value=0).to_numpy()
    users = users.sort_values("n_train", ascending=False)
    users["summary"] = [f"likes {r.favorite_category} · {r.n_train} past events" for r in users.itertuples()]
    items = shop.items.set_index(ITEM_COL)
    return Scenario("shop", "synthetic shop", shop.events,
                    items["title"], shop.items[[ITEM_COL, "title", "category", "price"]], users, shop=shop,
                    item_tags=items["category"])
