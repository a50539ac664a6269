"""Writing results: figures (matplotlib's Agg backend, chosen once, here) and Markdown tables.

`evaluate.py` and `consistency.py` draw with `plt` from this module and hand the figure to
`save_figure`. Agg renders to files only, so plotting works without a display, in tests and
in notebooks alike (the notebooks show the saved PNG files).
"""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)
import numpy as np  # noqa: E402

from checks import atomic_path  # noqa: E402


def save_figure(fig, path, dpi: int = 120) -> None:
    """Write the figure to `path` (format from the suffix) atomically, then free it."""
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=dpi)
    finally:
        plt.close(fig)


def hide_unused(axes, n_used: int) -> None:
    """Blank the panels of a grid of axes after the first n_used."""
    for ax in list(np.ravel(axes))[n_used:]:
        ax.axis("off")


def markdown_table(rows: list[dict]) -> str:
    """A list of flat dicts as a Markdown table (columns of the first row; floats to 4 significant digits)."""
    if not rows:
        return "_(nothing)_\n"
    cols = list(rows[0])

    def fmt(v):
        return f"{v:.4g}" if isinstance(v, (float, np.floating)) else str(v)

    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(fmt(r.get(c, "")) for c in cols) + " |" for r in rows]
    return "\n".join(lines) + "\n"
