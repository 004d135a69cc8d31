// The live board page: the board over the live stream (anonymous, or with the signed-in
// account's own events), the account, and guided play. `/?display=1` is the big-screen
// view: the board alone, large, anonymous, no controls.

import { BoardView } from "./board.js";
import { Play } from "./play.js";
import { session } from "./session.js";
import { LiveStream } from "./stream.js";
import { FIELD_WORDS, ago, errorWords, number, ordinal } from "./words.js";

const $ = (id) => document.getElementById(id);
const display = document.body.dataset.mode === "display";
const streamUrl = new URL(document.querySelector('meta[name="stream-url"]').content || "/api/scoreboard/stream",
  window.location.href).toString();
const ME_REFRESH_MS = 5000;

// ------------------------------------------------------------------ messages

function say(text, kind = "info") {
  const error = kind === "error";
  $("alert").textContent = error ? text : "";
  $("message").textContent = error ? "" : text;
  $("message").dataset.kind = kind;
}

function note(text) {
  const item = document.createElement("li");
  const time = document.createElement("time");
  time.textContent = new Date().toLocaleTimeString();
  item.append(time, ` ${text}`);
  $("events").prepend(item);
  while ($("events").children.length > 6) $("events").lastChild.remove();
  $("recent-title").hidden = false;
}

// ------------------------------------------------------------------ the board and the stream

const board = new BoardView($("scoreboard"), {
  note: $("board-note"), announcer: $("announcer"), paceMs: display ? 1500 : 1000,
});
const play = new Play({ say, note });
const stream = new LiveStream(streamUrl, { token: () => (display || session.banned ? null : session.access) });

const CONNECTION_WORDS = {
  connecting: "Connecting…", live: "Live", reconnecting: "Reconnecting…", offline: "Offline",
  busy: "Too many open views",
};
let connection = "connecting";

function setConnection(state) {
  if (connection === "busy" && state !== "busy") say(""); // the "too many views" note is over
  connection = state;
  document.body.dataset.connection = state;
  const pill = $("connection");
  pill.dataset.state = state;
  pill.textContent = CONNECTION_WORDS[state];
  showUpdated();
  renderPlay();
  if (state === "live" && !display && !play.types.size) play.loadTypes();
}

function showUpdated() {
  const el = $("updated");
  const since = Math.max(board.updatedAt, stream.lastData);
  el.hidden = connection === "live" || connection === "connecting" || !since;
  if (!el.hidden) el.textContent = `last updated ${ago(Date.now() - since)}`;
}
setInterval(showUpdated, 1000);

let meLoadedAt = 0;

function onBoard(data) {
  board.show(data);
  if (!session.signedIn || display) return;
  const mine = data.entries.find((entry) => entry.user_id === session.userId);
  if (mine) session.update({ score: mine.score, rank: mine.rank });
  else if (Date.now() - meLoadedAt > ME_REFRESH_MS) { // ranks below the top 10 move when others score
    meLoadedAt = Date.now();
    session.loadMe();
  }
}

async function onLogout(reason) {
  if (reason === "banned") { session.markBanned(); return; }
  if (reason === "expired" && await session.refresh() === "ok") { stream.restart(); return; }
  if (session.signedIn) session.end("You were signed out (logged out elsewhere, or the session ended).");
}

stream.addEventListener("state", ({ detail }) => setConnection(detail));
stream.addEventListener("message", ({ detail }) => {
  let data = null;
  try { data = detail.data ? JSON.parse(detail.data) : null; } catch (_) { return; }
  switch (detail.event) {
    case "scoreboard": onBoard(data); break;
    case "score": play.applied(data); break;
    case "rejected": play.refused(data.job_id, data.error); break;
    case "resync": session.loadMe(); break;
    case "logout": onLogout(data && data.reason); break;
    default: break; // "reconnect": the stream ends and comes back by itself
  }
});
stream.addEventListener("refused", async ({ detail: { status, error, retryAfter } }) => {
  if (status === 429) {
    setConnection("busy");
    say(error.code === "too_many_streams"
      ? "This account has too many live views open (other tabs or devices); close one. Trying again shortly."
      : errorWords(error, { retryAfter }), "warning");
    return;
  }
  if (status === 403 && error.code === "user_banned") { session.markBanned(); return; }
  if (status === 401 && session.signedIn) {
    const outcome = error.code === "token_expired" ? await session.refresh() : "ended";
    if (outcome === "ok") stream.restart();
    else if (outcome === "offline") setTimeout(() => stream.restart(), 3000);
    else session.end("Your session ended; log in again.");
    return;
  }
  setConnection("reconnecting");
  if (status === 401 || status === 403) setTimeout(() => stream.restart(), 5000);
});

// ------------------------------------------------------------------ the account

function renderPlay() {
  const blocked = session.banned ? "banned" : connection === "offline" ? "offline" : "";
  play.block(blocked);
  $("banned").hidden = !session.banned;
  $("offline-note").hidden = blocked !== "offline";
}

function renderAccount() {
  const signedIn = session.signedIn;
  document.body.dataset.account = !signedIn ? "signed-out" : session.banned ? "banned" : "signed-in";
  $("sign-in").hidden = signedIn;
  $("signed-in").hidden = !signedIn;
  $("admin-link").hidden = !session.mayAdmin;
  board.setMe(signedIn ? session.userId : null);
  if (!signedIn) {
    $("events").replaceChildren();
    $("recent-title").hidden = true;
  }
  renderPlay();
}

function renderMe() {
  const me = session.me || {};
  $("me-name").textContent = me.username || "";
  $("my-score").textContent = me.score === undefined ? "-" : number(me.score);
  $("my-rank").textContent = me.rank ? ordinal(me.rank) : "-";
}

session.addEventListener("me", renderMe);
session.addEventListener("change", () => {
  renderAccount();
  renderMe();
  if (!session.signedIn) say(session.endedWith || "Signed out.", "info");
  if (session.banned) say("");
  stream.lastEventId = ""; // another viewer now: its stream starts afresh, with no replay
  stream.restart(); // with the new token, or anonymous
});

// ------------------------------------------------------------------ signing in

function setMode(mode) {
  const form = $("sign-in");
  const register = mode === "register";
  form.dataset.mode = mode;
  $("account-title").textContent = register ? "Create an account" : "Log in to play";
  $("sign-in-submit").textContent = register ? "Create account" : "Log in";
  $("switch-mode").textContent = register ? "I have an account: log in" : "New here? Create an account";
  $("password").autocomplete = register ? "new-password" : "current-password";
  $("username-help").hidden = !register;
  $("password-help").hidden = !register;
  for (const id of ["username", "password"]) $(id).removeAttribute("aria-invalid");
}

function checkFields(register) {
  const username = $("username").value.trim();
  const password = $("password").value;
  const problems = {};
  if (register && !/^[A-Za-z0-9_.-]{3,32}$/.test(username)) problems.username = FIELD_WORDS.username;
  if (!register && !username) problems.username = "Enter your username.";
  if (register && (password.length < 8 || password.length > 128)) problems.password = FIELD_WORDS.password;
  if (!register && !password) problems.password = "Enter your password.";
  return { username, password, problems };
}

function markFields(fields) {
  for (const id of ["username", "password"]) {
    if (fields && fields[id]) $(id).setAttribute("aria-invalid", "true");
    else $(id).removeAttribute("aria-invalid");
  }
  const first = fields && ["username", "password"].find((id) => fields[id]);
  if (first) $(first).focus();
}

async function signIn(event) {
  event.preventDefault();
  const register = $("sign-in").dataset.mode === "register";
  const { username, password, problems } = checkFields(register);
  if (Object.keys(problems).length) {
    markFields(problems);
    say(Object.values(problems).join(" "), "error");
    return;
  }
  const button = $("sign-in-submit");
  button.disabled = true;
  const busy = register ? "Creating your account…" : "Logging in…";
  say(busy, "info");
  const result = register ? await session.register(username, password) : await session.login(username, password);
  button.disabled = false;
  if (!result.ok) {
    markFields(result.error.fields || (result.error.code === "username_taken" ? { username: true } : null));
    say(errorWords(result.error, result), "error");
    return;
  }
  $("password").value = "";
  setMode("login");
  if ($("message").textContent === busy) { // unless the stream had something to say meanwhile
    say(register ? `Welcome, ${username}! Choose an action to start.` : "", "success");
  }
}

$("sign-in").addEventListener("submit", signIn);
$("switch-mode").addEventListener("click", () => {
  setMode($("sign-in").dataset.mode === "login" ? "register" : "login");
  say("");
});
$("logout").addEventListener("click", async () => {
  $("logout").disabled = true;
  await session.logout();
  $("logout").disabled = false;
});

// ------------------------------------------------------------------ start

renderAccount();
if (session.signedIn && !display) {
  session.loadMe().then(renderMe);
}
if (!display) play.loadTypes();
stream.start();
