"""A file source for :func:`recapp.spark.live_recommendations` in tests and demos: an event frame as Parquet
files of consecutive periods, read back as a stream one file per micro-batch."""
from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import types as T

from recapp.models.base import check_param
from recapp.schema import TIME_COL, require_columns


def event_schema(events) -> T.StructType:
    """The Spark schema of an event frame (pandas or Spark), for ``readStream.schema(...)``; TypeError for anything else.

    Datetime columns become timestamps (``TimestampType`` with a time zone,
    ``TimestampNTZType`` without), the types their Parquet files hold.
    """
    if isinstance(events, DataFrame):
        return events.schema
    if not isinstance(events, pd.DataFrame):
        raise TypeError(f"events must be a pandas or Spark DataFrame, got {type(events).__name__}")
    fields = []
    for name, dtype in events.dtypes.items():
        if pd.api.types.is_integer_dtype(dtype):
            t = T.LongType()
        elif pd.api.types.is_float_dtype(dtype):
            t = T.DoubleType()
        elif pd.api.types.is_bool_dtype(dtype):
            t = T.BooleanType()
        elif isinstance(dtype, pd.DatetimeTZDtype):
            t = T.TimestampType()
        elif pd.api.types.is_datetime64_dtype(dtype):
            t = T.TimestampNTZType()
        else:
            t = T.StringType()
        fields.append(T.StructField(str(name), t))
    return T.StructType(fields)


def write_event_files(events: pd.DataFrame, folder, n_files: int = 4, *, col_time: str = TIME_COL) -> list[Path]:
    """Write ``events`` in time order as ``n_files`` Parquet files of consecutive periods, oldest first.

    File modification times increase with the period, so a file stream with
    ``maxFilesPerTrigger=1`` reads them in order, one micro-batch each.
    Datetimes are written in microseconds, the finest unit Spark reads.
    Raises SchemaError when ``events`` has no ``col_time`` column.
    """
    check_param("n_files", n_files, low=1, integer=True)
    require_columns(events, "events", col_time)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    ordered = events.sort_values(col_time, kind="stable").reset_index(drop=True)
    bounds = np.linspace(0, len(ordered), n_files + 1).round().astype(int)
    paths, now = [], time.time() - n_files - 10
    for j in range(n_files):
        path = folder / f"events-{j:05d}.parquet"
        # pyarrow keeps nanoseconds, which Spark refuses to read as a timestamp.
        ordered.iloc[bounds[j]:bounds[j + 1]].to_parquet(path, index=False, coerce_timestamps="us",
                                                         allow_truncated_timestamps=True)
        os.utime(path, (now + j, now + j))
        paths.append(path)
    return paths


def file_stream(spark: SparkSession, folder, schema: T.StructType, *, max_files_per_trigger: int = 1) -> DataFrame:
    """A streaming DataFrame over the Parquet files of ``folder`` (one micro-batch per file by default).

    ``schema`` comes from :func:`event_schema`; ``max_files_per_trigger`` must be an
    integer >= 1, checked here rather than when the query starts.
    """
    check_param("max_files_per_trigger", max_files_per_trigger, low=1, integer=True)
    return (spark.readStream.schema(schema).option("maxFilesPerTrigger", int(max_files_per_trigger))
            .parquet(str(folder)))


__all__ = ["event_schema", "write_event_files", "file_stream"]
