"""The book's figure style, in one place.

White figure background (readable in light and dark themes), the Okabe-Ito colour-blind-safe
palette, and a consistent size.  Every chapter calls :func:`use_book_style` once.
"""

from __future__ import annotations

import matplotlib as mpl
from cycler import cycler

# Okabe & Ito (2008), "Color universal design": distinguishable under the common colour-vision
# deficiencies.
OKABE_ITO = (
    "#0072B2",  # blue
    "#E69F00",  # orange
    "#009E73",  # bluish green
    "#D55E00",  # vermillion
    "#CC79A7",  # reddish purple
    "#56B4E9",  # sky blue
    "#F0E442",  # yellow
    "#000000",  # black
)

SEQUENTIAL_CMAP = "viridis"
DIVERGING_CMAP = "RdBu_r"


def use_book_style() -> None:
    """Apply the book's matplotlib style (white background, Okabe-Ito colours, readable fonts)."""
    mpl.rcParams.update(
        {
            "figure.facecolor": "white",
            "axes.facecolor": "white",
            "savefig.facecolor": "white",
            "figure.figsize": (6.4, 4.0),
            "figure.dpi": 100,
            "savefig.dpi": 150,
            "axes.prop_cycle": cycler(color=OKABE_ITO),
            "axes.grid": True,
            "grid.alpha": 0.3,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "font.size": 11,
            "legend.frameon": False,
            "image.cmap": SEQUENTIAL_CMAP,
            "figure.constrained_layout.use": True,
        }
    )
