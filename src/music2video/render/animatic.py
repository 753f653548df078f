"""The animatic renderer: a procedural, beat-synced draft of every shot, drawn with numpy on CPU.

It stands in for a text-to-video model in the offline preview pipeline. It shows what a
diffusion render cannot show in seconds: the real cut timing, the mood and the beat. Each shot is
drawn from its storyboard entry:

* ``palette``: the darkest colour, dimmed, makes the background gradient; the others are the
  colours of the light;
* ``motif``: one of :data:`MOTIFS` (an unknown name falls back to ``orbs`` with a warning,
  because people edit ``storyboard.json`` by hand);
* ``energy`` and the song's energy curve: how fast things move and how bright they glow;
* ``camera``: zoom ("push in", "pull out"), roll ("orbit left"), drift ("pan", "whip pan",
  "tilt"), shake ("handheld") or none ("static");
* the beats: every beat inside the shot flashes and bumps the zoom, downbeats harder;
* ``seed``: every random choice, so the same entry always gives the same frames;
* ``prompt``: what a procedural drawing can take from words. A colour the prompt names that is
  in no palette colour (``crimson``, ``gold``, ``teal`` ...) becomes the first light, and when the
  prompt never mentions the entry's motif but names another (``a neon city street`` -> grid,
  ``snow`` -> particles), that one is drawn. So editing a prompt in ``storyboard.json`` changes its
  clip. People, places and actions take effect only with a video model.

Speed: a 3-minute preview at 640x360, 24 fps must render and encode well above real time on two
cores, so drawing gets about 3 ms a frame. Everything is vectorised numpy on float32 grids;
outputs at least :data:`HALF_RES_MIN_WIDTH_PX` wide are drawn at half resolution and doubled
(pixel repeat), which the soft, glowing look hides and which makes drawing four times cheaper.
When the camera does not roll, the world coordinates are kept as a row and a column that
broadcast, so one-dimensional motifs (waves, ribbons) cost one-dimensional work.

Shots are independent, so once :data:`PARALLEL_AFTER_FRAMES` frames have been drawn in this
process (a short song never pays for more), the remaining shots go to one worker process per
CPU core, each drawing and encoding whole clips: numpy's many small operations hold the GIL,
so threads alone leave the second core idle much of the time.

Frame ``i`` of a shot shows song time ``(round(shot.start_s * fps) + i) / fps``, the time that
frame has in the finished video, so the flashes land on the frames where the beats are heard.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import queue
import re
import threading
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import numpy as np

from music2video.artifacts import Analysis, Storyboard, StoryboardShot
from music2video.errors import Music2VideoError
from music2video.videofile import ClipWriter

log = logging.getLogger(__name__)

# What the preview is, said once by the CLI after a run and once in the report.
PREVIEW_NOTE = (
    "This is a preview: each shot is an animatic of its motif, palette, camera move and the beat, plus the "
    "colours and motifs its prompt names (edit a prompt in storyboard.json to change them). People, places "
    "and actions in the prompts take effect with a video model (--pipeline clap or lalm, on a GPU)."
)

# Bump when the drawing changes: it is part of every clip's hash, so old clips are redrawn.
RENDERER_VERSION = 2  # 2: colours and motifs named in the prompt

MOTIFS = ("orbs", "waves", "rings", "rays", "grid", "particles", "ribbons", "tunnel")
FALLBACK_MOTIF = "orbs"
DEFAULT_PALETTE = ("#14142b", "#5b3f8c", "#e05d8c", "#ffd27f")

HALF_RES_MIN_WIDTH_PX = 320  # draw at half resolution from this output width up (even sizes only)

# Beat pulses: strength at the beat's frame, decaying exponentially.
PULSE_DECAY_S = 0.13
BEAT_PULSE = 0.45
DOWNBEAT_PULSE = 1.0
PULSE_ZOOM = 0.05  # relative zoom bump at full pulse
PULSE_FLASH = 0.08  # light added at full pulse, in 0..1 display units
PULSE_GAIN = 0.6  # relative brightening of the motif at full pulse

WHIP_S = 0.12  # time constant of a whip pan settling, seconds
ENERGY_SMOOTHING_S = 0.25  # the energy curve is averaged over this window before it drives motion
VIGNETTE_STRENGTH = 0.3  # darkening at the corners, 0..1


# --------------------------------------------------------------------------------------------
# Inputs: palette, camera, timing


def parse_palette(colours: list[str]) -> list[np.ndarray]:
    """``#rrggbb`` / ``#rgb`` strings -> RGB float32 arrays in 0..1; malformed entries are skipped."""
    parsed = []
    for text in colours:
        digits = text.strip().lstrip("#")
        if re.fullmatch(r"[0-9a-fA-F]{3}", digits):
            digits = "".join(c * 2 for c in digits)
        if not re.fullmatch(r"[0-9a-fA-F]{6}", digits):
            log.warning("ignoring palette colour %r: not #rrggbb", text)
            continue
        parsed.append(np.array([int(digits[i : i + 2], 16) for i in (0, 2, 4)], np.float32) / 255)
    return parsed


def _luminance(rgb: np.ndarray) -> float:
    return float(rgb @ np.array([0.2126, 0.7152, 0.0722], np.float32))


def _scaled_to_peak(rgb: np.ndarray, peak: float) -> np.ndarray:
    """The colour with its brightest channel at ``peak`` (hue kept; near-black becomes grey)."""
    top = float(rgb.max())
    if top < 1e-3:
        return np.full(3, peak, np.float32)
    return (rgb * (peak / top)).astype(np.float32)


@dataclass(frozen=True)
class Camera:
    """Camera motion over a shot, in world units (the screen's height is 2 units) and seconds."""

    zoom_per_s: float = 0.0  # log-zoom rate: > 0 pushes in, < 0 pulls out
    roll_rad_per_s: float = 0.0  # > 0 turns the world counter-clockwise (orbit left)
    drift_x_per_s: float = 0.0  # > 0 moves the view right, so the world slides left
    drift_y_per_s: float = 0.0  # > 0 moves the view down
    shake: float = 0.0  # amplitude of handheld wobble, world units
    whip: float = 0.0  # a whip pan: the shot opens this far off to the side and swings into place

    @property
    def rolls(self) -> bool:
        return self.roll_rad_per_s != 0.0


def parse_camera(text: str) -> tuple[Camera, bool]:
    """A free-text camera direction -> (camera motion, whether any word was understood).

    Words combine: "slow push in, orbit left" zooms and rolls. "slow"/"gentle" halve the speed,
    "fast"/"quick" double it. A "whip pan" opens off to the side and swings into place in a
    fraction of a second, so the shot's subject stays in frame after the whip.
    """
    words = set(re.findall(r"[a-z]+", text.lower()))
    speed = 1.0
    if words & {"slow", "slowly", "gentle", "gently", "subtle", "drifting", "lazy"}:
        speed = 0.5
    if words & {"fast", "quick", "quickly", "rapid", "energetic"}:
        speed = 2.0
    left = bool(words & {"left", "counterclockwise", "anticlockwise"})
    sign = -1.0 if left else 1.0
    zoom = roll = dx = dy = shake = whip = 0.0
    understood = bool(words & {"static", "still", "locked", "fixed", "hold", "steady", "none"})
    # Verbs of motion decide; small words ("in", "up", "back") only give their direction, so a
    # "close up" or "a static shot in the rain" does not move.
    moves_away = bool(words & {"pull", "out", "backward", "backwards", "reveal", "retreat"})
    if words & {"push", "zoom", "dolly", "forward", "approach"} and not moves_away and "back" not in words:
        zoom, understood = 0.14 * speed, True
    if moves_away or words >= {"dolly", "back"}:
        zoom, understood = -0.12 * speed, True
    turning = {"orbit", "orbiting", "rotate", "rotating", "rotation", "roll", "spin", "circle", "circling", "arc", "dutch"}
    if words & turning:
        roll, understood = -sign * 0.09 * speed, True
    if words & {"pan", "panning", "truck", "track", "tracking", "slide", "sideways", "lateral", "whip"}:
        dx, understood = sign * 0.25 * speed, True
    if "whip" in words:
        dx, whip = 0.0, -sign * 0.9
    if words & {"tilt", "crane", "pedestal", "boom", "rise", "rising", "descend", "descending"}:
        down = bool(words & {"down", "descend", "descending"})
        dy, understood = (0.2 if down else -0.2) * speed, True
    if words & {"handheld", "shake", "shaky", "jitter", "wobble"}:
        shake, understood = 0.015 * speed, True
    return Camera(zoom, roll, dx, dy, shake, whip), understood


def beat_pulses(
    analysis: Analysis, first_frame: int, frame_count: int, fps: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-frame beat pulse, seconds since the last beat and that beat's strength, for one shot.

    A beat belongs to the frame nearest its time, as the cuts do. Only beats inside the shot count:
    the cut itself resets the picture. Returns float32 arrays of ``frame_count``: pulse (0..1,
    exponential decay), age in seconds (``inf`` before the first beat), strength of the last beat.
    """
    frames = np.arange(frame_count)
    pulse = np.zeros(frame_count, np.float32)
    age = np.full(frame_count, np.inf, np.float32)
    strength = np.zeros(frame_count, np.float32)
    downbeat_frames = {round(t * fps) for t in analysis.downbeats_s}
    beat_frames = sorted({round(t * fps) for t in analysis.beats_s} | downbeat_frames)
    for beat_frame in beat_frames:
        k = beat_frame - first_frame
        if not 0 <= k < frame_count:
            continue
        amount = DOWNBEAT_PULSE if beat_frame in downbeat_frames else BEAT_PULSE
        since_s = (frames[k:] - k) / fps
        np.maximum(pulse[k:], amount * np.exp(-since_s / PULSE_DECAY_S), out=pulse[k:])
        age[k:] = since_s
        strength[k:] = amount
    return pulse, age, strength


def energy_per_frame(analysis: Analysis, first_frame: int, frame_count: int, fps: float) -> np.ndarray:
    """The song's energy curve (0..1) smoothed and sampled at each frame's time; 0.5 if missing."""
    curve = np.asarray(analysis.energy, np.float32)
    if curve.size == 0 or analysis.curve_rate_hz <= 0:
        return np.full(frame_count, 0.5, np.float32)
    width = max(1, int(round(ENERGY_SMOOTHING_S * analysis.curve_rate_hz)))
    if width > 1 and curve.size >= width:
        curve = np.convolve(curve, np.ones(width, np.float32) / width, mode="same")
    positions = (first_frame + np.arange(frame_count)) / fps * analysis.curve_rate_hz
    return np.interp(positions, np.arange(curve.size), curve).astype(np.float32)


# --------------------------------------------------------------------------------------------
# Per-frame state handed to the motifs


@dataclass
class FrameState:
    """What a motif needs to draw one frame.

    ``u`` and ``v`` are world coordinates of every pixel: (h, w) arrays, or a (1, w) row and an
    (h, 1) column that broadcast when the camera does not roll. The screen is 2 world units high
    and ``2 * aspect`` wide at zoom 1, y pointing down.
    """

    u: np.ndarray
    v: np.ndarray
    phase: float  # motion clock: seconds of motion, faster when the music is louder
    pulse: float  # beat pulse, 0..1
    beat_age_s: float  # seconds since the last beat in the shot (inf before the first)
    beat_strength: float
    level: float  # smoothed song energy at this frame, 0..1
    # The camera, for motifs that place points (world = rotate(screen) / zoom + offset).
    cos: float
    sin: float
    zoom: float
    offset: tuple[float, float]
    xs: np.ndarray  # screen coordinates of the pixel columns (w,) and rows (h,)
    ys: np.ndarray

    def to_screen(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """World points (n, 2) -> screen x and y (n,), undoing the camera."""
        du, dv = points[:, 0] - self.offset[0], points[:, 1] - self.offset[1]
        return self.zoom * (self.cos * du + self.sin * dv), self.zoom * (-self.sin * du + self.cos * dv)


class Layers:
    """Light added by a motif: one intensity plane per palette light colour, mixed in at the end."""

    def __init__(self, colours: np.ndarray):
        self.colours = colours  # (k, 3) float32
        self.planes = np.zeros((len(colours), 0, 0), np.float32)

    def allocate(self, height: int, width: int) -> None:
        self.planes = np.zeros((len(self.colours), height, width), np.float32)

    def add(self, index: int, field: np.ndarray | float) -> None:
        plane = self.planes[index % len(self.planes)]
        np.add(plane, field, out=plane)

    def clear(self) -> None:
        self.planes.fill(0.0)

    def mix_into(self, canvas: np.ndarray) -> None:
        """canvas (3, h, w) += colours^T @ planes, one small matrix product."""
        k, h, w = self.planes.shape
        canvas += (self.colours.T @ self.planes.reshape(k, h * w)).reshape(3, h, w)


# --------------------------------------------------------------------------------------------
# Motifs. Each draws light into Layers from a FrameState; __init__ makes every random choice.


class Orbs:
    """Soft glowing spheres that drift on slow Lissajous paths and swell on the beat."""

    def __init__(self, rng: np.random.Generator, aspect: float, energy: float):
        n = int(rng.integers(5, 9))
        self.base = rng.uniform((-0.75 * aspect, -0.7), (0.75 * aspect, 0.7), (n, 2)).astype(np.float32)
        self.amp = rng.uniform(0.1, 0.4, (n, 2)).astype(np.float32)
        self.freq = (rng.uniform(0.25, 0.7, (n, 2)) * rng.choice((-1.0, 1.0), (n, 2))).astype(np.float32)
        self.offset = rng.uniform(0, 2 * np.pi, (n, 2)).astype(np.float32)
        self.radius = rng.uniform(0.1, 0.3, n).astype(np.float32)
        self.bright = rng.uniform(0.5, 0.95, n).astype(np.float32)
        self.swell = rng.uniform(0.15, 0.4, n).astype(np.float32)

    def draw(self, f: FrameState, layers: Layers) -> None:
        centres = self.base + self.amp * np.sin(self.freq * f.phase + self.offset)
        gain = (0.6 + 0.4 * f.level) * (1 + PULSE_GAIN * f.pulse)
        # A round glow looks the same however the camera rolls, so draw it in screen space where
        # a Gaussian is the outer product of a row and a column: two cheap 2-D operations.
        screen_x, screen_y = f.to_screen(centres)
        for i in range(len(centres)):
            radius = self.radius[i] * (1 + self.swell[i] * f.pulse) * f.zoom
            dx2 = np.square((f.xs - screen_x[i]) / radius)
            dy2 = np.square((f.ys - screen_y[i]) / radius)
            core = np.exp(-dy2)[:, None] * (np.exp(-dx2) * (self.bright[i] * gain))[None, :]
            halo = np.exp(-0.15 * dy2)[:, None] * (np.exp(-0.15 * dx2) * (0.3 * self.bright[i] * gain))[None, :]
            layers.add(i, core)
            layers.add(i, halo)


class Waves:
    """Thin glowing sine lines stacked like contour lines; amplitude follows energy and beats."""

    def __init__(self, rng: np.random.Generator, aspect: float, energy: float):
        n = int(rng.integers(4, 7))
        self.y0 = (np.linspace(-0.6, 0.6, n) + rng.uniform(-0.08, 0.08, n)).astype(np.float32)
        self.k = rng.uniform(1.2, 3.0, (n, 2)).astype(np.float32) * np.array([1.0, 2.3], np.float32)
        self.speed = (rng.uniform(0.5, 1.2, (n, 2)) * rng.choice((-1.0, 1.0), (n, 2))).astype(np.float32)
        self.offset = rng.uniform(0, 2 * np.pi, (n, 2)).astype(np.float32)
        self.amp = (rng.uniform(0.08, 0.18, n) * (0.6 + 0.8 * energy)).astype(np.float32)
        self.width = rng.uniform(0.010, 0.022, n).astype(np.float32)

    def draw(self, f: FrameState, layers: Layers) -> None:
        gain = (0.55 + 0.45 * f.level) * (1 + PULSE_GAIN * f.pulse)
        for i in range(len(self.y0)):
            k1, k2 = self.k[i]
            s1, s2 = self.speed[i]
            o1, o2 = self.offset[i]
            amp = self.amp[i] * (1 + 0.6 * f.pulse)
            swing = np.sin(k1 * f.u + s1 * f.phase + o1) + 0.35 * np.sin(k2 * f.u + s2 * f.phase + o2)
            centre = self.y0[i] + amp * swing
            d = (f.v - centre) * (1.0 / self.width[i])
            d2 = np.square(d)
            light = np.exp(-d2)  # the line
            light += 0.25 / (1 + 0.04 * d2)  # its glow
            # a faint veil below each line, so the stack reads as layered hills
            light += 0.06 * np.clip(d * 0.02, 0.0, 1.0)
            light *= gain
            layers.add(i, light)


class Rings:
    """Concentric ripples from the centre; every beat sends out a bright ring."""

    RING_SPEED_PER_S = 1.8  # world units a beat ring travels per second

    def __init__(self, rng: np.random.Generator, aspect: float, energy: float):
        self.freq = float(rng.uniform(2.5, 4.5))
        self.speed = float(rng.uniform(0.35, 0.7) * rng.choice((-1.0, 1.0)))
        self.centre = rng.uniform(-0.2, 0.2, 2).astype(np.float32)
        self.wander = rng.uniform(0, 2 * np.pi, 2).astype(np.float32)

    def draw(self, f: FrameState, layers: Layers) -> None:
        cx, cy = self.centre + 0.15 * np.sin(0.3 * f.phase + self.wander)
        r = np.sqrt(np.square(f.u - cx) + np.square(f.v - cy))
        gain = (0.55 + 0.45 * f.level) * (1 + PULSE_GAIN * f.pulse)
        falloff = np.exp(-0.9 * r)
        wave = np.cos((2 * np.pi * self.freq) * r - (2 * np.pi * self.speed) * f.phase)
        band = np.square(np.square(0.5 + 0.5 * wave))  # sharpen: thin bright rings, dark gaps
        layers.add(0, band * falloff * (0.55 * gain))
        # the second colour rides half a ring behind
        between = np.square(np.square(0.5 - 0.5 * wave))
        layers.add(1, between * falloff * (0.25 * gain))
        layers.add(2, np.exp(-6.0 * np.square(r)) * (0.35 + 0.6 * f.pulse))
        if math.isfinite(f.beat_age_s) and f.beat_age_s < 1.2:
            radius = f.beat_age_s * self.RING_SPEED_PER_S
            ring = np.exp(-np.square((r - radius) * 14.0))
            layers.add(2, ring * (f.beat_strength * math.exp(-f.beat_age_s / 0.45)))


class Rays:
    """Light rays fanning from a bright centre, two counter-rotating sets; beats lengthen them."""

    def __init__(self, rng: np.random.Generator, aspect: float, energy: float):
        self.count = (int(rng.integers(5, 10)), int(rng.integers(9, 16)))
        self.spin = float(rng.uniform(0.12, 0.3) * rng.choice((-1.0, 1.0)))
        self.offset = rng.uniform(0, 2 * np.pi, 2).astype(np.float32)
        self.centre = rng.uniform((-0.3, -0.35), (0.3, 0.0), 2).astype(np.float32)

    def draw(self, f: FrameState, layers: Layers) -> None:
        du, dv = f.u - self.centre[0], f.v - self.centre[1]
        angle = np.arctan2(dv, du)
        r2 = np.square(du) + np.square(dv)
        gain = (0.55 + 0.45 * f.level) * (1 + PULSE_GAIN * f.pulse)
        reach = 0.35 + 0.35 * f.pulse  # longer rays on the beat
        fade = np.exp(-r2 * (1.0 / (reach + 0.6)))
        for i, n in enumerate(self.count):
            direction = 1.0 if i == 0 else -0.6
            ray = 0.5 + 0.5 * np.cos(n * angle + (direction * self.spin * f.phase + self.offset[i]))
            ray = np.square(np.square(ray))
            layers.add(i, ray * fade * ((0.7 if i == 0 else 0.35) * gain))
        layers.add(2, np.exp(-12.0 * r2) * (0.5 + 0.5 * f.pulse))


class Grid:
    """A perspective floor grid running towards a horizon sun (the synthwave stage)."""

    HORIZON_Y = -0.05
    CAMERA_HEIGHT = 0.35  # world units above the floor; sets how fast the grid converges

    def __init__(self, rng: np.random.Generator, aspect: float, energy: float):
        self.spacing = float(rng.uniform(0.8, 1.2))
        self.speed = float(rng.uniform(0.8, 1.4))
        self.sway = float(rng.uniform(0.2, 0.5))
        self.sun_radius = float(rng.uniform(0.28, 0.4))

    def draw(self, f: FrameState, layers: Layers) -> None:
        below = f.v - self.HORIZON_Y  # > 0 on the floor
        depth = self.CAMERA_HEIGHT / np.maximum(below, 1e-3)
        lateral = f.u * depth + self.sway * math.sin(0.4 * f.phase)
        along = depth + self.speed * f.phase  # the floor slides towards the viewer
        lines_z = np.square(np.square(0.5 + 0.5 * np.cos((2 * np.pi / self.spacing) * along)))
        lines_x = np.square(np.square(0.5 + 0.5 * np.cos((2 * np.pi / self.spacing) * lateral)))
        lines = np.maximum(lines_z, lines_x)
        lines = np.square(lines)
        # fade near the horizon, where the lines crowd into moiré, and hide the sky
        lines *= np.clip(below * 4.0, 0.0, 1.0)
        gain = (0.55 + 0.45 * f.level) * (1 + PULSE_GAIN * f.pulse)
        layers.add(0, lines * (0.8 * gain))
        # the sun: a disc above the horizon, cut by horizontal slits in its lower half
        sun_y = self.HORIZON_Y - self.sun_radius * 0.55
        radius = self.sun_radius * (1 + 0.06 * f.pulse)
        dist2 = np.square(f.u) + np.square(f.v - sun_y)
        disc = np.clip((radius * radius - dist2) * 60.0, 0.0, 1.0)
        # slits widen towards the bottom of the disc and scroll slowly down
        stripe = 0.5 + 0.5 * np.cos((2 * np.pi / 0.07) * (f.v - sun_y) - 2.0 * f.phase)
        lower = np.clip((f.v - sun_y) / radius, 0.0, 1.0)
        slits = np.clip((stripe - lower) * 6.0 + 1.0, 0.0, 1.0)
        sky = f.v < self.HORIZON_Y
        layers.add(1, disc * slits * sky * (0.9 * gain))
        layers.add(2, np.exp(-3.0 * dist2) * sky * (0.25 + 0.3 * f.pulse))
        layers.add(2, np.exp(-np.square(below * 18.0)) * (0.35 + 0.4 * f.pulse))  # horizon glow


class Particles:
    """Drifting motes of light, some near (bigger, faster) and many far; beats make them flare."""

    def __init__(self, rng: np.random.Generator, aspect: float, energy: float):
        n = int(400 + 600 * energy)
        # world box a bit larger than the screen, so the camera can move without emptying it
        self.box = np.array([2.8 * aspect, 2.8], np.float32)
        self.base = rng.uniform(-0.5, 0.5, (n, 2)).astype(np.float32) * self.box
        near = rng.random(n) < 0.2
        self.near = near
        rise = rng.uniform(0.04, 0.12, n) * np.where(near, 2.5, 1.0)
        drift = rng.uniform(-0.04, 0.04, n)
        self.velocity = np.stack([drift, -rise], axis=1).astype(np.float32)
        self.sway = rng.uniform(0.01, 0.05, n).astype(np.float32)
        self.sway_freq = rng.uniform(0.3, 1.0, n).astype(np.float32)
        self.sway_offset = rng.uniform(0, 2 * np.pi, n).astype(np.float32)
        self.bright = (rng.uniform(0.5, 1.0, n) * np.where(near, 1.0, 0.7)).astype(np.float32)
        self.twinkle = rng.uniform(0, 2 * np.pi, n).astype(np.float32)
        self.colour = rng.integers(0, 2, n)
        # a few large out-of-focus discs in front, drifting slowly (bokeh)
        m = int(rng.integers(4, 8))
        self.bokeh_base = rng.uniform(-0.5, 0.5, (m, 2)).astype(np.float32) * self.box
        self.bokeh_velocity = rng.uniform(-0.05, 0.05, (m, 2)).astype(np.float32)
        self.bokeh_radius = rng.uniform(0.08, 0.2, m).astype(np.float32)
        self.bokeh_bright = rng.uniform(0.08, 0.2, m).astype(np.float32)

    def draw(self, f: FrameState, layers: Layers) -> None:
        _k, h, w = layers.planes.shape
        pos = self.base + self.velocity * f.phase
        pos[:, 0] += self.sway * np.sin(self.sway_freq * f.phase + self.sway_offset)
        pos = np.mod(pos + self.box / 2, self.box) - self.box / 2  # wrap around the world box
        sx, sy = f.to_screen(pos)
        aspect = w / h
        col = np.floor((sx + aspect) * (w / (2 * aspect))).astype(np.int64)
        row = np.floor((sy + 1.0) * (h / 2)).astype(np.int64)
        inside = (col >= 0) & (col < w - 1) & (row >= 0) & (row < h - 1)
        twinkle = 0.75 + 0.25 * np.sin(3.0 * f.phase + self.twinkle)
        weight = self.bright * twinkle * ((0.6 + 0.4 * f.level) * (1 + 1.6 * f.pulse))
        for c in (0, 1):
            keep = inside & (self.colour == c)
            index = row[keep] * w + col[keep]
            wgt = weight[keep]
            near = self.near[keep]
            # near motes cover 2x2 pixels, far ones one pixel
            index = np.concatenate([index, index[near] + 1, index[near] + w, index[near] + w + 1])
            wgt = np.concatenate([wgt, wgt[near], wgt[near], wgt[near]])
            dots = np.bincount(index, weights=wgt, minlength=h * w).astype(np.float32).reshape(h, w)
            layers.add(c, dots)
            # a cheap glow: the dots spread one pixel each way, faintly
            glow = np.zeros_like(dots)
            glow[1:] += dots[:-1]
            glow[:-1] += dots[1:]
            glow[:, 1:] += dots[:, :-1]
            glow[:, :-1] += dots[:, 1:]
            layers.add(c, glow * 0.3)
        bokeh = self.bokeh_base + self.bokeh_velocity * f.phase
        bokeh = np.mod(bokeh + self.box / 2, self.box) - self.box / 2
        bokeh_x, bokeh_y = f.to_screen(bokeh)
        for bx, by, radius, bright in zip(bokeh_x, bokeh_y, self.bokeh_radius * f.zoom, self.bokeh_bright, strict=True):
            d2 = np.add.outer(np.square((f.ys - by) / radius), np.square((f.xs - bx) / radius))
            disc = np.clip((1.0 - d2) * 8.0, 0.0, 1.0)  # soft-edged disc, in screen space like the orbs
            layers.add(2, disc * (bright * (1 + f.pulse)))
        layers.add(2, np.exp(-0.8 * (np.square(f.u) + np.square(f.v))) * (0.08 + 0.12 * f.pulse))


class Ribbons:
    """Wide translucent ribbons of silk flowing across the frame, shading from one colour to the next."""

    def __init__(self, rng: np.random.Generator, aspect: float, energy: float):
        n = int(rng.integers(2, 4))
        self.y0 = (np.linspace(-0.45, 0.45, n) + rng.uniform(-0.1, 0.1, n)).astype(np.float32)
        self.k = rng.uniform(0.8, 1.8, (n, 3)).astype(np.float32) * np.array([1.0, 2.1, 1.3], np.float32)
        self.speed = (rng.uniform(0.3, 0.8, (n, 3)) * rng.choice((-1.0, 1.0), (n, 3))).astype(np.float32)
        self.offset = rng.uniform(0, 2 * np.pi, (n, 3)).astype(np.float32)
        self.amp = (rng.uniform(0.12, 0.25, n) * (0.7 + 0.6 * energy)).astype(np.float32)
        self.half_width = rng.uniform(0.07, 0.15, n).astype(np.float32)

    def draw(self, f: FrameState, layers: Layers) -> None:
        gain = (0.55 + 0.45 * f.level) * (1 + PULSE_GAIN * f.pulse)
        for i in range(len(self.y0)):
            (k1, k2, k3), (s1, s2, s3), (o1, o2, o3) = self.k[i], self.speed[i], self.offset[i]
            swing = np.sin(k1 * f.u + s1 * f.phase + o1) + 0.4 * np.sin(k2 * f.u + s2 * f.phase + o2)
            centre = self.y0[i] + self.amp[i] * swing
            half_width = self.half_width[i] * (1 + 0.45 * np.sin(k3 * f.u + s3 * f.phase + o3)) * (1 + 0.3 * f.pulse)
            d = (f.v - centre) / half_width
            body = np.clip(1.0 - np.square(d), 0.0, 1.0)  # rounded cross-section
            sheen = body * (0.55 + 0.45 * np.cos(5.0 * d + 0.7 * f.phase))  # folds in the cloth
            edge = np.exp(-np.square((np.abs(d) - 1.0) * 6.0)) * 0.35  # a bright hem
            light = (sheen + edge) * (0.8 * gain)
            shade = 0.5 + 0.5 * np.sin(0.9 * f.u + 0.3 * f.phase + o3)  # colour changes along its length
            layers.add(i, light * shade)
            layers.add(i + 1, light * (1.0 - shade))


class Tunnel:
    """Flying down a tiled tunnel; the tiles rush past faster when the music is loud."""

    def __init__(self, rng: np.random.Generator, aspect: float, energy: float):
        self.segments = int(rng.integers(6, 13))
        self.tile_depth = float(rng.uniform(0.35, 0.6))
        self.speed = float(rng.uniform(0.8, 1.3))
        self.twist = float(rng.uniform(0.1, 0.35) * rng.choice((-1.0, 1.0)))

    def draw(self, f: FrameState, layers: Layers) -> None:
        r = np.sqrt(np.square(f.u) + np.square(f.v)) + 1e-3
        angle = np.arctan2(f.v, f.u)
        depth = 1.0 / r
        rings = np.cos((2 * np.pi / self.tile_depth) * (depth * 0.25 + self.speed * f.phase))
        spokes = np.cos(self.segments * angle + self.twist * (f.phase + 2.0 * depth))
        tiles = 0.5 + 0.5 * rings * spokes
        tiles = np.square(tiles) * tiles  # sharpen the checker
        fog = np.clip(r * 1.3, 0.0, 1.0)  # the far end fades into the dark
        gain = (0.55 + 0.45 * f.level) * (1 + PULSE_GAIN * f.pulse)
        light = tiles * fog * (0.8 * gain)
        mix = 0.5 + 0.5 * rings  # alternate rings of the two light colours
        layers.add(0, light * mix)
        layers.add(1, light * (1.0 - mix))
        layers.add(2, np.exp(-25.0 * np.square(r)) * (0.5 + 0.6 * f.pulse))  # light at the end


MOTIF_CLASSES = {
    "orbs": Orbs,
    "waves": Waves,
    "rings": Rings,
    "rays": Rays,
    "grid": Grid,
    "particles": Particles,
    "ribbons": Ribbons,
    "tunnel": Tunnel,
}
assert tuple(MOTIF_CLASSES) == MOTIFS


# Words in a free-text motif (an LLM writer's "lighthouse beam sweeping the fog") that point
# at one of the drawable motifs.
MOTIF_KEYWORDS: dict[str, tuple[str, ...]] = {
    "waves": ("wave", "sea", "ocean", "water", "tide", "river", "shore"),
    "rays": ("ray", "beam", "sun", "light", "dawn", "spotlight", "lighthouse"),
    "rings": ("ring", "circle", "ripple", "halo", "moon", "eye"),
    "grid": ("grid", "city", "street", "road", "highway", "neon", "building", "window"),
    "particles": ("particle", "snow", "dust", "star", "spark", "rain", "ember", "firefl"),
    "ribbons": ("ribbon", "silk", "smoke", "scarf", "dance", "flag", "hair"),
    "tunnel": ("tunnel", "corridor", "train", "journey", "hall", "portal", "vortex"),
    "orbs": ("orb", "lantern", "bubble", "balloon", "bokeh", "lamp", "planet"),
}


def resolve_motif(name: str, shot_id: str = "") -> str:
    """The motif to draw for a storyboard motif name.

    A drawable name is used as is; free text (from an LLM writer or a hand edit) is matched by
    keywords, else mapped to a motif by a stable hash of the text, so that equal texts draw
    alike and different texts usually differ. Either way the substitution is logged.
    """
    key = name.strip().lower()
    if key in MOTIF_CLASSES:
        return key
    for motif, words in MOTIF_KEYWORDS.items():
        if any(word in key for word in words):
            chosen = motif
            break
    else:
        chosen = MOTIFS[int(hashlib.sha256(key.encode()).hexdigest(), 16) % len(MOTIFS)] if key else FALLBACK_MOTIF
    log.info("%s: motif %r is drawn as %r (drawable: %s)", shot_id or "shot", name, chosen, ", ".join(MOTIFS))
    return chosen


# Colour words a prompt may use, by hue in degrees (HSL): a named colour the palette lacks is drawn.
COLOUR_HUES_DEG: dict[str, float] = {
    "red": 0, "scarlet": 8, "vermilion": 12, "orange": 28, "amber": 45, "gold": 50, "golden": 50,
    "yellow": 60, "lime": 85, "green": 120, "emerald": 140, "jade": 150, "teal": 172, "turquoise": 175,
    "cyan": 188, "azure": 212, "blue": 235, "cobalt": 220, "navy": 235, "indigo": 262, "violet": 275,
    "purple": 285, "lilac": 285, "magenta": 305, "fuchsia": 310, "pink": 330, "rose": 338, "crimson": 348,
}  # fmt: skip
NEW_HUE_MIN_DEG = 35.0  # a named colour this far in hue from every palette colour is new to the shot
CHROMATIC_MIN_SATURATION = 0.12  # below this a palette colour is grey and has no hue to compare


def _hue_saturation(rgb: np.ndarray) -> tuple[float, float]:
    import colorsys

    hue, _lightness, saturation = colorsys.rgb_to_hls(*(float(c) for c in rgb))
    return hue * 360.0, saturation


def prompt_colours(prompt: str, palette: list[np.ndarray]) -> list[np.ndarray]:
    """Colours the prompt names whose hue is in no palette colour, in the order named (RGB 0..1).

    Names that merely describe the palette (the template writer's "yellow, green and azure")
    match a palette hue and change nothing.
    """
    import colorsys

    hues = [h for h, sat in map(_hue_saturation, palette) if sat >= CHROMATIC_MIN_SATURATION]
    found: list[np.ndarray] = []
    seen: set[float] = set()
    for word in re.findall(r"[a-z]+", prompt.lower()):
        hue = COLOUR_HUES_DEG.get(word)
        if hue is None or hue in seen:
            continue
        if all(min(abs(hue - h), 360 - abs(hue - h)) >= NEW_HUE_MIN_DEG for h in hues):
            seen.add(hue)
            found.append(np.array(colorsys.hls_to_rgb(hue / 360.0, 0.55, 0.8), np.float32))
    return found


def prompt_motif(prompt: str, motif: str, shot_id: str = "") -> str:
    """The motif to draw: the entry's own, unless the prompt never mentions it and names another."""
    text = prompt.lower()
    drawn = resolve_motif(motif, shot_id)

    def mentions(name: str) -> int:
        return sum(text.count(word) for word in (name, *MOTIF_KEYWORDS[name]))

    if not text or mentions(drawn):
        return drawn
    named = max(MOTIFS, key=mentions)  # ties go to the first in MOTIFS: stable
    if not mentions(named):
        return drawn
    log.info("%s: the prompt names %s, not the motif %r: drawing %s", shot_id or "shot", named, motif, named)
    return named


# --------------------------------------------------------------------------------------------
# The renderer


# BT.601 limited range, as FFmpeg converts RGB for H.264 by default: Y = 16 + YUV_LUMA . rgb,
# (U, V) = 128 + YUV_CHROMA . rgb, with rgb in 0..255.
YUV_LUMA = np.array([65.481, 128.553, 24.966], np.float32) / 255
YUV_CHROMA = np.array([[-37.797, -74.203, 112.0], [112.0, -93.786, -18.214]], np.float32) / 255

DRAW_AHEAD_FRAMES = 3  # frames the drawing thread may run ahead of the encoder


def _drawn_ahead(frames: Iterator[np.ndarray], depth: int = DRAW_AHEAD_FRAMES) -> Iterator[np.ndarray]:
    """The same frames (copies), drawn by a background thread up to ``depth`` frames ahead.

    An error while drawing is raised here, in the consumer; if the consumer stops early, the
    thread is told to stop and joined, so no thread outlives the clip.
    """
    handoff: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def hand_over(item: object) -> bool:
        while not stop.is_set():
            try:
                handoff.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def draw() -> None:
        try:
            for frame in frames:
                if not hand_over(frame.copy()):  # the generator reuses its buffer
                    return
            hand_over(done)
        except BaseException as error:  # handed to the consumer, which raises it
            hand_over(error)

    worker = threading.Thread(target=draw, name="animatic-draw", daemon=True)
    worker.start()
    try:
        while (item := handoff.get()) is not done:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        worker.join()


PARALLEL_AFTER_FRAMES = 240  # frames drawn in-process before worker processes start (10 s at 24 fps)

_worker_renderer: AnimaticRenderer | None = None  # one per worker process, made by _start_worker


def _start_worker(width: int, height: int, fps: float, draw_scale: int) -> None:
    global _worker_renderer
    _worker_renderer = AnimaticRenderer(width, height, fps, draw_scale, workers=1)


def _render_in_worker(shot: StoryboardShot, storyboard: Storyboard, analysis: Analysis, frame_count: int, output: Path) -> None:
    assert _worker_renderer is not None
    _worker_renderer.render_shot(shot, storyboard, analysis, frame_count, output)


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class AnimaticRenderer:
    """Draws every shot procedurally; see the module docstring. Implements ``ShotRenderer``.

    ``width`` x ``height`` pixels at ``fps`` frames per second. ``draw_scale`` is how much
    smaller the frames are drawn before pixel doubling: None picks 2 for even sizes at least
    :data:`HALF_RES_MIN_WIDTH_PX` wide, else 1. ``workers``: processes that render shots at
    once after the first :data:`PARALLEL_AFTER_FRAMES` frames; None is one per CPU core, 1
    renders every shot in this process. The frames are the same either way.
    """

    name = "animatic"
    model: str | None = None

    def __init__(self, width: int, height: int, fps: float, draw_scale: int | None = None, workers: int | None = None):
        if width < 2 or height < 2 or fps <= 0:
            raise Music2VideoError(f"animatic size {width}x{height} at {fps} fps is not drawable")
        if draw_scale is None:
            draw_scale = 2 if width >= HALF_RES_MIN_WIDTH_PX and width % 2 == 0 and height % 2 == 0 else 1
        if draw_scale not in (1, 2) or width % draw_scale or height % draw_scale:
            raise Music2VideoError(f"draw_scale {draw_scale} must be 1 or 2 and divide {width}x{height}")
        self.width, self.height, self.fps, self.draw_scale = width, height, fps, draw_scale
        self._h, self._w = height // draw_scale, width // draw_scale
        self._build_grid()
        self.workers = max(1, workers if workers is not None else _cpu_count())
        self._pool: ProcessPoolExecutor | None = None
        self._in_flight: deque[tuple[str, Future]] = deque()
        self._failed: dict[str, str] = {}
        self._frames_here = 0

    def _build_grid(self) -> None:
        # Shared by every shot: pixel-centre coordinates (screen is 2 units high) and the vignette.
        aspect = self._w / self._h
        self._aspect = aspect
        self._xs = ((np.arange(self._w, dtype=np.float32) + 0.5) / self._w * 2 - 1) * aspect
        self._ys = (np.arange(self._h, dtype=np.float32) + 0.5) / self._h * 2 - 1
        radial = np.square(self._xs / aspect)[None, :] + np.square(self._ys)[:, None]
        self._vignette_255 = (255.0 * (1.0 - VIGNETTE_STRENGTH * radial / 2)).astype(np.float32)

    # Pickled without its coordinate arrays (a few hundred bytes, not 230 kB at 640x360) and
    # without worker processes: an unentered renderer is what travels to a Ray actor, and Ray
    # keeps small constructor arguments inline, so a restarted actor needs no object-store copy.
    _NOT_PICKLED = ("_xs", "_ys", "_vignette_255", "_pool", "_in_flight")

    def __getstate__(self) -> dict:
        return {name: value for name, value in self.__dict__.items() if name not in self._NOT_PICKLED}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._build_grid()
        self._pool, self._in_flight = None, deque()

    def __enter__(self) -> AnimaticRenderer:
        self._failed, self._frames_here = {}, 0
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        self._in_flight.clear()

    def finish(self) -> dict[str, str]:
        """Wait for the shots still rendering in worker processes; {shot id: why} of those that failed."""
        while self._in_flight:
            self._collect_oldest()
        failed, self._failed = self._failed, {}
        return failed

    def _collect_oldest(self) -> None:
        shot_id, future = self._in_flight.popleft()
        try:
            future.result()
        except Exception as error:  # a broken shot fails alone, as in the render driver
            self._failed[shot_id] = str(error) if isinstance(error, Music2VideoError) else f"{type(error).__name__}: {error}"

    def settings_fingerprint(self) -> object:
        return {
            "renderer": self.name,
            "version": RENDERER_VERSION,
            "width": self.width,
            "height": self.height,
            "fps": self.fps,
            "draw_scale": self.draw_scale,
        }

    # -- one shot ---------------------------------------------------------------------------

    def render_shot(
        self,
        shot: StoryboardShot,
        storyboard: Storyboard,
        analysis: Analysis,
        frame_count: int,
        output: Path,
    ) -> None:
        """Write exactly ``frame_count`` frames of ``shot`` to ``output`` (H.264 via ClipWriter).

        The frames are drawn in a second thread while this one encodes: x264 (with FFmpeg's slice
        threading) and numpy both release the GIL, so on two cores drawing and encoding overlap.
        After the first :data:`PARALLEL_AFTER_FRAMES` frames, with more than one worker, the shot
        goes to a worker process instead; its failure is reported by :meth:`finish`.
        """
        if self.workers > 1 and self._frames_here >= PARALLEL_AFTER_FRAMES:
            from concurrent.futures.process import BrokenProcessPool

            try:
                self._submit(shot, storyboard, analysis, frame_count, output)
                return
            except BrokenProcessPool as error:  # a worker died (killed, out of memory): go on here
                log.warning("animatic worker processes stopped (%s); rendering the remaining shots in this process", error)
                self.workers = 1
        self._frames_here += frame_count
        self._render_here(shot, storyboard, analysis, frame_count, output)

    def _submit(self, shot: StoryboardShot, storyboard: Storyboard, analysis: Analysis, frame_count: int, output: Path) -> None:
        if self._pool is None:
            import multiprocessing

            # forkserver: workers fork from a clean server process, never from this one with its
            # threads (progress display, logging) mid-way through something.
            self._pool = ProcessPoolExecutor(
                self.workers,
                mp_context=multiprocessing.get_context("forkserver"),
                initializer=_start_worker,
                initargs=(self.width, self.height, self.fps, self.draw_scale),
            )
        # Only the shot's own entry and the style travel to the worker, not every other shot.
        slim = storyboard.model_copy(update={"shots": [shot]})
        self._in_flight.append((shot.id, self._pool.submit(_render_in_worker, shot, slim, analysis, frame_count, output)))
        # At most one shot waiting per worker: progress follows the drawing and memory stays flat.
        while len(self._in_flight) > self.workers:
            self._collect_oldest()

    def _render_here(
        self, shot: StoryboardShot, storyboard: Storyboard, analysis: Analysis, frame_count: int, output: Path
    ) -> None:
        even = self.width % 2 == 0 and self.height % 2 == 0
        with ClipWriter(output, self.width, self.height, self.fps) as writer:
            if even:  # the encoder's own layout: no full-size RGB frame, no conversion in FFmpeg
                for planes in _drawn_ahead(self.frames(shot, storyboard, analysis, frame_count, "yuv420p")):
                    writer.write_yuv420p(planes)
            else:
                for frame in _drawn_ahead(self.frames(shot, storyboard, analysis, frame_count)):
                    writer.write(frame)
        if writer.frames_written != frame_count:  # a guard on frames(), which must never miss one
            raise Music2VideoError(f"{shot.id}: wrote {writer.frames_written} frames, expected {frame_count}")

    def frames(
        self, shot: StoryboardShot, storyboard: Storyboard, analysis: Analysis, frame_count: int, layout: str = "rgb"
    ) -> Iterator[np.ndarray]:
        """Yield the shot's ``frame_count`` frames as (height, width, 3) uint8 RGB, or with
        ``layout="yuv420p"`` (even sizes only) as the (height * 3 / 2, width) planes the encoder takes.

        The same array is reused for every frame: copy it if you keep it.
        """
        if layout not in ("rgb", "yuv420p") or (layout == "yuv420p" and (self.width % 2 or self.height % 2)):
            raise Music2VideoError(f"layout {layout!r} is not rgb, or yuv420p at an even size")
        if frame_count < 1:
            raise Music2VideoError(f"{shot.id}: frame_count is {frame_count}; a shot needs at least one frame")
        # 1. Every random choice comes from the shot's seed, with one generator per purpose so that
        #    editing the camera does not rearrange the motif (numpy wants a seed >= 0: wrap).
        look_rng, camera_rng, motif_rng = np.random.default_rng(shot.seed % 2**63).spawn(3)
        h, w, fps = self._h, self._w, self.fps

        # 2. Timing: frame i is song time (first + i) / fps, as in the finished video.
        first = round(shot.start_s * fps)
        level = energy_per_frame(analysis, first, frame_count, fps)
        song_energy = analysis.curve_mean(analysis.energy, shot.start_s, shot.end_s) if analysis.energy else shot.energy
        shot_energy = float(np.clip(0.5 * shot.energy + 0.5 * song_energy, 0.0, 1.0))
        pulse, beat_age, beat_strength = beat_pulses(analysis, first, frame_count, fps)
        pulse *= 0.7 + 0.3 * shot_energy  # calm shots breathe on the beat, loud ones punch
        # The motion clock: seconds of motion, running faster where the song is louder; it
        # integrates the speed, so it never jumps.
        rate = (0.4 + 1.4 * shot_energy) * (0.45 + 0.9 * level)
        phase = np.concatenate([[0.0], np.cumsum(rate[:-1] / fps)])

        # 3. Camera path, plus a zoom bump on every beat.
        camera, understood = parse_camera(shot.camera)
        if not understood:
            log.warning("%s: camera %r not understood; the camera stays static", shot.id, shot.camera)
        t = np.arange(frame_count, dtype=np.float64) / fps
        motion = 0.7 + 0.6 * shot_energy
        zoom = np.exp(camera.zoom_per_s * motion * t) * (1 + PULSE_ZOOM * pulse)
        roll = camera.roll_rad_per_s * motion * t
        offset_x = camera.drift_x_per_s * motion * t
        offset_y = camera.drift_y_per_s * motion * t
        if camera.whip:
            offset_x = offset_x + camera.whip * np.exp(-t / WHIP_S)
        if camera.shake:
            wobble = camera_rng.uniform(0, 2 * np.pi, 4)
            offset_x = offset_x + camera.shake * (np.sin(7.1 * t + wobble[0]) + 0.5 * np.sin(13.3 * t + wobble[1]))
            offset_y = offset_y + camera.shake * (np.sin(6.3 * t + wobble[2]) + 0.5 * np.sin(11.7 * t + wobble[3]))

        # 4. Colours: a dark gradient from the darkest palette colour, light from the others.
        palette = (
            parse_palette(shot.palette) or parse_palette(storyboard.style.palette) or parse_palette(list(DEFAULT_PALETTE))
        )
        # The style bible's look is in every prompt; only what this prompt adds may recolour it.
        own_words = shot.prompt.replace(storyboard.style.look, " ") if storyboard.style.look else shot.prompt
        layers, near, far = self._colours(palette, prompt_colours(own_words, palette))
        layers.allocate(h, w)
        background = self._background(look_rng, near, far)
        flash_colour = (0.5 * layers.colours[0] + 0.5)[:, None, None] * PULSE_FLASH

        # 5. The motif, with its own random choices.
        motif = MOTIF_CLASSES[prompt_motif(shot.prompt, shot.motif, shot.id)](motif_rng, self._aspect, shot_energy)

        canvas = np.empty((3, h, w), np.float32)
        small = np.empty((h, w, 3), np.uint8)
        frame = np.empty((self.height, self.width, 3), np.uint8)
        yuv = np.empty((self.height * 3 // 2, self.width), np.uint8) if layout == "yuv420p" else frame
        for i in range(frame_count):
            # Python floats, not numpy float64 scalars: those would promote every float32 grid
            # they touch to float64 (NEP 50) and double the cost of each frame.
            cam_zoom, cam_roll, cam_x, cam_y = float(zoom[i]), float(roll[i]), float(offset_x[i]), float(offset_y[i])
            u, v = self._world_grid(cam_zoom, cam_roll, cam_x, cam_y, camera.rolls)
            state = FrameState(
                u=u,
                v=v,
                phase=float(phase[i]),
                pulse=float(pulse[i]),
                beat_age_s=float(beat_age[i]),
                beat_strength=float(beat_strength[i]),
                level=float(level[i]),
                cos=math.cos(cam_roll),
                sin=math.sin(cam_roll),
                zoom=cam_zoom,
                offset=(cam_x, cam_y),
                xs=self._xs,
                ys=self._ys,
            )
            # 6. Background (brighter on the beat), then the motif's light, then the flash.
            np.multiply(background, 1.0 + 0.35 * state.pulse, out=canvas)
            layers.clear()
            motif.draw(state, layers)
            layers.mix_into(canvas)
            canvas += flash_colour * state.pulse
            # 7. Display: clip, vignette, to 8 bits, and double the pixels if drawn small. No film
            #    grain: even a faint one doubles the bit rate and costs x264 more than drawing does.
            np.clip(canvas, 0.0, 1.0, out=canvas)
            canvas *= self._vignette_255
            if layout == "yuv420p":
                yield self._to_yuv420p(canvas, yuv)
                continue
            if self.draw_scale == 1:
                np.copyto(frame, canvas.transpose(1, 2, 0), casting="unsafe")
            else:
                np.copyto(small, canvas.transpose(1, 2, 0), casting="unsafe")
                quad = frame.reshape(h, 2, w, 2, 3)
                quad[:, 0, :, 0] = small
                quad[:, 0, :, 1] = small
                quad[:, 1] = quad[:, 0]
            yield frame

    def _to_yuv420p(self, canvas: np.ndarray, out: np.ndarray) -> np.ndarray:
        """The (3, h, w) display canvas (0..255) as BT.601 limited-range yuv420p planes in ``out``.

        This is the conversion FFmpeg would make from the RGB frame (to within one level), done on
        the drawing's own grid: at half resolution the chroma planes are the drawn pixels as they
        are, and only luma is doubled, so the full-size RGB frame is never made.
        """
        height, width = self.height, self.width
        np.floor(canvas, out=canvas)  # the 8-bit RGB values the rgb layout shows
        h, w = canvas.shape[1:]
        luma = out[:height]
        chroma = out[height:].reshape(-1)
        u = chroma[: height * width // 4].reshape(height // 2, width // 2)
        v = chroma[height * width // 4 :].reshape(height // 2, width // 2)
        if self.draw_scale == 2:
            y_small = (YUV_LUMA @ canvas.reshape(3, -1)).reshape(h, w) + 16.5  # +0.5: round on the cast
            quad = luma.reshape(h, 2, w, 2)
            np.copyto(quad[:, 0, :, 0], y_small, casting="unsafe")
            quad[:, 0, :, 1] = quad[:, 0, :, 0]
            quad[:, 1] = quad[:, 0]
            pooled = canvas.reshape(3, -1)
        else:
            np.copyto(luma, (YUV_LUMA @ canvas.reshape(3, -1)).reshape(h, w) + 16.5, casting="unsafe")
            pooled = canvas.reshape(3, h // 2, 2, w // 2, 2).mean(axis=(2, 4)).reshape(3, -1)
        np.copyto(u, (YUV_CHROMA[0] @ pooled).reshape(u.shape) + 128.5, casting="unsafe")
        np.copyto(v, (YUV_CHROMA[1] @ pooled).reshape(v.shape) + 128.5, casting="unsafe")
        return out

    @staticmethod
    def _colours(palette: list[np.ndarray], named: list[np.ndarray] = ()) -> tuple[Layers, np.ndarray, np.ndarray]:
        """Three light colours (colours the prompt ``named``, then the brightest palette colours)
        and two dark background colours.

        The darkest colour, dimmed, is the background; every other colour is a light. With fewer
        than three lights, the darkest colour brightened and a paler first light fill in, so a
        two-colour palette still gets some variety of hue.
        """
        by_luminance = sorted(palette, key=_luminance)
        darkest = by_luminance[0]
        lights = [_scaled_to_peak(c, 0.9) for c in [*named, *reversed(by_luminance[1:])]] or [_scaled_to_peak(darkest, 0.9)]
        for filler in (_scaled_to_peak(darkest, 0.8), 0.6 * lights[0] + 0.35):
            if len(lights) < 3:
                lights.append(filler)
        second = by_luminance[1] if len(by_luminance) > 1 else darkest
        layers = Layers(np.stack(lights[:3]).astype(np.float32))
        return layers, _scaled_to_peak(darkest, 0.2), _scaled_to_peak(second, 0.09)

    def _background(self, rng: np.random.Generator, near: np.ndarray, far: np.ndarray) -> np.ndarray:
        """(3, h, w) gradient from ``near`` to ``far`` along a random direction, with a soft light pool."""
        angle = rng.uniform(0, 2 * np.pi)
        along = np.cos(angle) * self._xs[None, :] / self._aspect + np.sin(angle) * self._ys[:, None]
        mix = np.clip(0.5 + 0.5 * along, 0.0, 1.0)
        gradient = near[:, None, None] * (1 - mix) + far[:, None, None] * mix
        cx, cy = rng.uniform(-0.5, 0.5, 2)
        pool = np.exp(-1.5 * (np.square(self._xs[None, :] / self._aspect - cx) + np.square(self._ys[:, None] - cy)))
        return (gradient * (0.75 + 0.5 * pool)).astype(np.float32)

    def _world_grid(
        self, zoom: float, roll: float, offset_x: float, offset_y: float, rolls: bool
    ) -> tuple[np.ndarray, np.ndarray]:
        """World coordinates (u, v) of the pixels: world = rotate(screen, roll) / zoom + offset."""
        xs, ys = self._xs, self._ys
        if rolls:
            cos, sin = math.cos(roll), math.sin(roll)
            u = np.add.outer(ys * (-sin / zoom), xs * (cos / zoom) + offset_x)
            v = np.add.outer(ys * (cos / zoom) + offset_y, xs * (sin / zoom))
            return u, v
        # a row and a column that broadcast: 1-D motifs stay 1-D work
        return (xs * (1 / zoom) + offset_x)[None, :], (ys * (1 / zoom) + offset_y)[:, None]
