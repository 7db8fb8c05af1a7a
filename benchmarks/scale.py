"""Scale benchmark: a shop-sized event log from CSV to live serving, seconds and peak memory per stage.

A synthetic shop (``recapp.data.synthetic_shop``: ``--events`` events, ``--items``
items, ``--users`` shoppers) is written as a RetailRocket-style CSV
(``timestamp`` in ms, ``visitorid``, ``event`` in view / addtocart / transaction,
``itemid``; the generator's clicks are written as views, as RetailRocket logs
only those three), then

    read (CSV -> DataFrame) -> validate (schema, aliases, ms timestamps)
    -> temporal split (the last 20% of the log by time is test)

and for each model, in a fresh subprocess of its own, so that a crash is a row
of the table and not the end of the run:

    load the split -> fit -> recommend top-10 for --shoppers test shoppers who
    have training events -> evaluate (NDCG@10, precision@10, recall@10 on their
    test events) -> replay the first --replay test events through
    ``recapp.realtime.Engine`` (ingest + top-10 per event)

A model that does not fit in memory stops with its clear error (status
``too large``), one that raises says so (``error``), one that takes its process
down is recorded with the signal (``crashed``). implicit's ALS is timed on the
same confidence matrix as recapp's ALS when ``import implicit`` works.

Peak memory: the kernel's high-water mark of the process's resident memory
(``VmHWM`` in ``/proc/self/status``), reset at the start of each stage by
writing 5 to ``/proc/self/clear_refs``; so each figure is the most memory the
process held during that stage, data loaded by earlier stages included. Where
the reset is not available (not Linux), ``ru_maxrss``: the peak since the
process started.

    python benchmarks/scale.py                                   # 5 M events, 20 k items, 100 k shoppers
    python benchmarks/scale.py --preset small                    # 300 k events, 5 k items: a few minutes
    python benchmarks/scale.py --events 1000000 --models EASE ItemKNN ALS Popularity
    python benchmarks/scale.py --models EASE --memory-limit 1GiB  # EASE stops with its clear error
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PRESETS = {"default": (5_000_000, 20_000, 100_000), "small": (300_000, 5_000, 20_000)}
#: Models run by default; ``EASE-sparse`` is EASE(sparse=True), ``implicit-ALS`` implicit's ALS on recapp's ALS matrix.
DEFAULT_MODELS = ("Popularity", "ItemKNN", "ALS", "implicit-ALS", "EASE", "EASE-sparse")
RETAILROCKET_EVENTS = {"view": "view", "click": "view", "cart": "addtocart", "purchase": "transaction"}


# ---- measuring ------------------------------------------------------------------------------
def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _peak_gib() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 2**20  # kB
    except OSError:
        pass
    scale = 1 if sys.platform == "darwin" else 1024  # bytes on macOS, kB elsewhere
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**30


class Stages:
    """Seconds and peak resident memory of each named stage, in order."""

    def __init__(self):
        self.rows: list[dict] = []

    def run(self, name: str, fn, *args, **kwargs):
        _reset_peak()
        t0 = time.perf_counter()
        out = fn(*args, **kwargs)
        self.rows.append({"stage": name, "seconds": time.perf_counter() - t0, "peak_GiB": _peak_gib()})
        print(f"  {name}: {self.rows[-1]['seconds']:.1f} s, peak {self.rows[-1]['peak_GiB']:.2f} GiB", file=sys.stderr, flush=True)
        return out


# ---- the data stages (main process) -----------------------------------------------------------
def write_log(path: Path, n_events: int, n_items: int, n_users: int, seed: int) -> None:
    """Generate the shop and write it as a RetailRocket-style CSV."""
    import numpy as np
    import pandas as pd

    from recapp.data.synthetic import synthetic_shop

    ev = synthetic_shop(n_users=n_users, n_items=n_items, n_events=n_events, random_state=seed).events
    pd.DataFrame({
        "timestamp": np.round(ev["timestamp"].to_numpy() * 1000).astype(np.int64),
        "visitorid": ev["user_id"].to_numpy(),
        "event": ev["event"].map(RETAILROCKET_EVENTS).to_numpy(),
        "itemid": ev["item_id"].to_numpy(),
    }).to_csv(path, index=False)


def data_stages(args, stages: Stages, folder: Path) -> dict:
    """Generate + write, read, validate and split; the split goes to Parquet for the model processes."""
    from recapp.data.events import read_events, read_raw
    from recapp.schema import USER_COL
    from recapp.split import temporal_split

    csv = folder / "events.csv"
    stages.run("generate + write CSV", write_log, csv, args.events, args.items, args.users, args.seed)
    raw = stages.run("read CSV", read_raw, csv)
    clean = stages.run("validate", read_events, raw)
    del raw
    train, test = stages.run("temporal split", temporal_split, clean, quantile=0.8)
    del clean
    train.to_parquet(folder / "train.parquet")
    test.sort_values("timestamp", kind="stable").to_parquet(folder / "test.parquet")
    return {"csv_MiB": csv.stat().st_size / 2**20, "train_events": len(train), "test_events": len(test),
            "train_items": int(train["item_id"].nunique()), "train_users": int(train[USER_COL].nunique())}


# ---- one model (subprocess) ---------------------------------------------------------------------
def make_model(name: str):
    from recapp.models import EASE, REGISTRY

    if name == "EASE-sparse":
        return EASE(sparse=True)
    if name not in REGISTRY:
        raise SystemExit(f"unknown model {name!r}; accepted: {sorted(REGISTRY) + ['EASE-sparse', 'implicit-ALS']}")
    cls = REGISTRY[name]
    kwargs = {"verbose": False} if "verbose" in cls._param_names() else {}
    return cls(**kwargs)


def _ranking(recs, test, train):
    from recapp.evaluate import evaluate_recommendations

    out = evaluate_recommendations(recs, test, train, k=10, n_items=int(train["item_id"].nunique()))
    return {key: out[key] for key in ("ndcg@10", "precision@10", "recall@10", "coverage")}


def _replay(engine, events) -> dict:
    import numpy as np

    lat = np.empty(len(events))
    for j, e in enumerate(events.to_dict(orient="records")):
        t0 = time.perf_counter()
        engine.ingest(e)
        engine.recommend(e["user_id"], 10)
        lat[j] = time.perf_counter() - t0
    return {"replay_p50_ms": float(np.percentile(lat, 50) * 1e3), "replay_p99_ms": float(np.percentile(lat, 99) * 1e3)}


def _implicit_als(train, users, stages: Stages):
    """implicit's ALS on the matrix recapp's ALS trains on (same confidence, factors, regularization, iterations)."""
    import implicit
    import numpy as np
    import pandas as pd
    from threadpoolctl import threadpool_limits

    from recapp.interactions import as_interactions
    from recapp.models import ALS

    ref = ALS()
    inter = stages.run("build matrix", as_interactions, train)
    C = inter.matrix.tocsr().astype(np.float32)
    C.data = ref.confidence_weight(C.data)  # implicit's confidence is 1 + alpha * C; alpha=1 keeps recapp's
    # implicit's advice: single-threaded BLAS inside its own threads (it warns at construction otherwise).
    with threadpool_limits(1, "blas"):
        model = implicit.cpu.als.AlternatingLeastSquares(
            factors=ref.factors, regularization=ref.regularization, alpha=1.0, iterations=ref.iterations,
            use_cg=True, calculate_training_loss=False, random_state=42)  # implicit's CG takes 3 steps, as recapp's default
        stages.run("fit", model.fit, C, show_progress=False)
    uidx = inter.user_index(users)

    def recommend():
        ids, scores = model.recommend(uidx, C[uidx], N=10, filter_already_liked_items=True)
        return pd.DataFrame({"user_id": np.repeat(users, ids.shape[1]), "item_id": inter.item_ids.to_numpy()[ids.ravel()],
                             "score": scores.ravel(), "rank": np.tile(np.arange(1, ids.shape[1] + 1), len(users))})

    return stages.run("recommend", recommend), f"implicit {implicit.__version__}"


def worker(name: str, folder: Path, n_shoppers: int, n_replay: int, seed: int) -> dict:
    """Run one model's stages; returns its result record (never raises for a model's own failure)."""
    import numpy as np
    import pandas as pd

    from recapp.models.memory import ModelTooLargeError
    from recapp.schema import USER_COL

    stages = Stages()
    train = stages.run("load split", pd.read_parquet, folder / "train.parquet")
    test = pd.read_parquet(folder / "test.parquet")
    known = np.intersect1d(test[USER_COL].unique(), train[USER_COL].unique())
    users = np.random.default_rng(seed).choice(known, min(n_shoppers, len(known)), replace=False)
    result = {"model": name, "status": "ok", "message": "", "stages": stages.rows}
    try:
        if name == "implicit-ALS":
            recs, result["message"] = _implicit_als(train, users, stages)
        else:
            model = stages.run("fit", make_model(name).fit, train)
            recs = stages.run("recommend", model.recommend, users, k=10, exclude_seen=True)
        result.update(stages.run("evaluate", _ranking, recs, test[test[USER_COL].isin(users)], train))
        if name != "implicit-ALS":
            from recapp.realtime import Engine

            engine = Engine(model, k=10)
            result.update(stages.run("replay", _replay, engine, test.iloc[:n_replay]))
    except ModelTooLargeError as exc:
        result.update(status="too large", message=str(exc))
    except Exception as exc:  # a model's own failure is a row of the table, not the end of the benchmark
        traceback.print_exc()
        result.update(status="error", message=f"{type(exc).__name__}: {exc}")
    return result


def run_model(name: str, folder: Path, args) -> dict:
    """``worker`` in a fresh interpreter; a process killed by a signal is recorded as crashed."""
    out = folder / f"result-{name}.json"
    cmd = [sys.executable, __file__, "--worker", name, "--data", str(folder), "--shoppers", str(args.shoppers),
           "--replay", str(args.replay), "--seed", str(args.seed)]
    env = dict(os.environ)
    if args.memory_limit:
        env["RECAPP_MEMORY_LIMIT"] = args.memory_limit
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, env=env, timeout=args.timeout, stdout=subprocess.PIPE, text=True)
    except subprocess.TimeoutExpired:
        return {"model": name, "status": "timeout", "message": f"over {args.timeout} s", "stages": [],
                "wall_s": time.perf_counter() - t0}
    if proc.returncode < 0:
        sig = signal.Signals(-proc.returncode).name
        result = {"model": name, "status": "crashed", "message": f"killed by {sig}", "stages": []}
    elif proc.returncode != 0 or not out.exists():
        result = {"model": name, "status": "error", "message": f"exit code {proc.returncode}", "stages": []}
    else:
        result = json.loads(out.read_text())
    result["wall_s"] = time.perf_counter() - t0
    return result


# ---- tables -------------------------------------------------------------------------------------
def _stage(result: dict, name: str, key: str):
    for row in result.get("stages", []):
        if row["stage"] == name:
            return row[key]
    return None


def _fmt(v, spec: str) -> str:
    return "—" if v is None else format(v, spec)


def markdown(info: dict, data_rows: list[dict], results: list[dict]) -> str:
    """The data stages and the per-model table, as markdown."""
    lines = ["| stage | seconds | peak GiB |", "|---|---:|---:|"]
    lines += [f"| {r['stage']} | {r['seconds']:.1f} | {r['peak_GiB']:.2f} |" for r in data_rows]
    lines += ["", "| model | status | fit s | fit peak GiB | recommend s | NDCG@10 | precision@10 | replay p50 ms | "
              "replay p99 ms | replay peak GiB |", "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        lines.append(
            f"| {r['model']} | {r['status']} | {_fmt(_stage(r, 'fit', 'seconds'), '.1f')} | "
            f"{_fmt(_stage(r, 'fit', 'peak_GiB'), '.2f')} | {_fmt(_stage(r, 'recommend', 'seconds'), '.1f')} | "
            f"{_fmt(r.get('ndcg@10'), '.4f')} | {_fmt(r.get('precision@10'), '.4f')} | "
            f"{_fmt(r.get('replay_p50_ms'), '.2f')} | {_fmt(r.get('replay_p99_ms'), '.2f')} | "
            f"{_fmt(_stage(r, 'replay', 'peak_GiB'), '.2f')} |")
    notes = [f"- {r['model']}: {r['message']}" for r in results if r["status"] != "ok" or r["message"]]
    head = (f"{info['events']:,} events ({info['csv_MiB']:.0f} MiB CSV), {info['items']:,} items, {info['users']:,} "
            f"shoppers; train {info['train_events']:,} events ({info['train_items']:,} items, {info['train_users']:,} "
            f"shoppers); top-10 for {info['shoppers']:,} test shoppers; replay of {info['replay']:,} test events; "
            f"{info['machine']}")
    return head + "\n\n" + "\n".join(lines) + ("\n\n" + "\n".join(notes) if notes else "")


def _args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", choices=sorted(PRESETS), default="default", help="sizes (default: the issue's shop)")
    p.add_argument("--events", type=int, help="events in the log (overrides the preset)")
    p.add_argument("--items", type=int, help="items in the catalogue (overrides the preset)")
    p.add_argument("--users", type=int, help="shoppers (overrides the preset)")
    p.add_argument("--models", nargs="*", default=None, help=f"default: {' '.join(DEFAULT_MODELS)}")
    p.add_argument("--shoppers", type=int, default=5000, help="test shoppers to recommend for")
    p.add_argument("--replay", type=int, default=5000, help="test events replayed through the engine")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--timeout", type=int, default=3600, help="seconds one model may take")
    p.add_argument("--memory-limit", help="cap the memory models may plan to use (RECAPP_MEMORY_LIMIT), e.g. 4GiB")
    p.add_argument("--out", type=Path, help="folder for the CSV, the split and the results (default: a temporary one)")
    p.add_argument("--json", type=Path, help="write every result as JSON here")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    events, items, users = PRESETS[args.preset]
    args.events, args.items, args.users = args.events or events, args.items or items, args.users or users
    return args


def main(argv=None) -> int:
    args = _args(argv)
    if args.worker:
        result = worker(args.worker, args.data, args.shoppers, args.replay, args.seed)
        (args.data / f"result-{args.worker}.json").write_text(json.dumps(result))
        return 0
    models = args.models or [m for m in DEFAULT_MODELS if m != "implicit-ALS" or _has_implicit()]
    for name in models:
        if name != "implicit-ALS":
            make_model(name)  # an unknown name stops here, before the data is generated
    with tempfile.TemporaryDirectory(prefix="recapp-scale-") as tmp:
        folder = args.out or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        stages = Stages()
        print(f"data: {args.events:,} events, {args.items:,} items, {args.users:,} shoppers", file=sys.stderr)
        info = data_stages(args, stages, folder)
        results = []
        for name in models:
            print(f"{name} ...", file=sys.stderr, flush=True)
            results.append(run_model(name, folder, args))
            r = results[-1]
            print(f"  {name}: {r['status']} in {r['wall_s']:.1f} s {r['message'][:200]}", file=sys.stderr, flush=True)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    info.update(events=args.events, items=args.items, users=args.users, shoppers=args.shoppers, replay=args.replay,
                machine=f"{platform.machine()}, {cores} cores")
    print(markdown(info, stages.rows, results))
    if args.json:
        args.json.write_text(json.dumps({"info": info, "data": stages.rows, "models": results}, indent=2))
    return 0


def _has_implicit() -> bool:
    try:
        import implicit  # noqa: F401
    except ImportError:
        return False
    return True


if __name__ == "__main__":
    sys.exit(main())
