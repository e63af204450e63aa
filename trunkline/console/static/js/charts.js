// Live charts from GET /api/v1/console/stats, sampled every 2 s and drawn on <canvas> by hand.
// The server sends cumulative Prometheus values; rates and a windowed p99 come from the
// difference between consecutive samples.

import { CONSOLE, get } from "./api.js";
import { $ } from "./dom.js";
import { Poller } from "./poll.js";

const KEEP = 150; // 5 minutes at one sample per 2 s
const samples = [];

export const statsPoller = new Poller(2000, sample);

export function resetCharts() {
  samples.length = 0;
}

async function sample() {
  const stats = await get(`${CONSOLE}/stats`);
  samples.push({ at: Date.now(), stats });
  if (samples.length > KEEP) samples.shift();
  draw();
}

// Prometheus' histogram_quantile over the bucket counts gained between two samples.
export function quantile(q, before, after) {
  if (!before || !after || before.length !== after.length) return null;
  const gained = after.map(([bound, count], i) => [bound, count - before[i][1]]);
  const total = gained[gained.length - 1][1];
  if (total <= 0) return null;
  const rank = q * total;
  let lowerBound = 0;
  let lowerCount = 0;
  for (const [bound, count] of gained) {
    if (count >= rank) {
      if (bound === null) return lowerBound; // beyond the last finite bound
      const inBucket = count - lowerCount;
      return inBucket > 0 ? lowerBound + ((bound - lowerBound) * (rank - lowerCount)) / inBucket : bound;
    }
    lowerBound = bound === null ? lowerBound : bound;
    lowerCount = count;
  }
  return null;
}

function series() {
  const active = samples.map((s) => ({ at: s.at, value: s.stats.live_calls }));
  const fps = [];
  const loss = [];
  const toAgent = [];
  const toCaller = [];
  for (let i = 1; i < samples.length; i += 1) {
    const a = samples[i - 1];
    const b = samples[i];
    const m0 = a.stats.media;
    const m1 = b.stats.media;
    if (!m0 || !m1) continue;
    const dt = (b.at - a.at) / 1000;
    const frames = m1.frames_to_agent + m1.frames_to_caller - m0.frames_to_agent - m0.frames_to_caller;
    fps.push({ at: b.at, value: dt > 0 ? frames / dt : null });
    const lost = m1.rtp_packets_lost - m0.rtp_packets_lost;
    const arrived = m1.rtp_packets_in - m0.rtp_packets_in;
    loss.push({ at: b.at, value: lost + arrived > 0 ? (100 * lost) / (lost + arrived) : null });
    const p99 = (side) => {
      const value = quantile(0.99, m0.latency_buckets[side], m1.latency_buckets[side]);
      return value === null ? null : value * 1000;
    };
    toAgent.push({ at: b.at, value: p99("to_agent") });
    toCaller.push({ at: b.at, value: p99("to_caller") });
  }
  return { active, fps, loss, toAgent, toCaller };
}

function latest(points, digits) {
  for (let i = points.length - 1; i >= 0; i -= 1) {
    if (points[i].value !== null) return points[i].value.toFixed(digits);
  }
  return "—";
}

export function draw() {
  const last = samples[samples.length - 1];
  if (!last) return;
  const data = series();
  const media = last.stats.media !== null;
  $("#value-active").textContent = `${last.stats.live_calls}${last.stats.live_calls_capped ? "+" : ""}`;
  plot($("#chart-active"), [{ points: data.active, color: "#1f6feb" }], { integer: true });
  for (const figure of document.querySelectorAll("#charts-view figure.media")) figure.hidden = !media;
  $("#charts-note").textContent = media
    ? "Media figures are process-wide: every organisation's calls on the process that answered."
    : "Media figures are process-wide, so only organisation admin tokens see them (and only when the operator allows it).";
  if (!media) return;
  $("#value-fps").textContent = latest(data.fps, 0);
  $("#value-loss").textContent = latest(data.loss, 2);
  $("#value-latency").textContent = `${latest(data.toAgent, 1)} / ${latest(data.toCaller, 1)}`;
  plot($("#chart-fps"), [{ points: data.fps, color: "#1a7f37" }]);
  plot($("#chart-loss"), [{ points: data.loss, color: "#c4321c" }]);
  plot($("#chart-latency"), [
    { points: data.toAgent, color: "#8250df", label: "caller → agent" },
    { points: data.toCaller, color: "#bf8700", label: "agent → caller" },
  ]);
}

function plot(canvas, lines, { integer = false } = {}) {
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth || canvas.width;
  const height = canvas.clientHeight || canvas.height;
  if (canvas.width !== Math.round(width * ratio)) canvas.width = Math.round(width * ratio);
  if (canvas.height !== Math.round(height * ratio)) canvas.height = Math.round(height * ratio);
  const g = canvas.getContext("2d");
  g.setTransform(ratio, 0, 0, ratio, 0, 0);
  g.clearRect(0, 0, width, height);
  const left = 44;
  const right = width - 8;
  const top = 8;
  const bottom = height - 20;
  const now = Date.now();
  // The x axis runs from the oldest sample kept (at least 30 s, at most 5 minutes) to now.
  const oldest = samples.length ? samples[0].at : now;
  const span = Math.min(KEEP * 2000, Math.max(30_000, now - oldest));
  const values = lines.flatMap((line) => line.points.map((p) => p.value)).filter((v) => v !== null);
  let max = Math.max(1, ...values) * 1.15;
  if (integer) max = Math.ceil(max / 4) * 4; // four grid steps of whole calls
  g.font = "11px system-ui, sans-serif";
  g.fillStyle = "#5f6b78";
  g.strokeStyle = "#e3e7eb";
  g.lineWidth = 1;
  for (let i = 0; i <= 4; i += 1) {
    const y = bottom - ((bottom - top) * i) / 4;
    g.beginPath();
    g.moveTo(left, y);
    g.lineTo(right, y);
    g.stroke();
    const label = (max * i) / 4;
    g.fillText(integer ? String(Math.round(label)) : label.toFixed(label < 10 ? 1 : 0), 4, y + 4);
  }
  g.fillText(span >= 120_000 ? `−${Math.round(span / 60_000)} min` : `−${Math.round(span / 1000)} s`, left, height - 4);
  g.fillText("now", right - 22, height - 4);
  const x = (at) => left + ((right - left) * (at - (now - span))) / span;
  const y = (value) => bottom - ((bottom - top) * value) / max;
  lines.forEach((line, index) => {
    g.strokeStyle = line.color;
    g.lineWidth = 2;
    g.beginPath();
    let drawing = false;
    for (const point of line.points) {
      if (point.value === null || point.at < now - span) {
        drawing = false;
        continue;
      }
      if (drawing) g.lineTo(x(point.at), y(point.value));
      else g.moveTo(x(point.at), y(point.value));
      drawing = true;
    }
    g.stroke();
    if (line.label) {
      g.fillStyle = line.color;
      g.fillText(line.label, left + 8 + index * 110, top + 10);
    }
  });
}
