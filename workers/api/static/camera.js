// maskwatch camera page: one camera's compliance and faces over 1 h / 24 h / 7 d / 30 d
// (charts with axes from chart.js), its health as its producer reports it, and its alerts.
// Re-read every 30 s; the range is kept in the URL's hash (#24h) so a link shows the same.
"use strict";

const cameraId = decodeURIComponent(window.location.pathname.split("/").pop());
const page = { range: ["1h", "24h", "7d", "30d"].includes(location.hash.slice(1)) ? location.hash.slice(1) : "24h", target: 0.8 };
const byId = (id) => document.getElementById(id);

function node(tag, cls, text) {
  const n = document.createElement(tag);
  if (cls) n.className = cls;
  if (text !== undefined) n.textContent = text;
  return n;
}
const percent = (r) => (r === null || r === undefined ? "–" : (r * 100).toFixed(1) + "%");
const api = (path) => "/api/v1/cameras/" + encodeURIComponent(cameraId) + path;

async function json(url) {
  const res = await fetch(url, { cache: "no-store" });
  if (!res.ok) throw new Error(`${url}: HTTP ${res.status}`);
  return res.json();
}

function since(iso) {
  if (!iso) return "–";
  const s = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
  const text = s < 60 ? Math.round(s) + " s" : s < 3600 ? Math.round(s / 60) + " min" : Math.round(s / 3600) + " h";
  return `${new Date(iso).toLocaleString()} (${text} ago)`;
}

function renderCamera(cam) {
  byId("title").textContent = cam.camera_id;
  document.title = "maskwatch — " + cam.camera_id;
  const badge = byId("state");
  badge.textContent = cam.state.replace("_", " ");
  badge.className = "state-badge state-" + cam.state;
  byId("labels").replaceChildren(...Object.entries(cam.labels).map(([k, v]) => node("span", "label", `${k}: ${v}`)));
  byId("windows").replaceChildren(...cam.windows.map((w) => {
    const box = node("div", "detail-window");
    box.append(node("small", "", w.window), node("b", "", percent(w.compliance)),
      node("span", "", `${w.faces} faces · ${w.frames} frames`),
      node("span", w.skipped ? "skipped" : "", `skipped ${percent(w.skipped_share)}`));
    return box;
  }));
  const h = cam.health;
  const rows = [["last result", cam.last_seen ? since(cam.last_seen) : "never"]];
  if (h) {
    rows.push(["source", `${h.state} since ${since(h.since)}`], ["last frame read", since(h.last_frame_at)],
      ["frame rate", `${h.actual_fps.toFixed(2)} fps measured / ${h.configured_fps} configured`],
      ["reconnects", String(h.reconnects)], ["dropped", String(h.dropped)], ["producer", h.producer]);
    if (h.last_error) rows.push(["last error", h.last_error]);
  } else {
    rows.push(["source", cam.configured ? "configured, no health report (producer down?)" : "no producer reports it"]);
  }
  byId("health").replaceChildren(...rows.flatMap(([k, v]) => [node("dt", "", k), node("dd", "", v)]));
}

function renderHistory(history) {
  const points = history.points.map((p) => ({ ...p, t: Date.parse(p.start) }));
  const common = { points, resolutionS: history.resolution_s };
  byId("compliance-chart").replaceChildren(timeChart({
    ...common, kind: "line", value: (p) => p.compliance, target: page.target,
    yLabel: `Compliance of ${cameraId}, ${history.range}`,
  }));
  byId("faces-chart").replaceChildren(timeChart({
    ...common, kind: "bars", parts: (p) => [p.with_mask, p.without_mask],
    yLabel: `Faces seen by ${cameraId}, ${history.range}`,
  }));
  for (const b of document.querySelectorAll(".ranges button")) b.classList.toggle("on", b.dataset.range === history.range);
  byId("csv").href = api(`/history.csv?range=${history.range}`);
  document.body.dataset.range = history.range;  // for tests
}

function renderAlerts(events) {
  byId("alerts").replaceChildren(...events.map((e) => {
    const li = node("li");
    li.append(node("span", e.state, e.state === "firing" ? "▲ firing " : "▼ resolved "),
      new Date(e.at).toLocaleString() + " — " + e.message);
    return li;
  }));
  if (!events.length) byId("alerts").append(node("li", "", "none recorded"));
}

async function load() {
  try {
    const [fleet, cam, history, alerts] = await Promise.all([
      json("/api/v1/cameras?limit=1"), json(api("")), json(api(`/history?range=${page.range}`)),
      json("/api/v1/alerts?limit=50&camera_id=" + encodeURIComponent(cameraId)),
    ]);
    page.target = fleet.target;
    renderCamera(cam);
    renderHistory(history);
    renderAlerts(alerts);
    byId("error").hidden = true;
    byId("updated").textContent = "updated " + new Date().toLocaleTimeString();
  } catch (error) {
    byId("error").textContent = String(error.message || error);
    byId("error").hidden = false;
  }
  byId("loading").hidden = true;
}

for (const button of document.querySelectorAll(".ranges button")) {
  button.addEventListener("click", () => { page.range = button.dataset.range; location.hash = page.range; load(); });
}
setInterval(load, 30000);
load();
