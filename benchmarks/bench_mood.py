"""Mood (valence and arousal) of the structure stage on real recordings with documented moods.

Two labelled sets, scored separately, and the acceptance songs, only printed:

* **orchestral**: real orchestral and game music from two Debian packages, fetched with
  ``apt-get download`` and unpacked (``dpkg-deb -x``) into the cache folder, so nothing is
  installed system-wide: ``wesnoth-1.16-music`` (Battle for Wesnoth, GPL-2+, 41 recorded
  orchestral pieces) and ``flare-game`` (Flare, CC BY-SA 3.0, the fantasycore soundtrack, 12
  pieces). Each labelled track has an expected sign per axis, taken from the use the game
  documents for it (its title and where the game plays it: the victory and defeat jingles,
  battle and boss themes, a lament for a dead king, a sanctuary, a love theme). See ``LABELS``.
* **dev set**: the General MIDI renders of ``benchmarks/devset`` (built by its ``build.py``;
  ``--devset`` or ``$M2V_DEVSET_DIR``), labelled from the genre or style the manifest names
  (ballads, hymns and chorales low arousal; metal, fast dances and swing high). See
  ``DEVSET_LABELS``; the LMMS and Hydrogen demo productions name a project, not a style, and
  stay unlabelled.
* **acceptance** (printed, never fitted): the Frets on Fire rock and metal mixes that
  ``bench_beats_real.py`` builds (the muldjord pack is four metal songs: they should read
  tense/angry).

An axis whose sign the documented use or style does not make clear is left unlabelled
(``None``) instead of guessed: an epic battle theme is surely high-arousal, but may be heroic or
grim; a rock waltz may be either.

Printed: per track, the expected and predicted signs, then per set sign-correct axes (arousal
also per class: a model that calls everything excited gets every dance right) for

* **new** — ``music.mood_from_cues`` with the weights in ``music.py`` (in-sample: they were
  fitted on both sets), and the same recipe fitted leave-one-out over both sets pooled (each
  piece predicted by a model that never saw it: the honest figure). The fit is a logistic
  regression per axis on cues standardised by their median and interquartile range (robust to
  the produced music's long tails), constrained to the signs the literature reports (a
  wrong-signed cue is dropped and the rest refitted) and with balanced classes;
* **old** — the weights music.py had before the dev set was labelled (fitted on the orchestral
  set alone, mean/standard-deviation scaling), and that recipe leave-one-out on the orchestral
  set (the dev set never trained it, so its dev figure is already out of sample);
* **before** — the mood the dsp listener computed before music.py (its formula is reproduced
  below from the cues it used);
* **simple baseline** — valence = major mode, arousal = tempo above 110 BPM (Hevner 1937).

``--fit`` refits the logistic weights on all labelled pieces and prints them as Python to paste
into ``music.py``.

    python benchmarks/bench_mood.py [--cache DIR] [--devset DIR] [--fit] [--refresh]
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

# (dev-set piece id, expected valence sign, expected arousal sign, reason), from the genre or
# style the manifest (benchmarks/devset/manifest.toml) names; None where it does not say.
DEVSET_LABELS: list[tuple[str, int | None, int | None, str]] = [
    ("metal-170", -1, +1, "metal (mma metal1 groove) at 170 bpm: aggressive, driving"),
    ("metal-150", -1, +1, "metal (mma metal2 groove) at 150 bpm"),
    ("rock-128", None, +1, "uptempo rock groove at 128 bpm"),
    ("rock-silent-intro-112", None, None, "basic rock at 112 bpm: mid-tempo, neither side is clear"),
    ("rock-tempo-step-120-144", None, +1, "8-beat rock speeding up from 120 to 144 bpm"),
    ("rock-16beat-halftime-84", None, None, "16-beat rock in a half-time feel: slow pulse, busy hats"),
    ("rock-50s-shuffle-176", +1, +1, "fast 50s rock'n'roll shuffle, a dance style"),
    ("softrock-96", None, -1, "soft rock: named for its gentle sound"),
    ("rockwaltz-138", None, None, "rock waltz: the style does not say"),
    ("folkrock-rit-132", None, None, "folk rock that slows from 132 to 100 bpm"),
    ("trance-138", None, +1, "trance at 138 bpm: dance music"),
    ("trance-128", None, +1, "trance at 128 bpm: dance music"),
    ("disco-122", +1, +1, "disco (Boney M groove): dance music"),
    ("funk-104", None, None, "funk at 104 bpm: mid-tempo"),
    ("16beat-dance-124", None, +1, "16-beat dance groove"),
    ("kfunk-96", None, None, "funk at 96 bpm"),
    ("swing-140", None, None, "medium swing"),
    ("fastswing-196", None, +1, "fast swing at 196 bpm"),
    ("jazzwaltz-150", None, None, "jazz waltz: the style does not say"),
    ("slowjazz-68", None, -1, "slow jazz at 68 bpm"),
    ("bossanova-132", None, -1, "bossa nova: a soft, relaxed style whatever its tempo"),
    ("swing68-66", None, -1, "slow 6/8 swing at 66 bpm"),
    ("countrywaltz-108", None, None, "country waltz: the style does not say"),
    ("bluegrass-184", +1, +1, "fast bluegrass breakdown"),
    ("folk-accel-100-126", None, None, "folk speeding up from 100 to 126 bpm"),
    ("march68-112", None, +1, "6/8 march"),
    ("polka-tempo-step-110-132", +1, +1, "polka: a lively, cheerful dance"),
    ("stringballad-72", None, -1, "string ballad at 72 bpm"),
    ("viennese-waltz-180", +1, +1, "Viennese waltz: a fast, whirling dance"),
    ("march-116", None, +1, "military march"),
    ("hymn-silent-intro-76", +1, -1, "hymn at 76 bpm: calm, devotional"),
    ("bach-chorale-bwv66.6-84", None, -1, "Bach chorale: slow, sung, devotional"),
    ("bach-chorale-bwv269-96", None, -1, "Bach chorale: slow, sung, devotional"),
    ("mozart-k545-allegro-124", +1, None, "Mozart sonata allegro in C major: bright, but a solo piano"),
    ("joplin-maple-leaf-rag-92", +1, +1, "ragtime: a lively dance"),
    ("jig-6-8-pickup-116", +1, +1, "Irish jig: a lively dance"),
    ("jig-banish-misfortune-6-8-104", None, +1, "jig: a lively dance (modal tune)"),
    ("ska-160", +1, +1, "ska at 160 bpm: upbeat dance music"),
    ("60srock-136", None, +1, "60s rock at 136 bpm"),
    ("shuffleboggie-120", None, None, "shuffle boogie at 120 bpm: mid-tempo"),
    ("twist-150", +1, +1, "the twist: a fast, cheerful dance"),
    ("popballad-76", None, -1, "pop ballad at 76 bpm"),
    ("ballad68-60", None, -1, "6/8 ballad at 60 bpm"),
    ("rnb-100", None, None, "R&B groove: mid-tempo"),
    ("blues-92", None, None, "blues: the style does not say"),
    ("bigband-160", None, +1, "big band swing at 160 bpm"),
    ("charleston-200", +1, +1, "charleston: a fast, cheerful dance"),
    ("zydeco-132", +1, +1, "zydeco: a lively dance"),
    ("countryswing-170", +1, +1, "fast country swing"),
    ("westernswing-116", None, None, "western swing: mid-tempo"),
    ("waltz-96", None, None, "slow waltz: the style does not say"),
    ("tango-120", None, None, "tango: the style does not say"),
    ("salsa-180", None, +1, "salsa at 180 bpm: dance music"),
    ("samba-100", None, +1, "samba: carnival dance"),
    ("mambo-190", None, +1, "mambo at 190 bpm: dance music"),
    ("merengue-130", None, +1, "merengue: a fast dance"),
]

SIMPLE_TEMPO_SPLIT_BPM = 110.0

# The model music.py had before the dev set was labelled (2026-11-27): fitted on the orchestral
# set alone, cues standardised by mean and standard deviation. Kept here to print beside the
# new one in the same run.
OLD_CENTRES = {
    "loudness_dbfs": -25.89, "tempo_bpm": 130.5, "onset_density_hz": 1.889, "spectral_flux": 0.934,
    "major_strength": 0.3254, "key_clarity": 0.679, "brightness": 0.3513, "spectral_flatness_db": -33.86,
}  # fmt: skip
OLD_SCALES = {
    "loudness_dbfs": 5.361, "tempo_bpm": 20.74, "onset_density_hz": 0.9692, "spectral_flux": 0.1118,
    "major_strength": 0.2791, "key_clarity": 0.1578, "brightness": 0.1408, "spectral_flatness_db": 7.652,
}  # fmt: skip
OLD_AROUSAL = ({"loudness_dbfs": 0.838, "spectral_flux": 0.809}, 0.061)
OLD_VALENCE = ({"major_strength": 0.567, "key_clarity": 0.370, "brightness": 0.201, "spectral_flatness_db": -0.539}, -0.081)


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


def _analyse(path: Path) -> dict:
    from music2video.decode import ANALYSIS_RATE_HZ, load_audio
    from music2video.structure import analyze_structure

    samples = load_audio(path, sample_rate_hz=ANALYSIS_RATE_HZ)
    analysis = analyze_structure(samples, ANALYSIS_RATE_HZ)
    return {
        "cues": analysis.mood.cues,
        "key": analysis.musical_key.name if analysis.musical_key else None,
        "tempo_bpm": analysis.tempo_bpm,
        "duration_s": analysis.duration_s,
        "energy_mean": float(np.mean(analysis.energy)),
    }


def measure(store: Path, files: dict[str, Path], refresh: bool) -> dict[str, dict]:
    """Cues, key and tempo per file (name -> path), cached in the JSON file ``store``."""
    known = {} if refresh or not store.exists() else json.loads(store.read_text())
    for name, path in files.items():
        if name in known:
            continue
        known[name] = _analyse(path)
        print(f"measured {name}", file=sys.stderr)
        store.parent.mkdir(parents=True, exist_ok=True)
        store.write_text(json.dumps(known, indent=1))
    return {name: known[name] for name in files}


def devset_files(devset: Path) -> dict[str, Path]:
    missing = [piece for piece, *_ in DEVSET_LABELS if not (devset / f"{piece}.wav").exists()]
    if missing:
        sys.exit(f"the dev set in {devset} lacks {', '.join(missing)}: build it (python benchmarks/devset/build.py) or pass --devset")
    return {piece: devset / f"{piece}.wav" for piece, *_ in DEVSET_LABELS}


def acceptance_files() -> dict[str, Path]:
    """The Frets on Fire mixes (built by bench_beats_real.py's ``build_mix``); empty when the
    song packages are not installed."""
    import bench_beats_real

    return {song.name: bench_beats_real.build_mix(song, bench_beats_real.cache_dir()) for song in bench_beats_real.song_dirs()}


# ------------------------------------------------------------------------------------------
# Fitting


def fit(rows: list[dict[str, float]], signs: list[int], cues: tuple[str, ...], positive: set[str], negative: set[str], robust: bool = True):
    """Logistic regression of ``signs`` on standardised ``cues``, constrained: a cue in
    ``positive`` (``negative``) whose weight comes out negative (positive) is dropped and the
    model refitted. ``robust``: centre on the median and scale by the interquartile range / 1.349
    (the standard deviation of a normal distribution), so that one set's long tail (the renders'
    spectral flux) does not set the scale; else mean and standard deviation (the old recipe).
    Returns (centres, scales, weights, bias)."""
    from sklearn.linear_model import LogisticRegression

    matrix = np.array([[row.get(c, math.nan) for c in cues] for row in rows], dtype=float)
    if robust:
        centres = np.nanmedian(matrix, axis=0)
        q25, q75 = np.nanpercentile(matrix, [25, 75], axis=0)
        scales = (q75 - q25) / 1.349 + 1e-9
    else:
        centres = np.nanmean(matrix, axis=0)
        scales = np.nanstd(matrix, axis=0) + 1e-9
    z = np.nan_to_num((matrix - centres) / scales)  # a missing cue counts as average
    active = list(range(len(cues)))
    while True:
        if not active:  # every cue had the wrong sign: the prior odds alone
            return dict(zip(cues, centres, strict=True)), dict(zip(cues, scales, strict=True)), {}, 0.0
        # Balanced classes: the orchestral set has more dark tracks than bright ones, the dev
        # set more dances than ballads, and neither share must become every song's prior.
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


def fit_axis(rows, signs, axis: str, robust: bool = True):
    """The constrained fit of one axis (see ``fit``)."""
    if axis == "arousal":
        return fit(rows, signs, AROUSAL_CUES, positive=set(AROUSAL_CUES), negative=set(), robust=robust)
    return fit(
        rows, signs, VALENCE_CUES, positive={"major_strength", "key_clarity", "brightness"}, negative={"spectral_flatness_db"}, robust=robust
    )


def predict(model, cues: dict[str, float]) -> float:
    centres, scales, weights, bias = model
    return bias + sum(w * ((cues[c] - centres[c]) / scales[c] if c in cues else 0.0) for c, w in weights.items())


def old_model(cues: dict[str, float]) -> tuple[float, float]:
    valence = predict((OLD_CENTRES, OLD_SCALES, *OLD_VALENCE), cues)
    arousal = predict((OLD_CENTRES, OLD_SCALES, *OLD_AROUSAL), cues)
    return valence, arousal


def leave_one_out(pieces: list[tuple[str, dict, int | None, int | None]], train_sets: set[str], robust: bool) -> dict[str, dict[str, float]]:
    """Per axis, each labelled piece's logit from a model fitted on the labelled pieces of
    ``train_sets`` other than itself; pieces are (set:name, cues, valence sign, arousal sign)."""
    out: dict[str, dict[str, float]] = {"valence": {}, "arousal": {}}
    for index, axis in ((2, "valence"), (3, "arousal")):
        labelled = [p for p in pieces if p[index] is not None]
        for held in labelled:
            train = [p for p in labelled if p[0] != held[0] and p[0].split(":")[0] in train_sets]
            model = fit_axis([p[1] for p in train], [p[index] for p in train], axis, robust)
            out[axis][held[0]] = predict(model, held[1])
    return out


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
    parser.add_argument("--devset", type=Path, default=None, help="the built dev set (default: $M2V_DEVSET_DIR or the user cache)")
    parser.add_argument("--fit", action="store_true", help="print weights fitted on all labelled pieces")
    parser.add_argument("--refresh", action="store_true", help="measure the cues again")
    args = parser.parse_args()

    sys.path.insert(0, str(Path(__file__).parent / "devset"))
    from build import devset_dir

    from music2video.music import mood_from_cues, quadrant

    folders = fetch(args.cache)
    orchestral = measure(args.cache / "cues.json", {name: folders[package] / name for package, name, *_ in LABELS}, args.refresh)
    dev = measure(args.cache / "devset_cues.json", devset_files(args.devset or devset_dir()), args.refresh)
    acceptance = measure(args.cache / "acceptance_cues.json", acceptance_files(), args.refresh)

    measured = {f"orchestral:{n}": m for n, m in orchestral.items()} | {f"dev:{n}": m for n, m in dev.items()}
    pieces = [(f"orchestral:{n}", orchestral[n]["cues"], v, a) for _, n, v, a, _ in LABELS]
    pieces += [(f"dev:{n}", dev[n]["cues"], v, a) for n, v, a, _ in DEVSET_LABELS]
    expected = {"valence": {p[0]: p[2] for p in pieces}, "arousal": {p[0]: p[3] for p in pieces}}

    new_loo = leave_one_out(pieces, {"orchestral", "dev"}, robust=True)
    old_loo = leave_one_out(pieces, {"orchestral"}, robust=False)

    def old_recipe_loo(key: str) -> tuple[float, float]:
        if key.startswith("orchestral:"):
            return old_loo["valence"].get(key, 0.0), old_loo["arousal"].get(key, 0.0)
        return old_model(measured[key]["cues"])  # never trained on the dev set: already out of sample

    systems = {
        "new (music.py weights, in-sample)": lambda k: (lambda m: (m.valence, m.arousal))(mood_from_cues(measured[k]["cues"])),
        "new recipe, leave-one-out": lambda k: (new_loo["valence"].get(k, 0.0), new_loo["arousal"].get(k, 0.0)),
        "old (music.py weights before)": lambda k: old_model(measured[k]["cues"]),
        "old recipe, leave-one-out": old_recipe_loo,
        "before (hand-set dsp formula)": lambda k: before(measured[k]["cues"], measured[k]["energy_mean"]),
        "simple: major mode / tempo >= 110": lambda k: simple(measured[k]["cues"]),
    }
    print("valence and arousal per system: music.py's in -1..1 (mood_from_cues), the others log-odds; only signs are scored")
    print(f"{'piece':30s} {'key':9s} {'bpm':>5s}  expected  " + "  ".join(f"{s[:14]:>14s}" for s in systems))
    for key, *_ in pieces:
        exp = "".join("?" if expected[axis][key] is None else "+-"[expected[axis][key] < 0] for axis in ("valence", "arousal"))
        preds = [f"{v:+.2f} {a:+.2f}" for v, a in (system(key) for system in systems.values())]
        name = key.split(":", 1)[1]
        print(f"{name[:30]:30s} {str(measured[key]['key'])[:9]:9s} {measured[key]['tempo_bpm']:5.0f}  V{exp[0]} A{exp[1]}    " + "  ".join(f"{p:>14s}" for p in preds))

    for set_name in ("orchestral", "dev"):
        keys = [p[0] for p in pieces if p[0].startswith(set_name + ":")]
        print(f"\n{set_name} set ({len(keys)} pieces): sign-correct axes")
        for label, system in systems.items():
            hits = {(axis, s): 0 for axis in ("valence", "arousal") for s in (1, -1)}
            totals = dict.fromkeys(hits, 0)
            for key in keys:
                for axis, value in zip(("valence", "arousal"), system(key), strict=True):
                    if expected[axis][key] is not None:
                        totals[axis, expected[axis][key]] += 1
                        hits[axis, expected[axis][key]] += sign(value) == expected[axis][key]

            def count(axis: str) -> str:
                return f"{hits[axis, 1] + hits[axis, -1]}/{totals[axis, 1] + totals[axis, -1]}"

            both = sum(hits.values())
            print(
                f"  {label:36s} {both}/{sum(totals.values())}  (valence {count('valence')}, arousal {count('arousal')}:"
                f" high {hits['arousal', 1]}/{totals['arousal', 1]}, low {hits['arousal', -1]}/{totals['arousal', -1]})"
            )

    print("\nacceptance songs (Frets on Fire mixes; never fitted):")
    for name, m in acceptance.items():
        new = mood_from_cues(m["cues"])
        old_v, old_a = old_model(m["cues"])
        print(
            f"  {name[:24]:24s} {m['tempo_bpm']:5.0f} bpm  new {new.valence:+.2f} {new.arousal:+.2f} {new.quadrant:16s}"
            f"  old {math.tanh(old_v / 2):+.2f} {math.tanh(old_a / 2):+.2f} {quadrant(old_v, old_a)}"
        )

    if args.fit:
        print("\n# Fitted on all labelled pieces of both sets by benchmarks/bench_mood.py --fit:")
        centres, scales = {}, {}
        for index, axis in ((3, "arousal"), (2, "valence")):
            labelled = [p for p in pieces if p[index] is not None]
            c, s, w, b = fit_axis([p[1] for p in labelled], [p[index] for p in labelled], axis)
            centres.update(c)
            scales.update(s)
            print(f"{axis.upper()}_WEIGHTS = {{{', '.join(f'{k!r}: {v:.3f}' for k, v in w.items())}}}")
            print(f"{axis.upper()}_BIAS = {b:.3f}")
        print(f"CUE_CENTRES = {{{', '.join(f'{k!r}: {v:.4g}' for k, v in centres.items())}}}")
        print(f"CUE_SCALES = {{{', '.join(f'{k!r}: {v:.4g}' for k, v in scales.items())}}}")


if __name__ == "__main__":
    main()
