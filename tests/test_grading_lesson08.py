"""Lesson 08's checks: answers written from the definitions with loops (so the checks agree with
the definitions, not only with the library), the library's references pass, each typical
mistake, written the way a learner would write it, fails with the case named and the mistake
recognised, and an unfinished task is reported as not implemented. The mean number of
positives per position is checked against windows written with loops: the right mean passes,
means of the wrong thing (padding positions counted, max_gap ignored, the last column kept)
fail, and each wrong explanation fails with its reason."""
import pytest
import torch
import torch.nn.functional as F

from course_lib.grading import lesson08 as checks
from course_lib.grading import checks as checks_lib
from course_lib.grading.checks import CheckFailed, NotImplementedYet
from course_lib.models import pinrec
from conftest import assert_each_listed_mistake_is_named


# --- answers written from the definitions ---------------------------------------------------

def query_by_hand(hidden, outcome, outcome_embedding, mlp):
    e = outcome_embedding.weight[outcome]                              # E_c, E_0 = 0
    x = hidden + mlp(torch.cat([hidden, e], dim=-1))
    return x / x.norm(dim=-1, keepdim=True)


def window_by_loop(items, times, window, max_gap):
    batch, length = items.shape
    out = torch.zeros(batch, length, window, dtype=torch.long)
    for b in range(batch):
        for pos in range(length):
            if items[b, pos] == 0:
                continue
            later = range(pos + 1, min(pos + 1 + window, length))
            for j, s in enumerate(later):
                first = times[b, pos + 1]
                if max_gap is None or times[b, s] - first <= max_gap:
                    out[b, pos, j] = items[b, s]
    return out


def merge_by_loop(queries, budgets, threshold):
    kept, merged = [], []
    for q, query in enumerate(queries):
        for i, k in enumerate(kept):
            if float(query @ queries[k]) > threshold:
                merged[i] += budgets[q]
                break
        else:
            kept.append(q)
            merged.append(budgets[q])
    return kept, merged


def merge_by_matrix(queries, budgets, threshold):
    """The cosines all at once, as a tensor; the answer as tensors."""
    similar = (queries @ queries.T) > threshold                        # (Q, Q)
    kept, merged = [], []
    for q in range(len(queries)):
        joins = [i for i, k in enumerate(kept) if similar[q, k]]
        if joins:
            merged[joins[0]] += budgets[q]
        else:
            kept.append(q)
            merged.append(budgets[q])
    return torch.tensor(kept), torch.tensor(merged)


def budgeted_by_loop(lists, budgets):
    rows = []
    for row in range(len(lists[0])):
        taken = []
        for ranked, budget in zip(lists, budgets):
            added = 0
            for item in ranked[row].tolist():
                if added == budget:
                    break
                if item != 0 and item not in taken:
                    taken.append(item)
                    added += 1
        rows.append(taken + [0] * (sum(budgets) - len(taken)))
    return torch.tensor(rows, dtype=torch.long)


def test_answers_from_the_definitions_pass_every_check():
    checks.check_outcome_query(query_by_hand)
    checks.check_future_window(window_by_loop)
    checks.check_merge_near_duplicates(merge_by_loop)
    checks.check_merge_near_duplicates(merge_by_matrix)
    checks.check_budgeted_merge(budgeted_by_loop)


def test_library_references_pass_every_check():
    checks.check_outcome_query(pinrec.outcome_query)
    checks.check_future_window(pinrec.future_window)
    checks.check_merge_near_duplicates(pinrec.merge_near_duplicates)
    checks.check_budgeted_merge(pinrec.budgeted_merge)


def test_the_checks_leave_the_global_random_state_alone():
    torch.manual_seed(0)
    before = torch.rand(3)
    torch.manual_seed(0)
    checks.check_outcome_query(pinrec.outcome_query)
    assert torch.equal(torch.rand(3), before)


# --- task 1: the outcome-conditioned head ---------------------------------------------------

def head_with(residual=True, normalise=True, order="h_first", outcome="mlp"):
    def head(hidden, c, outcome_embedding, mlp):
        e = outcome_embedding(c)
        if outcome == "ignored":
            e = torch.zeros_like(e)
        elif outcome == "added":
            hidden, e = hidden + e, torch.zeros_like(e)
        pair = [hidden, e] if order == "h_first" else [e, hidden]
        x = mlp(torch.cat(pair, dim=-1)) + (hidden if residual else 0)
        return F.normalize(x, dim=-1) if normalise else x
    return head


@pytest.mark.parametrize("wrong, phrase", [
    (dict(outcome="ignored"), r"the outcome ignored"),
    (dict(outcome="added"), r"the outcome added to h \(h \+ E_c\)"),
    (dict(normalise=False), r"no normalisation"),
    (dict(order="e_first"), r"the concatenation in the wrong order"),
    (dict(residual=False), r"no residual h"),
])
def test_outcome_head_mistakes_are_recognised(wrong, phrase):
    with pytest.raises(CheckFailed, match=r"(?s)case 'by hand.*looks like " + phrase):
        checks.check_outcome_query(head_with(**wrong))


def test_the_outcome_embedding_alone_added_to_h_is_recognised():
    def no_mlp(hidden, c, outcome_embedding, mlp):
        return F.normalize(hidden + outcome_embedding(c), dim=-1)

    with pytest.raises(CheckFailed, match=r"looks like the outcome added to h"):
        checks.check_outcome_query(no_mlp)


def test_normalising_along_dim_1_is_recognised_on_one_query_per_outcome():
    def default_dim(hidden, c, outcome_embedding, mlp):
        return F.normalize(hidden + mlp(torch.cat([hidden, outcome_embedding(c)], -1)))

    with pytest.raises(CheckFailed, match=r"(?s)case 'random 1: hidden \(B, Q, D\).*looks like "
                                          r"normalised along dim 1"):
        checks.check_outcome_query(default_dim)


def test_queries_of_the_wrong_length_are_told_to_normalise():
    with pytest.raises(CheckFailed, match="not unit vectors"):
        checks.check_outcome_query(lambda *args: 2 * query_by_hand(*args))


# --- task 2: the window of positives --------------------------------------------------------

def window_with(start=1, pad_positions=False, tail="zero", gap_from="first", use_gap=True,
                strict=False):
    """A learner's window by loop with one part changed."""
    def window_fn(items, times, window, max_gap):
        batch, length = items.shape
        out = torch.zeros(batch, length, window, dtype=torch.long)
        for b in range(batch):
            for pos in range(length):
                if items[b, pos] == 0 and not pad_positions:
                    continue
                for j in range(window):
                    s = pos + start + j
                    if s >= length:
                        if tail == "zero":
                            continue
                        s = s % length if tail == "wrap" else length - 1
                    if items[b, s] == 0:
                        continue
                    if max_gap is not None and use_gap:
                        first = pos if gap_from == "own" else pos + start     # s >= pos + start
                        gap = times[b, s] - times[b, first]
                        if gap > max_gap or (strict and gap == max_gap):
                            continue
                    out[b, pos, j] = items[b, s]
        return out
    return window_fn


def window_of_consecutive_gaps(items, times, window, max_gap):
    out = window_by_loop(items, times, window, None)
    if max_gap is None:
        return out
    for b in range(items.shape[0]):
        for pos in range(items.shape[1]):
            for j in range(1, window):
                s = pos + 1 + j
                if s < items.shape[1] and times[b, s] - times[b, s - 1] > max_gap:
                    out[b, pos, j:] = 0
                    break
    return out


@pytest.mark.parametrize("wrong, case, phrase", [
    (dict(start=0), "window 1 is the next item", r"position t inside its own window"),
    (dict(start=2), "window 1 is the next item", r"a window off by one: it starts at t\+1"),
    (dict(pad_positions=True), "window 1 is the next item", r"a padding position with "
                                                              r"positives"),
    (dict(tail="wrap"), "window 3 of a full sequence", r"a window that runs past the end"),
    (dict(tail="clamp"), "window 1 is the next item", r"a window that runs past the end"),
    (dict(use_gap=False), "max_gap from the first positive", r"no max_gap filter"),
    (dict(gap_from="own"), "max_gap from the first positive", r"max_gap measured from "
                                                              r"position t's own event"),
    (dict(strict=True), "an engagement exactly max_gap", r"< max_gap instead of <= max_gap"),
])
def test_window_mistakes_are_recognised(wrong, case, phrase):
    with pytest.raises(CheckFailed, match=rf"(?s)case '{case}.*looks like {phrase}"):
        checks.check_future_window(window_with(**wrong))


def test_a_window_one_too_short_is_recognised():
    def too_short(items, times, window, max_gap):
        out = window_by_loop(items, times, window, max_gap)
        out[..., -1] = 0 if window > 1 else out[..., -1]
        return out

    with pytest.raises(CheckFailed, match=r"(?s)case 'window 3 of a full sequence.*looks like "
                                          r"a window off by one: it holds `window`"):
        checks.check_future_window(too_short)


def test_max_gap_between_consecutive_engagements_is_recognised():
    with pytest.raises(CheckFailed, match="looks like max_gap measured between consecutive"):
        checks.check_future_window(window_of_consecutive_gaps)


def test_a_window_of_the_wrong_shape_is_told_the_shape():
    with pytest.raises(CheckFailed, match=r"return \(B, L, window\)"):
        checks.check_future_window(lambda items, times, w, gap: items[:, :, None].repeat(1, 1,
                                                                                           w + 1))


def test_a_window_of_floats_is_told_to_return_item_ids():
    with pytest.raises(CheckFailed, match="return item ids, a long tensor"):
        checks.check_future_window(lambda *args: window_by_loop(*args).float())


# --- task 3: merging near-duplicate queries -------------------------------------------------

def merge_with(sum_budgets=True, keep_later=False, at_least=False, every_query=False):
    def merge(queries, budgets, threshold):
        kept, merged, owner = [], [], []
        for q in range(len(queries)):
            candidates = range(q) if every_query else kept
            joined = None
            for p in candidates:
                cosine = float(queries[q] @ queries[p])
                if cosine > threshold or (at_least and cosine == threshold):
                    joined = owner[p] if every_query else kept.index(p)
                    break
            if joined is None:
                owner.append(len(kept))
                kept.append(q)
                merged.append(budgets[q])
            else:
                owner.append(joined)
                merged[joined] += budgets[q] if sum_budgets else 0
                if keep_later:
                    kept[joined] = q
        return kept, merged
    return merge


def merge_into_most_similar(queries, budgets, threshold):
    kept, merged = [], []
    for q in range(len(queries)):
        cosines = [float(queries[q] @ queries[k]) for k in kept]
        if cosines and max(cosines) > threshold:
            merged[cosines.index(max(cosines))] += budgets[q]
        else:
            kept.append(q)
            merged.append(budgets[q])
    return kept, merged


@pytest.mark.parametrize("wrong, case, phrase", [
    (dict(sum_budgets=False), "two identical queries", r"budgets not summed"),
    (dict(keep_later=True), "two identical queries", r"merged into the later query"),
    (dict(at_least=True), "a cosine exactly at the threshold", r"cosine >= threshold"),
    (dict(every_query=True), "a query merged away", r"comparing with every earlier query "
                                                    r"instead of the kept ones"),
])
def test_merge_mistakes_are_recognised(wrong, case, phrase):
    with pytest.raises(CheckFailed, match=rf"(?s)case '{case}.*looks like {phrase}"):
        checks.check_merge_near_duplicates(merge_with(**wrong))


def test_merging_into_the_most_similar_query_is_recognised():
    with pytest.raises(CheckFailed, match=r"(?s)case 'similar to two kept queries.*looks like "
                                          r"merged into the most similar kept query"):
        checks.check_merge_near_duplicates(merge_into_most_similar)


def test_cosine_similarity_of_the_queries_passes_too():
    def merge_by_cosine_similarity(queries, budgets, threshold):
        cosine = F.cosine_similarity(queries[:, None], queries[None, :], dim=-1)    # (Q, Q)
        kept, merged = [], []
        for q in range(len(queries)):
            joins = [i for i, k in enumerate(kept) if cosine[q, k] > threshold]
            if joins:
                merged[joins[0]] += budgets[q]
            else:
                kept.append(q)
                merged.append(budgets[q])
        return kept, merged

    checks.check_merge_near_duplicates(merge_by_cosine_similarity)


def test_an_answer_that_is_not_two_lists_is_told_the_format():
    with pytest.raises(CheckFailed, match=r"return \(kept, budgets\)"):
        checks.check_merge_near_duplicates(lambda q, b, threshold: merge_by_loop(q, b,
                                                                                 threshold)[0])


# --- task 4: the budgeted merge ---------------------------------------------------------------

def budgeted_with(dedup=True, dedup_first=True, skip_zero=True, order=None, sort=False):
    def merge(lists, budgets):
        queries = order(budgets) if order else range(len(lists))
        out = torch.zeros(len(lists[0]), sum(budgets), dtype=torch.long)
        for row in range(len(out)):
            taken = []
            for q in queries:
                ranked = lists[q][row].tolist()
                if not dedup_first:
                    ranked = ranked[:budgets[q]]                       # the budget spent first
                fresh = [i for i in ranked if (i != 0 or not skip_zero)
                         and (not dedup or i not in taken)]
                taken += fresh[:budgets[q]]
            if sort:
                taken = sorted(set(taken) - {0})
            out[row, :len(taken)] = torch.tensor(taken, dtype=torch.long)
        return out
    return merge


@pytest.mark.parametrize("wrong, case, phrase", [
    (dict(dedup=False), "an item both want", r"duplicates kept"),
    (dict(dedup_first=False), "an item both want", r"budgets spent before removing duplicates"),
    (dict(skip_zero=False), "0 in a list is padding", r"0 counted as an item"),
    (dict(order=lambda b: reversed(range(len(b)))), "two outcomes, no overlap",
     r"the outcomes' order lost"),
    (dict(order=lambda b: sorted(range(len(b)), key=lambda q: -b[q])),
     "the first query's items come first", r"the outcomes' order lost"),
    (dict(sort=True), "two outcomes, no overlap", r"the items sorted by id"),
])
def test_budgeted_merge_mistakes_are_recognised(wrong, case, phrase):
    with pytest.raises(CheckFailed, match=rf"(?s)case '{case}.*looks like {phrase}"):
        checks.check_budgeted_merge(budgeted_with(**wrong))


def test_a_merge_without_zero_padding_is_told_the_width():
    def only_what_was_found(lists, budgets):
        out = budgeted_by_loop(lists, budgets)
        return out[:, :int((out > 0).sum(1).min())]

    with pytest.raises(CheckFailed, match=r"return \(B, sum of budgets\), 0 at the end"):
        checks.check_budgeted_merge(only_what_was_found)


def test_a_merge_as_a_list_is_told_to_return_a_tensor():
    with pytest.raises(CheckFailed, match="not as a tensor: return a long tensor"):
        checks.check_budgeted_merge(lambda *args: budgeted_by_loop(*args).tolist())


# --- unfinished and crashing answers ----------------------------------------------------------

def test_a_crash_becomes_a_named_failure():
    with pytest.raises(CheckFailed, match="raised IndexError"):
        checks.check_budgeted_merge(lambda lists, budgets: lists[10])


@pytest.mark.parametrize("check", [checks.check_outcome_query, checks.check_future_window,
                                   checks.check_merge_near_duplicates,
                                   checks.check_budgeted_merge])
def test_a_stub_is_reported_as_not_implemented(check, stub):
    with pytest.raises(NotImplementedYet, match="not implemented yet"):
        check(stub)


# --- every listed mistake can be named --------------------------------------------------------

LISTED = [(checks.check_outcome_query, checks._query_mistakes, pinrec.outcome_query),
          (checks.check_future_window, checks._window_mistakes, pinrec.future_window),
          (checks.check_merge_near_duplicates, checks._merge_mistakes,
           pinrec.merge_near_duplicates),
          (checks.check_budgeted_merge, checks._budgeted_mistakes, pinrec.budgeted_merge)]


@pytest.mark.parametrize("check, mistakes, reference", LISTED,
                         ids=lambda x: getattr(x, "__name__", ""))
def test_every_listed_mistake_is_named_when_a_learner_makes_it(check, mistakes, reference):
    assert_each_listed_mistake_is_named(check, mistakes, reference)


# --- predict, measure, interpret: positives per position --------------------------------------

@pytest.fixture(scope="module")
def engagements():
    """8 left-padded sequences of up to 16 engagements (B, T + 1), sessions of a few minutes
    separated by gaps of hours, and the window's W = 3 and max_gap of half an hour."""
    gen = torch.Generator().manual_seed(0)
    real = checks_lib.left_padded(gen, 8, 16, min_length=2)
    gaps = torch.where(torch.rand(8, 16, generator=gen) < 0.3, 20_000, 120)
    times = (1_700_000_000 + gaps.cumsum(1)) * real
    return torch.randint(1, 40, (8, 16), generator=gen) * real, times, 3, 1800.0


def positives_per_position(items, times, window, max_gap, real_only=True):
    counts = (window_by_loop(items, times, window, max_gap)[:, :-1] > 0).sum(-1)
    return counts[items[:, :-1] > 0].double().mean() if real_only else counts.double().mean()


def test_the_positives_counted_by_loop_pass(engagements):
    measured = float(positives_per_position(*engagements))
    assert 1 < measured < 3
    checks.check_positives_per_position(lambda: measured, *engagements)


@pytest.mark.parametrize("measure", [
    lambda items, times, window, max_gap: positives_per_position(items, times, window, max_gap,
                                                                 real_only=False),
    lambda items, times, window, max_gap: positives_per_position(items, times, window, None),
    lambda items, times, window, max_gap: (window_by_loop(items, times, window, max_gap) > 0)
    .sum(-1)[items > 0].double().mean(),
], ids=["padding positions counted", "max_gap ignored", "the last column kept"])
def test_a_mean_of_the_wrong_thing_fails(engagements, measure):
    with pytest.raises(CheckFailed, match="(?s)outside the range.*real positions"):
        checks.check_positives_per_position(lambda: measure(*engagements), *engagements)


def test_the_right_explanation_of_fewer_positives_passes():
    checks.check_why_fewer_positives(lambda: "c")


@pytest.mark.parametrize("letter, reason", [("a", "real positions only"),
                                            ("b", "always kept"), ("d", "keeps an item")])
def test_each_wrong_explanation_of_fewer_positives_fails_with_its_reason(letter, reason):
    with pytest.raises(CheckFailed, match=f"\\({letter}\\) does not explain.*{reason}"):
        checks.check_why_fewer_positives(lambda: letter)


def test_unfinished_predict_measure_interpret_tasks_are_reported(engagements, stub):
    with pytest.raises(NotImplementedYet, match="not done yet"):
        checks.check_positives_per_position(stub, *engagements)
    with pytest.raises(NotImplementedYet, match="not done yet"):
        checks.check_why_fewer_positives(stub)
