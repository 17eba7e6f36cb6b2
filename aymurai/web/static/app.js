// The page: pick a file, POST it to /asr/transcribe/stream, follow the event stream.
// Talks to the gateway only through its public HTTP API; no framework, no build step.

import { authHeaders, setupKeyField } from "./apikey.js";
import { RENDERERS } from "./formats.js";
import { readEvents } from "./sse.js";
import { TranscriptView } from "./transcript.js";

const $ = (id) => document.getElementById(id);

const MESSAGES = {
  EMPTY_UPLOAD: "The file is empty.",
  UPLOAD_TOO_LARGE: "The file is larger than this server accepts.",
  INVALID_AUDIO: "This file is not an audio or video file the server can read.",
  VALIDATION_ERROR: "The server did not accept the request.",
  QUEUE_FULL: "The server is busy with other transcriptions. Please try again in a few minutes.",
  SHUTTING_DOWN: "The server is restarting. Please try again in a minute.",
  UPSTREAM_UNAVAILABLE: "The speech recognition service cannot be reached right now.",
  UPSTREAM_SERVICE_ERROR: "The speech recognition service failed during the transcription.",
  UPSTREAM_PROTOCOL_ERROR: "The speech recognition service is not configured correctly.",
  UPSTREAM_TIMEOUT: "The speech recognition service stopped answering.",
  INTERNAL_ERROR: "The server failed unexpectedly.",
  UNAUTHENTICATED: "This server needs an API key: enter yours under “API key”.",
  FORBIDDEN: "This API key may not transcribe.",
  KEY_LIMIT: "This API key already has as many transcriptions running as it may. Please wait for one to finish.",
  NETWORK_ERROR: "Cannot reach the server. Check your connection and try again.",
  CONNECTION_LOST: "The connection to the server was lost before the transcription finished.",
  BAD_RESPONSE: "The server sent an answer this page does not understand.",
};

const ui = {
  body: document.body,
  fileInput: $("file-input"),
  dropZone: $("drop-zone"),
  fileName: $("file-name"),
  useCache: $("use-cache"),
  start: $("start-button"),
  cancel: $("cancel-button"),
  status: $("status"),
  statusText: $("status-text"),
  queue: $("queue-position"),
  progress: $("progress"),
  progressText: $("progress-text"),
  timing: $("timing-text"),
  error: $("error"),
  errorMessage: $("error-message"),
  errorMeta: $("error-meta"),
  result: $("result"),
  player: $("player"),
  documentId: $("document-id"),
  downloads: document.querySelectorAll("#downloads button"),
};

const view = new TranscriptView($("transcript"), (seconds) => {
  ui.player.currentTime = seconds;
  ui.player.play().catch(() => {});
});

let selectedFile = null;
let finalDocument = null;
let controller = null;
let clock = null; // {started, rateOrigin: {wall, audio} | null, timer}
let latest = null; // newest document, for the status line

function setState(state, text) {
  ui.body.dataset.state = state;
  ui.statusText.textContent = text;
  const running = state === "uploading" || state === "queued" || state === "transcribing";
  ui.start.disabled = running || !selectedFile;
  ui.cancel.hidden = !running;
  ui.fileInput.disabled = running;
  if (!running && clock) {
    clearInterval(clock.timer);
    updateTiming();
  }
}

function formatDuration(seconds) {
  const total = Math.max(Math.floor(seconds), 0);
  const h = Math.floor(total / 3600);
  const m = String(Math.floor(total / 60) % 60).padStart(h ? 2 : 1, "0");
  const s = String(total % 60).padStart(2, "0");
  return h ? `${h}:${m}:${s}` : `${m}:${s}`;
}

function selectFile(file) {
  if (!file || ["uploading", "queued", "transcribing"].includes(ui.body.dataset.state)) return;
  selectedFile = file;
  ui.fileName.textContent = `${file.name} (${(file.size / 1048576).toFixed(1)} MB)`;
  if (ui.player.src) URL.revokeObjectURL(ui.player.src);
  ui.player.src = URL.createObjectURL(file);
  ui.start.disabled = false;
}

function showError({ code, detail, request_id: requestId, retryAfter }) {
  ui.error.hidden = false;
  ui.errorMessage.textContent = MESSAGES[code] || detail || "The transcription failed.";
  const meta = [code];
  if (detail && MESSAGES[code] && detail !== MESSAGES[code]) meta.push(detail);
  if (retryAfter) meta.push(`retry after ${retryAfter} s`);
  if (requestId) meta.push(`request ${requestId}`);
  ui.errorMeta.textContent = meta.filter(Boolean).join(" · ");
  ui.error.dataset.code = code || "";
  if (!ui.progress.hasAttribute("value")) ui.progress.value = 0; // stop the indeterminate bar
  setState("error", "Failed");
}

function cancelled() {
  if (!ui.progress.hasAttribute("value")) ui.progress.value = 0;
  setState("cancelled", "Cancelled");
}

function updateTiming() {
  if (!clock) return;
  const now = performance.now() / 1000;
  const parts = [`elapsed ${formatDuration(now - clock.started)}`];
  const doc = latest;
  if (ui.body.dataset.state === "transcribing" && doc && doc.total_time && clock.rateOrigin) {
    const wall = now - clock.rateOrigin.wall;
    const audio = (doc.current_time || 0) - clock.rateOrigin.audio;
    if (wall > 1 && audio > 0) {
      parts.push(`about ${formatDuration((doc.total_time - doc.current_time) / (audio / wall))} left`);
    }
  }
  ui.timing.textContent = parts.join(" · ");
}

function showDocument(doc, final) {
  latest = doc;
  const total = doc.total_time;
  const current = final && total != null ? total : doc.current_time || 0;
  if (clock && !clock.rateOrigin && doc.current_time != null) {
    clock.rateOrigin = { wall: performance.now() / 1000, audio: doc.current_time };
  }
  if (total) {
    ui.progress.max = total;
    ui.progress.value = Math.min(current, total);
    ui.progressText.textContent =
      `${formatDuration(current)} / ${formatDuration(total)} · ${Math.round((100 * Math.min(current, total)) / total)}%`;
  } else {
    ui.progress.removeAttribute("value");
    ui.progressText.textContent = `${formatDuration(current)} transcribed`;
  }
  ui.queue.hidden = true;
  ui.result.hidden = false;
  view.update(doc, final);
}

function reset() {
  finalDocument = null;
  latest = null;
  view.clear();
  ui.error.hidden = true;
  ui.queue.hidden = true;
  ui.status.hidden = false;
  ui.result.hidden = true;
  ui.progress.value = 0;
  ui.progress.max = 1;
  ui.progressText.textContent = "";
  ui.documentId.textContent = "";
  for (const button of ui.downloads) button.disabled = true;
  if (clock) clearInterval(clock.timer);
  clock = { started: performance.now() / 1000, rateOrigin: null, timer: setInterval(updateTiming, 1000) };
  updateTiming();
}

async function transcribe() {
  if (!selectedFile) return;
  reset();
  controller = new AbortController();
  setState("uploading", `Uploading ${selectedFile.name}…`);
  ui.progress.removeAttribute("value");
  const form = new FormData();
  form.append("file", selectedFile, selectedFile.name);
  const url = `/asr/transcribe/stream?use_cache=${ui.useCache.checked ? "true" : "false"}`;
  let response;
  try {
    response = await fetch(url, {
      method: "POST",
      body: form,
      headers: { Accept: "text/event-stream", ...authHeaders() },
      signal: controller.signal,
    });
  } catch (error) {
    if (controller.signal.aborted) cancelled();
    else showError({ code: "NETWORK_ERROR", detail: String(error) });
    return;
  }
  const requestId = response.headers.get("X-Request-ID");
  if (!response.ok) {
    const body = await response.json().catch(() => null);
    showError({
      code: (body && body.code) || `HTTP_${response.status}`,
      detail: body && typeof body.detail === "string" ? body.detail : response.statusText,
      request_id: (body && body.request_id) || requestId,
      retryAfter: response.headers.get("Retry-After"),
    });
    return;
  }
  if (!(response.headers.get("Content-Type") || "").startsWith("text/event-stream")) {
    showError({ code: "BAD_RESPONSE", request_id: requestId });
    return;
  }
  const documentId = response.headers.get("X-Document-Id");
  if (documentId) {
    ui.result.dataset.documentId = documentId;
    ui.documentId.textContent = `Document ${documentId}`;
  }
  setState("transcribing", "Transcribing…");
  try {
    for await (const event of readEvents(response)) {
      if (event.type === "queued") {
        const { position } = JSON.parse(event.data);
        ui.queue.hidden = false;
        ui.queue.textContent = position === 1 ? "Next in line" : `Position ${position} in the queue`;
        ui.queue.dataset.position = String(position);
        setState("queued", "Waiting for a free recognizer…");
      } else if (event.type === "transcription") {
        if (ui.body.dataset.state !== "transcribing") setState("transcribing", "Transcribing…");
        showDocument(JSON.parse(event.data), false);
      } else if (event.type === "done") {
        finalDocument = JSON.parse(event.data);
        showDocument(finalDocument, true);
        view.flush();
        ui.result.dataset.documentId = finalDocument.document_id;
        ui.documentId.textContent = `Document ${finalDocument.document_id}`;
        for (const button of ui.downloads) button.disabled = false;
        setState("done", `Done: ${finalDocument.document.length} paragraphs`);
        return;
      } else if (event.type === "error") {
        showError(JSON.parse(event.data));
        return;
      }
    }
    showError({ code: "CONNECTION_LOST", request_id: requestId });
  } catch (error) {
    if (controller.signal.aborted) cancelled();
    else if (error instanceof SyntaxError) showError({ code: "BAD_RESPONSE", request_id: requestId });
    else showError({ code: "CONNECTION_LOST", detail: String(error), request_id: requestId });
  }
}

function download(format) {
  if (!finalDocument) return;
  const { render, type } = RENDERERS[format];
  const blob = new Blob([render(finalDocument)], { type: `${type};charset=utf-8` });
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  const base = (selectedFile ? selectedFile.name : "transcript").replace(/\.[^.]*$/, "");
  link.download = `${base}.${format}`;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 10000);
}

setupKeyField($("api-key"));
ui.fileInput.addEventListener("change", () => selectFile(ui.fileInput.files[0]));
ui.start.addEventListener("click", () => transcribe());
ui.cancel.addEventListener("click", () => controller && controller.abort());
for (const button of ui.downloads) {
  button.addEventListener("click", () => download(button.dataset.format));
}
// Dropping a file anywhere must not navigate away from the page.
for (const type of ["dragover", "drop"]) window.addEventListener(type, (event) => event.preventDefault());
ui.dropZone.addEventListener("dragover", () => ui.dropZone.classList.add("dragging"));
ui.dropZone.addEventListener("dragleave", () => ui.dropZone.classList.remove("dragging"));
ui.dropZone.addEventListener("drop", (event) => {
  ui.dropZone.classList.remove("dragging");
  selectFile(event.dataTransfer.files[0]);
});
