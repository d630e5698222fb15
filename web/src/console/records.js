/**
 * The missed-chats and tickets views, and a ticket's transcript.
 *
 * Tickets change without events (SPEC has no "ticket stored" push), so an open view asks again
 * every 15 seconds; a chat nobody took shows up in the missed view without a reload.
 */
import { clock, errorText, h, replace, when } from "../shared/dom.js";
import { showModal } from "./dialogs.js";

const REFRESH = 15000;
const RATING = { good: "Good", neutral: "Neutral", bad: "Bad" };

export class RecordsView {
  constructor(app) {
    this.app = app;
    this.kind = "missed";
    this.tickets = [];
    this.title = h("h2", {});
    this.filters = h("form", { class: "filters", onsubmit: (event) => (event.preventDefault(), this.load()) });
    this.table = h("div", { class: "table-wrap" });
    this.status = h("p", { class: "muted small", role: "status" });
    this.node = h("section", { class: "records" }, h("div", { class: "records-head" }, this.title, this.filters), this.status, this.table);
    this.timer = null;
    this.view = h("select", { name: "view", "aria-label": "Show", onchange: () => this.load() },
      h("option", { value: "department" }, "My departments"),
      h("option", { value: "agent" }, "Handled by me"),
      h("option", { value: "visitor" }, "By visitor email"),
    );
    this.department = h("select", { name: "department", "aria-label": "Department", onchange: () => this.load() });
    this.email = h("input", { type: "email", name: "email", placeholder: "visitor@example.com", "aria-label": "Visitor email" });
    this.search = h("input", { type: "search", name: "search", placeholder: "Filter by name or question", "aria-label": "Filter", oninput: () => this.renderTable() });
    this.showHandled = h("input", { type: "checkbox", id: "show-handled", onchange: () => this.renderTable() });
  }

  open(kind) {
    this.kind = kind;
    this.title.textContent = kind === "missed" ? "Missed chats" : "Tickets";
    const departments = this.app.state.agent?.departments || [];
    replace(this.department, h("option", { value: "" }, "All my departments"), departments.map((id) => h("option", { value: id }, this.app.departmentName(id))));
    replace(
      this.filters,
      kind === "tickets" ? this.view : null,
      this.department,
      kind === "tickets" ? this.email : null,
      this.search,
      kind === "missed" ? h("label", { class: "check", for: "show-handled" }, this.showHandled, "Show handled") : null,
      h("button", { class: "ghost", type: "submit" }, "Refresh"),
    );
    this.tickets = [];
    this.renderTable();
    this.load();
    clearInterval(this.timer);
    this.timer = setInterval(() => {
      if (this.app.state.view === kind) this.load(true);
      else clearInterval(this.timer);
    }, REFRESH);
  }

  async load(quiet = false) {
    const view = this.kind === "missed" ? "missed" : this.view.value;
    const request = { view, department: this.department.value || undefined, limit: 200 };
    if (view === "visitor") {
      if (!this.email.value.trim()) {
        this.status.textContent = "Enter the visitor's email and press Refresh.";
        return;
      }
      request.visitor_email = this.email.value.trim();
    }
    if (!quiet) this.status.textContent = "Loading…";
    try {
      this.tickets = (await this.app.client.request("tickets", request)).tickets || [];
      this.status.textContent = `Updated ${clock(Date.now() / 1000)}`;
    } catch (error) {
      this.status.textContent = `Could not load tickets: ${errorText(error)}`;
    }
    this.renderTable();
  }

  renderTable() {
    const needle = this.search.value.trim().toLowerCase();
    const rows = this.tickets.filter((ticket) => {
      if (this.kind === "missed" && ticket.handled && !this.showHandled.checked) return false;
      if (!needle) return true;
      const visitor = ticket.visitor || {};
      return [visitor.name, visitor.email, ticket.question, ticket.department].some((value) =>
        (value || "").toLowerCase().includes(needle),
      );
    });
    if (!rows.length) {
      replace(this.table, h("div", { class: "empty-table" }, this.kind === "missed" ? "No missed chats waiting. Nice." : "No tickets match."));
      return;
    }
    const missed = this.kind === "missed";
    replace(
      this.table,
      h(
        "table",
        { class: "tickets" },
        h(
          "thead",
          {},
          h("tr", {}, ["#", "Visitor", "Question", "Department", missed ? "Why" : "Agents", "Ended", missed ? "Status" : "Rating", ""].map((label) => h("th", {}, label))),
        ),
        h(
          "tbody",
          {},
          rows.map((ticket) => {
            const visitor = ticket.visitor || {};
            return h(
              "tr",
              { dataset: { ticket: ticket.id }, class: ticket.handled ? "handled" : "" },
              h("td", { class: "num" }, ticket.id),
              h("td", {}, h("div", { class: "strong" }, visitor.name || "—"), h("div", { class: "muted small" }, visitor.email || "")),
              h("td", { class: "question-cell" }, ticket.question),
              h("td", {}, this.app.departmentName(ticket.department)),
              h("td", {}, missed ? reasonText(ticket.end_reason) : (ticket.agents || []).join(", ")),
              h("td", { class: "nowrap" }, when(ticket.ended_at)),
              h("td", {}, missed ? (ticket.handled ? h("span", { class: "pill ok" }, "handled") : h("span", { class: "pill warn" }, "open")) : ratingPill(ticket.rating, ticket.score)),
              h(
                "td",
                { class: "row-actions" },
                h("button", { class: "ghost small", onclick: () => this.openTicket(ticket.id) }, "Open"),
                ticket.kind === "missed" && !ticket.handled
                  ? h("button", { class: "primary small", onclick: () => this.markHandled(ticket.id) }, "Mark handled")
                  : null,
              ),
            );
          }),
        ),
      ),
    );
  }

  async markHandled(ticketId, after) {
    try {
      await this.app.client.request("mark_handled", { ticket_id: ticketId });
      const ticket = this.tickets.find((item) => item.id === ticketId);
      if (ticket) ticket.handled = true;
      this.renderTable();
      after?.();
    } catch (error) {
      this.app.toast(`Not marked: ${errorText(error)}`, "error");
    }
  }

  async openTicket(ticketId) {
    let ticket;
    try {
      ticket = (await this.app.client.request("ticket", { ticket_id: ticketId })).ticket;
    } catch (error) {
      this.app.toast(`Could not open ticket #${ticketId}: ${errorText(error)}`, "error");
      return;
    }
    const visitor = ticket.visitor || {};
    const markButton =
      ticket.kind === "missed" && !ticket.handled
        ? h("button", { class: "primary", onclick: () => this.markHandled(ticket.id, () => markButton.replaceWith(h("span", { class: "pill ok" }, "handled"))) }, "Mark handled")
        : null;
    showModal(
      `Ticket #${ticket.id}`,
      h(
        "div",
        { class: "ticket-meta" },
        h("p", { class: "ticket-question" }, ticket.question),
        h(
          "p",
          { class: "muted small" },
          `${visitor.name || "Visitor"}${visitor.email ? ` · ${visitor.email}` : ""} · ${this.app.departmentName(ticket.department)} · ${ticket.kind} · ${reasonText(ticket.end_reason)} · ${when(ticket.started_at)} – ${when(ticket.ended_at)}`,
        ),
        h(
          "p",
          { class: "small" },
          ticket.rating ? ["Rating: ", ratingPill(ticket.rating, ticket.score), ticket.rating_comment ? ` “${ticket.rating_comment}”` : ""] : h("span", { class: "muted" }, "Not rated"),
          " ",
          markButton,
          ticket.handled ? h("span", { class: "pill ok" }, "handled") : null,
        ),
      ),
      h(
        "ol",
        { class: "transcript static" },
        (ticket.entries || []).map((entry) =>
          entry.kind === "message"
            ? h(
                "li",
                { class: `entry message ${entry.author === "visitor" ? "theirs" : "mine"}` },
                h("div", { class: "bubble" }, h("span", { class: "who" }, entry.author_name || entry.author, h("time", {}, clock(entry.at))), h("p", {}, entry.text)),
              )
            : h("li", { class: "entry system" }, h("span", {}, `${entry.kind}${entry.agent ? ` · ${entry.agent_name || entry.agent}` : ""}${entry.detail ? ` · ${entry.detail}` : ""}`), h("time", {}, clock(entry.at))),
        ),
        ticket.truncated ? h("li", { class: "entry system" }, "The transcript was cut to fit one reply.") : null,
      ),
      (ticket.handoffs || []).length
        ? [
            h("h3", {}, "Transfers and invites"),
            h(
              "ul",
              { class: "history" },
              ticket.handoffs.map((handoff) =>
                h("li", {}, `${handoff.kind} from ${handoff.from_agent} to ${handoff.to_agent || handoff.to_department}: ${handoff.outcome}`, handoff.note ? h("span", { class: "muted small" }, ` “${handoff.note}”`) : null),
              ),
            ),
          ]
        : null,
    );
  }
}

function reasonText(reason) {
  const texts = {
    no_agent_online: "no agent online",
    chat_off: "chat switched off",
    queue_full: "queue full",
    queue_timeout: "waited too long",
    offer_timeout: "offer not answered",
    all_declined: "every agent declined",
    agent_ended: "ended by agent",
    visitor_left: "visitor left",
  };
  return texts[reason] || reason || "";
}

function ratingPill(rating, score) {
  if (!rating) return h("span", { class: "muted small" }, "—");
  const stars = score ? ` ${"★".repeat(score)}${"☆".repeat(5 - score)}` : "";
  return h("span", { class: `pill rating-${rating}`, title: score ? `${score} of 5` : "" }, (RATING[rating] || rating) + stars);
}
