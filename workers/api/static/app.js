// maskwatch dashboard: one tile per camera, updated live from /api/v1/stream.
// Auth is a session cookie (POST /auth/login); the stream is still read with fetch(), which
// sends the cookie too (the native EventSource could replace it now).
"use strict";

const state = { cameras: new Map(), staleAfter: 60, target: 0.8, clockOffsetMs: 0, updates: 0 };
const $ = (id) => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";

function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;
  return node;
}

function pct(ratio) { return ratio === null || ratio === undefined ? "–" : (ratio * 100).toFixed(1) + "%"; }
function grade(ratio) {
  if (ratio === null || ratio === undefined) return "none";
  return ratio >= Math.min(1, state.target + 0.1) ? "good" : ratio >= state.target ? "warn" : "bad";
}
function ago(seconds) {
  if (seconds < 60) return Math.round(seconds) + " s ago";
  if (seconds < 3600) return Math.round(seconds / 60) + " min ago";
  return Math.round(seconds / 3600) + " h ago";
}
function windowOf(cam, name) { return cam.windows.find((w) => w.window === name); }
function serverNow() { return Date.now() + state.clockOffsetMs; }

function sparkline(history) {
  // Compliance per minute over the last hour; minutes without faces leave gaps.
  const w = 240, h = 44, n = history.length;
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
  svg.setAttribute("preserveAspectRatio", "none");
  svg.setAttribute("class", "spark");
  const x = (i) => (n <= 1 ? w : (i / (n - 1)) * w);
  const y = (r) => h - 2 - r * (h - 4);
  const limit = document.createElementNS(SVG, "line");
  limit.setAttribute("class", "limit");
  limit.setAttribute("x1", "0"); limit.setAttribute("x2", String(w));
  limit.setAttribute("y1", String(y(state.target))); limit.setAttribute("y2", String(y(state.target)));
  svg.appendChild(limit);
  let segment = [];
  const flush = () => {
    if (segment.length === 0) return;
    const [x0, y0] = segment[0];
    const pts = segment.length === 1 ? [[Math.max(0, x0 - 3), y0], [x0, y0]] : segment;
    const line = document.createElementNS(SVG, "polyline");
    line.setAttribute("class", "line");
    line.setAttribute("points", pts.map((p) => p.join(",")).join(" "));
    svg.appendChild(line);
    segment = [];
  };
  history.forEach((point, i) => {
    if (point.compliance === null) flush();
    else segment.push([x(i).toFixed(1), y(point.compliance).toFixed(1)]);
  });
  flush();
  const title = document.createElementNS(SVG, "title");
  title.textContent = `Compliance per minute, last hour (dashed: target ${Math.round(state.target * 100)} %)`;
  svg.appendChild(title);
  return svg;
}

function renderTile(cam) {
  const tile = el("article", "tile");
  tile.dataset.camera = cam.camera_id;
  const w15 = windowOf(cam, "15m"), w1 = windowOf(cam, "1m"), w24 = windowOf(cam, "24h");
  const head = el("div", "tile-head");
  head.append(el("span", "camera", cam.camera_id), el("span", "seen"));
  const big = el("div", "big compliance " + grade(w15.compliance), pct(w15.compliance));
  big.append(el("small", "", "15 min"));
  const counts = el("div", "counts");
  const masked = el("span", "masked"); masked.append("masked ", el("b", "", String(w15.with_mask)));
  const unmasked = el("span", "unmasked"); unmasked.append("unmasked ", el("b", "", String(w15.without_mask)));
  const frames = el("span", "frames"); frames.append("frames ", el("b", "", String(w15.frames)));
  counts.append(masked, unmasked, frames);
  const windows = el("div", "windows");
  windows.append(el("span", "w1", "1 min " + pct(w1.compliance)), el("span", "w24", "24 h " + pct(w24.compliance)));
  const badges = el("div", "badges");
  for (const rule of cam.alerts) {
    if (rule.state === "firing") badges.append(el("span", "badge", rule.rule.replace("_", " ")));
  }
  tile.append(head, big, counts, windows, sparkline(cam.history), badges);
  if (cam.firing) tile.classList.add("firing");
  return tile;
}

function refreshAges() {
  // Staleness moves with the clock, not with data: recompute every second.
  const now = serverNow();
  for (const tile of document.querySelectorAll(".tile")) {
    const cam = state.cameras.get(tile.dataset.camera);
    if (!cam) continue;
    const silent = Math.max(0, (now - Date.parse(cam.last_seen)) / 1000);
    const stale = silent > state.staleAfter;
    tile.classList.toggle("stale", stale);
    tile.querySelector(".seen").textContent = (stale ? "stale · " : "") + "seen " + ago(silent);
  }
}

function upsert(cam) {
  state.cameras.set(cam.camera_id, cam);
  const fresh = renderTile(cam);
  const old = document.querySelector(`.tile[data-camera="${CSS.escape(cam.camera_id)}"]`);
  if (old) old.replaceWith(fresh);
  else {
    const tiles = $("tiles");
    const after = [...tiles.children].find((t) => t.dataset.camera > cam.camera_id);
    tiles.insertBefore(fresh, after || null);
  }
  $("empty").hidden = state.cameras.size > 0;
  countCameras();
}

function renderTotals(overview) {
  const box = $("totals");
  box.replaceChildren();
  for (const w of overview.windows) {
    const item = el("span", "total total-" + w.window);
    item.append(w.window + " ", el("b", grade(w.compliance), pct(w.compliance)), ` of ${w.faces} faces`);
    box.append(item);
  }
  box.append(el("span", "camera-count"));
  countCameras();
}

function countCameras() {
  const count = document.querySelector(".camera-count");
  if (count) count.textContent = `${state.cameras.size} cameras`;
}

function addAlert(event, prepend) {
  const li = el("li");
  li.append(el("span", event.state, event.state === "firing" ? "▲ firing " : "▼ resolved "),
    new Date(event.at).toLocaleTimeString() + " — " + event.message);
  const list = $("alerts");
  if (prepend) list.prepend(li); else list.append(li);
  while (list.children.length > 50) list.lastChild.remove();
}

function touched() {
  state.updates += 1;
  document.body.dataset.updates = String(state.updates);
  $("updated").textContent = "updated " + new Date().toLocaleTimeString();
  refreshAges();
}

function onEvent(type, data) {
  const body = JSON.parse(data);
  if (type === "snapshot") {
    state.staleAfter = body.stale_after_s;
    state.target = body.target;
    state.clockOffsetMs = Date.parse(body.at) - Date.now();
    const ids = new Set(body.cameras.map((c) => c.camera_id));
    for (const id of [...state.cameras.keys()]) {
      if (!ids.has(id)) {
        state.cameras.delete(id);
        document.querySelector(`.tile[data-camera="${CSS.escape(id)}"]`)?.remove();
      }
    }
    body.cameras.forEach(upsert);
    renderTotals(body);
    $("empty").hidden = body.cameras.length > 0;
  } else if (type === "camera") {
    upsert(body);
  } else if (type === "alert") {
    addAlert(body, true);
  }
  touched();
}

function setConn(up, text) {
  const conn = $("conn");
  conn.className = "conn " + (up ? "conn-up" : "conn-down");
  conn.textContent = text;
}

async function loadAlerts() {
  const res = await fetch("/api/v1/alerts?limit=50");
  if (!res.ok) return;
  $("alerts").replaceChildren();
  for (const event of await res.json()) addAlert(event, false);
}

async function stream() {
  const res = await fetch("/api/v1/stream", { cache: "no-store" });
  if (res.status === 401) { $("auth").hidden = false; throw new Error("unauthorized"); }
  if (!res.ok || !res.body) throw new Error("stream: HTTP " + res.status);
  setConn(true, "live");
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value.replace(/\r\n?/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let type = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) type = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
      }
      if (data.length) onEvent(type, data.join("\n"));
    }
  }
}

async function run() {
  let delay = 1000;
  for (;;) {
    try {
      await loadAlerts();
      await stream();
      delay = 1000;
    } catch (error) {
      console.warn(error);
    }
    setConn(false, "reconnecting…");
    await new Promise((resolve) => setTimeout(resolve, delay));
    delay = Math.min(delay * 2, 15000);
  }
}

// The token is exchanged once for an HttpOnly, SameSite=Strict session cookie: this page
// never stores it, and every later request (the stream included) carries the cookie.
$("auth").addEventListener("submit", async (event) => {
  event.preventDefault();
  const res = await fetch("/auth/login", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ token: $("token").value }),
  });
  $("token").value = "";
  $("auth").hidden = res.ok;
  if (!res.ok) setConn(false, "wrong token");
});
setInterval(refreshAges, 1000);
run();
