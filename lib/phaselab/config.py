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

SCALES = ("default", "paper")
T = TypeVar("T")


def scale() -> str:
    """Return the run scale from ``PHASEBOOK_SCALE`` (``"default"`` when unset)."""
    value = os.environ.get("PHASEBOOK_SCALE", "default").strip().lower() or "default"
    if value not in SCALES:
        raise ValueError(f"PHASEBOOK_SCALE must be one of {SCALES}, got {value!r}")
    return value


def by_scale(default: T, paper: T) -> T:
    """Pick ``default`` or ``paper`` according to :func:`scale`."""
    return paper if scale() == "paper" else default


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
