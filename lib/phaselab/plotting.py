"""The book's figure style, in one place.

White figure and axes background with black text (readable on the light and on the dark theme of
the book: the figure carries its own background), the Okabe-Ito colour-blind-safe palette as the
colour cycle, perceptually uniform colour maps, and a consistent size.  Every chapter calls
:func:`use_book_style` once, at the top.

Alt text: a figure glued with ``glue("fig-key", fig, display=False)`` gets its alt text (what a
screen reader says instead of the image) from the ``:alt:`` option of the ``{glue:figure}``
directive that shows it; see the notation page of the book.
"""

from __future__ import annotations

import matplotlib as mpl
from cycler import cycler

# Okabe & Ito (2008), "Color universal design": distinguishable under the common colour-vision
# deficiencies (and in greyscale print, together with distinct line styles or markers).
OKABE_ITO = (
    "#0072B2",  # blue
    "#E69F00",  # orange
    "#009E73",  # bluish green
    "#D55E00",  # vermillion
    "#CC79A7",  # reddish purple
    "#56B4E9",  # sky blue
    "#F0E442",  # yellow (low contrast on white: avoid for thin lines)
    "#000000",  # black
)
BLUE, ORANGE, GREEN, VERMILLION, PURPLE, SKY_BLUE, YELLOW, BLACK = OKABE_ITO

SEQUENTIAL_CMAP = "viridis"  # perceptually uniform, colour-blind safe, monotone in lightness
DIVERGING_CMAP = "RdBu_r"  # symmetric about zero; pass vmin=-vmax so zero is white

# Colours of the claims-ledger verdicts ("reproduced", "not reproduced") wherever they are plotted.
VERDICT_COLOURS = {"reproduced": BLUE, "not reproduced": VERMILLION}


def use_book_style() -> None:
    """Apply the book's matplotlib style (white background, Okabe-Ito colours, readable fonts)."""
    mpl.rcParams.update(
        {
            "figure.facecolor": "white",
            "figure.edgecolor": "white",
            "axes.facecolor": "white",
            "savefig.facecolor": "white",
            "savefig.transparent": False,
            "text.color": "black",
            "axes.labelcolor": "black",
            "axes.edgecolor": "black",
            "xtick.color": "black",
            "ytick.color": "black",
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
