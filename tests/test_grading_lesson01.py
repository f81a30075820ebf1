"""Exercise 01's checks (SASRec: attention mask, BCE loss, softmax loss, next-item scores, and
the predict-measure-interpret task on the loss before training): answers written from the
paper's definitions with Python loops pass, so the checks' expected values agree with the
definitions and not only with `course_lib.models.sasrec`; every check rejects plausible
mistakes, names the failing case and says which mistake it looks like; a stub is reported as
unfinished."""
import functools
import math

import pytest
import torch
import torch.nn.functional as F

from course_lib.grading import lesson01 as checks
from course_lib.grading.checks import CheckFailed, NotImplementedYet
from course_lib.models import sasrec


# --- the definitions, one position at a time ----------------------------------------------------

def mask_by_definition(inputs):
    """Key s is visible to query t iff s <= t and (s holds an item or s == t)."""
    batch, length = inputs.shape
    mask = torch.zeros(batch, length, length, dtype=torch.bool)
    for b in range(batch):
        for t in range(length):
            for s in range(t + 1):
                mask[b, t, s] = bool(inputs[b, s] > 0) or s == t
    return mask


def _sigmoid(x):
    return 1 / (1 + math.exp(-x))


def _dot(u, v):
    return sum(a * b for a, b in zip(u.tolist(), v.tolist()))


def bce_by_definition(hidden, item_embedding, targets, negatives):
    """Mean over target positions of -log s(F.M_pos) - sum_n log(1 - s(F.M_neg_n))."""
    terms = []
    for b, t in (targets > 0).nonzero().tolist():
        f = hidden[b, t]
        term = -math.log(_sigmoid(_dot(f, item_embedding[targets[b, t]])))
        term -= sum(math.log(1 - _sigmoid(_dot(f, item_embedding[n]))) for n in negatives[b, t])
        terms.append(term)
    return sum(terms) / len(terms)


def softmax_by_definition(hidden, item_embedding, targets):
    """Mean over target positions of -log( exp(F.M_target) / sum_{i=1..I} exp(F.M_i) )."""
    terms = []
    for b, t in (targets > 0).nonzero().tolist():
        logits = [_dot(hidden[b, t], item_embedding[i]) for i in range(1, len(item_embedding))]
        top = max(logits)
        log_z = top + math.log(sum(math.exp(v - top) for v in logits))
        terms.append(log_z - logits[int(targets[b, t]) - 1])
    return sum(terms) / len(terms)


def scores_by_definition(hidden, item_embedding):
    """r_i = F_T . M_i at the last position T, and -inf for the padding column 0."""
    return torch.tensor([[-math.inf] + [_dot(h[-1], item_embedding[i])
                                        for i in range(1, len(item_embedding))]
                         for h in hidden], dtype=torch.float64)


BY_DEFINITION = {
    checks.check_attention_mask: mask_by_definition,
    checks.check_bce_loss: bce_by_definition,
    checks.check_softmax_loss: softmax_by_definition,
    checks.check_next_item_scores: scores_by_definition,
}


@pytest.mark.parametrize("check", BY_DEFINITION, ids=lambda c: c.__name__)
def test_an_answer_written_from_the_definition_passes(check):
    check(BY_DEFINITION[check])


@pytest.mark.parametrize("check, reference", [
    (checks.check_attention_mask, sasrec.attention_mask),
    (checks.check_bce_loss, sasrec.bce_loss),
    (checks.check_softmax_loss, sasrec.softmax_loss),
    (checks.check_next_item_scores, sasrec.next_item_scores),
], ids=lambda x: getattr(x, "__name__", ""))
def test_the_library_reference_passes(check, reference):
    check(reference)


# --- plausible mistakes, each failing on a named case with its hint ----------------------------

def causal_only(inputs):
    return sasrec.causal_mask(inputs.shape[1]).expand(inputs.shape[0], -1, -1)


def padding_only(inputs):
    """Hides padding keys but lets every query see the future."""
    return (inputs > 0).unsqueeze(1).expand(-1, inputs.shape[1], -1) | torch.eye(inputs.shape[1],
                                                                                  dtype=torch.bool)


def future_instead_of_past(inputs):
    return sasrec.attention_mask(inputs).transpose(1, 2)


def padding_query_sees_nothing(inputs):
    """Forgets the diagonal: a padding query has no key left (softmax of nothing is NaN)."""
    causal = sasrec.causal_mask(inputs.shape[1])
    return causal & (inputs > 0).unsqueeze(1)


def blocked_where_true(inputs):
    """nn.MultiheadAttention's convention: True marks a position that may NOT be attended."""
    return ~mask_by_definition(inputs)


def padding_by_query_rows(inputs):
    causal = sasrec.causal_mask(inputs.shape[1])
    return causal & ((inputs > 0).unsqueeze(2) | torch.eye(inputs.shape[1], dtype=torch.bool))


def one_mask_for_the_batch(inputs):
    return sasrec.causal_mask(inputs.shape[1])


def mask_as_floats(inputs):
    return mask_by_definition(inputs).float()


def mask_that_also_hides_itself(inputs):
    """A real position that cannot see itself: matches no listed mistake."""
    return mask_by_definition(inputs) & ~torch.eye(inputs.shape[1], dtype=torch.bool)


def _terms(hidden, emb, negatives, targets):
    pos = (hidden * emb[targets]).sum(-1)
    neg = (hidden.unsqueeze(2) * emb[negatives]).sum(-1)
    return pos, neg


def bce_mean_over_negatives(hidden, emb, targets, negatives):
    pos, neg = _terms(hidden, emb, negatives, targets)
    per_position = F.softplus(-pos) + F.softplus(neg).mean(-1)   # mean, not sum, over N
    return per_position[targets > 0].mean()


def bce_over_padding_too(hidden, emb, targets, negatives):
    pos, neg = _terms(hidden, emb, negatives, targets)
    return (F.softplus(-pos) + F.softplus(neg).sum(-1)).mean()  # padding positions included


def bce_negatives_pushed_up(hidden, emb, targets, negatives):
    pos, neg = _terms(hidden, emb, negatives, targets)
    per_position = F.softplus(-pos) + F.softplus(-neg).sum(-1)  # -log s(neg): wrong sign
    return per_position[targets > 0].mean()


def bce_positive_pushed_down(hidden, emb, targets, negatives):
    pos, neg = _terms(hidden, emb, negatives, targets)
    per_position = F.softplus(pos) + F.softplus(neg).sum(-1)    # -log(1 - s(pos)): wrong sign
    return per_position[targets > 0].mean()


def bce_summed_over_positions(hidden, emb, targets, negatives):
    return sasrec.bce_loss(hidden, emb, targets, negatives) * int((targets > 0).sum())


def bce_with_torchs_default_mean(hidden, emb, targets, negatives):
    pos, neg = _terms(hidden, emb, negatives, targets)
    valid = targets > 0
    logits = torch.cat([pos[valid][:, None], neg[valid]], dim=1)   # (M, 1 + N)
    labels = torch.zeros_like(logits)
    labels[:, 0] = 1
    return F.binary_cross_entropy_with_logits(logits, labels)     # mean over all the terms


def bce_log_likelihood(hidden, emb, targets, negatives):
    return -sasrec.bce_loss(hidden, emb, targets, negatives)


def softmax_with_padding_column(hidden, emb, targets):
    logits = hidden[targets > 0] @ emb.T                          # forgets to drop item 0
    return F.cross_entropy(logits, targets[targets > 0])


def softmax_summed_over_positions(hidden, emb, targets):
    return sasrec.softmax_loss(hidden, emb, targets) * int((targets > 0).sum())


def softmax_averaged_over_padding_too(hidden, emb, targets):
    logits = hidden @ emb.T                                       # (B, T, I + 1)
    logits[..., 0] = float("-inf")
    per_position = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=0,
                                   reduction="none")              # 0 at padding positions
    return per_position.mean()                                    # ... counted in the mean


def softmax_log_likelihood(hidden, emb, targets):
    return -sasrec.softmax_loss(hidden, emb, targets)


def softmax_targets_not_shifted(hidden, emb, targets):
    valid = targets > 0
    logits = hidden[valid] @ emb[1:].T                            # items 1..I at 0..I-1
    return F.cross_entropy(logits, targets[valid])                # ... but targets unshifted


def scores_at_the_first_position(hidden, emb):
    scores = hidden[:, 0] @ emb.T
    scores[:, 0] = float("-inf")
    return scores


def scores_with_padding_rankable(hidden, emb):
    return hidden[:, -1] @ emb.T                                  # column 0 is a real score


def scores_with_padding_zero(hidden, emb):
    scores = hidden[:, -1] @ emb.T
    scores[:, 0] = 0.0
    return scores


def scores_averaged_over_positions(hidden, emb):
    scores = hidden.mean(1) @ emb.T
    scores[:, 0] = float("-inf")
    return scores


def scores_as_probabilities(hidden, emb):
    return torch.softmax(sasrec.next_item_scores(hidden, emb), dim=-1)


def scores_at_every_position(hidden, emb):
    scores = hidden @ emb.T                                       # (B, T, I + 1)
    scores[..., 0] = float("-inf")
    return scores


MISTAKES = [
    (checks.check_attention_mask, blocked_where_true, "no padding", "the mask inverted"),
    (checks.check_attention_mask, causal_only, "two padding slots", "padding keys visible"),
    (checks.check_attention_mask, padding_only, "no padding", "no causal mask"),
    (checks.check_attention_mask, future_instead_of_past, "no padding", "the mask transposed"),
    (checks.check_attention_mask, padding_query_sees_nothing, "two padding slots",
     "a padding query that sees nothing"),
    (checks.check_attention_mask, padding_by_query_rows, "two padding slots",
     "padding hidden by query rows instead of key columns"),
    (checks.check_attention_mask, one_mask_for_the_batch, "no padding",
     r"one \(T, T\) mask for the whole batch"),
    (checks.check_attention_mask, mask_as_floats, "no padding",
     "the right mask as torch.float32 values: return a bool tensor"),
    (checks.check_attention_mask, mask_that_also_hides_itself, "no padding",
     "a mask that hides keys a position may see"),
    (checks.check_bce_loss, bce_mean_over_negatives, "random 3, 3 negative",
     "the negatives averaged instead of summed"),
    (checks.check_bce_loss, bce_over_padding_too, "random 0", "padding positions in the mean"),
    (checks.check_bce_loss, bce_negatives_pushed_up, "random 0, 1 negative",
     "the negatives' sign flipped"),
    (checks.check_bce_loss, bce_positive_pushed_down, "random 0, 1 negative",
     "the positive's sign flipped"),
    (checks.check_bce_loss, bce_summed_over_positions, "hidden all zero",
     "the sum over positions instead of the mean"),
    (checks.check_bce_loss, bce_with_torchs_default_mean, "hidden all zero",
     "the mean over all 1 \\+ N terms of a position"),
    (checks.check_bce_loss, bce_log_likelihood, "hidden all zero",
     "the log-likelihood, not the loss"),
    (checks.check_softmax_loss, softmax_with_padding_column, "hidden all zero",
     "the padding column in the softmax"),
    (checks.check_softmax_loss, softmax_summed_over_positions, "the padding row",
     "the sum over positions instead of the mean"),
    (checks.check_softmax_loss, softmax_averaged_over_padding_too, "hidden all zero",
     "padding positions in the mean"),
    (checks.check_softmax_loss, softmax_log_likelihood, "hidden all zero",
     "the log-likelihood, not the loss"),
    (checks.check_softmax_loss, softmax_targets_not_shifted, "the padding row",
     "the targets not shifted after dropping column 0"),
    (checks.check_next_item_scores, scores_at_the_first_position, "hand",
     "the first position's scores"),
    (checks.check_next_item_scores, scores_with_padding_rankable, "hand",
     "the padding column left with a score"),
    (checks.check_next_item_scores, scores_with_padding_zero, "hand", "column 0 set to 0"),
    (checks.check_next_item_scores, scores_averaged_over_positions, "hand",
     "the positions averaged"),
    (checks.check_next_item_scores, scores_as_probabilities, "hand",
     r"probabilities \(a softmax\) instead of scores"),
    (checks.check_next_item_scores, scores_at_every_position, "hand",
     r"scores at every position"),
]


@pytest.mark.parametrize("check, wrong, case, hint", MISTAKES,
                         ids=[w.__name__ for _, w, _, _ in MISTAKES])
def test_a_plausible_mistake_fails_on_a_named_case_and_is_recognised(check, wrong, case, hint):
    with pytest.raises(CheckFailed, match=f"(?s)wrong answer on case '{case}.*looks like "
                                          f"{hint}"):
        check(wrong)


@pytest.mark.parametrize("check", BY_DEFINITION, ids=lambda c: c.__name__)
def test_every_check_names_at_least_two_mistakes(check):
    assert sum(1 for c, *_ in MISTAKES if c is check) >= 2


# --- predict, measure, interpret: the loss before training ---------------------------------------

@functools.lru_cache(maxsize=1)
def first_batch():
    """The first training batch of the exercise's world and its catalogue size."""
    from course_lib.data.sequences import leave_one_out, next_item_batches, user_sequences
    from course_lib.data.world import CONSUMED, WorldConfig, make_world

    world = make_world(WorldConfig(**checks.WORLD))
    split = leave_one_out(user_sequences(world.interactions, actions=CONSUMED), world.n_items)
    return next(next_item_batches(split.train, world.n_items, checks.MAX_LEN, checks.BATCH, 1,
                                  seed=0)), world.n_items


def softmax_by_logsumexp(hidden, emb, targets):
    """-log softmax written out: log sum_{i=1..I} exp(r_i) - r_target, averaged."""
    logits = hidden[targets > 0] @ emb[1:].T                      # (M, I): items 1..I
    own = logits.gather(1, targets[targets > 0][:, None] - 1)[:, 0]
    return (torch.logsumexp(logits, dim=1) - own).mean()


def untrained_softmax_loss(loss=softmax_by_logsumexp, seed=0, train_mode=False):
    """The exercise's measurement: `loss` on an untrained SASRec's first batch."""
    from course_lib import seed_everything

    batch, n_items = first_batch()
    seed_everything(seed)
    model = sasrec.SASRec(sasrec.SASRecConfig(n_items, max_len=checks.MAX_LEN,
                                              d_model=checks.D_MODEL)).train(train_mode)
    targets = batch["targets"] * (batch["inputs"] > 0)
    with torch.no_grad():
        hidden = model(batch["inputs"])
        if loss is sasrec.bce_loss:
            return float(loss(hidden, model.item_embedding.weight, targets, batch["negatives"]))
        return float(loss(hidden, model.item_embedding.weight, targets))


@pytest.mark.parametrize("seed, train_mode", [(0, False), (7, False), (0, True)])
def test_a_measurement_by_the_definition_passes_whatever_the_seed(seed, train_mode):
    checks.check_initial_softmax_loss(
        lambda: untrained_softmax_loss(softmax_by_logsumexp, seed, train_mode))


def test_the_check_leaves_the_learners_random_state_alone():
    measured = untrained_softmax_loss()
    checks._initial_softmax_losses.cache_clear()
    torch.manual_seed(5)
    before = torch.get_rng_state()
    checks.check_initial_softmax_loss(lambda: measured)
    assert torch.equal(torch.get_rng_state(), before)


def test_the_untrained_loss_lies_above_log_i():
    """The claim the task asks the learner to explain (option a)."""
    assert untrained_softmax_loss() > math.log(checks.WORLD["n_items"])


@pytest.mark.parametrize("measured, why", [
    (lambda: math.log(checks.WORLD["n_items"]), "log I = 5.298 is the loss of a uniform guess"),
    (lambda: untrained_softmax_loss(sasrec.bce_loss), "the BCE loss with one negative"),
    (lambda: untrained_softmax_loss(softmax_averaged_over_padding_too), "padding positions"),
    (lambda: untrained_softmax_loss(softmax_summed_over_positions), "a sum over the batch"),
])
def test_a_measurement_of_the_wrong_thing_fails_with_the_hint(measured, why):
    with pytest.raises(CheckFailed, match=f"(?s)outside the range.*{why}"):
        checks.check_initial_softmax_loss(measured)


def test_the_right_explanation_passes():
    checks.check_why_above_log_i(lambda: "a")


@pytest.mark.parametrize("letter", sorted(set(checks.WHY_ABOVE_LOG_I) - {"a"}))
def test_a_wrong_explanation_fails_with_its_reason(letter):
    with pytest.raises(CheckFailed) as info:
        checks.check_why_above_log_i(lambda: letter)
    assert checks.WHY_ABOVE_LOG_I[letter] in str(info.value)


# --- unfinished answers ---------------------------------------------------------------------------

@pytest.mark.parametrize("check", BY_DEFINITION, ids=lambda c: c.__name__)
def test_a_stub_is_reported_as_not_implemented(check, stub):
    with pytest.raises(NotImplementedYet):
        check(stub)


@pytest.mark.parametrize("check", [checks.check_initial_softmax_loss,
                                   checks.check_why_above_log_i], ids=lambda c: c.__name__)
def test_an_unfinished_measurement_is_reported_as_not_done(check, stub):
    with pytest.raises(NotImplementedYet, match="not done yet"):
        check(stub)
