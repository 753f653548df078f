"""Mood (valence and arousal) of the structure stage on real recordings with documented moods.

The labelled set is real orchestral and game music from two Debian packages, fetched with
``apt-get download`` and unpacked (``dpkg-deb -x``) into the cache folder, so nothing is installed
system-wide:

* ``wesnoth-1.16-music`` (Battle for Wesnoth, GPL-2+): 41 recorded orchestral pieces;
* ``flare-game`` (Flare, CC BY-SA 3.0): the fantasycore soundtrack, 12 pieces.

Each labelled track has an expected sign per axis, taken from the use the game documents for it
(its title and where the game plays it: the victory and defeat jingles, battle and boss
themes, a lament for a dead king, a sanctuary, a love theme). An axis whose sign the use does
not make clear is left unlabelled (``None``) instead of guessed: an epic battle theme is
surely high-arousal, but may be heroic or grim. See ``LABELS`` for every track and reason.

Printed: per track, the expected and predicted signs, then sign-correct axes out of N for

* **ours** — ``music.mood_from_cues`` with the weights in ``music.py`` (in-sample: they were
  fitted on this set), and with the weights fitted leave-one-out (each track predicted by a
  model that never saw it: the honest figure). The fit is a logistic regression per axis on
  standardised cues, constrained to the signs the literature reports (a wrong-signed cue is
  dropped and the rest refitted) and with balanced classes (the set has more dark tracks than
  bright ones, which must not become every song's prior);
* **before** — the mood the dsp listener computed before this module (its formula is
  reproduced below from the cues it used);
* **simple baseline** — valence = major mode, arousal = tempo above 110 BPM (Hevner 1937).

``--fit`` refits the logistic weights on all labelled tracks and prints them as Python to paste
into ``music.py``.

    python benchmarks/bench_mood.py [--cache DIR] [--fit] [--refresh]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("NUMBA_CACHE_DIR", str(Path(tempfile.gettempdir()) / "music2video-numba"))

import numpy as np  # noqa: E402

PACKAGES = {"wesnoth-1.16-music": "usr/share/games/wesnoth/1.16/data/core/music", "flare-game": "usr/share/games/flare/mods/fantasycore/music"}

# (package, file, expected valence sign, expected arousal sign, reason). +1/-1, or None where
# the documented use does not make the side clear.
LABELS: list[tuple[str, str, int | None, int | None, str]] = [
    ("wesnoth-1.16-music", "victory.ogg", +1, +1, "fanfare played when a scenario is won"),
    ("wesnoth-1.16-music", "victory2.ogg", +1, +1, "second victory fanfare"),
    ("wesnoth-1.16-music", "traveling_minstrels.ogg", +1, +1, "minstrels' dance tune"),
    ("wesnoth-1.16-music", "defeat.ogg", -1, -1, "jingle played when a scenario is lost"),
    ("wesnoth-1.16-music", "defeat2.ogg", -1, -1, "second defeat jingle"),
    ("wesnoth-1.16-music", "sad.ogg", -1, -1, "'Sad': played for deaths and mourning"),
    ("wesnoth-1.16-music", "the_king_is_dead.ogg", -1, -1, "lament for a dead king"),
    ("wesnoth-1.16-music", "nunc_dimittis.ogg", -1, -1, "funeral canticle ('now let your servant depart')"),
    ("wesnoth-1.16-music", "battle.ogg", None, +1, "battle theme"),
    ("wesnoth-1.16-music", "battle-epic.ogg", None, +1, "epic battle theme"),
    ("wesnoth-1.16-music", "frantic.ogg", -1, +1, "'Frantic': desperate fighting"),
    ("wesnoth-1.16-music", "vengeful.ogg", -1, +1, "'Vengeful Pursuit'"),
    ("wesnoth-1.16-music", "weight_of_revenge.ogg", -1, +1, "'Weight of Revenge'"),
    ("wesnoth-1.16-music", "siege_of_laurelmor.ogg", None, +1, "a city under siege: battle"),
    ("wesnoth-1.16-music", "the_city_falls.ogg", -1, None, "a city is lost"),
    ("wesnoth-1.16-music", "suspense.ogg", -1, None, "'Suspense'"),
    ("wesnoth-1.16-music", "love_theme.ogg", +1, -1, "love theme"),
    ("wesnoth-1.16-music", "silvan_sanctuary.ogg", +1, -1, "'Silvan Sanctuary': a peaceful elven refuge"),
    ("flare-game", "battle_theme.ogg", None, +1, "played in combat"),
    ("flare-game", "boss_theme.ogg", -1, +1, "played when fighting a boss"),
    ("flare-game", "safe_room_theme.ogg", +1, -1, "played in safe rooms, where the player rests"),
    ("flare-game", "town_theme.ogg", +1, -1, "played in the peaceful town"),
    ("flare-game", "dungeon_theme.ogg", -1, None, "played in dungeons"),
    ("flare-game", "unrest_theme.ogg", -1, None, "'Unrest'"),
]

SIMPLE_TEMPO_SPLIT_BPM = 110.0


def default_cache() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "music2video" / "moodset"


def fetch(cache: Path) -> dict[str, Path]:
    """Unpacked music folder per package, downloading the .deb files on first use."""
    folders = {}
    for package, inner in PACKAGES.items():
        root = cache / package
        if not (root / inner).is_dir():
            cache.mkdir(parents=True, exist_ok=True)
            subprocess.run(["apt-get", "download", package], cwd=cache, check=True)
            deb = next(cache.glob(f"{package}_*.deb"))
            subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
            deb.unlink()
        folders[package] = root / inner
    return folders


def measure(cache: Path, refresh: bool) -> dict[str, dict]:
    """Cues, key and tempo per labelled track (cached in cues.json beside the audio)."""
    from music2video.decode import ANALYSIS_RATE_HZ, load_audio
    from music2video.structure import analyze_structure

    store = cache / "cues.json"
    known = {} if refresh or not store.exists() else json.loads(store.read_text())
    folders = fetch(cache)
    for package, name, *_ in LABELS:
        if name in known:
            continue
        samples = load_audio(folders[package] / name, sample_rate_hz=ANALYSIS_RATE_HZ)
        analysis = analyze_structure(samples, ANALYSIS_RATE_HZ)
        known[name] = {
            "cues": analysis.mood.cues,
            "key": analysis.musical_key.name if analysis.musical_key else None,
            "tempo_bpm": analysis.tempo_bpm,
            "duration_s": analysis.duration_s,
            "energy_mean": float(np.mean(analysis.energy)),
        }
        print(f"measured {name}", file=sys.stderr)
        store.write_text(json.dumps(known, indent=1))
    return known


# ------------------------------------------------------------------------------------------
# Fitting


def fit(rows: list[dict[str, float]], signs: list[int], cues: tuple[str, ...], positive: set[str], negative: set[str]):
    """Logistic regression of ``signs`` on standardised ``cues``, constrained: a cue in
    ``positive`` (``negative``) whose weight comes out negative (positive) is dropped and the
    model refitted. Returns (centres, scales, weights, bias)."""
    from sklearn.linear_model import LogisticRegression

    matrix = np.array([[row.get(c, math.nan) for c in cues] for row in rows], dtype=float)
    centres = np.nanmean(matrix, axis=0)
    scales = np.nanstd(matrix, axis=0) + 1e-9
    z = np.nan_to_num((matrix - centres) / scales)  # a missing cue counts as average
    active = list(range(len(cues)))
    while True:
        if not active:  # every cue had the wrong sign: the prior odds alone
            return dict(zip(cues, centres, strict=True)), dict(zip(cues, scales, strict=True)), {}, 0.0
        # Balanced classes: the labelled set has more dark tracks than bright ones (game
        # soundtracks are mostly battles), and that share must not become every song's prior.
        model = LogisticRegression(C=1.0, class_weight="balanced").fit(z[:, active], signs)
        weights = dict(zip([cues[i] for i in active], model.coef_[0], strict=True))
        wrong = [c for c, w in weights.items() if (c in positive and w < 0) or (c in negative and w > 0)]
        if not wrong:
            break
        active = [i for i in active if cues[i] not in wrong]
    return (
        dict(zip(cues, centres, strict=True)),
        dict(zip(cues, scales, strict=True)),
        weights,
        float(model.intercept_[0]),
    )


AROUSAL_CUES = ("loudness_dbfs", "tempo_bpm", "onset_density_hz", "spectral_flux")
VALENCE_CUES = ("major_strength", "key_clarity", "brightness", "spectral_flatness_db")


def fit_axis(rows, signs, axis: str):
    """The constrained fit of one axis (see ``fit``)."""
    if axis == "arousal":
        return fit(rows, signs, AROUSAL_CUES, positive=set(AROUSAL_CUES), negative=set())
    return fit(
        rows, signs, VALENCE_CUES, positive={"major_strength", "key_clarity", "brightness"}, negative={"spectral_flatness_db"}
    )


def predict(model, cues: dict[str, float]) -> float:
    centres, scales, weights, bias = model
    return bias + sum(w * ((cues[c] - centres[c]) / scales[c] if c in cues else 0.0) for c, w in weights.items())


# ------------------------------------------------------------------------------------------
# Baselines


def before(cues: dict[str, float], energy_mean: float) -> tuple[float, float]:
    """The dsp listener's formulas before music.py (weights chosen by hand, not measured)."""
    tempo = min(max((cues.get("tempo_bpm", 120.0) - 60.0) / 120.0, 0.0), 1.0)
    density = min(cues["onset_density_hz"] / 6.0, 1.0)
    brightness = cues["brightness"]
    arousal = 2 * (0.40 * energy_mean + 0.25 * density + 0.20 * tempo + 0.15 * brightness) - 1
    mode = cues.get("major_strength", 0.5)
    consonance = max(cues.get("key_clarity", 0.0), 0.0)
    valence = 2 * (0.45 * mode + 0.20 * tempo + 0.20 * brightness + 0.15 * consonance) - 1
    return valence, arousal


def simple(cues: dict[str, float]) -> tuple[float, float]:
    valence = 1.0 if cues.get("major_strength", 0.5) >= 0.5 else -1.0
    arousal = 1.0 if cues.get("tempo_bpm", 0.0) >= SIMPLE_TEMPO_SPLIT_BPM else -1.0
    return valence, arousal


def sign(x: float) -> int:
    return 1 if x >= 0 else -1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", type=Path, default=default_cache())
    parser.add_argument("--fit", action="store_true", help="print weights fitted on all labelled tracks")
    parser.add_argument("--refresh", action="store_true", help="measure the cues again")
    args = parser.parse_args()

    from music2video.music import mood_from_cues

    measured = measure(args.cache, args.refresh)
    names = [name for _, name, *_ in LABELS]
    expected = {"valence": {n: v for _, n, v, _, _ in LABELS}, "arousal": {n: a for _, n, _, a, _ in LABELS}}

    # Leave-one-out predictions per axis.
    loo: dict[str, dict[str, float]] = {"valence": {}, "arousal": {}}
    for axis in ("valence", "arousal"):
        labelled = [n for n in names if expected[axis][n] is not None]
        for held in labelled:
            train = [n for n in labelled if n != held]
            model = fit_axis([measured[n]["cues"] for n in train], [expected[axis][n] for n in train], axis)
            loo[axis][held] = predict(model, measured[held]["cues"])

    systems = {
        "ours (music.py weights)": lambda n: (lambda m: (m.valence, m.arousal))(mood_from_cues(measured[n]["cues"])),
        "ours, leave-one-out fit": lambda n: (loo["valence"].get(n, 0.0), loo["arousal"].get(n, 0.0)),
        "before (hand-set dsp formula)": lambda n: before(measured[n]["cues"], measured[n]["energy_mean"]),
        "simple: major mode / tempo >= 110": lambda n: simple(measured[n]["cues"]),
    }
    print(f"{'track':28s} {'key':9s} {'bpm':>5s}  expected  " + "  ".join(f"{s[:14]:>14s}" for s in systems))
    for name in names:
        exp = "".join("?" if expected[axis][name] is None else "+-"[expected[axis][name] < 0] for axis in ("valence", "arousal"))
        preds = []
        for system in systems.values():
            v, a = system(name)
            preds.append(f"{v:+.2f} {a:+.2f}")
        print(f"{name[:28]:28s} {str(measured[name]['key'])[:9]:9s} {measured[name]['tempo_bpm']:5.0f}  V{exp[0]} A{exp[1]}    " + "  ".join(f"{p:>14s}" for p in preds))
    print()
    for label, system in systems.items():
        correct = {"valence": 0, "arousal": 0}
        total = {"valence": 0, "arousal": 0}
        for name in names:
            v, a = system(name)
            for axis, value in (("valence", v), ("arousal", a)):
                if expected[axis][name] is not None:
                    total[axis] += 1
                    correct[axis] += sign(value) == expected[axis][name]
        both = correct["valence"] + correct["arousal"]
        print(
            f"{label:36s} sign-correct axes {both}/{total['valence'] + total['arousal']}"
            f"  (valence {correct['valence']}/{total['valence']}, arousal {correct['arousal']}/{total['arousal']})"
        )

    if args.fit:
        print("\n# Fitted on all labelled tracks by benchmarks/bench_mood.py --fit:")
        centres, scales = {}, {}
        for axis in ("arousal", "valence"):
            labelled = [n for n in names if expected[axis][n] is not None]
            c, s, w, b = fit_axis([measured[n]["cues"] for n in labelled], [expected[axis][n] for n in labelled], axis)
            centres.update(c)
            scales.update(s)
            print(f"{axis.upper()}_WEIGHTS = {{{', '.join(f'{k!r}: {v:.3f}' for k, v in w.items())}}}")
            print(f"{axis.upper()}_BIAS = {b:.3f}")
        print(f"CUE_CENTRES = {{{', '.join(f'{k!r}: {v:.4g}' for k, v in centres.items())}}}")
        print(f"CUE_SCALES = {{{', '.join(f'{k!r}: {v:.4g}' for k, v in scales.items())}}}")


if __name__ == "__main__":
    main()
