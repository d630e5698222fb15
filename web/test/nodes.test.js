// Several nodes: a page's start-up turns `/nodes` into the client's `urls`, with fallbacks.
import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { HelplineClient } from "../src/client/helpline-client.js";
import { nodesFromPage } from "../src/shared/dom.js";
import { NodeList, nodeUrls, nodesAddress } from "../src/shared/nodes.js";

const page = { protocol: "http:", host: "a.example:8765", search: "" };
const flush = () => new Promise((resolve) => setImmediate(resolve));

/** A fetch that answers each call with the next of `answers` (an object is a 200 JSON body). */
function fakeFetch(...answers) {
  const calls = [];
  const fetch = async (address, init) => {
    calls.push({ address, init });
    const answer = answers.length > 1 ? answers.shift() : answers[0];
    if (answer instanceof Error) throw answer;
    if (typeof answer === "number") return { ok: false, status: answer, json: async () => ({}) };
    return { ok: true, status: 200, json: async () => answer };
  };
  return { fetch, calls };
}

function client(urls) {
  return new HelplineClient({ url: "ws://a.example:8765/", urls, role: "agent", token: "t", WebSocket: class {} });
}

describe("nodeUrls", () => {
  it("puts the page's server first, then every other listed node once", () => {
    const answer = { urls: ["ws://b.example:8765", "ws://a.example:8765", "ws://c.example:8765/", "ws://b.example:8765/"] };
    assert.deepEqual(nodeUrls("ws://a.example:8765/", answer), ["ws://a.example:8765/", "ws://b.example:8765", "ws://c.example:8765/"]);
  });

  it("keeps only WebSocket URLs, and only wss ones on a secure page", () => {
    const answer = { urls: ["http://b.example/", "javascript:alert(1)", 7, "ws://c.example/", "wss://d.example/", "ws://[bad"] };
    assert.deepEqual(nodeUrls("ws://a.example/", answer), ["ws://a.example/", "ws://c.example/", "wss://d.example/"]);
    assert.deepEqual(nodeUrls("wss://a.example/", answer), ["wss://a.example/", "wss://d.example/"]);
  });

  it("is the page's server alone for an answer that is no list", () => {
    for (const answer of [null, {}, { urls: "ws://b.example/" }, []]) {
      assert.deepEqual(nodeUrls("ws://a.example/", answer), ["ws://a.example/"]);
    }
  });

  it("asks the node's HTTP address", () => {
    assert.equal(nodesAddress("ws://a.example:8765/"), "http://a.example:8765/nodes");
    assert.equal(nodesAddress("wss://a.example/x?y=1"), "https://a.example/nodes");
  });
});

describe("a page's start-up", () => {
  it("asks its own server for /nodes and gives the client every node", async () => {
    const { fetch, calls } = fakeFetch({ urls: ["ws://a.example:8765", "ws://b.example:8765"] });
    const nodes = nodesFromPage(page, { fetch });
    const c = nodes.attach(client(nodes.urls));
    assert.deepEqual(c.urls, ["ws://a.example:8765/"], "its own server until the answer comes");
    await nodes.refresh();
    assert.equal(calls[0].address, "http://a.example:8765/nodes");
    assert.deepEqual(c.urls, ["ws://a.example:8765/", "ws://b.example:8765"]);
    assert.equal(c.url, "ws://a.example:8765/", "the connection in use stays");
  });

  it("a client made after the answer starts with every node", async () => {
    const { fetch } = fakeFetch({ urls: ["ws://b.example:8765"] });
    const nodes = nodesFromPage(page, { fetch });
    await nodes.refresh();
    const c = nodes.attach(client(nodes.urls));
    assert.deepEqual(c.urls, ["ws://a.example:8765/", "ws://b.example:8765"]);
  });

  it("falls back to its own server when /nodes fails or is not there", async () => {
    for (const failure of [new TypeError("Failed to fetch"), 404, 503]) {
      const { fetch } = fakeFetch(failure);
      const nodes = nodesFromPage(page, { fetch });
      const c = nodes.attach(client(nodes.urls));
      await nodes.refresh();
      assert.deepEqual(c.urls, ["ws://a.example:8765/"], String(failure));
    }
  });

  it("uses ?server= alone and does not ask", async () => {
    const { fetch, calls } = fakeFetch({ urls: ["ws://b.example:8765"] });
    const nodes = nodesFromPage({ ...page, search: "?server=ws://c.example:9/" }, { fetch });
    const c = nodes.attach(client(nodes.urls));
    await nodes.refresh();
    assert.equal(calls.length, 0);
    assert.deepEqual(c.urls, ["ws://c.example:9/"]);
  });

  it("asks again after a reconnect, and keeps the list when its server is gone", async () => {
    const gone = new TypeError("Failed to fetch");
    const { fetch, calls } = fakeFetch({ urls: ["ws://b.example:8765"] }, { urls: ["ws://b.example:8765", "ws://c.example:8765"] }, gone);
    const nodes = new NodeList("ws://a.example:8765/", { fetch });
    await nodes.refresh();
    const c = nodes.attach(client(nodes.urls));
    c.emit("open", {}); // the first hello: nothing new to ask
    await flush();
    assert.equal(calls.length, 1);
    c.emit("open", {}); // a reconnect
    await flush();
    assert.equal(calls.length, 2);
    assert.deepEqual(c.urls, ["ws://a.example:8765/", "ws://b.example:8765", "ws://c.example:8765"]);
    c.emit("open", {}); // its own server died: the list stays
    await flush();
    assert.equal(calls.length, 3);
    assert.deepEqual(c.urls, ["ws://a.example:8765/", "ws://b.example:8765", "ws://c.example:8765"]);
  });
});

describe("setUrls", () => {
  it("keeps the URL in use and moves on from it on the next retry", () => {
    const c = client(["ws://a/", "ws://b/"]);
    c.url = "ws://b/";
    c.setUrls(["ws://c/", "ws://b/", "ws://a/"]);
    assert.equal(c.urlIndex, 1);
    c.setUrls(["ws://c/", "ws://d/"]); // no longer listed: the first is next
    assert.equal(c.urlIndex, 1);
    c.setUrls([]);
    assert.deepEqual(c.urls, ["ws://c/", "ws://d/"], "an empty list changes nothing");
  });
});
