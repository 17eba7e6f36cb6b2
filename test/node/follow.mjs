// Follow a transcription's events with the npm `eventsource` package (a WHATWG EventSource for
// Node) and print one JSON line per thing seen, for test/integration/test_node_eventsource.py:
//   {"kind": "response", "status", "last_event_id"}   each HTTP answer (the header we sent)
//   {"kind": "event", "type", "id", "data"}            each queued/transcription/done/error event
//   {"kind": "connection_error", "code", "ready_state"} the EventSource's own errors
//   {"kind": "closed"}                                  the EventSource stopped for good; we exit
// Usage: node follow.mjs EVENTS_URL [close|stay]. `close` closes after the terminal event, as a
// client should; `stay` leaves it open to show what an EventSource does after the end.
import { EventSource } from "eventsource";

const [url, mode = "close"] = process.argv.slice(2);
const print = (line) => process.stdout.write(`${JSON.stringify(line)}\n`);

const source = new EventSource(url, {
  fetch: async (input, init) => {
    const sent = new Headers(init.headers || {});
    const response = await fetch(input, init);
    print({ kind: "response", status: response.status, last_event_id: sent.get("last-event-id") });
    return response;
  },
});

const finish = () => {
  source.close();
  print({ kind: "closed" });
  process.exit(0);
};

for (const type of ["queued", "transcription", "done", "error"]) {
  source.addEventListener(type, (event) => {
    if (typeof event.data === "string") {
      print({ kind: "event", type, id: event.lastEventId, data: JSON.parse(event.data) });
      if ((type === "done" || type === "error") && mode === "close") finish();
    } else {
      print({ kind: "connection_error", code: event.code ?? null, ready_state: source.readyState });
      if (source.readyState === EventSource.CLOSED) finish();
    }
  });
}
