// maskwatch dashboard: one tile per camera. First paint from GET /api/v1/cameras (fetched
// together with the alerts), then only changes from /api/v1/stream (since that view's time).
// Auth is a session cookie (POST /auth/login), which fetch() and the browser's own EventSource
// send by themselves (same origin): the page never holds the token.
"use strict";

const state = {
  cameras: new Map(), tiles: new Map(), staleAfter: 60, target: 0.8, clockOffsetMs: 0,
  updates: 0, view: { search: "", label: "", sort: "id", group: "" },
};
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
function silentFor(cam) {
  // a camera never seen is silent for ever (it sorts first under "longest silent")
  if (!cam.last_seen) return Infinity;
  return Math.max(0, (serverNow() - Date.parse(cam.last_seen)) / 1000);
}
const STATE_TEXT = { live: "live", stale: "stale", disconnected: "disconnected", never_seen: "never seen" };

function sparkline(values) {
  // Compliance per minute over the last hour; minutes without faces leave gaps.
  const w = 240, h = 44, n = values.length;
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
  values.forEach((value, i) => {
    if (value === null) flush();
    else segment.push([x(i).toFixed(1), y(value).toFixed(1)]);
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
  tile.tabIndex = 0;  // the tile opens the camera's page (click or Enter)
  tile.setAttribute("role", "link");
  tile.title = "Open " + cam.camera_id;
  const w15 = windowOf(cam, "15m"), w1 = windowOf(cam, "1m"), w24 = windowOf(cam, "24h");
  const head = el("div", "tile-head");
  head.append(el("span", "camera", cam.camera_id), el("span", "seen"));
  const labels = el("div", "labels");
  for (const [name, value] of Object.entries(cam.labels || {})) labels.append(el("span", "label", `${name}: ${value}`));
  const big = el("div", "big compliance " + grade(w15.compliance), pct(w15.compliance));
  big.append(el("small", "", "15 min"));
  const counts = el("div", "counts");
  const masked = el("span", "masked"); masked.append("masked ", el("b", "", String(w15.with_mask)));
  const unmasked = el("span", "unmasked"); unmasked.append("unmasked ", el("b", "", String(w15.without_mask)));
  const frames = el("span", "frames"); frames.append("frames ", el("b", "", String(w15.frames)));
  counts.append(masked, unmasked, frames);
  if (w15.skipped > 0) {
    // frames the detector shed unseen (overload): their faces are not in the figures
    const share = ((w15.skipped / w15.frames) * 100).toFixed(0);
    counts.append(el("span", "skipped", `skipped ${share}%`));
  }
  const windows = el("div", "windows");
  windows.append(el("span", "w1", "1 min " + pct(w1.compliance)), el("span", "w24", "24 h " + pct(w24.compliance)));
  const badges = el("div", "badges");
  for (const rule of cam.alerts) {
    if (rule.state === "firing") badges.append(el("span", "badge", rule.rule.replace("_", " ")));
  }
  tile.append(head, labels, big, counts, windows, sparkline(cam.spark), healthLine(cam), badges);
  if (cam.firing) tile.classList.add("firing");
  ageTile(tile, cam);
  return tile;
}

function healthLine(cam) {
  // The producer's report: measured vs configured frame rate, reconnects, drops.
  const line = el("div", "health");
  const h = cam.health;
  if (!h) {
    line.textContent = cam.configured ? "no health report (producer down?)" : "";
    return line;
  }
  line.append(el("span", "fps", `${h.actual_fps.toFixed(1)} / ${h.configured_fps} fps`));
  if (h.reconnects) line.append(el("span", "reconnects", `${h.reconnects} reconnects`));
  if (h.dropped) line.append(el("span", "dropped", `${h.dropped} dropped`));
  return line;
}

function cameraState(cam) {
  // The server's state, with staleness re-judged by the clock (it moves between updates).
  if (cam.state === "disconnected" || cam.state === "never_seen") return cam.state;
  return silentFor(cam) > state.staleAfter ? "stale" : "live";
}

function ageTile(tile, cam) {
  const now = cameraState(cam);
  tile.dataset.state = now;
  for (const name of Object.keys(STATE_TEXT)) tile.classList.toggle(name.replace("_", "-"), name === now);
  const silent = silentFor(cam);
  const seen = cam.last_seen ? "seen " + ago(silent) : "no frame yet";
  tile.querySelector(".seen").textContent = now === "live" ? seen : STATE_TEXT[now] + " · " + seen;
}

function refreshAges() {
  // Staleness moves with the clock, not with data: recompute every second.
  for (const [id, tile] of state.tiles) ageTile(tile, state.cameras.get(id));
}

// --- which tiles show, in which order (search, label filter, sort, grouping) -------------

function visible(cam) {
  const { search, label } = state.view;
  if (label) {
    const [name, value] = label.split("=");
    if ((cam.labels || {})[name] !== value) return false;
  }
  if (!search) return true;
  const hay = [cam.camera_id, ...Object.values(cam.labels || {})].join(" ").toLowerCase();
  return search.toLowerCase().split(/\s+/).every((word) => hay.includes(word));
}

const SORTS = {
  id: () => 0,
  compliance: (a, b) => (windowOf(a, "15m").compliance ?? 2) - (windowOf(b, "15m").compliance ?? 2),
  faces: (a, b) => windowOf(b, "15m").faces - windowOf(a, "15m").faces,
  silence: (a, b) => silentFor(b) - silentFor(a),
  alerts: (a, b) => Number(b.firing) - Number(a.firing),
};

function layout() {
  // Re-orders the existing tile elements (no re-render), grouped by a label when asked.
  const { sort, group } = state.view;
  const cams = [...state.cameras.values()].filter(visible);
  cams.sort((a, b) => SORTS[sort](a, b) || (a.camera_id < b.camera_id ? -1 : 1));
  const groups = new Map();
  for (const cam of cams) {
    const key = group ? (cam.labels || {})[group] ?? "(none)" : "";
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key).push(cam);
  }
  const out = document.createDocumentFragment();
  for (const [key, members] of [...groups].sort((a, b) => (a[0] < b[0] ? -1 : 1))) {
    if (group) out.append(el("h3", "group", `${group}: ${key} · ${members.length}`));
    for (const cam of members) out.append(state.tiles.get(cam.camera_id));
  }
  $("tiles").replaceChildren(out);
  $("shown").textContent = `${cams.length} of ${state.cameras.size} cameras`;
  $("empty").hidden = state.cameras.size > 0;
}

let layoutQueued = false;
function queueLayout() {
  if (layoutQueued) return;
  layoutQueued = true;
  requestAnimationFrame(() => { layoutQueued = false; layout(); });
}

function labelOptions() {
  // The filter offers every name=value seen; the grouping every label name.
  const pairs = new Set(), names = new Set();
  for (const cam of state.cameras.values()) {
    for (const [name, value] of Object.entries(cam.labels || {})) { pairs.add(`${name}=${value}`); names.add(name); }
  }
  fillSelect($("label"), [...pairs].sort(), "all labels");
  fillSelect($("group"), [...names].sort(), "no grouping");
}

function fillSelect(select, values, none) {
  const keep = select.value;
  const have = [...select.options].map((o) => o.value).join("\n");
  if (have === ["", ...values].join("\n")) return;
  select.replaceChildren(new Option(none, ""), ...values.map((v) => new Option(v, v)));
  select.value = values.includes(keep) ? keep : "";
}

// --- data in ------------------------------------------------------------------------

function upsert(cam) {
  state.cameras.set(cam.camera_id, cam);
  const fresh = renderTile(cam);
  state.tiles.get(cam.camera_id)?.replaceWith(fresh);
  state.tiles.set(cam.camera_id, fresh);
}

function remove(id) {
  state.cameras.delete(id);
  state.tiles.get(id)?.remove();
  state.tiles.delete(id);
}

function renderTotals(totals) {
  const box = $("totals");
  box.replaceChildren();
  for (const w of totals.windows) {
    const item = el("span", "total total-" + w.window);
    item.append(w.window + " ", el("b", grade(w.compliance), pct(w.compliance)), ` of ${w.faces} faces`);
    box.append(item);
  }
}

function paint(overview) {
  // The first paint (and a repaint after reconnecting): the whole fleet from one GET.
  state.staleAfter = overview.stale_after_s;
  state.target = overview.target;
  state.clockOffsetMs = Date.parse(overview.at) - Date.now();
  const ids = new Set(overview.cameras.map((c) => c.camera_id));
  for (const id of [...state.cameras.keys()]) if (!ids.has(id)) remove(id);
  overview.cameras.forEach(upsert);
  renderTotals(overview);
  labelOptions();
  layout();
  $("loading").hidden = true;
  document.body.dataset.paintedMs = String(Math.round(performance.now()));  // for tests
  touched();
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
}

function onEvent(event) {
  // Any event proves the stream delivers: only now is the badge "live".
  setConn(true, "live");
  const body = JSON.parse(event.data);
  if (event.type === "cameras") {
    body.cameras.forEach(upsert);
    if (body.cameras.length) { labelOptions(); queueLayout(); }
  } else if (event.type === "removed") {
    body.cameras.forEach(remove);
    queueLayout();
  } else if (event.type === "totals") {
    state.clockOffsetMs = Date.parse(body.at) - Date.now();
    renderTotals(body);
  } else if (event.type === "alert") {
    addAlert(body, true);
  }
  touched();
}

function setConn(up, text) {
  const conn = $("conn");
  conn.className = "conn " + (up ? "conn-up" : "conn-down");
  conn.textContent = text;
}

async function getJson(path) {
  const res = await fetch(path, { cache: "no-store" });
  if (res.status === 401) { $("auth").hidden = false; throw new Error("unauthorized"); }
  if (!res.ok) throw new Error(`${path}: HTTP ${res.status}`);
  return res.json();
}

// The browser's native EventSource (it parses the stream and sends the session cookie). Its
// own reconnect would resume from the first `since_ms`, so on an error it is closed and
// `run` starts over: a fresh view, then a stream from that view's time. A 401 shows up there
// too: EventSource cannot tell it apart, but the next GET /api/v1/cameras can.
const STREAM_EVENTS = ["cameras", "removed", "totals", "alert"];

function stream(sinceMs) {
  const url = "/api/v1/stream?since_ms=" + Math.max(0, Math.floor(sinceMs));
  return new Promise((_, reject) => {  // never resolves: an event stream has no end
    const source = new EventSource(url);
    for (const type of STREAM_EVENTS) source.addEventListener(type, onEvent);
    source.onerror = () => { source.close(); reject(new Error("stream interrupted")); };
  });
}

async function start() {
  const [overview, alerts] = await Promise.all([
    getJson("/api/v1/cameras"),
    getJson("/api/v1/alerts?limit=50").catch(() => null),  // alerts are secondary
  ]);
  paint(overview);
  if (alerts) {
    $("alerts").replaceChildren();
    for (const event of alerts) addAlert(event, false);
  }
  await stream(Date.parse(overview.at));
}

async function run() {
  let delay = 1000;
  for (;;) {
    try {
      await start();
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
function openTile(event) {
  const tile = event.target.closest(".tile");
  if (!tile || (event.type === "keydown" && event.key !== "Enter")) return;
  window.location.href = "/cameras/" + encodeURIComponent(tile.dataset.camera);
}
$("tiles").addEventListener("click", openTile);
$("tiles").addEventListener("keydown", openTile);
for (const id of ["search", "label", "sort", "group"]) {
  $(id).addEventListener("input", () => { state.view[id] = $(id).value.trim(); layout(); });
}
setInterval(refreshAges, 1000);
run();
