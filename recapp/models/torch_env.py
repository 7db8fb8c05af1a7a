"""Device, seeds and torch's global settings for recapp's torch models (re-exported by :mod:`recapp.models.torch_base`).

Everything here touches process-wide torch state (the device, the global random
generators, the deterministic-algorithms flag, the thread count), and each
context manager puts that state back on exit, so fitting a model leaves the
caller's torch session as it found it.
"""
from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import torch


def resolve_device(device="auto") -> torch.device:
    """``"auto"`` -> ``cuda`` when a GPU is available, else ``cpu``; other names are checked.

    Accepts ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or a ``torch.device``.
    """
    if isinstance(device, torch.device):
        return device
    if not isinstance(device, str):
        raise ValueError(f"device={device!r} is not accepted; accepted values: 'auto', 'cpu', 'cuda', 'cuda:N'")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise ValueError(f"device={device!r} is not accepted; accepted values: 'auto', 'cpu', 'cuda', 'cuda:N'") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} but torch sees no CUDA GPU; use device='auto' or 'cpu'")
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"device={device!r} is not accepted; accepted values: 'auto', 'cpu', 'cuda', 'cuda:N'")
    return dev


def seed_everything(random_state, device=None) -> np.random.Generator:
    """Seed torch (CPU, and every GPU unless ``device`` is the CPU) from ``random_state``; return a numpy Generator from it.

    ``None`` draws a fresh seed, so runs differ. With a seed, CPU training is
    bit-for-bit repeatable, whatever torch's thread count; on a GPU some kernels
    are not deterministic unless run under :func:`deterministic_kernels`.
    """
    seed = int(np.random.SeedSequence().entropy % (2**31)) if random_state is None else int(random_state)
    if device is not None and torch.device(device).type == "cpu":
        torch.default_generator.manual_seed(seed)  # a CPU fit draws nothing on a GPU: leave those generators alone
    else:
        torch.manual_seed(seed)
    return np.random.default_rng(seed)


@contextmanager
def caller_rng_kept(device="auto"):
    """Put torch's global random state back on exit: the CPU's, and every GPU's when ``device`` resolves to CUDA.

    A fit seeds and draws from it; else the caller's own torch code after ``fit`` would draw other numbers.
    """
    try:
        cuda = resolve_device(device).type == "cuda"
    except ValueError:
        cuda = False  # the fit refuses it in its parameter check, before anything is seeded
    with torch.random.fork_rng(devices=range(torch.cuda.device_count()) if cuda else [], device_type="cuda"):
        yield


@contextmanager
def deterministic_kernels(enabled: bool = True):
    """Ask torch for deterministic kernels inside the block (the previous setting is restored on exit).

    On the CPU the kernels recapp's models use are already deterministic, and
    their results do not depend on the thread count. On CUDA, scatters such as
    ``index_add_`` with repeated indices add in whatever order the atomics land,
    so two fits with the same seed differ; inside this block torch uses its
    deterministic variants (an op without one warns rather than fails).
    ``enabled=False`` leaves the setting alone.
    """
    if not enabled:
        yield
        return
    old, old_warn = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(old, warn_only=old_warn)


@contextmanager
def torch_threads(n: int | None):
    """Cap torch's intra-op CPU threads at ``n`` inside the block (restored on exit); ``None`` leaves them.

    Training on small tensors (embedding gathers and scatters, batches of a few
    thousand rows) gains little from a second thread, and on a machine whose
    cores are shared each multi-threaded op can stall until every thread gets a
    time slice: measured on a busy 2-core box, ``index_select`` of 4096 x 64
    took 15 ms with 2 threads against 0.2 ms with 1.
    """
    if n is None:
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(max(1, min(int(n), old)))
    try:
        yield
    finally:
        torch.set_num_threads(old)


__all__ = ["caller_rng_kept", "deterministic_kernels", "resolve_device", "seed_everything", "torch_threads"]
