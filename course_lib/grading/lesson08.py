"""Checks for exercise 08 (PinRec): the outcome-conditioned head q = normalise(h + MLP([h ; E_c])),
the window of positives of every position of left-padded sequences, the merge of
near-duplicate queries, and the budgeted merge of ranked lists without duplicates, each
compared with `course_lib.models.pinrec` (Badrinath et al. 2025); then a
predict-measure-interpret task: how many positives a training position gets, and why fewer
than the window's W.

A wrong answer names the case and, where it equals the answer of a known mistake (the outcome
ignored or added to h, no normalisation, [E_c ; h] instead of [h ; E_c], no residual h; position
t inside its own window, a window shifted by one, max_gap measured from t's own event, padding
positions with positives, a window that wraps past the end; budgets not summed, the later query
kept, >= instead of >, chained merges; duplicates kept, budgets spent before deduplication, 0
counted as an item, the outcomes' order lost, ...), says which mistake it looks like.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from course_lib.grading.checks import (check_choice, check_measured, close, left_padded,
                                       run_naming_mistakes, same_integers, same_values,
                                       tensor_like)
from course_lib.models import pinrec

__all__ = ["check_outcome_query", "check_future_window", "check_merge_near_duplicates",
           "check_budgeted_merge", "check_positives_per_position", "check_why_fewer_positives"]

t = torch.tensor


# --- task 1: the outcome-conditioned head -------------------------------------------------------

def _unit(x: Tensor) -> Tensor:
    return F.normalize(x, dim=-1, eps=pinrec.NORM_EPS)


def _query_mistakes(hidden, outcome, embedding, mlp) -> list[tuple[str, Tensor]]:
    with torch.no_grad():
        e = embedding(outcome)                                             # (..., D)
        right = mlp(torch.cat([hidden, e], -1))                            # MLP([h ; E_c])
        nothing = mlp(torch.cat([hidden, torch.zeros_like(e)], -1))        # MLP([h ; 0])
        added = ("the outcome added to h (h + E_c), as if it were one more input embedding: "
                 "E_c goes, concatenated with h, through the MLP, q = normalise(h + "
                 "MLP([h ; E_c])); the backbone never sees it")
        return [("the outcome ignored: the head must read E_c, the embedding of the outcome "
                 "asked for, q = normalise(h + MLP([h ; E_c]))", _unit(hidden + nothing)),
                (added, _unit(hidden + e)),
                (added, _unit(hidden + e + nothing)),
                (added, _unit(hidden + e + mlp(torch.cat([hidden + e, torch.zeros_like(e)],
                                                         -1)))),
                ("the concatenation in the wrong order: [h ; E_c], h first, not [E_c ; h]",
                 _unit(hidden + mlp(torch.cat([e, hidden], -1)))),
                ("no residual h: q = normalise(h + MLP([h ; E_c])), the MLP only corrects h",
                 _unit(right)),
                ("no normalisation: the query must be a unit vector (the loss and the index "
                 "score cosines), normalise along the last dimension", hidden + right),
                ("h added after the normalisation: normalise the sum h + MLP([h ; E_c])",
                 hidden + _unit(right)),
                ("normalised along dim 1 (F.normalize's default) instead of the last "
                 "dimension, dim=-1", F.normalize(hidden + right, dim=1))]


def _explain_query(got, answer) -> str | None:
    got = tensor_like(got, answer, torch.float64)
    if got is None:
        return None
    if not torch.allclose(got.norm(dim=-1), torch.ones(()).double(), atol=1e-5):
        return "queries that are not unit vectors: normalise along the last dimension"
    return None


def _linear(weight: list[list[float]]) -> nn.Linear:
    """A linear map without bias, its weight (out, in) given: an MLP one can follow by hand."""
    with torch.random.fork_rng(devices=[]):  # nn.Module init reads the global generator
        layer = nn.Linear(len(weight[0]), len(weight), bias=False).double()
    with torch.no_grad():
        layer.weight.copy_(t(weight, dtype=torch.float64))
    return layer


def _embedding(weight: list[list[float]]) -> nn.Embedding:
    """Outcome embeddings E_0 .. E_O, E_0 = 0 (no outcome, padding_idx=0)."""
    with torch.random.fork_rng(devices=[]):
        table = nn.Embedding(len(weight), len(weight[0]), padding_idx=0).double()
    with torch.no_grad():
        table.weight.copy_(t(weight, dtype=torch.float64))
    return table


def _random_head(gen: torch.Generator, d: int, n_outcomes: int):
    """The library's head: an outcome embedding (O + 1, D) and MLP Linear-SiLU-Linear."""
    seed = int(torch.randint(0, 2 ** 31, (1,), generator=gen))
    with torch.random.fork_rng(devices=[]):   # nn.Module init reads the global generator
        torch.manual_seed(seed)
        table = nn.Embedding(n_outcomes + 1, d, padding_idx=0).double()
        mlp = nn.Sequential(nn.Linear(2 * d, d), nn.SiLU(), nn.Linear(d, d)).double()
    return table, mlp


def check_outcome_query(fn) -> None:
    """fn(hidden (..., D), outcome (...) ids 0..O, outcome_embedding nn.Embedding, mlp
    nn.Module (2D -> D)) -> unit queries (..., D): q = normalise(h + MLP([h ; E_c]))."""
    # A linear MLP([a ; b]) = (2 b_1, a_2 + 2 b_2), so that every mistake gives another answer.
    by_hand = _linear([[0, 0, 2, 0], [0, 1, 0, 2]])
    table = _embedding([[0, 0], [-2, 1], [1, -2]])
    cases = [("by hand: MLP([a ; b]) = (2 b_1, a_2 + 2 b_2), h = (1, 1), E_1 = (-2, 1): q = "
              "normalise((1, 1) + (-4, 3)) = (-0.6, 0.8)",
              (t([[1.0, 1.0]]).double(), t([1]), table, by_hand)),
             ("each row its own outcome, 0 is none (E_0 = 0)",
              (t([[1.0, 1.0], [3.0, 1.0], [3.0, 1.0]]).double(), t([1, 2, 0]), table,
               by_hand))]
    gen = torch.Generator().manual_seed(80)
    for i in range(4):
        d, n_outcomes = 3 + i % 3, 2 + i % 2
        table, mlp = _random_head(gen, d, n_outcomes)
        shape = (5,) if i % 2 == 0 else (2, n_outcomes + 1)                # (B,) or (B, Q)
        hidden = torch.randn(*shape, d, generator=gen, dtype=torch.float64)
        outcome = torch.randint(0, n_outcomes + 1, shape, generator=gen)
        if i % 2:
            outcome = torch.arange(n_outcomes + 1).expand(shape).clone()   # every outcome, Q
        name = (f"random {i}: hidden (B, D)" if i % 2 == 0 else
                f"random {i}: hidden (B, Q, D), one query per outcome")
        cases.append((name, (hidden, outcome, table, mlp)))
    expected = []
    for name, args in cases:
        with torch.no_grad():
            answer = pinrec.outcome_query(*args)
        expected.append((name, args, (answer, _query_mistakes(*args))))
    return run_naming_mistakes("outcome_query", fn, expected, same_values, same_values,
                                _explain_query)


# --- task 2: the window of positives --------------------------------------------------------

def _shifted(items: Tensor, start: int, window: int, wrap: str = "zero") -> Tensor:
    """later[b, t, j] = items[b, t + start + j] (B, L, W); past the end: 0 ("zero"), the
    wrapped-around item ("wrap") or the last item ("clamp")."""
    length = items.shape[1]
    index = torch.arange(length)[:, None] + start + torch.arange(window)     # (L, W)
    if wrap == "wrap":
        index = index % length
    inside = (index >= 0) & (index < length)
    picked = items[:, index.clamp(0, length - 1)]                            # (B, L, W)
    return picked if wrap in ("wrap", "clamp") else picked * inside


def _window(items, times, window, max_gap, start=1, wrap="zero", gap_from="first",
            strict=False, mask_padding=True) -> Tensor:
    """The window of positives with one part changed (the defaults give the right one)."""
    later = _shifted(items, start, window, wrap)                             # (B, L, W)
    later_times = _shifted(times, start, window, wrap)
    keep = later > 0
    if mask_padding:
        keep &= (items > 0).unsqueeze(-1)
    if max_gap is not None:
        if gap_from == "first":
            gap = later_times - later_times[..., :1]
        elif gap_from == "own":
            gap = later_times - times.unsqueeze(-1)
        else:                                       # each step from the one before, chained
            steps = later_times.diff(dim=-1, prepend=later_times[..., :1])
            gap = torch.where(steps > max_gap, torch.inf, 0.0).cumsum(-1)
        keep &= (gap < max_gap) if strict else (gap <= max_gap)
    return later * keep


def _window_mistakes(items, times, window, max_gap) -> list[tuple[str, Tensor]]:
    wrong = [("position t inside its own window: its positives are the NEXT engagements, "
              "t+1 .. t+window", _window(items, times, window, max_gap, start=0)),
             ("a window off by one: it starts at t+1 (the next engagement) and ends at "
              "t+window", _window(items, times, window, max_gap, start=2)),
             ("a padding position with positives: where items[b, t] is 0 (padding) the whole "
              "window is 0", _window(items, times, window, max_gap, mask_padding=False))]
    after_end = ("a window that runs past the end of the sequence: the entries after the last "
                 "engagement are 0, not wrapped around or repeated")
    wrong += [(after_end, _window(items, times, window, max_gap, wrap="wrap")),
              (after_end, _window(items, times, window, max_gap, wrap="clamp"))]
    if window > 1:
        shorter = _window(items, times, window, max_gap)
        shorter[..., -1] = 0
        wrong.append(("a window off by one: it holds `window` engagements, t+1 .. t+window "
                      "inclusive", shorter))
    if max_gap is not None:
        wrong += [("no max_gap filter: drop the engagements more than max_gap seconds after "
                   "the first of the window (t+1)", _window(items, times, window, None)),
                  ("max_gap measured from position t's own event: measure it from the first "
                   "positive (t+1), which is always kept",
                   _window(items, times, window, max_gap, gap_from="own")),
                  ("max_gap measured between consecutive engagements: measure every one from "
                   "the first positive (t+1)",
                   _window(items, times, window, max_gap, gap_from="chain")),
                  ("< max_gap instead of <= max_gap: an engagement exactly max_gap seconds "
                   "after the first stays", _window(items, times, window, max_gap,
                                                    strict=True))]
    return wrong


def _explain_window(got, answer) -> str | None:
    if not isinstance(got, Tensor):
        return ("the right window, but not as a tensor: return a long tensor (B, L, window)"
                if close(got, answer) else None)
    if got.shape != answer.shape:
        return (f"a window of shape {tuple(got.shape)}: return (B, L, window) = "
                f"{tuple(answer.shape)}, one row of `window` positives per position")
    if (got.dtype.is_floating_point or got.dtype == torch.bool) and close(got, answer):
        return "the right window as floats or bools: return item ids, a long tensor"
    return None


def _engagements(gen, batch: int, length: int, n_items: int = 20):
    """Left-padded items and increasing timestamps (B, L), 0 under padding; gaps of 0 s to
    minutes, often exactly 30 s."""
    real = left_padded(gen, batch, length)
    items = torch.randint(1, n_items + 1, (batch, length), generator=gen) * real
    gaps = t([0, 5, 10, 30, 30, 60, 400])[torch.randint(0, 7, (batch, length), generator=gen)]
    times = (1_000 + gaps.cumsum(1)) * real
    return items, times


def check_future_window(fn) -> None:
    """fn(items (B, L), times (B, L), window W, max_gap seconds or None) -> (B, L, W) long:
    row t holds items t+1 .. t+W; 0 after the end of the sequence, on padding positions
    (items 0) and where an item comes more than max_gap seconds after the first of them."""
    full, full_times = t([[1, 2, 3, 4]]), t([[10, 20, 30, 40]])
    padded, padded_times = t([[0, 0, 3, 4, 5]]), t([[0, 0, 100, 110, 120]])
    burst = t([[0, 1, 2, 3, 4, 5, 6]])
    burst_times = t([[0, 100, 110, 500, 530, 545, 900]])
    cases = [("window 1 is the next item", (padded, padded_times, 1, None)),
             ("window 3 of a full sequence: 0 after the end", (full, full_times, 3, None)),
             ("a padding position gets no positives", (padded, padded_times, 2, None)),
             ("max_gap from the first positive (t+1), which is always kept",
              (burst, burst_times, 3, 10.0)),
             ("an engagement exactly max_gap after the first stays",
              (burst, burst_times, 3, 30.0)),
             ("each row its own padding", (t([[0, 7, 8, 9], [5, 6, 7, 8], [0, 0, 0, 9]]),
                                           t([[0, 1, 2, 3], [1, 2, 3, 4], [0, 0, 0, 5]]), 2,
                                           None))]
    gen = torch.Generator().manual_seed(81)
    for i in range(8):
        items, times = _engagements(gen, 4, 7)
        window = int(torch.randint(1, 5, (1,), generator=gen))
        max_gap = (None, 30.0, 60.0)[i % 3]
        cases.append((f"random {i}", (items, times, window, max_gap)))
    cases = [(name, args, (pinrec.future_window(*args), _window_mistakes(*args)))
             for name, args in cases]
    return run_naming_mistakes("future_window", fn, cases, same_integers, same_values,
                                _explain_window)


# --- task 3: merging near-duplicate queries ----------------------------------------------------

def _merge(queries, budgets, threshold, keep_later=False, strict=True, chain=False,
           most_similar=False, sum_budgets=True) -> tuple[list[int], list[int]]:
    """The merge with one part changed (the defaults give the right one)."""
    kept, merged, group = [], [], {}               # group: query -> index in kept
    cosine = (queries @ queries.T).tolist()

    def above(a, b):
        return cosine[a][b] > threshold if strict else cosine[a][b] >= threshold

    for q in range(len(queries)):
        earlier = range(q) if chain else kept
        similar = [group[p] if chain else i for i, p in enumerate(earlier) if above(q, p)]
        if most_similar and similar:
            similar = [max(similar, key=lambda i: cosine[q][kept[i]])]
        if similar:
            group[q] = similar[0]
            merged[similar[0]] += budgets[q] if sum_budgets else 0
            if keep_later:
                kept[similar[0]] = q
        else:
            group[q] = len(kept)
            kept.append(q)
            merged.append(budgets[q])
    return kept, merged


def _merge_mistakes(queries, budgets, threshold) -> list[tuple[str, tuple]]:
    return [("budgets not summed: a merged query's budget is added to the one it joins, so "
             "the user still gets every item asked for",
             _merge(queries, budgets, threshold, sum_budgets=False)),
            ("merged into the later query: the earlier, kept query stays (its index), the "
             "later one is dropped", _merge(queries, budgets, threshold, keep_later=True)),
            ("cosine >= threshold: merge only above it, cosine > threshold",
             _merge(queries, budgets, threshold, strict=False)),
            ("comparing with every earlier query instead of the kept ones: a query merged "
             "away no longer counts, so merges do not chain",
             _merge(queries, budgets, threshold, chain=True)),
            ("merged into the most similar kept query: the rule is the first (earliest) kept "
             "query above the threshold", _merge(queries, budgets, threshold,
                                                 most_similar=True))]


def _as_two_lists(got) -> tuple[list[int], list[int]] | None:
    try:
        kept, merged = got
        kept, merged = torch.as_tensor(kept), torch.as_tensor(merged)
    except (TypeError, ValueError, RuntimeError):
        return None
    if kept.dim() != 1 or merged.dim() != 1 or kept.is_floating_point():
        return None
    return kept.tolist(), [int(b) if float(b) == int(b) else float(b) for b in merged.tolist()]


def _same_merge(got, answer, args) -> bool:
    return _as_two_lists(got) == (list(answer[0]), list(answer[1]))


def _explain_merge(got, answer) -> str | None:
    lists = _as_two_lists(got)
    if lists is None:
        return ("an answer that is not two lists: return (kept, budgets), the kept queries' "
                "indices and their budgets")
    if sum(lists[1]) != sum(answer[1]):
        return (f"budgets that add up to {sum(lists[1])}, not {sum(answer[1])}: merging "
                "moves budget, it never loses or adds any")
    return None


def _clustered_queries(gen, n: int, d: int, spread: float) -> Tensor:
    """(n, d) float64 unit queries around 2 or 3 random directions."""
    centres = torch.randn(3, d, generator=gen, dtype=torch.float64)
    which = torch.randint(0, 3, (n,), generator=gen)
    noise = spread * torch.randn(n, d, generator=gen, dtype=torch.float64)
    return _unit(centres[which] + noise)


def check_merge_near_duplicates(fn) -> None:
    """fn(queries (Q, D) unit vectors, budgets list of Q ints, threshold) -> (kept, budgets):
    in order, a query whose cosine with a kept query is above the threshold (strictly) joins
    the first such kept query, its budget added; otherwise it is kept with its own budget."""
    e = torch.eye(4, dtype=torch.float64)
    half = torch.full((4,), 0.5, dtype=torch.float64)                      # cos(e_i, half) = 0.5
    lean = _unit(0.6 * e[0] + 0.8 * e[1])                                  # cos 0.6 and 0.8
    cases = [("two identical queries become one, budgets summed",
              (torch.stack([e[0], e[0]]), [3, 2], 0.99)),
             ("far apart queries stay apart", (torch.stack([e[0], e[1], e[2]]), [1, 2, 3], 0.9)),
             ("the earlier query is kept, the later joins it",
              (torch.stack([e[1], e[0], e[0]]), [4, 1, 2], 0.99)),
             ("a cosine exactly at the threshold is not above it",
              (torch.stack([e[0], half]), [2, 5], 0.5)),
             ("a query merged away does not attract others: compare with kept queries only",
              (torch.stack([e[0], _unit(e[0] + e[1]), e[1]]), [1, 2, 4], 0.7)),
             ("similar to two kept queries: it joins the first one",
              (torch.stack([e[0], e[1], lean]), [3, 3, 1], 0.5))]
    gen = torch.Generator().manual_seed(82)
    while len(cases) < 12:
        queries = _clustered_queries(gen, int(torch.randint(3, 7, (1,), generator=gen)), 3, 0.3)
        threshold = (0.8, 0.9, 0.95)[len(cases) % 3]
        cosine = queries @ queries.T
        if ((cosine - threshold).abs() < 1e-6).any():                      # no near-ties
            continue
        budgets = torch.randint(0, 6, (len(queries),), generator=gen).tolist()
        cases.append((f"random {len(cases) - 6}", (queries, budgets, threshold)))
    cases = [(name, args, (pinrec.merge_near_duplicates(*args), _merge_mistakes(*args)))
             for name, args in cases]
    return run_naming_mistakes("merge_near_duplicates", fn, cases, _same_merge,
                                explain=_explain_merge)


# --- task 4: the budgeted merge -------------------------------------------------------------

def _merge_lists(lists, budgets, dedup="fresh", zero="skip", order="given",
                 sort_items=False) -> Tensor:
    """The budgeted merge with one part changed (the defaults give the right one). zero:
    "skip" (padding), "item" (0 taken like an item, once) or "always" (0 taken, never seen
    as a repeat)."""
    total = sum(budgets)
    queries = list(range(len(lists)))
    if order == "reversed":
        queries.reverse()
    elif order == "largest":
        queries.sort(key=lambda q: -budgets[q])
    out = torch.zeros(lists[0].shape[0], total, dtype=torch.long)
    for row in range(len(out)):
        taken: list[int] = []
        for q in queries:
            ranked, budget = lists[q][row].tolist(), budgets[q]
            if dedup == "before":                  # the budget spent before removing repeats
                ranked = ranked[:budget]
            if zero == "skip":
                ranked = [i for i in ranked if i > 0]
            usable = [i for i in ranked if dedup == "none" or i not in taken
                      or (i == 0 and zero == "always")]
            taken += usable[:budget]
        if sort_items:
            taken = sorted(i for i in taken if i > 0)
        out[row, :len(taken)] = t(taken, dtype=torch.long)
    return out


def _budgeted_mistakes(lists, budgets) -> list[tuple[str, Tensor]]:
    zero = ("0 counted as an item: 0 is padding in a ranked list (the index ran out), skip "
            "it; only real items fill a budget")
    order = ("the outcomes' order lost: the first query fills its budget first, then the "
             "second, in the order given")
    return [("duplicates kept: an item the earlier queries already took is skipped, and the "
             "query takes its next item instead", _merge_lists(lists, budgets, dedup="none")),
            ("budgets spent before removing duplicates: a query skips the items already "
             "taken and keeps going down its list until its budget is full",
             _merge_lists(lists, budgets, dedup="before")),
            (zero, _merge_lists(lists, budgets, zero="item")),
            (zero, _merge_lists(lists, budgets, zero="always")),
            (order, _merge_lists(lists, budgets, order="reversed")),
            (order, _merge_lists(lists, budgets, order="largest")),
            ("the items sorted by id (a set or torch.unique sorts): keep each list's rank "
             "order, the first query's items first", _merge_lists(lists, budgets,
                                                                  sort_items=True))]


def _explain_budgeted(got, answer) -> str | None:
    if not isinstance(got, Tensor):
        return ("the right items, but not as a tensor: return a long tensor (B, sum of budgets)"
                if close(got, answer) else None)
    if got.dim() != 2 or got.shape[0] != answer.shape[0]:
        return None
    if got.dtype.is_floating_point and close(got, answer):
        return "the right items as floats: return item ids, a long tensor"
    if got.shape[1] < answer.shape[1]:
        return (f"{got.shape[1]} columns where the budgets add up to {answer.shape[1]}: return "
                "(B, sum of budgets), 0 at the end of a row whose lists ran out")
    if got.shape[1] > answer.shape[1]:
        return f"{got.shape[1]} columns: return (B, sum of budgets) = {tuple(answer.shape)}"
    for row in got.tolist():
        real = [i for i in row if i != 0]
        if len(real) != len(set(real)):
            return "a row with a repeated item: each item appears once"
    return None


def _ranked_lists(gen, batch: int, n_queries: int, k: int, n_items: int = 8) -> list[Tensor]:
    """n_queries ranked lists (B, k) of distinct items from a small catalogue (so lists
    overlap); some rows run out early, 0 (padding) at their end."""
    lists = []
    for _ in range(n_queries):
        rows = torch.stack([torch.randperm(n_items, generator=gen)[:k] + 1 for _ in range(batch)])
        short = torch.randint(0, k + 1, (batch, 1), generator=gen)           # items found
        full = torch.rand(batch, 1, generator=gen) < 0.6
        rows = rows * (full | (torch.arange(k) < short))
        lists.append(rows)                                                   # (B, k)
    return lists


def check_budgeted_merge(fn) -> None:
    """fn(lists: Q ranked lists (B, k_q), budgets: Q ints) -> (B, sum of budgets) long: query
    q, in order, adds its first budgets[q] items not taken by the queries before it, 0 in a
    list skipped; a row whose lists run out ends in 0."""
    cases = [("two outcomes, no overlap", ([t([[3, 1, 2]]), t([[6, 4, 5]])], [2, 1])),
             ("an item both want goes to the first query; the second takes its next",
              ([t([[1, 2, 3]]), t([[2, 5, 6]])], [2, 2])),
             ("the first query's items come first, in rank order",
              ([t([[9, 3, 7]]), t([[1, 8, 4]])], [1, 2])),
             ("0 in a list is padding, not an item",
              ([t([[1, 2, 0, 0]]), t([[2, 3, 4, 5]])], [3, 2])),
             ("lists that run out leave 0 at the end",
              ([t([[1, 2]]), t([[2, 1]])], [2, 2])),
             ("a budget of 0 takes nothing", ([t([[4, 5]]), t([[6, 7]]), t([[8, 9]])],
                                              [1, 0, 1])),
             ("each row its own lists", ([t([[1, 2, 3], [7, 8, 9]]), t([[3, 1, 4], [9, 7, 8]])],
                                         [2, 2]))]
    gen = torch.Generator().manual_seed(83)
    for i in range(6):
        n_queries = int(torch.randint(2, 4, (1,), generator=gen))
        budgets = torch.randint(0, 4, (n_queries,), generator=gen).tolist()
        budgets[0] = max(budgets[0], 1)
        k = min(sum(budgets), 8)                    # as `recommend` asks: the total, at most I
        cases.append((f"random {i}", (_ranked_lists(gen, 3, n_queries, k), budgets)))
    cases = [(name, args, (pinrec.budgeted_merge(*args), _budgeted_mistakes(*args)))
             for name, args in cases]
    return run_naming_mistakes("budgeted_merge", fn, cases, same_integers, same_values,
                                _explain_budgeted)


# --- task 5: predict, measure, interpret: positives per position ------------------------------

def check_positives_per_position(measure, items: Tensor, times: Tensor, window: int,
                                 max_gap: float | None) -> None:
    """measure() -> the mean number of positives of a real position, the windows of the
    left-padded items, times (B, T + 1) without their last column (the newest engagement has
    nothing after it), averaged over the positions that hold an engagement. Deterministic: the
    range is the library's mean +- half of one positive over all positions, nothing more."""
    real = items[:, :-1] > 0                                                # (B, T)
    counts = (pinrec.future_window(items, times, window, max_gap)[:, :-1] > 0).sum(-1)
    mean = float(counts[real].double().mean())
    every_position = float(counts.double().mean())
    unlimited = (pinrec.future_window(items, times, window)[:, :-1] > 0).sum(-1)
    hint = (f"average over the real positions (items[:, :-1] > 0) only, with max_gap: over "
            f"every position, padding included, the mean is {every_position:.3f}; without "
            f"max_gap it is {float(unlimited[real].double().mean()):.3f}")
    half = 0.5 / int(real.sum())
    return check_measured("positives per position", measure, mean - half, mean + half,
                          "the mean number of positives of a real position", hint)


def check_why_fewer_positives(choose) -> None:
    """Why a real position gets fewer than W positives on average (the letter)."""
    reasons = {
        "a": "no: you averaged over the real positions only; padding positions would pull the "
             "mean down further, but they are not in it",
        "b": "no: the gap is measured from the first positive, t + 1, which is always kept: "
             "every real position has at least one positive",
        "c": "yes: a window holds the engagements of one burst. An engagement more than max_gap "
             "after the first positive belongs to a later session and is dropped, and the "
             "newest positions of a sequence have fewer than W engagements after them",
        "d": "no: future_window keeps an item that repeats in a window; only the budgeted merge "
             "removes duplicates, at serving time"}
    return check_choice("why fewer positives", choose, "c", reasons)
