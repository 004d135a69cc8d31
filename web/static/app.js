// The live board page: the top 10 over EventSource, an account, actions signed with Web Crypto.
"use strict";

const STREAM_URL = document.querySelector('meta[name="stream-url"]').content || "/api/scoreboard/stream";
const $ = (id) => document.getElementById(id);
const store = window.sessionStorage;

const state = {
  access: store.getItem("access_token"),
  refresh: store.getItem("refresh_token"),
  me: null,              // {id, username, score, rank}
  source: null,          // the EventSource
  lastEventId: "",       // for reconnects made by this page (the browser keeps its own)
  retryDelay: 1000,      // backoff when the server refused the stream
  retryTimer: null,
  action: null,          // the action token in hand
  boardVersion: 0,
  meFetchedAt: 0,
  seenJobs: new Set(),   // personal events may come twice (replayed after a reconnect)
};

function firstTime(jobId) {
  if (state.seenJobs.has(jobId)) return false;
  state.seenJobs.add(jobId);
  if (state.seenJobs.size > 500) state.seenJobs.delete(state.seenJobs.values().next().value);
  return true;
}

// ------------------------------------------------------------------ HTTP

async function api(method, path, body, { token = state.access, headers = {} } = {}) {
  const init = { method, headers: { ...headers } };
  if (token) init.headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  let data = null;
  try { data = await response.json(); } catch (_) { /* empty body */ }
  return { status: response.status, data };
}

function errorText(result) {
  return (result.data && result.data.error && result.data.error.message) || `HTTP ${result.status}`;
}

function say(text) { $("message").textContent = text || ""; }

function note(text) {
  const item = document.createElement("li");
  item.textContent = `${new Date().toLocaleTimeString()} ${text}`;
  $("events").prepend(item);
  while ($("events").children.length > 8) $("events").lastChild.remove();
}

// ------------------------------------------------------------------ the board

function setConnection(name) {
  const el = $("connection");
  el.dataset.state = name;
  el.textContent = name.replace("-", " ");
}

function renderBoard(board) {
  if (typeof board.version === "number" && board.version < state.boardVersion) return;  // older than shown
  state.boardVersion = board.version || state.boardVersion;
  const body = $("scoreboard").tBodies[0];
  const before = new Map([...body.rows].map((row) => [row.dataset.username, row.dataset.score]));
  const rows = board.entries.map((entry) => {
    const row = document.createElement("tr");
    row.dataset.rank = entry.rank;
    row.dataset.username = entry.username;
    row.dataset.score = entry.score;
    row.dataset.userId = entry.user_id;
    for (const value of [entry.rank, entry.username, entry.score]) {
      const cell = document.createElement("td");
      cell.textContent = value;
      row.append(cell);
    }
    if (state.me && entry.user_id === state.me.id) row.classList.add("mine");
    if (before.get(entry.username) !== String(entry.score)) row.classList.add("changed");
    return row;
  });
  body.replaceChildren(...rows);
  $("board-empty").hidden = rows.length > 0;
  if (state.me) {
    const mine = board.entries.find((entry) => entry.user_id === state.me.id);
    if (mine) showMe({ ...state.me, score: mine.score, rank: mine.rank });
    else if (Date.now() - state.meFetchedAt > 5000) loadMe();  // ranks move when others score
  }
}

async function loadBoardOnce() {
  const result = await api("GET", "/api/scoreboard", undefined, { token: null });
  if (result.status === 200) renderBoard(result.data);
}

// ------------------------------------------------------------------ the stream

function remember(event) { if (event.lastEventId) state.lastEventId = event.lastEventId; }

function connect() {
  disconnect();
  if (!state.access) { setConnection("signed-out"); return; }
  const url = new URL(STREAM_URL, window.location.href);
  url.searchParams.set("access_token", state.access);
  if (state.lastEventId) url.searchParams.set("last_event_id", state.lastEventId);
  const source = new EventSource(url.toString());
  state.source = source;
  setConnection("reconnecting");
  source.onopen = () => { state.retryDelay = 1000; setConnection("live"); };
  source.addEventListener("scoreboard", (event) => { remember(event); renderBoard(JSON.parse(event.data)); });
  source.addEventListener("score", (event) => {
    remember(event);
    const data = JSON.parse(event.data);
    if (!firstTime(data.job_id)) return;
    showMe({ ...state.me, score: data.score, rank: data.rank });
    note(`+${data.score_delta} applied${data.flagged ? " (flagged for review)" : ""}: score ${data.score}`);
  });
  source.addEventListener("rejected", (event) => {
    remember(event);
    const data = JSON.parse(event.data);
    if (!firstTime(data.job_id)) return;
    note(`submission refused: ${data.error.message}`);
  });
  source.addEventListener("resync", () => loadMe());
  source.addEventListener("reconnect", () => setConnection("reconnecting"));  // the browser comes back by itself
  source.addEventListener("logout", async (event) => {
    disconnect();
    const reason = JSON.parse(event.data || "{}").reason;
    if (reason === "expired" && await refreshToken()) connect();
    else signOut("You were signed out.");
  });
  source.onerror = () => {
    if (source.readyState === EventSource.CONNECTING) { setConnection("reconnecting"); return; }
    disconnect();  // the server refused the stream: find out why, then try again
    setConnection("reconnecting");
    recover();
  };
}

function disconnect() {
  clearTimeout(state.retryTimer);
  if (state.source) {
    state.source.close();
    state.source = null;
  }
}

async function recover() {
  let result;
  try {
    result = await api("GET", "/api/users/me");
  } catch (_) {
    result = { status: 0 };
  }
  if (result.status === 401 && !(await refreshToken())) { signOut("Your session ended; log in again."); return; }
  const delay = state.retryDelay * (0.5 + Math.random());
  state.retryDelay = Math.min(state.retryDelay * 2, 30000);
  state.retryTimer = setTimeout(connect, delay);
}

// ------------------------------------------------------------------ the account

function saveTokens(access, refresh) {
  state.access = access;
  store.setItem("access_token", access);
  if (refresh) { state.refresh = refresh; store.setItem("refresh_token", refresh); }
}

async function refreshToken() {
  if (!state.refresh) return false;
  const result = await api("POST", "/api/auth/refresh", undefined, { token: state.refresh });
  if (result.status !== 200) return false;
  saveTokens(result.data.access_token);
  return true;
}

function showMe(me) {
  state.me = me;
  $("me-name").textContent = me.username;
  $("my-score").textContent = me.score;
  $("my-rank").textContent = me.rank === null || me.rank === undefined ? "-" : me.rank;
}

async function loadMe() {
  state.meFetchedAt = Date.now();
  const result = await api("GET", "/api/users/me");
  if (result.status === 200) showMe(result.data);
  return result.status;
}

async function signIn() {
  const status = await loadMe();
  if (status !== 200) {
    if (status === 401 && await refreshToken() && await loadMe() === 200) return signIn();
    signOut(status === 401 ? "" : "The service is not answering; try again.");
    return;
  }
  $("signed-out").hidden = true;
  $("signed-in").hidden = false;
  say("");
  await loadActionTypes();
  connect();
}

function signOut(message) {
  disconnect();
  state.access = state.refresh = state.me = state.action = null;
  state.lastEventId = "";
  store.removeItem("access_token");
  store.removeItem("refresh_token");
  $("signed-in").hidden = true;
  $("signed-out").hidden = false;
  setConnection("signed-out");
  say(message || "");
}

async function login() {
  const username = $("username").value.trim();
  const result = await api("POST", "/api/auth/login", { username, password: $("password").value }, { token: null });
  if (result.status !== 200) { say(errorText(result)); return; }
  saveTokens(result.data.access_token, result.data.refresh_token);
  $("password").value = "";
  await signIn();
}

async function register() {
  const body = { username: $("username").value.trim(), password: $("password").value };
  const result = await api("POST", "/api/auth/register", body, { token: null });
  if (result.status !== 201) { say(errorText(result)); return; }
  await login();
}

async function logout() {
  if (state.access) await api("POST", "/api/auth/logout");
  signOut("Signed out.");
}

// ------------------------------------------------------------------ actions and scores

async function loadActionTypes() {
  const result = await api("GET", "/api/action-types", undefined, { token: null });
  if (result.status !== 200) return;
  const select = $("action-type");
  select.replaceChildren(...result.data.action_types.map((type) => {
    const option = document.createElement("option");
    option.value = type.name;
    option.textContent = `${type.name} (${type.min_delta} to ${type.max_delta})`;
    return option;
  }));
}

async function startAction() {
  const result = await api("POST", "/api/actions", { action_type: $("action-type").value });
  if (result.status !== 201) { say(errorText(result)); return; }
  state.action = result.data;
  $("submit").disabled = false;
  say("");
  note(`action ${result.data.action_type} started`);
}

function base64urlBytes(text) {
  const b64 = text.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((text.length + 3) % 4);
  return Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
}

async function sign(secret, message) {
  const key = await crypto.subtle.importKey("raw", base64urlBytes(secret), { name: "HMAC", hash: "SHA-256" },
    false, ["sign"]);
  const mac = await crypto.subtle.sign("HMAC", key, new TextEncoder().encode(message));
  return [...new Uint8Array(mac)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

async function submitScore() {
  const action = state.action;
  if (!action) return;
  const delta = Number.parseInt($("delta").value, 10);
  if (!Number.isSafeInteger(delta)) { say("Points must be a whole number."); return; }
  const completedAt = Date.now();
  const signature = await sign(action.secret, `${action.action_token}.${delta}.${completedAt}`);
  state.action = null;
  $("submit").disabled = true;
  const body = { action_token: action.action_token, score_delta: delta, completed_at: completedAt, signature };
  const result = await api("POST", "/api/score/update", body, { headers: { Prefer: "wait=5" } });
  if (result.status === 200) {
    showMe({ ...state.me, score: result.data.score, rank: result.data.rank });
    say("");
  } else if (result.status === 202) {
    note("submission accepted, waiting for it to be applied");
  } else {
    say(errorText(result));
  }
}

// ------------------------------------------------------------------ start

$("login").addEventListener("click", login);
$("register").addEventListener("click", register);
$("password").addEventListener("keydown", (event) => { if (event.key === "Enter") login(); });
$("logout").addEventListener("click", logout);
$("start").addEventListener("click", startAction);
$("submit").addEventListener("click", submitScore);
loadBoardOnce();
if (state.access) signIn(); else setConnection("signed-out");
