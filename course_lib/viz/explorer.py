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

Drawing choices, so the map reads up close: items that UMAP puts on top of each other (the
world's near-duplicate items of one leaf category land within 0.5% of the map) are nudged apart
for drawing only (`spread_overlaps`), so "code 3: 25 items" shows 25 points; popularity is
coloured on a log scale clipped at its 2nd and 98th percentiles, with cold items (popularity 0)
marked by grey crosses instead of stretching the scale to log10 of a floor; the colour bar has
a slot of its own, so the map keeps its size whatever it is coloured by.

Names: N items, L levels, K codes per level.
"""
from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from scipy.spatial import cKDTree


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


def spread_overlaps(xy: np.ndarray, min_distance: float, max_steps: int = 100,
                    seed: int = 0) -> np.ndarray:
    """Positions (N, 2) for drawing in which items sit about `min_distance` apart or more.

    Every pair closer than `min_distance` is pushed apart along the line between them by a
    quarter of the shortfall, until no pair is closer than 0.9 `min_distance` or `max_steps`
    pass. A tight group of near-duplicates becomes a small cloud of distinct points around
    where it was; items already apart stay put (up to a seeded jitter of 0.001 `min_distance`
    that first separates exact duplicates). For drawing only: distances on the map are
    measured on `xy`.
    """
    if min_distance <= 0:
        raise ValueError(f"min_distance must be > 0, got {min_distance}")
    rng = np.random.default_rng(seed)
    pos = np.asarray(xy, dtype=float) + rng.normal(scale=1e-3 * min_distance, size=np.shape(xy))
    for _ in range(max_steps):
        i, j = cKDTree(pos).query_pairs(min_distance, output_type="ndarray").T
        delta = pos[i] - pos[j]                                             # (P, 2)
        dist = np.linalg.norm(delta, axis=1, keepdims=True)
        if not (dist < 0.9 * min_distance).any():
            break
        push = delta / np.maximum(dist, 1e-12) * (min_distance - dist) / 4
        move = np.zeros_like(pos)
        np.add.at(move, i, push)
        np.add.at(move, j, -push)
        pos += move
    return pos


class CodebookExplorer:
    """The explorer's data and drawing; `show()` for the static figure plus widgets."""

    COLOURS = ("code", "category", "popularity")
    MIN_GAP = 0.012                  # drawn items sit >= 1.2% of the map's extent apart (500
                                     # items; less for more, so no group swells beyond ~3%)
    POPULARITY_CLIP = (2, 98)        # percentiles of the warm items' log popularity

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
        if self.popularity is not None and not (self.popularity >= 0).all():
            raise ValueError("popularity must be >= 0 (0 for cold items) and not NaN")
        self.title = title
        extent = float(np.ptp(self.xy, axis=0).max()) or 1.0
        gap = self.MIN_GAP * extent * min(1.0, np.sqrt(500 / len(self.xy)))
        self.shown_xy = spread_overlaps(self.xy, gap)                       # (N, 2), drawing only

    @property
    def n_levels(self) -> int:
        return self.codes.shape[1]

    # --- the two panels ---------------------------------------------------------------------

    def popularity_scale(self) -> tuple[float, float]:
        """The colour scale's ends: the clip percentiles of log10 popularity over warm items."""
        warm = self.popularity[self.popularity > 0]
        if len(warm) == 0:
            return (0.0, 1.0)
        low, high = np.percentile(np.log10(warm), self.POPULARITY_CLIP)
        return (float(low), float(high) if high > low else float(low) + 1.0)

    def draw_map(self, ax, level: int = 1, colour: str = "code", code: int | None = None,
                 cax=None):
        """Scatter of the items; level is 1-based; `code` highlights that code's items.

        Popularity colouring draws its colour bar into `cax` when given (a slot of its own, so
        the map keeps its size), else takes the room from `ax` as matplotlib does.
        """
        if colour not in self.COLOURS:
            raise ValueError(f"colour must be one of {self.COLOURS}, got {colour!r}")
        column = self.codes[:, level - 1]
        x, y = self.shown_xy[:, 0], self.shown_xy[:, 1]
        dim = code is not None
        alpha = 0.25 if dim else 0.8
        if colour == "code":
            points = ax.scatter(x, y, c=column, cmap="tab20", s=8, alpha=alpha, linewidths=0)
            label = f"level-{level} code"
        elif colour == "category" and self.categories is not None:
            points = ax.scatter(x, y, c=self.categories, cmap="tab10", s=8, alpha=alpha,
                                linewidths=0)
            label = "category"
        elif colour == "popularity" and self.popularity is not None:
            cold = self.popularity == 0
            low, high = self.popularity_scale()
            points = ax.scatter(x[~cold], y[~cold], c=np.log10(self.popularity[~cold]),
                                cmap="viridis", vmin=low, vmax=high, s=8, alpha=alpha,
                                linewidths=0)
            if cold.any():                   # log10(0) has no colour: a mark of their own
                ax.scatter(x[cold], y[cold], c="0.35", marker="x", s=12, alpha=alpha,
                           linewidths=0.8, label=f"cold: {int(cold.sum())} items, no interactions")
            label = "log10 popularity"
            bar = ax.figure.colorbar(points, cax=cax, ax=None if cax is not None else ax,
                                     extend="both")
            bar.set_label("log10 popularity, clipped to percentiles "
                          "{}–{} of the warm items".format(*self.POPULARITY_CLIP), fontsize=8)
            bar.solids.set_alpha(1.0)
        else:
            raise ValueError(f"no {colour} values were given to the explorer")
        if dim:
            mine = column == code
            ax.scatter(x[mine], y[mine], s=24, facecolors="none", edgecolors="crimson",
                       linewidths=1.0, label=f"code {code}: {int(mine.sum())} items")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="best", fontsize=8)
        ax.set(title=f"UMAP of {self.title}\ncoloured by {label}", xlabel="UMAP 1 (a.u.)",
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

    def map_and_usage_figure(self, figsize=(12.5, 4.8)):
        """The widget's figure: map, colour bar slot (hidden), usage chart; fixed positions.

        No layout engine: with one, the map would shrink whenever the colour bar shows.
        """
        fig = plt.figure(figsize=figsize)
        grid = fig.add_gridspec(1, 4, width_ratios=[1, 0.035, 0.3, 1], wspace=0.05,
                                left=0.04, right=0.98, bottom=0.1, top=0.86)
        ax_map, cax, ax_usage = (fig.add_subplot(grid[0, i]) for i in (0, 1, 3))
        cax.set_visible(False)
        return fig, ax_map, cax, ax_usage

    def static_figure(self, level: int = 1):
        """The map coloured three ways and the usage chart of every level."""
        colours = [c for c in self.COLOURS
                   if c == "code" or getattr(self, {"category": "categories",
                                                    "popularity": "popularity"}[c]) is not None]
        n_columns = max(len(colours), self.n_levels)
        fig = plt.figure(figsize=(5.2 * n_columns, 9), layout="constrained")
        grid = fig.add_gridspec(2, 2 * n_columns, width_ratios=[1, 0.05] * n_columns)
        for column, colour in enumerate(colours):
            cax = fig.add_subplot(grid[0, 2 * column + 1])
            cax.set_visible(colour == "popularity")
            self.draw_map(fig.add_subplot(grid[0, 2 * column]), level, colour, cax=cax)
        for l in range(1, self.n_levels + 1):
            self.draw_usage(fig.add_subplot(grid[1, 2 * l - 2:2 * l]), l)
        return fig

    def widget(self):
        """The interactive app (ipywidgets): level slider, colour toggle, code picker.

        Every change redraws once. A highlighted code belongs to its level: moving the slider
        clears it and the line under the controls says so. Returns the app (a `VBox`) without
        displaying it; `show()` displays it.
        """
        import ipywidgets as w

        level = w.IntSlider(value=1, min=1, max=self.n_levels, description="level")
        colour = w.ToggleButtons(options=list(self.COLOURS), value="code",
                                 description="colour by")
        code = w.Dropdown(description="highlight")
        note = w.Label()
        out = w.Output()
        updating = [False]                  # True while the code picker's options are replaced

        def code_options():
            counts = _usage(self.codes[:, level.value - 1], self.sizes[level.value - 1])
            used = np.argsort(-counts, kind="stable")[:int((counts > 0).sum())]
            updating[0] = True
            try:
                code.options = [("none", -1)] + [(f"code {c} ({counts[c]} items)", int(c))
                                                 for c in used]
                code.value = -1
            finally:
                updating[0] = False

        def redraw(*_):
            if updating[0]:
                return
            picked = None if code.value in (None, -1) else code.value
            out.clear_output(wait=True)
            with out:
                fig, left, cax, right = self.map_and_usage_figure()
                try:
                    self.draw_map(left, level.value, colour.value, picked, cax=cax)
                    cax.set_visible(colour.value == "popularity")
                except ValueError as err:                  # no category / popularity given
                    left.text(0.5, 0.5, str(err), ha="center", transform=left.transAxes)
                self.draw_usage(right, level.value, picked)
                plt.show()

        def level_changed(change):
            picked = code.value
            code_options()
            note.value = "" if picked in (None, -1) else (
                f"code {picked} of level {change['old']} is no longer highlighted: codes at "
                f"level {change['new']} are other groups; pick one above")
            redraw()

        def picked_or_recoloured(*_):
            note.value = ""
            redraw()

        code_options()
        level.observe(level_changed, names="value")
        colour.observe(picked_or_recoloured, names="value")
        code.observe(picked_or_recoloured, names="value")
        redraw()
        return w.VBox([w.HBox([level, colour]), code, note, out])

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
