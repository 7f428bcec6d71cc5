// Form fields: a label, an input and an error slot each; built from values or from a JSON
// Schema; the server's validation errors put next to the field their path names.

import { ApiError } from "./api.js";
import { el } from "./dom.js";

// A field: its label, its input, its error slot; `read()` gives the JSON value (undefined: leave
// the spec's value out).
export function field(path, label, input, { hint, read } = {}) {
  input.id = `f-${path}`;
  input.name = path;
  const error = el("div", { class: "field-error", id: `e-${path}`, role: "alert" });
  const node = el(
    "div",
    { class: "field" },
    el("label", { for: input.id, text: label }),
    input,
    hint ? el("small", { text: hint }) : null,
    error,
  );
  return { path, node, input, error, read: read || (() => input.value) };
}

export function numberField(path, label, value, { optional = false, integer = false, hint } = {}) {
  const input = el("input", { type: "number", step: integer ? "1" : "any", value: value ?? "" });
  const read = () => {
    if (input.value === "") return optional ? null : undefined;
    return Number(input.value);
  };
  return field(path, label, input, { hint, read });
}

// `options`: strings, or {value, label}.
export function selectField(path, label, options, value) {
  const option = (o) => el("option", { value: o.value ?? o, text: o.label ?? o });
  const input = el("select", {}, options.map(option));
  input.value = value;
  return field(path, label, input);
}

export function checkField(path, label, value) {
  const input = el("input", { type: "checkbox", checked: !!value });
  return field(path, label, input, { read: () => input.checked });
}

export function textField(path, label, value, { read, hint } = {}) {
  const input = el("input", { type: "text", value: value ?? "" });
  return field(path, label, input, { read: read ? () => read(input.value) : undefined, hint });
}

// "a, b" -> [convert("a"), convert("b")]
export const listOf = (convert) => (text) =>
  text
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean)
    .map(convert);

// Fields for a plugin's options, from its JSON Schema.
export function schemaFields(prefix, schema, values) {
  return Object.entries(schema.properties || {}).map(([name, prop]) => {
    const path = `${prefix}.${name}`;
    const value = values?.[name] ?? prop.default;
    const types = prop.anyOf ? prop.anyOf.map((t) => t.type) : [prop.type];
    const label = `${prop.title || name}`;
    if (prop.enum) return selectField(path, label, prop.enum, value);
    if (types.includes("boolean")) return checkField(path, label, value);
    if (types.includes("integer") || types.includes("number")) {
      return numberField(path, label, value, {
        integer: types.includes("integer") && !types.includes("number"),
        optional: types.includes("null"),
        hint: prop.description,
      });
    }
    if (types.includes("array")) {
      const convert = prop.items?.type === "string" ? String : Number;
      const text = (value || []).join(", ");
      return textField(path, `${label} (comma separated)`, text, { read: listOf(convert) });
    }
    return textField(path, label, value);
  });
}

// An error as one line: a validation error's messages, or the error's own message.
export function describe(error) {
  if (error instanceof ApiError && Array.isArray(error.detail)) {
    return error.detail.map((d) => d.msg).join("; ");
  }
  return error.message;
}

// Put each validation error next to the field its `loc` names (the deepest matching path);
// what matches no field goes to `formError`.
export function showFieldErrors(error, fields, formError) {
  if (!(error instanceof ApiError) || !Array.isArray(error.detail)) {
    formError.textContent = describe(error);
    return;
  }
  const byPath = new Map(fields.map((x) => [x.path, x]));
  // "body" and the run kind's tag are where pydantic puts them, not parts of a field's path.
  const isFieldPart = (p) => typeof p === "string" && !["body", "job", "external"].includes(p);
  for (const item of error.detail) {
    const loc = item.loc.filter(isFieldPart);
    let target = null;
    for (let n = loc.length; n > 0 && !target; n--) target = byPath.get(loc.slice(0, n).join("."));
    const message = `${item.msg}`;
    if (target) target.error.textContent = message;
    else formError.textContent = `${loc.join(".")}: ${message}`;
  }
}
