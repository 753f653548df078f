"""Where a neural model runs: one place that turns the ``device`` and ``dtype`` settings into torch
objects, and frees accelerator memory between models.

Every model backend (CLAP, audio-language model, LLM, video model) calls these, so that
``device = "auto"`` means the same thing everywhere: CUDA, then Apple's MPS, then the CPU.
torch is imported inside the functions, so importing this module costs nothing and works
without the optional extras installed.
"""

from __future__ import annotations

import gc
import logging
import re
from typing import TYPE_CHECKING

from music2video.errors import Music2VideoError

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

DEVICE_CHOICES = "auto, cpu, cuda, cuda:N (e.g. cuda:1) or mps"
DTYPE_CHOICES = ("auto", "float32", "float16", "bfloat16")

_DEVICE_PATTERN = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


def resolve_device(name: str = "auto") -> torch.device:
    """The torch device for a ``device`` setting.

    ``name``: ``auto`` (CUDA if available, then MPS, then CPU), ``cpu``, ``cuda``, ``cuda:N`` or
    ``mps``. Asking for an accelerator that is not there raises :class:`Music2VideoError` rather
    than silently running on the CPU, because a silent fallback can turn minutes into hours.
    """
    import torch

    text = (name or "auto").strip().lower()
    if not _DEVICE_PATTERN.match(text):
        raise Music2VideoError(f"device {name!r} is not one of {DEVICE_CHOICES}")
    if text == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if text.startswith("cuda"):
        if not torch.cuda.is_available():
            raise Music2VideoError(
                f"device {name!r} was asked for but torch sees no CUDA GPU "
                f"(torch {torch.__version__}, CUDA build: {torch.version.cuda or 'no'}); use device 'cpu' or 'auto'"
            )
        index = int(text.split(":")[1]) if ":" in text else 0
        count = torch.cuda.device_count()
        if index >= count:
            raise Music2VideoError(f"device {name!r} does not exist: torch sees {count} CUDA GPU(s), cuda:0..cuda:{count - 1}")
        return torch.device(text)
    if text == "mps" and not _mps_available():
        raise Music2VideoError("device 'mps' was asked for but this torch build has no usable MPS backend; use 'cpu' or 'auto'")
    return torch.device(text)


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    """The torch dtype for a ``dtype`` setting on ``device``.

    ``auto`` is bfloat16 on CUDA GPUs that support it (float16 on older ones, which lack fast
    bfloat16) and float32 elsewhere: on MPS and on most CPUs half precision is not reliably
    faster, and float32 is the reference. An explicit half-precision dtype on the CPU is
    honoured and logged (bfloat16 pays off on CPUs with AVX512-BF16 or AMX).
    """
    import torch

    text = (name or "auto").strip().lower()
    if text not in DTYPE_CHOICES:
        raise Music2VideoError(f"dtype {name!r} is not one of {', '.join(DTYPE_CHOICES)}")
    if text == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    dtype = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[text]
    if device.type == "cpu" and dtype == torch.float16:
        log.warning("running in float16 on the CPU: most CPUs have no fast float16 arithmetic; bfloat16 or float32 is usually faster")
    elif device.type == "cpu" and dtype == torch.bfloat16:
        # Measured on a 2-core AVX512-BF16 machine: CLAP's audio encoder ran about 2x faster than
        # in float32 with embeddings at cosine 0.99998 to float32; CPUs without bfloat16
        # instructions emulate it and get slower instead.
        log.info("running in bfloat16 on the CPU: fast only with AVX512-BF16 or AMX instructions")
    return dtype


def free_memory() -> None:
    """Release what a model that was just deleted still holds: Python garbage, then the CUDA or
    MPS caching allocator's blocks, so the next model finds the memory free."""
    gc.collect()
    try:
        import torch
    except ImportError:
        return
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.empty_cache()
    if _mps_available():
        torch.mps.empty_cache()


def _mps_available() -> bool:
    import torch

    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())
