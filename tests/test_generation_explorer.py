"""The beam-search explorer (issue 29): its data layer against the library's own search and
trie, the list against `TIGER.recommend`, free decoding's invalid IDs, the errors at its
boundary, the view's HTML and hover links, the static figure, the widget's controls, and a
drive in JupyterLab in headless Chromium (tools/check_generation_explorer.py) where Chromium and
its driver are installed. The model is a tiny untrained TIGER: the explorer shows any model with
TIGER's decoder interface."""
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import nbformat  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from course_lib.data.sequences import EvalSet  # noqa: E402
from course_lib.models.tiger import TIGER  # noqa: E402
from course_lib.quantize.semantic_ids import PrefixTrie, SemanticIds  # noqa: E402
from course_lib.retrieval import beam_search  # noqa: E402
from course_lib.viz import BeamExplorer  # noqa: E402
from course_lib.viz import display, generation  # noqa: E402
from course_lib.viz.generation import (encode_history, list_items,  # noqa: E402
                                       next_token_logits_of, rank_beams, trace_search,
                                       tree_layout)

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import check_generation_explorer  # noqa: E402
from test_tiger import tiny_config  # noqa: E402  (tests/ is on the path, as for conftest)

N_ITEMS = 40


@pytest.fixture
def semantic_ids() -> SemanticIds:
    """40 items, 2 code levels of 6 codes (36 code pairs: some collide) and the collision token."""
    codes = torch.randint(0, 6, (N_ITEMS, 2), generator=torch.Generator().manual_seed(1))
    return SemanticIds.from_codes(codes, [6, 6])


@pytest.fixture
def model(semantic_ids) -> TIGER:
    torch.manual_seed(0)
    return TIGER(semantic_ids, tiny_config()).eval()


@pytest.fixture
def test_set() -> EvalSet:
    history = torch.tensor([[0, 0, 4, 9, 12], [1, 2, 3, 5, 8], [0, 0, 0, 0, 17], [6, 6, 7, 30, 31]])
    return EvalSet(users=torch.tensor([3, 11, 5, 7]), history=history,
                   targets=torch.tensor([9, 20, 18, 25]), seen="exclude", n_items=N_ITEMS)


@pytest.fixture
def explorer(model, test_set) -> BeamExplorer:
    xy = np.random.default_rng(0).normal(size=(N_ITEMS, 2)) * 10
    cold = torch.zeros(N_ITEMS + 1, dtype=torch.bool)
    cold[[3, 20, 21, 22, 33]] = True
    labels = {i: f"label {i}" for i in range(1, N_ITEMS + 1)}
    return BeamExplorer(model, test_set, xy, labels=labels, cold_items=cold)


def one_user(test_set, row=0) -> dict:
    return test_set.batch(slice(row, row + 1))


def truncated_search(model, batch, semantic_ids, d, beam, temperature, constrained):
    """The library's beam search stopped after position d: the same search over the trie of the
    IDs' first d tokens."""
    trie = PrefixTrie(semantic_ids.table[:, :d], semantic_ids.vocab_sizes[:d])
    taus = generation.check_temperatures(temperature, semantic_ids.trie.depth)[:d]
    with torch.no_grad():
        decoder = next_token_logits_of(model, encode_history(model, batch))
        return beam_search(decoder, trie, 1, beam, taus, constrained)


# --- the data layer against the library's search and trie ----------------------------------

@pytest.mark.parametrize("constrained", [True, False])
@pytest.mark.parametrize("beam, temperature", [(3, 1.0), (8, [2.0, 0.5, 1.0]), (40, 0.7)])
def test_every_positions_survivors_are_beam_searchs_stopped_at_that_position(
        model, test_set, semantic_ids, constrained, beam, temperature):
    batch = one_user(test_set, 1)
    trace = trace_search(model, batch, beam, temperature, constrained)
    for position in trace.positions:
        reference = truncated_search(model, batch, semantic_ids, position.d, beam, temperature,
                                     constrained)
        alive = torch.isfinite(reference.log_probs[0])
        assert np.array_equal(position.prefixes, reference.ids[0][alive].numpy())
        np.testing.assert_allclose(position.prefix_log_probs,
                                   reference.log_probs[0][alive].numpy(), atol=1e-5)


@pytest.mark.parametrize("constrained", [True, False])
def test_the_finished_beams_are_tigers_own_generate(model, test_set, constrained):
    batch = one_user(test_set, 2)
    trace = trace_search(model, batch, 6, [1.5, 1.0, 1.0], constrained)
    result = model.generate(batch, 6, [1.5, 1.0, 1.0], constrained)
    assert torch.equal(trace.result.ids, result.ids)
    assert torch.allclose(trace.result.log_probs, result.log_probs)


def test_items_under_every_surviving_prefix_are_the_tries(model, test_set, semantic_ids):
    trace = trace_search(model, one_user(test_set), 8, 1.0, constrained=False)
    full_ids = semantic_ids.trie.ids()                                   # every valid ID
    for position in trace.positions:
        for prefix, under, n in zip(position.prefixes, position.items_under, position.n_items):
            matching = (semantic_ids.table[:, :position.d] == torch.as_tensor(prefix)).all(1)
            assert under.tolist() == (torch.nonzero(matching).flatten() + 1).tolist()
            in_trie = int((full_ids[:, :position.d] == torch.as_tensor(prefix)).all(1).sum())
            assert n == in_trie == len(under)


def test_a_survivors_log_prob_is_its_parents_plus_its_tokens_tempered_log_prob(model, test_set):
    trace = trace_search(model, one_user(test_set), 5, [0.5, 2.0, 1.0])
    for position in trace.positions:
        np.testing.assert_allclose(np.exp(position.log_probs).sum(1), 1.0, atol=1e-5)
        expected = position.parent_log_probs[position.parent] + np.log(position.token_probs)
        np.testing.assert_allclose(position.prefix_log_probs, expected, atol=1e-5)
        assert np.all(np.diff(position.prefix_log_probs) <= 1e-6)          # best first


def test_candidates_are_the_most_likely_tokens_and_every_survivor(model, test_set):
    trace = trace_search(model, one_user(test_set), 4, 1.0)
    position = trace.positions[1]
    for parent in range(len(position.parents)):
        shown = position.candidates(parent, few=2)
        probs = [p for _, p, _, _ in shown]
        assert probs == sorted(probs, reverse=True)
        survived = {int(t) for t in position.token[position.parent == parent]}
        assert {t for t, _, _, kept in shown if kept} == survived
        best = np.argsort(-position.log_probs[parent], kind="stable")[:2].tolist()
        assert [t for t, *_ in shown][:2] == best
        losers = position.candidates(parent, few=3, kept=False)
        assert not any(kept for *_, kept in losers) and len(losers) <= 3


# --- the list --------------------------------------------------------------------------------

@pytest.mark.parametrize("seen, eps", [("exclude", None), ("allow", None), ("exclude", 0.2),
                                       ("allow", 0.0)])
def test_the_lists_places_are_recommends(model, test_set, seen, eps):
    cold = torch.zeros(N_ITEMS + 1, dtype=torch.bool)
    cold[1::3] = True
    for row in range(len(test_set.users)):
        batch = one_user(test_set, row)
        trace = trace_search(model, batch, 10, 1.0)
        listed = rank_beams(trace, 5, seen == "exclude", None if eps is None else cold, eps)
        expected = model.recommend(batch, 5, beam=10, cold_items=None if eps is None else cold,
                                   max_cold_share=eps, exclude_history=seen == "exclude")
        assert list_items(listed) == [i for i in expected[0].tolist() if i > 0]


def test_every_beam_says_why_it_is_not_in_the_list(model, test_set):
    batch = one_user(test_set, 3)
    trace = trace_search(model, batch, 12, 1.0)
    cold = torch.zeros(N_ITEMS + 1, dtype=torch.bool)
    cold[trace.items[trace.items > 0]] = True                           # every beam's item cold
    listed = rank_beams(trace, 4, True, cold, 0.5)                       # at most 2 cold items
    history = set(test_set.history[3].tolist())
    assert sum(row.place is not None for row in listed) == 2
    for row in listed:
        if row.item in history:
            assert row.reason == "history" and row.in_history
        elif row.place is None:
            assert row.reason == "cap" and row.cold


def test_free_decoding_flags_ids_that_name_no_item_and_measures_their_share(semantic_ids,
                                                                            test_set):
    sparse = SemanticIds(semantic_ids.table[:8], semantic_ids.vocab_sizes)   # 8 of 108 IDs
    torch.manual_seed(0)
    small = TIGER(sparse, tiny_config()).eval()
    batch = {"users": torch.tensor([1]), "history": torch.tensor([[1, 2, 3]])}
    free = trace_search(small, batch, 8, 1.0, constrained=False)
    kept = trace_search(small, batch, 8, 1.0, constrained=True)
    assert free.invalid.any() and free.invalid_share == free.invalid.sum() / free.finished.sum()
    assert kept.invalid_share == 0.0                  # a consistency check: only the trie's IDs
    left = free.left_trie_at()
    for w in np.flatnonzero(free.invalid):
        d = left[w]
        position = free.positions[d - 1]
        index = [tuple(p) for p in position.prefixes.tolist()].index(tuple(free.ids[w, :d]))
        assert position.n_items[index] == 0 and d >= 1
    listed = rank_beams(free, 3, exclude_history=False)
    assert all(row.reason == "invalid" for row in listed if row.item == 0)


# --- errors that say what to fix -------------------------------------------------------------

class DenseRetriever(torch.nn.Module):
    """A model that scores items and writes no ID (like SASRec)."""

    def scores(self, batch):
        return torch.zeros(len(batch["users"]), N_ITEMS + 1)


@pytest.mark.parametrize("call, error, phrase", [
    (lambda m, s, e: BeamExplorer(DenseRetriever(), s, np.zeros((N_ITEMS, 2))), TypeError,
     "TIGER's decoder interface"),
    (lambda m, s, e: trace_search(DenseRetriever(), one_user(s), 3), TypeError,
     "has no encoder_input"),
    (lambda m, s, e: trace_search(m, one_user(s), 3, semantic_ids=SemanticIds.from_codes(
        torch.zeros(N_ITEMS, 2, dtype=torch.long) + torch.arange(N_ITEMS)[:, None] % 3, [3, 3])),
     ValueError, "not the ones the model writes"),
    (lambda m, s, e: trace_search(m, s.batch(slice(0, 2)), 3), ValueError, "one user's search"),
    (lambda m, s, e: trace_search(m, one_user(s), 3, semantic_ids=m.semantic_ids.table),
     TypeError, "must be a SemanticIds"),
    (lambda m, s, e: trace_search(m, one_user(s), 0), ValueError, "beam must be an int >= 1"),
    (lambda m, s, e: trace_search(m, one_user(s), 3, temperature=0.0), ValueError, "> 0"),
    (lambda m, s, e: rank_beams(trace_search(m, one_user(s), 3), 4, True), ValueError,
     r"k must be an int in \[1, W = 3\]"),
    (lambda m, s, e: rank_beams(trace_search(m, one_user(s), 3), 2, True, None, 0.5), ValueError,
     "needs both"),
    (lambda m, s, e: BeamExplorer(m, s, np.zeros((N_ITEMS - 1, 2))), ValueError, r"\(I, 2\)"),
    (lambda m, s, e: BeamExplorer(m, s.history, np.zeros((N_ITEMS, 2))), TypeError, "EvalSet"),
    (lambda m, s, e: BeamExplorer(m, s, np.zeros((N_ITEMS, 2)), cold_items=torch.zeros(3)),
     ValueError, r"\(I \+ 1,\) = \(41,\)"),
    (lambda m, s, e: e.search(row=99), ValueError, r"row must be an int in \[0, 4\)"),
    (lambda m, s, e: e.search(row=0, history=[1, 0, 3]), ValueError, r"item ids in \[1, 40\]"),
    (lambda m, s, e: e.view(0, beam=41, k=3), ValueError, "at most 40 beams"),
    (lambda m, s, e: BeamExplorer(m, s, np.zeros((N_ITEMS, 2))).ranked(
        trace_search(m, one_user(s), 3), 2, 0.5), ValueError, "cold_items=unseen"),
])
def test_bad_input_says_what_to_fix(model, test_set, explorer, call, error, phrase):
    with pytest.raises(error, match=phrase):
        call(model, test_set, explorer)


# --- the view --------------------------------------------------------------------------------

def test_the_tree_has_a_box_per_survivor_and_no_crossing_kept_edges(explorer):
    trace = explorer.search(0, beam=8)
    layout = tree_layout(trace)
    for position in trace.positions:
        rows = [node.row for node in layout.nodes.values() if node.d == position.d]
        assert sorted(rows) == list(range(len(position.token)))
    for d in range(1, trace.depth + 1):                                 # children keep order
        edges = sorted((layout.nodes[p].row, layout.nodes[c].row) for p, c in layout.edges
                       if layout.nodes[c].d == d)
        assert [c for _, c in edges] == sorted(c for _, c in edges)


def test_pruned_prefixes_are_faded_and_every_beams_path_is_alive(explorer):
    trace = explorer.search(1, beam=6)
    layout = tree_layout(trace)
    for node in layout.nodes.values():
        assert node.alive == bool(node.beams)
    assert any(not node.alive for node in layout.nodes.values())       # W of W * V_d survive


def test_the_html_links_each_row_marker_and_path_and_each_prefix_to_its_tip(explorer):
    trace = explorer.search(2, beam=8)
    listed = explorer.ranked(trace, 4)
    page = explorer.html(trace, listed)
    style = explorer.style_html()
    for row in listed:
        if row.item:
            assert f"r-{row.beam} " in page and f"m-{row.beam} " in page and f"b-{row.beam}" in page
            assert f":has(.r-{row.beam}:hover) .m-{row.beam} circle" in style
    for key in tree_layout(trace).nodes:
        assert f'class="tip t-{key}"' in page and f":has(.n-{key}:hover) .t-{key}" in style
    assert page.count('class="node ') == 1 + sum(len(p.token) for p in trace.positions)


def test_showing_fewer_positions_hides_the_list_on_the_map_and_shades_the_live_region(explorer):
    trace = explorer.search(0, beam=5)
    listed = explorer.ranked(trace, 3)
    early = explorer.html(trace, listed, step=1, style=False)
    assert 'class="live"' in early and 'class="mk ' not in early
    assert 'class="node n-1-0' in early and 'class="node n-2-0' not in early
    assert 'class="mk ' in explorer.html(trace, listed, style=False)


def test_a_redraw_counts_itself_for_the_page(explorer):
    first = explorer.view(0, beam=4, k=2)
    second = explorer.view(0, beam=4, k=2)
    assert 'data-drawn="1"' in first and 'data-drawn="2"' in second


def test_searches_are_cached_per_history_and_setting(explorer, monkeypatch):
    calls = []
    real = generation.trace_search
    monkeypatch.setattr(generation, "trace_search",
                        lambda *a, **k: calls.append(1) or real(*a, **k))
    explorer.search(0, beam=4)
    explorer.search(0, beam=4)
    explorer.search(0, beam=4, temperature=2.0)
    assert len(calls) == 2 and len(explorer._memory) == 1              # one encoder pass


def test_an_edited_history_has_no_target(explorer, test_set):
    trace = explorer.search(0, history=[5, 6, 7], beam=4)
    assert trace.target is None and trace.history.tolist() == [5, 6, 7]
    assert explorer.search(0, beam=4).target == int(test_set.targets[0])


def test_the_static_figure_shows_the_tree_the_list_and_the_map_without_overlapping_texts(
        explorer):
    fig = explorer.static_figure(1, beam=8, k=4, constrained=False)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    tree = fig.axes[0]
    texts = [t for t in tree.texts if t.get_text()]
    boxes = [t.get_window_extent(renderer) for t in texts]
    overlapping = [(texts[i].get_text(), texts[j].get_text()) for i in range(len(boxes))
                   for j in range(i + 1, len(boxes)) if boxes[i].overlaps(boxes[j])]
    assert overlapping == []
    assert any(t.get_text() == "BOS" for t in tree.texts)
    assert any("The list" in t.get_text() for t in fig.axes[1].texts)
    assert fig.axes[2].images                                            # the codebook map
    assert min(t.get_fontsize() for ax in fig.axes for t in ax.texts) >= 7   # >= 9.7 px
    plt.close(fig)


def test_show_without_a_kernel_draws_one_static_figure(explorer, monkeypatch):
    monkeypatch.setattr(explorer, "widget", lambda *a, **k: pytest.fail("no widgets here"))
    monkeypatch.setattr(plt, "show", lambda: None)
    plt.close("all")
    explorer.show(0, beam=6, k=3)
    assert len(plt.get_fignums()) == 1
    plt.close("all")


@pytest.mark.parametrize("widgets_env, shown, figures", [("1", ["app"], 0), ("0", [], 1)])
def test_show_in_a_kernel_is_the_app_or_where_widgets_are_off_the_static_figure(
        explorer, monkeypatch, capsys, widgets_env, shown, figures):
    import IPython.display

    displayed = []
    monkeypatch.setattr(display, "in_kernel", lambda: True)
    monkeypatch.setenv("COURSE_WIDGETS", widgets_env)                  # the HTML book sets 0
    monkeypatch.setattr(explorer, "widget", lambda *a, **k: "app")
    monkeypatch.setattr(IPython.display, "display", displayed.append)
    monkeypatch.setattr(plt, "show", lambda: None)
    plt.close("all")
    explorer.show(0, beam=6, k=3)
    assert displayed == shown and len(plt.get_fignums()) == figures
    assert ("In JupyterLab this is an explorer" in capsys.readouterr().out) == (figures == 1)
    plt.close("all")


def widget_parts(app) -> dict:
    """The app's controls by description, its note and its view."""
    import ipywidgets as w

    found, stack = {}, [app]
    while stack:
        widget = stack.pop()
        stack += list(getattr(widget, "children", ()))
        if getattr(widget, "description", ""):
            found[widget.description] = widget
    htmls = [c for c in app.children if isinstance(c, w.HTML)]
    found["note"], found["style"], found["view"] = htmls
    return found


def test_the_widget_redraws_once_per_control_change(explorer):
    pytest.importorskip("ipywidgets")
    app = explorer.widget(0, beam=8, k=4)
    parts = widget_parts(app)
    assert {"user", "random user", "history", "beam W", "k", "decoding", "\u03b5 cold cap",
            "show positions", "\u03c4 code 1", "\u03c4 code 2", "\u03c4 collision"} <= set(parts)
    drawn = explorer.drawn
    changes = [("beam W", 7), ("k", 3), ("decoding", "free"), ("\u03b5 cold cap", 0.5),
               ("\u03c4 code 1", 2.0), ("\u03c4 collision", 0.5), ("show positions", 2),
               ("user", str(int(explorer.eval_set.users[2]))), ("history", "5 6 7")]
    for n, (name, value) in enumerate(changes, start=1):
        parts[name].value = value
        assert explorer.drawn == drawn + n, name
    assert "an edited history" in parts["note"].value
    assert 'data-drawn' in parts["view"].value and "<style>" not in parts["view"].value
    assert "<style>" in parts["style"].value                            # sent once, apart


def test_k_follows_the_beam_down_with_a_note(explorer):
    pytest.importorskip("ipywidgets")
    parts = widget_parts(explorer.widget(0, beam=8, k=6))
    drawn = explorer.drawn
    parts["beam W"].value = 4
    assert parts["k"].value == 4 and explorer.drawn == drawn + 1
    assert "k follows the beam down to 4" in parts["note"].value


def test_a_bad_history_says_what_to_type_and_keeps_the_view(explorer):
    pytest.importorskip("ipywidgets")
    parts = widget_parts(explorer.widget(0, beam=4, k=2))
    before = parts["view"].value
    parts["history"].value = "3 x 500"
    assert "item ids in [1, 40]" in parts["note"].value and parts["view"].value == before


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_the_explorer_runs_on_the_gpu(model, test_set):
    gpu = model.to("cuda")
    trace = trace_search(gpu, one_user(test_set), 6, 1.0)
    result = gpu.generate({k: v.cuda() for k, v in one_user(test_set).items()}, 6)
    assert torch.equal(trace.result.ids, result.ids)
    explorer = BeamExplorer(gpu, test_set, np.zeros((N_ITEMS, 2)) + np.arange(N_ITEMS)[:, None])
    assert "data-drawn" in explorer.view(0, beam=6, k=3)


# --- in JupyterLab, in a real browser --------------------------------------------------------

TINY_NOTEBOOK = """\
import numpy as np, torch
from course_lib.data.sequences import EvalSet
from course_lib.models.tiger import TIGER, TIGERConfig
from course_lib.quantize.semantic_ids import SemanticIds
from course_lib.viz import BeamExplorer

codes = torch.randint(0, 6, (40, 2), generator=torch.Generator().manual_seed(1))
ids = SemanticIds.from_codes(codes, [6, 6])
torch.manual_seed(0)
model = TIGER(ids, TIGERConfig(encoder_layers=1, decoder_layers=1, n_heads=2, d_head=8, d_model=16,
                               d_mlp=32, dropout=0.0, max_items=4, n_user_buckets=8)).eval()
rng = np.random.default_rng(0)
history = torch.tensor(rng.integers(1, 41, size=(30, 6)))
targets = torch.tensor(rng.integers(1, 41, 30))
test = EvalSet(users=torch.arange(30), history=history, targets=targets, seen="allow", n_items=40)
cold = torch.zeros(41, dtype=torch.bool)
cold[[3, 20, 33]] = True
explorer = BeamExplorer(model, test, rng.normal(size=(40, 2)), cold_items=cold)
explorer.show(beam=20, k=10)"""


def test_in_jupyterlab_every_control_redraws_pointing_links_the_views_and_it_reads_at_a_glance(
        tmp_path):
    try:
        check_generation_explorer.check_explorer.check_book.find_browser()
    except RuntimeError as err:
        pytest.skip(f"no headless browser on this machine: {err}")
    notebook = check_generation_explorer.demo_notebook()
    notebook.cells[0].source = TINY_NOTEBOOK
    nbformat.write(notebook, tmp_path / "tiny.ipynb")
    report = check_generation_explorer.drive(tmp_path / "tiny.ipynb", log=lambda line: None)
    print("\n".join(report.lines()))                          # the timings, with -s
    assert report.problems == []                              # console, overlaps, links, colours
    assert report.apps == 1 and len(report.redraws) >= 15
    assert max(report.redraws.values()) < 10                  # seconds, on a busy 2-core CPU
