// The broker's web page: topic tree with retained values and live counts, live messages on a
// pattern, Tasmota devices, clients, publishing. Everything a broker sends is shown as text
// (textContent), never as markup. Memory is bounded: at most MAX_TOPICS topics in the tree,
// MAX_LIVE lines in the live view.
"use strict";

const MAX_TOPICS = 10000;
const MAX_LIVE = 500;
const RATE_SECONDS = 60;

const state = {
  csrf: "",
  topics: new Map(), // topic -> { payload: Uint8Array, retained, count, at }
  skippedTopics: 0,
  open: new Set(["tele", "stat", "cmnd"]),
  selected: null,
  view: "text",
  tree: null,
  live: null,
  paused: false,
  pausedDrops: 0,
  renderQueued: false,
  rates: new Map(), // top level -> array of per-second counts
  fieldsShown: "",
  plot: null, // { topic, field }
};

const $ = (id) => document.getElementById(id);

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (cls) node.className = cls;
  return node;
}

function decodeBase64(text) {
  const raw = atob(text);
  const bytes = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
  return bytes;
}

const utf8 = new TextDecoder("utf-8", { fatal: false });
const asText = (bytes) => utf8.decode(bytes);
const asHex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join(" ");

function asJson(bytes) {
  try {
    return JSON.stringify(JSON.parse(asText(bytes)), null, 2);
  } catch (e) {
    return asText(bytes);
  }
}

async function api(method, path, body) {
  const headers = { "X-CSRF-Token": state.csrf };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "same-origin",
  });
  let data = {};
  try {
    data = await response.json();
  } catch (e) {
    data = {};
  }
  if (!response.ok) throw new Error(data.error || response.statusText);
  return data;
}

// ------------------------------------------------------------------ login

async function start() {
  const response = await fetch("/api/session", { credentials: "same-origin" });
  if (response.ok) {
    enter(await response.json());
  } else {
    $("login").hidden = false;
  }
}

$("login-form") && $("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("login-error").textContent = "";
  try {
    const session = await api("POST", "/api/login", {
      user: $("login-user").value,
      password: $("login-password").value,
    });
    $("login").hidden = true;
    enter(session);
  } catch (e) {
    $("login-error").textContent = e.message;
  }
});

$("logout").addEventListener("click", async () => {
  try {
    await api("POST", "/api/logout");
  } finally {
    location.reload();
  }
});

function enter(session) {
  state.csrf = session.csrf;
  $("who").textContent = session.user ? "logged in as " + session.user : "local access";
  $("logout").hidden = !session.user;
  $("clients-tab").hidden = !session.operator;
  $("app").hidden = false;
  watchTree();
  setInterval(tickRates, 1000);
}

// ------------------------------------------------------------------ tabs

document.querySelectorAll("nav button").forEach((button) => {
  button.addEventListener("click", () => {
    document.querySelectorAll("nav button").forEach((b) => b.classList.remove("active"));
    button.classList.add("active");
    document.querySelectorAll(".tab").forEach((tab) => {
      tab.hidden = tab.id !== button.dataset.tab;
    });
    if (button.dataset.tab === "clients") loadClients();
    if (button.dataset.tab === "devices") renderDevices();
  });
});

// ------------------------------------------------------------------ topic tree

function watchTree() {
  state.tree = new EventSource("/api/events?filter=%23&sample=1");
  state.tree.onmessage = (event) => {
    const message = JSON.parse(event.data);
    const known = state.topics.get(message.t);
    if (!known && state.topics.size >= MAX_TOPICS) {
      state.skippedTopics++;
      return;
    }
    const entry = known || { count: 0 };
    entry.payload = decodeBase64(message.p);
    entry.retained = message.r;
    entry.qos = message.q;
    entry.at = new Date();
    if (!message.r) {
      entry.count++;
      countRate(message.t);
    }
    state.topics.set(message.t, entry);
    queueRender();
  };
}

function queueRender() {
  if (state.renderQueued) return;
  state.renderQueued = true;
  setTimeout(() => {
    state.renderQueued = false;
    renderTree();
    renderDetail();
    if (!$("devices").hidden) renderDevices();
  }, 200);
}

$("search").addEventListener("input", queueRender);

function buildTree(topics) {
  const root = { children: new Map() };
  for (const topic of topics) {
    let node = root;
    let path = "";
    for (const level of topic.split("/")) {
      path = path === "" && node === root ? level : path + "/" + level;
      if (!node.children.has(level)) node.children.set(level, { path, children: new Map() });
      node = node.children.get(level);
    }
    node.topic = topic;
  }
  return root;
}

function messages(node) {
  let total = node.topic ? 1 : 0;
  for (const child of node.children.values()) total += messages(child);
  return total;
}

function renderTree() {
  const search = $("search").value.trim().toLowerCase();
  const topics = Array.from(state.topics.keys()).filter((t) => !search || t.toLowerCase().includes(search)).sort();
  const root = buildTree(topics);
  const tree = $("tree");
  tree.replaceChildren(...renderChildren(root, search !== ""));
  let count = state.topics.size + " topics";
  if (state.skippedTopics) count += " (" + state.skippedTopics + " more not shown: limit reached)";
  $("topic-count").textContent = count;
}

function renderChildren(node, expandAll) {
  const out = [];
  for (const [level, child] of node.children) {
    if (child.children.size === 0) {
      out.push(renderLeaf(level, child));
      continue;
    }
    const details = el("details");
    details.open = expandAll || state.open.has(child.path);
    details.addEventListener("toggle", () => {
      if (details.open) state.open.add(child.path);
      else state.open.delete(child.path);
    });
    const summary = el("summary", level);
    summary.appendChild(el("span", "(" + messages(child) + ")", "count"));
    if (child.topic) {
      summary.appendChild(el("span", "= " + preview(child.topic), "value"));
      summary.addEventListener("click", () => select(child.topic));
      if (state.selected === child.topic) summary.classList.add("selected");
    }
    details.appendChild(summary);
    details.append(...renderChildren(child, expandAll));
    out.push(details);
  }
  return out;
}

function renderLeaf(level, child) {
  const leaf = el("div", level, "leaf");
  leaf.dataset.topic = child.topic;
  leaf.appendChild(el("span", "= " + preview(child.topic), "value"));
  const entry = state.topics.get(child.topic);
  if (entry && entry.count) leaf.appendChild(el("span", entry.count + " msgs", "count"));
  if (state.selected === child.topic) leaf.classList.add("selected");
  leaf.addEventListener("click", () => select(child.topic));
  return leaf;
}

function preview(topic) {
  const entry = state.topics.get(topic);
  if (!entry) return "";
  const text = asText(entry.payload);
  return text.length > 60 ? text.slice(0, 60) + "…" : text;
}

function select(topic) {
  state.selected = topic;
  renderTree();
  renderDetail();
}

document.querySelectorAll("[data-view]").forEach((button) => {
  button.addEventListener("click", () => {
    document.querySelectorAll("[data-view]").forEach((b) => b.classList.remove("active"));
    button.classList.add("active");
    state.view = button.dataset.view;
    renderDetail();
  });
});

function renderDetail() {
  const entry = state.selected && state.topics.get(state.selected);
  $("detail").hidden = !entry;
  if (!entry) return;
  $("detail-topic").textContent = state.selected;
  $("detail-meta").textContent =
    (entry.retained ? "retained, " : "") + "QoS " + entry.qos + ", " + entry.payload.length +
    " bytes, " + entry.count + " messages seen, last at " + entry.at.toLocaleTimeString();
  const view = state.view === "json" ? asJson : state.view === "hex" ? asHex : asText;
  $("detail-payload").textContent = view(entry.payload);
  renderFields(state.selected, entry);
}

// ------------------------------------------------------------------ field histories

function numericFields(value, prefix, out) {
  for (const [key, v] of Object.entries(value)) {
    const path = prefix ? prefix + "." + key : key;
    if (typeof v === "number") out.push(path);
    else if (v && typeof v === "object" && !Array.isArray(v)) numericFields(v, path, out);
  }
  return out;
}

function renderFields(topic, entry) {
  let fields = [];
  try {
    const value = JSON.parse(asText(entry.payload));
    if (value && typeof value === "object") fields = numericFields(value, "", []);
  } catch (e) {
    fields = [];
  }
  const shown = topic + "|" + fields.join(",");
  if (shown === state.fieldsShown) return; // unchanged: keep the buttons under the pointer
  state.fieldsShown = shown;
  $("fields").replaceChildren(...fields.map((field) => {
    const button = el("button", "Plot " + field);
    button.type = "button";
    button.dataset.field = field;
    button.addEventListener("click", () => plot(topic, field));
    return button;
  }));
}

async function plot(topic, field) {
  try {
    await api("POST", "/api/history", { topic, field });
  } catch (e) {
    $("history-status").textContent = "not followed: " + e.message;
    return;
  }
  state.plot = { topic, field };
  loadHistory();
}

async function loadHistory() {
  if (!state.plot) return;
  const { topic, field } = state.plot;
  let points;
  try {
    points = await api("GET", "/api/history?" + new URLSearchParams({ topic, field }).toString());
  } catch (e) {
    $("history-status").textContent = e.message;
    return;
  }
  const last = points.length ? points[points.length - 1][1] : "none";
  $("history-status").textContent =
    field + " of " + topic + ": " + points.length + " points in the last hour, last " + last;
  const canvas = $("history-plot");
  canvas.hidden = false;
  const g = canvas.getContext("2d");
  g.clearRect(0, 0, canvas.width, canvas.height);
  if (points.length === 0) return;
  const values = points.map((p) => p[1]);
  const low = Math.min(...values);
  const high = Math.max(...values);
  const start = points[0][0];
  const span = Math.max(1, points[points.length - 1][0] - start);
  g.strokeStyle = "#2f6fb3";
  g.beginPath();
  points.forEach(([at, v], i) => {
    const x = ((at - start) / span) * (canvas.width - 20) + 10;
    const y = canvas.height - 15 - ((v - low) / Math.max(1e-9, high - low)) * (canvas.height - 30);
    if (i === 0) g.moveTo(x, y);
    else g.lineTo(x, y);
  });
  g.stroke();
  g.fillStyle = "#7a8699";
  g.fillText(String(high), 2, 10);
  g.fillText(String(low), 2, canvas.height - 2);
}

setInterval(loadHistory, 5000);

$("clear-retained").addEventListener("click", async () => {
  if (!state.selected) return;
  try {
    await api("POST", "/api/publish", { topic: state.selected, payload: "", qos: 1, retain: true });
    state.topics.delete(state.selected);
    state.selected = null;
    queueRender();
  } catch (e) {
    $("detail-meta").textContent = "not cleared: " + e.message;
  }
});

// ------------------------------------------------------------------ rates

function countRate(topic) {
  const top = topic.split("/")[0];
  if (!state.rates.has(top)) state.rates.set(top, new Array(RATE_SECONDS).fill(0));
  const series = state.rates.get(top);
  series[series.length - 1]++;
}

function tickRates() {
  for (const series of state.rates.values()) {
    series.shift();
    series.push(0);
  }
  drawRates();
}

function drawRates() {
  const canvas = $("rates");
  const g = canvas.getContext("2d");
  g.clearRect(0, 0, canvas.width, canvas.height);
  const tops = Array.from(state.rates.entries())
    .sort((a, b) => b[1].reduce((x, y) => x + y, 0) - a[1].reduce((x, y) => x + y, 0))
    .slice(0, 6);
  const max = Math.max(1, ...tops.flatMap(([, s]) => s));
  const colours = ["#2f6fb3", "#d9822b", "#3a9d5d", "#b3261e", "#7b4fb3", "#5f6b7a"];
  const w = (canvas.width - 160) / (RATE_SECONDS - 1);
  tops.forEach(([top, series], i) => {
    g.strokeStyle = colours[i];
    g.beginPath();
    series.forEach((v, x) => {
      const y = canvas.height - 10 - (v / max) * (canvas.height - 20);
      if (x === 0) g.moveTo(x * w, y);
      else g.lineTo(x * w, y);
    });
    g.stroke();
    g.fillStyle = colours[i];
    g.fillText(top + " " + series[series.length - 2] + "/s", canvas.width - 150, 15 + i * 16);
  });
  g.fillStyle = "#7a8699";
  g.fillText("max " + max + "/s", 4, 12);
}

// ------------------------------------------------------------------ live view

$("live-form").addEventListener("submit", (event) => {
  event.preventDefault();
  if (state.live) state.live.close();
  const query = new URLSearchParams({ filter: $("live-filter").value });
  if ($("live-exclude").value) query.append("exclude", $("live-exclude").value);
  $("live-list").replaceChildren();
  state.live = new EventSource("/api/events?" + query.toString());
  $("live-status").textContent = "watching " + $("live-filter").value;
  state.live.onmessage = (event) => {
    if (state.paused) {
      state.pausedDrops++;
      return;
    }
    const message = JSON.parse(event.data);
    const line = el("li");
    line.appendChild(el("b", message.t));
    line.appendChild(document.createTextNode(" " + asText(decodeBase64(message.p))));
    if (message.r) line.appendChild(el("span", "retained", "count"));
    const list = $("live-list");
    list.appendChild(line);
    while (list.childElementCount > MAX_LIVE) list.firstElementChild.remove();
  };
  state.live.addEventListener("dropped", (event) => {
    $("live-status").textContent = "the browser fell behind: " + event.data + " messages skipped";
  });
  state.live.onerror = () => {
    $("live-status").textContent = "stream interrupted; reconnecting";
  };
});

$("live-pause").addEventListener("click", () => {
  state.paused = !state.paused;
  $("live-pause").textContent = state.paused ? "Resume" : "Pause";
  if (!state.paused && state.pausedDrops) {
    $("live-status").textContent = state.pausedDrops + " messages passed while paused";
    state.pausedDrops = 0;
  }
});

// ------------------------------------------------------------------ Tasmota devices

function payloadJson(topic) {
  const entry = state.topics.get(topic);
  if (!entry) return null;
  try {
    return JSON.parse(asText(entry.payload));
  } catch (e) {
    return null;
  }
}

function renderDevices() {
  const body = $("device-table").tBodies[0];
  const rows = [];
  for (const topic of Array.from(state.topics.keys()).sort()) {
    const parts = topic.split("/");
    if (parts.length !== 3 || parts[0] !== "tele" || parts[2] !== "LWT") continue;
    const device = parts[1];
    const lwt = asText(state.topics.get(topic).payload);
    const stateJson = payloadJson("tele/" + device + "/STATE");
    const sensor = state.topics.get("tele/" + device + "/SENSOR");
    const power = state.topics.get("stat/" + device + "/POWER");
    const row = el("tr");
    row.appendChild(el("td", device));
    row.appendChild(el("td", lwt, lwt === "Online" ? "" : "error"));
    row.appendChild(el("td", power ? asText(power.payload) : stateJson && stateJson.POWER ? stateJson.POWER : ""));
    const last = sensor || state.topics.get("tele/" + device + "/STATE");
    row.appendChild(el("td", last ? asText(last.payload) : ""));
    const cell = el("td");
    const toggle = el("button", "Toggle");
    toggle.type = "button";
    toggle.addEventListener("click", () =>
      api("POST", "/api/publish", { topic: "cmnd/" + device + "/POWER", payload: "TOGGLE", qos: 0, retain: false })
        .catch((e) => { toggle.textContent = "refused: " + e.message; }));
    cell.appendChild(toggle);
    row.appendChild(cell);
    rows.push(row);
  }
  body.replaceChildren(...rows);
}

// ------------------------------------------------------------------ clients

$("clients-refresh").addEventListener("click", loadClients);

async function loadClients() {
  const body = $("client-table").tBodies[0];
  let clients;
  try {
    clients = await api("GET", "/api/clients");
  } catch (e) {
    body.replaceChildren(el("tr", "not allowed: " + e.message));
    return;
  }
  clients.sort((a, b) => a.id.localeCompare(b.id));
  body.replaceChildren(...clients.map((client) => {
    const row = el("tr");
    row.appendChild(el("td", client.id));
    row.appendChild(el("td", client.connected ? client.address || "" : "offline"));
    row.appendChild(el("td", client.user || ""));
    row.appendChild(el("td", client.protocol));
    row.appendChild(el("td", client.keep_alive === null ? "" : client.keep_alive + " s"));
    row.appendChild(el("td", client.subscriptions.map((s) => s.filter + " (QoS " + s.qos + ")").join(", ")));
    row.appendChild(el("td", client.queued));
    const cell = el("td");
    if (client.connected) {
      const kick = el("button", "Disconnect");
      kick.type = "button";
      kick.addEventListener("click", async () => {
        await api("POST", "/api/disconnect", { client_id: client.id }).catch(() => {});
        loadClients();
      });
      cell.appendChild(kick);
    }
    row.appendChild(cell);
    return row;
  }));
}

// ------------------------------------------------------------------ publish

$("publish-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const result = $("pub-result");
  result.textContent = "";
  try {
    await api("POST", "/api/publish", {
      topic: $("pub-topic").value,
      payload: $("pub-payload").value,
      qos: Number($("pub-qos").value),
      retain: $("pub-retain").checked,
    });
    result.textContent = "published";
  } catch (e) {
    result.textContent = "refused: " + e.message;
  }
});

start();
