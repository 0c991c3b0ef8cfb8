"use strict";
// Every value from the server goes into the page through textContent:
// nothing it sends is ever parsed as HTML.
const $ = (s, root = document) => root.querySelector(s);
const el = (tag, attrs = {}, ...children) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v; else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(e.dataset, v); else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(c ?? ""));
  return e;
};
let token = sessionStorage.getItem("triaged-token");
let me = null, page = 1, selected = null, objectUrls = [];

async function api(path, options = {}) {
  const headers = { Authorization: "Bearer " + token, ...(options.body ? { "Content-Type": "application/json" } : {}) };
  const r = await fetch(path, { ...options, headers });
  if (r.status === 401) { signOut(); throw new Error("signed out"); }
  if (!r.ok) { let m = r.statusText; try { m = (await r.json()).error; } catch (_) {} throw new Error(m); }
  return r;
}
const json = async (path, options) => (await api(path, options)).json();

function signOut() {
  sessionStorage.removeItem("triaged-token"); token = null;
  $("#app").classList.add("hidden"); $("#signin-view").classList.remove("hidden");
}
$("#signout").onclick = signOut;
$("#signin").onsubmit = async (ev) => {
  ev.preventDefault();
  token = $("#token").value.trim();
  try { await start(); sessionStorage.setItem("triaged-token", token); }
  catch (e) { $("#signin-error").textContent = "Sign-in failed: " + e.message; }
};

async function start() {
  me = await json("/api/me");
  $("#whoami").textContent = me.name + " (" + me.role + ")";
  $("#tab-admin").classList.toggle("hidden", me.role !== "admin");
  $("#signin-view").classList.add("hidden"); $("#app").classList.remove("hidden");
  await refresh();
  // Alerts link to a study as /#study=<Study Instance UID>.
  const linked = location.hash.match(/^#study=([0-9.]+)$/);
  if (linked) openStudy(linked[1]);
}

function showTab(name) {
  $("#tab-worklist").classList.toggle("active", name === "worklist");
  $("#tab-admin").classList.toggle("active", name === "admin");
  $("#worklist-view").classList.toggle("hidden", name !== "worklist");
  $("#admin-view").classList.toggle("hidden", name !== "admin");
  if (name === "admin") loadAdmin();
}
$("#tab-worklist").onclick = () => showTab("worklist");
$("#tab-admin").onclick = () => showTab("admin");

function query() {
  const q = new URLSearchParams({ page, per_page: 50 });
  if ($("#f-flagged").checked) q.set("flagged", "true");
  if ($("#f-unacked").checked) q.set("acknowledged", "false");
  for (const [id, key] of [["#f-status", "status"], ["#f-modality", "modality"], ["#f-accession", "accession"], ["#f-from", "from"], ["#f-to", "to"]]) {
    const v = $(id).value.trim(); if (v) q.set(key, v);
  }
  return q;
}
for (const id of ["#f-flagged", "#f-unacked", "#f-status", "#f-modality", "#f-accession", "#f-from", "#f-to"])
  $(id).addEventListener("change", () => { page = 1; refresh(); });
$("#prev").onclick = () => { if (page > 1) { page--; refresh(); } };
$("#next").onclick = () => { page++; refresh(); };

function badge(priority) {
  return el("span", { class: "badge priority-" + (priority || "none") }, priority || "—");
}
const when = (t) => t ? t.replace("T", " ").slice(0, 19) : "";

async function refresh() {
  if (!token) return;
  const [list, status] = await Promise.all([json("/api/worklist?" + query()), json("/api/status")]);
  if (list.studies.length === 0 && page > 1) { page--; return refresh(); }
  const body = $("#worklist tbody"); body.replaceChildren();
  for (const s of list.studies) {
    const tr = el("tr", { dataset: { study: s.study_instance_uid, priority: s.priority || "" } },
      el("td", {}, badge(s.priority)),
      el("td", {}, s.patient_name || "", el("div", { class: "dim" }, s.patient_id || "")),
      el("td", {}, s.accession_number || ""),
      el("td", {}, (s.modalities || []).join(" ")),
      el("td", {}, s.study_description || "", el("div", { class: "dim" }, s.instances + (s.instances === 1 ? " image" : " images"))),
      el("td", {}, when(s.received_at)),
      el("td", {}, s.status || "received", s.acknowledged_at ? el("div", { class: "acked" }, "✓ " + s.acknowledged_by) : "",
        s.held_at ? el("div", { class: "dim" }, "held") : "", s.purged_at && s.instances === 0 ? el("div", { class: "dim" }, "images deleted") : ""),
      el("td", {}, (s.findings || []).join(", ")));
    if (s.study_instance_uid === selected) tr.classList.add("selected");
    tr.onclick = () => openStudy(s.study_instance_uid);
    body.append(tr);
  }
  $("#count").textContent = list.total + " studies, page " + list.page;
  $("#s-queue").textContent = status.queue;
  $("#s-sending").textContent = status.sending;
  const ob = $("#s-outbox"); ob.textContent = status.outbox_waiting + (status.outbox_dead ? " (" + status.outbox_dead + " dead)" : "");
  ob.classList.toggle("bad", status.outbox_dead > 0);
  $("#s-last-error").textContent = status.last_error ? "last error " + when(status.last_error.at) + ": " + status.last_error.what : "";
}

async function blobUrl(path) {
  const url = URL.createObjectURL(await (await api(path)).blob());
  objectUrls.push(url); return url;
}

async function openStudy(uid) {
  selected = uid;
  for (const u of objectUrls) URL.revokeObjectURL(u); objectUrls = [];
  for (const tr of document.querySelectorAll("#worklist tbody tr")) tr.classList.toggle("selected", tr.dataset.study === uid);
  const s = await json("/api/studies/" + encodeURIComponent(uid));
  const d = $("#detail"); d.replaceChildren();
  d.append(el("div", { class: "row" }, badge(s.priority), el("b", {}, s.patient_name || "(no name)"),
    el("span", { class: "dim" }, (s.patient_id || "") + " · " + (s.accession_number || "no accession") + " · " + (s.study_description || ""))));
  const ack = el("button", { class: "act", id: "ack" }, s.acknowledged_at ? "Acknowledged by " + s.acknowledged_by : "Acknowledge");
  ack.disabled = !!s.acknowledged_at;
  ack.onclick = async () => { await api("/api/studies/" + encodeURIComponent(uid) + "/ack", { method: "POST", body: "{}" }); await openStudy(uid); refresh(); };
  d.append(el("div", { class: "row" }, ack, el("span", { class: "dim" }, "state: " + (s.status || "received"))));

  // Viewer: the key image (as the report names it: where a finding lies
  // furthest above its threshold; for CT the key slice), with a heatmap
  // toggle when a flagged finding there has one.
  const withMap = s.results.filter((f) => f.heatmap_uid);
  const margin = (f) => f.probability - f.threshold;
  const key = [...(withMap.length ? withMap : s.results)].sort((a, b) => margin(b) - margin(a))[0];
  const first = (key || {}).sop_instance_uid || (s.images[0] || {}).sop_instance_uid;
  if (s.purged_at && s.images.length === 0) {
    d.append(el("p", { class: "dim", id: "purged" }, "Images deleted by retention " + when(s.purged_at) +
      " (the PACS has the study and its reports); findings and reviews are kept."));
  } else if (first) {
    const img = el("img", { id: "image", alt: "study image" });
    const viewer = el("div", { id: "viewer", dataset: { showing: "image" } }, img);
    const imageUrl = await blobUrl("/api/instances/" + first + "/image.png");
    img.src = imageUrl;
    const controls = el("div", { class: "row" });
    if (withMap.length) {
      const pick = el("select", { id: "heatmap-label" }, ...withMap.filter((f) => f.sop_instance_uid === first).map((f) => el("option", {}, f.label)));
      const toggle = el("button", { class: "act secondary", id: "toggle-heatmap" }, "Show heatmap");
      toggle.onclick = async () => {
        if (viewer.dataset.showing === "image") {
          img.src = await blobUrl("/api/instances/" + first + "/heatmap.png?label=" + encodeURIComponent(pick.value));
          viewer.dataset.showing = "heatmap"; toggle.textContent = "Show image";
        } else { img.src = imageUrl; viewer.dataset.showing = "image"; toggle.textContent = "Show heatmap"; }
      };
      controls.append(toggle, pick);
    } else controls.append(el("span", { class: "dim" }, "no heatmap (nothing flagged)"));
    d.append(viewer, controls);
  }

  d.append(el("h2", {}, "Findings"));
  const ft = el("table", { id: "findings" }, el("thead", {}, el("tr", {}, ...["model", "finding", "probability", "threshold", "", "your verdict"].map((h) => el("th", {}, h)))));
  const fb = el("tbody"); ft.append(fb);
  for (const f of s.results) {
    const verdict = s.reviews.find((r) => r.kind === "feedback" && r.label === f.label && r.user_name === me.name);
    const say = (v) => async () => {
      await api("/api/studies/" + encodeURIComponent(uid) + "/feedback", { method: "POST", body: JSON.stringify({ label: f.label, verdict: v }) });
      openStudy(uid);
    };
    fb.append(el("tr", { dataset: { label: f.label, flagged: f.flagged } },
      el("td", { class: "dim" }, f.model + " " + f.model_version), el("td", {}, f.label),
      el("td", {}, f.probability.toFixed(3)), el("td", { class: "dim" }, f.threshold.toFixed(3)),
      el("td", {}, f.flagged ? badge("flagged") : ""),
      el("td", {}, el("span", { class: "verdict" }, verdict ? verdict.verdict : ""), " ",
        el("button", { class: "act secondary agree", onclick: say("agree") }, "agree"), " ",
        el("button", { class: "act secondary disagree", onclick: say("disagree") }, "disagree"))));
  }
  d.append(ft);
  if (s.skipped_images.length) {
    // Images a model could not read: the study was analysed without them.
    d.append(el("h2", {}, "Images not analysed"));
    const sl = el("ul", { id: "skipped-images" });
    for (const x of s.skipped_images) sl.append(el("li", {}, x.model + " " + x.model_version + ": " + x.error + " ", el("span", { class: "dim" }, x.sop_instance_uid)));
    d.append(sl);
  }
  d.append(el("h2", {}, "Reports"));
  const dl = el("ul", { id: "deliveries" });
  for (const x of s.deliveries) dl.append(el("li", {}, x.destination + ": " + x.state + (x.last_error ? " — " + x.last_error : "") + " ", el("span", { class: "dim" }, x.sop_instance_uid)));
  if (!s.deliveries.length) dl.append(el("li", { class: "dim" }, "none"));
  d.append(dl);
  if (s.reviews.length) {
    d.append(el("h2", {}, "Reviews"));
    const rl = el("ul");
    for (const r of s.reviews) rl.append(el("li", {}, when(r.created_at) + " " + r.user_name + ": " + (r.kind === "ack" ? "acknowledged" : r.label + " " + r.verdict + (r.comment ? " (" + r.comment + ")" : ""))));
    d.append(rl);
  }
}

async function loadAdmin() {
  const msg = $("#admin-message");
  const fail = (e) => { msg.className = "error"; msg.textContent = e.message; };
  try {
    const [sources, dests, outbox, models, monitoring] = await Promise.all(["/api/sources", "/api/destinations", "/api/outbox", "/api/models", "/api/monitoring"].map((p) => json(p)));
    const sb = $("#sources tbody"); sb.replaceChildren();
    for (const s of sources) sb.append(el("tr", { dataset: { name: s.name } }, el("td", {}, s.name), el("td", {}, s.ae_title), el("td", {}, s.hosts.join(", ") || "any"),
      el("td", {}, s.quiet_secs ?? ""), el("td", { class: "dim" }, s.origin),
      el("td", {}, el("button", { class: "act secondary", onclick: async () => { try { await api("/api/sources/" + encodeURIComponent(s.name), { method: "DELETE" }); loadAdmin(); } catch (e) { fail(e); } } }, "remove"))));
    const db = $("#destinations tbody"); db.replaceChildren();
    for (const x of dests) {
      const echo = el("button", { class: "act secondary echo" }, "echo");
      const result = el("span", { class: "echo-result" });
      echo.onclick = async () => { result.textContent = "…"; try { const r = await json("/api/destinations/" + encodeURIComponent(x.name) + "/echo", { method: "POST", body: "{}" }); result.textContent = (r.ok ? "✓ " : "✗ ") + r.answer; } catch (e) { result.textContent = "✗ " + e.message; } };
      db.append(el("tr", { dataset: { name: x.name } }, el("td", {}, x.name), el("td", {}, x.kind), el("td", {}, x.address + (x.tls ? " (TLS)" : "") + (x.deidentify ? " (de-identified)" : "")),
        el("td", { class: "dim" }, x.origin), el("td", {}, echo, " ",
          el("button", { class: "act secondary", onclick: async () => { try { await api("/api/destinations/" + encodeURIComponent(x.name), { method: "DELETE" }); loadAdmin(); } catch (e) { fail(e); } } }, "remove"), " ", result)));
    }
    const ob = $("#outbox tbody"); ob.replaceChildren();
    for (const o of outbox.slice(0, 100)) ob.append(el("tr", {}, el("td", {}, String(o.id)), el("td", { class: "dim" }, o.sop_instance_uid), el("td", {}, o.destination),
      el("td", {}, o.state), el("td", {}, String(o.attempts)), el("td", {}, o.last_error || ""),
      el("td", {}, o.state === "dead" || o.state === "pending" ? el("button", { class: "act secondary", onclick: async () => { await api("/api/outbox/" + o.id + "/retry", { method: "POST", body: "{}" }); loadAdmin(); } }, "retry") : "")));
    const mb = $("#models tbody"); mb.replaceChildren();
    for (const m of models) {
      // Active: reported; shadow: findings recorded for evaluation only; disabled: reads nothing.
      const state = el("select", { class: "model-state", "aria-label": "state of " + m.name + " " + m.version }, ...["active", "shadow", "disabled"].map((v) => el("option", v === m.state ? { value: v, selected: "" } : { value: v }, v)));
      state.onchange = async () => {
        try { await api("/api/models/" + encodeURIComponent(m.name) + "/" + encodeURIComponent(m.version) + "/state", { method: "PUT", body: JSON.stringify({ state: state.value }) }); loadAdmin(); } catch (e) { fail(e); }
      };
      const since = m.state_changed_by ? m.state_changed_by + ", " + m.state_changed_at : "from the manifest";
      mb.append(el("tr", { dataset: { name: m.name, version: m.version } }, el("td", {}, m.name), el("td", {}, m.version), el("td", {}, state, " ", el("span", { class: "dim" }, since)),
        el("td", {}, m.input), el("td", {}, m.labels.join(", ")), el("td", {}, m.validated ? "yes" : "NO — not for diagnosis")));
    }
    const tb = $("#monitoring tbody"); tb.replaceChildren();
    const pct = (v) => v == null ? "—" : (100 * v).toFixed(0) + " %";
    for (const m of monitoring) {
      const drift = m.psi == null ? "—" : m.psi.toFixed(2) + " (" + m.reference_source + ")";
      tb.append(el("tr", { dataset: { model: m.model, label: m.label }, class: m.drift_alert ? "drift" : "" },
        el("td", {}, m.model), el("td", {}, m.version + (m.shadow ? " (shadow)" : "")), el("td", {}, m.label),
        el("td", {}, sparkline(m.days)),
        el("td", {}, m.studies_7d ? pct(m.flagged_7d / m.studies_7d) + " of " + m.studies_7d : "—"),
        el("td", {}, m.flagged_reviewed ? pct(m.ppv) + " of " + m.flagged_reviewed : "—"),
        el("td", {}, m.clear_reviewed ? m.missed + " of " + m.clear_reviewed : "—"),
        el("td", { class: m.drift_alert ? "bad" : "" }, (m.drift_alert ? "⚠ " : "") + drift)));
    }
  } catch (e) { fail(e); }
}

// Flags per day as bars (height: share flagged; title: the numbers).
function sparkline(days) {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  const w = 4, h = 20;
  svg.setAttribute("width", String(Math.max(days.length, 1) * w)); svg.setAttribute("height", String(h));
  svg.setAttribute("class", "sparkline");
  days.forEach((d, i) => {
    const r = document.createElementNS(ns, "rect");
    const v = d.studies ? d.flagged / d.studies : 0;
    r.setAttribute("x", String(i * w)); r.setAttribute("width", String(w - 1));
    r.setAttribute("y", String(h - Math.max(1, v * h))); r.setAttribute("height", String(Math.max(1, v * h)));
    const t = document.createElementNS(ns, "title"); t.textContent = d.day + ": " + d.flagged + " of " + d.studies + " flagged";
    r.append(t); svg.append(r);
  });
  return svg;
}

$("#source-form").onsubmit = async (ev) => {
  ev.preventDefault();
  const f = new FormData(ev.target), msg = $("#admin-message");
  const body = { ae_title: f.get("ae_title"), hosts: f.get("hosts").split(",").map((h) => h.trim()).filter(Boolean) };
  if (f.get("quiet_secs")) body.quiet_secs = Number(f.get("quiet_secs"));
  try { await api("/api/sources/" + encodeURIComponent(f.get("name")), { method: "PUT", body: JSON.stringify(body) }); msg.className = ""; msg.textContent = "Source saved."; ev.target.reset(); loadAdmin(); }
  catch (e) { msg.className = "error"; msg.textContent = e.message; }
};
$("#destination-form [name=kind]").onchange = (ev) => {
  const hl7 = ev.target.value === "hl7";
  $("#destination-form .for-hl7").classList.toggle("hidden", !hl7);
  $("#destination-form .for-dicom").classList.toggle("hidden", hl7);
};
$("#destination-form").onsubmit = async (ev) => {
  ev.preventDefault();
  const f = new FormData(ev.target), msg = $("#admin-message");
  const kind = f.get("kind"), body = { kind, host: f.get("host"), port: Number(f.get("port")) };
  if (kind === "dicom") body.ae_title = f.get("ae_title");
  else for (const k of ["sending_application", "sending_facility", "receiving_application", "receiving_facility"]) if (f.get(k)) body[k] = f.get(k);
  if (f.get("min_priority")) body.min_priority = f.get("min_priority");
  try { await api("/api/destinations/" + encodeURIComponent(f.get("name")), { method: "PUT", body: JSON.stringify(body) }); msg.className = ""; msg.textContent = "Destination saved."; ev.target.reset(); ev.target.kind.dispatchEvent(new Event("change")); loadAdmin(); }
  catch (e) { msg.className = "error"; msg.textContent = e.message; }
};

setInterval(() => { if (token && !$("#worklist-view").classList.contains("hidden")) refresh().catch(() => {}); }, 10000);
if (token) start().catch(signOut); else signOut();
