"""The video and image model registries resolve a choice the same way (model_source.lookup_registry)."""

import json

import pytest

from music2video.errors import Music2VideoError
from music2video.keyframes.image_models import resolve_image_model
from music2video.render.video_models import resolve_video_model


@pytest.mark.parametrize(
    ("resolve", "kind"),
    [(resolve_video_model, "video"), (lambda choice: resolve_image_model(choice, "text-to-image"), "image")],
)
def test_names_ids_folders_and_mistakes(resolve, kind, tmp_path):
    entry = resolve("  " + resolve(registry_name(kind)).hf_id.upper() + " ")
    assert entry.name == registry_name(kind)

    with pytest.raises(Music2VideoError, match=f"unknown {kind} model 'nope'; choose one of"):
        resolve("nope")
    with pytest.raises(Music2VideoError, match="has no model_index.json.*hf download"):
        resolve(str(tmp_path))
    (tmp_path / "model_index.json").write_text("{not json")
    with pytest.raises(Music2VideoError, match="cannot read .*model_index.json"):
        resolve(str(tmp_path))
    (tmp_path / "model_index.json").write_text(json.dumps({"_class_name": "NoSuchPipeline"}))
    with pytest.raises(Music2VideoError, match="'NoSuchPipeline' pipeline, which the .* no rules for"):
        resolve(str(tmp_path))


def registry_name(kind: str) -> str:
    return "wan2.1-1.3b" if kind == "video" else "qwen-image"
