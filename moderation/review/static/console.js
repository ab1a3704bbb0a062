// The moderators' console: plain JS over the review API (session cookie from /api/v1/auth/login).
"use strict";

const $ = (sel) => document.querySelector(sel);
const state = { me: null, items: [], index: -1, item: null, renewTimer: null, idemKey: null, leaseSeconds: 300 };

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c ?? "")));
  return node;
}

async function api(method, url, body, headers = {}) {
  const opts = { method, headers: { ...headers }, credentials: "same-origin" };
  if (body !== undefined) { opts.headers["Content-Type"] = "application/json"; opts.body = JSON.stringify(body); }
  const r = await fetch(url, opts);
  let data = null;
  try { data = await r.json(); } catch (_) { /* no body */ }
  if (!r.ok) {
    const err = new Error((data && data.detail) || r.statusText);
    err.status = r.status; err.error = data && data.error;
    throw err;
  }
  return data;
}

function notice(text) { $("#notice").textContent = text || ""; }
function fmtTime(s) { const m = Math.floor(s / 60); return `${m}:${(s - m * 60).toFixed(1).padStart(4, "0")}`; }

// --- login -------------------------------------------------------------------------------------

async function init() {
  try {
    state.me = await api("GET", "/api/v1/me");
  } catch (_) {
    state.me = null;
  }
  if (!state.me || !["moderator", "admin"].includes(state.me.role)) {
    $("#login").hidden = false; $("#app").hidden = true; $("#logout").hidden = true;
    if (state.me) $("#login-error").textContent = "This console is for moderators and admins.";
    return;
  }
  $("#login").hidden = true; $("#app").hidden = false; $("#logout").hidden = false;
  $("#whoami").textContent = `${state.me.display_name} (${state.me.role})`;
  await loadQueue();
}

$("#login-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  $("#login-error").textContent = "";
  try {
    await api("POST", "/api/v1/auth/login", { identifier: $("#login-identifier").value, password: $("#login-password").value });
    await init();
  } catch (e) {
    $("#login-error").textContent = e.message;
  }
});

$("#logout").addEventListener("click", async () => {
  await releaseCurrent();
  await api("POST", "/api/v1/auth/logout").catch(() => {});
  location.reload();
});

// --- queue -------------------------------------------------------------------------------------

function filters() {
  const p = new URLSearchParams();
  if ($("#filter-status").value) p.set("status", $("#filter-status").value);
  if ($("#filter-category").value.trim()) p.set("category", $("#filter-category").value.trim());
  if ($("#filter-rule").value.trim()) p.set("rule_id", $("#filter-rule").value.trim());
  return p;
}

async function loadQueue() {
  const page = await api("GET", `/api/v1/moderation/queue?${filters()}`);
  state.items = page.items;
  const list = $("#queue");
  list.replaceChildren();
  page.items.forEach((it, i) => {
    const who = it.participant ? it.participant.display_name : "deleted account";
    list.append(el("li", { class: `queue-item sev-${it.severity_rank}`, "data-id": it.id, onclick: () => select(i, true) },
      it.auto_restricted ? el("span", { class: "badge auto" }, "restricted") : "",
      el("span", { class: "badge" }, it.severity), el("span", { class: "badge" }, it.status),
      el("div", {}, `${it.category} · ${it.rule_ids.join(", ")}`),
      el("div", { class: "meta" }, `${who} · ${it.source} · ${it.flag_count} flag(s) · ${new Date(it.created_at).toLocaleString()}`)));
  });
  $("#queue-empty").hidden = page.items.length > 0;
  highlight();
}

function highlight() {
  document.querySelectorAll(".queue-item").forEach((n, i) => n.classList.toggle("selected", i === state.index));
  const sel = document.querySelectorAll(".queue-item")[state.index];
  if (sel) sel.scrollIntoView({ block: "nearest" });
}

async function select(i, open) {
  if (i < 0 || i >= state.items.length) return;
  state.index = i;
  highlight();
  if (open) await openItem(state.items[i].id);
}

$("#filters").addEventListener("submit", (ev) => { ev.preventDefault(); loadQueue(); });
$("#claim-next").addEventListener("click", () => claimNext());

async function claimNext() {
  await releaseCurrent();
  const out = await api("POST", "/api/v1/moderation/queue/claim-next", {});
  await loadQueue();
  if (!out.item) { notice("Nothing free to claim."); $("#detail").hidden = true; return; }
  state.index = state.items.findIndex((x) => x.id === out.item.id);
  highlight();
  await showItem(out.item);
}

// --- one item ------------------------------------------------------------------------------------

async function releaseCurrent() {
  const cur = state.item;
  stopRenew();
  if (cur && cur.you_hold_lease) {
    await api("POST", `/api/v1/moderation/items/${cur.id}/release`).catch(() => {});
  }
}

async function openItem(id) {
  if (state.item && state.item.id !== id) await releaseCurrent();
  let detail;
  try {
    detail = await api("POST", `/api/v1/moderation/items/${id}/claim`);
  } catch (e) {
    detail = await api("GET", `/api/v1/moderation/items/${id}`);
    detail._claimError = e.message;
  }
  await showItem(detail);
}

function stopRenew() { if (state.renewTimer) clearInterval(state.renewTimer); state.renewTimer = null; }

function startRenew(item) {
  stopRenew();
  if (!item.you_hold_lease) return;
  const every = Math.max(10, (new Date(item.lease_expires_at) - Date.now()) / 2000);
  state.renewTimer = setInterval(async () => {
    try {
      const lease = await api("POST", `/api/v1/moderation/items/${item.id}/renew`);
      $("#lease").textContent = `lease until ${new Date(lease.lease_expires_at).toLocaleTimeString()}`;
    } catch (e) {
      notice(`Lease lost: ${e.message}`); stopRenew();
    }
  }, every * 1000);
}

async function showItem(item) {
  state.item = item;
  state.idemKey = crypto.randomUUID();
  $("#detail").hidden = false;
  $("#item-title").textContent = `${item.severity} · ${item.categories.join(", ")} · ${item.source}`;
  $("#lease").textContent = item.you_hold_lease ? `lease until ${new Date(item.lease_expires_at).toLocaleTimeString()}` : "";
  notice(item._claimError ? `Read only: ${item._claimError}` : "");
  const p = item.participant;
  $("#participant").textContent = p ? `${p.display_name} (${p.role}, ${p.status}) · strikes: ${item.history.active_strikes}` : "deleted account";
  const c = item["class"];
  $("#class-info").textContent = c ? `${c.title} — teacher ${c.teacher ? c.teacher.display_name : "?"}` : "—";
  $("#restrictions").textContent = item.restrictions.length
    ? item.restrictions.map((r) => `${r.kind}${r.automated ? " (automated, pending review)" : ""}${r.until ? " until " + new Date(r.until).toLocaleString() : ""}`).join("; ")
    : "none";
  renderTimeline(item);
  renderFlags(item);
  renderTranscript(item);
  renderHistory(item);
  renderDecisions(item);
  const appealed = !!item.open_appeal && item.status !== "new";
  $("#appeal").hidden = !item.open_appeal;
  $("#decision-form").hidden = appealed && item.decisions.some((d) => d.outcome === "confirm");
  if (item.open_appeal) $("#appeal-text").textContent = item.open_appeal.text;
  startRenew(item);
  await openRecording(item);
}

async function openRecording(item) {
  const media = $("#media");
  media.removeAttribute("src");
  $("#screen").replaceChildren();
  $("#screen-wrap").hidden = true;
  if (!item.slice || !item.slice.media_available) { notice("The recording was deleted under the retention policy."); return; }
  const opened = await api("POST", `/api/v1/moderation/items/${item.id}/recording`,
    { reason: `moderation review of flagged item ${item.id}`, slice_id: item.slice.id });
  media.src = opened.media_url;
  media.load();
  if (item.screen.length) {
    $("#screen-wrap").hidden = false;
    for (const ev of item.screen) await drawFrame(opened.frame_url, ev);
  }
}

async function drawFrame(frameUrl, ev) {
  const r = await fetch(`${frameUrl}?t=${ev.frame_time}`, { credentials: "same-origin" });
  if (!r.ok) return;
  const nativeW = Number(r.headers.get("X-Frame-Width")) || 0;
  const bmp = await createImageBitmap(await r.blob());
  const canvas = el("canvas", { width: bmp.width, height: bmp.height, title: `frame at ${ev.frame_time}s` });
  const ctx = canvas.getContext("2d");
  ctx.drawImage(bmp, 0, 0);
  const scale = nativeW ? bmp.width / nativeW : 1;
  ctx.strokeStyle = "#e00"; ctx.lineWidth = 4;
  for (const box of ev.boxes) {
    ctx.beginPath();
    box.forEach(([x, y], i) => (i ? ctx.lineTo(x * scale, y * scale) : ctx.moveTo(x * scale, y * scale)));
    ctx.closePath(); ctx.stroke();
  }
  $("#screen").append(canvas);
}

function jump(seconds) {
  const media = $("#media");
  media.currentTime = Math.max(0, seconds);
  media.play().catch(() => {});
}

// A case gathers one participant's hits of one category in one live class: every slice and hit
// on one timeline, beside what happened live (nudges, restrictions) and the decisions.
const EVENT_LABELS = {
  live_nudge: "live nudge shown to the speaker / 已向发言者显示实时提醒",
  restriction_applied: "restriction applied / 已施加限制",
  restriction_lifted: "restriction lifted / 已解除限制",
  decided: "decided / 已决定",
  escalated: "escalated / 已上报",
  appealed: "appealed / 已申诉",
  appeal_upheld: "appeal upheld / 申诉被驳回",
  overturned: "overturned on appeal / 申诉后撤销",
};

async function showSlice(item, sliceId) {
  const detail = await api("GET", `/api/v1/moderation/items/${item.id}?slice_id=${encodeURIComponent(sliceId)}`);
  detail._claimError = item._claimError;
  await showItem(detail);
}

function renderTimeline(item) {
  const n = item.slices.length;
  $("#case-summary").textContent =
    `${item.flag_count} hits on ${n} slice(s) / ${n} 个片段中 ${item.flag_count} 处命中` +
    (item.last_flag_at ? ` · last / 最近 ${new Date(item.last_flag_at).toLocaleTimeString()}` : "");
  const order = Object.fromEntries(item.slices.map((s, i) => [s.id, i + 1]));
  const list = $("#timeline");
  list.replaceChildren();
  for (const t of item.timeline) {
    const at = new Date(t.at).toLocaleTimeString();
    if (t.kind === "flag") {
      const shown = item.slice && item.slice.id === t.slice_id;
      list.append(el("li", { class: shown ? "shown" : "" },
        el("button", { type: "button", class: "jump",
          onclick: () => (shown ? jump(t.offset_s) : showSlice(item, t.slice_id)) },
          `${at} · slice ${order[t.slice_id] || "?"} (${t.source})`),
        ` ${t.severity} · ${t.rule_id} · `, el("q", {}, t.quote)));
    } else {
      const extra = t.kind === "live_nudge" ? (t.data.delivered ? " ✓" : ` (${t.data.note || "not shown"})`)
        : t.data.outcome ? ` · ${t.data.outcome}` : t.data.restriction ? ` · ${t.data.restriction}` : "";
      list.append(el("li", { class: "event" }, `${at} · ${EVENT_LABELS[t.kind] || t.kind}${extra}`));
    }
  }
}

// The flags of the slice shown (its media is the one playing; the timeline lists the others).
function shownFlags(item) { return item.flags.filter((f) => !item.slice || f.slice_id === item.slice.id); }

function renderFlags(item) {
  const list = $("#flags");
  list.replaceChildren();
  shownFlags(item).forEach((f, i) => {
    list.append(el("li", {},
      el("button", { type: "button", class: "jump", onclick: () => jump(f.start_ms / 1000) }, `${i + 1} ▶ ${fmtTime(f.start_ms / 1000)}`),
      ` ${f.severity} · ${f.category} · ${f.rule_id} v${f.rule_version} · `,
      el("q", {}, f.quote),
      f.auto_action ? el("span", { class: "badge auto" }, f.auto_action) : ""));
  });
}

function hitWords(item) {
  // The rules put the matched text in [brackets] inside the quote.
  return shownFlags(item).map((f) => (f.quote.match(/\[([^\]]+)\]/) || [])[1]).filter(Boolean);
}

function markText(text, words) {
  const frag = document.createDocumentFragment();
  const lower = text.toLowerCase();
  let pos = 0;
  const spans = [];
  for (const w of words) {
    const at = lower.indexOf(w.toLowerCase());
    if (at >= 0) spans.push([at, at + w.length]);
  }
  spans.sort((a, b) => a[0] - b[0]);
  for (const [a, b] of spans) {
    if (a < pos) continue;
    frag.append(text.slice(pos, a), el("mark", {}, text.slice(a, b)));
    pos = b;
  }
  frag.append(text.slice(pos));
  return frag;
}

// The language the speech model detected for the slice, in both of the platform's languages.
const LANGUAGES = { zh: "中文 · Chinese", en: "English · 英语" };

function renderLanguage(item) {
  const badge = $("#transcript-lang");
  const lang = item.transcript && item.transcript.language;
  badge.hidden = !lang;
  badge.textContent = lang ? (LANGUAGES[lang] || lang) : "";
  badge.title = lang ? `detected language / 识别的语言: ${lang}` : "";
  badge.dataset.lang = lang || "";
}

function renderTranscript(item) {
  const box = $("#transcript");
  box.replaceChildren();
  renderLanguage(item);
  if (!item.transcript) { box.textContent = item.source === "mic" ? "(no transcript)" : ""; return; }
  const words = hitWords(item);
  for (const seg of item.transcript.segments) {
    const hit = seg.flag_ids.length > 0;
    box.append(el("span", { class: `seg${hit ? " hit" : ""}`, title: fmtTime(seg.start), onclick: () => jump(seg.start) },
      hit ? markText(seg.text, words) : seg.text), " ");
  }
}

function renderHistory(item) {
  const h = item.history;
  const box = $("#history");
  box.replaceChildren();
  if (!h.items.length && !h.decisions.length) { box.textContent = "No earlier flags."; return; }
  const ul = el("ul");
  for (const it of h.items) ul.append(el("li", {}, `${new Date(it.created_at).toLocaleDateString()} · ${it.severity} · ${it.categories.join(", ")} · ${it.status} · ${it.quotes.join(" / ")}`));
  for (const d of h.decisions) ul.append(el("li", {}, `decision ${new Date(d.created_at).toLocaleDateString()}: ${d.outcome} ${d.action || ""}${d.appeal ? " (appeal " + d.appeal.status + ")" : ""}`));
  box.append(ul);
}

function renderDecisions(item) {
  const list = $("#decisions");
  list.replaceChildren();
  for (const d of item.decisions) {
    list.append(el("li", {}, `${new Date(d.created_at).toLocaleString()} · ${d.actor_role} · ${d.outcome} ${d.action || ""}${d.duration_days ? " " + d.duration_days + "d" : ""} — ${d.reason}${d.internal_note ? " [note: " + d.internal_note + "]" : ""}`));
  }
}

// --- deciding ------------------------------------------------------------------------------------

function outcome() { return document.querySelector("input[name=outcome]:checked").value; }

function syncForm() {
  const o = outcome();
  $("#confirm-fields").hidden = o !== "confirm";
  $("#explanation-label").hidden = o === "escalate";
  $("#days-label").hidden = $("#action").value !== "suspend";
  state.idemKey = crypto.randomUUID();  // a changed form is a new request
}
document.querySelectorAll("input[name=outcome], #action").forEach((n) => n.addEventListener("change", syncForm));

async function submitDecision(andNext) {
  const item = state.item;
  if (!item) return;
  const body = { outcome: outcome(), reason: $("#reason").value, internal_note: $("#note").value };
  if (body.outcome !== "escalate") body.explanation = $("#explanation").value;
  if (body.outcome === "confirm") {
    body.action = $("#action").value;
    if (body.action === "suspend") body.duration_days = Number($("#days").value);
  }
  try {
    const out = await api("POST", `/api/v1/moderation/items/${item.id}/decision${andNext ? "?next=true" : ""}`, body,
      { "Idempotency-Key": state.idemKey });
    stopRenew();
    notice(`Decided: ${out.decision.outcome}${out.decision.action ? " · " + out.decision.applied.map((a) => a.kind).join(" + ") : ""}`);
    $("#decision-form").reset(); syncForm();
    state.item = null;
    await loadQueue();
    if (andNext && out.next_item) {
      state.index = state.items.findIndex((x) => x.id === out.next_item.id);
      highlight();
      await showItem(out.next_item);
      notice(`Decided: ${out.decision.outcome}. Next item claimed.`);
    } else if (andNext) {
      $("#detail").hidden = true;
    }
    $("#decided").textContent = out.decision.id;
  } catch (e) {
    notice(`Not decided: ${e.message}`);
  }
}

$("#decision-form").addEventListener("submit", (ev) => { ev.preventDefault(); submitDecision(false); });
$("#decide-next-submit").addEventListener("click", () => submitDecision(true));

$("#appeal-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const item = state.item;
  try {
    const out = await api("POST", `/api/v1/appeals/${item.open_appeal.id}/decision`, {
      outcome: $("#appeal-outcome").value, reason: $("#appeal-reason").value, explanation: $("#appeal-explanation").value,
    });
    stopRenew();
    notice(`Appeal ${out.appeal.status}.`);
    $("#appeal-form").reset();
    state.item = null;
    await loadQueue();
  } catch (e) {
    notice(`Appeal not decided: ${e.message}`);
  }
});

$("#release").addEventListener("click", async () => { await releaseCurrent(); state.item = null; $("#detail").hidden = true; await loadQueue(); });
$("#help-toggle").addEventListener("click", () => { $("#help").hidden = !$("#help").hidden; });

// --- keyboard --------------------------------------------------------------------------------------

document.addEventListener("keydown", (ev) => {
  const typing = ["INPUT", "TEXTAREA", "SELECT"].includes(document.activeElement.tagName);
  if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) { ev.preventDefault(); submitDecision(true); return; }
  if (typing) { if (ev.key === "Escape") document.activeElement.blur(); return; }
  if ($("#app").hidden || ev.altKey || ev.ctrlKey || ev.metaKey) return;
  const media = $("#media");
  const pick = (id, focus) => { $(id).checked = true; syncForm(); $(focus).focus(); };
  switch (ev.key) {
    case "j": select(state.index + 1, true); break;
    case "k": select(state.index - 1, true); break;
    case "n": claimNext(); break;
    case "r": $("#release").click(); break;
    case " ": ev.preventDefault(); if (media.src) (media.paused ? media.play() : media.pause()); break;
    case "d": ev.preventDefault(); pick("#outcome-dismiss", "#reason"); break;
    case "c": ev.preventDefault(); pick("#outcome-confirm", "#action"); break;
    case "e": ev.preventDefault(); pick("#outcome-escalate", "#reason"); break;
    case "?": $("#help").hidden = !$("#help").hidden; break;
    default:
      if (/^[1-9]$/.test(ev.key) && state.item) {
        const f = shownFlags(state.item)[Number(ev.key) - 1];
        if (f) jump(f.start_ms / 1000);
      }
  }
});

window.addEventListener("beforeunload", () => {
  if (state.item && state.item.you_hold_lease) navigator.sendBeacon(`/api/v1/moderation/items/${state.item.id}/release`);
});

syncForm();
init();
