// The task panel: one task's fields, outcome and event timeline, kept live.
import { el, pretty, renderProgress, time } from "./format.js";
import { may } from "./tasks.js";

const $ = (id) => document.getElementById(id);

export class TaskPanel {
  constructor() {
    this.task = null;
    this.wanted = null; // the task chosen last, whose reads may still be under way
    this.events = [];
    this.drawnEvents = 0;
  }

  open(task, events) {
    this.task = task;
    this.events = events;
    this.drawnEvents = 0;
    $("panel-timeline").replaceChildren();
    $("panel-error").textContent = "";
  }

  // An event of the shown task: appended to the timeline when it is the next one.
  // Returns false when events are missing in between (the history must be read again).
  addEvent(event) {
    const last = this.events.length ? this.events[this.events.length - 1].seq : 0;
    if (event.seq <= last) return true;
    if (last && event.seq !== last + 1) return false;
    this.events.push(event);
    return true;
  }

  render() {
    const panel = $("panel");
    panel.hidden = !this.task;
    if (!this.task) return;
    const task = this.task;
    $("panel-id").textContent = task.id;
    const badge = $("panel-status");
    badge.textContent = task.deleted ? "deleted" : task.status;
    badge.dataset.status = task.deleted ? "deleted" : task.status;
    $("action-cancel").hidden = !may(task, "cancel");
    $("action-retry").hidden = !may(task, "retry");
    $("action-delete").hidden = !may(task, "delete");
    renderProgress($("panel-progress"), task);
    this.renderFields(task);
    $("panel-parameters").textContent = pretty(task.parameters);
    const failed = task.error_message != null && task.status !== "completed";
    $("panel-outcome-title").textContent = failed ? "Error" : "Result";
    $("panel-outcome").textContent = failed ? task.error_message : task.result == null ? "—" : pretty(task.result);
    $("panel-outcome").classList.toggle("error", failed);
    this.renderTimeline();
  }

  renderFields(task) {
    const rows = [
      ["type", task.type],
      ["owner", task.owner],
      ["priority", task.priority],
      ["attempts", `${task.attempts} of ${task.max_attempts}`],
      ["created", time(task.created_at)],
      ["started", time(task.started_at)],
      ["finished", time(task.completed_at)],
      ["worker", task.worker || "—"],
      ["seq", task.seq],
    ];
    const list = $("panel-fields");
    if (list.children.length !== rows.length * 2) {
      list.replaceChildren(...rows.flatMap(([name]) => [el("dt", null, name), el("dd")]));
    }
    rows.forEach(([, value], index) => {
      list.children[index * 2 + 1].textContent = String(value);
    });
  }

  renderTimeline() {
    const list = $("panel-timeline");
    for (; this.drawnEvents < this.events.length; this.drawnEvents++) {
      list.append(timelineItem(this.events[this.drawnEvents]));
    }
  }
}

function timelineItem(event) {
  const item = el("li");
  item.dataset.status = event.status;
  item.append(el("span", "seq", `#${event.seq}`), el("span", "kind", event.event.replace("task.", "")));
  item.append(el("time", "at", time(event.at)));
  const details = [];
  if (event.event === "task.progress" && event.progress) {
    const p = event.progress;
    details.push(p.percent != null ? `${Math.round(p.percent)}%` : String(p.current));
    if (p.message) details.push(p.message);
  }
  if (event.reason) details.push(event.reason);
  if (event.error_message && event.event !== "task.progress") details.push(event.error_message);
  if (event.worker) details.push(`on ${event.worker}`);
  if (event.attempt) details.push(`attempt ${event.attempt}`);
  item.append(el("span", "details", details.join(" · ")));
  return item;
}
