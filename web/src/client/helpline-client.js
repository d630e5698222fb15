/**
 * helpline-client: the wire protocol of protocol/SPEC.md for browsers (and any runtime with a
 * WebSocket).
 *
 * Theory of operation
 * -------------------
 * One HelplineClient holds one logical connection to the daemon. `connect()` opens a WebSocket,
 * sends the hello for its role and resolves with the hello reply. Requests are promises matched by
 * `ref` (replies may come in any order) and rejected with a RequestError after a timeout. Events
 * are delivered to callbacks registered with `on(name, fn)`; besides the server's events (by their
 * SPEC name) the client emits `open` (a hello succeeded, also after a reconnect), `close` (the
 * socket closed), `reconnecting` (a retry is scheduled) and `fatal` (the server refused us: no
 * retry).
 *
 * Liveness: browsers answer the server's WebSocket pings by themselves. On top of that the client
 * sends a `ping` request every `heartbeat_interval` seconds (the hello reply says how often); a
 * ping that gets no reply in time closes the socket, which starts a reconnect.
 *
 * Reconnecting: after a drop (any close but 1008, a close we asked for, or 1000 because another
 * connection resumed the chat) the client retries with exponential backoff and jitter (1 s,
 * doubling, at most 30 s, as SPEC section 9 suggests). A visitor resumes its chat: the client
 * remembers the chat id, the resume token and the last `seq` it delivered, and the next hello
 * carries them, so the server replays every line after it (SPEC section 10). With a `storage`
 * (sessionStorage) the same state survives a page reload. Lines at or below the last seq are not
 * delivered twice.
 *
 * Several nodes: given `urls` (every node's WebSocket URL), the client starts with the first and,
 * after each drop or failed attempt, moves on to the next one; the backoff grows once per round
 * through the list, so a dead node costs one quick retry, not a long wait.
 *
 * Supervisors (SPEC section 6.6; role "supervisor", or "admin" for every department): `supervise()`
 * asks for the live desk and keeps it (`desk`: chats and queues by id) up to date from the
 * `desk_changed` events, emitting `desk` with the whole picture after the reply and after each
 * change. `monitor(chatId)` watches a chat: its `message`, `system`, `whisper`, `typing` and
 * `ended` events arrive as for a participant, and `lines(chatId)` holds its transcript so far.
 * `whisper`, `barge`, `leaveChat`, `send`, `reassign`, `routingTrace`, `availableAgents` and
 * `auditList` are the other requests. After a reconnect the client asks for the desk again and
 * monitors its chats again; lines it already delivered are not delivered twice.
 *
 * Routing fields (SPEC.md): every field of a frame reaches the caller as the server sent it, and
 * a few have helpers. A visitor's `openChat(details)` takes `skills` (a list or "a,b": what the
 * agent must know), and `queue` holds the last `queued` event's `position` and `eta` (estimated
 * wait in seconds, when the server has an estimate) until an agent joins. `departments()` lists
 * each department's `chat_enabled`, `online`, `open` (within its business hours) and `opens_at`
 * (when a closed one opens next). An `ended` event with reason `closed_hours` carries `opens_at`;
 * reason `overflow` means the department overflowed with no fallback left; a `system` line of
 * kind `reassigning` says the chat is being offered to other agents because its owner went
 * silent. `tag(chatId, tags)` labels a chat (an agent in it, or a supervisor or admin of its
 * department) and resolves with every tag it has now.
 */
import { decode, encode } from "@msgpack/msgpack";

export const PROTOCOL_VERSION = 1;

/** An error reply (or a local failure such as a timeout); `code` is a SPEC section 8 code. */
export class RequestError extends Error {
  constructor(code, message) {
    super(message || code);
    this.name = "RequestError";
    this.code = code;
  }
}

/** The daemon's WebSocket URL at the origin of `loc` (a Location or URL): ws(s)://host/. */
export function defaultServerUrl(loc = globalThis.location) {
  const secure = loc.protocol === "https:";
  return `${secure ? "wss" : "ws"}://${loc.host}/`;
}

const NO_RETRY_CODES = new Set([1008]);
const LINE_EVENTS = new Set(["message", "system", "whisper"]);

/** A desk_changed event applied to a desk ({chats: Map, queues: Map}); returns the desk. */
export function applyDeskChange(desk, change) {
  for (const row of change.chats || []) desk.chats.set(row.chat_id, row);
  for (const chatId of change.removed || []) desk.chats.delete(chatId);
  for (const queue of change.queues || []) desk.queues.set(queue.department, queue.chats);
  return desk;
}

/** A desk from a supervise_start reply. */
export function deskOf(reply) {
  const desk = { chats: new Map(), queues: new Map() };
  return applyDeskChange(desk, { chats: reply.chats, removed: [], queues: reply.queues });
}

const MAX_SKILLS = 16; // open_chat's limit (SPEC section 6.2)

/** Skills as `open_chat` takes them: "de, billing" or a list -> ["de", "billing"]. */
export function skillList(value) {
  const items = Array.isArray(value) ? value : String(value ?? "").split(",");
  return [...new Set(items.map((s) => String(s).trim()).filter(Boolean))].slice(0, MAX_SKILLS);
}
const RESUME_KEYS = ["chat_id", "resume_token", "last_seq"];

export class HelplineClient {
  /**
   * @param {object} options
   * @param {string} options.url           the daemon's WebSocket URL
   * @param {string[]} [options.urls]      several nodes: every node's URL, tried in turn
   * @param {"visitor"|"agent"|"admin"|"supervisor"} options.role
   * @param {string} [options.token]       agents, supervisors and admins: the sign-in token
   * @param {Storage} [options.storage]    visitors: where the resume state is kept (sessionStorage)
   * @param {string} [options.storageKey]
   * @param {number} [options.requestTimeout]  ms before a request is given up (default 10000)
   * @param {boolean} [options.reconnect]  retry after a drop (default true)
   * @param {number} [options.backoffInitial] ms (default 1000)
   * @param {number} [options.backoffMax]  ms (default 30000)
   * @param {Function} [options.WebSocket] a WebSocket constructor (tests pass a fake)
   * @param {Function} [options.random]    Math.random replacement (tests)
   */
  constructor(options) {
    this.urls = options.urls?.length ? [...options.urls] : [options.url];
    this.urlIndex = 0;
    this.url = this.urls[0];
    this.role = options.role;
    this.token = options.token;
    this.storage = options.storage || null;
    this.storageKey = options.storageKey || "helpline.resume";
    this.requestTimeout = options.requestTimeout ?? 10000;
    this.reconnect = options.reconnect ?? true;
    this.backoffInitial = options.backoffInitial ?? 1000;
    this.backoffMax = options.backoffMax ?? 30000;
    this.WebSocket = options.WebSocket || globalThis.WebSocket;
    this.random = options.random || Math.random;
    this.handlers = new Map();
    this.pending = new Map();
    this.nextRef = 1;
    this.socket = null;
    this.state = "idle"; // idle | connecting | open | waiting | closed
    this.attempt = 0;
    this.retryTimer = null;
    this.pingTimer = null;
    this.hello = null;
    this.queue = null; // a visitor's last `queued` event: {chat_id, position, eta}
    this.resume = this.loadResume();
    // supervisors: the desk (while supervising) and the monitored chats' transcripts by chat id
    this.supervising = false;
    this.desk = null;
    this.monitored = new Map();
    this.on("open", () => this.resubscribe());
  }

  /**
   * A visitor opens its chat: `details` are open_chat's fields (department, name, question,
   * email...); `skills` may be a list or "a,b" and is left out when empty.
   */
  openChat(details) {
    const fields = { ...details };
    const skills = skillList(fields.skills);
    if (skills.length) fields.skills = skills;
    else delete fields.skills;
    this.queue = null;
    return this.request("open_chat", fields);
  }

  /** Adds tags to a chat; resolves with every tag the chat has now, in the order given. */
  async tag(chatId, tags) {
    const reply = await this.request("tag", { chat_id: chatId, tags: [...tags] });
    return reply.tags;
  }

  /** The departments: {id, name, chat_enabled, online, open, opens_at?} each. */
  async departments() {
    return (await this.request("departments")).departments;
  }

  /** Calls `fn(fields)` for every event `name`; returns a function that unsubscribes. */
  on(name, fn) {
    if (!this.handlers.has(name)) this.handlers.set(name, new Set());
    this.handlers.get(name).add(fn);
    return () => this.handlers.get(name)?.delete(fn);
  }

  emit(name, fields) {
    for (const fn of [...(this.handlers.get(name) || [])]) {
      try {
        fn(fields);
      } catch (error) {
        console.error(`helpline: a handler of ${name} failed`, error);
      }
    }
    for (const fn of [...(this.handlers.get("*") || [])]) fn(name, fields);
  }

  /** Opens the connection and says hello; resolves with the hello reply. */
  connect() {
    this.closedByUs = false;
    clearTimeout(this.retryTimer);
    return this.open();
  }

  open() {
    this.state = "connecting";
    return new Promise((resolve, reject) => {
      let socket;
      try {
        socket = new this.WebSocket(this.url);
      } catch (error) {
        this.state = "closed";
        reject(new RequestError("disconnected", String(error)));
        this.scheduleRetry();
        return;
      }
      socket.binaryType = "arraybuffer";
      this.socket = socket;
      let settled = false;
      socket.onopen = () => {
        this.sendHello().then(
          (reply) => {
            settled = true;
            this.attempt = 0;
            this.state = "open";
            this.startHeartbeat(reply.heartbeat_interval);
            resolve(reply);
            this.emit("open", reply);
          },
          (error) => {
            settled = true;
            reject(error);
          },
        );
      };
      socket.onmessage = (event) => this.receive(event.data);
      socket.onclose = (event) => {
        if (this.socket !== socket) return;
        this.socket = null;
        this.stopHeartbeat();
        this.failPending(new RequestError("disconnected", "the connection closed"));
        const wasOpen = this.state === "open";
        this.state = "closed";
        const info = { code: event.code, reason: event.reason, wasOpen };
        this.emit("close", info);
        if (!settled) {
          settled = true;
          reject(new RequestError("disconnected", `closed with ${event.code}`));
        }
        if (NO_RETRY_CODES.has(event.code)) {
          this.emit("fatal", info);
        } else if (event.code === 1000 && this.role === "visitor" && wasOpen) {
          this.emit("replaced", info); // another connection resumed the chat
        } else {
          this.scheduleRetry();
        }
      };
      socket.onerror = () => {};
    });
  }

  sendHello() {
    const fields = { version: PROTOCOL_VERSION, role: this.role };
    if (this.token) fields.token = this.token;
    if (this.role === "visitor" && this.resume) {
      fields.resume_token = this.resume.resume_token;
      fields.last_seq = this.resume.last_seq;
      fields.chat_id = this.resume.chat_id;
    }
    return this.request("hello", fields, { beforeHello: true }).then((reply) => {
      this.hello = reply;
      if (this.role === "visitor" && this.resume && !reply.resumed) this.setResume(null);
      return reply;
    });
  }

  /**
   * Sends a request; resolves with the reply's fields, rejects with a RequestError.
   * @param {string} type
   * @param {object} [fields]  undefined and null values are left out
   * @param {{timeout?: number}} [options]
   */
  request(type, fields = {}, options = {}) {
    if (!this.socket || (this.state !== "open" && !options.beforeHello)) {
      return Promise.reject(new RequestError("disconnected", "not connected"));
    }
    const ref = this.nextRef++;
    const frame = { type, ref };
    for (const [key, value] of Object.entries(fields)) {
      if (value !== undefined && value !== null) frame[key] = value;
    }
    return new Promise((resolve, reject) => {
      const timeout = options.timeout ?? this.requestTimeout;
      const timer = setTimeout(() => {
        this.pending.delete(ref);
        reject(new RequestError("timeout", `${type} got no reply within ${timeout} ms`));
      }, timeout);
      this.pending.set(ref, { resolve, reject, timer, type });
      try {
        this.socket.send(encode(frame));
      } catch (error) {
        clearTimeout(timer);
        this.pending.delete(ref);
        reject(new RequestError("disconnected", String(error)));
      }
    });
  }

  receive(data) {
    let frame;
    try {
      frame = decode(data instanceof ArrayBuffer ? new Uint8Array(data) : data);
    } catch (error) {
      console.error("helpline: an undecodable frame", error);
      return;
    }
    if (!frame || typeof frame !== "object") return;
    if (frame.type === "reply") {
      const waiting = this.pending.get(frame.ref);
      if (!waiting) return;
      this.pending.delete(frame.ref);
      clearTimeout(waiting.timer);
      if (frame.ok) {
        const { type: _type, ref: _ref, ok: _ok, ...result } = frame;
        if (waiting.type === "open_chat") this.track("chat_opened", result);
        waiting.resolve(result);
      } else {
        const error = frame.error || {};
        waiting.reject(new RequestError(error.code || "internal", error.message));
      }
    } else if (frame.type === "event") {
      const { type: _type, event: name, ...fields } = frame;
      if (this.role === "visitor" && !this.track(name, fields)) return;
      if (!this.watch(name, fields)) return;
      this.emit(name, fields);
      if (name === "desk_changed" && this.desk) this.emit("desk", applyDeskChange(this.desk, fields));
    }
  }

  /** Keeps a visitor's resume state; returns false for a line already delivered. */
  track(name, fields) {
    if (name === "chat_opened") {
      const lastSeq = this.resume?.chat_id === fields.chat_id ? this.resume.last_seq : fields.seq;
      this.setResume({
        chat_id: fields.chat_id,
        resume_token: fields.resume_token,
        last_seq: Math.min(lastSeq ?? 0, fields.seq ?? 0),
      });
    } else if (name === "message" || name === "system") {
      if (this.resume && this.resume.chat_id === fields.chat_id) {
        if (fields.seq <= this.resume.last_seq) return false;
        this.setResume({ ...this.resume, last_seq: fields.seq });
      }
    } else if (name === "ended") {
      if (this.resume && this.resume.chat_id === fields.chat_id) this.setResume(null);
      this.queue = null;
    }
    if (name === "queued") {
      this.queue = { chat_id: fields.chat_id, position: fields.position, eta: fields.eta ?? null };
    } else if (name === "system" && (fields.kind === "joined" || fields.kind === "transferred")) {
      this.queue = null;
    }
    return true;
  }

  /** Keeps a monitored chat's transcript; returns false for a line already delivered. */
  watch(name, fields) {
    const lines = this.monitored.get(fields.chat_id);
    if (!lines) return true;
    if (LINE_EVENTS.has(name)) {
      return this.note(fields.chat_id, { event: name, ...fields });
    } else if (name === "ended") {
      this.monitored.delete(fields.chat_id);
    }
    return true;
  }

  // -- supervisors (SPEC section 6.6) ---------------------------------------------------------

  /** Asks for the live desk; resolves with it ({chats, queues} Maps) and keeps it up to date. */
  async supervise() {
    const reply = await this.request("supervise_start");
    this.supervising = true;
    this.desk = deskOf(reply);
    this.emit("desk", this.desk);
    return this.desk;
  }

  /** No more desk events. */
  async stopSupervising() {
    this.supervising = false;
    this.desk = null;
    return this.request("supervise_stop");
  }

  /** Watches a chat unseen; its lines so far arrive as events first. Resolves with the reply. */
  async monitor(chatId) {
    if (!this.monitored.has(chatId)) this.monitored.set(chatId, []);
    try {
      return await this.request("monitor", { chat_id: chatId });
    } catch (error) {
      this.monitored.delete(chatId);
      throw error;
    }
  }

  /** Stops watching a chat. */
  async unmonitor(chatId) {
    this.monitored.delete(chatId);
    return this.request("unmonitor", { chat_id: chatId });
  }

  /** The lines (message, system and whisper events) of a monitored or barged chat so far. */
  lines(chatId) {
    return this.monitored.get(chatId) || [];
  }

  /**
   * Adds a line to a monitored or barged chat's transcript unless its seq is there already
   * (a supervisor's own lines come back in replies, not events); returns whether it was new.
   */
  note(chatId, line) {
    const lines = this.monitored.get(chatId);
    if (!lines || lines.some((known) => known.seq === line.seq)) return false;
    lines.push(line);
    if (lines.length > 1 && lines[lines.length - 2].seq > line.seq) lines.sort((a, b) => a.seq - b.seq);
    return true;
  }

  /** A note to the chat's agents that the visitor never sees; resolves with {seq, at}. */
  whisper(chatId, text) {
    return this.request("whisper", { chat_id: chatId, text });
  }

  /** Joins the chat as a participant (supervisors only); its lines keep coming as events. */
  async barge(chatId) {
    if (!this.monitored.has(chatId)) this.monitored.set(chatId, []);
    return this.request("barge", { chat_id: chatId });
  }

  /** Leaves a chat barged into. */
  async leaveChat(chatId) {
    this.monitored.delete(chatId);
    return this.request("leave_chat", { chat_id: chatId });
  }

  /** Writes in a chat barged into; resolves with {seq, at}. */
  send(chatId, text, clientMsgId) {
    return this.request("send", { chat_id: chatId, text, client_msg_id: clientMsgId });
  }

  /** Starts the transfer of a chat to an agent or a department for its owner: {offer_id}. */
  reassign(chatId, { toAgent, toDepartment, note } = {}) {
    return this.request("reassign", { chat_id: chatId, to_agent: toAgent, to_department: toDepartment, note });
  }

  /** The routing flight recorder of one chat: {chat_id, live, dropped, steps}. */
  routingTrace(chatId) {
    return this.request("routing_trace", { chat_id: chatId });
  }

  /** The agents of a department and whether each could take a chat now. */
  availableAgents(department) {
    return this.request("available_agents", { department });
  }

  /** The audit log (admins): {entries, truncated}. */
  auditList(filters = {}) {
    return this.request("audit_list", filters);
  }

  /** After a reconnect: the desk again, and the monitored chats again (duplicates dropped). */
  resubscribe() {
    if (this.supervising) this.supervise().catch(() => {});
    for (const chatId of this.monitored.keys()) {
      this.request("monitor", { chat_id: chatId }).catch(() => {});
    }
  }

  /** Forgets the visitor's chat (after `leave`, or when the page wants a fresh start). */
  forgetChat() {
    this.setResume(null);
  }

  setResume(resume) {
    this.resume = resume;
    if (!this.storage) return;
    try {
      if (resume) this.storage.setItem(this.storageKey, JSON.stringify(resume));
      else this.storage.removeItem(this.storageKey);
    } catch {
      // storage full or denied: the chat still resumes while the page lives
    }
  }

  loadResume() {
    if (!this.storage) return null;
    try {
      const saved = JSON.parse(this.storage.getItem(this.storageKey) || "null");
      if (saved && RESUME_KEYS.every((key) => key in saved)) return saved;
    } catch {
      // unreadable: start afresh
    }
    return null;
  }

  startHeartbeat(intervalSeconds) {
    this.stopHeartbeat();
    const every = Math.max(1, Number(intervalSeconds) || 20) * 1000;
    this.pingTimer = setInterval(() => {
      this.request("ping", {}, { timeout: Math.min(every, this.requestTimeout) }).catch((error) => {
        if (error.code === "timeout" && this.socket) this.socket.close(4001, "ping timeout");
      });
    }, every);
  }

  stopHeartbeat() {
    clearInterval(this.pingTimer);
    this.pingTimer = null;
  }

  failPending(error) {
    for (const waiting of this.pending.values()) {
      clearTimeout(waiting.timer);
      waiting.reject(error);
    }
    this.pending.clear();
  }

  /** The delay before retry number `attempt` (0-based), in ms: doubling, capped, jittered. */
  backoff(attempt) {
    const ceiling = Math.min(this.backoffMax, this.backoffInitial * 2 ** attempt);
    return Math.round(ceiling / 2 + (this.random() * ceiling) / 2);
  }

  scheduleRetry() {
    if (this.closedByUs || !this.reconnect) return;
    const round = Math.floor(this.attempt / this.urls.length);
    const delay = this.attempt % this.urls.length ? 0 : this.backoff(round);
    this.attempt++;
    this.urlIndex = (this.urlIndex + 1) % this.urls.length;
    this.url = this.urls[this.urlIndex];
    this.state = "waiting";
    this.emit("reconnecting", { delay, attempt: this.attempt });
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => {
      this.open().catch(() => {});
    }, delay);
  }

  /**
   * Several nodes: a new list of URLs (a page learns it from the server's `/nodes`). The URL in
   * use stays in use; the next retry goes to the one after it in the new list, or to the first
   * when it is no longer listed.
   */
  setUrls(urls) {
    if (!urls?.length) return;
    this.urls = [...urls];
    const index = this.urls.indexOf(this.url);
    this.urlIndex = index >= 0 ? index : this.urls.length - 1;
  }

  /** Closes the connection for good (no reconnect). */
  close(code = 1000, reason = "") {
    this.closedByUs = true;
    clearTimeout(this.retryTimer);
    this.stopHeartbeat();
    const socket = this.socket;
    this.state = "closed";
    if (socket) socket.close(code, reason);
  }
}

/** Opens a client and says hello: `await connect({url, role, token})`. */
export async function connect(options) {
  const client = new HelplineClient(options);
  await client.connect();
  return client;
}
