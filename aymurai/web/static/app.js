// The page: pick a file, create a transcription (POST /asr/transcriptions), follow its events
// with the browser's own EventSource (events.js: deltas, resume), list recent transcriptions
// (history.js) and open one: live while it runs, read when it is done. The transcription runs at
// the gateway whatever the page does: a reload, a lost connection or a closed tab loses nothing,
// and the URL's #id reopens it. Cancel deletes it. Record streams the microphone through
// WS /asr/live (live.js): the transcript grows as one speaks, Stop ends it with the stored document.
// Talks to the gateway only through its public HTTP API; no framework, no build step.

import { authHeaders, setupKeyField } from "./apikey.js";
import { JobEvents } from "./events.js";
import { RENDERERS } from "./formats.js";
import { RecentList } from "./history.js";
import { LiveRecorder } from "./live.js";
import { TranscriptView } from "./transcript.js";

const $ = (id) => document.getElementById(id);

const MESSAGES = {
  EMPTY_UPLOAD: "The file is empty.",
  UPLOAD_TOO_LARGE: "The file is larger than this server accepts.",
  AUDIO_TOO_LONG: "The recording is longer than this server accepts.",
  MALFORMED_REQUEST: "The upload was damaged on its way to the server. Please try again.",
  UPLOAD_TIMEOUT: "The upload was too slow. Check your connection and try again.",
  INVALID_AUDIO: "This file is not an audio or video file the server can read.",
  VALIDATION_ERROR: "The server did not accept the request.",
  QUEUE_FULL: "The server is busy with other transcriptions. Please try again in a few minutes.",
  TOO_MANY_UPLOADS: "The server is receiving too many files right now. Please try again in a minute.",
  SPOOL_UNAVAILABLE: "The server has no room to store the upload right now. Please try again later.",
  SHUTTING_DOWN: "The server is restarting. Please try again in a minute.",
  STORAGE_ERROR: "The server could not store the transcript.",
  UPSTREAM_UNAVAILABLE: "The speech recognition service cannot be reached right now.",
  UPSTREAM_SERVICE_ERROR: "The speech recognition service failed during the transcription.",
  UPSTREAM_PROTOCOL_ERROR: "The speech recognition service is not configured correctly.",
  UPSTREAM_TIMEOUT: "The speech recognition service stopped answering.",
  INTERNAL_ERROR: "The server failed unexpectedly.",
  UNAUTHENTICATED: "This server needs an API key: enter yours under “API key”.",
  FORBIDDEN: "This API key may not do this.",
  KEY_LIMIT: "This API key already has as many transcriptions running as it may. Please wait for one to finish.",
  NETWORK_ERROR: "Cannot reach the server. Check your connection and try again.",
  CONNECTION_LOST: "The connection to the server was lost before the transcription finished.",
  NOT_FOUND: "The server does not know this transcription.",
  INTERRUPTED: "The transcription was interrupted by a server restart and its audio is gone.",
  LIVE_BUFFER_FULL: "The server could not keep up with the recording. Please try again later.",
  AUDIO_TOO_FAST: "The audio arrived faster than it is recorded.",
  MICROPHONE: "The microphone is not available (refused or missing).",
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
  connection: $("connection"),
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
  recent: $("recent-list"),
  record: $("record-button"),
  stop: $("stop-button"),
  lag: $("lag"),
};

const recent = new RecentList(ui.recent, (transcription) => open(transcription));

const view = new TranscriptView($("transcript"), (seconds) => {
  ui.player.currentTime = seconds;
  ui.player.play().catch(() => {});
});

let selectedFile = null;
let finalDocument = null;
let controller = null; // aborts the upload
let job = null; // the Transcription on screen
let events = null; // its JobEvents while followed
let generation = 0; // bumped by each upload or open: late answers for an older one are dropped
let recovering = 0; // streams closed by the browser in a row (see recover)

// Waits before asking again when the browser gave up on a stream whose job still runs (the
// gateway answered 503 while restarting): about half a minute in all, then CONNECTION_LOST.
const RECOVER_DELAYS_MS = [1000, 2000, 4000, 8000, 16000];
let clock = null; // {started, rateOrigin: {wall, audio} | null, timer}
let latest = null; // newest document, for the status line
let live = null; // the LiveRecorder while recording

function setState(state, text) {
  ui.body.dataset.state = state;
  ui.statusText.textContent = text;
  const recording = state === "recording" || state === "finishing";
  const running =
    recording || state === "uploading" || state === "queued" || state === "transcribing";
  ui.start.disabled = running || !selectedFile;
  ui.cancel.hidden = !running || live !== null;
  ui.fileInput.disabled = running;
  ui.record.hidden = live !== null;
  ui.record.disabled = running;
  ui.stop.hidden = live === null;
  ui.stop.disabled = state !== "recording" && state !== "queued";
  if (!running) ui.lag.hidden = true;
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

function setConnection(state) {
  ui.body.dataset.connection = state;
  ui.connection.hidden = state !== "reconnecting";
  ui.connection.textContent = state === "reconnecting" ? "Reconnecting…" : "";
}

function selectFile(file) {
  if (!file || ["uploading", "queued", "transcribing"].includes(ui.body.dataset.state)) return;
  selectedFile = file;
  ui.fileName.textContent = `${file.name} (${(file.size / 1048576).toFixed(1)} MB)`;
  if (ui.player.src) URL.revokeObjectURL(ui.player.src);
  ui.player.src = URL.createObjectURL(file);
  ui.player.hidden = false;
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
  stopFollowing();
  setState("error", "Failed");
  recent.refresh();
}

function cancelled() {
  if (!ui.progress.hasAttribute("value")) ui.progress.value = 0;
  stopFollowing();
  setState("cancelled", "Cancelled");
  recent.refresh();
}

function stopFollowing() {
  if (events) events.close();
  events = null;
  setConnection("closed");
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

function showQueued(position) {
  ui.queue.hidden = false;
  ui.queue.textContent = position === 1 ? "Next in line" : `Position ${position} in the queue`;
  ui.queue.dataset.position = String(position);
  setState("queued", "Waiting for a free recognizer…");
}

function showDone(doc) {
  stopFollowing();
  finalDocument = doc;
  showDocument(doc, true);
  view.flush();
  ui.result.dataset.documentId = doc.document_id;
  ui.documentId.textContent = `Document ${doc.document_id}`;
  for (const button of ui.downloads) button.disabled = false;
  setState("done", `Done: ${doc.document.length} paragraphs`);
  recent.refresh();
}

function showJobError(error, requestId) {
  if (error && error.code === "CANCELLED") cancelled();
  else showError({ code: "INTERNAL_ERROR", request_id: requestId, ...error });
}

/** Show `transcription` (a Transcription): its result if it ended, else follow its events. */
function showJob(transcription) {
  job = transcription;
  ui.body.dataset.transcriptionId = job.id;
  ui.result.dataset.documentId = job.document_id;
  ui.documentId.textContent = `Document ${job.document_id}`;
  if (location.hash !== `#${job.id}`) history.replaceState(null, "", `#${job.id}`);
  recent.select(job.id);
  if (!selectedFile) ui.fileName.textContent = job.name;
  if (job.status === "done" && job.document) {
    showDone(job.document);
    return;
  }
  if (job.status === "failed" || job.status === "cancelled") {
    showJobError(job.error);
    return;
  }
  if (job.status === "queued" && job.position) showQueued(job.position);
  else setState("transcribing", "Transcribing…");
  follow(job);
}

function follow(transcription) {
  stopFollowing();
  events = new JobEvents(transcription.events_url, {
    onQueued: ({ position }) => showQueued(position),
    onUpstream: ({ state, attempt, resume_from: from }) => {
      // The server resumes on another recognizer (or the same, once back) from `from` seconds;
      // the transcript so far is kept.
      ui.body.dataset.upstream = state;
      setState(
        "transcribing",
        state === "reconnecting"
          ? `Recognizer connection lost; resuming from ${formatDuration(from)} (attempt ${attempt})…`
          : `Transcribing… (resumed from ${formatDuration(from)})`,
      );
    },
    onDocument: (doc) => {
      if (ui.body.dataset.state !== "transcribing") setState("transcribing", "Transcribing…");
      showDocument(doc, false);
    },
    onDone: (doc) => showDone(doc),
    onError: (error) => showJobError(error),
    onConnection: (state) => {
      if (state === "open") recovering = 0;
      setConnection(state);
    },
    onClosed: () => recover(transcription.id),
  });
}

/** GET the job: `{transcription}`, `{response}` (an error status) or `{failure}` (no answer). */
async function readJob(id) {
  try {
    const response = await fetch(`/asr/transcriptions/${encodeURIComponent(id)}`, {
      headers: { Accept: "application/json", ...authHeaders() },
    });
    if (!response.ok) return { response };
    return { transcription: await response.json() };
  } catch (error) {
    return { failure: { code: error instanceof SyntaxError ? "BAD_RESPONSE" : "NETWORK_ERROR", detail: String(error) } };
  }
}

/** Open the job `id`: its result if it ended, else follow it. */
async function reload(id) {
  const mine = generation;
  const answer = await readJob(id);
  if (mine !== generation) return;
  if (answer.transcription) showJob(answer.transcription);
  else if (answer.response) await showResponseError(answer.response);
  else showError(answer.failure);
}

/**
 * The browser closed the stream without a terminal event: a 204 (the job ended), a 404, or a
 * 503 while the gateway restarts. Read the job: show how it ended, or, while it still runs (or
 * the gateway cannot answer), follow it again after a wait, a few times in a row at most.
 */
async function recover(id) {
  const mine = generation;
  const answer = await readJob(id);
  if (mine !== generation) return;
  const transcription = answer.transcription;
  if (transcription && transcription.status !== "queued" && transcription.status !== "running") {
    showJob(transcription);
    return;
  }
  if (answer.response && answer.response.status < 500) {
    await showResponseError(answer.response);
    return;
  }
  if (recovering >= RECOVER_DELAYS_MS.length) {
    if (answer.response) await showResponseError(answer.response);
    else showError(answer.failure || { code: "CONNECTION_LOST" });
    return;
  }
  setConnection("reconnecting");
  const delay = RECOVER_DELAYS_MS[recovering];
  recovering += 1;
  setTimeout(async () => {
    if (mine !== generation) return;
    const again = await readJob(id);
    if (mine !== generation) return;
    if (again.transcription) showJob(again.transcription);
    else recover(id);
  }, delay);
}

async function showResponseError(response) {
  const body = await response.json().catch(() => null);
  showError({
    code: (body && body.code) || `HTTP_${response.status}`,
    detail: body && typeof body.detail === "string" ? body.detail : response.statusText,
    request_id: (body && body.request_id) || response.headers.get("X-Request-ID"),
    retryAfter: response.headers.get("Retry-After"),
  });
}

/** Open a transcription from the list (or the URL): no local audio to play. */
function open(transcription) {
  if (["uploading"].includes(ui.body.dataset.state)) return;
  stopFollowing();
  reset();
  if (ui.player.src) URL.revokeObjectURL(ui.player.src);
  ui.player.removeAttribute("src");
  ui.player.hidden = true;
  ui.fileName.textContent = transcription.name;
  selectedFile = null;
  ui.start.disabled = true;
  generation += 1;
  recovering = 0;
  reload(transcription.id);
}

function reset() {
  finalDocument = null;
  latest = null;
  job = null;
  delete ui.body.dataset.transcriptionId;
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
  stopFollowing();
  reset();
  generation += 1;
  recovering = 0;
  const mine = generation;
  ui.player.hidden = false;
  controller = new AbortController();
  setState("uploading", `Uploading ${selectedFile.name}…`);
  ui.progress.removeAttribute("value");
  const form = new FormData();
  form.append("file", selectedFile, selectedFile.name);
  const url = `/asr/transcriptions?use_cache=${ui.useCache.checked ? "true" : "false"}`;
  let response;
  let transcription;
  try {
    response = await fetch(url, {
      method: "POST",
      body: form,
      headers: { Accept: "application/json", ...authHeaders() },
      signal: controller.signal,
    });
    if (!response.ok) {
      await showResponseError(response);
      return;
    }
    transcription = await response.json();
  } catch (error) {
    if (controller.signal.aborted) cancelled();
    else if (error instanceof SyntaxError) showError({ code: "BAD_RESPONSE", request_id: response.headers.get("X-Request-ID") });
    else showError({ code: "NETWORK_ERROR", detail: String(error) });
    return;
  } finally {
    controller = null;
  }
  if (mine !== generation) return;
  recent.refresh();
  showJob(transcription);
}

/** Cancel: abort the upload, or delete the transcription (every follower gets CANCELLED). */
async function cancel() {
  if (controller) {
    controller.abort();
    return;
  }
  if (!job) return;
  const id = job.id;
  let response;
  try {
    response = await fetch(`/asr/transcriptions/${encodeURIComponent(id)}`, { method: "DELETE", headers: authHeaders() });
  } catch (error) {
    showError({ code: "NETWORK_ERROR", detail: String(error) });
    return;
  }
  if (!job || job.id !== id) return;
  if (response.status === 204) cancelled();
  else if (response.status !== 409) await showResponseError(response); // 409: it ended meanwhile
}

/** Record from the microphone through WS /asr/live; the transcript grows as one speaks. */
async function record() {
  if (live) return;
  stopFollowing();
  reset();
  generation += 1;
  const mine = generation;
  if (ui.player.src) URL.revokeObjectURL(ui.player.src);
  ui.player.removeAttribute("src");
  ui.player.hidden = true;
  selectedFile = null;
  const name = `recording ${new Date().toISOString().slice(0, 19).replace("T", " ")}`;
  ui.fileName.textContent = name;
  const recorder = new LiveRecorder({
    onSession: (session) => {
      if (mine !== generation) return;
      job = { id: session.id, name, document_id: session.document_id };
      ui.body.dataset.transcriptionId = session.id;
      ui.documentId.textContent = `Document ${session.document_id}`;
      history.replaceState(null, "", `#${session.id}`);
      recent.refresh();
    },
    onQueued: (position) => mine === generation && showQueued(position),
    onAdmitted: () => mine === generation && setState("recording", "Recording…"),
    onDocument: (doc) => mine === generation && showDocument(doc, false),
    onLag: (seconds) => {
      ui.lag.hidden = false;
      ui.lag.textContent = `recognizer ${Math.round(seconds)} s behind`;
    },
    onDone: (doc) => {
      live = null;
      if (mine === generation) showDone(doc);
    },
    onError: (error) => {
      live = null;
      if (mine === generation) showError(error);
    },
  });
  live = recorder;
  setState("recording", "Recording…");
  try {
    await recorder.start({ name });
  } catch (error) {
    recorder.releaseMicrophone();
    live = null;
    showError({ code: "MICROPHONE", detail: String(error) });
  }
}

function stopRecording() {
  if (!live) return;
  live.stop();
  setState("finishing", "Finishing the transcript…");
}

function download(format) {
  if (!finalDocument) return;
  const { render, type } = RENDERERS[format];
  const blob = new Blob([render(finalDocument)], { type: `${type};charset=utf-8` });
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  const name = selectedFile ? selectedFile.name : job ? job.name : "transcript";
  const base = name.replace(/\.[^.]*$/, "");
  link.download = `${base}.${format}`;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 10000);
}

// A new key may see other transcriptions: list them again.
setupKeyField($("api-key"), () => recent.refresh());
ui.fileInput.addEventListener("change", () => selectFile(ui.fileInput.files[0]));
ui.start.addEventListener("click", () => transcribe());
ui.cancel.addEventListener("click", () => cancel());
ui.record.addEventListener("click", () => record());
ui.stop.addEventListener("click", () => stopRecording());
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

recent.refresh();
// A reload (or a shared link) with #id reopens that transcription: live if it still runs.
if (location.hash.length > 1) open({ id: decodeURIComponent(location.hash.slice(1)), name: "" });
