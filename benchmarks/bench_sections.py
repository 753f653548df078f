"""Section boundaries, repetition labels and roles of the structure stage on the real-music dev set.

Reads the development set that ``benchmarks/devset/build.py`` builds (``<id>.wav`` and
``<id>.json`` with ``sections: [{start_s, label}]``; pieces without section marks are skipped)
and scores, per piece and on average:

* role agreement: the share of the song's time where our role (intro, verse, chorus, bridge,
  outro) is the score's section name (its "ending" counts as our "outro");
* boundary hit rate (mir_eval.segment.detection, F-measure, first and last boundary trimmed) at
  ±0.5 s and ±3 s;
* pairwise label F (mir_eval.segment.pairwise): do sections that the score repeats get the
  same letter?

beside two baselines computed in the same run from the same beats and features:

* **librosa agglomerative**: ``librosa.segment.agglomerative`` on beat-synchronous MFCC and
  chroma, asked for as many segments as the truth has (an oracle count, which favours it);
  every segment gets its own label;
* **no repeats** (labels only): our boundaries with every section labelled differently.

The song's key in analysis.json is checked against the key the score states (``KEYS``),
beside the key from the dsp listener's CQT chroma. Roles are compared with the rule used before this benchmark (``roles_before``). Also printed
per piece: our roles and the song's mood quadrant, to check the vocabulary (a
metal song should not be six bridges and a summer holiday).

    python benchmarks/bench_sections.py [--devset DIR] [--only ID ...]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("NUMBA_CACHE_DIR", str(Path(tempfile.gettempdir()) / "music2video-numba"))

import numpy as np  # noqa: E402

WINDOWS_S = (0.5, 3.0)


def default_devset() -> Path:
    """Where ``benchmarks/devset/build.py`` puts the dev set (its own ``devset_dir``)."""
    sys.path.insert(0, str(Path(__file__).parent / "devset"))
    from build import devset_dir

    return devset_dir()


def truth_intervals(truth: dict) -> tuple[np.ndarray, list[str]]:
    starts = [s["start_s"] for s in truth["sections"]]
    ends = [*starts[1:], truth["duration_s"]]
    # Silence before the first mark belongs to the first section, as in our analysis.
    starts[0] = 0.0
    return np.array([starts, ends]).T, [s["label"] for s in truth["sections"]]


def librosa_agglomerative(samples: np.ndarray, rate_hz: int, beats_s: list[float], k: int, duration_s: float) -> np.ndarray:
    """Boundaries (s) from librosa's agglomerative segmentation of beat-synchronous MFCC+chroma."""
    import librosa

    hop = 512
    mfcc = librosa.feature.mfcc(y=samples, sr=rate_hz, n_mfcc=14, hop_length=hop)[1:]
    chroma = librosa.feature.chroma_stft(y=samples, sr=rate_hz, hop_length=hop, tuning=0.0)
    frames = librosa.time_to_frames(np.asarray(beats_s), sr=rate_hz, hop_length=hop)
    features = np.vstack([librosa.util.normalize(mfcc, axis=1), chroma])
    synced = librosa.util.sync(features, frames[frames < features.shape[1]], aggregate=np.mean)
    k = max(1, min(k, synced.shape[1]))
    bounds = librosa.segment.agglomerative(synced, k)
    beat_times = np.concatenate([[0.0], np.asarray(beats_s)])[: synced.shape[1]]
    return np.unique(np.concatenate([[0.0], beat_times[bounds], [duration_s]]))


ROLE_NAMES = {"ending": "outro"}  # the dev set's names for our roles

# The key of each dev-set piece whose score makes it unambiguous: the chord chart in the
# manifest (tonic chord first, or a ii-V-I that resolves to it) or the published key of the
# corpus piece. Modal or blues charts (disco, funk, kfunk) and pieces whose key the manifest
# does not give are left out.
KEYS = {
    "metal-170": "E minor", "metal-150": "A minor", "rock-128": "A major", "rock-silent-intro-112": "G major",
    "rock-tempo-step-120-144": "D major", "rock-16beat-halftime-84": "C major", "rock-50s-shuffle-176": "A major",
    "softrock-96": "F major", "rockwaltz-138": "E major", "folkrock-rit-132": "G major", "trance-138": "A minor",
    "trance-128": "D minor", "16beat-dance-124": "C minor", "swing-140": "C major", "fastswing-196": "Bb major",
    "jazzwaltz-150": "C major", "slowjazz-68": "Eb major", "bossanova-132": "C major", "swing68-66": "F major",
    "countrywaltz-108": "G major", "bluegrass-184": "G major", "folk-accel-100-126": "D major",
    "march68-112": "C major", "polka-tempo-step-110-132": "F major", "stringballad-72": "C major",
    "viennese-waltz-180": "D major", "march-116": "Bb major", "hymn-silent-intro-76": "G major",
    "mozart-k545-allegro-124": "C major", "joplin-maple-leaf-rag-92": "Ab major",
    "beethoven-op18no1-scherzo-3-4-132": "F major", "bach-chorale-bwv66.6-84": "F# minor",
}  # fmt: skip


def roles_before(labels: list[str], energies: list[float]) -> list[str]:
    """The role rule before it was measured here (structure.py until this benchmark): edges
    intro/outro whatever their length, every other one-off section a bridge."""
    if len(labels) == 1:
        return ["verse"]
    last = len(labels) - 1
    positions = {label: [i for i, l in enumerate(labels) if l == label] for label in labels}
    mean_energy = {label: float(np.mean([energies[i] for i in where])) for label, where in positions.items()}
    at_edges_only = {label for label, where in positions.items() if set(where) <= {0, last}}
    repeated = [label for label, where in positions.items() if len(where) > 1 and label not in at_edges_only]
    chorus = max(repeated, key=mean_energy.get) if repeated else None
    if chorus is None and len(labels) >= 3:
        chorus = labels[max(range(1, last), key=lambda i: energies[i])]
    roles = []
    for index, label in enumerate(labels):
        if label == chorus:
            roles.append("chorus")
        elif label in at_edges_only:
            roles.append("intro" if index == 0 else "outro")
        else:
            roles.append("verse" if len(positions[label]) > 1 else "bridge")
    return roles


def role_agreement(ref: np.ndarray, ref_labels: list[str], sections, duration_s: float) -> float:
    """Share of the song's time where our role equals the score's section name."""
    grid = np.arange(0.0, duration_s, 0.1)
    names = [ROLE_NAMES.get(label, label) for label in ref_labels]
    truth = np.array([names[max(np.searchsorted(ref[:, 0], t, side="right") - 1, 0)] for t in grid])
    starts = np.array([s.start_s for s in sections])
    ours = np.array([sections[max(np.searchsorted(starts, t, side="right") - 1, 0)].role for t in grid])
    return float(np.mean(truth == ours))


def intervals_from_bounds(bounds: np.ndarray) -> np.ndarray:
    return np.array([bounds[:-1], bounds[1:]]).T


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devset", type=Path, default=default_devset())
    parser.add_argument("--only", nargs="*")
    args = parser.parse_args()

    import mir_eval

    from music2video.decode import ANALYSIS_RATE_HZ, load_audio
    from music2video.structure import analyze_structure

    pieces = sorted(p for p in args.devset.glob("*.json") if p.name != "index.json")
    if args.only:
        pieces = [p for p in pieces if p.stem in args.only]
    rows, keys = [], []
    print(f"{'piece':30s} {'n':>2s} {'ours':>4s}  {'ours F@0.5':>10s} {'F@3':>5s}  {'lib F@0.5':>9s} {'F@3':>5s}  {'pairF':>5s} {'norep':>5s}  roles / mood / key")
    for path in pieces:
        truth = json.loads(path.read_text())
        marked = len(truth.get("sections", [])) >= 2
        if not marked and path.stem not in KEYS:
            continue
        samples = load_audio(path.with_suffix(".wav"), sample_rate_hz=ANALYSIS_RATE_HZ)
        analysis = analyze_structure(samples, ANALYSIS_RATE_HZ)
        roles = " ".join(f"{s.label}:{s.role}" for s in analysis.sections)
        mood = analysis.mood.quadrant if analysis.mood else "-"
        key = analysis.musical_key.name if analysis.musical_key else "-"
        if path.stem in KEYS:
            keys.append({"id": path.stem, "truth": KEYS[path.stem], "ours": key, "cqt": cqt_key(samples, ANALYSIS_RATE_HZ)})
            key += f" (score: {KEYS[path.stem]}; CQT: {keys[-1]['cqt']})"
        if not marked:
            print(f"{path.stem[:30]:30s} {'':61s}  {roles} / {mood} / {key}")
            continue
        ref, ref_labels = truth_intervals(truth)
        duration = analysis.duration_s
        ref[-1, 1] = duration
        ours = np.array([[s.start_s, s.end_s] for s in analysis.sections])
        ours_labels = [s.label for s in analysis.sections]
        lib = intervals_from_bounds(librosa_agglomerative(samples, ANALYSIS_RATE_HZ, analysis.beats_s, len(ref), duration))
        row = {"id": path.stem, "n_true": len(ref), "n_ours": len(ours)}
        for name, est in (("ours", ours), ("librosa", lib)):
            for window in WINDOWS_S:
                _, _, f = mir_eval.segment.detection(ref, est, window=window, trim=True)
                row[f"{name}_f{window}"] = f
        row["pair_f"] = mir_eval.segment.pairwise(ref, ref_labels, ours, ours_labels)[2]
        row["norep_f"] = mir_eval.segment.pairwise(ref, ref_labels, ours, [str(i) for i in range(len(ours))])[2]
        row["bridges"] = sum(s.role == "bridge" for s in analysis.sections)
        row["role_agreement"] = role_agreement(ref, ref_labels, analysis.sections, duration)
        before = [
            s.model_copy(update={"role": role})
            for s, role in zip(analysis.sections, roles_before(ours_labels, [s.energy for s in analysis.sections]), strict=True)
        ]
        row["role_agreement_before"] = role_agreement(ref, ref_labels, before, duration)
        row["bridges_before"] = sum(s.role == "bridge" for s in before)
        rows.append(row)
        print(
            f"{path.stem[:30]:30s} {len(ref):2d} {len(ours):4d}  {row['ours_f0.5']:10.2f} {row['ours_f3.0']:5.2f}"
            f"  {row['librosa_f0.5']:9.2f} {row['librosa_f3.0']:5.2f}  {row['pair_f']:5.2f} {row['norep_f']:5.2f}  {roles} / {mood} / {key}"
        )
    if not rows:
        raise SystemExit(f"no pieces with section marks in {args.devset}: build the dev set first (benchmarks/devset/build.py)")
    mean = {k: float(np.mean([r[k] for r in rows])) for k in rows[0] if k != "id"}
    print(
        f"\n{len(rows)} pieces with section marks. Boundary hit rate (F, trimmed): ours {mean['ours_f0.5']:.2f} at ±0.5 s, "
        f"{mean['ours_f3.0']:.2f} at ±3 s; librosa agglomerative (oracle k) {mean['librosa_f0.5']:.2f} / {mean['librosa_f3.0']:.2f}.\n"
        f"Pairwise label F: ours {mean['pair_f']:.2f}, no-repeat labels on our boundaries {mean['norep_f']:.2f}. "
        f"Sections per piece: truth {mean['n_true']:.1f}, ours {mean['n_ours']:.1f}.\n"
        f"Roles: agreement (share of time) {mean['role_agreement']:.2f}, bridges per piece {mean['bridges']:.2f}; "
        f"the rule before: {mean['role_agreement_before']:.2f}, {mean['bridges_before']:.2f} bridges per piece."
    )
    if keys:
        def score(system: str) -> str:
            exact = sum(k[system] == k["truth"] for k in keys)
            mode = sum(k[system].split()[-1] == k["truth"].split()[-1] for k in keys)
            return f"{exact}/{len(keys)} exact, mode {mode}/{len(keys)}"

        print(f"Key (analysis.json) {score('ours')}; CQT chroma as the dsp listener computes it: {score('cqt')}.")


def cqt_key(samples: np.ndarray, rate_hz: int) -> str:
    """The song key from the dsp listener's CQT chroma, as a baseline for the analysis' key."""
    from music2video.listen.dsp import _song_features
    from music2video.music import estimate_key

    frames = _song_features(samples, rate_hz)
    estimate = estimate_key(frames.chroma_mean(0.0, len(samples) / rate_hz))
    return estimate.name if estimate else "-"


if __name__ == "__main__":
    main()
