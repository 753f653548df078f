"""Colour matching to a scene's keyframe, checked on synthetic frames with a known colour cast."""

from __future__ import annotations

import numpy as np
import pytest

from music2video.render import colour


def textured_picture(seed: int = 0, height: int = 48, width: int = 64) -> np.ndarray:
    """A picture with colour regions and texture (float RGB in [0, 1]), like a keyframe."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    picture = np.stack([0.5 + 0.3 * np.sin(6 * x), 0.4 + 0.3 * y, 0.6 - 0.3 * x * y], axis=-1)
    return np.clip(picture + rng.normal(0, 0.03, picture.shape), 0, 1).astype(np.float32)


def with_cast(picture: np.ndarray, frames: int) -> np.ndarray:
    """The picture drifting over ``frames`` frames: warmer, then darker and greyer (what video models do)."""
    out = []
    for t in range(frames):
        drift = t / max(1, frames - 1)
        gains = np.array([1 + 0.25 * drift, 1.0, 1 - 0.3 * drift], np.float32) * (1 - 0.2 * drift)
        grey = picture.mean(axis=-1, keepdims=True)
        faded = picture + 0.4 * drift * (grey - picture)
        out.append(np.clip(faded * gains + 0.05 * drift, 0, 1))
    return np.stack(out).astype(np.float32)


def exact_lab(rgb: np.ndarray) -> np.ndarray:
    """sRGB -> Lab computed with the curves themselves (the module reads them from tables)."""
    linear = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    xyz = linear @ colour._RGB_TO_XYZ.T / colour._WHITE_D65
    f = np.where(xyz > colour._EPSILON, np.cbrt(xyz), (colour._KAPPA * xyz + 16) / 116)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], axis=-1)


def test_lab_known_values_and_round_trip():
    assert colour.rgb_to_lab(np.array([1.0, 1.0, 1.0])) == pytest.approx([100.0, 0.0, 0.0], abs=0.01)
    assert colour.rgb_to_lab(np.array([1.0, 0.0, 0.0])) == pytest.approx([53.24, 80.09, 67.20], abs=0.05)
    assert colour.rgb_to_lab(np.array([0.0, 0.0, 0.0])) == pytest.approx([0.0, 0.0, 0.0], abs=0.01)
    rng = np.random.default_rng(1)
    pixels = np.concatenate([textured_picture().reshape(-1, 3), rng.random((20000, 3)), rng.random((2000, 3)) * 0.02])
    pixels = pixels.astype(np.float32)
    assert np.abs(colour.rgb_to_lab(pixels) - exact_lab(pixels.astype(np.float64))).max() < 0.07
    # Back to sRGB within a fifth of a level of 255, darkest colours included.
    assert np.abs(colour.lab_to_rgb(colour.rgb_to_lab(pixels)) - pixels).max() < 0.2 / 255


def test_a_known_cast_is_removed():
    reference = textured_picture()
    clip = with_cast(reference, 32)
    before = colour.colour_drift(clip, reference)
    transform = colour.fit_transform(clip, reference, fps=16.0)
    matched = np.concatenate([transform.apply(clip[i : i + 8], i) for i in range(0, len(clip), 8)])
    after = colour.colour_drift(matched, reference)
    assert before > 8 and after < 1.5, (before, after)
    # Per pixel, on the most drifted frame: 26.6 levels (of 255) from the keyframe before, 9.3 after.
    # Mean and spread per Lab channel cannot undo the fade's change of each pixel's own saturation.
    error_before = np.abs(clip[-1] - reference).mean() * 255
    error_after = np.abs(matched[-1] - reference).mean() * 255
    assert error_before > 25 and error_after < error_before / 2.5, (error_before, error_after)


def test_a_flash_keeps_its_contrast():
    """A one-frame flash (a beat the model drew) is not flattened: statistics are smoothed over 0.5 s."""
    reference = textured_picture()
    clip = np.repeat(reference[None], 16, axis=0).copy()
    clip[8] = np.clip(clip[8] * 1.6, 0, 1)
    matched = colour.fit_transform(clip, reference, fps=16.0).apply(clip)
    lightness = colour.rgb_to_lab(matched)[..., 0].mean(axis=(1, 2))
    assert lightness[8] - np.median(lightness) > 8


def test_nearly_flat_frames_are_not_blown_up():
    reference = textured_picture()
    flat = np.full((4, 16, 16, 3), 0.5, np.float32)
    transform = colour.fit_transform(flat, reference, fps=16.0)
    assert transform.scale.max() <= colour.MAX_STD_RATIO
    assert np.isfinite(transform.apply(flat)).all()


def test_the_lookup_table_matches_the_exact_transform():
    """apply (a per-frame 33^3 table read trilinearly) stays within LUT_TOLERANCE_LEVELS of the Lab round trip,
    on a drifting clip, on noise (every colour), and under strong casts that push colours out of the gamut."""
    rng = np.random.default_rng(4)
    reference = textured_picture(height=96, width=128)
    clip = with_cast(reference, 12)
    noise = rng.random((4, 64, 64, 3), dtype=np.float32)
    darkened = np.clip(reference[None] * np.array([0.3, 0.9, 1.4], np.float32), 0, 1).repeat(3, axis=0)
    # A strong cast of another picture: spreads scaled up to MAX_STD_RATIO, the table's worst case.
    cast = np.clip(textured_picture(108, 96, 128)[None] * np.array([0.22, 0.47, 1.17], np.float32) + 0.05, 0, 1)
    for frames in (clip, noise, darkened, cast.repeat(3, axis=0)):
        transform = colour.fit_transform(frames, reference, fps=16.0)
        exact = transform.apply_exact(frames[2:], first=2)
        fast = transform.apply(frames[2:], first=2)
        levels = np.abs(fast - exact) * 255
        assert fast.dtype == np.float32 and fast.shape == frames[2:].shape
        assert levels.max() < colour.LUT_TOLERANCE_LEVELS and levels.mean() < 0.35, (levels.max(), levels.mean())


def torch_devices() -> list[str]:
    torch = pytest.importorskip("torch")
    return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", torch_devices())
def test_frames_as_a_torch_tensor_match_as_numpy_frames_do(device):
    """The renderer's GPU path (frames kept on the device as a tensor) gives the numpy path's statistics,
    transform and matched pixels, within TORCH_TOLERANCE_LEVELS, and leaves the result on the device."""
    import torch

    reference = textured_picture(height=96, width=128)
    cast = np.clip(textured_picture(108, 96, 128)[None] * np.array([0.22, 0.47, 1.17], np.float32) + 0.05, 0, 1)
    for frames in (with_cast(reference, 12), cast.repeat(3, axis=0)):
        tensor = torch.from_numpy(frames.copy()).to(device)
        stats, stats_t = colour.frame_stats(frames), colour.frame_stats(tensor)
        assert isinstance(stats_t.mean, np.ndarray)
        np.testing.assert_allclose(stats_t.mean, stats.mean, atol=1e-3)
        np.testing.assert_allclose(stats_t.std, stats.std, atol=1e-3)
        assert colour.colour_drift(tensor, reference) == pytest.approx(colour.colour_drift(frames, reference), abs=1e-3)
        transform, transform_t = colour.fit_transform(frames, reference, 16.0), colour.fit_transform(tensor, reference, 16.0)
        np.testing.assert_allclose(transform_t.scale, transform.scale, rtol=1e-4)
        matched = transform.apply(frames[2:], first=2)
        matched_t = transform_t.apply(tensor[2:], first=2)
        assert matched_t.device.type == device and matched_t.dtype == torch.float32 and matched_t.shape == matched.shape
        levels = np.abs(matched_t.cpu().numpy() - matched) * 255
        assert levels.max() < colour.TORCH_TOLERANCE_LEVELS, levels.max()
        # And it still removes the cast, as the numpy path does.
        assert colour.colour_drift(matched_t, reference) < colour.colour_drift(tensor[2:], reference) / 2
