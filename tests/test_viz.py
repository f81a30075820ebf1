"""The codebook explorer: the widget app in a live kernel and a static figure where widgets
cannot run (never both), every colouring with a legend or colour bar beside the map and clear of
its points, a cached UMAP layout, and clear errors on bad input. UMAP itself is replaced by a fake
here (its numba compilation takes tens of seconds); lesson 05 runs the real one. The last test
drives the widget in JupyterLab in headless Chromium (tools/check_explorer.py) where Chromium
and its driver are installed."""
import sys
import types
from pathlib import Path

import matplotlib
import nbformat
from nbformat.v4 import new_code_cell, new_notebook

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from course_lib.viz import CodebookExplorer, umap_embedding  # noqa: E402
from course_lib.viz.explorer import code_palette, spread_overlaps  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import check_explorer  # noqa: E402


@pytest.fixture
def explorer():
    rng = np.random.default_rng(0)
    codes = np.stack([rng.integers(0, 4, 40), rng.integers(0, 4, 40), rng.integers(0, 4, 40)], 1)
    return CodebookExplorer(rng.normal(size=(40, 2)), codes, 4, categories=codes[:, 0],
                            interactions=rng.integers(1, 100, 40))


@pytest.fixture
def clustered():
    """Three levels over 8 tight clusters of 15 items: level 1 names the cluster, levels 2 and 3
    are drawn at random (as residual codes look on a map of the content)."""
    rng = np.random.default_rng(5)
    cluster = np.repeat(np.arange(8), 15)
    xy = rng.uniform(0, 100, size=(8, 2))[cluster] + rng.normal(scale=1.0, size=(120, 2))
    codes = np.stack([cluster, rng.integers(0, 8, 120), rng.integers(0, 8, 120)], 1)
    interactions = rng.integers(1, 500, 120)
    interactions[:7] = 0
    return CodebookExplorer(xy, codes, 8, categories=cluster // 4, interactions=interactions)


def drawn_figures(explorer, monkeypatch) -> list:
    """Every figure the explorer draws from now on (the widget sends each as a PNG and closes
    it; its axes can still be read)."""
    figures = []
    draw = explorer.figure
    monkeypatch.setattr(explorer, "figure", lambda *args, **kwargs:
                        figures.append(draw(*args, **kwargs)) or figures[-1])
    return figures


def key_texts(fig) -> list[str]:
    """The texts of the legend beside the map (the key), in order."""
    legends = [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]
    assert len(legends) == 1
    return [text.get_text() for text in legends[0].get_texts()]


@pytest.fixture
def fake_umap(monkeypatch, tmp_path):
    """A stand-in umap module that counts its fits; the layout cache goes to tmp_path."""
    calls = []

    class UMAP:
        def __init__(self, **kwargs):
            self.kwargs = kwargs

        def fit_transform(self, x):
            calls.append(len(x))
            return x[:, :2] * 2.0

    monkeypatch.setitem(sys.modules, "umap", types.SimpleNamespace(UMAP=UMAP))
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path))
    return calls


def test_static_figure_renders_with_agg_with_a_map_per_colouring_and_a_usage_chart_per_level(explorer):
    fig = explorer.static_figure(level=2)
    fig.canvas.draw()
    titles = [ax.get_title() for ax in fig.axes if ax.axison]
    assert sum("UMAP" in t for t in titles) == 3                # code, category, popularity
    assert sum(t.startswith("level ") for t in titles) == 3     # one usage chart per level
    plt.close(fig)


def test_static_figure_omits_colourings_that_were_not_given():
    codes = np.array([[0, 1], [1, 0], [1, 1]])
    fig = CodebookExplorer(np.zeros((3, 2)), codes, 2).static_figure()
    titles = [ax.get_title() for ax in fig.axes if ax.axison]
    assert sum("UMAP" in t for t in titles) == 1
    plt.close(fig)


def test_highlighting_a_code_names_its_item_count(explorer):
    fig, ax = plt.subplots()
    explorer.draw_map(ax, level=1, colour="code", code=2)
    assert ax.get_legend() is None                            # the key sits beside the map
    assert key_texts(fig)[0] == f"code 2: {int((explorer.codes[:, 0] == 2).sum())} items"
    plt.close(fig)


def test_usage_chart_bars_are_the_code_counts_most_used_first(explorer):
    fig, ax = plt.subplots()
    explorer.draw_usage(ax, level=3)
    heights = [bar.get_height() for bar in ax.patches]
    expected = np.sort(np.bincount(explorer.codes[:, 2], minlength=4))[::-1]
    assert heights == expected.tolist()
    plt.close(fig)


def test_show_without_a_kernel_draws_the_static_figure_at_the_level_and_no_widgets(explorer,
                                                                                   monkeypatch):
    built = []
    monkeypatch.setattr(explorer, "widget", lambda: built.append("app"))
    plt.close("all")
    explorer.show(level=2, interactive=None)                  # pytest runs no IPython kernel
    assert built == []
    assert len(plt.get_fignums()) == 1
    titles = [ax.get_title() for ax in plt.gcf().axes if ax.axison]
    assert "UMAP of items\ncoloured by level-2 code" in titles
    assert sum(t.startswith("level ") for t in titles) == 3   # one usage chart per level
    plt.close("all")


@pytest.mark.parametrize("widgets_env, shown, figures", [("1", ["app"], 0), ("0", [], 1)])
def test_show_in_a_kernel_draws_the_map_once_as_the_widget_app_or_where_widgets_are_off_as_a_figure(
        explorer, monkeypatch, capsys, widgets_env, shown, figures):
    import IPython.display

    from course_lib.viz import display
    displayed = []
    monkeypatch.setattr(display, "in_kernel", lambda: True)
    monkeypatch.setenv("COURSE_WIDGETS", widgets_env)         # the HTML book sets it to 0
    monkeypatch.setattr(explorer, "widget", lambda: "app")
    monkeypatch.setattr(IPython.display, "display", displayed.append)
    plt.close("all")
    monkeypatch.setattr(plt, "show", lambda: None)            # keep the figure to count it
    explorer.show(interactive=None)
    assert displayed == shown
    assert len(plt.get_fignums()) == figures                  # never the figure and the app
    assert ("In JupyterLab this is an explorer" in capsys.readouterr().out) == (figures == 1)
    plt.close("all")


def test_show_falls_back_to_the_static_figure_without_ipywidgets(explorer, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ipywidgets", None)     # import raises ImportError
    explorer.show(interactive=True)
    assert "static figure below is all there is" in capsys.readouterr().out
    plt.close("all")


def test_widget_has_a_level_slider_a_colour_toggle_and_a_code_picker(explorer):
    w = pytest.importorskip("ipywidgets")
    app = explorer.widget()
    (level, colour), code, out = app.children[0].children, app.children[1], app.children[3]
    assert isinstance(level, w.IntSlider) and (level.min, level.max) == (1, 3)
    assert list(colour.options) == ["code", "category", "popularity"]
    assert isinstance(out, w.Output)
    used = len(np.unique(explorer.codes[:, 0]))
    assert len(code.options) == used + 1                      # "none" plus every used code
    plt.close("all")


def test_widget_code_picker_follows_the_level_slider(explorer):
    pytest.importorskip("ipywidgets")
    explorer.codes[:, 1] = 0                                  # level 2 uses one code only
    app = explorer.widget()
    level, code = app.children[0].children[0], app.children[1]
    assert [value for _, value in code.options][0] == -1
    assert len(code.options) == len(np.unique(explorer.codes[:, 0])) + 1
    level.value = 2
    assert [value for _, value in code.options] == [-1, 0]
    assert code.value == -1                                   # no stale pick from level 1
    plt.close("all")


def test_widget_redraws_once_per_change_keeping_the_picked_code_highlighted(explorer, monkeypatch):
    pytest.importorskip("ipywidgets")
    explorer.codes[:, 1] = 0                                  # level 2: all 40 items on code 0
    app = explorer.widget()
    (level, colour), code = app.children[0].children, app.children[1]
    level.value = 2
    figures = drawn_figures(explorer, monkeypatch)
    code.value = 0
    assert len(figures) == 1                                  # one redraw
    left, _, right = figures[0].axes                          # map, its key, usage
    assert key_texts(figures[0])[0] == "code 0: 40 items"
    red = [bar.get_height() for bar in right.patches
           if matplotlib.colors.same_color(bar.get_facecolor(), "crimson")]
    assert red == [40]
    colour.value = "popularity"
    assert len(figures) == 2
    assert figures[1].axes[0].get_title() == "UMAP of items\ncoloured by interactions (log scale)"
    assert key_texts(figures[1])[0] == "code 0: 40 items"
    assert plt.get_fignums() == []                            # sent as PNGs and closed


def test_static_figure_titles_do_not_overlap_and_its_maps_have_one_width(explorer):
    explorer.title = "the world's items, a longer title than lesson 05's"
    fig = explorer.static_figure()
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    shown = [ax for ax in fig.axes if ax.get_visible() and ax.get_title()]
    boxes = [ax.title.get_window_extent(renderer) for ax in shown]
    for i, first in enumerate(boxes):
        for second in boxes[i + 1:]:
            assert not first.overlaps(second)
    widths = {round(ax.get_position().width, 4) for ax in shown if "UMAP" in ax.get_title()}
    assert len(widths) == 1                                   # the colour bar has its own slot
    plt.close(fig)


def test_items_on_top_of_each_other_are_drawn_apart():
    xy = np.r_[np.zeros((25, 2)), np.full((5, 2), 100.0)]    # 25 items on one spot
    explorer = CodebookExplorer(xy, np.zeros((30, 1), dtype=int), 2)
    fig, ax = plt.subplots()
    shown = explorer.draw_map(ax).get_offsets()
    gaps = np.linalg.norm(shown[:25, None] - shown[None, :25], axis=-1)[np.triu_indices(25, 1)]
    assert gaps.min() > 0.8 * explorer.MIN_GAP * 100          # 25 distinct points
    assert np.abs(shown[:25].mean(0)).max() < 0.5              # around where they were
    plt.close(fig)


def test_spreading_overlaps_leaves_items_that_are_apart_where_they_are():
    xy = np.random.default_rng(3).uniform(0, 10, size=(20, 2))
    xy = xy[np.argsort(xy[:, 0])] + np.arange(20)[:, None] * 10  # at least 10 apart
    np.testing.assert_allclose(spread_overlaps(xy, 1.0), xy, atol=1e-2)


def test_spreading_needs_a_positive_distance():
    with pytest.raises(ValueError, match="min_distance must be > 0"):
        spread_overlaps(np.zeros((3, 2)), 0.0)


def test_popularity_is_interaction_counts_on_a_log_scale_clipped_at_percentiles():
    counts = np.r_[np.zeros(10), np.geomspace(1, 100, 89).round(), 5000]  # cold, tail, one head
    explorer = CodebookExplorer(np.random.default_rng(4).normal(size=(100, 2)),
                                np.zeros((100, 1), dtype=int), 2, interactions=counts)
    fig, ax = plt.subplots()
    warm = explorer.draw_map(ax, colour="popularity")
    low, high = 10 ** np.percentile(np.log10(counts[10:]), explorer.POPULARITY_CLIP)
    assert isinstance(warm.norm, matplotlib.colors.LogNorm)
    assert warm.get_clim() == pytest.approx((low, high))
    assert high < 100 * 1.1                                   # the head item does not stretch it
    assert len(warm.get_offsets()) == 90
    plt.close(fig)


def test_popularity_colour_bar_reads_interactions_in_plain_numbers(clustered):
    fig = clustered.figure(colour="popularity")
    fig.canvas.draw()
    bar = next(child for ax in fig.axes for child in ax.child_axes)
    assert bar.get_ylabel().startswith("interactions per item (log scale)")
    ticks = [t.get_text() for t in bar.get_yticklabels() if t.get_text()]
    assert ticks and all(t.replace(".", "").isdigit() for t in ticks)   # 10, 20, 50, not 10^1
    plt.close(fig)


def test_items_without_interactions_are_drawn_on_top_as_white_crosses_named_in_the_key(clustered):
    fig = clustered.figure(colour="popularity")
    ax_map = fig.axes[0]
    warm, cold = ax_map.collections
    assert len(cold.get_offsets()) == 7 and cold.get_zorder() > warm.get_zorder()
    assert matplotlib.colors.same_color(cold.get_facecolor()[0], "white")
    assert key_texts(fig) == ["no interactions:\n7 items"]
    plt.close(fig)


def test_negative_interaction_counts_are_rejected():
    with pytest.raises(ValueError, match="interactions must be counts >= 0"):
        CodebookExplorer(np.zeros((3, 2)), np.zeros((3, 1), dtype=int), 2,
                         interactions=[1, -2, 3])


def test_widget_map_keeps_its_size_when_the_colour_bar_shows(explorer, monkeypatch):
    pytest.importorskip("ipywidgets")
    app = explorer.widget()
    colour = app.children[0].children[1]
    figures = drawn_figures(explorer, monkeypatch)
    colour.value = "category"
    colour.value = "popularity"
    by_category, by_popularity = (fig.axes[0].get_position().bounds for fig in figures)
    assert figures[1].axes[1].child_axes                      # the colour bar shows in the key
    assert by_popularity == pytest.approx(by_category)


@pytest.mark.parametrize("level", [1, 2, 3])
@pytest.mark.parametrize("colour", CodebookExplorer.COLOURS)
def test_every_colouring_has_a_legend_beside_the_map_clear_of_its_points(clustered, colour, level):
    fig = clustered.figure(level, colour, code=int(clustered.codes[0, level - 1]))
    layout = check_explorer.legend_layout(fig)
    assert layout["legend"] and not layout["map legend"]
    assert not layout["over map"] and not layout["over points"]
    plt.close(fig)


def test_the_static_figure_keeps_every_key_off_every_map(clustered):
    fig = clustered.static_figure()
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    maps = [ax.get_window_extent(renderer) for ax in fig.axes if "UMAP" in ax.get_title()]
    keys = [ax.get_legend().get_window_extent(renderer) for ax in fig.axes if ax.get_legend()]
    keys += [child.get_window_extent(renderer) for ax in fig.axes for child in ax.child_axes]
    assert len(maps) == 3 and len(keys) == 4                  # code, category, popularity + cold
    assert not any(key.overlaps(box) for key in keys for box in maps)
    plt.close(fig)


def test_codes_get_distinct_colours_up_to_forty():
    assert len(set(code_palette(40))) == 40
    assert code_palette(41)[40] == code_palette(41)[0]


def test_code_legend_lists_the_used_codes_most_used_first_with_their_counts(clustered):
    clustered.codes[:15, 0] = 3                               # code 3: 30 items, the most used
    fig = clustered.figure(level=1)
    assert key_texts(fig)[:2] == ["3 (30)", "1 (15)"]
    assert len(key_texts(fig)) == 7                           # code 0 is no longer used
    plt.close(fig)


def test_a_level_whose_codes_group_on_the_map_names_each_cluster_with_its_code(clustered):
    assert clustered.grouping(1) < clustered.GROUPED
    fig = clustered.figure(level=1)
    labels = sorted(int(t.get_text()) for t in fig.axes[0].texts)
    assert labels == list(range(8))                           # one label per cluster
    plt.close(fig)


def test_a_level_whose_codes_do_not_group_says_so_on_the_plot(clustered):
    assert clustered.grouping(2) > clustered.GROUPED
    fig = clustered.figure(level=2)
    (note,) = fig.axes[0].texts                               # no cluster labels: the note
    assert note.get_text().startswith("Level-2 codes are not grouped on this map")
    text = " ".join(note.get_text().split())                 # the note is wrapped
    assert f"sit {clustered.grouping(2):.2f} times as far apart" in text
    plt.close(fig)


def test_grouping_is_the_mean_distance_within_codes_over_that_of_any_two_items():
    xy = np.array([[0.0, 0.0], [1.0, 0.0], [10.0, 0.0], [11.0, 0.0]])
    explorer = CodebookExplorer(xy, np.array([[0], [0], [1], [1]]), 2)
    overall = np.mean([1, 10, 11, 9, 10, 1])
    assert explorer.grouping(1) == pytest.approx(1.0 / overall)


def test_widget_redraws_once_when_the_level_moves_and_says_the_highlight_was_cleared(
        explorer, monkeypatch):
    pytest.importorskip("ipywidgets")
    app = explorer.widget()
    (level, _), code, note = app.children[0].children, app.children[1], app.children[2]
    code.value = int(explorer.codes[0, 0])
    drawn = []
    draw_map = explorer.draw_map
    monkeypatch.setattr(explorer, "draw_map",
                        lambda *args, **kwargs: drawn.append(args) or draw_map(*args, **kwargs))
    level.value = 2
    assert len(drawn) == 1
    assert drawn[0][1:] == (2, "code", None)                  # level 2, nothing highlighted
    assert code.value == -1
    assert note.value.startswith(f"code {explorer.codes[0, 0]} of level 1 is no longer highlighted")
    code.value = int(explorer.codes[0, 1])
    assert len(drawn) == 2 and note.value == ""
    plt.close("all")


def test_umap_layout_is_cached_on_disk_so_a_rerun_does_not_fit_again(fake_umap):
    x = np.random.default_rng(1).normal(size=(20, 5))
    first = umap_embedding(x, seed=3)
    second = umap_embedding(x, seed=3)
    assert fake_umap == [20]
    np.testing.assert_allclose(first, second)
    umap_embedding(x, seed=4)                                 # other settings: a new layout
    assert fake_umap == [20, 20]


def test_map_falls_back_to_pca_without_umap(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "umap", None)
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path))
    x = np.random.default_rng(2).normal(size=(30, 4)) * np.array([5.0, 1.0, 0.1, 0.1])
    xy = umap_embedding(x)
    assert xy.shape == (30, 2)
    assert "PCA" in capsys.readouterr().out
    assert np.var(xy[:, 0]) > np.var(xy[:, 1])                # first axis: most variance


def test_nan_vectors_are_rejected():
    x = np.ones((5, 3))
    x[2, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        umap_embedding(x)


def test_too_few_rows_for_a_map_are_rejected():
    with pytest.raises(ValueError, match="at least 3 rows"):
        umap_embedding(np.ones((2, 3)))


def test_codes_and_map_of_different_items_are_rejected():
    with pytest.raises(ValueError, match="same N items"):
        CodebookExplorer(np.zeros((5, 2)), np.zeros((4, 3), dtype=int), 4)


def test_one_codebook_size_per_level_is_required():
    with pytest.raises(ValueError, match="one codebook size per level"):
        CodebookExplorer(np.zeros((4, 2)), np.zeros((4, 3), dtype=int), [4, 4])


def test_unknown_colouring_is_rejected(explorer):
    fig, ax = plt.subplots()
    with pytest.raises(ValueError, match="colour must be one of"):
        explorer.draw_map(ax, colour="size")
    plt.close(fig)


def test_colouring_by_categories_that_were_not_given_is_rejected():
    explorer = CodebookExplorer(np.zeros((3, 2)), np.zeros((3, 1), dtype=int), 2)
    fig, ax = plt.subplots()
    with pytest.raises(ValueError, match="no category values"):
        explorer.draw_map(ax, colour="category")
    plt.close(fig)


def test_usage_chart_marks_the_selected_codes_bar(explorer):
    fig, ax = plt.subplots()
    explorer.draw_usage(ax, level=1, code=3)
    red = [i for i, bar in enumerate(ax.patches)
           if matplotlib.colors.same_color(bar.get_facecolor(), "crimson")]
    order = np.argsort(-np.bincount(explorer.codes[:, 0], minlength=4), kind="stable")
    assert red == [int(np.flatnonzero(order == 3)[0])]
    plt.close(fig)


EXPLORER_NOTEBOOK = new_notebook(cells=[new_code_cell("""\
import numpy as np
from course_lib.viz import CodebookExplorer

rng = np.random.default_rng(5)
cluster = np.repeat(np.arange(8), 15)
xy = rng.uniform(0, 100, size=(8, 2))[cluster] + rng.normal(scale=1.0, size=(120, 2))
codes = np.stack([cluster, rng.integers(0, 8, 120), rng.integers(0, 8, 120)], 1)
explorer = CodebookExplorer(xy, codes, 8, categories=cluster // 4,
                            interactions=np.r_[np.zeros(7), rng.integers(1, 500, 113)])
explorer.show()""")], metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                              "language": "python"}})


def test_in_jupyterlab_the_explorer_is_drawn_once_redraws_on_every_control_and_reads_at_a_glance(
        tmp_path):
    try:
        check_explorer.check_book.find_browser()
    except RuntimeError as err:
        pytest.skip(f"no headless browser on this machine: {err}")
    nbformat.write(EXPLORER_NOTEBOOK, tmp_path / "explorer.ipynb")
    report = check_explorer.drive(tmp_path / "explorer.ipynb", log=lambda line: None)
    print("\n".join(report.lines()))                          # the timings, with -s
    assert report.problems == []                              # incl. a legend over a map
    assert (report.widgets_on_page, report.figures) == (1, 0)  # the widget, no static copy
    assert len(report.layouts) == 9                           # 3 colourings x 3 levels
    assert set(report.redraws) == {"category", "popularity", "code_level1_again",
                                   "code_level2", "code_level3", "highlight_level3"}
    assert max(report.redraws.values()) < 10                  # seconds, on a busy 2-core CPU
    assert report.reload_stages["widget figure"] < 60
