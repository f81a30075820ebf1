"""The codebook explorer: a UMAP map of the items coloured by their code at a chosen level,
by category or by popularity, next to each level's codebook usage.

    xy = umap_embedding(content)                       # (N, 2), cached on disk
    explorer = CodebookExplorer(xy, codes, codebook_size=K, categories=..., interactions=...)
    explorer.show()                                    # the widget app, or a static figure

`show()` draws the map once: in a live Jupyter kernel as an ipywidgets app (a level slider, a
colour-by toggle and a code picker that rings the items carrying that code on the map and its
bar in the usage chart); where widgets cannot run (no kernel, no ipywidgets, or the HTML book,
which sets $COURSE_WIDGETS=0) as a static figure of the map coloured every way at one level and
every level's usage chart.

UMAP (McInnes et al. 2018) imports and compiles its numba kernels on first use in a process:
about 40 s measured on a busy 2-core CPU (10 s import, 30 s first fit; a second fit of 500
points takes 3 s), more than the rest of lesson 05. The 2-D layout is therefore cached on
disk (`$COURSE_CACHE_DIR`, else `~/.cache/course_lib`), keyed by a hash of the vectors and
the settings, so a re-run loads it and never imports UMAP. Without umap-learn the map falls
back to PCA and says so.

Drawing choices, so the map reads at a glance:
* every map has a key beside it (a legend, or a colour bar and a legend) in a slot of its own:
  it never covers a point, and the map keeps its size whatever the key holds;
* by code: a colour per code (distinct up to 40 codes, `code_palette`), the legend lists the
  codes most used first with their item counts, and where a level's codes group on the map
  (`grouping` under 0.5, level 1) each cluster carries its code's number; where they do not
  (the residual levels) a note under the map says so and gives the measured ratio;
* by popularity: interactions per item on a log colour scale clipped at its 2nd and 98th
  percentiles, plain numbers on the colour bar; items without interactions have no place on
  a log scale and are drawn on top as white crosses;
* items that UMAP puts on top of each other (the world's near-duplicate items of one leaf
  category land within 0.5% of the map) are nudged apart for drawing only (`spread_overlaps`),
  so "code 3: 25 items" shows 25 points.

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

from course_lib.viz.display import png, show_explorer
from course_lib.viz.display import items_text as _items
from course_lib.viz.display import marker as _marker


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


def code_palette(n: int) -> list:
    """n colours for n codes: tab20's ten strong colours, its ten light ones, then tab20b's
    twenty; distinct up to 40 codes, repeating after (the map then labels clusters by code)."""
    tab20, tab20b = plt.get_cmap("tab20").colors, plt.get_cmap("tab20b").colors
    colours = list(tab20[0::2]) + list(tab20[1::2]) + list(tab20b)
    return [colours[i % len(colours)] for i in range(n)]


def point_groups(xy: np.ndarray, radius: float) -> np.ndarray:
    """Connected groups of points closer than `radius` (single linkage); a label per point."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    pairs = cKDTree(xy).query_pairs(radius, output_type="ndarray")
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(len(xy),) * 2)
    return connected_components(graph, directed=False)[1]


class CodebookExplorer:
    """The explorer's data and drawing; `show()` for the widget app or the static figure."""

    COLOURS = ("code", "category", "popularity")
    MIN_GAP = 0.012                  # drawn items sit >= 1.2% of the map's extent apart (500
                                     # items; less for more, so no group swells beyond ~3%)
    POPULARITY_CLIP = (2, 98)        # percentiles of the warm items' interaction counts
    GROUPED = 0.5                    # a level's codes group on the map when items sharing a
                                     # code sit less than half as far apart as any two items
    LEGEND_ROWS = 16                 # legend entries per column; two columns at most
    HIGHLIGHT = "crimson"            # the picked code: rings on the map, its bar in the chart

    def __init__(self, xy, codes, codebook_size: int | list[int], categories=None,
                 interactions=None, title: str = "items"):
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
        self.interactions = None if interactions is None else np.asarray(interactions, dtype=float)
        if self.interactions is not None and not (self.interactions >= 0).all():
            raise ValueError("interactions must be counts >= 0 (0 for items nobody interacted "
                             "with) and not NaN")
        self.title = title
        self.extent = float(np.ptp(self.xy, axis=0).max()) or 1.0
        gap = self.MIN_GAP * self.extent * min(1.0, np.sqrt(500 / len(self.xy)))
        self.shown_xy = spread_overlaps(self.xy, gap)                       # (N, 2), drawing only
        self._grouping = {}

    @property
    def n_levels(self) -> int:
        return self.codes.shape[1]

    # --- what the map can say about a level -------------------------------------------------

    def grouping(self, level: int) -> float:
        """Mean map distance of two items sharing a level's code over that of any two items.

        Well under 1 when the codes group on the map (level 1 codes the content the map is
        drawn from); near 1 when they do not (deeper levels code residuals). Distances are
        measured on the map itself (`xy`), over all pairs; "any two items" is estimated from
        1,500 of them when there are more.
        """
        if level not in self._grouping:
            column = self.codes[:, level - 1]
            rng = np.random.default_rng(0)
            sample = self.xy[rng.choice(len(self.xy), min(len(self.xy), 1500), replace=False)]
            overall = _mean_pair_distance(sample)
            within = [(_mean_pair_distance(self.xy[column == c]), (column == c).sum())
                      for c in np.unique(column[column >= 0])]
            pairs = np.array([n * (n - 1) / 2 for _, n in within])
            means = np.array([m for m, _ in within])
            ratio = (means * pairs).sum() / pairs.sum() / overall if pairs.sum() and overall \
                else 1.0                                   # no pairs to compare: not grouped
            self._grouping[level] = float(ratio)
        return self._grouping[level]

    def cluster_labels(self, level: int, min_share: float = 0.2) -> list[tuple[int, float, float]]:
        """(code, x, y) for each group of a code's items on the drawn map: one label per group
        of at least 3 items and `min_share` of the code's items, at its most central item."""
        column = self.codes[:, level - 1]
        labels = []
        for c in np.unique(column[column >= 0]):
            points = self.shown_xy[column == c]
            group = point_groups(points, 0.04 * self.extent)
            for g in np.unique(group):
                members = points[group == g]
                if len(members) >= max(3, min_share * len(points)):
                    centre = members[np.argmin(np.linalg.norm(members - np.median(members, 0),
                                                              axis=1))]
                    labels.append((int(c), float(centre[0]), float(centre[1])))
        return labels

    def _placed(self, labels):
        """Label positions just above their groups, moved aside where two would overlap
        (boxes of about 2% x 4% of the map per digit and line)."""
        placed = []
        height = 0.045 * self.extent
        steps = [(0, 1), (0.8, 1), (-0.8, 1), (0, -1), (0.8, -1), (-0.8, -1), (1.4, 0), (-1.4, 0),
                 (0, 2), (0, -2)]
        for c, x, y in sorted(labels, key=lambda label: -label[2]):        # top down
            width = 0.022 * self.extent * (len(str(c)) + 1)
            for dx, dy in steps:
                spot = (x + dx * width, y + dy * height)
                if all(abs(spot[0] - px) > (width + pw) / 2 or abs(spot[1] - py) > height
                       for _, px, py, pw in placed):
                    break
            placed.append((c, *spot, width))
        return [(c, x, y) for c, x, y, _ in placed]

    def popularity_scale(self) -> tuple[float, float]:
        """The colour scale's ends: the clip percentiles of the warm items' interaction counts
        (taken on a log scale)."""
        warm = self.interactions[self.interactions > 0]
        if len(warm) == 0:
            return (1.0, 10.0)
        low, high = 10 ** np.percentile(np.log10(warm), self.POPULARITY_CLIP)
        return (float(low), float(high) if high > low else float(low) * 10)

    # --- the map, its key and the usage chart ------------------------------------------------

    def draw_map(self, ax, level: int = 1, colour: str = "code", code: int | None = None,
                 key=None):
        """Scatter of the items; level is 1-based; `code` rings that code's items.

        The legend or colour bar goes into `key`, an axes beside the map (a slot of its own,
        so it never covers a point and the map keeps its size); without one, room is taken
        from the right of `ax`. Returns the scatter of the coloured items.
        """
        if colour not in self.COLOURS:
            raise ValueError(f"colour must be one of {self.COLOURS}, got {colour!r}")
        if colour == "category" and self.categories is None or \
                colour == "popularity" and self.interactions is None:
            raise ValueError(f"no {colour} values were given to the explorer")
        if key is None:
            from mpl_toolkits.axes_grid1 import make_axes_locatable
            key = make_axes_locatable(ax).append_axes("right", size="45%", pad=0.1)
        key.set_axis_off()
        alpha = 0.25 if code is not None else 0.85
        handles = []
        if colour == "code":
            points, handles, label = self._by_code(ax, level, alpha)
        elif colour == "category":
            points, handles, label = self._by_category(ax, alpha)
        else:
            points, handles, label = self._by_popularity(ax, key, alpha)
        if code is not None:
            mine = self.codes[:, level - 1] == code
            ax.scatter(*self.shown_xy[mine].T, s=30, facecolors="none", zorder=3,
                       edgecolors=self.HIGHLIGHT, linewidths=1.2)
            handles.insert(0, _marker(f"code {code}: {_items(mine.sum())}", marker="o",
                                      markerfacecolor="none", markeredgecolor=self.HIGHLIGHT))
        if handles:
            popularity = colour == "popularity"
            columns = 1 if popularity or len(handles) <= self.LEGEND_ROWS else 2
            key.legend(handles=handles, loc="lower left" if popularity else "upper left",
                       ncols=columns, fontsize=8, frameon=False, borderaxespad=0,
                       handletextpad=0.3, columnspacing=0.8,
                       title=None if popularity else f"{label} (items)", title_fontsize=8,
                       alignment="left")
        if colour == "code" and self.grouping(level) >= self.GROUPED:
            ax.text(0.0, -0.08, self.scattered_note(level), transform=ax.transAxes, ha="left",
                    va="top", fontsize=8.5, color="0.15")
        ax.set(title=f"UMAP of {self.title}\ncoloured by {label}", xlabel="UMAP 1 (a.u.)",
               ylabel="UMAP 2 (a.u.)")
        ax.set_xticks([])
        ax.set_yticks([])
        return points

    def _by_code(self, ax, level, alpha):
        column = self.codes[:, level - 1]
        counts = _usage(column, self.sizes[level - 1])
        order = np.argsort(-counts, kind="stable")[:int((counts > 0).sum())]   # most used first
        palette = dict(zip(order.tolist(), code_palette(len(order))))
        colours = np.array([palette.get(int(c), (0.5, 0.5, 0.5)) for c in column])
        points = ax.scatter(*self.shown_xy.T, c=colours, s=9, alpha=alpha, linewidths=0)
        if self.grouping(level) < self.GROUPED:             # codes group: name each cluster
            for c, x, y in self._placed(self.cluster_labels(level)):
                ax.text(x, y, str(c), ha="center", va="center", fontsize=7.5, zorder=5,
                        fontweight="bold", color="0.1", bbox=dict(
                            boxstyle="round,pad=0.15", fc="white", ec=palette[c], lw=0.9,
                            alpha=0.85))
        shown = order[:2 * self.LEGEND_ROWS - 1] if len(order) > 2 * self.LEGEND_ROWS else order
        handles = [_marker(f"{c} ({counts[c]})", color=palette[int(c)]) for c in shown]
        if len(shown) < len(order):
            handles.append(_marker(f"+{len(order) - len(shown)} more", color="white"))
        return points, handles, f"level-{level} code"

    def _by_category(self, ax, alpha):
        values, counts = np.unique(self.categories, return_counts=True)
        palette = dict(zip(values.tolist(), plt.get_cmap("tab10").colors if len(values) <= 10
                           else code_palette(len(values))))
        colours = np.array([palette[v] for v in self.categories.tolist()])
        points = ax.scatter(*self.shown_xy.T, c=colours, s=9, alpha=alpha, linewidths=0)
        handles = [_marker(f"{v} ({n})", color=palette[v]) for v, n in zip(values.tolist(), counts)]
        return points, handles[:2 * self.LEGEND_ROWS], "category"

    def _by_popularity(self, ax, key, alpha):
        from matplotlib.colors import LogNorm
        from matplotlib.ticker import FuncFormatter, LogLocator

        cold = self.interactions == 0
        low, high = self.popularity_scale()
        points = ax.scatter(*self.shown_xy[~cold].T, c=self.interactions[~cold], cmap="viridis",
                            norm=LogNorm(low, high), s=9, alpha=alpha, linewidths=0)
        handles = []
        if cold.any():                       # log(0) has no colour: a mark of their own, on top
            ax.scatter(*self.shown_xy[cold].T, marker="X", s=42, facecolors="white",
                       edgecolors="black", linewidths=0.8, zorder=4)
            handles.append(_marker(f"no interactions:\n{_items(cold.sum())}", marker="X",
                                   markersize=8, markerfacecolor="white", markeredgecolor="black"))
        bar_ax = key.inset_axes([0.0, 0.36, 0.09, 0.64])
        bar = ax.figure.colorbar(points, cax=bar_ax, extend="both")
        bar.locator = LogLocator(subs=(1, 2, 5))
        bar.formatter = FuncFormatter(lambda value, _: f"{value:g}")
        bar.minorticks_off()
        bar.update_ticks()
        bar.set_label("interactions per item (log scale)\narrows: beyond percentiles {} and {}"
                      .format(*self.POPULARITY_CLIP), fontsize=8.5)
        bar.ax.tick_params(labelsize=8)
        bar.solids.set_alpha(1.0)
        return points, handles, "interactions (log scale)"

    def scattered_note(self, level: int) -> str:
        """What the map says under a level whose codes do not group on it, with the measure."""
        import textwrap
        return textwrap.fill(
            f"Level-{level} codes are not grouped on this map: two items sharing a code sit "
            f"{self.grouping(level):.2f} times as far apart as any two items. A level-{level} code "
            f"quantizes the residual the levels above left, not the content UMAP placed; pick "
            f"one under 'highlight' to see its items.", width=78)

    def draw_usage(self, ax, level: int = 1, code: int | None = None):
        """Bar chart of how many items carry each code at `level` (1-based), most used first."""
        counts = _usage(self.codes[:, level - 1], self.sizes[level - 1])
        order = np.argsort(-counts, kind="stable")
        colours = np.where(order == code, self.HIGHLIGHT, "steelblue") if code is not None \
            else "steelblue"
        ax.bar(np.arange(len(counts)), counts[order], color=colours, width=1.0)
        used = int((counts > 0).sum())
        ax.set(title=f"level {level}: {used}/{len(counts)} codes used",
               xlabel="code, by rank of use", ylabel="items")

    # --- the widget's figure, the static figure and the app ----------------------------------

    def figure(self, level: int = 1, colour: str = "code", code: int | None = None,
               figsize=(13, 5.2)):
        """The widget's figure: map, its key, usage chart, at fixed positions (no layout
        engine, so the map keeps its place and size whatever the key holds)."""
        fig = plt.figure(figsize=figsize)
        ax_map = fig.add_axes((0.045, 0.2, 0.37, 0.66))
        key = fig.add_axes((0.425, 0.2, 0.18, 0.66))
        ax_usage = fig.add_axes((0.665, 0.2, 0.32, 0.66))
        self.draw_map(ax_map, level, colour, code, key=key)
        self.draw_usage(ax_usage, level, code)
        return fig

    def static_figure(self, level: int = 1):
        """The map coloured every way it can be, each with its key, and every level's usage."""
        colours = [c for c in self.COLOURS if c == "code"
                   or getattr(self, {"category": "categories", "popularity": "interactions"}[c])
                   is not None]
        n_columns = max(len(colours), self.n_levels)
        fig = plt.figure(figsize=(5.6 * n_columns, 10), layout="constrained")
        grid = fig.add_gridspec(2, 2 * n_columns, width_ratios=[1, 0.5] * n_columns,
                                height_ratios=[1.15, 1])
        for column, colour in enumerate(colours):
            self.draw_map(fig.add_subplot(grid[0, 2 * column]), level, colour,
                          key=fig.add_subplot(grid[0, 2 * column + 1]))
        for l in range(1, self.n_levels + 1):
            self.draw_usage(fig.add_subplot(grid[1, 2 * l - 2:2 * l]), l)
        return fig

    def widget(self):
        """The interactive app (ipywidgets): level slider, colour toggle, code picker.

        Every change redraws once (`figure`, sent as one PNG). A highlighted code belongs to its
        level: moving the slider clears it and the line under the controls says so. Returns the
        app (a `VBox`) without displaying it; `show()` displays it.
        """
        import ipywidgets as w
        from IPython.display import display

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
                code.options = [("none", -1)] + [(f"code {c} ({_items(counts[c])})", int(c))
                                                 for c in used]
                code.value = -1
            finally:
                updating[0] = False

        def redraw(*_):
            if updating[0]:
                return
            picked = None if code.value in (None, -1) else code.value
            try:
                fig = self.figure(level.value, colour.value, picked)
            except ValueError as err:                      # no category / interactions given
                fig = plt.figure(figsize=(13, 1))
                fig.text(0.5, 0.5, str(err), ha="center")
            out.clear_output(wait=True)
            with out:
                display(png(fig))

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
        """The widget app in a live kernel; the static figure where widgets cannot run.

        interactive=None decides by itself: widgets when IPython runs a kernel, ipywidgets
        imports and $COURSE_WIDGETS is not "0" (the HTML book sets it to "0": a static page
        cannot run widgets). One or the other, so the map is never drawn twice in a row.
        """
        show_explorer(self.widget, lambda: self.static_figure(level), interactive,
                      "In JupyterLab this is an explorer: a level slider, colour-by buttons and a "
                      "code picker redraw one map at a time. Here, the map coloured every way "
                      f"at level {level}:")


def _mean_pair_distance(points: np.ndarray) -> float:
    if len(points) < 2:
        return 0.0
    from scipy.spatial.distance import pdist
    return float(pdist(points).mean())
