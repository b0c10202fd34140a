// The admin API through the console's session: the same endpoints as the
// CLI, under /ui/api. The session cookie is HttpOnly (no script sees it);
// every state-changing call carries the session's CSRF token.

let csrf = "";
let onSignedOut = () => {};

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export function setCsrf(token) {
  csrf = token || "";
}

export function whenSignedOut(f) {
  onSignedOut = f;
}

async function call(method, url, body) {
  const headers = { accept: "application/json" };
  if (body !== undefined) headers["content-type"] = "application/json";
  if (method !== "GET") headers["x-sluice-csrf"] = csrf;
  const r = await fetch(url, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "same-origin",
    cache: "no-store",
  });
  const text = await r.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!r.ok) {
    const message = (data && data.error) || text || r.statusText;
    if (r.status === 401 && !url.endsWith("/ui/session")) onSignedOut(message);
    throw new ApiError(r.status, message);
  }
  return data;
}

const API = "/ui/api";

/** Encodes one path segment. */
export const seg = (s) => encodeURIComponent(s);

/** A query string from an object, skipping empty values. */
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== "") q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : "";
}

export const api = {
  get: (path) => call("GET", API + path),
  post: (path, body) => call("POST", API + path, body),
  put: (path, body) => call("PUT", API + path, body),
  patch: (path, body) => call("PATCH", API + path, body),
  del: (path) => call("DELETE", API + path),
};

export const session = {
  get: () => call("GET", "/ui/session"),
  signIn: (body) => call("POST", "/ui/session", body),
  signOut: () => call("DELETE", "/ui/session"),
};
