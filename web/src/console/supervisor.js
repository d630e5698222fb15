/**
 * The console for a supervisor (signed in with a supervisor's token, or an admin's): the live desk
 * of its departments and one chat listened in to.
 *
 * Theory of operation
 * -------------------
 * The HelplineClient (role "supervisor") keeps the desk: `supervise()` answers the live chats and
 * queues, and every `desk_changed` the server pushes updates them and emits `desk`, which redraws
 * the queue cards and the list of live chats. Nothing is polled; a timer only redraws the waits.
 *
 * Picking a chat monitors it (and stops monitoring the one before): the server replays the chat's
 * lines and then sends every new one, which the client keeps (`client.lines(chatId)`), so the
 * transcript is drawn from there, in seq order. Whispers are drawn as internal notes. The
 * supervisor whispers to the agents from the composer; after barging in it may also write to the
 * visitor. Reassigning starts the owner's transfer handshake (trace.js has the dialog), and the
 * routing trace shows why the chat went where it went. After a reconnect the client asks for the
 * desk and monitors again by itself.
 */
import { clock, errorText, h, initials, replace } from "../shared/dom.js";
import { ReassignDialog, showTrace } from "./trace.js";

const STATE_TEXT = { requested: "new", queued: "queued", offered: "offered", active: "active", ending: "ending" };
const WAITING = new Set(["requested", "queued", "offered"]);
const SYSTEM_TEXT = {
  joined: (e) => `${e.agent_name || e.agent} joined the chat`,
  barged: (e) => `${e.agent_name || e.agent} (supervisor) joined the chat`,
  left: (e) => `${e.agent_name || e.agent} left the chat`,
  transferred: (e) => `${e.agent_name || e.agent} took over the chat`,
  invited: (e) => `${e.agent_name || e.agent} was invited and joined`,
  ending: (e) => `${e.agent_name || e.agent || "An agent"} will end the chat in ${Math.round(e.delay || 0)} s`,
  ending_cancelled: () => "The delayed ending was cancelled",
  ended: (e) => `The chat ended (${e.detail || "ended"})`,
  requeued: () => "The chat went back to the queue",
  reassigning: () => "The chat is being offered to another agent",
};

/** "42 s", "3 min", "1 h 05 min" for a number of seconds. */
export function duration(seconds) {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min`;
  return `${Math.floor(s / 3600)} h ${String(Math.floor((s % 3600) / 60)).padStart(2, "0")} min`;
}

export class SupervisorView {
  /** @param app the Console (its toast, signOut, departments) @param client a signed-in client */
  constructor(app, client, hello) {
    this.app = app;
    this.client = client;
    this.me = hello.supervisor || { id: "", name: "", departments: null };
    this.departments = [];
    this.current = null; // the monitored chat's id
    this.barged = new Set();
    this.ended = new Map(); // chat id -> reason, for a monitored chat that ended
    this.typing = new Map();
    this.reassign = new ReassignDialog(this);
    this.build();
    client.on("desk", () => this.renderDesk());
    for (const name of ["message", "system", "whisper"]) {
      client.on(name, (event) => event.chat_id === this.current && this.renderTranscript());
    }
    client.on("typing", ({ chat_id, author, on }) => {
      if (on) this.typing.set(`${chat_id}/${author}`, Date.now());
      else this.typing.delete(`${chat_id}/${author}`);
      if (chat_id === this.current) this.renderTyping();
    });
    client.on("ended", ({ chat_id, reason }) => {
      this.ended.set(chat_id, reason);
      if (chat_id === this.current) this.renderChat();
    });
    client.on("open", () => this.app.setConnection("online"));
    this.timer = setInterval(() => this.renderDesk(), 1000);
  }

  async start() {
    try {
      this.departments = (await this.client.request("departments")).departments || [];
    } catch {
      // ids stand in for names
    }
    try {
      await this.client.supervise();
    } catch (error) {
      this.app.toast(`Could not load the desk: ${errorText(error)}`, "error");
    }
  }

  departmentName(id) {
    return this.departments.find((d) => d.id === id)?.name || id || "";
  }

  // -- the shell ------------------------------------------------------------------------------

  build() {
    const scope = this.me.departments ? this.me.departments.map((id) => this.departmentName(id)).join(", ") : "every department";
    this.scope = h("span", { class: "muted small" }, scope);
    this.header = h(
      "header",
      { class: "topbar" },
      h("div", { class: "brand" }, h("span", { class: "logo", "aria-hidden": "true" }), "helpline"),
      h("nav", { class: "views", "aria-label": "Views" }, h("button", { class: "view-tab active", "aria-current": "page" }, "Live desk")),
      h(
        "div",
        { class: "presence" },
        this.app.connectionBadge,
        h("span", { class: "pill supervisor-pill" }, "Supervisor"),
        h(
          "div",
          { class: "me" },
          h("span", { class: "avatar", "aria-hidden": "true" }, initials(this.me.name)),
          h("span", { class: "me-text" }, h("span", { class: "me-name" }, this.me.name), this.scope),
          h("button", { class: "link", onclick: () => this.app.signOut() }, "Sign out"),
        ),
      ),
    );
    this.queues = h("div", { class: "queue-cards", "aria-label": "Queues" });
    this.count = h("span", { class: "chip" }, "0");
    this.list = h("ul", { class: "desk-list", "aria-label": "Live chats" });
    this.deskPane = h(
      "aside",
      { class: "desk-pane" },
      this.queues,
      h("div", { class: "desk-head" }, h("h2", {}, "Live chats"), this.count),
      this.list,
    );
    this.chatHeader = h("div", { class: "chat-header" });
    this.bar = h("div", { class: "chat-bars" });
    this.transcript = h("ol", { class: "transcript", "aria-live": "polite" });
    this.typingLine = h("div", { class: "typing-line" });
    this.input = h("textarea", { class: "composer-input", rows: 2, maxlength: 16000, "aria-label": "Whisper", placeholder: "Whisper to the agents (the visitor never sees it)…" });
    this.input.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey) {
        event.preventDefault();
        this.write("whisper");
      }
    });
    this.sendButton = h("button", { class: "ghost", type: "button", onclick: () => this.write("send") }, "Send to chat");
    this.composer = h(
      "div",
      { class: "composer supervisor-composer" },
      h("div", { class: "composer-row" }, this.input, this.sendButton, h("button", { class: "whisper-button", type: "button", onclick: () => this.write("whisper") }, "Whisper")),
      h("p", { class: "hint" }, "Enter whispers to the agents: it is kept in the ticket as internal, never shown to the visitor."),
    );
    this.empty = h(
      "div",
      { class: "empty-state" },
      h("div", { class: "empty-art", "aria-hidden": "true" }),
      h("h2", {}, "Listen in to a chat"),
      h("p", { class: "muted" }, "Pick a live chat on the left to see its transcript as it happens. Nobody in the chat is told; whispers reach its agents only."),
    );
    this.chatPane = h("section", { class: "chat-pane monitor-pane" }, this.chatHeader, this.bar, this.transcript, this.typingLine, this.composer);
    this.node = h("div", { class: "supervisor-view" }, this.deskPane, h("div", { class: "monitor-wrap" }, this.chatPane, this.empty));
    this.renderChat();
  }

  // -- the desk -------------------------------------------------------------------------------

  rows() {
    const rows = [...(this.client.desk?.chats.values() || [])];
    return rows.sort((a, b) => WAITING.has(b.state) - WAITING.has(a.state) || a.started_at - b.started_at);
  }

  renderDesk() {
    const desk = this.client.desk;
    if (!desk) return;
    const now = Date.now() / 1000;
    const rows = this.rows();
    const live = new Map();
    for (const row of rows) live.set(row.department, (live.get(row.department) || 0) + 1);
    replace(
      this.queues,
      [...desk.queues.entries()].map(([department, chats]) => {
        const oldest = chats.length ? desk.chats.get(chats[0]) : null;
        return h(
          "div",
          { class: `queue-card ${chats.length ? "waiting" : ""}`, dataset: { department } },
          h("span", { class: "queue-name" }, this.departmentName(department)),
          h("span", { class: "queue-figure" }, chats.length, h("small", {}, " waiting")),
          h("span", { class: "muted small" }, oldest ? `oldest ${duration(now - oldest.started_at)}` : `${live.get(department) || 0} live`),
        );
      }),
    );
    this.count.textContent = String(rows.length);
    if (!rows.length) {
      replace(this.list, h("li", { class: "desk-empty muted" }, "No live chats right now. New chats appear here as they open."));
      return;
    }
    replace(
      this.list,
      rows.map((row) => {
        const waiting = WAITING.has(row.state);
        const names = row.agent_names?.length ? row.agent_names : row.agents;
        return h(
          "li",
          {},
          h(
            "button",
            {
              class: `desk-row ${row.chat_id === this.current ? "selected" : ""} ${waiting ? "waiting" : ""}`,
              dataset: { chat: row.chat_id, state: row.state },
              onclick: () => this.monitor(row.chat_id),
            },
            h("span", { class: "avatar small", "aria-hidden": "true" }, initials(row.visitor_name)),
            h(
              "span",
              { class: "desk-text" },
              h("span", { class: "desk-name" }, row.visitor_name || "Visitor", row.chat_id === this.current ? h("span", { class: "chip listening" }, "listening") : null),
              h("span", { class: "desk-question" }, row.question),
              h(
                "span",
                { class: "desk-meta" },
                h("span", { class: `pill state-${row.state}` }, STATE_TEXT[row.state] || row.state),
                h("span", { class: "chip" }, this.departmentName(row.department)),
                names.length ? h("span", { class: "desk-agents" }, names.join(", ")) : null,
              ),
            ),
            h(
              "span",
              { class: "desk-times" },
              h("span", { class: "strong" }, waiting ? `waiting ${duration(now - row.started_at)}` : `waited ${duration(row.wait)}`),
              h("span", { class: "muted small" }, row.last_message_at ? `last line ${duration(now - row.last_message_at)} ago` : "no lines yet"),
            ),
          ),
        );
      }),
    );
  }

  // -- one chat -------------------------------------------------------------------------------

  async monitor(chatId) {
    if (chatId === this.current) return;
    const before = this.current;
    this.current = chatId;
    this.ended.delete(chatId);
    this.renderDesk();
    this.renderChat();
    if (before && !this.barged.has(before)) this.client.unmonitor(before).catch(() => {});
    if (this.barged.has(chatId)) return;
    try {
      await this.client.monitor(chatId);
    } catch (error) {
      this.app.toast(`Could not listen in: ${errorText(error)}`, "error");
      if (this.current === chatId) this.current = null;
    }
    this.renderChat();
  }

  stop() {
    const chatId = this.current;
    this.current = null;
    if (chatId && !this.barged.has(chatId)) this.client.unmonitor(chatId).catch(() => {});
    this.renderDesk();
    this.renderChat();
  }

  async barge() {
    const chatId = this.current;
    try {
      await this.client.barge(chatId);
      this.barged.add(chatId);
      this.app.toast("You joined the chat: the visitor and the agents see you.");
    } catch (error) {
      this.app.toast(error.code === "invalid_state" ? "Nobody took this chat yet: there is no one to join." : `Could not join: ${errorText(error)}`, "error");
    }
    this.renderChat();
  }

  async leave() {
    const chatId = this.current;
    try {
      await this.client.leaveChat(chatId);
    } catch (error) {
      this.app.toast(`Could not leave: ${errorText(error)}`, "error");
    }
    this.barged.delete(chatId);
    this.current = null;
    await this.monitor(chatId);
  }

  async write(kind) {
    const chatId = this.current;
    const text = this.input.value.trim();
    if (!chatId || !text) return;
    try {
      const reply = kind === "whisper" ? await this.client.whisper(chatId, text) : await this.client.send(chatId, text);
      const line = { event: kind === "whisper" ? "whisper" : "message", chat_id: chatId, seq: reply.seq, at: reply.at, author: this.me.id, author_name: this.me.name, text };
      this.client.note(chatId, line);
      this.input.value = "";
      this.renderTranscript();
    } catch (error) {
      this.app.toast(`Not sent: ${errorText(error)}`, "error");
    }
  }

  renderChat() {
    const chatId = this.current;
    this.chatPane.hidden = !chatId;
    this.empty.hidden = Boolean(chatId);
    if (!chatId) return;
    const row = this.client.desk?.chats.get(chatId) || { chat_id: chatId, state: "ended", agents: [], agent_names: [] };
    const ended = this.ended.get(chatId);
    const inside = this.barged.has(chatId);
    const live = !ended && row.state !== "ended";
    const names = row.agent_names?.length ? row.agent_names : row.agents || [];
    replace(
      this.chatHeader,
      h(
        "div",
        { class: "chat-title" },
        h("h2", { class: "question" }, row.question || "Chat"),
        h(
          "p",
          { class: "muted" },
          h("span", { class: "visitor-name" }, row.visitor_name || "Visitor"),
          ` · ${this.departmentName(row.department)} · `,
          h("span", { class: `pill state-${ended ? "ended" : row.state}` }, ended ? "ended" : STATE_TEXT[row.state] || row.state),
          names.length ? ` · with ${names.join(", ")}` : "",
        ),
      ),
      h(
        "div",
        { class: "chat-actions" },
        live && !inside ? h("button", { class: "ghost", onclick: () => this.barge() }, "Barge in") : null,
        live && inside ? h("button", { class: "ghost", onclick: () => this.leave() }, "Leave chat") : null,
        live && row.owner ? h("button", { class: "ghost", onclick: () => this.reassign.open(row) }, "Reassign…") : null,
        h("button", { class: "ghost", onclick: () => showTrace(this, chatId) }, "Routing trace"),
        h("button", { class: "link", onclick: () => this.stop() }, inside ? "Close" : "Stop listening"),
      ),
    );
    replace(
      this.bar,
      ended
        ? h("div", { class: "bar ended" }, `The chat ended (${ended}).`)
        : inside
          ? h("div", { class: "bar barged" }, "You are in this chat: the visitor and the agents see what you send. Whispers still reach the agents only.")
          : h("div", { class: "bar monitoring" }, h("span", { class: "dot", "aria-hidden": "true" }), "Listening in: nobody in the chat is told. Whispers reach the agents only."),
    );
    this.sendButton.hidden = !inside;
    this.input.disabled = !live;
    this.renderTranscript();
    this.renderTyping();
  }

  renderTranscript() {
    const chatId = this.current;
    if (!chatId) return;
    const atBottom = this.transcript.scrollHeight - this.transcript.scrollTop - this.transcript.clientHeight < 40;
    const items = this.client.lines(chatId).map((line) => {
      if (line.event === "whisper") {
        return h(
          "li",
          { class: "entry whisper", dataset: { seq: line.seq } },
          h("div", { class: "bubble" }, h("span", { class: "who" }, `Whisper from ${line.author_name || line.author}`, h("span", { class: "chip internal" }, "internal"), h("time", {}, clock(line.at))), h("p", {}, line.text)),
        );
      }
      if (line.event === "message") {
        const side = line.author === "visitor" ? "theirs" : line.author === this.me.id ? "mine" : "colleague";
        return h(
          "li",
          { class: `entry message ${side}`, dataset: { seq: line.seq } },
          h("div", { class: "bubble" }, h("span", { class: "who" }, line.author_name || line.author, h("time", {}, clock(line.at))), h("p", {}, line.text)),
        );
      }
      const kind = line.kind || line.event_kind || line.event;
      const describe = SYSTEM_TEXT[kind] || ((e) => e.kind || "");
      return h("li", { class: "entry system", dataset: { seq: line.seq } }, h("span", {}, describe(line)), h("time", {}, clock(line.at)));
    });
    replace(this.transcript, items);
    if (atBottom || this.drawn !== chatId) this.transcript.scrollTop = this.transcript.scrollHeight;
    this.drawn = chatId;
  }

  renderTyping() {
    const prefix = `${this.current}/`;
    const now = Date.now();
    const who = [...this.typing.entries()].filter(([key, at]) => key.startsWith(prefix) && now - at < 15000).map(([key]) => key.slice(prefix.length));
    replace(this.typingLine, who.length ? [h("span", { class: "dots" }, h("i"), h("i"), h("i")), `${who.map((a) => (a === "visitor" ? "The visitor" : a)).join(", ")} typing…`] : null);
  }

  close() {
    clearInterval(this.timer);
  }
}
