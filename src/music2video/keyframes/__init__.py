"""References and keyframes: the same people and places from shot to shot.

Between the storyboard and the video model, two stages draw pictures:

1. **references** (:mod:`~music2video.keyframes.references`): one image per character (a sheet
   with the full figure and the face), place (an establishing view) and key prop of the
   storyboard, ``references/<name>-<hash>.png`` and ``references.json``; yours where you give
   one (``--reference "the singer=photo.jpg"`` or a file in ``references/``), used as given.
2. **keyframes** (:mod:`~music2video.keyframes.compose`): one first frame per shot,
   ``keyframes/<shot>-<hash>.png`` and ``keyframes.json``, composed from the shot's prompt and
   the references of the characters, place and props it names by an image-editing model
   (Qwen-Image-Edit-2509 by default); the video model then animates each shot from its keyframe.

The image models (:mod:`~music2video.keyframes.image_models`, a registry like the video
models') load one at a time (:class:`~music2video.keyframes.generator.ImageModels`) and are
freed before the video model loads; every keyframe is made before any clip.

When the stages run (``keyframes.enabled``): ``auto`` where the renderer can start a shot from
a picture, i.e. the diffusers renderer with a video model that takes images; so the clap and
lalm pipelines make them with an image-conditioned video model, and the **preview pipeline
makes none** (its animatic renderer draws from the storyboard alone, and preview downloads
nothing). ``off`` renders from text only; ``on`` makes them whatever the renderer.
"""

from __future__ import annotations

from music2video.keyframes.compose import KEYFRAMES_ARTIFACT, KEYFRAMES_FOLDER, make_keyframes
from music2video.keyframes.generator import ImageGenerator, ImageModels
from music2video.keyframes.references import (
    REFERENCES_ARTIFACT,
    REFERENCES_FOLDER,
    check_user_references,
    make_references,
)
from music2video.settings import Settings


def keyframes_wanted(settings: Settings) -> tuple[bool, str]:
    """(whether this run makes references and keyframes, why), from ``keyframes.enabled``, the
    renderer and whether its video model takes a picture."""
    choice = settings.keyframes.enabled
    if choice == "on":
        return True, "keyframes.enabled is on"
    if choice == "off":
        return False, "keyframes.enabled is off"
    renderer = settings.backends()["renderer"]
    if renderer != "diffusers":
        return False, f"the {renderer} renderer draws from the storyboard alone"
    from music2video.render.video_models import resolve_video_model

    entry = resolve_video_model(settings.video.model)
    if not entry.takes_images:
        return False, f"{entry.name} makes video from text only"
    return True, f"{entry.name} starts each shot from its keyframe"


def keyframe_size(settings: Settings) -> tuple[int, int]:
    """(width, height) of the keyframes: ``keyframes.size``, else the size the video model
    generates at (so it animates the picture as drawn), else the output size rounded down to
    multiples of 16."""
    from music2video.settings import parse_resolution

    if settings.keyframes.size:
        return parse_resolution(settings.keyframes.size)
    if settings.backends()["renderer"] == "diffusers":
        from music2video.render.diffusion import generation_size
        from music2video.render.video_models import resolve_video_model

        return generation_size(resolve_video_model(settings.video.model), settings.video, settings.width, settings.height)
    return max(16, settings.width // 16 * 16), max(16, settings.height // 16 * 16)


__all__ = [
    "KEYFRAMES_ARTIFACT",
    "KEYFRAMES_FOLDER",
    "REFERENCES_ARTIFACT",
    "REFERENCES_FOLDER",
    "ImageGenerator",
    "ImageModels",
    "check_user_references",
    "keyframe_size",
    "keyframes_wanted",
    "make_keyframes",
    "make_references",
]
