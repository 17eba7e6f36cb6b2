// Follow a transcription's events with the browser's own EventSource (docs/jobs.md).
//
// The EventSource reconnects by itself after a dropped connection, sending Last-Event-ID; the
// gateway answers with one full snapshot of the newest state, then goes on live. Each
// `transcription` event is a delta that we apply here, so callers always get the whole document:
//   doc = doc.slice(0, from_index).concat(paragraphs).slice(0, length)
// A delta that does not fit (a frame was lost) reopens the stream with ?last_event_id= (a new
// EventSource cannot set the header), which brings a snapshot.
//
// Trap: the gateway's `event: error` frames and the EventSource's own connection errors arrive
// on the same "error" listener. Ours are MessageEvents with data; a connection error is a plain
// Event, and readyState then tells whether the browser is retrying (CONNECTING) or gave up
// (CLOSED: a 204 after the end, a 404, an answer that is not an event stream).

export class JobEvents {
  /**
   * @param {string} url the job's events_url
   * @param {{
   *   onQueued?: (data: {position: number}) => void,
   *   onUpstream?: (data: {state: string, attempt: number, resume_from: number}) => void,
   *   onDocument?: (doc: object) => void,
   *   onDone?: (doc: object) => void,
   *   onError?: (error: {code: string, detail?: string, request_id?: string}) => void,
   *   onConnection?: (state: "open" | "reconnecting") => void,
   *   onClosed?: () => void,
   * }} handlers onClosed: the browser stopped without a terminal event (read the job's state)
   */
  constructor(url, handlers) {
    this.url = url;
    this.handlers = handlers;
    this.paragraphs = [];
    this.lastEventId = "";
    this.reconnects = 0;
    this.ended = false;
    this.source = null;
    this.open(url);
  }

  open(url) {
    const source = new EventSource(url);
    this.source = source;
    source.addEventListener("open", () => this.connection("open"));
    source.addEventListener("queued", (event) => {
      this.received(event);
      this.call("onQueued", JSON.parse(event.data));
    });
    source.addEventListener("transcription", (event) => this.transcription(event));
    // The recognizer was lost mid-file and the job resumes: a notice, the document is unchanged.
    source.addEventListener("upstream", (event) => {
      this.received(event);
      this.call("onUpstream", JSON.parse(event.data));
    });
    source.addEventListener("done", (event) => {
      this.received(event);
      const doc = JSON.parse(event.data);
      this.paragraphs = doc.document;
      this.close();
      this.call("onDone", doc);
    });
    source.addEventListener("error", (event) => {
      if (this.ended || source !== this.source) return;
      if (event instanceof MessageEvent) {
        this.received(event);
        this.close();
        this.call("onError", JSON.parse(event.data));
      } else if (source.readyState === EventSource.CONNECTING) {
        this.reconnects += 1;
        this.connection("reconnecting");
      } else {
        this.close();
        this.call("onClosed");
      }
    });
  }

  transcription(event) {
    const data = JSON.parse(event.data);
    if (data.from_index > this.paragraphs.length) {
      // A lost frame: resume from the last event we applied; the gateway sends a snapshot.
      this.source.close();
      // With API keys on, events_url already carries `?token=`.
      const separator = this.url.includes("?") ? "&" : "?";
      this.open(`${this.url}${separator}last_event_id=${encodeURIComponent(this.lastEventId)}`);
      return;
    }
    this.received(event);
    this.paragraphs = this.paragraphs.slice(0, data.from_index).concat(data.paragraphs).slice(0, data.length);
    this.call("onDocument", {
      document_id: data.document_id,
      document: this.paragraphs,
      current_time: data.current_time,
      total_time: data.total_time,
    });
  }

  received(event) {
    if (event.lastEventId) this.lastEventId = event.lastEventId;
    this.connection("open");
  }

  connection(state) {
    if (this.state === state) return;
    this.state = state;
    this.call("onConnection", state);
  }

  call(name, value) {
    const handler = this.handlers[name];
    if (handler) handler(value);
  }

  /** Stop following (the job goes on at the gateway). */
  close() {
    this.ended = true;
    if (this.source) this.source.close();
  }
}
