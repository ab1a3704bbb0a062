// The class page: log in, list and join classes, publish mic / camera / screen, play the others,
// show the recording indicator. Everything shown about recording comes from the server's
// "participants" / "source_state" messages (the server decides what is recorded).
// Protocol: see classroom/signaling.py. Two peer connections: "publish" (we offer) and
// "subscribe" (the server offers). The server does not trickle ICE, so every description is
// sent once ICE gathering is complete.
"use strict";

const params = new URLSearchParams(location.search);
const FAKE_SCREEN = params.get("fakescreen") === "1";
const SOURCES = ["mic", "camera", "screen"];

const $ = (id) => document.getElementById(id);
const cg = {  // page state, also read by the browser tests
  me: null, sessionId: null, classId: null, participantId: null, state: "idle",
  participants: [], messages: [], errors: [], wanted: { mic: false, camera: false, screen: false },
};
window.cg = cg;

// --- small helpers -----------------------------------------------------------------------------

function notice(text) { $("notice").textContent = text || ""; }

// --- language (the notices a policy sends come in both; the page shows its own) ------------------

const LANGS = ["en", "zh"];
function pageLang() {
  const saved = localStorage.getItem("cg.lang");
  if (LANGS.includes(saved)) return saved;
  return (navigator.language || "en").toLowerCase().startsWith("zh") ? "zh" : "en";
}
cg.lang = pageLang();
cg.notices = [];      // policy notices shown to me
cg.noticesShown = []; // (teacher) notices shown to participants
const SHOWN_TEXT = {
  en: (name) => `${name} was shown the platform notice about contact details and payments outside the platform.`,
  zh: (name) => `已向 ${name} 显示关于联系方式和平台外付款的平台提醒。`,
};

function renderNotices() {
  document.documentElement.lang = cg.lang === "zh" ? "zh-CN" : "en";
  $("lang").value = cg.lang;
  const last = cg.notices[cg.notices.length - 1];
  $("policy-notice").hidden = !last;
  $("policy-notice").textContent = last ? (last.texts[cg.lang] || last.texts.en) : "";
  $("notices-shown").replaceChildren(...cg.noticesShown.map((m) => {
    const li = document.createElement("li");
    li.textContent = SHOWN_TEXT[cg.lang](m.display_name);
    return li;
  }));
}

$("lang").addEventListener("change", (ev) => {
  cg.lang = LANGS.includes(ev.target.value) ? ev.target.value : "en";
  localStorage.setItem("cg.lang", cg.lang);
  renderNotices();
});
renderNotices();

async function api(method, path, body) {
  const init = { method, credentials: "same-origin", headers: {} };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const r = await fetch(path, init);
  const data = r.status === 204 ? null : await r.json().catch(() => null);
  if (!r.ok) {
    const err = new Error((data && data.detail) || r.statusText);
    err.status = r.status;
    err.error = data && data.error;
    throw err;
  }
  return data;
}

function show(view) {
  for (const v of ["login-view", "classes-view", "room-view"]) $(v).hidden = v !== view;
}

function waitGathering(pc) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const check = () => {
      if (pc.iceGatheringState === "complete") {
        pc.removeEventListener("icegatheringstatechange", check);
        resolve();
      }
    };
    pc.addEventListener("icegatheringstatechange", check);
    setTimeout(resolve, 3000);  // host candidates come fast; never hang on a slow STUN server
  });
}

// A queue so negotiations never overlap (each one is offer → answer on the same PC).
function serial() {
  let chain = Promise.resolve();
  return (fn) => {
    const run = chain.then(fn, fn);
    chain = run.catch((e) => { console.error(e); notice(String(e.message || e)); });
    return run;
  };
}

// --- login and classes ---------------------------------------------------------------------------

async function boot() {
  try {
    cg.me = await api("GET", "/api/v1/me");
  } catch (e) {
    show("login-view");
    return;
  }
  await showClasses();
  const m = location.pathname.match(/^\/classes\/([0-9a-f-]{36})$/);
  if (m) await joinClass(m[1]);
}

$("login-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const form = new FormData(ev.target);
  try {
    const out = await api("POST", "/api/v1/auth/login",
      { identifier: form.get("identifier"), password: form.get("password") });
    cg.me = out.user;
    notice("");
    await showClasses();
    const m = location.pathname.match(/^\/classes\/([0-9a-f-]{36})$/);
    if (m) await joinClass(m[1]);
  } catch (e) {
    notice(`Login failed: ${e.message}`);
  }
});

$("logout").addEventListener("click", async () => {
  await leaveRoom();
  await api("POST", "/api/v1/auth/logout").catch(() => null);
  cg.me = null;
  $("logout").hidden = true;
  $("whoami").textContent = "";
  show("login-view");
});

async function showClasses() {
  $("whoami").textContent = `${cg.me.display_name} (${cg.me.role})`;
  $("logout").hidden = false;
  $("create-form").hidden = cg.me.role !== "teacher";
  $("enroll-form").hidden = cg.me.role !== "student";
  const list = $("class-list");
  list.textContent = "";
  const classes = await api("GET", "/api/v1/classes");
  if (!classes.length) list.textContent = "No classes yet.";
  for (const c of classes) {
    const li = document.createElement("li");
    li.className = "class-item";
    const when = c.scheduled_start ? ` — ${new Date(c.scheduled_start).toLocaleString()}` : "";
    li.append(`${c.title}${when}`);
    if (c.live_session_id) {
      const live = document.createElement("span");
      live.className = "live";
      live.textContent = "live now";
      li.append(live);
    }
    const btn = document.createElement("button");
    btn.textContent = "Join";
    btn.dataset.testid = `join-${c.id}`;
    btn.addEventListener("click", () => joinClass(c.id));
    li.append(btn);
    list.append(li);
  }
  show("classes-view");
}

$("create-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const form = new FormData(ev.target);
  const iso = (v) => (v ? new Date(v).toISOString() : null);
  try {
    await api("POST", "/api/v1/classes", {
      title: form.get("title"), scheduled_start: iso(form.get("scheduled_start")),
      scheduled_end: iso(form.get("scheduled_end")),
    });
    ev.target.reset();
    await showClasses();
  } catch (e) {
    notice(`Could not create the class: ${e.message}`);
  }
});

$("enroll-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const id = new FormData(ev.target).get("class_id").trim();
  try {
    await api("POST", `/api/v1/classes/${id}/enroll`);
    ev.target.reset();
    await showClasses();
  } catch (e) {
    notice(`Could not enroll: ${e.message}`);
  }
});

// --- the live room -------------------------------------------------------------------------------

let ws = null;
let pub = null;  // publish PC
let sub = null;  // subscribe PC
let pendingAnswer = null;
const pubQueue = serial();
const subQueue = serial();
const local = { mic: { t: null, track: null }, camera: { t: null, track: null }, screen: { t: null, track: null } };
let trackMap = {};  // subscribe mid -> {participant_id, source}
const midStreams = {};  // subscribe mid -> MediaStream
const midElements = {};  // subscribe mid -> <audio>/<video>
let fakeScreenTimer = null;

async function joinClass(classId) {
  notice("");
  let join;
  try {
    join = await api("POST", `/api/v1/classes/${classId}/join`);
  } catch (e) {
    notice(`Cannot join: ${e.message}`);
    return;
  }
  cg.classId = classId;
  cg.sessionId = join.session.id;
  cg.state = "connecting";
  $("room-title").textContent = `Live class (${join.role})`;
  show("room-view");
  const config = { iceServers: join.ice_servers };
  pub = new RTCPeerConnection(config);
  sub = new RTCPeerConnection(config);
  sub.addEventListener("track", (ev) => {
    const mid = ev.transceiver.mid;
    midStreams[mid] = new MediaStream([ev.track]);
    renderMedia();
  });
  // The session may be hosted by another relay node (scale-out): join.signal_url says where, and
  // carries a single-use join ticket (the login token never goes into a URL). One ticket per join.
  const target = new URL(join.signal_url, location.href);
  target.protocol = target.protocol === "https:" ? "wss:" : "ws:";
  ws = new WebSocket(target.href);
  ws.addEventListener("message", (ev) => onMessage(JSON.parse(ev.data)));
  ws.addEventListener("close", () => {
    if (cg.state !== "left") {
      cg.state = "closed";
      notice("Disconnected from the class.");
    }
  });
  ws.addEventListener("error", () => notice("The class connection failed."));
}

function send(msg) {
  if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(msg));
}

// Why the relay closed the connection (the ones sent through the live control path).
const REMOVED_TEXT = {
  "signed-out": "您已退出登录，课堂连接已关闭。 You signed out; the class connection was closed.",
  "account-restricted": "您的账户已被限制，课堂连接已关闭。 Your account was restricted; the class connection was closed.",
  "consent-withdrawn": "您已撤回录制同意，课堂连接已关闭。 You withdrew consent to recording; the class connection was closed.",
};

function onMessage(msg) {
  cg.messages.push(msg);
  switch (msg.type) {
    case "welcome":
      cg.participantId = msg.participant_id;
      cg.state = "joined";
      break;
    case "answer":
      if (msg.pc === "publish" && pendingAnswer) pendingAnswer.resolve(msg.sdp);
      break;
    case "offer":
      subQueue(() => onSubscribeOffer(msg));
      break;
    case "participants":
      cg.participants = msg.participants;
      renderTiles();
      break;
    case "source_state":
      applySourceState(msg);
      break;
    case "muted":
      notice(msg.muted ? `A moderator muted your ${msg.source}.` : `Your ${msg.source} was unmuted.`);
      renderControls();
      break;
    case "notice":  // a policy notice for me (e.g. the moderation nudge)
      cg.notices.push(msg);
      renderNotices();
      break;
    case "notice_shown":  // (teacher) a participant was shown a notice
      cg.noticesShown.push(msg);
      renderNotices();
      break;
    case "removed":
    case "ended":
      notice(msg.type === "ended" ? "The class has ended." : (REMOVED_TEXT[msg.reason] || `You left the class (${msg.reason}).`));
      teardown(msg.type);
      break;
    case "error":
      cg.errors.push(msg);
      notice(`${msg.error}: ${msg.detail}`);
      if (pendingAnswer) pendingAnswer.reject(new Error(msg.detail));
      break;
    default:
      break;
  }
}

async function onSubscribeOffer(msg) {
  trackMap = msg.tracks || {};
  await sub.setRemoteDescription({ type: "offer", sdp: msg.sdp });
  await sub.setLocalDescription(await sub.createAnswer());
  await waitGathering(sub);
  send({ type: "answer", sdp: sub.localDescription.sdp });
  renderMedia();
}

async function negotiatePublish() {
  await pub.setLocalDescription(await pub.createOffer());
  await waitGathering(pub);
  const answer = new Promise((resolve, reject) => { pendingAnswer = { resolve, reject }; });
  send({ type: "offer", sdp: pub.localDescription.sdp });
  const sdp = await Promise.race([answer,
    new Promise((_, reject) => setTimeout(() => reject(new Error("no answer from the relay")), 15000))]);
  pendingAnswer = null;
  await pub.setRemoteDescription({ type: "answer", sdp });
}

function fakeScreenTrack() {
  const canvas = document.createElement("canvas");
  canvas.width = 1280;
  canvas.height = 720;
  const ctx = canvas.getContext("2d");
  const draw = () => {
    ctx.fillStyle = "#fafaf5";
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    ctx.fillStyle = "#1b1b1b";
    ctx.font = "48px sans-serif";
    ctx.fillText("Lesson: fractions", 60, 120);
    ctx.fillText(params.get("screentext") || "1/2 + 1/4 = 3/4", 60, 220);
    ctx.font = "28px monospace";
    ctx.fillText(new Date().toISOString(), 60, 660);
  };
  draw();
  fakeScreenTimer = setInterval(draw, 200);
  return canvas.captureStream(5).getVideoTracks()[0];
}

async function acquire(source) {
  if (source === "mic") return (await navigator.mediaDevices.getUserMedia({ audio: true })).getAudioTracks()[0];
  if (source === "camera") {
    return (await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 } })).getVideoTracks()[0];
  }
  const track = FAKE_SCREEN ? fakeScreenTrack()
    : (await navigator.mediaDevices.getDisplayMedia({ video: true, audio: false })).getVideoTracks()[0];
  track.contentHint = "text";  // keep text sharp: full resolution over frame rate
  track.addEventListener("ended", () => { if (cg.wanted.screen) toggle("screen"); });
  return track;
}

async function switchOn(source) {
  const s = local[source];
  const track = await acquire(source);
  s.track = track;
  if (!s.t) {
    s.t = pub.addTransceiver(track, { direction: "sendonly" });
  } else {
    await s.t.sender.replaceTrack(track);
    s.t.direction = "sendonly";
  }
  if (source === "screen") {
    try {
      const p = s.t.sender.getParameters();
      p.degradationPreference = "maintain-resolution";
      await s.t.sender.setParameters(p);
    } catch (e) { /* older browsers: best effort */ }
  }
  await negotiatePublish();
  send({ type: "source", source, enabled: true, mid: s.t.mid });
}

async function switchOff(source) {
  const s = local[source];
  if (!s.t) return;
  // Tell the relay first (it stops recording at once), then really stop sending.
  send({ type: "source", source, enabled: false, mid: s.t.mid });
  await s.t.sender.replaceTrack(null);
  s.t.direction = "inactive";
  await negotiatePublish();
  if (s.track) s.track.stop();
  s.track = null;
  if (source === "screen" && fakeScreenTimer) {
    clearInterval(fakeScreenTimer);
    fakeScreenTimer = null;
  }
}

function toggle(source) {
  if (cg.state !== "joined") return Promise.resolve();
  const on = !cg.wanted[source];
  cg.wanted[source] = on;
  renderControls();
  return pubQueue(async () => {
    try {
      if (on) await switchOn(source); else await switchOff(source);
    } catch (e) {
      cg.wanted[source] = false;
      renderControls();
      throw e;
    }
  });
}

for (const source of SOURCES) $(source).addEventListener("click", () => toggle(source));
$("leave").addEventListener("click", () => leaveRoom());

async function leaveRoom() {
  if (!ws) return;
  cg.state = "left";
  send({ type: "leave" });
  teardown("left");
}

function teardown(reason) {
  if (cg.state !== "left") cg.state = reason;
  for (const source of SOURCES) {
    if (local[source].track) local[source].track.stop();
    local[source] = { t: null, track: null };
    cg.wanted[source] = false;
  }
  if (fakeScreenTimer) clearInterval(fakeScreenTimer);
  fakeScreenTimer = null;
  for (const pc of [pub, sub]) if (pc) pc.close();
  pub = sub = null;
  if (ws) ws.close();
  ws = null;
  trackMap = {};
  for (const mid of Object.keys(midElements)) {
    midElements[mid].remove();
    delete midElements[mid];
    delete midStreams[mid];
  }
  cg.participants = [];
  renderTiles();
  renderControls();
}

// --- rendering (server truth) --------------------------------------------------------------------

function applySourceState(msg) {
  const p = cg.participants.find((x) => x.participant_id === msg.participant_id);
  if (!p) return;
  p.sources[msg.source] = {
    enabled: msg.enabled, muted: msg.muted, active: msg.active, recording: msg.recording, snapshots: msg.snapshots,
  };
  p.recording = Object.values(p.sources).some((s) => s.recording);
  renderTiles();
}

function describe(name, s) {
  if (!s || !s.enabled) return `${name}: off`;
  if (s.muted) return `${name}: muted by moderator`;
  if (s.recording) return `${name}: on, recorded`;
  if (s.snapshots) return `${name}: on, snapshots kept`;
  return `${name}: ${s.active ? "on" : "starting"}`;
}

function tileFor(pid) {
  let tile = document.querySelector(`.tile[data-pid="${pid}"]`);
  if (!tile) {
    tile = document.createElement("div");
    tile.className = "tile";
    tile.dataset.pid = pid;
    tile.dataset.testid = `tile-${pid}`;
    tile.innerHTML = '<div><span class="name"></span><span class="rec" hidden>● REC</span></div>'
      + '<div class="sources"></div><div class="media"></div>';
    tile.querySelector(".rec").dataset.testid = `rec-${pid}`;
    $("tiles").append(tile);
  }
  return tile;
}

function renderTiles() {
  const seen = new Set();
  for (const p of cg.participants) {
    seen.add(p.participant_id);
    const tile = tileFor(p.participant_id);
    const you = p.participant_id === cg.participantId ? " (you)" : "";
    tile.querySelector(".name").textContent = `${p.display_name}${you} — ${p.role}`;
    tile.querySelector(".rec").hidden = !p.recording;
    tile.classList.toggle("recording", !!p.recording);
    tile.dataset.recording = p.recording ? "true" : "false";
    tile.querySelector(".sources").textContent = SOURCES.map((n) => describe(n, p.sources[n])).join(" · ");
  }
  for (const tile of document.querySelectorAll(".tile")) {
    if (!seen.has(tile.dataset.pid)) tile.remove();
  }
  const me = cg.participants.find((x) => x.participant_id === cg.participantId);
  $("self-recording").hidden = !(me && me.recording);
  renderMedia();
  renderControls();
}

function renderMedia() {
  for (const [mid, info] of Object.entries(trackMap)) {
    const stream = midStreams[mid];
    if (!stream) continue;
    const kind = info.source === "mic" ? "audio" : "video";
    let el = midElements[mid];
    if (!el || el.tagName.toLowerCase() !== kind) {
      if (el) el.remove();
      el = document.createElement(kind);
      el.autoplay = true;
      el.playsInline = true;
      if (kind === "video") el.muted = true;  // its sound (if any) comes on the mic track
      midElements[mid] = el;
    }
    if (el.srcObject !== stream) el.srcObject = stream;
    el.dataset.testid = `media-${info.participant_id}-${info.source}`;
    const tile = document.querySelector(`.tile[data-pid="${info.participant_id}"]`);
    const home = tile ? tile.querySelector(".media") : $("media-bin");
    if (el.parentElement !== home) home.append(el);
    el.play().catch(() => null);
  }
  for (const [mid, el] of Object.entries(midElements)) {
    if (!trackMap[mid]) {
      el.srcObject = null;
      $("media-bin").append(el);
    }
  }
}

function renderControls() {
  const me = cg.participants.find((x) => x.participant_id === cg.participantId);
  for (const source of SOURCES) {
    const btn = $(source);
    const on = cg.wanted[source];
    const muted = me && me.sources[source] && me.sources[source].muted;
    btn.setAttribute("aria-pressed", on ? "true" : "false");
    const label = source[0].toUpperCase() + source.slice(1);
    btn.textContent = `${label}: ${on ? (muted ? "on (muted by moderator)" : "on") : "off"}`;
  }
}

// For scripted tests: a toggle that resolves once negotiated, and RTP counters of both PCs.
window.cgToggle = toggle;
window.cgStats = async () => {
  const out = { inboundAudioBytes: 0, inboundVideoBytes: 0, outboundAudioBytes: 0, outboundVideoBytes: 0 };
  for (const [pc, dir] of [[sub, "inbound"], [pub, "outbound"]]) {
    if (!pc) continue;
    (await pc.getStats()).forEach((r) => {
      if (r.type === `${dir}-rtp`) {
        const key = `${dir}${r.kind === "audio" ? "Audio" : "Video"}Bytes`;
        out[key] += r.bytesReceived || r.bytesSent || 0;
      }
    });
  }
  return out;
};
boot();
