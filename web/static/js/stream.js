// The live stream read with fetch(), not EventSource: the access token goes in the
// Authorization header (never in a URL, where logs keep it), and a refused stream's
// status and error body can be read (401, 403 user_banned, 429 too_many_streams, 503).
// Events are parsed by eventsource-parser, as a browser's EventSource would.
//
// Emits: "state" (detail: "connecting" | "live" | "reconnecting" | "offline"),
// "message" (detail: {event, data, id}), "refused" (detail: {status, error, retryAfter}).
// A stream refused with 401 or 403 waits until restart() (the caller refreshes the
// token, signs out or goes anonymous first); every other failure is retried by itself.

import { createParser } from "../vendor/eventsource-parser/index.js";

const SILENCE_MS = 45_000; // no byte, not even a ping (every 15 s at most): the connection is dead
const MAX_BACKOFF_MS = 15_000;

export class LiveStream extends EventTarget {
  /**
   * @param {string} url the stream's URL (it may be on another origin)
   * @param {{token: () => (string|null)}} options where to read the access token; none: anonymous
   */
  constructor(url, { token = () => null } = {}) {
    super();
    this.url = url;
    this.token = token;
    this.lastEventId = "";
    this.retryMs = 3000;
    this.state = "connecting";
    this.lastData = 0; // Date.now() of the last bytes received
    this._running = false;
    this._controller = null;
    this._wake = null;
    this._failures = 0;
  }

  start() {
    if (this._running) return;
    this._running = true;
    this._loop();
  }

  stop() {
    this._running = false;
    this._interrupt();
  }

  /** Connect again now (a new token, or none). */
  restart() {
    if (!this._running) { this.start(); return; }
    this._failures = 0;
    this._interrupt();
  }

  _interrupt() {
    if (this._controller) this._controller.abort("restart");
    if (this._wake) this._wake();
  }

  _emit(name, detail) { this.dispatchEvent(new CustomEvent(name, { detail })); }

  _setState(state) {
    if (state === this.state) return;
    this.state = state;
    this._emit("state", state);
  }

  async _loop() {
    while (this._running) {
      const outcome = await this._connect();
      if (!this._running) break;
      let delay;
      if (outcome.kind === "aborted") {
        delay = 0;
      } else if (outcome.kind === "ended") {
        this._failures = 0;
        this._setState("reconnecting");
        delay = this.retryMs;
      } else if (outcome.kind === "unreachable") {
        this._failures += 1;
        this._setState(this._failures > 1 || this.state === "connecting" ? "offline" : "reconnecting");
        delay = Math.min(this.retryMs * 2 ** (this._failures - 1), MAX_BACKOFF_MS);
      } else { // refused: "reconnecting" until the listeners say better (a later success is "live" again)
        const { status, retryAfter } = outcome;
        this._setState("reconnecting");
        this._emit("refused", outcome);
        if (status === 401 || status === 403) delay = Infinity; // until restart()
        else delay = Math.max(retryAfter || 0, status === 429 ? 5 : 1) * 1000;
      }
      await this._sleep(delay * (delay === Infinity ? 1 : 0.75 + Math.random() / 2));
    }
  }

  _sleep(ms) {
    if (ms <= 0) return Promise.resolve();
    return new Promise((resolve) => {
      let timer = null;
      const done = () => {
        clearTimeout(timer);
        window.removeEventListener("online", done);
        this._wake = null;
        resolve();
      };
      this._wake = done;
      if (ms !== Infinity) {
        timer = setTimeout(done, ms);
        window.addEventListener("online", done); // the network is back: try now
      }
    });
  }

  async _connect() {
    const controller = new AbortController();
    this._controller = controller;
    const headers = { Accept: "text/event-stream" };
    const token = this.token();
    if (token) headers.Authorization = `Bearer ${token}`;
    if (this.lastEventId) headers["Last-Event-ID"] = this.lastEventId;
    let response;
    try {
      response = await fetch(this.url, { headers, signal: controller.signal, cache: "no-store", credentials: "omit" });
    } catch (_) {
      return { kind: controller.signal.aborted ? "aborted" : "unreachable" };
    }
    if (controller.signal.aborted) return { kind: "aborted" };
    if (!response.ok) {
      let body = null;
      try { body = await response.json(); } catch (_) { /* not JSON: a gateway's page */ }
      if (response.status === 502 || response.status === 504) return { kind: "unreachable" };
      const retryAfter = Number.parseInt(response.headers.get("Retry-After") || "", 10) || null;
      const error = (body && body.error) || { code: `http_${response.status}`, message: `HTTP ${response.status}` };
      return { kind: "refused", status: response.status, error, retryAfter };
    }
    this._failures = 0;
    this.lastData = Date.now();
    this._setState("live");
    return this._read(response, controller);
  }

  async _read(response, controller) {
    const parser = createParser({
      onEvent: (message) => {
        if (message.id !== undefined) this.lastEventId = message.id;
        this._emit("message", { event: message.event || "message", data: message.data, id: message.id });
      },
      onRetry: (ms) => { if (ms > 0) this.retryMs = ms; },
    });
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    const watchdog = setInterval(() => {
      if (Date.now() - this.lastData > SILENCE_MS) controller.abort("silence");
    }, 5000);
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        this.lastData = Date.now();
        parser.feed(value);
      }
    } catch (_) {
      // cut by the network, or aborted (below)
    } finally {
      clearInterval(watchdog);
    }
    // restart() or stop(): connect again at once (or not at all); otherwise after retry:
    return { kind: controller.signal.reason === "restart" ? "aborted" : "ended" };
  }
}
