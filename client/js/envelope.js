// Envelope frames between client and gateway (docs/envelope.md), byte for byte
// those of @casual-simulation/aux-websocket-aws. Pure: no I/O.
//
// | frame                              | direction          | meaning                          |
// |------------------------------------|--------------------|----------------------------------|
// | [1, id, data]                      | both               | a message; data is any JSON value |
// | [2, id]                            | client -> gateway  | where may I upload message id?   |
// | [3, id, url, method, headers]      | gateway -> client  | upload it there                  |
// | [4, id, url, method, headers]      | both               | the message is at url            |
// | [5, id, {success: false, errorCode, errorMessage}] | gateway -> client | request id failed |
// | [6, 0, {channel, epoch, offset, recovery, replayed, reason}] | gateway -> client | a subscribe's recovery |
//
// For a client that presents `resume=` (docs/resume.md), a channel message carries its
// position as a trailing element: [1, 0, data, {channel, epoch, offset}], and the same
// after a [4]'s headers. decode() returns it as `stamp`.

import { EnvelopeError } from "./errors.js";

export const MESSAGE = 1;
export const UPLOAD_REQUEST = 2;
export const UPLOAD_TARGET = 3;
export const DOWNLOAD = 4;
export const FAILURE = 5;
export const RECOVERY = 6;

/** Over this many UTF-8 bytes a `[1, id, data]` frame goes through an upload instead
 * (the aux client's 32,000-character threshold, counted in bytes: API Gateway's
 * 32 KB frame limit is in bytes). */
export const MAX_INLINE_BYTES = 32_000;

/**
 * The number of bytes `text` takes in UTF-8, as TextEncoder writes it (a lone
 * surrogate becomes U+FFFD, 3 bytes), without building the bytes.
 * @param {string} text
 * @returns {number}
 */
export function utf8Length(text) {
  let bytes = 0;
  const n = text.length;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) bytes += 1;
    else if (c < 0x800) bytes += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < n) {
      const next = text.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) {
        bytes += 4;
        i++;
      } else bytes += 3;
    } else bytes += 3;
  }
  return bytes;
}

/**
 * The JSON text of a message's data, as JSON.stringify writes it; TypeError for a
 * value that is no JSON (undefined, a function, a symbol; BigInt and cycles throw
 * in JSON.stringify itself).
 * @param {unknown} data
 * @returns {string}
 */
export function dataText(data) {
  const text = JSON.stringify(data);
  if (typeof text !== "string") {
    throw new TypeError(`a message must be a JSON value, not ${typeof data}`);
  }
  return text;
}

/**
 * `[1, id, data]` given the data's JSON text: the same characters as
 * JSON.stringify([1, id, data]).
 * @param {number} id
 * @param {string} json
 * @returns {string}
 */
export function messageFrame(id, json) {
  return `[${MESSAGE},${id},${json}]`;
}

/**
 * `[1, id, data]`.
 * @param {number} id
 * @param {unknown} data
 * @returns {string}
 */
export function encodeMessage(id, data) {
  return messageFrame(id, dataText(data));
}

/** `[2, id]`. @param {number} id @returns {string} */
export function encodeUploadRequest(id) {
  return JSON.stringify([UPLOAD_REQUEST, id]);
}

/**
 * `[4, id, url, "GET", {}]`: what a client sends once message `id` is uploaded;
 * `url` is the upload URL without its query string (stripQuery).
 * @param {number} id
 * @param {string} url
 * @returns {string}
 */
export function encodeDownload(id, url) {
  return JSON.stringify([DOWNLOAD, id, url, "GET", {}]);
}

/**
 * Whether a `[1, id, data]` frame may go as it is: at most MAX_INLINE_BYTES UTF-8 bytes.
 * @param {string} frameText
 * @returns {boolean}
 */
export function fitsInline(frameText) {
  // A JSON text has at least as many bytes as characters: the quick test first.
  if (frameText.length > MAX_INLINE_BYTES) return false;
  return utf8Length(frameText) <= MAX_INLINE_BYTES;
}

/**
 * `url` without its query string and fragment (the presigned upload URL as `[4]`
 * announces it). Cut as text, not rebuilt by URL, so nothing else changes.
 * @param {string} url
 * @returns {string}
 */
export function stripQuery(url) {
  const end = url.search(/[?#]/);
  return end === -1 ? url : url.slice(0, end);
}

/**
 * @typedef {{channel: string, epoch: string, offset: number}} Stamp
 * @typedef {{type: 1, id: number, data: unknown, stamp?: Stamp}} MessageFrame
 * @typedef {{type: 2, id: number}} UploadRequestFrame
 * @typedef {{type: 3, id: number, url: string, method: string, headers: Record<string, string>}} UploadTargetFrame
 * @typedef {{type: 4, id: number, url: string, method: string, headers: Record<string, string>, stamp?: Stamp}} DownloadFrame
 * @typedef {{type: 5, id: number, code: string, message: string}} FailureFrame
 * @typedef {{type: 6, id: number, channel: string, epoch: string, offset: number,
 *   recovery: "none" | "recovered" | "failed", replayed: number, reason: string | null,
 *   floor: string | null}} RecoveryFrame
 * @typedef {MessageFrame | UploadRequestFrame | UploadTargetFrame | DownloadFrame | FailureFrame | RecoveryFrame} Frame
 */

/**
 * The frame in `text`. Throws EnvelopeError saying what is wrong otherwise; for an
 * array of an unknown type, the error's `frame` holds the array.
 * @param {string} text
 * @returns {Frame}
 */
export function decode(text) {
  let value;
  try {
    value = JSON.parse(text);
  } catch {
    throw new EnvelopeError(`frame is not JSON: ${snippet(text)}`);
  }
  if (!Array.isArray(value) || value.length < 2) {
    throw new EnvelopeError(`frame is not a [type, id, ...] array: ${snippet(text)}`);
  }
  const [type, id, ...rest] = value;
  if (!Number.isInteger(type) || !Number.isInteger(id)) {
    throw new EnvelopeError(`frame type and id must be whole numbers: ${snippet(text)}`, value);
  }
  switch (type) {
    case MESSAGE:
      if (rest.length === 2) return { type, id, data: rest[0], stamp: readStamp(rest[1], value) };
      if (rest.length !== 1) throw new EnvelopeError("a [1] frame is [1, id, data]", value);
      return { type, id, data: rest[0] };
    case UPLOAD_REQUEST:
      if (rest.length !== 0) throw new EnvelopeError("a [2] frame is [2, id]", value);
      return { type, id };
    case UPLOAD_TARGET:
      return { type, id, ...location(type, rest, value) };
    case DOWNLOAD:
      if (rest.length === 4) {
        const stamp = readStamp(rest.pop(), value);
        return { type, id, ...location(type, rest, value), stamp };
      }
      return { type, id, ...location(type, rest, value) };
    case RECOVERY:
      return { type, id, ...readRecovery(rest, value) };
    case FAILURE: {
      const error = rest[0];
      if (rest.length !== 1 || typeof error !== "object" || error === null || Array.isArray(error)) {
        throw new EnvelopeError("a [5] frame is [5, id, {errorCode, errorMessage}]", value);
      }
      return {
        type,
        id,
        code: String(error.errorCode ?? ""),
        message: String(error.errorMessage ?? ""),
      };
    }
    default:
      throw new EnvelopeError(`unknown frame type ${type}`, value);
  }
}

/**
 * `url, method, headers` of a [3] or [4] frame; method and headers may be left out
 * (`[4, -1, url]`): then the method is GET for [4], PUT for [3], and no headers.
 * @param {number} type
 * @param {unknown[]} rest
 * @param {unknown[]} frame
 */
function location(type, rest, frame) {
  if (rest.length < 1 || rest.length > 3) {
    throw new EnvelopeError(`a [${type}] frame is [${type}, id, url, method, headers]`, frame);
  }
  const [url, method = type === DOWNLOAD ? "GET" : "PUT", headers = {}] = rest;
  if (typeof url !== "string" || !/^https?:\/\//i.test(url)) {
    throw new EnvelopeError(`[${type}] frame: url must be an http(s) URL`, frame);
  }
  if (typeof method !== "string" || method === "") {
    throw new EnvelopeError(`[${type}] frame: method must be a string`, frame);
  }
  if (
    typeof headers !== "object" ||
    headers === null ||
    Array.isArray(headers) ||
    !Object.values(headers).every((v) => typeof v === "string")
  ) {
    throw new EnvelopeError(`[${type}] frame: headers must be an object of strings`, frame);
  }
  return {
    url,
    method: method.toUpperCase(),
    headers: /** @type {Record<string, string>} */ ({ ...headers }),
  };
}

/**
 * A channel message's position (its trailing element).
 * @param {unknown} value
 * @param {unknown[]} frame
 * @returns {Stamp}
 */
function readStamp(value, frame) {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new EnvelopeError("a message's position must be an object", frame);
  }
  const { channel, epoch, offset } = /** @type {Record<string, unknown>} */ (value);
  if (typeof channel !== "string" || channel === "") {
    throw new EnvelopeError("position: channel must be a non-empty string", frame);
  }
  if (typeof epoch !== "string") throw new EnvelopeError("position: epoch must be a string", frame);
  if (!Number.isInteger(offset) || /** @type {number} */ (offset) < 0) {
    throw new EnvelopeError("position: offset must be a whole number >= 0", frame);
  }
  return { channel, epoch, offset: /** @type {number} */ (offset) };
}

/**
 * The body of a [6, 0, {...}] frame.
 * @param {unknown[]} rest
 * @param {unknown[]} frame
 */
function readRecovery(rest, frame) {
  const body = rest[0];
  if (rest.length !== 1 || typeof body !== "object" || body === null || Array.isArray(body)) {
    throw new EnvelopeError("a [6] frame is [6, 0, {channel, epoch, offset, recovery, ...}]", frame);
  }
  const { recovery, replayed = 0, reason = null, floor = null } = /** @type {Record<string, any>} */ (body);
  if (!["none", "recovered", "failed"].includes(recovery)) {
    throw new EnvelopeError("[6] frame: recovery must be none, recovered or failed", frame);
  }
  if (!Number.isInteger(replayed) || replayed < 0) {
    throw new EnvelopeError("[6] frame: replayed must be a whole number >= 0", frame);
  }
  if (reason !== null && typeof reason !== "string") {
    throw new EnvelopeError("[6] frame: reason must be a string", frame);
  }
  if (floor !== null && typeof floor !== "string") {
    throw new EnvelopeError("[6] frame: floor must be a string", frame);
  }
  return { ...readStamp(body, frame), recovery, replayed, reason, floor };
}

/** @param {string} text */
function snippet(text) {
  const s = String(text);
  return JSON.stringify(s.slice(0, 80)) + (s.length > 80 ? "…" : "");
}
