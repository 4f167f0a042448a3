"""The numbers that bound what slipway carries, each defined once. Pure.

Most are AWS's (API Gateway, SQS); the rest are slipway's own choices. The
settings module takes its defaults from here; the local stack enforces the
API Gateway ones from here too.
"""

from __future__ import annotations

from enum import IntEnum

# API Gateway: the largest frame a client may send, and the largest message
# (a client's, or one @connections post); larger is closed with 1009 / refused.
MAX_FRAME = 32 * 1024
MAX_POST = 128 * 1024
# Envelope mode: a frame over this many characters (or UTF-8 bytes) goes
# through S3 instead (the aux client's own threshold, under MAX_FRAME).
MAX_INLINE = 32_000
# SQS: the classic message limit (accounts with 1 MiB may raise the setting).
QUEUE_MESSAGE = 262_144
# The control routes (a REST API): API Gateway refuses a request body over 10 MB
# (413), and Lambda an invocation event over 6 MB (a synchronous invoke: the
# body inside the event, JSON-escaped or base64, plus the request's fields).
REST_REQUEST = 10 * 1024 * 1024
LAMBDA_REQUEST = 6 * 1024 * 1024
# A backend upload (POST /uploads): the default of SLIPWAY_MAX_PUBLISH_BYTES.
MAX_PUBLISH = 32 * 1024 * 1024
# A client upload (envelope mode): the default of SLIPWAY_MAX_UPLOAD_BYTES.
MAX_UPLOAD = 8 * 1024 * 1024
# API Gateway closes a WebSocket connection idle this many seconds, and any
# connection at this age (the local stack closes them alike).
IDLE_TIMEOUT = 600
MAX_LIFETIME = 7200
# Seconds every DynamoDB row lives (default of SLIPWAY_CONNECTION_TTL): the
# longest connection plus a margin, a safety net for a lost $disconnect.
CONNECTION_TTL = MAX_LIFETIME + 600
# A channel's history head outlives its messages by this many seconds: a client
# back after a quiet spell still finds its epoch (a new one would fail its recovery).
HISTORY_HEAD_EXTRA = 24 * 3600
# GRIP: the longest channel name accepted in a publish or a subscribe.
MAX_CHANNEL_LENGTH = 512
# How many channels one connection may join (default of SLIPWAY_MAX_CHANNELS).
MAX_CHANNELS = 20
# API Gateway closes a WebSocket connection that carried nothing for this long.
IDLE_TIMEOUT = 600
# The longest keep-alive `timeout` (seconds) a backend may set. A keep-alive is
# there to beat idle timeouts (Pushpin's default is 55 s); one longer than API
# Gateway's never fires on an idle connection, which is closed first. Bounding it
# also keeps absurd values (10**41, a 200-digit integer) out of the deployment's
# MAX_KEEPALIVE_TIMEOUTS slots.
MAX_KEEPALIVE_TIMEOUT = IDLE_TIMEOUT
# How many `Join` jobs (docs/resume.md) one connection may have queued at once: a
# subscribe that would queue one more is refused (TooManyJoins). Each runs in its
# channel's FIFO group and holds the channel's publishes while it runs, so a
# client that makes its backend subscribe it again and again must not queue
# without bound. The store allows at least the deployment's channel limit, so a
# connection can always join every channel it may at once.
MAX_QUEUED_JOINS = 20
# A channel's member count is kept in this many counter items, each under its own
# partition key; a connection's subscribe and unsubscribe both change the one its
# id hashes to. One DynamoDB item (and one partition key, until split) takes at
# most 1,000 write units a second, and a transactional write of a small item
# costs 2: one counter item would cap a channel near 500 subscribes a second.
# 16 of them lift that to ~8,000 (the order of API Gateway's account-wide default
# of 10,000 messages a second), while `GET /channels/{c}` stays one BatchGetItem
# of 17 keys: the 16, and the single counter of deployments from before them
# (docs/limits.md). Changing it recounts nothing: keep it once deployed.
COUNT_SHARDS = 16
# API Gateway's integration timeout: a $connect has returned (or failed) this
# long after the connection started, so a 410 later means the connection is gone.
INTEGRATION_TIMEOUT = 29
# Distinct keep-alive timeouts one deployment may use: the scheduler makes one
# index query a second for each.
MAX_KEEPALIVE_TIMEOUTS = 32
# A WebSocket close reason is at most 123 bytes (125 less the 2-byte code).
MAX_CLOSE_REASON = 123
# The most bytes of a backend's answer the gateway reads (docs/backend-protocol.md):
# past it the answer is dropped as a backend error, so a runaway backend cannot
# exhaust a Lambda's memory. Above the largest message a client may upload (8 MiB).
MAX_BACKEND_RESPONSE = 10 * 1024 * 1024
# A control API JWT may expire at most this far ahead (pubcontrol and
# slipway_client give theirs an hour): a leaked token is not a key for ever.
MAX_TOKEN_LIFETIME = 24 * 3600
# The largest whole number read from a client or a query (a channel offset, an
# envelope frame id): JavaScript's largest exact integer, as browser clients count,
# and well inside DynamoDB's 38 digits. Past it, a number is refused, not stored.
MAX_SAFE_INTEGER = 2**53 - 1
# UTF-8 takes at most this many bytes a character: a text this much under a
# limit in characters fits without counting its bytes.
UTF8_MAX_BYTES_PER_CHAR = 4


class CloseCode(IntEnum):
    """WebSocket close codes (RFC 6455 §7.4) that slipway reads or sends."""

    NORMAL = 1000
    UNSUPPORTED_DATA = 1003  # API Gateway's answer to a binary frame
    NO_STATUS = 1005  # the close frame carried no code
    ABNORMAL = 1006  # the connection dropped without a close frame
    MESSAGE_TOO_BIG = 1009
    TLS_FAILURE = 1015


# The close codes an application may send or be told (1000-4999).
FIRST_CLOSE_CODE, LAST_CLOSE_CODE = 1000, 4999
# Ordered delivery (docs/ordered.md): the most bytes of events one request to the
# backend carries, as Pushpin buffers at most this much for the next request.
ORDERED_REQUEST_BYTES = 200_000
# SQS FIFO hands a Lambda at most this many messages at once: a request in ordered
# mode carries at most this many of a connection's events.
FIFO_BATCH = 10
# How long ordered delivery waits for earlier $default invocations to write their
# events before forwarding (default of SLIPWAY_ORDERED_HOLD_MS).
ORDERED_HOLD_MS = 250
# Channel history (docs/resume.md): a message up to this many bytes is kept in
# its DynamoDB row (items are at most 400 KB); a larger one in its S3 object.
HISTORY_INLINE = MAX_POST
# Connection meta (docs/backend-protocol.md): every name and value rides on every
# backend request as a `Meta-<name>` header. Backends' HTTP servers refuse a
# request with too many or too large headers (431: gunicorn takes 100 headers of
# 8,190 bytes, Node 16 KB in all, Pushpin's own parser 64 headers), and the
# client's handshake headers ride beside them; so meta is bounded well under that.
MAX_META_NAME = 64  # characters of a name (letters, digits, dashes)
MAX_META_VALUE = 1024  # bytes of one value
MAX_META_NAMES = 32  # names one connection holds
MAX_META_BYTES = 4096  # all names and values of a connection together
