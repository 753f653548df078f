// The participant's side of a music2video study: one blinded video at a time, rated on every
// dimension once it has played to its end; each video's ratings are saved before the next.
"use strict";

const KEY = "music2video-study-participant";
const $ = (id) => document.getElementById(id);
let study = null;
let me = null;          // {id, order, done, finished, attention}
let current = null;     // the code of the video being rated
let watched = 0;        // seconds played of the current video

async function api(path, options = {}) {
  const response = await fetch(path, {headers: {"Content-Type": "application/json", "X-Studio": "1"}, ...options});
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = new Error(body.detail ? String(typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail)) : response.statusText);
    error.status = response.status;
    throw error;
  }
  return body;
}

function show(section) {
  for (const id of ["welcome", "rate", "done"]) $(id).hidden = id !== section;
}

function fatal(message) {
  $("fatal").textContent = message;
  $("fatal").hidden = false;
}

function scale(name, points, anchors) {
  const row = document.createElement("div");
  row.className = "scale";
  const low = document.createElement("span");
  low.className = "anchor";
  low.textContent = anchors[0];
  row.append(low);
  for (let value = 1; value <= points; value++) {
    const label = document.createElement("label");
    const input = document.createElement("input");
    input.type = "radio";
    input.name = name;
    input.value = String(value);
    input.required = true;
    label.append(input, document.createTextNode(String(value)));
    row.append(label);
  }
  const high = document.createElement("span");
  high.className = "anchor";
  high.textContent = anchors[1];
  row.append(high);
  return row;
}

function buildQuestions(code) {
  const box = $("questions");
  box.replaceChildren();
  const items = study.dimensions.map((d) => ({name: d.id, label: d.label, question: d.question}));
  if (me.attention && me.attention.video === code) {
    // The attention item sits among the questions, not first or last, so it is read like them.
    items.splice(Math.min(2, items.length), 0, {name: "__attention__", label: "", question: me.attention.question, attention: true});
  }
  for (const item of items) {
    const div = document.createElement("div");
    div.className = "question" + (item.attention ? " attention" : "");
    div.dataset.dimension = item.name;
    const text = document.createElement("p");
    if (item.label) {
      const label = document.createElement("span");
      label.className = "label";
      label.textContent = item.label + ": ";
      text.append(label);
    }
    text.append(document.createTextNode(item.question));
    div.append(text, scale(item.name, study.scale.points, study.scale.anchors));
    box.append(div);
  }
}

function next() {
  const remaining = me.order.filter((code) => !me.done.includes(code));
  if (me.finished || remaining.length === 0) {
    $("participant-id").textContent = me.id;
    show("done");
    return;
  }
  current = remaining[0];
  watched = 0;
  $("progress").textContent = `Video ${me.done.length + 1} of ${me.order.length}`;
  $("error").textContent = "";
  buildQuestions(current);
  $("questions").disabled = true;
  $("submit").disabled = true;
  $("watch-note").hidden = false;
  const player = $("player");
  player.controls = false;
  player.src = `/video/${encodeURIComponent(current)}`;
  player.load();
  $("play").hidden = false;
  $("play").disabled = false;
  show("rate");
  window.scrollTo(0, 0);
}

function unlock() {
  $("questions").disabled = false;
  $("submit").disabled = false;
  $("watch-note").hidden = true;
  $("player").controls = true;  // watching again is allowed once it has been seen in full
}

async function submit(event) {
  event.preventDefault();
  const form = new FormData($("form"));
  const ratings = {};
  for (const d of study.dimensions) {
    const value = form.get(d.id);
    if (value === null) {
      $("error").textContent = `Please answer every question (${d.label}).`;
      return;
    }
    ratings[d.id] = Number(value);
  }
  let attention = null;
  if (me.attention && me.attention.video === current) {
    const value = form.get("__attention__");
    if (value === null) {
      $("error").textContent = "Please answer every question.";
      return;
    }
    attention = Number(value);
  }
  $("submit").disabled = true;
  try {
    me = await api("/api/answers", {method: "POST", body: JSON.stringify({participant: me.id, video: current, ratings, attention, watched_s: watched})});
  } catch (error) {
    if (error.status === 409) {  // saved already (a second click, another tab): move on
      me = await api(`/api/participants/${me.id}`);
    } else {
      $("error").textContent = `Not saved: ${error.message}. Please try again.`;
      $("submit").disabled = false;
      return;
    }
  }
  next();
}

async function begin() {
  $("start").disabled = true;
  try {
    me = await api("/api/participants", {method: "POST"});
    localStorage.setItem(KEY, me.id);
    next();
  } catch (error) {
    fatal(`The study could not start: ${error.message}`);
  }
}

async function main() {
  try {
    study = await api("/api/study");
  } catch (error) {
    fatal(`The study could not be loaded: ${error.message}`);
    return;
  }
  document.title = study.title;
  $("instructions").textContent = study.instructions;
  const player = $("player");
  player.addEventListener("timeupdate", () => { watched = Math.max(watched, player.currentTime); });
  player.addEventListener("ended", () => { watched = Math.max(watched, player.duration || 0); unlock(); });
  player.addEventListener("error", () => { $("error").textContent = "This video cannot be played in this browser."; });
  $("play").addEventListener("click", () => {
    $("play").hidden = true;
    player.play().catch((error) => { $("play").hidden = false; $("error").textContent = `The video did not start: ${error.message}`; });
  });
  $("start").addEventListener("click", begin);
  $("form").addEventListener("submit", submit);

  const saved = localStorage.getItem(KEY);
  if (saved) {
    try {
      me = await api(`/api/participants/${saved}`);
      next();  // resume at the first video not rated yet
      return;
    } catch (error) {
      localStorage.removeItem(KEY);  // a different study, or a new database
    }
  }
  show("welcome");
}

main();
