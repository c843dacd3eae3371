// HTTP calls to the API, with the token kept in this tab's sessionStorage.
const TOKEN_KEY = "jobcast.token";

let askForToken = null; // set by the page: shows the prompt, resolves once a token is stored
let asking = null;

export class ApiError extends Error {
  constructor(status, body) {
    super(body && typeof body.detail === "string" ? body.detail : `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(value) {
  sessionStorage.setItem(TOKEN_KEY, value);
}

export function onTokenNeeded(prompt) {
  askForToken = prompt;
}

// One prompt for every call that was refused at the same time.
function tokenNeeded(detail) {
  if (!asking) {
    asking = askForToken(detail).finally(() => {
      asking = null;
    });
  }
  return asking;
}

export async function api(method, path, body) {
  for (;;) {
    const headers = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const current = token();
    if (current) headers.Authorization = `Bearer ${current}`;
    const response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.text();
    const data = text ? JSON.parse(text) : null;
    if (response.status === 401 && askForToken) {
      await tokenNeeded(data && data.detail);
      continue;
    }
    if (!response.ok) throw new ApiError(response.status, data);
    return { data, headers: response.headers, status: response.status };
  }
}

// The cursor of the `Link: <...?cursor=N>; rel="next"` header, or null.
export function nextCursor(headers) {
  const link = headers.get("Link");
  const match = link && link.match(/<([^>]*)>;\s*rel="next"/);
  return match ? new URL(match[1], location.href).searchParams.get("cursor") : null;
}
