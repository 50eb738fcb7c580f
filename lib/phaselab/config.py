"""Run scale, compute device, random generators and allocator settings shared by every chapter.

The book runs at two scales.  ``default`` fits the budget of a 2-core CPU (each chapter in at
most five minutes); ``paper`` runs the paper-sized experiments.  The scale is read from the
environment variable ``PHASEBOOK_SCALE`` so that the same notebook serves both.
"""

from __future__ import annotations

import ctypes
import functools
import os
import sys
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch

SCALES = ("default", "paper", "smoke")
T = TypeVar("T")
# The smoke scale keeps every size up to this one and shrinks larger ones (see :func:`smoke_size`).
SMOKE_KEEP = 16


def scale() -> str:
    """Return the run scale from ``PHASEBOOK_SCALE`` (``"default"`` when unset)."""
    value = os.environ.get("PHASEBOOK_SCALE", "default").strip().lower() or "default"
    if value not in SCALES:
        raise ValueError(f"PHASEBOOK_SCALE must be one of {SCALES}, got {value!r}")
    return value


_UNSET = object()


def by_scale(default: T, paper: T, smoke: T = _UNSET) -> T:
    """Pick ``default`` or ``paper`` according to :func:`scale`.

    The ``smoke`` scale (a test, not a result: ``tests/test_scales.py``) takes the ``paper`` value
    with every integer in it shrunk by :func:`smoke_size`: the paper's grids, keys and shapes, at
    sizes that run in seconds.  ``smoke`` overrides that where the shrunk size is still too costly.
    """
    chosen = scale()
    if chosen == "smoke":
        return _shrunk(paper) if smoke is _UNSET else smoke
    return paper if chosen == "paper" else default


def statistics_checked() -> bool:
    """False at the smoke scale, whose sizes are too small for statistics: there a standard error
    may be zero and a measurement may fail, and ``stats.goodness_of_fit`` and the ledger accept
    that instead of raising (the chapters' ``assert`` cells are off too: ``PYTHONOPTIMIZE``)."""
    return scale() != "smoke"


def smoke_size(n: int) -> int:
    """An integer size at the smoke scale: kept up to ``SMOKE_KEEP``, beyond it
    ``SMOKE_KEEP * sqrt(n / SMOKE_KEEP)`` rounded.  Non-decreasing, so grids keep their order;
    sizes at least 25% apart stay distinct; one value maps to one value wherever it appears."""
    if n <= SMOKE_KEEP:
        return n
    return int(round(SMOKE_KEEP * (n / SMOKE_KEEP) ** 0.5))


def _shrunk(value: T) -> T:
    """``value`` with :func:`smoke_size` applied to every integer in it (in lists, tuples, arrays)."""
    if isinstance(value, (bool, np.bool_)):
        return value
    if isinstance(value, (int, np.integer)):
        return type(value)(smoke_size(int(value)))
    if isinstance(value, (list, tuple)):
        return type(value)(_shrunk(v) for v in value)
    if isinstance(value, np.ndarray) and np.issubdtype(value.dtype, np.integer):
        return np.vectorize(smoke_size, otypes=[value.dtype])(value) if value.size else value
    return value


def book_root() -> Path | None:
    """The checkout of the book the current process works in, or ``None`` outside one.

    ``$PHASEBOOK_ROOT`` when set (``make test`` sets it: nbval runs the chapters from a scratch
    folder), else the nearest folder at or above the working directory that holds ``_toc.yml``
    and ``book/``.  Found from the working directory, not from where ``phaselab`` is installed, so
    that one environment shared by two checkouts writes into the checkout being built.
    """
    override = os.environ.get("PHASEBOOK_ROOT")
    if override:
        return Path(override).resolve()
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / "_toc.yml").is_file() and (folder / "book").is_dir():
            return folder
    return None


def default_device() -> torch.device:
    """The device torch code runs on: CUDA when a GPU is present, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def resolve_device(device: str | torch.device | None) -> torch.device:
    """Turn a ``device=`` argument into a :class:`torch.device` (``None``: the default)."""
    if device is None:
        return default_device()
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"device must name a torch device such as 'cpu' or 'cuda', got {device!r}") from err


def numpy_rng(seed: int) -> np.random.Generator:
    """A seeded NumPy generator; every random draw in the book goes through one."""
    return np.random.default_rng(seed)


def torch_generator(seed: int, device: str | torch.device | None = None) -> torch.Generator:
    """A seeded torch generator on ``device`` (CPU when ``None``)."""
    gen = torch.Generator(device=resolve_device(device) if device is not None else "cpu")
    gen.manual_seed(int(seed))
    return gen


@functools.cache
def reduce_allocation_overhead() -> bool:
    """Keep freed tensor buffers in the heap instead of returning them to the OS (glibc only).

    Torch's CPU allocator hands each temporary to ``malloc``; glibc serves blocks over 128 KiB by
    ``mmap`` and gives them back on ``free``, so every elementwise op on a ~10^5-entry tensor pays
    page faults that cost several times the arithmetic.  Raising the mmap and trim thresholds (a
    process-wide setting, harmless for correctness) removes that.  Returns whether it applied.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        return bool(libc.mallopt(m_mmap_threshold, 256 << 20)) and bool(libc.mallopt(m_trim_threshold, 512 << 20))
    except (OSError, AttributeError):
        return False
