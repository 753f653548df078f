"""What the page shows of the work folder: songs, run folders, and one run's whole state.

Everything here reads; nothing writes or deletes (the studio's viewer is a reader, as
``report`` is). Paths handed to the page are relative to the work folder, and every path read
back from an artifact (a clip, the video) is checked to lie inside it before it is served.
"""

from __future__ import annotations

import io
import os
import threading
from functools import lru_cache
from pathlib import Path
from typing import Any

from music2video.errors import Music2VideoError
from music2video.preflight import RUN_FOLDER_SUFFIX
from music2video.studio.safety import SONG_EXTENSIONS, PathRefused, relative_to_root, resolve_inside

# How deep below the work folder songs and run folders are looked for.
SCAN_DEPTH = 3
UPLOADS_FOLDER = "uploads"
WAVEFORM_COLUMNS = 4000
"""Min/max pairs of the waveform sent to the page (enough for a wide, zoomed timeline)."""
THUMBNAIL_WIDTH_PX = 192


def is_run_folder(folder: Path) -> bool:
    return folder.is_dir() and (folder.name.endswith(RUN_FOLDER_SUFFIX) or (folder / "run.json").is_file())


def list_work_folder(root: Path) -> dict[str, list[dict[str, Any]]]:
    """Songs (audio or video files) and run folders under ``root``, newest first.

    A video that a run folder beside it made (``song.mp4`` next to ``song.music2video/``) is
    that run's output, not a song (see :func:`output_for`).
    """
    root = root.resolve()
    songs: list[tuple[float, dict[str, Any]]] = []
    runs: list[tuple[float, dict[str, Any]]] = []
    for folder, names, files in _walk(root):
        for name in sorted(names):
            path = folder / name
            if is_run_folder(path):
                runs.append((path.stat().st_mtime, {"path": relative_to_root(root, path), "name": path.name[: -len(RUN_FOLDER_SUFFIX)] if path.name.endswith(RUN_FOLDER_SUFFIX) else path.name}))
        for name in sorted(files):
            path = folder / name
            if path.suffix.lower() not in SONG_EXTENSIONS or _is_run_output(path):
                continue
            stat = path.stat()
            songs.append((stat.st_mtime, {"path": relative_to_root(root, path), "name": name, "bytes": stat.st_size}))
    return {
        "songs": [item for _, item in sorted(songs, key=lambda pair: -pair[0])],
        "runs": [item for _, item in sorted(runs, key=lambda pair: -pair[0])],
    }


def _is_run_output(path: Path) -> bool:
    """Whether ``path`` is the video of the run folder beside it (``song.mp4`` of ``song.music2video/``)."""
    return path.suffix.lower() == ".mp4" and path.with_name(path.stem + RUN_FOLDER_SUFFIX).is_dir()


def _walk(root: Path):
    """os.walk to :data:`SCAN_DEPTH`, skipping hidden folders, run folders' insides and links out."""
    for folder, names, files in os.walk(root, followlinks=False):
        here = Path(folder)
        depth = len(here.relative_to(root).parts)
        names[:] = [n for n in names if not n.startswith(".") and not (here / n).is_symlink()]
        visible = [f for f in files if not f.startswith(".") and not (here / f).is_symlink()]
        yield here, list(names), visible
        # Do not descend into run folders (their clips are no songs) or below the depth limit.
        names[:] = [n for n in names if depth + 1 < SCAN_DEPTH and not is_run_folder(here / n)]


def output_for(song: Path) -> Path:
    """Where the studio writes a song's video: beside it, ``song.mp4`` (``song-video.mp4`` for an .mp4 song)."""
    name = f"{song.stem}.mp4" if song.suffix.lower() != ".mp4" else f"{song.stem}-video.mp4"
    return song.with_name(name)


def run_state(root: Path, run: Path) -> dict[str, Any]:
    """Everything the page draws for the run folder ``run``: timing, shots, clips, video.

    Times are seconds. ``shots`` come from the storyboard when there is one, else from the
    shot plan. Files are given as paths relative to the work folder (None when missing or
    outside it).
    """
    from music2video.report import RunArtifacts

    art = RunArtifacts.load(run)
    settings = art.run.settings if art.run is not None else {}
    analysis = art.analysis
    clips = {clip.shot_id: clip for clip in art.render.clips} if art.render is not None else {}
    failed = art.render.failed_shots if art.render is not None else {}
    shots = []
    source = art.storyboard.shots if art.storyboard is not None else (art.plan.shots if art.plan is not None else [])
    for index, shot in enumerate(source):
        clip = clips.get(shot.id)
        entry = {
            "index": index,
            "id": shot.id,
            "start_s": shot.start_s,
            "end_s": shot.end_s,
            "section_index": shot.section_index,
            "clip": _inside(root, run / clip.path) if clip is not None else None,
            "failed": failed.get(shot.id),
        }
        if art.storyboard is not None:
            entry.update(
                scene=shot.scene,
                prompt=shot.prompt,
                negative_prompt=shot.negative_prompt,
                seed=shot.seed,
                camera=shot.camera,
                characters=list(shot.characters),
                places=list(shot.places),
                props=list(shot.props),
            )
        shots.append(entry)
    video = None
    if art.video is not None:
        path = Path(art.video.video_path)
        video = _inside(root, path if path.is_absolute() else run / path)
    pictures = keyframes(run)
    for entry in shots:
        picture = pictures.get(entry["index"])
        entry["keyframe"] = _inside(root, picture) if picture is not None else None
    song = _inside(root, Path(art.run.song)) if art.run is not None else None
    return {
        "run": relative_to_root(root, run),
        "name": run.name,
        "song": song,
        "pipeline": art.run.pipeline if art.run is not None else None,
        "backends": art.run.backends if art.run is not None else {},
        "finished": bool(art.run and art.run.finished),
        "duration_s": art.duration_s,
        "fps": (art.video.fps if art.video else None) or settings.get("fps"),
        "width": settings.get("width"),
        "height": settings.get("height"),
        "style": settings.get("style", ""),
        "tempo_bpm": analysis.tempo_bpm if analysis else None,
        "beats_per_bar": analysis.beats_per_bar if analysis else None,
        "beats_s": analysis.beats_s if analysis else [],
        "downbeats_s": analysis.downbeats_s if analysis else [],
        "sections": [s.model_dump() for s in analysis.sections] if analysis else [],
        "characters": [c.name for c in art.storyboard.characters] if art.storyboard else [],
        "places": [p.name for p in art.storyboard.places] if art.storyboard else [],
        "props": [p.name for p in art.storyboard.props] if art.storyboard else [],
        "cast": cast(root, run, art.storyboard) if art.storyboard else [],
        "title": art.storyboard.title if art.storyboard else None,
        "shots": shots,
        "video": video,
        # Changes whenever the video is rewritten: the page reloads the player then.
        "video_version": (root / video).stat().st_mtime_ns if video else None,
        "report": _inside(root, run / "report.html") if (run / "report.html").is_file() else None,
        "srt": _inside(root, run / "lyrics.srt") if _non_empty(run / "lyrics.srt") else None,
        "storyboard": _inside(root, run / "storyboard.json") if (run / "storyboard.json").is_file() else None,
        "warnings": [w for _, artifact in art.named() for w in artifact.warnings],
        "problems": art.problems,
    }


def cast(root: Path, run: Path, storyboard) -> list[dict[str, Any]]:
    """The storyboard's characters, places and props, each with its reference picture
    (relative to the work folder) where ``references.json`` names one inside it."""
    from music2video.artifacts import ReferenceSet

    pictures: dict[str, str | None] = {}
    listing = run / "references.json"
    if listing.is_file():
        try:
            found = ReferenceSet.model_validate_json(listing.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            found = None
        for reference in found.references if found else []:
            path = Path(reference.path)
            pictures[reference.name] = _inside(root, path if path.is_absolute() else run / path)
    members = [("character", m.name) for m in storyboard.characters]
    members += [("place", m.name) for m in storyboard.places] + [("prop", m.name) for m in storyboard.props]
    return [{"name": name, "kind": kind, "picture": pictures.get(name)} for kind, name in members]


def edit_state(run: Path) -> dict[str, Any]:
    """What the editor needs beyond the artifacts: locked and changed shots, the shot length
    limits, the export formats; ``available`` is False (with ``why``) when the run cannot be
    edited yet (no shot plan, say)."""
    from music2video import edit

    try:
        state = edit.open_run(run)
        changed = edit.changed_shots(run) if (run / "clips.json").is_file() else []
    except Music2VideoError as error:
        return {"available": False, "why": " ".join(str(error).split()), "locked": [], "changed": []}
    limits = state.limits
    return {
        "available": state.storyboard is not None,
        "why": None if state.storyboard is not None else f"{run.name} has no storyboard yet: let the run write it",
        "locked": [shot.id for shot in state.plan.shots if shot.locked],
        "changed": changed,
        "limits": {"min_s": limits.min_s, "max_s": limits.max_s, "note": limits.max_note.lstrip("; ")},
    }


def export_formats(run: Path) -> list[dict[str, str]]:
    """The timeline formats the run can be exported to (none before its clips exist, or
    without OpenTimelineIO)."""
    from importlib.util import find_spec

    if not (run / "clips.json").is_file() or find_spec("opentimelineio") is None:
        return []
    from music2video.export import FORMATS

    return [{"name": name, "label": f"{name.upper()} ({fmt.description})"} for name, fmt in FORMATS.items()]


def takes(root: Path, run: Path, shot: int) -> list[dict[str, Any]]:
    """Every take of a shot, oldest first: number, clip (relative to the work folder), when, and
    whether it is the clip the video uses now."""
    from music2video import edit

    current = edit.current_take(run, shot)
    return [
        {
            "number": take.number,
            "clip": _inside(root, run / take.path),
            "recorded": take.recorded,
            "prompt": take.entry.prompt,
            "current": current is not None and take.number == current.number,
        }
        for take in edit.takes(run, shot)
    ]


def _inside(root: Path, path: Path) -> str | None:
    """``path`` relative to the work folder if it exists there (links resolved), else None."""
    try:
        resolved = resolve_inside(root, relative_to_root(root, path.resolve()))
    except (ValueError, PathRefused):
        return None
    return relative_to_root(root, resolved) if resolved.is_file() else None


def _non_empty(path: Path) -> bool:
    return path.is_file() and path.stat().st_size > 0


_waveform_lock = threading.Lock()


def waveform(run: Path) -> dict[str, Any]:
    """The min/max envelope of ``audio.wav`` (:data:`WAVEFORM_COLUMNS` pairs) and the seconds each covers."""
    wav = run / "audio.wav"
    if not wav.is_file():
        raise Music2VideoError(f"{run.name} has no audio.wav yet: the run has not decoded the song")
    stat = wav.stat()
    with _waveform_lock:
        return _waveform(str(wav), stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=8)
def _waveform(wav: str, _mtime_ns: int, _size: int) -> dict[str, Any]:
    import soundfile as sf

    from music2video.report import waveform_envelope

    envelope = waveform_envelope(Path(wav), WAVEFORM_COLUMNS)
    if envelope is None:
        raise Music2VideoError(f"{wav} cannot be read")
    times, low, high = envelope
    info = sf.info(wav)
    peak = float(max(abs(low.min()), abs(high.max()), 1e-9))
    seconds_per_column = float(times[1] - times[0]) if len(times) > 1 else info.duration
    return {
        "seconds_per_column": seconds_per_column,
        "duration_s": info.frames / info.samplerate,
        "min": [round(float(v) / peak, 3) for v in low],
        "max": [round(float(v) / peak, 3) for v in high],
    }


_thumbnail_lock = threading.Lock()


def thumbnail(path: Path) -> bytes:
    """A JPEG of a picture's or a clip's first frame, :data:`THUMBNAIL_WIDTH_PX` wide (cached in memory)."""
    stat = path.stat()
    with _thumbnail_lock:
        return _thumbnail(str(path), stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=512)
def _thumbnail(path: str, _mtime_ns: int, _size: int) -> bytes:
    from PIL import Image

    if Path(path).suffix.lower() in (".png", ".jpg", ".jpeg", ".webp"):
        picture = Image.open(path).convert("RGB")
        picture.thumbnail((THUMBNAIL_WIDTH_PX, THUMBNAIL_WIDTH_PX * 4))
    else:
        from music2video.metrics.frames import read_frames_at

        frames = read_frames_at(Path(path), [0], THUMBNAIL_WIDTH_PX)
        if 0 not in frames:
            raise Music2VideoError(f"{path} has no frames")
        picture = Image.fromarray(frames[0])
    buffer = io.BytesIO()
    picture.save(buffer, format="JPEG", quality=80)
    return buffer.getvalue()


def keyframes(run: Path) -> dict[int, Path]:
    """Shot index -> keyframe picture, as ``keyframes.json`` lists them (runs whose renderer
    starts shots from pictures); empty without one."""
    from music2video.artifacts import KeyframeSet

    listing = run / "keyframes.json"
    if not listing.is_file():
        return {}
    try:
        frames = KeyframeSet.model_validate_json(listing.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {frame.shot: run / frame.path for frame in frames.shots if (run / frame.path).is_file()}
