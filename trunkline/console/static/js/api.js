// The API client: the token lives in this tab's sessionStorage and travels only in X-API-Key.

const TOKEN_KEY = "trunkline.token";
export const PHONE = "/api/v1/phone";
export const WEBHOOKS = "/api/v1/webhooks";
export const CONSOLE = "/api/v1/console";

export class ApiFailure extends Error {
  constructor(status, detail) {
    super(typeof detail === "string" ? detail : `HTTP ${status}`);
    this.status = status;
  }
}

let onUnauthorised = () => {};

export function whenUnauthorised(handler) {
  onUnauthorised = handler;
}

export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function keepToken(value) {
  sessionStorage.setItem(TOKEN_KEY, value);
}

export function forgetToken() {
  sessionStorage.removeItem(TOKEN_KEY);
}

export async function request(method, path, body) {
  const headers = { "X-API-Key": token() || "", Accept: "application/json" };
  const init = { method, headers, credentials: "omit", cache: "no-store", referrerPolicy: "no-referrer" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok) {
    const failure = new ApiFailure(response.status, data && data.detail);
    if (response.status === 401) onUnauthorised(failure);
    throw failure;
  }
  return data;
}

export const get = (path) => request("GET", path);
export const post = (path, body) => request("POST", path, body);

export function query(params) {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value !== undefined && value !== null) search.set(name, String(value));
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}
