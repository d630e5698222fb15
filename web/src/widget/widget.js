/**
 * The visitor widget, embedded with one tag:
 *
 *   <script src="https://help.example.com/widget.js" data-department="support" async></script>
 *
 * Attributes: `data-server` (the daemon's WebSocket URL, used alone; default: the origin the
 * script came from, and the other nodes its `/nodes` lists, shared/nodes.js), `data-department` (the one department chats open in; without it the visitor chooses
 * among the departments whose chat is on, from the server's `departments` list),
 * `data-departments` ("sales:Sales, support:Support": the departments offered, overriding the
 * server's list), `data-title`, `data-skills` ("de, billing": what the agent must know; the chat
 * goes first to agents who have every one, SPEC `open_chat`).
 *
 * Theory of operation
 * -------------------
 * The widget lives in a shadow root, so the site's styles and the widget's do not mix. It is a
 * small state machine: `form` -> `waiting` (queue position and estimated wait) -> `chat` (an agent joined) ->
 * `ended` (rating: five stars and a comment) or `offline` (nobody could take the chat: the
 * question became a missed-chat ticket). While the form shows, the widget asks the server which
 * departments are open and whether anyone is online in them, and says "no one is online" above
 * the form when that is so, or that the department is closed and when it opens (business hours):
 * the visitor may still write, and the message becomes a missed chat. The client keeps the chat's resume token and last seq in sessionStorage, so a reload
 * resumes the chat and the server replays every line since. Messages are sent with a
 * client_msg_id and shown as "sending" until the send's reply comes back (it carries the line's
 * seq and time; the sending connection gets no `message` event for its own line); a message not
 * yet acknowledged when the connection drops is sent again after the resume (stored once).
 * Everything a person typed is put on screen as text, never as HTML.
 */
import { HelplineClient, skillList } from "../client/helpline-client.js";
import { opensText, parseDepartmentsAttribute, waitText, widgetDepartments } from "../shared/desk.js";
import { clock, h, randomId, replace } from "../shared/dom.js";
import { NodeList } from "../shared/nodes.js";
import { describeAgent, describeLocation } from "../shared/useragent.js";
import css from "./widget.css";

const OPEN_KEY = "helpline.widget.open";
const VISITOR_KEY = "helpline.visitor_id";
const RESUME_KEY = "helpline.widget.resume";
const QUESTION_KEY = "helpline.widget.question";
const LINES_KEY = "helpline.widget.lines";
const KEPT_LINES = 300;
const OFFLINE_REASONS = new Set(["no_agent_online", "chat_off", "queue_full", "queue_timeout", "offer_timeout", "all_declined", "closed_hours", "overflow"]);
const DEPARTMENTS_REFRESH = 10_000; // ms between department lists while the form is open

/** A department as the picker shows it. */
function departmentLabel(department) {
  if (department.open === false) return `${department.name} (closed)`;
  return department.online === false ? `${department.name} (offline)` : department.name;
}

const SCORE_WORDS = ["", "Poor", "Not great", "Okay", "Good", "Excellent"];
const STAR = "M12 2.8l2.8 5.9 6.4.8-4.7 4.4 1.2 6.4L12 17.2l-5.7 3.1 1.2-6.4-4.7-4.4 6.4-.8z";

/** A drawn star (no emoji font needed). */
function star() {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("class", "star-shape");
  svg.setAttribute("aria-hidden", "true");
  const path = document.createElementNS(ns, "path");
  path.setAttribute("d", STAR);
  svg.append(path);
  return svg;
}

function scriptTag() {
  return document.currentScript || document.querySelector('script[src*="widget.js"]');
}

function settings(script) {
  const data = script?.dataset || {};
  let origin = location.origin;
  try {
    origin = new URL(script.src, location.href).origin;
  } catch {
    // inline or missing src: the page's own origin
  }
  const server = data.server || origin.replace(/^http/, "ws") + "/";
  // data-department alone pins one department; data-departments lists those offered
  const attribute = data.departments ? parseDepartmentsAttribute(data.departments) : data.department ? [{ id: data.department, name: data.department }] : [];
  const department = data.department || attribute[0]?.id || "";
  return { server, pinned: !!data.server, department, attribute, title: data.title || "Chat with us", skills: skillList(data.skills) };
}

function visitorId() {
  try {
    let id = localStorage.getItem(VISITOR_KEY);
    if (!id) {
      id = randomId("v");
      localStorage.setItem(VISITOR_KEY, id);
    }
    return id;
  } catch {
    return "";
  }
}

class Widget {
  constructor(config) {
    this.config = config;
    this.state = "form";
    this.lines = new Map(); // seq -> message or system line
    this.outbox = new Map(); // client_msg_id -> text, until acknowledged by the send reply
    this.agentName = "";
    this.agentTyping = false;
    this.position = null;
    this.eta = null;
    this.endReason = "";
    this.opensAt = null;
    this.departments = widgetDepartments(config.attribute, null); // until the server's list comes
    this.nodes = new NodeList(config.server, { pinned: config.pinned });
    this.nodes.refresh();
    this.client = this.nodes.attach(new HelplineClient({ url: config.server, role: "visitor", storage: sessionStorage, storageKey: RESUME_KEY }));
    this.bindClient();

    const host = h("div", { id: "helpline-widget" });
    this.shadow = host.attachShadow({ mode: "open" });
    const style = document.createElement("style");
    style.textContent = css;
    this.launcher = h(
      "button",
      { class: "launcher", "aria-label": "Open chat", onclick: () => this.toggle() },
      h("span", { class: "launcher-icon", "aria-hidden": "true" }),
      h("span", { class: "launcher-badge", hidden: true }),
    );
    this.title = h("div", { class: "title" }, config.title);
    this.subtitle = h("div", { class: "subtitle" }, "We usually reply in a few minutes");
    this.body = h("div", { class: "body" });
    this.panel = h(
      "section",
      { class: "panel", role: "dialog", "aria-label": config.title, hidden: true },
      h(
        "header",
        {},
        h("span", { class: "agent-dot", "aria-hidden": "true" }),
        h("div", { class: "titles" }, this.title, this.subtitle),
        h("button", { class: "icon close", "aria-label": "Minimise chat", onclick: () => this.toggle(false) }, "–"),
      ),
      this.body,
    );
    this.shadow.append(style, this.panel, this.launcher);
    document.body.append(host);

    if (this.client.resume) {
      this.state = "waiting";
      this.question = sessionStorage.getItem(QUESTION_KEY) || "";
      this.restoreLines();
      this.connect();
      if (sessionStorage.getItem(OPEN_KEY) === "1") this.toggle(true);
    }
    this.render();
  }

  // -- connection ---------------------------------------------------------------------------

  connect() {
    if (this.connecting) return this.connecting;
    this.connecting = this.client.connect().catch(() => {});
    return this.connecting;
  }

  /**
   * Asks which departments are open and who is online, and shows the answer in the form: again
   * every DEPARTMENTS_REFRESH ms while the form is open, so that "no one is online" goes away
   * when an agent comes online while the visitor writes.
   */
  async loadDepartments() {
    clearTimeout(this.departmentsTimer);
    let listed;
    try {
      listed = (await this.client.request("departments")).departments;
    } catch {
      return; // an older server, or no connection: the attribute's departments, online unknown
    }
    const before = this.departments;
    this.departments = widgetDepartments(this.config.attribute, listed);
    if (this.state !== "form") return;
    this.departmentsTimer = setTimeout(() => !this.panel.hidden && this.loadDepartments(), DEPARTMENTS_REFRESH);
    if (this.body.dataset.view !== "form") return;
    const same = (a, b) => a.length === b.length && a.every((d, i) => d.id === b[i].id && d.name === b[i].name);
    if (!same(before, this.departments)) {
      this.redrawForm();
      return;
    }
    // the same departments: only who is online changed, so keep the form (and the caret) as it is
    for (const option of this.body.querySelectorAll("select[name=department] option")) {
      const department = this.departments.find((d) => d.id === option.value);
      if (department) option.textContent = departmentLabel(department);
    }
    this.renderFormNotice();
  }

  /** The department the form would open the chat in now. */
  chosenDepartment() {
    const select = this.body.querySelector("select[name=department]");
    return select?.value || this.config.department || this.departments[0]?.id || "support";
  }

  bindClient() {
    const c = this.client;
    c.on("open", (reply) => {
      this.online = true;
      if (this.state === "form" && !this.panel.hidden) this.loadDepartments();
      if (reply.resumed === false && (this.state === "waiting" || this.state === "chat")) {
        // the chat ended while we were away (or the server forgot it)
        this.state = this.lines.size ? "ended" : "form";
        this.endReason = "visitor_left";
      }
      for (const [client_msg_id, text] of this.outbox) this.transmit(text, client_msg_id);
      this.render();
    });
    c.on("close", () => {
      this.online = false;
      this.renderStatus();
    });
    c.on("chat_opened", () => {
      if (this.state === "form" || this.state === "waiting") this.state = this.agentName ? "chat" : "waiting";
      this.render();
    });
    c.on("queued", ({ position, eta }) => {
      this.position = position;
      this.eta = eta ?? null;
      this.render();
    });
    c.on("message", (line) => {
      if (line.client_msg_id) this.outbox.delete(line.client_msg_id);
      this.lines.set(line.seq, { ...line, kind: "message" });
      if (line.author !== "visitor") {
        this.agentTyping = false;
        if (this.panel.hidden) this.unread = (this.unread || 0) + 1;
      }
      this.render();
    });
    c.on("system", (line) => {
      this.lines.set(line.seq, line);
      if (["joined", "transferred"].includes(line.kind)) {
        this.agentName = line.agent_name || line.agent || "";
        this.state = "chat";
        this.position = null;
      } else if (line.kind === "requeued") {
        this.agentName = "";
        this.state = "waiting";
      }
      this.render();
    });
    c.on("typing", ({ author, on }) => {
      if (author === "visitor") return;
      this.agentTyping = on;
      this.renderTyping();
    });
    c.on("ended", ({ reason, opens_at }) => {
      this.endReason = reason;
      this.opensAt = opens_at ?? null;
      this.agentTyping = false;
      this.outbox.clear();
      this.state = OFFLINE_REASONS.has(reason) && !this.agentName ? "offline" : "ended";
      this.render();
    });
  }

  // -- actions ------------------------------------------------------------------------------

  toggle(open = this.panel.hidden) {
    this.panel.hidden = !open;
    this.launcher.classList.toggle("open", open);
    this.launcher.setAttribute("aria-label", open ? "Close chat" : "Open chat");
    sessionStorage.setItem(OPEN_KEY, open ? "1" : "0");
    if (open) {
      this.unread = 0;
      this.connect();
      if (this.online && this.state === "form") this.loadDepartments();
      this.render();
      this.focusInput();
    } else {
      this.renderBadge();
    }
  }

  async openChat(form) {
    const data = new FormData(form);
    const error = form.querySelector(".error");
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    error.textContent = "";
    const { browser, os } = describeAgent();
    await this.connect();
    try {
      this.lines.clear();
      this.agentName = "";
      this.position = null;
      this.eta = null;
      this.visitorName = String(data.get("name")).trim();
      this.question = String(data.get("question")).trim();
      sessionStorage.setItem(QUESTION_KEY, this.question);
      this.state = "waiting";
      this.render();
      await this.client.openChat({
        skills: this.config.skills,
        department: String(data.get("department") || this.chosenDepartment()),
        name: this.visitorName,
        email: String(data.get("email") || "").trim() || undefined,
        question: this.question,
        browser,
        os,
        location: describeLocation(),
        visitor_id: visitorId(),
      });
    } catch (failure) {
      this.state = "form";
      this.render();
      this.fillForm(Object.fromEntries(data)); // what the visitor typed, to send again
      const texts = {
        not_found: "This help desk is not set up for chat yet.",
        shutting_down: "The chat service is restarting. Please try again in a minute.",
        disconnected: "Could not reach the chat service. Please try again.",
      };
      const formError = this.body.querySelector(".error");
      if (formError) formError.textContent = texts[failure.code] || "Something went wrong. Please try again.";
    }
  }

  send(text) {
    const client_msg_id = randomId("v");
    this.outbox.set(client_msg_id, text);
    this.stopTyping();
    this.transmit(text, client_msg_id);
    this.renderTranscript();
  }

  transmit(text, client_msg_id) {
    this.client.request("send", { text, client_msg_id }).then(
      (reply) => {
        // the reply stands for the line: the sending connection gets no message event for it
        this.outbox.delete(client_msg_id);
        this.lines.set(reply.seq, {
          kind: "message",
          seq: reply.seq,
          at: reply.at,
          author: "visitor",
          author_name: this.visitorName || "",
          text,
          client_msg_id,
        });
        this.renderTranscript();
      },
      (error) => {
        if (error.code === "chat_ended" || error.code === "invalid_state") this.outbox.delete(client_msg_id);
        // otherwise it stays in the outbox and goes again after the reconnect
        this.renderTranscript();
      },
    );
  }

  typing() {
    const now = Date.now();
    if (!this.typingSince || now - this.typingSince > 2500) {
      this.typingSince = now;
      this.client.request("typing", { on: true }).catch(() => {});
    }
    clearTimeout(this.typingTimer);
    this.typingTimer = setTimeout(() => this.stopTyping(), 3000);
  }

  stopTyping() {
    clearTimeout(this.typingTimer);
    if (this.typingSince) this.client.request("typing", { on: false }).catch(() => {});
    this.typingSince = 0;
  }

  async leave() {
    try {
      await this.client.request("leave");
    } catch {
      // nothing open any more: the end is the same
    }
    this.client.forgetChat();
    this.endReason = "visitor_left";
    this.state = this.agentName ? "ended" : "offline-left";
    this.render();
  }

  async rate(score, comment, status) {
    status.textContent = "Sending…";
    // after `leave`, an active chat ends only when the visitor grace runs out: retry until then
    for (let attempt = 0; attempt < 20; attempt++) {
      try {
        // the score alone: the server reads 4-5 as good, 3 as neutral, 1-2 as bad
        await this.client.request("rate", { score, comment: comment || undefined });
        this.state = "rated";
        this.render();
        return;
      } catch (error) {
        if (error.code === "already_rated") {
          this.state = "rated";
          this.render();
          return;
        }
        if (error.code !== "invalid_state") break;
        status.textContent = "Your rating is saved as soon as the chat has closed…";
        await new Promise((resolve) => setTimeout(resolve, 3000));
      }
    }
    status.textContent = "Sorry, the rating could not be saved.";
  }

  restart() {
    this.opensAt = null;
    this.client.forgetChat();
    this.lines.clear();
    this.outbox.clear();
    this.agentName = "";
    this.state = "form";
    this.render();
    this.loadDepartments();
    this.focusInput();
  }

  /** The lines seen so far stay in sessionStorage: after a reload only newer ones are replayed. */
  saveLines() {
    try {
      if (this.state === "waiting" || this.state === "chat") {
        const kept = [...this.lines.values()].sort((a, b) => a.seq - b.seq).slice(-KEPT_LINES);
        sessionStorage.setItem(LINES_KEY, JSON.stringify({ agentName: this.agentName, lines: kept }));
      } else {
        sessionStorage.removeItem(LINES_KEY);
      }
    } catch {
      // storage full: a reload then shows only the lines replayed
    }
  }

  restoreLines() {
    try {
      const saved = JSON.parse(sessionStorage.getItem(LINES_KEY) || "null");
      if (!saved) return;
      for (const line of saved.lines || []) this.lines.set(line.seq, line);
      this.agentName = saved.agentName || "";
      if (this.agentName) this.state = "chat";
    } catch {
      // unreadable: the replay still brings what is newer than the last seq
    }
  }

  // -- drawing ------------------------------------------------------------------------------

  render() {
    this.saveLines();
    this.renderHeader();
    this.renderBadge();
    const views = {
      form: () => this.formView(),
      waiting: () => this.chatView(),
      chat: () => this.chatView(),
      ended: () => this.endedView(),
      offline: () => this.offlineView(),
      "offline-left": () => this.offlineView(true),
      rated: () => this.ratedView(),
    };
    if (this.state === "form" && this.body.dataset.view === "form") {
      // the form is already shown (the connection opened, or opened again, while the visitor
      // typed): keep what was typed and where the caret is
      this.renderFormNotice();
      return;
    }
    const chatLike = this.state === "waiting" || this.state === "chat";
    if (chatLike && this.body.dataset.view === "chat") {
      this.renderTranscript();
      this.renderStatus();
      this.renderTyping();
      return;
    }
    this.body.dataset.view = chatLike ? "chat" : this.state;
    replace(this.body, views[this.state]());
    if (chatLike) {
      this.renderTranscript();
      this.renderTyping();
    }
    this.focusInput();
  }

  renderHeader() {
    if (this.agentName && (this.state === "chat" || this.state === "ended")) {
      this.title.textContent = this.agentName;
      this.subtitle.textContent = this.state === "chat" ? "is helping you" : "Chat ended";
      this.panel.classList.add("with-agent");
    } else {
      this.title.textContent = this.config.title;
      this.subtitle.textContent = this.state === "waiting" ? "Connecting you with an agent…" : "We usually reply in a few minutes";
      this.panel.classList.remove("with-agent");
    }
  }

  renderBadge() {
    const badge = this.launcher.querySelector(".launcher-badge");
    badge.hidden = !this.unread || !this.panel.hidden;
    badge.textContent = String(this.unread || "");
  }

  formView() {
    const departments = this.departments;
    this.formNotice = h("p", { class: "notice", role: "status", hidden: true });
    const form = h(
      "form",
      {
        class: "prechat",
        onsubmit: (event) => {
          event.preventDefault();
          this.openChat(event.target);
        },
      },
      this.formNotice,
      h("p", { class: "intro" }, "Hi! Tell us who you are and what you need; an agent will be with you shortly."),
      h("label", {}, "Your name", h("input", { name: "name", required: true, maxlength: 100, autocomplete: "name" })),
      h("label", {}, "Email ", h("span", { class: "optional" }, "(so we can reply if we miss you)"), h("input", { name: "email", type: "email", maxlength: 254, autocomplete: "email" })),
      departments.length > 1
        ? h(
            "label",
            {},
            "Department",
            h(
              "select",
              { name: "department", onchange: () => this.renderFormNotice() },
              departments.map((d) => h("option", { value: d.id, selected: d.id === this.config.department }, departmentLabel(d))),
            ),
          )
        : null,
      h("label", {}, "How can we help?", h("textarea", { name: "question", required: true, rows: 3, maxlength: 2000 })),
      h("p", { class: "error", role: "alert" }),
      h("button", { class: "primary", type: "submit" }, "Start chat"),
    );
    queueMicrotask(() => this.renderFormNotice());
    return form;
  }

  /** "No one is online" above the form, when the server says so of the chosen department. */
  renderFormNotice() {
    if (!this.formNotice?.isConnected) return;
    const chosen = this.departments.find((d) => d.id === this.chosenDepartment());
    const closed = chosen?.open === false;
    const offline = closed || chosen?.online === false;
    const opens = closed ? opensText(chosen.opens_at) : null;
    const headline = closed ? (opens ? `We are closed right now. We open ${opens}.` : "We are closed right now.") : "No one is online right now.";
    replace(this.formNotice, offline ? [h("strong", {}, headline), " Leave your message and we will get back to you by email."] : null);
    this.formNotice.hidden = !offline;
    const button = this.body.querySelector("button[type=submit]");
    if (button) button.textContent = offline ? "Send message" : "Start chat";
  }

  /** The form again (the department list changed), keeping what the visitor typed. */
  redrawForm() {
    const form = this.body.querySelector("form");
    const typed = form ? Object.fromEntries(new FormData(form)) : {};
    const focused = this.shadow.activeElement?.name;
    replace(this.body, this.formView());
    this.fillForm(typed);
    if (focused) this.body.querySelector(`[name="${focused}"]`)?.focus({ preventScroll: true });
  }

  /** Put `typed` (field name to value) back into the form shown. */
  fillForm(typed) {
    for (const [name, value] of Object.entries(typed)) {
      const field = this.body.querySelector(`[name="${name}"]`);
      if (field) field.value = value;
    }
  }

  chatView() {
    this.transcript = h("ol", { class: "lines", "aria-live": "polite" });
    this.statusLine = h("div", { class: "status-line", role: "status" });
    this.typingLine = h("div", { class: "typing" });
    this.input = h("textarea", {
      rows: 1,
      placeholder: "Write a message…",
      "aria-label": "Message",
      maxlength: 8000,
      oninput: () => this.typing(),
      onkeydown: (event) => {
        if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
          event.preventDefault();
          this.submitInput();
        }
      },
    });
    return [
      this.statusLine,
      this.transcript,
      this.typingLine,
      h(
        "div",
        { class: "composer" },
        this.input,
        h("button", { class: "send", "aria-label": "Send", onclick: () => this.submitInput() }, h("span", { class: "send-icon", "aria-hidden": "true" })),
      ),
      h("div", { class: "footer" }, h("button", { class: "link", onclick: () => this.leave() }, "End chat")),
    ];
  }

  submitInput() {
    const text = this.input.value.trim();
    if (!text) return;
    this.input.value = "";
    this.send(text);
  }

  renderStatus() {
    if (!this.statusLine) return;
    let text = "";
    if (this.online === false && (this.state === "waiting" || this.state === "chat")) text = "Reconnecting…";
    else if (this.state === "waiting") {
      text = waitText(this.position, this.eta);
    }
    this.statusLine.textContent = text;
    this.statusLine.hidden = !text;
  }

  renderTranscript() {
    if (!this.transcript?.isConnected) return;
    const items = [];
    if (this.question) items.push(h("li", { class: "line mine" }, h("p", {}, this.question)));
    for (const line of [...this.lines.values()].sort((a, b) => a.seq - b.seq)) {
      if (line.kind === "message") {
        const mine = line.author === "visitor";
        items.push(
          h(
            "li",
            { class: `line ${mine ? "mine" : "theirs"}`, dataset: { seq: line.seq } },
            mine ? null : h("span", { class: "who" }, line.author_name || "Agent"),
            h("p", {}, line.text),
            h("time", {}, clock(line.at)),
          ),
        );
      } else {
        const text = {
          joined: `${line.agent_name || "An agent"} joined the chat`,
          transferred: `${line.agent_name || "Another agent"} is now helping you`,
          invited: `${line.agent_name || "Another agent"} joined the chat`,
          barged: `${line.agent_name || "A supervisor"} joined the chat`,
          left: `${line.agent_name || "An agent"} left the chat`,
          requeued: "Finding another agent for you…",
          reassigning: "Asking another agent to help you as well…",
          ending: `This chat will close in ${Math.round(line.delay || 0)} seconds`,
          ending_cancelled: "The chat stays open",
          ended: "The chat has ended",
        }[line.kind];
        if (text) items.push(h("li", { class: "line system" }, text));
      }
    }
    for (const text of this.outbox.values()) items.push(h("li", { class: "line mine pending" }, h("p", {}, text), h("time", {}, "sending…")));
    replace(this.transcript, items);
    this.transcript.scrollTop = this.transcript.scrollHeight;
  }

  renderTyping() {
    if (!this.typingLine) return;
    replace(this.typingLine, this.agentTyping ? [h("span", { class: "dots" }, h("i"), h("i"), h("i")), `${this.agentName || "The agent"} is typing…`] : null);
  }

  endedView() {
    const status = h("p", { class: "rate-status", role: "status" });
    const comment = h("textarea", { rows: 2, maxlength: 2000, placeholder: "Anything you'd like to add? (optional)", "aria-label": "Comment" });
    const word = h("span", { class: "score-word", "aria-hidden": "true" }, " ");
    let score = 0;
    const submit = h("button", { class: "primary", type: "button", disabled: true, onclick: () => this.rate(score, comment.value.trim(), status) }, "Send rating");
    const stars = [1, 2, 3, 4, 5].map((value) =>
      h(
        "button",
        {
          class: "star",
          type: "button",
          role: "radio",
          "aria-checked": "false",
          "aria-label": `${value} of 5: ${SCORE_WORDS[value]}`,
          dataset: { score: value },
          onclick: () => choose(value),
          onmouseenter: () => paint(value),
          onmouseleave: () => paint(score),
        },
        star(),
      ),
    );
    const paint = (upTo) => {
      stars.forEach((node, index) => node.classList.toggle("lit", index < upTo));
      word.textContent = SCORE_WORDS[upTo] || " ";
    };
    const choose = (value) => {
      score = value;
      stars.forEach((node, index) => node.setAttribute("aria-checked", String(index + 1 === value)));
      paint(value);
      submit.disabled = false;
    };
    return h(
      "div",
      { class: "ended" },
      this.lines.size ? h("ol", { class: "lines compact" }, this.summaryLines()) : null,
      h("h2", {}, "Thanks for chatting with us"),
      h("p", { class: "muted" }, "How was your chat?"),
      h("div", { class: "stars", role: "radiogroup", "aria-label": "Rating from 1 to 5 stars" }, stars),
      word,
      comment,
      submit,
      status,
      h("button", { class: "link", onclick: () => this.restart() }, "Start a new chat"),
    );
  }

  summaryLines() {
    return [...this.lines.values()]
      .filter((line) => line.kind === "message")
      .sort((a, b) => a.seq - b.seq)
      .slice(-3)
      .map((line) => h("li", { class: `line ${line.author === "visitor" ? "mine" : "theirs"}` }, h("p", {}, line.text)));
  }

  offlineView(left = false) {
    const messages = {
      no_agent_online: "No one is online right now.",
      chat_off: "Chat is closed at the moment.",
      queue_full: "All our agents are busy right now.",
      queue_timeout: "Sorry, no agent could take your chat in time.",
      offer_timeout: "Sorry, no agent could take your chat in time.",
      all_declined: "Sorry, no agent could take your chat right now.",
      overflow: "All our agents are busy right now.",
      closed_hours: "We are closed right now.",
    };
    const opens = this.endReason === "closed_hours" ? opensText(this.opensAt) : null;
    return h(
      "div",
      { class: "offline" },
      h("div", { class: "offline-icon", "aria-hidden": "true" }, "✉"),
      h("h2", {}, left ? "You left the chat" : messages[this.endReason] || "No one is available right now."),
      opens ? h("p", { class: "opens" }, `We open ${opens}.`) : null,
      h("p", {}, "We have your message and will get back to you by email as soon as we can."),
      this.question ? h("blockquote", {}, this.question) : null,
      h("button", { class: "primary", onclick: () => this.restart() }, "Start a new chat"),
    );
  }

  ratedView() {
    return h(
      "div",
      { class: "offline" },
      h("div", { class: "offline-icon", "aria-hidden": "true" }, "♥"),
      h("h2", {}, "Thank you for your feedback!"),
      h("button", { class: "link", onclick: () => this.restart() }, "Start a new chat"),
    );
  }

  focusInput() {
    if (this.panel.hidden) return;
    const target = this.body.querySelector("textarea, input");
    if (target && this.shadow.activeElement !== target) target.focus({ preventScroll: true });
  }
}

const script = scriptTag();
function start() {
  if (window.__helplineWidget) return;
  window.__helplineWidget = new Widget(settings(script));
}
if (document.body) start();
else document.addEventListener("DOMContentLoaded", start);
