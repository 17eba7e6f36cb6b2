// The transcript on screen, updated incrementally.
//
// Every event carries the whole document (a 1-hour hearing is ~1,500 paragraphs, a few events
// per second). We never rebuild the list: update() only remembers the newest document, one
// requestAnimationFrame callback per frame renders it, and a paragraph's DOM nodes are touched
// only when its own text, speaker or start time changed. The last paragraph of an unfinished
// document is marked tentative (it is still growing).

import { formatClock, speakerLabel } from "./formats.js";

const SPEAKER_COLOURS = 8;
const STICK_TO_BOTTOM_PX = 48;

export class TranscriptView {
  /**
   * @param {HTMLElement} container the scrollable element that holds the paragraphs
   * @param {(seconds: number) => void} onSeek called when a timestamp is clicked
   */
  constructor(container, onSeek = () => {}) {
    this.container = container;
    this.onSeek = onSeek;
    this.items = [];
    this.pending = null;
    this.frame = 0;
    this.renders = 0;
  }

  /** Schedule rendering of `doc`; several calls within one frame cost one render. */
  update(doc, final = false) {
    this.pending = { doc, final };
    if (!this.frame) this.frame = requestAnimationFrame(() => this.flush());
  }

  /** Render the pending document now (used for the final document, before announcing "done"). */
  flush() {
    if (this.frame) cancelAnimationFrame(this.frame);
    this.frame = 0;
    const pending = this.pending;
    this.pending = null;
    if (!pending) return;
    const { doc, final } = pending;
    const box = this.container;
    const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < STICK_TO_BOTTOM_PX;
    const paragraphs = doc.document;
    const fresh = document.createDocumentFragment();
    for (let i = 0; i < paragraphs.length; i++) {
      this.renderParagraph(i, paragraphs[i], !final && i === paragraphs.length - 1, fresh);
    }
    box.append(fresh);
    while (this.items.length > paragraphs.length) this.items.pop().el.remove();
    if (atBottom) box.scrollTop = box.scrollHeight;
    this.renders += 1;
  }

  clear() {
    if (this.frame) cancelAnimationFrame(this.frame);
    this.frame = 0;
    this.pending = null;
    this.items = [];
    this.container.replaceChildren();
  }

  renderParagraph(index, paragraph, tentative, fresh) {
    let item = this.items[index];
    if (!item) {
      item = this.createItem();
      this.items.push(item);
      fresh.append(item.el);
    }
    if (item.id !== paragraph.paragraph_id) {
      item.id = paragraph.paragraph_id;
      item.el.dataset.paragraphId = paragraph.paragraph_id;
    }
    if (item.start !== paragraph.start) {
      item.start = paragraph.start;
      item.time.textContent = formatClock(paragraph.start);
      item.time.dateTime = `PT${Math.max(paragraph.start, 0).toFixed(3)}S`;
      item.el.dataset.start = String(paragraph.start);
    }
    const label = speakerLabel(paragraph);
    if (item.label !== label || item.speakerNo !== paragraph.speaker_no) {
      item.label = label;
      item.speakerNo = paragraph.speaker_no;
      const colour = ((paragraph.speaker_no % SPEAKER_COLOURS) + SPEAKER_COLOURS) % SPEAKER_COLOURS;
      item.speaker.textContent = label;
      item.speaker.className = `speaker speaker-${colour}`;
    }
    if (item.text !== paragraph.text) {
      item.text = paragraph.text;
      item.body.textContent = paragraph.text;
    }
    if (item.tentative !== tentative) {
      item.tentative = tentative;
      item.el.classList.toggle("tentative", tentative);
    }
  }

  createItem() {
    const el = document.createElement("article");
    el.className = "paragraph";
    const meta = document.createElement("div");
    meta.className = "meta";
    const time = document.createElement("time");
    time.title = "Play from here";
    time.addEventListener("click", () => this.onSeek(item.start));
    const speaker = document.createElement("span");
    const body = document.createElement("p");
    body.className = "text";
    meta.append(time, speaker);
    el.append(meta, body);
    const item = { el, time, speaker, body, id: null, start: null, label: null, speakerNo: null, text: null, tentative: null };
    return item;
  }
}
