"""How the course's explorers reach the screen, shared by the codebook explorer (`explorer`)
and the beam-search explorer (`generation`).

An explorer is an ipywidgets app in a live Jupyter kernel, and a static figure where widgets
cannot run: no kernel (a script, pytest), no ipywidgets, or the HTML book, which builds with
$COURSE_WIDGETS=0 because a static page cannot run widgets (`widgets_wanted`). A redraw sends
its figure as one PNG (`png`) or, for the beam explorer, as HTML with the PNG inside
(`png_bytes`).
"""
from __future__ import annotations

import io
import os

import matplotlib.pyplot as plt


def in_kernel() -> bool:
    """True inside a running IPython kernel (Jupyter), False in a script or a plain shell."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and hasattr(shell, "kernel")


def widgets_wanted(kernel: bool | None = None) -> bool:
    """Draw an explorer as widgets? In a kernel, unless $COURSE_WIDGETS is "0" (the HTML book)."""
    kernel = in_kernel() if kernel is None else kernel
    return kernel and os.environ.get("COURSE_WIDGETS", "1") != "0"


def show_explorer(make_widget, draw_static, interactive: bool | None, explained: str) -> None:
    """Show an explorer once: the widget app `make_widget()` where widgets can run (interactive
    None: `widgets_wanted`), else the figure `draw_static()` draws, after `explained` (what the
    explorer would let you do) when a kernel runs without widgets. Never both: the map is not
    drawn twice in a row."""
    kernel = in_kernel()
    if interactive is None:
        interactive = widgets_wanted(kernel)
    if interactive:
        try:
            app = make_widget()
        except ImportError:
            print("ipywidgets is not installed: the static figure below is all there is")
        else:
            from IPython.display import display
            display(app)
            return
    elif kernel:
        print(explained)
    draw_static()
    plt.show()


def png_bytes(fig) -> bytes:
    """The figure as PNG bytes at its own size (no tight bounding box), closed."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", facecolor="white")
    plt.close(fig)
    return buffer.getvalue()


def png(fig):
    """The figure as an IPython PNG at its own size, closed. The inline backend would crop it to
    its tight bounding box, which draws it twice: 40% of a redraw, for a layout that is fixed."""
    from IPython.display import Image

    return Image(data=png_bytes(fig), format="png")


def items_text(n) -> str:
    """'1 item', '7 items'."""
    return f"{int(n)} item" if int(n) == 1 else f"{int(n)} items"


def marker(label: str, marker: str = "o", markersize: float = 6, **style):
    """A legend handle: one marker, no line."""
    from matplotlib.lines import Line2D
    if "color" in style:
        style = {"markerfacecolor": style["color"], "markeredgecolor": style.pop("color"), **style}
    return Line2D([], [], linestyle="", marker=marker, markersize=markersize, label=label, **style)
