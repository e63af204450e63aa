// Texts: each number's conversations, and the messages of the one selected.

import { PHONE, get, query } from "./api.js";
import { $, el, replaceRows, when } from "./dom.js";
import { activeNumbers } from "./numbers.js";

export async function refreshTexts() {
  const numbers = await activeNumbers();
  const lists = await Promise.all(
    numbers.map(async (number) => {
      const rows = await get(`${PHONE}/numbers/${encodeURIComponent(number.id)}/texts/conversations${query({ limit: 50 })}`);
      return rows.map((conversation) => ({ number, conversation }));
    }),
  );
  const all = lists.flat().sort((a, b) => b.conversation.latest_message_at.localeCompare(a.conversation.latest_message_at));
  const rows = all.map(({ number, conversation }) =>
    el(
      "tr",
      { class: "clickable", dataset: { remote: conversation.remote_phone_number }, onclick: () => openConversation(number, conversation.remote_phone_number) },
      el("td", { class: "mono" }, number.number),
      el("td", { class: "mono" }, conversation.remote_phone_number),
      el("td", {}, `${conversation.latest_direction === "outbound" ? "→ " : "← "}${conversation.latest_text || ""}`),
      el("td", {}, String(conversation.unread_count)),
      el("td", {}, String(conversation.total_count)),
      el("td", {}, when(conversation.latest_message_at)),
    ),
  );
  if (!rows.length) rows.push(el("tr", {}, el("td", { colspan: "6", class: "empty" }, "No texts.")));
  replaceRows($("#conversations tbody"), rows);
}

async function openConversation(number, remote) {
  const path = `${PHONE}/numbers/${encodeURIComponent(number.id)}/texts/conversations/${encodeURIComponent(remote)}`;
  const messages = await get(`${path}${query({ limit: 100 })}`);
  $("#conversation").hidden = false;
  $("#conversation-title").textContent = `${number.number} ⇄ ${remote}`;
  $("#messages").replaceChildren(
    ...messages
      .slice()
      .reverse()
      .map((text) =>
        el(
          "li",
          { class: text.direction },
          el("span", { class: "ts" }, when(text.created_at)),
          el("span", { class: "party" }, text.direction === "outbound" ? "sent" : "received"),
          text.text || "",
          text.media ? ` [${text.media.length} attachment(s)]` : "",
        ),
      ),
  );
}
