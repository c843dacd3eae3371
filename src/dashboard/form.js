// The submit form, generated from a task type's parameters_schema. Strings, numbers, integers,
// booleans, enums, nested objects and arrays of scalars get inputs; anything else a JSON editor.
// The server validates: the form only shapes the body and shows the 422's failures by their path.
import { el } from "./format.js";

const SCALARS = new Set(["string", "number", "integer", "boolean", "enum"]);

class FormError extends Error {}

// Renders the fields for `schema` into `container`; returns how to read them and show errors.
export function buildForm(container, schema) {
  container.replaceChildren();
  const root = schema || {};
  const top = resolve(root, root);
  if (top.type === "object" && top.properties) {
    const body = objectFields(top, "/parameters", root);
    container.append(body.node, errorSlot("/parameters"));
    return { read: () => body.read() };
  }
  const body = jsonField(top, "/parameters", "parameters (JSON)");
  container.append(body.node);
  return { read: () => body.read() ?? {} };
}

// Shows each failure `{path, message}` next to the field it names, or the nearest one above it.
// Returns the failures no field could take.
export function showErrors(form, failures) {
  clearErrors(form);
  const unplaced = [];
  for (const failure of failures) {
    const slot = slotFor(form, failure.path);
    if (slot) {
      slot.textContent = slot.textContent ? `${slot.textContent}; ${failure.message}` : failure.message;
      slot.closest(".field")?.classList.add("invalid");
    } else unplaced.push(failure);
  }
  return unplaced;
}

export function clearErrors(form) {
  for (const slot of form.querySelectorAll("[data-error-for]")) slot.textContent = "";
  for (const field of form.querySelectorAll(".invalid")) field.classList.remove("invalid");
}

export function readForm(reader, form) {
  try {
    return reader.read();
  } catch (error) {
    if (error instanceof FormError) return undefined;
    throw error;
  }
}

function slotFor(form, path) {
  for (let at = path; at; at = at.slice(0, at.lastIndexOf("/"))) {
    const slot = [...form.querySelectorAll("[data-error-for]")].find((s) => s.dataset.errorFor === at);
    if (slot) return slot;
  }
  return null;
}

function resolve(schema, root) {
  let node = schema || {};
  for (let depth = 0; node.$ref && node.$ref.startsWith("#/") && depth < 20; depth++) {
    node = node.$ref
      .slice(2)
      .split("/")
      .reduce((at, key) => (at ? at[key.replace(/~1/g, "/").replace(/~0/g, "~")] : undefined), root) || {};
  }
  return node;
}

// `X or null` (anyOf/oneOf with a null branch, or a type list with "null") is X, optional.
function unwrapNullable(schema, root) {
  const branches = schema.anyOf || schema.oneOf;
  if (Array.isArray(branches) && branches.length === 2) {
    const other = branches.filter((b) => resolve(b, root).type !== "null");
    if (other.length === 1) return { ...resolve(other[0], root), default: schema.default, description: schema.description ?? other[0].description };
  }
  if (Array.isArray(schema.type)) {
    const types = schema.type.filter((t) => t !== "null");
    if (types.length === 1) return { ...schema, type: types[0] };
  }
  return schema;
}

function kindOf(schema) {
  if (Array.isArray(schema.enum) && schema.enum.length) return "enum";
  if (schema.type === "object" && schema.properties) return "object";
  if (schema.type === "array" && schema.items && SCALARS.has(kindOf(schema.items))) return "array";
  if (["string", "number", "integer", "boolean"].includes(schema.type)) return schema.type;
  return "json";
}

function field(schema, path, label, root, required) {
  const inner = unwrapNullable(resolve(schema, root), root);
  const item = inner.items ? unwrapNullable(resolve(inner.items, root), root) : null;
  const kind = kindOf(item ? { ...inner, items: item } : inner);
  if (kind === "object") return labelled(label, path, inner, objectFields(inner, path, root, required), "fieldset");
  if (kind === "array") return labelled(label, path, inner, arrayField(item, path, inner.default, required));
  if (kind === "json") return jsonField(inner, path, label);
  return labelled(label, path, inner, scalarField(inner, kind, path));
}

// An optional object or array left empty is left out, as an empty text field is.
function objectFields(schema, path, root, required = true) {
  const box = el("div", "object-fields");
  const mandatory = new Set(schema.required || []);
  const parts = Object.entries(schema.properties).map(([name, sub]) => {
    const part = field(sub, `${path}/${name.replace(/~/g, "~0").replace(/\//g, "~1")}`, name, root, mandatory.has(name));
    box.append(part.node);
    return [name, part];
  });
  return {
    node: box,
    read() {
      const value = {};
      for (const [name, part] of parts) {
        const got = part.read();
        if (got !== undefined) value[name] = got;
      }
      return required || Object.keys(value).length ? value : undefined;
    },
  };
}

function scalarField(schema, kind, path) {
  let input;
  if (kind === "enum") {
    input = el("select");
    input.append(new Option("—", ""));
    schema.enum.forEach((choice, index) => input.append(new Option(String(choice), String(index))));
    if (schema.default !== undefined) input.value = String(schema.enum.indexOf(schema.default));
  } else if (kind === "boolean") {
    input = el("input");
    input.type = "checkbox";
    input.checked = schema.default === true;
  } else {
    input = el("input");
    input.type = kind === "string" ? "text" : "number";
    if (kind !== "string") input.step = kind === "integer" ? "1" : "any";
    if (schema.default != null) input.value = String(schema.default);
  }
  input.dataset.path = path;
  input.name = path;
  return {
    node: input,
    read() {
      if (kind === "boolean") return input.checked;
      if (input.value === "") return undefined; // the server says when it is required
      if (kind === "enum") return schema.enum[Number(input.value)];
      return kind === "string" ? input.value : Number(input.value);
    },
  };
}

function arrayField(item, path, initial, required) {
  const kind = kindOf(item);
  const box = el("div", "array-field");
  const list = el("div", "array-items");
  const items = [];
  const add = (value) => {
    const part = scalarField({ ...item, default: value }, kind, `${path}/${items.length}`);
    const row = el("div", "array-item");
    const remove = el("button", "small", "×");
    remove.type = "button";
    remove.title = "remove";
    remove.addEventListener("click", () => {
      items.splice(items.indexOf(part), 1);
      row.remove();
    });
    row.append(part.node, remove);
    list.append(row);
    items.push(part);
  };
  const more = el("button", "small", "+ add");
  more.type = "button";
  more.addEventListener("click", () => add(undefined));
  (Array.isArray(initial) ? initial : []).forEach(add);
  box.append(list, more);
  const read = () => {
    const values = items.map((part) => part.read()).filter((v) => v !== undefined);
    return required || values.length ? values : undefined;
  };
  return { node: box, read };
}

function jsonField(schema, path, label) {
  const area = el("textarea", "json");
  area.rows = 4;
  area.spellcheck = false;
  area.dataset.path = path;
  if (schema.default !== undefined) area.value = JSON.stringify(schema.default, null, 2);
  else if (path === "/parameters") area.value = "{}";
  const part = labelled(label, path, schema, {
    node: area,
    read() {
      if (!area.value.trim()) return undefined;
      try {
        return JSON.parse(area.value);
      } catch {
        const slot = part.node.querySelector(`[data-error-for]`);
        slot.textContent = "not valid JSON";
        throw new FormError("not valid JSON");
      }
    },
  });
  return part;
}

function labelled(label, path, schema, part, tag = "label") {
  const box = el(tag === "fieldset" ? "fieldset" : "div", "field");
  const title = el(tag === "fieldset" ? "legend" : "label", "field-name", label);
  box.append(title, part.node);
  if (schema.description) box.append(el("small", "hint", schema.description));
  const slot = errorSlot(path);
  box.append(slot);
  return { node: box, read: part.read };
}

function errorSlot(path) {
  const slot = el("span", "field-error");
  slot.dataset.errorFor = path;
  return slot;
}
