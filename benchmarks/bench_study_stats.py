"""How the study's tests behave on simulated studies: the false-positive rate without an effect
and the power with one, for the within-subject (Wilcoxon) and between-subject (Mann-Whitney)
designs, and the family-wise error over five dimensions with and without Holm.

Each simulated participant rates 3 songs per condition on a 1-5 scale: a normal latent score
(SD 1) with a per-participant leniency (SD 0.7), rounded and clipped, averaged per condition.

    python benchmarks/bench_study_stats.py [--studies 2000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from music2video.study import stats

ALPHA = 0.05


def _likert(rng, mean, size):
    return np.clip(np.rint(rng.normal(mean, 1.0, size)), 1, 5)


def within(rng, n, effect):
    leniency = rng.normal(0, 0.7, (n, 1))
    a = _likert(rng, 3.0 + effect + leniency, (n, 3)).mean(axis=1)
    b = _likert(rng, 3.0 + leniency, (n, 3)).mean(axis=1)
    return stats.wilcoxon_paired(a, b).p


def between(rng, n, effect):
    a = _likert(rng, 3.0 + effect + rng.normal(0, 0.7, (n, 1)), (n, 3)).mean(axis=1)
    b = _likert(rng, 3.0 + rng.normal(0, 0.7, (n, 1)), (n, 3)).mean(axis=1)
    return stats.mann_whitney(a, b).p


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=2000)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    started = time.perf_counter()
    print(f"{args.studies} simulated studies per row, alpha {ALPHA}")
    print("design   test          n/cond  effect  rejected")
    for name, study, test in (("within", within, "wilcoxon"), ("between", between, "mann-whitney")):
        for n in (10, 20, 40):
            for effect in (0.0, 0.3, 0.5):
                rate = np.mean([study(rng, n, effect) < ALPHA for _ in range(args.studies)])
                print(f"{name:8s} {test:13s} {n:6d}  {effect:6.1f}  {rate:8.3f}")
    nulls = np.array([within(rng, 20, 0.0) for _ in range(args.studies // 5 * 5)]).reshape(-1, 5)
    print(f"five dimensions, no effect, within n=20: any rejected {np.mean(nulls.min(axis=1) < ALPHA):.3f} uncorrected, "
          f"{np.mean([min(stats.holm(f)) <= ALPHA for f in nulls]):.3f} after Holm ({len(nulls)} studies)")
    print(f"{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
