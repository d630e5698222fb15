/**
 * The chats view: a tab per chat (with an unread badge), the open chat's transcript in seq order,
 * typing, the composer with `#` canned suggestions, the handoff and ending bars, and the visitor
 * panel.
 *
 * A chat's entries are kept in a Map keyed by seq: the accept reply's history, visitor_panel's
 * history and the replayed events of a join all deliver the same lines, and each seq is kept
 * once. The transcript is drawn sorted by seq.
 */
import { clock, errorText, h, initials, randomId, replace, when } from "../shared/dom.js";
import { Composer } from "./composer.js";
import { HandoffDialog } from "./dialogs.js";

const END_REASONS = {
  agent_ended: "ended by an agent",
  visitor_left: "the visitor left",
  shutdown: "the server stopped",
  crashed: "lost to a server fault",
};
const SYSTEM_TEXT = {
  joined: (e) => `${e.agent_name || e.agent} joined the chat`,
  left: (e) => `${e.agent_name || e.agent} left the chat${e.detail ? ` (${e.detail})` : ""}`,
  transferred: (e) => `${e.agent_name || e.agent} took over the chat`,
  invited: (e) => `${e.agent_name || e.agent} was invited and joined`,
  ending: (e) => `${e.agent_name || e.agent || "An agent"} will end the chat in ${Math.round(e.delay || 0)} s`,
  ending_cancelled: () => "The delayed ending was cancelled",
  ended: (e) => `The chat ended (${END_REASONS[e.detail] || e.detail || "ended"})`,
  requeued: (e) => `The chat went back to the queue${e.detail ? ` (${e.detail})` : ""}`,
  barged: (e) => `${e.agent_name || e.agent} (supervisor) joined the chat`,
};
const OUTCOME_TEXT = {
  pending: "waiting for an answer",
  accepted: "accepted",
  declined: "declined",
  timeout: "timed out",
  cancelled: "cancelled",
};

export class ChatView {
  constructor(app) {
    this.app = app;
    this.tabs = h("div", { class: "chat-tabs", role: "tablist", "aria-label": "Chats" });
    this.header = h("div", { class: "chat-header" });
    this.bars = h("div", { class: "chat-bars" });
    this.transcript = h("ol", { class: "transcript", "aria-live": "polite" });
    this.typing = h("div", { class: "typing-line" });
    this.composer = new Composer(app, this);
    this.panel = h("aside", { class: "visitor-panel", "aria-label": "Visitor" });
    this.empty = h(
      "div",
      { class: "empty-state" },
      h("div", { class: "empty-art", "aria-hidden": "true" }),
      h("h2", {}, "No chats open"),
      h("p", { class: "muted" }, "Go online to receive chats. New chats, transfers and invites pop up at the bottom right."),
    );
    this.chatPane = h(
      "section",
      { class: "chat-pane" },
      this.header,
      this.bars,
      this.transcript,
      this.typing,
      this.composer.node,
    );
    this.body = h("div", { class: "chat-body" }, this.chatPane, this.panel);
    this.node = h("div", { class: "chats-view" }, this.tabs, this.body);
    this.dialog = new HandoffDialog(app);
    this.clockTimer = setInterval(() => this.renderBars(), 1000);
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden) this.markRead();
    });
  }

  get chats() {
    return this.app.state.chats;
  }

  get current() {
    return this.chats.get(this.app.state.current) || null;
  }

  chatFor(chatId) {
    let chat = this.chats.get(chatId);
    if (!chat) {
      chat = {
        id: chatId,
        info: { visitor: {}, agents: [], question: "", department: "" },
        panel: { previous_tickets: [], recent_chats: [] },
        entries: new Map(),
        unread: 0,
        typing: new Map(),
        ended: null,
        gone: null,
        handoff: null,
        ending: null,
        draft: "",
      };
      this.chats.set(chatId, chat);
      if (!this.app.state.current) this.app.state.current = chatId;
    }
    return chat;
  }

  /** A Chat record (accept reply, visitor_panel reply) arrived: merge it in. */
  upsert(record, { focus = false } = {}) {
    const chat = this.chatFor(record.chat_id);
    const { history, previous_tickets, recent_chats, kind: _kind, ...info } = record;
    chat.info = { ...chat.info, ...info };
    if (previous_tickets) chat.panel.previous_tickets = previous_tickets;
    if (recent_chats) chat.panel.recent_chats = recent_chats;
    chat.gone = null;
    for (const entry of history || []) this.store(chat, entry, false);
    if (focus) this.app.state.current = chat.id;
    this.render();
  }

  store(chat, entry, live) {
    if (chat.entries.has(entry.seq)) return false;
    chat.entries.set(entry.seq, entry);
    if (entry.kind === "ending") chat.ending = { at: entry.at + (entry.delay || 0) };
    if (entry.kind === "ending_cancelled") chat.ending = null;
    if (["joined", "transferred", "invited", "left", "requeued"].includes(entry.kind) && live) {
      this.app.loadChat(chat.id);
    }
    return true;
  }

  addEntry(chatId, entry) {
    const known = this.chats.has(chatId);
    const chat = this.chatFor(chatId);
    if (!known) this.app.loadChat(chatId);
    if (!this.store(chat, entry, true)) return;
    if (entry.kind === "message" && entry.author !== this.app.state.agent?.id) {
      chat.typing.delete(entry.author);
      if (!this.isVisible(chat)) chat.unread += 1;
    }
    if (this.isCurrent(chat)) this.renderChat();
    this.renderTabs();
  }

  setTyping({ chat_id, author, on }) {
    const chat = this.chats.get(chat_id);
    if (!chat) return;
    clearTimeout(chat.typing.get(author));
    if (on) {
      // a lost "off" must not leave the indicator on for ever
      chat.typing.set(author, setTimeout(() => this.setTyping({ chat_id, author, on: false }), 15000));
    } else {
      chat.typing.delete(author);
    }
    if (this.isCurrent(chat)) this.renderTyping();
    this.renderTabs();
  }

  ended({ chat_id, reason, ticket_id }) {
    const chat = this.chats.get(chat_id);
    if (!chat) return;
    chat.ended = { reason, ticket_id };
    chat.ending = null;
    chat.typing.clear();
    this.render();
  }

  handoffResult({ chat_id, kind, outcome, target }) {
    const chat = this.chats.get(chat_id);
    if (!chat) return;
    chat.handoff = { ...(chat.handoff || {}), kind, outcome, target };
    this.render();
  }

  removed({ chat_id, reason }) {
    const chat = this.chats.get(chat_id);
    if (!chat) return;
    const texts = {
      transferred: "You transferred this chat; it is no longer yours.",
      left: "You left this chat.",
      requeued: "The chat went back to the queue without you.",
    };
    chat.gone = texts[reason] || "You are no longer in this chat.";
    chat.typing.clear();
    this.render();
  }

  close(chatId) {
    this.chats.delete(chatId);
    if (this.app.state.current === chatId) this.app.state.current = this.chats.keys().next().value || null;
    this.render();
  }

  select(chatId) {
    const previous = this.current;
    if (previous) previous.draft = this.composer.value;
    this.app.state.current = chatId;
    this.render();
    this.composer.focus();
  }

  isCurrent(chat) {
    return this.app.state.current === chat.id && this.app.state.view === "chats";
  }

  isVisible(chat) {
    return this.isCurrent(chat) && !document.hidden;
  }

  markRead() {
    const chat = this.current;
    if (chat && this.isVisible(chat) && chat.unread) {
      chat.unread = 0;
      this.renderTabs();
    }
  }

  // -- drawing ------------------------------------------------------------------------------

  render() {
    this.markRead();
    this.renderTabs();
    const chat = this.current;
    this.body.hidden = !chat;
    if (!chat) {
      this.empty.querySelector("p").textContent =
        this.app.state.status === "online"
          ? "You are online. New chats, transfers and invites pop up at the bottom right."
          : "Go online to receive chats. New chats, transfers and invites pop up at the bottom right.";
      if (!this.empty.isConnected) this.node.append(this.empty);
      this.app.renderNavBadges();
      return;
    }
    this.empty.remove();
    this.renderChat();
    this.renderPanel();
  }

  renderTabs() {
    replace(
      this.tabs,
      [...this.chats.values()].map((chat) => {
        const visitor = chat.info.visitor || {};
        const selected = chat.id === this.app.state.current;
        const state = chat.ended || chat.gone ? "closed" : chat.typing.size ? "typing" : "live";
        return h(
          "button",
          {
            class: `chat-tab ${selected ? "selected" : ""} ${state}`,
            role: "tab",
            "aria-selected": selected ? "true" : "false",
            dataset: { chat: chat.id },
            onclick: () => this.select(chat.id),
          },
          h("span", { class: "avatar small", "aria-hidden": "true" }, initials(visitor.name)),
          h(
            "span",
            { class: "tab-text" },
            h("span", { class: "tab-name" }, visitor.name || "Visitor"),
            h("span", { class: "tab-sub" }, state === "typing" ? "typing…" : chat.ended ? "ended" : chat.info.question || chat.info.department),
          ),
          chat.unread ? h("span", { class: "badge", "aria-label": `${chat.unread} unread` }, chat.unread) : null,
        );
      }),
    );
    this.app.renderNavBadges();
  }

  renderChat() {
    const chat = this.current;
    if (!chat) return;
    const { info } = chat;
    const visitor = info.visitor || {};
    const mine = info.owner === this.app.state.agent?.id;
    const open = !chat.ended && !chat.gone;
    const actions = open
      ? h(
          "div",
          { class: "chat-actions" },
          mine ? h("button", { class: "ghost", onclick: () => this.dialog.open(chat, "transfer") }, "Transfer") : null,
          h("button", { class: "ghost", onclick: () => this.dialog.open(chat, "invite") }, "Invite"),
          mine ? this.endControl(chat) : h("button", { class: "ghost", onclick: () => this.leave(chat) }, "Leave chat"),
        )
      : h("div", { class: "chat-actions" }, h("button", { class: "ghost", onclick: () => this.close(chat.id) }, "Close tab"));
    replace(
      this.header,
      h(
        "div",
        { class: "chat-title" },
        h("h2", { class: "question" }, info.question || "(no question)"),
        h(
          "p",
          { class: "muted small" },
          h("span", { class: "visitor-name" }, visitor.name || "Visitor"),
          visitor.email ? ` · ${visitor.email}` : "",
          ` · ${this.app.departmentName(info.department)}`,
          info.started_at ? ` · started ${when(info.started_at)}` : "",
        ),
      ),
      actions,
    );
    this.renderBars();
    this.renderTranscript(chat);
    this.renderTyping();
    this.composer.show(chat, open);
  }

  endControl(chat) {
    const delay = h(
      "select",
      { class: "end-delay", "aria-label": "End after" },
      h("option", { value: "30" }, "in 30 s"),
      h("option", { value: "60" }, "in 1 min"),
      h("option", { value: "120" }, "in 2 min"),
      h("option", { value: "300" }, "in 5 min"),
    );
    return h(
      "div",
      { class: "end-control" },
      h("button", { class: "danger", onclick: () => this.end(chat, 0) }, "End now"),
      h("span", { class: "split" }, h("button", { class: "ghost", onclick: () => this.end(chat, Number(delay.value)) }, "End later"), delay),
    );
  }

  renderBars() {
    const chat = this.current;
    if (!chat || this.app.state.view !== "chats") return;
    const bars = [];
    if (chat.handoff) {
      const { kind, target, outcome } = chat.handoff;
      bars.push(
        h(
          "div",
          { class: `bar handoff ${outcome}`, dataset: { outcome } },
          h("span", {}, `${kind === "invite" ? "Invite of" : "Transfer to"} ${target}: `, h("strong", {}, OUTCOME_TEXT[outcome] || outcome)),
          outcome === "pending"
            ? h("button", { class: "link", onclick: () => this.cancelHandoff(chat) }, "Cancel")
            : h("button", { class: "link", onclick: () => ((chat.handoff = null), this.renderBars()) }, "Dismiss"),
        ),
      );
    }
    if (chat.ending && !chat.ended) {
      const left = Math.max(0, Math.round(chat.ending.at - Date.now() / 1000));
      const text = `${Math.floor(left / 60)}:${String(left % 60).padStart(2, "0")}`;
      bars.push(
        h(
          "div",
          { class: "bar ending" },
          h("span", {}, "This chat ends in ", h("strong", { class: "ending-left" }, text)),
          chat.info.owner === this.app.state.agent?.id
            ? h("button", { class: "link", onclick: () => this.cancelEnd(chat) }, "Cancel ending")
            : null,
        ),
      );
    }
    if (chat.ended) {
      bars.push(
        h(
          "div",
          { class: "bar ended" },
          h("span", {}, `Chat ended: ${END_REASONS[chat.ended.reason] || chat.ended.reason}.`),
          chat.ended.ticket_id
            ? h("button", { class: "link", onclick: () => this.app.records.openTicket(chat.ended.ticket_id) }, `Ticket #${chat.ended.ticket_id}`)
            : null,
        ),
      );
    }
    if (chat.gone) bars.push(h("div", { class: "bar gone" }, chat.gone));
    replace(this.bars, bars);
  }

  renderTranscript(chat) {
    const atBottom = this.transcript.scrollHeight - this.transcript.scrollTop - this.transcript.clientHeight < 40;
    const me = this.app.state.agent?.id;
    const entries = [...chat.entries.values()].sort((a, b) => a.seq - b.seq);
    const items = [
      h(
        "li",
        { class: "entry opening" },
        h("div", { class: "bubble" }, h("span", { class: "who" }, (chat.info.visitor || {}).name || "Visitor", " asked"), h("p", {}, chat.info.question || "")),
      ),
    ];
    for (const entry of entries) {
      if (entry.kind === "message") {
        const side = entry.author === "visitor" ? "theirs" : entry.author === me ? "mine" : "colleague";
        items.push(
          h(
            "li",
            { class: `entry message ${side}`, dataset: { seq: entry.seq } },
            h(
              "div",
              { class: "bubble" },
              h("span", { class: "who" }, entry.author_name || entry.author, h("time", {}, clock(entry.at))),
              h("p", {}, entry.text),
            ),
          ),
        );
      } else if (entry.kind === "whisper") {
        items.push(
          h(
            "li",
            { class: "entry whisper", dataset: { seq: entry.seq } },
            h(
              "div",
              { class: "bubble" },
              h("span", { class: "who" }, `Whisper from ${entry.author_name || entry.author}`, h("span", { class: "chip internal", title: "The visitor does not see this" }, "internal"), h("time", {}, clock(entry.at))),
              h("p", {}, entry.text),
            ),
          ),
        );
      } else {
        const describe = SYSTEM_TEXT[entry.kind] || ((e) => e.kind);
        items.push(h("li", { class: "entry system", dataset: { seq: entry.seq } }, h("span", {}, describe(entry)), h("time", {}, clock(entry.at))));
      }
    }
    replace(this.transcript, items);
    if (atBottom || this.lastRendered !== chat.id) this.transcript.scrollTop = this.transcript.scrollHeight;
    this.lastRendered = chat.id;
  }

  renderTyping() {
    const chat = this.current;
    if (!chat) return;
    const names = [...chat.typing.keys()].map((author) =>
      author === "visitor" ? (chat.info.visitor || {}).name || "The visitor" : author,
    );
    replace(
      this.typing,
      names.length ? [h("span", { class: "dots", "aria-hidden": "true" }, h("i"), h("i"), h("i")), `${names.join(", ")} ${names.length > 1 ? "are" : "is"} typing…`] : null,
    );
  }

  renderPanel() {
    const chat = this.current;
    if (!chat) return;
    const visitor = chat.info.visitor || {};
    const row = (label, value, cls) =>
      h("div", { class: "fact" }, h("dt", {}, label), h("dd", { class: cls || "" }, value || "—"));
    const recent = chat.panel.recent_chats.filter((item) => item.chat_id !== chat.id);
    replace(
      this.panel,
      h(
        "div",
        { class: "panel-head" },
        h("span", { class: "avatar large", "aria-hidden": "true" }, initials(visitor.name)),
        h("div", {}, h("div", { class: "panel-name" }, visitor.name || "Visitor"), h("div", { class: "muted small" }, visitor.email || "no email given")),
      ),
      h(
        "dl",
        { class: "facts" },
        row("Question", chat.info.question),
        row("Department", this.app.departmentName(chat.info.department)),
        row("Browser", visitor.browser),
        row("OS", visitor.os),
        row("Location", visitor.location),
        row("Agents", (chat.info.agents || []).join(", ")),
      ),
      h("h3", {}, "Recent chats"),
      recent.length
        ? h(
            "ul",
            { class: "history" },
            recent.map((item) =>
              h(
                "li",
                {},
                item.ticket_id
                  ? h("button", { class: "link", onclick: () => this.app.records.openTicket(item.ticket_id) }, item.question || "(no question)")
                  : h("span", {}, item.question || "(no question)"),
                h("span", { class: "muted small" }, `${item.state} · ${when(item.started_at)}`),
              ),
            ),
          )
        : h("p", { class: "muted small" }, "No other chats."),
      h("h3", {}, "Recent tickets"),
      chat.panel.previous_tickets.length
        ? h(
            "ul",
            { class: "history" },
            chat.panel.previous_tickets.map((ticket) =>
              h(
                "li",
                {},
                h("button", { class: "link", onclick: () => this.app.records.openTicket(ticket.id) }, `#${ticket.id} ${ticket.question || ""}`),
                h("span", { class: "muted small" }, `${ticket.kind} · ${when(ticket.ended_at)}`),
              ),
            ),
          )
        : h("p", { class: "muted small" }, "No earlier tickets."),
    );
  }

  // -- actions ------------------------------------------------------------------------------

  async send(chat, text) {
    const client_msg_id = randomId("a");
    try {
      const reply = await this.app.client.request("send", { chat_id: chat.id, text, client_msg_id });
      // the reply stands for the line on this connection (other tabs get a message event)
      const me = this.app.state.agent || {};
      this.addEntry(chat.id, {
        kind: "message",
        chat_id: chat.id,
        seq: reply.seq,
        at: reply.at,
        author: me.id,
        author_name: me.name || me.id,
        text,
        client_msg_id,
      });
      return true;
    } catch (error) {
      this.app.toast(`Message not sent: ${errorText(error)}`, "error");
      return false;
    }
  }

  async end(chat, delay) {
    try {
      const reply = await this.app.client.request("end_chat", { chat_id: chat.id, delay: delay || undefined });
      if (reply.ending_at) chat.ending = { at: reply.ending_at };
      if (reply.ticket_id) chat.ended = { reason: "agent_ended", ticket_id: reply.ticket_id };
      this.render();
    } catch (error) {
      this.app.toast(`Could not end the chat: ${errorText(error)}`, "error");
    }
  }

  async cancelEnd(chat) {
    try {
      await this.app.client.request("cancel_end", { chat_id: chat.id });
      chat.ending = null;
      this.renderBars();
    } catch (error) {
      this.app.toast(`Could not cancel: ${errorText(error)}`, "error");
    }
  }

  async cancelHandoff(chat) {
    const type = chat.handoff?.kind === "invite" ? "cancel_invite" : "cancel_transfer";
    try {
      await this.app.client.request(type, { chat_id: chat.id });
    } catch (error) {
      this.app.toast(`Could not cancel: ${errorText(error)}`, "error");
    }
  }

  async leave(chat) {
    try {
      await this.app.client.request("leave_chat", { chat_id: chat.id });
    } catch (error) {
      this.app.toast(`Could not leave: ${errorText(error)}`, "error");
    }
  }
}
