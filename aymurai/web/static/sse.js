// Streaming parser for text/event-stream, as the HTML standard defines it
// (https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation).
//
// We parse by hand because EventSource can only GET, and the upload is a POST with a body.
// Lines may end in CRLF, LF or CR, and a chunk may split a line (or a CRLF pair, or a UTF-8
// sequence: the TextDecoder in readEvents keeps partial sequences). Comment lines (": keepalive")
// are ignored; several `data:` lines are joined with "\n".

export class SSEParser {
  /** @param {(event: {type: string, data: string, id: string}) => void} onEvent */
  constructor(onEvent) {
    this.onEvent = onEvent;
    this.pieces = []; // parts of the current, unfinished line (no quadratic string growth)
    this.skipLineFeed = false; // the previous chunk ended in "\r": a leading "\n" is its pair
    this.type = "";
    this.data = [];
    this.lastEventId = "";
  }

  /** Feed decoded text; complete events are dispatched synchronously. */
  push(text) {
    let start = 0;
    if (this.skipLineFeed && text.startsWith("\n")) start = 1;
    this.skipLineFeed = false;
    const lineEnd = /\r\n|\r|\n/g;
    lineEnd.lastIndex = start;
    let match;
    while ((match = lineEnd.exec(text)) !== null) {
      if (match[0] === "\r" && match.index === text.length - 1) this.skipLineFeed = true;
      this.pieces.push(text.slice(start, match.index));
      const line = this.pieces.join("");
      this.pieces = [];
      this.processLine(line);
      start = lineEnd.lastIndex;
    }
    if (start < text.length) this.pieces.push(text.slice(start));
  }

  /** End of stream: a final unterminated event is discarded, as the standard says. */
  end() {
    this.pieces = [];
    this.type = "";
    this.data = [];
  }

  processLine(line) {
    if (line === "") {
      this.dispatch();
      return;
    }
    if (line.startsWith(":")) return;
    const colon = line.indexOf(":");
    let field = line;
    let value = "";
    if (colon !== -1) {
      field = line.slice(0, colon);
      value = line.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
    }
    if (field === "event") this.type = value;
    else if (field === "data") this.data.push(value);
    else if (field === "id" && !value.includes("\0")) this.lastEventId = value;
    // "retry" and unknown fields are ignored: we never reconnect a POST.
  }

  dispatch() {
    if (this.data.length === 0) {
      this.type = "";
      return;
    }
    const event = { type: this.type || "message", data: this.data.join("\n"), id: this.lastEventId };
    this.type = "";
    this.data = [];
    this.onEvent(event);
  }
}

/**
 * Yield the events of a fetch() Response body as they arrive.
 * @param {Response} response
 * @returns {AsyncGenerator<{type: string, data: string, id: string}>}
 */
export async function* readEvents(response) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder("utf-8");
  const queue = [];
  const parser = new SSEParser((event) => queue.push(event));
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      parser.push(decoder.decode(value, { stream: true }));
      while (queue.length) yield queue.shift();
    }
    parser.push(decoder.decode());
    parser.end();
    while (queue.length) yield queue.shift();
  } finally {
    reader.cancel().catch(() => {});
  }
}
