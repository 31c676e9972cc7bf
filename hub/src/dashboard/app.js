// evsync hub dashboard: the operators' console, as one page of plain JS.
//
// It holds no data of its own. Every figure comes from the hub's /api/v1
// with the token the operator signs in with (kept in sessionStorage, sent as
// Authorization: Bearer), so the API's roles and its audit log apply to
// every read. Text from the API is only ever set with textContent or as a
// text node, never parsed as HTML. Fields the hub does not send show "—".
"use strict";

const TOKEN_KEY = "evsync.dashboard.token";
const REFRESH_MS = 5000;
const DRIFT_WARN_MS = 2000;
const DIRECTORY_TTL_MS = 60000;
const DASH = "—";

const $ = (id) => document.getElementById(id);

// ---------------------------------------------------------------- DOM helpers

/** Builds an element; children that are not nodes become text nodes. */
function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") el.className = v;
    else if (k === "title") el.title = String(v);
    else if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/** True when the API gave nothing to show. */
function missing(v) {
  return v === undefined || v === null || v === "" || (typeof v === "number" && !Number.isFinite(v));
}

/** The value as text, or a dash. */
function show(v) {
  if (missing(v)) return DASH;
  if (typeof v === "boolean") return v ? "yes" : "no";
  if (typeof v === "object") return JSON.stringify(v);
  return String(v);
}

function num(v) {
  const n = typeof v === "string" && v.trim() !== "" ? Number(v) : v;
  return typeof n === "number" && Number.isFinite(n) ? n : null;
}

function bytes(v) {
  const n = num(v);
  if (n === null) return DASH;
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let x = n;
  let i = 0;
  while (Math.abs(x) >= 1024 && i < units.length - 1) {
    x /= 1024;
    i += 1;
  }
  return (i === 0 ? String(x) : x.toFixed(x < 10 ? 1 : 0)) + " " + units[i];
}

function count(v) {
  const n = num(v);
  return n === null ? DASH : n.toLocaleString("en-US");
}

function duration(seconds) {
  const s = num(seconds);
  if (s === null) return DASH;
  if (s < 60) return Math.round(s) + " s";
  if (s < 3600) return Math.floor(s / 60) + " min " + Math.round(s % 60) + " s";
  if (s < 86400) return Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min";
  return Math.floor(s / 86400) + " d " + Math.floor((s % 86400) / 3600) + " h";
}

function parseTime(t) {
  if (missing(t)) return null;
  const ms = Date.parse(t);
  return Number.isNaN(ms) ? null : ms;
}

/** "12 s ago", with the exact time as a tooltip. */
function ago(t) {
  const ms = parseTime(t);
  if (ms === null) return h("span", { class: "muted" }, missing(t) ? DASH : String(t));
  const s = Math.max(0, (Date.now() - ms) / 1000);
  const text = s < 5 ? "just now" : duration(s).split(" ").slice(0, 2).join(" ") + " ago";
  return h("time", { datetime: String(t), title: fullTime(t) }, text);
}

function fullTime(t) {
  const ms = parseTime(t);
  if (ms === null) return show(t);
  const d = new Date(ms);
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

function when(t) {
  return parseTime(t) === null ? show(t) : h("time", { datetime: String(t), title: String(t) }, fullTime(t));
}

function badge(text, tone) {
  return h("span", { class: "badge badge-" + (tone || "neutral") }, text);
}

function link(href, text) {
  return h("a", { href }, text);
}

function deviceLink(id) {
  return missing(id) ? DASH : link("#/devices/" + encodeURIComponent(id), String(id));
}

function recordLink(id, text) {
  return missing(id) ? DASH : link("#/records/" + encodeURIComponent(id), text || String(id));
}

/** A bar of `done` out of `total`, with its figures. */
function progress(done, total, label) {
  const d = num(done);
  const t = num(total);
  const pct = d !== null && t ? Math.max(0, Math.min(100, (100 * d) / t)) : null;
  const fill = h("div", { class: "bar-fill" });
  fill.style.width = (pct === null ? 0 : pct.toFixed(1)) + "%";
  return h(
    "div",
    { class: "progress" },
    h("div", { class: "bar", role: "progressbar", "aria-valuemin": 0, "aria-valuemax": 100, "aria-valuenow": pct === null ? null : Math.floor(pct) }, fill),
    h("div", { class: "bar-label" }, label || `${bytes(d)} / ${bytes(t)}`, pct === null ? "" : ` · ${Math.floor(pct)}%`),
  );
}

function table(headers, rows, empty) {
  if (!rows.length) return h("p", { class: "empty" }, empty);
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      { class: "grid" },
      h("thead", null, h("tr", null, headers.map((x) => h("th", { class: x.cls }, x.label || x)))),
      h("tbody", null, rows),
    ),
  );
}

function fields(pairs) {
  return h(
    "dl",
    { class: "fields" },
    pairs.filter(Boolean).map(([k, v]) => [h("dt", null, k), h("dd", null, v instanceof Node ? v : show(v))]),
  );
}

function section(title, ...body) {
  return h("section", { class: "card" }, h("h2", null, title), body);
}

function asArray(body, key) {
  if (Array.isArray(body)) return body;
  if (body && Array.isArray(body[key])) return body[key];
  return [];
}

// ---------------------------------------------------------------- API access

class AuthError extends Error {}

function token() {
  try {
    return sessionStorage.getItem(TOKEN_KEY);
  } catch (_) {
    return null;
  }
}

/** GET an API path as JSON; a 401 throws AuthError, any other failure Error with status. */
async function api(path) {
  const t = token();
  if (!t) throw new AuthError("Sign in with an API token.");
  let resp;
  try {
    resp = await fetch(path, {
      headers: { Authorization: "Bearer " + t, Accept: "application/json" },
      cache: "no-store",
      credentials: "omit",
    });
  } catch (e) {
    throw new Error("The hub did not answer: " + e.message);
  }
  let body = null;
  try {
    body = await resp.json();
  } catch (_) {
    body = null;
  }
  if (resp.status === 401) {
    throw new AuthError("The hub refused the token (401 Unauthorized): " + ((body && body.error) || "sign in again") + ".");
  }
  if (!resp.ok) {
    const err = new Error(`GET ${path}: ${resp.status} ${(body && body.error) || resp.statusText}`);
    err.status = resp.status;
    err.reason = `${resp.status} ${(body && body.error) || resp.statusText}`;
    throw err;
  }
  return body;
}

/** Like api(), but null when the hub has no such route or the role may not read it. */
async function optional(path) {
  try {
    return await api(path);
  } catch (e) {
    if (e instanceof AuthError) throw e;
    return null;
  }
}

const directory = { at: 0, officers: new Map(), units: new Map() };

/** Names of officers and units (for 张三 instead of 100001), when the hub serves them. */
async function loadDirectory() {
  if (Date.now() - directory.at < DIRECTORY_TTL_MS) return;
  const [officers, units] = await Promise.all([optional("/api/v1/officers"), optional("/api/v1/units")]);
  directory.officers = new Map();
  directory.units = new Map();
  for (const o of asArray(officers, "officers")) {
    const id = o && (o.officer_id ?? o.id);
    if (!missing(id) && !missing(o.name)) directory.officers.set(String(id), String(o.name));
  }
  for (const u of asArray(units, "units")) {
    const code = u && (u.unit_code ?? u.code ?? u.id);
    if (!missing(code) && !missing(u.name)) directory.units.set(String(code), String(u.name));
  }
  directory.at = Date.now();
}

function officer(id, name) {
  if (missing(id) && missing(name)) return DASH;
  const n = missing(name) ? directory.officers.get(String(id)) : name;
  return n ? h("span", { class: "named" }, n, " ", h("span", { class: "code" }, show(id))) : String(id);
}

function unit(code, name) {
  if (missing(code) && missing(name)) return DASH;
  const n = missing(name) ? directory.units.get(String(code)) : name;
  return n ? h("span", { class: "named stacked" }, h("span", null, n), h("span", { class: "code" }, show(code))) : String(code);
}

// ---------------------------------------------------------------- device figures

function kindOf(d) {
  return d.kind ?? d.role ?? null;
}

function status(d) {
  return d.status && typeof d.status === "object" ? d.status : {};
}

function backlogRecords(d) {
  return d.backlog_records ?? status(d).backlog_records;
}

function backlogBytes(d) {
  return d.backlog_bytes ?? status(d).backlog_bytes;
}

function slotsOf(d) {
  return Array.isArray(status(d).slots) ? status(d).slots.filter((s) => s && typeof s === "object") : [];
}

function transfersOf(d) {
  return Array.isArray(status(d).transfers) ? status(d).transfers.filter((t) => t && typeof t === "object") : [];
}

/** Recorders in a dock's slots now: from its slots, and from recorders that name it. */
function dockedIn(dock, devices) {
  const ids = new Set();
  for (const s of slotsOf(dock)) if (!missing(s.recorder) && s.state !== "empty") ids.add(String(s.recorder));
  for (const d of devices) if (d.docked_in === dock.device_id) ids.add(String(d.device_id));
  return [...ids].sort();
}

function onlineBadge(d) {
  if (d.online === true) return badge("online", "ok");
  if (d.online === false) return badge("offline", "off");
  return badge("unknown", "neutral");
}

function stateBadge(state) {
  const tone = { approved: "ok", pending: "warn", revoked: "bad" }[state] || "neutral";
  // Outlined, so that a filled green badge always means a live link or a good check.
  return missing(state) ? DASH : h("span", { class: "badge badge-outline badge-" + tone }, String(state));
}

function battery(pct) {
  const n = num(pct);
  if (n === null) return DASH;
  const tone = n < 15 ? "bad" : n < 35 ? "warn" : "ok";
  return h("span", { class: "battery battery-" + tone }, n + "%");
}

function storage(free, total) {
  const f = num(free);
  const t = num(total);
  if (f === null && t === null) return DASH;
  if (t === null || t === 0) return bytes(f) + " free";
  const used = Math.max(0, Math.min(100, (100 * (t - (f ?? 0))) / t));
  const fill = h("div", { class: "bar-fill" + (used > 90 ? " bar-bad" : used > 75 ? " bar-warn" : "") });
  fill.style.width = used.toFixed(1) + "%";
  return h("div", { class: "mini", title: `${bytes(f)} free of ${bytes(t)}` }, h("div", { class: "bar bar-mini" }, fill), h("span", { class: "small" }, bytes(f) + " free"));
}

function clockOffset(ms) {
  const n = num(ms);
  if (n === null) return DASH;
  const text = (n > 0 ? "+" : "") + (Math.abs(n) >= 1000 ? (n / 1000).toFixed(1) + " s" : n + " ms");
  return h("span", { class: Math.abs(n) > DRIFT_WARN_MS ? "drift" : "" }, text);
}

function backlog(d) {
  const r = num(backlogRecords(d));
  const b = num(backlogBytes(d));
  if (r === null && b === null) return DASH;
  return h("span", { class: r ? "backlog-some" : "muted" }, `${count(r)} rec`, h("span", { class: "muted" }, " · " + bytes(b)));
}

function mediaBacklog(m) {
  if (missing(m) || typeof m !== "object") return show(m);
  const failed = num(m.failed);
  return h("span", null, `${count(m.files)} files · ${bytes(m.bytes)}`, failed ? h("span", { class: "error-text" }, ` · ${count(failed)} failed`) : null);
}

function alertTone(kind) {
  if (["chain_break", "seq_conflict", "key_mismatch", "media_failed", "recorder_files_missing", "config_drift"].includes(kind)) return "bad";
  if (["sequence_gap", "file_index_gap", "clock_drift", "config_failed"].includes(kind)) return "warn";
  return "neutral";
}

function alertRange(a) {
  const parts = [];
  if (!missing(a.seq_from)) parts.push(a.seq_from === a.seq_to || missing(a.seq_to) ? `seq ${a.seq_from}` : `seq ${a.seq_from}–${a.seq_to}`);
  if (!missing(a.file_from)) parts.push(a.file_from === a.file_to || missing(a.file_to) ? `file #${a.file_from}` : `files #${a.file_from}–${a.file_to}`);
  return parts.length ? parts.join(", ") : DASH;
}

function newestFirst(alerts) {
  return [...alerts].sort((a, b) => (parseTime(b.raised_at) ?? 0) - (parseTime(a.raised_at) ?? 0) || (num(b.id) ?? 0) - (num(a.id) ?? 0));
}

function alertRows(alerts, withDevice) {
  return newestFirst(alerts).map((a) =>
    h(
      "tr",
      { class: missing(a.resolved_at) ? "" : "resolved" },
      h("td", { class: "nowrap" }, ago(a.raised_at)),
      h("td", null, badge(show(a.kind), alertTone(a.kind))),
      withDevice ? h("td", { class: "mono" }, deviceLink(a.device_id)) : null,
      h("td", { class: "mono small" }, missing(a.agent_id) || a.agent_id === a.device_id ? DASH : deviceLink(a.agent_id)),
      h("td", { class: "nowrap" }, alertRange(a)),
      h("td", { class: "detail" }, show(a.detail)),
      h("td", { class: "nowrap" }, missing(a.resolved_at) ? badge("open", alertTone(a.kind)) : h("span", { class: "muted" }, "resolved ", ago(a.resolved_at))),
    ),
  );
}

const ALERT_HEADERS = ["Raised", "Kind", "Device", "Source", "Range", "Detail", "State"];

// ---------------------------------------------------------------- shared loads

async function loadFleet() {
  const [devices, alerts] = await Promise.all([api("/api/v1/devices"), api("/api/v1/alerts?open=true&limit=1000"), loadDirectory()]);
  const list = asArray(devices, "devices").filter((d) => d && typeof d === "object");
  list.sort((a, b) => String(a.device_id).localeCompare(String(b.device_id)));
  const open = asArray(alerts, "alerts").filter((a) => a && typeof a === "object" && missing(a.resolved_at));
  setCount("alert-count", open.length);
  setCount("transfer-count", list.reduce((n, d) => n + transfersOf(d).length + slotsOf(d).filter((s) => s.copying).length, 0));
  return { devices: list, open };
}

function setCount(id, n) {
  const el = $(id);
  el.textContent = String(n);
  el.hidden = !n;
}

function stat(label, value, tone, sub) {
  return h("div", { class: "stat stat-" + (tone || "neutral") }, h("div", { class: "stat-label" }, label), h("div", { class: "stat-value" }, value), sub ? h("div", { class: "stat-sub" }, sub) : null);
}

// ---------------------------------------------------------------- views

async function fleetView() {
  const { devices, open } = await loadFleet();
  const online = devices.filter((d) => d.online === true).length;
  const recs = devices.reduce((n, d) => n + (num(backlogRecords(d)) ?? 0), 0);
  const bts = devices.reduce((n, d) => n + (num(backlogBytes(d)) ?? 0), 0);
  const uploads = devices.reduce((n, d) => n + transfersOf(d).length, 0);
  const alertsBy = new Map();
  for (const a of open) alertsBy.set(a.device_id, (alertsBy.get(a.device_id) || 0) + 1);
  const pending = devices.filter((d) => d.state === "pending").length;

  const rows = devices.map((d) => {
    const kind = kindOf(d);
    const docked = kind === "dock" ? dockedIn(d, devices) : [];
    const n = alertsBy.get(d.device_id);
    return h(
      "tr",
      { "data-device": show(d.device_id), class: d.online === false ? "is-offline" : "" },
      h("td", { class: "mono nowrap" }, deviceLink(d.device_id), n ? h("span", { class: "count count-inline", title: `${n} open alert(s)` }, String(n)) : null),
      h("td", null, show(kind)),
      h("td", null, stateBadge(d.state)),
      h("td", null, onlineBadge(d)),
      h("td", { class: "nowrap" }, ago(d.last_seen)),
      h("td", null, officer(d.officer_id, d.officer_name)),
      h("td", { class: "unit" }, unit(d.unit_code, d.unit_name)),
      h("td", { class: "num" }, battery(d.battery_pct ?? status(d).battery_pct)),
      h("td", null, storage(d.storage_free_bytes ?? status(d).storage_free_bytes, d.storage_total_bytes ?? status(d).storage_total_bytes)),
      h("td", { class: "num nowrap" }, backlog(d)),
      h("td", { class: "num nowrap" }, clockOffset(d.clock_offset_ms)),
      h("td", { class: "mono small" + (kind === "dock" ? "" : " nowrap") }, kind === "dock" ? (docked.length ? docked.map((id, i) => [i ? ", " : "", deviceLink(id)]) : h("span", { class: "muted" }, "none")) : missing(d.docked_in) ? h("span", { class: "muted" }, DASH) : ["in ", deviceLink(d.docked_in)]),
    );
  });

  return h(
    "div",
    { class: "view", "data-view": "fleet" },
    h("div", { class: "view-head" }, h("h1", null, "Fleet"), h("span", { class: "muted" }, "Refreshes every 5 s")),
    h(
      "div",
      { class: "stats" },
      stat("Devices", count(devices.length), "neutral", pending ? `${pending} pending approval` : "enrolled"),
      stat("Online", `${online} / ${devices.length}`, online === devices.length && devices.length ? "ok" : "warn", `${devices.length - online} offline`),
      stat("Open alerts", count(open.length), open.length ? "bad" : "ok", open.length ? "need attention" : "none"),
      stat("Backlog", count(recs) + " rec", recs ? "warn" : "ok", bytes(bts) + " waiting"),
      stat("Uploads", count(uploads), uploads ? "info" : "neutral", "in progress"),
    ),
    h(
      "section",
      { class: "card card-flush" },
      table(
        ["Device", "Kind", "State", "Link", "Last seen", "Officer", "Unit", { label: "Battery", cls: "num" }, "Storage", { label: "Backlog", cls: "num" }, { label: "Clock", cls: "num" }, "Docked"],
        rows,
        "No devices have enrolled yet. Devices appear here when their agent first announces itself.",
      ),
    ),
  );
}

async function alertsView(route) {
  const all = route.query.get("all") === "1";
  const [body] = await Promise.all([api(all ? "/api/v1/alerts?limit=500" : "/api/v1/alerts?open=true&limit=500"), loadFleet()]);
  const alerts = asArray(body, "alerts").filter((a) => a && typeof a === "object");
  return h(
    "div",
    { class: "view", "data-view": "alerts" },
    h(
      "div",
      { class: "view-head" },
      h("h1", null, all ? "All alerts" : "Open alerts"),
      h("div", { class: "tabs" }, h("a", { href: "#/alerts", class: all ? "" : "active" }, "Open"), h("a", { href: "#/alerts?all=1", class: all ? "active" : "" }, "All, with resolved")),
    ),
    h("section", { class: "card card-flush" }, table(ALERT_HEADERS, alertRows(alerts, true), all ? "No alerts have been raised." : "No open alerts: every chain is complete and intact.")),
  );
}

async function transfersView() {
  const { devices } = await loadFleet();
  const uploads = [];
  const slots = [];
  for (const d of devices) {
    for (const t of transfersOf(d)) uploads.push([d, t]);
    for (const s of slotsOf(d)) slots.push([d, s]);
  }
  const uploadRows = uploads.map(([d, t]) =>
    h(
      "tr",
      null,
      h("td", { class: "mono nowrap" }, deviceLink(d.device_id), h("div", { class: "small muted" }, "heartbeat ", ago(status(d).at))),
      h("td", null, recordLink(t.record_id, show(t.file))),
      h("td", { class: "wide" }, progress(t.bytes_done, t.bytes_total)),
      h("td", { class: "num nowrap" }, num(t.rate_bps) === null ? DASH : bytes(t.rate_bps) + "/s"),
      h("td", { class: "num nowrap" }, duration(t.eta_s)),
    ),
  );
  const slotTone = { copying: "info", identifying: "info", waiting: "warn", cleared: "ok", checked_out: "neutral", failed: "bad", empty: "off" };
  const slotRows = slots.map(([d, s]) =>
    h(
      "tr",
      null,
      h("td", { class: "mono nowrap" }, deviceLink(d.device_id), h("div", { class: "small muted" }, "heartbeat ", ago(status(d).at))),
      h("td", { class: "num" }, show(s.slot)),
      h("td", null, missing(s.state) ? DASH : badge(String(s.state).replace("_", " "), slotTone[s.state])),
      h("td", { class: "mono" }, deviceLink(s.recorder)),
      h("td", null, officer(s.officer)),
      h("td", { class: "num" }, battery(s.battery_pct)),
      h("td", { class: "num nowrap" }, `${count(s.files_copied)} / ${count(s.files_on_recorder)}`),
      h("td", { class: "wide" }, s.copying && typeof s.copying === "object" ? [h("div", { class: "small" }, `#${show(s.copying.index)} ${show(s.copying.name)}`), progress(s.copying.bytes_done, s.copying.bytes_total)] : h("span", { class: "muted" }, "idle")),
      h("td", { class: "detail" }, missing(s.error) ? "" : h("span", { class: "error-text" }, String(s.error))),
    ),
  );
  return h(
    "div",
    { class: "view", "data-view": "transfers" },
    h("div", { class: "view-head" }, h("h1", null, "Transfers"), h("span", { class: "muted" }, "From each agent's last heartbeat")),
    section("Uploads to the hub", table(["Agent", "Recording", "Progress", { label: "Rate", cls: "num" }, { label: "Time left", cls: "num" }], uploadRows, "No uploads in progress: every agent's recordings are at the hub.")),
    section("Dock slots", table(["Dock", { label: "Slot", cls: "num" }, "State", "Recorder", "Officer", { label: "Battery", cls: "num" }, { label: "Copied / listed", cls: "num" }, "Copying", "Error"], slotRows, "No dock has reported its slots.")),
  );
}

async function deviceView(route) {
  const id = route.id;
  const enc = encodeURIComponent(id);
  const [one, fleet] = await Promise.all([optional(`/api/v1/devices/${enc}`), loadFleet()]);
  const d = (one && typeof one === "object" && !Array.isArray(one) && (one.device || one)) || fleet.devices.find((x) => x.device_id === id);
  if (!d) return notFound(`No device with id ${id}.`);
  const records = await latestRecords(id, kindOf(d));
  const alerts = Array.isArray(d.alerts)
    ? d.alerts.filter((a) => a && typeof a === "object")
    : asArray(await optional("/api/v1/alerts?limit=1000"), "alerts").filter((a) => a && (a.device_id === id || a.agent_id === id));
  const s = status(d);
  const kind = kindOf(d);
  const assignments = Array.isArray(d.assignments) ? d.assignments.filter((a) => a && typeof a === "object") : null;
  const docked = kind === "dock" ? dockedIn(d, fleet.devices) : [];
  const config = kind === "recorder" ? await optional(`/api/v1/devices/${enc}/config`) : null;

  const recordRows = records.map((r) =>
    h(
      "tr",
      null,
      h("td", { class: "num" }, show(r.seq)),
      h("td", { class: "nowrap" }, recordLink(r.id, kindLabel(r))),
      h("td", null, summary(r)),
      h("td", { class: "nowrap" }, when(r.device_time)),
      h("td", { class: "nowrap" }, when(r.received_at)),
      h("td", null, r.verified === true ? badge("verified", "ok") : r.verified === false ? badge("not verified", "bad") : DASH),
    ),
  );

  return h(
    "div",
    { class: "view", "data-view": "device" },
    h("div", { class: "view-head" }, h("div", null, h("div", { class: "crumbs" }, link("#/fleet", "Fleet"), " / device"), h("h1", { class: "mono" }, show(d.device_id))), h("div", { class: "head-badges" }, onlineBadge(d), stateBadge(d.state), missing(kind) ? null : badge(String(kind), "neutral"), reloadButton())),
    h(
      "div",
      { class: "columns" },
      section(
        "Device",
        fields([
          ["Kind", kind],
          ["State", stateBadge(d.state)],
          ["Link", onlineBadge(d)],
          ["Last seen", ago(d.last_seen)],
          ["Officer", officer(d.officer_id, d.officer_name)],
          ["Unit", unit(d.unit_code, d.unit_name)],
          ["Domain", d.domain],
          ["Firmware", d.firmware ?? d.software],
          ["Config version", d.config_version],
          ["Docked in", missing(d.docked_in) ? DASH : deviceLink(d.docked_in)],
          kind === "dock" ? ["Docked recorders", docked.length ? h("span", { class: "mono" }, docked.map((x, i) => [i ? ", " : "", deviceLink(x)])) : "none"] : null,
          ["Public key", missing(d.public_key) ? DASH : h("code", { class: "wrap" }, String(d.public_key))],
          ["Enrolled", when(d.first_seen)],
        ]),
      ),
      section(
        "Health",
        fields([
          ["Battery", battery(d.battery_pct ?? s.battery_pct)],
          ["Storage", storage(d.storage_free_bytes ?? s.storage_free_bytes, d.storage_total_bytes ?? s.storage_total_bytes)],
          ["Clock offset", clockOffset(d.clock_offset_ms)],
          kind === "recorder" ? null : ["Backlog", backlog(d)],
          ...(kind === "recorder"
            ? []
            : [
                ["Media backlog", mediaBacklog(s.media_backlog)],
                ["Uploads receipted", s.uploads && s.uploads.receipted],
                ["Upload failures", s.uploads && s.uploads.failed],
                ["Batches sent", s.batches_sent],
                ["Resends", s.resends],
                ["Refused records", s.refused_records],
                ["Heartbeat", missing(s.at) ? DASH : ago(s.at)],
              ]),
        ]),
      ),
    ),
    kind === "recorder" ? configSection(config) : null,
    transfersOf(d).length ? section("Uploads in progress", table(["Recording", "Progress"], transfersOf(d).map((t) => h("tr", null, h("td", null, recordLink(t.record_id, show(t.file))), h("td", { class: "wide" }, progress(t.bytes_done, t.bytes_total)))), "")) : null,
    section(
      "Assignment history",
      assignments === null
        ? h("p", { class: "empty" }, "The hub did not send an assignment history for this device.")
        : table(
            ["From", "To", "Officer", "Unit", "Domain", "Source", "By"],
            [...assignments]
              .sort((a, b) => (parseTime(b.from) ?? 0) - (parseTime(a.from) ?? 0))
              .map((a) => h("tr", { class: missing(a.to) ? "current" : "" }, h("td", { class: "nowrap" }, when(a.from)), h("td", { class: "nowrap" }, missing(a.to) ? badge("current", "ok") : when(a.to)), h("td", null, officer(a.officer_id, a.officer_name)), h("td", null, unit(a.unit_code, a.unit_name)), h("td", null, show(a.domain)), h("td", null, show(a.source)), h("td", null, show(a.by)))),
            "No assignments recorded.",
          ),
    ),
    section("Alerts", table(["Raised", "Kind", "Source", "Range", "Detail", "State"], alertRows(alerts, false), "No alerts for this device.")),
    section("Latest records", table([{ label: "Seq", cls: "num" }, "Record", "What", "Device time", "Received", "Verified"], recordRows, "No records from this device yet.")),
  );
}

const configTone = { assigned: "neutral", delivered: "neutral", applied: "ok", failed: "bad", installed: "ok" };

function shortHash(hash) {
  return missing(hash) ? DASH : h("code", { title: String(hash) }, String(hash).slice(0, 12));
}

/** A recorder's configuration: its signed assignment and where it stands,
 * what its dock last read from it, its firmware, and the settings the
 * policy layers set (every other one is the default). */
function configSection(c) {
  if (!c || typeof c !== "object" || !c.effective) return section("Configuration", h("p", { class: "empty" }, "The hub did not send this recorder's configuration."));
  const a = c.assignment && typeof c.assignment === "object" ? c.assignment : null;
  const sources = c.effective.sources && typeof c.effective.sources === "object" ? c.effective.sources : {};
  const set = Object.entries(sources).filter(([, layer]) => layer !== "default" && layer !== "assignment");
  return section(
    "Configuration",
    fields([
      ["Assignment", a ? h("span", null, `version ${show(a.version)} `, badge(show(a.state), configTone[a.state] ?? "neutral")) : "never assigned"],
      a && !missing(a.reason) ? ["Why", h("span", { class: "error-text" }, String(a.reason))] : null,
      ["Assigned hash", a ? shortHash(a.config_hash) : DASH],
      ["Running hash", a ? h("span", null, shortHash(a.running_hash), " ", c.in_sync === true ? badge("in sync", "ok") : c.in_sync === false ? badge("differs", "bad") : "") : DASH],
      ["Read by", a && !missing(a.reported_by) ? h("span", null, deviceLink(a.reported_by), " ", h("span", { class: "muted" }, ago(a.running_at))) : DASH],
      ["Firmware image", a && !missing(a.firmware_version) ? h("span", null, show(a.firmware_version), " ", badge(show(a.firmware_state), configTone[a.firmware_state] ?? "neutral"), missing(a.firmware_reason) ? "" : h("span", { class: "error-text" }, " " + String(a.firmware_reason))) : "none assigned"],
      ["Policy", c.policy_changed ? badge("changed since: roll out to assign", "warn") : "as assigned"],
    ]),
    table(["Setting", "Set by"], set.map(([path, layer]) => h("tr", null, h("td", { class: "mono" }, path), h("td", null, show(layer)))), "Every setting is the default."),
  );
}

/** The device's newest records, newest first (at most 20): a dock's are the
 * records it signed (about its recorders), any other device's those about it.
 * One audited read of 20 records. */
async function latestRecords(id, kind) {
  const by = kind === "dock" ? "agent_id" : "device_id";
  const body = await api(`/api/v1/records?${by}=${encodeURIComponent(id)}&order=desc&limit=20`);
  return asArray(body, "records").filter((r) => r && typeof r === "object");
}

function kindLabel(r) {
  if (r.kind === "media") return "recording";
  if (r.event && typeof r.event === "object" && !missing(r.event.type)) return String(r.event.type).replace(/_/g, " ");
  return show(r.kind);
}

function summary(r) {
  if (r.kind === "media") return [show(r.file_name), h("span", { class: "muted" }, " · " + bytes(r.size) + (num(r.duration_ms) === null ? "" : " · " + duration(num(r.duration_ms) / 1000)))];
  const e = r.event && typeof r.event === "object" ? r.event : {};
  const parts = Object.entries(e)
    .filter(([k, v]) => k !== "type" && !missing(v))
    .map(([k, v]) => `${k.replace(/_/g, " ")}: ${/_bytes$/.test(k) && num(v) !== null ? bytes(v) : show(v)}`);
  return parts.length ? parts.join(" · ") : h("span", { class: "muted" }, DASH);
}

async function recordView(route) {
  const id = route.id;
  let r;
  try {
    r = await api(`/api/v1/records/${encodeURIComponent(id)}`);
  } catch (e) {
    if (e.status === 404) return notFound(`No record with id ${id}.`);
    throw e;
  }
  await loadDirectory();
  if (!r || typeof r !== "object") return notFound(`No record with id ${id}.`);
  const v = r.verification && typeof r.verification === "object" ? r.verification : {};
  const okText = (x, good) => (missing(x) ? DASH : badge(String(x), x === good || x === true ? "ok" : "bad"));
  const custody = Array.isArray(r.custody) ? r.custody.filter((c) => c && typeof c === "object") : null;
  const media = r.kind === "media";
  const event = r.event && typeof r.event === "object" ? r.event : null;
  const geo = r.geo && typeof r.geo === "object" ? r.geo : null;

  const download = h("button", { type: "button", class: "btn" }, "Download recording");
  download.addEventListener("click", () => downloadMedia(r, download));

  return h(
    "div",
    { class: "view", "data-view": "record" },
    h(
      "div",
      { class: "view-head" },
      h("div", null, h("div", { class: "crumbs" }, link("#/fleet", "Fleet"), " / ", deviceLink(r.device_id), " / record"), h("h1", null, media ? ["Recording ", show(r.file_name)] : kindLabel(r), " ", h("span", { class: "muted mono small" }, show(r.id)))),
      h("div", { class: "head-badges" }, r.verified === true ? badge("verified", "ok") : r.verified === false ? badge("verification failed", "bad") : null, reloadButton()),
    ),
    h(
      "div",
      { class: "columns" },
      section(
        "Record",
        fields([
          ["Record id", h("code", null, show(r.id))],
          ["Kind", r.kind],
          ["Device", deviceLink(r.device_id)],
          ["Agent", deviceLink(r.agent_id)],
          ["Sequence", r.seq],
          ["Officer", officer(r.officer_id, r.officer_name)],
          ["Unit", unit(r.unit_code, r.unit_name)],
          ["Device time", when(r.device_time)],
          ["Ingested at agent", when(r.ingest_time)],
          ["Received at hub", when(r.received_at)],
          ["Clock offset", clockOffset(r.clock_offset_ms)],
          ["Hash", h("code", { class: "wrap" }, show(r.hash))],
          ["Previous hash", h("code", { class: "wrap" }, show(r.prev_hash))],
        ]),
      ),
      section(
        "Verification",
        fields([
          ["Verified", r.verified === true ? badge("yes", "ok") : r.verified === false ? badge("no", "bad") : DASH],
          ["Signature", okText(v.signature, "valid")],
          ["Hash matches body", okText(v.hash_matches_body, true)],
          ["Chain", okText(v.chain, "intact")],
          ["Signer", deviceLink(v.signer)],
          ["Signer state", stateBadge(v.signer_state)],
          ["Checked at", when(v.checked_at)],
          ["Signing key", missing(r.signed && r.signed.key) ? DASH : h("code", { class: "wrap" }, String(r.signed.key))],
        ]),
      ),
    ),
    section(
      "Custody trail",
      custody === null
        ? h("p", { class: "empty" }, "The hub did not send a custody trail for this record.")
        : custody.length === 0
          ? h("p", { class: "empty" }, "The custody trail is empty.")
          : h(
              "ol",
              { class: "timeline" },
              custody.map((c) =>
                h("li", { class: "step step-" + String(c.step || "").replace(/[^a-z_]/g, "") }, h("div", { class: "step-head" }, h("span", { class: "step-name" }, missing(c.step) ? DASH : String(c.step).replace(/_/g, " ")), h("span", { class: "step-time" }, when(c.at))), h("div", { class: "step-body" }, h("span", { class: "mono" }, show(c.actor)), missing(c.detail) ? null : h("span", { class: "muted" }, " · ", show(c.detail)))),
              ),
            ),
    ),
    media
      ? section(
          "Recording",
          fields([
            ["File name", r.file_name],
            ["File index", r.file_index],
            ["Size", bytes(r.size)],
            ["Type", r.mime],
            ["Started", when(r.started_at)],
            ["Duration", num(r.duration_ms) === null ? DASH : duration(num(r.duration_ms) / 1000)],
            ["SHA-256", h("code", { class: "wrap" }, show(r.sha256))],
            ["Stored at hub", missing(r.media_state) ? DASH : badge(String(r.media_state), r.media_state === "stored" ? "ok" : "warn")],
            ["Re-copy of", missing(r.recopy_of) ? DASH : recordLink(r.recopy_of)],
          ]),
          r.media_state === "stored" ? h("div", { class: "actions" }, download) : null,
        )
      : null,
    event ? section("Event", fields(Object.entries(event).map(([k, x]) => [k.replace(/_/g, " "), k === "type" ? String(x).replace(/_/g, " ") : x]))) : null,
    geo ? section("Position", fields(Object.entries(geo).map(([k, x]) => [k.replace(/_/g, " "), x]))) : null,
  );
}

/** Fetches the recording with the token and hands it to the browser as a download. */
async function downloadMedia(r, button) {
  button.disabled = true;
  const label = button.textContent;
  button.textContent = "Downloading…";
  try {
    const resp = await fetch(`/api/v1/records/${encodeURIComponent(r.id)}/media`, { headers: { Authorization: "Bearer " + token() }, credentials: "omit" });
    if (resp.status === 401) throw new AuthError("The hub refused the token (401 Unauthorized): sign in again.");
    if (!resp.ok) throw new Error(`download failed: ${resp.status}`);
    saveBlob(await resp.blob(), missing(r.file_name) ? String(r.id) : String(r.file_name));
  } catch (e) {
    if (e instanceof AuthError) return logout(e.message);
    setBanner(e.message, "bad");
  } finally {
    button.disabled = false;
    button.textContent = label;
  }
}

/** Hands bytes already read (with the token) to the browser as a file named `name`. */
function saveBlob(blob, name) {
  const url = URL.createObjectURL(blob);
  const a = h("a", { href: url, download: String(name).replace(/[\\/]/g, "_") });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

/** Reads the page again (pages with evidence do not refresh by themselves). */
function reloadButton() {
  return h("button", { type: "button", class: "btn btn-small", title: "Read this page again (the read is audited)", onclick: () => render(false) }, "Reload");
}

function notFound(message) {
  return h("div", { class: "view", "data-view": "missing" }, h("div", { class: "card" }, h("h1", null, "Not found"), h("p", null, message), h("p", null, link("#/fleet", "Back to the fleet"))));
}

// ---------------------------------------------------------------- coverage

// Sensing coverage (issue 6, docs/coverage.md): the seven figures of a
// window, action coverage per day for the least covered units, the least
// covered groups, and the actions, officers and uploads behind the gaps.
// Every figure is the hub's; the page only sorts and draws them.

const COVERAGE_DAYS = 30;
/** Lines in the chart: the least covered units, at most this many. */
const CHART_UNITS = 8;
/** Rows of a drill-down list shown in the page, of the LIST_ROWS read. */
const ROWS_SHOWN = 100;
const LIST_ROWS = 1000;
/** Rows of a drill-down's CSV: the most the hub gives in one answer. */
const CSV_ROWS = 10000;
/** The hub counts days in China Standard Time (UTC+8); the window's dates are its days. */
const HUB_ZONE = "+08:00";
const HUB_ZONE_MS = 8 * 3600 * 1000;
const DAY_MS = 86400000;
/** The longest window the chart draws day by day. */
const CHART_MAX_DAYS = 400;
/** An identifier of SVG elements, not an address: nothing is fetched from it. */
const SVG_NS = "http://www.w3.org/2000/svg";

const GROUPS = { unit: "Unit", domain: "Domain", officer: "Officer", day: "Day" };
/** Drill-downs are narrowed to one unit, domain or officer: route parameter → API parameter. */
const FOCUS = { unit: "unit_code", domain: "domain", officer: "officer_id" };

/** The seven figures, each a numerator over a denominator (docs/coverage.md). */
const FIGURES = [
  { key: "actions", label: "Actions", num: "covered", den: "total", what: "enforcement actions recorded (share of span by their officers' recordings) / all actions" },
  { key: "devices", label: "Devices", num: "heard", den: "total", what: "devices heard from in the window / active registered devices" },
  { key: "personnel", label: "Personnel", num: "covered", den: "total", what: "officer-days on duty with a working recorder / officer-days on duty" },
  { key: "time", label: "Time", num: "recorded_ms", den: "on_duty_ms", ms: true, what: "recorded time / time on duty" },
  { key: "timeliness", label: "Timeliness", num: "on_time", den: "total", what: "recordings at the hub in time / all recordings" },
  { key: "integrity", label: "Integrity", num: "intact", den: "total", what: "records verified with unbroken chains / all records" },
  { key: "spatial", label: "Spatial", num: "covered", den: "total", what: "places (geohash-6 cells) with activity that have a recording / places with activity" },
];
const FIGURE = Object.fromEntries(FIGURES.map((f) => [f.key, f]));

// ---- days and the window

/** "2026-11-30" when `s` is a real date written so, else null. */
function validDay(s) {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(String(s || ""));
  if (!m) return null;
  const d = new Date(Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3])));
  return d.toISOString().slice(0, 10) === s ? s : null;
}

function addDays(day, n) {
  return new Date(Date.parse(day + "T00:00:00Z") + n * DAY_MS).toISOString().slice(0, 10);
}

/** The hub's day (China Standard Time) of an instant. */
function hubDay(ms) {
  return new Date(ms + HUB_ZONE_MS).toISOString().slice(0, 10);
}

/** The window of the route: whole days `from`..`to` (both included), the grouping, and a drill-down focus. */
function coverageWindow(query) {
  let to = validDay(query.get("to")) || hubDay(Date.now());
  let from = validDay(query.get("from")) || addDays(to, -(COVERAGE_DAYS - 1));
  if (from > to) [from, to] = [to, from];
  const by = Object.hasOwn(GROUPS, query.get("by")) ? query.get("by") : "unit";
  let focus = null;
  for (const kind of Object.keys(FOCUS)) {
    const v = query.get(kind);
    if (!missing(v)) focus = { kind, value: v };
  }
  return { from, to, by, focus, apiFrom: from + "T00:00:00" + HUB_ZONE, apiTo: addDays(to, 1) + "T00:00:00" + HUB_ZONE };
}

/** The address of the Coverage view with `changes` to the window `w`. */
function coverageHash(w, changes) {
  const x = { ...w, ...changes };
  const q = new URLSearchParams({ from: x.from, to: x.to, by: x.by });
  if (x.focus) q.set(x.focus.kind, x.focus.value);
  if (x.export) q.set("export", x.export);
  return "#/coverage?" + q;
}

/** An API path under /api/v1/coverage with the parameters that are given. */
function coveragePath(endpoint, params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (!missing(v)) q.set(k, String(v));
  return "/api/v1/coverage" + endpoint + "?" + q;
}

/** Like api(), but a failure other than 401 comes back as {error, status} to show in place. */
async function attempt(path) {
  try {
    return { body: await api(path) };
  } catch (e) {
    if (e instanceof AuthError) throw e;
    return { error: e.reason || e.message, status: e.status };
  }
}

// ---- figures

function figureOf(g, key) {
  const f = g && typeof g === "object" ? g[key] : null;
  return f && typeof f === "object" ? f : null;
}

function groupsOf(body) {
  return asArray(body, "groups").filter((g) => g && typeof g === "object");
}

/** Numerator, denominator and ratio of a figure; ratio null when there is nothing to divide. */
function fraction(g, key) {
  const f = figureOf(g, key);
  const def = FIGURE[key];
  if (!f) return null;
  const n = num(f[def.num]);
  const d = num(f[def.den]);
  const given = num(f.ratio);
  const ratio = d ? (given ?? (n === null ? null : n / d)) : null;
  return { n, d, ratio, f };
}

function percent(ratio) {
  if (ratio === null || ratio === undefined) return DASH;
  const p = Math.round(ratio * 1000) / 10;
  return (Number.isInteger(p) ? String(p) : p.toFixed(1)) + "%";
}

function ratioTone(ratio) {
  if (ratio === null || ratio === undefined) return "neutral";
  return ratio >= 0.9 ? "ok" : ratio >= 0.6 ? "warn" : "bad";
}

/** A span of time as hours, minutes or seconds. */
function span(ms) {
  const n = num(ms);
  if (n === null) return DASH;
  if (Math.abs(n) < 60000) return Math.round(n / 1000) + " s";
  if (Math.abs(n) < 3600000) return Math.round(n / 60000) + " min";
  const tenths = Math.round(n / 360000);
  return Math.trunc(tenths / 10) + (tenths % 10 ? "." + Math.abs(tenths % 10) : "") + " h";
}

/** "numerator / denominator" as the figure counts them. */
function ofText(key, fr) {
  const f = FIGURE[key].ms ? span : count;
  return `${f(fr.n)} / ${f(fr.d)}`;
}

/** A cell with a figure's ratio over its numerator / denominator. */
function fractionCell(g, key) {
  const fr = fraction(g, key);
  if (!fr) return h("td", { class: "num muted" }, DASH);
  return h("td", { class: "num", "data-figure": key }, h("div", { class: "frac" }, h("span", { class: "pct pct-" + ratioTone(fr.ratio) }, percent(fr.ratio)), h("span", { class: "nd" }, ofText(key, fr))));
}

/** Badges "cause n" for each cause with a count (`unitText` after it, `title` to explain it). */
function causes(byCause, unitText, title) {
  if (!byCause || typeof byCause !== "object") return [];
  return Object.entries(byCause)
    .filter(([, n]) => num(n))
    .sort((a, b) => num(b[1]) - num(a[1]) || a[0].localeCompare(b[0]))
    .map(([cause, n]) => h("span", { class: "cause", "data-cause": cause, title }, badge(cause, cause === "nothing_recorded" ? "bad" : "warn"), " ", count(Math.round(num(n) * 10) / 10) + (unitText || "")));
}

/** One headline tile: the ratio, numerator / denominator, and what is behind the gap. */
function coverageTile(all, key, policy) {
  const def = FIGURE[key];
  const fr = fraction(all, key);
  const extra = [];
  if (fr && key === "actions") extra.push(causes(fr.f.uncovered_by_cause));
  // Counted in clock hours of duty, a partial hour as one: not a sum of time.
  if (fr && key === "time") extra.push(causes(fr.f.unrecorded_hours_by_cause, " hours", "clock hours of duty without any recording (a partial hour counts as one)"));
  if (fr && key === "timeliness" && num(fr.f.late) !== null) extra.push(h("span", { class: "small" }, `${count(fr.f.late)} late`, num(policy.timeliness_hours) === null ? "" : ` (over ${policy.timeliness_hours} h)`));
  if (fr && key === "integrity" && num(fr.f.gaps) !== null) extra.push(h("span", { class: "small" }, `${count(fr.f.gaps)} gaps`));
  return h(
    "div",
    { class: "stat stat-" + ratioTone(fr && fr.ratio), "data-figure": key, title: def.what },
    h("div", { class: "stat-label" }, def.label),
    h("div", { class: "stat-value" }, fr ? percent(fr.ratio) : DASH),
    h("div", { class: "stat-sub" }, fr ? ofText(key, fr) : "not reported by the hub"),
    extra.flat().length ? h("div", { class: "stat-causes" }, extra) : null,
  );
}

/** Least covered first: lowest action ratio, then most uncovered actions; groups without actions last. */
function leastCovered(a, b) {
  const fa = fraction(a, "actions");
  const fb = fraction(b, "actions");
  const ra = fa && fa.ratio !== null ? fa.ratio : Infinity;
  const rb = fb && fb.ratio !== null ? fb.ratio : Infinity;
  const ua = fa ? (fa.d ?? 0) - (fa.n ?? 0) : 0;
  const ub = fb ? (fb.d ?? 0) - (fb.n ?? 0) : 0;
  return ra - rb || ub - ua || String(a.key ?? "").localeCompare(String(b.key ?? ""));
}

/** A group's key as people read it: a unit or officer by name, a domain or day as given. */
function groupName(by, key) {
  if (missing(key)) return h("span", { class: "muted" }, "none");
  if (by === "unit") return unit(key);
  if (by === "officer") return officer(key);
  return String(key);
}

// ---- the chart

function svg(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) if (!missing(v)) el.setAttribute(k, String(v));
  return append(el, children);
}

/** Action coverage per day of the least covered units: one line each. */
async function chartSeries(unitBody, w) {
  if (!unitBody) return { series: [], units: 0, failed: true, note: "The hub did not give coverage by unit, so there is nothing to chart." };
  const units = groupsOf(unitBody).filter((g) => !missing(g.key) && (fraction(g, "actions")?.d ?? 0) > 0);
  units.sort(leastCovered);
  const chosen = units.slice(0, CHART_UNITS);
  const period = { from: w.apiFrom, to: w.apiTo };
  if (!chosen.length) return { series: [], units: 0 };
  const answers = await Promise.all(chosen.map((g) => attempt(coveragePath("", { group_by: "day", ...period, unit_code: g.key }))));
  if (answers.every((a) => a.body)) {
    return { series: chosen.map((g, i) => ({ key: g.key, label: unit(g.key), whole: fraction(g, "actions"), days: groupsOf(answers[i].body) })), units: units.length };
  }
  // A hub that cannot narrow coverage to one unit: one line for all of them.
  const all = await attempt(coveragePath("", { group_by: "day", ...period }));
  return {
    series: all.body ? [{ key: null, label: "all units", whole: fraction(unitBody && unitBody.all, "actions"), days: groupsOf(all.body) }] : [],
    units: units.length,
    note: `The hub did not give coverage for one unit (${(answers.find((a) => a.error) || {}).error}), so the line is all units together.`,
  };
}

function lineChart(chart, w) {
  const W = 1200;
  const H = 300;
  const left = 52;
  const right = 18;
  const top = 14;
  const bottom = 46;
  const days = [];
  for (let d = w.from; d <= w.to && days.length < CHART_MAX_DAYS; d = addDays(d, 1)) days.push(d);
  const at = new Map(days.map((d, i) => [d, i]));
  const x = (i) => left + (days.length === 1 ? (W - left - right) / 2 : (i * (W - left - right)) / (days.length - 1));
  const y = (r) => top + (1 - r) * (H - top - bottom);
  const parts = [];
  for (const r of [0, 0.25, 0.5, 0.75, 1]) {
    parts.push(svg("line", { class: r === 0 ? "axis" : "grid-line", x1: left, x2: W - right, y1: y(r), y2: y(r) }));
    parts.push(svg("text", { x: left - 8, y: y(r) + 4, "text-anchor": "end" }, percent(r)));
  }
  // About ten day labels, the last day's too when it is not crowded.
  const step = Math.max(1, Math.ceil(days.length / 10));
  const ticks = days.map((_, i) => i).filter((i) => i % step === 0);
  if (days.length - 1 - ticks[ticks.length - 1] >= Math.max(1, step / 2)) ticks.push(days.length - 1);
  for (const i of ticks) {
    parts.push(svg("line", { class: "axis", x1: x(i), x2: x(i), y1: y(0), y2: y(0) + 5 }));
    parts.push(svg("text", { x: x(i), y: y(0) + 18, "text-anchor": "middle" }, days[i].slice(5)));
  }
  parts.push(svg("text", { class: "axis-title", x: left + (W - left - right) / 2, y: H - 6, "text-anchor": "middle" }, `Day (China Standard Time), ${w.from} to ${w.to}`));
  parts.push(svg("text", { class: "axis-title", x: 0, y: 0, transform: `translate(13 ${top + (H - top - bottom) / 2}) rotate(-90)`, "text-anchor": "middle" }, "Actions recorded"));
  chart.series.forEach((s, i) => {
    const points = s.days
      .map((g) => ({ day: String(g.key), fr: fraction(g, "actions") }))
      .filter((p) => at.has(p.day) && p.fr && p.fr.ratio !== null)
      .sort((a, b) => a.day.localeCompare(b.day));
    const name = missing(s.key) ? s.label : String(s.key);
    const d = points.map((p, j) => `${j ? "L" : "M"}${x(at.get(p.day)).toFixed(1)} ${y(p.fr.ratio).toFixed(1)}`).join(" ");
    parts.push(
      svg(
        "g",
        { class: "s" + (i % CHART_UNITS), "data-unit": s.key },
        svg("path", { class: "series", d: d || null }),
        points.map((p) => svg("circle", { class: "dot", cx: x(at.get(p.day)).toFixed(1), cy: y(p.fr.ratio).toFixed(1), r: 4.5 }, svg("title", null, `${name} · ${p.day}: ${ofText("actions", p.fr)} actions recorded (${percent(p.fr.ratio)})`))),
      ),
    );
  });
  return svg("svg", { class: "chart", viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": "Action coverage per day, one line per unit" }, parts);
}

function chartSection(chart, w, exportLink) {
  const drawn = chart.series.some((s) => s.days.some((g) => (fraction(g, "actions")?.d ?? 0) > 0));
  const shown = chart.units > chart.series.length && chart.series.length > 1 ? ` (the ${chart.series.length} least covered of ${chart.units} units)` : "";
  return h(
    "section",
    { class: "card", "data-section": "chart" },
    h("div", { class: "card-head" }, h("h2", null, "Action coverage over time, per unit" + shown), exportLink),
    drawn
      ? [
          lineChart(chart, w),
          h(
            "ul",
            { class: "legend" },
            chart.series.map((s, i) => h("li", { "data-unit": s.key }, h("span", { class: "swatch s" + (i % CHART_UNITS), "aria-hidden": "true" }), s.label, s.whole ? h("span", { class: "muted" }, ` · ${ofText("actions", s.whole)} · ${percent(s.whole.ratio)}`) : null)),
          ),
        ]
      : chart.failed
        ? null
        : h("p", { class: "empty chart-note" }, "No enforcement actions in this window: there is nothing to chart."),
    chart.note ? h("p", { class: "muted small" }, chart.note) : null,
  );
}

// ---- the lists

/** A section with a CSV link in its head. */
function coverageSection(name, title, exportLink, ...body) {
  return h("section", { class: "card card-flush", "data-section": name }, h("div", { class: "card-head card-head-flush" }, h("h2", null, title), exportLink), body);
}

/** The rows of a drill-down, at most ROWS_SHOWN, or what kept the hub from answering. */
function listOf(answer, key, headers, row, empty) {
  if (answer.error) {
    return h("p", { class: "empty" }, answer.status === 404 ? "The hub does not serve this list yet " : "The hub could not give this list ", `(${answer.error}).`);
  }
  const items = asArray(answer.body, key).filter((x) => x && typeof x === "object");
  const more = items.length - ROWS_SHOWN;
  // The hub says when more matched than it sent; an older hub does not.
  const cut = answer.body && typeof answer.body.truncated === "boolean" ? answer.body.truncated : items.length >= LIST_ROWS;
  const atLeast = cut ? " or more" : "";
  return [
    table(headers, items.slice(0, ROWS_SHOWN).map(row), empty),
    more > 0 ? h("p", { class: "muted small list-note" }, `…and ${count(more)}${atLeast} more: the CSV has up to ${count(CSV_ROWS)}.`) : null,
  ];
}

function names(list, one) {
  if (!Array.isArray(list) || !list.length) return h("span", { class: "muted" }, DASH);
  return list.map((x, i) => [i ? ", " : "", one(x && typeof x === "object" ? (x.officer_id ?? x.device_id ?? x.id) : x)]);
}

function actionRow(a) {
  const span_ = num(a.span_ms);
  const covered = num(a.covered_ms);
  return h(
    "tr",
    { "data-action": show(a.action_id) },
    h("td", { class: "nowrap" }, when(a.start)),
    h("td", { class: "num nowrap" }, span_ === null ? DASH : duration(span_ / 1000)),
    h("td", { class: "num nowrap" }, span_ ? `${percent(covered / span_)}` : DASH),
    h("td", null, missing(a.cause) ? DASH : badge(String(a.cause), a.cause === "nothing_recorded" ? "bad" : "warn")),
    h("td", null, show(a.case_number), h("div", { class: "small muted mono" }, show(a.action_id))),
    h("td", null, show(a.domain)),
    h("td", { class: "unit" }, unit(a.unit_code)),
    h("td", null, names(a.officers, (o) => officer(o))),
    h("td", { class: "mono nowrap" }, deviceLink(a.device_id)),
  );
}

function officerRow(o) {
  return h(
    "tr",
    { "data-officer": show(o.officer_id) },
    h("td", { class: "nowrap" }, show(o.day)),
    h("td", null, officer(o.officer_id, o.name)),
    h("td", { class: "unit" }, unit(o.unit_code)),
    h("td", { class: "num nowrap" }, span(o.on_duty_ms)),
    h("td", { class: "num nowrap" }, span(o.recorded_ms)),
    h("td", null, o.working === true ? badge("working", "ok") : o.working === false ? badge("no working recorder", "bad") : DASH),
    h("td", { class: "mono" }, Array.isArray(o.devices) && o.devices.length ? names(o.devices, deviceLink) : h("span", { class: "muted" }, "none assigned")),
  );
}

function lateRow(l) {
  const arrived = parseTime(l.arrived_at);
  const deadline = parseTime(l.deadline);
  const over = (arrived ?? Date.now()) - (deadline ?? NaN);
  return h(
    "tr",
    { "data-record": show(l.record_id) },
    h("td", { class: "mono nowrap" }, recordLink(l.record_id)),
    h("td", { class: "mono nowrap" }, deviceLink(l.device_id)),
    h("td", null, officer(l.officer_id)),
    h("td", { class: "unit" }, unit(l.unit_code)),
    h("td", { class: "nowrap" }, when(l.end)),
    h("td", { class: "nowrap" }, when(l.deadline)),
    h("td", { class: "nowrap" }, missing(l.arrived_at) ? badge("not arrived", "bad") : when(l.arrived_at)),
    h("td", { class: "num nowrap" }, Number.isFinite(over) && over > 0 ? duration(over / 1000) : DASH),
  );
}

// ---- export

/** Reads a CSV from the API with the token and saves it as `name`. */
async function saveCsv(path, name, button) {
  if (button) button.setAttribute("aria-busy", "true");
  try {
    const resp = await fetch(path, { headers: { Authorization: "Bearer " + token(), Accept: "text/csv" }, cache: "no-store", credentials: "omit" });
    if (resp.status === 401) throw new AuthError("The hub refused the token (401 Unauthorized): sign in again.");
    if (!resp.ok) {
      let why = resp.statusText;
      try {
        why = (await resp.json()).error || why;
      } catch (_) {
        // Not JSON: the status says enough.
      }
      throw new Error(`CSV export failed: GET ${path}: ${resp.status} ${why}`);
    }
    const blob = await resp.blob();
    saveBlob(blob.type ? blob : new Blob([blob], { type: "text/csv" }), name);
  } catch (e) {
    if (e instanceof AuthError) return logout(e.message);
    setBanner(e.message, "bad");
  } finally {
    if (button) button.removeAttribute("aria-busy");
  }
}

/** The view's CSV downloads: the same API reads as the page's, as CSV. */
function coverageExports(w, focus) {
  const period = { from: w.apiFrom, to: w.apiTo };
  const csv = { limit: CSV_ROWS, format: "csv" };
  const file = (what) => `evsync-coverage-${what}-${w.from}_${w.to}.csv`;
  return {
    groups: { path: coveragePath("", { group_by: w.by, ...period, format: "csv" }), file: file(w.by) },
    days: { path: coveragePath("", { group_by: "day", ...period, format: "csv" }), file: file("day") },
    actions: { path: coveragePath("/actions", { covered: "false", ...period, ...focus, ...csv }), file: file("uncovered-actions") },
    officers: { path: coveragePath("/officers", { working: "false", ...period, ...focus, ...csv }), file: file("officers-without-recorder") },
    late: { path: coveragePath("/late", { ...period, ...focus, ...csv }), file: file("late-uploads") },
  };
}

/** A link that downloads one export; as an address (#/coverage?…&export=NAME) it downloads when opened. */
function csvLink(w, exports, name) {
  const x = exports[name];
  return h(
    "a",
    {
      href: coverageHash(w, { export: name }),
      class: "btn btn-small csv",
      "data-export": x.path,
      title: "Download as CSV, read with your token",
      onclick: (ev) => {
        ev.preventDefault();
        saveCsv(x.path, x.file, ev.currentTarget);
      },
    },
    "CSV",
  );
}

// ---- the view

function coverageForm(w) {
  const from = h("input", { type: "date", id: "cov-from", name: "from", value: w.from, required: true });
  const to = h("input", { type: "date", id: "cov-to", name: "to", value: w.to, required: true });
  const by = h("select", { id: "cov-by", name: "by" }, Object.entries(GROUPS).map(([k, label]) => h("option", { value: k, selected: k === w.by }, label)));
  const message = h("span", { class: "error-text small", role: "alert" });
  const today = hubDay(Date.now());
  const last = (n) => link(coverageHash(w, { from: addDays(today, -(n - 1)), to: today }), `${n} days`);
  return h(
    "form",
    {
      class: "card cov-form",
      id: "coverage-form",
      onsubmit: (ev) => {
        ev.preventDefault();
        const f = validDay(from.value);
        const t = validDay(to.value);
        if (!f || !t || f > t) {
          message.textContent = "Choose a first day on or before the last day.";
          return;
        }
        location.hash = coverageHash(w, { from: f, to: t, by: by.value });
      },
    },
    h("label", { for: "cov-from" }, "From", from),
    h("label", { for: "cov-to" }, "To (included)", to),
    h("label", { for: "cov-by" }, "Group by", by),
    h("button", { type: "submit", class: "btn btn-primary" }, "Show"),
    h("span", { class: "small muted quick" }, "Last ", last(7), " · ", last(30), " · ", last(90)),
    message,
  );
}

async function coverageView(route) {
  const w = coverageWindow(route.query);
  const period = { from: w.apiFrom, to: w.apiTo };
  const focus = w.focus ? { [FOCUS[w.focus.kind]]: w.focus.value } : {};
  const list = { ...period, ...focus, limit: LIST_ROWS };
  const [main, unitBody] = await Promise.all([
    api(coveragePath("", { group_by: w.by, ...period })),
    w.by === "unit" ? null : optional(coveragePath("", { group_by: "unit", ...period })),
    loadDirectory(),
  ]);
  const units = w.by === "unit" ? main : unitBody;
  const [chart, actions, officers, late] = await Promise.all([
    chartSeries(units, w),
    attempt(coveragePath("/actions", { covered: "false", ...list })),
    attempt(coveragePath("/officers", { working: "false", ...list })),
    attempt(coveragePath("/late", list)),
  ]);
  const policy = (main && main.policy && typeof main.policy === "object" ? main.policy : main) || {};
  const all = main && main.all && typeof main.all === "object" ? main.all : null;
  const exports = coverageExports(w, focus);
  const wanted = route.query.get("export");
  if (Object.hasOwn(exports, wanted)) {
    // Opened as an export address: download once, and forget the request so a reload does not repeat it.
    history.replaceState(null, "", location.pathname + location.search + coverageHash(w, { export: null }));
    setTimeout(() => saveCsv(exports[wanted].path, exports[wanted].file), 0);
  }

  const groups = groupsOf(main).sort(leastCovered);
  const groupRows = groups.map((g) => {
    const fr = fraction(g, "actions");
    const target = missing(g.key) ? null : w.by === "day" ? coverageHash(w, { from: String(g.key), to: String(g.key) }) : coverageHash(w, { focus: { kind: w.by, value: String(g.key) } });
    return h(
      "tr",
      { "data-group": missing(g.key) ? "" : String(g.key) },
      h("td", { class: w.by === "unit" ? "unit" : "" }, target ? h("a", { href: target, title: w.by === "day" ? "Show this day" : "Show the gaps of this group" }, groupName(w.by, g.key)) : groupName(w.by, g.key)),
      fractionCell(g, "actions"),
      h("td", { class: "num" }, fr && fr.d !== null ? count((fr.d ?? 0) - (fr.n ?? 0)) : DASH),
      h("td", null, fr ? causes(fr.f.uncovered_by_cause) : null),
      FIGURES.filter((f) => f.key !== "actions").map((f) => fractionCell(g, f.key)),
    );
  });

  const share = num(policy.share_permille);
  const hours = num(policy.timeliness_hours);
  const focusName = w.focus ? [GROUPS[w.focus.kind].toLowerCase(), " ", w.focus.kind === "unit" ? unit(w.focus.value) : w.focus.kind === "officer" ? officer(w.focus.value) : w.focus.value] : null;

  return h(
    "div",
    { class: "view", "data-view": "coverage" },
    h(
      "div",
      { class: "view-head" },
      h("div", null, h("h1", null, "Coverage"), h("div", { class: "muted small" }, `${w.from} to ${w.to} (days in China Standard Time)`, share === null ? "" : ` · an action is recorded when recordings cover ${share / 10}% of it`, hours === null ? "" : ` · on time within ${hours} h`)),
      h("div", { class: "head-badges" }, reloadButton()),
    ),
    coverageForm(w),
    h("div", { class: "stats stats-7", "data-section": "figures" }, FIGURES.map((f) => coverageTile(all, f.key, policy))),
    chartSection(chart, w, csvLink(w, exports, "days")),
    coverageSection(
      "least",
      `Least covered by ${GROUPS[w.by].toLowerCase()}`,
      csvLink(w, exports, "groups"),
      table(
        [GROUPS[w.by], { label: "Actions", cls: "num" }, { label: "Uncovered", cls: "num" }, "Causes", ...FIGURES.filter((f) => f.key !== "actions").map((f) => ({ label: f.label, cls: "num" }))],
        groupRows,
        "No coverage figures in this window.",
      ),
    ),
    w.focus ? h("div", { class: "focus-bar" }, "Gaps of ", focusName, " · ", link(coverageHash(w, { focus: null }), "show all")) : null,
    coverageSection(
      "uncovered-actions",
      "Uncovered actions",
      csvLink(w, exports, "actions"),
      listOf(actions, "actions", ["Start", { label: "Span", cls: "num" }, { label: "Recorded", cls: "num" }, "Cause", "Case / action", "Domain", "Unit", "Officers", "Device"], actionRow, "Every action in this window was recorded."),
    ),
    coverageSection(
      "officers",
      "Officers on duty without a working recorder",
      csvLink(w, exports, "officers"),
      listOf(officers, "officers", ["Day", "Officer", "Unit", { label: "On duty", cls: "num" }, { label: "Recorded", cls: "num" }, "Recorder", "Devices"], officerRow, "Every officer on duty in this window had a working recorder."),
    ),
    coverageSection(
      "late",
      "Late uploads",
      csvLink(w, exports, "late"),
      listOf(late, "late", ["Record", "Device", "Officer", "Unit", "Ended", "Deadline", "Arrived", { label: "Late by", cls: "num" }], lateRow, "Every recording of this window reached the hub in time."),
    ),
  );
}

// ---------------------------------------------------------------- routing and session

const LIVE_VIEWS = ["fleet", "alerts", "transfers"];
const VIEWS = { fleet: fleetView, alerts: alertsView, transfers: transfersView, coverage: coverageView, device: deviceView, record: recordView };

function parseRoute() {
  const raw = location.hash.replace(/^#/, "") || "/fleet";
  const [path, qs] = raw.split("?", 2);
  const query = new URLSearchParams(qs || "");
  const parts = path.split("/").filter(Boolean);
  const decode = (s) => {
    try {
      return decodeURIComponent(s);
    } catch (_) {
      return s;
    }
  };
  if (parts[0] === "devices" && parts.length >= 2) return { name: "device", id: decode(parts.slice(1).join("/")), query };
  if (parts[0] === "records" && parts.length >= 2) return { name: "record", id: decode(parts.slice(1).join("/")), query };
  if (parts[0] === "alerts") return { name: "alerts", query };
  if (parts[0] === "transfers") return { name: "transfers", query };
  if (parts[0] === "coverage") return { name: "coverage", query };
  return { name: "fleet", query };
}

/** Takes a token handed over in the fragment (#token=… or #/view?token=…) once, and removes it from the address bar. */
function takeTokenFromFragment() {
  const raw = location.hash.replace(/^#/, "");
  if (!raw.includes("token=")) return;
  const q = raw.indexOf("?");
  const route = raw.startsWith("/") ? (q >= 0 ? raw.slice(0, q) : raw) : "";
  const params = new URLSearchParams(raw.startsWith("/") ? (q >= 0 ? raw.slice(q + 1) : "") : raw);
  const t = params.get("token");
  params.delete("token");
  const next = params.get("view");
  params.delete("view");
  if (t) {
    try {
      sessionStorage.setItem(TOKEN_KEY, t.trim());
    } catch (_) {
      // Storage disabled: the token cannot be kept; the login form will ask.
    }
  }
  const rest = params.toString();
  const target = (route || next || "/fleet") + (rest ? "?" + rest : "");
  history.replaceState(null, "", location.pathname + location.search + "#" + target);
}

let ticket = 0;
let busy = false;
let loggedIn = false;

async function render(fromTimer) {
  if (!token()) return showLogin();
  if (fromTimer && busy) return;
  if (!loggedIn) {
    try {
      await startSession();
    } catch (e) {
      mainEl().replaceChildren(h("div", { class: "view" }, h("div", { class: "card error-card" }, h("h1", null, "Could not reach the hub's API"), h("p", null, e.message))));
      return;
    }
  }
  if (!loggedIn) return;
  const route = parseRoute();
  const mine = ++ticket;
  busy = true;
  for (const a of document.querySelectorAll("#nav a")) {
    const active = a.dataset.view === route.name || (a.dataset.view === "fleet" && route.name === "device");
    a.classList.toggle("active", active);
  }
  if (!fromTimer) mainEl().setAttribute("aria-busy", "true");
  try {
    const view = await VIEWS[route.name](route);
    if (mine !== ticket) return;
    mainEl().replaceChildren(view);
    $("refreshed").textContent = "updated " + fullTime(new Date().toISOString()).slice(11);
    setBanner(null);
  } catch (e) {
    if (e instanceof AuthError) return logout(e.message);
    if (mine !== ticket) return;
    if (fromTimer && mainEl().querySelector(".view")) setBanner("Refresh failed, showing older data: " + e.message, "warn");
    else mainEl().replaceChildren(h("div", { class: "view" }, h("div", { class: "card error-card" }, h("h1", null, "Could not load this page"), h("p", null, e.message))));
  } finally {
    if (mine === ticket) busy = false;
    mainEl().removeAttribute("aria-busy");
  }
}

function mainEl() {
  return $("main");
}

function setBanner(text, tone) {
  const b = $("banner");
  b.hidden = !text;
  b.className = "banner banner-" + (tone || "neutral");
  b.textContent = text || "";
}

/** Checks the token and shows who is signed in. */
async function startSession() {
  let who = await optional("/api/v1/whoami").catch((e) => {
    logout(e.message);
    return undefined;
  });
  if (who === undefined) return;
  if (who === null) {
    // A hub without whoami: the token is good if the fleet can be read.
    try {
      await api("/api/v1/devices");
    } catch (e) {
      if (e instanceof AuthError) return logout(e.message);
      throw e;
    }
    who = {};
  }
  loggedIn = true;
  $("who").textContent = [who.name, who.role].filter((x) => !missing(x)).join(" · ") || "signed in";
  $("nav").hidden = false;
  $("session").hidden = false;
}

function logout(message, tone) {
  try {
    sessionStorage.removeItem(TOKEN_KEY);
  } catch (_) {
    // Nothing kept.
  }
  loggedIn = false;
  showLogin(message, tone);
}

function showLogin(message, tone) {
  $("nav").hidden = true;
  $("session").hidden = true;
  setBanner(null);
  const form = $("login-template").content.cloneNode(true);
  mainEl().replaceChildren(form);
  const msg = $("login-message");
  if (message) {
    msg.textContent = message;
    msg.classList.toggle("login-info", tone === "info");
    msg.hidden = false;
  }
  $("login-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const t = $("token").value.trim();
    if (!t) return;
    try {
      sessionStorage.setItem(TOKEN_KEY, t);
    } catch (_) {
      msg.textContent = "This browser does not allow session storage, so the dashboard cannot keep the token.";
      msg.hidden = false;
      return;
    }
    render(false);
  });
  $("token").focus();
}

takeTokenFromFragment();
window.addEventListener("hashchange", () => {
  takeTokenFromFragment();
  render(false);
});
$("logout").addEventListener("click", () => logout("Signed out. The token was removed from this tab.", "info"));
setInterval(() => {
  // Only views without evidence refresh themselves: a device's records and a
  // record are evidence, and every read of them is audited (and joins the
  // record's custody trail), so those pages are read again only on request.
  if (!document.hidden && loggedIn && LIVE_VIEWS.includes(parseRoute().name)) render(true);
}, REFRESH_MS);
render(false);
