// Model aliases on the Models page: where each name points, and a form that points a name
// ("production") at one of the leaderboard's checkpoints.

import { api, fileUrl } from "../api.js";
import { el, emptyRow, listTable } from "../dom.js";

const COLUMNS = ["Alias", "Run", "Checkpoint", "Updated", "File"];

function aliasRow(alias) {
  const href = fileUrl(`/aliases/${encodeURIComponent(alias.name)}/download`);
  return el(
    "tr",
    { "data-alias": alias.name },
    el("td", {}, el("strong", { text: alias.name })),
    el("td", {}, el("a", { href: `#/run/${alias.run_id}`, text: `run ${alias.run_id}` })),
    el("td", { text: alias.checkpoint_id }),
    el("td", { text: new Date(alias.updated_at).toLocaleString() }),
    el("td", {}, el("a", { href, download: "", text: "Download" })),
  );
}

// The aliases card; `setChoices(entries)` refreshes the checkpoints the form offers.
export function aliasesCard(signal) {
  const body = el("tbody");
  const name = el("input", {
    id: "alias-name",
    "aria-label": "Alias name",
    placeholder: "production",
    pattern: "[A-Za-z0-9][A-Za-z0-9_.\\-]{0,63}",
    required: true,
  });
  const target = el("select", { id: "alias-target", "aria-label": "Checkpoint" });
  const message = el("span", { class: "alias-message", "aria-live": "polite" });
  const submit = el("button", { type: "submit", text: "Point alias" });

  async function load() {
    const aliases = await api.aliases({ signal });
    if (!aliases.length) {
      const text = "No aliases yet: point one at a checkpoint to deploy by name.";
      body.replaceChildren(emptyRow(COLUMNS, text));
    } else body.replaceChildren(...aliases.map(aliasRow));
  }

  const form = el(
    "form",
    {
      class: "toolbar alias-form",
      onsubmit: async (event) => {
        event.preventDefault();
        if (!target.value) return; // no checkpoints yet: nothing to point at
        const [runId, checkpointId] = target.value.split("/");
        try {
          await api.setAlias(name.value, { run_id: Number(runId), checkpoint_id: checkpointId });
          message.replaceChildren(el("span", { class: "hint", text: `${name.value} moved` }));
          await load();
        } catch (error) {
          message.replaceChildren(
            el("span", { class: "error", role: "alert", text: error.message }),
          );
        }
      },
    },
    name,
    el("span", { text: "→" }),
    target,
    submit,
    message,
  );
  const node = el(
    "section",
    { class: "card", id: "aliases" },
    el("h2", { text: "Aliases" }),
    form,
    listTable(COLUMNS, body),
  );
  // With an empty leaderboard there is nothing to point at: the form says so and is off.
  const setChoices = (entries) => {
    const none = entries.length === 0;
    target.replaceChildren(
      ...(none
        ? [el("option", { value: "", text: "no checkpoints yet" })]
        : entries.map((e) =>
            el("option", { value: `${e.run_id}/${e.id}`, text: `${e.run_name} · ${e.id}` }),
          )),
    );
    target.disabled = none;
    submit.disabled = none;
  };
  return { node, load, setChoices };
}
