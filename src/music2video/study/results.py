"""``music2video study results``: what the participants said, per condition and dimension.

Written to ``results/`` in the study folder:

- ``results.json`` (:class:`StudyResults`): per condition and dimension the rating
  distribution, the mean with a bootstrap confidence interval, the rank test between every
  pair of conditions that fits the design (Wilcoxon signed-rank within subjects, Mann-Whitney U
  between), its effect size and Holm-corrected p-value, Krippendorff's alpha per dimension,
  and the pre-screen's agreement with people where a pre-screen was run;
- ``results.html`` with the tables and the plots (``plots/*.png``);
- ``answers.csv``: every stored rating, unblinded (condition and song beside each code).

The unit of analysis is the participant: each participant's ratings of one condition's videos
on one dimension are averaged first (one value per participant), so that a participant who
saw three songs does not count as three independent people. Means and confidence intervals
are over those participant means. Participants who failed the attention check are left out
(and counted); participants who stopped early count for what they rated.
"""

from __future__ import annotations

import csv
import html
import io
import itertools
import logging
from collections import defaultdict
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from music2video.runfolder import atomic_path, write_json_atomic, write_text_atomic
from music2video.study import stats
from music2video.study.design import Study, load_study
from music2video.study.store import Answer, read_answers

log = logging.getLogger(__name__)

RESULTS_FOLDER = "results"
PRESCREEN_FILE = "prescreen.json"
PLOT_DPI = 110
CONFIDENCE = 0.95
CONDITION_COLOURS = ["#2f6fb3", "#d9822b", "#3a9a5b", "#b5475a", "#7a5bb5", "#8a8a2c"]


class Cell(BaseModel):
    """One condition on one dimension."""

    model_config = ConfigDict(extra="forbid")

    condition: str
    dimension: str
    participants: int
    ratings: int
    distribution: list[int] = Field(description="How many ratings gave 1, 2, ... scale_points.")
    mean: float | None = Field(description="Mean of the participants' mean ratings.")
    ci_low: float | None
    ci_high: float | None
    median: float | None = Field(description="Median of all ratings.")


class Comparison(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dimension: str
    condition_a: str
    condition_b: str
    test: str
    statistic: float
    n_a: int
    n_b: int
    p: float
    p_holm: float
    significant: bool = Field(description="p_holm <= alpha")
    effect: float = Field(description="Rank-biserial correlation, > 0 when condition_a is rated higher.")
    effect_name: str


class Agreement(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dimension: str
    krippendorff_alpha: float | None = Field(description="Ordinal alpha over participants x videos; None when undefined.")
    raters: int
    videos: int


class PrescreenAgreement(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dimension: str
    spearman_rho: float | None
    p: float | None
    videos: int
    answer_mass: float | None = Field(description="Mean share of the model's next-token probability that went to a digit answer.")


class StudyResults(BaseModel):
    """``results/results.json``."""

    model_config = ConfigDict(extra="forbid")

    schema_version: int = 1
    study: str
    design: str
    scale_points: int
    alpha: float
    confidence: float
    participants: int = Field(description="Participants whose answers are analysed.")
    finished: int
    excluded_attention: int = Field(description="Participants left out: they failed the attention check.")
    conditions: list[str]
    dimensions: list[str]
    cells: list[Cell]
    overall: list[Cell] = Field(description="Per condition, every dimension's ratings together (AutoMV's 'mean score').")
    groups: list[Cell] = Field(default_factory=list, description="Per group of dimensions (AutoMV's modules) and condition, the group's ratings together.")
    comparisons: list[Comparison]
    agreement: list[Agreement]
    reference: dict | None = Field(None, description="Published means of the preset (AutoMV), to read the overall means against.")
    prescreen: dict | None = Field(None, description="The automatic pre-screen's model and its agreement with people (Spearman per criterion).")
    warnings: list[str] = Field(default_factory=list)


def analyse_study(folder: Path, *, alpha: float = 0.05, seed: int = 0) -> StudyResults:
    """The statistics of a study's stored answers (see the module docstring)."""
    folder = Path(folder)
    study = load_study(folder)
    answers, participants = read_answers(folder)
    failed = {pid for pid, p in participants.items() if p["attention_given"] is not None and p["attention_given"] != p["attention_expected"]}
    kept = [answer for answer in answers if answer.participant not in failed]
    rated = {answer.participant for answer in kept}
    conditions = study.conditions
    dimensions = [dimension.id for dimension in study.dimensions]
    condition_of = {video.code: video.condition for video in study.videos}
    warnings = []
    if not kept:
        warnings.append("no answers yet: serve the study (music2video study serve) and let people take part")

    # participant -> condition -> dimension -> ratings
    by_participant: dict[str, dict[str, dict[str, list[int]]]] = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    for answer in kept:
        by_participant[answer.participant][condition_of[answer.video]][answer.dimension].append(answer.rating)

    def participant_means(condition: str, dimension: str | None, among: set[str] | None = None) -> dict[str, float]:
        """Per participant, the mean of their ratings of ``condition`` on ``dimension`` (None:
        every dimension, or those in ``among``)."""
        wanted = {dimension} if dimension is not None else among or set(dimensions)
        means = {}
        for pid, per_condition in by_participant.items():
            ratings = [r for d, values in per_condition.get(condition, {}).items() if d in wanted for r in values]
            if ratings:
                means[pid] = float(np.mean(ratings))
        return means

    def cell(condition: str, dimension: str | None, among: set[str] | None = None, name: str = "all") -> Cell:
        wanted = {dimension} if dimension is not None else among or set(dimensions)
        ratings = [a.rating for a in kept if condition_of[a.video] == condition and a.dimension in wanted]
        means = participant_means(condition, dimension, among)
        values = list(means.values())
        low, high = stats.bootstrap_mean_ci(values, confidence=CONFIDENCE, seed=seed) if values else (None, None)
        return Cell(
            condition=condition,
            dimension=dimension or name,
            participants=len(values),
            ratings=len(ratings),
            distribution=np.bincount(ratings, minlength=study.scale_points + 1)[1:].tolist() if ratings else [0] * study.scale_points,
            mean=float(np.mean(values)) if values else None,
            ci_low=low,
            ci_high=high,
            median=float(np.median(ratings)) if ratings else None,
        )

    cells = [cell(c, d) for d in dimensions for c in conditions]
    overall = [cell(c, None) for c in conditions]
    grouped: dict[str, set[str]] = defaultdict(set)
    for dimension in study.dimensions:
        if dimension.group:
            grouped[dimension.group].add(dimension.id)
    groups = [cell(c, None, among=members, name=group) for group, members in grouped.items() for c in conditions]

    # Tests: every pair of conditions on every dimension, one Holm family.
    raw = []
    for dimension in dimensions:
        for a, b in itertools.combinations(conditions, 2):
            means_a, means_b = participant_means(a, dimension), participant_means(b, dimension)
            if study.design == "within":
                both = sorted(set(means_a) & set(means_b))
                if len(both) < 2:
                    continue
                result = stats.wilcoxon_paired([means_a[p] for p in both], [means_b[p] for p in both])
            else:
                if not means_a or not means_b:
                    continue
                result = stats.mann_whitney(list(means_a.values()), list(means_b.values()))
            raw.append((dimension, a, b, result))
    adjusted = stats.holm([result.p for *_, result in raw])
    comparisons = [
        Comparison(dimension=d, condition_a=a, condition_b=b, test=r.test, statistic=r.statistic, n_a=r.n_a, n_b=r.n_b,
                   p=r.p, p_holm=p_holm, significant=p_holm <= alpha, effect=r.effect, effect_name=r.effect_name)
        for (d, a, b, r), p_holm in zip(raw, adjusted)
    ]
    if len(conditions) > 1 and not comparisons and kept:
        warnings.append("too few participants for a test (a within-subject test needs two who rated both conditions)")

    agreement = []
    raters = sorted(by_participant)
    codes = [video.code for video in study.videos]
    for dimension in dimensions:
        matrix = np.full((len(raters), len(codes)), np.nan)
        for answer in kept:
            if answer.dimension == dimension:
                matrix[raters.index(answer.participant), codes.index(answer.video)] = answer.rating
        value = stats.krippendorff_alpha(matrix, level="ordinal", values=range(1, study.scale_points + 1)) if raters else float("nan")
        agreement.append(Agreement(dimension=dimension, krippendorff_alpha=None if np.isnan(value) else value, raters=len(raters), videos=len(codes)))

    return StudyResults(
        study=study.name,
        design=study.design,
        scale_points=study.scale_points,
        alpha=alpha,
        confidence=CONFIDENCE,
        participants=len(rated),
        finished=sum(1 for pid, p in participants.items() if p["finished"] and pid not in failed),
        excluded_attention=len(failed),
        conditions=conditions,
        dimensions=dimensions,
        cells=cells,
        overall=overall,
        groups=groups,
        comparisons=comparisons,
        agreement=agreement,
        reference=study.reference.model_dump() if study.reference else None,
        prescreen=_prescreen_agreement(folder, study, kept),
        warnings=warnings,
    )


def _prescreen_agreement(folder: Path, study: Study, kept: list[Answer]) -> dict | None:
    """Spearman's rho per criterion between the pre-screen's score of each video and the
    people's mean rating of it, when ``prescreen.json`` exists."""
    path = folder / PRESCREEN_FILE
    if not path.is_file():
        return None
    from music2video.study.prescreen import Prescreen

    prescreen = Prescreen.model_validate_json(path.read_text(encoding="utf-8"))
    human: dict[tuple[str, str], list[int]] = defaultdict(list)
    for answer in kept:
        human[(answer.video, answer.dimension)].append(answer.rating)
    rows = []
    for dimension in study.dimensions:
        pairs = [
            (score.scores[dimension.id], float(np.mean(human[(score.video, dimension.id)])))
            for score in prescreen.videos
            if dimension.id in score.scores and human.get((score.video, dimension.id))
        ]
        rho, p = stats.spearman([m for m, _ in pairs], [h for _, h in pairs]) if pairs else (float("nan"), float("nan"))
        masses = [score.answer_mass[dimension.id] for score in prescreen.videos if dimension.id in score.answer_mass]
        rows.append(PrescreenAgreement(
            dimension=dimension.id, spearman_rho=None if np.isnan(rho) else rho, p=None if np.isnan(p) else p, videos=len(pairs),
            answer_mass=float(np.mean(masses)) if masses else None,
        ).model_dump())
    return {"model": prescreen.model, "prompt_sha256": prescreen.prompt_sha256, "frames": prescreen.frames, "agreement": rows}


# --------------------------------------------------------------------------------------------
# files


def write_results(folder: Path, *, alpha: float = 0.05, output: Path | None = None, seed: int = 0) -> tuple[StudyResults, Path]:
    """Analyse the study in ``folder`` and write results.json, results.html, plots and
    answers.csv into ``output`` (default ``folder/results``). Returns the results and the HTML path."""
    folder = Path(folder)
    study = load_study(folder)
    results = analyse_study(folder, alpha=alpha, seed=seed)
    out = Path(output) if output else folder / RESULTS_FOLDER
    (out / "plots").mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "results.json", results)
    _write_csv(folder, study, out / "answers.csv")
    plots = _plots(study, results, out / "plots")
    page = out / "results.html"
    write_text_atomic(page, _html(study, results, plots, out))
    return results, page


def _write_csv(folder: Path, study: Study, path: Path) -> None:
    answers, participants = read_answers(folder)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["participant", "participant_seq", "video", "condition", "song", "dimension", "rating", "watched_s", "answered_utc", "attention_passed", "finished"])
    for answer in answers:
        video = study.video(answer.video)
        p = participants[answer.participant]
        passed = "" if p["attention_given"] is None else str(p["attention_given"] == p["attention_expected"]).lower()
        writer.writerow([answer.participant, answer.seq, answer.video, video.condition, video.song, answer.dimension, answer.rating,
                         "" if answer.watched_s is None else f"{answer.watched_s:.2f}", answer.answered_utc, passed, str(p["finished"]).lower()])
    write_text_atomic(path, buffer.getvalue())


def _figure(width_in: float, height_in: float):
    """A matplotlib Figure drawn by the Agg renderer, outside pyplot (no GUI, no global state)."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width_in, height_in))


def _save(fig, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=PLOT_DPI, format="png")
    return path


def _plots(study: Study, results: StudyResults, folder: Path) -> dict[str, Path]:
    """One distribution plot per dimension (stacked shares of each rating per condition, the
    mean and its CI marked), and one plot of every mean with its CI."""
    from matplotlib import colormaps

    points = study.scale_points
    shades = [colormaps["RdYlGn"](0.1 + 0.8 * i / (points - 1)) for i in range(points)]
    plots = {}
    cells = {(c.condition, c.dimension): c for c in results.cells}
    labels = {d.id: d.label for d in study.dimensions}
    for dimension in results.dimensions:
        fig = _figure(7.0, 0.7 + 0.55 * len(results.conditions))
        ax = fig.subplots()
        scale = ax.twiny()  # the mean and its CI on the rating scale, read on the top axis
        scale.set_xlim(1, points)
        scale.set_xticks(range(1, points + 1))
        scale.tick_params(labelsize=8)
        for row, condition in enumerate(results.conditions):
            c = cells[(condition, dimension)]
            total = max(1, sum(c.distribution))
            left = 0.0
            for level, count in enumerate(c.distribution):
                share = count / total
                ax.barh(row, share, left=left, color=shades[level], edgecolor="white", height=0.6)
                if share >= 0.08:
                    ax.text(left + share / 2, row, str(level + 1), ha="center", va="center", fontsize=7)
                left += share
            if c.mean is not None:
                scale.plot([c.mean], [row], marker="D", color="black", ms=5)
                scale.plot([c.ci_low, c.ci_high], [row, row], color="black", lw=1.5)
        ax.set_yticks(range(len(results.conditions)), [f"{c} (n={cells[(c, dimension)].participants})" for c in results.conditions], fontsize=8)
        ax.set_xlim(0, 1)
        ax.set_xticks([0, 0.5, 1], ["0%", "50%", "100%"], fontsize=8)
        ax.set_xlabel(f"share of ratings (bars, bottom axis); ◆ mean rating with {int(CONFIDENCE * 100)}% CI (top axis)", fontsize=8)
        ax.set_ylim(len(results.conditions) - 0.5, -0.5)
        scale.set_ylim(len(results.conditions) - 0.5, -0.5)
        ax.set_title(labels[dimension], fontsize=9)
        fig.tight_layout()
        plots[dimension] = _save(fig, folder / f"{dimension}.png")

    fig = _figure(7.0, 0.9 + 0.32 * len(results.dimensions) * max(1, len(results.conditions)) / 2)
    ax = fig.subplots()
    offsets = np.linspace(-0.25, 0.25, len(results.conditions)) if len(results.conditions) > 1 else [0.0]
    for index, condition in enumerate(results.conditions):
        ys, means, errors = [], [], []
        for row, dimension in enumerate(results.dimensions):
            c = cells[(condition, dimension)]
            if c.mean is None:
                continue
            ys.append(row + offsets[index])
            means.append(c.mean)
            errors.append((c.mean - c.ci_low, c.ci_high - c.mean))
        if means:
            ax.errorbar(means, ys, xerr=np.array(errors).T, fmt="o", ms=4, capsize=2, color=CONDITION_COLOURS[index % len(CONDITION_COLOURS)], label=condition)
    ax.set_yticks(range(len(results.dimensions)), [labels[d] for d in results.dimensions], fontsize=8)
    ax.set_xlim(0.8, points + 0.2)
    ax.set_xticks(range(1, points + 1))
    ax.invert_yaxis()
    ax.grid(axis="x", color="#ddd", lw=0.6)
    ax.set_title(f"Mean rating per dimension with {int(CONFIDENCE * 100)}% bootstrap CI", fontsize=9)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    plots["means"] = _save(fig, folder / "means.png")
    return plots


def _fmt(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _p(value: float) -> str:
    return "<0.001" if value < 0.001 else f"{value:.3f}"


def _html(study: Study, results: StudyResults, plots: dict[str, Path], out: Path) -> str:
    e = html.escape
    labels = {d.id: d.label for d in study.dimensions}
    cells = {(c.condition, c.dimension): c for c in results.cells}
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>Study results: {e(study.name)}</title>",
        "<style>body{font:15px/1.5 system-ui,sans-serif;max-width:1000px;margin:2rem auto;padding:0 1rem;color:#222}"
        "table{border-collapse:collapse;margin:1rem 0}td,th{border:1px solid #ccc;padding:.25rem .5rem;text-align:right}"
        "th:first-child,td:first-child{text-align:left}.note{color:#555}.warn{color:#a60}img{max-width:100%}</style></head><body>",
        f"<h1>Study results: {e(study.name)}</h1>",
        f"<p>{e(study.design)}-subject design, {len(study.videos)} videos, {len(results.conditions)} conditions, "
        f"{len(results.dimensions)} dimensions on a 1–{results.scale_points} scale. "
        f"{results.participants} participants analysed ({results.finished} finished); "
        f"{results.excluded_attention} left out for failing the attention check.</p>",
    ]
    parts += [f"<p class='warn'>{e(w)}</p>" for w in results.warnings]
    parts.append("<h2>Means</h2><p class='note'>Mean of the participants' mean ratings, with a "
                 f"{int(results.confidence * 100)}% BCa bootstrap confidence interval over participants.</p>")
    parts.append("<table><tr><th>dimension</th>" + "".join(f"<th>{e(c)}</th>" for c in results.conditions) + "</tr>")
    for dimension in results.dimensions:
        row = "".join(
            f"<td>{_fmt(cells[(c, dimension)].mean)} [{_fmt(cells[(c, dimension)].ci_low)}, {_fmt(cells[(c, dimension)].ci_high)}] n={cells[(c, dimension)].participants}</td>"
            for c in results.conditions
        )
        parts.append(f"<tr><td>{e(labels[dimension])}</td>{row}</tr>")
    group_cells = {(c.condition, c.dimension): c for c in results.groups}
    for group in dict.fromkeys(c.dimension for c in results.groups):
        row = "".join(f"<td><i>{_fmt(group_cells[(c, group)].mean)}</i> [{_fmt(group_cells[(c, group)].ci_low)}, {_fmt(group_cells[(c, group)].ci_high)}]</td>" for c in results.conditions)
        parts.append(f"<tr><td><i>{e(group)}</i></td>{row}</tr>")
    overall = "".join(f"<td><b>{_fmt(c.mean)}</b> [{_fmt(c.ci_low)}, {_fmt(c.ci_high)}]</td>" for c in results.overall)
    parts.append(f"<tr><td><b>all dimensions</b></td>{overall}</tr></table>")
    if results.reference:
        ref = results.reference
        means = ", ".join(f"{e(k)} {v:.2f}" for k, v in ref["means"].items())
        parts.append(f"<p class='note'>Published reference ({e(study.preset)} preset), mean of all criteria: {means}. {e(ref['description'])}</p>")

    parts.append("<h2>Tests</h2>")
    if results.comparisons:
        parts.append(f"<p class='note'>{'Wilcoxon signed-rank on paired participant means' if results.design == 'within' else 'Mann-Whitney U on participant means'}; "
                     f"Holm-corrected over all {len(results.comparisons)} tests; significant when p (Holm) ≤ {results.alpha}. "
                     "Effect: rank-biserial r, positive when A is rated higher.</p>")
        parts.append("<table><tr><th>dimension</th><th>A</th><th>B</th><th>n</th><th>effect r</th><th>p</th><th>p (Holm)</th><th></th></tr>")
        for c in results.comparisons:
            n = f"{c.n_a}" if results.design == "within" else f"{c.n_a} / {c.n_b}"
            parts.append(f"<tr><td>{e(labels[c.dimension])}</td><td>{e(c.condition_a)}</td><td>{e(c.condition_b)}</td><td>{n}</td>"
                         f"<td>{c.effect:+.2f}</td><td>{_p(c.p)}</td><td>{_p(c.p_holm)}</td><td>{'significant' if c.significant else ''}</td></tr>")
        parts.append("</table>")
    else:
        parts.append("<p class='note'>No tests: one condition, or too few participants.</p>")

    parts.append("<h2>Agreement between participants</h2><table><tr><th>dimension</th><th>Krippendorff's α (ordinal)</th><th>raters</th></tr>")
    for a in results.agreement:
        parts.append(f"<tr><td>{e(labels[a.dimension])}</td><td>{_fmt(a.krippendorff_alpha, 3)}</td><td>{a.raters}</td></tr>")
    parts.append("</table>")

    if results.prescreen:
        pre = results.prescreen
        parts.append("<h2>Automatic pre-screen: agreement with people</h2>")
        parts.append(f"<p class='warn'>The pre-screen is a vision-language model ({e(pre['model'])}, {pre['frames']} frames per video) "
                     "scoring the same criteria. It is not a substitute for people: read it only as a first look.</p>")
        parts.append("<table><tr><th>dimension</th><th>Spearman ρ</th><th>p</th><th>videos</th><th>answered with a digit</th></tr>")
        for row in pre["agreement"]:
            mass = "–" if row["answer_mass"] is None else f"{row['answer_mass']:.0%}"
            parts.append(f"<tr><td>{e(labels[row['dimension']])}</td><td>{_fmt(row['spearman_rho'])}</td><td>{'–' if row['p'] is None else _p(row['p'])}</td>"
                         f"<td>{row['videos']}</td><td>{mass}</td></tr>")
        parts.append("</table>")

    parts.append("<h2>Distributions</h2>")
    for name, path in plots.items():
        alt = "means with confidence intervals" if name == "means" else f"rating distribution: {labels[name]}"
        parts.append(f"<p><img src='{e(path.relative_to(out).as_posix())}' alt='{e(alt)}'></p>")
    parts.append("<p class='note'>Raw answers: <a href='answers.csv'>answers.csv</a> (unblinded). "
                 f"Numbers: <a href='results.json'>results.json</a>.</p></body></html>")
    return "\n".join(parts)

