// Small formatting helpers shared by the table and the panel.
export const STATUSES = ["pending", "running", "completed", "failed", "cancelled"];
export const FINAL = new Set(["completed", "failed", "cancelled"]);

export function span(ms) {
  if (ms == null || Number.isNaN(ms)) return "—";
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${s % 60}s`;
  const h = Math.floor(m / 60);
  if (h < 24) return `${h}h ${m % 60}m`;
  return `${Math.floor(h / 24)}d ${h % 24}h`;
}

export function age(task, now) {
  return span(now - Date.parse(task.created_at));
}

export function duration(task, now) {
  if (!task.started_at) return "—";
  const end = task.completed_at ? Date.parse(task.completed_at) : task.status === "running" ? now : null;
  return end == null ? "—" : span(end - Date.parse(task.started_at));
}

export function time(iso) {
  return iso ? new Date(iso).toLocaleTimeString([], { hour12: false }) : "—";
}

export function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text != null) node.textContent = text;
  return node;
}

export function pretty(value) {
  return value === undefined ? "" : JSON.stringify(value, null, 2);
}

// A progress bar: the element gets its fill, percent and message (reused across renders).
export function renderProgress(box, task) {
  if (!box.firstChild) {
    box.append(el("div", "bar"), el("span", "percent"), el("span", "message"));
    box.firstChild.append(el("div", "fill"));
  }
  const [bar, percent, message] = box.children;
  const progress = task.progress;
  let value = progress && progress.percent != null ? progress.percent : null;
  if (value == null && task.status === "completed") value = 100;
  bar.firstChild.style.width = `${value == null ? 0 : value}%`;
  bar.dataset.status = task.status;
  percent.textContent = value == null ? "" : `${Math.round(value)}%`;
  message.textContent = (progress && progress.message) || "";
  message.title = message.textContent;
}
