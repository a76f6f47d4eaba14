// A text/event-stream parser that follows the WHATWG HTML standard ("Interpreting an event
// stream"), fed decoded text in chunks of any size: lines end in CRLF, LF or CR, also when
// a chunk ends between CR and LF; comments, BOM, `id`, `retry` and fields without a colon are
// handled as the standard says. Kept alone (no DOM) so node tests it, and so the dashboard
// can read the stream with fetch() (a bearer token in a header) or switch to EventSource.
"use strict";

function createEventStreamParser(onEvent) {
  let pending = "";     // the current line so far (no line break seen yet)
  let afterCR = false;  // the last chunk ended in CR: an LF first in the next one is its pair
  let started = false;  // a BOM is dropped only at the very start of the stream
  let type = "", data = "", lastId = "", retry = null;

  function dispatch() {
    if (data === "") { type = ""; return; }
    const event = { type: type || "message", data: data.slice(0, -1), lastEventId: lastId, retry };
    type = ""; data = "";
    onEvent(event);
  }

  function line(text) {
    if (text === "") { dispatch(); return; }
    if (text[0] === ":") return;  // a comment (e.g. keep-alive)
    const colon = text.indexOf(":");
    const name = colon < 0 ? text : text.slice(0, colon);
    let value = colon < 0 ? "" : text.slice(colon + 1);
    if (value[0] === " ") value = value.slice(1);
    if (name === "event") type = value;
    else if (name === "data") data += value + "\n";
    else if (name === "id") { if (!value.includes("\0")) lastId = value; }
    else if (name === "retry") { if (/^[0-9]+$/.test(value)) retry = Number(value); }
  }

  function push(chunk) {
    if (chunk === "") return;
    if (!started) { started = true; if (chunk[0] === "\uFEFF") chunk = chunk.slice(1); }
    let start = 0;
    if (afterCR && chunk[0] === "\n") start = 1;
    afterCR = false;
    for (let i = start; i < chunk.length; i++) {
      const c = chunk[i];
      if (c !== "\r" && c !== "\n") continue;
      line(pending + chunk.slice(start, i));
      pending = "";
      if (c === "\r") {
        if (i + 1 === chunk.length) afterCR = true;
        else if (chunk[i + 1] === "\n") i++;
      }
      start = i + 1;
    }
    pending += chunk.slice(start);
  }

  // At the end of the stream an unfinished event is discarded, as the standard says.
  function end() { pending = ""; type = ""; data = ""; afterCR = false; }

  return { push, end };
}

if (typeof module !== "undefined") module.exports = { createEventStreamParser };
