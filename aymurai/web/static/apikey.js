// The API key field: kept in sessionStorage (this tab only, gone when it closes), sent as an
// `Authorization: Bearer` header with fetch. Never put in a URL: the events stream, which
// EventSource opens without headers, uses the signed `events_url` the gateway returns instead.

const STORAGE_KEY = "aymurai.apiKey";

function storage() {
  try {
    return window.sessionStorage;
  } catch {
    return null; // storage disabled: the key lives in the field only
  }
}

export function setupKeyField(input, onChange) {
  if (!input) return;
  const saved = storage()?.getItem(STORAGE_KEY);
  if (saved) input.value = saved;
  input.addEventListener("change", () => {
    const value = input.value.trim();
    if (value) storage()?.setItem(STORAGE_KEY, value);
    else storage()?.removeItem(STORAGE_KEY);
    if (onChange) onChange();
  });
}

function currentKey() {
  const field = document.getElementById("api-key");
  return ((field && field.value) || storage()?.getItem(STORAGE_KEY) || "").trim();
}

// Headers carrying the key, or none when the field is empty (keys off on this gateway).
export function authHeaders() {
  const value = currentKey();
  return value ? { Authorization: `Bearer ${value}` } : {};
}

// WebSocket subprotocols for WS /asr/live: a browser's WebSocket cannot send headers, so the key
// travels as the offered subprotocol `aymurai.key.<key>` (never in the URL); the gateway selects
// `aymurai.live`.
export function liveProtocols() {
  const value = currentKey();
  return value ? ["aymurai.live", `aymurai.key.${value}`] : ["aymurai.live"];
}
