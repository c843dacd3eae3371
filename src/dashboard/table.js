// The task table: one <tr> per task, kept across renders and updated only where it changed.
import { age, duration, el, renderProgress } from "./format.js";
import { newer } from "./tasks.js";

export class TaskTable {
  constructor(tbody, empty, onSelect) {
    this.tbody = tbody;
    this.empty = empty;
    this.order = [];
    this.tasks = new Map();
    this.rows = new Map(); // id → { tr, shown: the task object last drawn }
    this.selected = null;
    tbody.addEventListener("click", (event) => {
      const tr = event.target.closest("tr[data-task-id]");
      if (tr) onSelect(tr.dataset.taskId);
    });
  }

  // A freshly read page; a row that already holds a newer version of a task keeps it.
  show(tasks) {
    this.tasks = new Map(tasks.map((task) => [task.id, newer(this.tasks.get(task.id), task)]));
    this.order = tasks.map((task) => task.id);
  }

  get(id) {
    return this.tasks.get(id);
  }

  put(task) {
    if (this.tasks.has(task.id)) this.tasks.set(task.id, task);
  }

  render(now) {
    this.empty.hidden = this.order.length > 0;
    let at = this.tbody.firstChild;
    for (const id of this.order) {
      const row = this.row(id);
      if (row.tr !== at) this.tbody.insertBefore(row.tr, at);
      else at = at.nextSibling;
      this.draw(row, this.tasks.get(id), now);
    }
    for (const [id, row] of this.rows) {
      if (!this.tasks.has(id)) {
        row.tr.remove();
        this.rows.delete(id);
      }
    }
  }

  row(id) {
    let row = this.rows.get(id);
    if (!row) {
      const tr = el("tr");
      tr.dataset.taskId = id;
      const cells = ["id", "type", "owner", "status", "progress", "age", "duration"];
      for (const name of cells) tr.append(el("td", `cell-${name}`));
      tr.children[3].append(el("span", "status"));
      tr.children[4].append(el("div", "progress"));
      row = { tr, shown: null };
      this.rows.set(id, row);
    }
    return row;
  }

  draw(row, task, now) {
    const cells = row.tr.children;
    row.tr.classList.toggle("selected", task.id === this.selected);
    row.tr.classList.toggle("deleted", Boolean(task.deleted));
    cells[5].textContent = age(task, now);
    cells[6].textContent = duration(task, now);
    if (row.shown === task) return;
    row.shown = task;
    row.tr.dataset.status = task.status;
    cells[0].textContent = task.id;
    cells[1].textContent = task.type;
    cells[2].textContent = task.owner;
    const badge = cells[3].firstChild;
    badge.textContent = task.cancel_requested && task.status === "running" ? "cancelling" : task.status;
    badge.dataset.status = task.status;
    renderProgress(cells[4].firstChild, task);
  }
}
