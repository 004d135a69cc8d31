// HTTP calls to the API. A call never throws: it answers {ok, status, data, error,
// retryAfter}; a server that cannot be reached is status 0 with error code "offline".
// `connectivity` tells whether the last call reached the server ("online"/"offline").

export const connectivity = new EventTarget();
let reachable = true;

function setReachable(value) {
  if (value === reachable) return;
  reachable = value;
  connectivity.dispatchEvent(new Event(value ? "online" : "offline"));
}

export function isReachable() { return reachable; }

/**
 * One request.
 * @param {string} method
 * @param {string} path
 * @param {{body?: object, token?: string|null, headers?: object, signal?: AbortSignal}} options
 */
export async function call(method, path, { body, token = null, headers = {}, signal } = {}) {
  const init = { method, headers: { Accept: "application/json", ...headers }, cache: "no-store", signal };
  if (token) init.headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (error) {
    if (signal && signal.aborted) return { ok: false, status: 0, aborted: true, error: { code: "aborted" } };
    setReachable(false);
    return { ok: false, status: 0, data: null, error: { code: "offline", message: "The service cannot be reached." } };
  }
  let data = null;
  try { data = await response.json(); } catch (_) { /* no JSON body */ }
  // A gateway that answers while the service behind it is down is not "online".
  setReachable(!(response.status === 502 || response.status === 504));
  const retryAfter = Number.parseInt(response.headers.get("Retry-After") || "", 10) || null;
  const error = response.ok ? null
    : (data && data.error) || { code: `http_${response.status}`, message: `HTTP ${response.status}` };
  return { ok: response.ok, status: response.status, data, error, retryAfter };
}
