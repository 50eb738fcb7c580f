"""The book's figures, in one place: sized for the text column, readable, crisp.

Every chapter calls :func:`use_book_style` once, at the top, and makes each figure with
:func:`figure`:

* **Sized for the column.**  The book's text column is about ``COLUMN_PX`` CSS pixels wide on
  a desktop.  A figure is a fraction ``width`` of it (``figure(width=0.6)``), with at most
  ``MAX_PANELS_PER_ROW`` panels side by side; more panels are stacked in rows.  One inch of
  figure is ``PX_PER_INCH`` CSS pixels on the page, so a font of ``n`` points shows at
  ``n * 100 / 72`` CSS pixels; the smallest font the style allows is ``MIN_FONT_PT`` points.
* **Crisp on high-density screens.**  Figures are rendered as PNG at twice their CSS size and
  tagged with their CSS width (the ``width`` of the ``image/png`` output metadata, which Jupyter
  and the book both honour).
* **Measurable.**  Each PNG carries, as text chunks, the smallest font size of its text
  (``phasebook:min-font-pt``) and its resolution (``phasebook:dpi``): the test of the rendered book
  reads them to compute how large the text shows on the page, and fails below 10 CSS px.
* **Legends off the data:** :func:`legend_outside` puts a figure's legend below or beside its axes.
* White figure and axes background with black text (readable on the light and on the dark theme:
  the figure carries its own background) and the Okabe-Ito colour-blind-safe palette.

Alt text: a figure glued with ``glue("fig-key", fig, display=False)`` gets its alt text from the
``:alt:`` option of the ``{glue:figure}`` directive that shows it.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
from cycler import cycler
from matplotlib.figure import Figure
from matplotlib.text import Text

from phaselab import validation

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
# Theory is drawn in black (lines), simulations in colour (markers): the two never share a colour.
THEORY_COLOUR = BLACK

SEQUENTIAL_CMAP = "viridis"  # perceptually uniform, colour-blind safe, monotone in lightness
DIVERGING_CMAP = "RdBu_r"  # symmetric about zero; pass vmin=-vmax so zero is white

COLUMN_PX = 670  # CSS width of the book's text column at a 1280 px viewport (measured: 672)
PX_PER_INCH = 100  # CSS pixels per inch of figure
COLUMN_INCHES = COLUMN_PX / PX_PER_INCH
RETINA = 2  # PNG pixels per CSS pixel
MAX_PANELS_PER_ROW = 2
MIN_FONT_PT = 10.0  # the smallest font of any figure text: 10 pt = 13.9 CSS px on the page
PNG_FONT_KEY = "phasebook:min-font-pt"
PNG_DPI_KEY = "phasebook:dpi"


def use_book_style() -> None:
    """Apply the book's matplotlib style and register the figure renderer of the notebook.

    Fonts are at least ``MIN_FONT_PT``; figures render as 2x PNGs carrying their CSS width
    and their smallest font size (see the module docstring).
    """
    _register_png_renderer()  # first: loading the notebook backend resets some settings
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
            "figure.figsize": (COLUMN_INCHES, 0.62 * COLUMN_INCHES),
            "figure.dpi": PX_PER_INCH,
            "savefig.dpi": RETINA * PX_PER_INCH,
            "axes.prop_cycle": cycler(color=OKABE_ITO),
            "axes.grid": True,
            "grid.alpha": 0.3,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "font.size": 11,
            "axes.titlesize": 11,
            "axes.labelsize": 11,
            "xtick.labelsize": MIN_FONT_PT,
            "ytick.labelsize": MIN_FONT_PT,
            "legend.fontsize": MIN_FONT_PT,
            "legend.title_fontsize": MIN_FONT_PT,
            "figure.titlesize": 12,
            "legend.frameon": False,
            "lines.markersize": 5,
            "image.cmap": SEQUENTIAL_CMAP,
            "figure.constrained_layout.use": True,
        }
    )


def figure(
    panels: int = 1,
    *,
    width: float = 1.0,
    aspect: float = 0.68,
    sharex: bool | str = False,
    sharey: bool | str = False,
    extra_height: float = 0.0,
) -> tuple[Figure, np.ndarray]:
    """A figure for the text column: ``panels`` axes, at most two side by side, the rest stacked.

    ``width`` is the fraction of the column the figure spans (0.3 to 1); ``aspect`` the height of
    each panel over its width; ``extra_height`` inches added for a legend below the axes.  Returns
    the figure and a flat array of its axes (length ``panels``).
    """
    panels = validation.integer("panels", panels, minimum=1, maximum=8)
    width = validation.in_range("width", width, 0.3, 1.0)
    aspect = validation.in_range("aspect", aspect, 0.1, 2.0)
    extra_height = validation.in_range("extra_height", extra_height, 0.0, 6.0)
    columns = min(panels, MAX_PANELS_PER_ROW)
    rows = -(-panels // columns)
    fig_width = width * COLUMN_INCHES
    panel_height = fig_width / columns * aspect
    fig, axes = plt.subplots(
        rows, columns, figsize=(fig_width, rows * panel_height + extra_height), sharex=sharex, sharey=sharey,
        squeeze=False,
    )
    axes = axes.ravel()
    for extra in axes[panels:]:
        extra.remove()
    return fig, axes[:panels]


def legend_outside(target: Figure | mpl.axes.Axes, *, where: str = "below", ncols: int | None = None,
                   handles: Sequence | None = None, labels: Sequence[str] | None = None, **kwargs) -> mpl.legend.Legend:
    """A legend off the data: below the axes (``where="below"``) or at their right (``"right"``).

    ``target`` is a figure (one legend for all panels, the handles of every axes gathered once per
    label) or one axes.
    """
    if where not in ("below", "right"):
        raise ValueError(f"where must be 'below' or 'right', got {where!r}")
    if handles is None:
        axes = target.axes if isinstance(target, Figure) else [target]
        found: dict[str, object] = {}
        for ax in axes:
            for handle, label in zip(*ax.get_legend_handles_labels()):
                found.setdefault(label, handle)
        handles, labels = list(found.values()), list(found)
    if isinstance(target, Figure):
        loc = "outside lower center" if where == "below" else "outside right center"
        columns = ncols if ncols is not None else (min(len(handles), 3) if where == "below" else 1)
        return target.legend(handles, labels, loc=loc, ncols=max(columns, 1), **kwargs)
    if where == "below":
        return target.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, -0.22),
                             ncols=ncols or min(len(handles), 3), **kwargs)
    return target.legend(handles, labels, loc="center left", bbox_to_anchor=(1.02, 0.5), ncols=ncols or 1, **kwargs)


def smallest_font_pt(fig: Figure) -> float:
    """The smallest font size (points) of the visible, non-empty text of ``fig``."""
    sizes = [t.get_fontsize() for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()]
    return float(min(sizes)) if sizes else float("inf")


def png_bytes(fig: Figure) -> tuple[bytes, dict[str, int]]:
    """Render ``fig`` as a 2x PNG tagged with its smallest font and resolution.

    Returns the bytes and the CSS width to display it at (``{"width": ...}``; no height, so that a
    narrow screen scales the figure down without distorting it).
    """
    dpi = RETINA * fig.dpi
    buffer = io.BytesIO()
    metadata = {PNG_FONT_KEY: f"{smallest_font_pt(fig):.2f}", PNG_DPI_KEY: f"{dpi:g}"}
    fig.savefig(buffer, format="png", dpi=dpi, metadata=metadata, facecolor="white")
    return buffer.getvalue(), {"width": round(fig.get_size_inches()[0] * fig.dpi)}


def _register_png_renderer() -> None:
    """Make IPython render figures with :func:`png_bytes` (outside IPython: nothing to do)."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython is a dependency of the book
        return
    shell = get_ipython()
    if shell is None:
        return
    # Load the backend first: matplotlib-inline registers its own PNG formatter (and its own settings)
    # when it loads, at the first figure, which would replace ours.
    plt.close(plt.figure())
    formatter = shell.display_formatter.formatters["image/png"]
    formatter.for_type(Figure, png_bytes)
