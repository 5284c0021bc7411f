// The detector web view: the live video (MJPEG), a panel kept fresh from /api/status (every second)
// and /events (Server-Sent Events), and, for several sources, a grid of snapshots. Plain JS, no build.
"use strict";

// token, $, url and el: common.js
let status = null; // the latest /api/status
let everUp = false; // the run answered at least once
let ended = false; // it stopped answering after that
let streamed = null; // the source the <img> streams, null for none
let eventsFor; // the source the event stream follows ("" = all); undefined = none open
let eventSource = null;
let recent = []; // the latest events, newest first
let inView = {}; // per source ("" for a record without one): {counts per class, at} of its newest frame (from /events)
const FRESH_MS = 2000; // a source's newest frame from /events is used this long, then /api/status's counts

function wanted() {
  // The source the page shows alone: the one in #source=NAME, or the only one; null = the grid.
  const m = /^#source=(.*)$/.exec(location.hash);
  if (m) return decodeURIComponent(m[1]);
  if (status && status.sources.length === 1) return status.sources[0].name;
  return null;
}

function fmt(n, digits = 0) {
  return n === null || n === undefined ? "–" : Number(n).toFixed(digits);
}

function duration(s) {
  s = Math.floor(s);
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
  return h ? `${h} h ${m} min` : m ? `${m} min ${r} s` : `${r} s`;
}

function phaseText(st, src) {
  if (ended) return "finished: the run has ended";
  const phase = src ? src.phase : st.phase;
  if (src && phase === "running" && !src.healthy) return "stalled: no frames";
  return { "loading the model": "loading the model…", connecting: "connecting…", reconnecting: "reconnecting…" }[phase] || phase;
}

function setPhase(text, cls) {
  const p = $("phase");
  p.textContent = text;
  p.className = "phase " + cls;
}

function fillRows(tbody, rows) {
  tbody.replaceChildren(...rows.map((cells) => {
    const tr = el("tr");
    cells.forEach((c) => tr.appendChild(el("td", String(c))));
    return tr;
  }));
}

function sum(obj) {
  return Object.values(obj || {}).reduce((a, b) => a + b, 0);
}

function clock(ev) {
  // The event's time of day, HH:MM:SS here (wall_time: capture time live, processing time for files).
  const t = ev.wall_time ? new Date(ev.wall_time) : null;
  return t && !isNaN(t) ? `${t.toTimeString().slice(0, 8)} ` : "";
}

function describe(ev) {
  const who = [ev.class_name, ev.track_id !== undefined && ev.track_id !== null ? `#${ev.track_id}` : ""].join(" ").trim();
  const at = ev.pts !== undefined && ev.pts !== null ? ` at ${Number(ev.pts).toFixed(1)} s` : "";
  const src = clock(ev) + (ev.source ? `[${ev.source}] ` : "");
  switch (ev.event) {
    case "track_new": return `${src}${who} appeared (new track)${at}`;
    case "line_cross": return `${src}${who} crossed ${ev.line} (${ev.direction})${at}`;
    case "zone_enter": return `${src}${who} entered ${ev.zone}${at}`;
    case "zone_exit": return `${src}${who} left ${ev.zone}${at}` + (ev.dwell_s !== undefined ? ` after ${ev.dwell_s} s` : "");
    case "gap": return `${src}stream lost for ${ev.seconds} s, reconnected (attempt ${ev.attempts})`;
    default: return `${src}${who ? who + " " : ""}${ev.event.replace(/_/g, " ")}${at}`;
  }
}

function objectsInView(src) {
  // Per class, in each source's newest frame: the event stream's when fresh (it is ahead of the 1 s
  // poll), else /api/status's; the grid adds up the sources (each counted once, never the latest only).
  const now = Date.now();
  const of = (s) => {
    const untagged = eventsFor === s.name || status.sources.length === 1; // a stream of this source alone
    const seen = inView[s.name] || (untagged ? inView[""] : undefined);
    return seen && seen.at > now - FRESH_MS ? seen.counts : s.counts || {};
  };
  if (src) return of(src);
  const total = {};
  for (const s of status.sources) {
    for (const [k, v] of Object.entries(of(s))) total[k] = (total[k] || 0) + v;
  }
  return total;
}

function renderPanel() {
  const st = status;
  const name = wanted();
  const src = st.sources.find((s) => s.name === name);
  const one = src || st; // one source's figures, or the run's sums for the grid
  $("title").textContent = src ? src.name : `${st.sources.length} sources`;
  $("model").textContent = st.model ? `${st.model.split("/").pop()} (${st.backend})` : "";
  $("fps").textContent = fmt(one.fps, 1);
  $("latency").textContent = `${fmt(one.latency_ms.p50)} / ${fmt(one.latency_ms.p95)} ms`;
  $("frames").textContent = src ? src.frames.processed : st.frames;
  $("dropped").textContent = src ? src.frames.dropped : st.dropped;
  $("uptime").textContent = duration(st.uptime_s);
  $("viewers").textContent = `${st.viewers.video} video, ${st.viewers.events} events`;
  const live = objectsInView(src);
  const totals = src ? src.detections : st.sources.reduce((acc, s) => {
    for (const [k, v] of Object.entries(s.detections)) acc[k] = (acc[k] || 0) + v;
    return acc;
  }, {});
  const classes = [...new Set([...Object.keys(live), ...Object.keys(totals)])].sort((a, b) => (totals[b] || 0) - (totals[a] || 0));
  fillRows($("counts").tBodies[0], classes.slice(0, 20).map((c) => [c, live[c] || 0, totals[c] || 0]));
  const lines = Object.entries(src ? src.lines : {});
  $("lines-box").hidden = !lines.length;
  fillRows($("lines").tBodies[0], lines.map(([n, l]) => [n, l.total.in, l.total.out]));
  const zones = Object.entries(src ? src.zones : {});
  $("zones-box").hidden = !zones.length;
  fillRows($("zones").tBodies[0], zones.map(([n, z]) => [n, sum(z.inside), sum(z.entered), sum(z.exited)]));
  if (!recent.length && src && src.events.length) recent = src.events.slice().reverse();
  const list = $("events");
  list.replaceChildren(...(recent.length ? recent.map((ev) => el("li", describe(ev))) : [el("li", "none yet", "muted")]));
}

function renderScreen() {
  const name = wanted();
  const src = status.sources.find((s) => s.name === name);
  $("single").hidden = !src;
  $("grid").hidden = !!src || status.sources.length < 2;
  $("back").hidden = !(src && status.sources.length > 1);
  if (src) {
    $("waiting").hidden = src.frames.processed > 0;
    $("waiting").textContent = phaseText(status, src);
    if (streamed !== name && !ended) {
      streamed = name;
      $("video").src = url("/stream.mjpg", { source: name });
    }
  } else {
    if (streamed !== null) { streamed = null; $("video").removeAttribute("src"); }
    renderGrid();
  }
  const shown = src || status;
  const text = phaseText(status, src);
  setPhase(text, ended ? "ended" : src && !src.healthy ? "stalled" : (shown.phase || "").split(" ")[0]);
}

function renderGrid() {
  const grid = $("grid");
  for (const s of status.sources) {
    let tile = grid.querySelector(`[data-source="${CSS.escape(s.name)}"]`);
    if (!tile) {
      tile = el("a", undefined, "tile");
      tile.dataset.source = s.name;
      tile.href = "#source=" + encodeURIComponent(s.name);
      const img = el("img");
      img.alt = s.name;
      tile.append(img, el("span"));
      grid.appendChild(tile);
      refreshTile(img, s.name);
    }
    tile.querySelector("span").textContent = `${s.name} · ${phaseText(status, s)} · ${fmt(s.fps, 1)} fps`;
  }
}

function refreshTile(img, name) {
  // Snapshots, each fetched once the previous one has loaded: as fast as the link allows, no pile-up.
  const next = (delay) => setTimeout(() => {
    if (!ended && !$("grid").hidden) img.src = url("/snapshot.jpg", { source: name, t: Date.now() });
    else next(1000);
  }, delay);
  img.onload = () => next(150);
  img.onerror = () => next(1000);
  next(0);
}

function followEvents() {
  const name = wanted() || "";
  if (eventsFor === name || ended) return;
  if (eventSource) eventSource.close();
  eventsFor = name;
  recent = [];
  inView = {};
  eventSource = new EventSource(url("/events", name ? { source: name } : {}));
  eventSource.onmessage = (msg) => {
    const rec = JSON.parse(msg.data);
    if (rec.event) {
      recent.unshift(rec);
      recent.length = Math.min(recent.length, 20);
    } else if (rec.detections) {
      const counts = {};
      for (const d of rec.detections) counts[d.class_name] = (counts[d.class_name] || 0) + 1;
      inView[rec.source || ""] = { counts, at: Date.now() };
    }
  };
}

async function poll() {
  try {
    const r = await fetch(url("/api/status"), { cache: "no-store" });
    if (!r.ok) throw new Error(`status ${r.status}`);
    status = await r.json();
    if (status.phase === "browsing") { location.replace(url("/history")); return; } // detector serve: no run
    $("history").hidden = !status.history; // a link once the run keeps an event store
    everUp = true;
    ended = false;
    renderScreen();
    renderPanel();
    followEvents();
  } catch (e) {
    if (everUp && !ended) {
      ended = true;
      if (eventSource) eventSource.close();
      setPhase(phaseText(status || {}, null), "ended");
    } else if (!everUp) {
      setPhase(`cannot reach the run (${e.message})`, "ended");
    }
  }
  setTimeout(poll, 1000);
}

$("video").onerror = () => {
  // The stream broke (a restart, a refused viewer): try again in a moment.
  if (streamed !== null && !ended) {
    const name = streamed;
    streamed = null;
    setTimeout(() => { if (!ended && wanted() === name) { streamed = name; $("video").src = url("/stream.mjpg", { source: name }); } }, 2000);
  }
};
$("video").onload = () => { $("waiting").hidden = true; };

window.addEventListener("hashchange", () => { if (status) { renderScreen(); renderPanel(); followEvents(); } });
poll();
