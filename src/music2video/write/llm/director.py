"""The director: one run's inputs, backend and warnings, and the passes written in order.

1. **Concept pass**: one concept and title for the whole song, a style bible, up to a few
   recurring characters, and one treatment per section (motif, setting, palette, story beat).
2. **Shot passes**: one request per section (or per chunk of at most ``llm.shots_per_request``
   shots), each carrying the concept, the characters, every section's treatment, short
   summaries of what the sections before it show and, for a returning section, the images of
   its earlier occurrence. Long songs therefore fit a small context window.

Each part that fails is written by the template writer instead, and says so in the warnings.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from music2video.artifacts import (
    Analysis,
    Character,
    Descriptions,
    Place,
    Prop,
    Section,
    SectionTreatment,
    SegmentDescription,
    ShotPlan,
    Storyboard,
    StoryboardShot,
    StyleBible,
)
from music2video.progress import ProgressCallback, no_progress
from music2video.prompts import fill_prompt, load_prompt
from music2video.settings import LlmSettings
from music2video.write.llm.data import (
    SectionPlan,
    chunks,
    compose_prompt,
    data_json,
    excerpt,
    fit_words,
    key_data,
    listener_data,
    listing,
    rounded,
    slug,
    valid_palette,
)
from music2video.write.llm.faults import (
    PartFailed,
    ReplyError,
    RequestRejected,
    TransientError,
    Unavailable,
    budget_spent,
)
from music2video.write.llm.repair import parse_reply
from music2video.write.llm.schema import (
    ConceptReply,
    R,
    ShotReply,
    ShotsReply,
    TextLimits,
    concept_schema,
    shots_schema,
)
from music2video.write.template import NEGATIVE_PROMPT, NEGATIVE_PROMPT_CHARACTERS, matching_description, shot_seed

log = logging.getLogger(__name__)

SetEntry = TypeVar("SetEntry", Place, Prop)

# How much of the story so far each shot pass sees. They trade context length against
# continuity for every model alike, so they are constants rather than settings.
CONTEXT_SECTIONS = 4
"""How many of the previously written sections a shot pass sees in detail (all are listed briefly)."""

ECHO_SCENES = 4
"""Scenes of an earlier section with the same label shown to the pass that writes its return."""

SUMMARY_SCENE_CHARS = 100
"""Longest scene excerpt in a section summary, in characters."""

# Pauses between attempts after a server error or overload; the server's Retry-After is honoured
# up to the cap. Not settings: llm.max_retries and llm.budget_s bound what they cost.
RETRY_BASE_DELAY_S = 1.0
"""First wait after HTTP 429 or 5xx, in seconds; doubled on each retry."""

RETRY_MAX_DELAY_S = 30.0
"""Longest wait between two attempts, in seconds (a server's Retry-After is capped to this too)."""


@dataclass
class Concept:
    title: str
    concept: str
    style: StyleBible
    characters: list[Character]
    treatments: list[SectionTreatment]
    stories: list[str]
    places: list[Place] = field(default_factory=list)
    props: list[Prop] = field(default_factory=list)


@dataclass
class Director:
    """Holds one run's inputs, backend and warnings, and writes the passes in order."""

    analysis: Analysis
    plan: ShotPlan
    descriptions: Descriptions
    settings: LlmSettings
    style: str
    seed: int
    lyrics_by_shot: dict[str, str]
    limits: TextLimits
    max_prompt_chars: int
    backend: Any
    template: Storyboard
    deadline: float  # time.monotonic() by which every request has ended (llm.budget_s from the start)
    progress: ProgressCallback = no_progress
    warnings: list[str] = field(default_factory=list)
    text_cuts: list[str] = field(default_factory=list)  # fields cut to their limit, e.g. "shot-004 scene"
    prompt_cuts: list[str] = field(default_factory=list)  # shot ids whose composed prompt was shortened
    unknown_names: list[str] = field(default_factory=list)  # "shot-003 'Bob'": names the concept lacks
    used_template: bool = False  # some part fell back to the template writer
    parts_written: int = 0  # parts (the concept, each chunk of shots) the model wrote
    unavailable: str | None = None  # why nothing more is asked in this run (server down, budget spent)
    passing_failures: list[str] = field(default_factory=list)  # parts lost to faults that may pass (5xx)
    position: tuple[int, int] = (0, 1)  # passes done and passes in all, for progress lines while waiting
    requests: int = 0

    # 1. Inputs, as the model sees them --------------------------------------------------------

    def shot_description(self, index: int) -> SegmentDescription | None:
        shot = self.plan.shots[index]
        return matching_description(self.descriptions.shots, index, shot.start_s, shot.end_s)

    def section_description(self, position: int, section: Section) -> SegmentDescription | None:
        """The listener's description of the section at ``position`` in the analysis."""
        return matching_description(self.descriptions.sections, position, section.start_s, section.end_s)

    def shot_energy(self, index: int) -> float:
        """0..1, as the template writer measures it (listener's energy, else the analysis curve),
        so that both writers drive the renderer's motion the same way."""
        return float(self.template.shots[index].energy)

    def messages(self, user: str) -> list[dict[str, str]]:
        return [{"role": "system", "content": load_prompt("storyboard_system.md")}, {"role": "user", "content": user}]

    def brief(self) -> str:
        return self.style.strip() or "(none: choose freely, led by the music)"

    # 2. Asking, with retries ------------------------------------------------------------------

    def ask(self, part: str, messages: list[dict[str, str]], schema: dict[str, Any], reply_type: type[R],
            check: Callable[[R], None], expectation: str) -> tuple[R, bool]:
        """The validated reply to ``messages`` and whether it was repaired; ``PartFailed`` after
        ``max_retries + 1`` attempts. ``check`` raises ``ReplyError`` for a reply of the wrong size.
        ``Unavailable`` when the model cannot answer in this run: then no later part asks either."""
        if self.unavailable is not None:
            raise Unavailable(self.unavailable)
        attempts = self.settings.max_retries + 1
        conversation = list(messages)
        reason = "no attempt"
        for attempt in range(1, attempts + 1):
            self.requests += 1
            name = part if attempt == 1 else f"{part}-try{attempt}"
            try:
                raw = self.backend.complete(conversation, schema, name, _request_seed(self.seed, self.requests),
                                            self.deadline, self.report_wait)
            except Unavailable as error:
                log.warning("%s: %s; the remaining parts are not sent", part, error.reason)
                self.unavailable = error.reason
                raise
            except TransientError as error:
                reason = error.reason
                log.warning("%s: attempt %d of %d failed (%s)", part, attempt, attempts, reason)
                if attempt < attempts:
                    self.pause(_backoff_s(attempt, error.retry_after_s))
                    continue
                raise PartFailed(attempt, reason, passing=True) from None
            except RequestRejected as error:
                log.warning("%s: the server refused the request (%s)", part, error.reason)
                raise PartFailed(attempt, error.reason) from None
            try:
                reply, repaired = parse_reply(raw, reply_type)
                check(reply)
                return reply, repaired
            except ReplyError as error:
                reason = error.reason
                log.warning("%s: attempt %d of %d gave an unusable reply (%s)", part, attempt, attempts, error.feedback)
                # Ask again with the reason appended to the same user turn: the broken answer
                # itself is left out (it would only fill a small context window), and one user
                # turn suits chat templates that insist on alternating roles.
                retry = fill_prompt("storyboard_retry.md", error=error.feedback, expectation=expectation)
                conversation = [*messages[:-1], {"role": "user", "content": f"{messages[-1]['content']}\n\n{retry}"}]
        raise PartFailed(attempts, reason)

    def pause(self, seconds: float) -> None:
        """Wait before a retry, within the deadline; ``Unavailable`` if the budget would run out."""
        if time.monotonic() + seconds >= self.deadline:
            self.unavailable = budget_spent(self.settings.budget_s).reason
            raise Unavailable(self.unavailable)
        time.sleep(seconds)

    def report_wait(self, message: str) -> None:
        """A progress line while a request waits (which server, how long)."""
        done, total = self.position
        self.progress(done, total, message)

    def lost(self, part: str, error: Unavailable | PartFailed, what: str) -> None:
        """Record that the template writer wrote ``part`` (``what`` it wrote) because the model failed."""
        self.used_template = True
        if isinstance(error, Unavailable):
            self.warn(f"{part}: {error.reason}; {what} used")
            return
        if error.passing:
            self.passing_failures.append(f"{part}: {error.reason}")
        self.warn(f"{part}: {error}; {what} used")

    # 3. Pass 1: concept -------------------------------------------------------------------------

    def write_concept(self, sections: list[SectionPlan]) -> Concept:
        limits = self.limits
        data = {
            "song": {
                "duration_s": rounded(self.analysis.duration_s),
                "tempo_bpm": rounded(self.analysis.tempo_bpm, 1),
                "beats_per_bar": self.analysis.beats_per_bar,
                "shots": len(self.plan.shots),
                "listener": self.descriptions.listener,
                **key_data(self.descriptions.song),
                **listener_data(self.descriptions.song),
            },
            "sections": [self._section_summary_data(position, sp) for position, sp in enumerate(sections)],
        }
        schema = concept_schema(limits, len(sections))
        user = fill_prompt(
            "storyboard_concept.md",
            brief=self.brief(),
            min_colours=limits.min_palette_colours,
            max_colours=limits.max_palette_colours,
            max_characters=limits.max_characters,
            max_places=limits.max_places,
            max_props=limits.max_props,
            section_count=len(sections),
            data=data_json(data),
            schema=json.dumps(schema, ensure_ascii=False),
        )

        def check(reply: ConceptReply) -> None:
            if len(reply.sections) != len(sections):
                raise ReplyError(
                    f"{len(reply.sections)} section treatments instead of {len(sections)}",
                    f"it had {len(reply.sections)} section treatments; the song has exactly {len(sections)} sections",
                )

        try:
            reply, repaired = self.ask("concept", self.messages(user), schema, ConceptReply, check,
                                       f"It must hold exactly {len(sections)} items in \"sections\".")
        except (Unavailable, PartFailed) as failure:
            self.lost("concept", failure, "template concept, style, characters and section treatments")
            return self._template_concept(sections)
        self.parts_written += 1
        if repaired:
            self.warn("concept: the LLM's JSON was malformed and was repaired")
        return self._concept_from_reply(reply, sections)

    def _section_summary_data(self, position: int, sp: SectionPlan) -> dict[str, Any]:
        section = sp.section
        lyrics = " / ".join(
            line for i in sp.shot_indices if (line := self.lyrics_by_shot.get(self.plan.shots[i].id, "").strip())
        )
        data: dict[str, Any] = {
            "section": position + 1,
            "label": section.label,
            "role": section.role,
            "start_s": rounded(section.start_s),
            "end_s": rounded(section.end_s),
            "energy": rounded(section.energy),
            "shots": len(sp.shot_indices),
        }
        if sp.first_of_label is not None:
            data["returns_from_section"] = sp.first_of_label + 1
        data.update(listener_data(self.section_description(position, section)))
        if lyrics:
            data["lyrics"] = excerpt(lyrics)
        return data

    def _concept_from_reply(self, reply: ConceptReply, sections: list[SectionPlan]) -> Concept:
        limits = self.limits
        template_style = self.template.style
        style_palette = valid_palette(reply.style.palette)
        if style_palette is None:
            self.warn(f"style: the LLM's palette {reply.style.palette} is not #rrggbb colours; "
                      "the template palette is used")
            style_palette = list(template_style.palette)
        style = StyleBible(
            look=self.fit("style look", reply.style.look, limits.look),
            palette=style_palette,
            lens=self.fit("style lens", reply.style.lens, limits.lens),
            era=self.fit("style era", reply.style.era, limits.era),
            medium=self.fit("style medium", reply.style.medium, limits.medium),
        )
        characters: list[Character] = []
        for item in reply.characters[: limits.max_characters]:
            name = self.fit("character name", item.name, limits.character_name)
            if not name or any(c.name == name for c in characters):
                continue  # an empty or repeated name could not be told apart in shot replies
            characters.append(Character(name=name, description=self.fit(
                f"character {name}", item.description, limits.character_description)))
        taken = {c.name for c in characters}  # one name, one cast member: shots refer to them by name
        places = self.set_list(Place, "place", reply.places[: limits.max_places], taken,
                               limits.place_name, limits.place_description)
        props = self.set_list(Prop, "prop", reply.props[: limits.max_props], taken,
                              limits.prop_name, limits.prop_description)
        template_sections = {t.section_index: t for t in self.template.sections}
        treatments: list[SectionTreatment] = []
        stories: list[str] = []
        motif_by_label: dict[str, str] = {}
        for sp, item in zip(sections, reply.sections, strict=True):
            section = sp.section
            palette = valid_palette(item.palette)
            if palette is None:
                fallback = template_sections.get(section.index)
                self.warn(f"{sp.name}: the LLM's palette {item.palette} is not #rrggbb colours; "
                          "the template palette is used")
                palette = list(fallback.palette) if fallback else list(style.palette)
            motif = self.fit(f"{sp.name} motif", item.motif, limits.motif)
            # A repeated label repeats its motif (the artifact's contract), whatever the model wrote.
            motif = motif_by_label.setdefault(section.label, motif)
            treatments.append(SectionTreatment(
                section_index=section.index, label=section.label, role=section.role, palette=palette, motif=motif,
                setting=self.fit(f"{sp.name} setting", item.setting, limits.setting),
            ))
            stories.append(self.fit(f"{sp.name} story", item.story, limits.story))
        return Concept(
            title=self.fit("title", reply.title, limits.title) or self.template.title,
            concept=self.fit("concept", reply.concept, limits.concept),
            style=style,
            characters=characters,
            treatments=treatments,
            stories=stories,
            places=places,
            props=props,
        )

    def _template_concept(self, sections: list[SectionPlan]) -> Concept:
        by_index = {t.section_index: t for t in self.template.sections}
        treatments = []
        for sp in sections:
            t = by_index.get(sp.section.index)
            if t is None:  # the template writer covers every section; this only guards the contract
                t = SectionTreatment(section_index=sp.section.index, label=sp.section.label, role=sp.section.role,
                                     palette=list(self.template.style.palette), motif="", setting="")
            treatments.append(t)
        return Concept(
            title=self.template.title,
            concept=self.template.concept,
            style=self.template.style,
            characters=list(self.template.characters),
            treatments=treatments,
            stories=["" for _ in sections],
            places=list(self.template.places),
            props=list(self.template.props),
        )

    # 4. Passes 2..n: shots ----------------------------------------------------------------------

    def write_shots(self, sections: list[SectionPlan], concept: Concept,
                    progress: ProgressCallback, done: int, total: int) -> list[StoryboardShot]:
        written: dict[int, StoryboardShot] = {}
        parts = [(position, chunk) for position, sp in enumerate(sections)
                 for chunk in chunks(sp.shot_indices, self.settings.shots_per_request)]
        for number, (position, chunk) in enumerate(parts, start=1):
            sp = sections[position]
            part_name = sp.name if len(chunk) == len(sp.shot_indices) else (
                f"{sp.name}, {self.plan.shots[chunk[0]].id} to {self.plan.shots[chunk[-1]].id}")
            log_part = f"section-{sp.section.index:02d}-{slug(sp.section.role)}"
            if len(chunk) != len(sp.shot_indices):
                log_part += f"-{self.plan.shots[chunk[0]].id}"
            self.position = (done, total)
            progress(done, total, f"writing the shots of {part_name}")
            try:
                replies, repaired = self._ask_shots(sections, position, chunk, concept, written, log_part,
                                                    number + 1, len(parts) + 1)
            except (Unavailable, PartFailed) as failure:
                self.lost(part_name, failure, "template scenes")
                for i in chunk:
                    written[i] = self._template_shot(i, concept)
            else:
                self.parts_written += 1
                if repaired:
                    self.warn(f"{part_name}: the LLM's JSON was malformed and was repaired")
                for i, reply in zip(chunk, replies, strict=True):
                    written[i] = self._shot_from_reply(i, reply, concept, concept.treatments[position])
            done += 1
            progress(done, total, f"wrote the shots of {part_name}")
        return [written[i] for i in range(len(self.plan.shots))]

    def _ask_shots(self, sections: list[SectionPlan], position: int, chunk: list[int], concept: Concept,
                   written: dict[int, StoryboardShot], log_part: str, pass_number: int,
                   pass_count: int) -> tuple[list[ShotReply], bool]:
        sp = sections[position]
        limits = self.limits
        names = [c.name for c in concept.characters]
        schema = shots_schema(limits, len(chunk), names, [p.name for p in concept.places],
                              [p.name for p in concept.props])
        data = {
            "concept": {"title": concept.title, "concept": concept.concept},
            "style": concept.style.model_dump(),
            "characters": [c.model_dump() for c in concept.characters],
            "places": [p.model_dump() for p in concept.places],
            "props": [p.model_dump() for p in concept.props],
            "sections": [
                {"section": p + 1, "label": other.section.label, "role": other.section.role,
                 "energy": rounded(other.section.energy), "motif": concept.treatments[p].motif,
                 "story": concept.stories[p]}
                for p, other in enumerate(sections)
            ],
            "sections_before": [
                self._written_summary(p, sections[p], concept, written)
                for p in range(max(0, position - CONTEXT_SECTIONS), position)
            ],
            "this_section": {
                **self._section_summary_data(position, sp),
                "motif": concept.treatments[position].motif,
                "setting": concept.treatments[position].setting,
                "story": concept.stories[position],
                "palette": concept.treatments[position].palette,
            },
            "shots": [self._shot_data(number, i) for number, i in enumerate(chunk, start=1)],
        }
        # Shots of this section written by an earlier chunk continue the same scene.
        earlier_in_section = [written[i].scene for i in sp.shot_indices if i in written]
        if earlier_in_section:
            data["this_section"]["shots_already_written"] = [
                excerpt(s, SUMMARY_SCENE_CHARS) for s in earlier_in_section[-ECHO_SCENES:]]
        if sp.first_of_label is not None:
            data["echo"] = self._written_summary(sp.first_of_label, sections[sp.first_of_label], concept, written,
                                                 scenes=ECHO_SCENES)
        user = fill_prompt(
            "storyboard_shots.md",
            brief=self.brief(),
            pass_number=pass_number,
            pass_count=pass_count,
            section_number=position + 1,
            section_role=sp.section.role,
            shot_count=len(chunk),
            max_characters_per_shot=limits.max_characters_per_shot,
            data=data_json(data),
            schema=json.dumps(schema, ensure_ascii=False),
        )

        def check(reply: ShotsReply) -> None:
            if len(reply.shots) != len(chunk):
                raise ReplyError(
                    f"{len(reply.shots)} shots instead of {len(chunk)}",
                    f"it had {len(reply.shots)} shots; this part has exactly {len(chunk)} shots",
                )

        reply, repaired = self.ask(log_part, self.messages(user), schema, ShotsReply, check,
                                   f"It must hold exactly {len(chunk)} items in \"shots\".")
        return reply.shots, repaired

    def _shot_data(self, number: int, index: int) -> dict[str, Any]:
        shot = self.plan.shots[index]
        data: dict[str, Any] = {
            "shot": number,
            "start_s": rounded(shot.start_s),
            "duration_s": rounded(shot.duration_s),
            "cut_on": shot.cut,
            "energy": rounded(self.shot_energy(index)),
        }
        data.update(listener_data(self.shot_description(index)))
        lyrics = self.lyrics_by_shot.get(shot.id, "").strip()
        if lyrics:
            data["lyrics"] = excerpt(lyrics)
        return data

    def _written_summary(self, position: int, sp: SectionPlan, concept: Concept,
                         written: dict[int, StoryboardShot], scenes: int = 2) -> dict[str, Any]:
        """What a written section shows, compact: its motif, setting and first few scenes."""
        return {
            "section": position + 1,
            "label": sp.section.label,
            "role": sp.section.role,
            "motif": concept.treatments[position].motif,
            "setting": concept.treatments[position].setting,
            "scenes": [excerpt(written[i].scene, SUMMARY_SCENE_CHARS)
                       for i in sp.shot_indices[:scenes] if i in written],
        }

    # 5. Composing the final shots ----------------------------------------------------------------

    def _shot_from_reply(self, index: int, reply: ShotReply, concept: Concept,
                         treatment: SectionTreatment) -> StoryboardShot:
        limits = self.limits
        shot = self.plan.shots[index]
        known = {c.name: c for c in concept.characters}
        shown = [name for name in dict.fromkeys(reply.characters) if name in known][: limits.max_characters_per_shot]
        self.unknown_names += [f"{shot.id} {name!r}" for name in reply.characters if name not in known]
        known_places = {p.name: p for p in concept.places}
        known_props = {p.name: p for p in concept.props}
        places = [name for name in dict.fromkeys(reply.places) if name in known_places][: limits.max_places_per_shot]
        props = [name for name in dict.fromkeys(reply.props) if name in known_props][: limits.max_props_per_shot]
        self.unknown_names += [f"{shot.id} {name!r}" for name in [*reply.places, *reply.props]
                               if name not in known_places and name not in known_props]
        action = self.fit(f"{shot.id} prompt", reply.prompt, limits.shot_prompt)
        # The shot's place, word for word as every shot there has it, stands in for the
        # section's setting; its props are described like its characters.
        setting = known_places[places[0]].description if places else treatment.setting
        prompt, trimmed = compose_prompt(concept.style, [*(known[n] for n in shown), *(known_props[n] for n in props)],
                                         setting, action, self.max_prompt_chars)
        if trimmed:
            self.prompt_cuts.append(shot.id)
        return StoryboardShot(
            id=shot.id,
            start_s=shot.start_s,
            end_s=shot.end_s,
            section_index=shot.section_index,
            scene=self.fit(f"{shot.id} scene", reply.scene, limits.scene),
            prompt=prompt,
            negative_prompt=NEGATIVE_PROMPT + (NEGATIVE_PROMPT_CHARACTERS if shown else ""),
            seed=shot_seed(self.seed, shot.index),
            palette=list(treatment.palette),
            motif=treatment.motif,
            camera=self.fit(f"{shot.id} camera", reply.camera, limits.camera) or "static",
            energy=self.shot_energy(index),
            characters=shown,
            places=places,
            props=props,
            lyrics=self.lyrics_by_shot.get(shot.id, ""),
        )

    def _template_shot(self, index: int, concept: Concept) -> StoryboardShot:
        """The template writer's entry for this shot as it stands (scene, prompt, motif, palette);
        ids, times, seed and lyrics set by the program, characters, places and props kept only if the
        concept has them."""
        shot = self.plan.shots[index]
        entry = self.template.shots[index]
        known = {c.name for c in concept.characters}
        return entry.model_copy(update={
            "characters": [name for name in entry.characters if name in known],
            "places": [name for name in entry.places if name in {p.name for p in concept.places}],
            "props": [name for name in entry.props if name in {p.name for p in concept.props}],
            "id": shot.id,
            "start_s": shot.start_s,
            "end_s": shot.end_s,
            "section_index": shot.section_index,
            "seed": shot_seed(self.seed, shot.index),
            "lyrics": self.lyrics_by_shot.get(shot.id, ""),
        })

    def set_list(self, model: type[SetEntry], what: str, items: list[Any], taken: set[str],
                 name_limit: int, description_limit: int) -> list[SetEntry]:
        """The set list's places or props from the reply's ``items``, fitted to their limits; an
        empty name or one ``taken`` already (by a character, place or prop) is left out, and each
        name kept joins ``taken``."""
        entries: list[SetEntry] = []
        for item in items:
            name = self.fit(f"{what} name", item.name, name_limit)
            if name and name not in taken:
                taken.add(name)
                entries.append(model(name=name, description=self.fit(
                    f"{what} {name}", item.description, description_limit)))
        return entries

    def fit(self, what: str, text: str, limit: int) -> str:
        """``text`` on one line within ``limit`` characters, cut at a word boundary (and noted)."""
        fitted, trimmed = fit_words(" ".join(text.split()), limit)
        if trimmed:
            self.text_cuts.append(what)
        return fitted

    def cut_warnings(self) -> list[str]:
        """One line each for the texts and prompts that had to be cut, and for character names
        that the concept lacks (left out of the shots), however many there were."""
        lines = []
        if self.unknown_names:
            lines.append(f"{len(self.unknown_names)} characters named in shots are not in the concept and were "
                         f"left out: {listing(self.unknown_names)}")
        if self.text_cuts:
            lines.append(f"{len(self.text_cuts)} LLM texts were longer than their limits and were cut at a word "
                         f"boundary: {listing(self.text_cuts)}")
        if self.prompt_cuts:
            lines.append(f"{len(self.prompt_cuts)} prompts were shortened to fit {self.max_prompt_chars} characters "
                         f"(setting left out or words cut): {listing(self.prompt_cuts)}")
        return lines

    def warn(self, message: str) -> None:
        log.warning(message)
        self.warnings.append(message)

    def fallback_reason(self) -> str | None:
        """Why parts of this storyboard are the template's for a reason that may pass (the server
        was down, out of time, overloaded), or None: then a later run should ask the model again."""
        if self.unavailable is not None:
            return self.unavailable
        if self.passing_failures:
            return "; ".join(self.passing_failures)
        return None


def _request_seed(seed: int, request: int) -> int:
    digest = hashlib.sha256(f"music2video-llm:{seed}:{request}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def _backoff_s(attempt: int, retry_after_s: float | None) -> float:
    """Seconds to wait after failed attempt ``attempt`` (1-based): exponential, or the server's Retry-After."""
    delay = RETRY_BASE_DELAY_S * 2 ** (attempt - 1)
    if retry_after_s is not None:
        delay = max(delay, retry_after_s)
    return min(delay, RETRY_MAX_DELAY_S)


