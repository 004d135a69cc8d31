// Plain words for what the API answers: error messages from their codes and fields,
// readable action names, signed numbers and ordinals.

export const FIELD_WORDS = {
  username: "Usernames are 3 to 32 letters, digits, “.”, “_” or “-”.",
  password: "Passwords are 8 to 128 characters.",
  score_delta: "Points must be a whole number.",
  action_type: "Choose an action.",
};

const CODE_WORDS = {
  offline: "The service cannot be reached. Check your connection; the page keeps trying.",
  invalid_credentials: "Wrong username or password.",
  username_taken: "That username is taken; choose another.",
  rate_limited: "Too many tries at once.",
  user_banned: "This account is banned: you can watch the board, but not play.",
  token_used: "This action was already submitted; start a new one.",
  token_unknown: "This action is unknown to the server; start a new one.",
  token_expired: "This action took too long and expired; start a new one.",
  bad_signature: "The submission could not be verified; start a new action.",
  unknown_action_type: "That action no longer exists; reload the page.",
  forbidden: "This is for admins only.",
  unavailable: "The service is busy for a moment; try again shortly.",
  internal_error: "Something went wrong on the server; try again.",
  apply_failed: "The server could not apply this submission; an admin can look at it.",
  flag_resolved: "Someone already decided this flag.",
  cannot_ban_self: "You cannot ban your own account.",
  not_found: "That is no longer there.",
};

/** A sentence for an API error ({code, message, fields}), in plain words. */
export function errorWords(error, { retryAfter } = {}) {
  if (!error) return "Something went wrong; try again.";
  if (error.fields) {
    const words = Object.keys(error.fields).map((field) => FIELD_WORDS[field]).filter(Boolean);
    if (words.length) return [...new Set(words)].join(" ");
  }
  let text = CODE_WORDS[error.code] || error.message || "Something went wrong; try again.";
  if (error.code === "rate_limited" && retryAfter) text += ` Try again in ${retryAfter} s.`;
  return text;
}

/** "coin_pickup" -> "Coin pickup". */
export function actionName(name) {
  const words = String(name).replace(/[_-]+/g, " ").trim();
  return words.charAt(0).toUpperCase() + words.slice(1);
}

const signed = new Intl.NumberFormat("en", { signDisplay: "exceptZero" });
const plain = new Intl.NumberFormat("en");

/** "+20", "-20", "0". */
export function signedNumber(n) { return signed.format(n); }

/** "1,250". */
export function number(n) { return plain.format(n); }

const ORDINALS = new Intl.PluralRules("en", { type: "ordinal" });
const SUFFIX = { one: "st", two: "nd", few: "rd", other: "th" };

/** "1st", "22nd", "13th". */
export function ordinal(n) { return `${n}${SUFFIX[ORDINALS.select(n)]}`; }

/** "40 ms", "1.5 s", "5 s", "2 min 30 s". */
export function duration(ms) {
  if (ms < 1000) return `${Math.max(0, Math.round(ms))} ms`;
  const s = ms / 1000;
  if (s < 10 && s % 1) return `${s.toFixed(1)} s`;
  if (s < 60) return `${Math.round(s)} s`;
  const m = Math.floor(s / 60);
  const rest = Math.round(s - m * 60);
  return rest ? `${m} min ${rest} s` : `${m} min`;
}

/** A running clock: "0.0 s", "12.3 s", "2:05". */
export function clock(ms) {
  const s = Math.max(0, ms) / 1000;
  if (s < 60) return `${s.toFixed(1)} s`;
  return `${Math.floor(s / 60)}:${String(Math.floor(s % 60)).padStart(2, "0")}`;
}

/** "12 s ago", "3 min ago". */
export function ago(ms) {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s} s ago`;
  return `${Math.floor(s / 60)} min ago`;
}

/** "2026-11-30 10:14:05" in the viewer's time zone. */
export function when(unixMs) {
  if (!unixMs) return "";
  const d = new Date(unixMs);
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} `
    + `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}
