"""The "lalm" listener: a large audio-language model describes the music in words.

``describe_lalm`` plays each section of the song to an audio-language model (Qwen2.5-Omni by
default; the families are in :mod:`music2video.listen.lalm.families`) and asks, in a fixed
seven-line layout, for the mood and how it changes, the instruments, the genre, the voice
(or "instrumental"), the images the music evokes and a narrative idea. It returns a
:class:`~music2video.artifacts.Descriptions` with one description for the whole song, one per
analysis section and one per planned shot, like every listener.

One file per job:

* :mod:`~music2video.listen.lalm.answers`: parse an answer and judge it (pure functions);
* :mod:`~music2video.listen.lalm.windows`: which stretches of the song the model hears;
* :mod:`~music2video.listen.lalm.prompts`: the measured facts put into the prompt templates;
* :mod:`~music2video.listen.lalm.model`: pick the family, load the model, ask it in batches;
* :mod:`~music2video.listen.lalm.families`: what differs between model architectures;
* :mod:`~music2video.listen.lalm.assemble`: sections, shots and the song from the windows;
* :mod:`~music2video.listen.lalm.describe`: ``describe_lalm``, the steps below in order.

How it works, top to bottom:

1. Pick the model family from the ``family`` setting or from ``model_type`` in the model's
   config.json; warn when the family's licence forbids commercial use.
2. Read the run folder's 48 kHz WAV, downmix it and resample it once to the model's rate
   (16 kHz), and once more to the analysis rate for the signal descriptors of step 4.
3. Load the model once. Cut each section into windows the model can hear whole: a section
   longer than the model's audio limit (30 s for Qwen2-Audio; ``window_s`` may lower it) is
   split into equal windows no longer than the limit.
4. Grounding. Audio-language models are weak at tempo, key and structure, so the facts the
   analysis measured (local tempo, key, energy level, the section's role and repetition label,
   its position in the song) go *into* each prompt, and the dsp listener's numbers for every
   section, shot and window are stored in ``features`` beside the model's words.
5. Ask about all windows in batches (left-padded, greedy decoding). Each answer is parsed
   (:func:`parse_answer`) and judged (:func:`check_answer`): an empty answer, a refusal, a
   rambling one (too long or repetitive), an off-topic one (no musical words, no layout) or a
   copy of the prompt's instructions gets ONE retry with a stricter prompt; if that fails too,
   the window falls back to the dsp description of the same span, logged at WARNING and listed
   in ``Descriptions.warnings``.
6. Free the model (``del`` + garbage collection + CUDA cache) before returning, so the next
   model (the LLM, the video model) finds the GPU empty.
7. Assemble: a section's description is its window's (several windows: their texts in order,
   their tags merged; no window answered: the dsp description of the section); a shot gets its
   window's words and its own dsp numbers (a shot whose window fell back gets its own dsp
   description). The whole-song description is condensed from the sections without another
   model call: genre, tempo and key, the mood arc from section to section, and the
   instruments, voices and images named most, weighted by how long they sound. The writer LLM
   receives every section's words anyway, so a second generation would cost a model call and
   add a failure mode for little gain.
"""

from music2video.listen.lalm.answers import (
    AnswerCheck,
    ParsedAnswer,
    answer_paragraph,
    answer_tags,
    check_answer,
    parse_answer,
)
from music2video.listen.lalm.describe import describe_lalm, fingerprint
from music2video.listen.lalm.model import load_lalm, resolve_family
from music2video.listen.lalm.prompts import window_facts
from music2video.listen.lalm.windows import Window, plan_windows

__all__ = [
    "AnswerCheck",
    "ParsedAnswer",
    "Window",
    "answer_paragraph",
    "answer_tags",
    "check_answer",
    "describe_lalm",
    "fingerprint",
    "load_lalm",
    "parse_answer",
    "plan_windows",
    "resolve_family",
    "window_facts",
]
