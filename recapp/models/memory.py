"""Memory checks before a model allocates dense arrays that grow with the square of the catalogue.

A dense item x item matrix of 100,000 items needs 37 GiB in float32. Asking
the allocator for it either fails late (after minutes of work) or lets the
operating system kill the process, which in a notebook or the dashboard is a
dead kernel and lost work. A model that allocates O(items^2) therefore calls
:func:`check_dense` first; it raises :class:`ModelTooLargeError` (a
``MemoryError``) that names the model, the size, the memory needed and
available, and what to use instead.

:func:`available_memory` reads ``MemAvailable`` from ``/proc/meminfo`` (Linux),
bounded by the cgroup's memory limit when the process runs in a container (a
Binder or Docker limit is far below the host's memory), and falls back to
``psutil`` where ``/proc`` is missing. ``$RECAPP_MEMORY_LIMIT`` (e.g. ``8GiB``)
caps it, for a machine shared with other work.
"""
from __future__ import annotations

import math
import os
import re
from pathlib import Path

import numpy as np

#: Share of the available memory a model may plan to use; the rest is left for
#: the interpreter, the notebook and whatever else runs.
USABLE_SHARE = 0.9

#: Environment variable that caps :func:`available_memory` (bytes, or a number with K/M/G/T[i][B]: :func:`parse_bytes`).
LIMIT_ENV = "RECAPP_MEMORY_LIMIT"
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}

_CGROUP_V2 = Path("/sys/fs/cgroup")
_CGROUP_V1 = Path("/sys/fs/cgroup/memory")


class ModelTooLargeError(MemoryError):
    """A model's dense arrays would not fit in the available memory; the message names the alternatives."""


def format_bytes(n: float) -> str:
    """``n`` bytes in binary units, e.g. ``'3.2 GiB'``."""
    n = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024.0:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024.0
    return f"{n:.1f} TiB"


def parse_bytes(text: str) -> int:
    """A memory size written as text, in bytes: a plain number of bytes, or a number and a unit.

    Units are K, M, G, T in any case, optionally followed by ``i`` and/or ``B``
    (``8G``, ``8g``, ``8Gi`` as Kubernetes writes it, ``8GB``, ``8GiB``,
    ``512 MiB``, ``1.5G``), and all are binary: ``8GB`` is ``8 * 1024**3``,
    as Docker and the JVM read it. Refused (ValueError naming the accepted
    forms): anything else, e.g. an empty text, a negative size, ``8XB``, ``8iB``,
    ``1e9``, or a size too large to count.
    """
    # The "i" belongs to a unit: "8iB" is no size (it used to read as 8 bytes), nor "8Gi" a refusal.
    m = re.fullmatch(r"\s*(\d+\.?\d*|\.\d+)\s*(?:([kmgt])i?)?b?\s*", str(text), flags=re.I)
    value = float(m.group(1)) * _UNITS[(m.group(2) or "").lower()] if m is not None else math.nan
    if not math.isfinite(value):
        what = "negative" if str(text).strip().startswith("-") else "not a memory size" if m is None else "too large"
        raise ValueError(f"{text!r} is {what}; write a number of bytes (e.g. 1000000) or a number with a unit "
                         f"K, M, G or T, optionally followed by i and/or B, any case: 8G, 8Gi, 8GB, 8GiB, 512 MiB, "
                         f"1.5g (binary units: 1G = 1024**3 bytes)")
    return int(value)


def _env_limit() -> int | None:
    text = os.environ.get(LIMIT_ENV, "").strip()
    if not text:
        return None
    try:
        return parse_bytes(text)
    except ValueError as exc:
        raise ValueError(f"${LIMIT_ENV}: {exc}") from None


def _meminfo_available(path: Path = Path("/proc/meminfo")) -> int | None:
    try:
        text = path.read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("MemAvailable:"):
            parts = line.split()
            if len(parts) >= 2 and parts[1].isdigit():
                return int(parts[1]) * 1024  # the kernel reports kB
    return None


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None  # "max" (no limit) is not a number


def _inactive_file(stat: Path, key: str) -> int:
    """Reclaimable page cache charged to the cgroup (what ``docker stats`` leaves out of usage)."""
    try:
        for line in stat.read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == key and value.strip().isdigit():
                return int(value)
    except OSError:
        pass
    return 0


def _cgroup_available() -> int | None:
    """Limit minus working set of this process's memory cgroup, or None without a finite limit."""
    for limit_file, usage_file, stat_key in (
        (_CGROUP_V2 / "memory.max", _CGROUP_V2 / "memory.current", "inactive_file"),
        (_CGROUP_V1 / "memory.limit_in_bytes", _CGROUP_V1 / "memory.usage_in_bytes", "total_inactive_file"),
    ):
        limit, usage = _read_int(limit_file), _read_int(usage_file)
        # cgroup v1 writes "no limit" as a number near 2^63.
        if limit is None or usage is None or limit >= 1 << 60:
            continue
        return max(limit - usage + _inactive_file(limit_file.parent / "memory.stat", stat_key), 0)
    return None


def available_memory() -> int | None:
    """Bytes this process can still allocate without swapping, or None when the platform does not say.

    ``MemAvailable`` from ``/proc/meminfo`` (free memory plus reclaimable cache),
    lowered to the container's cgroup limit minus its working set when that is
    smaller; ``psutil.virtual_memory().available`` where ``/proc`` is missing;
    at most ``$RECAPP_MEMORY_LIMIT`` when that is set.
    """
    avail = _meminfo_available()
    if avail is None:
        try:
            import psutil
        except ImportError:
            psutil = None
        if psutil is not None:
            avail = int(psutil.virtual_memory().available)
    for cap in (_cgroup_available(), _env_limit()):
        if cap is not None:
            avail = cap if avail is None else min(avail, cap)
    return avail


def dense_bytes(shape, dtype=np.float32, copies: int = 1) -> int:
    """Bytes of ``copies`` dense arrays of ``shape`` and ``dtype``."""
    return int(copies) * int(np.prod([int(s) for s in shape], dtype=np.float64)) * np.dtype(dtype).itemsize


def check_dense(name: str, shape, dtype=np.float32, *, copies: int = 1, what: str = "dense array",
                extra_bytes: int = 0, alternatives: tuple[str, ...] = (), available: int | None = None) -> int:
    """Raise :class:`ModelTooLargeError` unless ``copies`` dense ``shape`` arrays (plus ``extra_bytes``) fit in memory.

    ``name`` is the model (``"EASE"``), ``what`` says what the arrays are, and
    ``alternatives`` lists what to use instead; all three appear in the message,
    with the size, the memory needed and the memory available. ``available``
    defaults to :func:`available_memory`; at most :data:`USABLE_SHARE` of it may
    be planned. When the platform reports no figure the check passes. Returns the
    bytes needed.
    """
    needed = dense_bytes(shape, dtype, copies) + int(extra_bytes)
    avail = available_memory() if available is None else int(available)
    if avail is None or needed <= USABLE_SHARE * avail:
        return needed
    dims = " x ".join(f"{int(s):,}" for s in shape)
    arrays = f"{copies} arrays" if copies != 1 else "an array"
    work = f" and {format_bytes(extra_bytes)} of work space" if extra_bytes else ""
    msg = (f"{name} cannot fit here: the {what} needs {arrays} of {dims} {np.dtype(dtype).name}{work}, "
           f"{format_bytes(needed)} in all, and {format_bytes(avail)} of memory is available "
           f"({USABLE_SHARE:.0%} of it may be used).")
    if alternatives:
        msg += " Alternatives: " + "; ".join(alternatives) + "."
    raise ModelTooLargeError(msg)


__all__ = ["LIMIT_ENV", "ModelTooLargeError", "USABLE_SHARE", "available_memory", "check_dense", "dense_bytes",
           "format_bytes", "parse_bytes"]
