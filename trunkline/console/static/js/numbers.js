// Numbers and what each does with an incoming call (its own action, and its identity's).

import { PHONE, get, query } from "./api.js";
import { $, el, replaceRows } from "./dom.js";

export async function activeNumbers() {
  const numbers = await get(`${PHONE}/numbers`);
  return numbers.filter((number) => number.status !== "released");
}

export async function refreshNumbers() {
  const numbers = await get(`${PHONE}/numbers`);
  const identities = [...new Set(numbers.map((n) => n.agent_identity_id).filter(Boolean))];
  const actions = new Map(
    await Promise.all(identities.map(async (id) => [id, await identityAction(id)])),
  );
  replaceRows(
    $("#numbers tbody"),
    numbers.map((number) =>
      el(
        "tr",
        { dataset: { numberId: number.id } },
        el("td", { class: "mono" }, number.number),
        el("td", {}, number.friendly_name || "—"),
        el("td", {}, number.status),
        el("td", { class: "action" }, number.incoming_call_action),
        el("td", { class: "mono" }, target(number)),
        el("td", {}, actions.get(number.agent_identity_id) || "—"),
        el("td", {}, `${number.agent_protocol} · ${number.agent_audio}`),
        el("td", {}, number.recording_enabled ? "on" : "off"),
      ),
    ),
  );
}

function target(number) {
  if (number.incoming_call_action === "auto_accept") return number.client_websocket_url || "—";
  if (number.incoming_call_action === "webhook") return number.incoming_call_webhook_url || "—";
  return "—";
}

async function identityAction(identityId) {
  try {
    const config = await get(`${PHONE}/incoming-call-action${query({ agent_identity_id: identityId })}`);
    return config.incoming_call_action;
  } catch (error) {
    if (error.status === 404) return "not set";
    if (error.status === 403) return "—";
    throw error;
  }
}
