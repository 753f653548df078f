"""The LLM storyboard writer: a language model directs the video, the program keeps the cuts.

``write_llm_storyboard`` asks a chat model, in several short passes, to write the storyboard the
way a music-video director would: a concept pass, then one pass per section's shots (see
:mod:`.director`). What the model writes is only words. The program copies shot ids, times and
section indices from the plan, derives seeds from ``(seed, shot index)``, measures energy as the
template does, and composes every final prompt itself as *style bible + shown characters'
descriptions + section setting + the model's shot prompt*, so a character or a place reads word
for word the same in every shot whatever the model does, and the prompt stays within the
budget (``write.max_prompt_chars``).

One job per file:

* :mod:`.schema`: what each pass asks for, as pydantic models and hardened JSON schemas;
* :mod:`.repair`: JSON repair and validation of the model's raw text;
* :mod:`.requestlog`: every request and raw response, saved under ``log_dir``;
* :mod:`.local_backend`: a chat model through transformers, decoding constrained by llguidance;
* :mod:`.openai_backend`: any OpenAI-compatible endpoint, streamed, with fail-fast timeouts;
* :mod:`.data`: the song as the model sees it, and the final prompts;
* :mod:`.faults`: what can go wrong, sorted by what the writer does about it;
* :mod:`.director`: the passes, retries and fallbacks;
* :mod:`.writer`: the public function.

Faults are expected and handled: malformed or truncated JSON is repaired, and a reply that
still does not validate, or has the wrong number of items, is asked for again with the error
fed back; HTTP 429 and 5xx are retried with exponential backoff. A part that fails
``settings.max_retries + 1`` times is written by the template writer instead, logged at WARNING
and recorded in ``Storyboard.warnings``. A server that cannot be reached (refused, unknown host,
no connection within ``llm.connect_timeout_s``), that stays silent for
``llm.first_token_timeout_s``, or a storyboard that runs past ``llm.budget_s``, ends every
request at once; the template writes the rest, the storyboard's ``writer`` says so and the
storyboard is provisional: the next run asks the model again. Shots are never dropped, added
or moved.

Lyrics, descriptions and file names reach the model only as JSON inside a delimited data block
that the system prompt declares to be data. The prompt templates are
``music2video/prompts/storyboard_*.md``, read through :mod:`music2video.prompts`.
"""

from music2video.prompts import fill_prompt, load_prompt
from music2video.write.llm.data import compose_prompt, fit_words
from music2video.write.llm.repair import parse_reply, repair_json
from music2video.write.llm.schema import DEFAULT_LIMITS, TextLimits, check_hardened, concept_schema, shots_schema
from music2video.write.llm.writer import write_llm_storyboard
from music2video.write.template import shot_seed

__all__ = [
    "DEFAULT_LIMITS",
    "TextLimits",
    "check_hardened",
    "compose_prompt",
    "concept_schema",
    "fill_prompt",
    "fit_words",
    "load_prompt",
    "parse_reply",
    "repair_json",
    "shot_seed",
    "shots_schema",
    "write_llm_storyboard",
]
