"""The codebook explorer: a static figure that renders headless, widgets when ipywidgets is
there, a cached UMAP layout, and clear errors on bad input. UMAP itself is replaced by a fake
here (its numba compilation takes tens of seconds); lesson 05 runs the real one."""
import sys
import types

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from course_lib.viz import CodebookExplorer, umap_embedding  # noqa: E402
from course_lib.viz.explorer import spread_overlaps  # noqa: E402


@pytest.fixture
def explorer():
    rng = np.random.default_rng(0)
    codes = np.stack([rng.integers(0, 4, 40), rng.integers(0, 4, 40), rng.integers(0, 4, 40)], 1)
    return CodebookExplorer(rng.normal(size=(40, 2)), codes, 4, categories=codes[:, 0],
                            popularity=rng.random(40))


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
    label = ax.get_legend().get_texts()[0].get_text()
    assert label == f"code 2: {int((explorer.codes[:, 0] == 2).sum())} items"
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


@pytest.mark.parametrize("widgets_env, shown", [("1", ["app"]), ("0", [])])
def test_show_in_a_kernel_displays_the_widget_app_unless_widgets_are_switched_off(
        explorer, monkeypatch, widgets_env, shown):
    import IPython.display

    from course_lib.viz import explorer as module
    displayed = []
    monkeypatch.setattr(module, "_in_kernel", lambda: True)
    monkeypatch.setenv("COURSE_WIDGETS", widgets_env)
    monkeypatch.setattr(explorer, "widget", lambda: "app")
    monkeypatch.setattr(IPython.display, "display", displayed.append)
    explorer.show(interactive=None)
    assert displayed == shown
    plt.close("all")


def test_show_falls_back_to_the_static_figure_without_ipywidgets(explorer, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ipywidgets", None)     # import raises ImportError
    explorer.show(interactive=True)
    assert "static figure above is all there is" in capsys.readouterr().out
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


def test_widget_redraws_once_per_change_keeping_the_picked_code_highlighted(explorer):
    pytest.importorskip("ipywidgets")
    explorer.codes[:, 1] = 0                                  # level 2: all 40 items on code 0
    app = explorer.widget()
    (level, colour), code = app.children[0].children, app.children[1]
    level.value = 2
    plt.close("all")
    code.value = 0
    assert len(plt.get_fignums()) == 1                        # one redraw
    left, _, right = plt.gcf().axes                           # map, colour bar slot, usage
    assert left.get_legend().get_texts()[0].get_text() == "code 0: 40 items"
    red = [bar.get_height() for bar in right.patches
           if matplotlib.colors.same_color(bar.get_facecolor(), "crimson")]
    assert red == [40]
    plt.close("all")
    colour.value = "popularity"
    assert len(plt.get_fignums()) == 1
    left = plt.gcf().axes[0]
    assert left.get_title() == "UMAP of items\ncoloured by log10 popularity"
    assert left.get_legend().get_texts()[0].get_text() == "code 0: 40 items"
    plt.close("all")


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


def test_popularity_colours_cold_items_apart_and_clips_the_scale_at_percentiles():
    popularity = np.r_[np.zeros(10), np.geomspace(1e-4, 1e-2, 89), 0.9]   # cold, tail, one head
    explorer = CodebookExplorer(np.random.default_rng(4).normal(size=(100, 2)),
                                np.zeros((100, 1), dtype=int), 2, popularity=popularity)
    fig, ax = plt.subplots()
    warm = explorer.draw_map(ax, colour="popularity")
    low, high = np.percentile(np.log10(popularity[10:]), explorer.POPULARITY_CLIP)
    assert warm.get_clim() == pytest.approx((low, high))
    assert high < -2 + 0.1                                     # the head item does not stretch it
    assert len(warm.get_offsets()) == 90
    labels = [text.get_text() for text in ax.get_legend().get_texts()]
    assert labels == ["cold: 10 items, no interactions"]
    plt.close(fig)


def test_negative_popularity_is_rejected():
    with pytest.raises(ValueError, match="popularity must be >= 0"):
        CodebookExplorer(np.zeros((3, 2)), np.zeros((3, 1), dtype=int), 2,
                         popularity=[0.1, -0.2, 0.3])


def test_widget_map_keeps_its_size_when_the_colour_bar_shows(explorer):
    pytest.importorskip("ipywidgets")
    app = explorer.widget()
    colour = app.children[0].children[1]
    plt.close("all")
    colour.value = "category"
    by_category = plt.gcf().axes[0].get_position().bounds   # axes: map, colour bar slot, usage
    colour.value = "popularity"
    assert plt.gcf().axes[1].get_visible()                    # the colour bar shows
    assert plt.gcf().axes[0].get_position().bounds == pytest.approx(by_category)
    plt.close("all")


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
