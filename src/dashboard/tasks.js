// Task records as the page holds them: events are applied by `seq`, never backwards.
import { FINAL } from "./format.js";

// The task after `event`, or null when the event is not newer than what the task shows.
// `gap` is true when events were skipped: fields the event does not carry may be stale.
export function applyEvent(task, event) {
  if (event.seq <= task.seq) return null;
  const next = {
    ...task,
    seq: event.seq,
    status: event.status,
    updated_at: event.at,
    attempts: Math.max(task.attempts, event.attempt),
    progress: event.progress ?? null,
  };
  for (const name of ["result", "error_message", "cancel_requested", "priority", "metadata", "worker"]) {
    if (name in event) next[name] = event[name];
  }
  switch (event.event) {
    case "task.started":
      Object.assign(next, { started_at: event.at, completed_at: null, result: null, cancel_requested: false });
      break;
    case "task.retrying":
      Object.assign(next, { completed_at: null, result: null, worker: null });
      break;
    case "task.deleted":
      next.deleted = true;
      break;
    default:
      if (FINAL.has(event.status) && event.event !== "task.updated") {
        Object.assign(next, { completed_at: event.at, worker: null });
      }
  }
  return { task: next, gap: event.seq !== task.seq + 1 };
}

// Of two versions of a task, the one with the newer `seq`.
export function newer(held, fetched) {
  return held && held.seq > fetched.seq ? held : fetched;
}

export function may(task, action) {
  if (!task || task.deleted) return false;
  if (action === "cancel") return (task.status === "pending" || task.status === "running") && !task.cancel_requested;
  if (action === "retry") return task.status === "failed" || task.status === "cancelled";
  return action === "delete";
}
