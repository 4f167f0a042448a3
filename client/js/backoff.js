// Reconnection delays: exponential backoff with full jitter.

/**
 * @typedef {object} BackoffOptions
 * @property {number} [initialDelay] ms, the cap of the first attempt's delay (500)
 * @property {number} [maxDelay] ms, the largest cap (30000)
 * @property {number} [factor] how much the cap grows per attempt (2)
 * @property {number} [maxAttempts] attempts before giving up (Infinity)
 */

/** @type {Required<BackoffOptions>} */
export const DEFAULT_BACKOFF = Object.freeze({
  initialDelay: 500,
  maxDelay: 30_000,
  factor: 2,
  maxAttempts: Infinity,
});

/**
 * The options with defaults filled in; throws RangeError for impossible values.
 * @param {BackoffOptions} [options]
 * @returns {Required<BackoffOptions>}
 */
export function backoffOptions(options = {}) {
  const out = { ...DEFAULT_BACKOFF, ...options };
  for (const name of ["initialDelay", "maxDelay", "maxAttempts"]) {
    const value = /** @type {Record<string, number>} */ (out)[name];
    if (typeof value !== "number" || Number.isNaN(value) || value < 0) {
      throw new RangeError(`reconnect.${name} must be a number >= 0`);
    }
  }
  if (typeof out.factor !== "number" || !(out.factor >= 1)) {
    throw new RangeError("reconnect.factor must be a number >= 1");
  }
  return out;
}

/**
 * The delay in ms before reconnection attempt `attempt` (0-based): full jitter,
 * a uniformly random time between 0 and min(maxDelay, initialDelay * factor^attempt),
 * so that many clients dropped at once do not come back at once.
 * @param {number} attempt
 * @param {BackoffOptions} [options]
 * @param {() => number} [random] in [0, 1)
 * @returns {number}
 */
export function backoffDelay(attempt, options = {}, random = Math.random) {
  const { initialDelay, maxDelay, factor } = backoffOptions(options);
  const cap = Math.min(maxDelay, initialDelay * Math.pow(factor, Math.min(attempt, 64)));
  return Math.floor(random() * cap);
}
