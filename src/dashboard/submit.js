// The submit form: the task types to choose from, the fields of the chosen one, the submission.
import { ApiError, api } from "./api.js";
import { buildForm, clearErrors, readForm, showErrors } from "./form.js";

const $ = (id) => document.getElementById(id);

export class SubmitForm {
  constructor(onSubmitted) {
    this.onSubmitted = onSubmitted;
    this.types = [];
    this.schemaShown = null;
    this.reader = null;
  }

  // Reads the active types again; returns their names.
  async loadTypes() {
    this.types = (await api("GET", "/api/task-types")).data;
    const names = this.types.map((t) => t.name);
    const select = $("submit-type");
    const current = select.value;
    select.replaceChildren(...names.map((name) => new Option(name, name)));
    if (names.includes(current)) select.value = current;
    this.showSchema();
    return names;
  }

  showSchema() {
    const chosen = this.types.find((t) => t.name === $("submit-type").value);
    const schema = chosen ? JSON.stringify(chosen.parameters_schema) : null;
    if (schema === this.schemaShown) return; // keep what the operator typed
    this.schemaShown = schema;
    $("submit-description").textContent = chosen ? chosen.description : "No task types yet: start a worker.";
    this.reader = buildForm($("submit-fields"), chosen ? chosen.parameters_schema : {});
  }

  async submit(event) {
    event.preventDefault();
    const form = $("submit-form");
    clearErrors(form);
    $("submit-error").textContent = "";
    $("submit-result").textContent = "";
    const parameters = readForm(this.reader, form);
    if (parameters === undefined) return;
    const body = { type: $("submit-type").value, parameters };
    const priority = $("submit-priority").value;
    if (priority !== "") body.priority = Number(priority);
    try {
      const task = (await api("POST", "/api/tasks", body)).data;
      $("submit-result").textContent = `submitted ${task.id}`;
      await this.onSubmitted(task.id);
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      const failures = Array.isArray(error.body && error.body.extra) ? error.body.extra : [];
      const unplaced = showErrors(form, failures);
      const lines = [error.message, ...unplaced.map((f) => `${f.path}: ${f.message}`)];
      $("submit-error").textContent = lines.join(" — ");
    }
  }
}
