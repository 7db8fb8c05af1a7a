"""The Open Bandit Dataset sample: logged recommendation rounds from ZOZOTOWN.

Each file holds 10,000 rounds in which a fashion e-commerce site showed one of
its items in one of three slots, chosen by a uniform-random or a Bernoulli
Thompson Sampling policy, and logged the click and the propensity of that
choice (Saito et al., 2021; CC BY 4.0).

Sources, in order: a folder the user names (``data_path``, e.g. the full
dataset); the local cache; the sample that the ``obp==0.4.1`` wheel on the
Python package index ships (downloaded, never installed, never imported: obp
0.4.1 does not run on pandas 3, so recapp reads the files itself).
"""
from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from recapp.data.cache import DataSourceError, cached_files, data_dir, extract_verified, fetch_wheel
from recapp.schema import ITEM_COL, TIME_COL, SchemaError

POLICIES = ("random", "bts")
CAMPAIGNS = ("all", "men", "women")
OBP_WHEEL = "obp==0.4.1"
OBP_WHEEL_SHA256 = "87dec9caf4283c25ab13036532e0a24566f1c7bdcad1653a8ded43b2f5ef8208"
OBP_PREFIX = "obp/dataset/obd"
OBD_FILES = {
    "bts/all/all.csv": "0ad874e4dbf6902f0845dd478ad8dde5ef6903583d3ffaace78411bdad064106",
    "bts/all/item_context.csv": "5d4359ba1cfa3ae88f0f1bae66bd633859fe6323817183632ee57b83539d9153",
    "bts/men/item_context.csv": "3b411ed6b0471316321a6b93f4f756bb25888eac6218cd71d0b603d41d85732d",
    "bts/men/men.csv": "db6d1f7ed2d591ba521533e45286d4c1fba7fe57a8ad2e80342210335f43c527",
    "bts/women/item_context.csv": "a56295bad066a558eb783055afd9279f5f4e209a4776eafc22151c53f0ac89d4",
    "bts/women/women.csv": "e5d1b49a39b608585a2f3014a3f54970430cd37a495c1b73fceb85cdf428a5b8",
    "random/all/all.csv": "7168295b6e0a9eabcf3392320a5dd434e542b68e705d5cd9491499af589812f1",
    "random/all/item_context.csv": "eba04cc23d5f130a93ff174c5392986882b94c3839433cb8143870eaa6221358",
    "random/men/item_context.csv": "6d855c2b7e917d0448d71bbe62c023147495882c0fdc8c41e86fef86abf9fe09",
    "random/men/men.csv": "ede6d08c6877f99cd3770f7d09e26c738e6aa6de4445ccccfb1356ba5d06b1eb",
    "random/women/item_context.csv": "b1ca4905f97703d196004f2ad4552c1e90c2afad8b50688d333b0d2dc0b33147",
    "random/women/women.csv": "e65f3bd3beb17664fa69cc129bf7bf852a775f8ffa630506e505fc905315bb34",
}
N_SAMPLE_ROUNDS = 10_000
ROUND_COLUMNS = (TIME_COL, ITEM_COL, "position", "click", "propensity_score")
ITEM_CONTEXT_COLUMNS = (ITEM_COL,)
USER_FEATURE_PREFIX = "user_feature_"
AFFINITY_PREFIX = "user-item_affinity_"


class OpenBandit(NamedTuple):
    """Logged rounds and item features of one policy x campaign.

    ``rounds`` has timestamp (UTC seconds), datetime, item_id (the action),
    position (slot 1..3), click (0/1), propensity_score (the logging policy's
    probability of that action), user_feature_0..3 (categorical) and
    user-item_affinity_<item> (float). ``item_context`` has item_id and
    item_feature_0..3.
    """

    rounds: pd.DataFrame
    item_context: pd.DataFrame
    policy: str
    campaign: str
    source: str


def _check_choice(name: str, value: str, accepted: tuple[str, ...]) -> None:
    if value not in accepted:
        raise ValueError(f"{name}={value!r} is not available; accepted values: {list(accepted)}")


def _require(df: pd.DataFrame, required: tuple[str, ...], path: Path) -> None:
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise SchemaError(
            f"{path}: missing Open Bandit column(s) {missing}; columns found: {list(df.columns)[:12]}"
            f"{' ...' if len(df.columns) > 12 else ''}"
        )


def _read_csv(path: Path) -> pd.DataFrame:
    try:
        df = pd.read_csv(path)
    except (FileNotFoundError, PermissionError):
        raise
    except (ValueError, OSError) as exc:
        # pandas' EmptyDataError, ParserError and UnicodeDecodeError name neither the file nor the format.
        raise SchemaError(f"{path}: cannot read as an Open Bandit CSV (comma-separated with a header row): "
                          f"{type(exc).__name__}: {exc}") from exc
    # The files were written with pandas' default index as an unnamed first column.
    first = str(df.columns[0]) if len(df.columns) else ""
    if first == "" or first.startswith("Unnamed"):
        df = df.drop(columns=df.columns[0])
    return df


def _typed(raw: pd.DataFrame, col: str, dtype: str, path: Path) -> pd.Series:
    try:
        return raw[col].astype(dtype)
    except (ValueError, TypeError) as exc:
        raise SchemaError(f"{path}: column {col!r} cannot be read as {dtype}: {exc}") from exc


def parse_rounds(path: Path) -> pd.DataFrame:
    """Read one ``{campaign}.csv`` into typed columns (see :class:`OpenBandit`).

    Raises :class:`~recapp.schema.SchemaError` naming the file for a file that is not
    such a CSV, a missing column, a value of the wrong type, a position outside 1..3,
    a click other than 0/1 or a propensity outside (0, 1].
    """
    raw = _read_csv(path)
    _require(raw, ROUND_COLUMNS, path)
    dt = pd.to_datetime(raw[TIME_COL], utc=True, errors="coerce", format="mixed")
    if dt.isna().any():
        bad = np.flatnonzero(dt.isna().to_numpy())[:5]
        shown = ", ".join(f"line {i + 1}: {raw[TIME_COL].iloc[i]!r}" for i in bad)
        raise SchemaError(f"{path}: unparseable timestamp(s): {shown}")
    cols = {TIME_COL: (dt - pd.Timestamp(0, tz="UTC")).dt.total_seconds(), "datetime": dt}
    for col, dtype in ((ITEM_COL, "int64"), ("position", "int64"), ("click", "int64"), ("propensity_score", "float64")):
        cols[col] = _typed(raw, col, dtype, path)
    for col in raw.columns:
        if col.startswith(USER_FEATURE_PREFIX):
            cols[col] = raw[col].astype(str).astype("category")
    for col in raw.columns:
        if col.startswith(AFFINITY_PREFIX):
            cols[col] = _typed(raw, col, "float64", path)
    # Built in one go: inserting ~90 columns one by one fragments the frame.
    out = pd.DataFrame(cols)
    for col, accepted in (("position", (1, 2, 3)), ("click", (0, 1))):
        bad = ~out[col].isin(accepted).to_numpy()
        if bad.any():
            first = int(np.argmax(bad))
            raise SchemaError(f"{path}: {int(bad.sum()):,} {col} value(s) outside {list(accepted)}, "
                              f"first at line {first + 1}: {int(out[col].iloc[first])}")
    p = out["propensity_score"].to_numpy()
    bad = ~((p > 0) & (p <= 1))
    if bad.any():
        raise SchemaError(f"{path}: {int(bad.sum()):,} propensity score(s) outside (0, 1], first at line {int(np.argmax(bad)) + 1}")
    return out


def parse_item_context(path: Path) -> pd.DataFrame:
    """Read ``item_context.csv``: item_id plus numeric and hashed categorical features.

    Raises :class:`~recapp.schema.SchemaError` naming the file when it cannot be read or an item_id is not an integer.
    """
    raw = _read_csv(path)
    _require(raw, ITEM_CONTEXT_COLUMNS, path)
    out = raw.copy()
    out[ITEM_COL] = _typed(out, ITEM_COL, "int64", path)
    for col in out.columns:
        if col != ITEM_COL and not pd.api.types.is_numeric_dtype(out[col]):
            out[col] = out[col].astype(str).astype("category")
    return out.sort_values(ITEM_COL, ignore_index=True)


def _from_folder(folder: Path, policy: str, campaign: str, source: str) -> OpenBandit:
    rounds = parse_rounds(folder / f"{campaign}.csv")
    items = parse_item_context(folder / "item_context.csv")
    return OpenBandit(rounds, items, policy, campaign, source)


def _user_folder(data_path: Path, policy: str, campaign: str) -> Path:
    # Accept the dataset root (``{policy}/{campaign}/``) or the campaign folder itself.
    candidates = [data_path / policy / campaign, data_path]
    for folder in candidates:
        if (folder / f"{campaign}.csv").is_file() and (folder / "item_context.csv").is_file():
            held = folder.parent.name
            if held in POLICIES and held != policy:
                # The rounds' propensities are that policy's: labelled with another, an estimator would mix them up.
                raise ValueError(f"data_path={str(data_path)!r} holds the {held!r} policy's {campaign} files (its "
                                 f"folder is {held}/{folder.name}) but policy={policy!r} was asked: pass "
                                 f"policy={held!r}, or give the dataset root so that {policy}/{campaign} is read")
            return folder
    raise FileNotFoundError(
        f"no Open Bandit files for policy={policy!r}, campaign={campaign!r} under {data_path}: expected "
        f"{data_path / policy / campaign / f'{campaign}.csv'} and item_context.csv beside it"
    )


def load_open_bandit(
    policy: str = "random",
    campaign: str = "all",
    data_path: str | Path | None = None,
    *,
    allow_download: bool = True,
) -> OpenBandit:
    """Load Open Bandit logged rounds as ``OpenBandit(rounds, item_context, policy, campaign, source)``.

    ``policy`` is "random" or "bts"; ``campaign`` is "all", "men" or "women".
    Without ``data_path`` the 10,000-round sample is read from the cache or the
    ``obp==0.4.1`` wheel, verified by sha256. With ``data_path`` (a folder laid
    out as ``{policy}/{campaign}/{campaign}.csv``, such as the full dataset) the
    files are read as they are and only their columns are checked; a campaign
    folder that sits under another policy's folder (``bts/men`` with
    ``policy="random"``) is refused (ValueError) rather than labelled with the
    policy asked. Raises :class:`~recapp.data.cache.DataSourceError` naming the source that failed.
    """
    _check_choice("policy", policy, POLICIES)
    _check_choice("campaign", campaign, CAMPAIGNS)
    if data_path is not None:
        folder = _user_folder(Path(data_path).expanduser(), policy, campaign)
        return _from_folder(folder, policy, campaign, f"folder {folder}")

    names = {name: OBD_FILES[f"{policy}/{campaign}/{name}"] for name in (f"{campaign}.csv", "item_context.csv")}
    dest = data_dir() / "open-bandit" / policy / campaign
    if cached_files(dest, names):
        return _check_sample(_from_folder(dest, policy, campaign, f"cache {dest}"))
    if not allow_download:
        raise DataSourceError(f"Open Bandit {policy}/{campaign} is not in the cache ({dest}) and downloads are disabled")
    source = f"the {OBP_WHEEL} wheel"
    try:
        wheel = fetch_wheel(OBP_WHEEL, OBP_WHEEL_SHA256)
        extract_verified(wheel, {f"{OBP_PREFIX}/{policy}/{campaign}/{n}": sha for n, sha in names.items()}, dest, source)
    except DataSourceError as exc:
        raise DataSourceError(f"could not load Open Bandit {policy}/{campaign} from {source}: {exc}") from exc
    return _check_sample(_from_folder(dest, policy, campaign, source))


def _check_sample(ob: OpenBandit) -> OpenBandit:
    if len(ob.rounds) != N_SAMPLE_ROUNDS:
        raise DataSourceError(f"Open Bandit {ob.policy}/{ob.campaign} from {ob.source} has {len(ob.rounds):,} rounds; expected {N_SAMPLE_ROUNDS:,}")
    return ob
