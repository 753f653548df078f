"""References: one image per character, place and prop of the storyboard, made once.

A character gets a sheet (full figure and face side by side, plain background), a place an
establishing view without people, a prop a clean view of the object; each in the storyboard's
look. Each is saved as ``references/<name>-<hash>.png``, the hash covering what it is made from
(its description, the look, the model and its settings), so an edited description makes that
reference again and nothing else.

Your own image wins, and is used as given and never written to: ``--reference "the singer=photo.jpg"``
(``keyframes.references``), or a file in the run folder's ``references/`` named after the
character, place or prop (``the singer.png`` or ``the-singer.jpg``; png, jpg, jpeg or webp).
A generated reference edited by hand is used as it now is (its new bytes key the keyframes).
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path

from music2video.artifacts import Reference, ReferenceSet, Storyboard
from music2video.errors import InputError, Music2VideoError
from music2video.keyframes.generator import ImageModels, image_fingerprint
from music2video.keyframes.image_models import resolve_image_model
from music2video.preflight import is_disk_full
from music2video.progress import ProgressCallback, no_progress
from music2video.runfolder import RunFolder, file_sha256, stable_hash
from music2video.settings import KeyframeSettings, parse_resolution

log = logging.getLogger(__name__)

REFERENCES_FOLDER = "references"
REFERENCES_ARTIFACT = "references.json"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
SEED_MASK = 0x7FFFFFFF

REFERENCE_NEGATIVE_PROMPT = "text, letters, watermark, logo, frame borders, blurry, deformed, extra limbs, cropped"

# What each kind of reference shows. {look} is the storyboard's look, {description} the cast
# member's fixed appearance, written word for word as every shot prompt writes it.
PROMPTS = {
    "character": (
        "Character reference sheet of {name}: {description}. On the left the full figure standing, head to toe, "
        "facing the camera; on the right a close-up of the face. Plain light grey background, even soft light. {look}"
    ),
    "place": "Establishing wide view of {description}. No people. {look}",
    "prop": "Reference view of {description}, whole object centred on a plain light grey background, even soft light. {look}",
}


@dataclass(frozen=True)
class CastMember:
    name: str
    kind: str  # character, place or prop
    description: str


def cast_of(storyboard: Storyboard) -> list[CastMember]:
    """The storyboard's characters, places and props, in that order."""
    return [
        *(CastMember(c.name, "character", c.description) for c in storyboard.characters),
        *(CastMember(p.name, "place", p.description) for p in storyboard.places),
        *(CastMember(p.name, "prop", p.description) for p in storyboard.props),
    ]


def slug(name: str) -> str:
    """A file-name-safe form of a cast name: 'The Singer!' -> 'the-singer'."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:40] or "cast"


def check_user_references(settings: KeyframeSettings) -> None:
    """Refuse, before any work, a ``--reference`` whose file does not exist or is no image."""
    for name, path in settings.references.items():
        if not name.strip():
            raise InputError(f"--reference {path}: give it as NAME=FILE, e.g. \"the singer=photo.jpg\"")
        if not Path(path).is_file():
            raise InputError(f"reference image for {name!r}: {path} does not exist")
        if Path(path).suffix.lower() not in IMAGE_SUFFIXES:
            raise InputError(f"reference image for {name!r}: {path} is not a {', '.join(IMAGE_SUFFIXES)} file")


def reference_seed(member: CastMember) -> int:
    """A seed per cast member, stable across runs (the shots have their own)."""
    digest = hashlib.sha256(f"music2video-reference:{member.kind}:{member.name}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & SEED_MASK


def reference_prompt(member: CastMember, storyboard: Storyboard) -> str:
    style = storyboard.style
    look = ", ".join(part.strip() for part in (style.look, style.medium) if part.strip())
    text = PROMPTS[member.kind].format(
        name=member.name, description=member.description.strip().rstrip("."), look=f"{look}." if look else ""
    )
    return text.strip()


def make_references(
    storyboard: Storyboard,
    run: RunFolder,
    settings: KeyframeSettings,
    models: ImageModels,
    progress: ProgressCallback = no_progress,
) -> ReferenceSet:
    """One reference per cast member: yours where given, else the one on disk for the same
    inputs, else a new one from ``settings.reference_model`` (loaded through ``models`` only
    when something is missing). A reference that cannot be made is listed in ``failed``; the
    keyframes that would show it are composed without it, and the next run tries again."""
    entry = resolve_image_model(settings.reference_model, "text-to-image")
    size = parse_resolution(settings.reference_size)
    fingerprint = image_fingerprint(entry, settings)
    cast = cast_of(storyboard)
    warnings: list[str] = []
    known = {member.name for member in cast}
    for name in settings.references:
        if name not in known:
            warnings.append(
                f"--reference {name!r}: no character, place or prop of the storyboard has that name "
                f"(they are: {', '.join(sorted(known)) or 'none'}); it is not used"
            )

    folder = run.path(REFERENCES_FOLDER)
    found: dict[str, Reference] = {}
    missing: list[tuple[CastMember, str, Path]] = []
    for member in cast:
        user = _user_image(member, settings, folder)
        if user is not None:
            found[member.name] = Reference(
                name=member.name, kind=member.kind, path=_relative(user, run), sha256=file_sha256(user), source="user"
            )
            continue
        prompt = reference_prompt(member, storyboard)
        digest = stable_hash(member.kind, prompt, REFERENCE_NEGATIVE_PROMPT, reference_seed(member), size, fingerprint)
        path = folder / f"{slug(member.name)}-{digest}.png"
        if path.exists():
            found[member.name] = Reference(
                name=member.name, kind=member.kind, path=_relative(path, run), sha256=file_sha256(path),
                source="generated", prompt=prompt,
            )  # fmt: skip
        else:
            missing.append((member, prompt, path))

    failed: dict[str, str] = {}
    done = len(cast) - len(missing)
    progress(done, len(cast), "references")
    if missing:
        log.info("making %d of %d references with %s", len(missing), len(cast), entry.name)
        generator = models.get(entry)
        for member, prompt, path in missing:
            try:
                image = generator.generate(
                    prompt, REFERENCE_NEGATIVE_PROMPT, reference_seed(member), size, what=f"reference {member.name!r}"
                )
                save_png(image, path)
                found[member.name] = Reference(
                    name=member.name, kind=member.kind, path=_relative(path, run), sha256=file_sha256(path),
                    source="generated", prompt=prompt,
                )  # fmt: skip
            except Exception as error:
                if is_disk_full(error):
                    raise
                failed[member.name] = _why(error)
                if not isinstance(error, Music2VideoError):
                    log.exception("reference %r failed", member.name)
                log.error("reference %r could not be made; shots that show it are composed without it: %s",
                          member.name, failed[member.name])  # fmt: skip
            done += 1
            progress(done, len(cast), f"reference {member.name}")
    warnings += [f"reference {name!r} could not be made: {why}" for name, why in failed.items()]
    return ReferenceSet(
        model=entry.hf_id if any(r.source == "generated" for r in found.values()) or failed else None,
        references=[found[member.name] for member in cast if member.name in found],
        failed=failed,
        warnings=warnings + models.warnings,
    )


def save_png(image: object, path: Path) -> None:
    """Write a PIL image as PNG atomically (a killed run never leaves half an image)."""
    from music2video.runfolder import atomic_path

    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")  # type: ignore[attr-defined]


def _user_image(member: CastMember, settings: KeyframeSettings, folder: Path) -> Path | None:
    given = settings.references.get(member.name)
    if given is not None:
        return Path(given).expanduser().resolve()
    if not folder.is_dir():
        return None
    wanted = {member.name.lower(), slug(member.name)}
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() in IMAGE_SUFFIXES and path.stem.lower() in wanted and not path.name.startswith("."):
            return path
    return None


def _relative(path: Path, run: RunFolder) -> str:
    """Relative to the run folder when inside it, else absolute (your file elsewhere)."""
    try:
        return str(path.resolve().relative_to(run.root.resolve()))
    except ValueError:
        return str(path.resolve())


def _why(error: BaseException) -> str:
    if isinstance(error, Music2VideoError):
        return str(error)
    return f"{type(error).__name__}: {error}"
