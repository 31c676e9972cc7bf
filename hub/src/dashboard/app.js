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
  if (["chain_break", "seq_conflict", "key_mismatch", "media_failed", "recorder_files_missing"].includes(kind)) return "bad";
  if (["sequence_gap", "file_index_gap", "clock_drift"].includes(kind)) return "warn";
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
    const url = URL.createObjectURL(await resp.blob());
    const a = h("a", { href: url, download: missing(r.file_name) ? String(r.id) : String(r.file_name).replace(/[\\/]/g, "_") });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  } catch (e) {
    if (e instanceof AuthError) return logout(e.message);
    setBanner(e.message, "bad");
  } finally {
    button.disabled = false;
    button.textContent = label;
  }
}

/** Reads the page again (pages with evidence do not refresh by themselves). */
function reloadButton() {
  return h("button", { type: "button", class: "btn btn-small", title: "Read this page again (the read is audited)", onclick: () => render(false) }, "Reload");
}

function notFound(message) {
  return h("div", { class: "view", "data-view": "missing" }, h("div", { class: "card" }, h("h1", null, "Not found"), h("p", null, message), h("p", null, link("#/fleet", "Back to the fleet"))));
}

// ---------------------------------------------------------------- routing and session

const LIVE_VIEWS = ["fleet", "alerts", "transfers"];
const VIEWS = { fleet: fleetView, alerts: alertsView, transfers: transfersView, device: deviceView, record: recordView };

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
