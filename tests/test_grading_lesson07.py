"""Lesson 07's checks: answers written from the definitions with loops and `math` (so the
checks agree with the equations, not only with the library), the library's references pass,
each typical mistake fails with the case named and the mistake recognised, and an unfinished
task is reported as not implemented. The time-bucket count is checked against a count made
pair by pair: the right count passes, counts of the wrong thing (padding keys included, the
query's own timestamp, log2, pairs instead of buckets) fail, and each wrong explanation fails
with its reason."""
import math

import pytest
import torch
import torch.nn.functional as F

from course_lib.grading import lesson07 as checks
from course_lib.grading import checks as checks_lib
from course_lib.grading.checks import CheckFailed, NotImplementedYet
from course_lib.models import hstu
from course_lib.models.hstu import HSTUConfig
from conftest import assert_each_listed_mistake_is_named


# --- the library's references -------------------------------------------------------------

def reference_weights(q, k, bias, mask, divisor):
    config = (HSTUConfig(n_items=2, divisor="length") if divisor == "length"
              else HSTUConfig(n_items=2, max_len=divisor - 1))
    return hstu.pointwise_weights(q, k, bias, mask, hstu.attention_divisor(mask, config))


def reference_bias(w_p, w_t, timestamps, request_times):
    rab = hstu.RelativeAttentionBias((len(w_p) + 1) // 2)
    with torch.no_grad():
        rab.position.copy_(w_p)
        rab.time.copy_(w_t)
        slots = torch.arange(timestamps.shape[1])
        times = hstu.query_times(timestamps, request_times)
        return rab(*hstu.relative_pairs(slots, slots, times, timestamps))


# --- answers written from the definitions ---------------------------------------------------

def mask_by_loop(real):
    batch, length = real.shape
    return torch.tensor([[[s <= t and bool(real[b, s]) for s in range(length)]
                          for t in range(length)] for b in range(batch)]).view(batch, length,
                                                                                 length)


def silu(x):
    return x / (1 + math.exp(-x))


def weights_by_loop(q, k, bias, mask, divisor):
    batch, heads, n_queries, _ = q.shape
    n_keys = k.shape[2]
    out = torch.zeros(batch, heads, n_queries, n_keys, dtype=torch.float64)
    for b in range(batch):
        for t in range(n_queries):
            seen = int(mask[b, t].sum())
            n = max(seen, 1) if divisor == "length" else divisor
            for h in range(heads):
                for s in range(n_keys):
                    if mask[b, t, s]:
                        score = float(q[b, h, t] @ k[b, h, s]) + float(
                            bias.expand(batch, 1, n_queries, n_keys)[b, 0, t, s])
                        out[b, h, t, s] = silu(score) / n
    return out


def weights_masked_before_the_silu(q, k, bias, mask, divisor):
    """Hidden scores set to 0 before the SiLU: SiLU(0) = 0, so this is right too."""
    n = mask.sum(-1).clamp(min=1)[:, None, :, None] if divisor == "length" else divisor
    scores = (q @ k.transpose(-1, -2) + bias).masked_fill(~mask.unsqueeze(1), 0.0)
    return F.silu(scores) / n


def bucket_by_math(dt):
    return min(128, math.floor(math.log(max(abs(dt), 1)) / 0.301))


def buckets_by_math(dt):
    return torch.tensor([bucket_by_math(x) for x in dt.flatten().tolist()]).view(dt.shape)


def buckets_in_double(dt):
    return (dt.abs().clamp(min=1).double().log() / 0.301).floor().clamp(0, 128).long()


def bias_by_loop(w_p, w_t, timestamps, request_times):
    n_slots = (len(w_p) + 1) // 2
    batch, length = timestamps.shape
    out = torch.zeros(batch, length, length, dtype=w_p.dtype)
    for b in range(batch):
        stamps = timestamps[b].tolist()
        asked = stamps[1:] + [int(request_times[b])]                     # tau'_t
        for t in range(length):
            for j in range(length):
                out[b, t, j] = w_p[j - t + n_slots - 1] + w_t[bucket_by_math(asked[t] -
                                                                              stamps[j])]
    return out


def labels_by_loop(targets, target_actions, positive_actions):
    if target_actions is None:
        return targets.clone()
    return torch.tensor([[item if action in positive_actions else 0
                          for item, action in zip(row, actions)]
                         for row, actions in zip(targets.tolist(), target_actions.tolist())]
                        ).view(targets.shape)


def falcon_by_loop(real, n_candidates):
    batch, length = real.shape
    size = length + n_candidates

    def sees(b, query, key):
        if key < length:                              # a history key: real, not in the future
            return bool(real[b, key]) and (query >= length or key <= query)
        return query == key                           # a candidate key: only itself

    return torch.tensor([[[sees(b, query, key) for key in range(size)] for query in range(size)]
                         for b in range(batch)]).view(batch, size, size)


def test_answers_from_the_definitions_pass_every_check():
    checks.check_attention_mask(mask_by_loop)
    checks.check_pointwise_weights(weights_by_loop)
    checks.check_pointwise_weights(weights_masked_before_the_silu)
    checks.check_time_buckets(buckets_by_math)
    checks.check_time_buckets(buckets_in_double)
    checks.check_relative_bias(bias_by_loop)
    checks.check_next_item_labels(labels_by_loop)
    checks.check_falcon_mask(falcon_by_loop)


def test_library_references_pass_every_check():
    checks.check_attention_mask(hstu.attention_mask)
    checks.check_pointwise_weights(reference_weights)
    checks.check_time_buckets(hstu.time_buckets)
    checks.check_relative_bias(reference_bias)
    checks.check_next_item_labels(hstu.next_item_labels)
    checks.check_falcon_mask(hstu.falcon_mask)


# --- task 1a: the causal mask -----------------------------------------------------------------

def lower(length):
    return torch.ones(length, length, dtype=torch.bool).tril()


def test_a_mask_from_the_wrong_side_is_recognised():
    def upper_triangle(real):
        return lower(real.shape[1]).T & real[:, None, :]

    with pytest.raises(CheckFailed, match=r"(?s)case 'no padding: the lower triangle'.*looks "
                                          r"like the mask from the wrong side"):
        checks.check_attention_mask(upper_triangle)


def test_a_transposed_mask_is_recognised():
    with pytest.raises(CheckFailed, match=r"looks like the mask from the wrong side \(the upper "
                                          r"triangle, or the mask transposed\)"):
        checks.check_attention_mask(lambda real: mask_by_loop(real).transpose(1, 2))


def test_a_query_that_cannot_see_itself_is_recognised():
    with pytest.raises(CheckFailed, match="looks like a query that cannot see itself"):
        checks.check_attention_mask(lambda real: lower(real.shape[1]).tril(-1) & real[:, None])


def test_visible_padding_keys_are_recognised():
    def causal_only(real):
        return lower(real.shape[1]).expand(len(real), -1, -1).clone()

    with pytest.raises(CheckFailed, match=r"(?s)case 'one padding slot: its key hidden'.*looks "
                                          r"like padding keys visible"):
        checks.check_attention_mask(causal_only)


def test_padding_hidden_by_query_instead_of_key_is_recognised():
    with pytest.raises(CheckFailed, match="looks like padding hidden by query rows"):
        checks.check_attention_mask(lambda real: lower(real.shape[1]) & real[:, :, None])


def test_sasrecs_mask_is_recognised():
    def sasrec_mask(real):
        eye = torch.eye(real.shape[1], dtype=torch.bool)
        return lower(real.shape[1]) & (real[:, None, :] | eye)

    with pytest.raises(CheckFailed, match=r"(?s)case 'one padding slot: its key hidden'.*looks "
                                          r"like SASRec's mask"):
        checks.check_attention_mask(sasrec_mask)


def test_a_zero_one_mask_is_told_to_return_bool():
    with pytest.raises(CheckFailed, match="return a bool tensor"):
        checks.check_attention_mask(lambda real: mask_by_loop(real).long())


# --- task 1b: pointwise weights -----------------------------------------------------------------

def divisor_of(mask, divisor):
    return mask.sum(-1).clamp(min=1)[:, None, :, None] if divisor == "length" else divisor


def test_softmax_left_in_is_recognised():
    def softmax_attention(q, k, bias, mask, divisor):
        scores = (q @ k.transpose(-1, -2) + bias).masked_fill(~mask.unsqueeze(1), -math.inf)
        return torch.softmax(scores, dim=-1).nan_to_num(0.0)

    with pytest.raises(CheckFailed, match=r"(?s)case 'rows need not sum to 1.*looks like "
                                          r"softmax left in"):
        checks.check_pointwise_weights(softmax_attention)


def test_scaled_softmax_attention_is_recognised_as_softmax():
    def scaled_dot_product(q, k, bias, mask, divisor):
        scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]) + bias
        return torch.softmax(scores.masked_fill(~mask.unsqueeze(1), -math.inf), -1).nan_to_num(0)

    with pytest.raises(CheckFailed, match="looks like softmax left in"):
        checks.check_pointwise_weights(scaled_dot_product)


def test_the_one_over_sqrt_d_scaling_is_recognised():
    def scaled(q, k, bias, mask, divisor):
        scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]) + bias
        return F.silu(scores) / divisor_of(mask, divisor) * mask.unsqueeze(1)

    with pytest.raises(CheckFailed, match=r"looks like the 1/sqrt\(d\) scaling left in"):
        checks.check_pointwise_weights(scaled)


def test_the_padded_width_instead_of_each_querys_count_is_recognised():
    def padded_width(q, k, bias, mask, divisor):
        n = mask.shape[-1] if divisor == "length" else divisor
        return F.silu(q @ k.transpose(-1, -2) + bias) / n * mask.unsqueeze(1)

    with pytest.raises(CheckFailed, match=r"(?s)case 'divisor 'length'.*looks like the padded "
                                          r"length \(the mask's width Sk\)"):
        checks.check_pointwise_weights(padded_width)


def test_the_users_whole_length_as_divisor_is_recognised_as_a_leak():
    def whole_length(q, k, bias, mask, divisor):
        n = (mask.sum(-1).amax(-1).clamp(min=1)[:, None, None, None] if divisor == "length"
             else divisor)
        return F.silu(q @ k.transpose(-1, -2) + bias) / n * mask.unsqueeze(1)

    with pytest.raises(CheckFailed, match="looks like the user's whole length .* a leak of the "
                                          "future"):
        checks.check_pointwise_weights(whole_length)


def test_each_querys_count_where_a_number_was_given_is_recognised():
    def always_a_mean(q, k, bias, mask, divisor):
        return F.silu(q @ k.transpose(-1, -2) + bias) / divisor_of(mask, "length") \
            * mask.unsqueeze(1)

    with pytest.raises(CheckFailed, match=r"(?s)case 'rows need not sum to 1.*looks like each "
                                          r"query's own count of events \(a mean\)"):
        checks.check_pointwise_weights(always_a_mean)


def test_minus_infinity_before_the_silu_is_told_why_it_gives_nan():
    def masked_fill_first(q, k, bias, mask, divisor):
        scores = (q @ k.transpose(-1, -2) + bias).masked_fill(~mask.unsqueeze(1), -math.inf)
        return F.silu(scores) / divisor_of(mask, divisor)

    with pytest.raises(CheckFailed, match=r"SiLU\(-inf\) = -inf \* 0 = NaN"):
        checks.check_pointwise_weights(masked_fill_first)


def test_a_count_without_a_floor_of_one_is_told_about_padding_rows():
    def unclamped(q, k, bias, mask, divisor):
        n = mask.sum(-1)[:, None, :, None] if divisor == "length" else divisor
        return F.silu(q @ k.transpose(-1, -2) + bias) * mask.unsqueeze(1) / n

    with pytest.raises(CheckFailed, match=r"(?s)case 'divisor 'length'.*NaN on a row that sees "
                                          r"no event"):
        checks.check_pointwise_weights(unclamped)


@pytest.mark.parametrize("activation, phrase", [(lambda x: x, "no SiLU"),
                                                (torch.sigmoid, "the sigmoid instead of SiLU")])
def test_another_activation_is_recognised(activation, phrase):
    def other(q, k, bias, mask, divisor):
        return activation(q @ k.transpose(-1, -2) + bias) / divisor_of(mask, divisor) \
            * mask.unsqueeze(1)

    with pytest.raises(CheckFailed, match=f"looks like {phrase}"):
        checks.check_pointwise_weights(other)


def test_a_forgotten_bias_is_recognised():
    def no_bias(q, k, bias, mask, divisor):
        return F.silu(q @ k.transpose(-1, -2)) / divisor_of(mask, divisor) * mask.unsqueeze(1)

    with pytest.raises(CheckFailed, match="looks like the bias rab left out"):
        checks.check_pointwise_weights(no_bias)


def test_an_unlisted_constant_factor_is_told_to_check_the_divisor():
    def half_the_weights(q, k, bias, mask, divisor):
        return weights_masked_before_the_silu(q, k, bias, mask, divisor) / 2

    with pytest.raises(CheckFailed, match=r"the right weights times 0.5: check the divisor"):
        checks.check_pointwise_weights(half_the_weights)


# --- task 2: the time buckets -------------------------------------------------------------------

def buckets_with(log, width=0.301, clamp=True):
    def buckets(dt):
        x = (log(dt.abs().clamp(min=1).double()) / width).floor()
        return (x.clamp(0, 128) if clamp else x).long()
    return buckets


@pytest.mark.parametrize("log", [torch.log2, torch.log10])
def test_log2_or_log10_instead_of_the_natural_log_is_recognised(log):
    with pytest.raises(CheckFailed, match=r"(?s)case 'the natural log.*looks like log2 or log10 "
                                          r"instead of the natural log"):
        checks.check_time_buckets(buckets_with(log))


def test_buckets_without_the_clamp_are_recognised():
    with pytest.raises(CheckFailed, match=r"(?s)case 'a huge gap is clamped to bucket 128'.*"
                                          r"looks like no clamp"):
        checks.check_time_buckets(buckets_with(torch.log, clamp=False))


def test_the_log_not_divided_by_0_301_is_recognised():
    with pytest.raises(CheckFailed, match=r"looks like ln\(\|dt\|\) not divided by 0.301"):
        checks.check_time_buckets(buckets_with(torch.log, width=1.0))


@pytest.mark.parametrize("floor_at_one", [True, False])
def test_a_missing_abs_is_recognised(floor_at_one):
    """Without |dt| a negative gap falls to bucket 0: max(dt, 1) = 1, or else its log is NaN,
    which becomes a huge negative integer and then 0 under the clamp."""
    def no_abs(dt):
        x = dt.clamp(min=1) if floor_at_one else dt
        return (x.double().log() / 0.301).floor().long().clamp(0, 128)

    with pytest.raises(CheckFailed, match=r"(?s)case 'a negative gap counts by its size \|dt\|'"
                                          r".*looks like abs missing"):
        checks.check_time_buckets(no_abs)


def test_buckets_as_floats_are_told_to_return_long():
    with pytest.raises(CheckFailed, match="return a long tensor"):
        checks.check_time_buckets(lambda dt: buckets_in_double(dt).double())


# --- task 3: the relative bias ------------------------------------------------------------------

def bias_with(distance_sign=1, offset=-1, asked_at="next", time=True, position=True,
              buckets=hstu.time_buckets):
    """The bias with one part changed: w_p[sign (j - t) + N + offset], the query's time."""
    def bias(w_p, w_t, timestamps, request_times):
        n_slots, length = (len(w_p) + 1) // 2, timestamps.shape[1]
        slots = torch.arange(length)
        distance = distance_sign * (slots[None, :] - slots[:, None])
        if asked_at == "next":
            asked = hstu.query_times(timestamps, request_times)
        elif asked_at == "own":
            asked = timestamps
        else:                                             # the last event's own time
            asked = hstu.query_times(timestamps)
        out = torch.zeros(len(timestamps), length, length, dtype=w_p.dtype)
        if position:
            out = out + w_p[distance + n_slots + offset]
        if time:
            out = out + w_t[buckets(asked[:, :, None] - timestamps[:, None, :])]
        return out
    return bias


@pytest.mark.parametrize("wrong, phrase", [
    (dict(distance_sign=-1), r"the distance t - j instead of j - t"),
    (dict(offset=0), r"the offset N instead of N - 1"),
    (dict(asked_at="own"), r"the query's own timestamp"),
    (dict(asked_at="last"), r"the last position's own timestamp"),
    (dict(time=False), r"the time scalars w_t left out"),
    (dict(position=False), r"the position scalars w_p left out"),
    (dict(buckets=buckets_with(torch.log2)), r"time buckets of log2 or log10: fix task 2's"),
])
def test_relative_bias_mistakes_are_recognised(wrong, phrase):
    with pytest.raises(CheckFailed, match="looks like " + phrase):
        checks.check_relative_bias(bias_with(**wrong))


def test_a_bias_without_the_offset_is_recognised():
    def no_offset(w_p, w_t, timestamps, request_times):
        slots = torch.arange(timestamps.shape[1])
        position = w_p[slots[None, :] - slots[:, None]]          # negative indices wrap around
        times = hstu.query_times(timestamps, request_times)
        return position + w_t[hstu.time_buckets(times[:, :, None] - timestamps[:, None, :])]

    with pytest.raises(CheckFailed, match=r"(?s)case 'by hand.*looks like no offset N - 1"):
        checks.check_relative_bias(no_offset)


# --- task 4: labels -------------------------------------------------------------------------------

@pytest.mark.parametrize("wrong, phrase", [
    (lambda targets, actions, positive: targets.clone(),
     "the label kept for a non-positive action"),
    (lambda targets, actions, positive: targets * (actions >= 2),
     "the world's positive actions hard-coded"),
    (lambda targets, actions, positive: (targets > 0) & torch.isin(actions,
                                                                   torch.tensor(positive)),
     "the mask instead of the labels"),
])
def test_label_mistakes_are_recognised(wrong, phrase):
    def with_actions(targets, actions, positive):
        return targets.clone() if actions is None else wrong(targets, actions, positive)

    with pytest.raises(CheckFailed, match="looks like " + phrase):
        checks.check_next_item_labels(with_actions)


def test_a_label_kept_after_an_exposure_fails_on_the_first_case():
    with pytest.raises(CheckFailed, match=r"(?s)case 'an exposure \(action 1\) is not positive: "
                                          r"no label'.*looks like the label kept"):
        checks.check_next_item_labels(lambda targets, actions, positive: targets.clone())


def test_labels_that_need_actions_fail_without_them():
    def always_isin(targets, actions, positive):
        return targets * torch.isin(actions, torch.tensor(positive))

    with pytest.raises(CheckFailed, match=r"case 'without actions every event counts' your "
                                          r"function raised TypeError"):
        checks.check_next_item_labels(always_isin)


def test_labels_as_floats_are_told_to_return_long():
    with pytest.raises(CheckFailed, match="return item ids, a long tensor"):
        checks.check_next_item_labels(lambda *args: labels_by_loop(*args).double())


# --- task 5: the M-FALCON mask ------------------------------------------------------------------

def falcon_with(block, value):
    """The right mask with one block (candidate rows x history or candidate columns) set."""
    def mask(real, n_candidates):
        out = falcon_by_loop(real, n_candidates)
        length = real.shape[1]
        if block == "candidates":
            out[:, length:, length:] = value
        else:
            out[:, length:, :length] = value
        return out
    return mask


def test_candidates_under_one_causal_mask_are_recognised():
    def causal_over_everything(real, n_candidates):
        with_candidates = torch.cat([real, torch.ones(len(real), n_candidates, dtype=torch.bool)],
                                    dim=1)
        return mask_by_loop(with_candidates)

    with pytest.raises(CheckFailed, match=r"(?s)case 'two candidates after a padded history'.*"
                                          r"looks like candidates that see each other"):
        checks.check_falcon_mask(causal_over_everything)


@pytest.mark.parametrize("block, value, phrase", [
    ("candidates", True, "candidates that see every candidate"),
    ("candidates", False, "a candidate that does not see itself"),
    ("history", False, "candidates that do not see the history"),
    ("history", True, "candidates that see the padding"),
])
def test_falcon_block_mistakes_are_recognised(block, value, phrase):
    with pytest.raises(CheckFailed, match="looks like " + phrase):
        checks.check_falcon_mask(falcon_with(block, value))


def test_a_history_that_sees_the_candidates_is_found_among_other_mistakes():
    def everything_visible(real, n_candidates):
        mask = falcon_by_loop(real, n_candidates)
        mask[:, :real.shape[1], real.shape[1]:] = True          # history rows -> candidates
        mask[:, real.shape[1]:, real.shape[1]:] = True          # and candidates -> candidates
        return mask

    with pytest.raises(CheckFailed, match="looks like a history that sees the candidates"):
        checks.check_falcon_mask(everything_visible)


def test_a_zero_one_falcon_mask_is_told_to_return_bool():
    with pytest.raises(CheckFailed, match="return a bool tensor"):
        checks.check_falcon_mask(lambda real, m: falcon_by_loop(real, m).int())


# --- unfinished and crashing answers ----------------------------------------------------------

def test_a_crash_becomes_a_named_failure():
    with pytest.raises(CheckFailed, match="raised IndexError"):
        checks.check_relative_bias(lambda w_p, w_t, timestamps, request: w_p[10 ** 6])


@pytest.mark.parametrize("check", [checks.check_attention_mask, checks.check_pointwise_weights,
                                   checks.check_time_buckets, checks.check_relative_bias,
                                   checks.check_next_item_labels, checks.check_falcon_mask])
def test_a_stub_is_reported_as_not_implemented(check, stub):
    with pytest.raises(NotImplementedYet, match="not implemented yet"):
        check(stub)


# --- every listed mistake can be named --------------------------------------------------------

LISTED = [(checks.check_attention_mask, checks._mask_mistakes, hstu.attention_mask),
          (checks.check_pointwise_weights, checks._weights_mistakes, reference_weights),
          (checks.check_time_buckets, checks._bucket_mistakes, hstu.time_buckets),
          (checks.check_relative_bias, checks._bias_mistakes, reference_bias),
          (checks.check_next_item_labels, checks._label_mistakes, hstu.next_item_labels),
          (checks.check_falcon_mask, checks._falcon_mistakes, hstu.falcon_mask)]


@pytest.mark.parametrize("check, mistakes, reference", LISTED,
                         ids=lambda x: getattr(x, "__name__", ""))
def test_every_listed_mistake_is_named_when_a_learner_makes_it(check, mistakes, reference):
    assert_each_listed_mistake_is_named(check, mistakes, reference)


# --- predict, measure, interpret: the time scalars a batch reads -----------------------------

@pytest.fixture(scope="module")
def event_batch():
    """6 left-padded streams of up to 12 events, gaps from seconds to two weeks."""
    gen = torch.Generator().manual_seed(0)
    real = checks_lib.left_padded(gen, 6, 12, min_length=2)
    gaps = torch.tensor([7, 45, 600, 5_000, 40_000, 300_000, 1_200_000])
    steps = gaps[torch.randint(0, len(gaps), (6, 13), generator=gen)]
    steps = (steps * (0.5 + torch.rand(6, 13, generator=gen))).long()      # 3 s and more
    stamps = 1_700_000_000 + steps.cumsum(1)                                # (B, T + 1)
    return {"history": torch.randint(1, 50, (6, 12), generator=gen) * real,
            "timestamps": stamps[:, :-1] * real, "target_timestamps": stamps[:, -1]}


def buckets_read_by_loop(batch, visible_only=True, next_timestamp=True, log=math.log):
    """The distinct buckets of the query-key pairs, one pair at a time."""
    times, real = batch["timestamps"].tolist(), (batch["history"] > 0).tolist()
    found = set()
    for b, row in enumerate(times):
        for t in range(len(row)):
            asked = (row[t + 1] if t + 1 < len(row) else int(batch["target_timestamps"][b])) \
                if next_timestamp else row[t]
            for j in range(len(row)):
                if visible_only and not (real[b][t] and real[b][j] and j <= t):
                    continue
                gap = torch.tensor(float(max(abs(asked - row[j]), 1)))      # float32, as HSTU
                found.add(min(128, int(math.floor(float(log(gap)) / 0.301))))
    return found


def test_the_buckets_read_by_loop_pass(event_batch):
    count = len(buckets_read_by_loop(event_batch, log=torch.log))
    assert 5 < count < 60
    checks.check_buckets_read(lambda: count, event_batch)


@pytest.mark.parametrize("measure", [
    lambda batch: len(buckets_read_by_loop(batch, visible_only=False, log=torch.log)),
    lambda batch: len(buckets_read_by_loop(batch, next_timestamp=False, log=torch.log)),
    lambda batch: len(buckets_read_by_loop(batch, log=torch.log2)),
    lambda batch: int(hstu.attention_mask(batch["history"] > 0).sum()),
], ids=["every pair, padding keys included", "the query's own timestamp",
        "log2 buckets", "the visible pairs counted, not their buckets"])
def test_a_count_of_the_wrong_thing_fails(event_batch, measure):
    with pytest.raises(CheckFailed, match="(?s)outside the range.*visible pairs only"):
        checks.check_buckets_read(lambda: measure(event_batch), event_batch)


def test_the_right_explanation_of_the_few_buckets_passes():
    checks.check_why_few_buckets(lambda: "a")


@pytest.mark.parametrize("letter, reason", [("b", "adds \\(almost\\) no bucket"),
                                            ("c", "bucket 70"), ("d", "whatever its sign")])
def test_each_wrong_explanation_of_the_few_buckets_fails_with_its_reason(letter, reason):
    with pytest.raises(CheckFailed, match=f"\\({letter}\\) does not explain.*{reason}"):
        checks.check_why_few_buckets(lambda: letter)


def test_unfinished_predict_measure_interpret_tasks_are_reported(event_batch, stub):
    with pytest.raises(NotImplementedYet, match="not done yet"):
        checks.check_buckets_read(stub, event_batch)
    with pytest.raises(NotImplementedYet, match="not done yet"):
        checks.check_why_few_buckets(stub)
