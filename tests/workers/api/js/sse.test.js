// The dashboard's event-stream parser (workers/api/static/sse.js) under node's test runner:
// a stream recorded from the real API, split at every point, must give the same events as
// read whole; line endings CRLF, LF and CR alike; the standard's edge cases one by one.
"use strict";
const test = require("node:test");
const assert = require("node:assert/strict");
const fs = require("node:fs");
const path = require("node:path");
const { createEventStreamParser } = require("../../../../workers/api/static/sse.js");

const RECORDED = fs.readFileSync(path.join(__dirname, "recorded.sse"), "utf8");

function parse(chunks) {
  const events = [];
  const parser = createEventStreamParser((event) => events.push(event));
  for (const chunk of chunks) parser.push(chunk);
  parser.end();
  return events;
}

function everySplit(text, expected) {
  for (let i = 0; i <= text.length; i++) {
    assert.deepEqual(parse([text.slice(0, i), text.slice(i)]), expected, `split at ${i}`);
  }
}

test("the recorded stream gives the API's events, in order, with JSON data", () => {
  const events = parse([RECORDED]);
  assert.deepEqual(
    [...new Set(events.map((e) => e.type))].sort(),
    ["alert", "cameras", "totals"],
  );
  assert.equal(events[0].type, "totals");
  assert.equal(events[1].type, "cameras");
  const first = JSON.parse(events[1].data).cameras.map((c) => c.camera_id);
  assert.deepEqual(first, ["lobby"]);
  const later = events.slice(2).filter((e) => e.type === "cameras");
  assert.deepEqual(JSON.parse(later[0].data).cameras.map((c) => c.camera_id), ["gate"]);
  for (const event of events) JSON.parse(event.data);
});

test("every split point of the recorded stream gives the same events", () => {
  everySplit(RECORDED, parse([RECORDED]));
});

test("CRLF, LF and CR line endings give the same events, split anywhere", () => {
  const whole = parse([RECORDED]);
  assert.ok(RECORDED.includes("\r\n"), "the API writes CRLF");
  const lf = RECORDED.replace(/\r\n/g, "\n");
  const cr = RECORDED.replace(/\r\n/g, "\r");
  assert.deepEqual(parse([lf]), whole);
  everySplit(cr, whole);
});

test("one character at a time", () => {
  assert.deepEqual(parse([...RECORDED]), parse([RECORDED]));
});

test("the standard's edge cases", () => {
  const text =
    "\uFEFF: a comment\n" +
    "data:no space\n\n" +
    "data:  two spaces\n\n" +
    "event: custom\ndata: line 1\ndata\ndata: line 3\nid: 7\nunknown: x\n\n" +
    "event: nothing\n\n" +            // no data: not dispatched, type reset
    "data: after\nretry: 1500\n\n" +
    "retry: soon\ndata: keeps retry\n\n" +
    "data: unfinished";               // no blank line before the end: discarded
  const events = parse([text]);
  assert.deepEqual(events, [
    { type: "message", data: "no space", lastEventId: "", retry: null },
    { type: "message", data: " two spaces", lastEventId: "", retry: null },
    { type: "custom", data: "line 1\n\nline 3", lastEventId: "7", retry: null },
    { type: "message", data: "after", lastEventId: "7", retry: 1500 },
    { type: "message", data: "keeps retry", lastEventId: "7", retry: 1500 },
  ]);
  everySplit(text, events);
});

test("a BOM is dropped only at the start, and a CR split from its LF ends one line", () => {
  const events = parse(["\uFEFFdata: a\r", "\n\r", "\ndata: \uFEFFb\r", "\r"]);
  assert.deepEqual(events.map((e) => e.data), ["a", "\uFEFFb"]);
});
