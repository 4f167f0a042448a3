// Errors of the slipway browser client. Every one is a SlipwayError with a `code`
// string, so a page can switch on `error.code` without importing the classes.

/** The base class: `code` says what went wrong (see client/js/README.md#errors). */
export class SlipwayError extends Error {
  /**
   * @param {string} message
   * @param {string} code
   */
  constructor(message, code) {
    super(message);
    this.name = new.target.name;
    this.code = code;
  }
}

/** The gateway answered `[5, id, {success: false, errorCode, errorMessage}]`.
 * `code` is the gateway's errorCode (docs/envelope.md#errors), `id` the message id. */
export class RemoteError extends SlipwayError {
  /**
   * @param {number} id
   * @param {string} code
   * @param {string} message
   */
  constructor(id, code, message) {
    super(`message ${id}: ${code}: ${message}`, code);
    this.id = id;
    this.remoteMessage = message;
  }
}

/** An upload (PUT) or download (GET) through a presigned URL failed, or the
 * gateway sent no upload URL in time. `status` is the HTTP status, 0 when none. */
export class TransferError extends SlipwayError {
  /**
   * @param {number} id
   * @param {string} method
   * @param {string} detail
   * @param {number} [status]
   */
  constructor(id, method, detail, status = 0) {
    super(`message ${id}: ${method} failed: ${detail}`, "transfer_failed");
    this.id = id;
    this.method = method;
    this.status = status;
  }
}

/** A frame from the gateway that is not an envelope frame this client can read. */
export class EnvelopeError extends SlipwayError {
  /**
   * @param {string} message
   * @param {unknown[] | undefined} [frame] the parsed array, when the text was one
   */
  constructor(message, frame) {
    super(message, "bad_frame");
    this.frame = frame;
  }
}

/** `send()` while the queue of messages waiting for the connection is full. */
export class QueueFullError extends SlipwayError {
  /** @param {number} limit */
  constructor(limit) {
    super(
      `the send queue is full: ${limit} messages are already waiting for the connection ` +
        "(raise the maxQueue option, or wait for the 'open' event)",
      "queue_full",
    );
    this.limit = limit;
  }
}

/** The client is closed (or was never connected), or the connection dropped while
 * the message was being sent: it was not resent (at most once). */
export class SocketClosedError extends SlipwayError {
  /**
   * @param {string} message
   * @param {string} [code] "closed" (default) or "connect_failed"
   */
  constructor(message, code = "closed") {
    super(message, code);
  }
}

/** A rotation's new connection brought no `[6]` frame for some channels within
 * `rotateTimeout`: the old connection was closed anyway (an `error` event). The new
 * connection still recovers them when the backend subscribes it. */
export class RotationTimeoutError extends SlipwayError {
  /**
   * @param {string[]} missing the channels whose `[6]` did not come
   * @param {number} timeout ms
   */
  constructor(missing, timeout) {
    super(`rotation: no recovery within ${timeout} ms for channel(s) ${missing.join(", ")}`, "rotation_timeout");
    this.missing = missing;
    this.timeout = timeout;
  }
}
