// The slipway browser client: one WebSocket to a slipway gateway that carries
// messages of any size (envelope mode, docs/envelope.md), reconnects by itself and
// reports what happens as DOM events. No dependencies; an ES module, no build step.
// In envelope mode it also resumes (docs/resume.md, resume.js): it tracks its position
// in each channel, reconnects with them, drops duplicates and reports each recovery.

import { backoffDelay, backoffOptions } from "./backoff.js";
import {
  DOWNLOAD,
  FAILURE,
  MESSAGE,
  RECOVERY,
  UPLOAD_REQUEST,
  UPLOAD_TARGET,
  dataText,
  decode,
  encodeDownload,
  encodeUploadRequest,
  fitsInline,
  messageFrame,
  stripQuery,
} from "./envelope.js";
import { Tracker, withResume } from "./resume.js";
import {
  EnvelopeError,
  QueueFullError,
  RemoteError,
  SocketClosedError,
  TransferError,
} from "./errors.js";

/** The client's states, in the order a client goes through them. */
export const State = Object.freeze({
  IDLE: "idle", // constructed, connect() not called yet
  CONNECTING: "connecting", // the first connection is being opened
  OPEN: "open",
  RECONNECTING: "reconnecting", // waiting for, or making, a reconnection attempt
  CLOSED: "closed", // for good: close() was called, or reconnection gave up
});

const WS_OPEN = 1;
const GOING_AWAY = 1001; // API Gateway's close at a connection's 2-hour limit

/** @typedef {{payload: any, resolve: (id: any) => void, reject: (e: Error) => void}} QueueItem */
const FAILED = Symbol("failed");

/** `statechange`: `state`, `previous`; while reconnecting also `attempt` (1-based) and
 * `delay` (ms before it is made); `code`/`reason` of the close that caused it. */
export class SlipwayStateEvent extends Event {
  /**
   * @param {string} state
   * @param {string} previous
   * @param {{attempt?: number, delay?: number, code?: number, reason?: string}} [detail]
   */
  constructor(state, previous, detail = {}) {
    super("statechange");
    this.state = state;
    this.previous = previous;
    this.attempt = detail.attempt ?? 0;
    this.delay = detail.delay ?? 0;
    this.code = detail.code ?? 0;
    this.reason = detail.reason ?? "";
  }
}

/** `message`: `data` is the JSON value (envelope mode) or the frame (raw mode:
 * a string, or an ArrayBuffer for a binary frame). */
export class SlipwayMessageEvent extends Event {
  /** @param {unknown} data */
  constructor(data) {
    super("message");
    this.data = data;
  }
}

/** `recovery`: a `[6]` frame, after every subscribe of the connection to `channel`.
 * `status`: "none" (no position presented), "recovered" (`replayed` messages were
 * replayed just before), "failed" (`reason`: too_old, epoch_changed, unknown_id,
 * history_off; reload the channel's state). `epoch`/`offset`: the channel's position now. */
export class SlipwayRecoveryEvent extends Event {
  /** @param {import("./envelope.js").RecoveryFrame} frame */
  constructor(frame) {
    super("recovery");
    this.channel = frame.channel;
    this.status = frame.recovery;
    this.replayed = frame.replayed;
    this.reason = frame.reason;
    this.epoch = frame.epoch;
    this.offset = frame.offset;
  }
}

/** `error`: `error` is a SlipwayError (see errors.js) not tied to a send() call. */
export class SlipwayErrorEvent extends Event {
  /** @param {Error} error */
  constructor(error) {
    super("error");
    this.error = error;
    this.message = error.message;
  }
}

/** `open`: a connection opened; `reconnected` is false for the first one. */
export class SlipwayOpenEvent extends Event {
  /** @param {boolean} reconnected */
  constructor(reconnected) {
    super("open");
    this.reconnected = reconnected;
  }
}

/** `close`: the client closed for good (after close(), or when reconnection gave up). */
export class SlipwayCloseEvent extends Event {
  /**
   * @param {number} code
   * @param {string} reason
   */
  constructor(code, reason) {
    super("close");
    this.code = code;
    this.reason = reason;
  }
}

/**
 * `url` with `envelope=1` in its query string (any other `envelope` parameter removed).
 * @param {string} url
 * @returns {string}
 */
export function withEnvelope(url) {
  const hash = url.indexOf("#");
  const fragment = hash === -1 ? "" : url.slice(hash);
  const base = hash === -1 ? url : url.slice(0, hash);
  const q = base.indexOf("?");
  const path = q === -1 ? base : base.slice(0, q);
  const query = q === -1 ? "" : base.slice(q + 1);
  const params = query.split("&").filter((p) => p && p.split("=", 1)[0] !== "envelope");
  return `${path}?${[...params, "envelope=1"].join("&")}${fragment}`;
}

/**
 * A connection to a slipway gateway that survives drops and carries any size.
 * See client/js/README.md for the options, events and errors.
 */
export class SlipwayClient extends EventTarget {
  #url;
  #envelope;
  /** @type {Required<import("./backoff.js").BackoffOptions> | null} */
  #reconnect;
  #maxQueue;
  #openTimeout;
  #uploadTimeout;
  #httpTimeout;
  #protocols;
  #resume;
  /** @type {Tracker | null} */
  #tracker;
  #WebSocket;
  #fetch;

  /** @type {string} */
  #state = State.IDLE;
  /** @type {WebSocket | null} */
  #ws = null;
  #everOpened = false;
  #closing = false;
  #nextId = 1;
  #attempt = 0;
  #reconnects = 0;
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  #timer = undefined;
  /** @type {QueueItem[]} */
  #queue = [];
  #pumping = false;
  #inOpen = false; // an "open" listener is running: its sends go first
  #front = 0;
  /** @type {Map<number, {resolve: (f: any) => void, reject: (e: Error) => void}>} */
  #pending = new Map();
  /** @type {Promise<unknown>} */
  #delivery = Promise.resolve();
  /** @type {{resolve: () => void, reject: (e: Error) => void} | null} */
  #connectWaiter = null;

  /** Close code and reason of the last connection that ended (0 and "" before). */
  closeCode = 0;
  closeReason = "";

  /**
   * @param {string} url the gateway's ws:// or wss:// URL
   * @param {import("./index.js").SlipwayClientOptions} [options]
   */
  constructor(url, options = {}) {
    super();
    if (typeof url !== "string" || !/^wss?:\/\//i.test(url)) {
      throw new TypeError(`url must be a ws:// or wss:// URL, not ${JSON.stringify(url)}`);
    }
    this.#envelope = options.envelope ?? true;
    this.#url = this.#envelope ? withEnvelope(url) : url;
    this.#reconnect = options.reconnect === false ? null : backoffOptions(options.reconnect ?? {});
    this.#maxQueue = positive(options.maxQueue ?? 100, "maxQueue");
    this.#openTimeout = positive(options.openTimeout ?? 10_000, "openTimeout");
    this.#uploadTimeout = positive(options.uploadTimeout ?? 30_000, "uploadTimeout");
    this.#httpTimeout = positive(options.httpTimeout ?? 60_000, "httpTimeout");
    this.#protocols = options.protocols ?? [];
    this.#resume = options.resume ?? null;
    const positions = options.positions ?? {};
    this.#tracker =
      this.#envelope && positions !== false ? new Tracker(positions, options.floors ?? {}) : null;
    this.#WebSocket = options.WebSocket ?? globalThis.WebSocket;
    const fetchImpl = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
    this.#fetch = fetchImpl;
  }

  /** The URL dialled (with `envelope=1` in envelope mode). */
  get url() {
    return this.#url;
  }
  /** Whether the client speaks envelope frames. */
  get envelope() {
    return this.#envelope;
  }
  /** One of State's values. */
  get state() {
    return this.#state;
  }
  /** Reconnections that succeeded since connect(). */
  get reconnects() {
    return this.#reconnects;
  }
  /** The reconnection attempt in progress (1-based), 0 when none. */
  get attempt() {
    return this.#attempt;
  }
  /** Messages waiting for the connection (not yet being sent). */
  get queued() {
    return this.#queue.length;
  }
  /** Where the client is in each channel, {channel: {epoch, offset}} (a copy); empty in
   * raw mode, with `positions: false`, and while the gateway keeps no history. */
  get positions() {
    return this.#tracker?.positions ?? {};
  }

  /** Each channel's floor token (a copy): save it with `positions` to resume from them. */
  get floors() {
    return this.#tracker?.floors ?? {};
  }

  /** Stop presenting a position for `channel` (the backend no longer subscribes us).
   * @param {string} channel */
  forget(channel) {
    this.#tracker?.forget(channel);
  }

  // -- lifecycle ---------------------------------------------------------------------

  /**
   * Open the connection; resolves when it is open. The first attempt is not retried:
   * its failure rejects (SocketClosedError, code "connect_failed") and closes the client.
   * @returns {Promise<void>}
   */
  connect() {
    if (this.#state !== State.IDLE) {
      return Promise.reject(new Error("connect() was already called on this client"));
    }
    this.#setState(State.CONNECTING);
    return new Promise((resolve, reject) => {
      this.#connectWaiter = { resolve, reject };
      this.#dial();
    });
  }

  /**
   * Close the connection and stop reconnecting; resolves once closed. Messages still
   * queued are rejected with SocketClosedError. `code`: 1000 or 3000-4999.
   * @param {number} [code]
   * @param {string} [reason]
   * @returns {Promise<void>}
   */
  close(code = 1000, reason = "") {
    if (this.#state === State.CLOSED) return Promise.resolve();
    this.#closing = true;
    const closed = new Promise((resolve) => {
      this.addEventListener("close", () => resolve(undefined), { once: true });
    });
    clearTimeout(this.#timer);
    const ws = this.#ws;
    if (ws !== null && ws.readyState <= WS_OPEN) {
      ws.close(code, reason); // its close event finishes the client
    } else {
      this.#finish();
    }
    return /** @type {Promise<void>} */ (closed);
  }

  // -- sending -----------------------------------------------------------------------

  /**
   * Send one message; resolves with its id (envelope mode; ids count from 1 on each
   * connection) or undefined (raw mode) once it is handed to the socket, after its
   * upload for a large one. While the client is connecting or reconnecting the
   * message waits in a queue of at most `maxQueue` messages (QueueFullError beyond).
   * @param {unknown} data envelope mode: any JSON value; raw mode: a string or binary data
   * @returns {Promise<number | undefined>}
   */
  send(data) {
    if (this.#state === State.IDLE) {
      return Promise.reject(new SocketClosedError("not connected: call connect() first"));
    }
    if (this.#state === State.CLOSED || this.#closing) {
      return Promise.reject(new SocketClosedError("the client is closed"));
    }
    let payload;
    try {
      payload = this.#envelope ? dataText(data) : rawPayload(data);
    } catch (error) {
      return Promise.reject(error);
    }
    if (this.#queue.length >= this.#maxQueue) {
      return Promise.reject(new QueueFullError(this.#maxQueue));
    }
    return new Promise((resolve, reject) => {
      const item = { payload, resolve, reject };
      if (this.#inOpen) {
        // From an "open" listener (to rejoin a room, say): before what waited for the
        // connection, in the order sent; sent once the listeners are done.
        this.#queue.splice(this.#front++, 0, item);
      } else {
        this.#queue.push(item);
        this.#pump();
      }
    });
  }

  async #pump() {
    if (this.#pumping) return;
    this.#pumping = true;
    try {
      while (this.#queue.length > 0 && this.#state === State.OPEN && this.#ws !== null) {
        const ws = this.#ws;
        const item = /** @type {QueueItem} */ (this.#queue.shift());
        try {
          item.resolve(await this.#sendNow(ws, item.payload));
        } catch (error) {
          item.reject(/** @type {Error} */ (error));
        }
      }
    } finally {
      this.#pumping = false;
    }
  }

  /**
   * @param {WebSocket} ws
   * @param {any} payload the data's JSON text (envelope mode) or the raw frame
   */
  async #sendNow(ws, payload) {
    if (!this.#envelope) {
      ws.send(payload);
      return undefined;
    }
    const id = this.#nextId++;
    const frame = messageFrame(id, payload);
    if (fitsInline(frame)) {
      ws.send(frame);
    } else {
      await this.#upload(ws, id, payload);
    }
    return id;
  }

  /**
   * `[2, id]` -> `[3, id, url, method, headers]` -> PUT -> `[4, id, url, "GET", {}]`.
   * @param {WebSocket} ws
   * @param {number} id
   * @param {string} json
   */
  async #upload(ws, id, json) {
    /** @type {import("./envelope.js").UploadTargetFrame} */
    const target = await new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(
          new TransferError(id, "PUT", `no upload URL from the gateway within ${this.#uploadTimeout} ms`),
        );
      }, this.#uploadTimeout);
      this.#pending.set(id, {
        resolve: (frame) => {
          clearTimeout(timer);
          resolve(frame);
        },
        reject: (error) => {
          clearTimeout(timer);
          reject(error);
        },
      });
      ws.send(encodeUploadRequest(id));
    });
    await this.#http(id, target.method, target.url, target.headers, json);
    if (this.#ws !== ws || ws.readyState !== WS_OPEN) {
      throw new SocketClosedError(
        `the connection closed while message ${id} was uploaded: it was not sent`,
      );
    }
    ws.send(encodeDownload(id, stripQuery(target.url)));
  }

  /**
   * One upload or download through a presigned URL; the body's text.
   * @param {number} id
   * @param {string} method
   * @param {string} url
   * @param {Record<string, string>} headers
   * @param {string | undefined} body
   * @returns {Promise<string>}
   */
  async #http(id, method, url, headers, body) {
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), this.#httpTimeout);
    try {
      const response = await this.#fetch(url, {
        method,
        headers,
        body,
        signal: abort.signal,
        credentials: "omit",
        cache: "no-store",
      });
      const text = await response.text();
      if (!response.ok) {
        const detail = `HTTP ${response.status}: ${text.slice(0, 200).trim()}`;
        throw new TransferError(id, method, detail, response.status);
      }
      return text;
    } catch (error) {
      if (error instanceof TransferError) throw error;
      const detail = abort.signal.aborted
        ? `timed out after ${this.#httpTimeout} ms`
        : String(/** @type {Error} */ (error)?.message ?? error);
      throw new TransferError(id, method, detail);
    } finally {
      clearTimeout(timer);
    }
  }

  // -- receiving -----------------------------------------------------------------------

  /** @param {unknown} raw */
  #handle(raw) {
    if (!this.#envelope || typeof raw !== "string") {
      this.#deliver(Promise.resolve(raw));
      return;
    }
    let frame;
    try {
      frame = decode(raw);
    } catch (error) {
      const bad = /** @type {EnvelopeError} */ (error);
      if (bad.frame !== undefined && this.#resume?.frame?.(bad.frame, this.#resumeContext(false))) {
        return; // the resume extension took it
      }
      this.#report(bad);
      return;
    }
    switch (frame.type) {
      case MESSAGE:
        if (frame.stamp && this.#tracker && !this.#tracker.admit(frame.stamp)) break; // a duplicate
        this.#deliver(Promise.resolve(frame.data));
        break;
      case DOWNLOAD:
        if (frame.stamp && this.#tracker && !this.#tracker.admit(frame.stamp)) break; // not fetched
        this.#deliver(this.#download(frame));
        break;
      case RECOVERY: {
        this.#tracker?.recover(frame);
        const event = new SlipwayRecoveryEvent(frame);
        // In turn with the messages: after the replayed ones are delivered.
        this.#delivery = this.#delivery.then(() => this.dispatchEvent(event));
        break;
      }
      case UPLOAD_TARGET:
      case FAILURE: {
        const waiting = this.#pending.get(frame.id);
        this.#pending.delete(frame.id);
        if (frame.type === UPLOAD_TARGET) {
          if (waiting) waiting.resolve(frame);
          else this.#report(new EnvelopeError(`upload URL for message ${frame.id}, which asked for none`));
        } else {
          const error = new RemoteError(frame.id, frame.code, frame.message);
          if (waiting) waiting.reject(error);
          else this.#report(error);
        }
        break;
      }
      case UPLOAD_REQUEST:
        this.#report(new EnvelopeError(`the gateway sent an upload request [2, ${frame.id}]`));
        break;
    }
  }

  /** @param {import("./envelope.js").DownloadFrame} frame */
  async #download(frame) {
    const text = await this.#http(frame.id, frame.method, frame.url, frame.headers, undefined);
    try {
      return JSON.parse(text);
    } catch (error) {
      throw new TransferError(frame.id, frame.method, `the body is not JSON: ${error}`);
    }
  }

  /** Messages are delivered in the order they arrived, downloads included (they are
   * fetched at once, in parallel, and delivered in turn).
   * @param {Promise<unknown>} value */
  #deliver(value) {
    const settled = value.catch((error) => {
      this.#report(error);
      return FAILED;
    });
    this.#delivery = this.#delivery
      .then(() => settled)
      .then((data) => {
        if (data !== FAILED) this.dispatchEvent(new SlipwayMessageEvent(data));
      });
  }

  // -- the connection's life -------------------------------------------------------------

  #dial() {
    let url = this.#tracker
      ? withResume(this.#url, this.#tracker.positions, this.#tracker.floors)
      : this.#url;
    let ws;
    try {
      if (this.#resume?.url) {
        url = this.#resume.url(url, { reconnects: this.#reconnects, attempt: this.#attempt });
      }
      ws = new this.#WebSocket(url, this.#protocols);
    } catch (error) {
      // A malformed URL (SyntaxError): no close event will come.
      this.#report(/** @type {Error} */ (error));
      this.#dropped(false, 1006, String(/** @type {Error} */ (error)?.message ?? error));
      return;
    }
    ws.binaryType = "arraybuffer";
    this.#ws = ws;
    let opened = false;
    const timer = setTimeout(() => {
      if (!opened) ws.close(); // a socket still connecting fails with 1006
    }, this.#openTimeout);
    ws.onopen = () => {
      opened = true;
      clearTimeout(timer);
      this.#opened(ws);
    };
    ws.onmessage = (event) => {
      if (this.#ws === ws) this.#handle(event.data);
    };
    ws.onerror = () => {}; // a close event always follows, with what there is to know
    ws.onclose = (event) => {
      clearTimeout(timer);
      if (this.#ws !== ws) return;
      this.#ws = null;
      this.#dropped(opened, event.code, event.reason);
    };
  }

  /** @param {WebSocket} ws */
  #opened(ws) {
    if (this.#closing) {
      ws.close(1000);
      return;
    }
    const reconnected = this.#everOpened;
    this.#everOpened = true;
    this.#nextId = 1; // ids are per connection
    if (reconnected) this.#reconnects++;
    const go = () => {
      if (this.#ws !== ws || ws.readyState !== WS_OPEN) return;
      this.#attempt = 0;
      this.#setState(State.OPEN);
      this.#inOpen = true;
      this.#front = 0;
      try {
        this.dispatchEvent(new SlipwayOpenEvent(reconnected));
      } finally {
        this.#inOpen = false;
      }
      const waiter = this.#connectWaiter;
      this.#connectWaiter = null;
      waiter?.resolve();
      this.#pump();
    };
    const hook = this.#resume?.opened;
    if (!hook) {
      go();
      return;
    }
    // The resume extension point: it may send frames before the queue is flushed.
    Promise.resolve()
      .then(() => hook(this.#resumeContext(reconnected, ws)))
      .catch((error) => this.#report(error))
      .then(go);
  }

  /**
   * @param {boolean} reconnected
   * @param {WebSocket | null} [ws]
   * @returns {import("./index.js").ResumeContext}
   */
  #resumeContext(reconnected, ws = this.#ws) {
    return {
      reconnected,
      reconnects: this.#reconnects,
      sendFrame: (text) => {
        if (ws === null || ws.readyState !== WS_OPEN) {
          throw new SocketClosedError("the connection is not open");
        }
        ws.send(text);
      },
    };
  }

  /**
   * A connection (or an attempt at one) ended.
   * @param {boolean} opened
   * @param {number} code
   * @param {string} reason
   */
  #dropped(opened, code, reason) {
    this.closeCode = code;
    this.closeReason = reason;
    const gone = new SocketClosedError(`the connection closed (${code}) before the message was sent`);
    for (const waiting of this.#pending.values()) waiting.reject(gone);
    this.#pending.clear();
    if (this.#closing) {
      this.#finish();
      return;
    }
    if (!this.#everOpened) {
      this.#finish(
        new SocketClosedError(`could not connect to ${this.#url} (close code ${code})`, "connect_failed"),
      );
      return;
    }
    if (!opened) {
      this.#report(
        new SocketClosedError(`reconnection attempt ${this.#attempt} failed (close code ${code})`, "connect_failed"),
      );
    }
    const backoff = this.#reconnect;
    if (backoff === null) {
      this.#finish();
      return;
    }
    if (this.#attempt >= backoff.maxAttempts) {
      const error = new SocketClosedError(`gave up reconnecting after ${this.#attempt} attempts`);
      this.#report(error);
      this.#finish(error);
      return;
    }
    // After the gateway's "going away" (API Gateway's 2-hour cut) the first attempt goes
    // at once: connections reach that age one by one, not all together.
    const immediate = opened && code === GOING_AWAY && this.#attempt === 0;
    const delay = immediate ? 0 : backoffDelay(this.#attempt, backoff);
    this.#attempt++;
    this.#setState(State.RECONNECTING, { attempt: this.#attempt, delay, code, reason });
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      if (!this.#closing) this.#dial();
    }, delay);
  }

  /** @param {Error} [error] what the queued messages and connect() are rejected with */
  #finish(error) {
    if (this.#state === State.CLOSED) return;
    clearTimeout(this.#timer);
    const closed = error ?? new SocketClosedError("the client is closed");
    for (const item of this.#queue.splice(0)) item.reject(closed);
    for (const waiting of this.#pending.values()) waiting.reject(closed);
    this.#pending.clear();
    const waiter = this.#connectWaiter;
    this.#connectWaiter = null;
    waiter?.reject(closed);
    this.#setState(State.CLOSED, { code: this.closeCode, reason: this.closeReason });
    this.dispatchEvent(new SlipwayCloseEvent(this.closeCode, this.closeReason));
  }

  /**
   * @param {string} state
   * @param {{attempt?: number, delay?: number, code?: number, reason?: string}} [detail]
   */
  #setState(state, detail) {
    const previous = this.#state;
    if (state === previous && state !== State.RECONNECTING) return;
    this.#state = state;
    this.dispatchEvent(new SlipwayStateEvent(state, previous, detail));
  }

  /** @param {Error} error */
  #report(error) {
    this.dispatchEvent(new SlipwayErrorEvent(error));
  }
}

/**
 * @param {number} value
 * @param {string} name
 */
function positive(value, name) {
  if (typeof value !== "number" || !(value > 0)) {
    throw new RangeError(`${name} must be a number > 0`);
  }
  return value;
}

/** @param {unknown} data */
function rawPayload(data) {
  if (
    typeof data === "string" ||
    data instanceof ArrayBuffer ||
    ArrayBuffer.isView(data) ||
    (typeof Blob !== "undefined" && data instanceof Blob)
  ) {
    return data;
  }
  throw new TypeError(`raw mode sends a string or binary data, not ${typeof data}`);
}

/**
 * A connected client (connect() resolved).
 * @param {string} url
 * @param {import("./index.js").SlipwayClientOptions} [options]
 * @returns {Promise<SlipwayClient>}
 */
export async function connect(url, options) {
  const client = new SlipwayClient(url, options);
  await client.connect();
  return client;
}
