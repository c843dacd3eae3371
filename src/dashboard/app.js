// The dashboard: one WebSocket streams every task's events into the table, the panel and the
// header; HTTP reads what is shown again after every reconnect, so nothing stale survives one.
import { ApiError, api, onTokenNeeded, setToken, token } from "./api.js";
import { LiveSocket } from "./live.js";
import { Listing } from "./listing.js";
import { TaskTable } from "./table.js";
import { TaskPanel } from "./panel.js";
import { applyEvent, newer } from "./tasks.js";
import { SubmitForm } from "./submit.js";
import { throttled } from "./throttle.js";
import { renderCounts, renderThroughput, renderWorkers } from "./header.js";

const $ = (id) => document.getElementById(id);
const RELOAD_GAP_MS = 1000; // the listed page is read again at most once a second
const STATS_GAP_MS = 1000;
const STATS_EVERY_MS = 5000; // workers and the minute buckets move with time, not with events
const TICK_MS = 1000; // ages and durations
const QUIET_EVENTS = new Set(["task.progress", "task.updated"]); // they never change a status

const state = { stats: null, workers: null, group: { all: true } };
const listing = new Listing();
const table = new TaskTable($("task-rows"), $("empty"), (taskId) => quietly(select(taskId)));
const panel = new TaskPanel();
const live = new LiveSocket({ tokenOf: token, onOpen: resubscribe, onFrame: receive, onState: showConnection });
const submitForm = new SubmitForm((taskId) => {
  scheduleReload();
  return select(taskId);
});

// --- rendering: at most once per animation frame, whatever the rate of events ----------------
let renderQueued = false;
let headerDirty = true;

function scheduleRender() {
  if (renderQueued) return;
  renderQueued = true;
  requestAnimationFrame(render);
}

function render() {
  renderQueued = false;
  table.selected = panel.task && panel.task.id;
  table.render(Date.now());
  panel.render();
  renderPager();
  if (headerDirty) {
    headerDirty = false;
    renderCounts(state.stats);
    renderThroughput(state.stats);
    renderWorkers(state.workers);
  }
}

function renderPager() {
  $("page-label").textContent = `page ${listing.page}`;
  $("page-newer").disabled = listing.page === 1;
  $("page-older").disabled = !listing.next;
}

const scheduleReload = throttled(reloadPage, RELOAD_GAP_MS);
const scheduleStats = throttled(refreshStats, STATS_GAP_MS);

async function reloadPage() {
  table.show(await listing.load());
  scheduleRender();
}

async function refreshStats() {
  const [stats, workers] = await Promise.all([readOrNull("/api/stats"), readOrNull("/api/workers")]);
  state.stats = stats;
  state.workers = workers;
  headerDirty = true;
  scheduleRender();
}

// An operator's figures: a token that may not read them (403) just leaves them out.
async function readOrNull(path) {
  try {
    return (await api("GET", path)).data;
  } catch (error) {
    if (error instanceof ApiError && error.status === 403) return null;
    throw error;
  }
}

function reloadAll() {
  scheduleReload();
  scheduleStats();
  if (panel.task) quietly(reloadPanel(panel.task.id));
  quietly(loadTypes());
}

async function loadTypes() {
  const names = await submitForm.loadTypes();
  const filter = $("filter-type");
  const current = filter.value;
  filter.replaceChildren(new Option("all", ""), ...names.map((name) => new Option(name, name)));
  if (names.includes(current)) filter.value = current;
}

// Reads that fail while the API is away are read again once the socket is back.
function quietly(promise) {
  promise.catch((error) => console.warn(error));
}

// --- the live stream ---------------------------------------------------------------------------
function showConnection(connection) {
  const badge = $("connection");
  badge.dataset.state = connection;
  badge.textContent = { live: "live", connecting: "connecting…", reconnecting: "reconnecting…" }[connection];
  document.body.classList.toggle("offline", connection !== "live");
}

// After every (re)connect: subscribe again, then read again what the page shows.
function resubscribe() {
  live.send({ op: "subscribe", ...state.group });
  if (panel.task) live.send({ op: "subscribe", task_id: panel.task.id, since: panel.task.seq });
  reloadAll();
}

function receive(frame) {
  if (frame.type === "event") onEvent(frame);
  else if (frame.type === "snapshot") onSnapshot(frame.task);
  else if (frame.type === "error") onError(frame);
}

function onEvent(event) {
  const row = table.get(event.task_id);
  if (row) update(row, event, (task) => table.put(task));
  if (panel.task && panel.task.id === event.task_id) {
    update(panel.task, event, (task) => (panel.task = task));
    if (!panel.addEvent(event)) quietly(reloadPanel(event.task_id));
  }
  // A task may join the first page (created, or moved into the filtered status) or leave it.
  const moved = !QUIET_EVENTS.has(event.event);
  const appears = !row && moved && listing.page === 1 && listing.admits(event.status);
  const leaves = row && (event.event === "task.deleted" || !listing.admits(event.status));
  if (appears || leaves) scheduleReload();
  scheduleStats();
  scheduleRender();
}

function update(task, event, store) {
  const applied = applyEvent(task, event);
  if (!applied) return; // not newer than what is shown
  store(applied.task);
  if (applied.gap) quietly(refetch(event.task_id));
}

function onSnapshot(task) {
  const row = table.get(task.id);
  if (row) table.put(newer(row, task));
  if (panel.task && panel.task.id === task.id) {
    const last = panel.events.length ? panel.events[panel.events.length - 1].seq : 0;
    panel.task = newer(panel.task, task);
    if (task.seq > last) quietly(reloadPanel(task.id));
  }
  scheduleRender();
}

function onError(frame) {
  if (frame.code === "events_missed") reloadAll();
  else if (frame.code === "forbidden" && state.group.all) {
    state.group = { owner: "me" }; // not an admin: follow its own tasks
    live.send({ op: "subscribe", ...state.group });
  } else if (frame.code === "not_found" && panel.task) quietly(reloadPanel(panel.task.id));
  else if (frame.code === "unavailable") setTimeout(resubscribe, RELOAD_GAP_MS);
}

const refetching = new Set();

async function refetch(taskId) {
  if (refetching.has(taskId)) return;
  refetching.add(taskId);
  try {
    const task = (await api("GET", `/api/tasks/${encodeURIComponent(taskId)}`)).data;
    const row = table.get(taskId);
    if (row) table.put(newer(row, task));
    if (panel.task && panel.task.id === taskId) panel.task = newer(panel.task, task);
    scheduleRender();
  } catch (error) {
    if (!(error instanceof ApiError && error.status === 404)) throw error;
  } finally {
    refetching.delete(taskId);
  }
}

// --- the task panel ----------------------------------------------------------------------------
async function select(taskId) {
  if (panel.task && panel.task.id !== taskId) live.send({ op: "unsubscribe", task_id: panel.task.id });
  panel.wanted = taskId;
  await reloadPanel(taskId);
  if (panel.task) live.send({ op: "subscribe", task_id: taskId, since: panel.task.seq });
}

async function reloadPanel(taskId) {
  const path = `/api/tasks/${encodeURIComponent(taskId)}`;
  try {
    const [task, events] = await Promise.all([api("GET", path), api("GET", `${path}/events`)]);
    if (panel.wanted !== taskId) return; // another task was chosen meanwhile
    panel.open(newer(panel.task && panel.task.id === taskId ? panel.task : null, task.data), events.data);
  } catch (error) {
    if (!(error instanceof ApiError && error.status === 404)) throw error;
    if (panel.task && panel.task.id === taskId) panel.task = { ...panel.task, deleted: true };
  }
  scheduleRender();
}

async function act(action) {
  const task = panel.task;
  if (!task) return;
  const path = `/api/tasks/${encodeURIComponent(task.id)}`;
  $("panel-error").textContent = "";
  try {
    if (action === "delete") {
      await api("DELETE", path);
      panel.task = { ...task, deleted: true };
    } else {
      const changed = (await api("POST", `${path}/${action}`)).data;
      panel.task = newer(panel.task, changed);
      const row = table.get(task.id);
      if (row) table.put(newer(row, changed));
    }
  } catch (error) {
    $("panel-error").textContent = error.message;
  }
  scheduleReload();
  scheduleRender();
}

// --- the token prompt --------------------------------------------------------------------------
function askForToken(detail) {
  const dialog = $("token-dialog");
  $("token-reason").textContent = `${detail || "A token is required."} It is kept in this tab only.`;
  return new Promise((resolve) => {
    $("token-form").onsubmit = () => {
      setToken($("token-input").value.trim());
      $("token-input").value = "";
      live.retryNow();
      resolve();
    };
    if (!dialog.open) dialog.showModal();
  });
}

function start() {
  onTokenNeeded(askForToken);
  $("submit-type").addEventListener("change", () => submitForm.showSchema());
  $("submit-form").addEventListener("submit", (event) => quietly(submitForm.submit(event)));
  const refilter = () => {
    listing.filter($("filter-status").value, $("filter-type").value);
    scheduleReload();
  };
  $("filter-status").addEventListener("change", refilter);
  $("filter-type").addEventListener("change", refilter);
  $("page-older").addEventListener("click", () => (listing.older(), scheduleReload()));
  $("page-newer").addEventListener("click", () => (listing.newer(), scheduleReload()));
  for (const action of ["cancel", "retry", "delete"]) {
    $(`action-${action}`).addEventListener("click", () => quietly(act(action)));
  }
  setInterval(scheduleStats, STATS_EVERY_MS);
  setInterval(scheduleRender, TICK_MS);
  scheduleRender();
  live.start();
  reloadAll();
}

start();
