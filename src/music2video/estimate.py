"""Render-cost estimates for ``--dry-run``: how long the chosen renderer will take for a plan."""

from __future__ import annotations

from music2video.artifacts import ShotPlan
from music2video.settings import Settings

# Measured with benchmarks/bench_preview.py on a 2-core CPU at 640x360 (13.6 s for 4320 frames):
# milliseconds per output frame. Scales roughly with the pixel count.
ANIMATIC_MS_PER_FRAME_640x360 = 3.2


def estimate_render(plan: ShotPlan, settings: Settings) -> str:
    """One or two lines: frames to render and the expected time with the chosen renderer."""
    frames = [shot.frame_count(settings.fps) for shot in plan.shots]
    total_frames = sum(frames)
    renderer = settings.backends()["renderer"]
    if renderer == "animatic":
        pixels_ratio = settings.width * settings.height / (640 * 360)
        seconds = total_frames * ANIMATIC_MS_PER_FRAME_640x360 * pixels_ratio / 1000
        return (
            f"render: {len(frames)} shots, {total_frames} frames at {settings.width}x{settings.height}; "
            f"animatic ≈ {seconds:.0f} s on a 2-core CPU"
        )
    from music2video.render.diffusion import describe_render_estimate
    from music2video.render.video_models import resolve_video_model

    entry = resolve_video_model(settings.video.model)
    return describe_render_estimate(entry, frames, settings.video.steps, output_fps=settings.fps)
