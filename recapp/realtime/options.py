"""How one shopper's list is built: its length, business filters, exclusions and the one re-ranking step.

The engine holds the defaults (its constructor's arguments); each ``recommend``
call may override some of them. :meth:`ListOptions.override` resolves one call's
options, and :meth:`ListOptions.cache_key` keys the result cache by them.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from recapp.models.base import check_param
from recapp.realtime.cache import freeze


def check_reranking(diversity: float, calibration: float, exposure: float) -> None:
    """Raise ``ValueError`` naming the setting unless each is in [0, 1] and at most one re-ranking is on."""
    for name, value in (("diversity", diversity), ("calibration", calibration), ("exposure", exposure)):
        check_param(name, value)
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name}={value!r} is out of range; it must be in [0, 1]")
    active = [n for n, on in (("diversity", diversity < 1.0), ("calibration", calibration > 0.0),
                              ("exposure", exposure > 0.0)) if on]
    if len(active) > 1:
        raise ValueError(f"{' and '.join(active)} are both set; the engine applies one re-ranking at a time "
                         "(diversity=1, calibration=0 and exposure=0 switch each off)")


def check_category_columns(opts: "ListOptions", items) -> None:
    """Raise ``ValueError`` when ``items`` (a table or None) lacks a column a re-ranker is told to read: ``categories``
    while calibration is on, or a ``diversity_categories`` other than the default "category" (which MMR reads when
    present and otherwise does without)."""
    columns = list(getattr(items, "columns", []))      # what is no table at all, add_items refuses by name
    if opts.calibration > 0.0 and opts.categories not in columns:
        raise ValueError(f"calibration={opts.calibration!r} needs items=... with a {opts.categories!r} column "
                         "(categories= names the column)")
    if opts.diversity_categories != "category" and opts.diversity_categories not in columns:
        # Named on purpose, so a typo must not leave MMR silently without categories.
        raise ValueError(f"diversity_categories={opts.diversity_categories!r} needs items=... with that column; "
                         f"items columns: {columns}")


@dataclass(frozen=True, eq=False)     # filters may hold arrays, so no field-wise == or hash: use cache_key
class ListOptions:
    """One list's settings, checked when made (see :class:`~recapp.realtime.Engine` for each)."""

    k: int = 10
    filters: object = None                 # a dict or callable for recapp.rerank.filter_mask; not hashed
    exclude_viewed: bool = False
    diversity: float = 1.0                 # MMR lambda; 1 keeps the model's order
    calibration: float = 0.0               # Steck's lambda; 0 keeps the model's order
    exposure: float = 0.0                  # popularity-tail beta; 0 keeps the model's order
    categories: str = "category"           # the items-table column calibration reads
    exposure_target: float | None = None   # head share every list aims at (None: each shopper's own)
    diversity_categories: str = "category"  # the items-table column MMR compares when the scorer cannot

    def __post_init__(self):
        check_param("k", self.k, low=1, integer=True)
        # bool("no") is True: only a real flag may switch exclusions.
        check_param("exclude_viewed", self.exclude_viewed, choices=(True, False))
        if self.filters is not None and not (isinstance(self.filters, Mapping) or callable(self.filters)):
            raise TypeError(f"filters must be a dict {{column: condition}} or a callable items -> mask; "
                            f"got {type(self.filters).__name__} {self.filters!r:.80}")
        check_reranking(self.diversity, self.calibration, self.exposure)
        if not isinstance(self.diversity_categories, str):
            raise TypeError(f"diversity_categories must name an items-table column (a str); "
                            f"got {self.diversity_categories!r:.80}")
        # Frozen: the plain types are set once here, so equal settings make equal cache keys.
        for name, kind in (("k", int), ("exclude_viewed", bool), ("diversity", float), ("calibration", float),
                           ("exposure", float)):
            object.__setattr__(self, name, kind(getattr(self, name)))
        if self.exposure_target is not None:
            check_param("exposure_target", self.exposure_target)
            if not 0.0 <= self.exposure_target <= 1.0:
                raise ValueError(f"exposure_target={self.exposure_target!r} must be a head share in [0, 1], "
                                 "or None (each user's own)")
            object.__setattr__(self, "exposure_target", float(self.exposure_target))

    def override(self, k: int | None = None, *, filters=None, exclude_viewed: bool | None = None,
                 diversity: float | None = None, calibration: float | None = None,
                 exposure: float | None = None) -> "ListOptions":
        """These options with one call's overrides; a call that sets any re-ranker turns the default one off.

        Each override is checked as the constructor's argument is (``diversity=True`` or
        ``exclude_viewed="no"`` is refused, not read as 1.0 or True).
        """
        changes = {name: value for name, value in (("k", k), ("filters", filters), ("exclude_viewed", exclude_viewed))
                   if value is not None}
        if diversity is not None or calibration is not None or exposure is not None:
            changes.update(diversity=1.0 if diversity is None else diversity,
                           calibration=0.0 if calibration is None else calibration,
                           exposure=0.0 if exposure is None else exposure)
        # Most calls repeat the defaults; only a real change pays for a new, re-checked object.
        # Filters compare by identity: they may hold arrays, whose == is not a truth value. A value of
        # another type is a change even when equal (True == 1.0), so that it is checked, not passed as the default.
        changes = {name: value for name, value in changes.items()
                   if value is not getattr(self, name) and (name == "filters" or value != getattr(self, name)
                                                            or type(value) is not type(getattr(self, name)))}
        return replace(self, **changes) if changes else self

    @property
    def reranked(self) -> bool:
        """Whether a re-ranking step picks the list from a wider candidate set."""
        return self.diversity < 1.0 or self.calibration > 0.0 or self.exposure > 0.0

    def cache_key(self) -> tuple:
        """What a cached list for one shopper depends on, hashable (filters frozen)."""
        return (self.k, freeze(self.filters), self.exclude_viewed, self.diversity, self.calibration, self.exposure,
                self.categories, self.exposure_target, self.diversity_categories)


__all__ = ["ListOptions", "check_category_columns", "check_reranking"]
