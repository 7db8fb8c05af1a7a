"""The local data cache: where files live, how they are fetched and verified.

Files are written under a temporary name and renamed only once their checksum
matches, so an interrupted download never leaves a half-written file that a
later run would trust.
"""
from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path


class DataSourceError(RuntimeError):
    """A dataset could not be fetched or verified; the message names the source."""


def data_dir() -> Path:
    """The cache folder: ``$RECAPP_DATA`` or ``~/.cache/recapp``, created if needed.

    A file at that path (or at a folder above it) is a :class:`DataSourceError` naming the path.
    """
    root = Path(os.environ.get("RECAPP_DATA") or Path.home() / ".cache" / "recapp").expanduser()
    try:
        root.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as exc:
        # mkdir's own error names the path but not that it is the data cache, nor RECAPP_DATA.
        raise DataSourceError(f"the data cache folder {root} cannot be created: {exc.strerror} at {exc.filename}; "
                              "set RECAPP_DATA to a folder (or remove the file)") from exc
    return root


def file_digest(path: Path, algorithm: str = "sha256") -> str:
    """Hex digest of a file, read in chunks."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def verify(path: Path, expected: str, source: str, algorithm: str = "sha256") -> None:
    """Raise :class:`DataSourceError` unless ``path`` has the expected digest."""
    got = file_digest(path, algorithm)
    if got != expected:
        raise DataSourceError(f"{algorithm} mismatch for {path.name} from {source}: expected {expected}, got {got}")


def check_file_slot(path: Path) -> None:
    """Raise :class:`DataSourceError` naming ``path`` when something other than a file (a folder) sits there.

    Nothing could be read or written at that path, and recapp does not delete folders, so the message
    says to move it away.
    """
    if path.exists() and not path.is_file():
        raise DataSourceError(f"the data cache expects a file at {path} but finds a folder or other non-file there: "
                              "move it away (or set RECAPP_DATA to another folder) and load again")


def atomic_write_bytes(dest: Path, data: bytes, expected_sha256: str | None = None, source: str = "") -> Path:
    """Write ``data`` to ``dest`` through a temporary file, checking its sha256 first.

    A folder at ``dest`` is refused (:class:`DataSourceError` naming it, see :func:`check_file_slot`).
    """
    check_file_slot(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if expected_sha256 is not None:
        got = hashlib.sha256(data).hexdigest()
        if got != expected_sha256:
            raise DataSourceError(f"sha256 mismatch for {dest.name} from {source}: expected {expected_sha256}, got {got}")
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return dest


def download(url: str, dest: Path, *, md5: str | None = None, sha256: str | None = None, timeout: float = 20.0) -> Path:
    """Fetch ``url`` to ``dest`` atomically, verifying the digest given.

    Every failure to fetch (unreachable host, HTTP error, a body cut short, a
    malformed URL) raises :class:`DataSourceError` naming ``url``, so callers can
    move on to their next source.
    """
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            data = resp.read()
    except (urllib.error.URLError, http.client.HTTPException, OSError, TimeoutError, ValueError) as exc:
        # HTTPException covers IncompleteRead (a body shorter than its Content-Length);
        # ValueError is what urllib raises for a URL it cannot parse.
        raise DataSourceError(f"could not download {url}: {type(exc).__name__}: {exc}") from exc
    if md5 is not None and hashlib.md5(data).hexdigest() != md5:
        raise DataSourceError(f"md5 mismatch for {url}: expected {md5}, got {hashlib.md5(data).hexdigest()}")
    return atomic_write_bytes(dest, data, sha256, source=url)


def fetch_wheel(requirement: str, wheel_sha256: str, *, timeout: float = 600.0) -> Path:
    """Download (never install) a wheel from the Python package index into the cache.

    The wheel is kept under ``<cache>/wheels`` and verified by sha256, so a second
    call costs nothing.
    """
    wheels = data_dir() / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    name, _, version = requirement.partition("==")
    pattern = f"{name.replace('-', '_')}-{version}-*.whl"
    for cached in wheels.glob(pattern):
        check_file_slot(cached)
        if file_digest(cached) == wheel_sha256:
            return cached
        cached.unlink()
    with tempfile.TemporaryDirectory(dir=wheels) as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--disable-pip-version-check", "-q", "-d", tmp, requirement]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise DataSourceError(f"pip download {requirement} failed: {exc}") from exc
        found = list(Path(tmp).glob(pattern))
        if proc.returncode != 0 or not found:
            raise DataSourceError(f"pip download {requirement} failed (exit {proc.returncode}): {proc.stderr.strip()[-500:]}")
        verify(found[0], wheel_sha256, f"the {requirement} wheel on the Python package index")
        dest = wheels / found[0].name
        os.replace(found[0], dest)
    return dest


def extract_verified(archive: Path, members: dict[str, str], dest_dir: Path, source: str) -> dict[str, Path]:
    """Extract ``{member: sha256}`` from a zip into ``dest_dir``, atomically and verified.

    Returns ``{member: path}``. Only the named members are extracted.
    """
    out = {}
    try:
        zf = zipfile.ZipFile(archive)
    except zipfile.BadZipFile as exc:
        raise DataSourceError(f"{archive} from {source} is not a valid zip: {exc}") from exc
    with zf:
        names = set(zf.namelist())
        for member, sha in members.items():
            if member not in names:
                raise DataSourceError(f"{member} is missing from {archive.name} ({source})")
            dest = dest_dir / Path(member).name
            out[member] = atomic_write_bytes(dest, zf.read(member), sha, source=f"{source}:{member}")
    return out


def cached_files(dest_dir: Path, files: dict[str, str]) -> dict[str, Path] | None:
    """Paths of ``{name: sha256}`` under ``dest_dir`` if all exist and verify, else None.

    A file that fails its checksum is removed, so the next fetch replaces it. Something
    other than a file at any file's path (a folder) raises :class:`DataSourceError`
    naming it: a fetch could not write there either, and recapp does not delete folders.
    """
    # Every path first: a folder behind a missing file would otherwise surface only as the fetch's write error.
    for name in files:
        check_file_slot(dest_dir / name)
    paths = {}
    for name, sha in files.items():
        p = dest_dir / name
        if not p.exists():
            return None
        if file_digest(p) != sha:
            p.unlink()
            return None
        paths[name] = p
    return paths


def clear(subdir: str) -> None:
    """Remove one dataset's cached files."""
    shutil.rmtree(data_dir() / subdir, ignore_errors=True)
