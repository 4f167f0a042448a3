// slipway's browser client: import { SlipwayClient } from "./client/js/index.js".
export { SlipwayClient, State, SlipwayStateEvent, SlipwayMessageEvent, SlipwayErrorEvent, SlipwayOpenEvent, SlipwayCloseEvent, SlipwayRecoveryEvent, connect, withEnvelope } from "./client.js";
export { DEFAULT_BACKOFF, backoffDelay } from "./backoff.js";
export {
  SlipwayError,
  RemoteError,
  TransferError,
  EnvelopeError,
  QueueFullError,
  RotationTimeoutError,
  SocketClosedError,
} from "./errors.js";
export * as envelope from "./envelope.js";
export * as resume from "./resume.js";
