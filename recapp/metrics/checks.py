"""Input checks every metric shares: ids of one kind in both frames, a valid k."""
from __future__ import annotations

from numbers import Integral

import pandas as pd

from recapp.schema import SchemaError


def check_id_kinds(a: pd.DataFrame, a_name: str, b: pd.DataFrame, b_name: str, *cols: str) -> None:
    """Raise SchemaError when a column holds numeric ids in one frame and non-numeric in the other."""
    # Integer ids in one frame and string ids in the other never match; say so
    # instead of returning a silent 0.
    for c in cols:
        na, nb = pd.api.types.is_numeric_dtype(a[c]), pd.api.types.is_numeric_dtype(b[c])
        if na != nb and len(a) and len(b):
            kinds = {True: "numeric", False: "non-numeric"}
            raise SchemaError(
                f"column {c!r} is {kinds[na]} ({a[c].dtype}) in {a_name} but {kinds[nb]} ({b[c].dtype}) in {b_name}; "
                "ids must have the same type in both frames"
            )


def check_k(k) -> int:
    """``k`` as an int; a ValueError naming it unless it is an integer >= 1."""
    if isinstance(k, bool) or not isinstance(k, Integral) or k < 1:
        raise ValueError(f"k={k!r} is invalid; accepted: an integer >= 1")
    return int(k)
