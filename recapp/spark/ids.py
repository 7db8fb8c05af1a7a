"""Which Python value names which id of a Spark id column: numbers by value and kind, never by a cast.

:meth:`recapp.spark.SparkALS.recommend` matches the users it is given to the
training ids with these, so ``"7"`` never merges with user 7, ``7.5`` never
with 7, and ``5``, ``5.0`` and ``Decimal(5)`` name one id, as they do in
:mod:`recapp.schema`.
"""
from __future__ import annotations

import decimal

import numpy as np
from pyspark.sql import types as T


def as_spark_id(value, dtype: T.DataType):
    """``value`` as a Python value of the Spark id type ``dtype``, or None where no id of that type equals it."""
    if value is None or isinstance(value, (bool, np.bool_)):
        return None
    if isinstance(dtype, T.StringType):
        return str(value) if isinstance(value, str) else None
    if isinstance(dtype, T.DecimalType):
        return as_decimal(value, dtype)
    if not isinstance(dtype, T.NumericType):
        return value
    if isinstance(value, decimal.Decimal):
        # recapp.schema reads a Decimal id as a number, so it matches by value as an int or a float does.
        if not value.is_finite():
            return None
        if isinstance(dtype, (T.FloatType, T.DoubleType)):
            return float(value)
        if value != value.to_integral_value():
            return None
        value = int(value)
    if not isinstance(value, (int, float, np.integer, np.floating)) or not np.isfinite(float(value)):
        return None
    if isinstance(dtype, (T.FloatType, T.DoubleType)):
        return float(value)
    if isinstance(value, (float, np.floating)):
        if not float(value).is_integer():
            return None
        value = int(value)
    bits = {T.ByteType: 8, T.ShortType: 16, T.IntegerType: 32}.get(type(dtype), 64)
    return int(value) if -(2 ** (bits - 1)) <= int(value) < 2 ** (bits - 1) else None


def as_decimal(value, dtype: T.DecimalType) -> decimal.Decimal | None:
    """``value`` as a Decimal of the column's precision and scale, or None where the column holds no such id.

    Numbers match by value (``5``, ``5.0`` and ``Decimal(5)`` name one id of a DECIMAL(20,0) column, as
    a whole float names an integer id above); text, a value with more decimals than the scale, and one
    with more digits than the precision cannot be ids of the column (Spark refused them with a bare TypeError).
    """
    if isinstance(value, decimal.Decimal):
        d = value
    elif isinstance(value, (int, np.integer)):
        d = decimal.Decimal(int(value))
    elif isinstance(value, (float, np.floating)) and np.isfinite(float(value)):
        d = decimal.Decimal(float(value))          # the float's exact value, so 2**53 + 0.5 stays apart
    else:
        return None
    if not d.is_finite():
        return None
    with decimal.localcontext() as ctx:
        ctx.prec = 100
        q = d.quantize(decimal.Decimal(1).scaleb(-dtype.scale))
    if q != d or len(q.as_tuple().digits) > dtype.precision:
        return None
    return q


__all__ = ["as_spark_id", "as_decimal"]
