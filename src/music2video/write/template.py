"""The "template" storyboard writer: a small director's treatment without a language model.

``write_template_storyboard`` reads the listener's descriptions (dsp, clap or lalm) and the
song's structure and writes a :class:`~music2video.artifacts.Storyboard` that is fully
deterministic: the same inputs and ``seed`` always give byte-identical JSON.

The treatment, top to bottom:

1. **Affect.** The song's valence and arousal (-1..1) come from the description's features
   when a listener measured them (dsp), else from mood words found in its tags or text
   (clap, lalm: see ``MOOD_LEXICON``), else from the analysis' measured mood, else neutral.
   Their quadrant (happy, tense, sad, calm) picks the film's world: title, story, look,
   settings, lighting, actions.
2. **Style bible.** Look (the user's ``style`` first, verbatim), a five-colour palette derived
   from valence (hue), arousal (saturation) and brightness (lightness), lens, era, medium.
3. **Characters.** A protagonist in every story and, when a part of the song comes back (or
   the song has several parts), a companion. Each is described once; the description is
   pasted word for word into every prompt that shows them, so a text-to-video model draws
   the same person each time.
4. **Sections.** One treatment per analysis section. Sections that share a repetition label
   share motif, palette and setting (the chorus callback); different labels get different
   motifs while any are left. Motifs are the procedural ones the animatic renderer draws
   (``MOTIFS``), matched to the part's energy. Each distinct setting is a place of the set
   list (named after its head, described by the setting itself), and every shot names its
   section's place; the template writes no props.
5. **Shots.** Each planned shot keeps its id and times. Its kind follows its place in the
   section (an establishing shot first, then portrait, journey and motif detail in turn), its
   camera move follows its energy, and its prompt is assembled from the scene, camera and
   lighting, the style bible and the palette in words, within ``max_prompt_chars``.
"""

from __future__ import annotations

import colorsys
import hashlib
import json
import math
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass

from music2video.artifacts import (
    Analysis,
    Character,
    Descriptions,
    Place,
    Section,
    SectionTreatment,
    SegmentDescription,
    ShotPlan,
    Storyboard,
    StoryboardShot,
    StyleBible,
)
from music2video.music import Key, Mood
from music2video.settings import DEFAULT_MAX_PROMPT_CHARS

WRITER_NAME = "template"
SEED_MASK = 0x7FFFFFFF  # per-shot seeds are 31-bit so every backend (torch, numpy, JS) accepts them
MATCH_TOLERANCE_S = 0.05  # a description whose times are this close to a span's belongs to it

# Motifs the animatic renderer can draw, with the energy (0..1) each suits best and how the
# prompt says it. The names are a contract with music2video.render: do not rename.
MOTIFS = ("orbs", "waves", "rings", "rays", "grid", "particles", "ribbons", "tunnel")
MOTIF_ENERGY = {
    "orbs": 0.15,
    "waves": 0.3,
    "ribbons": 0.4,
    "rings": 0.5,
    "rays": 0.6,
    "particles": 0.7,
    "grid": 0.8,
    "tunnel": 0.9,
}
MOTIF_PHRASES = {
    "orbs": "glowing orbs of light",
    "waves": "rolling waves of light",
    "rings": "concentric rings of light",
    "rays": "shafts of light",
    "grid": "a glowing grid stretching to the horizon",
    "particles": "clouds of luminous particles",
    "ribbons": "ribbons of colour",
    "tunnel": "a tunnel of light",
}

# Camera moves by shot energy (upper bound, two options alternated shot by shot).
CAMERA_LADDER = [
    (0.2, ("static", "slow push in")),
    (0.4, ("slow push in", "crane up")),
    (0.6, ("orbit left", "crane up")),
    (0.8, ("handheld", "orbit right")),
    (1.01, ("whip pan", "handheld")),
]

NEGATIVE_PROMPT = (
    "blurry, low resolution, jpeg artifacts, flicker, distorted anatomy, extra limbs, deformed hands, "
    "text, subtitles, watermark, logo, frame borders"
)
NEGATIVE_PROMPT_CHARACTERS = ", duplicate people, changing clothes"

# Mood words that listeners use, placed on the valence/arousal circumplex (Russell 1980), so
# that clap and lalm descriptions (which carry words, not numbers) still set the film's affect.
MOOD_LEXICON: dict[str, tuple[float, float]] = {
    "euphoric": (0.75, 0.8), "excited": (0.6, 0.75), "exciting": (0.6, 0.75), "energetic": (0.4, 0.8),
    "joyful": (0.8, 0.4), "happy": (0.8, 0.4), "cheerful": (0.75, 0.45), "uplifting": (0.7, 0.45),
    "playful": (0.5, 0.55), "fun": (0.6, 0.5), "party": (0.6, 0.7), "epic": (0.3, 0.7),
    "triumphant": (0.6, 0.65), "hopeful": (0.5, 0.1), "romantic": (0.55, -0.1), "love": (0.6, 0.0),
    "tender": (0.55, -0.3), "warm": (0.5, -0.2), "serene": (0.45, -0.7), "peaceful": (0.5, -0.65),
    "calm": (0.35, -0.65), "relaxing": (0.4, -0.6), "relaxed": (0.4, -0.6), "soothing": (0.45, -0.6),
    "dreamy": (0.1, -0.55), "ambient": (0.1, -0.6), "meditative": (0.2, -0.7), "nostalgic": (-0.1, -0.3),
    "wistful": (-0.2, -0.35), "bittersweet": (-0.1, -0.2), "melancholic": (-0.5, -0.45),
    "melancholy": (-0.5, -0.45), "sad": (-0.75, -0.65), "sombre": (-0.6, -0.5), "somber": (-0.6, -0.5),
    "lonely": (-0.6, -0.5), "depressing": (-0.8, -0.6), "brooding": (-0.5, 0.0), "dark": (-0.5, 0.1),
    "mysterious": (-0.2, 0.1), "ominous": (-0.55, 0.35), "suspenseful": (-0.35, 0.5),
    "tense": (-0.45, 0.5), "anxious": (-0.5, 0.55), "aggressive": (-0.6, 0.8), "angry": (-0.75, 0.8),
    "intense": (-0.1, 0.85), "driving": (0.05, 0.75), "powerful": (0.2, 0.75), "heavy": (-0.3, 0.6),
}
MOOD_VOCABULARIES = ("mood", "moods", "emotion", "emotions")
BRIGHTNESS_WORDS = {"dark": 0.2, "warm": 0.5, "mellow": 0.4, "bright": 0.8, "brilliant": 0.85}

# One world per valence/arousal quadrant. {p} is the protagonist, {c} the companion.
WORLDS: dict[str, dict] = {
    "happy": {
        "anchor_hue": 35.0,  # amber
        "title_nouns": ["Daybreak", "Open Roads", "Summer Signal"],
        "moods": ["joyful", "euphoric"],
        "story": "{p} sets out at sunrise and the world seems to join in: streets, fields and rooftops wake to the beat",
        "companion_role": "{c} is the companion met along the way",
        "look": "sun-drenched, saturated colour, soft lens flares, warm film grain",
        "medium": "35mm colour film, vivid",
        "era": "present-day summer",
        "settings": [
            "a sunlit rooftop above the city",
            "a wide field of tall grass at golden hour",
            "a crowded summer street festival",
            "a seaside boardwalk with bright bunting",
            "an open highway through green hills",
            "a public swimming pool glittering in the sun",
        ],
        "lighting": ("soft golden-hour backlight", "bright midday sun with lens flares"),
        "portrait": (
            ["smiles and turns toward the light", "closes their eyes and sways gently"],
            ["laughs and spins with arms wide open", "shouts the chorus at the sky"],
        ),
        "moves": (["strolls across", "wanders through"], ["runs across", "dances through"]),
    },
    "tense": {
        "anchor_hue": 350.0,  # crimson
        "title_nouns": ["Pursuit", "Night Shift", "Pressure"],
        "moods": ["tense", "driving"],
        "story": "{p} is pursued through a city that will not sleep, the pressure building bar by bar until it breaks",
        "companion_role": "{c} is the shadow always one step behind",
        "look": "high contrast, hard shadows, wet reflective surfaces, neon accents",
        "medium": "digital cinema, anamorphic widescreen",
        "era": "near-future city at night",
        "settings": [
            "a rain-soaked neon alley at night",
            "an empty multi-storey car park under flickering lights",
            "a subway platform as a train thunders past",
            "a rooftop in a storm above a glowing city",
            "a concrete underpass lit by passing headlights",
            "a deserted factory floor full of hanging chains",
        ],
        "lighting": ("cold fluorescent light and deep shadows", "strobing neon and hard red side light"),
        "portrait": (
            ["stares into the lens, breathing hard", "glances back over one shoulder"],
            ["pushes forward against a gale of light", "clenches both fists as the ground shakes"],
        ),
        "moves": (["creeps through", "waits in the shadows of"], ["sprints through", "forces a way through"]),
    },
    "sad": {
        "anchor_hue": 220.0,  # blue
        "title_nouns": ["Elegy", "Blue Hour", "Winter Letters"],
        "moods": ["melancholic", "wistful"],
        "story": "{p} walks through the places of a lost summer, looking for something that has already gone",
        "companion_role": "{c} is the memory that appears whenever the music returns",
        "look": "muted, desaturated colour, soft focus, fog and rain on glass",
        "medium": "16mm film, soft grain",
        "era": "late 1990s winter",
        "settings": [
            "an empty train platform in the blue hour",
            "a quiet apartment with rain on the window",
            "a grey beach in winter",
            "a closed fairground under low clouds",
            "a snowy bus stop under a single streetlight",
            "an empty classroom at dusk",
        ],
        "lighting": ("dim blue twilight through fog", "cold streetlight in the rain"),
        "portrait": (
            ["looks down at an old photograph", "watches their breath fade in the cold"],
            ["cries out into the wind", "presses a hand against the glass"],
        ),
        "moves": (["walks slowly through", "waits alone in"], ["stumbles through", "runs, too late, through"]),
    },
    "calm": {
        "anchor_hue": 175.0,  # teal
        "title_nouns": ["Reverie", "Still Water", "Slow Light"],
        "moods": ["serene", "dreamy"],
        "story": "{p} drifts through still landscapes at the edge of sleep, where light moves slower than time",
        "companion_role": "{c} is the quiet guide who shows the way",
        "look": "soft pastel light, gentle haze, clean minimal compositions",
        "medium": "super 16mm film, gentle halation",
        "era": "timeless, no visible technology",
        "settings": [
            "a still lake at dawn",
            "a quiet forest clearing with drifting mist",
            "an observatory dome under the stars",
            "a field of white flowers under a pale sky",
            "a sand dune at first light",
            "a glasshouse full of ferns",
        ],
        "lighting": ("pale dawn light and drifting mist", "clear moonlight with a soft glow"),
        "portrait": (
            ["rests with eyes closed, barely moving", "looks up, lit softly from above"],
            ["reaches out to touch the light", "turns slowly, hair lifting in the air"],
        ),
        "moves": (["drifts through", "floats above"], ["glides through", "walks barefoot through"]),
    },
}

PROTAGONISTS = [
    ("the wanderer", "a lone figure in a long red coat and scuffed boots, dark hair tied back"),
    ("the dancer", "a young woman in a loose white shirt and grey trousers, barefoot, short silver hair"),
    ("the runner", "a lean young man in a faded blue track jacket with a white stripe, headphones around the neck"),
    ("the dreamer", "a tall woman in a mustard-yellow raincoat carrying a glass lantern"),
]
COMPANIONS = [
    ("the stranger", "a tall figure in a black suit and a white mask, one gold earring"),
    ("the child", "a small girl in a green knitted jumper holding a paper kite"),
    ("the old friend", "an old man in a brown corduroy jacket with a white beard and round glasses"),
]

# Colour names for turning hex palettes into words a text-to-video model understands.
HUE_NAMES = [
    (15, "red"), (40, "orange"), (55, "amber"), (70, "yellow"), (95, "lime"), (150, "green"),
    (185, "teal"), (200, "cyan"), (230, "azure"), (255, "blue"), (285, "violet"), (320, "magenta"),
    (345, "rose"), (360, "red"),
]


# --------------------------------------------------------------------------------------------
# Public entry point


def write_template_storyboard(
    analysis: Analysis,
    plan: ShotPlan,
    descriptions: Descriptions,
    style: str = "",
    seed: int = 0,
    lyrics_by_shot: dict[str, str] | None = None,
    max_prompt_chars: int = DEFAULT_MAX_PROMPT_CHARS,
) -> Storyboard:
    """Write a deterministic storyboard from the song's structure and a listener's descriptions.

    Args:
        analysis: sections (labels, roles, energy) and energy curves of the song.
        plan: the shots; each storyboard shot copies its id, start_s, end_s and section_index.
        descriptions: any listener's output (dsp, clap or lalm); missing features or tags fall
            back to words, then to the analysis, then to neutral values (listed in ``warnings``).
        style: the user's instruction for the look or story; used verbatim in the concept and
            the style bible, and in every prompt as far as ``max_prompt_chars`` allows.
        seed: seeds every choice (characters, settings, actions) and the per-shot seeds.
        lyrics_by_shot: the words sung during each shot (by shot id), copied into the shot's
            ``lyrics`` and its scene description for people; prompts stay visual.
        max_prompt_chars: the longest prompt, in characters (``write.max_prompt_chars``).

    Returns:
        ``Storyboard(writer="template")``, one ``StoryboardShot`` per planned shot, in order.
    """
    style = style.strip()
    warnings: list[str] = []

    # 1. Affect of the whole song
    song_energy = sum(analysis.energy) / len(analysis.energy) if analysis.energy else None
    song = _affect(descriptions.song, warnings, "the song", energy_hint=song_energy, measured=analysis.mood)
    world_name = _quadrant(song.valence, song.arousal)
    world = WORLDS[world_name]
    rng = _rng(seed, "story")

    # 2. Style bible
    base_look = world["look"]
    look = f"{style}; {base_look}" if style else base_look
    lens = _lens(song.arousal)
    style_bible = StyleBible(
        look=look,
        palette=_palette(song.valence, song.arousal, song.brightness),
        lens=lens,
        era=world["era"],
        medium=world["medium"],
    )

    # 3. Characters
    protagonist = Character(name=(pick := rng.choice(PROTAGONISTS))[0], description=pick[1])
    labels = [section.label for section in analysis.sections]
    refrain = _refrain_label(analysis.sections)
    companion: Character | None = None
    if refrain is not None or len(analysis.sections) >= 2:
        name, description = rng.choice(COMPANIONS)
        companion = Character(name=name, description=description)
    characters = [protagonist] + ([companion] if companion else [])
    # The companion appears where the refrain plays, or in the closing section when nothing repeats.
    companion_labels = {refrain} if refrain is not None else ({labels[-1]} if labels else set())

    # 4. Section treatments
    treatments = _section_treatments(analysis, descriptions, song, rng, warnings)

    # 4b. The set list: one place per distinct setting, described by the setting word for word
    places, place_names = _set_list(treatments)

    # 5. Title and concept
    moods = _mood_words(descriptions.song, song)
    key_name = _key_name(descriptions.song)
    title = f"{moods[0].title()} {rng.choice(world['title_nouns'])}" + (f" in {key_name}" if key_name else "")
    concept = _concept(descriptions.song, world, moods, key_name, protagonist, companion, treatments, style)

    # 6. Shots
    style_cut = False
    shots: list[StoryboardShot] = []
    position_in_section: dict[int, int] = {}
    shots_in_section: dict[int, int] = {}
    for shot in plan.shots:
        shots_in_section[shot.section_index] = shots_in_section.get(shot.section_index, 0) + 1

    for shot in plan.shots:
        position = position_in_section.get(shot.section_index, 0)
        position_in_section[shot.section_index] = position + 1
        treatment = treatments.get(shot.section_index) or _fallback_treatment(shot.section_index, song, warnings)
        description = matching_description(descriptions.shots, shot.index, shot.start_s, shot.end_s)
        energy = _shot_energy(description, analysis, shot.start_s, shot.end_s, treatment.energy)
        shot_rng = _rng(seed, "shot", shot.index)

        kind = _shot_kind(position, shots_in_section[shot.section_index])
        cast: list[Character] = []
        if kind in ("portrait", "journey"):
            cast = [protagonist]
            if companion is not None and treatment.treatment.label in companion_labels:
                cast.append(companion)

        high = energy >= 0.5
        world_of_section = WORLDS[treatment.world]
        lighting = world_of_section["lighting"][int(high)]
        action = shot_rng.choice(world_of_section["portrait"][int(high)])
        move = shot_rng.choice(world_of_section["moves"][int(high)])
        camera = _camera(energy, position)
        scene_for_people = _scene(kind, treatment, cast, high, action, move, use_descriptions=False)
        sung = (lyrics_by_shot or {}).get(shot.id, "").strip()
        if sung:
            scene_for_people += f' Sung here: "{sung}".'
        scene_for_model = _scene(kind, treatment, cast, high, action, move, use_descriptions=True)
        prompt, cut = _compose_prompt(
            scene=scene_for_model,
            camera_lighting=f"{camera.capitalize()} camera, {lighting}.",
            style=style,
            base_look=base_look,
            palette_words=f"Colour palette of {_palette_words(treatment.treatment.palette)}.",
            technical=f"{lens}, {world['medium']}, {world['era']}.",
            max_chars=max_prompt_chars,
        )
        style_cut = style_cut or cut

        shots.append(
            StoryboardShot(
                id=shot.id,
                start_s=shot.start_s,
                end_s=shot.end_s,
                section_index=shot.section_index,
                scene=scene_for_people,
                prompt=prompt,
                negative_prompt=NEGATIVE_PROMPT + (NEGATIVE_PROMPT_CHARACTERS if cast else ""),
                seed=shot_seed(seed, shot.index),
                palette=list(treatment.treatment.palette),
                motif=treatment.treatment.motif,
                camera=camera,
                energy=round(energy, 4),
                characters=[character.name for character in cast],
                places=[place_names[treatment.treatment.setting]] if treatment.treatment.setting in place_names else [],
                lyrics=sung,
            )
        )

    if style_cut:
        warnings.append(
            f"template writer: the style instruction does not fit a {max_prompt_chars}-character prompt in full; "
            "prompts carry a shortened copy (the concept and style bible keep it whole)"
        )

    return Storyboard(
        writer=WRITER_NAME,
        title=title,
        concept=concept,
        style=style_bible,
        characters=characters,
        places=places,
        sections=[treatments[index].treatment for index in sorted(treatments)],
        shots=shots,
        warnings=_unique(warnings),
    )


def shot_seed(seed: int, shot_index: int) -> int:
    """A 31-bit seed for one shot, stable across runs, machines and Python versions."""
    digest = hashlib.sha256(f"music2video:{seed}:{shot_index}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & SEED_MASK


# --------------------------------------------------------------------------------------------
# Affect


@dataclass(frozen=True)
class Affect:
    valence: float  # -1..1
    arousal: float  # -1..1
    brightness: float  # 0..1
    energy: float  # 0..1


def _affect(
    description: SegmentDescription | None,
    warnings: list[str],
    what: str,
    energy_hint: float | None = None,
    measured: Mood | None = None,
) -> Affect:
    """Valence, arousal, brightness and energy of a description, with graceful fallbacks.

    Order: the listener's numbers (dsp), then mood words in its tags or text (clap, lalm),
    then the ``measured`` mood (the analysis' ``mood``), then the energy (analysis) for
    arousal and a neutral valence.
    """
    features = description.features if description is not None else {}
    valence = features.get("valence")
    arousal = features.get("arousal")
    energy = features.get("energy")
    if (valence is None or arousal is None) and description is not None:
        from_words = _affect_from_words(description)
        if from_words is not None:
            valence = from_words[0] if valence is None else valence
            arousal = from_words[1] if arousal is None else arousal
    if measured is not None:
        valence = measured.valence if valence is None else valence
        arousal = measured.arousal if arousal is None else arousal
    if energy is None:
        energy = energy_hint if energy_hint is not None else ((arousal + 1.0) / 2.0 if arousal is not None else 0.5)
    if arousal is None:
        arousal = 2.0 * energy - 1.0
    if valence is None:
        valence = 0.0
        warnings.append(f"template writer: no mood found for {what}; using a neutral valence")

    brightness = features.get("brightness")
    if brightness is None and description is not None:
        for vocabulary in ("brightness", "timbre"):
            for label in description.tags.get(vocabulary, []):
                if label.label.lower() in BRIGHTNESS_WORDS:
                    brightness = BRIGHTNESS_WORDS[label.label.lower()]
                    break
            if brightness is not None:
                break
    if brightness is None:
        brightness = 0.5 + 0.2 * valence  # happier music is usually shot brighter

    return Affect(
        valence=_clip(valence, -1.0, 1.0),
        arousal=_clip(arousal, -1.0, 1.0),
        brightness=_clip(brightness, 0.0, 1.0),
        energy=_clip(energy, 0.0, 1.0),
    )


def _affect_from_words(description: SegmentDescription) -> tuple[float, float] | None:
    """Mean circumplex position of the known mood words in the tags (best first weighs more) or text."""
    points: list[tuple[float, float, float]] = []
    for vocabulary, labels in sorted(description.tags.items()):
        for rank, label in enumerate(labels):
            for word in _words(label.label):
                if word in MOOD_LEXICON:
                    weight = 1.0 / (rank + 1) * (2.0 if vocabulary in MOOD_VOCABULARIES else 1.0)
                    points.append((*MOOD_LEXICON[word], weight))
    if not points:
        for word in _words(description.text):
            if word in MOOD_LEXICON:
                points.append((*MOOD_LEXICON[word], 1.0))
    if not points:
        return None
    total = sum(weight for _, _, weight in points)
    return (
        sum(v * weight for v, _, weight in points) / total,
        sum(a * weight for _, a, weight in points) / total,
    )


def _quadrant(valence: float, arousal: float) -> str:
    if arousal >= 0:
        return "happy" if valence >= 0 else "tense"
    return "calm" if valence >= 0 else "sad"


def _mood_words(description: SegmentDescription, affect: Affect) -> list[str]:
    """Two mood words: the listener's own (mood or emotion tags) first, then the world's."""
    words: list[str] = []
    for vocabulary in MOOD_VOCABULARIES:
        for label in description.tags.get(vocabulary, []):
            word = label.label.strip().lower()
            if word and word not in words and len(word) <= 30:
                words.append(word)
    for word in WORLDS[_quadrant(affect.valence, affect.arousal)]["moods"]:
        if word not in words:
            words.append(word)
    return words[:2]


def _key_name(description: SegmentDescription) -> str | None:
    """'A Minor' from dsp key features or a 'key' tag; None when no listener heard a key."""
    if (key := Key.from_features(description.features)) is not None:
        return key.name.title()
    labels = description.tags.get("key", [])
    if labels and len(labels[0].label) <= 20:
        return labels[0].label.title()
    return None


def _shot_energy(
    description: SegmentDescription | None, analysis: Analysis, start_s: float, end_s: float, section_energy: float
) -> float:
    """0..1: the listener's energy, else its arousal, else the analysis curve, else the section's."""
    if description is not None:
        if "energy" in description.features:
            return _clip(description.features["energy"], 0.0, 1.0)
        if "arousal" in description.features:
            return _clip((description.features["arousal"] + 1.0) / 2.0, 0.0, 1.0)
    if analysis.energy:
        return _clip(analysis.curve_mean(analysis.energy, start_s, end_s), 0.0, 1.0)
    return _clip(section_energy, 0.0, 1.0)


# --------------------------------------------------------------------------------------------
# Sections


@dataclass
class Treatment:
    treatment: SectionTreatment
    world: str  # key of WORLDS that sets this section's lighting and actions
    energy: float  # 0..1


def _section_treatments(
    analysis: Analysis, descriptions: Descriptions, song: Affect, rng: random.Random, warnings: list[str]
) -> dict[int, Treatment]:
    """One treatment per section; sections sharing a label share motif, palette and setting."""
    # Affect per label: the mean over its sections, pulled half-way to the song's so the
    # film keeps one colour world while each part still shifts it.
    by_label: dict[str, list[Affect]] = {}
    for position, section in enumerate(analysis.sections):
        description = matching_description(descriptions.sections, position, section.start_s, section.end_s)
        affect = _affect(description, warnings, "some sections", energy_hint=section.energy)
        by_label.setdefault(section.label, []).append(affect)

    used_motifs: list[str] = []
    used_settings: list[str] = []
    per_label: dict[str, tuple[list[str], str, str, str, float]] = {}  # palette, motif, setting, world, energy
    offset = rng.randrange(len(WORLDS["happy"]["settings"]))
    for label, affects in by_label.items():  # insertion order: order of first appearance
        valence = 0.5 * song.valence + 0.5 * _mean(a.valence for a in affects)
        arousal = 0.5 * song.arousal + 0.5 * _mean(a.arousal for a in affects)
        brightness = 0.5 * song.brightness + 0.5 * _mean(a.brightness for a in affects)
        energy = _mean(a.energy for a in affects)
        world = _quadrant(valence, arousal)

        motif = _nearest_motif(energy, exclude=used_motifs)
        used_motifs.append(motif)

        settings = WORLDS[world]["settings"]
        fresh = [settings[(offset + i) % len(settings)] for i in range(len(settings))]
        fresh = [setting for setting in fresh if setting not in used_settings] or fresh
        setting = fresh[0]
        used_settings.append(setting)

        per_label[label] = (_palette(valence, arousal, brightness), motif, setting, world, energy)

    treatments: dict[int, Treatment] = {}
    for position, section in enumerate(analysis.sections):
        palette, motif, setting, world, energy = per_label[section.label]
        # A listener that names imagery (lalm) gives the setting in its own words.
        description = matching_description(descriptions.sections, position, section.start_s, section.end_s)
        imagery = _first_label(description, ("imagery", "setting", "scene")) if description else None
        treatments[section.index] = Treatment(
            treatment=SectionTreatment(
                section_index=section.index,
                label=section.label,
                role=section.role,
                palette=list(palette),
                motif=motif,
                setting=imagery if imagery and len(imagery) <= 120 else setting,
            ),
            world=world,
            energy=energy,
        )
    return treatments


# Words after which a setting stops naming the place and starts describing it
# ("a still lake | at dawn", "an empty car park | under flickering lights").
_PLACE_NAME_ENDS = re.compile(r"\s(?:above|at|under|with|as|in|lit|through|full|on|by|where|during)\s")
_ARTICLE = re.compile(r"^(?:a|an|the)\s+", re.IGNORECASE)
PLACE_NAME_CHARS = 40


def _set_list(treatments: dict[int, Treatment]) -> tuple[list[Place], dict[str, str]]:
    """One place per distinct section setting, in order of first appearance, and setting -> name.

    The name is the setting's head ("a still lake at dawn" -> "still lake"); the description is
    the setting itself, the words every prompt of those sections already carries.
    """
    places: list[Place] = []
    names: dict[str, str] = {}
    for index in sorted(treatments):
        setting = treatments[index].treatment.setting.strip()
        if not setting or setting in names:
            continue
        head = _PLACE_NAME_ENDS.split(_ARTICLE.sub("", setting), maxsplit=1)[0]
        name = _shorten(head.strip(" .,;"), PLACE_NAME_CHARS) or f"place {len(places) + 1}"
        taken = {place.name for place in places}
        base, number = name, 2
        while name in taken:
            name, number = f"{base} {number}", number + 1
        names[setting] = name
        places.append(Place(name=name, description=setting))
    return places, names


def _fallback_treatment(section_index: int, song: Affect, warnings: list[str]) -> Treatment:
    """For a shot whose section the analysis does not list: the song's own look."""
    warnings.append(f"template writer: section {section_index} is not in the analysis; its shots use the song's look")
    world = _quadrant(song.valence, song.arousal)
    return Treatment(
        treatment=SectionTreatment(
            section_index=section_index,
            label="?",
            role="unknown",
            palette=_palette(song.valence, song.arousal, song.brightness),
            motif=_nearest_motif(song.energy, exclude=[]),
            setting=WORLDS[world]["settings"][0],
        ),
        world=world,
        energy=song.energy,
    )


def _nearest_motif(energy: float, exclude: list[str]) -> str:
    """The unused motif whose energy is closest (ties: MOTIFS order); any motif once all are used."""
    candidates = [motif for motif in MOTIFS if motif not in exclude] or list(MOTIFS)
    return min(candidates, key=lambda motif: (abs(MOTIF_ENERGY[motif] - energy), MOTIFS.index(motif)))


def _refrain_label(sections: list[Section]) -> str | None:
    """The most repeated label, or None when nothing repeats.

    Ties go to the louder label (a chorus is usually the loudest part that comes back), then
    to the one heard first.
    """
    counts: dict[str, int] = {}
    energies: dict[str, list[float]] = {}
    for section in sections:
        counts[section.label] = counts.get(section.label, 0) + 1
        energies.setdefault(section.label, []).append(section.energy)
    if not counts or max(counts.values()) < 2:
        return None
    order = list(counts)
    return max(order, key=lambda label: (counts[label], _mean(energies[label]), -order.index(label)))


# --------------------------------------------------------------------------------------------
# Shots


def _shot_kind(position: int, count: int) -> str:
    """establishing first (when the section has several shots), then portrait, journey, detail."""
    if count == 1:
        return "journey"
    if position == 0:
        return "establishing"
    return ("portrait", "journey", "detail")[(position - 1) % 3]


def _camera(energy: float, position: int) -> str:
    for upper, options in CAMERA_LADDER:
        if energy < upper:
            return options[position % 2]
    return CAMERA_LADDER[-1][1][0]


def _scene(
    kind: str, treatment: Treatment, cast: list[Character], high: bool, action: str, move: str, use_descriptions: bool
) -> str:
    """One sentence for the shot.

    People read the characters' names; the model reads name plus full description, word for
    word, as an apposition ("the wanderer, a lone figure in a long red coat ..., runs").
    """
    setting = treatment.treatment.setting
    motif = MOTIF_PHRASES.get(treatment.treatment.motif, treatment.treatment.motif)
    motion = "pulsing on every beat" if high else "drifting slowly"
    if kind == "establishing":
        return f"Wide establishing view of {setting}, with {motif} {motion}."
    if kind == "detail":
        return f"Close detail of {motif} {motion}, filling the frame; {setting} dissolves behind."

    def named(character: Character) -> str:
        return f"{character.name}, {character.description}," if use_descriptions else character.name

    # The subject ends with a comma whenever it carries an apposition, so the verb can follow.
    subject = named(cast[0])
    if len(cast) > 1:
        subject = f"{subject.rstrip(',')}, with {named(cast[1])} at their side,"
    if kind == "portrait":
        return f"Close on {subject.rstrip(',')}, who {action}; behind them, {setting} and {motif} {motion}."
    return f"{_capitalise(subject)} {move} {setting}, surrounded by {motif}."


def _compose_prompt(
    scene: str, camera_lighting: str, style: str, base_look: str, palette_words: str, technical: str, max_chars: int
) -> tuple[str, bool]:
    """The prompt, at most ``max_chars``, and whether the style had to be shortened.

    Parts are kept in priority order (scene, camera and lighting, the look with the user's
    style, the palette, the technical notes) and written in reading order (look first).
    """
    looks = [f"{style}; {base_look}." if style else f"{base_look}."]
    if style:
        looks.append(f"{style}.")
    kept = {"scene": scene, "camera": camera_lighting}
    order = ["look", "scene", "camera", "palette", "technical"]

    def length(parts: dict[str, str]) -> int:
        return len(" ".join(parts[name] for name in order if name in parts))

    for look in looks:
        if length({**kept, "look": look}) <= max_chars:
            kept["look"] = look
            break
    style_cut = False
    if "look" not in kept and style:
        room = max_chars - length(kept) - 2  # a space and the final full stop
        shortened = _shorten(style, room)
        if shortened:
            kept["look"] = f"{shortened}."
        style_cut = True
    for name, text in (("palette", palette_words), ("technical", technical)):
        if length({**kept, name: text}) <= max_chars:
            kept[name] = text
    prompt = " ".join(kept[name] for name in order if name in kept)
    return prompt[:max_chars], style_cut


# --------------------------------------------------------------------------------------------
# Concept


def _concept(
    song: SegmentDescription,
    world: dict,
    moods: list[str],
    key_name: str | None,
    protagonist: Character,
    companion: Character | None,
    treatments: dict[int, Treatment],
    style: str,
) -> str:
    genre = _first_label(song, ("genre", "genres"))
    instruments = [label.label for label in song.tags.get("instruments", song.tags.get("instrument", []))[:2]]
    subject = f"{genre} track" if genre and len(genre) <= 40 else "song"
    parts = [
        f"{_capitalise(_article(moods[0]))} {moods[0]}, {moods[1]} film for {_article(subject)} {subject}"
        + (f" in {key_name}" if key_name else "")
    ]
    if instruments:
        parts[0] += f" carried by {' and '.join(instruments)}"
    parts[0] += f": {world['story'].format(p=protagonist.name)}."
    if companion is not None:
        parts.append(_capitalise(world["companion_role"].format(c=companion.name)) + ".")

    motifs: list[str] = []
    for index in sorted(treatments):
        entry = f"{treatments[index].treatment.label} = {treatments[index].treatment.motif}"
        if entry not in motifs:
            motifs.append(entry)
    if motifs:
        parts.append(
            "Each part of the song has its own visual motif, and when a part returns its motif and colours "
            f"return with it ({', '.join(motifs)})."
        )
    heard = _shorten(song.text.strip(), 300)
    if heard:
        parts.append(f"What the listener heard: {heard}" + ("" if heard.endswith((".", "!", "?")) else "."))
    if style:
        parts.append(f"Requested style: {style}")
    return " ".join(parts)


# --------------------------------------------------------------------------------------------
# Colour


def _palette(valence: float, arousal: float, brightness: float) -> list[str]:
    """Five #rrggbb colours: base, neighbour, accent, shadow, highlight.

    Hue: the four quadrant anchor hues (happy amber, tense crimson, sad blue, calm teal)
    blended by how close valence and arousal are to each quadrant (vector mean on the colour
    circle). Saturation rises with arousal (calm is desaturated, intense saturated);
    lightness rises with brightness and a little with valence.
    """
    weights = {
        "happy": (1 + valence) * (1 + arousal),
        "tense": (1 - valence) * (1 + arousal),
        "sad": (1 - valence) * (1 - arousal),
        "calm": (1 + valence) * (1 - arousal),
    }
    x = sum(w * math.cos(math.radians(WORLDS[name]["anchor_hue"])) for name, w in weights.items())
    y = sum(w * math.sin(math.radians(WORLDS[name]["anchor_hue"])) for name, w in weights.items())
    hue = math.degrees(math.atan2(y, x)) % 360.0 if abs(x) + abs(y) > 1e-9 else 35.0
    saturation = 0.30 + 0.55 * (arousal + 1.0) / 2.0
    lightness = _clip(0.30 + 0.30 * brightness + 0.10 * valence, 0.15, 0.75)
    return [
        _hex(hue, saturation, lightness),
        _hex(hue + 35.0, saturation * 0.85, lightness),
        _hex(hue + 165.0, min(saturation + 0.1, 1.0), min(lightness + 0.1, 0.85)),
        _hex(hue + 15.0, saturation * 0.6, lightness * 0.35),
        _hex(hue - 15.0, saturation * 0.5, min(lightness + 0.3, 0.92)),
    ]


def _hex(hue_deg: float, saturation: float, lightness: float) -> str:
    r, g, b = colorsys.hls_to_rgb((hue_deg % 360.0) / 360.0, _clip(lightness, 0, 1), _clip(saturation, 0, 1))
    return "#{:02x}{:02x}{:02x}".format(*(int(round(channel * 255)) for channel in (r, g, b)))


def _colour_name(hex_colour: str) -> str:
    """'#1f3a7a' -> 'deep azure': hue name with a lightness/saturation adjective."""
    r, g, b = (int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5))
    hue, lightness, saturation = colorsys.rgb_to_hls(r, g, b)
    if saturation < 0.12:
        return "near-black" if lightness < 0.2 else "grey" if lightness < 0.8 else "off-white"
    degrees = hue * 360.0
    name = next(name for upper, name in HUE_NAMES if degrees < upper)
    if lightness < 0.25:
        return f"deep {name}"
    if lightness > 0.7:
        return f"pale {name}"
    return f"muted {name}" if saturation < 0.45 else name


def _palette_words(palette: list[str]) -> str:
    names: list[str] = []
    for colour in palette[:4]:
        name = _colour_name(colour)
        if name not in names:
            names.append(name)
    return ", ".join(names[:-1]) + f" and {names[-1]}" if len(names) > 1 else names[0]


def _lens(arousal: float) -> str:
    if arousal > 0.3:
        return "wide 24mm lens, deep focus"
    if arousal < -0.3:
        return "85mm lens, shallow depth of field"
    return "35mm lens, natural perspective"


# --------------------------------------------------------------------------------------------
# Small helpers


def matching_description(
    items: Sequence[SegmentDescription], index: int, start_s: float, end_s: float
) -> SegmentDescription | None:
    """The description of a span: the one at ``index`` if its times agree (within
    ``MATCH_TOLERANCE_S``), else the one that overlaps it most, else None. Shared by the writers."""
    if 0 <= index < len(items):
        item = items[index]
        if abs(item.start_s - start_s) <= MATCH_TOLERANCE_S and abs(item.end_s - end_s) <= MATCH_TOLERANCE_S:
            return item
    best, best_overlap = None, 0.0
    for item in items:
        overlap = min(item.end_s, end_s) - max(item.start_s, start_s)
        if overlap > best_overlap:
            best, best_overlap = item, overlap
    return best


def _first_label(description: SegmentDescription | None, vocabularies: tuple[str, ...]) -> str | None:
    if description is None:
        return None
    for vocabulary in vocabularies:
        labels = description.tags.get(vocabulary, [])
        if labels and labels[0].label.strip():
            return labels[0].label.strip()
    return None


def _rng(seed: int, *parts: object) -> random.Random:
    """A private random generator for one decision, independent of Python's hash randomisation."""
    digest = hashlib.sha256(json.dumps([seed, *parts]).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def _words(text: str) -> list[str]:
    return [word.strip(".,;:!?()\"'").lower() for word in text.replace("/", " ").replace("-", " ").split()]


def _shorten(text: str, limit: int) -> str:
    """``text`` cut at a word boundary to at most ``limit`` characters."""
    if len(text) <= limit:
        return text
    if limit <= 1:
        return ""
    cut = text[: limit - 1].rsplit(" ", 1)[0].rstrip(" ,;:")
    return f"{cut}…"


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def _capitalise(text: str) -> str:
    return text[:1].upper() + text[1:]


def _clip(value: float, low: float, high: float) -> float:
    return float(min(max(value, low), high))


def _mean(values) -> float:
    values = list(values)
    return sum(values) / len(values) if values else 0.0


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))
