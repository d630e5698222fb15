// The client against a fake WebSocket that speaks msgpack frames encoded with the library.
import assert from "node:assert/strict";
import { afterEach, beforeEach, describe, it, mock } from "node:test";

import { decode, encode } from "@msgpack/msgpack";

import {
  HelplineClient,
  RequestError,
  defaultServerUrl,
  skillList,
} from "../src/client/helpline-client.js";

/** A WebSocket stand-in: records what the client sends, lets the test push frames and close. */
class FakeSocket {
  static made = [];
  constructor(url) {
    this.url = url;
    this.sent = [];
    this.closed = null;
    FakeSocket.made.push(this);
  }
  send(bytes) {
    this.sent.push(decode(bytes));
  }
  close(code = 1000, reason = "") {
    if (this.closed) return;
    this.closed = { code, reason };
    queueMicrotask(() => this.onclose?.({ code, reason }));
  }
  // test side
  open() {
    this.onopen?.();
  }
  push(frame) {
    const bytes = encode(frame);
    this.onmessage?.({ data: bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) });
  }
  drop(code) {
    this.closed = { code };
    this.onclose?.({ code, reason: "" });
  }
  last() {
    return this.sent[this.sent.length - 1];
  }
  reply(fields = {}) {
    this.push({ type: "reply", ref: this.last().ref, ok: true, ...fields });
  }
}

class MemoryStorage {
  constructor() {
    this.items = new Map();
  }
  getItem(key) {
    return this.items.has(key) ? this.items.get(key) : null;
  }
  setItem(key, value) {
    this.items.set(key, String(value));
  }
  removeItem(key) {
    this.items.delete(key);
  }
}

const flush = () => new Promise((resolve) => setImmediate(resolve));

function client(options = {}) {
  return new HelplineClient({
    url: "ws://help.example/",
    role: "visitor",
    WebSocket: FakeSocket,
    random: () => 1,
    ...options,
  });
}

async function connected(options = {}, helloReply = { resumed: false }) {
  const c = client(options);
  const opened = c.connect();
  const socket = FakeSocket.made.at(-1);
  socket.open();
  await flush();
  socket.reply({ version: 1, role: c.role, heartbeat_interval: 20, ...helloReply });
  await opened;
  return { c, socket };
}

beforeEach(() => {
  FakeSocket.made = [];
  mock.timers.enable({ apis: ["setTimeout", "setInterval"] });
});
afterEach(() => mock.timers.reset());

describe("hello", () => {
  it("says hello first with the protocol version, role and token", async () => {
    const { socket } = await connected({ role: "agent", token: "hlt_x" });
    const { ref, ...hello } = socket.sent[0];
    assert.equal(typeof ref, "number");
    assert.deepEqual(hello, { type: "hello", version: 1, role: "agent", token: "hlt_x" });
  });

  it("rejects connect() with the server's error code when the hello is refused", async () => {
    const c = client({ role: "agent", token: "bad" });
    const opened = c.connect();
    const socket = FakeSocket.made[0];
    socket.open();
    await flush();
    socket.push({
      type: "reply",
      ref: socket.last().ref,
      ok: false,
      error: { code: "unauthorized", message: "unknown token" },
    });
    await assert.rejects(opened, (error) => error instanceof RequestError && error.code === "unauthorized");
  });
});

describe("requests", () => {
  it("match replies by ref, in any order", async () => {
    const { c, socket } = await connected();
    const first = c.request("ping");
    const second = c.request("typing", { on: true });
    const [ping, typing] = socket.sent.slice(-2);
    socket.push({ type: "reply", ref: typing.ref, ok: true });
    socket.push({ type: "reply", ref: ping.ref, ok: true, at: 5.5 });
    assert.deepEqual(await first, { at: 5.5 });
    assert.deepEqual(await second, {});
  });

  it("leave out undefined and null fields", async () => {
    const { c, socket } = await connected();
    c.request("send", { text: "hi", client_msg_id: undefined, extra: null });
    const { ref: _ref, ...frame } = socket.last();
    assert.deepEqual(frame, { type: "send", text: "hi" });
  });

  it("reject with the error reply's code", async () => {
    const { c, socket } = await connected();
    const sent = c.request("send", { text: "hi" });
    socket.push({
      type: "reply",
      ref: socket.last().ref,
      ok: false,
      error: { code: "invalid_state", message: "no open chat" },
    });
    await assert.rejects(sent, { code: "invalid_state" });
  });

  it("time out when no reply comes", async () => {
    const { c } = await connected({ requestTimeout: 500 });
    const sent = c.request("ping");
    mock.timers.tick(500);
    await assert.rejects(sent, { code: "timeout" });
  });

  it("fail at once while disconnected", async () => {
    const c = client();
    await assert.rejects(c.request("ping"), { code: "disconnected" });
  });
});

describe("events", () => {
  it("reach every callback of their name, without the envelope", async () => {
    const { c, socket } = await connected({ role: "agent", token: "t" });
    const seen = [];
    c.on("offer", (fields) => seen.push(fields));
    const off = c.on("offer", () => seen.push("second"));
    socket.push({ type: "event", event: "offer", offer_id: "o-1", chat_id: "c-1" });
    off();
    socket.push({ type: "event", event: "offer", offer_id: "o-2", chat_id: "c-2" });
    assert.deepEqual(seen, [
      { offer_id: "o-1", chat_id: "c-1" },
      "second",
      { offer_id: "o-2", chat_id: "c-2" },
    ]);
  });

  it("ignore unknown frame types", async () => {
    const { c, socket } = await connected();
    const seen = [];
    c.on("*", (name) => seen.push(name));
    socket.push({ type: "future", x: 1 });
    assert.deepEqual(seen, []);
  });
});

describe("heartbeat", () => {
  it("sends a ping request every heartbeat interval", async () => {
    const { socket } = await connected();
    mock.timers.tick(20000);
    assert.equal(socket.last().type, "ping");
  });

  it("closes the socket when a ping gets no reply, and reconnects", async () => {
    const { c, socket } = await connected({ requestTimeout: 5000 });
    const retries = [];
    c.on("reconnecting", (info) => retries.push(info.delay));
    mock.timers.tick(20000);
    mock.timers.tick(5000);
    await flush();
    assert.equal(socket.closed.code, 4001);
    assert.deepEqual(retries, [1000]);
  });
});

describe("reconnect", () => {
  it("backs off exponentially up to the ceiling", () => {
    const c = client({ random: () => 1 });
    assert.deepEqual([0, 1, 2, 3, 4, 5, 6].map((n) => c.backoff(n)), [
      1000, 2000, 4000, 8000, 16000, 30000, 30000,
    ]);
    const low = client({ random: () => 0 });
    assert.equal(low.backoff(2), 2000);
  });

  it("reconnects after a drop and says hello again", async () => {
    const { c, socket } = await connected({ role: "agent", token: "t" });
    const opened = [];
    c.on("open", (reply) => opened.push(reply.role));
    socket.drop(1006);
    mock.timers.tick(1000);
    const again = FakeSocket.made.at(-1);
    assert.notEqual(again, socket);
    again.open();
    await flush();
    assert.equal(again.last().type, "hello");
    again.reply({ role: "agent" });
    await flush();
    assert.deepEqual(opened, ["agent"]);
  });

  it("roams through the nodes' URLs: the next node at once, a backoff once per round", async () => {
    const urls = ["ws://a.example/", "ws://b.example/", "ws://c.example/"];
    const { c, socket } = await connected({ role: "agent", token: "t", urls });
    assert.equal(socket.url, urls[0]);
    const delays = [];
    c.on("reconnecting", (info) => delays.push(info.delay));
    socket.drop(1012); // the node handed the desk over
    mock.timers.tick(1000);
    const second = FakeSocket.made.at(-1);
    assert.equal(second.url, urls[1]);
    second.drop(1006); // that node is down too: the third at once
    mock.timers.tick(0);
    const third = FakeSocket.made.at(-1);
    assert.equal(third.url, urls[2]);
    third.drop(1013); // no holder yet: try again
    mock.timers.tick(0);
    const fourth = FakeSocket.made.at(-1);
    assert.equal(fourth.url, urls[0]);
    fourth.drop(1006);
    mock.timers.tick(0);
    assert.equal(FakeSocket.made.length, 4, "a new round waits for the backoff");
    mock.timers.tick(2000);
    const fifth = FakeSocket.made.at(-1);
    assert.equal(fifth.url, urls[1]);
    fifth.open();
    await flush();
    assert.equal(fifth.last().type, "hello");
    assert.deepEqual(delays, [1000, 0, 0, 2000]);
  });

  it("does not retry after 1008 (a refused hello or a removed agent)", async () => {
    const { c, socket } = await connected({ role: "agent", token: "t" });
    const fatal = [];
    c.on("fatal", (info) => fatal.push(info.code));
    socket.drop(1008);
    mock.timers.tick(60000);
    assert.deepEqual(fatal, [1008]);
    assert.equal(FakeSocket.made.length, 1);
  });

  it("does not retry after close()", async () => {
    const { c } = await connected();
    c.close();
    await flush();
    mock.timers.tick(60000);
    assert.equal(FakeSocket.made.length, 1);
  });

  it("rejects requests in flight when the socket drops", async () => {
    const { c, socket } = await connected();
    const sent = c.request("send", { text: "hi" });
    socket.drop(1006);
    await assert.rejects(sent, { code: "disconnected" });
  });
});

describe("visitor resume", () => {
  it("resumes with the token and the last seq seen, and drops replayed duplicates", async () => {
    const storage = new MemoryStorage();
    const { c, socket } = await connected({ storage });
    const lines = [];
    c.on("message", (fields) => lines.push(fields.seq));
    const opened = c.request("open_chat", { department: "d", name: "Ada", question: "?" });
    socket.reply({ chat_id: "c-1", resume_token: "hlr_1", seq: 0 });
    await opened;
    socket.push({ type: "event", event: "message", chat_id: "c-1", seq: 1, text: "a" });
    socket.push({ type: "event", event: "message", chat_id: "c-1", seq: 3, text: "b" });
    socket.drop(1006);
    mock.timers.tick(1000);
    const again = FakeSocket.made.at(-1);
    again.open();
    await flush();
    const { ref: _ref, ...hello } = again.last();
    assert.deepEqual(hello, {
      type: "hello",
      version: 1,
      role: "visitor",
      resume_token: "hlr_1",
      last_seq: 3,
      chat_id: "c-1",
    });
    again.reply({ resumed: true });
    await flush();
    again.push({ type: "event", event: "chat_opened", chat_id: "c-1", resume_token: "hlr_1", seq: 4 });
    again.push({ type: "event", event: "message", chat_id: "c-1", seq: 3, text: "b" });
    again.push({ type: "event", event: "message", chat_id: "c-1", seq: 4, text: "c" });
    assert.deepEqual(lines, [1, 3, 4]);
  });

  it("keeps the resume state in storage, so a reloaded page resumes", async () => {
    const storage = new MemoryStorage();
    const { c, socket } = await connected({ storage });
    socket.push({ type: "event", event: "chat_opened", chat_id: "c-9", resume_token: "hlr_9", seq: 0 });
    socket.push({ type: "event", event: "system", chat_id: "c-9", seq: 2, kind: "joined" });
    c.close();
    const reloaded = client({ storage });
    reloaded.connect();
    const socket2 = FakeSocket.made.at(-1);
    socket2.open();
    await flush();
    assert.equal(socket2.last().resume_token, "hlr_9");
    assert.equal(socket2.last().last_seq, 2);
  });

  it("forgets the chat when it ends, and when the server did not resume it", async () => {
    const storage = new MemoryStorage();
    const { socket } = await connected({ storage });
    socket.push({ type: "event", event: "chat_opened", chat_id: "c-1", resume_token: "t", seq: 0 });
    assert.ok(storage.getItem("helpline.resume"));
    socket.push({ type: "event", event: "ended", chat_id: "c-1", reason: "agent_ended" });
    assert.equal(storage.getItem("helpline.resume"), null);

    storage.setItem("helpline.resume", JSON.stringify({ chat_id: "c-2", resume_token: "x", last_seq: 1 }));
    await connected({ storage }, { resumed: false });
    assert.equal(storage.getItem("helpline.resume"), null);
  });

  it("does not retry when another connection resumed the chat (close 1000)", async () => {
    const { c, socket } = await connected();
    const replaced = [];
    c.on("replaced", (info) => replaced.push(info.code));
    socket.drop(1000);
    mock.timers.tick(60000);
    assert.deepEqual(replaced, [1000]);
    assert.equal(FakeSocket.made.length, 1);
  });
});

describe("defaultServerUrl", () => {
  it("is the page's own host, over wss on https", () => {
    assert.equal(defaultServerUrl(new URL("http://localhost:8765/console")), "ws://localhost:8765/");
    assert.equal(defaultServerUrl(new URL("https://help.example.com/demo")), "wss://help.example.com/");
  });
});

describe("supervisor", () => {
  const row = (chatId, fields = {}) => ({
    chat_id: chatId,
    department: "sales",
    state: "active",
    owner: "ann",
    agents: ["ann"],
    started_at: 1,
    accepted_at: 2,
    wait: 1,
    last_message_at: null,
    ...fields,
  });

  it("keeps the desk from the supervise_start reply and every desk_changed", async () => {
    const { c, socket } = await connected({ role: "supervisor", token: "hlt_s" });
    const pictures = [];
    c.on("desk", (desk) => pictures.push([...desk.chats.keys()]));
    const started = c.supervise();
    assert.equal(socket.last().type, "supervise_start");
    socket.reply({ chats: [row("c-1"), row("c-2")], queues: [{ department: "sales", chats: [] }] });
    const desk = await started;
    assert.deepEqual([...desk.chats.keys()], ["c-1", "c-2"]);
    socket.push({
      type: "event",
      event: "desk_changed",
      chats: [row("c-3", { state: "queued", owner: "", agents: [] }), row("c-1", { last_message_at: 9 })],
      removed: ["c-2"],
      queues: [{ department: "sales", chats: ["c-3"] }],
    });
    assert.equal(c.desk.chats.get("c-1").last_message_at, 9);
    assert.deepEqual(c.desk.queues.get("sales"), ["c-3"]);
    assert.deepEqual(pictures, [
      ["c-1", "c-2"],
      ["c-1", "c-3"],
    ]);
    const stopped = c.stopSupervising();
    assert.equal(socket.last().type, "supervise_stop");
    socket.reply();
    await stopped;
    assert.equal(c.desk, null);
  });

  it("monitors a chat: its lines arrive once, whispers among them, and are kept", async () => {
    const { c, socket } = await connected({ role: "supervisor", token: "hlt_s" });
    const seen = [];
    for (const name of ["message", "system", "whisper"]) c.on(name, (e) => seen.push(`${name}:${e.seq}`));
    const monitoring = c.monitor("c-1");
    assert.deepEqual({ ...socket.last(), ref: 0 }, { type: "monitor", ref: 0, chat_id: "c-1" });
    socket.push({ type: "event", event: "message", chat_id: "c-1", seq: 1, text: "hi", author: "visitor" });
    socket.push({ type: "event", event: "system", chat_id: "c-1", seq: 2, event_kind: "joined" });
    socket.reply({ chat_id: "c-1", seq: 2 });
    assert.deepEqual(await monitoring, { chat_id: "c-1", seq: 2 });
    socket.push({ type: "event", event: "whisper", chat_id: "c-1", seq: 4, text: "offer 10%" });
    socket.push({ type: "event", event: "message", chat_id: "c-1", seq: 2, text: "again" }); // a duplicate
    assert.deepEqual(seen, ["message:1", "system:2", "whisper:4"]);
    assert.deepEqual(
      c.lines("c-1").map((l) => [l.event, l.seq]),
      [
        ["message", 1],
        ["system", 2],
        ["whisper", 4],
      ],
    );
    socket.push({ type: "event", event: "ended", chat_id: "c-1", reason: "agent_ended" });
    assert.deepEqual(c.lines("c-1"), []);
  });

  it("forgets a chat whose monitor request was refused", async () => {
    const { c, socket } = await connected({ role: "supervisor", token: "hlt_s" });
    const monitoring = c.monitor("c-9");
    socket.push({ type: "reply", ref: socket.last().ref, ok: false, error: { code: "not_found", message: "no" } });
    await assert.rejects(monitoring, (e) => e.code === "not_found");
    assert.equal(c.monitored.has("c-9"), false);
  });

  it("sends whisper, barge, send, leave_chat, reassign, routing_trace and unmonitor as SPEC says", async () => {
    const { c, socket } = await connected({ role: "supervisor", token: "hlt_s" });
    const calls = [
      [() => c.whisper("c-1", "psst"), { type: "whisper", chat_id: "c-1", text: "psst" }],
      [() => c.barge("c-1"), { type: "barge", chat_id: "c-1" }],
      [() => c.send("c-1", "hello", "m-1"), { type: "send", chat_id: "c-1", text: "hello", client_msg_id: "m-1" }],
      [() => c.leaveChat("c-1"), { type: "leave_chat", chat_id: "c-1" }],
      [
        () => c.reassign("c-1", { toDepartment: "billing", note: "refund" }),
        { type: "reassign", chat_id: "c-1", to_department: "billing", note: "refund" },
      ],
      [() => c.reassign("c-1", { toAgent: "bob" }), { type: "reassign", chat_id: "c-1", to_agent: "bob" }],
      [() => c.routingTrace("c-1"), { type: "routing_trace", chat_id: "c-1" }],
      [() => c.availableAgents("sales"), { type: "available_agents", department: "sales" }],
      [() => c.unmonitor("c-1"), { type: "unmonitor", chat_id: "c-1" }],
      [() => c.auditList({ limit: 5 }), { type: "audit_list", limit: 5 }],
    ];
    for (const [call, expected] of calls) {
      const pending = call();
      const { ref: _ref, ...sent } = socket.last();
      assert.deepEqual(sent, expected);
      socket.reply({ done: expected.type });
      assert.deepEqual(await pending, { done: expected.type });
    }
  });

  it("asks for the desk and monitors again after a reconnect, without repeating lines", async () => {
    const { c, socket } = await connected({ role: "supervisor", token: "hlt_s" });
    const started = c.supervise();
    socket.reply({ chats: [row("c-1")], queues: [] });
    await started;
    const monitoring = c.monitor("c-1");
    socket.push({ type: "event", event: "message", chat_id: "c-1", seq: 1, text: "hi" });
    socket.reply({ chat_id: "c-1", seq: 1 });
    await monitoring;
    const texts = [];
    c.on("message", (e) => texts.push(e.text));
    socket.drop(1006);
    mock.timers.tick(1000);
    const again = FakeSocket.made.at(-1);
    again.open();
    await flush();
    again.reply({ role: "supervisor" });
    await flush();
    const types = again.sent.map((f) => f.type);
    assert.deepEqual(types, ["hello", "supervise_start", "monitor"]);
    again.push({ type: "event", event: "message", chat_id: "c-1", seq: 1, text: "hi" });
    again.push({ type: "event", event: "message", chat_id: "c-1", seq: 2, text: "new" });
    assert.deepEqual(texts, ["new"]);
    again.push({ type: "reply", ref: again.sent[1].ref, ok: true, chats: [row("c-1"), row("c-5")], queues: [] });
    await flush();
    assert.deepEqual([...c.desk.chats.keys()], ["c-1", "c-5"]);
  });
});

describe("routing fields", () => {
  it("open a chat with the skills it requires, as a list, leaving out none", async () => {
    const { c, socket } = await connected();
    c.openChat({ department: "support", name: "Mina", question: "Hallo?", skills: " de, billing,de" });
    const { ref: _ref, ...frame } = socket.last();
    assert.deepEqual(frame, { type: "open_chat", department: "support", name: "Mina", question: "Hallo?", skills: ["de", "billing"] });
    socket.reply({ chat_id: "c-1", resume_token: "hlr_x", seq: 0 });
    c.openChat({ department: "support", name: "Mina", question: "Again", skills: "" });
    assert.equal("skills" in socket.last(), false);
  });

  it("keep the queue position and estimated wait until an agent joins", async () => {
    const { c, socket } = await connected();
    const seen = [];
    c.on("queued", (fields) => seen.push(fields));
    socket.push({ type: "event", event: "chat_opened", chat_id: "c-1", resume_token: "hlr_x", seq: 0 });
    socket.push({ type: "event", event: "queued", chat_id: "c-1", position: 3, eta: 240.5 });
    assert.deepEqual(seen, [{ chat_id: "c-1", position: 3, eta: 240.5 }]);
    assert.deepEqual(c.queue, { chat_id: "c-1", position: 3, eta: 240.5 });
    socket.push({ type: "event", event: "queued", chat_id: "c-1", position: 1 });
    assert.deepEqual(c.queue, { chat_id: "c-1", position: 1, eta: null });
    socket.push({ type: "event", event: "system", chat_id: "c-1", seq: 1, at: 1, kind: "joined", agent: "ann" });
    assert.equal(c.queue, null);
  });

  it("deliver a closed department's opening time, overflow and reassigning as sent", async () => {
    const { c, socket } = await connected();
    const ended = [];
    const system = [];
    c.on("ended", (fields) => ended.push(fields));
    c.on("system", (fields) => system.push(fields));
    socket.push({ type: "event", event: "chat_opened", chat_id: "c-1", resume_token: "hlr_x", seq: 0 });
    socket.push({ type: "event", event: "system", chat_id: "c-1", seq: 1, at: 1, kind: "reassigning", agent: "ann", detail: "silence" });
    socket.push({ type: "event", event: "ended", chat_id: "c-1", reason: "closed_hours", opens_at: 1715673600 });
    assert.deepEqual(system.map((l) => [l.kind, l.detail]), [["reassigning", "silence"]]);
    assert.deepEqual(ended, [{ chat_id: "c-1", reason: "closed_hours", opens_at: 1715673600 }]);
  });

  it("list departments with their hours", async () => {
    const { c, socket } = await connected();
    const listed = c.departments();
    socket.reply({ departments: [{ id: "sales", name: "Sales", chat_enabled: true, online: false, open: false, opens_at: 1715673600 }] });
    assert.deepEqual(await listed, [{ id: "sales", name: "Sales", chat_enabled: true, online: false, open: false, opens_at: 1715673600 }]);
  });

  it("tag a chat and resolve with every tag it has", async () => {
    const { c, socket } = await connected({ role: "agent", token: "hlt_x" });
    const tagged = c.tag("c-1", new Set(["vip", "refund"]));
    const { ref: _ref, ...frame } = socket.last();
    assert.deepEqual(frame, { type: "tag", chat_id: "c-1", tags: ["vip", "refund"] });
    socket.reply({ tags: ["billing", "vip", "refund"] });
    assert.deepEqual(await tagged, ["billing", "vip", "refund"]);
  });

  it("read skills from a list or a comma-separated attribute, at most 16", () => {
    assert.deepEqual(skillList(["de", " fr ", "de", ""]), ["de", "fr"]);
    assert.deepEqual(skillList(undefined), []);
    assert.equal(skillList(Array.from({ length: 20 }, (_, i) => `s${i}`)).length, 16);
  });
});
