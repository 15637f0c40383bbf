// The console is one more client of the service's API: this module is the only place that calls it.
// Credentials live in sessionStorage (this tab only, gone when it closes) and are sent as the API
// expects them, in the query string of a fetch(): such a URL never enters the browser's history,
// and `cache: "no-store"` keeps it out of the HTTP cache too.

const STORE = "facefuse.credentials";
const MAX_RETRIES = 3; // a key with a small qps limit gets 10201 when the console asks twice at once
const MAX_RETRY_WAIT_S = 5;

export class ApiError extends Error {
  constructor(status, code, name, detail) {
    super(`${code} ${name}: ${detail}`);
    this.status = status;
    this.code = code;
    this.errorName = name;
    this.detail = detail;
  }
}

export function credentials() {
  const raw = sessionStorage.getItem(STORE);
  return raw ? JSON.parse(raw) : null;
}

export function saveCredentials(creds) {
  sessionStorage.setItem(STORE, JSON.stringify({ api_key: creds.api_key, api_secret: creds.api_secret }));
}

export function clearCredentials() {
  sessionStorage.removeItem(STORE);
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function errorOf(response) {
  try {
    const body = await response.json();
    if (typeof body.ErrorCode === "number") {
      return new ApiError(response.status, body.ErrorCode, body.ErrorMsg, body.Data);
    }
  } catch {
    // not the error body: described below
  }
  return new ApiError(response.status, 0, `HTTP ${response.status}`, "the service answered without an error body");
}

// One API call; answers the parsed JSON (or the Response when raw), throws ApiError on failure.
export async function call(method, path, { body, creds, raw = false } = {}) {
  const who = creds || credentials();
  if (!who) throw new ApiError(401, 10101, "AUTH_MISSING", "sign in first");
  const url = new URL(path, window.location.origin);
  url.searchParams.set("api_key", who.api_key);
  url.searchParams.set("api_secret", who.api_secret);
  const init = {
    method,
    cache: "no-store",
    credentials: "omit",
    referrerPolicy: "no-referrer",
    headers: body === undefined ? {} : { "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  };
  for (let attempt = 0; ; attempt += 1) {
    let response;
    try {
      response = await fetch(url, init);
    } catch {
      throw new ApiError(0, 0, "NO_ANSWER", "the service did not answer; is it still running?");
    }
    if (response.ok) return raw ? response : response.json();
    const error = await errorOf(response);
    const wait = Number(response.headers.get("Retry-After"));
    if (error.code !== 10201 || attempt >= MAX_RETRIES || !(wait <= MAX_RETRY_WAIT_S)) throw error;
    await sleep(Math.max(wait, 0.2) * 1000);
  }
}

// A template's thumbnail as an object URL (the caller revokes it).
export async function thumbnailUrl(templateId) {
  const response = await call("GET", `/v3/templates/${encodeURIComponent(templateId)}/thumbnail`, { raw: true });
  return URL.createObjectURL(await response.blob());
}

// A File or Blob as the base64 text media_data takes.
export function base64Of(blob) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result).replace(/^data:[^,]*,/, ""));
    reader.onerror = () => reject(new ApiError(0, 10004, "INVALID_MEDIA_DATA", "the file could not be read"));
    reader.readAsDataURL(blob);
  });
}

export function blobOfBase64(text, type = "image/jpeg") {
  const bytes = Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
  return new Blob([bytes], { type });
}
