"""Checks for exercise 06 (TIGER): the vocabulary with level offsets and back, the next-token
mask of the trie of valid IDs, one beam-search step, temperature sampling, and cold-start
retrieval by prefix, each compared with `course_lib` (`models.tiger.Vocabulary`,
`quantize.semantic_ids`, `retrieval`); then a predict-measure-interpret task: the share of the
most likely items that beam search finds, and why it misses the others.

A wrong answer names the case and, where it equals the answer of a known mistake (codes
without level offsets, probabilities added instead of log-probabilities, the temperature
applied after the softmax, a mask that allows tokens whose child is not in the trie, ...),
says which mistake it looks like. Sampling is graded statistically: the token frequencies of
many draws against softmax(z / T).
"""
from __future__ import annotations

import torch
from torch import Tensor

from course_lib.grading.checks import (check_choice, check_measured, close, expect_error,
                                       read_mask, run_naming_mistakes, same_values)
from course_lib.models.tiger import Vocabulary
from course_lib.quantize.semantic_ids import PrefixTrie, SemanticIds, assign_semantic_ids
from course_lib.retrieval import beam_search, beam_step, top_k_smaller_index_first

__all__ = ["check_encode_ids", "check_decode_tokens", "check_next_token_mask",
           "check_beam_step", "check_sample_tokens", "check_items_with_prefix",
           "check_beam_recall", "check_why_beam_misses"]

t = torch.tensor
INF = float("inf")


# --- task 1: the vocabulary ----------------------------------------------------------------

def _offsets(vocab_sizes) -> Tensor:
    return t(Vocabulary(vocab_sizes, n_user_buckets=0).offsets)


def _vocabulary_cases() -> list[tuple[str, tuple]]:
    """(name, (ids (..., M), vocab_sizes)) with codes in range."""
    cases = [("level offsets start after PAD and BOS", (t([[0, 0, 0], [3, 3, 1]]), (4, 4, 2))),
             ("levels of different sizes", (t([[2, 4, 1], [0, 0, 0], [1, 3, 0]]), (3, 5, 2))),
             ("the same code at every level is a different token",
              (t([[1, 1, 1, 1]]), (2, 2, 2, 2))),
             ("a history (B, T, M): the offsets run along the last axis",
              (t([[[0, 1, 0], [2, 0, 1]], [[1, 1, 0], [0, 2, 1]]]), (3, 3, 2)))]
    gen = torch.Generator().manual_seed(60)
    for i in range(4):
        depth = int(torch.randint(2, 5, (1,), generator=gen))
        sizes = tuple(torch.randint(1, 7, (depth,), generator=gen).tolist())
        ids = torch.stack([torch.randint(0, v, (5,), generator=gen) for v in sizes], dim=1)
        cases.append((f"random {i}", (ids, sizes)))
    return cases


def _offset_mistakes(vocab_sizes) -> list[tuple[str, Tensor]]:
    """(what, offsets) of the plausible wrong offsets, one per position."""
    sizes = t(vocab_sizes)
    right = _offsets(vocab_sizes)
    return [("the codes without level offsets: code c is token c at every level, so level "
             "tokens collide with each other and with PAD and BOS", torch.zeros_like(right)),
            ("offsets that start at 0: tokens 0 and 1 are PAD and BOS, so level 1 starts at 2",
             right - 2),
            ("offset_d = 2 + d * V_1, as if every level had the first level's size",
             2 + torch.arange(len(sizes)) * sizes[0]),
            ("offsets one level too far: offset_d adds the sizes of the levels *before* d, not "
             "level d's own", 2 + sizes.cumsum(0))]


def check_encode_ids(fn) -> None:
    """fn(ids (..., M), vocab_sizes) -> tokens (..., M): level d's code c becomes token
    offset_d + c, offset_1 = 2 (after PAD 0 and BOS 1), offset_{d+1} = offset_d + V_d."""
    cases = []
    for name, (ids, sizes) in _vocabulary_cases():
        wrong = [(what, ids + offsets) for what, offsets in _offset_mistakes(sizes)]
        cases.append((name, (ids, sizes), (Vocabulary(sizes, 0).encode(ids), wrong)))
    return run_naming_mistakes("encode_ids", fn, cases, same_values)


def check_decode_tokens(fn) -> None:
    """fn(tokens (..., M), vocab_sizes) -> ids (..., M), the inverse of encode_ids; a token
    outside its position's range raises ValueError."""
    cases = []
    for name, (ids, sizes) in _vocabulary_cases():
        tokens = Vocabulary(sizes, 0).encode(ids)
        wrong = [("the tokens unchanged: the level offsets were not removed", tokens),
                 ("only PAD and BOS removed (tokens - 2): subtract each level's own offset",
                  tokens - 2)]
        wrong += [(what, tokens - offsets) for what, offsets in _offset_mistakes(sizes)[1:]]
        cases.append((name, (tokens, sizes), (ids, wrong)))
    run_naming_mistakes("decode_tokens", fn, cases, same_values)
    return expect_error("decode_tokens", fn, (t([[2, 2, 2]]), (4, 4, 2)), ValueError,
                        "a level-1 token (2) at positions 2 and 3, outside their ranges")


# --- task 2: the next-token mask -------------------------------------------------------------

def _mask_of(match: Tensor, tokens: Tensor, vocab_size: int) -> Tensor:
    """(B, V) bool: token tokens[n] allowed for row b when match[b, n]; tokens >= V dropped."""
    mask = torch.zeros(match.shape[0], vocab_size, dtype=torch.bool)
    rows, items = match.nonzero(as_tuple=True)
    keep = tokens[items] < vocab_size
    mask[rows[keep], tokens[items][keep]] = True
    return mask


def _mask_mistakes(ids: Tensor, prefixes: Tensor, vocab_size: int):
    d = prefixes.shape[1]
    batch = len(prefixes)
    anywhere = torch.ones(batch, len(ids), dtype=torch.bool)
    wrong = [("a mask that ignores the prefix: it allows every token used at position d under "
              "any prefix, also tokens whose child is not in the trie",
              _mask_of(anywhere, ids[:, d], vocab_size))]
    if d >= 2:
        last = prefixes[:, -1:] == ids[None, :, d - 1]                      # (B, N)
        first = prefixes[:, :1] == ids[None, :, 0]
        wrong += [("a mask that compares only the prefix's last token: the whole prefix must "
                   "match", _mask_of(last, ids[:, d], vocab_size)),
                  ("a mask that compares only the prefix's first token: the whole prefix must "
                   "match", _mask_of(first, ids[:, d], vocab_size))]
    if d >= 1:
        match = (ids[None, :, :d] == prefixes[:, None, :]).all(-1)          # (B, N)
        wrong.append(("the tokens at the prefix's own last position d - 1, not at the next "
                      "position d", _mask_of(match, ids[:, d - 1], vocab_size)))
    return wrong


def _explain_mask(got, answer) -> str | None:
    got, verdict = read_mask(got, answer)
    if got is None or verdict:
        return verdict
    if (got & ~answer).any():
        return ("a mask that allows tokens whose child is not in the trie (True where "
                "prefix + token is no prefix of a valid ID)")
    return "a mask that forbids tokens whose child is in the trie"


def check_next_token_mask(fn) -> None:
    """fn(ids (N, M) the valid IDs, prefixes (B, d), vocab_size V_d) -> (B, V_d) bool: True
    where prefix + token is a prefix of some valid ID."""
    trie_ids = t([[0, 1, 0], [0, 3, 0], [2, 1, 0], [2, 1, 1]])
    cases = [("the empty prefix: the first tokens of all IDs",
              (trie_ids, torch.zeros(2, 0, dtype=torch.long), 3)),
             ("each prefix has its own children; a prefix not in the trie has none",
              (trie_ids, t([[0], [2], [1]]), 4)),
             ("the whole prefix must match, not only its last token",
              (t([[0, 1, 0], [2, 1, 1], [1, 0, 2]]), t([[0, 1], [2, 1]]), 3)),
             ("the whole prefix must match, not only its first token",
              (t([[0, 1, 0], [0, 2, 1], [1, 0, 2]]), t([[0, 1], [0, 2]]), 3)),
             ("a token no ID uses still has its column",
              (t([[0, 0], [0, 1]]), t([[0], [1]]), 4))]
    gen = torch.Generator().manual_seed(61)
    for i in range(5):
        ids = assign_semantic_ids(torch.randint(0, 3, (15, 2), generator=gen))   # (N, 3)
        d = int(torch.randint(0, ids.shape[1], (1,), generator=gen))
        real = ids[torch.randint(0, len(ids), (4,), generator=gen), :d]
        made_up = torch.randint(0, 3, (2, d), generator=gen)
        size = int(ids[:, d].max()) + 1 + i % 2
        cases.append((f"random {i}", (ids, torch.cat([real, made_up]), size)))
    expected = []
    for name, (ids, prefixes, size) in cases:
        d = prefixes.shape[1]
        sizes = (ids.max(dim=0).values + 1).tolist()
        sizes[d] = size
        mask = PrefixTrie(ids, sizes).next_token_mask(prefixes)
        expected.append((name, (ids, prefixes, size),
                         (mask, _mask_mistakes(ids, prefixes, size))))

    def same(got, answer, args):
        return (isinstance(got, Tensor) and got.dtype == torch.bool and close(got, answer))

    def looks_like(got, wrong, args):
        return isinstance(got, Tensor) and close(got, wrong)

    return run_naming_mistakes("next_token_mask", fn, expected, same, looks_like,
                                _explain_mask)


# --- task 3: one beam-search step ------------------------------------------------------------

def _choose(scores: Tensor, width: int, size: int, beam: int):
    """The library's choice of the best min(beam, w V) of scores (B, w * V)."""
    values, index = top_k_smaller_index_first(scores, min(beam, width * size))
    return values, index // size, index % size


def _beam_mistakes(log_probs: Tensor, step: Tensor, beam: int):
    batch, width = log_probs.shape
    size = step.shape[1]
    flat = lambda x: x.reshape(batch, width * size)                          # noqa: E731
    wrong = [("adding probabilities instead of log-probabilities: the score of a longer prefix "
              "is p(prefix) * p(token | prefix), so add their logs",
              _choose(flat(log_probs.exp().reshape(-1, 1) + step.exp()), width, size, beam)),
             ("ranking by log p(token | prefix) alone, forgetting the beam's own "
              "log p(prefix)", _choose(flat(step), width, size, beam))]
    best, token = step.max(dim=1)                                            # (B * w,)
    greedy = (log_probs.reshape(-1) + best).view(batch, width)
    order = greedy.argsort(dim=1, descending=True, stable=True)              # (B, w)
    wrong.append(("w separate greedy searches (each beam extended by its own best token): "
                  "keep the best W of all w x V candidates, several may share a beam",
                  (greedy.gather(1, order), order, token.view(batch, width).gather(1, order))))
    values, index = top_k_smaller_index_first(flat(log_probs.reshape(-1, 1) + step),
                                              min(beam, width * size))
    wrong.append(("splitting the flat index by the beam count: with candidates laid out beam "
                  "by beam, parent = index // V and token = index % V",
                  (values, index // width, index % width)))
    return wrong


def _as_triple(got):
    try:
        scores, parent, token = got
        return torch.as_tensor(scores), torch.as_tensor(parent), torch.as_tensor(token)
    except (TypeError, ValueError, RuntimeError):
        return None


def _same_beams(got, answer, args) -> bool:
    """Right scores, best first, and every (parent, token) a distinct candidate with that
    score. Ties (equal scores) may be broken either way."""
    log_probs, step, _ = args
    got = _as_triple(got)
    if got is None:
        return False
    scores, parent, token = got
    if any(x.shape != answer[0].shape for x in got) or not close(scores, answer[0]):
        return False
    if parent.dtype.is_floating_point or token.dtype.is_floating_point:
        return False
    width, size = log_probs.shape[1], step.shape[1]
    if ((parent < 0) | (parent >= width) | (token < 0) | (token >= size)).any():
        return False
    parent, token = parent.long(), token.long()
    rows = torch.arange(len(log_probs))[:, None] * width + parent            # (B, w')
    rescored = log_probs.gather(1, parent) + step[rows, token]
    finite = torch.isfinite(answer[0])
    if not close(rescored[finite], answer[0][finite]):
        return False
    pairs = parent * size + token
    return all(len(row[keep].unique()) == int(keep.sum()) for row, keep in zip(pairs, finite))


def _same_choice(got, wrong, args) -> bool:
    """The mistake's choice of (parent, token), or its scores (or their logs)."""
    got = _as_triple(got)
    if got is None or got[1].shape != wrong[1].shape:
        return False
    scores = got[0]
    return ((torch.equal(got[1].long(), wrong[1]) and torch.equal(got[2].long(), wrong[2]))
            or close(scores, wrong[0]) or close(scores, wrong[0].log()))


def check_beam_step(fn) -> None:
    """fn(log_probs (B, w), step_log_probs (B * w, V), beam) -> (log_probs (B, w'),
    parent (B, w'), token (B, w')), w' = min(beam, w * V), best first, scored by
    log p(prefix) + log p(token | prefix)."""
    log = torch.log
    cases = [("the beam's own log p(prefix) counts",
              (log(t([[0.9, 0.1]])), log(t([[0.55, 0.45], [0.7, 0.3]])), 1)),
             ("probabilities multiply: 0.6 * 0.6 beats 0.3 * 0.95 although 0.3 + 0.95 > 1.2",
              (log(t([[0.6, 0.3]])), log(t([[0.6, 0.4], [0.95, 0.05]])), 1)),
             ("the best W of all w x V candidates: both from beam 0",
              (log(t([[0.7, 0.3]])), log(t([[0.6, 0.35, 0.05], [0.5, 0.3, 0.2]])), 2)),
             ("parent = index // V, token = index % V",
              (log(t([[0.2, 0.8]])), log(t([[0.1, 0.2, 0.7], [0.3, 0.6, 0.1]])), 3)),
             ("each query keeps its own beams",
              (log(t([[0.5, 0.5], [0.9, 0.1]])),
               log(t([[0.1, 0.9], [0.2, 0.8], [0.6, 0.4], [0.99, 0.01]])), 2)),
             ("a dead beam (-inf) and a forbidden token (-inf) are never chosen",
              (t([[log(t(0.5)), -INF]]), t([[log(t(0.2)), -INF, log(t(0.8))],
                                            [-0.1, -2.0, -3.0]]), 2)),
             ("the first step: one beam and fewer tokens than W, so w' = V",
              (torch.zeros(2, 1), torch.log_softmax(t([[1.0, 0.0, -1.0], [0.0, 2.0, 1.0]]), 1),
               5))]
    gen = torch.Generator().manual_seed(62)
    for i in range(6):
        batch, width, size, beam = (int(torch.randint(lo, hi, (1,), generator=gen))
                                    for lo, hi in ((1, 4), (1, 5), (2, 7), (1, 9)))
        log_probs = torch.log_softmax(torch.randn(batch, width, generator=gen), 1)
        step = torch.log_softmax(2 * torch.randn(batch * width, size, generator=gen), 1)
        cases.append((f"random {i}", (log_probs, step, beam)))
    cases = [(name, args, (beam_step(*args), _beam_mistakes(*args))) for name, args in cases]
    return run_naming_mistakes("beam_step", fn, cases, _same_beams, _same_choice)


# --- task 4: temperature sampling ------------------------------------------------------------

DRAWS = 4000           # per row: a frequency's standard error is at most 0.5 / sqrt(4000) = 0.008
TOLERANCE = 0.04       # five standard errors


def _sampled_frequencies(fn):
    """Call fn on every row of logits (R, V) repeated DRAWS times with a seeded generator and
    return the token frequencies (R, V), or a string saying what was wrong with the draws."""
    def frequencies(logits: Tensor, temperature: float):
        n_rows, size = logits.shape
        tokens = fn(logits.repeat_interleave(DRAWS, dim=0), temperature,
                    torch.Generator().manual_seed(0))
        if not isinstance(tokens, Tensor):
            return f"a {type(tokens).__name__}; return a tensor of token indices"
        if tokens.shape != (n_rows * DRAWS,):
            return (f"tokens of shape {tuple(tokens.shape)}; return one token per row, shape "
                    f"(N,) = ({n_rows * DRAWS},) (torch.multinomial gives (N, 1): squeeze it)")
        if tokens.dtype.is_floating_point or tokens.dtype == torch.bool:
            return f"tokens of dtype {tokens.dtype}; return integer token indices"
        if bool(((tokens < 0) | (tokens >= size)).any()):
            return f"tokens outside [0, {size}): sample token indices, not logits or values"
        counts = torch.stack([torch.bincount(row, minlength=size)
                              for row in tokens.long().view(n_rows, DRAWS)])
        return counts.double() / DRAWS                                      # (R, V)
    return frequencies


def _same_distribution(got, answer, args) -> bool:
    return (isinstance(got, Tensor) and got.shape == answer.shape
            and bool((got - answer).abs().max() <= TOLERANCE))


def check_sample_tokens(fn) -> None:
    """fn(logits (N, V), temperature, generator) -> (N,) tokens drawn from softmax(z / T).
    Graded by the frequencies of 4000 draws per row, within 0.04 of softmax(z / T)."""
    cases = [("T = 1 samples the model's own distribution", (t([[2.0, 1.0, 0.0, -1.0]]), 1.0)),
             ("T = 0.5 sharpens: softmax(z / 0.5)", (t([[1.0, 0.5, 0.0, -0.5]]), 0.5)),
             ("T = 2 flattens: softmax(z / 2)", (t([[2.0, 0.0, -2.0]]), 2.0)),
             ("a tiny T is greedy: the argmax every time",
              (t([[0.3, 1.2, 1.0, -0.5], [2.0, -1.0, 0.0, 1.0]]), 0.01)),
             ("each row samples from its own logits",
              (t([[3.0, 0.0, 0.0], [0.0, 3.0, 0.0], [0.0, 0.0, 3.0]]), 1.5)),
             ("a masked token (logit -inf) is never drawn", (t([[0.0, -INF, 1.0]]), 2.0))]
    gen = torch.Generator().manual_seed(63)
    for i, temperature in enumerate([0.5, 1.5, 3.0]):
        size = int(torch.randint(3, 7, (1,), generator=gen))
        cases.append((f"random {i}", (2 * torch.randn(2, size, generator=gen), temperature)))
    expected = []
    for name, (logits, temperature) in cases:
        finite = torch.isfinite(logits)
        uniform = finite / finite.sum(dim=1, keepdim=True)
        argmax = torch.nn.functional.one_hot(logits.argmax(1), logits.shape[1])
        wrong = [("the temperature applied after the softmax: softmax(z) / T is renormalised "
                  "by the sampler, so it samples as if T = 1; divide the logits by T first",
                  torch.softmax(logits, 1)),
                 ("the logits multiplied by T instead of divided by it",
                  torch.softmax(logits * temperature, 1)),
                 ("greedy decoding, the argmax every time: that is the limit T -> 0, not "
                  "sampling", argmax),
                 ("uniform sampling: the logits were ignored", uniform)]
        answer = torch.softmax(logits.double() / temperature, 1).round(decimals=4)
        expected.append((name, (logits, temperature), (answer, wrong)))
    return run_naming_mistakes("sample_tokens", _sampled_frequencies(fn), expected,
                                _same_distribution)


# --- task 5: cold-start retrieval by prefix ---------------------------------------------------

def _lists(found) -> list[list[int]] | None:
    """A list of B item-id collections as sorted lists of ints, or None if it is not one."""
    try:
        return [sorted(int(i) for i in torch.as_tensor(items).flatten().tolist())
                for items in found]
    except (TypeError, ValueError, RuntimeError):
        return None


def _prefix_mistakes(table: Tensor, prefixes: Tensor):
    d = prefixes.shape[1]
    matches = lambda m: [(row.nonzero().flatten() + 1).tolist() for row in m]  # noqa: E731
    full = (table[None, :, :d] == prefixes[:, None, :]).all(-1)             # (B, I)
    wrong = [("row indices 0..I-1 instead of item ids 1..I (row i - 1 of the table is item i)",
              [[i - 1 for i in row] for row in matches(full)])]
    if d >= 2:
        wrong += [("matching only the prefix's first token: the whole prefix must match",
                   matches(prefixes[:, :1] == table[None, :, 0])),
                  ("matching only the prefix's last token: the whole prefix must match",
                   matches(prefixes[:, -1:] == table[None, :, d - 1]))]
    return wrong


def check_items_with_prefix(fn) -> None:
    """fn(table (I, M) the semantic IDs of items 1..I, prefixes (B, d)) -> B collections of
    item ids: every item whose ID starts with the prefix (any order)."""
    table = t([[1, 2, 0], [0, 0, 0], [1, 2, 1], [1, 0, 0], [0, 2, 0], [2, 2, 0]])
    cold = t([[0, 1, 0], [1, 1, 0], [0, 1, 1], [2, 0, 0]])    # the last item has no interactions
    cases = [("item ids run 1..I", (table, t([[2, 2]]))),
             ("the whole prefix must match, not only its first token", (table, t([[1, 0]]))),
             ("the whole prefix must match, not only its last token", (table, t([[0, 2], [1, 2]]))),
             ("a prefix no ID starts with names no item", (table, t([[2, 1], [0, 0]]))),
             ("the empty prefix reaches every item", (table, torch.zeros(2, 0, dtype=torch.long))),
             ("a full ID names its own item", (table, table[[3, 0]])),
             ("a cold item is found by its first L codes", (cold, t([[2, 0], [0, 1]])))]
    gen = torch.Generator().manual_seed(64)
    for i in range(5):
        table_i = assign_semantic_ids(torch.randint(0, 3, (30, 2), generator=gen))  # (I, 3)
        d = int(torch.randint(0, table_i.shape[1] + 1, (1,), generator=gen))
        real = table_i[torch.randint(0, len(table_i), (3,), generator=gen), :d]
        made_up = torch.randint(0, 3, (2, d), generator=gen)
        cases.append((f"random {i}", (table_i, torch.cat([real, made_up]))))
    expected = []
    for name, (table_i, prefixes) in cases:
        answer = _lists(SemanticIds(table_i).items_with_prefix(prefixes))
        expected.append((name, (table_i, prefixes),
                         (answer, _prefix_mistakes(table_i, prefixes))))

    def same(got, answer, args):
        return _lists(got) == answer

    return run_naming_mistakes("items_with_prefix", fn, expected, same)


# --- task 6: predict, measure, interpret: beam search against exact scoring -------------------

BEAM = 10              # the beam width W of the measurement, and the length of the exact top list


def _top_items(next_token_logits, semantic_ids: SemanticIds, n_queries: int,
               beam: int) -> list[set[int]]:
    """The items of each query's `BEAM` best beams of a beam search of width `beam`."""
    result = beam_search(next_token_logits, semantic_ids, n_queries, beam)
    ids = result.ids[:, :BEAM]                                              # (B, BEAM, M)
    items = semantic_ids.item_of(ids.reshape(-1, ids.shape[-1])).view(n_queries, -1)
    return [set(row.tolist()) - {0} for row in items]


def _recall(found: list[set[int]], exact: list[set[int]]) -> float:
    return sum(len(f & e) for f, e in zip(found, exact)) / (BEAM * len(exact))


def check_beam_recall(measure, next_token_logits, semantic_ids: SemanticIds,
                      n_queries: int) -> None:
    """measure() -> the share of each query's BEAM = 10 most likely items (every valid ID scored
    by its log-probability) that beam search of width 10 returns, over the n_queries queries
    of the model `next_token_logits`. The measurement is deterministic: the range is the
    library's share +- half of one item in n_queries * BEAM, nothing more. `beam_search` with
    W = I prunes nothing, so its order is the exact ranking (retrieval.beam_search)."""
    def renormalised(rows, prefixes):                       # a softmax over the valid tokens only
        mask = semantic_ids.trie.next_token_mask(prefixes)
        return next_token_logits(rows, prefixes).masked_fill(~mask, -INF)

    every = semantic_ids.n_items
    beams = _top_items(next_token_logits, semantic_ids, n_queries, BEAM)
    share = _recall(beams, _top_items(next_token_logits, semantic_ids, n_queries, every))
    wrong = _recall(beams, _top_items(renormalised, semantic_ids, n_queries, every))
    hint = ("compare the items of your W = 10 beams with the 10 best of every item, scored by "
            "log p(ID) = sum_d log_softmax(z_d)[c_d], the model's own log-probability that beam "
            "search sums too (the beams against themselves give 1.0; a softmax over only the "
            f"trie's valid tokens ranks the items differently and gives {wrong:.3f})")
    half = 0.5 / (BEAM * n_queries)
    return check_measured("beam recall", measure, share - half, share + half,
                          "the share of the exact top 10 that beam search finds", hint)


def check_why_beam_misses(choose) -> None:
    """Why beam search misses some of the most likely items (the letter of the explanation)."""
    reasons = {
        "a": "no: the mask forbids only tokens that lead to no item, so every valid ID stays "
             "reachable; with W = I the same search returns the exact ranking",
        "b": "no: both score an ID by log p(ID), the sum of its tokens' log-probabilities, which "
             "is the log of their product: the same order",
        "c": "yes: beam search is greedy by prefix. An ID whose first tokens rank outside the W "
             "best prefixes is gone for good, however likely the tokens after them; the search "
             "is exact only when W holds every valid prefix at every position",
        "d": "no: beam search is deterministic and keeps this model's best prefixes; a trained "
             "model's beams are pruned the same way"}
    return check_choice("why beam search misses items", choose, "c", reasons)
