"""Spark MLlib ALS (local mode) against recapp's ALS on large synthetic logs: fit time, NDCG@10, peak memory.

For each size a synthetic shop (:func:`recapp.data.synthetic.synthetic_shop`,
about 50 events per shopper) is generated once and written as Parquet. Each
system then runs in its own process, so its peak memory is its own:

* ``recapp``: pandas reads the file, :func:`recapp.split.temporal_split` (80/20
  in time), ``recapp.models.ALS()`` with its defaults on both cores
  (``train_threads=None``), ``recommend`` for the warm test shoppers, NDCG@10 by
  :mod:`recapp.metrics`; peak memory is the process's peak resident size.
* ``spark``: a ``local[2]`` session reads the file, :func:`recapp.spark.validate`,
  :func:`recapp.spark.temporal_split`, ``recapp.spark.SparkALS()`` with its
  defaults, the distributed top-k for the same shoppers, NDCG@10 by
  :mod:`recapp.spark.metrics` (the same definition); peak memory is the driver
  JVM's peak resident size (in local mode it holds the executors too) plus the
  Python driver's.

Both evaluate the shoppers of the test period who also have training events
(the same set on both sides), every test pair relevant, training items
excluded. ``fit_s`` is the fit alone (for Spark: summing the cells and
``ALS.fit``); ``total_s`` is the whole run from reading the file to NDCG.

    python benchmarks/spark_scale.py                          # 5 M and 20 M events
    python benchmarks/spark_scale.py --events 5e6 --json spark_scale.json
    python benchmarks/spark_scale.py --systems spark --driver-memory 6g
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

K = 10
EVENTS_PER_USER = 50
EVENTS_PER_ITEM = 400


def shop_size(n_events: int) -> dict:
    """Shoppers and items for a log of ``n_events`` (about 50 events per shopper, 400 per item)."""
    return {"n_users": max(1000, n_events // EVENTS_PER_USER), "n_items": max(2000, n_events // EVENTS_PER_ITEM)}


def make_data(n_events: int, folder: Path, seed: int = 0) -> Path:
    """The synthetic log of ``n_events`` as Parquet under ``folder`` (generated once, then reused)."""
    from recapp.data.synthetic import synthetic_shop

    path = folder / f"shop-{n_events}-{seed}.parquet"
    if not path.exists():
        start = time.perf_counter()
        events = synthetic_shop(n_events=n_events, random_state=seed, days=90.0, **shop_size(n_events)).events
        folder.mkdir(parents=True, exist_ok=True)
        events.to_parquet(path, index=False)
        print(f"generated {len(events):,} events in {time.perf_counter() - start:.0f} s: {path}", flush=True)
    return path


def _peak_rss_gb(pid: int | str = "self") -> float:
    """Peak resident memory (VmHWM) of process ``pid`` (default: this one), in GB."""
    status = Path(f"/proc/{pid}/status")
    if not status.exists():
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    for line in status.read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1e6
    return float("nan")


def run_recapp(path: Path) -> dict:
    """recapp's in-process pipeline on the log at ``path``."""
    from recapp import metrics, split
    from recapp.models import ALS

    start = time.perf_counter()
    events = pd.read_parquet(path)
    train, test = split.temporal_split(events, quantile=0.8)
    users = np.intersect1d(test["user_id"].unique(), train["user_id"].unique())
    model = ALS(verbose=False)
    model.train_threads = None            # both cores, as Spark's local[2]
    t = time.perf_counter()
    model.fit(train)
    fit_s = time.perf_counter() - t
    recs = model.recommend(users, k=K)
    ndcg = metrics.ndcg_at_k(test[test["user_id"].isin(users)], recs, K)
    return {"fit_s": fit_s, "ndcg@10": ndcg, "users": len(users), "total_s": time.perf_counter() - start,
            "peak_gb": _peak_rss_gb()}


def run_spark(path: Path, driver_memory: str, shuffle_partitions: int) -> dict:
    """The same pipeline on a local[2] SparkSession."""
    from recapp.spark import SparkALS, ranking_metrics, spark_session, temporal_split, validate

    start = time.perf_counter()
    spark = spark_session("recapp-spark-scale", driver_memory=driver_memory, shuffle_partitions=shuffle_partitions)
    jvm_pid = int(spark.sparkContext._jvm.java.lang.ProcessHandle.current().pid())
    t = time.perf_counter()
    events, report = validate(spark.read.parquet(str(path)))
    validate_s = time.perf_counter() - t
    train, test = temporal_split(events, quantile=0.8)
    train, test = train.persist(), test.persist()
    users = test.select("user_id").distinct().join(train.select("user_id").distinct(), "user_id").persist()
    n_users = users.count()
    t = time.perf_counter()
    als = SparkALS().fit(train)
    fit_s = time.perf_counter() - t
    recs = als.recommend(users, k=K).persist()
    recs.count()
    ndcg = ranking_metrics(test, recs, K, metrics=("ndcg_at_k",))["ndcg_at_k"]
    total_s = time.perf_counter() - start
    jvm_gb, python_gb = _peak_rss_gb(jvm_pid), _peak_rss_gb()
    out = {"fit_s": fit_s, "ndcg@10": ndcg, "users": n_users, "total_s": total_s, "validate_s": validate_s,
           "peak_gb": jvm_gb + python_gb, "jvm_peak_gb": jvm_gb, "python_peak_gb": python_gb,
           "ru_maxrss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6,
           "rows_in": report.n_input, "rows_kept": report.n_output}
    spark.stop()
    return out


def child(args) -> int:
    """Run one system in this process and print its result as the last line (JSON)."""
    path = Path(args.parquet)
    result = run_recapp(path) if args.child == "recapp" else run_spark(path, args.driver_memory, args.shuffle_partitions)
    print(json.dumps(result), flush=True)
    return 0


def main(argv=None) -> int:
    """Generate the logs, run each system in a subprocess per size, print the table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", nargs="*", type=float, default=[5e6, 20e6], help="log sizes (events)")
    parser.add_argument("--systems", nargs="*", default=["recapp", "spark"], choices=["recapp", "spark"])
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("RECAPP_DATA", Path.home() / ".cache" / "recapp"))
                        / "bench-spark", help="where the generated Parquet logs are kept")
    parser.add_argument("--driver-memory", default="4g", help="spark.driver.memory (local mode: all of Spark's heap)")
    parser.add_argument("--shuffle-partitions", type=int, default=8)
    parser.add_argument("--json", type=Path, help="write the table as JSON records here")
    parser.add_argument("--child", choices=["recapp", "spark"], help=argparse.SUPPRESS)
    parser.add_argument("--parquet", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(args)
    rows = []
    for n in [int(e) for e in args.events]:
        path = make_data(n, args.data)
        for system in args.systems:
            cmd = [sys.executable, __file__, "--child", system, "--parquet", str(path),
                   "--driver-memory", args.driver_memory, "--shuffle-partitions", str(args.shuffle_partitions)]
            start = time.perf_counter()
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                print(proc.stdout[-3000:], proc.stderr[-3000:], sep="\n", file=sys.stderr)
                raise SystemExit(f"{system} on {n:,} events failed (exit {proc.returncode})")
            result = json.loads(proc.stdout.strip().splitlines()[-1])
            row = {"events": n, "system": "Spark ALS (local[2])" if system == "spark" else "recapp ALS", **result,
                   "wall_s": time.perf_counter() - start}
            rows.append(row)
            print(json.dumps(row), flush=True)
    table = pd.DataFrame(rows)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"\nALS on synthetic shops, temporal split 80/20, NDCG@10 over warm test shoppers, {cores} cores, "
          f"spark.driver.memory={args.driver_memory}")
    cols = ["events", "system", "fit_s", "ndcg@10", "peak_gb", "total_s", "users"]
    print(table[cols].to_string(index=False, float_format="{:.3f}".format))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
