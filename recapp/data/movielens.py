"""MovieLens-100K: 100,000 ratings by 943 users of 1,682 films (GroupLens).

Sources, in order: the local cache; the publisher's zip; the copy that the
``recbole==1.2.1`` wheel on the Python package index ships (downloaded, never
installed). Every file is verified before it is trusted: the recbole files and
wheel by sha256, the publisher's zip (cached or downloaded) by the md5 GroupLens
publishes beside it, which is the only digest it publishes. A cached file that
fails its check is deleted and fetched again.
"""
from __future__ import annotations

import io
import logging
import zipfile
from pathlib import Path
from typing import NamedTuple

import pandas as pd

from recapp.data.cache import (DataSourceError, cached_files, check_file_slot, data_dir, download, extract_verified,
                                fetch_wheel, file_digest)
from recapp.schema import EVENT_COL, ITEM_COL, RATING_COL, TIME_COL, USER_COL

log = logging.getLogger(__name__)

GROUPLENS_URL = "https://files.grouplens.org/datasets/movielens/ml-100k.zip"
GROUPLENS_MD5 = "0e33842e24a9c977be4e0107933c0723"  # published beside the zip as ml-100k.zip.md5
RECBOLE_WHEEL = "recbole==1.2.1"
RECBOLE_WHEEL_SHA256 = "9c9948202011f37eb0a7c6768129313f00d6403ad221ec940d5e2d5d5f33a407"
RECBOLE_FILES = {
    "ml-100k.inter": "4edb74e2a81178c2ba9ff381495f754f996c4aea351b1272ca36b43da0935eff",
    "ml-100k.item": "51d7cdf777ce5c0f5b32c1d947a4a81fe07d75e78abbe761e0cd4d0756064532",
    "ml-100k.user": "4f670007d9cfbeb9807e757209af1555b9bcc186bde25e767f67cb67c6dd5972",
}
GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama",
    "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
)
N_RATINGS, N_USERS, N_ITEMS = 100_000, 943, 1_682


class MovieLens(NamedTuple):
    """The three MovieLens tables; unpack as ``interactions, items, users = load_movielens()``."""

    interactions: pd.DataFrame
    items: pd.DataFrame
    users: pd.DataFrame
    source: str


def _check_counts(m: MovieLens) -> MovieLens:
    got = (len(m.interactions), m.interactions[USER_COL].nunique(), m.interactions[ITEM_COL].nunique())
    if got != (N_RATINGS, N_USERS, N_ITEMS):
        raise DataSourceError(f"MovieLens-100K from {m.source} has {got} (ratings, users, items); expected {(N_RATINGS, N_USERS, N_ITEMS)}")
    return m


def _frame(inter: pd.DataFrame) -> pd.DataFrame:
    inter = inter.astype({USER_COL: "int64", ITEM_COL: "int64", RATING_COL: "float64", TIME_COL: "float64"})
    inter[EVENT_COL] = "rating"
    return inter[[USER_COL, ITEM_COL, RATING_COL, TIME_COL, EVENT_COL]].reset_index(drop=True)


def parse_recbole(folder: Path, source: str) -> MovieLens:
    """Read the RecBole atomic files (``ml-100k.inter/.item/.user``)."""
    inter = pd.read_csv(folder / "ml-100k.inter", sep="\t")
    inter.columns = [USER_COL, ITEM_COL, RATING_COL, TIME_COL]
    items = pd.read_csv(folder / "ml-100k.item", sep="\t", dtype=str, keep_default_na=False)
    items.columns = [ITEM_COL, "title", "year", "genres"]
    items[ITEM_COL] = items[ITEM_COL].astype("int64")
    items["year"] = pd.to_numeric(items["year"], errors="coerce").astype("Int64")
    items["genres"] = items["genres"].str.split().str.join("|")
    users = pd.read_csv(folder / "ml-100k.user", sep="\t", dtype={"zip_code:token": str})
    users.columns = [USER_COL, "age", "gender", "occupation", "zip_code"]
    users = users[[USER_COL, "age", "gender", "occupation"]]
    return _check_counts(MovieLens(_frame(inter), items.sort_values(ITEM_COL, ignore_index=True), users, source))


def verify_grouplens_zip(path: Path, source: str) -> None:
    """Raise :class:`DataSourceError` unless ``path`` has the md5 GroupLens publishes for ml-100k.zip.

    GroupLens publishes only an md5 for this zip (no sha256), and the recbole copy's
    sha256 digests are of other files, so the publisher's md5 is the one digest that
    names these exact bytes; the parsed tables are then checked against the known counts.
    """
    got = file_digest(path, "md5")
    if got != GROUPLENS_MD5:
        raise DataSourceError(f"md5 mismatch for {path.name} from {source}: expected {GROUPLENS_MD5} (published by GroupLens), got {got}")


def parse_grouplens_zip(path: Path, source: str) -> MovieLens:
    """Read ``u.data``, ``u.item`` and ``u.user`` from the publisher's zip.

    Raises :class:`DataSourceError` naming ``path`` when the zip cannot be read or parsed.
    """
    try:
        return _parse_grouplens_zip(path, source)
    except DataSourceError:
        raise
    except (zipfile.BadZipFile, KeyError, OSError, ValueError, IndexError, EOFError) as exc:
        # KeyError: a member is missing; ValueError/IndexError: a table that does not parse.
        raise DataSourceError(f"cannot read {path} from {source}: {type(exc).__name__}: {exc}") from exc


def _parse_grouplens_zip(path: Path, source: str) -> MovieLens:
    with zipfile.ZipFile(path) as zf:
        def read(name: str) -> io.BytesIO:
            return io.BytesIO(zf.read(f"ml-100k/{name}"))

        inter = pd.read_csv(read("u.data"), sep="\t", names=[USER_COL, ITEM_COL, RATING_COL, TIME_COL])
        raw = pd.read_csv(read("u.item"), sep="|", header=None, encoding="latin-1", dtype=str, keep_default_na=False)
        users = pd.read_csv(read("u.user"), sep="|", names=[USER_COL, "age", "gender", "occupation", "zip_code"], dtype={"zip_code": str})
    flags = raw.iloc[:, 5:24].astype(int).to_numpy()
    genres = ["|".join(g for g, f in zip(GENRES, row) if f and g != "unknown") for row in flags]
    title_year = raw[1].str.extract(r"^(?P<title>.*?)\s*(?:\((?P<year>\d{4})\))?\s*$")
    year = pd.to_numeric(raw[2].str[-4:], errors="coerce").fillna(pd.to_numeric(title_year["year"], errors="coerce"))
    items = pd.DataFrame({ITEM_COL: raw[0].astype("int64"), "title": title_year["title"], "year": year.astype("Int64"), "genres": genres})
    return _check_counts(MovieLens(_frame(inter), items, users[[USER_COL, "age", "gender", "occupation"]], source))


def load_movielens(size: str = "100k", *, allow_download: bool = True, url: str = GROUPLENS_URL) -> MovieLens:
    """Load MovieLens-100K as ``MovieLens(interactions, items, users, source)``.

    ``interactions`` has user_id, item_id, rating, timestamp (UTC seconds) and
    event="rating". ``items`` has item_id, title, year and genres ("|"-joined);
    ``users`` has user_id, age, gender and occupation. Raises
    :class:`~recapp.data.cache.DataSourceError` naming each source that failed, or
    the path where a folder sits in the cache in place of a file.
    """
    if size != "100k":
        raise ValueError(f"size={size!r} is not available; accepted values: ['100k']")
    root = data_dir() / "movielens-100k"
    mirror_dir, zip_path = root / "recbole", root / "ml-100k.zip"
    cached = cached_files(mirror_dir, RECBOLE_FILES)
    if cached:
        return parse_recbole(mirror_dir, f"cache {mirror_dir}")
    errors = []
    check_file_slot(zip_path)   # a folder there is neither read nor removed below: say so, naming it
    if zip_path.exists():
        try:
            verify_grouplens_zip(zip_path, f"cache {zip_path}")
            return parse_grouplens_zip(zip_path, f"cache {zip_path}")
        except DataSourceError as exc:
            # A corrupt or foreign copy is never trusted, and never left to break the next run.
            zip_path.unlink(missing_ok=True)
            errors.append(f"cached {zip_path} (removed): {exc}")
            log.warning("removed a bad cached MovieLens zip %s: %s", zip_path, exc)
    if not allow_download:
        raise DataSourceError("\n  ".join([f"MovieLens-100K is not in the cache ({root}) and downloads are disabled", *errors]))
    try:
        download(url, zip_path, md5=GROUPLENS_MD5)
        return parse_grouplens_zip(zip_path, url)
    except DataSourceError as exc:
        zip_path.unlink(missing_ok=True)
        errors.append(f"GroupLens ({url}): {exc}")
        log.info("GroupLens unreachable, falling back to the recbole wheel: %s", exc)
    try:
        wheel = fetch_wheel(RECBOLE_WHEEL, RECBOLE_WHEEL_SHA256)
        members = {f"recbole/dataset_example/ml-100k/{name}": sha for name, sha in RECBOLE_FILES.items()}
        extract_verified(wheel, members, mirror_dir, f"the {RECBOLE_WHEEL} wheel")
        return parse_recbole(mirror_dir, f"the {RECBOLE_WHEEL} wheel")
    except DataSourceError as exc:
        errors.append(f"{RECBOLE_WHEEL} wheel: {exc}")
    raise DataSourceError("could not load MovieLens-100K from any source:\n  " + "\n  ".join(errors))
