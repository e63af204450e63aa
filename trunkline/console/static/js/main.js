// The console's entry point: log in with a token, switch views, start and stop polling.

import { PHONE, forgetToken, get, keepToken, token, whenUnauthorised } from "./api.js";
import { statsPoller, draw, resetCharts } from "./charts.js";
import { $, showStatus } from "./dom.js";
import { historyPoller, refreshHistory, resetHistory, setUpHistory } from "./history.js";
import { forgetLiveRows, livePoller, whenHungUp } from "./live.js";
import { refreshNumbers } from "./numbers.js";
import { refreshTexts } from "./texts.js";
import { refreshWebhooks } from "./webhooks.js";

const VIEWS = ["live", "history", "numbers", "texts", "webhooks", "charts"];
const ON_OPEN = {
  history: () => historyPoller.start(),
  numbers: refreshNumbers,
  texts: refreshTexts,
  webhooks: refreshWebhooks,
  charts: async () => draw(),
};
let current = null;

function show(view) {
  current = view;
  for (const name of VIEWS) $(`#${name}-view`).hidden = name !== view;
  for (const button of document.querySelectorAll("#tabs button")) {
    button.classList.toggle("active", button.dataset.view === view);
  }
  if (view !== "history") historyPoller.stop();
  const open = ON_OPEN[view];
  if (open) Promise.resolve(open()).catch((error) => showStatus(error.message));
}

function loggedIn() {
  $("#login-view").hidden = true;
  $("#tabs").hidden = false;
  $("#logout").hidden = false;
  $("#who").textContent = `${token().slice(0, 11)}…`;
  livePoller.start();
  statsPoller.start();
  show(current || "live");
}

function logOut(message) {
  forgetToken();
  livePoller.stop();
  statsPoller.stop();
  historyPoller.stop();
  resetHistory();
  resetCharts();
  forgetLiveRows();
  current = null;
  for (const name of VIEWS) $(`#${name}-view`).hidden = true;
  $("#tabs").hidden = true;
  $("#logout").hidden = true;
  $("#who").textContent = "";
  $("#login-view").hidden = false;
  $("#login-error").textContent = message || "";
  showStatus("");
}

async function logIn(event) {
  event.preventDefault();
  const field = $("#token");
  const value = field.value.trim();
  field.value = "";
  if (!value) return;
  keepToken(value);
  try {
    await get(`${PHONE}/numbers`);
  } catch (error) {
    forgetToken();
    $("#login-error").textContent = error.status === 401 ? error.message : `Cannot log in: ${error.message}`;
    return;
  }
  $("#login-error").textContent = "";
  loggedIn();
}

function start() {
  $("#login-form").addEventListener("submit", logIn);
  $("#logout").addEventListener("click", () => logOut(""));
  for (const button of document.querySelectorAll("#tabs button")) {
    button.addEventListener("click", () => show(button.dataset.view));
  }
  setUpHistory();
  whenUnauthorised((failure) => logOut(failure.message));
  whenHungUp(() => {
    if (current === "history") refreshHistory().catch((error) => showStatus(error.message));
  });
  if (token()) loggedIn();
}

start();
