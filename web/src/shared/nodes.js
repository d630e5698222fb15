/**
 * Several nodes: the pages learn every node's WebSocket URL from `/nodes` on the node that
 * served them (SPEC: plain HTTP), so that after their node dies they reconnect through another.
 *
 * A page's own server comes first (it just served the page, so it is reachable), then the
 * other listed nodes, each once; a secure page (wss) keeps only wss URLs, since a browser
 * refuses ws:// from it. The list is asked for at start and again after every reconnect; when
 * the answer does not come, the page keeps what it had (at first: its own server alone). A
 * server the page was pinned to (`?server=`, the widget's `data-server`) is used alone.
 */

export const NODES_PATH = "/nodes";
const MAX_URLS = 64;
const TIMEOUT = 3000; // ms before the list is given up

/** `http://host:port/nodes` for the node at `ws://host:port/` (https for wss). */
export function nodesAddress(server) {
  const url = new URL(server);
  url.protocol = url.protocol === "wss:" ? "https:" : "http:";
  url.pathname = NODES_PATH;
  url.search = "";
  url.hash = "";
  return url.href;
}

/** The client's `urls`: `own` first, then the WebSocket URLs of `answer` ({urls: [...]}). */
export function nodeUrls(own, answer) {
  const secure = own.startsWith("wss:");
  const urls = [own];
  const seen = new Set([normal(own)]);
  const listed = Array.isArray(answer?.urls) ? answer.urls : [];
  for (const url of listed) {
    if (typeof url !== "string" || !/^wss?:\/\//.test(url) || (secure && !url.startsWith("wss:"))) continue;
    const key = normal(url);
    if (key === null || seen.has(key)) continue;
    seen.add(key);
    urls.push(url);
    if (urls.length >= MAX_URLS) break;
  }
  return urls;
}

function normal(url) {
  try {
    return new URL(url).href;
  } catch {
    return null;
  }
}

/** Keeps a client's `urls` to the node list (see the module comment). */
export class NodeList {
  /**
   * @param {string} own          the server the page came from (its WebSocket URL)
   * @param {object} [options]
   * @param {boolean} [options.pinned]  use `own` alone and never ask
   * @param {Function} [options.fetch]  tests pass a fake
   */
  constructor(own, options = {}) {
    this.own = own;
    this.urls = [own];
    this.pinned = !!options.pinned;
    this.fetch = options.fetch || globalThis.fetch?.bind(globalThis);
    this.timeout = options.timeout ?? TIMEOUT;
    this.clients = new Set();
    this.asked = null;
  }

  /** Asks the page's server for the list; resolves to the URLs in use after the answer. */
  refresh() {
    if (this.pinned || !this.fetch) return Promise.resolve(this.urls);
    this.asked ||= this.ask().finally(() => (this.asked = null));
    return this.asked;
  }

  async ask() {
    const controller = typeof AbortController === "function" ? new AbortController() : null;
    const timer = setTimeout(() => controller?.abort(), this.timeout);
    try {
      const response = await this.fetch(nodesAddress(this.own), { cache: "no-store", credentials: "omit", signal: controller?.signal });
      if (response.ok) this.set(nodeUrls(this.own, await response.json()));
    } catch {
      // the page's server did not answer: keep the list we have
    } finally {
      clearTimeout(timer);
    }
    return this.urls;
  }

  set(urls) {
    this.urls = urls;
    for (const client of this.clients) {
      if (client.state === "closed") this.clients.delete(client);
      else client.setUrls(urls);
    }
  }

  /** Gives `client` the list now and whenever it changes; asks again after each reconnect. */
  attach(client) {
    this.clients.add(client);
    client.setUrls(this.urls);
    let opened = 0;
    client.on("open", () => {
      if (opened++ > 0) this.refresh();
    });
    return client;
  }
}
