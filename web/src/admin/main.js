/**
 * The admin page: departments, agents and their tokens, canned categories and messages, the
 * rating report and the webhooks (webhooks.js). Signs in with an admin token kept in sessionStorage; every change is one admin
 * request of SPEC section 6.4/6.5, and the section it touches is reloaded from the server after it.
 */
import { HelplineClient } from "../client/helpline-client.js";
import { errorText, h, nodesFromPage, replace } from "../shared/dom.js";
import { renderWebhooks } from "./webhooks.js";

const TOKEN_KEY = "helpline.admin.token";

class Admin {
  constructor(root) {
    this.root = root;
    this.nodes = nodesFromPage(); // several nodes: every node's URL, this page's server first
    this.server = this.nodes.own;
    this.client = null;
    this.departments = [];
    this.agents = [];
  }

  start() {
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (token) this.signIn(token);
    else this.showSignIn();
  }

  showSignIn(message = "") {
    const token = h("input", { type: "password", id: "token", autocomplete: "current-password", required: true, placeholder: "hlt_…" });
    const error = h("p", { class: "form-error", role: "alert" }, message);
    replace(
      this.root,
      h(
        "main",
        { class: "signin-page" },
        h(
          "form",
          { class: "card signin", onsubmit: (event) => (event.preventDefault(), this.signIn(token.value.trim(), error)) },
          h("h1", {}, "helpline admin"),
          h("p", { class: "muted" }, "Sign in with an admin token (the daemon prints one on its first start; `helpline token --admin` issues another)."),
          h("label", { for: "token" }, "Admin token"),
          token,
          error,
          h("button", { class: "primary", type: "submit" }, "Sign in"),
          h("p", { class: "muted small" }, "Server: ", h("code", {}, this.server)),
        ),
      ),
    );
    token.focus();
  }

  async signIn(token, errorNode) {
    this.client?.close();
    const client = this.nodes.attach(new HelplineClient({ url: this.server, role: "admin", token }));
    this.client = client;
    client.on("fatal", () => {
      sessionStorage.removeItem(TOKEN_KEY);
      this.showSignIn("The server closed the session; sign in again.");
    });
    client.on("open", () => this.connection && (this.connection.hidden = true));
    client.on("close", () => this.connection && (this.connection.hidden = false));
    try {
      await client.connect();
      sessionStorage.setItem(TOKEN_KEY, token);
      this.renderShell();
    } catch (error) {
      client.close();
      sessionStorage.removeItem(TOKEN_KEY);
      if (errorNode) errorNode.textContent = errorText(error);
      else this.showSignIn(errorText(error));
    }
  }

  signOut() {
    sessionStorage.removeItem(TOKEN_KEY);
    this.client?.close();
    this.showSignIn();
  }

  request(type, fields) {
    return this.client.request(type, fields).catch((error) => {
      this.toast(`${type}: ${errorText(error)}`, "error");
      throw error;
    });
  }

  toast(text, kind = "info") {
    const node = h("div", { class: `toast ${kind}`, role: "status" }, text);
    this.toasts.append(node);
    setTimeout(() => node.remove(), 6000);
  }

  renderShell() {
    this.connection = h("span", { class: "connection", hidden: true }, "Reconnecting…");
    this.toasts = h("div", { class: "toasts", "aria-live": "polite" });
    this.sections = {
      departments: h("section", { class: "card section", id: "departments" }),
      agents: h("section", { class: "card section", id: "agents" }),
      canned: h("section", { class: "card section", id: "canned" }),
      ratings: h("section", { class: "card section", id: "ratings" }),
      webhooks: h("section", { class: "card section", id: "webhooks" }),
    };
    replace(
      this.root,
      h(
        "header",
        { class: "topbar" },
        h("div", { class: "brand" }, h("span", { class: "logo", "aria-hidden": "true" }), "helpline admin"),
        h(
          "nav",
          { class: "views" },
          [["departments", "Departments"], ["agents", "Agents"], ["canned", "Canned messages"], ["ratings", "Ratings"], ["webhooks", "Webhooks"]].map(([id, label]) =>
            h("button", { class: "view-tab", onclick: () => this.sections[id].scrollIntoView({ behavior: "smooth" }) }, label),
          ),
        ),
        h("div", { class: "presence" }, this.connection, h("button", { class: "link", onclick: () => this.signOut() }, "Sign out")),
      ),
      h("main", { class: "admin-main" }, Object.values(this.sections)),
      this.toasts,
    );
    this.loadAll();
  }

  async loadAll() {
    await this.loadDepartments();
    await Promise.all([this.loadAgents(), this.loadCanned(), this.loadRatings(), renderWebhooks(this, this.sections.webhooks)]);
  }

  // -- departments --------------------------------------------------------------------------

  async loadDepartments() {
    this.departments = (await this.request("department_list")).departments || [];
    const add = h(
      "form",
      {
        class: "inline-form",
        onsubmit: async (event) => {
          event.preventDefault();
          const data = new FormData(event.target);
          await this.request("department_add", {
            id: data.get("id").trim(),
            name: data.get("name").trim(),
            routing: data.get("routing"),
            offer_window: Number(data.get("offer_window")),
            queue_timeout: Number(data.get("queue_timeout")),
          });
          this.toast("Department added.");
          await this.loadDepartments();
          this.loadAgents();
          this.loadCanned();
        },
      },
      field("Id", h("input", { name: "id", required: true, placeholder: "billing" })),
      field("Name", h("input", { name: "name", required: true, placeholder: "Billing" })),
      field("Routing", routingSelect("broadcast")),
      field("Offer window (s)", h("input", { name: "offer_window", type: "number", min: 1, max: 3600, value: 30 }), "narrow"),
      field("Queue timeout (s)", h("input", { name: "queue_timeout", type: "number", min: 0, max: 604800, value: 300 }), "narrow"),
      h("button", { class: "primary", type: "submit" }, "Add department"),
    );
    replace(
      this.sections.departments,
      head("Departments", "Chat on or off, how offers are routed, and how long they wait."),
      add,
      h(
        "div",
        { class: "table-wrap" },
        h(
          "table",
          {},
          h("thead", {}, h("tr", {}, ["Id", "Name", "Chat", "Routing", "Offer window (s)", "Queue timeout (s)", "Queue limit", ""].map((label) => h("th", {}, label)))),
          h("tbody", {}, this.departments.map((department) => this.departmentRow(department))),
        ),
      ),
    );
  }

  departmentRow(department) {
    const name = h("input", { value: department.name, "aria-label": "Name" });
    const chat = h("input", { type: "checkbox", checked: department.chat_enabled, "aria-label": "Chat enabled" });
    const routing = routingSelect(department.routing);
    const offerWindow = h("input", { type: "number", min: 1, max: 3600, value: department.offer_window, "aria-label": "Offer window" });
    const queueTimeout = h("input", { type: "number", min: 0, max: 604800, value: department.queue_timeout, "aria-label": "Queue timeout" });
    const queueLimit = h("input", { type: "number", min: 0, max: 100000, value: department.queue_limit, "aria-label": "Queue limit" });
    const save = async () => {
      await this.request("department_update", {
        id: department.id,
        name: name.value.trim(),
        chat_enabled: chat.checked,
        routing: routing.value,
        offer_window: Number(offerWindow.value),
        queue_timeout: Number(queueTimeout.value),
        queue_limit: Math.round(Number(queueLimit.value)),
      });
      this.toast(`Saved ${department.id}.`);
      this.loadDepartments();
    };
    return h(
      "tr",
      { dataset: { department: department.id } },
      h("td", {}, h("code", {}, department.id)),
      h("td", {}, name),
      h("td", {}, h("label", { class: "check" }, chat, "on")),
      h("td", {}, routing),
      h("td", {}, offerWindow),
      h("td", {}, queueTimeout),
      h("td", {}, queueLimit),
      h("td", { class: "row-actions" }, h("button", { class: "ghost small", onclick: save }, "Save")),
    );
  }

  // -- agents -------------------------------------------------------------------------------

  async loadAgents() {
    this.agents = (await this.request("agent_list")).agents || [];
    this.tokenBox = h("div", { hidden: true });
    this.agentEditor = h("div", { hidden: true });
    const departmentBoxes = this.departments.map((department) =>
      h("label", { class: "check" }, h("input", { type: "checkbox", name: "departments", value: department.id }), department.name),
    );
    const add = h(
      "form",
      {
        class: "inline-form",
        onsubmit: async (event) => {
          event.preventDefault();
          const data = new FormData(event.target);
          const departments = data.getAll("departments");
          if (!departments.length) {
            this.toast("Choose at least one department.", "error");
            return;
          }
          const id = data.get("id").trim();
          await this.request("agent_add", { id, name: data.get("name").trim(), departments, capacity: Number(data.get("capacity")) });
          await this.loadAgents();
          await this.issueToken(id);
        },
      },
      field("Id", h("input", { name: "id", required: true, placeholder: "ann" })),
      field("Name", h("input", { name: "name", required: true, placeholder: "Ann" })),
      field("Capacity", h("input", { name: "capacity", type: "number", min: 0, max: 1000, value: 3 }), "narrow"),
      field("Departments", h("div", { class: "dept-chips" }, departmentBoxes), "wide"),
      h("button", { class: "primary", type: "submit" }, "Add agent"),
    );
    replace(
      this.sections.agents,
      head("Agents", "Who takes chats, in which departments, and how many at once. Edit changes an agent's name, departments and capacity."),
      add,
      this.tokenBox,
      this.agentEditor,
      h(
        "div",
        { class: "table-wrap" },
        h(
          "table",
          {},
          h("thead", {}, h("tr", {}, ["Id", "Name", "Departments", "Capacity", "Status", "Load", ""].map((label) => h("th", {}, label)))),
          h(
            "tbody",
            {},
            this.agents.map((agent) =>
              h(
                "tr",
                { dataset: { agent: agent.id } },
                h("td", {}, h("code", {}, agent.id)),
                h("td", {}, agent.name),
                h("td", {}, (agent.departments || []).join(", ")),
                h("td", {}, agent.capacity),
                h("td", {}, h("span", { class: `pill ${agent.status === "online" ? "ok" : ""}` }, agent.status)),
                h("td", {}, agent.load),
                h(
                  "td",
                  { class: "row-actions" },
                  h("button", { class: "ghost small", onclick: () => this.editAgent(agent) }, "Edit"),
                  h("button", { class: "ghost small", onclick: () => this.issueToken(agent.id) }, "Issue token"),
                  h("button", { class: "ghost small", onclick: () => this.removeAgent(agent) }, "Remove"),
                ),
              ),
            ),
          ),
        ),
      ),
    );
  }

  /** The edit form of one agent: name, capacity and departments (agent_update). */
  editAgent(agent) {
    const mine = new Set(agent.departments || []);
    const form = h(
      "form",
      {
        class: "inline-form agent-editor",
        dataset: { editing: agent.id },
        onsubmit: async (event) => {
          event.preventDefault();
          const data = new FormData(event.target);
          const departments = data.getAll("departments");
          if (!departments.length) {
            this.toast("Choose at least one department.", "error");
            return;
          }
          await this.request("agent_update", {
            id: agent.id,
            name: String(data.get("name")).trim(),
            capacity: Math.round(Number(data.get("capacity"))),
            departments,
          });
          this.toast(`Saved ${agent.id}.`);
          this.loadAgents();
        },
      },
      h("strong", { class: "editor-title" }, `Edit ${agent.id}`),
      field("Name", h("input", { name: "name", required: true, value: agent.name })),
      field("Capacity", h("input", { name: "capacity", type: "number", min: 0, max: 1000, value: agent.capacity }), "narrow"),
      field(
        "Departments",
        h(
          "div",
          { class: "dept-chips" },
          this.departments.map((department) =>
            h("label", { class: "check" }, h("input", { type: "checkbox", name: "departments", value: department.id, checked: mine.has(department.id) }), department.name),
          ),
        ),
        "wide",
      ),
      h("button", { class: "primary", type: "submit" }, "Save agent"),
      h("button", { class: "link", type: "button", onclick: () => (this.agentEditor.hidden = true) }, "Cancel"),
    );
    replace(this.agentEditor, form);
    this.agentEditor.hidden = false;
    form.querySelector("input[name=name]").focus();
  }

  async issueToken(agentId) {
    const { token } = await this.request("token_issue", { agent_id: agentId });
    const code = h("code", { class: "issued-token" }, token);
    replace(
      this.tokenBox,
      h(
        "div",
        { class: "token-box" },
        h("strong", {}, `Token for ${agentId} (shown once; the previous one no longer works):`),
        code,
        h("button", { class: "ghost small", onclick: () => navigator.clipboard?.writeText(token).then(() => this.toast("Copied.")) }, "Copy"),
        h("button", { class: "link", onclick: () => (this.tokenBox.hidden = true) }, "Hide"),
      ),
    );
    this.tokenBox.hidden = false;
  }

  async removeAgent(agent) {
    if (!confirm(`Remove ${agent.name} (${agent.id})? Their token stops working and their chats are requeued.`)) return;
    await this.request("agent_remove", { id: agent.id });
    this.toast(`Removed ${agent.id}.`);
    this.loadAgents();
  }

  // -- canned messages ----------------------------------------------------------------------

  async loadCanned() {
    const { categories = [], messages = [], truncated } = await this.request("canned_list");
    const departmentOptions = (selected) => [
      h("option", { value: "", selected: !selected }, "All departments"),
      this.departments.map((d) => h("option", { value: d.id, selected: d.id === selected }, d.name)),
    ];
    const categoryOptions = (selected) => categories.map((c) => h("option", { value: c.id, selected: c.id === selected }, c.name));
    const categoryName = Object.fromEntries(categories.map((c) => [c.id, c.name]));

    const addCategory = h(
      "form",
      {
        class: "inline-form",
        onsubmit: async (event) => {
          event.preventDefault();
          const name = new FormData(event.target).get("name").trim();
          await this.request("canned_category_add", { name });
          this.loadCanned();
        },
      },
      field("New category", h("input", { name: "name", required: true, placeholder: "Shipping" })),
      h("button", { class: "ghost", type: "submit" }, "Add category"),
    );
    const addMessage = h(
      "form",
      {
        class: "inline-form",
        onsubmit: async (event) => {
          event.preventDefault();
          const data = new FormData(event.target);
          await this.request("canned_add", {
            text: data.get("text").trim(),
            category: data.get("category"),
            department: data.get("department") || undefined,
            title: data.get("title").trim() || undefined,
            shortcut: data.get("shortcut").trim() || undefined,
            reading: data.get("reading").trim() || undefined,
          });
          this.toast("Canned message added.");
          this.loadCanned();
        },
      },
      field("Message", h("textarea", { name: "text", required: true, rows: 2, placeholder: "Thanks for waiting, {visitor.name}!" }), "wide"),
      field("Title", h("input", { name: "title", maxlength: 200, placeholder: "お礼" })),
      field("Shortcut", h("input", { name: "shortcut", maxlength: 64, pattern: "[^\\s#]*", title: "One word, without #", placeholder: "thx" }), "narrow"),
      field("Reading", h("input", { name: "reading", maxlength: 200, placeholder: "おれい" })),
      field("Category", h("select", { name: "category", required: true }, categoryOptions())),
      field("Department", h("select", { name: "department" }, departmentOptions(null))),
      h("button", { class: "primary", type: "submit", disabled: !categories.length }, "Add message"),
    );
    replace(
      this.sections.canned,
      head("Canned messages", "Agents get these as suggestions when they type # in a chat. Placeholders: {visitor.name}, {visitor.email}, {agent.name}, {department.name}."),
      h(
        "div",
        { class: "cat-list" },
        categories.map((category) => {
          const name = h("input", { value: category.name, "aria-label": "Category name" });
          return h(
            "span",
            { class: "cat" },
            name,
            h("button", { class: "link small", onclick: async () => (await this.request("canned_category_rename", { id: category.id, name: name.value.trim() }), this.loadCanned()) }, "Rename"),
            h("button", { class: "link small", onclick: () => this.deleteCategory(category) }, "Delete"),
          );
        }),
      ),
      addCategory,
      addMessage,
      truncated ? h("p", { class: "muted small" }, "Only the newest messages are listed.") : null,
      h(
        "div",
        { class: "table-wrap" },
        h(
          "table",
          {},
          h("thead", {}, h("tr", {}, ["Message", "Title · shortcut · reading", "Category", "Department", ""].map((label) => h("th", {}, label)))),
          h(
            "tbody",
            {},
            messages.length
              ? messages.map((message) => {
                  const text = h("textarea", { rows: 2, "aria-label": "Text" }, message.text);
                  const title = h("input", { value: message.title || "", placeholder: "Title", "aria-label": "Title", maxlength: 200 });
                  const shortcut = h("input", { value: message.shortcut || "", placeholder: "Shortcut", "aria-label": "Shortcut", maxlength: 64 });
                  const reading = h("input", { value: message.reading || "", placeholder: "Reading", "aria-label": "Reading", maxlength: 200 });
                  const category = h("select", { "aria-label": "Category" }, categoryOptions(message.category));
                  const department = h("select", { "aria-label": "Department" }, departmentOptions(message.department));
                  const save = async () => {
                    await this.request("canned_edit", {
                      id: message.id,
                      text: text.value.trim(),
                      category: category.value,
                      title: title.value.trim(),
                      shortcut: shortcut.value.trim(),
                      reading: reading.value.trim(),
                      ...(department.value ? { department: department.value } : { shared: true }),
                    });
                    this.toast("Saved.");
                    this.loadCanned();
                  };
                  return h(
                    "tr",
                    { dataset: { canned: message.id }, title: categoryName[message.category] || "" },
                    h("td", { class: "wide" }, text),
                    h("td", { class: "labels" }, title, shortcut, reading),
                    h("td", {}, category),
                    h("td", {}, department),
                    h(
                      "td",
                      { class: "row-actions" },
                      h("button", { class: "ghost small", onclick: save }, "Save"),
                      h("button", { class: "ghost small", onclick: async () => (await this.request("canned_delete", { id: message.id }), this.loadCanned()) }, "Delete"),
                    ),
                  );
                })
              : h("tr", {}, h("td", { colspan: 5, class: "muted" }, "No canned messages yet.")),
          ),
        ),
      ),
    );
  }

  async deleteCategory(category) {
    try {
      await this.client.request("canned_category_delete", { id: category.id });
    } catch (error) {
      if (error.code !== "category_not_empty") {
        this.toast(errorText(error), "error");
        return;
      }
      if (!confirm(`"${category.name}" holds messages. Delete them with it?`)) return;
      await this.request("canned_category_delete", { id: category.id, messages: "delete" });
    }
    this.loadCanned();
  }

  // -- ratings ------------------------------------------------------------------------------

  async loadRatings(since, until) {
    const report = await this.request("rating_report", { since, until });
    const sinceInput = h("input", { type: "date", name: "since" });
    const untilInput = h("input", { type: "date", name: "until" });
    const toSeconds = (value, endOfDay) => (value ? new Date(`${value}T00:00:00`).getTime() / 1000 + (endOfDay ? 86400 : 0) : undefined);
    const bars = (row) => {
      const total = row.good + row.neutral + row.bad || 1;
      return h("div", { class: "bars" }, ["good", "neutral", "bad"].map((key) => h("span", { class: key, style: `width:${(row[key] / total) * 100}%` })));
    };
    const table = (title, rows, key) =>
      h(
        "div",
        { class: "table-wrap" },
        h(
          "table",
          {},
          h("thead", {}, h("tr", {}, [title, "Good", "Neutral", "Bad", "Average score", ""].map((label) => h("th", {}, label)))),
          h(
            "tbody",
            {},
            rows.length
              ? rows.map((row) =>
                  h("tr", {}, h("td", {}, row[key]), h("td", {}, row.good), h("td", {}, row.neutral), h("td", {}, row.bad), h("td", { class: "score" }, averageScore(row)), h("td", {}, bars(row))),
                )
              : h("tr", {}, h("td", { colspan: 6, class: "muted" }, "No ratings in this period.")),
          ),
        ),
      );
    replace(
      this.sections.ratings,
      head("Ratings", "How visitors rated their chats."),
      h(
        "form",
        { class: "inline-form", onsubmit: (event) => (event.preventDefault(), this.loadRatings(toSeconds(sinceInput.value), toSeconds(untilInput.value, true))) },
        field("From", sinceInput, "narrow"),
        field("To", untilInput, "narrow"),
        h("button", { class: "ghost", type: "submit" }, "Show"),
      ),
      h(
        "div",
        { class: "report" },
        ["good", "neutral", "bad"].map((key) => h("div", { class: `stat ${key}` }, h("div", { class: "value" }, report[key] ?? 0), h("div", { class: "muted" }, key))),
        h("div", { class: "stat score" }, h("div", { class: "value" }, averageScore(report)), h("div", { class: "muted" }, "average score")),
      ),
      h("h3", {}, "By agent"),
      table("Agent", report.by_agent || [], "agent_id"),
      h("h3", {}, "By department"),
      table("Department", report.by_department || [], "department"),
    );
  }
}

/** "4.50 ★ (2)": the average of the 1-5 scores and how many there were, or a dash. */
function averageScore(row) {
  if (row.average_score === null || row.average_score === undefined) return "—";
  return `${Number(row.average_score).toFixed(2)} ★ (${row.scored})`;
}

function head(title, text) {
  return h("div", { class: "section-head" }, h("div", {}, h("h2", {}, title), h("p", { class: "muted small" }, text)));
}

function field(label, control, size = "") {
  return h("div", { class: `field ${size}` }, h("label", {}, label), control);
}

function routingSelect(value) {
  return h(
    "select",
    { name: "routing", "aria-label": "Routing" },
    h("option", { value: "broadcast", selected: value === "broadcast" }, "Broadcast (first accept wins)"),
    h("option", { value: "assigned", selected: value === "assigned" }, "Assigned (one agent at a time)"),
  );
}

new Admin(document.getElementById("app")).start();
