"""Lesson 06's checks: answers written from the definitions with loops, sets and another
sampler pass (so the checks agree with the definitions, not only with the library), the
library's references pass, typical mistakes fail with the case named and the mistake
recognised, and an unfinished task is reported as not implemented. The beam-recall measurement
is checked against exact scores written with loops: the right share passes, measurements of
the wrong thing (the beams against themselves, a renormalised softmax, unconstrained beams)
fail, and each wrong explanation fails with its reason."""
import math

import pytest
import torch

from course_lib.grading import lesson06 as checks
from course_lib.grading.checks import CheckFailed, NotImplementedYet
from course_lib.models.tiger import Vocabulary
from course_lib.quantize.semantic_ids import PrefixTrie, SemanticIds
from course_lib.retrieval import beam_search, beam_step, sample_tokens


# --- the library's references -------------------------------------------------------------

def reference_encode(ids, vocab_sizes):
    return Vocabulary(vocab_sizes, n_user_buckets=0).encode(ids)


def reference_decode(tokens, vocab_sizes):
    return Vocabulary(vocab_sizes, n_user_buckets=0).decode(tokens)


def reference_mask(ids, prefixes, vocab_size):
    sizes = (ids.max(dim=0).values + 1).tolist()
    sizes[prefixes.shape[1]] = vocab_size
    return PrefixTrie(ids, sizes).next_token_mask(prefixes)


def reference_items(table, prefixes):
    return SemanticIds(table).items_with_prefix(prefixes)


# --- answers written from the definitions ---------------------------------------------------

def offsets_by_counting(vocab_sizes):
    offsets, next_free = [], 2                        # tokens 0 and 1 are PAD and BOS
    for size in vocab_sizes:
        offsets.append(next_free)
        next_free += size
    return offsets


def encode_by_loop(ids, vocab_sizes):
    offsets = offsets_by_counting(vocab_sizes)
    rows = ids.reshape(-1, len(offsets)).tolist()
    return torch.tensor([[offsets[d] + c for d, c in enumerate(row)] for row in rows]
                        ).reshape(ids.shape)


def decode_by_loop(tokens, vocab_sizes):
    offsets = offsets_by_counting(vocab_sizes)
    rows = []
    for row in tokens.reshape(-1, len(offsets)).tolist():
        codes = [token - offsets[d] for d, token in enumerate(row)]
        if any(not 0 <= c < vocab_sizes[d] for d, c in enumerate(codes)):
            raise ValueError(f"token row {row} has a token outside its position's range")
        rows.append(codes)
    return torch.tensor(rows).reshape(tokens.shape)


def mask_by_sets(ids, prefixes, vocab_size):
    d = prefixes.shape[1]
    children = {}
    for row in ids.tolist():
        children.setdefault(tuple(row[:d]), set()).add(row[d])
    return torch.tensor([[token in children.get(tuple(prefix), ()) for token in range(vocab_size)]
                         for prefix in prefixes.tolist()], dtype=torch.bool).reshape(-1, vocab_size)


def beam_step_by_sorting(log_probs, step_log_probs, beam):
    """Every candidate of each query in a Python list, sorted by score."""
    batch, width = log_probs.shape
    size = step_log_probs.shape[1]
    scores, parents, tokens = [], [], []
    for b in range(batch):
        rows = sorted(((float(log_probs[b, j] + step_log_probs[b * width + j, v]), j, v)
                       for j in range(width) for v in range(size)),
                      key=lambda r: (-r[0], r[1], r[2]))[:min(beam, width * size)]
        scores.append([r[0] for r in rows])
        parents.append([r[1] for r in rows])
        tokens.append([r[2] for r in rows])
    return torch.tensor(scores), torch.tensor(parents), torch.tensor(tokens)


def beam_step_by_topk(log_probs, step_log_probs, beam):
    """torch.topk on the flattened candidates: ties may come out in another order."""
    batch, width = log_probs.shape
    size = step_log_probs.shape[1]
    scores = (log_probs.reshape(-1, 1) + step_log_probs).reshape(batch, width * size)
    top, index = scores.topk(min(beam, width * size), dim=1)
    return top, index // size, index % size


def sample_by_gumbel_max(logits, temperature, generator):
    """argmax(z / T + Gumbel noise) is a draw from softmax(z / T) (the Gumbel-max trick)."""
    uniform = torch.rand(logits.shape, generator=generator).clamp(1e-12, 1 - 1e-12)
    return (logits / temperature - torch.log(-torch.log(uniform))).argmax(dim=1)


def sample_by_inverse_cdf(logits, temperature, generator):
    cdf = torch.softmax(logits / temperature, dim=1).cumsum(dim=1)         # (N, V)
    u = torch.rand(len(logits), 1, generator=generator) * cdf[:, -1:]
    return torch.searchsorted(cdf, u).squeeze(1).clamp_max(logits.shape[1] - 1)


def items_by_loop(table, prefixes):
    d = prefixes.shape[1]
    return [[i + 1 for i, row in enumerate(table.tolist()) if row[:d] == prefix]
            for prefix in prefixes.tolist()]


def test_answers_from_the_definitions_pass_every_check():
    checks.check_encode_ids(encode_by_loop)
    checks.check_decode_tokens(decode_by_loop)
    checks.check_next_token_mask(mask_by_sets)
    checks.check_beam_step(beam_step_by_sorting)
    checks.check_beam_step(beam_step_by_topk)
    checks.check_sample_tokens(sample_by_gumbel_max)
    checks.check_sample_tokens(sample_by_inverse_cdf)
    checks.check_items_with_prefix(items_by_loop)


def test_library_references_pass_every_check():
    checks.check_encode_ids(reference_encode)
    checks.check_decode_tokens(reference_decode)
    checks.check_next_token_mask(reference_mask)
    checks.check_beam_step(beam_step)
    checks.check_sample_tokens(sample_tokens)
    checks.check_items_with_prefix(reference_items)


# --- the vocabulary ---------------------------------------------------------------------------

def test_codes_without_level_offsets_fail_and_are_recognised():
    with pytest.raises(CheckFailed, match=r"(?s)case 'level offsets start after PAD and BOS'"
                                          r".*looks like the codes without level offsets"):
        checks.check_encode_ids(lambda ids, sizes: ids.clone())


def test_offsets_that_forget_pad_and_bos_are_recognised():
    def from_zero(ids, sizes):
        return ids + torch.tensor(offsets_by_counting(sizes)) - 2

    with pytest.raises(CheckFailed, match="looks like offsets that start at 0"):
        checks.check_encode_ids(from_zero)


def test_offsets_that_include_the_levels_own_size_are_recognised():
    def one_level_too_far(ids, sizes):
        return ids + 2 + torch.tensor(sizes).cumsum(0)

    with pytest.raises(CheckFailed, match="looks like offsets one level too far"):
        checks.check_encode_ids(one_level_too_far)


def test_offsets_that_assume_equal_level_sizes_fail_on_unequal_levels():
    def equal_sizes(ids, sizes):
        return ids + 2 + torch.arange(len(sizes)) * sizes[0]

    with pytest.raises(CheckFailed, match=r"(?s)case 'levels of different sizes'.*first "
                                          r"level's size"):
        checks.check_encode_ids(equal_sizes)


def test_decoding_without_removing_the_offsets_is_recognised():
    with pytest.raises(CheckFailed, match="looks like the tokens unchanged"):
        checks.check_decode_tokens(lambda tokens, sizes: tokens.clone())


def test_decoding_that_removes_only_the_special_tokens_is_recognised():
    with pytest.raises(CheckFailed, match=r"looks like only PAD and BOS removed"):
        checks.check_decode_tokens(lambda tokens, sizes: tokens - 2)


def test_decoding_that_accepts_a_token_of_another_level_fails():
    def no_range_check(tokens, sizes):
        return tokens - torch.tensor(offsets_by_counting(sizes))

    with pytest.raises(CheckFailed, match="expected ValueError, but your function returned "
                                          "normally"):
        checks.check_decode_tokens(no_range_check)


# --- the next-token mask ----------------------------------------------------------------------

def test_a_mask_that_ignores_the_prefix_is_recognised():
    def any_prefix(ids, prefixes, size):
        used = torch.zeros(size, dtype=torch.bool)
        used[ids[:, prefixes.shape[1]]] = True
        return used.expand(len(prefixes), size).clone()

    with pytest.raises(CheckFailed, match=r"(?s)case 'each prefix has its own children.*"
                                          r"looks like a mask that ignores the prefix"):
        checks.check_next_token_mask(any_prefix)


def test_a_mask_that_compares_only_the_last_token_is_recognised():
    def last_token_only(ids, prefixes, size):
        d = prefixes.shape[1]
        if d == 0:
            return mask_by_sets(ids, prefixes, size)
        return mask_by_sets(ids[:, d - 1:], prefixes[:, -1:], size)

    with pytest.raises(CheckFailed, match="looks like a mask that compares only the prefix's "
                                          "last token"):
        checks.check_next_token_mask(last_token_only)


def test_a_mask_of_the_prefixs_own_last_position_is_recognised():
    def off_by_one(ids, prefixes, size):
        d = prefixes.shape[1]
        shifted = torch.cat([ids[:, :d], ids[:, max(d - 1, 0):d].clamp_max(size - 1)], dim=1)
        return mask_by_sets(shifted, prefixes, size) if d else mask_by_sets(ids, prefixes, size)

    with pytest.raises(CheckFailed, match="looks like the tokens at the prefix's own last "
                                          "position"):
        checks.check_next_token_mask(off_by_one)


def test_a_mask_with_extra_tokens_says_it_allows_tokens_outside_the_trie():
    def one_extra(ids, prefixes, size):
        mask = mask_by_sets(ids, prefixes, size)
        mask[:, -1] = True
        return mask

    with pytest.raises(CheckFailed, match="allows tokens whose child is not in the trie"):
        checks.check_next_token_mask(one_extra)


def test_a_zero_one_mask_is_told_to_return_bool():
    with pytest.raises(CheckFailed, match=r"return a bool tensor"):
        checks.check_next_token_mask(lambda *args: mask_by_sets(*args).long())


# --- one beam step ----------------------------------------------------------------------------

def test_adding_probabilities_instead_of_log_probabilities_is_recognised():
    def add_probabilities(log_probs, step, beam):
        batch, width = log_probs.shape
        size = step.shape[1]
        scores = (log_probs.exp().reshape(-1, 1) + step.exp()).reshape(batch, width * size)
        top, index = scores.topk(min(beam, width * size), dim=1)
        return top.log(), index // size, index % size

    with pytest.raises(CheckFailed, match="looks like adding probabilities instead of "
                                          "log-probabilities"):
        checks.check_beam_step(add_probabilities)


def test_ranking_by_the_token_alone_is_recognised():
    def token_only(log_probs, step, beam):
        batch, width = log_probs.shape
        size = step.shape[1]
        _, index = step.reshape(batch, width * size).topk(min(beam, width * size), dim=1)
        parent, token = index // size, index % size
        rows = torch.arange(batch)[:, None] * width + parent
        return log_probs.gather(1, parent) + step[rows, token], parent, token

    with pytest.raises(CheckFailed, match=r"(?s)case 'the beam's own log p\(prefix\) counts'"
                                          r".*forgetting the beam's own log p\(prefix\)"):
        checks.check_beam_step(token_only)


def test_separate_greedy_searches_per_beam_are_recognised():
    def greedy_per_beam(log_probs, step, beam):
        batch, width = log_probs.shape
        best, token = step.max(dim=1)
        scores = (log_probs.reshape(-1) + best).view(batch, width)
        order = scores.argsort(dim=1, descending=True)
        return scores.gather(1, order), order, token.view(batch, width).gather(1, order)

    with pytest.raises(CheckFailed, match="looks like w separate greedy searches"):
        checks.check_beam_step(greedy_per_beam)


def test_splitting_the_flat_index_by_the_beam_count_is_recognised():
    def by_width(log_probs, step, beam):
        batch, width = log_probs.shape
        size = step.shape[1]
        scores = (log_probs.reshape(-1, 1) + step).reshape(batch, width * size)
        top, index = scores.topk(min(beam, width * size), dim=1)
        return top, index // width, index % width

    with pytest.raises(CheckFailed, match="looks like splitting the flat index by the beam "
                                          "count"):
        checks.check_beam_step(by_width)


def test_ranking_all_queries_together_fails_on_two_queries():
    def one_pool(log_probs, step, beam):
        batch, width = log_probs.shape
        size = step.shape[1]
        k = min(beam, width * size)
        scores = (log_probs.reshape(-1, 1) + step).reshape(1, -1)         # every query at once
        top, index = scores.topk(k * batch, dim=1)
        index = index.view(batch, k) % (width * size)
        return top.view(batch, k), index // size, index % size

    with pytest.raises(CheckFailed, match="case 'each query keeps its own beams'"):
        checks.check_beam_step(one_pool)


# --- temperature sampling ---------------------------------------------------------------------

def test_temperature_applied_after_the_softmax_is_recognised():
    def after_softmax(logits, temperature, generator):
        probs = torch.softmax(logits, dim=1) / temperature
        return torch.multinomial(probs, 1, generator=generator).squeeze(1)

    with pytest.raises(CheckFailed, match=r"(?s)case 'T = 0.5 sharpens.*looks like the "
                                          r"temperature applied after the softmax"):
        checks.check_sample_tokens(after_softmax)


def test_multiplying_the_logits_by_the_temperature_is_recognised():
    def multiplied(logits, temperature, generator):
        probs = torch.softmax(logits * temperature, dim=1)
        return torch.multinomial(probs, 1, generator=generator).squeeze(1)

    with pytest.raises(CheckFailed, match="looks like the logits multiplied by T"):
        checks.check_sample_tokens(multiplied)


def test_greedy_decoding_instead_of_sampling_is_recognised():
    with pytest.raises(CheckFailed, match=r"(?s)case 'T = 1 samples.*looks like greedy "
                                          r"decoding"):
        checks.check_sample_tokens(lambda logits, temperature, generator: logits.argmax(1))


def test_samples_of_shape_n_by_one_are_told_to_squeeze():
    def unsqueezed(logits, temperature, generator):
        return torch.multinomial(torch.softmax(logits / temperature, 1), 1, generator=generator)

    with pytest.raises(CheckFailed, match=r"tokens of shape \(4000, 1\).*squeeze it"):
        checks.check_sample_tokens(unsqueezed)


# --- cold-start retrieval by prefix -----------------------------------------------------------

def test_row_indices_instead_of_item_ids_are_recognised():
    def zero_based(table, prefixes):
        return [[i - 1 for i in row] for row in items_by_loop(table, prefixes)]

    with pytest.raises(CheckFailed, match=r"(?s)case 'item ids run 1..I'.*looks like row "
                                          r"indices 0..I-1"):
        checks.check_items_with_prefix(zero_based)


def test_matching_only_the_first_token_is_recognised():
    def first_token(table, prefixes):
        d = prefixes.shape[1]
        return items_by_loop(table[:, :min(d, 1)], prefixes[:, :1])

    with pytest.raises(CheckFailed, match=r"(?s)not only its first token'.*looks like matching "
                                          r"only the prefix's first token"):
        checks.check_items_with_prefix(first_token)


def test_matching_only_the_last_token_is_recognised():
    def last_token(table, prefixes):
        d = prefixes.shape[1]
        if d == 0:
            return items_by_loop(table, prefixes)
        return items_by_loop(table[:, d - 1:d], prefixes[:, -1:])

    with pytest.raises(CheckFailed, match="looks like matching only the prefix's last token"):
        checks.check_items_with_prefix(last_token)


# --- unfinished and crashing answers ----------------------------------------------------------

def test_a_crash_becomes_a_named_failure():
    with pytest.raises(CheckFailed, match="raised IndexError"):
        checks.check_beam_step(lambda log_probs, step, beam: (step[99], step[99], step[99]))


@pytest.mark.parametrize("check", [checks.check_encode_ids, checks.check_decode_tokens,
                                   checks.check_next_token_mask, checks.check_beam_step,
                                   checks.check_sample_tokens, checks.check_items_with_prefix])
def test_a_stub_is_reported_as_not_implemented(check, stub):
    with pytest.raises(NotImplementedYet, match="not implemented yet"):
        check(stub)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_right_sampler_passes_whatever_its_random_numbers(seed):
    """The sampling check's tolerance (0.04, five standard errors of a frequency over 4000
    draws) leaves room for any correct sampler's randomness: one that ignores the generator
    and draws from the global seed passes too."""
    assert checks.TOLERANCE >= 5 * 0.5 / math.sqrt(checks.DRAWS)
    torch.manual_seed(seed)
    checks.check_sample_tokens(lambda logits, temperature, generator:
                               sample_by_inverse_cdf(logits, temperature, None))


# --- predict, measure, interpret: beam search against exact scoring ---------------------------

@pytest.fixture(scope="module")
def toy_search():
    """150 items with semantic IDs of 3 tokens, and a model of random logits for 4 queries."""
    gen = torch.Generator().manual_seed(0)
    semantic_ids = SemanticIds.from_codes(torch.randint(0, 8, (150, 2), generator=gen),
                                          codebook_sizes=[8, 8])
    sizes, n_queries = semantic_ids.vocab_sizes, 4
    user = [2 * torch.randn(n_queries, v, generator=gen) for v in sizes]
    transition = [None] + [2 * torch.randn(sizes[d - 1], sizes[d], generator=gen)
                           for d in range(1, len(sizes))]

    def next_token_logits(rows, prefixes):
        d = prefixes.shape[1]
        return user[d][rows] + (transition[d][prefixes[:, -1]] if d else 0)

    return next_token_logits, semantic_ids, n_queries


def log_p_by_loop(next_token_logits, table, query):
    """log p(ID) of every item for one query, one item and one position at a time."""
    scores = []
    for row in table:
        total = 0.0
        for d in range(len(row)):
            logits = next_token_logits(torch.tensor([query]), row[None, :d])[0]
            total += float(torch.log_softmax(logits, 0)[row[d]])
        scores.append(total)
    return torch.tensor(scores)


def beam_recall(next_token_logits, semantic_ids, n_queries, beams, exact_logits=None):
    """The share of the exact top 10 items that `beams` (B, 10) item ids hold."""
    exact_logits = exact_logits or next_token_logits
    hits = 0
    for query in range(n_queries):
        exact = log_p_by_loop(exact_logits, semantic_ids.table, query).topk(10).indices + 1
        hits += len(set(exact.tolist()) & set(beams[query].tolist()))
    return hits / (10 * n_queries)


def beam_items(next_token_logits, semantic_ids, n_queries, constrained=True):
    result = beam_search(next_token_logits, semantic_ids, n_queries, 10, constrained=constrained)
    return semantic_ids.item_of(result.ids.reshape(-1, 3)).view(n_queries, 10)


def test_a_right_beam_recall_passes_and_is_below_one(toy_search):
    beams = beam_items(*toy_search)
    measured = beam_recall(*toy_search, beams)
    assert measured < 1                            # this model's beams do miss likely items
    checks.check_beam_recall(lambda: measured, *toy_search)


def test_beams_compared_with_themselves_fail(toy_search):
    with pytest.raises(CheckFailed, match=r"(?s)= 1 is outside.*beams against themselves"):
        checks.check_beam_recall(lambda: 1.0, *toy_search)


def test_exact_scores_renormalised_over_the_valid_tokens_fail(toy_search):
    next_token_logits, semantic_ids, n_queries = toy_search

    def renormalised(rows, prefixes):
        mask = semantic_ids.trie.next_token_mask(prefixes)
        return next_token_logits(rows, prefixes).masked_fill(~mask, -math.inf)

    measured = beam_recall(*toy_search, beam_items(*toy_search), exact_logits=renormalised)
    with pytest.raises(CheckFailed, match=f"(?s)outside the range.*gives {measured:.3f}"):
        checks.check_beam_recall(lambda: measured, *toy_search)


def test_unconstrained_beams_fail(toy_search):
    measured = beam_recall(*toy_search, beam_items(*toy_search, constrained=False))
    with pytest.raises(CheckFailed, match="outside the range"):
        checks.check_beam_recall(lambda: measured, *toy_search)


def test_the_right_explanation_of_the_misses_passes():
    checks.check_why_beam_misses(lambda: "c")


@pytest.mark.parametrize("letter, reason", [("a", "every valid ID stays reachable"),
                                            ("b", "log of their product"),
                                            ("d", "deterministic")])
def test_each_wrong_explanation_of_the_misses_fails_with_its_reason(letter, reason):
    with pytest.raises(CheckFailed, match=f"\\({letter}\\) does not explain.*{reason}"):
        checks.check_why_beam_misses(lambda: letter)


def test_unfinished_predict_measure_interpret_tasks_are_reported(toy_search, stub):
    with pytest.raises(NotImplementedYet, match="not done yet"):
        checks.check_beam_recall(stub, *toy_search)
    with pytest.raises(NotImplementedYet, match="not done yet"):
        checks.check_why_beam_misses(stub)
