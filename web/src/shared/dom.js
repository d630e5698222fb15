import { NodeList } from "./nodes.js";

/**
 * A small DOM builder. Everything that is not an element becomes a text node, so data is never
 * parsed as HTML: there is no innerHTML anywhere in web/src.
 *
 *   h("button", { class: "primary", onclick: go, disabled: busy }, "Send")
 */
export function h(tag, props, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      node.addEventListener(key.slice(2), value);
    } else if (key === "class") {
      node.className = value;
    } else if (key === "dataset") {
      Object.assign(node.dataset, value);
    } else if (key === "value" || key === "checked" || key === "selected") {
      node[key] = value;
    } else {
      node.setAttribute(key, value === true ? "" : String(value));
    }
  }
  append(node, children);
  return node;
}

/** Appends children (nodes, strings, numbers, nested arrays; null and false are skipped). */
export function append(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** Replaces a node's children. */
export function replace(node, ...children) {
  node.replaceChildren();
  return append(node, children);
}

/** "14:05" for a time in seconds since the epoch. */
export function clock(seconds) {
  if (!seconds) return "";
  return new Date(seconds * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

/** "3 Mar, 14:05" for a time in seconds since the epoch. */
export function when(seconds) {
  if (!seconds) return "";
  return new Date(seconds * 1000).toLocaleString([], {
    day: "numeric",
    month: "short",
    hour: "2-digit",
    minute: "2-digit",
  });
}

/** A short random id for client message ids. */
export function randomId(prefix = "m") {
  const bytes = new Uint8Array(8);
  crypto.getRandomValues(bytes);
  return prefix + "-" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** The server URL given with `?server=` on the page, or null. */
export function givenServer(loc = globalThis.location) {
  const given = new URLSearchParams(loc.search).get("server");
  return given && /^wss?:\/\//.test(given) ? given : null;
}

/** The server URL: `?server=` on the page, else the page's own origin. */
export function serverFromPage(loc = globalThis.location) {
  return givenServer(loc) || `${loc.protocol === "https:" ? "wss" : "ws"}://${loc.host}/`;
}

/**
 * Every node's URL (shared/nodes.js), asked for at once: the page's server first, the other
 * nodes once `/nodes` answers; `?server=` alone when given.
 */
export function nodesFromPage(loc = globalThis.location, options = {}) {
  const nodes = new NodeList(serverFromPage(loc), { pinned: !!givenServer(loc), ...options });
  nodes.refresh();
  return nodes;
}

export const ERROR_TEXT = {
  disconnected: "Not connected to the server; retrying.",
  timeout: "The server did not answer in time.",
  unauthorized: "That token was not accepted.",
  rate_limited: "Too many requests; wait a moment.",
  busy: "The server is busy; try again.",
};

/** A person-readable text for a RequestError. */
export function errorText(error) {
  if (!error) return "";
  return ERROR_TEXT[error.code] || error.message || String(error);
}

/** "AL" for "Ada Lovelace". */
export function initials(name) {
  return (name || "?")
    .split(/\s+/)
    .filter(Boolean)
    .slice(0, 2)
    .map((part) => part[0].toUpperCase())
    .join("");
}
