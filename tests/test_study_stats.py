"""The study's statistics on data with a known answer: a published worked example, hand-worked
corrections, simulated studies with a real effect (found) and without one (false positives at
the stated rate), and counterbalancing that is balanced."""

from __future__ import annotations

import itertools
from collections import Counter

import numpy as np
import pytest

from music2video.study import stats
from music2video.study.design import balanced_latin_square_row, square_rows

# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", section C: 4 observers,
# 12 units, values 1-5, missing ratings; the paper's alphas for each metric.
KRIPPENDORFF_EXAMPLE = [
    [1, 2, 3, 3, 2, 1, 4, 1, 2, None, None, None],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, None, 3],
    [None, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, None],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, None],
]
KRIPPENDORFF_PUBLISHED = {"nominal": 0.743, "ordinal": 0.815, "interval": 0.849, "ratio": 0.797}


@pytest.mark.parametrize("level", list(KRIPPENDORFF_PUBLISHED))
def test_krippendorff_alpha_matches_the_published_worked_example(level):
    data = np.array([[np.nan if v is None else v for v in row] for row in KRIPPENDORFF_EXAMPLE], float)
    assert stats.krippendorff_alpha(data, level=level) == pytest.approx(KRIPPENDORFF_PUBLISHED[level], abs=0.0005)


def test_krippendorff_alpha_is_one_for_perfect_agreement_and_near_zero_for_chance():
    perfect = np.tile(np.arange(1, 6, dtype=float), (4, 3))
    assert stats.krippendorff_alpha(perfect, level="ordinal") == pytest.approx(1.0)
    rng = np.random.default_rng(0)
    chance = rng.integers(1, 6, size=(30, 40)).astype(float)
    assert abs(stats.krippendorff_alpha(chance, level="ordinal", values=range(1, 6))) < 0.05
    assert np.isnan(stats.krippendorff_alpha(np.full((3, 4), 3.0)))  # one value used: undefined


def test_holm_matches_a_hand_worked_example():
    # sorted: 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, then max(0.06, 0.04*1) = 0.06
    assert stats.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert stats.holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])  # 0.5 * 2, and never below a smaller p's


def test_effect_sizes_have_the_documented_sign_and_range():
    higher, lower = [5, 4, 5, 4, 5, 4], [2, 1, 2, 1, 2, 1]
    assert stats.wilcoxon_paired(higher, lower).effect == pytest.approx(1.0)
    assert stats.wilcoxon_paired(lower, higher).effect == pytest.approx(-1.0)
    assert stats.mann_whitney(higher, lower).effect == pytest.approx(1.0)
    assert stats.mann_whitney(lower, higher).effect == pytest.approx(-1.0)
    same = stats.wilcoxon_paired([3, 3, 3], [3, 3, 3])
    assert (same.p, same.effect) == (1.0, 0.0)


def _likert(rng, mean: float, size) -> np.ndarray:
    """Ratings 1-5: a normal latent score rounded and clipped, as a participant's ratings are."""
    return np.clip(np.rint(rng.normal(mean, 1.0, size)), 1, 5)


def _within_study(rng, participants: int, effect: float) -> float:
    """p of the Wilcoxon test on participants' means of 3 songs per condition; each participant
    has their own leniency, shared by both conditions (what pairing removes)."""
    leniency = rng.normal(0, 0.7, (participants, 1))
    a = _likert(rng, 3.0 + effect + leniency, (participants, 3)).mean(axis=1)
    b = _likert(rng, 3.0 + leniency, (participants, 3)).mean(axis=1)
    return stats.wilcoxon_paired(a, b).p


def _between_study(rng, participants: int, effect: float) -> float:
    a = _likert(rng, 3.0 + effect + rng.normal(0, 0.7, (participants, 1)), (participants, 3)).mean(axis=1)
    b = _likert(rng, 3.0 + rng.normal(0, 0.7, (participants, 1)), (participants, 3)).mean(axis=1)
    return stats.mann_whitney(a, b).p


ALPHA = 0.05
SIMULATED_STUDIES = 600  # about 4 s of tests on a 2-core machine


def _band(studies: int) -> tuple[float, float]:
    """Three binomial standard deviations around ALPHA over ``studies`` null studies."""
    sd = (ALPHA * (1 - ALPHA) / studies) ** 0.5
    return ALPHA - 3 * sd, ALPHA + 3 * sd


@pytest.fixture(scope="module")
def null_p_values() -> dict[str, np.ndarray]:
    """p-values of many simulated studies without an effect (20 participants per condition)."""
    rng = np.random.default_rng(2)
    return {study.__name__: np.array([study(rng, 20, 0.0) for _ in range(SIMULATED_STUDIES)]) for study in (_within_study, _between_study)}


@pytest.mark.parametrize(("study", "participants"), [(_within_study, 30), (_between_study, 60)], ids=["wilcoxon", "mann-whitney"])
def test_a_real_effect_is_found(study, participants):
    """Half a scale point (a medium effect): found in most studies of a usual size (a
    between-subject design needs about twice the participants for the same power)."""
    rng = np.random.default_rng(1)
    found = np.mean([study(rng, participants, 0.5) < ALPHA for _ in range(100)])
    assert found > 0.7


@pytest.mark.slow
@pytest.mark.parametrize("study", ["_within_study", "_between_study"], ids=["wilcoxon", "mann-whitney"])
def test_without_an_effect_false_positives_come_at_the_stated_rate(null_p_values, study):
    rate = float(np.mean(null_p_values[study] < ALPHA))
    low, high = _band(SIMULATED_STUDIES)
    assert low <= rate <= high, f"false-positive rate {rate:.3f} outside {low:.3f}..{high:.3f}"


@pytest.mark.slow
def test_holm_keeps_the_family_wise_error_at_alpha_over_five_dimensions(null_p_values):
    families = null_p_values["_within_study"].reshape(-1, 5)  # 120 studies of 5 dimensions each
    corrected = np.mean([min(stats.holm(family)) <= ALPHA for family in families])
    uncorrected = np.mean(families.min(axis=1) <= ALPHA)
    assert corrected <= _band(len(families))[1]
    assert uncorrected > 0.15  # five uncorrected tests are wrong about 1 - 0.95**5 = 23% of the time


def test_bootstrap_interval_covers_the_true_mean_at_about_its_level():
    rng = np.random.default_rng(4)
    covered = []
    for seed in range(120):
        sample = _likert(rng, 3.3, 25)
        low, high = stats.bootstrap_mean_ci(sample, resamples=999, seed=seed)
        covered.append(low <= TRUE_MEAN_3_3 <= high)
    assert 0.87 <= np.mean(covered) <= 0.99
    assert stats.bootstrap_mean_ci([4, 4, 4]) == (4.0, 4.0)


def _true_mean_of_likert(mean: float) -> float:
    rng = np.random.default_rng(99)
    return float(_likert(rng, mean, 2_000_000).mean())


TRUE_MEAN_3_3 = _true_mean_of_likert(3.3)


@pytest.mark.parametrize("n", [2, 3, 4, 5, 6, 7])
def test_balanced_latin_square_balances_positions_and_neighbours(n):
    rows = [balanced_latin_square_row(n, row) for row in range(square_rows(n))]
    assert all(sorted(row) == list(range(n)) for row in rows)
    for position in range(n):  # every item equally often at every position
        assert len(set(Counter(row[position] for row in rows).values())) == 1
    neighbours = Counter((row[i], row[i + 1]) for row in rows for i in range(n - 1))
    assert set(neighbours) == set(itertools.permutations(range(n), 2))  # every ordered pair ...
    assert len(set(neighbours.values())) == 1  # ... equally often
