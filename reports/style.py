"""Plot styling shared by every llmsim figure: colours, themes, axis units, and saving.

One palette of mid-luminance colours (each readable on a white and on a near-black background,
and distinguishable under the common colour-vision deficiencies), fixed colours per op category,
and three themes selected with the :func:`style` context manager:

- ``light``: white background, dark text (the HTML reports use it);
- ``dark``: near-black background, light text (dark notebook themes, slides);
- ``transparent``: no background and mid-grey text and grid, so one PNG reads on either a light
  or a dark notebook page.

Plot functions take an optional ``ax`` and return the Axes they drew on; with no ``ax`` they make
a figure with :func:`new_axes` (pyplot, so a notebook shows it). Library code never calls
``plt.show``; reports build figures with :func:`new_figure` (no pyplot, no global state) and
close nothing because nothing was registered. :func:`save` writes a figure as PNG and SVG.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import matplotlib
from matplotlib.figure import Figure

from hwmodels.format import axis_scale

__all__ = [
    "CATEGORY_COLORS",
    "CATEGORY_LABELS",
    "CATEGORY_ORDER",
    "PALETTE",
    "THEMES",
    "color_for",
    "figure_png",
    "figure_svg",
    "new_axes",
    "new_figure",
    "save",
    "style",
    "time_unit",
    "use_theme",
]

#: mid-luminance colours: readable on white and on #1e1e1e backgrounds
PALETTE = (
    "#3A8FD9",  # blue
    "#E8833A",  # orange
    "#3DAA6D",  # green
    "#D9534F",  # red
    "#9B72CB",  # purple
    "#C9A227",  # ochre
    "#2BB3C0",  # cyan
    "#E377C2",  # pink
    "#8C8C8C",  # grey
    "#A0785A",  # brown
)

#: op categories of the latency breakdown, in stacking order (bottom first)
CATEGORY_ORDER = ("gemm", "attention", "communication", "elementwise", "overhead")
CATEGORY_LABELS = {"gemm": "GEMM", "attention": "attention", "communication": "communication",
                   "elementwise": "elementwise & other", "overhead": "launch & latency overhead"}
CATEGORY_COLORS = {"gemm": PALETTE[0], "attention": PALETTE[1], "communication": PALETTE[4],
                   "elementwise": PALETTE[2], "overhead": PALETTE[8]}

_BASE = {
    "figure.figsize": (7.0, 4.2),
    "figure.dpi": 100,
    "savefig.dpi": 150,
    "savefig.bbox": "tight",
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "legend.fontsize": 8.5,
    "legend.framealpha": 0.6,
    "axes.grid": True,
    "grid.linewidth": 0.6,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "lines.linewidth": 1.8,
    "svg.fonttype": "none",  # text stays text in SVG (searchable, smaller)
    "axes.prop_cycle": matplotlib.cycler(color=list(PALETTE)),
}


def _theme(fg: str, bg: str, grid: str, grid_alpha: float, legend_bg: str) -> dict:
    return {
        **_BASE,
        # savefig takes the figure's own background, so a figure saved after the style context
        # ends keeps the theme it was drawn in
        "figure.facecolor": bg, "axes.facecolor": bg, "savefig.facecolor": "auto",
        "text.color": fg, "axes.labelcolor": fg, "axes.edgecolor": fg, "axes.titlecolor": fg,
        "xtick.color": fg, "ytick.color": fg, "grid.color": grid, "grid.alpha": grid_alpha,
        "legend.facecolor": legend_bg, "legend.edgecolor": grid, "legend.labelcolor": fg,
        "patch.edgecolor": bg if bg != "none" else "#808080",
    }


THEMES = {
    "light": _theme("#222222", "#ffffff", "#b0b0b0", 0.5, "#ffffff"),
    "dark": _theme("#dddddd", "#1e1e1e", "#5a5a5a", 0.6, "#2a2a2a"),
    "transparent": _theme("#8a8a8a", "none", "#8a8a8a", 0.35, "none"),
}


def _rc(theme: str) -> dict:
    try:
        return THEMES[theme]
    except KeyError:
        raise ValueError(f"unknown theme {theme!r}; themes: {', '.join(THEMES)}") from None


@contextlib.contextmanager
def style(theme: str = "light"):
    """Context manager: figures made inside use ``theme`` (light, dark or transparent)."""
    with matplotlib.rc_context(_rc(theme)):
        yield


def use_theme(theme: str = "transparent") -> None:
    """Set ``theme`` for the rest of the session (notebooks: call once at the top)."""
    matplotlib.rcParams.update(_rc(theme))


def color_for(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def new_figure(nrows: int = 1, ncols: int = 1, figsize=None, **kw):
    """(Figure, axes) without pyplot: nothing global, nothing to close (reports, CLI)."""
    fig = Figure(figsize=figsize or matplotlib.rcParams["figure.figsize"], layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=True, **kw)
    return fig, axes


def new_axes(ax=None, figsize=None):
    """``ax`` itself, or a fresh pyplot Axes (shown by a notebook) when ``ax`` is None."""
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    _, ax = plt.subplots(figsize=figsize, layout="constrained")
    return ax


# ---------------------------------------------------------------------------------------------
# units on axes

def time_unit(seconds) -> tuple[float, str]:
    """(scale, unit) to show a range of times whose largest is ``seconds``: divide by scale."""
    return axis_scale(seconds, "s")


# ---------------------------------------------------------------------------------------------
# saving


def save(fig, path_stem, dpi: int | None = None) -> tuple[Path, Path]:
    """Write ``fig`` as ``<path_stem>.png`` and ``<path_stem>.svg`` (folders made); returns both paths."""
    stem = Path(path_stem)
    if stem.suffix.lower() in (".png", ".svg"):
        stem = stem.with_suffix("")
    stem.parent.mkdir(parents=True, exist_ok=True)
    png, svg = stem.with_suffix(".png"), stem.with_suffix(".svg")
    fig.savefig(png, format="png", dpi=dpi or matplotlib.rcParams["savefig.dpi"])
    fig.savefig(svg, format="svg")
    return png, svg


def figure_png(fig, dpi: int | None = None) -> bytes:
    """The figure as PNG bytes (for embedding)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi or matplotlib.rcParams["savefig.dpi"])
    return buf.getvalue()


def figure_svg(fig) -> str:
    """The figure as an SVG document (text)."""
    buf = io.StringIO()
    fig.savefig(buf, format="svg")
    return buf.getvalue()
