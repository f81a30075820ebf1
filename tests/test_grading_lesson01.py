"""Exercise 01's checks (SASRec: attention mask, BCE loss, softmax loss, next-item scores):
answers written from the paper's definitions with Python loops pass, so the checks' expected
values agree with the definitions and not only with `course_lib.models.sasrec`; at least two
plausible mistakes per check fail; a stub is reported as unfinished."""
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
    assert check(BY_DEFINITION[check])


@pytest.mark.parametrize("check, reference", [
    (checks.check_attention_mask, sasrec.attention_mask),
    (checks.check_bce_loss, sasrec.bce_loss),
    (checks.check_softmax_loss, sasrec.softmax_loss),
    (checks.check_next_item_scores, sasrec.next_item_scores),
], ids=lambda x: getattr(x, "__name__", ""))
def test_the_library_reference_passes(check, reference):
    assert check(reference)


# --- plausible mistakes -------------------------------------------------------------------------

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


def bce_mean_over_negatives(hidden, emb, targets, negatives):
    pos = (hidden * emb[targets]).sum(-1)
    neg = (hidden.unsqueeze(2) * emb[negatives]).sum(-1)
    per_position = F.softplus(-pos) + F.softplus(neg).mean(-1)   # mean, not sum, over N
    return per_position[targets > 0].mean()


def bce_over_padding_too(hidden, emb, targets, negatives):
    pos = (hidden * emb[targets]).sum(-1)
    neg = (hidden.unsqueeze(2) * emb[negatives]).sum(-1)
    return (F.softplus(-pos) + F.softplus(neg).sum(-1)).mean()  # padding positions included


def bce_negatives_pushed_up(hidden, emb, targets, negatives):
    pos = (hidden * emb[targets]).sum(-1)
    neg = (hidden.unsqueeze(2) * emb[negatives]).sum(-1)
    per_position = F.softplus(-pos) + F.softplus(-neg).sum(-1)  # -log s(neg): wrong sign
    return per_position[targets > 0].mean()


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


def scores_at_the_first_position(hidden, emb):
    scores = hidden[:, 0] @ emb.T
    scores[:, 0] = float("-inf")
    return scores


def scores_with_padding_rankable(hidden, emb):
    return hidden[:, -1] @ emb.T                                  # column 0 is a real score


def scores_averaged_over_positions(hidden, emb):
    scores = hidden.mean(1) @ emb.T
    scores[:, 0] = float("-inf")
    return scores


@pytest.mark.parametrize("check, wrong, case", [
    (checks.check_attention_mask, causal_only, "two padding slots"),
    (checks.check_attention_mask, padding_only, "no padding"),
    (checks.check_attention_mask, future_instead_of_past, "no padding"),
    (checks.check_attention_mask, padding_query_sees_nothing, "two padding slots"),
    (checks.check_bce_loss, bce_mean_over_negatives, "random 3, 3 negative"),
    (checks.check_bce_loss, bce_over_padding_too, "random"),
    (checks.check_bce_loss, bce_negatives_pushed_up, "random 0, 1 negative"),
    (checks.check_softmax_loss, softmax_with_padding_column, "hidden all zero"),
    (checks.check_softmax_loss, softmax_summed_over_positions, "random 0"),
    (checks.check_softmax_loss, softmax_averaged_over_padding_too, "hidden all zero"),
    (checks.check_next_item_scores, scores_at_the_first_position, "hand"),
    (checks.check_next_item_scores, scores_with_padding_rankable, "hand"),
    (checks.check_next_item_scores, scores_averaged_over_positions, "hand"),
], ids=lambda x: getattr(x, "__name__", None) or str(x).replace(" ", "_"))
def test_a_plausible_mistake_fails_on_a_named_case(check, wrong, case):
    with pytest.raises(CheckFailed, match=f"wrong answer on case '{case}"):
        check(wrong)


def test_a_mask_of_the_wrong_shape_fails():
    with pytest.raises(CheckFailed, match="wrong answer on case 'no padding'"):
        checks.check_attention_mask(lambda inputs: sasrec.causal_mask(inputs.shape[1]))


@pytest.mark.parametrize("check", BY_DEFINITION, ids=lambda c: c.__name__)
def test_a_stub_is_reported_as_not_implemented(check, stub):
    with pytest.raises(NotImplementedYet):
        check(stub)
