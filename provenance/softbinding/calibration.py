"""How far apart the codes of unrelated photos fall, per soft-binding algorithm: the byBinding cutoffs and scores.

``GET /matches/byBinding`` has a code and no image, so nothing can verify a candidate: a record is a match only when
its code is closer to the query than unrelated photos' codes ever come at the service's scale. The target is at
most 0.1 % of queries for an unrelated image answered with a false match against 1M records: a per-pair rate of
``TARGET_PAIR_RATE`` = 1e-9.

``benchmarks/bench_softbinding_calibration.py`` measured every pair of the shared photos and the training corpus
(``../shared/data``) with the service's own hashers. 1e-9 lies far below what a few million pairs show, so the
rate is extrapolated, pessimistically, as the larger of two models: a beta-binomial fitted to the distances' mean
and variance (bits of natural photos are correlated: the binomial of independent fair bits would be far too
optimistic), inflated by the most the empirical curve exceeds it where that has counts; and a straight line through
the empirical lower tail in log space (an exponential tail: semantically similar photos make the real tail heavier
than any bell curve). The cutoff is the largest distance both models put at or below the target *and* below every
unrelated pair seen. :data:`CALIBRATIONS` is what the benchmark printed. Pure: no I/O, no numpy.

``similarity_score(d)`` maps the fitted chance ``p(d)`` of an unrelated pair being that close onto the
specification's 0-100: ``50 + 50 * log(target / p(d)) / log(target / p(0))``, i.e. 100 for identical codes and 50
where ``p(d)`` reaches the target rate, log-linear between (each point is the same factor of improbability), so a
score means the same across algorithms. Every match scores at least 50 (the cutoff never passes the target).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = ["CALIBRATIONS", "TARGET_PAIR_RATE", "BetaBinomial", "Calibration", "calibration_for", "cutoff_for",
           "fit_beta_binomial", "fit_exponential_tail", "tail_inflation"]

#: At most 0.1 % of unrelated queries falsely matched against 1M records.
TARGET_PAIR_RATE = 1e-3 / 1e6
_BINOMIAL_S = 1e12  # a+b standing for "no over-dispersion": the beta-binomial is then the binomial


@dataclass(frozen=True)
class BetaBinomial:
    """Distance of two unrelated ``n``-bit codes as a beta-binomial (a, b)."""

    n: int
    a: float
    b: float

    @property
    def mean(self) -> float:
        return self.n * self.a / (self.a + self.b)

    @property
    def sd(self) -> float:
        s = self.a + self.b
        return math.sqrt(self.n * self.a * self.b * (s + self.n) / (s * s * (s + 1)))

    def log_pmf(self, k: int) -> float:
        n, a, b = self.n, self.a, self.b
        return (math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)
                + _log_beta(k + a, n - k + b) - _log_beta(a, b))

    def cdf(self, d: int) -> float:
        """P(D <= d)."""
        if d < 0:
            return 0.0
        terms = [self.log_pmf(k) for k in range(0, min(d, self.n) + 1)]
        top = max(terms)
        return min(1.0, math.exp(top) * sum(math.exp(t - top) for t in terms))


def _log_beta(x: float, y: float) -> float:
    return math.lgamma(x) + math.lgamma(y) - math.lgamma(x + y)


def fit_beta_binomial(hist: Sequence[int], bits: int) -> BetaBinomial:
    """Method of moments on a histogram of distances (``hist[d]`` pairs at distance ``d``)."""
    total = sum(hist)
    if total < 2:
        raise ValueError("need at least two pairs to fit a distance distribution")
    mean = sum(d * c for d, c in enumerate(hist)) / total
    var = sum((d - mean) ** 2 * c for d, c in enumerate(hist)) / total
    p = min(max(mean / bits, 1e-6), 1 - 1e-6)
    ratio = var / (bits * p * (1 - p))  # over-dispersion: 1 for independent bits
    s = (bits - ratio) / (ratio - 1) if ratio > 1 + 1e-9 else _BINOMIAL_S
    s = max(s, 1e-6)
    return BetaBinomial(bits, p * s, (1 - p) * s)


def tail_inflation(fit: BetaBinomial, hist: Sequence[int], *, min_count: int = 10) -> float:
    """The most the empirical ``P(D <= d)`` exceeds the fit below the mean, where it rests on >= ``min_count``
    pairs (>= 1: the fit is only ever made more pessimistic)."""
    total = sum(hist)
    worst, running = 1.0, 0
    for d, count in enumerate(hist):
        running += count
        if d >= fit.mean:
            break
        if running >= min_count:
            worst = max(worst, (running / total) / max(fit.cdf(d), 1e-300))
    return worst


def fit_exponential_tail(hist: Sequence[int], *, min_count: int = 5, max_rate: float = 1e-2) -> tuple[float, float]:
    """``(intercept, slope)`` of ``log10 P(D <= d) = intercept + slope * d``, least squares over the lower tail:
    distances with at least ``min_count`` pairs at or below them and a rate of at most ``max_rate``."""
    total = sum(hist)
    points, running = [], 0
    for d, count in enumerate(hist):
        running += count
        rate = running / total
        if rate > max_rate:
            break
        if running >= min_count:
            points.append((d, math.log10(rate)))
    if len(points) < 2:
        raise ValueError("too few unrelated pairs in the lower tail to fit it")
    mx = sum(x for x, _ in points) / len(points)
    my = sum(y for _, y in points) / len(points)
    slope = sum((x - mx) * (y - my) for x, y in points) / sum((x - mx) ** 2 for x, _ in points)
    return my - slope * mx, max(slope, 1e-9)


def cutoff_for(fit: BetaBinomial, hist: Sequence[int], target: float = TARGET_PAIR_RATE) -> int | None:
    """The largest distance whose pair rate (both models, see the module docstring) is <= ``target`` and below
    which no unrelated pair was seen; None when even identical codes are too common."""
    cal = Calibration(fit.n, fit.a, fit.b, cutoff=None, inflation=tail_inflation(fit, hist),
                      tail=fit_exponential_tail(hist), target=target)
    best = None
    running = 0
    for d in range(fit.n + 1):
        running += hist[d] if d < len(hist) else 0
        if running > 0 or cal.pair_rate(d) > target:
            break
        best = d
    return best


@dataclass(frozen=True)
class Calibration:
    """One algorithm's calibration (one model: the registered name changes with the model)."""

    bits: int
    a: float
    b: float
    cutoff: int | None  # None: not even identical codes are rare enough; byBinding then never matches
    inflation: float = 1.0
    tail: tuple[float, float] | None = None  # (intercept, slope) of the exponential lower tail, log10 per bit
    pairs: int = 0
    photos: int = 0
    target: float = TARGET_PAIR_RATE
    _scores: dict[int, int] = field(default_factory=dict, compare=False, repr=False)

    @property
    def fit(self) -> BetaBinomial:
        return BetaBinomial(self.bits, self.a, self.b)

    def pair_rate(self, d: int) -> float:
        """The chance that an unrelated record's code lies within ``d`` of a query's (the larger model)."""
        rate = self.inflation * self.fit.cdf(d)
        if self.tail is not None:
            rate = max(rate, 10 ** (self.tail[0] + self.tail[1] * d))
        return min(1.0, rate)

    def matches(self, d: int) -> bool:
        return self.cutoff is not None and 0 <= d <= self.cutoff

    def similarity_score(self, d: int) -> int:
        """50-100 within the cutoff (see the module docstring); 0 beyond it."""
        if not self.matches(d):
            return 0
        if d not in self._scores:
            log_t = math.log(self.target)
            log_0 = math.log(max(self.pair_rate(0), 1e-300))
            log_d = math.log(max(self.pair_rate(d), 1e-300))
            span = log_t - log_0
            share = 1.0 if span <= 0 else (log_t - log_d) / span
            self._scores[d] = max(50, min(100, round(50 + 50 * share)))
        return self._scores[d]


#: Registered algorithm name -> its calibration (printed by benchmarks/bench_softbinding_calibration.py).
CALIBRATIONS: dict[str, Calibration] = {
    # 2,635 photos (every distinct file of ../shared/data/photos and train-photos): 3.5M unrelated pairs. Tail:
    # 9e-11 at 0 bits, 1.3e-9 at 3; the nearest unrelated pair (a stereo pair, two views of one scene) is 4 apart.
    "org.provenance-service.phash.1": Calibration(
        bits=64, a=551.9084, b=570.9420, cutoff=2, inflation=4.425, tail=(-10.0412, 0.37996), pairs=3470295,
        photos=2635),  # phash-dct64-v1
    # 350 photos (the shared ones and a fixed sample of train-photos; the network is slow on CPU): 61K pairs. The
    # tail is heavy (similar subjects: 17 bits between the stereo pair, 52-57 between other motorcycles): even
    # identical codes reach 2e-8 per pair. byBinding never matches; byContent uses the code to find candidates.
    "org.provenance-service.global-id.1": Calibration(
        bits=256, a=198.7350, b=219.2532, cutoff=None, inflation=1.869e4, tail=(-7.6939, 0.05830), pairs=61075,
        photos=350),  # global-id-v1-1b294740
    # The same 350 photos. The codes are far from uniform (unrelated pairs average 18.5 bits apart, not 32; 8 of
    # 61K pairs are 1 bit apart): no distance separates a copy from an unrelated photo. byBinding never matches.
    "org.provenance-service.oscar-net.1": Calibration(
        bits=64, a=11.7339, b=28.9731, cutoff=None, inflation=2.542, tail=(-4.2281, 0.42534), pairs=61075,
        photos=350),  # oscar-v1-e1b6df66
}


def calibration_for(alg: str) -> Calibration | None:
    return CALIBRATIONS.get(alg)
