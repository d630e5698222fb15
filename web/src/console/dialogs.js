/**
 * The transfer and invite dialog. It lists the agents who could take the chat now
 * (available_agents) and, for a transfer, the departments; the agent picks a target, writes a
 * note, and the request's outcome then shows in the chat's handoff bar (pending until the
 * handoff_result event).
 */
import { errorText, h, replace } from "../shared/dom.js";

export class HandoffDialog {
  constructor(app) {
    this.app = app;
    this.node = h("dialog", { class: "modal handoff-dialog" });
    document.body.append(this.node);
  }

  async open(chat, kind) {
    let agents = [];
    try {
      agents = (await this.app.client.request("available_agents")).agents || [];
    } catch (error) {
      this.app.toast(`Could not list agents: ${errorText(error)}`, "error");
    }
    const me = this.app.state.agent;
    const inChat = new Set(chat.info.agents || []);
    const candidates = agents.filter((agent) => agent.id !== me.id && !inChat.has(agent.id));
    // every department whose chat is on (the departments request), by name; an older server
    // without it: the departments the agent and the available agents belong to, by id
    const listed = this.app.state.departments.filter((d) => d.chat_enabled);
    const departments = listed.length
      ? listed.map((d) => ({ id: d.id, label: d.online ? d.name : `${d.name} (no one online)` }))
      : [...new Set([...(me.departments || []), ...agents.flatMap((a) => a.departments || [])])].sort().map((id) => ({ id, label: id }));
    const names = this.app.departmentNames();

    const error = h("p", { class: "form-error", role: "alert" });
    const note = h("textarea", { name: "note", rows: 3, maxlength: 1000, placeholder: "A note for your colleague (optional)" });
    const agentSelect = h(
      "select",
      { name: "agent", "aria-label": "Agent" },
      kind === "transfer" ? h("option", { value: "" }, "Any agent of the department") : null,
      candidates.map((agent) =>
        h(
          "option",
          { value: agent.id },
          `${agent.name} · ${(agent.departments || []).map((id) => names.get(id) || id).join(", ")} · ${agent.load}/${agent.capacity} chats`,
        ),
      ),
    );
    const departmentSelect =
      kind === "transfer"
        ? h(
            "select",
            { name: "department", "aria-label": "Department" },
            h("option", { value: "" }, "Agent in any department"),
            departments.map(({ id, label }) => h("option", { value: id }, label)),
          )
        : null;
    const submit = h("button", { class: "primary", type: "submit" }, kind === "transfer" ? "Transfer" : "Invite");
    const form = h(
      "form",
      {
        method: "dialog",
        onsubmit: async (event) => {
          event.preventDefault();
          const to_agent = agentSelect.value || undefined;
          const to_department = departmentSelect?.value || undefined;
          if (!to_agent && !to_department) {
            error.textContent = kind === "transfer" ? "Choose an agent or a department." : "Choose an agent.";
            return;
          }
          submit.disabled = true;
          try {
            const reply = await this.app.client.request(kind, {
              chat_id: chat.id,
              to_agent,
              to_department,
              note: note.value.trim() || undefined,
            });
            chat.handoff = { kind, target: to_agent || to_department, outcome: "pending", offer_id: reply.offer_id };
            this.node.close();
            this.app.chatView.render();
          } catch (failure) {
            const texts = {
              agent_unavailable: "That agent or department cannot take a chat right now.",
              handoff_pending: "A transfer or invite is already waiting for an answer.",
              chat_off: "Chat is switched off in that department.",
              invalid_field: "That agent is not in that department.",
            };
            error.textContent = texts[failure.code] || errorText(failure);
            submit.disabled = false;
          }
        },
      },
      h("h2", {}, kind === "transfer" ? "Transfer this chat" : "Invite an agent"),
      h(
        "p",
        { class: "muted small" },
        kind === "transfer"
          ? "You keep the chat until your colleague accepts."
          : "Your colleague joins the chat; you stay in it.",
      ),
      departmentSelect ? [h("label", {}, "Department"), departmentSelect] : null,
      h("label", {}, "Agent"),
      candidates.length || kind === "transfer" ? agentSelect : h("p", { class: "muted" }, "No other agent is available now."),
      h("label", {}, "Note"),
      note,
      error,
      h(
        "div",
        { class: "actions" },
        h("button", { class: "ghost", type: "button", onclick: () => this.node.close() }, "Cancel"),
        submit,
      ),
    );
    replace(this.node, form);
    this.node.showModal();
  }
}

/** A modal showing any content, closed by its button or Esc. */
export function showModal(title, ...content) {
  const dialog = h("dialog", { class: "modal wide" });
  dialog.append(
    h("header", { class: "modal-head" }, h("h2", {}, title), h("button", { class: "link", onclick: () => dialog.close() }, "Close")),
    ...content.flat(),
  );
  dialog.addEventListener("close", () => dialog.remove());
  document.body.append(dialog);
  dialog.showModal();
  return dialog;
}
