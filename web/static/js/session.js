// The signed-in account of this tab: its tokens (sessionStorage), its profile, and
// whether it is banned. Emits "change" when someone signs in or out or is banned, and
// "me" when the profile changes.

import { call } from "./api.js";

const store = window.sessionStorage;
const ENDED = "Your session ended; log in again.";

function claims(token) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(part + "===".slice((part.length + 3) % 4)));
  } catch (_) {
    return {};
  }
}

class Session extends EventTarget {
  constructor() {
    super();
    this.access = store.getItem("access_token");
    this.refreshToken = store.getItem("refresh_token");
    this.me = null; // {id, username, score, rank}
    this.banned = false;
    this.endedWith = "";
    this._refreshing = null;
  }

  get signedIn() { return Boolean(this.access); }

  /** The id in the access token (known before the profile has loaded). */
  get userId() { return this.access ? Number(claims(this.access).sub) : null; }

  /** Whether to offer the admin room: a hint in the token; the server checks the role on every call. */
  get mayAdmin() { return Boolean(this.access && claims(this.access).adm); }

  _save(access, refresh) {
    this.access = access;
    store.setItem("access_token", access);
    if (refresh) {
      this.refreshToken = refresh;
      store.setItem("refresh_token", refresh);
    }
  }

  _emit(name) { this.dispatchEvent(new Event(name)); }

  /** Log in; resolves to the API result. */
  async login(username, password) {
    const result = await call("POST", "/api/auth/login", { body: { username, password } });
    if (result.ok) {
      this._save(result.data.access_token, result.data.refresh_token);
      this.banned = false;
      this.endedWith = "";
      this._emit("change");
      await this.loadMe();
    }
    return result;
  }

  /** Create an account and log in to it. */
  async register(username, password) {
    const result = await call("POST", "/api/auth/register", { body: { username, password } });
    return result.ok ? this.login(username, password) : result;
  }

  /** A new access token from the refresh token: "ok", "ended", "banned" or "offline". */
  refresh() {
    if (!this._refreshing) {
      this._refreshing = this._refresh().finally(() => { this._refreshing = null; });
    }
    return this._refreshing;
  }

  async _refresh() {
    if (!this.refreshToken) { this.end(ENDED); return "ended"; }
    const result = await call("POST", "/api/auth/refresh", { token: this.refreshToken });
    if (result.ok) { this._save(result.data.access_token); return "ok"; }
    if (result.status === 0) return "offline";
    if (result.error.code === "user_banned") { this.markBanned(); return "banned"; }
    if (result.status === 401) { this.end(ENDED); return "ended"; }
    return "offline"; // 429, 503: the session may still be good
  }

  /** A call with the access token; an expired token is refreshed once and the call repeated. */
  async call(method, path, options = {}) {
    let result = await call(method, path, { ...options, token: this.access });
    if (result.status === 401 && result.error.code === "token_expired" && await this.refresh() === "ok") {
      result = await call(method, path, { ...options, token: this.access });
    }
    if (result.status === 401 && this.access) this.end(ENDED);
    else if (result.status === 403 && result.error.code === "user_banned") this.markBanned();
    return result;
  }

  async loadMe() {
    if (!this.access) return null;
    const result = await this.call("GET", "/api/users/me");
    if (result.ok) this.update(result.data);
    return result;
  }

  /** Merge what an event or a result says about the caller (score, rank). */
  update(fields) {
    this.me = { ...(this.me || {}), ...fields };
    this._emit("me");
  }

  markBanned() {
    if (this.banned) return;
    this.banned = true;
    this._emit("change");
  }

  /** Sign out here at once, then revoke the session on the server (its streams end there). */
  async logout() {
    const token = this.access;
    this.end("");
    if (token) await call("POST", "/api/auth/logout", { token });
  }

  /** Forget the tokens; `message` says why (empty when the person asked for it). */
  end(message) {
    const was = this.signedIn;
    this.access = this.refreshToken = this.me = null;
    this.banned = false;
    this.endedWith = message || "";
    store.removeItem("access_token");
    store.removeItem("refresh_token");
    if (was) this._emit("change");
  }
}

export const session = new Session();
