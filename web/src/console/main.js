/**
 * The agent console: sign-in, presence, offers, and the chats an agent holds.
 *
 * Theory of operation
 * -------------------
 * The console keeps one HelplineClient signed in with the agent's token (kept in sessionStorage,
 * never in a URL). Everything on screen is derived from `app.state`, which only the server's
 * replies and events change:
 *
 *   offer / offer_withdrawn      -> state.offers       -> the offer popups (and the ringtone)
 *   chat_assigned / accept reply -> state.chats        -> one tab per chat, loaded with visitor_panel
 *   message / system             -> chat.entries       -> the transcript, in seq order, no duplicates
 *   typing, ended, handoff_result, chat_removed, status -> their chat or the header
 *
 * After a reconnect the hello reply lists the agent's chats again and each is reloaded with
 * visitor_panel, so nothing depends on events that happened while the socket was down.
 *
 * A supervisor's token (or an admin's) signs in the supervisor's view instead (supervisor.js):
 * the token is tried as the role it last signed in as (an agent at first), then as the other.
 */
import { HelplineClient } from "../client/helpline-client.js";
import { errorText, h, initials, nodesFromPage, replace } from "../shared/dom.js";
import { ChatView } from "./chat.js";
import { OfferPopups } from "./offers.js";
import { RecordsView } from "./records.js";
import { Ringtone } from "./ringtone.js";
import { SupervisorView } from "./supervisor.js";

const TOKEN_KEY = "helpline.console.token";
const ROLE_KEY = "helpline.console.role";

class Console {
  constructor(root) {
    this.root = root;
    this.nodes = nodesFromPage(); // several nodes: every node's URL, this page's server first
    this.server = this.nodes.own;
    this.ringtone = new Ringtone();
    this.client = null;
    this.state = this.freshState();
  }

  freshState() {
    return {
      agent: null,
      status: "offline",
      ringtone: true,
      connection: "connecting",
      chats: new Map(),
      current: null,
      offers: new Map(),
      departments: [], // {id, name, chat_enabled, online}, from the departments request
      view: "chats",
    };
  }

  start() {
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (token) this.signIn(token);
    else this.showSignIn();
  }

  // -- sign in ------------------------------------------------------------------------------

  showSignIn(message = "") {
    const token = h("input", {
      type: "password",
      id: "token",
      name: "token",
      autocomplete: "current-password",
      placeholder: "hlt_…",
      required: true,
    });
    const error = h("p", { class: "form-error", role: "alert" }, message);
    const form = h(
      "form",
      {
        class: "card signin",
        onsubmit: (event) => {
          event.preventDefault();
          this.ringtone.unlock();
          this.signIn(token.value.trim(), error);
        },
      },
      h("h1", {}, "helpline"),
      h("p", { class: "muted" }, "Agent console. Sign in with the token your administrator gave you; a supervisor's token opens the live desk."),
      h("label", { for: "token" }, "Sign-in token"),
      token,
      error,
      h("button", { class: "primary", type: "submit" }, "Sign in"),
      h("p", { class: "muted small" }, "Server: ", h("code", {}, this.server)),
    );
    replace(this.root, h("main", { class: "signin-page" }, form));
    token.focus();
  }

  async signIn(token, errorNode, role = sessionStorage.getItem(ROLE_KEY) || "agent", retry = true) {
    this.client?.close();
    const client = this.nodes.attach(new HelplineClient({ url: this.server, role, token }));
    this.client = client;
    client.on("open", (reply) => (role === "supervisor" ? this.onSupervisorHello(reply) : this.onHello(reply)));
    client.on("fatal", () => {
      if (this.client !== client) return; // a sign-in tried as the other role
      sessionStorage.removeItem(TOKEN_KEY);
      this.ringtone.stop();
      this.showSignIn("Signed out by the server (the token was refused or the agent removed).");
    });
    client.on("close", () => this.setConnection("reconnecting"));
    client.on("reconnecting", () => this.setConnection("reconnecting"));
    client.on("shutdown", () => this.toast("The server is restarting; reconnecting shortly."));
    if (role === "agent") this.bindEvents(client);
    try {
      await client.connect();
      sessionStorage.setItem(TOKEN_KEY, token);
      sessionStorage.setItem(ROLE_KEY, role);
    } catch (error) {
      if (error.code === "unauthorized" && retry) {
        client.close();
        return this.signIn(token, errorNode, role === "agent" ? "supervisor" : "agent", false);
      }
      if (error.code === "unauthorized" || error.code === "missing_field") {
        client.close();
        sessionStorage.removeItem(TOKEN_KEY);
        if (errorNode) errorNode.textContent = errorText(error);
        else this.showSignIn(errorText(error));
      } else if (!this.state.agent && role === "agent") {
        // the server is not reachable yet: the client keeps retrying
        sessionStorage.setItem(TOKEN_KEY, token);
        this.renderShell();
        this.setConnection("reconnecting");
      }
    }
  }

  signOut() {
    sessionStorage.removeItem(TOKEN_KEY);
    sessionStorage.removeItem(ROLE_KEY);
    this.supervisor?.close();
    this.supervisor = null;
    this.client?.close();
    this.client = null;
    this.ringtone.stop();
    this.offers?.clear();
    this.state = this.freshState();
    this.showSignIn();
  }

  onHello(reply) {
    const first = !this.state.agent;
    this.state.agent = reply.agent;
    this.state.status = reply.agent.status;
    this.state.ringtone = reply.agent.ringtone;
    if (first) this.renderShell();
    this.setConnection("online");
    this.renderPresence();
    this.loadDepartments();
    for (const chatId of reply.chats || []) this.loadChat(chatId);
    // chats we showed but the server no longer lists ended or left while we were away
    for (const chat of this.state.chats.values()) {
      if (!chat.ended && !(reply.chats || []).includes(chat.id)) chat.gone = "closed while you were away";
    }
    this.chatView.render();
  }

  /** A supervisor (or an admin) signed in: the live desk instead of the agent's chats. */
  onSupervisorHello(reply) {
    if (!this.supervisor) {
      this.connectionBadge = h("span", { class: "connection" });
      this.toasts = h("div", { class: "toasts", "aria-live": "polite" });
      this.supervisor = new SupervisorView(this, this.client, reply);
      replace(this.root, this.supervisor.header, h("div", { class: "workspace" }, this.supervisor.node), this.toasts);
      this.supervisor.start();
    }
    this.setConnection("online");
  }

  /** The departments' names (for canned suggestions and the transfer dialog). */
  async loadDepartments() {
    try {
      this.state.departments = (await this.client.request("departments")).departments || [];
    } catch {
      // an older server: ids stand in for names
    }
  }

  departmentNames() {
    return new Map(this.state.departments.map((d) => [d.id, d.name]));
  }

  /** A department's name, or its id while the names are not known. */
  departmentName(id) {
    return this.state.departments.find((d) => d.id === id)?.name || id || "";
  }

  // -- events -------------------------------------------------------------------------------

  bindEvents(client) {
    client.on("offer", (offer) => {
      this.state.offers.set(offer.offer_id, { ...offer, receivedAt: Date.now() });
      this.offers.render();
    });
    client.on("offer_withdrawn", ({ offer_id }) => {
      this.state.offers.delete(offer_id);
      this.offers.render();
    });
    client.on("chat_assigned", ({ chat_id }) => this.loadChat(chat_id));
    client.on("message", (event) => this.chatView.addEntry(event.chat_id, { ...event, kind: "message" }));
    client.on("system", (event) => this.chatView.addEntry(event.chat_id, event));
    client.on("whisper", (event) => this.chatView.addEntry(event.chat_id, { ...event, kind: "whisper", internal: true }));
    client.on("typing", (event) => this.chatView.setTyping(event));
    client.on("ended", (event) => this.chatView.ended(event));
    client.on("handoff_result", (event) => this.chatView.handoffResult(event));
    client.on("chat_removed", (event) => this.chatView.removed(event));
    client.on("status", ({ status, ringtone }) => {
      this.state.status = status;
      this.state.ringtone = ringtone;
      this.renderPresence();
      this.offers.render();
    });
  }

  /** Loads (or reloads) a chat the agent is in, with visitor_panel. */
  async loadChat(chatId) {
    try {
      const panel = await this.client.request("visitor_panel", { chat_id: chatId });
      this.chatView.upsert(panel);
    } catch (error) {
      if (error.code !== "not_in_chat") this.toast(`Could not load a chat: ${errorText(error)}`);
    }
  }

  // -- shell --------------------------------------------------------------------------------

  renderShell() {
    const agent = this.state.agent || { name: "", id: "" };
    this.connectionBadge = h("span", { class: "connection" });
    this.statusSwitch = h("input", {
      type: "checkbox",
      id: "status-switch",
      role: "switch",
      onchange: (event) => this.setStatus(event.target.checked ? "online" : "offline"),
    });
    this.ringSwitch = h("input", {
      type: "checkbox",
      id: "ringtone-switch",
      role: "switch",
      onchange: (event) => this.setRingtone(event.target.checked),
    });
    this.nav = h(
      "nav",
      { class: "views", "aria-label": "Views" },
      [
        ["chats", "Chats"],
        ["missed", "Missed chats"],
        ["tickets", "Tickets"],
      ].map(([view, label]) =>
        h("button", { class: "view-tab", dataset: { view }, onclick: () => this.show(view) }, label),
      ),
    );
    this.toasts = h("div", { class: "toasts", "aria-live": "polite" });
    const header = h(
      "header",
      { class: "topbar" },
      h("div", { class: "brand" }, h("span", { class: "logo", "aria-hidden": "true" }), "helpline"),
      this.nav,
      h(
        "div",
        { class: "presence" },
        this.connectionBadge,
        h("label", { class: "switch", for: "status-switch" }, this.statusSwitch, h("span", { class: "track" }), h("span", { class: "switch-label" }, "Online")),
        h("label", { class: "switch", for: "ringtone-switch" }, this.ringSwitch, h("span", { class: "track" }), h("span", { class: "switch-label" }, "Ringtone")),
        h(
          "div",
          { class: "me" },
          h("span", { class: "avatar", "aria-hidden": "true" }, initials(agent.name)),
          h("span", { class: "me-name" }, agent.name),
          h("button", { class: "link", onclick: () => this.signOut() }, "Sign out"),
        ),
      ),
    );
    this.chatView = new ChatView(this);
    this.records = new RecordsView(this);
    this.offers = new OfferPopups(this);
    this.main = h("div", { class: "workspace" });
    replace(this.root, header, this.main, this.offers.node, this.toasts);
    this.show(this.state.view);
  }

  show(view) {
    this.state.view = view;
    for (const button of this.nav.children) {
      button.classList.toggle("active", button.dataset.view === view);
      button.setAttribute("aria-current", button.dataset.view === view ? "page" : "false");
    }
    if (view === "chats") {
      replace(this.main, this.chatView.node);
      this.chatView.render();
    } else {
      replace(this.main, this.records.node);
      this.records.open(view);
    }
    this.renderNavBadges();
  }

  renderNavBadges() {
    const unread = [...this.state.chats.values()].reduce((sum, chat) => sum + chat.unread, 0);
    const chats = this.nav?.querySelector('[data-view="chats"]');
    if (!chats) return;
    replace(chats, "Chats", unread && this.state.view !== "chats" ? h("span", { class: "badge" }, unread) : null);
  }

  renderPresence() {
    if (!this.statusSwitch) return;
    this.statusSwitch.checked = this.state.status === "online";
    this.ringSwitch.checked = this.state.ringtone;
    this.statusSwitch.closest(".switch").classList.toggle("on", this.state.status === "online");
    if (this.state.view === "chats" && !this.chatView.current) this.chatView.render();
  }

  setConnection(connection) {
    this.state.connection = connection;
    if (!this.connectionBadge) return;
    const text = connection === "online" ? "" : "Reconnecting…";
    this.connectionBadge.textContent = text;
    this.connectionBadge.hidden = !text;
  }

  async setStatus(status) {
    try {
      const reply = await this.client.request("set_status", { status });
      this.state.status = reply.status;
      this.state.ringtone = reply.ringtone;
    } catch (error) {
      this.toast(
        error.code === "chat_off"
          ? "Chat is switched off in all your departments."
          : `Status not saved: ${errorText(error)}`,
      );
    }
    this.renderPresence();
  }

  async setRingtone(on) {
    this.ringtone.unlock();
    try {
      const reply = await this.client.request("set_ringtone", { on });
      this.state.ringtone = reply.ringtone;
    } catch (error) {
      this.toast(`Ringtone not saved: ${errorText(error)}`);
    }
    this.renderPresence();
    this.offers.render();
  }

  toast(text, kind = "info") {
    const node = h("div", { class: `toast ${kind}`, role: "status" }, text);
    this.toasts?.append(node);
    setTimeout(() => node.remove(), 6000);
  }
}

new Console(document.getElementById("app")).start();
