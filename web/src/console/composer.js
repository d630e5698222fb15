/**
 * The composer: a text box that sends on Enter (Shift+Enter for a new line), tells the chat when
 * the agent types, and opens canned suggestions when the text before the cursor has a `#` word:
 * arrow keys move, Enter or Tab inserts (canned_pick fills the placeholders), Esc closes.
 */
import { cannedMeta } from "../shared/desk.js";
import { errorText, h, replace } from "../shared/dom.js";

const TYPING_REFRESH = 2500; // ms between "on" notices while typing
const TYPING_IDLE = 3000; // ms without a key before "off"

/** The `#query` being typed just before the cursor, or null: {start, query}. */
export function cannedQuery(text, cursor) {
  const before = text.slice(0, cursor);
  const hash = before.lastIndexOf("#");
  if (hash < 0) return null;
  const query = before.slice(hash + 1);
  if (/\s/.test(query)) return null;
  return { start: hash, query };
}

export class Composer {
  constructor(app, view) {
    this.app = app;
    this.view = view;
    this.chat = null;
    this.suggestions = [];
    this.active = 0;
    this.queryAt = null;
    this.lookup = 0;
    this.typingSentAt = 0;
    this.idleTimer = null;
    this.input = h("textarea", {
      class: "composer-input",
      rows: 2,
      placeholder: "Type a reply… (# for canned messages)",
      "aria-label": "Reply",
      "aria-autocomplete": "list",
      "aria-controls": "canned-list",
      oninput: () => this.onInput(),
      onkeydown: (event) => this.onKey(event),
      onblur: () => setTimeout(() => this.closeSuggestions(), 150),
    });
    this.list = h("ul", { class: "canned", id: "canned-list", role: "listbox", hidden: true });
    this.sendButton = h("button", { class: "primary", onclick: () => this.submit() }, "Send");
    this.node = h(
      "div",
      { class: "composer" },
      this.list,
      h("div", { class: "composer-row" }, this.input, this.sendButton),
      h("p", { class: "hint" }, "Enter sends · Shift+Enter new line · # canned messages"),
    );
  }

  get value() {
    return this.input.value;
  }

  focus() {
    if (!this.input.disabled) this.input.focus();
  }

  show(chat, open) {
    if (this.chat !== chat) {
      this.stopTyping();
      this.chat = chat;
      this.input.value = chat.draft || "";
      this.closeSuggestions();
    }
    this.input.disabled = !open;
    this.sendButton.disabled = !open;
    this.input.placeholder = open ? "Type a reply… (# for canned messages)" : "This chat is closed.";
  }

  onInput() {
    if (!this.chat) return;
    this.chat.draft = this.input.value;
    this.noteTyping();
    const found = cannedQuery(this.input.value, this.input.selectionStart);
    if (!found) {
      this.closeSuggestions();
      return;
    }
    this.queryAt = found.start;
    const lookup = ++this.lookup;
    this.app.client
      .request("canned_suggest", { draft: this.input.value.slice(0, this.input.selectionStart), limit: 8 })
      .then(({ suggestions }) => {
        if (lookup !== this.lookup) return; // a newer keystroke asked again
        this.suggestions = suggestions || [];
        this.active = 0;
        this.renderSuggestions();
      })
      .catch(() => this.closeSuggestions());
  }

  onKey(event) {
    const open = !this.list.hidden && this.suggestions.length;
    if (open && (event.key === "ArrowDown" || event.key === "ArrowUp")) {
      event.preventDefault();
      const step = event.key === "ArrowDown" ? 1 : -1;
      this.active = (this.active + step + this.suggestions.length) % this.suggestions.length;
      this.renderSuggestions();
    } else if (open && (event.key === "Enter" || event.key === "Tab")) {
      event.preventDefault();
      this.pick(this.suggestions[this.active]);
    } else if (event.key === "Escape" && !this.list.hidden) {
      event.preventDefault();
      this.closeSuggestions();
    } else if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      this.submit();
    }
  }

  renderSuggestions() {
    if (!this.suggestions.length) {
      replace(this.list, h("li", { class: "canned-empty" }, "No canned message matches."));
      this.list.hidden = false;
      return;
    }
    const names = this.app.departmentNames();
    replace(
      this.list,
      this.suggestions.map((suggestion, index) => {
        const meta = cannedMeta(suggestion, names);
        return h(
          "li",
          {
            role: "option",
            id: `canned-${index}`,
            class: index === this.active ? "active" : "",
            "aria-selected": index === this.active ? "true" : "false",
            onmousedown: (event) => {
              event.preventDefault();
              this.pick(suggestion);
            },
          },
          h(
            "span",
            { class: "canned-body" },
            suggestion.title || suggestion.shortcut
              ? h(
                  "span",
                  { class: "canned-title" },
                  suggestion.title || null,
                  suggestion.shortcut ? h("kbd", { class: "canned-shortcut" }, `#${suggestion.shortcut}`) : null,
                )
              : null,
            h("span", { class: "canned-text" }, suggestion.text),
          ),
          h(
            "span",
            { class: "canned-meta" },
            meta.category ? h("span", { class: "chip category", title: "Category" }, meta.category) : null,
            h("span", { class: `chip department ${suggestion.department ? "" : "shared"}`, title: "Department" }, meta.department),
          ),
        );
      }),
    );
    this.list.hidden = false;
    this.input.setAttribute("aria-activedescendant", `canned-${this.active}`);
  }

  closeSuggestions() {
    this.lookup++;
    this.suggestions = [];
    this.list.hidden = true;
    this.input.removeAttribute("aria-activedescendant");
  }

  async pick(suggestion) {
    const chat = this.chat;
    const start = this.queryAt;
    const end = this.input.selectionStart;
    this.closeSuggestions();
    try {
      const { text } = await this.app.client.request("canned_pick", {
        message_id: suggestion.message_id,
        chat_id: chat.id,
      });
      const value = this.input.value;
      this.input.value = value.slice(0, start) + text + value.slice(end);
      const cursor = start + text.length;
      this.input.setSelectionRange(cursor, cursor);
      chat.draft = this.input.value;
      this.input.focus();
    } catch (error) {
      this.app.toast(`Canned message not inserted: ${errorText(error)}`, "error");
    }
  }

  async submit() {
    const text = this.input.value.trim();
    if (!text || !this.chat || this.input.disabled) return;
    const chat = this.chat;
    this.input.value = "";
    chat.draft = "";
    this.stopTyping();
    if (!(await this.view.send(chat, text))) {
      if (!this.input.value) this.input.value = text; // give the text back to retry
    }
    this.input.focus();
  }

  noteTyping() {
    const chat = this.chat;
    const now = Date.now();
    if (now - this.typingSentAt > TYPING_REFRESH) {
      this.typingSentAt = now;
      this.app.client.request("typing", { chat_id: chat.id, on: true }).catch(() => {});
    }
    clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(() => this.stopTyping(), TYPING_IDLE);
  }

  stopTyping() {
    clearTimeout(this.idleTimer);
    if (this.typingSentAt && this.chat && !this.chat.ended && !this.chat.gone) {
      this.app.client.request("typing", { chat_id: this.chat.id, on: false }).catch(() => {});
    }
    this.typingSentAt = 0;
  }
}
