// Guided play: choose an action, start it, watch its timer (the fastest honest time and
// the expiry), enter points inside the action's range, submit the result signed with
// Web Crypto, and follow the submission until it is applied, refused or failed.

import { session } from "./session.js";
import { actionName, clock, duration, errorWords, number, ordinal, signedNumber } from "./words.js";

const $ = (id) => document.getElementById(id);
const POLL_MAX_MS = 5000;

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

export class Play {
  /**
   * @param {{say: (text: string, kind?: string) => void, note: (text: string) => void}} feedback
   */
  constructor({ say, note }) {
    this.say = say;
    this.note = note;
    this.types = new Map();
    this.action = null; // {token..., startedAt (performance.now at the answer), type}
    this.blocked = ""; // why play is off ("offline", "banned", ...); "" when it is on
    this.seen = new Set(); // job ids already reported (the stream may repeat them)
    this.waiting = new Map(); // job id -> delta, submissions not yet settled
    this.ticker = null;
    $("play").addEventListener("submit", (event) => { event.preventDefault(); this.submit(); });
    $("start").addEventListener("click", () => this.start());
    $("cancel").addEventListener("click", () => this.cancel());
    $("action-type").addEventListener("change", () => this._describe());
  }

  async loadTypes() {
    const result = await session.call("GET", "/api/action-types");
    if (!result.ok) return false;
    this.types = new Map(result.data.action_types.map((t) => [t.name, t]));
    const select = $("action-type");
    const chosen = select.value;
    select.replaceChildren(...result.data.action_types.map((type) => {
      const option = document.createElement("option");
      option.value = type.name;
      option.textContent = actionName(type.name);
      return option;
    }));
    if (this.types.has(chosen)) select.value = chosen;
    this._describe();
    return true;
  }

  /** Turn play off (`reason` says why, shown by the caller) or back on (""). */
  block(reason) {
    this.blocked = reason;
    this._render();
  }

  _type() { return this.types.get(this.action ? this.action.action_type : $("action-type").value); }

  _describe() {
    const type = this._type();
    if (!type) return;
    const points = $("delta");
    points.min = type.min_delta;
    points.max = type.max_delta;
    if (!this.action) {
      const value = Number.parseInt(points.value, 10);
      if (!(value >= type.min_delta && value <= type.max_delta)) points.value = type.max_delta > 0 ? type.min_delta : type.max_delta;
    }
    const range = type.min_delta === type.max_delta ? `${signedNumber(type.min_delta)} points`
      : `${signedNumber(type.min_delta)} to ${signedNumber(type.max_delta)} points`;
    const pace = type.min_duration_ms ? `; takes at least ${duration(type.min_duration_ms)}` : "";
    $("action-help").textContent = `${actionName(type.name)}: ${range}${pace}.`;
    $("points-help").textContent = `Between ${number(type.min_delta)} and ${number(type.max_delta)}, not 0.`;
  }

  async start() {
    if (this.blocked || this.action) return;
    $("start").disabled = true;
    const result = await session.call("POST", "/api/actions", { body: { action_type: $("action-type").value } });
    if (!result.ok) {
      $("start").disabled = false;
      this.say(errorWords(result.error, result), "error");
      return;
    }
    this.action = { ...result.data, startedAt: performance.now() };
    this.say("");
    this._describe();
    this._render();
    this.ticker = setInterval(() => this._tick(), 200);
    this._tick();
    $("delta").focus();
  }

  cancel() {
    this._finish();
    this.say("Action cancelled.", "info");
  }

  _finish() {
    clearInterval(this.ticker);
    this.ticker = null;
    this.action = null;
    this._render();
  }

  _tick() {
    const action = this.action;
    if (!action) return;
    const type = this._type();
    const elapsed = performance.now() - action.startedAt;
    const life = action.expires_at - action.issued_at;
    const left = life - elapsed;
    if (left <= 0) {
      this._finish();
      this.say("This action expired before it was submitted; start a new one.", "error");
      return;
    }
    const minimum = type ? type.min_duration_ms : 0;
    const ready = elapsed >= minimum;
    const bar = $("timer-bar");
    bar.max = Math.max(minimum, 1);
    bar.value = Math.min(elapsed, bar.max);
    $("timer").dataset.ready = ready;
    $("elapsed").textContent = clock(elapsed);
    $("timer-help").textContent = ready
      ? `Ready to submit. Expires in ${duration(Math.ceil(left / 1000) * 1000)}.`
      : `Fastest honest time: ${duration(minimum)}; results sent sooner are flagged for review. `
        + `Expires in ${duration(Math.ceil(left / 1000) * 1000)}.`;
    $("submit").disabled = Boolean(this.blocked) || !ready;
    $("submit").textContent = ready ? "Submit score" : `Submit in ${duration(Math.ceil((minimum - elapsed) / 100) * 100)}`;
  }

  _render() {
    const running = Boolean(this.action);
    $("timer").hidden = !running;
    $("action-type").disabled = running || Boolean(this.blocked);
    $("start").disabled = running || Boolean(this.blocked) || !this.types.size;
    $("start").hidden = running;
    $("cancel").hidden = !running;
    $("delta").disabled = !running || Boolean(this.blocked);
    $("submit").disabled = !running || Boolean(this.blocked);
    if (!running) $("submit").textContent = "Submit score";
    if (running) this._tick();
  }

  _check(delta, type) {
    if (!Number.isSafeInteger(delta)) return "Points must be a whole number.";
    if (delta === 0 || delta < type.min_delta || delta > type.max_delta) {
      return `${actionName(type.name)} earns ${number(type.min_delta)} to ${number(type.max_delta)} points, not 0.`;
    }
    return "";
  }

  async submit() {
    const action = this.action;
    if (!action || this.blocked || $("submit").disabled) return;
    const type = this._type();
    const raw = $("delta").value.trim();
    const delta = /^[+-]?\d+$/.test(raw) ? Number(raw) : NaN;
    const problem = this._check(delta, type);
    $("delta").setAttribute("aria-invalid", problem ? "true" : "false");
    if (problem) { this.say(problem, "error"); $("delta").focus(); return; }
    const completedAt = Date.now();
    const signature = await sign(action.secret, `${action.action_token}.${delta}.${completedAt}`);
    this._finish();
    const body = { action_token: action.action_token, score_delta: delta, completed_at: completedAt, signature };
    this.say("Sending…", "info");
    const result = await session.call("POST", "/api/score/update", { body, headers: { Prefer: "wait=5" } });
    if (result.status === 200) {
      this.applied(result.data);
    } else if (result.status === 202) {
      this.waiting.set(result.data.job_id, delta);
      this.say(`${signedNumber(delta)} points sent; waiting for the server to apply them…`, "info");
      this._poll(result.data.status_url, result.data.job_id);
    } else {
      this.say(errorWords(result.error, result), "error");
    }
  }

  /** An applied submission (from the response, the job's status or the stream): say it once. */
  applied(result) {
    if (this.seen.has(result.job_id)) return;
    this._seen(result.job_id);
    session.update({ score: result.score, rank: result.rank });
    const where = result.rank ? `, ${ordinal(result.rank)}` : "";
    const text = `${signedNumber(result.score_delta)} points: score ${number(result.score)}${where}.`;
    this.say(result.flagged
      ? `${text} Flagged for review: faster or bigger than usual, an admin will look at it.`
      : text, result.flagged ? "warning" : "success");
    this.note(`${signedNumber(result.score_delta)} applied${result.flagged ? " (flagged for review)" : ""}`);
  }

  /** A refused or failed submission: say it once. */
  refused(jobId, error) {
    if (this.seen.has(jobId)) return;
    this._seen(jobId);
    const delta = this.waiting.get(jobId);
    this.say(`Your ${delta === undefined ? "" : `${signedNumber(delta)} `}submission was not applied: ${errorWords(error)}`,
      "error");
    this.note(`submission not applied (${error.code})`);
  }

  _seen(jobId) {
    this.waiting.delete(jobId);
    this.seen.add(jobId);
    if (this.seen.size > 500) this.seen.delete(this.seen.values().next().value);
  }

  /** Poll a submission's status until it settles (the stream may settle it first). */
  async _poll(url, jobId) {
    let wait = 500;
    while (this.waiting.has(jobId) && session.signedIn) {
      await new Promise((resolve) => setTimeout(resolve, wait));
      if (!this.waiting.has(jobId)) return;
      const result = await session.call("GET", url);
      if (result.ok && result.data.state === "applied") { this.applied(result.data.result); return; }
      if (result.ok && result.data.state !== "queued") { this.refused(jobId, result.data.error); return; }
      if (result.status === 404) { this.refused(jobId, { code: "not_found", message: "" }); return; }
      wait = Math.min(wait * 2, POLL_MAX_MS);
    }
  }
}
