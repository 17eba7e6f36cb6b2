// Live recording: the microphone → MediaRecorder (WebM/Opus) → WS /asr/live?format=webm.
//
// The gateway decodes the WebM as it grows and transcribes it as a job (docs/live.md): the
// socket answers `session` first, maybe `queued`/`admitted`, then `transcription` deltas (the
// same shape as the events stream), a `line` per final paragraph, `lag`, and `done` with the
// stored document (or `error`). Stop ends the recording: the recorder's last slice, then an
// empty frame, and the gateway flushes WLK and answers `done`.

import { liveProtocols } from "./apikey.js";

const SLICE_MS = 250; // a MediaRecorder slice: what the gateway gets at a time
const MIME = "audio/webm;codecs=opus";

export class LiveRecorder {
  /**
   * @param {object} handlers onSession({id, document_id, request_id}), onQueued(position),
   *   onAdmitted(), onDocument(doc), onLine(paragraph, index), onLag(seconds), onDone(doc),
   *   onError({code, detail}); each optional.
   */
  constructor(handlers = {}) {
    this.handlers = handlers;
    this.socket = null;
    this.recorder = null;
    this.stream = null;
    this.paragraphs = [];
    this.finished = false;
  }

  /** Ask for the microphone and start streaming it; rejects when the microphone is refused. */
  async start({ name = "", language = "" } = {}) {
    if (!window.MediaRecorder || !MediaRecorder.isTypeSupported(MIME)) {
      throw new Error("This browser cannot record WebM/Opus audio.");
    }
    this.stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    const query = new URLSearchParams({ format: "webm" });
    if (name) query.set("name", name);
    if (language) query.set("language", language);
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const socket = new WebSocket(`${scheme}//${location.host}/asr/live?${query}`, liveProtocols());
    socket.binaryType = "arraybuffer";
    this.socket = socket;
    socket.addEventListener("message", (event) => this.receive(event.data));
    socket.addEventListener("close", (event) => this.closed(event));
    await new Promise((resolve, reject) => {
      socket.addEventListener("open", resolve, { once: true });
      socket.addEventListener("error", () => reject(new Error("Cannot reach the server.")), { once: true });
    });
    const recorder = new MediaRecorder(this.stream, { mimeType: MIME });
    this.recorder = recorder;
    recorder.addEventListener("dataavailable", (event) => {
      if (event.data.size && socket.readyState === WebSocket.OPEN) socket.send(event.data);
    });
    recorder.addEventListener("stop", () => {
      // After the last slice: an empty frame ends the audio (the gateway then answers `done`).
      if (socket.readyState === WebSocket.OPEN) socket.send(new ArrayBuffer(0));
    });
    recorder.start(SLICE_MS);
  }

  /** Stop recording; the transcript ends with `onDone` once the gateway has flushed it. */
  stop() {
    if (this.recorder && this.recorder.state !== "inactive") this.recorder.stop();
    this.releaseMicrophone();
  }

  releaseMicrophone() {
    if (this.stream) for (const track of this.stream.getTracks()) track.stop();
    this.stream = null;
  }

  receive(data) {
    let message;
    try {
      message = JSON.parse(data);
    } catch {
      return;
    }
    const on = this.handlers;
    switch (message.type) {
      case "session":
        if (on.onSession) on.onSession(message);
        break;
      case "queued":
        if (on.onQueued) on.onQueued(message.position);
        break;
      case "admitted":
        if (on.onAdmitted) on.onAdmitted();
        break;
      case "transcription": {
        const { from_index: from, paragraphs, length } = message;
        this.paragraphs = this.paragraphs.slice(0, from).concat(paragraphs).slice(0, length);
        if (on.onDocument) {
          on.onDocument({
            document_id: message.document_id,
            document: this.paragraphs,
            current_time: message.current_time,
            total_time: null, // a recording has no known end
          });
        }
        break;
      }
      case "line":
        if (on.onLine) on.onLine(message.paragraph, message.index);
        break;
      case "lag":
        if (on.onLag) on.onLag(message.seconds);
        break;
      case "done":
        this.finished = true;
        if (on.onDone) on.onDone(message.document);
        break;
      case "error":
        this.finished = true;
        this.stop();
        if (on.onError) on.onError({ code: message.code, detail: message.detail });
        break;
      default:
        break; // newer messages: ignored
    }
  }

  closed(event) {
    this.stop();
    if (!this.finished && this.handlers.onError) {
      this.finished = true;
      this.handlers.onError({ code: "CONNECTION_LOST", detail: event.reason || `closed (${event.code})` });
    }
  }
}
