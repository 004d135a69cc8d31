// The admin room: the flag queue (approve, revert), bans, failed apply jobs described by
// the submissions and players they hold, and the way into the RQ dashboard (a cookie
// session for /admin/ that lasts as long as this login session).

import { session } from "./session.js";
import { actionName, duration, errorWords, number, signedNumber, when } from "./words.js";

const $ = (id) => document.getElementById(id);
const PAGE = 25;

function say(text, kind = "info") {
  $("alert").textContent = kind === "error" ? text : "";
  $("message").textContent = kind === "error" ? "" : text;
}

function el(tag, text, attrs = {}) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = text;
  for (const [name, value] of Object.entries(attrs)) {
    if (name === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(name, value);
  }
  return node;
}

function td(label, ...children) {
  const cell = el("td", null, { "data-label": label });
  cell.append(...children);
  return cell;
}

function stateBadge(state) { return el("span", state, { class: "state", dataset: { state } }); }

function playerText(username, userId) { return `${username} (#${userId})`; }

function button(text, onClick, className = "") {
  const b = el("button", text, { type: "button" });
  if (className) b.className = className;
  b.addEventListener("click", async () => {
    b.disabled = true;
    try { await onClick(); } finally { b.disabled = false; }
  });
  return b;
}

// ------------------------------------------------------------------ rules in plain words

const RULE_WORDS = {
  too_fast: (f) => `Too fast: done in ${duration(f.duration_ms)}, the fastest honest time is ${duration(f.min_duration_ms)}.`,
  near_rate_limit: (f) => `A script's pace: ${number(f.submissions)} submissions in ${f.window_s} s.`,
  far_above_history: (f) => `Far above their usual: ${f.zscore} deviations over a median of ${number(f.median)}.`,
  jump_into_top: (f) => `Jumped into the top ${f.top}: from ${number(f.score_before)} to ${number(f.score_after)} points.`,
};

function ruleList(rules) {
  const list = el("ul", null, { class: "rules" });
  for (const [name, figures] of Object.entries(rules || {})) {
    const words = RULE_WORDS[name];
    let text = actionName(name);
    try { if (words) text = words(figures || {}); } catch (_) { /* figures of another shape */ }
    list.append(el("li", text));
  }
  return list;
}

// ------------------------------------------------------------------ flags

let flagsBefore = null;

async function loadFlags(more = false) {
  const params = new URLSearchParams({ limit: PAGE });
  const state = $("flag-state").value;
  if (state) params.set("state", state);
  if (more && flagsBefore) params.set("before", flagsBefore);
  const result = await session.call("GET", `/api/admin/flags?${params}`);
  if (!result.ok) { say(errorWords(result.error), "error"); return; }
  const body = $("flag-table").tBodies[0];
  if (!more) body.replaceChildren();
  for (const flag of result.data.flags) body.append(flagRow(flag));
  flagsBefore = result.data.next_before;
  $("flags-more").hidden = !flagsBefore;
  $("flags-empty").hidden = body.rows.length > 0;
}

function flagRow(flag) {
  const row = el("tr", null, { dataset: { flagId: flag.id, userId: flag.user_id, state: flag.state } });
  const decide = el("td", null, { class: "actions" });
  row.append(
    td("Flagged", el("time", when(flag.created_at))),
    td("Player", playerText(flag.username, flag.user_id)),
    td("Action", actionName(flag.action_type || "")),
    td("Points", signedNumber(flag.score_delta)),
    td("Why", ruleList(flag.rules)),
    td("Counted on", (flag.boards && flag.boards.length ? flag.boards.map((b) => `${b.board} ${b.period}`)
                                                     : ["all-time"]).join(", ")),
    td("State", stateBadge(flag.state)),
    decide,
  );
  if (flag.state === "open") {
    decide.append(
      button("Approve", () => resolve(flag, "approve", row), "secondary"),
      button("Revert", () => resolve(flag, "revert", row), "danger"),
    );
  }
  decide.append(button("Ban player", () => ban(flag.user_id, flag.username, true), "secondary"));
  return row;
}

async function resolve(flag, decision, row) {
  const result = await session.call("POST", `/api/admin/flags/${flag.id}/resolve`, { body: { decision } });
  if (!result.ok) { say(errorWords(result.error), "error"); return; }
  const state = result.data.state;
  row.dataset.state = state;
  row.querySelector(".state").replaceWith(stateBadge(state));
  for (const b of row.querySelectorAll("td.actions button")) if (b.textContent !== "Ban player") b.remove();
  say(state === "reverted"
    ? `Reverted: ${signedNumber(-flag.score_delta)} points for ${flag.username}, whose score is now ${number(result.data.score)}.`
    : `Approved: ${flag.username} keeps ${signedNumber(flag.score_delta)} points.`);
}

// ------------------------------------------------------------------ players

async function loadPlayers() {
  const params = new URLSearchParams({ limit: PAGE });
  const name = $("player-name").value.trim();
  if (name) params.set("search", name);
  if ($("player-which").value) params.set("banned", $("player-which").value);
  const result = await session.call("GET", `/api/admin/users?${params}`);
  if (!result.ok) { say(errorWords(result.error), "error"); return; }
  const body = $("player-table").tBodies[0];
  body.replaceChildren(...result.data.users.map(playerRow));
  $("players-empty").hidden = body.rows.length > 0;
}

function playerRow(user) {
  const row = el("tr", null, { dataset: { userId: user.id } });
  const status = user.banned ? "banned" : user.is_admin ? "admin" : "playing";
  const act = el("td", null, { class: "actions" });
  if (user.id !== session.userId) {
    act.append(user.banned
      ? button("Unban", () => ban(user.id, user.username, false), "secondary")
      : button("Ban", () => ban(user.id, user.username, true), "danger"));
  }
  row.append(el("th", playerText(user.username, user.id), { scope: "row" }), td("Score", number(user.score)),
    td("Status", stateBadge(status)), act);
  return row;
}

async function ban(userId, username, banned) {
  const result = await session.call("POST", `/api/admin/users/${userId}/${banned ? "ban" : "unban"}`);
  if (!result.ok) { say(errorWords(result.error), "error"); return; }
  say(banned ? `${username} is banned: off the board, their streams ended.` : `${username} may play again.`);
  await loadPlayers();
}

// ------------------------------------------------------------------ failed apply jobs

async function loadFailed() {
  const result = await session.call("GET", `/api/admin/failed-jobs?limit=${PAGE}`);
  if (!result.ok) { say(errorWords(result.error), "error"); return; }
  const body = $("failed-table").tBodies[0];
  body.replaceChildren(...result.data.jobs.map(failedRow));
  $("failed-empty").hidden = body.rows.length > 0;
}

function failedRow(job) {
  const row = el("tr", null, { dataset: { jobId: job.job_id } });
  const list = el("ul", null, { class: "submissions" });
  for (const s of job.submissions) {
    const who = s.username ? playerText(s.username, s.user_id) : `player #${s.user_id}`;
    list.append(el("li", `${who}: ${actionName(s.action_type)} ${signedNumber(s.score_delta)}, `
      + `accepted ${when(s.accepted_at)} (${s.state})`));
  }
  if (!job.submissions.length) list.append(el("li", "No submission records left (expired)."));
  const link = el("a", "Open in the dashboard", { href: job.dashboard_url, target: "_blank", rel: "noopener" });
  row.append(td("Failed", el("time", when(job.failed_at))), td("Submissions", list),
    td("Error", el("span", job.error, { class: "error-text" })), td("Dashboard", link));
  return row;
}

// ------------------------------------------------------------------ the dashboard session

async function openDashboardSession() {
  const result = await session.call("POST", "/api/admin/session");
  $("dashboard-link").hidden = !result.ok;
}

// ------------------------------------------------------------------ start

function gate(text) {
  document.body.dataset.room = "closed";
  $("gate").hidden = false;
  $("gate-text").textContent = text;
  for (const id of ["flags", "players", "failed"]) $(id).hidden = true;
}

async function start() {
  if (!session.signedIn) { gate("Log in on the board page with an admin account first."); return; }
  const me = await session.loadMe();
  if (!me || !me.ok) { gate(me && me.status === 0 ? errorWords(me.error) : "Log in on the board page first."); return; }
  $("who").textContent = `Signed in as ${session.me.username}`;
  const probe = await session.call("GET", "/api/admin/flags?limit=1");
  if (!probe.ok) { gate(errorWords(probe.error)); return; }
  for (const id of ["flags", "players", "failed"]) $(id).hidden = false;
  document.body.dataset.room = "open";
  await Promise.all([loadFlags(), loadPlayers(), loadFailed(), openDashboardSession()]);
}

$("flag-filter").addEventListener("submit", (event) => { event.preventDefault(); loadFlags(); });
$("flag-state").addEventListener("change", () => loadFlags());
$("flags-more").addEventListener("click", () => loadFlags(true));
$("player-search").addEventListener("submit", (event) => { event.preventDefault(); loadPlayers(); });
$("failed-reload").addEventListener("click", loadFailed);
session.addEventListener("change", () => { if (!session.signedIn) gate("Your session ended; log in again on the board page."); });
start();
