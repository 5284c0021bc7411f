// The history page: review items from /api/reviews (newest first, filtered, a page at a time), each
// with its thumbnail; choosing one plays its clip with its events marked on a timeline under it.
// Keyboard: up/down or j/k move, Enter plays, space pauses, left/right seek 5 s, f the filters.
"use strict";

// token, $, url and el: common.js
const PAGE = 50;
let items = []; // shown, newest first
let next = null; // the cursor of the next page
let selected = -1;
let shown = null; // the item whose clip is in the player
let generation = 0; // bumps when the filters change: answers to older requests are dropped

async function getJSON(path, params) {
  const r = await fetch(url(path, params), { cache: "no-store" });
  if (!r.ok) throw new Error(`${r.status} ${(await r.text()).trim()}`);
  return r.json();
}

function filters() {
  const f = { source: $("f-source").value, class: $("f-class").value, zone: $("f-zone").value, severity: $("f-severity").value };
  const day = $("f-day").value; // YYYY-MM-DD: the viewer's local day
  if (day) {
    const [y, m, d] = day.split("-").map(Number);
    f.after = new Date(y, m - 1, d).getTime() / 1000;
    f.before = new Date(y, m - 1, d + 1).getTime() / 1000;
  }
  return f;
}

function when(t) {
  return new Date(t * 1000).toLocaleString([], { dateStyle: "medium", timeStyle: "medium" });
}

function span(item) {
  const s = Math.max(0, item.media_end - item.media_start); // of the video (a file runs faster than that)
  return s < 60 ? `${s.toFixed(1)} s` : `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
}

function card(item) {
  const li = el("li", undefined, `item ${item.severity}`);
  li.dataset.reviewId = item.id;
  li.tabIndex = -1;
  li.setAttribute("role", "option");
  const img = el("img");
  img.alt = `${item.objects.join(", ") || "activity"} on ${item.source}`;
  img.loading = "lazy";
  if (item.thumbnail_url) img.src = url(item.thumbnail_url);
  const text = el("div");
  const head = el("div", when(item.start_time), "when");
  head.append(el("span", item.severity, `badge ${item.severity}`));
  if (item.in_progress) head.append(el("span", "in progress", "badge live"));
  const what = [item.objects.join(", "), item.zones.length ? `in ${item.zones.join(", ")}` : "",
    item.lines.length ? `across ${item.lines.join(", ")}` : ""].filter(Boolean).join(" ");
  text.append(head, el("div", `${item.source} · ${span(item)} · ${item.events.length} events`, "muted"),
    el("div", what || "activity", "what"));
  li.append(img, text);
  li.addEventListener("click", () => choose(items.findIndex((i) => i.id === item.id), true));
  return li;
}

function render() {
  const list = $("items");
  list.replaceChildren(...items.map(card));
  $("empty").hidden = items.length > 0;
  $("more").hidden = !next;
  $("count").textContent = `${items.length}${next ? "+" : ""} items`;
  mark();
}

function mark() {
  const cards = $("items").children;
  for (let i = 0; i < cards.length; i++) cards[i].setAttribute("aria-selected", i === selected ? "true" : "false");
}

let fetchingMore = false;  // one "more" at a time: a second click on the same cursor would list its page twice

async function load(more = false) {
  if (more && fetchingMore) return;
  const mine = more ? generation : ++generation;
  const params = { ...filters(), limit: PAGE };
  if (more) { params.cursor = next; fetchingMore = true; }
  try {
    const page = await getJSON("/api/reviews", params);
    if (mine !== generation) return;
    if (!more) { items = []; selected = -1; }
    items = items.concat(page.items);
    next = page.next;
    render();
  } catch (e) {
    $("count").textContent = `cannot list the items (${e.message})`;
  } finally {
    if (more) fetchingMore = false;
  }
}

async function refresh() {
  // New items at the top (and ones still in progress), while the filters stay as they are.
  const mine = generation;
  try {
    const page = await getJSON("/api/reviews", { ...filters(), limit: PAGE });
    if (mine !== generation) return;
    const known = new Map(items.map((item, k) => [item.id, k]));
    const fresh = page.items.filter((item) => !known.has(item.id));
    let changed = fresh.length > 0;
    for (const item of page.items) {
      const k = known.get(item.id);
      if (k !== undefined && JSON.stringify(items[k]) !== JSON.stringify(item)) { items[k] = item; changed = true; }
    }
    if (!changed) return;
    const id = selected >= 0 ? items[selected].id : null;
    items = fresh.concat(items);
    selected = id ? items.findIndex((i) => i.id === id) : -1;
    render();
  } catch (e) { /* the next refresh tries again */ }
}

async function facets() {
  try {
    const f = await getJSON("/api/facets");
    for (const [id, values] of [["f-source", f.sources], ["f-class", f.classes], ["f-zone", f.zones]]) {
      const select = $(id);
      const keep = select.value;
      const option = (text, value) => { const o = el("option", text); o.value = value; return o; };
      select.replaceChildren(option("all", ""), ...values.map((v) => option(v, v)));
      select.value = values.includes(keep) ? keep : "";
    }
  } catch (e) { /* no store yet: the filters stay empty */ }
}

function choose(index, play) {
  if (index < 0 || index >= items.length) return;
  selected = index;
  mark();
  const li = $("items").children[index];
  li.focus({ preventScroll: true });
  li.scrollIntoView({ block: "nearest" });
  if (play) show(items[index]);
}

async function show(item) {
  shown = item;
  const player = $("player");
  $("title").textContent = `${item.source} · ${when(item.start_time)} · ${item.severity}`;
  $("details").textContent = `${item.objects.join(", ") || "activity"} · ${span(item)}` +
    (item.zones.length ? ` · zones ${item.zones.join(", ")}` : "") + (item.lines.length ? ` · lines ${item.lines.join(", ")}` : "");
  if (item.clip) {
    player.src = url(item.clip.url);
    player.play().catch(() => {});
  } else {
    player.removeAttribute("src");
    player.load();
    $("details").textContent += " · no clip (the run kept none)";
  }
  let detail;
  try { detail = await getJSON(`/api/reviews/${item.id}`); } catch (e) { return; }
  if (shown !== item) return;
  marks(detail);
}

function marks(detail) {
  const bar = $("timeline");
  const clip = detail.clip;
  const list = $("records");
  bar.replaceChildren();
  list.replaceChildren();
  for (const rec of detail.records) {
    const at = clip && clip.media_start !== null ? Math.max(0, rec.pts - clip.media_start) : null;
    const text = `${at !== null ? at.toFixed(1) + " s: " : ""}${rec.event}${rec.line ? " " + rec.line : ""}${rec.zone ? " " + rec.zone : ""}` +
      `${rec.direction ? " " + rec.direction : ""} · ${rec.class_name || ""}${rec.track_id !== undefined && rec.track_id !== null ? " #" + rec.track_id : ""}`;
    const li = el("li", text);
    if (at !== null) li.addEventListener("click", () => seek(at));
    list.append(li);
    if (at !== null && clip.duration) {
      const tick = el("button");
      tick.type = "button";
      tick.title = text;
      tick.setAttribute("aria-label", text);
      tick.dataset.offset = at.toFixed(3);
      tick.style.left = `${Math.min(100, (100 * at) / clip.duration)}%`;
      tick.addEventListener("click", () => seek(at));
      bar.append(tick);
    }
  }
  bar.append(el("div", undefined, "now"));
}

function seek(t) {
  const player = $("player");
  player.currentTime = t;
  player.play().catch(() => {});
}

$("player").addEventListener("timeupdate", () => {
  const now = $("timeline").querySelector(".now");
  const d = $("player").duration;
  if (now && d) now.style.left = `${(100 * $("player").currentTime) / d}%`;
});

document.addEventListener("keydown", (e) => {
  const tag = (e.target && e.target.tagName) || "";
  if (["INPUT", "SELECT", "TEXTAREA"].includes(tag) || e.ctrlKey || e.metaKey || e.altKey) {
    if (e.key === "Escape" && e.target.blur) e.target.blur();
    return;
  }
  const player = $("player");
  const keys = {
    ArrowDown: () => choose(Math.min(items.length - 1, selected + 1), false),
    j: () => choose(Math.min(items.length - 1, selected + 1), false),
    ArrowUp: () => choose(Math.max(0, selected - 1), false),
    k: () => choose(Math.max(0, selected - 1), false),
    Enter: () => choose(selected < 0 ? 0 : selected, true),
    " ": () => { if (player.src) { if (player.paused) player.play().catch(() => {}); else player.pause(); } },
    ArrowLeft: () => { if (player.src) player.currentTime = Math.max(0, player.currentTime - 5); },
    ArrowRight: () => { if (player.src) player.currentTime = player.currentTime + 5; },
    f: () => $("f-source").focus(),
  };
  const act = keys[e.key];
  if (act && tag !== "BUTTON" && tag !== "VIDEO") { e.preventDefault(); act(); }
  else if (act && (e.key.startsWith("Arrow") || e.key === "j" || e.key === "k")) { e.preventDefault(); act(); }
});

$("filters").addEventListener("change", () => load(false));
$("filters").addEventListener("submit", (e) => { e.preventDefault(); load(false); });
$("more").addEventListener("click", () => load(true));
// ?review=ID (a notification's link): that item, chosen and playing once the list is in
const linked = new URLSearchParams(location.search).get("review");
facets().then(() => load(false)).then(() => {
  if (!linked) return;
  const k = items.findIndex((i) => i.id === linked);
  if (k >= 0) choose(k, true);
  else showLinked(linked);
});

// A linked item not in the list: shown, or, gone (404), said so in the page. The hook for retention's
// record of what it deleted: a 404 whose JSON body has deleted_time (Unix s) says when.
async function showLinked(id) {
  const r = await fetch(url(`/api/reviews/${encodeURIComponent(id)}`), { cache: "no-store" });
  if (r.ok) return show(await r.json());
  let body = null;
  try { body = await r.json(); } catch (e) { /* a plain-text answer */ }
  const date = body && body.deleted_time ? when(body.deleted_time) : null;
  $("title").textContent = r.status !== 404 ? `review item ${id}: ${r.status} ${r.statusText}`
    : date ? `this item was deleted by retention on ${date}` : "this item no longer exists (deleted)";
  $("details").textContent = `review item ${id}`;
}
setInterval(() => { refresh(); facets(); }, 5000);
