"""A/B test statistics for cadences: who is ahead, how sure we are, when to stop. Pure.

Managers look at an A/B report every day and stop as soon as it says "winner". A classic
fixed-sample test (chi-squared at p < 0.05) checked daily declares a false winner in about
one equal-arms experiment in three after a month of looks. So the decision here comes from a
test built for continuous monitoring, and the Bayesian numbers only describe the data:

1. **Description (Bayesian beta-binomial).** Each arm's rate has a Beta(1, 1) prior and a
   Beta(1 + successes, 1 + failures) posterior: its mean, a 95% credible interval, the
   probability that the arm is the best and the expected loss of picking it (how much rate
   we give up on average if another arm is really better), by Monte Carlo with a numpy
   ``Generator`` passed in by the caller.
2. **Decision (mixture SPRT, Johari et al., "Always Valid Inference", 2017; Optimizely's
   stats engine).** For the leading arm against every other arm, the likelihood ratio of
   "the difference is ~ N(0, τ²)" against "no difference" under the normal approximation,

       Λ = sqrt(V / (V + τ²)) · exp(τ² d² / (2 V (V + τ²))),

   with ``d`` the difference of the rates and ``V`` its variance. Under "no difference" Λ
   is a martingale, so by Ville's inequality the chance that it *ever* reaches 1/α, at any
   number of looks, is at most α: ``1/Λ`` is an always-valid p-value. Inverting it gives a
   confidence sequence for ``d`` (an interval valid at every look at once). With k arms α
   is split over the k(k−1)/2 pairs (Bonferroni).
3. **Decision rule.** A winner is clear when the leader beats every other arm in (2) *and*
   the leader's probability of being best is at least 95% *and* its expected loss is below a
   tenth of the smallest lift worth having. The arms are "practically the same" when every
   confidence sequence lies inside ± that smallest lift (10% of the pooled rate by default):
   then no winner worth having will appear, and the test may stop. Otherwise: keep going.
   Nothing is read before 30 leads per arm and 10 successes in all: the normal
   approximation behind (2) needs them, and "0 replies against 1" is not a comparison.
4. **Sample size still needed.** Taking today's posterior means as the truth, the number of
   further enrollments (split by the arms' weights) until the confidence sequence is
   expected to clear zero or the equivalence band with 80% probability: the smallest ``M``
   with ``h(V_M) + z₀.₈ · sqrt(V_M) ≤ |d|`` (winner) or ``≤ δ − |d|`` (same), where ``h``
   is the sequence's half-width and ``V_M`` the variance after ``M`` more leads, found by
   bisection. Because the equivalence path is always open, the answer is bounded: at worst
   it is what resolving a difference of half the smallest worthwhile lift takes.

τ, the mixture's spread, is 30% of the pooled rate: cadence tests that matter move rates
by tens of percent, and a τ near the effects you expect gives the shortest tests (any τ is
valid). Rates use the posterior means, so arms with no successes yet never give a zero
variance.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
from scipy import stats


class Metric(StrEnum):
    """The outcome an experiment compares (each stamped once on the enrollment)."""

    CONTACTED = "contacted"
    REPLIED = "replied"
    MEETING = "meeting"
    CONVERTED = "converted"


class Decision(StrEnum):
    """Where an experiment stands on one metric."""

    COLLECTING = "collecting"  # too few leads in some arm for a first reading
    CONTINUE = "continue"  # no clear answer yet
    WINNER = "winner"  # one arm is better, and the difference is real
    NO_DIFFERENCE = "no_difference"  # the arms are within the smallest lift worth having


# Below half a percent, "0% more often" reads as nonsense: the arms are level.
LEVEL = 0.005
# "B gets replies 31% more often than A".
METRIC_PHRASES: dict[str, str] = {
    Metric.CONTACTED: "reaches leads",
    Metric.REPLIED: "gets replies",
    Metric.MEETING: "books meetings",
    Metric.CONVERTED: "converts leads",
}


@dataclass(frozen=True)
class ArmData:
    """One arm's counts for one metric."""

    key: str
    enrolled: int
    successes: int
    weight: float = 1.0


@dataclass(frozen=True)
class DecisionRule:
    """The thresholds of the decision rule (see the module docstring)."""

    alpha: float = 0.05  # chance of ever declaring a false winner, across all looks
    prob_best: float = 0.95
    min_lift: float = 0.10  # smallest lift worth having, relative to the pooled rate
    loss_share: float = 0.10  # expected loss must be below this share of that lift
    mixture_lift: float = 0.30  # τ, relative to the pooled rate
    power: float = 0.80  # "likely" in the sample size still needed
    min_enrolled: int = 30  # per arm, before any reading (the normal approximation)
    min_successes: int = 10  # in all arms together: no rate to compare before a few


@dataclass(frozen=True)
class ArmResult:
    """One arm's numbers: observed rate, posterior mean and interval, chance to be best."""

    key: str
    enrolled: int
    successes: int
    rate: float | None
    mean: float
    ci_low: float
    ci_high: float
    prob_best: float
    expected_loss: float
    more_needed: int | None


@dataclass(frozen=True)
class Verdict:
    """The answer for one metric, with the words a manager reads."""

    metric: str
    decision: Decision
    arms: tuple[ArmResult, ...]
    leader: str
    compared_with: str
    lift: float | None  # the leader's rate relative to ``compared_with``, 0.31 = 31% more
    prob_best: float  # the leader's
    p_value: float  # always-valid, the leader against its closest rival
    smallest_lift: float  # absolute rate difference worth having
    more_per_arm: int | None  # the largest per-arm figure; None once decided
    more_total: int | None
    summary: str
    needed: str

    @property
    def winner(self) -> str | None:
        """The winning arm's key, when a winner is clear."""
        return self.leader if self.decision is Decision.WINNER else None

    def arm(self, key: str) -> ArmResult:
        """The result of arm ``key``."""
        return next(a for a in self.arms if a.key == key)


# --------------------------------------------------------------------------- the pieces


def posterior(enrolled: int, successes: int) -> tuple[float, float]:
    """Beta posterior parameters under a uniform prior."""
    return 1.0 + successes, 1.0 + enrolled - successes


def best_and_loss(alphas: np.ndarray, betas: np.ndarray, *, rng: np.random.Generator,
                  draws: int = 20_000) -> tuple[np.ndarray, np.ndarray]:
    """P(arm is best) and expected loss of picking each arm, by Monte Carlo.

    Ties between draws (only possible at identical degenerate posteriors) go to the first
    arm; with continuous Beta draws they have probability zero.
    """
    samples = rng.beta(alphas[:, None], betas[:, None], size=(len(alphas), draws))
    best = samples.max(axis=0)
    prob_best = np.bincount(samples.argmax(axis=0), minlength=len(alphas)) / draws
    loss = (best[None, :] - samples).mean(axis=1)
    return prob_best, loss


def log_likelihood_ratio(d: float, variance: float, tau2: float) -> float:
    """log Λ of the normal mixture SPRT for a difference ``d`` with ``variance``."""
    return (0.5 * math.log(variance / (variance + tau2))
            + tau2 * d * d / (2 * variance * (variance + tau2)))


def half_width(variance: float, tau2: float, alpha: float) -> float:
    """Half-width of the always-valid confidence sequence: {d₀ : Λ(d − d₀) < 1/α}."""
    return math.sqrt(variance * (variance + tau2) / tau2
                     * (2 * math.log(1 / alpha) + math.log((variance + tau2) / variance)))


def _variance(q_a: float, n_a: float, q_b: float, n_b: float) -> float:
    return q_a / max(n_a, 1.0) + q_b / max(n_b, 1.0)


def extra_needed(*, q: tuple[float, float], n: tuple[float, float], share: tuple[float, float],
                 target: float, tau2: float, alpha: float, z: float) -> float:
    """Smallest total of further enrollments ``M`` with ``h(V) + z·sqrt(V) ≤ target``.

    ``q`` are the arms' p(1−p), ``n`` their enrollments and ``share`` the part of new
    enrollments each gets. ``h + z·sqrt(V)`` falls as ``V`` falls, so bisection finds the
    smallest ``M``; ``inf`` when the target cannot be reached (a non-positive target).
    """
    if target <= 0:
        return math.inf

    def reached(m: float) -> bool:
        v = _variance(q[0], n[0] + m * share[0], q[1], n[1] + m * share[1])
        return half_width(v, tau2, alpha) + z * math.sqrt(v) <= target

    if reached(0.0):
        return 0.0
    low, high = 0.0, 64.0
    while not reached(high):
        low, high = high, high * 2
        if high > 1e12:
            return math.inf
    while high - low > 1.0:
        mid = (low + high) / 2
        low, high = (low, mid) if reached(mid) else (mid, high)
    return high


# --------------------------------------------------------------------------- the verdict


def evaluate(arms: Sequence[ArmData], *, rng: np.random.Generator,
             metric: str = Metric.REPLIED, rule: DecisionRule = DecisionRule(),
             draws: int = 20_000) -> Verdict:
    """Compare the arms on one metric and decide (see the module docstring for the method).

    1. Posteriors, credible intervals, P(best) and expected loss per arm.
    2. The leader is the arm with the highest posterior mean (ties: the first listed); it is
       compared in words with the first arm (the control), or with the runner-up when it is
       the control.
    3. Mixture SPRT of the leader against each other arm, at α split over all pairs.
    4. Winner / practically the same / continue, and the sample size still needed.
    """
    if len(arms) < 2:
        raise ValueError("an experiment needs at least two arms")
    for arm in arms:
        if arm.enrolled < 0 or not 0 <= arm.successes <= arm.enrolled:
            raise ValueError(f"arm {arm.key}: successes must be between 0 and enrolled")
    k = len(arms)
    ab = [posterior(a.enrolled, a.successes) for a in arms]
    alphas = np.array([x for x, _ in ab])
    betas = np.array([y for _, y in ab])
    means = alphas / (alphas + betas)
    lows = stats.beta.ppf(0.025, alphas, betas)
    highs = stats.beta.ppf(0.975, alphas, betas)
    prob_best, loss = best_and_loss(alphas, betas, rng=rng, draws=draws)

    leader = int(np.argmax(means))
    order = sorted(range(k), key=lambda i: (-means[i], i))
    compared = 0 if leader != 0 else order[1]
    total_n = sum(a.enrolled for a in arms)
    pooled = (1.0 + sum(a.successes for a in arms)) / (2.0 + total_n)
    smallest = rule.min_lift * pooled
    tau2 = (rule.mixture_lift * pooled) ** 2
    alpha = rule.alpha / (k * (k - 1) / 2)
    z = float(stats.norm.ppf(rule.power))
    total_weight = sum(max(a.weight, 0.0) for a in arms) or float(k)
    shares = [(max(a.weight, 0.0) or 0.0) / total_weight for a in arms]
    q = means * (1 - means)

    beats_all, all_same = True, True
    p_worst, more_total = 0.0, 0.0
    for j in range(k):
        if j == leader:
            continue
        d = float(means[leader] - means[j])
        v = _variance(q[leader], arms[leader].enrolled, q[j], arms[j].enrolled)
        p_value = min(1.0, math.exp(-log_likelihood_ratio(d, v, tau2)))
        p_worst = max(p_worst, p_value)
        h = half_width(v, tau2, alpha)
        beats_all &= d > 0 and p_value <= alpha
        all_same &= abs(d) + h < smallest
        pair = functools.partial(
            extra_needed, q=(float(q[leader]), float(q[j])),
            n=(float(arms[leader].enrolled), float(arms[j].enrolled)),
            share=(shares[leader], shares[j]), tau2=tau2, alpha=alpha, z=z)
        # Whichever comes first: the difference shows, or it proves too small to matter.
        more_total = max(more_total, min(pair(target=abs(d)), pair(target=smallest - abs(d))))

    successes = sum(a.successes for a in arms)
    collecting = (any(a.enrolled < rule.min_enrolled for a in arms)
                  or successes < rule.min_successes)
    if collecting:
        decision = Decision.COLLECTING
    elif (beats_all and prob_best[leader] >= rule.prob_best
          and loss[leader] < rule.loss_share * smallest):
        decision = Decision.WINNER
    elif all_same:
        decision = Decision.NO_DIFFERENCE
    else:
        decision = Decision.CONTINUE

    per_arm: list[int | None]
    if decision in (Decision.WINNER, Decision.NO_DIFFERENCE):
        per_arm, total = [None] * k, None
    else:
        # Before the first reading the estimates are noise: only the shortfall is known.
        # After it, never "0 more" for an open question.
        shortfall = max([(rule.min_enrolled - a.enrolled) / s if s else 0.0
                         for a, s in zip(arms, shares, strict=True)]
                        + [(rule.min_successes - successes) / pooled])
        total_f = shortfall if collecting else max(more_total, 1.0)
        total = None if math.isinf(total_f) else _round_up(total_f)
        per_arm = [None if total is None else _round_up(total * s) for s in shares]

    results = tuple(
        ArmResult(key=a.key, enrolled=a.enrolled, successes=a.successes,
                  rate=a.successes / a.enrolled if a.enrolled else None,
                  mean=float(means[i]), ci_low=float(lows[i]), ci_high=float(highs[i]),
                  prob_best=float(prob_best[i]), expected_loss=float(loss[i]),
                  more_needed=per_arm[i])
        for i, a in enumerate(arms)
    )
    lift = relative_lift(results[leader], results[compared])
    more_per_arm = max((m for m in per_arm if m is not None), default=None)
    verdict = Verdict(
        metric=str(metric), decision=decision, arms=results, leader=arms[leader].key,
        compared_with=arms[compared].key, lift=lift, prob_best=float(prob_best[leader]),
        p_value=p_worst, smallest_lift=smallest, more_per_arm=more_per_arm,
        more_total=total, summary="", needed="",
    )
    return _with_words(verdict, rule)


def relative_lift(leader: ArmResult, other: ArmResult) -> float | None:
    """How much higher the leader's rate is, relative to the other's (0.31 = 31% more).

    Observed rates when both are positive (what a manager would compute by hand), else the
    posterior means; None before either arm has leads.
    """
    if leader.rate and other.rate:
        return leader.rate / other.rate - 1
    if leader.enrolled and other.enrolled:
        return leader.mean / other.mean - 1
    return None


def _round_up(value: float) -> int:
    """Round a planning figure up to two significant digits (420, not 417.3)."""
    if value <= 10:
        return max(1, math.ceil(value))
    magnitude = 10 ** (int(math.log10(value)) - 1)
    return int(math.ceil(value / magnitude) * magnitude)


def percent(probability: float) -> str:
    """A probability as a manager reads it: never a flat "100%" or "0%" from sampling."""
    if probability >= 0.995:
        return ">99%"
    if probability <= 0.005:
        return "<1%"
    return f"{probability * 100:.0f}%"


def _with_words(v: Verdict, rule: DecisionRule) -> Verdict:
    """The English sentences (the pages build translated ones from the same fields)."""
    phrase = METRIC_PHRASES.get(v.metric, "succeeds")
    pct = f"{abs(v.lift) * 100:.0f}%" if v.lift is not None else "?"
    chance = f"{percent(v.prob_best)} chance {v.leader} is best"
    equal_weights = len({a.more_needed for a in v.arms}) == 1
    if v.more_total is None:
        needed = ("no more leads needed" if v.decision in (Decision.WINNER,
                                                             Decision.NO_DIFFERENCE)
                  else "no winner is in reach at these rates")
    elif equal_weights:
        needed = f"needs about {v.more_per_arm:,} more leads per arm"
    else:
        split = ", ".join(f"{a.key} {a.more_needed:,}" for a in v.arms)
        needed = f"needs about {v.more_total:,} more leads ({split})"

    if v.decision is Decision.COLLECTING:
        summary = f"Too early to tell: {needed} before a first reading."
    elif v.decision is Decision.NO_DIFFERENCE:
        summary = (f"The arms perform practically the same (within "
                   f"{rule.min_lift * 100:.0f}%); no winner worth having.")
    elif v.lift is None or v.lift < LEVEL:
        summary = f"{v.leader} and {v.compared_with} are level so far; {needed}."
    elif v.decision is Decision.WINNER:
        summary = (f"{v.leader} {phrase} {pct} more often than {v.compared_with}; "
                   f"{chance}; winner clear.")
    else:
        summary = (f"{v.leader} {phrase} {pct} more often than {v.compared_with} so far; "
                   f"{chance}; no clear winner yet — {needed}.")
    return Verdict(**{**v.__dict__, "summary": summary, "needed": needed})
