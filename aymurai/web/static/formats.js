// Transcript renderers: the same output as aymurai/transcription/formats.py (keep the two in step).
// An ASRDocument is {document_id, document: [paragraph], current_time, total_time}.

export function speakerLabel(paragraph) {
  const name = (paragraph.speaker_name || "").trim();
  return name || `Speaker ${paragraph.speaker_no}`;
}

const pad = (value, width = 2) => String(value).padStart(width, "0");

/** HH:MM:SS, hours unbounded. */
export function formatClock(seconds) {
  const total = Math.floor(Math.max(seconds || 0, 0));
  return `${pad(Math.floor(total / 3600))}:${pad(Math.floor(total / 60) % 60)}:${pad(total % 60)}`;
}

function formatCueTime(seconds, separator) {
  const millis = Math.round(Math.max(seconds || 0, 0) * 1000);
  const hours = Math.floor(millis / 3600000);
  const minutes = Math.floor(millis / 60000) % 60;
  const secs = Math.floor(millis / 1000) % 60;
  return `${pad(hours)}:${pad(minutes)}:${pad(secs)}${separator}${pad(millis % 1000, 3)}`;
}

const oneLine = (text) => text.split(/\s+/).filter(Boolean).join(" ");

export function renderTxt(doc) {
  return doc.document
    .map((p) => `[${formatClock(p.start)}] ${speakerLabel(p)}: ${oneLine(p.text)}\n`)
    .join("");
}

function cues(doc) {
  const result = [];
  for (const p of doc.document) {
    const text = oneLine(p.text);
    if (!text) continue;
    const start = Math.max(p.start, 0);
    result.push({ start, end: Math.max(p.end, start), text: `${speakerLabel(p)}: ${text}` });
  }
  return result;
}

export function renderSrt(doc) {
  return cues(doc)
    .map((c, i) => `${i + 1}\n${formatCueTime(c.start, ",")} --> ${formatCueTime(c.end, ",")}\n${c.text}\n`)
    .join("\n");
}

const escapeVtt = (text) => text.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;");

export function renderVtt(doc) {
  const blocks = cues(doc).map(
    (c) => `${formatCueTime(c.start, ".")} --> ${formatCueTime(c.end, ".")}\n${escapeVtt(c.text)}\n`,
  );
  return "WEBVTT\n\n" + blocks.join("\n");
}

export function renderJson(doc) {
  return JSON.stringify(doc, null, 2) + "\n";
}

export const RENDERERS = {
  txt: { render: renderTxt, type: "text/plain" },
  srt: { render: renderSrt, type: "application/x-subrip" },
  vtt: { render: renderVtt, type: "text/vtt" },
  json: { render: renderJson, type: "application/json" },
};
