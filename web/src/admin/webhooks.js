/**
 * The admin page's webhooks section (SPEC section 6.7): the webhooks (URL, department or all,
 * events), a form to add one, removing one, the deliveries given up with their last error, and
 * replaying them (one, all of a webhook's, or all) or discarding one for good. The secret is made here or typed, sent once with
 * `webhook_add` and never shown back by the server.
 */
import { h, replace, when } from "../shared/dom.js";

/** The event kinds of SPEC section 13, in the order a chat lives them. */
export const WEBHOOK_EVENTS = ["chat.opened", "chat.accepted", "chat.transferred", "chat.ended", "chat.missed", "ticket.created", "rating.given"];

/** A random secret of 32 hex characters (128 bits) for a new webhook. */
function newSecret() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * Renders the section into `section` with `admin` (its `request`, `toast` and `departments`),
 * reading the webhooks and their failures afresh.
 */
export async function renderWebhooks(admin, section) {
  const [{ webhooks = [] }, { failures = [] }] = await Promise.all([admin.request("webhook_list"), admin.request("webhook_failures", { limit: 500 })]);
  const reload = () => renderWebhooks(admin, section);
  const failedBy = new Map();
  for (const failure of failures) failedBy.set(failure.webhook_id, (failedBy.get(failure.webhook_id) || 0) + 1);

  const secret = h("input", { name: "secret", required: true, minlength: 16, maxlength: 256, value: newSecret(), spellcheck: "false", "aria-label": "Secret" });
  const add = h(
    "form",
    {
      class: "inline-form webhook-form",
      onsubmit: async (event) => {
        event.preventDefault();
        const data = new FormData(event.target);
        const events = data.getAll("events");
        const department = String(data.get("department") || "");
        await admin.request("webhook_add", {
          url: String(data.get("url")).trim(),
          secret: String(data.get("secret")).trim(),
          events: events.length === WEBHOOK_EVENTS.length ? [] : events,
          department: department || undefined,
        });
        admin.toast("Webhook added. Give the receiver its secret: it is not shown again.");
        reload();
      },
    },
    field("URL", h("input", { name: "url", type: "url", required: true, placeholder: "https://crm.example.com/helpline" }), "wide"),
    field(
      "Department",
      h(
        "select",
        { name: "department", "aria-label": "Department" },
        h("option", { value: "" }, "All departments"),
        admin.departments.map((d) => h("option", { value: d.id }, d.name)),
      ),
    ),
    field("Secret (HMAC key, 16+ characters)", h("div", { class: "secret-row" }, secret, h("button", { class: "ghost small", type: "button", onclick: () => (secret.value = newSecret()) }, "New")), "wide"),
    field(
      "Events",
      h(
        "div",
        { class: "dept-chips" },
        WEBHOOK_EVENTS.map((kind) => h("label", { class: "check" }, h("input", { type: "checkbox", name: "events", value: kind, checked: true }), kind)),
      ),
      "full",
    ),
    h("button", { class: "primary", type: "submit" }, "Add webhook"),
  );

  const departmentName = (id) => (id ? admin.departments.find((d) => d.id === id)?.name || id : "All departments");
  const remove = async (hook) => {
    if (!confirm(`Remove the webhook to ${hook.url}? Its queued and failed deliveries go with it.`)) return;
    await admin.request("webhook_remove", { id: hook.id });
    admin.toast(`Removed ${hook.id}.`);
    reload();
  };
  const replay = async (fields, what) => {
    const { replayed } = await admin.request("webhook_replay", fields);
    admin.toast(`${replayed} ${replayed === 1 ? "delivery" : "deliveries"} of ${what} put back in line.`);
    reload();
  };

  const discard = async (failure) => {
    if (!confirm(`Discard the ${failure.type} event of chat ${failure.chat_id.slice(0, 8)} for good? It is not posted again.`)) return;
    const { discarded } = await admin.request("webhook_discard", { delivery_ids: [failure.delivery_id] });
    admin.toast(`${discarded} failed ${discarded === 1 ? "delivery" : "deliveries"} discarded.`);
    reload();
  };

  const hooks = h(
    "div",
    { class: "table-wrap" },
    webhooks.length
      ? h(
          "table",
          { class: "webhooks" },
          h("thead", {}, h("tr", {}, ["Id", "URL", "Department", "Events", "Failed", ""].map((label) => h("th", {}, label)))),
          h(
            "tbody",
            {},
            webhooks.map((hook) =>
              h(
                "tr",
                { dataset: { webhook: hook.id } },
                h("td", {}, h("code", {}, hook.id)),
                h("td", { class: "url" }, hook.url),
                h("td", {}, departmentName(hook.department)),
                h("td", { class: "labels-inline" }, hook.events?.length ? hook.events.map((e) => h("span", { class: "chip" }, e)) : h("span", { class: "muted" }, "every event")),
                h("td", {}, failedBy.get(hook.id) ? h("span", { class: "pill rating-bad" }, `${failedBy.get(hook.id)} failed`) : h("span", { class: "pill ok" }, "none")),
                h(
                  "td",
                  { class: "row-actions" },
                  failedBy.get(hook.id) ? h("button", { class: "ghost small", onclick: () => replay({ webhook_id: hook.id }, hook.id) }, "Replay failed") : null,
                  h("button", { class: "ghost small", onclick: () => remove(hook) }, "Remove"),
                ),
              ),
            ),
          ),
        )
      : h("div", { class: "empty-table" }, "No webhooks yet: add one above to post the desk's events to another system."),
  );

  const failed = h(
    "div",
    { class: "table-wrap" },
    failures.length
      ? h(
          "table",
          { class: "failures" },
          h("thead", {}, h("tr", {}, ["Event", "Webhook", "Chat", "Attempts", "Queued", "Given up", "Last error", ""].map((label) => h("th", {}, label)))),
          h(
            "tbody",
            {},
            failures.map((f) =>
              h(
                "tr",
                { dataset: { delivery: f.delivery_id } },
                h("td", {}, h("span", { class: "chip" }, f.type)),
                h("td", {}, h("code", {}, f.webhook_id)),
                h("td", {}, h("code", { title: f.chat_id }, f.chat_id.slice(0, 8))),
                h("td", {}, f.attempts),
                h("td", { class: "nowrap" }, when(f.queued_at)),
                h("td", { class: "nowrap" }, when(f.failed_at)),
                h("td", { class: "error-text" }, f.last_error),
                h(
                  "td",
                  { class: "row-actions" },
                  h("button", { class: "ghost small", onclick: () => replay({ delivery_ids: [f.delivery_id] }, f.type) }, "Replay"),
                  h("button", { class: "ghost small", onclick: () => discard(f) }, "Discard"),
                ),
              ),
            ),
          ),
        )
      : h("div", { class: "empty-table" }, "Nothing given up: every event was delivered, or is still being retried."),
  );

  replace(
    section,
    head("Webhooks", "Desk events posted to other systems, signed with each webhook's secret (SPEC section 13). Events a receiver never took within the retry time are listed below, to replay."),
    add,
    hooks,
    h("div", { class: "subhead" }, h("h3", {}, "Failed deliveries"), failures.length ? h("button", { class: "ghost small", onclick: () => replay({}, "every webhook") }, "Replay all") : null),
    failed,
  );
}

function head(title, text) {
  return h("div", { class: "section-head" }, h("div", {}, h("h2", {}, title), h("p", { class: "muted small" }, text)));
}

function field(label, control, size = "") {
  return h("div", { class: `field ${size}` }, h("label", {}, label), control);
}
