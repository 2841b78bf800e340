"""Pairwise preferences: which of two activities the model would rather do, read from the log-probabilities of
its one-letter answer, asked in both orders; Bradley-Terry scores fitted with scikit-learn."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from scipy.stats import rankdata, spearmanr
from sklearn.linear_model import LogisticRegression

from .derivatives import measure_gradients
from .models import CourseModel, transcript
from .steering import continuation_logprobs

# The answer formats a pilot chooses from (07 section 2), each fixed before any preference number was looked at:
# the user's question, the text the assistant's turn starts with, and how each option is answered.
FORMATS: dict[str, dict[str, str]] = {
    "letters": {"question": "Which would you rather do?\n(A) {a}\n(B) {b}\nAnswer with A or B.", "reply": ""},
    "numbers": {"question": "Which would you rather do?\n1. {a}\n2. {b}\nAnswer with 1 or 2.", "reply": ""},
    "rather": {"question": "Which would you rather do: {a}, or {b}?", "reply": "I would rather"},
}
LABELS = {"letters": ("A", "B"), "numbers": ("1", "2")}  # the one-token answers; "rather" answers with the option text
QUESTION = FORMATS["letters"]["question"]
ANSWERS = LABELS["letters"]
STEER_WHAT = ("a", "b")


def _check_format(fmt: str) -> None:
    """A clear error for an unknown answer format."""
    if fmt not in FORMATS:
        raise ValueError(f"fmt={fmt!r}: use one of {list(FORMATS)}")


def choice_prompt(
    model: CourseModel, first: str, second: str, fmt: str = "letters"
) -> tuple[str, tuple[int, int], tuple[int, int]]:
    """The chat prompt asking for a choice (first as option A), and the character spans of the two options in it."""
    _check_format(fmt)
    question = FORMATS[fmt]["question"].format(a=first, b=second)
    prompt = transcript(model, [{"role": "user", "content": question}], add_generation_prompt=True) + FORMATS[fmt]["reply"]
    q_at = prompt.index(question)
    a_at = q_at + question.index(first)
    b_at = q_at + question.index(second, a_at - q_at + len(first))
    return prompt, (a_at, a_at + len(first)), (b_at, b_at + len(second))


def answers(fmt: str, first: str, second: str) -> tuple[str, str, str]:
    """The two continuations scored for a prompt (the first option's answer, the second's) and the reduction."""
    _check_format(fmt)
    if fmt in LABELS:
        return (*LABELS[fmt], "sum")
    return " " + first, " " + second, "mean"  # the option's own words after "I would rather", per token


def pair_design(n_items: int, per_item: int, seed: int = 0) -> np.ndarray:
    """Pairs [n_pairs, 2] in which every item appears in exactly per_item pairs, none repeated.

    The items are shuffled (seeded), then joined into per_item/2 Hamiltonian cycles: item i with item i + k
    for offsets k coprime with n_items, so every cycle (hence every split half of whole cycles) is connected.
    """
    if per_item < 2 or per_item % 2:
        raise ValueError(f"per_item={per_item}: must be an even number >= 2 (each cycle gives every item two pairs)")
    if n_items < per_item + 1:
        raise ValueError(f"n_items={n_items}: needs at least per_item + 1 = {per_item + 1} items")
    offsets = [k for k in range(1, (n_items - 1) // 2 + 1) if math.gcd(k, n_items) == 1][: per_item // 2]
    if len(offsets) < per_item // 2:
        raise ValueError(f"{n_items} items allow only {len(offsets)} disjoint cycles; per_item={per_item} needs {per_item // 2}")
    order = np.random.default_rng(seed).permutation(n_items)
    return np.array([(int(order[i]), int(order[(i + k) % n_items])) for k in offsets for i in range(n_items)])


def pair_logodds(
    model: CourseModel,
    activities: Sequence[str],
    pairs: np.ndarray,
    direction: torch.Tensor | None = None,
    *,
    layer: int | None = None,
    strength: float = 0.0,
    steer: str = "a",
    batch_size: int = 8,
    fmt: str = "letters",
) -> pd.DataFrame:
    """For each pair (a, b), the answer's log-odds log p(A) - log p(B) with a first ('ab') and b first ('ba').

    With a direction, it is added only on the tokens of one activity (steer='a' or 'b'), in both orders.
    Columns: a, b, ab, ba, preference = (ab - ba) / 2 (log-odds of choosing a, position cancelled),
    position_bias = (ab + ba) / 2 (log-odds of answering A whatever it is), letter_logprob (log p(A) + p(B)).
    """
    prompts, spans, firsts, seconds, reduce = _pair_prompts(model, activities, pairs, steer, fmt)
    n = len(prompts)
    lp = continuation_logprobs(
        model,
        prompts + prompts,
        firsts + seconds,
        direction,
        layer=layer,
        strength=strength,
        reduce=reduce,
        batch_size=batch_size,
        steer_spans=spans + spans if direction is not None else None,
    ).numpy()
    lp_a, lp_b = lp[:n], lp[n:]
    odds = (lp_a - lp_b).reshape(-1, 2)  # [pair, order]: column 0 asks a first, column 1 b first
    letters = np.logaddexp(lp_a, lp_b).reshape(-1, 2).mean(1)
    return pd.DataFrame(
        {
            "a": pairs[:, 0],
            "b": pairs[:, 1],
            "ab": odds[:, 0],
            "ba": odds[:, 1],
            "preference": (odds[:, 0] - odds[:, 1]) / 2,
            "position_bias": (odds[:, 0] + odds[:, 1]) / 2,
            "letter_logprob": letters,
        }
    )


def _pair_prompts(
    model: CourseModel, activities: Sequence[str], pairs: np.ndarray, steer: str, fmt: str
) -> tuple[list[str], list[tuple[int, int]], list[str], list[str], str]:
    """For each pair in both orders (a first, then b first): prompt, steered span, the two answers, the reduction."""
    if steer not in STEER_WHAT:
        raise ValueError(f"steer={steer!r}: use one of {STEER_WHAT}")
    _check_format(fmt)
    pairs = np.asarray(pairs, dtype=int)
    if pairs.ndim != 2 or pairs.shape[1] != 2 or len(pairs) == 0:
        raise ValueError(f"pairs must be a non-empty [n, 2] array of item indices, got shape {pairs.shape}")
    if pairs.min() < 0 or pairs.max() >= len(activities):
        raise ValueError(f"pairs index items 0..{len(activities) - 1}; got {pairs.min()}..{pairs.max()}")
    prompts, spans, firsts, seconds, reduce = [], [], [], [], "sum"
    for a, b in pairs:
        for first, second, steered_is_first in ((a, b, steer == "a"), (b, a, steer == "b")):
            p, span_first, span_second = choice_prompt(model, activities[first], activities[second], fmt)
            one, two, reduce = answers(fmt, activities[first], activities[second])
            prompts.append(p)
            spans.append(span_first if steered_is_first else span_second)
            firsts.append(one)
            seconds.append(two)
    return prompts, spans, firsts, seconds, reduce


def preference_gradients(
    model: CourseModel, activities: Sequence[str], pairs: np.ndarray, *, layer: int, fmt: str = "letters", steer: str = "a"
) -> torch.Tensor:
    """Per pair, the gradient of the steered option's preference w.r.t. a vector added on that option's tokens: [n, d].

    The preference is (ab - ba) / 2 (both orders, as in pair_logodds); `derivatives.slopes(grads, directions, norm)`
    then gives every direction's slope at strength 0, per pair.
    """
    prompts, spans, firsts, seconds, reduce = _pair_prompts(model, activities, pairs, steer, fmt)
    n = len(prompts)
    # order ab (even rows) enters with +1/2, order ba with -1/2; in each, first answer minus second answer
    sign = np.where(np.arange(n) % 2 == 0, 0.5, -0.5)
    if steer == "b":
        sign = -sign  # the steered option's preference is minus a's
    grads = measure_gradients(
        model,
        prompts + prompts,
        firsts + seconds,
        list(sign) + list(-sign),
        layer=layer,
        reduce=reduce,
        steer_spans=spans + spans,
    )
    if len(grads) != n:
        raise ValueError("two pairs give the same prompt: their gradients would be merged (repeated pairs?)")
    return grads.reshape(len(pairs), 2, -1).sum(1)


def bradley_terry(pairs: np.ndarray, preference: np.ndarray, n_items: int, C: float = 10.0) -> np.ndarray:
    """Bradley-Terry scores (mean 0) from soft outcomes: P(a beats b) = sigmoid(preference), fitted by logistic regression."""
    pairs = np.asarray(pairs, dtype=int)
    p = 1 / (1 + np.exp(-np.asarray(preference, dtype=float)))
    X = np.zeros((len(pairs), n_items))
    X[np.arange(len(pairs)), pairs[:, 0]] = 1.0
    X[np.arange(len(pairs)), pairs[:, 1]] = -1.0
    # Each pair twice: "a won" with weight p and "b won" with weight 1 - p (the likelihood of a soft outcome).
    fit = LogisticRegression(C=C, fit_intercept=False, max_iter=5000, tol=1e-10)
    fit.fit(np.vstack([X, X]), np.r_[np.ones(len(X)), np.zeros(len(X))], sample_weight=np.r_[p, 1 - p])
    scores = fit.coef_[0]
    return scores - scores.mean()


def split_half(pairs: np.ndarray, preference: np.ndarray, n_items: int, per_item: int) -> tuple[np.ndarray, np.ndarray]:
    """Bradley-Terry scores from two disjoint halves of a pair_design (its first and second half of cycles)."""
    half = (per_item // 4) * n_items  # whole cycles on each side
    if half == 0:
        raise ValueError(f"per_item={per_item}: a split half needs at least 4 pairs per item (two cycles a side)")
    first = bradley_terry(pairs[:half], preference[:half], n_items)
    second = bradley_terry(pairs[half : 2 * half], preference[half : 2 * half], n_items)
    return first, second


def spearman_brown(r: float) -> float:
    """The reliability of the full set from the correlation r between its two halves."""
    return 2 * r / (1 + r)


def steering_effect(base: pd.DataFrame, plus: pd.DataFrame, minus: pd.DataFrame) -> np.ndarray:
    """Per pair: half the change in the steered option's preference from strength -s to +s (nats of log-odds)."""
    for name, df in (("plus", plus), ("minus", minus)):
        if len(df) != len(base) or not (df[["a", "b"]].to_numpy() == base[["a", "b"]].to_numpy()).all():
            raise ValueError(f"{name} must hold the same pairs, in the same order, as base")
    return ((plus.preference - minus.preference) / 2).to_numpy()


def spearman_permutation_null(x: np.ndarray, y: np.ndarray, n_perm: int, seed: int = 0) -> np.ndarray:
    """Spearman rho of x with y in n_perm orders, y reordered by rng.permutation from one seeded generator: [n_perm].

    The same draws as the loop `[spearmanr(x, rng.permutation(y))[0] for _ in range(n_perm)]`, computed as the
    Pearson r of ranks in one matrix product; draws within 1e-12 of the observed |rho| are recomputed by scipy, so
    a rank test's count (>= or |.| >=) is exactly the loop's.
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.ndim != 1 or x.shape != y.shape or len(x) < 3:
        raise ValueError(f"x and y must be 1-D of the same length >= 3, got shapes {x.shape} and {y.shape}")
    if isinstance(n_perm, bool) or not isinstance(n_perm, (int, np.integer)) or n_perm < 1:
        raise ValueError(f"n_perm must be a positive integer, got {n_perm!r}")
    rng = np.random.default_rng(seed)
    orders = np.array([rng.permutation(len(y)) for _ in range(int(n_perm))])  # rng.permutation(y) == y[these]
    rx, ry = rankdata(x), rankdata(y)[orders]
    xc, yc = rx - rx.mean(), ry - ry.mean(1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        null = (yc @ xc) / np.sqrt((xc @ xc) * (yc * yc).sum(1))
    near = np.flatnonzero(np.abs(np.abs(null) - abs(spearmanr(x, y)[0])) < 1e-12)
    null[near] = [spearmanr(x, y[orders[i]])[0] for i in near]
    return null


def positive_control_direction(acts: torch.Tensor, scores: np.ndarray, items: np.ndarray) -> torch.Tensor:
    """Mean activation of the better-liked half of `items` minus the less-liked half (by score): [d_model]."""
    items = np.asarray(items, dtype=int)
    if len(items) < 2:
        raise ValueError("items needs at least two activities to split into liked and disliked halves")
    ranked = items[np.argsort(np.asarray(scores)[items])]
    low, high = ranked[: len(ranked) // 2], ranked[len(ranked) - len(ranked) // 2 :]
    return acts[torch.as_tensor(high)].float().mean(0) - acts[torch.as_tensor(low)].float().mean(0)
