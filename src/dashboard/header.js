// The header: tasks by status, throughput over the last 15 minutes, and the workers online.
import { STATUSES, el } from "./format.js";

const SVG = "http://www.w3.org/2000/svg";
const $ = (id) => document.getElementById(id);

export function renderCounts(stats) {
  const list = $("counts");
  if (list.children.length !== STATUSES.length) {
    list.replaceChildren(
      ...STATUSES.map((status) => {
        const item = el("li", "count");
        item.dataset.status = status;
        item.append(el("span", "count-value", "–"), el("span", "count-name", status));
        return item;
      }),
    );
  }
  STATUSES.forEach((status, index) => {
    list.children[index].firstChild.textContent = stats ? String(stats.tasks[status] ?? 0) : "–";
  });
}

// Stacked bars per minute: completed, failed, cancelled; a tick for what was submitted.
export function renderThroughput(stats) {
  const svg = $("throughput");
  svg.replaceChildren();
  if (!stats) return;
  const minutes = stats.throughput;
  const width = 150 / minutes.length;
  const peak = Math.max(1, ...minutes.map((m) => Math.max(m.submitted, m.completed + m.failed + m.cancelled)));
  minutes.forEach((minute, index) => {
    let top = 36;
    for (const status of ["completed", "failed", "cancelled"]) {
      const height = (minute[status] / peak) * 34;
      if (!height) continue;
      top -= height;
      svg.append(rect(index * width + 1, top, width - 2, height, status));
    }
    if (minute.submitted) {
      svg.append(rect(index * width + 1, 36 - (minute.submitted / peak) * 34 - 1, width - 2, 1.2, "submitted"));
    }
    const title = document.createElementNS(SVG, "title");
    const at = new Date(minute.minute).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", hour12: false });
    title.textContent = `${at}: ${minute.completed} completed, ${minute.failed} failed, ${minute.cancelled} cancelled, ${minute.submitted} submitted`;
    const hit = rect(index * width, 0, width, 36, "hit");
    hit.append(title);
    svg.append(hit);
  });
}

function rect(x, y, width, height, kind) {
  const node = document.createElementNS(SVG, "rect");
  for (const [name, value] of Object.entries({ x, y, width, height })) node.setAttribute(name, String(value));
  node.setAttribute("class", `bar-${kind}`);
  return node;
}

export function renderWorkers(workers) {
  $("workers-count").textContent = workers ? String(workers.length) : "–";
  $("workers").replaceChildren(
    ...(workers || []).map((worker) => {
      const item = el("li", "worker");
      item.title = `${worker.id}\nserves ${worker.types.join(", ")}\nheartbeat ${worker.heartbeat_at}`;
      item.append(el("span", "worker-name", `${worker.hostname}:${worker.pid}`));
      item.append(el("span", "muted", `${worker.running.length}/${worker.concurrency} running`));
      return item;
    }),
  );
}
