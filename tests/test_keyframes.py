"""References and keyframes with tiny random-weight Qwen-Image and Qwen-Image-Edit pipelines.

The pipelines are built here and saved with ``save_pretrained``; the stages load them from
their folders through the same code that loads a Hugging Face id (see tiny_image_models.py for
the two things changed so the edit pipeline runs on a CPU without torchvision). Random weights
draw noise: these tests check what a user relies on (files, names, hashes, reuse, hand edits
kept, your images used as given, one model in memory at a time, failures that stay local).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("diffusers")
torch = pytest.importorskip("torch")
PIL_Image = pytest.importorskip("PIL.Image")

from tiny_image_models import build_tiny_qwen_image, build_tiny_qwen_image_edit_plus, small_edit_pipeline

from music2video.artifacts import (
    Character,
    KeyframeSet,
    Place,
    ReferenceSet,
    SectionTreatment,
    Storyboard,
    StoryboardShot,
    StyleBible,
)
from music2video.errors import ModelLoadError, Music2VideoError
from music2video.keyframes import ImageModels, keyframes_wanted, make_keyframes, make_references
from music2video.keyframes.generator import ImageGenerator
from music2video.keyframes.image_models import IMAGE_MODELS, resolve_image_model
from music2video.runfolder import RunFolder, file_sha256
from music2video.settings import KeyframeSettings, Settings, load_settings

SIZE = (48, 32)  # keyframe width, height: multiples of 16


@pytest.fixture(scope="module", autouse=True)
def one_thread_and_small_edits():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with small_edit_pipeline():
        yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def memory_frees(monkeypatch) -> list[int]:
    """Count free_memory calls instead of running them (gc.collect costs most of a second here)."""
    import music2video.torch_device

    calls: list[int] = []
    monkeypatch.setattr(music2video.torch_device, "free_memory", lambda: calls.append(1))
    return calls


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny-image-models")
    return {"text": build_tiny_qwen_image(root / "qwen-image"), "edit": build_tiny_qwen_image_edit_plus(root / "qwen-edit")}


def settings_for(models: dict[str, Path], **changes) -> KeyframeSettings:
    values = {
        "reference_model": str(models["text"]),
        "keyframe_model": str(models["edit"]),
        "steps": 2,
        "device": "cpu",
        "reference_size": "32x32",
        **changes,
    }
    return KeyframeSettings(**values)


def shot(index: int, characters=(), places=()) -> StoryboardShot:
    return StoryboardShot(
        id=f"shot-{index:03d}", start_s=float(index), end_s=index + 1.0, section_index=0, scene="s",
        prompt=f"shot {index}: a dancer on a neon street", seed=100 + index, palette=["#102030"], motif="rings",
        characters=list(characters), places=list(places),
    )  # fmt: skip


def storyboard() -> Storyboard:
    return Storyboard(
        writer="test", title="t", concept="c", style=StyleBible(look="neon noir", palette=["#102030"]),
        characters=[Character(name="the dancer", description="a woman in a red coat")],
        places=[Place(name="neon street", description="a wet street under neon signs")],
        sections=[SectionTreatment(section_index=0, label="A", role="verse", palette=["#102030"], motif="rings")],
        shots=[shot(0, places=["neon street"]), shot(1, ["the dancer"], ["neon street"]), shot(2)],
    )  # fmt: skip


def run_stages(run: RunFolder, settings: KeyframeSettings, board: Storyboard | None = None, spy=None):
    """references then keyframes, as the pipeline runs them; returns both and the models loaded."""
    board = board or storyboard()
    with ImageModels(settings, spy or ImageGenerator) as models:
        references = make_references(board, run, settings, models)
        run.save("references.json", references)
        keyframes = make_keyframes(board, references, run, settings, SIZE, models)
        run.save("keyframes.json", keyframes)
    return references, keyframes, models.loaded


class Spy(ImageGenerator):
    """The real generator, remembering the reference images each call received."""

    calls: list[tuple[str, list]] = []

    def generate(self, prompt, negative_prompt, seed, size, images=None, what="image"):
        Spy.calls.append((what, [np.asarray(image) for image in images or []]))
        return super().generate(prompt, negative_prompt, seed, size, images, what)


# --------------------------------------------------------------------------------------------
# the stages


def test_references_then_keyframes_one_model_at_a_time(tiny_models, tmp_path, memory_frees):
    run = RunFolder(tmp_path / "run")
    references, keyframes, loaded = run_stages(run, settings_for(tiny_models))

    # One reference per cast member, named after it, listed in references.json.
    assert [(r.name, r.kind, r.source) for r in references.references] == [
        ("the dancer", "character", "generated"), ("neon street", "place", "generated"),
    ]  # fmt: skip
    for reference in references.references:
        assert reference.path.startswith("references/") and reference.path.endswith(".png")
        assert file_sha256(run.root / reference.path) == reference.sha256
        with PIL_Image.open(run.root / reference.path) as image:
            assert image.size == (32, 32)
    assert "Character reference sheet of the dancer" in references.references[0].prompt
    # One keyframe per shot, at the keyframe size, with the references the shot names.
    assert [(k.shot, k.shot_id, k.references) for k in keyframes.shots] == [
        (0, "shot-000", ["neon street"]), (1, "shot-001", ["the dancer", "neon street"]), (2, "shot-002", []),
    ]  # fmt: skip
    for frame in keyframes.shots:
        assert frame.path.startswith(f"keyframes/{frame.shot_id}-") and not frame.user_edited
        assert file_sha256(run.root / frame.path) == frame.sha256
        with PIL_Image.open(run.root / frame.path) as image:
            assert image.size == SIZE
    # The text-to-image model made the references and the shot without references, then was
    # freed before the edit model loaded; the edit model was freed at the end.
    assert loaded == ["qwen-image", "qwen-image-edit-2509"]
    assert len(memory_frees) == 2
    assert keyframes.failed == {} and references.failed == {}


def test_a_rerun_reuses_everything_and_loads_no_model(tiny_models, tmp_path):
    run = RunFolder(tmp_path / "run")
    settings = settings_for(tiny_models)
    _, first, _ = run_stages(run, settings)
    _, again, loaded = run_stages(run, settings)
    assert loaded == [] and again.shots == first.shots


def test_an_edited_description_remakes_its_reference_and_the_keyframes_that_show_it(tiny_models, tmp_path):
    run = RunFolder(tmp_path / "run")
    settings = settings_for(tiny_models)
    first_refs, first, _ = run_stages(run, settings)
    board = storyboard()
    board.characters[0].description = "a woman in a blue coat"
    refs, frames, loaded = run_stages(run, settings, board)
    assert refs.references[0].sha256 != first_refs.references[0].sha256  # the dancer again
    assert refs.references[1] == first_refs.references[1]  # the street as it was
    # Only the shot that shows the dancer gets a new keyframe (a new name: its inputs changed).
    remade = [a.shot for a, b in zip(first.shots, frames.shots, strict=True) if a.path != b.path]
    assert remade == [1] and loaded == ["qwen-image", "qwen-image-edit-2509"]
    assert (run.root / first.shots[1].path).exists()  # the old keyframe is not deleted


def test_your_reference_is_used_unchanged(tiny_models, tmp_path):
    photo = tmp_path / "photo.png"
    pixels = (np.arange(40 * 24 * 3) % 251).astype(np.uint8).reshape(40, 24, 3)
    PIL_Image.fromarray(pixels).save(photo)
    before = photo.read_bytes()
    run = RunFolder(tmp_path / "run")
    Spy.calls = []
    references, keyframes, _ = run_stages(run, settings_for(tiny_models, references={"the dancer": photo}), spy=Spy)

    dancer = references.by_name()["the dancer"]
    assert dancer.source == "user" and Path(dancer.path) == photo.resolve()
    assert dancer.sha256 == file_sha256(photo) and photo.read_bytes() == before  # never written to
    assert not list((run.root / "references").glob("the-dancer-*"))  # none generated for it
    # The edit model received your pixels as they are, first (characters before places).
    received = dict(Spy.calls)["shot-001"]
    assert np.array_equal(received[0], pixels)
    assert keyframes.shots[1].references == ["the dancer", "neon street"]


def test_a_file_in_references_is_yours_too(tiny_models, tmp_path):
    run = RunFolder(tmp_path / "run")
    (run.root / "references").mkdir(parents=True)
    PIL_Image.new("RGB", (20, 20), (200, 10, 10)).save(run.root / "neon street.png")
    PIL_Image.new("RGB", (20, 20), (200, 10, 10)).save(run.root / "references" / "Neon-Street.jpg")
    references, _, _ = run_stages(run, settings_for(tiny_models))
    street = references.by_name()["neon street"]
    assert street.source == "user" and street.path == "references/Neon-Street.jpg"


def test_a_keyframe_edited_by_hand_is_kept_and_only_it_changes(tiny_models, tmp_path):
    run = RunFolder(tmp_path / "run")
    settings = settings_for(tiny_models)
    _, first, _ = run_stages(run, settings)
    edited = run.root / first.shots[1].path
    PIL_Image.new("RGB", SIZE, (0, 255, 0)).save(edited)

    _, again, loaded = run_stages(run, settings)
    assert loaded == []  # nothing regenerated: your edit wins
    assert again.shots[1].user_edited and again.shots[1].path == first.shots[1].path
    assert again.shots[1].sha256 == file_sha256(edited) != first.shots[1].sha256
    assert [frame.sha256 for i, frame in enumerate(again.shots) if i != 1] == [
        frame.sha256 for i, frame in enumerate(first.shots) if i != 1
    ]
    # It stays marked as yours on later runs.
    _, third, _ = run_stages(run, settings)
    assert third.shots[1].user_edited and third.shots[1].sha256 == again.shots[1].sha256


def test_a_name_the_cast_lacks_is_said(tiny_models, tmp_path):
    board = storyboard()
    board.shots[2].places = ["the peir"]  # a typo in a hand-edited storyboard
    run = RunFolder(tmp_path / "run")
    _, keyframes, _ = run_stages(run, settings_for(tiny_models), board)
    assert keyframes.shots[2].references == []
    assert any("shot-002 'the peir'" in warning for warning in keyframes.warnings)


def test_your_keyframe_file_replaces_the_shot(tiny_models, tmp_path):
    run = RunFolder(tmp_path / "run")
    (run.root / "keyframes").mkdir(parents=True)
    mine = run.root / "keyframes" / "shot-002.jpg"
    PIL_Image.new("RGB", (64, 64), (9, 9, 9)).save(mine)
    before = mine.read_bytes()
    _, keyframes, _ = run_stages(run, settings_for(tiny_models))
    frame = keyframes.shots[2]
    assert frame.path == "keyframes/shot-002.jpg" and frame.user_edited and mine.read_bytes() == before


def test_out_of_memory_fails_only_that_keyframe(tiny_models, tmp_path, monkeypatch):
    offloads: list[str] = []
    original = ImageGenerator._call

    def tight_memory(self, prompt, negative, seed, size, images):
        offloads.append(self.offload)
        if prompt.endswith("shot 2: a dancer on a neon street"):
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return original(self, prompt, negative, seed, size, images)

    monkeypatch.setattr(ImageGenerator, "_call", tight_memory)
    run = RunFolder(tmp_path / "run")
    _, keyframes, _ = run_stages(run, settings_for(tiny_models))
    assert [frame.shot for frame in keyframes.shots] == [0, 1]
    assert "out of GPU memory even with sequential offload" in keyframes.failed["shot-002"]
    assert any("shot-002 has no keyframe and renders from its text" in w for w in keyframes.warnings)
    assert offloads[-3:] != [] and "sequential" in offloads  # it escalated before giving up
    # The next run tries the failed shot again.
    monkeypatch.setattr(ImageGenerator, "_call", original)
    _, again, loaded = run_stages(run, settings_for(tiny_models))
    assert [frame.shot for frame in again.shots] == [0, 1, 2] and loaded == ["qwen-image"]


def test_a_model_that_cannot_load_is_one_clear_error(tiny_models, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-hub-cache"))
    run = RunFolder(tmp_path / "run")
    with pytest.raises(ModelLoadError, match="'Qwen/Qwen-Image'.*--reference-model"):
        run_stages(run, settings_for(tiny_models, reference_model="qwen-image"))


def test_the_edit_model_without_torchvision_says_what_to_install(tiny_models, tmp_path):
    import importlib.util

    if importlib.util.find_spec("torchvision") is not None:
        pytest.skip("torchvision is installed")
    from transformers import Qwen2VLProcessor

    with pytest.MonkeyPatch.context() as patch:
        patch.delattr(Qwen2VLProcessor, "get_attributes")  # the class's own, as on a user's machine
        generator = ImageGenerator(resolve_image_model(str(tiny_models["edit"]), "edit"), settings_for(tiny_models))
        with pytest.raises(ModelLoadError, match="needs 'torchvision'"):
            generator.__enter__()


# --------------------------------------------------------------------------------------------
# registry and settings


def test_registry_resolves_names_ids_and_folders(tiny_models):
    assert resolve_image_model("qwen-image", "text-to-image").hf_id == "Qwen/Qwen-Image"
    assert resolve_image_model("Qwen/Qwen-Image-Edit-2509", "edit").pipeline == "QwenImageEditPlusPipeline"
    folder = resolve_image_model(str(tiny_models["edit"]), "edit")
    assert folder.name == "qwen-image-edit-2509" and folder.hf_id == str(tiny_models["edit"])
    with pytest.raises(Music2VideoError, match="keyframes.keyframe_model needs an image-editing model"):
        resolve_image_model("flux.1-schnell", "edit")
    with pytest.raises(Music2VideoError, match="qwen-image, qwen-image-edit-2509, flux.1-schnell"):
        resolve_image_model("no-such-model", "text-to-image")


def test_every_entry_states_its_licence_and_non_commercial_ones_warn(caplog):
    from music2video.keyframes.image_models import warn_about_licence

    assert all(entry.licence for entry in IMAGE_MODELS.values())
    assert warn_about_licence(IMAGE_MODELS["qwen-image-edit-2509"]) is None
    assert "not for commercial use" in warn_about_licence(IMAGE_MODELS["flux.1-kontext-dev"])
    assert IMAGE_MODELS["flux.1-schnell"].commercial_use


def test_when_keyframes_are_made():
    assert keyframes_wanted(Settings(pipeline="preview"))[0] is False  # the animatic needs none
    assert keyframes_wanted(Settings(pipeline="clap", keyframes={"enabled": "off"}))[0] is False
    assert keyframes_wanted(Settings(pipeline="preview", keyframes={"enabled": "on"}))[0] is True
    # A video model that makes video from text only gets none; the default starts shots from them.
    wanted, why = keyframes_wanted(Settings(pipeline="clap", video={"model": "wan2.1-1.3b"}))
    assert wanted is False and "text only" in why
    assert keyframes_wanted(Settings(pipeline="clap"))[0] is True
    assert keyframes_wanted(Settings(pipeline="lalm"))[0] is True


def test_reference_flag_parses_name_equals_file():
    from music2video.cli.flags import parse_references

    assert parse_references(["the singer=photo.jpg", "the pier = pier.png"]) == (
        {"the singer": "photo.jpg", "the pier": "pier.png"},
    )
    with pytest.raises(Music2VideoError, match="NAME=FILE"):
        parse_references(["photo.jpg"])


@pytest.mark.parametrize("plan", ["gpu-24gb.toml", "gpu-80gb.toml"])
def test_memory_plans_are_valid_settings(plan):
    folder = Path(__file__).parent.parent / "examples"
    settings = load_settings(folder / plan)
    assert settings.keyframes.enabled == "auto" and settings.video.model
    text = (folder / plan).read_text()
    assert "offload" in text
    json.dumps(settings.model_dump(mode="json"))


def test_failures_reach_the_report(tmp_path):
    from music2video.report import RunArtifacts, _warnings

    run = RunFolder(tmp_path / "run")
    run.save("keyframes.json", KeyframeSet(model="m", failed={"shot-002": "out of GPU memory"},
                                           warnings=["shot-002 has no keyframe and renders from its text: out of GPU memory"]))
    run.save("references.json", ReferenceSet(warnings=["reference 'the pier' could not be made: boom"]))
    page = _warnings(RunArtifacts.load(run.root))
    assert "shot-002 has no keyframe" in page and "keyframes/&lt;shot&gt;.png" in page
    assert "the pier" in page and "could not be made: boom" in page and "--reference" in page


def test_keyframes_command(tmp_path, capsys):
    from music2video.cli import main
    from music2video.demo import synthesize_demo_song

    song = tmp_path / "song.wav"
    synthesize_demo_song(song, duration_s=8.0)
    # Your picture must exist: one line naming it, before any analysis.
    with pytest.raises(SystemExit) as exit_info:
        main(["keyframes", str(song), "-o", str(tmp_path / "song.mp4"), "--pipeline", "preview",
              "--reference", f"the dancer={tmp_path / 'missing.png'}"])
    assert exit_info.value.code == 1
    assert "missing.png does not exist" in " ".join(capsys.readouterr().err.split())
    assert not (tmp_path / "song.music2video" / "analysis.json").exists()
    # The preview pipeline makes none, and says why.
    main(["keyframes", str(song), "-o", str(tmp_path / "song.mp4"), "--pipeline", "preview"])
    out = " ".join(capsys.readouterr().err.split())  # the CLI's console writes to stderr
    assert "no keyframes: the animatic renderer draws from the storyboard alone" in out
    assert (tmp_path / "song.music2video" / "storyboard.json").exists()
    assert not (tmp_path / "song.music2video" / "keyframes.json").exists()


def test_the_listings_are_rewritten_without_edited_copies(tmp_path):
    """keyframes.json changed by music2video.edit (or by hand) is rebuilt from the pictures, which
    hold the edits; no keyframes.edited-<time>.json piles up."""
    run = RunFolder(tmp_path)
    run.save("keyframes.json", KeyframeSet(model="a"))
    (tmp_path / "keyframes.json").write_text(KeyframeSet(model="b").model_dump_json())
    run.save("keyframes.json", KeyframeSet(model="c"), keep_edits=False)
    assert not list(tmp_path.glob("keyframes.edited-*"))
    assert KeyframeSet.model_validate_json((tmp_path / "keyframes.json").read_text()).model == "c"
    assert not run.was_edited("keyframes.json")
