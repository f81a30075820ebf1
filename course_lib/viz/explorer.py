"""The codebook explorer: a UMAP map of the items coloured by their code at a chosen level,
by category or by popularity, next to each level's codebook usage.

    xy = umap_embedding(content)                       # (N, 2), cached on disk
    explorer = CodebookExplorer(xy, codes, codebook_size=K, categories=..., popularity=...)
    explorer.show()                                    # static figure, then widgets if live

`show()` always draws a static matplotlib figure, so an executed notebook, its HTML export
and nbval all get a picture; in a live Jupyter kernel it adds an ipywidgets app below it:
a level slider, a colour-by toggle (code / category / popularity) and a code picker that
highlights the items carrying that code on the map and its bar in the usage chart.

UMAP (McInnes et al. 2018) imports and compiles its numba kernels on first use in a process:
about 40 s measured on a busy 2-core CPU (10 s import, 30 s first fit; a second fit of 500
points takes 3 s), more than the rest of lesson 05. The 2-D layout is therefore cached on
disk (`$COURSE_CACHE_DIR`, else `~/.cache/course_lib`), keyed by a hash of the vectors and
the settings, so a re-run loads it and never imports UMAP. Without umap-learn the map falls
back to PCA and says so.

Names: N items, L levels, K codes per level.
"""
from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np


def cache_dir() -> Path:
    root = os.environ.get("COURSE_CACHE_DIR") or os.environ.get("XDG_CACHE_HOME")
    base = Path(root) if root else Path.home() / ".cache"
    return base if os.environ.get("COURSE_CACHE_DIR") else base / "course_lib"


def umap_embedding(x, seed: int = 0, n_neighbors: int = 15, min_dist: float = 0.1,
                   use_cache: bool = True) -> np.ndarray:
    """2-D UMAP layout (N, 2) of the rows of x, cached on disk; PCA if umap-learn is missing."""
    x = np.ascontiguousarray(np.asarray(x, dtype=np.float32))
    if x.ndim != 2 or len(x) < 3:
        raise ValueError(f"need a 2-D array with at least 3 rows, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("the vectors contain NaN or inf; fix them before drawing the map")
    key = hashlib.sha1(x.tobytes() + repr((x.shape, seed, n_neighbors, min_dist)).encode())
    path = cache_dir() / "umap" / f"{key.hexdigest()}.npy"
    if use_cache and path.exists():
        return np.load(path)
    try:
        import umap
    except ImportError:
        print("umap-learn is not installed: showing a PCA map instead")
        centred = x - x.mean(0)
        return centred @ np.linalg.svd(centred, full_matrices=False)[2][:2].T
    with warnings.catch_warnings():                     # "n_jobs overridden by random_state"
        warnings.simplefilter("ignore")
        xy = umap.UMAP(n_neighbors=min(n_neighbors, len(x) - 1), min_dist=min_dist,
                       random_state=seed).fit_transform(x)
    if use_cache:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_suffix(f".{os.getpid()}.partial")
            with open(partial, "wb") as f:              # atomic: a reader never sees half
                np.save(f, xy)
            os.replace(partial, path)
        except OSError:                                  # a read-only home: just no cache
            pass
    return xy


def _usage(codes: np.ndarray, size: int) -> np.ndarray:
    column = codes[codes >= 0]
    return np.bincount(column, minlength=size)


class CodebookExplorer:
    """The explorer's data and drawing; `show()` for the static figure plus widgets."""

    COLOURS = ("code", "category", "popularity")

    def __init__(self, xy, codes, codebook_size: int | list[int], categories=None,
                 popularity=None, title: str = "items"):
        self.xy = np.asarray(xy, dtype=float)
        self.codes = np.asarray(codes)
        if self.codes.ndim != 2 or len(self.codes) != len(self.xy) or self.xy.shape[1:] != (2,):
            raise ValueError(f"need xy (N, 2) and codes (N, L) for the same N items, got "
                             f"{self.xy.shape} and {self.codes.shape}")
        n_levels = self.codes.shape[1]
        sizes = [codebook_size] * n_levels if np.isscalar(codebook_size) else list(codebook_size)
        if len(sizes) != n_levels:
            raise ValueError(f"need one codebook size per level ({n_levels}), got {len(sizes)}")
        self.sizes = [int(s) for s in sizes]
        self.categories = None if categories is None else np.asarray(categories)
        self.popularity = None if popularity is None else np.asarray(popularity, dtype=float)
        self.title = title

    @property
    def n_levels(self) -> int:
        return self.codes.shape[1]

    # --- the two panels ---------------------------------------------------------------------

    def draw_map(self, ax, level: int = 1, colour: str = "code", code: int | None = None):
        """Scatter of the items; level is 1-based; `code` highlights that code's items."""
        if colour not in self.COLOURS:
            raise ValueError(f"colour must be one of {self.COLOURS}, got {colour!r}")
        column = self.codes[:, level - 1]
        if colour == "code":
            values, cmap, label = column, "tab20", f"level-{level} code"
        elif colour == "category" and self.categories is not None:
            values, cmap, label = self.categories, "tab10", "category"
        elif colour == "popularity" and self.popularity is not None:
            values, cmap, label = np.log10(self.popularity + 1e-6), "viridis", "log10 popularity"
        else:
            raise ValueError(f"no {colour} values were given to the explorer")
        dim = code is not None
        points = ax.scatter(self.xy[:, 0], self.xy[:, 1], c=values, cmap=cmap, s=8,
                            alpha=0.25 if dim else 0.8, linewidths=0)
        if dim:
            mine = column == code
            ax.scatter(self.xy[mine, 0], self.xy[mine, 1], s=30, facecolors="none",
                       edgecolors="crimson", linewidths=1.2,
                       label=f"code {code}: {int(mine.sum())} items")
            ax.legend(loc="upper right", fontsize=8)
        if colour == "popularity":
            ax.figure.colorbar(points, ax=ax, label=label)
        ax.set(title=f"UMAP of {self.title}, coloured by {label}", xlabel="UMAP 1 (a.u.)",
               ylabel="UMAP 2 (a.u.)")
        ax.set_xticks([])
        ax.set_yticks([])
        return points

    def draw_usage(self, ax, level: int = 1, code: int | None = None):
        """Bar chart of how many items carry each code at `level` (1-based), most used first."""
        counts = _usage(self.codes[:, level - 1], self.sizes[level - 1])
        order = np.argsort(-counts, kind="stable")
        colours = np.where(order == code, "crimson", "steelblue") if code is not None \
            else "steelblue"
        ax.bar(np.arange(len(counts)), counts[order], color=colours, width=1.0)
        used = int((counts > 0).sum())
        ax.set(title=f"level {level}: {used}/{len(counts)} codes used",
               xlabel="code, by rank of use", ylabel="items")

    # --- the static figure and the app ------------------------------------------------------

    def static_figure(self, level: int = 1):
        """The map coloured three ways and the usage chart of every level."""
        colours = [c for c in self.COLOURS
                   if c == "code" or getattr(self, {"category": "categories",
                                                    "popularity": "popularity"}[c]) is not None]
        fig, axes = plt.subplots(2, max(len(colours), self.n_levels),
                                 figsize=(5 * max(len(colours), self.n_levels), 9),
                                 squeeze=False)
        for ax, colour in zip(axes[0], colours):
            self.draw_map(ax, level, colour)
        for l, ax in enumerate(axes[1][:self.n_levels], start=1):
            self.draw_usage(ax, l)
        for ax in list(axes[0][len(colours):]) + list(axes[1][self.n_levels:]):
            ax.axis("off")
        fig.tight_layout()
        return fig

    def widget(self):
        """The interactive app (ipywidgets): level slider, colour toggle, code picker.

        Returns the app (a `VBox`) without displaying it; `show()` displays it.
        """
        import ipywidgets as w

        level = w.IntSlider(value=1, min=1, max=self.n_levels, description="level")
        colour = w.ToggleButtons(options=list(self.COLOURS), value="code",
                                 description="colour by")
        code = w.Dropdown(description="highlight")
        out = w.Output()

        def code_options(*_):
            counts = _usage(self.codes[:, level.value - 1], self.sizes[level.value - 1])
            used = np.argsort(-counts, kind="stable")[:int((counts > 0).sum())]
            code.options = [("none", -1)] + [(f"code {c} ({counts[c]} items)", int(c))
                                             for c in used]
            code.value = -1

        def redraw(*_):
            picked = None if code.value in (None, -1) else code.value
            out.clear_output(wait=True)
            with out:
                fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
                try:
                    self.draw_map(left, level.value, colour.value, picked)
                except ValueError as err:                  # no category / popularity given
                    left.text(0.5, 0.5, str(err), ha="center", transform=left.transAxes)
                self.draw_usage(right, level.value, picked)
                fig.tight_layout()
                plt.show()

        code_options()
        level.observe(code_options, names="value")
        for control in (level, colour, code):
            control.observe(redraw, names="value")
        redraw()
        return w.VBox([w.HBox([level, colour]), code, out])

    def show(self, level: int = 1, interactive: bool | None = None) -> None:
        """Draw the static figure; below it, display the widget app in a live kernel.

        interactive=None decides by itself: widgets when IPython runs a kernel, ipywidgets
        imports and $COURSE_WIDGETS is not "0". The static figure comes first, so an executed
        notebook, its HTML export and nbval keep a picture even where widgets do not render.
        """
        self.static_figure(level)
        plt.show()
        if interactive is None:
            interactive = _in_kernel() and os.environ.get("COURSE_WIDGETS", "1") != "0"
        if not interactive:
            return
        try:
            app = self.widget()
        except ImportError:
            print("ipywidgets is not installed: the static figure above is all there is")
            return
        from IPython.display import display
        display(app)


def _in_kernel() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and hasattr(shell, "kernel")
