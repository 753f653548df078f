"""Statistics for rating studies: rank tests with effect sizes, Holm's correction, bootstrap
confidence intervals and Krippendorff's alpha. Plain functions of numbers (no study objects),
so each can be checked on data with a known answer.

- Within-subject (every participant rates every condition): Wilcoxon signed-rank test on the
  participants' paired scores, with the matched-pairs rank-biserial correlation as effect size.
- Between-subject (each participant rates one condition): Mann-Whitney U test, with the
  rank-biserial correlation ``2 U_a / (n_a n_b) - 1``.
  Both effect sizes run from -1 to 1 and are positive when the first condition scores higher.
- Holm's step-down correction keeps the family-wise error rate at ``alpha`` over all the
  tests of a study (every dimension and pair of conditions).
- Krippendorff's alpha (ordinal, interval, ratio or nominal) from the coincidence matrix, as in
  Krippendorff, "Computing Krippendorff's Alpha-Reliability" (2011); missing ratings allowed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

Level = Literal["nominal", "ordinal", "interval", "ratio"]


@dataclass(frozen=True)
class TestResult:
    test: str            # "wilcoxon" or "mann-whitney"
    statistic: float
    p: float
    effect: float        # rank-biserial correlation, > 0 when a scores higher
    effect_name: str
    n_a: int
    n_b: int


def wilcoxon_paired(a: Sequence[float], b: Sequence[float]) -> TestResult:
    """Two-sided Wilcoxon signed-rank test of paired scores ``a`` vs ``b``.

    Ties between a pair (zero differences) are dropped, as Wilcoxon did ("wilcox"); the effect
    is the matched-pairs rank-biserial correlation ``(R+ - R-) / (R+ + R-)`` over the same
    ranks. With no non-zero difference the p-value is 1 and the effect 0. The p-value is exact
    for up to 50 pairs without tied differences, and otherwise the normal approximation with
    the tie correction (as R's wilcox.test does): scipy's own choice for tied data, a
    permutation test, took seconds per test for a dozen participants.
    """
    from scipy import stats

    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.shape != b.shape:
        raise ValueError("paired samples must have the same length")
    differences = a - b
    nonzero = differences[differences != 0]
    if nonzero.size == 0:
        return TestResult("wilcoxon", 0.0, 1.0, 0.0, "matched-pairs rank-biserial r", a.size, b.size)
    ranks = stats.rankdata(np.abs(nonzero))
    positive, negative = ranks[nonzero > 0].sum(), ranks[nonzero < 0].sum()
    exact = nonzero.size <= 50 and np.unique(np.abs(nonzero)).size == nonzero.size
    result = stats.wilcoxon(a, b, zero_method="wilcox", alternative="two-sided", method="exact" if exact else "approx")
    effect = float((positive - negative) / (positive + negative))
    return TestResult("wilcoxon", float(result.statistic), float(result.pvalue), effect, "matched-pairs rank-biserial r", a.size, b.size)


def mann_whitney(a: Sequence[float], b: Sequence[float]) -> TestResult:
    """Two-sided Mann-Whitney U test of independent samples ``a`` and ``b``, with the
    rank-biserial correlation ``2 U_a / (n_a n_b) - 1`` (the probability that a random ``a``
    beats a random ``b``, ties counting half, rescaled to -1..1)."""
    from scipy import stats

    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.size == 0 or b.size == 0:
        raise ValueError("both samples need at least one value")
    if np.ptp(np.concatenate([a, b])) == 0:  # every value the same: no evidence either way
        return TestResult("mann-whitney", a.size * b.size / 2, 1.0, 0.0, "rank-biserial r", a.size, b.size)
    result = stats.mannwhitneyu(a, b, alternative="two-sided")
    effect = float(2 * result.statistic / (a.size * b.size) - 1)
    return TestResult("mann-whitney", float(result.statistic), float(result.pvalue), effect, "rank-biserial r", a.size, b.size)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-adjusted p-values, in the order given: reject hypothesis ``i`` at family-wise level
    ``alpha`` exactly when ``adjusted[i] <= alpha``."""
    p = np.asarray(p_values, float)
    m = p.size
    if m == 0:
        return []
    order = np.argsort(p, kind="stable")
    adjusted_sorted = np.maximum.accumulate(np.minimum(1.0, (m - np.arange(m)) * p[order]))
    adjusted = np.empty(m)
    adjusted[order] = adjusted_sorted
    return adjusted.tolist()


def bootstrap_mean_ci(values: Sequence[float], *, confidence: float = 0.95, resamples: int = 2000, seed: int = 0) -> tuple[float, float]:
    """A bootstrap confidence interval of the mean (``scipy.stats.bootstrap``, BCa).

    One value, or values all alike, give the degenerate interval (value, value): the bootstrap
    has nothing to resample there.
    """
    from scipy import stats

    data = np.asarray(values, float)
    if data.size == 0:
        return (float("nan"), float("nan"))
    if data.size == 1 or np.ptp(data) == 0:
        return (float(data[0]), float(data[0]))
    result = stats.bootstrap((data,), np.mean, confidence_level=confidence, n_resamples=resamples, method="BCa", rng=np.random.default_rng(seed))
    low, high = float(result.confidence_interval.low), float(result.confidence_interval.high)
    if not (np.isfinite(low) and np.isfinite(high)):  # BCa can fail on tiny, lumpy samples
        result = stats.bootstrap((data,), np.mean, confidence_level=confidence, n_resamples=resamples, method="percentile", rng=np.random.default_rng(seed))
        low, high = float(result.confidence_interval.low), float(result.confidence_interval.high)
    return (low, high)


def krippendorff_alpha(reliability: Sequence[Sequence[float]] | np.ndarray, *, level: Level = "ordinal", values: Sequence[float] | None = None) -> float:
    """Krippendorff's alpha of a raters x units matrix (NaN where a rater did not rate a unit).

    ``values``: the whole value domain (e.g. 1..5 of a Likert scale); for ordinal data it sets
    the ranks, so levels nobody used still count as steps. Default: the values seen.
    Returns NaN when there is nothing to agree on (fewer than two ratings in every unit, or a
    single value used throughout).
    """
    data = np.asarray(reliability, float)
    if data.ndim != 2:
        raise ValueError("reliability data must be a raters x units matrix")
    seen = np.unique(data[~np.isnan(data)])
    domain = np.asarray(sorted(set(values) | set(seen.tolist())) if values is not None else seen, float)
    if domain.size < 2:
        return float("nan")
    index = {value: i for i, value in enumerate(domain)}
    k = domain.size

    # Coincidence matrix: every ordered pair of ratings of one unit by different raters, each
    # unit weighted 1 / (m_u - 1) so that each pairable rating counts once.
    coincidence = np.zeros((k, k))
    for unit in data.T:
        rated = unit[~np.isnan(unit)]
        m = rated.size
        if m < 2:
            continue
        counts = np.bincount([index[value] for value in rated], minlength=k).astype(float)
        coincidence += (np.outer(counts, counts) - np.diag(counts)) / (m - 1)
    marginals = coincidence.sum(axis=1)
    n = marginals.sum()
    if n <= 1:
        return float("nan")

    c, kk = np.meshgrid(np.arange(k), np.arange(k), indexing="ij")
    if level == "nominal":
        delta = (c != kk).astype(float)
    elif level == "interval":
        delta = (domain[c] - domain[kk]) ** 2
    elif level == "ratio":
        total = domain[c] + domain[kk]
        delta = np.divide((domain[c] - domain[kk]) ** 2, total**2, out=np.zeros_like(total), where=total != 0)
    elif level == "ordinal":
        cumulative = np.concatenate([[0.0], np.cumsum(marginals)])
        low, high = np.minimum(c, kk), np.maximum(c, kk)
        # sum of n_g for g from low to high, minus half of the two ends
        delta = (cumulative[high + 1] - cumulative[low] - (marginals[c] + marginals[kk]) / 2) ** 2
    else:
        raise ValueError(f"level {level!r} is not nominal, ordinal, interval or ratio")

    observed = (coincidence * delta).sum()
    expected = (np.outer(marginals, marginals) * delta).sum() / (n - 1)
    if expected == 0:
        return float("nan")
    return float(1 - observed / expected)


def spearman(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """Spearman's rho and its two-sided p-value; NaN where either side is constant or n < 3."""
    from scipy import stats

    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.size < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return (float("nan"), float("nan"))
    result = stats.spearmanr(a, b)
    return (float(result.statistic), float(result.pvalue))
