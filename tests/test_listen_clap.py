"""The clap listener, run through its real loading code on a tiny random-weight CLAP saved to a
folder (see tests/tiny_clap.py): windows, batching, the text-embedding cache, vocabularies,
scoring, errors, and the Descriptions it returns."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("tokenizers")

import torch  # noqa: E402

from music2video.artifacts import Analysis, Descriptions, Section, Shot, ShotPlan  # noqa: E402
from music2video.errors import MissingDependencyError, ModelLoadError, Music2VideoError  # noqa: E402
from music2video.listen import clap  # noqa: E402
from music2video.settings import ClapSettings  # noqa: E402
from music2video.torch_device import free_memory, resolve_device, resolve_dtype  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from tiny_clap import build_tiny_clap  # noqa: E402

RATE_HZ = 48_000
SONG_S = 26.0
SHIPPED = {"emotion", "mood", "genre", "instruments", "timbre", "energy", "colour", "setting"}


# --------------------------------------------------------------------------------------------
# Fixtures: a tiny model folder, a synthetic song, hand-built analysis and shot plan


@pytest.fixture(scope="session")
def tiny_clap_folder(tmp_path_factory) -> Path:
    return build_tiny_clap(tmp_path_factory.mktemp("tiny-clap"))


def _song() -> np.ndarray:
    """26 s: silence 0-5 s, noise 5-10 s, a 440 Hz tone 10-13 s, a noisy chord 13-26 s."""
    rng = np.random.default_rng(7)
    t = np.arange(int(SONG_S * RATE_HZ)) / RATE_HZ
    song = np.zeros_like(t)
    noise = (t >= 5) & (t < 10)
    song[noise] = 0.3 * rng.standard_normal(noise.sum())
    tone = (t >= 10) & (t < 13)
    song[tone] = 0.4 * np.sin(2 * np.pi * 440 * t[tone])
    chord = t >= 13
    song[chord] = 0.2 * sum(np.sin(2 * np.pi * f * t[chord]) for f in (220, 277, 330)) + 0.05 * rng.standard_normal(chord.sum())
    return song.astype(np.float32)


@pytest.fixture(scope="session")
def song_wav(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("song") / "audio.wav"
    stereo = np.stack([_song(), _song()], axis=1)
    sf.write(path, stereo, RATE_HZ, subtype="PCM_16")
    return path


def _analysis() -> Analysis:
    curve_rate = 10.0
    frames = int(SONG_S * curve_rate)
    sections = [
        Section(index=0, start_s=0.0, end_s=10.0, label="A", role="intro", energy=0.2),
        Section(index=1, start_s=10.0, end_s=SONG_S, label="B", role="chorus", energy=0.8),
    ]
    ramp = list(np.linspace(0, 1, frames))
    return Analysis(
        duration_s=SONG_S, tempo_bpm=120.0, beats_per_bar=4, beats_s=[], downbeats_s=[], sections=sections,
        curve_rate_hz=curve_rate, energy=ramp, brightness=ramp, onset_strength=ramp,
    )


def _plan(spans=((0.0, 5.0), (5.0, 10.0), (10.0, 13.0), (13.0, SONG_S))) -> ShotPlan:
    shots = [
        Shot(index=i, id=f"shot-{i:03d}", start_s=start, end_s=end, section_index=0 if start < 10 else 1, cut="beat")
        for i, (start, end) in enumerate(spans)
    ]
    return ShotPlan(duration_s=SONG_S, shots=shots)


def _settings(folder: Path, **overrides) -> ClapSettings:
    return ClapSettings(model=str(folder), device="cpu", batch_size=4, **overrides)


@pytest.fixture(scope="session")
def described(tiny_clap_folder, song_wav, tmp_path_factory) -> Descriptions:
    cache = tmp_path_factory.mktemp("clap-cache")
    return clap.describe_clap(song_wav, _analysis(), _plan(), _settings(tiny_clap_folder), cache_dir=cache)


# --------------------------------------------------------------------------------------------
# Windows


@pytest.mark.parametrize("start", [0, 17])
@pytest.mark.parametrize("length", [1, 999, 1000, 1001, 2999, 10_007, 48_000 * 26])
def test_windows_cover_every_sample_once(start, length):
    max_samples = 1000 if length < 48_000 else RATE_HZ * 10
    windows = clap.split_windows(start, start + length, max_samples)
    assert len(windows) == math.ceil(length / max_samples)
    assert windows[0][0] == start and windows[-1][1] == start + length
    for (_, end), (next_start, _) in zip(windows, windows[1:]):
        assert end == next_start  # contiguous: no gap, no overlap
    lengths = [end - begin for begin, end in windows]
    assert all(0 < n <= max_samples for n in lengths)
    assert max(lengths) - min(lengths) <= 1  # equal split, not one full window and a scrap


def test_empty_span_has_no_windows():
    assert clap.split_windows(5, 5, 10) == []
    assert clap.split_windows(9, 5, 10) == []


def test_plan_windows_fills_gaps_between_and_after_shots():
    max_samples, total = 100, 1000
    shots = [(0, 250), (300, 420)]  # gap 250-300 and 420-1000 (not covered by any shot)
    plan = clap.plan_windows(shots, total, max_samples, min_gap_samples=10)
    starts = [start for start, _ in plan.windows]
    assert starts == sorted(starts)
    covered = np.zeros(total, dtype=int)
    for start, end in plan.windows:
        covered[start:end] += 1
    assert (covered == 1).all()  # every sample heard exactly once
    for (start, end), indices in zip(shots, plan.shot_windows):
        assert plan.windows[indices[0]][0] == start and plan.windows[indices[-1]][1] == end
        assert sum(plan.windows[i][1] - plan.windows[i][0] for i in indices) == end - start
    # A plan without shots still hears the whole song.
    assert clap.plan_windows([], total, max_samples, 10).windows == clap.split_windows(0, total, max_samples)
    # Tiny gaps are not worth a forward pass.
    plan = clap.plan_windows([(0, 495), (500, 1000)], total, max_samples, min_gap_samples=10)
    assert all(not (495 <= start < 500) for start, _ in plan.windows)


def test_degenerate_shot_spans_are_widened_inside_the_audio():
    total = RATE_HZ * 2
    assert clap.span_to_samples(0.5, 0.5, RATE_HZ, total) == (24_000, 28_800)
    start, end = clap.span_to_samples(5.0, 6.0, RATE_HZ, total)  # past the end of the audio
    assert end == total and end - start == round(clap.MIN_SPAN_S * RATE_HZ)


# --------------------------------------------------------------------------------------------
# Model: loading, batching, the text cache


@pytest.mark.slow
def test_batched_windows_embed_like_one_by_one(tiny_clap_folder):
    model, processor = clap.load_clap(str(tiny_clap_folder), torch.device("cpu"), torch.float32)
    audio = _song()
    windows = [(0, RATE_HZ * 3), (RATE_HZ * 5, RATE_HZ * 15), (RATE_HZ * 10, RATE_HZ * 11), (RATE_HZ * 13, RATE_HZ * 20), (RATE_HZ * 6, RATE_HZ * 8)]
    one_by_one = clap.embed_windows(model, processor.feature_extractor, audio, windows, batch_size=1)
    batched = clap.embed_windows(model, processor.feature_extractor, audio, windows, batch_size=3)
    assert batched.shape == (len(windows), model.config.projection_dim)
    np.testing.assert_allclose(np.linalg.norm(batched, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(batched, one_by_one, atol=1e-5)
    # Deterministic: the same windows give the same embeddings (no random crop anywhere).
    np.testing.assert_array_equal(batched, clap.embed_windows(model, processor.feature_extractor, audio, windows, 3))
    with pytest.raises(ValueError, match="longer than"):
        clap.embed_windows(model, processor.feature_extractor, audio, [(0, RATE_HZ * 11)], 1)


@pytest.mark.slow
def test_text_embeddings_are_cached_once_and_reused(tiny_clap_folder, song_wav, tmp_path, monkeypatch):
    from transformers import ClapModel

    calls = {"text": 0}
    original = ClapModel.get_text_features

    def counting(self, *args, **kwargs):
        calls["text"] += 1
        return original(self, *args, **kwargs)

    monkeypatch.setattr(ClapModel, "get_text_features", counting)
    cache = tmp_path / "cache"
    first = clap.describe_clap(song_wav, _analysis(), _plan(), _settings(tiny_clap_folder), cache_dir=cache)
    files = sorted(cache.glob("*.safetensors"))
    assert calls["text"] == len(SHIPPED) and len(files) == len(SHIPPED)
    assert not list(cache.glob(".*tmp*"))  # written atomically: no temporaries left behind

    second = clap.describe_clap(song_wav, _analysis(), _plan(), _settings(tiny_clap_folder), cache_dir=cache)
    assert calls["text"] == len(SHIPPED)  # nothing recomputed
    assert sorted(cache.glob("*.safetensors")) == files
    assert second.model_dump() == first.model_dump()

    # The key holds the template and labels: a changed vocabulary is embedded anew.
    custom = tmp_path / "mood.json"
    custom.write_text(json.dumps({"name": "mood", "description": "mine", "prompt_template": "Music that is {label}.", "labels": ["odd", "even"]}))
    clap.describe_clap(song_wav, _analysis(), _plan(), _settings(tiny_clap_folder, vocabularies=[custom]), cache_dir=cache)
    assert calls["text"] == len(SHIPPED) + 1


def test_corrupt_cache_file_is_recomputed(tiny_clap_folder, tmp_path):
    model, processor = clap.load_clap(str(tiny_clap_folder), torch.device("cpu"), torch.float32)
    vocabulary = clap.load_vocabularies()[0]
    fingerprint = clap.model_fingerprint(str(tiny_clap_folder))
    fresh = clap.text_embeddings(model, processor.tokenizer, vocabulary, fingerprint, tmp_path)
    (cached,) = tmp_path.glob("*.safetensors")
    cached.write_bytes(b"not a safetensors file")
    again = clap.text_embeddings(model, processor.tokenizer, vocabulary, fingerprint, tmp_path)
    np.testing.assert_allclose(again, fresh, atol=1e-6)
    assert fresh.shape == (len(vocabulary.labels), model.config.projection_dim)
    # Half precision gives slightly different embeddings, so it has its own cache entry.
    clap.text_embeddings(model.to(torch.bfloat16), processor.tokenizer, vocabulary, fingerprint, tmp_path)
    assert len(list(tmp_path.glob("*.safetensors"))) == 2


def test_default_cache_dir_respects_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert clap.default_cache_dir() == tmp_path / "music2video" / "clap-text"


def test_unloadable_hub_id_gets_a_one_line_model_load_error(song_wav, tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # huggingface_hub reads the variable once at import; tell the already-imported module too.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    settings = ClapSettings(model="no-such-org/no-such-model", device="cpu")
    with pytest.raises(ModelLoadError) as caught:
        clap.describe_clap(song_wav, _analysis(), _plan(), settings, cache_dir=tmp_path)
    message = str(caught.value)
    assert "\n" not in message
    assert "'no-such-org/no-such-model'" in message
    assert "--clap-model" in message and "HF_HUB_OFFLINE" in message and "music2video.toml" in message


def test_missing_local_folder_gets_a_clear_error(song_wav, tmp_path):
    settings = ClapSettings(model=str(tmp_path / "no" / "such" / "folder"), device="cpu")
    with pytest.raises(ModelLoadError, match="no such folder"):
        clap.describe_clap(song_wav, _analysis(), _plan(), settings, cache_dir=tmp_path)


def test_folder_without_safetensors_weights_is_refused(tiny_clap_folder, tmp_path):
    folder = tmp_path / "pickled"
    folder.mkdir()
    (folder / "config.json").write_bytes((tiny_clap_folder / "config.json").read_bytes())
    with pytest.raises(ModelLoadError, match="in the folder .*no safetensors weights"):
        clap.load_clap(str(folder), torch.device("cpu"), torch.float32)


def test_missing_transformers_names_the_extra(song_wav, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "transformers", None)  # makes `import transformers` fail
    with pytest.raises(MissingDependencyError, match=r"transformers.*music2video\[clap\]"):
        clap.describe_clap(song_wav, _analysis(), _plan(), ClapSettings(device="cpu"), cache_dir=tmp_path)


# --------------------------------------------------------------------------------------------
# Vocabularies


def test_every_shipped_vocabulary_loads():
    paths = clap.shipped_vocabulary_paths()
    assert {path.stem for path in paths} == SHIPPED
    for path in paths:
        vocabulary = clap.load_vocabulary(path)
        assert vocabulary.name == path.stem
        assert len(vocabulary.labels) >= 10
        assert vocabulary.template_note, f"{path.name} should say why its template was chosen"
        assert all("{" not in prompt for prompt in vocabulary.prompts)
    emotion = clap.load_vocabulary(next(p for p in paths if p.stem == "emotion"))
    assert emotion.has_valence_arousal
    assert {"wonder", "transcendence", "tenderness", "nostalgia", "peacefulness", "power", "joyful activation", "tension", "sadness"} <= set(emotion.label_names)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ('{"name": "x", "labels": [', "not valid JSON"),
        ('["a", "b"]', "JSON object"),
        ('{"name": "x", "description": "", "labels": ["a"]}', "prompt_template"),
        ('{"name": "x", "description": "", "prompt_template": "A {label}.", "labels": []}', "labels"),
        ('{"name": "x", "description": "", "prompt_template": "A song.", "labels": ["a"]}', "{label}"),
        ('{"name": "x", "description": "", "prompt_template": "A {label} {kind}.", "labels": ["a"]}', "{label}"),
        ('{"name": "x", "description": "", "prompt_template": "A {label}.", "labels": ["a", "A"]}', "twice"),
        ('{"name": "x", "description": "", "prompt_template": "A {label}.", "labels": [{"label": "a", "valence": 2, "arousal": 0}]}', "valence"),
        ('{"name": "x", "description": "", "prompt_template": "A {label}.", "labels": [{"label": "a", "valence": 0.1, "arousal": 0}, "b"]}', "all or none"),
        ('{"name": "Bad Name", "description": "", "prompt_template": "A {label}.", "labels": ["a"]}', "name"),
    ],
)
def test_malformed_vocabulary_gets_a_one_line_error_naming_the_file(tmp_path, content, problem):
    path = tmp_path / "broken.json"
    path.write_text(content)
    with pytest.raises(Music2VideoError) as caught:
        clap.load_vocabulary(path)
    message = str(caught.value)
    assert str(path) in message and problem in message and "\n" not in message


def test_malformed_user_vocabulary_fails_before_the_model_loads(song_wav, tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"name": "x"}')
    settings = ClapSettings(model="no-such-org/no-such-model", device="cpu", vocabularies=[path])
    with pytest.raises(Music2VideoError, match="broken.json"):
        clap.describe_clap(song_wav, _analysis(), _plan(), settings, cache_dir=tmp_path)


def test_user_vocabulary_is_scored_and_can_replace_a_shipped_one(tiny_clap_folder, song_wav, tmp_path):
    weather = tmp_path / "weather.json"
    weather.write_text(json.dumps({"name": "weather", "description": "", "prompt_template": "Music for {label}.", "labels": ["rain", "sun", "snow", "fog"]}))
    genre = tmp_path / "genre.json"
    genre.write_text(json.dumps({"name": "genre", "description": "", "prompt_template": "This is {label} music.", "labels": ["rock", "jazz"]}))
    result = clap.describe_clap(song_wav, _analysis(), _plan(), _settings(tiny_clap_folder, vocabularies=[weather, genre]), cache_dir=tmp_path)
    assert set(result.song.tags) == SHIPPED | {"weather"}
    assert {item.label for item in result.song.tags["genre"]} == {"rock", "jazz"}
    assert "weather: " in result.song.text


# --------------------------------------------------------------------------------------------
# Scoring


def _vocabulary(labels, valence_arousal=None) -> clap.Vocabulary:
    items = [
        {"label": label, **({"valence": v, "arousal": a} if valence_arousal else {})}
        for label, (v, a) in zip(labels, valence_arousal or [(None, None)] * len(labels))
    ]
    return clap.Vocabulary(name="test", description="", prompt_template="{label}", labels=items)


def test_relative_score_lifts_what_sets_a_shot_apart_from_the_song():
    texts = np.eye(2)  # label A along x, label B along y
    shots = np.array([[1.0, 0.0], [0.8, 0.6]])  # both fit A best; only the second leans to B
    scores = clap.score_vocabulary(shots, texts, _vocabulary(["A", "B"]), 10.0, np.ones(2), np.ones(2))
    np.testing.assert_allclose(scores.relative, [[1.0, -3.0], [-1.0, 3.0]])
    assert scores.probability[1, 0] > scores.probability[1, 1]  # in absolute terms A still fits best
    assert [item.label for item in scores.top(1)] == ["B", "A"]  # but B is what this shot adds
    assert scores.top(0)[0].label == "A"
    plain = clap.score_vocabulary(shots, texts, _vocabulary(["A", "B"]), 10.0, np.ones(2), np.zeros(2))
    np.testing.assert_allclose(plain.ranking, plain.probability)


def test_confidence_and_valence_arousal():
    vocabulary = _vocabulary(["happy", "sad"], [(0.8, 0.5), (-0.6, -0.4)])
    texts = np.eye(2)
    segments = np.array([[1.0, 0.0], [math.sqrt(0.5), math.sqrt(0.5)]])
    scores = clap.score_vocabulary(segments, texts, vocabulary, 20.0, np.ones(2), np.zeros(2))
    assert scores.confidence(1) == pytest.approx(0.0)  # a tie is chance level
    assert 0.99 < scores.confidence(0) <= 1.0
    valence, arousal = scores.valence_arousal(1)
    assert valence == pytest.approx(0.1) and arousal == pytest.approx(0.05)
    assert _vocabulary(["x", "y"]).has_valence_arousal is False


def test_sentence_reads_like_a_description():
    def tags(**named):
        return {name: [clap.ScoredLabel(label=label, score=0.5) for label in labels] for name, labels in named.items()}

    text = clap.describe_tags(tags(
        mood=["melancholic", "dreamy", "dark"], genre=["synth-pop"], instruments=["piano", "synthesizer pads"],
        timbre=["warm"], energy=["driving"], emotion=["nostalgia", "tenderness"],
        colour=["cool blue light"], setting=["rain on a window"], weather=["fog"],
    ))
    assert text == (
        "Melancholic, dreamy synth-pop with piano and synthesizer pads; warm sound, feels driving; "
        "evokes nostalgia and tenderness; cool blue light, rain on a window; weather: fog."
    )
    assert clap.describe_tags({}) == "Music."


# --------------------------------------------------------------------------------------------
# The listener end to end


def test_describe_clap_returns_one_description_per_shot_and_section(described, tiny_clap_folder):
    plan, analysis = _plan(), _analysis()
    assert described.listener == "clap" and described.model == str(tiny_clap_folder)
    assert [(s.start_s, s.end_s) for s in described.shots] == [(s.start_s, s.end_s) for s in plan.shots]
    assert [(s.start_s, s.end_s) for s in described.sections] == [(s.start_s, s.end_s) for s in analysis.sections]
    assert (described.song.start_s, described.song.end_s) == (0.0, SONG_S)
    for segment in [described.song, *described.sections, *described.shots]:
        assert set(segment.tags) == SHIPPED
        for labels in segment.tags.values():
            assert 1 <= len(labels) <= clap.TOP_K
            assert [item.score for item in labels] == sorted((item.score for item in labels), reverse=True)
        assert -1.0 <= segment.features["valence"] <= 1.0 and -1.0 <= segment.features["arousal"] <= 1.0
        assert 0.0 <= segment.confidence <= 1.0
        assert segment.text.endswith(".") and len(segment.text) > 20
    # The artifact round-trips through JSON, as the run folder stores it.
    assert Descriptions.model_validate_json(described.model_dump_json()) == described


def test_audio_scores_differently_from_silence(described):
    silence, noise = described.shots[0], described.shots[1]
    assert silence.tags != noise.tags
    assert silence.features["valence"] != noise.features["valence"]


@pytest.mark.slow
def test_sections_cover_audio_that_no_shot_covers(tiny_clap_folder, song_wav, tmp_path):
    # The plan stops at 20 s though the audio runs to 26 s: the tail still gets windows.
    result = clap.describe_clap(
        song_wav, _analysis(), _plan(((0.0, 5.0), (5.0, 10.0), (10.0, 20.0))), _settings(tiny_clap_folder), cache_dir=tmp_path
    )
    assert len(result.shots) == 3 and len(result.sections) == 2
    assert all(np.isfinite(value) for value in result.sections[1].features.values())


def test_other_sample_rates_are_resampled_once(tmp_path):
    path = tmp_path / "cd.wav"
    sf.write(path, np.zeros((44_100 * 2, 2), dtype=np.float32), 44_100)
    mono, file_rate, warnings = clap.read_mono(path, RATE_HZ)
    assert file_rate == 44_100 and mono.ndim == 1 and abs(len(mono) - 2 * RATE_HZ) <= 1
    assert warnings and "44100 Hz" in warnings[0]


# --------------------------------------------------------------------------------------------
# Device and dtype resolution (music2video.torch_device)


def test_device_and_dtype_resolution():
    assert resolve_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        assert resolve_device("auto").type in {"cpu", "mps"}
        with pytest.raises(Music2VideoError, match="no CUDA GPU"):
            resolve_device("cuda:0")
    with pytest.raises(Music2VideoError, match="not one of"):
        resolve_device("tpu")
    cpu = torch.device("cpu")
    assert resolve_dtype("auto", cpu) == torch.float32
    assert resolve_dtype("bfloat16", cpu) == torch.bfloat16
    with pytest.raises(Music2VideoError, match="not one of"):
        resolve_dtype("float8", cpu)
    free_memory()  # harmless without a GPU
