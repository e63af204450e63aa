// Call history: recent calls with status, hang-up reason and duration; one call's recording
// beside its transcript; full-text search over the transcripts of every number.

import { PHONE, get, query } from "./api.js";
import { $, callDuration, el, highlighted, parties, replaceRows, seconds, showStatus, when } from "./dom.js";
import { Poller } from "./poll.js";
import { activeNumbers } from "./numbers.js";

let selectedCallId = null;
let highlight = "";

export const historyPoller = new Poller(5000, refreshHistory);

export async function refreshHistory() {
  const calls = await get(`${PHONE}/calls${query({ limit: 50 })}`);
  replaceRows($("#history-calls tbody"), calls.map(historyRow));
  if (selectedCallId && calls.some((c) => c.id === selectedCallId)) {
    const shown = calls.find((c) => c.id === selectedCallId);
    const audio = $("#recording");
    if (shown.recording_url && !audio) await openCall(selectedCallId, $("#transcript-filter").value);
  }
}

function historyRow(call) {
  const { caller, callee } = parties(call);
  return el(
    "tr",
    {
      class: `clickable${call.id === selectedCallId ? " selected" : ""}`,
      dataset: { callId: call.id, key: call.id },
      onclick: () => openCall(call.id, ""),
    },
    el("td", {}, when(call.created_at)),
    el("td", {}, call.direction),
    el("td", { class: "mono" }, caller),
    el("td", { class: "mono" }, callee),
    el("td", { class: `status status-${call.status}` }, call.status),
    el("td", { class: "reason" }, call.hangup_reason || "—"),
    el("td", { class: "duration" }, seconds(callDuration(call))),
    el("td", {}, call.recording_url ? "●" : ""),
  );
}

// A recording link served by this process (/media/...) is played from this origin, so the
// page's Content-Security-Policy (media-src 'self') admits it whatever TRUNKLINE_PUBLIC_URL says.
export function playableHere(url) {
  const parsed = new URL(url, window.location.href);
  return parsed.pathname.startsWith("/media/") ? parsed.pathname + parsed.search : null;
}

export async function openCall(callId, term) {
  selectedCallId = callId;
  highlight = term || "";
  for (const row of document.querySelectorAll("#history-calls tbody tr")) {
    row.classList.toggle("selected", row.dataset.callId === callId);
  }
  const id = encodeURIComponent(callId);
  const [call, segments] = await Promise.all([
    get(`${PHONE}/calls/${id}`),
    get(`${PHONE}/calls/${id}/transcripts`),
  ]);
  const { caller, callee } = parties(call);
  $("#call-detail").hidden = false;
  $("#call-detail").dataset.callId = call.id;
  $("#detail-title").textContent = `${caller} → ${callee}`;
  const facts = [
    ["Status", call.status],
    ["Hang-up reason", call.hangup_reason || "—"],
    ["Direction", call.direction],
    ["Started", when(call.started_at)],
    ["Ended", when(call.ended_at)],
    ["Duration", seconds(callDuration(call))],
    ["Call id", call.id],
  ];
  $("#detail-facts").replaceChildren(...facts.flatMap(([name, value]) => [el("dt", {}, name), el("dd", {}, value)]));
  $("#detail-recording").replaceChildren(recordingPlayer(call));
  renderTranscript(segments);
  $("#transcript-filter").value = highlight;
  applyFilter();
}

function recordingPlayer(call) {
  if (!call.recording_url) {
    return el("p", { class: "note" }, call.status === "completed" ? "No recording stored (yet)." : "No recording.");
  }
  const local = playableHere(call.recording_url);
  if (local === null) {
    return el("a", { href: call.recording_url, target: "_blank", rel: "noreferrer noopener" }, "Open the recording");
  }
  return el("audio", { id: "recording", controls: true, preload: "metadata", src: local });
}

function renderTranscript(segments) {
  const items = segments.map((segment) =>
    el(
      "li",
      { dataset: { text: segment.text, seq: String(segment.seq) } },
      el("span", { class: "ts" }, seconds(segment.ts_ms / 1000)),
      el("span", { class: "party" }, segment.party),
      el("span", { class: "text" }, segment.text),
    ),
  );
  if (!items.length) items.push(el("li", { class: "empty" }, "No transcript."));
  $("#transcript").replaceChildren(...items);
}

function applyFilter() {
  const term = $("#transcript-filter").value.trim();
  for (const item of document.querySelectorAll("#transcript li[data-text]")) {
    const text = item.dataset.text;
    const matches = !term || text.toLowerCase().includes(term.toLowerCase());
    item.classList.toggle("hidden-by-filter", !matches);
    item.querySelector(".text").replaceChildren(...highlighted(text, term));
  }
}

async function search(event) {
  event.preventDefault();
  const term = $("#search").value.trim();
  const results = $("#search-results");
  if (!term) {
    results.replaceChildren();
    return;
  }
  const numbers = await activeNumbers();
  const found = await Promise.all(
    numbers.map((number) =>
      get(`${PHONE}/numbers/${encodeURIComponent(number.id)}/search${query({ q: term, limit: 20 })}`)
        .then((segments) => segments.map((segment) => ({ segment, number })))
        .catch((error) => {
          showStatus(`Search on ${number.number} failed: ${error.message}`);
          return [];
        }),
    ),
  );
  const hits = found.flat();
  const items = hits.map(({ segment, number }) =>
    el(
      "li",
      { class: "search-hit", dataset: { callId: segment.call_id }, onclick: () => openCall(segment.call_id, term) },
      el("span", { class: "ts" }, when(segment.created_at)),
      el("span", { class: "party" }, segment.party),
      el("span", { class: "mono" }, `${number.number} `),
      ...highlighted(segment.text, term),
    ),
  );
  if (!items.length) items.push(el("li", { class: "empty" }, `Nothing said matches “${term}”.`));
  results.replaceChildren(...items);
}

export function setUpHistory() {
  $("#search-form").addEventListener("submit", (event) => search(event).catch((e) => showStatus(e.message)));
  $("#transcript-filter").addEventListener("input", applyFilter);
}

export function resetHistory() {
  selectedCallId = null;
  highlight = "";
  $("#call-detail").hidden = true;
  $("#search-results").replaceChildren();
  $("#history-calls tbody").replaceChildren();
}
