/**
 * A chat's tags in the console: the labels the chat has (as the last `tag` reply said, which
 * includes the tags other agents and supervisors gave it) and a field to add more ("refund, vip",
 * Enter). Tags are kept on the chat's ticket, where the tickets view can filter by them; they are
 * only ever added (SPEC `tag`).
 */
import { errorText, h } from "../shared/dom.js";
import { parseTags } from "../shared/desk.js";

/**
 * The tags row of `chat` (`chat.tags`, a list, set here). `client` sends the request, `changed()`
 * redraws, `toast(text, kind)` reports a refusal. `open` is false once the chat ended.
 */
export function tagsRow(chat, { client, changed, toast, open }) {
  const tags = chat.tags || [];
  const input = h("input", {
    class: "tag-input",
    type: "text",
    name: "tags",
    placeholder: "Add tags: refund, vip",
    "aria-label": "Add tags (comma-separated)",
    maxlength: 400,
  });
  const add = async (event) => {
    event.preventDefault();
    const wanted = parseTags(input.value);
    if (!wanted.length) return;
    input.disabled = true;
    try {
      chat.tags = await client.tag(chat.id, wanted);
      input.value = "";
      changed();
    } catch (error) {
      toast(`Could not tag the chat: ${errorText(error)}`, "error");
    } finally {
      input.disabled = false;
    }
  };
  return h(
    "form",
    { class: "chat-tags", onsubmit: add },
    h("span", { class: "muted small" }, "Tags:"),
    tags.length ? tags.map((tag) => h("span", { class: "tag" }, tag)) : h("span", { class: "muted small" }, "none yet"),
    open ? input : null,
  );
}
