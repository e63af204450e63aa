// Live calls: polled every 2 s from GET /calls?live=true, each with a hang-up button.

import { PHONE, get, post, query } from "./api.js";
import { $, callDuration, el, parties, replaceRows, seconds, showStatus, when } from "./dom.js";
import { Poller } from "./poll.js";

const hangingUp = new Set();
let onHungUp = () => {};

export const livePoller = new Poller(2000, refreshLive);

export function whenHungUp(handler) {
  onHungUp = handler;
}

export async function refreshLive() {
  const calls = await get(`${PHONE}/calls${query({ live: true, limit: 200 })}`);
  const live = new Set(calls.map((call) => call.id));
  for (const id of [...rows.keys()]) if (!live.has(id)) rows.delete(id);
  replaceRows($("#live-calls tbody"), calls.map(liveRow));
  $("#live-empty").hidden = calls.length > 0;
  $("#live-count").textContent = calls.length ? `(${calls.length})` : "";
}

// A call keeps its row while it is live; each poll only rewrites its status and duration.
const rows = new Map();

function liveRow(call) {
  let row = rows.get(call.id);
  if (!row) {
    const { caller, callee } = parties(call);
    const button = el("button", { type: "button", class: "danger hangup", onclick: () => hangUp(call.id, button) }, "Hang up");
    row = el(
      "tr",
      { dataset: { callId: call.id, key: call.id } },
      el("td", {}, when(call.created_at)),
      el("td", {}, call.direction),
      el("td", { class: "mono" }, caller),
      el("td", { class: "mono" }, callee),
      el("td", { class: "status" }),
      el("td", { class: "duration" }),
      el("td", {}, button),
    );
    rows.set(call.id, row);
  }
  const status = row.querySelector(".status");
  status.textContent = call.status;
  status.className = `status status-${call.status}`;
  row.querySelector(".duration").textContent = call.started_at ? seconds(callDuration(call)) : "—";
  const button = row.querySelector("button.hangup");
  button.disabled = hangingUp.has(call.id);
  button.textContent = button.disabled ? "Hanging up…" : "Hang up";
  return row;
}

export function forgetLiveRows() {
  rows.clear();
  $("#live-calls tbody").replaceChildren();
}

async function hangUp(callId, button) {
  hangingUp.add(callId);
  button.disabled = true;
  button.textContent = "Hanging up…";
  try {
    await post(`${PHONE}/calls/${encodeURIComponent(callId)}/hangup`);
    showStatus("");
  } catch (error) {
    if (error.status !== 409) showStatus(`Hang-up failed: ${error.message}`);
  } finally {
    hangingUp.delete(callId);
  }
  await livePoller.tick();
  onHungUp(callId);
}
