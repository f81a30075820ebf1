"""Checks for exercise 07 (HSTU): the causal mask of a left-padded event stream, pointwise
SiLU attention with its divisor n (eq. 2 of Zhai et al. 2024), the time buckets, the relative
attention bias (position + time), the labels of a stream with non-positive actions, and the
M-FALCON candidate mask, each compared with `course_lib.models.hstu`; then a
predict-measure-interpret task: how many of the 129 time scalars a batch reads, and why so few.

A wrong answer names the case and, where it equals the answer of a known mistake (softmax
left in, the 1/sqrt(d) scaling left in, the mask from the wrong side, the padded length as the
divisor where each query's count was asked, log2 or log10 instead of the natural log, no clamp,
no |dt|, a label kept after an exposure, candidates that see each other, ...), says which
mistake it looks like; masks that match no listed mistake are read block by block.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from course_lib.grading.checks import (check_choice, check_measured, close, left_padded,
                                       read_mask, run_naming_mistakes, same_integers, same_mask,
                                       same_values, tensor_like)
from course_lib.models import hstu
from course_lib.models.hstu import HSTUConfig

__all__ = ["check_attention_mask", "check_pointwise_weights", "check_time_buckets",
           "check_relative_bias", "check_next_item_labels", "check_falcon_mask",
           "check_buckets_read", "check_why_few_buckets"]

t = torch.tensor


# --- task 1a: the causal mask ---------------------------------------------------------------

def _mask_mistakes(real: Tensor) -> list[tuple[str, Tensor]]:
    length = real.shape[1]
    lower = torch.ones(length, length, dtype=torch.bool).tril()            # s <= t
    keys, queries = real[:, None, :], real[:, :, None]                     # (B, 1, T), (B, T, 1)
    eye = torch.eye(length, dtype=torch.bool)
    wrong_side = ("the mask from the wrong side (the upper triangle, or the mask transposed): "
                  "query t sees the keys s >= t, the future; row t is query t, column s key s, "
                  "and query t sees s <= t (torch.tril)")
    return [(wrong_side, lower.T & keys),
            (wrong_side, (lower & keys).transpose(1, 2)),
            ("a query that cannot see itself (s < t): event t sees s <= t, its own event too",
             lower.tril(-1) & keys),
            ("padding keys visible: hide the keys s that are padding (real[b, s] False)",
             lower.expand(len(real), -1, -1).clone()),
            ("padding hidden by query rows instead of key columns: a real query still sees "
             "the padding keys; use real[:, None, :]", lower & queries),
            ("SASRec's mask, where a padding query sees itself (softmax needs one key per "
             "row); with no softmax a padding query's row is simply 0", lower & (keys | eye)),
            ("no causal mask: every query sees the events after it",
             keys.expand(-1, length, -1).clone())]


def _explain_square_mask(got, answer) -> str | None:
    """What is wrong with a (B, T, T) mask that matches no listed mistake."""
    got, verdict = read_mask(got, answer)
    if got is None or verdict:
        return verdict
    future = torch.ones(answer.shape[-2:], dtype=torch.bool).triu(1)
    if (got & future).any():
        return "a mask that lets a query see the events after it (s > t): the future"
    if (got & ~answer).any():
        return "a mask that shows padding keys"
    return "a mask that hides events a query may see (real keys s <= t)"


def check_attention_mask(fn) -> None:
    """fn(real (B, T) bool, left-padded) -> (B, T, T) bool: query t sees key s iff s <= t
    and s is a real event; a padding query sees nothing."""
    cases = [("no padding: the lower triangle", (t([[True, True, True]]),)),
             ("one padding slot: its key hidden", (t([[False, True, True, True]]),)),
             ("a padding query sees nothing, not even itself",
              (t([[False, False, True, True]]),)),
             ("one event", (t([[False, False, False, True]]),)),
             ("each row its own padding", (t([[False, True, True], [True, True, True],
                                              [False, False, True]]),))]
    gen = torch.Generator().manual_seed(70)
    for i in range(5):
        cases.append((f"random {i}", (left_padded(gen, 4, 6),)))
    cases = [(name, args, (hstu.attention_mask(*args), _mask_mistakes(*args)))
             for name, args in cases]
    return run_naming_mistakes("attention_mask", fn, cases, same_mask, same_values,
                                _explain_square_mask)


# --- task 1b: pointwise weights with the divisor ------------------------------------------------

def _divisor_of(mask: Tensor, divisor) -> float | Tensor:
    """The library's n: a number is the padded length max_len + 1; "length" counts each
    query's visible events, (B, 1, Sq, 1)."""
    if divisor == "length":
        return hstu.attention_divisor(mask, HSTUConfig(n_items=2, divisor="length"))
    return hstu.attention_divisor(mask, HSTUConfig(n_items=2, max_len=int(divisor) - 1))


def _weights_mistakes(q, k, bias, mask, divisor) -> list[tuple[str, Tensor]]:
    n = _divisor_of(mask, divisor)
    visible = mask.unsqueeze(1)                                             # (B, 1, Sq, Sk)
    product = q @ k.transpose(-1, -2)                                       # (B, H, Sq, Sk)
    scores, scaled = product + bias, product / math.sqrt(q.shape[-1])

    def softmax(x):
        return torch.softmax(x.masked_fill(~visible, -math.inf), -1).nan_to_num(0.0) * visible

    softmax_left_in = ("softmax left in: its rows sum to 1, so ten matching events weigh as "
                       "much as one; HSTU's A = SiLU(Q K^T + rab) / n has no softmax")
    scaling_left_in = ("the 1/sqrt(d) scaling left in: HSTU uses Q K^T + rab unscaled, "
                       "SiLU(Q K^T + rab) / n")
    wrong = [(softmax_left_in, softmax(scores)),
             (softmax_left_in, softmax(scores) / n),
             (softmax_left_in, softmax(scaled + bias)),
             (scaling_left_in, F.silu(scaled + bias) / n * visible),
             (scaling_left_in, F.silu(scores / math.sqrt(q.shape[-1])) / n * visible),
             ("no SiLU: A = SiLU(Q K^T + rab) / n (x) Mask", scores / n * visible),
             ("the sigmoid instead of SiLU: SiLU(x) = x sigmoid(x)",
              torch.sigmoid(scores) / n * visible),
             ("the bias rab left out: SiLU(Q K^T + rab)", F.silu(product) / n * visible),
             ("the bias added after the SiLU: it goes inside, SiLU(Q K^T + rab)",
              (F.silu(product) + bias) / n * visible),
             ("the mask not applied: multiply by Mask, 0 where a key is hidden",
              F.silu(scores) / n),
             ("no divisor: divide by n", F.silu(scores) * visible),
             ("the SiLU multiplied by n instead of divided by it", F.silu(scores) * n * visible)]
    count = mask.sum(-1).clamp(min=1)[:, None, :, None]                     # (B, 1, Sq, 1)
    if divisor == "length":
        whole = mask.sum(-1).amax(-1).clamp(min=1)[:, None, None, None]     # (B, 1, 1, 1)
        wrong += [("the padded length (the mask's width Sk) instead of the number of events "
                   "each query sees: with divisor 'length', n is query t's own count, "
                   "mask.sum(-1)", F.silu(scores) / mask.shape[-1] * visible),
                  ("the user's whole length for every query: position t would learn how many "
                   "events follow it, a leak of the future; n is the count query t sees, "
                   "mask.sum(-1)", F.silu(scores) / whole * visible)]
        if mask.shape[-1] == mask.shape[-2]:
            by_column = mask.sum(-2).clamp(min=1)[:, None, :, None]         # (B, 1, Sk, 1)
            wrong.append(("the count along the wrong axis: query t's events are its row, "
                          "mask.sum(-1), not key t's column", F.silu(scores) / by_column
                          * visible))
    else:
        wrong.append(("each query's own count of events (a mean) where the padded length n "
                      "was given: divide by the number n, the same for every query",
                      F.silu(scores) / count * visible))
    return wrong


def _explain_weights(got, answer) -> str | None:
    """Read what is wrong from where the weights are 0 and how they scale."""
    got = tensor_like(got, answer, torch.float64)
    if got is None:
        return None
    visible = answer != 0                                                   # SiLU(x) != 0, x != 0
    empty = ~visible.any(-1, keepdim=True)                                  # rows that see nothing
    if got.isnan().any():
        if (got.isnan() & ~empty).any():
            return ("NaN: a score set to -inf before the SiLU gives SiLU(-inf) = -inf * 0 = "
                    "NaN; multiply SiLU(.) by the mask instead")
        return ("NaN on a row that sees no event (a padding query): 0 / 0; count at least 1, "
                "mask.sum(-1).clamp(min=1)")
    if (got[~visible.expand_as(got)] != 0).any():
        return "weights on hidden keys: multiply by the mask, A = SiLU(.) / n (x) Mask"
    rows = visible.any(-1)
    if rows.any() and torch.allclose(got.sum(-1)[rows], torch.ones(()).double(), atol=1e-4):
        return "softmax left in: every row sums to 1; HSTU's rows need not"
    ratio = got[visible] / answer[visible]
    if len(ratio) and torch.allclose(ratio, ratio[0].expand_as(ratio), rtol=1e-4):
        return (f"the right weights times {float(ratio[0]):.4g}: check the divisor n (and "
                "that there is no 1/sqrt(d))")
    per_row = (got / answer.where(visible, torch.ones(())))                 # (B, H, Sq, Sk)
    first = per_row.gather(-1, visible.to(torch.uint8).argmax(-1, keepdim=True))
    if torch.allclose(per_row[visible], first.expand_as(per_row)[visible], rtol=1e-4):
        return ("each query's row off by its own factor: check the divisor n (a given number "
                "is the same for every query; 'length' is each query's own count)")
    return None


def _attention_inputs(gen, real: Tensor, heads: int, d: int, spread: float = 1.0):
    """q, k (B, H, T, d), bias (B, 1, T, T), the mask of `real` (B, T), in float64."""
    batch, length = real.shape
    q = spread * torch.randn(batch, heads, length, d, generator=gen, dtype=torch.float64)
    k = torch.randn(batch, heads, length, d, generator=gen, dtype=torch.float64)
    bias = 0.5 * torch.randn(batch, 1, length, length, generator=gen, dtype=torch.float64)
    return q, k, bias, hstu.attention_mask(real)


def check_pointwise_weights(fn) -> None:
    """fn(q (B, H, Sq, d), k (B, H, Sk, d), bias (B, 1, Sq, Sk), mask (B, Sq, Sk) bool,
    divisor) -> A = SiLU(Q K^T + rab) / n (x) Mask, (B, H, Sq, Sk). divisor is a number n
    (the padded length max_len + 1, the same for every query) or "length" (n = the number of
    events each query sees, at least 1)."""
    gen = torch.Generator().manual_seed(71)
    # Three keys that match the query and one that does not (lesson 07's preference intensity).
    match, other = t([1.0, 1.0]).double(), t([-1.0, 0.5]).double()
    keys = torch.stack([match] * 3 + [other])[None, None]                  # (1, 1, 4, 2)
    intensity = (match[None, None, None], keys, torch.zeros(1, 1, 1, 4).double(),
                 torch.ones(1, 1, 4, dtype=torch.bool))
    cases = [("rows need not sum to 1: three matching keys, n = 10", intensity + (10,)),
             ("no 1/sqrt(d): d = 4",
              _attention_inputs(gen, t([[True] * 3]), 1, 4) + (4,))]
    real = t([[False, True, True, True], [True, True, True, True]])
    cases += [("a given n is the same for every query (padding too)",
               _attention_inputs(gen, real, 1, 3) + (9,)),
              ("divisor 'length': each query divides by the events it sees",
               _attention_inputs(gen, real, 1, 3) + ("length",)),
              ("a padding query sees nothing: its row is 0",
               _attention_inputs(gen, t([[False, False, True, True]]), 1, 2) + ("length",)),
              ("two heads, one mask",
               _attention_inputs(gen, real, 2, 3) + ("length",))]
    # Candidates (queries) against a history (keys): Sq != Sk, M-FALCON's rows.
    history = t([[False, True, True, True, True], [False, False, False, True, True]])
    q = torch.randn(2, 1, 3, 4, generator=gen, dtype=torch.float64)
    k = torch.randn(2, 1, 5, 4, generator=gen, dtype=torch.float64)
    bias = 0.5 * torch.randn(2, 1, 3, 5, generator=gen, dtype=torch.float64)
    candidate_mask = history[:, None, :].expand(-1, 3, -1)
    cases += [("candidates against a history: Sq = 3 queries, Sk = 5 keys",
               (q, k, bias, candidate_mask, "length")),
              ("candidates against a history, n = 6", (q, k, bias, candidate_mask, 6))]
    for i in range(6):
        real = left_padded(gen, 3, 6)
        heads, d = int(torch.randint(1, 3, (1,), generator=gen)), 2 + i % 3
        divisor = "length" if i % 2 else 7 + i
        cases.append((f"random {i}", _attention_inputs(gen, real, heads, d, 1.5) + (divisor,)))
    expected = []
    for name, (q, k, bias, mask, divisor) in cases:
        answer = hstu.pointwise_weights(q, k, bias, mask, _divisor_of(mask, divisor))
        expected.append((name, (q, k, bias, mask, divisor),
                         (answer, _weights_mistakes(q, k, bias, mask, divisor))))
    return run_naming_mistakes("pointwise_weights", fn, expected, same_values,
                                explain=_explain_weights)


# --- task 2: the time buckets -------------------------------------------------------------------

def _bucket_of(dt: int) -> int:
    """floor(ln(max(|dt|, 1)) / 0.301) clamped to [0, 128], in double precision."""
    return min(hstu.N_TIME_BUCKETS, math.floor(math.log(max(abs(dt), 1)) /
                                               hstu.TIME_BUCKET_WIDTH))


def _agrees_in_double(dt: Tensor) -> bool:
    """The library's float32 buckets equal the double-precision ones (no gap sits on a
    bucket's edge), so a learner's float64 answer passes too."""
    double = t([_bucket_of(x) for x in dt.flatten().tolist()]).view(dt.shape)
    return torch.equal(hstu.time_buckets(dt), double)


def _bucket_mistakes(dt: Tensor) -> list[tuple[str, Tensor]]:
    size = dt.abs().clamp(min=1).double()
    width, top = hstu.TIME_BUCKET_WIDTH, hstu.N_TIME_BUCKETS

    def bucket(x):
        return x.floor().clamp(0, top).long()

    base_2 = ("log2 or log10 instead of the natural log: the reference divides ln(|dt|) by "
              "0.301, so a bucket spans a factor e^0.301 = 1.35 in dt, not 2 (0.301 is log10 2, "
              "but the log is natural)")
    return [(base_2, bucket(size.log2() / width)),
            (base_2, bucket(size.log10() / width)),
            (base_2, bucket(size.log2())),
            ("ln(|dt|) not divided by 0.301", bucket(size.log())),
            ("ln(|dt|) multiplied by 0.301 instead of divided by it", bucket(size.log() * width)),
            ("no clamp: buckets above 128 would index past w_t's 129 scalars; clamp to "
             "[0, 128]", (size.log() / width).floor().long()),
            ("abs missing: a negative gap counts by its size |dt| (here it fell to bucket 0)",
             bucket(dt.clamp(min=1).double().log() / width)),
            ("round instead of floor: bucket = floor(ln(|dt|) / 0.301)",
             (size.log() / width).round().clamp(0, top).long()),
            ("ceil instead of floor: bucket = floor(ln(|dt|) / 0.301)",
             (size.log() / width).ceil().clamp(0, top).long())]


def _explain_buckets(got, answer) -> str | None:
    if not isinstance(got, Tensor) or got.shape != answer.shape:
        return None
    if got.dtype.is_floating_point and close(got, answer):
        return "the right buckets as floats: return a long tensor (.long()), they index w_t"
    if (got < 0).any():
        return ("negative buckets: abs missing (ln of a negative gap is NaN) or no clamp at 0; "
                "bucket = floor(ln(max(|dt|, 1)) / 0.301) clamped to [0, 128]")
    return None


def check_time_buckets(fn) -> None:
    """fn(dt long tensor of gaps in seconds, any shape) -> long tensor of the same shape:
    floor(ln(max(|dt|, 1)) / 0.301) clamped to [0, 128]."""
    gaps = t([[0, 10, 20, 35], [0, 0, 60, 86_460]])                       # left-padded stamps
    cases = [("dt = 0 and dt = +-1 fall in bucket 0", (t([0, 1, -1]),)),
             ("the natural log: ln 2 / 0.301 = 2.30, ln 10 / 0.301 = 7.65", (t([2, 3, 10]),)),
             ("a negative gap counts by its size |dt|", (t([-2, -60, -86_400]),)),
             ("a minute, an hour, a day, a year", (t([60, 3_600, 86_400, 31_536_000]),)),
             ("a huge gap is clamped to bucket 128", (t([10 ** 17, 2 ** 62, -10 ** 18]),)),
             ("any shape: the gaps (B, T, T) of two users' timestamps",
              (gaps[:, :, None] - gaps[:, None, :],))]
    gen = torch.Generator().manual_seed(72)
    while len(cases) < 11:               # gaps of 1 s to 10^18 s, log-uniform, either sign, some 0
        size = (10 ** (18 * torch.rand(4, 5, generator=gen, dtype=torch.float64))).long()
        sign = torch.randint(-1, 2, (4, 5), generator=gen)                # -1, 0 or +1
        if _agrees_in_double(size * sign):
            cases.append((f"random {len(cases) - 6}", (size * sign,)))
    cases = [(name, args, (hstu.time_buckets(*args), _bucket_mistakes(*args)))
             for name, args in cases]
    return run_naming_mistakes("time_buckets", fn, cases, same_integers, same_values,
                                _explain_buckets)


# --- task 3: the relative attention bias ------------------------------------------------------

def _library_bias(w_p: Tensor, w_t: Tensor, timestamps: Tensor, request_times: Tensor):
    """rab^{p,t} (B, T, T) of the library, its scalars set to w_p and w_t."""
    n_slots = (len(w_p) + 1) // 2
    rab = hstu.RelativeAttentionBias(n_slots)
    with torch.no_grad():
        rab.position.copy_(w_p)
        rab.time.copy_(w_t)
        slots = torch.arange(timestamps.shape[1])
        times = hstu.query_times(timestamps, request_times)
        return rab(*hstu.relative_pairs(slots, slots, times, timestamps))  # (B, T, T)


def _bias_mistakes(w_p, w_t, timestamps, request_times) -> list[tuple[str, Tensor]]:
    n_slots, length = (len(w_p) + 1) // 2, timestamps.shape[1]
    slots = torch.arange(length)
    distance = slots[None, :] - slots[:, None]                              # (T, T) j - t
    asked = hstu.query_times(timestamps, request_times)                     # (B, T) tau'_t

    def position(index):
        return w_p[index % len(w_p)]                                        # Python's wrap-around

    def time(query, by=hstu.time_buckets):
        return w_t[by(query[:, :, None] - timestamps[:, None, :])]          # (B, T, T)

    def log_bucket(log):
        def buckets(dt):
            x = log(dt.abs().clamp(min=1).double()) / hstu.TIME_BUCKET_WIDTH
            return x.floor().clamp(0, hstu.N_TIME_BUCKETS).long()
        return buckets

    right = position(distance + n_slots - 1), time(asked)
    wrong_buckets = ("time buckets of log2 or log10: fix task 2's time_buckets first (the "
                     "natural log divided by 0.301)")
    return [("the distance t - j instead of j - t: w_p is read at j - t + N - 1 (key minus "
             "query)", position(-distance + n_slots - 1) + right[1]),
            ("no offset N - 1: a negative distance j - t reads w_p from its end; j - t = "
             "-(N - 1) is w_p[0], distance 0 is w_p[N - 1]", position(distance) + right[1]),
            ("the offset N instead of N - 1: distance 0 is w_p[N - 1], the middle of the "
             "2N - 1 scalars", position(distance + n_slots) + right[1]),
            ("the query's own timestamp tau_t: position t is asked at the NEXT one, "
             "tau'_t = tau_{t+1} (the request time at the last position)",
             right[0] + time(timestamps)),
            ("the last position's own timestamp: it is asked at the request time, "
             "request_times[b]", right[0] + time(hstu.query_times(timestamps))),
            ("the time scalars w_t left out: rab = w_p[.] + w_t[bucket(tau'_t - tau_j)]",
             right[0].expand_as(right[1])),
            ("the position scalars w_p left out: rab = w_p[j - t + N - 1] + w_t[.]", right[1]),
            ("the bias transposed: row t is query t, column j is key j",
             (right[0] + right[1]).transpose(1, 2)),
            (wrong_buckets, right[0] + time(asked, log_bucket(torch.log2))),
            (wrong_buckets, right[0] + time(asked, log_bucket(torch.log10)))]


def _event_times(gen, batch: int, length: int, real: Tensor | None = None):
    """Increasing timestamps (B, T), gaps of 0 s to days, 0 under padding, and a request
    time (B,) after each row's last event."""
    gaps = t([0, 5, 60, 3_600, 86_400])[torch.randint(0, 5, (batch, length + 1), generator=gen)]
    gaps = (gaps * (0.5 + torch.rand(batch, length + 1, generator=gen))).long()
    stamps = 1_700_000_000 + gaps.cumsum(1)                                 # (B, T + 1)
    timestamps = stamps[:, :-1] if real is None else stamps[:, :-1] * real
    return timestamps, stamps[:, -1]


def check_relative_bias(fn) -> None:
    """fn(w_p (2N - 1,), w_t (129,), timestamps (B, T), request_times (B,)) -> rab (B, T, T),
    rab[b, t, j] = w_p[j - t + N - 1] + w_t[bucket(tau'_t - tau_j)] with tau'_t the next
    timestamp (timestamps[b, t + 1]; request_times[b] at the last position), T <= N."""
    by_hand_p, by_hand_t = torch.arange(9.0), 1000.0 * torch.arange(129.0)   # N = 5
    cases = [("by hand: w_p[r] = r, w_t[b] = 1000 b, so rab = 1000 bucket + position index",
              (by_hand_p, by_hand_t, t([[100, 160, 3_760]]), t([90_000]))),
             ("each query's time is the NEXT timestamp (dt = 0 for the key right after it, "
              "negative for later keys)", (by_hand_p, by_hand_t, t([[0, 2, 62, 3_662]]),
                                           t([3_700]))),
             ("the last position is asked at the request time",
              (by_hand_p, by_hand_t, t([[500, 560], [0, 7]]), t([86_960, 10 ** 6]))),
             ("left padding (timestamp 0): the padding's bias is computed like any other",
              (by_hand_p, by_hand_t, t([[0, 0, 1_700_000_000, 1_700_000_060]]),
               t([1_700_003_600])))]
    gen = torch.Generator().manual_seed(73)
    for i in range(6):
        n_slots = int(torch.randint(3, 9, (1,), generator=gen))
        length = int(torch.randint(1, n_slots + 1, (1,), generator=gen))
        batch = int(torch.randint(1, 4, (1,), generator=gen))
        real = left_padded(gen, batch, length) if i % 2 else None
        w_p = torch.randn(2 * n_slots - 1, generator=gen, dtype=torch.float64)
        w_t = torch.randn(hstu.N_TIME_BUCKETS + 1, generator=gen, dtype=torch.float64)
        cases.append((f"random {i}", (w_p, w_t, *_event_times(gen, batch, length, real))))
    cases = [(name, args, (_library_bias(*args), _bias_mistakes(*args))) for name, args in cases]
    return run_naming_mistakes("relative_bias", fn, cases, same_values)


# --- task 4: labels only after a positive action -------------------------------------------

def _label_mistakes(targets, target_actions, positive_actions) -> list[tuple[str, Tensor]]:
    if target_actions is None:
        return [("no labels at all: without actions every event counts as positive, so the "
                 "labels are the targets", torch.zeros_like(targets))]
    positive = torch.isin(target_actions, t(positive_actions))
    return [("the world's positive actions hard-coded (action >= 2): read them from "
             "positive_actions", targets * (target_actions >= 2)),
            ("the label kept for a non-positive action: a position whose next action is not "
             "in positive_actions (an exposure) has no label, 0; test membership with "
             "torch.isin", targets.clone()),
            ("only positive_actions[0] counted: an action is positive if it is ANY of them",
             targets * (target_actions == positive_actions[0])),
            ("the mask inverted: labels kept where the next action is NOT positive",
             targets * ~positive * (targets > 0)),
            ("the mask instead of the labels: return the next item where the action is "
             "positive, 0 elsewhere", positive & (targets > 0)),
            ("-100 for no label: no label is 0, the padding id", targets.where(positive, -100))]


def _explain_labels(got, answer) -> str | None:
    if isinstance(got, Tensor) and got.dtype.is_floating_point and close(got, answer):
        return "the right labels as floats: return item ids, a long tensor"
    return None


def check_next_item_labels(fn) -> None:
    """fn(targets (B, T), target_actions (B, T) or None, positive_actions tuple) -> labels
    (B, T): the target where its action is one of positive_actions, else 0 (no label);
    without actions (None) every target is a label."""
    targets = t([[0, 7, 8, 9]])
    cases = [("an exposure (action 1) is not positive: no label",
              (targets, t([[0, 1, 2, 4]]), (2, 3, 4))),
             ("padding (target 0) stays 0", (t([[0, 0, 5, 6]]), t([[0, 0, 3, 2]]), (2, 3, 4))),
             ("the positive actions come from the argument: conversions only",
              (t([[3, 1, 2, 5]]), t([[2, 3, 4, 4]]), (4,))),
             ("the positive actions come from the argument: likes and exposures",
              (t([[3, 1, 2, 5]]), t([[1, 3, 4, 2]]), (1, 3))),
             ("every action positive: every target a label",
              (t([[0, 4, 2, 8]]), t([[0, 1, 4, 2]]), (1, 2, 3, 4))),
             ("without actions every event counts", (t([[0, 4, 2, 8]]), None, (2, 3, 4))),
             ("each position by its own next action",
              (t([[0, 3, 4, 5], [6, 7, 8, 9]]), t([[0, 2, 1, 3], [1, 1, 4, 2]]), (2, 3, 4)))]
    gen = torch.Generator().manual_seed(74)
    for i in range(5):
        real = left_padded(gen, 4, 7)
        items = torch.randint(1, 30, (4, 7), generator=gen) * real
        actions = torch.randint(1, 5, (4, 7), generator=gen) * real
        positive = tuple(a for a in range(1, 5) if torch.rand(1, generator=gen) < 0.6) or (3,)
        cases.append((f"random {i}", (items, actions, positive)))
    cases = [(name, args, (hstu.next_item_labels(*args), _label_mistakes(*args)))
             for name, args in cases]
    return run_naming_mistakes("next_item_labels", fn, cases, same_integers, same_values,
                                _explain_labels)


# --- task 5: the M-FALCON mask ----------------------------------------------------------------

def _falcon_mistakes(real: Tensor, n_candidates: int) -> list[tuple[str, Tensor]]:
    right = hstu.falcon_mask(real, n_candidates)
    length = real.shape[1]
    size = length + n_candidates

    def with_block(rows, columns, block):
        mask = right.clone()
        mask[:, rows, columns] = block
        return mask

    history, candidates = slice(0, length), slice(length, size)
    everything = torch.cat([real, torch.ones_like(real[:, :1]).expand(-1, n_candidates)], 1)
    return [("candidates that see each other (the causal mask over history + candidates): "
             "candidate i sees the history and ITSELF only, never another candidate",
             hstu.attention_mask(everything)),
            ("candidates that see every candidate: each sees itself only",
             with_block(candidates, candidates, True)),
            ("a candidate that does not see itself: it attends to the history AND itself",
             with_block(candidates, candidates, False)),
            ("candidates that do not see the history: each sees every real history event",
             with_block(candidates, history, False)),
            ("candidates that see the padding: hide the history's padding keys",
             with_block(candidates, history, True)),
            ("a history that sees the candidates (the future): the history block is the "
             "causal mask, the candidate columns False for history rows",
             with_block(history, candidates, real[:, :, None].expand(-1, -1, n_candidates))),
            ("the mask transposed: row = query, column = key", right.transpose(1, 2))]


def _explain_falcon(got, answer) -> str | None:
    """Which block of a (B, T + m, T + m) mask is wrong, when no listed mistake matched. A
    candidate's column is the one seen by exactly one query (itself): that gives m."""
    got, verdict = read_mask(got, answer)
    if got is None or verdict:
        return verdict
    length = answer.shape[1] - int((answer[0].sum(0) == 1).sum())         # T
    history, candidates = slice(0, length), slice(length, None)
    cand = got[:, candidates, candidates]                                  # (B, m, m)
    eye = torch.eye(cand.shape[1], dtype=torch.bool)
    if got[:, history, candidates].any():
        return "a history that sees the candidates: history rows never see a candidate"
    if (cand & ~eye).any():
        return "candidates that see each other: candidate i sees itself only"
    if not cand.diagonal(dim1=1, dim2=2).all():
        return "a candidate that does not see itself"
    seen, right = got[:, candidates, history], answer[:, candidates, history]
    if (seen & ~right).any():
        return "candidates that see padding keys of the history"
    if (~seen & right).any():
        return "candidates that miss real history events: each sees all of them"
    return ("a history block that is not the causal mask of task 1 (query t sees the real "
            "events s <= t)")


def check_falcon_mask(fn) -> None:
    """fn(real (B, T) bool, n_candidates m) -> (B, T + m, T + m) bool: the history block is
    the causal mask (padding keys hidden), history rows never see a candidate, and each
    candidate sees every real history event and itself, no other candidate."""
    cases = [("two candidates after a padded history", (t([[False, True, True]]), 2)),
             ("three candidates never see each other", (t([[True, True]]), 3)),
             ("one candidate sees the history and itself", (t([[False, False, True, True]]), 1)),
             ("candidates do not see the padding",
              (t([[False, False, False, True], [False, True, True, True]]), 2)),
             ("the history never sees a candidate", (t([[True, True, True]]), 2))]
    gen = torch.Generator().manual_seed(75)
    for i in range(5):
        cases.append((f"random {i}", (left_padded(gen, 3, 5),
                                      int(torch.randint(1, 5, (1,), generator=gen)))))
    cases = [(name, args, (hstu.falcon_mask(*args), _falcon_mistakes(*args)))
             for name, args in cases]
    return run_naming_mistakes("falcon_mask", fn, cases, same_mask, same_values,
                                _explain_falcon)


# --- task 6: predict, measure, interpret: the time scalars a batch reads ------------------------

def _buckets_of_pairs(batch: dict[str, Tensor]) -> Tensor:
    """The time bucket (B, T, T) of every query-key pair of a batch: bucket(tau'_t - tau_j)."""
    timestamps = batch["timestamps"]
    asked = hstu.query_times(timestamps, batch["target_timestamps"])       # (B, T) tau'_t
    return hstu.time_buckets(asked[:, :, None] - timestamps[:, None, :])   # (B, T, T)


def check_buckets_read(measure, batch: dict[str, Tensor]) -> None:
    """measure() -> how many distinct time buckets (of the 129 scalars w_t) the pairs of `batch`
    that the causal mask lets through read (real query t, real key j <= t). Deterministic: the
    range is the library's count +- 0.5, so one bucket more or less fails."""
    buckets = _buckets_of_pairs(batch)
    visible = hstu.attention_mask(batch["history"] > 0)                   # (B, T, T)
    count = len(buckets[visible].unique())
    every_pair = len(buckets.unique())
    hint = ("count the distinct buckets of the visible pairs only, with tau' the NEXT "
            f"timestamp; every pair, padding keys included, reads {every_pair} (a padding "
            "key's timestamp 0 makes a gap of decades)")
    return check_measured("time buckets read", measure, count - 0.5, count + 0.5,
                          "the number of distinct time buckets the batch reads", hint)


def check_why_few_buckets(choose) -> None:
    """Why a batch reads only a minority of the 129 time scalars (the letter)."""
    reasons = {
        "a": "yes: the buckets are logarithmic, each a factor e^0.301 = 1.35 wider than the one "
             "before, so bucket 57 is already a year and bucket 128 starts at 5e16 seconds. Gaps "
             "between seconds and days touch only the low buckets; the others are never read, "
             "so this data never gives them a gradient",
        "b": "no: a bucket depends on |dt| only, and the later keys the mask hides are about as "
             "far away as the earlier ones: counting them adds (almost) no bucket",
        "c": "no: the mask hides padding keys, and a padding gap of about 1.7e9 seconds falls in "
             "bucket 70, far below the clamp at 128",
        "d": "no: a gap counts by its size |dt|, whatever its sign: every bucket holds gaps of "
             "both signs"}
    return check_choice("why few time buckets", choose, "a", reasons)
