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
  replaceRows($("#live-calls tbody"), calls.map(liveRow));
  $("#live-empty").hidden = calls.length > 0;
  $("#live-count").textContent = calls.length ? `(${calls.length})` : "";
}

function liveRow(call) {
  const { caller, callee } = parties(call);
  const button = el("button", { type: "button", class: "danger hangup", onclick: () => hangUp(call.id, button) }, "Hang up");
  button.disabled = hangingUp.has(call.id);
  return el(
    "tr",
    { dataset: { callId: call.id } },
    el("td", {}, when(call.created_at)),
    el("td", {}, call.direction),
    el("td", { class: "mono" }, caller),
    el("td", { class: "mono" }, callee),
    el("td", { class: `status-${call.status}` }, call.status),
    el("td", { class: "duration" }, call.started_at ? seconds(callDuration(call)) : "—"),
    el("td", {}, button),
  );
}

async function hangUp(callId, button) {
  hangingUp.add(callId);
  button.disabled = true;
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
