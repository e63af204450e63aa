// Webhook subscriptions and deliveries. The delivery log lists single attempts; the console
// groups them by (event, subscription) and reads the retry state from the outbox's schedule.

import { WEBHOOKS, get, query } from "./api.js";
import { $, el, replaceRows, seconds, when } from "./dom.js";

// trunkline/outbox/schedule.py: an immediate attempt, then these delays (±10 % jitter,
// longer when the receiver's Retry-After asks); after the last one the delivery has failed.
export const RETRY_DELAYS_SECONDS = [5, 300, 1800, 7200, 18000, 36000, 36000];
export const MAX_ATTEMPTS = RETRY_DELAYS_SECONDS.length + 1;

const succeeded = (attempt) => attempt.response_status !== null && attempt.response_status >= 200 && attempt.response_status <= 299;

// attempts: one delivery's attempts, oldest first.
export function retryState(attempts) {
  const last = attempts[attempts.length - 1];
  if (attempts.some(succeeded)) return { state: "delivered", text: "delivered" };
  if (last.response_status === 410) return { state: "failed", text: "failed: 410 Gone, subscription disabled" };
  if (attempts.length >= MAX_ATTEMPTS) return { state: "failed", text: `failed after ${attempts.length} attempts` };
  const delay = RETRY_DELAYS_SECONDS[attempts.length - 1];
  const next = new Date(Date.parse(last.created_at) + delay * 1000);
  return {
    state: "retrying",
    text: `retrying: attempt ${attempts.length + 1} of ${MAX_ATTEMPTS} due about ${next.toLocaleTimeString()} (+${seconds(delay)})`,
  };
}

export function groupDeliveries(attempts) {
  const groups = new Map();
  for (const attempt of attempts) {
    const key = `${attempt.event_id} ${attempt.webhook_subscription_id}`;
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key).push(attempt);
  }
  for (const list of groups.values()) list.sort((a, b) => a.created_at.localeCompare(b.created_at));
  return [...groups.values()].sort((a, b) => b[b.length - 1].created_at.localeCompare(a[a.length - 1].created_at));
}

function lastAnswer(attempt) {
  if (attempt.response_status !== null) return `HTTP ${attempt.response_status}`;
  return attempt.error_detail || "no answer";
}

export async function refreshWebhooks() {
  const { subscriptions } = await get(`${WEBHOOKS}/subscriptions`);
  replaceRows(
    $("#subscriptions tbody"),
    subscriptions.map((s) =>
      el("tr", {}, el("td", { class: "mono" }, s.url), el("td", {}, (s.event_types || []).join(", ")), el("td", {}, s.status)),
    ),
  );
  let attempts;
  try {
    ({ deliveries: attempts } = await get(`${WEBHOOKS}/deliveries${query({ limit: 200 })}`));
    $("#deliveries-note").textContent = "";
  } catch (error) {
    if (error.status !== 422) throw error;
    // An identity token reads the log one subscription at a time.
    const pages = await Promise.all(
      subscriptions.map((s) => get(`${WEBHOOKS}/deliveries${query({ subscription_id: s.id, limit: 200 })}`)),
    );
    attempts = pages.flatMap((page) => page.deliveries);
  }
  const groups = groupDeliveries(attempts);
  const rows = groups.map((group) => {
    const last = group[group.length - 1];
    const state = retryState(group);
    return el(
      "tr",
      { dataset: { eventId: last.event_id } },
      el("td", {}, last.event_type),
      el("td", { class: "mono" }, last.url),
      el("td", {}, String(group.length)),
      el("td", {}, lastAnswer(last)),
      el("td", { class: `retry state-${state.state}` }, state.text),
      el("td", {}, when(last.created_at)),
    );
  });
  if (!rows.length) rows.push(el("tr", {}, el("td", { colspan: "6", class: "empty" }, "No deliveries yet.")));
  replaceRows($("#deliveries tbody"), rows);
}
