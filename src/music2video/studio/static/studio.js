// music2video studio: the page. Plain JavaScript, no framework and no build step; every
// request goes to this studio's own server (the Content-Security-Policy allows nothing else).
"use strict";

const $ = (selector) => document.querySelector(selector);
const WAVE_HEIGHT_PX = 160;   // the canvas: section band, waveform, beats and cuts
const BAND_HEIGHT_PX = 18;    // the section band at the top of the canvas
const CUT_GRAB_PX = 6;        // how near a cut a press must be to drag it
const JOB_POLL_MS = 500;

const studio = {
  options: null,
  run: null,        // the open run folder, relative to the work folder
  state: null,      // /api/run's answer
  wave: null,       // /api/waveform's answer
  pxPerS: 100,
  selected: null,   // index of the selected shot
  job: null,        // the job being watched
  drag: null,       // {cut, t} while a cut is dragged
  timeToX: (t) => t * studio.pxPerS,
  xToTime: (x) => x / studio.pxPerS,
};
window.studio = studio;  // for people poking around, and for the browser tests

// -- talking to the server ----------------------------------------------------------------

async function api(path, options = {}) {
  const init = { ...options, headers: { ...(options.headers || {}) } };
  if (init.method && init.method !== "GET") init.headers["X-Studio"] = "1";  // the server refuses changes without it
  if (init.json !== undefined) {
    init.body = JSON.stringify(init.json);
    init.headers["Content-Type"] = "application/json";
    delete init.json;
  }
  const response = await fetch(path, init);
  const type = response.headers.get("content-type") || "";
  const body = type.includes("json") ? await response.json() : await response.text();
  if (!response.ok) {
    const text = typeof body === "string" ? body : (body.error || body.detail && JSON.stringify(body.detail) || response.statusText);
    throw new Error(text);
  }
  return body;
}

const q = (params) => new URLSearchParams(params).toString();
const fileUrl = (path, extra = {}) => "/api/file?" + q({ path, ...extra });

// Two beats a bar is 2/4 or 6/8 (dotted quarters): the tracker cannot tell them apart (settings.meter_label).
function meterLabel(beatsPerBar) {
  return { 2: "2/4 or 6/8", 3: "3/4", 4: "4/4" }[beatsPerBar] || `${beatsPerBar} beats a bar`;
}

function say(text, isError = false) {
  const box = $("#message");
  box.textContent = text;
  box.className = isError ? "error" : "";
  box.hidden = !text;
}

async function attempt(work) {
  try {
    say("");
    return await work();
  } catch (error) {
    say(error.message, true);
    return undefined;
  }
}

// -- the work folder: songs and runs ------------------------------------------------------

async function loadWork(selectSong) {
  const work = await api("/api/work");
  const runs = $("#run-picker");
  const current = studio.run;
  runs.replaceChildren(new Option("(choose a run folder)", ""));
  for (const run of work.runs) runs.add(new Option(run.name, run.path));
  if (current) runs.value = current;
  const songs = $("#song-picker");
  songs.replaceChildren(new Option(work.songs.length ? "(choose a song)" : "(none yet: upload one)", ""));
  for (const song of work.songs) songs.add(new Option(`${song.path} (${(song.bytes / 1e6).toFixed(1)} MB)`, song.path));
  if (selectSong) songs.value = selectSong;
  return work;
}

async function uploadFile(file, kind) {
  const limit = kind === "picture" ? Math.min(studio.options.max_upload_bytes, studio.options.max_picture_bytes) : studio.options.max_upload_bytes;
  if (file.size > limit) throw new Error(`${file.name} is ${(file.size / 1e6).toFixed(0)} MB; the studio takes files up to ${(limit / 1e6).toFixed(0)} MB`);
  return api("/api/upload?" + q({ name: file.name, kind }), { method: "PUT", body: file });
}

function addReferenceRow() {
  const row = document.createElement("div");
  row.className = "reference-row";
  row.innerHTML = '<label>Name (as the storyboard will call it) <input class="reference-name" placeholder="the singer"></label>' +
    '<label>Picture <input class="reference-file" type="file" accept="image/png,image/jpeg,image/webp"></label><span class="dim reference-saved"></span>';
  row.querySelector(".reference-file").addEventListener("change", (event) => attempt(async () => {
    const done = await uploadFile(event.target.files[0], "picture");
    row.dataset.path = done.path;
    row.querySelector(".reference-saved").textContent = `saved as ${done.path}`;
  }));
  $("#reference-rows").append(row);
}

async function upload(file) {
  const bar = $("#upload-progress");
  bar.hidden = false;
  bar.removeAttribute("value");
  try {
    const done = await uploadFile(file, "song");
    await loadWork(done.path);
    say(`uploaded ${file.name} as ${done.path}`);
  } finally {
    bar.hidden = true;
  }
}

function startFormValues() {
  const form = $("#start-form");
  const data = new FormData(form);
  const body = { song: data.get("song"), evaluate: form.evaluate.checked };
  for (const name of ["pipeline", "style", "listener", "writer", "renderer", "clap_model", "lalm_model", "llm_model", "llm_base_url", "video_model", "reference_model", "keyframe_model"]) {
    const value = (data.get(name) || "").trim();
    if (value) body[name] = value;
  }
  for (const name of ["width", "height", "seed"]) if (data.get(name)) body[name] = parseInt(data.get(name), 10);
  if (data.get("fps")) body.fps = parseFloat(data.get("fps"));
  body.references = {};
  for (const row of document.querySelectorAll(".reference-row")) {
    const name = row.querySelector(".reference-name").value.trim();
    if (name && row.dataset.path) body.references[name] = row.dataset.path;
  }
  return body;
}

async function startRun(event) {
  event.preventDefault();
  const body = startFormValues();
  if (!body.song) throw new Error("choose or upload a song first");
  const started = await api("/api/runs", { method: "POST", json: body });
  studio.run = started.run;
  location.hash = q({ run: started.run });
  $("#start").hidden = true;
  watchJob(started.job);
}

// -- jobs: progress per stage and shot, cancel --------------------------------------------

function drawJob(job) {
  $("#job").hidden = false;
  $("#job-title").textContent = job.title;
  const badge = $("#job-state");
  badge.textContent = job.state;
  badge.className = "badge " + job.state;
  const stages = $("#job-stages");
  stages.replaceChildren(...job.stages.map((stage) => {
    const row = document.createElement("div");
    row.className = "stage";
    row.dataset.stage = stage.name;
    const name = document.createElement("span");
    name.textContent = stage.name;
    const bar = document.createElement("progress");
    if (stage.total > 0) { bar.max = stage.total; bar.value = stage.done; }
    const count = document.createElement("span");
    count.textContent = stage.total > 0 ? `${stage.done} / ${stage.total}` : "";
    const what = document.createElement("span");
    what.className = "what";
    what.textContent = stage.message;
    row.append(name, bar, count, what);
    return row;
  }));
  const error = $("#job-error");
  error.textContent = job.error || "";
  error.hidden = !job.error;
  $("#cancel-job").hidden = !["starting", "running"].includes(job.state);
  markRendered();
}

// Shots the watched job has rendered so far get a mark on the timeline.
function markRendered() {
  const job = studio.job;
  const render = job && job.run === studio.run && (job.stages || []).find((stage) => stage.name === "render");
  const done = new Set();
  for (const message of render ? render.messages || [] : []) {
    const found = /^rendered (\S+)$/.exec(message);
    if (found) done.add(found[1]);
  }
  const active = job && ["starting", "running", "cancelling"].includes(job.state);
  for (const box of document.querySelectorAll(".shot")) box.classList.toggle("rendered-now", Boolean(active) && done.has(box.id));
}

async function watchJob(job) {
  studio.job = job;
  let stagesSeen = -1;
  drawJob(job);
  while (studio.job && studio.job.id === job.id) {
    const now = await api(`/api/jobs/${job.id}`).catch(() => null);
    if (!now) break;
    const active = ["starting", "running", "cancelling"].includes(now.state);
    // Each finished stage may have written something worth drawing (the waveform after decode
    // ...); when the job has ended, the run is read again before the page says so.
    if (now.stages.length && (now.stages.length !== stagesSeen || !active)) {
      stagesSeen = now.stages.length;
      if (studio.run === now.run) await openRun(now.run, { quiet: true }).catch(() => {});
    }
    if (studio.job && studio.job.id !== job.id) break;  // another job took over meanwhile
    studio.job = now;
    drawJob(now);
    if (!active) {
      await loadWork();
      if (now.state === "done") say(`${now.title}: done`);
      break;
    }
    await new Promise((resolve) => setTimeout(resolve, JOB_POLL_MS));
  }
}

async function cancelJob() {
  if (!studio.job) return;
  drawJob(await api(`/api/jobs/${studio.job.id}/cancel`, { method: "POST" }));
}

// -- one run ------------------------------------------------------------------------------

async function openRun(run, { quiet = false } = {}) {
  const state = await api("/api/run?" + q({ run }));
  studio.run = run;
  studio.state = state;
  if (!quiet) location.hash = q({ run });
  $("#run-picker").value = run;
  $("#run").hidden = false;
  $("#start").hidden = true;
  $("#run-title").textContent = state.title ? `${state.title} (${state.name})` : state.name;
  const facts = [];
  if (state.duration_s) facts.push(`${state.duration_s.toFixed(2)} s`);
  if (state.tempo_bpm) facts.push(`${state.tempo_bpm.toFixed(1)} BPM, ${meterLabel(state.beats_per_bar)}`);
  if (state.shots.length) facts.push(`${state.shots.length} shots`);
  if (state.pipeline) facts.push(`pipeline ${state.pipeline}`);
  if (state.width) facts.push(`${state.width}×${state.height} @ ${state.fps} fps`);
  const limits = state.edit && state.edit.limits;
  if (limits) facts.push(`shots ${limits.min_s}–${limits.max_s} s` + (limits.note ? ` (${limits.note})` : ""));
  const changed = (state.edit && state.edit.changed) || [];
  if (changed.length) facts.push(`${changed.length} changed shot${changed.length > 1 ? "s" : ""} to render`);
  $("#run-facts").textContent = facts.join(" · ");
  $("#run-warnings").replaceChildren(...state.warnings.map((text) => Object.assign(document.createElement("li"), { textContent: text })));
  drawPlayer();
  drawDownloads();
  drawCast();
  if (state.duration_s && (!studio.wave || studio.wave.run !== run)) {
    studio.wave = await api("/api/waveform?" + q({ run })).catch(() => null);
    if (studio.wave) studio.wave.run = run;
  }
  fitZoom();
  drawTimeline();
  drawShotForm();
  const active = (state.jobs || []).find((job) => ["starting", "running", "cancelling"].includes(job.state));
  if (active && (!studio.job || studio.job.id !== active.id)) watchJob(active);
  else if (!active && !studio.job && (state.jobs || []).length) {
    // Reopened after its last job ended: say how that job went.
    studio.job = state.jobs.reduce((last, job) => (job.started > last.started ? job : last));
    drawJob(studio.job);
  }
  return state;
}

function drawPlayer() {
  const player = $("#player");
  const state = studio.state;
  $("#no-video").hidden = Boolean(state.video);
  player.hidden = !state.video;
  if (!state.video) { player.removeAttribute("src"); return; }
  const src = fileUrl(state.video, { v: state.video_version || "" });
  if (player.getAttribute("src") !== src) {
    const at = player.currentTime || 0;
    player.setAttribute("src", src);
    player.addEventListener("loadedmetadata", () => { player.currentTime = Math.min(at, player.duration || at); }, { once: true });
  }
}

function drawDownloads() {
  const state = studio.state;
  const links = [];
  const add = (label, href) => {
    const link = document.createElement("a");
    link.textContent = label;
    link.href = href;
    link.className = "download";
    links.push(link);
  };
  if (state.video) add("MP4", fileUrl(state.video, { download: true }));
  if (state.storyboard) add("storyboard.json", fileUrl(state.storyboard, { download: true }));
  if (state.srt) add("SRT", fileUrl(state.srt, { download: true }));
  for (const format of state.export_formats || []) add(format.label, "/api/export?" + q({ run: studio.run, format: format.name }));
  if (state.report) {
    add("report", fileUrl(state.report));
    links[links.length - 1].target = "_blank";
  }
  $("#downloads").replaceChildren(...links);
}

function drawCast() {
  const state = studio.state;
  const editable = Boolean(state.edit && state.edit.available);
  $("#cast").hidden = !(state.cast || []).length;
  $("#cast .cast").replaceChildren(...(state.cast || []).map((member) => {
    const card = document.createElement("figure");
    card.className = "member";
    if (member.picture) {
      const picture = document.createElement("img");
      picture.alt = member.name;
      picture.src = "/api/thumbnail?" + q({ path: member.picture });
      card.append(picture);
    }
    const caption = document.createElement("figcaption");
    caption.textContent = `${member.name} (${member.kind})`;
    const input = document.createElement("input");
    input.type = "file";
    input.accept = "image/png,image/jpeg,image/webp";
    input.disabled = !editable;
    input.title = "Replace this reference picture (kept as yours; the keyframes that show it are made again)";
    input.addEventListener("change", () => attempt(async () => {
      const done = await api("/api/reference?" + q({ run: studio.run, name: member.name }), { method: "PUT", body: input.files[0] });
      say(`saved ${done.saved}: the keyframes that show ${member.name} are made again on the next render`);
      await openRun(studio.run, { quiet: true });
    }));
    card.append(caption, input);
    return card;
  }));
}

// -- the timeline -------------------------------------------------------------------------

function fitZoom() {
  const duration = studio.state && studio.state.duration_s;
  if (!duration) return;
  const width = $("#timeline").clientWidth - 2;
  const zoom = parseFloat($("#zoom").value);
  // Never wider than a canvas may be.
  studio.pxPerS = Math.min((width / duration) * zoom, 30000 / duration);
}

const SECTION_COLOURS = ["#4e79a7", "#f28e2b", "#59a14f", "#b07aa1", "#edc948", "#76b7b2", "#ff9da7", "#9c755f", "#bab0ac", "#e15759"];
const sectionColour = (label) => SECTION_COLOURS[((label || "A").toUpperCase().charCodeAt(0) - 65 + 100) % SECTION_COLOURS.length];

function cutTimes() {
  return studio.state.shots.slice(1).map((shot) => shot.start_s);
}

function drawTimeline() {
  const state = studio.state;
  const canvas = $("#wave");
  if (!state || !state.duration_s) { canvas.width = 0; $("#strip").replaceChildren(); return; }
  const width = Math.ceil(state.duration_s * studio.pxPerS);
  const ratio = window.devicePixelRatio || 1;
  canvas.width = width * ratio;
  canvas.height = WAVE_HEIGHT_PX * ratio;
  canvas.style.width = width + "px";
  canvas.style.height = WAVE_HEIGHT_PX + "px";
  $("#timeline-inner").style.width = width + "px";
  const g = canvas.getContext("2d");
  g.scale(ratio, ratio);
  g.clearRect(0, 0, width, WAVE_HEIGHT_PX);
  const x = studio.timeToX;
  // Sections: a coloured band with the letter and role, and a faint wash below.
  g.font = "11px system-ui, sans-serif";
  for (const section of state.sections) {
    const left = x(section.start_s), right = x(section.end_s);
    g.fillStyle = sectionColour(section.label);
    g.globalAlpha = 0.85;
    g.fillRect(left, 0, right - left, BAND_HEIGHT_PX);
    g.globalAlpha = 0.08;
    g.fillRect(left, BAND_HEIGHT_PX, right - left, WAVE_HEIGHT_PX - BAND_HEIGHT_PX);
    g.globalAlpha = 1;
    g.fillStyle = "#fff";
    g.fillText(`${section.label} ${section.role}`, left + 4, 13, Math.max(0, right - left - 6));
  }
  const top = BAND_HEIGHT_PX, height = WAVE_HEIGHT_PX - BAND_HEIGHT_PX, middle = top + height / 2;
  // Beats (light) and downbeats (darker), under the waveform.
  g.fillStyle = "rgba(27,31,36,0.13)";
  for (const t of state.beats_s) g.fillRect(Math.round(x(t)), top, 1, height);
  g.fillStyle = "rgba(27,31,36,0.45)";
  for (const t of state.downbeats_s) g.fillRect(Math.round(x(t)), top, 1, height);
  // The waveform's min/max envelope.
  const wave = studio.wave;
  if (wave) {
    g.fillStyle = "#4e79a7";
    const columns = wave.max.length;
    const perPixel = columns / width;
    for (let px = 0; px < width; px++) {
      const from = Math.floor(px * perPixel), to = Math.max(from + 1, Math.floor((px + 1) * perPixel));
      let low = 0, high = 0;
      for (let i = from; i < Math.min(to, columns); i++) { low = Math.min(low, wave.min[i]); high = Math.max(high, wave.max[i]); }
      const y0 = middle - high * (height / 2 - 2), y1 = middle - low * (height / 2 - 2);
      g.fillRect(px, y0, 1, Math.max(1, y1 - y0));
    }
  }
  // Cuts: red lines with a grip at the top.
  g.fillStyle = "#e15759";
  for (const t of cutTimes()) {
    const cx = Math.round(x(t));
    g.fillRect(cx - 1, 0, 2, WAVE_HEIGHT_PX);
    g.beginPath();
    g.moveTo(cx - 6, 0); g.lineTo(cx + 6, 0); g.lineTo(cx, 9); g.closePath(); g.fill();
  }
  drawStrip();
  movePlayhead();
}

function drawStrip() {
  const state = studio.state;
  const edit = state.edit || {};
  const strip = $("#strip");
  strip.replaceChildren(...state.shots.map((shot) => {
    const box = document.createElement("div");
    box.className = "shot";
    box.id = shot.id;
    box.dataset.index = shot.index;
    box.classList.toggle("selected", shot.index === studio.selected);
    box.classList.toggle("failed", Boolean(shot.failed));
    box.classList.toggle("changed", (edit.changed || []).includes(shot.id));
    box.classList.toggle("locked", (edit.locked || []).includes(shot.id));
    box.style.left = studio.timeToX(shot.start_s) + "px";
    box.style.width = Math.max(2, studio.timeToX(shot.end_s - shot.start_s)) + "px";
    box.title = `${shot.id} ${shot.start_s.toFixed(2)}–${shot.end_s.toFixed(2)} s` + (shot.scene ? `\n${shot.scene}` : "") + (shot.failed ? `\nfailed: ${shot.failed}` : "");
    if (shot.clip || shot.keyframe) {
      const picture = document.createElement("img");
      picture.alt = shot.id;
      picture.loading = "lazy";
      picture.src = "/api/thumbnail?" + q({ path: shot.keyframe || shot.clip });
      box.append(picture);
    }
    const label = document.createElement("div");
    label.className = "label";
    label.textContent = shot.scene ? `${shot.id.replace("shot-", "")} ${shot.scene}` : shot.id;
    box.append(label);
    box.addEventListener("click", () => { selectShot(shot.index); seek(shot.start_s); });
    return box;
  }));
  markRendered();
}

function movePlayhead() {
  const player = $("#player");
  $("#playhead").style.left = studio.timeToX(player.currentTime || 0) + "px";
}

function seek(t) {
  const player = $("#player");
  if (!studio.state || !studio.state.video) return;
  player.currentTime = Math.max(0, Math.min(t, studio.state.duration_s));
  movePlayhead();
}

function nearest(times, t) {
  let best = null;
  for (const candidate of times) if (best === null || Math.abs(candidate - t) < Math.abs(best - t)) best = candidate;
  return best;
}

function eventTime(event) {
  const box = $("#wave").getBoundingClientRect();
  return studio.xToTime(event.clientX - box.left);
}

function cutNear(event) {
  const box = $("#wave").getBoundingClientRect();
  const px = event.clientX - box.left;
  let found = null;
  cutTimes().forEach((t, i) => {
    const distance = Math.abs(studio.timeToX(t) - px);
    if (distance <= CUT_GRAB_PX && (found === null || distance < found.distance)) found = { cut: i + 1, distance };
  });
  return found && found.cut;  // cut i starts shot i
}

function snapTime(t, toDownbeat) {
  const grid = toDownbeat ? studio.state.downbeats_s : studio.state.beats_s;
  const snapped = nearest(grid, t);
  return snapped === null ? t : snapped;
}

function onWaveDown(event) {
  if (!studio.state) return;
  const cut = cutNear(event);
  if (cut !== null && studio.state.edit && studio.state.edit.available) {
    studio.drag = { cut, t: studio.state.shots[cut].start_s, downbeat: event.shiftKey };
    event.preventDefault();
    return;
  }
  seek(eventTime(event));
  const t = eventTime(event);
  const shot = studio.state.shots.find((s) => s.start_s <= t && t < s.end_s);
  if (shot) selectShot(shot.index);
}

function onMove(event) {
  const ghost = $("#ghost");
  if (!studio.drag) {
    $("#wave").style.cursor = studio.state && cutNear(event) !== null ? "ew-resize" : "crosshair";
    return;
  }
  const downbeat = event.shiftKey;
  const t = snapTime(eventTime(event), downbeat);
  studio.drag.t = t;
  studio.drag.downbeat = downbeat;
  ghost.hidden = false;
  ghost.style.left = studio.timeToX(t) + "px";
  ghost.dataset.label = `${t.toFixed(3)} s (${downbeat ? "downbeat" : "beat"})`;
}

async function onUp() {
  const drag = studio.drag;
  if (!drag) return;
  studio.drag = null;
  $("#ghost").hidden = true;
  await attempt(() => edit("move_cut", { cut: drag.cut, to_s: drag.t, snap: drag.downbeat ? "downbeat" : "beat" }));
}

// -- shot editing -------------------------------------------------------------------------

function selectShot(index) {
  studio.selected = index;
  for (const box of document.querySelectorAll(".shot")) box.classList.toggle("selected", Number(box.dataset.index) === index);
  drawShotForm();
}

function drawShotForm() {
  const form = $("#shot-form");
  const state = studio.state;
  const shot = state && studio.selected !== null ? state.shots[studio.selected] : null;
  form.hidden = !shot;
  if (!shot) return;
  const editable = Boolean(state.edit && state.edit.available);
  $("#edit-missing").hidden = editable;
  $("#edit-missing").textContent = editable ? "" : (state.edit && state.edit.why) || "this run cannot be edited yet";
  for (const button of form.querySelectorAll("[data-needs-edit]")) button.disabled = !editable || shot.scene === undefined;
  $("#shot-name").textContent = shot.id;
  $("#shot-time").textContent = `${shot.start_s.toFixed(3)}–${shot.end_s.toFixed(3)} s`;
  for (const name of ["scene", "prompt", "negative_prompt", "seed", "camera"]) form.elements[name].value = shot[name] ?? "";
  for (const name of ["characters", "places", "props"]) form.elements[name].value = (shot[name] || []).join(", ");
  const known = ["characters", "places", "props"].filter((name) => (state[name] || []).length).map((name) => `${name}: ${state[name].join(", ")}`);
  $("#cast-names").textContent = known.length ? `In the storyboard: ${known.join("; ")}` : "";
  const locked = (state.edit && state.edit.locked || []).includes(shot.id);
  $("#lock-shot").textContent = locked ? "Unlock" : "Lock";
  $("#lock-shot").dataset.locked = locked ? "1" : "0";
  drawTakes(shot).catch((error) => say(error.message, true));
}

// The clip the video uses now beside the latest other take of the same shot: keep either.
async function drawTakes(shot) {
  const panel = $("#takes");
  const box = panel.querySelector(".takes");
  if (!studio.state.edit || !studio.state.edit.available) { panel.hidden = true; return; }
  const { takes } = await api("/api/takes?" + q({ run: studio.run, shot: shot.index }));
  if (studio.selected !== shot.index) return;  // another shot was picked meanwhile
  const current = takes.find((take) => take.current);
  const others = takes.filter((take) => !take.current && take.clip);
  if (!current || !current.clip || !others.length) { panel.hidden = true; box.replaceChildren(); return; }
  const previous = others[others.length - 1];
  const figure = (take, label) => {
    const item = document.createElement("figure");
    item.className = "take";
    item.dataset.number = take.number;
    const video = document.createElement("video");
    video.controls = true;
    video.muted = true;
    video.loop = true;
    video.src = fileUrl(take.clip);
    const caption = document.createElement("figcaption");
    caption.textContent = `${label}: take ${take.number}, ${take.recorded.replace("T", " ").slice(0, 19)}`;
    caption.title = take.prompt;
    const keep = document.createElement("button");
    keep.type = "button";
    keep.className = "keep";
    keep.textContent = take.current ? "Keep this (it is in the video)" : "Keep this";
    keep.addEventListener("click", () => attempt(async () => {
      if (take.current) { panel.hidden = true; return; }
      const started = await api("/api/keep_take", { method: "POST", json: { run: studio.run, shot: shot.index, number: take.number } });
      watchJob(started.job);
    }));
    item.append(video, caption, keep);
    return item;
  };
  box.replaceChildren(figure(previous, "previous"), figure(current, "new"));
  panel.hidden = false;
}

async function edit(operation, args) {
  const state = await api("/api/edit", { method: "POST", json: { run: studio.run, operation, ...args } });
  await openRun(studio.run, { quiet: true });
  return state;
}

async function saveShot(event) {
  event.preventDefault();
  const form = $("#shot-form");
  const fields = {};
  for (const name of ["scene", "prompt", "negative_prompt", "camera"]) fields[name] = form.elements[name].value;
  fields.seed = parseInt(form.elements.seed.value, 10);
  for (const name of ["characters", "places", "props"]) {
    // Only the lists this storyboard has (an older storyboard has no places or props).
    if (name === "characters" || (studio.state[name] || []).length || form.elements[name].value.trim()) {
      fields[name] = form.elements[name].value.split(",").map((s) => s.trim()).filter(Boolean);
    }
  }
  await edit("update_shot", { shot: studio.selected, fields });
  say(`saved ${studio.state.shots[studio.selected].id}`);
}

async function rerender(shots) {
  const started = await api("/api/rerender", { method: "POST", json: { run: studio.run, shots } });
  watchJob(started.job);
}

// -- start-up -----------------------------------------------------------------------------

function wire() {
  $("#new-run").addEventListener("click", () => { $("#start").hidden = false; $("#run").hidden = true; });
  $("#run-picker").addEventListener("change", (event) => event.target.value && attempt(() => openRun(event.target.value)));
  $("#upload").addEventListener("change", (event) => event.target.files[0] && attempt(() => upload(event.target.files[0])));
  $("#start-form").addEventListener("submit", (event) => attempt(() => startRun(event)));
  $("#cancel-job").addEventListener("click", () => attempt(cancelJob));
  $("#zoom").addEventListener("input", () => { fitZoom(); drawTimeline(); });
  $("#wave").addEventListener("mousedown", onWaveDown);
  window.addEventListener("mousemove", onMove);
  window.addEventListener("mouseup", onUp);
  window.addEventListener("resize", () => { fitZoom(); drawTimeline(); });
  $("#player").addEventListener("timeupdate", movePlayhead);
  $("#player").addEventListener("seeked", movePlayhead);
  const followPlayhead = () => { if (!$("#player").paused) movePlayhead(); requestAnimationFrame(followPlayhead); };
  requestAnimationFrame(followPlayhead);
  $("#shot-form").addEventListener("submit", (event) => attempt(() => saveShot(event)));
  $("#lock-shot").addEventListener("click", () => attempt(() => edit("lock_shot", { shot: studio.selected, locked: $("#lock-shot").dataset.locked !== "1" })));
  $("#split-shot").addEventListener("click", () => attempt(() => {
    // At the playhead when it is inside the shot, else in the shot's middle; the server snaps it to a beat.
    const shot = studio.state.shots[studio.selected];
    const playhead = $("#player").currentTime;
    const at = playhead > shot.start_s && playhead < shot.end_s ? playhead : (shot.start_s + shot.end_s) / 2;
    return edit("split_shot", { shot: studio.selected, at_s: at });
  }));
  $("#merge-shot").addEventListener("click", () => attempt(() => edit("merge_shots", { shot: studio.selected })));
  $("#rerender-shot").addEventListener("click", () => attempt(() => rerender([studio.selected])));
  $("#rerender-changed").addEventListener("click", () => attempt(() => rerender("changed")));
  $("#add-reference").addEventListener("click", addReferenceRow);
  $("#keyframe-file").addEventListener("change", (event) => attempt(async () => {
    const done = await api("/api/keyframe?" + q({ run: studio.run, shot: studio.selected }), { method: "PUT", body: event.target.files[0] });
    event.target.value = "";
    await openRun(studio.run, { quiet: true });
    say(`saved ${done.saved}: renderers that start shots from pictures use it`);
  }));
}

async function main() {
  wire();
  studio.options = await api("/api/options");
  $("#work-folder").textContent = `work folder: ${studio.options.work_folder}`;
  const pipeline = $("#pipeline");
  for (const name of studio.options.pipelines) pipeline.add(new Option(name, name));
  const form = $("#start-form");
  for (const [name, value] of Object.entries(studio.options.defaults)) if (form.elements[name]) form.elements[name].value = value;
  const work = await loadWork();
  const wanted = new URLSearchParams(location.hash.slice(1)).get("run");
  if (wanted) await attempt(() => openRun(wanted));
  else if (!work.runs.length) $("#start").hidden = false;
  document.body.dataset.ready = "1";
}

main().catch((error) => say(error.message, true));
