// Type declarations for slipway's browser client (hand-written; the code is index.js).

export type State = "idle" | "connecting" | "open" | "reconnecting" | "closed";
export declare const State: {
  readonly IDLE: "idle";
  readonly CONNECTING: "connecting";
  readonly OPEN: "open";
  readonly RECONNECTING: "reconnecting";
  readonly CLOSED: "closed";
};

/** Any value JSON can carry. */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

/** How to reconnect: attempt n (0-based) waits a random time in
 * [0, min(maxDelay, initialDelay * factor^n)) ms: full jitter. */
export interface BackoffOptions {
  /** ms, the cap of the first attempt's delay. Default 500. */
  initialDelay?: number;
  /** ms, the largest cap. Default 30000. */
  maxDelay?: number;
  /** Growth of the cap per attempt. Default 2. */
  factor?: number;
  /** Attempts before the client gives up and closes. Default Infinity. */
  maxAttempts?: number;
}

export declare const DEFAULT_BACKOFF: Readonly<Required<BackoffOptions>>;
export declare function backoffDelay(
  attempt: number,
  options?: BackoffOptions,
  random?: () => number,
): number;

/** What the resume extension point is handed (see ResumeHooks). */
export interface ResumeContext {
  /** False for the first connection. */
  readonly reconnected: boolean;
  /** Reconnections that succeeded so far. */
  readonly reconnects: number;
  /** Send one text frame on this connection as it is (no envelope). */
  sendFrame(text: string): void;
}

/**
 * Hooks around each connection (an extension point). The resume protocol itself
 * (docs/resume.md: positions, `resume=`, `[6]` frames) is built in; these hooks are
 * for anything more, e.g. rejoining rooms when a connection opens.
 */
export interface ResumeHooks {
  /** The URL to dial for each connection (the first included; `url` already carries
   * `resume=`); default: unchanged. */
  url?(url: string, info: { reconnects: number; attempt: number }): string;
  /** Called when a connection opens, before "open" is dispatched and before queued
   * messages are sent; the client waits for the promise it returns. */
  opened?(context: ResumeContext): void | Promise<void>;
  /** Called with an envelope frame of a type the client does not know (not 1-6);
   * return true when it was handled, false to report it as an EnvelopeError. */
  frame?(frame: unknown[], context: ResumeContext): boolean;
}

export interface SlipwayClientOptions {
  /** Speak envelope frames (docs/envelope.md). Default true: `envelope=1` is added to
   * the URL. False: raw mode, frames go and come as they are. */
  envelope?: boolean;
  /** Reconnection backoff, or false never to reconnect. */
  reconnect?: BackoffOptions | false;
  /** At most this many messages wait for the connection; send() rejects with
   * QueueFullError beyond. Default 100. */
  maxQueue?: number;
  /** ms to wait for each connection's handshake. Default 10000. */
  openTimeout?: number;
  /** ms to wait for the gateway's upload URL. Default 30000. */
  uploadTimeout?: number;
  /** ms for each upload (PUT) or download (GET). Default 60000. */
  httpTimeout?: number;
  /** WebSocket subprotocols. */
  protocols?: string | string[];
  /** Hooks around each connection (see ResumeHooks). */
  resume?: ResumeHooks;
  /** Envelope mode: positions to resume from (e.g. saved from `client.positions`),
   * `{channel: {epoch, offset}}` or `{channel: [epoch, offset]}`; `false` turns resume
   * off (no `resume=`, no de-duplication, no recovery events). Default `{}`. */
  positions?: Record<string, Position | [string, number]> | false;
  /** Envelope mode: each channel's floor token, saved from `client.floors` with the
   * positions; without it the gateway recovers nothing from a position (docs/resume.md). */
  floors?: Record<string, string>;
  /** Envelope mode with positions: rotate each connection, make before break, at a
   * random moment this many ms after it opened, [low, high]; null or false never
   * rotates. Default [6000000, 6900000] (100 to 115 minutes; API Gateway cuts at 120).
   * Ignored in raw mode and with `positions: false`. */
  rotateWindow?: readonly [number, number] | null | false;
  /** ms a rotation waits for the new connection's `[6]` frames before it switches
   * anyway (with a RotationTimeoutError event). Default 10000. */
  rotateTimeout?: number;
  /** Stand-ins for tests; default the global WebSocket and fetch. */
  WebSocket?: typeof WebSocket;
  fetch?: typeof fetch;
  /** Stand-ins for tests: the timers every delay of the client runs on, and the random
   * source of the backoff's jitter and the rotation's moment. Default the global
   * setTimeout/clearTimeout and Math.random. */
  clock?: { setTimeout(fn: () => void, ms: number): unknown; clearTimeout(timer: unknown): void };
  random?: () => number;
}

export declare class SlipwayStateEvent extends Event {
  readonly type: "statechange";
  readonly state: State;
  readonly previous: State;
  /** While reconnecting: the attempt (1-based). */
  readonly attempt: number;
  /** While reconnecting: ms before the attempt is made. */
  readonly delay: number;
  /** The close code and reason that caused the change (0 and "" when none). */
  readonly code: number;
  readonly reason: string;
}

export declare class SlipwayMessageEvent<T = unknown> extends Event {
  readonly type: "message";
  /** Envelope mode: the JSON value. Raw mode: a string, or an ArrayBuffer. */
  readonly data: T;
}

/** Where a client is in one channel: the last offset it delivered, in an epoch. */
export interface Position {
  epoch: string;
  offset: number;
}

/** A `[6]` frame: after every subscribe of the connection to `channel`. */
export declare class SlipwayRecoveryEvent extends Event {
  readonly type: "recovery";
  readonly channel: string;
  /** "none": no position was presented; "recovered": `replayed` messages were delivered
   * just before; "failed": see `reason` (too_old, epoch_changed, unknown_id,
   * history_off, not_joined) — what was published meanwhile is lost: reload the channel's state. */
  readonly status: "none" | "recovered" | "failed";
  readonly replayed: number;
  readonly reason: string | null;
  /** The channel's position now. */
  readonly epoch: string;
  readonly offset: number;
}

export declare class SlipwayErrorEvent extends Event {
  readonly type: "error";
  readonly error: SlipwayError | Error;
  readonly message: string;
}

export declare class SlipwayOpenEvent extends Event {
  readonly type: "open";
  /** False for the first connection. */
  readonly reconnected: boolean;
  /** True for a rotation's new connection, while the old one is still open: messages
   * sent from the listener go first on the new connection (to rejoin rooms). */
  readonly rotation: boolean;
}

export declare class SlipwayCloseEvent extends Event {
  readonly type: "close";
  readonly code: number;
  readonly reason: string;
}

export interface SlipwayClientEventMap {
  statechange: SlipwayStateEvent;
  message: SlipwayMessageEvent;
  error: SlipwayErrorEvent;
  open: SlipwayOpenEvent;
  close: SlipwayCloseEvent;
  recovery: SlipwayRecoveryEvent;
}

export declare class SlipwayClient extends EventTarget {
  constructor(url: string, options?: SlipwayClientOptions);
  /** The URL dialled (with `envelope=1` in envelope mode). */
  readonly url: string;
  readonly envelope: boolean;
  readonly state: State;
  /** Reconnections that succeeded since connect(). */
  readonly reconnects: number;
  /** Rotations done: connections replaced by a rotation's new connection. */
  readonly rotations: number;
  /** The reconnection attempt in progress (1-based), 0 when none. */
  readonly attempt: number;
  /** Messages waiting for the connection. */
  readonly queued: number;
  /** Where the client is in each channel (a copy); empty in raw mode. */
  readonly positions: Record<string, Position>;
  readonly floors: Record<string, string>;
  /** Stop presenting (and tracking) a position for `channel`. */
  forget(channel: string): void;
  /** Close code and reason of the last connection that ended. */
  closeCode: number;
  closeReason: string;

  /** Resolves when the first connection is open; rejects (SocketClosedError,
   * code "connect_failed") if it cannot be opened: the first attempt is not retried. */
  connect(): Promise<void>;
  /** Envelope mode: any JSON value, of any size; resolves with the message id.
   * Raw mode: a string or binary data; resolves with undefined. */
  send(data: unknown): Promise<number | undefined>;
  /** Close for good; queued messages are rejected. */
  close(code?: number, reason?: string): Promise<void>;
  /** Rotate now, make before break: resolves with whether every channel's `[6]` came
   * on the new connection within `rotateTimeout`; rejects (SocketClosedError) when the
   * client is not open or the new connection could not be opened (the old one stays),
   * and in raw mode or with `positions: false`. */
  rotate(): Promise<boolean>;

  addEventListener<K extends keyof SlipwayClientEventMap>(
    type: K,
    listener: (event: SlipwayClientEventMap[K]) => void,
    options?: boolean | AddEventListenerOptions,
  ): void;
  addEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | AddEventListenerOptions,
  ): void;
  removeEventListener<K extends keyof SlipwayClientEventMap>(
    type: K,
    listener: (event: SlipwayClientEventMap[K]) => void,
    options?: boolean | EventListenerOptions,
  ): void;
  removeEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | EventListenerOptions,
  ): void;
}

/** A client whose first connection is open. */
export declare function connect(url: string, options?: SlipwayClientOptions): Promise<SlipwayClient>;
/** `url` with `envelope=1` in its query string. */
export declare function withEnvelope(url: string): string;

// -- errors ------------------------------------------------------------------------

export declare class SlipwayError extends Error {
  /** What went wrong: "queue_full", "closed", "connect_failed", "transfer_failed",
   * "bad_frame", "rotation_timeout", or for RemoteError the gateway's errorCode. */
  readonly code: string;
}
/** The gateway answered [5, id, {success: false, errorCode, errorMessage}]. */
export declare class RemoteError extends SlipwayError {
  readonly id: number;
  readonly remoteMessage: string;
}
/** An upload or download failed, or no upload URL came in time. */
export declare class TransferError extends SlipwayError {
  readonly code: "transfer_failed";
  readonly id: number;
  readonly method: string;
  /** The HTTP status; 0 when there was no answer. */
  readonly status: number;
}
/** A frame from the gateway this client cannot read. */
export declare class EnvelopeError extends SlipwayError {
  readonly code: "bad_frame";
  readonly frame: unknown[] | undefined;
}
/** send() while maxQueue messages are already waiting. */
export declare class QueueFullError extends SlipwayError {
  readonly code: "queue_full";
  readonly limit: number;
}
/** The client is closed, could not connect, or the connection dropped mid-send. */
export declare class SocketClosedError extends SlipwayError {
  readonly code: "closed" | "connect_failed";
}
/** A rotation's new connection brought no `[6]` for `missing` within `timeout` ms;
 * the client switched to it anyway (an error event). */
export declare class RotationTimeoutError extends SlipwayError {
  readonly code: "rotation_timeout";
  readonly missing: string[];
  readonly timeout: number;
}

// -- envelope frames (pure) ----------------------------------------------------------

export declare namespace envelope {
  const MESSAGE: 1;
  const UPLOAD_REQUEST: 2;
  const UPLOAD_TARGET: 3;
  const DOWNLOAD: 4;
  const FAILURE: 5;
  const RECOVERY: 6;
  const MAX_INLINE_BYTES: 32000;
  /** A channel message's position (its trailing element). */
  type Stamp = { channel: string; epoch: string; offset: number };
  type MessageFrame = { type: 1; id: number; data: unknown; stamp?: Stamp };
  type UploadRequestFrame = { type: 2; id: number };
  type UploadTargetFrame = { type: 3; id: number; url: string; method: string; headers: Record<string, string> };
  type DownloadFrame = {
    type: 4;
    id: number;
    url: string;
    method: string;
    headers: Record<string, string>;
    stamp?: Stamp;
  };
  type FailureFrame = { type: 5; id: number; code: string; message: string };
  type RecoveryFrame = Stamp & {
    type: 6;
    id: number;
    recovery: "none" | "recovered" | "failed";
    replayed: number;
    reason: string | null;
    /** The token to present with later positions in the channel (docs/resume.md). */
    floor: string | null;
  };
  type Frame = MessageFrame | UploadRequestFrame | UploadTargetFrame | DownloadFrame | FailureFrame | RecoveryFrame;
  function utf8Length(text: string): number;
  function dataText(data: unknown): string;
  function messageFrame(id: number, json: string): string;
  function encodeMessage(id: number, data: unknown): string;
  function encodeUploadRequest(id: number): string;
  function encodeDownload(id: number, url: string): string;
  function fitsInline(frameText: string): boolean;
  function stripQuery(url: string): string;
  function decode(text: string): Frame;
}

// -- resume after reconnect (pure; docs/resume.md) --------------------------------------

export declare namespace resume {
  /** Positions per channel, and which messages are duplicates. */
  class Tracker {
    constructor(
      positions?: Record<string, Position | [string, number]>,
      floors?: Record<string, string>,
    );
    readonly positions: Record<string, Position>;
    /** The floor token of each channel, from its latest [6] frame. */
    readonly floors: Record<string, string>;
    /** Whether to deliver the message `stamp` marks (and move its channel there). */
    admit(stamp: envelope.Stamp): boolean;
    /** A [6] frame: the channel is at its position (never back within an epoch). */
    recover(frame: envelope.Stamp & { floor?: string | null }): void;
    forget(channel: string): void;
  }
  /** base64url (no padding) of {"<channel>": ["<epoch>", offset, "<floor>"]} (floor where known). */
  function encodeResume(positions: Record<string, Position>, floors?: Record<string, string>): string;
  function decodeResume(value: string): Record<string, Position>;
  /** `url` with `resume=` (an empty value when there are no positions). */
  function withResume(
    url: string,
    positions: Record<string, Position>,
    floors?: Record<string, string>,
  ): string;
  /** The default rotation window, ms after a connection opened: [6000000, 6900000]. */
  const ROTATE_WINDOW: readonly [number, number];
  /** The window checked (RangeError unless 0 <= low <= high); null: never rotate. */
  function checkWindow(window: readonly [number, number] | null | false | undefined): [number, number] | null;
  /** ms after a connection opened to rotate it: uniform in `window`. */
  function rotationDelay(window: readonly [number, number], random?: () => number): number;
}
