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
import { Tracker, checkWindow, rotationDelay, withResume } from "./resume.js";
import {
  EnvelopeError,
  QueueFullError,
  RemoteError,
  RotationTimeoutError,
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
const ROTATION_RETRY_MIN = 1000; // ms: a failed rotation is tried again no sooner

/** @typedef {{setTimeout: (fn: () => void, ms: number) => any, clearTimeout: (timer: any) => void}} Clock */
/** @type {Clock} */
const REAL_CLOCK = {
  setTimeout: (fn, ms) => globalThis.setTimeout(fn, ms),
  clearTimeout: (timer) => globalThis.clearTimeout(timer),
};

/**
 * A rotation in progress: its new connection `ws`, the channels whose `[6]` it waits
 * for, the sends made from its "open" listeners (they go first on `ws`).
 * @typedef {object} Rotation
 * @property {WebSocket | null} ws
 * @property {Set<string>} waiting
 * @property {boolean} auto started by the window's timer (its errors are events)
 * @property {Promise<void> | null} ready the open hook, listeners and first sends done
 * @property {QueueItem[]} first
 * @property {any} timer the rotateTimeout timer
 * @property {boolean} switching
 * @property {Promise<boolean>} promise
 * @property {(done: boolean) => void} resolve
 * @property {(e: Error) => void} reject
 */

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

/** `open`: a connection opened; `reconnected` is false for the first one; `rotation`
 * is true for a rotation's new connection (the old one is still open: sends made from
 * the listener go first on the new one). */
export class SlipwayOpenEvent extends Event {
  /**
   * @param {boolean} reconnected
   * @param {boolean} [rotation]
   */
  constructor(reconnected, rotation = false) {
    super("open");
    this.reconnected = reconnected;
    this.rotation = rotation;
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
  /** @type {[number, number] | null} */
  #rotateWindow;
  #rotateTimeout;
  /** @type {Clock} */
  #clock;
  /** @type {() => number} */
  #random;

  /** @type {string} */
  #state = State.IDLE;
  /** @type {WebSocket | null} */
  #ws = null;
  #everOpened = false;
  #closing = false;
  /** @type {Set<WebSocket>} ours until closed: the current one, a rotation's new one, a retiring one */
  #live = new Set();
  /** @type {WeakMap<WebSocket, number>} the next message id of each connection */
  #ids = new WeakMap();
  #attempt = 0;
  #reconnects = 0;
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  #timer = undefined;
  /** @type {QueueItem[]} */
  #queue = [];
  #pumping = false;
  /** @type {{ws: WebSocket, done: Promise<unknown>} | null} the send the queue is making */
  #inflight = null;
  #inOpen = false; // an "open" listener is running: its sends go first
  #front = 0;
  /** @type {Rotation | null} the rotation whose "open" listeners are running */
  #openRotation = null;
  /** @type {Map<WebSocket, Map<number, {resolve: (f: any) => void, reject: (e: Error) => void}>>} */
  #pending = new Map();
  /** @type {Rotation | null} */
  #rotation = null;
  /** @type {any} */
  #rotationTimer = undefined;
  #rotationFailures = 0;
  #rotations = 0;
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
    const window = checkWindow(options.rotateWindow);
    // Without positions a rotation's overlap would deliver messages twice: no rotation.
    this.#rotateWindow = this.#tracker ? window : null;
    this.#rotateTimeout = positive(options.rotateTimeout ?? 10_000, "rotateTimeout");
    this.#clock = options.clock ?? REAL_CLOCK;
    this.#random = options.random ?? Math.random;
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
  /** Rotations done: connections replaced by a rotation's new connection. */
  get rotations() {
    return this.#rotations;
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
    this.#clock.clearTimeout(this.#timer);
    this.#stopRotating(new SocketClosedError("the client is closed"));
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
      if (this.#openRotation) {
        // From the "open" listener of a rotation's new connection: on that connection,
        // first (before the switch), in the order sent.
        this.#openRotation.first.push(item);
      } else if (this.#inOpen) {
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
        const sending = this.#sendNow(ws, item.payload);
        this.#inflight = { ws, done: sending.catch(() => undefined) };
        try {
          item.resolve(await sending);
        } catch (error) {
          item.reject(/** @type {Error} */ (error));
        } finally {
          this.#inflight = null;
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
    const id = this.#ids.get(ws) ?? 1;
    this.#ids.set(ws, id + 1);
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
      const pending = this.#waiters(ws);
      const timer = this.#clock.setTimeout(() => {
        pending.delete(id);
        reject(
          new TransferError(id, "PUT", `no upload URL from the gateway within ${this.#uploadTimeout} ms`),
        );
      }, this.#uploadTimeout);
      pending.set(id, {
        resolve: (frame) => {
          this.#clock.clearTimeout(timer);
          resolve(frame);
        },
        reject: (error) => {
          this.#clock.clearTimeout(timer);
          reject(error);
        },
      });
      ws.send(encodeUploadRequest(id));
    });
    await this.#http(id, target.method, target.url, target.headers, json);
    if (!this.#live.has(ws) || ws.readyState !== WS_OPEN) {
      throw new SocketClosedError(
        `the connection closed while message ${id} was uploaded: it was not sent`,
      );
    }
    ws.send(encodeDownload(id, stripQuery(target.url)));
  }

  /**
   * The upload requests of `ws` waiting for their `[3]` or `[5]`, by message id.
   * @param {WebSocket} ws
   */
  #waiters(ws) {
    let waiting = this.#pending.get(ws);
    if (waiting === undefined) {
      waiting = new Map();
      this.#pending.set(ws, waiting);
    }
    return waiting;
  }

  /**
   * @param {WebSocket} ws
   * @param {Error} error
   */
  #failPending(ws, error) {
    for (const waiting of this.#pending.get(ws)?.values() ?? []) waiting.reject(error);
    this.#pending.delete(ws);
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
    const timer = this.#clock.setTimeout(() => abort.abort(), this.#httpTimeout);
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
      this.#clock.clearTimeout(timer);
    }
  }

  // -- receiving -----------------------------------------------------------------------

  /**
   * @param {unknown} raw
   * @param {WebSocket} ws the connection it came on
   */
  #handle(raw, ws) {
    if (!this.#envelope || typeof raw !== "string") {
      this.#deliver(Promise.resolve(raw));
      return;
    }
    let frame;
    try {
      frame = decode(raw);
    } catch (error) {
      const bad = /** @type {EnvelopeError} */ (error);
      if (bad.frame !== undefined && this.#resume?.frame?.(bad.frame, this.#resumeContext(false, ws))) {
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
        const rotation = this.#rotation;
        if (rotation !== null && ws === rotation.ws) {
          rotation.waiting.delete(frame.channel);
          if (rotation.waiting.size === 0) this.#switch(rotation);
        }
        const event = new SlipwayRecoveryEvent(frame);
        // In turn with the messages: after the replayed ones are delivered.
        this.#delivery = this.#delivery.then(() => this.dispatchEvent(event));
        break;
      }
      case UPLOAD_TARGET:
      case FAILURE: {
        const pending = this.#pending.get(ws);
        const waiting = pending?.get(frame.id);
        pending?.delete(frame.id);
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

  /** The URL of the next connection: with the positions, through the `url` hook. */
  #connectUrl() {
    let url = this.#tracker
      ? withResume(this.#url, this.#tracker.positions, this.#tracker.floors)
      : this.#url;
    if (this.#resume?.url) {
      url = this.#resume.url(url, { reconnects: this.#reconnects, attempt: this.#attempt });
    }
    return url;
  }

  /**
   * A new socket, ours until it closes; throws for a malformed URL (no close event
   * comes then).
   * @param {(ws: WebSocket) => void} onOpen
   * @param {(ws: WebSocket, opened: boolean, code: number, reason: string) => void} onClose
   * @returns {WebSocket}
   */
  #open(onOpen, onClose) {
    const ws = new this.#WebSocket(this.#connectUrl(), this.#protocols);
    ws.binaryType = "arraybuffer";
    this.#live.add(ws);
    let opened = false;
    const timer = this.#clock.setTimeout(() => {
      if (!opened) ws.close(); // a socket still connecting fails with 1006
    }, this.#openTimeout);
    ws.onopen = () => {
      opened = true;
      this.#clock.clearTimeout(timer);
      onOpen(ws);
    };
    ws.onmessage = (event) => {
      if (this.#live.has(ws)) this.#handle(event.data, ws);
    };
    ws.onerror = () => {}; // a close event always follows, with what there is to know
    ws.onclose = (event) => {
      this.#clock.clearTimeout(timer);
      this.#live.delete(ws);
      const gone = new SocketClosedError(`the connection closed (${event.code}) before the message was sent`);
      this.#failPending(ws, gone);
      onClose(ws, opened, event.code, event.reason);
    };
    return ws;
  }

  #dial() {
    try {
      this.#ws = this.#open(
        (ws) => this.#opened(ws),
        (ws, opened, code, reason) => this.#closed(ws, opened, code, reason),
      );
    } catch (error) {
      // A malformed URL (SyntaxError): no close event will come.
      this.#report(/** @type {Error} */ (error));
      this.#dropped(false, 1006, String(/** @type {Error} */ (error)?.message ?? error));
    }
  }

  /** @param {WebSocket} ws */
  #opened(ws) {
    if (this.#closing) {
      ws.close(1000);
      return;
    }
    const reconnected = this.#everOpened;
    this.#everOpened = true;
    this.#ids.set(ws, 1); // ids are per connection
    if (reconnected) this.#reconnects++;
    const go = () => {
      if (this.#ws !== ws || ws.readyState !== WS_OPEN) return;
      this.#attempt = 0;
      this.#setState(State.OPEN);
      this.#scheduleRotation();
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
   * The current connection closed (or a connection a rotation retired: nothing to do).
   * @param {WebSocket} ws
   * @param {boolean} opened
   * @param {number} code
   * @param {string} reason
   */
  #closed(ws, opened, code, reason) {
    if (this.#ws !== ws) return;
    this.#ws = null;
    const rotation = this.#rotation;
    if (rotation !== null && rotation.ready !== null && !this.#closing && rotation.ws?.readyState === WS_OPEN) {
      // Dropped mid-rotation (API Gateway's cut, say): the new connection, already
      // resuming, takes over; no reconnection.
      this.closeCode = code;
      this.closeReason = reason;
      this.#switch(rotation);
      return;
    }
    this.#dropped(opened, code, reason);
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
    // A reconnection schedules the next rotation itself.
    this.#stopRotating(new SocketClosedError(`the connection closed (${code}) during the rotation`));
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
    // at once: connections reach that age one by one, not all together (they opened at
    // most 500 a second, API Gateway's quota: docs/resume.md#reconnect-storms).
    const immediate = opened && code === GOING_AWAY && this.#attempt === 0;
    const delay = immediate ? 0 : backoffDelay(this.#attempt, backoff, this.#random);
    this.#attempt++;
    this.#setState(State.RECONNECTING, { attempt: this.#attempt, delay, code, reason });
    this.#timer = this.#clock.setTimeout(() => {
      this.#timer = undefined;
      if (!this.#closing) this.#dial();
    }, delay);
  }

  // -- rotation (make before break, before API Gateway's 2-hour cut) ----------------------

  /**
   * Rotate the connection now: open a new one with the positions, wait for its `[6]`
   * frames (at most `rotateTimeout`), switch to it, close the old one. Resolves with
   * whether every channel's `[6]` came in time; rejects with SocketClosedError when the
   * client is not open or the new connection could not be opened (the old one stays).
   * @returns {Promise<boolean>}
   */
  rotate() {
    if (this.#tracker === null) {
      return Promise.reject(new Error("rotation needs envelope mode and positions (raw mode has none)"));
    }
    return this.#startRotation(false);
  }

  /** @param {number} [delay] ms; by default a random moment of the window */
  #scheduleRotation(delay) {
    this.#clock.clearTimeout(this.#rotationTimer);
    this.#rotationTimer = undefined;
    const window = this.#rotateWindow;
    if (window === null || this.#closing) return;
    if (delay === undefined) {
      this.#rotationFailures = 0;
      delay = rotationDelay(window, this.#random);
    }
    this.#rotationTimer = this.#clock.setTimeout(() => {
      this.#rotationTimer = undefined;
      if (!this.#closing && this.#state === State.OPEN && this.#rotation === null) {
        this.#startRotation(true);
      }
    }, delay);
  }

  /**
   * @param {boolean} auto from the window's timer: failures are error events, retried
   * @returns {Promise<boolean>}
   */
  #startRotation(auto) {
    if (this.#rotation !== null) return this.#rotation.promise;
    if (this.#ws === null || this.#state !== State.OPEN || this.#closing) {
      return Promise.reject(new SocketClosedError("the client is not open"));
    }
    /** @type {(done: boolean) => void} */
    let resolve = () => {};
    /** @type {(e: Error) => void} */
    let reject = () => {};
    /** @type {Promise<boolean>} */
    const promise = new Promise((yes, no) => {
      resolve = yes;
      reject = no;
    });
    if (auto) promise.catch(() => {}); // reported as an error event instead
    const tracker = /** @type {Tracker} */ (this.#tracker);
    /** @type {Rotation} */
    const rotation = {
      ws: null,
      waiting: new Set(Object.keys(tracker.positions)),
      auto,
      ready: null,
      first: [],
      timer: undefined,
      switching: false,
      promise,
      resolve,
      reject,
    };
    this.#rotation = rotation;
    try {
      rotation.ws = this.#open(
        () => this.#rotationOpened(rotation),
        (ws, opened, code, reason) => {
          if (this.#rotation !== rotation) {
            this.#closed(ws, opened, code, reason); // after the switch: the current connection
            return;
          }
          const orphaned = this.#ws === null; // the old one dropped: this one was taking over
          this.#rotationFailed(
            rotation,
            opened
              ? new SocketClosedError(`the rotation's new connection closed (${code})`)
              : new SocketClosedError(`the rotation's new connection failed (close code ${code})`, "connect_failed"),
          );
          if (orphaned && !this.#closing) this.#dropped(true, code, reason);
        },
      );
    } catch (error) {
      this.#rotationFailed(rotation, /** @type {Error} */ (error));
    }
    return promise;
  }

  /** @param {Rotation} rotation */
  #rotationOpened(rotation) {
    const ws = /** @type {WebSocket} */ (rotation.ws);
    if (this.#rotation !== rotation) {
      ws.close(1000);
      return;
    }
    this.#ids.set(ws, 1);
    rotation.timer = this.#clock.setTimeout(() => {
      if (this.#rotation !== rotation || rotation.switching) return;
      const missing = [...rotation.waiting].sort();
      this.#report(new RotationTimeoutError(missing, this.#rotateTimeout));
      this.#switch(rotation);
    }, this.#rotateTimeout);
    rotation.ready = this.#rotationReady(rotation, ws);
    rotation.ready.then(() => {
      if (rotation.waiting.size === 0) this.#switch(rotation);
    });
  }

  /**
   * The new connection's hook and "open" listeners, and what they sent, on it, first.
   * @param {Rotation} rotation
   * @param {WebSocket} ws
   */
  async #rotationReady(rotation, ws) {
    const hook = this.#resume?.opened;
    if (hook) {
      try {
        await hook(this.#resumeContext(true, ws));
      } catch (error) {
        this.#report(/** @type {Error} */ (error));
      }
    }
    if (this.#rotation !== rotation) return;
    this.#openRotation = rotation;
    try {
      this.dispatchEvent(new SlipwayOpenEvent(true, true));
    } finally {
      this.#openRotation = null;
    }
    for (const item of rotation.first) {
      try {
        item.resolve(await this.#sendNow(ws, item.payload));
      } catch (error) {
        item.reject(/** @type {Error} */ (error));
      }
    }
    rotation.first = [];
  }

  /**
   * The new connection takes over: sends go to it, the old one is closed once the
   * send it is making is done.
   * @param {Rotation} rotation
   */
  async #switch(rotation) {
    if (rotation.switching) return;
    rotation.switching = true;
    this.#clock.clearTimeout(rotation.timer);
    await rotation.ready;
    if (this.#rotation !== rotation) return; // given up meanwhile
    this.#rotation = null;
    const old = this.#ws; // null when it dropped meanwhile
    this.#ws = rotation.ws;
    this.#rotations++;
    this.#scheduleRotation();
    rotation.resolve(rotation.waiting.size === 0);
    this.#pump();
    if (old === null) return;
    const inflight = this.#inflight;
    if (inflight !== null && inflight.ws === old) await inflight.done;
    if (old.readyState <= WS_OPEN) old.close(1000, "rotated");
  }

  /**
   * The rotation's new connection could not be opened or closed: the old one stays,
   * and is rotated again after a backoff delay unless a rotation is already timed
   * (rotate()'s failures are its caller's; the timer's are error events).
   * @param {Rotation} rotation
   * @param {Error} error
   */
  #rotationFailed(rotation, error) {
    this.#abortRotation(rotation, error);
    if (this.#closing || this.#state !== State.OPEN) return;
    if (rotation.auto) this.#report(error);
    if (this.#rotationTimer === undefined) {
      this.#rotationFailures++;
      const retry = backoffDelay(this.#rotationFailures, this.#reconnect ?? {}, this.#random);
      this.#scheduleRotation(Math.max(retry, ROTATION_RETRY_MIN));
    }
  }

  /**
   * @param {Rotation} rotation
   * @param {Error} error what its promise and first sends are rejected with
   */
  #abortRotation(rotation, error) {
    if (this.#rotation !== rotation) return;
    this.#rotation = null;
    this.#clock.clearTimeout(rotation.timer);
    const ws = rotation.ws;
    if (ws !== null && ws.readyState <= WS_OPEN) ws.close(1000);
    for (const item of rotation.first.splice(0)) item.reject(error);
    rotation.reject(error);
  }

  /** No rotation from now on, until a connection opens again.
   * @param {Error} error */
  #stopRotating(error) {
    this.#clock.clearTimeout(this.#rotationTimer);
    this.#rotationTimer = undefined;
    if (this.#rotation !== null) this.#abortRotation(this.#rotation, error);
  }

  /** @param {Error} [error] what the queued messages and connect() are rejected with */
  #finish(error) {
    if (this.#state === State.CLOSED) return;
    this.#clock.clearTimeout(this.#timer);
    const closed = error ?? new SocketClosedError("the client is closed");
    this.#stopRotating(closed);
    for (const item of this.#queue.splice(0)) item.reject(closed);
    for (const ws of [...this.#pending.keys()]) this.#failPending(ws, closed);
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
