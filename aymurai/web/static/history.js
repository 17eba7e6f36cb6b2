// The list of recent transcriptions (GET /asr/transcriptions), newest first; a click opens one.

import { authHeaders } from "./apikey.js";

const STATUS_LABELS = {
  queued: "queued",
  running: "running",
  done: "done",
  failed: "failed",
  cancelled: "cancelled",
};

function formatWhen(iso) {
  const when = new Date(iso);
  if (Number.isNaN(when.getTime())) return "";
  return when.toLocaleString(undefined, { dateStyle: "short", timeStyle: "short" });
}

export class RecentList {
  /**
   * @param {HTMLElement} list the <ol> that holds the items
   * @param {(job: object) => void} onOpen called with the clicked Transcription
   * @param {number} limit how many to show
   */
  constructor(list, onOpen, limit = 20) {
    this.list = list;
    this.onOpen = onOpen;
    this.limit = limit;
    this.current = null;
    this.loading = null;
    this.stale = false;
  }

  /** Reload the list; errors leave the previous one in place (it is only a convenience). */
  refresh() {
    if (this.loading) {
      // The answer on its way may predate what the caller saw change: ask again after it.
      this.stale = true;
      return this.loading;
    }
    this.loading = fetch(`/asr/transcriptions?limit=${this.limit}`, { headers: { Accept: "application/json", ...authHeaders() } })
      .then((response) => (response.ok ? response.json() : null))
      .then((jobs) => {
        if (Array.isArray(jobs)) this.render(jobs);
      })
      .catch(() => {})
      .finally(() => {
        this.loading = null;
        if (this.stale) {
          this.stale = false;
          this.refresh();
        }
      });
    return this.loading;
  }

  /** Mark the transcription on screen. */
  select(id) {
    this.current = id;
    for (const item of this.list.children) item.classList.toggle("current", item.dataset.id === id);
  }

  render(jobs) {
    const items = jobs.map((job) => {
      const item = document.createElement("li");
      item.dataset.id = job.id;
      item.dataset.status = job.status;
      item.classList.toggle("current", job.id === this.current);
      const button = document.createElement("button");
      button.type = "button";
      const name = document.createElement("span");
      name.className = "job-name";
      name.textContent = job.name;
      const status = document.createElement("span");
      status.className = `job-status status-${job.status}`;
      status.textContent =
        job.status === "queued" && job.position ? `queued (${job.position})` : STATUS_LABELS[job.status] || job.status;
      const when = document.createElement("span");
      when.className = "job-when muted";
      when.textContent = formatWhen(job.created_at);
      button.append(name, status, when);
      button.addEventListener("click", () => this.onOpen(job));
      item.append(button);
      return item;
    });
    this.list.replaceChildren(...items);
    this.list.dataset.count = String(items.length);
  }
}
