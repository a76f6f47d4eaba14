// A small SVG time chart with axes (no library, no CDN): a line with gaps (compliance) or
// stacked bars (faces with / without a mask). Used by the camera page; pure DOM building,
// so the page's tests read the drawn elements back.
"use strict";

const CHART_SVG = "http://www.w3.org/2000/svg";
const CHART = { w: 720, h: 220, left: 48, right: 12, top: 12, bottom: 28 };

function svgEl(tag, attrs, text) {
  const node = document.createElementNS(CHART_SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

function niceMax(value) {
  // The smallest 1, 2 or 5 × 10^n at or above value (at least 1): round axis ticks.
  if (!(value > 1)) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 5, 10]) if (step * power >= value) return step * power;
  return 10 * power;
}

function timeLabel(ms, resolutionS) {
  const d = new Date(ms);
  if (resolutionS >= 86400) return d.toLocaleDateString([], { month: "short", day: "numeric", timeZone: "UTC" });
  if (resolutionS >= 3600) {
    return d.toLocaleString([], { weekday: "short", hour: "2-digit", minute: "2-digit", timeZone: "UTC" });
  }
  return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", timeZone: "UTC" });
}

// points: [{t: epoch ms, ...}]; series: "line" with value(p) in 0..1 or null, or "bars"
// with parts(p) → [a, b] stacked. Returns the <svg>.
function timeChart({ points, resolutionS, kind, value, parts, target, yLabel }) {
  const { w, h, left, right, top, bottom } = CHART;
  const plotW = w - left - right, plotH = h - top - bottom;
  const svg = svgEl("svg", { viewBox: `0 0 ${w} ${h}`, class: `chart chart-${kind}`, role: "img" });
  svg.append(svgEl("title", {}, yLabel));
  const n = points.length;
  const slot = plotW / Math.max(1, n);
  const x = (i) => left + (i + 0.5) * slot;
  const yMax = kind === "line" ? 1 : niceMax(Math.max(0, ...points.map((p) => parts(p)[0] + parts(p)[1])));
  const y = (v) => top + plotH - (v / yMax) * plotH;

  const axis = svgEl("g", { class: "axis" });
  for (let i = 0; i <= 4; i += 1) {
    const v = (yMax * i) / 4;
    axis.append(svgEl("line", { class: "grid", x1: left, x2: w - right, y1: y(v), y2: y(v) }));
    const text = kind === "line" ? `${Math.round(v * 100)}%` : String(Math.round(v * 100) / 100);
    axis.append(svgEl("text", { class: "y-tick", x: left - 6, y: y(v) + 4, "text-anchor": "end" }, text));
  }
  const every = Math.max(1, Math.ceil(n / 6));
  for (let i = 0; i < n; i += every) {
    axis.append(svgEl("line", { class: "tick", x1: x(i), x2: x(i), y1: top + plotH, y2: top + plotH + 4 }));
    axis.append(svgEl("text", { class: "x-tick", x: x(i), y: h - 8, "text-anchor": "middle" },
      timeLabel(points[i].t, resolutionS)));
  }
  axis.append(svgEl("line", { class: "base", x1: left, x2: w - right, y1: top + plotH, y2: top + plotH }));
  svg.append(axis);

  if (kind === "line") {
    if (target !== undefined) {
      svg.append(svgEl("line", { class: "target", x1: left, x2: w - right, y1: y(target), y2: y(target) }));
    }
    let run = [];
    const flush = () => {
      if (run.length === 1) svg.append(svgEl("circle", { class: "dot", cx: run[0][0], cy: run[0][1], r: 2.5 }));
      else if (run.length > 1) svg.append(svgEl("polyline", { class: "series", points: run.map((p) => p.join(",")).join(" ") }));
      run = [];
    };
    points.forEach((p, i) => {
      const v = value(p);
      if (v === null || v === undefined) flush();
      else run.push([x(i).toFixed(1), y(v).toFixed(1)]);
    });
    flush();
  } else {
    const bw = Math.max(1, slot * 0.7);
    points.forEach((p, i) => {
      const [a, b] = parts(p);
      if (a > 0) svg.append(svgEl("rect", { class: "bar bar-a", x: x(i) - bw / 2, y: y(a), width: bw, height: y(0) - y(a) }));
      if (b > 0) svg.append(svgEl("rect", { class: "bar bar-b", x: x(i) - bw / 2, y: y(a + b), width: bw, height: y(a) - y(a + b) }));
    });
  }
  return svg;
}
