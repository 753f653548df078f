"""Loading an image model and drawing one image with it; one model in memory at a time.

:class:`ImageModels` hands out a loaded :class:`ImageGenerator` per registry entry and frees the
one before it loads the next (references and text-only keyframes share the text-to-image model;
the edit model loads after it), so the image models never sit in GPU memory together, and
leaving the ``with`` block frees the last one before the video model loads.

Out of GPU memory, an image is retried with more offloading (none -> model -> sequential; the
level then stays for the following images), as the video renderer does; if even sequential
offload fails, that image raises a :class:`Music2VideoError`, which the stage records for that
image alone (the shot then renders from its text, and a rerun tries it again).

torch and diffusers are imported only when a model loads.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import logging
import time
from collections.abc import Iterator
from types import TracebackType
from typing import TYPE_CHECKING, Any

from music2video.errors import ModelLoadError, Music2VideoError
from music2video.keyframes.image_models import ImageModel, SpeedLora, sampling_for, warn_about_licence
from music2video.model_source import load_error
from music2video.optional import require
from music2video.settings import KeyframeSettings

if TYPE_CHECKING:
    import PIL.Image
    import torch

log = logging.getLogger(__name__)

# Bump when a change here changes the pixels made from the same settings, so that cached
# references and keyframes are made again.
GENERATOR_VERSION = 1

OFFLOAD_LEVELS = ("none", "model", "sequential")

_FLAGS = {"text-to-image": "--reference-model", "edit": "--keyframe-model"}


def image_fingerprint(entry: ImageModel, settings: KeyframeSettings) -> dict[str, object]:
    """What changes the pixels of ``entry``'s images: model, steps, guidance, dtype, the speed
    LoRA and the reference encoding size (not the device or offloading, which change speed and
    memory only). Known before anything loads. The last two are listed only when in use, so the
    images of earlier runs keep their hashes."""
    sampling = sampling_for(entry, settings.speed, settings.steps, settings.guidance)
    fingerprint: dict[str, object] = {
        "model": entry.name,
        "source": entry.hf_id,
        "steps": sampling.steps,
        "guidance": sampling.guidance,
        "dtype": settings.dtype,
        "version": GENERATOR_VERSION,
    }
    if sampling.lora is not None:
        fingerprint["lora"] = f"{sampling.lora.repo}/{sampling.lora.weight_name}"
    if entry.reference_pixels_constant and settings.reference_pixels:
        fingerprint["reference_pixels"] = settings.reference_pixels
    return fingerprint


class ImageGenerator:
    """One loaded image pipeline. Use as a context manager: load on enter, free on exit.

    Args:
        entry: the registry entry (see :func:`~music2video.keyframes.image_models.resolve_image_model`).
        settings: the ``[keyframes]`` section: device, dtype, steps, guidance, offload, VAE tiling.
    """

    def __init__(self, entry: ImageModel, settings: KeyframeSettings):
        self.entry = entry
        self.settings = settings
        sampling = sampling_for(entry, settings.speed, settings.steps, settings.guidance)
        self.steps, self.guidance, self.lora = sampling.steps, sampling.guidance, sampling.lora
        self.offload = settings.offload
        self.warnings: list[str] = []
        self._pipe: Any = None
        self._device: torch.device | None = None
        self._placed: str | None = None

    def __enter__(self) -> ImageGenerator:
        require("torch", "diffusers", extra="video", purpose="The keyframes stage")
        import diffusers

        from music2video.torch_device import resolve_device, resolve_dtype

        if (warning := warn_about_licence(self.entry)) is not None:
            self.warnings.append(warning)
        self._device = resolve_device(self.settings.device)
        dtype = resolve_dtype(self.settings.dtype, self._device)
        started = time.perf_counter()
        pipeline_class = getattr(diffusers, self.entry.pipeline, None) or diffusers.DiffusionPipeline
        try:
            self._pipe = pipeline_class.from_pretrained(self.entry.hf_id, dtype=dtype)
        except Exception as error:  # hub, file, config and import errors all mean "cannot load"
            for package in self.entry.needs:  # the likeliest reason, said first
                if importlib.util.find_spec(package) is None:
                    # Not in the video extra: PyPI's torchvision is built for CUDA torch and does
                    # not import beside a CPU-only torch, which CI and the preview use.
                    raise ModelLoadError(
                        f"cannot load {self.entry.name} ({self.entry.pipeline}): its processor needs '{package}'; "
                        f"pip install {package} (the build that matches your torch), or choose another "
                        f"{_FLAGS[self.entry.task]}"
                    ) from None
            raise load_error(self.entry.hf_id, "image", _FLAGS[self.entry.task], error) from None
        self._pipe.set_progress_bar_config(disable=True)
        if self.lora is not None:
            try:
                self._fuse(self.lora)
            except BaseException:
                self.__exit__(None, None, None)  # no 'with' block holds it yet: free the model here
                raise
        if self.settings.reference_pixels and self.entry.task == "edit" and self.entry.reference_pixels_constant is None:
            log.warning("%s has no setting for the reference encoding size; keyframes.reference_pixels ignored", self.entry.name)
        if self.settings.vae_tiling and hasattr(self._pipe.vae, "enable_tiling"):
            self._pipe.vae.enable_tiling()
        log.info(
            "loaded %s (%s) on %s in %s in %.1f s; offload %s",
            self.entry.name, self.entry.hf_id, self._device, str(dtype).removeprefix("torch."),
            time.perf_counter() - started, self.offload,
        )  # fmt: skip
        return self

    def _fuse(self, lora: SpeedLora) -> None:
        """Fuse a few-step LoRA into the transformer and set the scheduler it was distilled with.

        Fused (diffusers' documented way: load, fuse, unload), the steps cost what the base
        model's do; on a GPU without offload the pipeline moves there first, so the fusing runs
        on the GPU rather than the CPU.
        """
        if importlib.util.find_spec("peft") is None:
            raise ModelLoadError(
                f"keyframes.speed = {self.settings.speed!r} loads a LoRA, which diffusers does through 'peft': "
                "pip install peft (part of the video extra), or set keyframes.speed = \"full\""
            )
        from diffusers import FlowMatchEulerDiscreteScheduler

        started = time.perf_counter()
        if lora.scheduler:
            self._pipe.scheduler = FlowMatchEulerDiscreteScheduler.from_config(self._pipe.scheduler.config, **lora.scheduler)
        if self.offload == "none" and self._device is not None and self._device.type != "cpu":
            self._place()
        subfolder, _, weight_name = lora.weight_name.rpartition("/")
        try:
            self._pipe.load_lora_weights(lora.repo, weight_name=weight_name, subfolder=subfolder or None, adapter_name="speed")
        except Exception as error:  # hub, file and key-mismatch errors all mean "cannot load"
            raise ModelLoadError(
                f"cannot load the {self.settings.speed} LoRA for {self.entry.name} ({lora.repo}, {lora.weight_name}): "
                f"{str(error).splitlines()[0] if str(error) else type(error).__name__}; set keyframes.speed = \"full\" "
                "to run without it"
            ) from None
        self._pipe.fuse_lora(adapter_names=["speed"])
        self._pipe.unload_lora_weights()
        log.info(
            "%s: fused %s (%s) in %.1f s: %d steps, guidance %g",
            self.entry.name, lora.weight_name, self.settings.speed, time.perf_counter() - started, self.steps, self.guidance,
        )  # fmt: skip

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        from music2video.torch_device import free_memory

        self._pipe = None
        self._placed = None
        free_memory()

    def generate(
        self,
        prompt: str,
        negative_prompt: str,
        seed: int,
        size: tuple[int, int],
        images: list[PIL.Image.Image] | None = None,
        what: str = "image",
    ) -> PIL.Image.Image:
        """One RGB image of ``size`` (width, height) from ``prompt`` (and the reference ``images``
        of an edit model), seeded; retried with more offloading after running out of GPU memory."""
        while True:
            out_of_memory = False
            try:
                return self._call(prompt, negative_prompt, seed, size, images)
            except Exception as error:
                from music2video.render.diffusion import is_out_of_memory

                if not is_out_of_memory(error):
                    raise
                out_of_memory = True
            # Outside the except block, so the traceback's tensors are gone before we free.
            if out_of_memory:
                from music2video.torch_device import free_memory

                free_memory()
                index = OFFLOAD_LEVELS.index(self.offload)
                if index + 1 == len(OFFLOAD_LEVELS):
                    raise Music2VideoError(
                        f"{what}: out of GPU memory even with sequential offload at {size[0]}x{size[1]} with "
                        f"{self.entry.name}; try a smaller keyframes.size or keyframes.reference_size, "
                        "keyframes.vae_tiling, or a smaller model such as flux.1-schnell for references"
                    )
                more = OFFLOAD_LEVELS[index + 1]
                log.warning("%s: out of GPU memory with offload %s; retrying with offload %s", what, self.offload, more)
                self.offload = more

    def _call(
        self, prompt: str, negative: str, seed: int, size: tuple[int, int], images: list[PIL.Image.Image] | None
    ) -> PIL.Image.Image:
        import torch

        if self._pipe is None:
            raise RuntimeError("ImageGenerator.generate called outside its 'with' block")
        self._place()
        entry = self.entry
        width, height = size
        arguments: dict[str, Any] = {
            "prompt": prompt,
            "height": height,
            "width": width,
            "num_inference_steps": self.steps,
            entry.guidance_argument: self.guidance,
            "generator": torch.Generator(device="cpu").manual_seed(seed),
            "output_type": "pil",
            **entry.extra_call_arguments,
        }
        if entry.negative_prompt and self.guidance > 1:
            # Qwen runs classifier-free guidance only when a negative prompt is given (" " will do)
            # and true_cfg_scale > 1; at 1 (the speed LoRAs) there is no second pass to feed.
            arguments["negative_prompt"] = negative or " "
        if entry.max_sequence_length is not None:
            arguments["max_sequence_length"] = entry.max_sequence_length
        if entry.task == "edit":
            if not images:
                raise ValueError(f"{entry.name} composes from reference images; none were given")
            arguments["image"] = images if entry.max_references > 1 else images[0]
        with reference_pixels(entry, self.settings.reference_pixels):
            image = self._pipe(**arguments).images[0]
        if image.size != (width, height):
            # A pipeline that rounds the size (to its own multiple) says so here, not silently.
            log.warning("%s returned %dx%d for %dx%d asked; resized", entry.pipeline, *image.size, width, height)
            image = image.resize((width, height))
        return image.convert("RGB")

    def _place(self) -> None:
        """Put the pipeline on the device with the current offload level (again only when it changed)."""
        assert self._device is not None
        if self._placed == self.offload:
            return
        device = self._device
        if device.type == "cpu" or self.offload == "none":
            self._pipe.to(device)
        elif self.offload == "model":
            self._pipe.enable_model_cpu_offload(device=device)
        else:
            self._pipe.enable_sequential_cpu_offload(device=device)
        self._placed = self.offload


@contextlib.contextmanager
def reference_pixels(entry: ImageModel, pixels: int | None) -> Iterator[None]:
    """Encode the edit model's references at ``pixels`` for the calls inside (None: as the pipeline does).

    diffusers' QwenImageEditPlusPipeline takes no argument for it: the size is a module
    constant, set here for the call and restored after. The risk: the constant is the whole
    process's, so another QwenImageEditPlusPipeline called from another thread meanwhile would
    see it (the keyframes stage calls one model at a time), and a diffusers release that renames
    it makes this setting fail with a message rather than be silently ignored.
    """
    if not pixels or entry.reference_pixels_constant is None:
        yield
        return
    module_name, _, name = entry.reference_pixels_constant.partition(":")
    module = importlib.import_module(module_name)
    if not hasattr(module, name):
        raise Music2VideoError(
            f"keyframes.reference_pixels: this diffusers version has no {entry.reference_pixels_constant} to set; "
            "remove the setting"
        )
    previous = getattr(module, name)
    setattr(module, name, pixels)
    try:
        yield
    finally:
        setattr(module, name, previous)


class ImageModels:
    """Loads image models on demand, one at a time; leaving the ``with`` block frees the last.

    ``open_generator`` (a test seam, and for library users with their own generator) builds an
    unloaded generator from an entry and the settings.
    """

    def __init__(self, settings: KeyframeSettings, open_generator: Any = ImageGenerator):
        self.settings = settings
        self.open_generator = open_generator
        self.loaded: list[str] = []  # entry names in load order (the report and tests read it)
        self.warnings: list[str] = []
        self._current: Any = None

    def get(self, entry: ImageModel) -> Any:
        """The loaded generator for ``entry``; frees any other model first."""
        if self._current is not None and self._current.entry == entry:
            return self._current
        self.close()
        generator = self.open_generator(entry, self.settings)
        generator.__enter__()
        self._current = generator
        self.loaded.append(entry.name)
        self.warnings += [w for w in getattr(generator, "warnings", []) if w not in self.warnings]
        return generator

    def close(self) -> None:
        if self._current is not None:
            current, self._current = self._current, None
            current.__exit__(None, None, None)

    def __enter__(self) -> ImageModels:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
