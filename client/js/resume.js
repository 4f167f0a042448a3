// Resume after reconnect, the browser client's half (docs/resume.md). Pure: no I/O.
//
// The gateway numbers every message published to a channel: an `offset` (1, 2, 3, ...)
// within an `epoch` that changes when the channel's history is lost. The client keeps
// the last position it delivered per channel, drops what it already delivered, and
// presents its positions when it reconnects: `resume=` in the URL, base64url (no
// padding) of the JSON object {"<channel>": ["<epoch>", offset, "<floor>"]}; the floor
// is the token [6] frames hand out, without which the gateway recovers nothing.

/** @typedef {{epoch: string, offset: number}} Position */

/** Positions per channel, and which messages are duplicates. */
export class Tracker {
  /** @type {Map<string, Position>} */
  #positions = new Map();
  /** @type {Map<string, Set<string>>} epochs a channel has left */
  #left = new Map();
  /** @type {Map<string, string>} the floor token of each channel, from its latest [6] */
  #floors = new Map();

  /**
   * @param {Record<string, Position | [string, number]>} [positions]
   * @param {Record<string, string>} [floors] each channel's floor token (saved from `floors`)
   */
  constructor(positions = {}, floors = {}) {
    for (const [channel, floor] of Object.entries(floors)) {
      if (typeof floor === "string") this.#floors.set(channel, floor);
    }
    for (const [channel, pos] of Object.entries(positions)) {
      const { epoch, offset } = Array.isArray(pos) ? { epoch: pos[0], offset: pos[1] } : pos;
      if (typeof epoch !== "string" || !Number.isInteger(offset) || offset < 0) {
        throw new TypeError(`positions.${channel} must be {epoch, offset} or [epoch, offset]`);
      }
      this.#positions.set(channel, { epoch, offset });
    }
  }

  /** A copy: {channel: floor token}. */
  get floors() {
    return Object.fromEntries(this.#floors);
  }

  /** A copy: {channel: {epoch, offset}}. */
  get positions() {
    /** @type {Record<string, Position>} */
    const out = {};
    for (const [channel, pos] of this.#positions) out[channel] = { ...pos };
    return out;
  }

  /**
   * Whether to deliver the message `stamp` marks (and move its channel there): not
   * when the channel is at or past it in the same epoch, nor from an epoch it left.
   * @param {{channel: string, epoch: string, offset: number}} stamp
   */
  admit(stamp) {
    const now = this.#positions.get(stamp.channel);
    if (now && now.epoch === stamp.epoch && stamp.offset <= now.offset) return false;
    if (this.#left.get(stamp.channel)?.has(stamp.epoch)) return false;
    this.#move(stamp.channel, stamp.epoch, stamp.offset);
    return true;
  }

  /**
   * A [6] frame: the channel is at its position from now on (never back within an epoch).
   * @param {{channel: string, epoch: string, offset: number, floor?: string | null}} frame
   */
  recover(frame) {
    if (typeof frame.floor === "string") this.#floors.set(frame.channel, frame.floor);
    const now = this.#positions.get(frame.channel);
    if (now && now.epoch === frame.epoch && now.offset >= frame.offset) return;
    this.#move(frame.channel, frame.epoch, frame.offset);
  }

  /** @param {string} channel */
  forget(channel) {
    this.#positions.delete(channel);
    this.#floors.delete(channel);
    this.#left.delete(channel);
  }

  /**
   * @param {string} channel
   * @param {string} epoch
   * @param {number} offset
   */
  #move(channel, epoch, offset) {
    const now = this.#positions.get(channel);
    if (now && now.epoch !== epoch) {
      if (!this.#left.has(channel)) this.#left.set(channel, new Set());
      this.#left.get(channel)?.add(now.epoch);
    }
    this.#positions.set(channel, { epoch, offset });
  }
}

/**
 * The `resume` value for `positions`, each with its floor token where `floors` has one.
 * @param {Record<string, Position>} positions
 * @param {Record<string, string>} [floors]
 * @returns {string}
 */
export function encodeResume(positions, floors = {}) {
  /** @type {Record<string, [string, number] | [string, number, string]>} */
  const body = {};
  for (const [channel, { epoch, offset }] of Object.entries(positions)) {
    const floor = floors[channel];
    body[channel] = typeof floor === "string" ? [epoch, offset, floor] : [epoch, offset];
  }
  const bytes = new TextEncoder().encode(JSON.stringify(body));
  let binary = "";
  for (const b of bytes) binary += String.fromCharCode(b);
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/**
 * The positions in a `resume` value (empty: none); throws SyntaxError for another value.
 * @param {string} value
 * @returns {Record<string, Position>}
 */
export function decodeResume(value) {
  if (!value) return {};
  const binary = atob(value.replace(/-/g, "+").replace(/_/g, "/"));
  const body = JSON.parse(new TextDecoder().decode(Uint8Array.from(binary, (c) => c.charCodeAt(0))));
  /** @type {Record<string, Position>} */
  const out = {};
  for (const [channel, [epoch, offset]] of Object.entries(body)) out[channel] = { epoch, offset };
  return out;
}

/**
 * `url` with `resume=` carrying `positions` (replacing any); the value is empty when
 * there are none: the client still says that it speaks the protocol.
 * @param {string} url
 * @param {Record<string, Position>} positions
 * @param {Record<string, string>} [floors] each channel's floor token
 * @returns {string}
 */
export function withResume(url, positions, floors = {}) {
  const hash = url.indexOf("#");
  const fragment = hash === -1 ? "" : url.slice(hash);
  const base = hash === -1 ? url : url.slice(0, hash);
  const q = base.indexOf("?");
  const path = q === -1 ? base : base.slice(0, q);
  const query = q === -1 ? "" : base.slice(q + 1);
  const params = query.split("&").filter((p) => p && p.split("=", 1)[0] !== "resume");
  const value = Object.keys(positions).length ? encodeResume(positions, floors) : "";
  return `${path}?${[...params, `resume=${value}`].join("&")}${fragment}`;
}

// -- rotation before API Gateway's 2-hour cut --------------------------------------------

/** Default rotation window, ms after a connection opened: API Gateway cuts at 7,200,000
 * (2 hours); the Python client's `rotate_window` (6000, 6900) s. */
export const ROTATE_WINDOW = Object.freeze([6_000_000, 6_900_000]);

/**
 * `window` checked: [low, high] with 0 <= low <= high (ms); null/false: never rotate.
 * @param {readonly [number, number] | null | false | undefined} window
 * @returns {[number, number] | null}
 */
export function checkWindow(window) {
  if (window === null || window === false) return null;
  if (window === undefined) return [ROTATE_WINDOW[0], ROTATE_WINDOW[1]];
  const [low, high] = Array.isArray(window) ? window : [];
  if (typeof low !== "number" || typeof high !== "number" || !(low >= 0 && low <= high && high < Infinity)) {
    throw new RangeError(`rotateWindow must be [low, high] ms with 0 <= low <= high, or null, not ${JSON.stringify(window)}`);
  }
  return [low, high];
}

/**
 * When to rotate a connection, ms after it opened: uniform in `window`, so that
 * clients that connected together do not all rotate together.
 * @param {readonly [number, number]} window
 * @param {() => number} [random] in [0, 1)
 * @returns {number}
 */
export function rotationDelay(window, random = Math.random) {
  const [low, high] = window;
  return low + (high - low) * random();
}
