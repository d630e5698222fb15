/**
 * The supervisor's dialogs: a chat's routing trace (SPEC `routing_trace`) drawn as a timeline,
 * each offer with the candidates the department had and why each was chosen or skipped; and the
 * reassign dialog, which starts the owner's transfer of a chat to an agent or a department.
 */
import { clock, errorText, h, replace } from "../shared/dom.js";
import { showModal } from "./dialogs.js";

const REASON_TEXT = {
  broadcast: "offered (broadcast)",
  least_loaded: "chosen: least loaded",
  ranked_lower: "ranked lower",
  offline: "offline",
  disconnected: "disconnected",
  in_chat: "already in the chat",
  tried: "declined or let it lapse",
  full: "full",
  reserved: "slots held by pending offers",
  missing_skill: "missing a skill",
};

/** Opens the routing trace of `chatId` in a modal. */
export async function showTrace(view, chatId) {
  let trace;
  try {
    trace = await view.client.routingTrace(chatId);
  } catch (error) {
    view.app.toast(`No routing trace: ${errorText(error)}`, "error");
    return;
  }
  const steps = trace.steps || [];
  showModal(
    "Routing trace",
    h("p", { class: "muted small" }, `Chat ${chatId}${trace.live ? " (live)" : " (ended)"}: every routing decision, oldest first.`, trace.dropped ? ` ${trace.dropped} older steps were dropped.` : ""),
    h(
      "ol",
      { class: "trace" },
      steps.map((step) =>
        h(
          "li",
          { class: `trace-step kind-${step.kind}` },
          h("div", { class: "trace-line" }, h("time", {}, clock(step.at)), h("span", { class: "pill" }, step.kind), h("span", { class: "chip" }, view.departmentName(step.department)), h("span", { class: "trace-detail" }, step.detail)),
          step.candidates?.length
            ? h(
                "table",
                { class: "candidates" },
                h("thead", {}, h("tr", {}, ["Agent", "Verdict", "Why", "Load", "Idle"].map((label) => h("th", {}, label)))),
                h(
                  "tbody",
                  {},
                  step.candidates.map((c) =>
                    h(
                      "tr",
                      { class: `verdict-${c.verdict}` },
                      h("td", {}, c.agent),
                      h("td", {}, h("span", { class: `pill ${c.verdict === "chosen" ? "ok" : c.verdict === "eligible" ? "" : "warn"}` }, c.verdict)),
                      h("td", {}, REASON_TEXT[c.reason] || c.reason, c.detail ? h("span", { class: "muted small" }, ` · ${c.detail}`) : null),
                      h("td", {}, `${c.load}/${c.capacity}`),
                      h("td", {}, c.idle === null || c.idle === undefined ? "" : `${Math.round(c.idle)} s`),
                    ),
                  ),
                ),
              )
            : null,
        ),
      ),
    ),
  );
}

export class ReassignDialog {
  constructor(view) {
    this.view = view;
    this.node = h("dialog", { class: "modal handoff-dialog" });
    document.body.append(this.node);
  }

  async open(row) {
    const view = this.view;
    let agents = [];
    try {
      agents = (await view.client.availableAgents()).agents || [];
    } catch (error) {
      view.app.toast(`Could not list agents: ${errorText(error)}`, "error");
    }
    const inChat = new Set(row.agents || []);
    const error = h("p", { class: "form-error", role: "alert" });
    const agentSelect = h(
      "select",
      { name: "agent", "aria-label": "Agent" },
      h("option", { value: "" }, "Any agent of the department"),
      agents.filter((a) => !inChat.has(a.id)).map((a) => h("option", { value: a.id }, `${a.name} · ${(a.departments || []).map((d) => view.departmentName(d)).join(", ")} · ${a.load}/${a.capacity} chats`)),
    );
    const departmentSelect = h(
      "select",
      { name: "department", "aria-label": "Department" },
      h("option", { value: "" }, "Agent in any department"),
      view.departments.filter((d) => d.chat_enabled).map((d) => h("option", { value: d.id }, d.online ? d.name : `${d.name} (no one online)`)),
    );
    const note = h("textarea", { name: "note", rows: 3, maxlength: 1000, placeholder: "A note for the agent who takes it (optional)" });
    const submit = h("button", { class: "primary", type: "submit" }, "Reassign");
    const form = h(
      "form",
      {
        method: "dialog",
        onsubmit: async (event) => {
          event.preventDefault();
          const toAgent = agentSelect.value || undefined;
          const toDepartment = departmentSelect.value || undefined;
          if (!toAgent && !toDepartment) {
            error.textContent = "Choose an agent or a department.";
            return;
          }
          submit.disabled = true;
          try {
            await view.client.reassign(row.chat_id, { toAgent, toDepartment, note: note.value.trim() || undefined });
            this.node.close();
            view.app.toast("Offered: the owner keeps the chat until it is accepted.");
          } catch (failure) {
            const texts = {
              agent_unavailable: "That agent or department cannot take a chat right now.",
              handoff_pending: "A transfer or invite of this chat is already waiting for an answer.",
              chat_off: "Chat is switched off in that department.",
              invalid_field: "That agent is not in that department.",
            };
            error.textContent = texts[failure.code] || errorText(failure);
            submit.disabled = false;
          }
        },
      },
      h("h2", {}, "Reassign this chat"),
      h("p", { class: "muted small" }, `On behalf of its owner, ${(row.agent_names || [])[0] || row.owner}: the chosen agent gets a transfer offer, and the owner keeps the chat until it is accepted.`),
      h("label", {}, "Department"),
      departmentSelect,
      h("label", {}, "Agent"),
      agentSelect,
      h("label", {}, "Note"),
      note,
      error,
      h("div", { class: "actions" }, h("button", { class: "ghost", type: "button", onclick: () => this.node.close() }, "Cancel"), submit),
    );
    replace(this.node, form);
    this.node.showModal();
  }
}
