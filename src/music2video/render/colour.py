r"""Colour that stays put: match a clip's colours to a reference picture, and measure how far they drift.

Video models drift in colour: over a clip the picture slowly warms, fades or greys, and a shot
extended from its own last frame carries the drift further. Each clip is therefore matched to
its **scene's first keyframe** (never to the clip before it: matching to a clip chains its
drift into the next one).

Method: the per-channel mean and standard deviation in CIE L*a*b* (Reinhard et al., "Color
Transfer between Images", 2001). For every frame, each Lab channel is shifted and scaled so
that its mean and spread equal the reference's:

    out = (x - mean_frame) * (std_reference / std_frame) + mean_reference

The frame statistics are smoothed over :data:`SMOOTHING_S` seconds of the clip before use, so
that slow drift is removed while a fast change the model drew on purpose (a flash on the beat)
keeps most of its contrast to the frames around it. The scale is bounded
(:data:`MAX_STD_RATIO`) so a nearly flat frame is not blown up into noise.

Lab needs no dependency: sRGB (D65) <-> XYZ <-> Lab in numpy, as in the CIE and sRGB standards.

**Speed.** A clip's frames are not taken to Lab and back pixel by pixel: for each frame the exact
transform is computed on a :data:`LUT_SIZE`\ :sup:`3` grid of sRGB colours, to *linear* RGB
(smooth, unclipped), and every pixel reads it with trilinear interpolation (torch's
``grid_sample``), then the sRGB curve (a table). About 2x faster than the exact round trip on a
clip, within :data:`LUT_TOLERANCE_LEVELS` of it (mean under 0.35 levels) (:meth:`ColourTransform.apply_exact`, the oracle
in tests/test_colour.py). Interpolating sRGB output instead would be off by up to 16 levels where
a channel clips at 0 or the sRGB curve is steep near black; linear light avoids both.

**On the GPU.** Frames given as a torch tensor (the renderer keeps a clip on its device) are matched
there: the Lab statistics, the tables and the lookup run in torch on the tensor's device, with the
same tables and arithmetic as the numpy path, and agree with it within
:data:`TORCH_TOLERANCE_LEVELS` (tests/test_colour.py). Only the per-frame statistics, (frames, 3)
values, go to the CPU, where the smoothing and the scale bounds are computed as for numpy frames.

**Drift** is measured as the CIE76 colour difference (Delta E, Lab units: 1 is about the
smallest difference a viewer sees side by side; 2-10 is noticeable at a glance) between a frame's
mean Lab colour and the reference's, averaged over the clip's frames.

All pictures here are float arrays in [0, 1], shape (..., 3) RGB; a clip's frames may also be a
float torch tensor of that shape, on any device.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

METHOD = "lab-mean-std"
"""Name of the matching method, as it appears in clips.json and the report."""

SMOOTHING_S = 0.5
"""Window of the moving average over per-frame statistics, seconds of clip."""

MAX_STD_RATIO = 3.0
"""Largest factor by which a channel's spread may be scaled up or down."""

LUT_SIZE = 33
"""Grid points per channel of the per-frame colour lookup table (33 ** 3 colours)."""

LUT_TOLERANCE_LEVELS = 4.0
"""Largest difference (levels of 255, any channel) between the table and the exact transform.

Measured: at most 1.4 on a drifting clip and on noise; up to 3.6 (mean 0.33) under a strong cast
(channel gains 0.2-1.6, Lab spread scaled up to :data:`MAX_STD_RATIO`), where the table's
interpolation error is stretched with the colours. A 65-point table halves that for 8x the
table-building time."""

TORCH_TOLERANCE_LEVELS = 0.5
"""Largest difference (levels of 255) between a clip matched as a torch tensor and as a numpy array.

Both read the same tables; float32 sums in another order move a value across a table entry now
and then. Measured on the CPU: at most 0.05 levels on the tests' drifting, cast and noise clips."""

STATS_MAX_PIXELS = 64 * 64
"""Statistics are taken on at most about this many pixels per frame (a strided subsample)."""

# sRGB (D65) to XYZ, IEC 61966-2-1.
_RGB_TO_XYZ = np.array(
    [[0.4124564, 0.3575761, 0.1804375], [0.2126729, 0.7151522, 0.0721750], [0.0193339, 0.1191920, 0.9503041]],
    dtype=np.float64,
)
_XYZ_TO_RGB = np.linalg.inv(_RGB_TO_XYZ)
_WHITE_D65 = np.array([0.95047, 1.0, 1.08883])
_EPSILON = 216 / 24389  # CIE: (6/29)^3
_KAPPA = 24389 / 27

# The transfer curves are read from tables instead of computed (x ** 2.4, cube roots): 2.4 times
# faster on a clip's 30 million values, and within 0.07 Lab units and 0.2 of a level of 255 of
# the exact curves (checked in tests/test_colour.py).
_TABLE_SIZE = 65536
_CBRT_TOP = 1.1  # X/Xn, Y/Yn, Z/Zn of in-gamut sRGB stay below 1.0
_grid = np.linspace(0.0, 1.0, _TABLE_SIZE)
_DECODE = np.where(_grid <= 0.04045, _grid / 12.92, ((_grid + 0.055) / 1.055) ** 2.4).astype(np.float32)
_ENCODE = np.where(_grid <= 0.0031308, _grid * 12.92, 1.055 * _grid ** (1 / 2.4) - 0.055).astype(np.float32)
_cbrt_grid = np.linspace(0.0, _CBRT_TOP, _TABLE_SIZE)
_LAB_F = np.where(_cbrt_grid > _EPSILON, np.cbrt(_cbrt_grid), (_KAPPA * _cbrt_grid + 16) / 116).astype(np.float32)
# Linear RGB -> XYZ relative to the white point, and back, as matrices for ``pixels @ matrix``.
_TO_XYZ_N = (_RGB_TO_XYZ / _WHITE_D65[:, None]).T.astype(np.float32)
_FROM_XYZ_N = (_XYZ_TO_RGB * _WHITE_D65[None, :]).T.astype(np.float32)


def _table(table: np.ndarray, values: np.ndarray, top: float = 1.0) -> np.ndarray:
    """``table`` (sampled evenly on [0, top]) at ``values``, nearest entry; values outside are clipped."""
    index = np.clip(values * ((_TABLE_SIZE - 1) / top) + 0.5, 0, _TABLE_SIZE - 1).astype(np.int32)
    return table[index]


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """sRGB in [0, 1] (..., 3) -> CIE L*a*b* (..., 3), float32 (L in 0..100)."""
    f = _table(_LAB_F, _table(_DECODE, np.asarray(rgb, dtype=np.float32)) @ _TO_XYZ_N, _CBRT_TOP)
    lab = np.empty_like(f)
    lab[..., 0] = 116 * f[..., 1] - 16
    lab[..., 1] = 500 * (f[..., 0] - f[..., 1])
    lab[..., 2] = 200 * (f[..., 1] - f[..., 2])
    return lab


def lab_to_linear(lab: np.ndarray) -> np.ndarray:
    """CIE L*a*b* (..., 3) -> linear RGB (..., 3), float32, not clipped (out of gamut stays out)."""
    lab = np.asarray(lab, dtype=np.float32)
    fy = (lab[..., 0] + 16) / 116
    f = np.stack([fy + lab[..., 1] / 500, fy, fy - lab[..., 2] / 200], axis=-1)
    cube = f * f * f
    xyz = np.where(cube > _EPSILON, cube, (116 * f - 16) / _KAPPA)
    return xyz @ _FROM_XYZ_N


def is_tensor(frames: object) -> bool:
    """Whether ``frames`` is a torch tensor (without importing torch where nothing has)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(frames, torch.Tensor)


@lru_cache(maxsize=4)
def _tables_on(device: torch.device) -> dict[str, torch.Tensor]:
    """The curve tables and matrices above as float32 tensors on ``device`` (copied there once)."""
    import torch

    arrays = {
        "decode": _DECODE, "encode": _ENCODE, "lab_f": _LAB_F, "to_xyz": _TO_XYZ_N, "from_xyz": _FROM_XYZ_N,
        "grid_lab": _lut_grid_lab(),
    }  # fmt: skip
    return {name: torch.tensor(array, device=device) for name, array in arrays.items()}


def _table_torch(table: torch.Tensor, values: torch.Tensor, top: float = 1.0) -> torch.Tensor:
    """:func:`_table` for tensors: the same index arithmetic, read with index_select."""
    import torch

    index = (values * ((_TABLE_SIZE - 1) / top) + 0.5).clamp_(0, _TABLE_SIZE - 1).to(torch.int32)
    return table.index_select(0, index.reshape(-1)).reshape(index.shape)


def rgb_to_lab_torch(rgb: torch.Tensor) -> torch.Tensor:
    """:func:`rgb_to_lab` for a float tensor (..., 3), computed on its device."""
    import torch

    tables = _tables_on(rgb.device)
    f = _table_torch(tables["lab_f"], _table_torch(tables["decode"], rgb.float()) @ tables["to_xyz"], _CBRT_TOP)
    return torch.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], dim=-1)


def lab_to_linear_torch(lab: torch.Tensor) -> torch.Tensor:
    """:func:`lab_to_linear` for a float tensor (..., 3), computed on its device."""
    import torch

    fy = (lab[..., 0] + 16) / 116
    f = torch.stack([fy + lab[..., 1] / 500, fy, fy - lab[..., 2] / 200], dim=-1)
    cube = f * f * f
    xyz = torch.where(cube > _EPSILON, cube, (116 * f - 16) / _KAPPA)
    return xyz @ _tables_on(lab.device)["from_xyz"]


def lab_to_rgb(lab: np.ndarray) -> np.ndarray:
    """CIE L*a*b* (..., 3) -> sRGB in [0, 1] (..., 3), float32, clipped to the gamut."""
    return _table(_ENCODE, lab_to_linear(lab))


@dataclass(frozen=True)
class LabStats:
    """Per-channel mean and standard deviation in Lab: arrays of shape (frames, 3) (or (3,) for a picture)."""

    mean: np.ndarray
    std: np.ndarray


def _subsample(frames: np.ndarray) -> np.ndarray:
    """A strided view with at most about :data:`STATS_MAX_PIXELS` pixels per frame."""
    height, width = frames.shape[-3:-1]
    stride = max(1, int(np.sqrt(height * width / STATS_MAX_PIXELS)))
    return frames[..., ::stride, ::stride, :]


def picture_stats(picture: np.ndarray) -> LabStats:
    """Lab mean and spread of one (H, W, 3) picture."""
    lab = rgb_to_lab(_subsample(picture)).reshape(-1, 3)
    return LabStats(lab.mean(axis=0), lab.std(axis=0))


def frame_stats(frames: np.ndarray | torch.Tensor) -> LabStats:
    """Lab mean and spread of every frame of (frames, H, W, 3), as numpy arrays.

    A tensor's statistics are computed on its device; only the (frames, 3) results are copied back."""
    if is_tensor(frames):
        lab = rgb_to_lab_torch(_subsample(frames)).reshape(len(frames), -1, 3)
        return LabStats(lab.mean(dim=1).cpu().numpy(), lab.std(dim=1, correction=0).cpu().numpy())
    lab = rgb_to_lab(_subsample(frames)).reshape(len(frames), -1, 3)
    return LabStats(lab.mean(axis=1), lab.std(axis=1))


def smooth(values: np.ndarray, window: int) -> np.ndarray:
    """Centred moving average over axis 0 with a ``window``-frame box (edges use what exists)."""
    if window <= 1 or len(values) <= 1:
        return values
    half = window // 2
    padded = np.concatenate([np.repeat(values[:1], half, axis=0), values, np.repeat(values[-1:], half, axis=0)])
    kernel_sum = np.cumsum(np.concatenate([np.zeros((1, *values.shape[1:])), padded]), axis=0)
    return ((kernel_sum[2 * half + 1 :] - kernel_sum[: -2 * half - 1]) / (2 * half + 1)).astype(np.float32)


@dataclass(frozen=True)
class ColourTransform:
    """Per-frame Lab shift and scale: ``out = (lab - source_mean) * scale + target_mean``."""

    source_mean: np.ndarray  # (frames, 3)
    scale: np.ndarray  # (frames, 3)
    target_mean: np.ndarray  # (3,)

    def _lab(self, lab: np.ndarray, rows: slice) -> np.ndarray:
        """The transform of Lab values (frames, ..., 3) of the clip's frames ``rows``."""
        shape = (-1,) + (1,) * (lab.ndim - 2) + (3,)
        return (lab - self.source_mean[rows].reshape(shape)) * self.scale[rows].reshape(shape) + self.target_mean

    def apply_exact(self, frames: np.ndarray, first: int = 0) -> np.ndarray:
        """:meth:`apply` by a Lab round trip of every pixel (the reference :meth:`apply` is held to)."""
        rows = slice(first, first + len(frames))
        return lab_to_rgb(self._lab(rgb_to_lab(frames), rows))

    def apply(self, frames: Any, first: int = 0) -> Any:
        """Match ``frames`` (a chunk of (frames, H, W, 3) float RGB) whose first frame is frame ``first`` of the clip.

        Through a per-frame lookup table (see the module docstring); needs torch (the video extra).
        A numpy chunk gives a numpy result; a torch tensor gives a float32 tensor on its device,
        computed there.
        """
        import torch
        import torch.nn.functional as F

        rows = slice(first, first + len(frames))
        on_device = is_tensor(frames)
        if on_device:
            device = frames.device
            shape = (-1, 1, 1, 1, 3)
            mean, scale, target = (torch.from_numpy(np.ascontiguousarray(a)).to(device) for a in (self.source_mean[rows], self.scale[rows], self.target_mean))
            lab = (_tables_on(device)["grid_lab"].unsqueeze(0) - mean.reshape(shape)) * scale.reshape(shape) + target
            tables_t = lab_to_linear_torch(lab).permute(0, 4, 1, 2, 3)
            pixels = frames.float()
            encode = _tables_on(device)["encode"]
        else:
            grid_lab = _lut_grid_lab()
            tables = lab_to_linear(self._lab(np.broadcast_to(grid_lab, (len(frames), *grid_lab.shape)), rows))
            tables_t = torch.from_numpy(np.ascontiguousarray(tables, dtype=np.float32)).permute(0, 4, 1, 2, 3)
            pixels = torch.from_numpy(np.ascontiguousarray(frames, dtype=np.float32))
            encode = torch.from_numpy(_ENCODE)
        # grid_sample's coordinates run from -1 to 1, (x, y, z) = (red, green, blue): the pixel itself.
        where = pixels.mul(2).sub_(1).unsqueeze(1)
        linear = F.grid_sample(tables_t, where, mode="bilinear", padding_mode="border", align_corners=True)
        linear = linear[:, :, 0].permute(0, 2, 3, 1).contiguous()
        index = linear.clamp_(0, 1).mul_(_TABLE_SIZE - 1).add_(0.5).to(torch.int32)
        # index_select on a flat index: twice as fast as indexing with an int32 tensor (torch 2.x CPU).
        matched = encode.index_select(0, index.view(-1)).view(index.shape)
        return matched if on_device else matched.numpy()


@lru_cache(maxsize=1)
def _lut_grid_lab() -> np.ndarray:
    """Lab of the table's :data:`LUT_SIZE` ** 3 sRGB grid points, (b, g, r, 3) (grid_sample's (D, H, W) order)."""
    axis = np.linspace(0.0, 1.0, LUT_SIZE, dtype=np.float32)
    blue, green, red = np.meshgrid(axis, axis, axis, indexing="ij")
    grid_lab = rgb_to_lab(np.stack([red, green, blue], axis=-1))
    grid_lab.flags.writeable = False  # shared by every call
    return grid_lab


def fit_transform(frames: np.ndarray | torch.Tensor, reference: np.ndarray, fps: float) -> ColourTransform:
    """The :data:`METHOD` transform that moves the clip ``frames`` (at ``fps``) onto ``reference``'s colours."""
    stats = frame_stats(frames)
    target = picture_stats(reference)
    window = max(1, round(SMOOTHING_S * fps))
    mean = smooth(stats.mean, window)
    std = smooth(stats.std, window)
    scale = np.clip(target.std / np.maximum(std, 1e-3), 1 / MAX_STD_RATIO, MAX_STD_RATIO).astype(np.float32)
    return ColourTransform(mean, scale, target.mean.astype(np.float32))


def colour_drift(frames: np.ndarray | torch.Tensor, reference: np.ndarray) -> float:
    """Mean over frames of the CIE76 Delta E between each frame's mean Lab colour and the reference's."""
    means = frame_stats(frames).mean
    return float(np.linalg.norm(means - picture_stats(reference).mean, axis=1).mean())
