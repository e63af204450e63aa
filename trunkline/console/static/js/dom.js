// DOM helpers: everything from the API goes in as text, never as HTML.

export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "dataset") Object.assign(node.dataset, value);
    else if (name.startsWith("on") && typeof value === "function") node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

export function $(selector) {
  return document.querySelector(selector);
}

// Show `rows` in `tbody`, keeping each existing row that is unchanged (same data-key and
// content), so a row being clicked is not swapped for a copy under the pointer.
export function replaceRows(tbody, rows) {
  const current = new Map([...tbody.children].map((row) => [row.dataset.key, row]));
  const kept = rows.map((row) => {
    const old = row.dataset.key === undefined ? undefined : current.get(row.dataset.key);
    return old && old.isEqualNode(row) ? old : row;
  });
  const same = kept.length === tbody.children.length && kept.every((row, i) => tbody.children[i] === row);
  if (!same) tbody.replaceChildren(...kept);
}

export function when(iso) {
  if (!iso) return "—";
  const date = new Date(iso);
  const today = new Date();
  const sameDay = date.toDateString() === today.toDateString();
  return sameDay ? date.toLocaleTimeString() : date.toLocaleString();
}

export function seconds(total) {
  if (total === null || total === undefined || Number.isNaN(total)) return "—";
  const whole = Math.max(0, Math.round(total));
  const h = Math.floor(whole / 3600);
  const m = Math.floor((whole % 3600) / 60);
  const s = String(whole % 60).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${s}` : `${m}:${s}`;
}

export function callDuration(call, now = Date.now()) {
  if (!call.started_at) return null;
  const end = call.ended_at ? Date.parse(call.ended_at) : now;
  return (end - Date.parse(call.started_at)) / 1000;
}

// The caller is the remote party of an inbound call and the local number of an outbound one.
export function parties(call) {
  return call.direction === "outbound"
    ? { caller: call.local_phone_number, callee: call.remote_phone_number }
    : { caller: call.remote_phone_number, callee: call.local_phone_number };
}

// Text with every case-insensitive occurrence of `term` wrapped in <mark>.
export function highlighted(text, term) {
  if (!term) return [text];
  const parts = [];
  const lower = text.toLowerCase();
  const needle = term.toLowerCase();
  let at = 0;
  for (let found = lower.indexOf(needle); found !== -1; found = lower.indexOf(needle, at)) {
    parts.push(text.slice(at, found), el("mark", {}, text.slice(found, found + needle.length)));
    at = found + needle.length;
  }
  parts.push(text.slice(at));
  return parts;
}

export function showStatus(message) {
  $("#status").textContent = message || "";
}
