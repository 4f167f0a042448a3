// Unit tests of the browser client: the envelope framing (pure) and the client
// against a fake WebSocket and a fake fetch. Run in a real browser by run.js.
import {
  EnvelopeError,
  QueueFullError,
  SlipwayRecoveryEvent,
  RemoteError,
  SlipwayClient,
  SocketClosedError,
  TransferError,
  backoffDelay,
  envelope,
  resume,
  withEnvelope,
} from "../index.js";

/** @type {[string, () => unknown][]} */
export const tests = [];
const test = (name, fn) => tests.push([name, fn]);

export function eq(actual, expected, what = "") {
  const a = JSON.stringify(actual);
  const e = JSON.stringify(expected);
  if (a !== e) throw new Error(`${what} expected ${e.slice(0, 200)}, got ${a.slice(0, 200)}`);
}
export function ok(value, what) {
  if (!value) throw new Error(`not true: ${what}`);
}
export async function rejects(promise, cls, code) {
  try {
    await promise;
  } catch (error) {
    ok(error instanceof cls, `${error} is a ${cls.name}`);
    if (code !== undefined) eq(error.code, code, "error code");
    return error;
  }
  throw new Error(`did not reject with ${cls.name}`);
}
export function throws(fn, cls) {
  try {
    fn();
  } catch (error) {
    ok(error instanceof cls, `${error} is a ${cls.name}`);
    return error;
  }
  throw new Error(`did not throw ${cls.name}`);
}
export const tick = (ms = 0) => new Promise((r) => setTimeout(r, ms));
export async function until(check, what, ms = 2000) {
  const end = performance.now() + ms;
  while (!check()) {
    if (performance.now() > end) throw new Error(`waited ${ms} ms for ${what}`);
    await tick(2);
  }
}

// -- envelope framing -----------------------------------------------------------------

const VALUES = [
  "hello",
  "",
  "ünïcødé ✓ 🚀 \u2028 \"quoted\" \\ \n\t",
  0,
  -1.5e300,
  null,
  true,
  [],
  [1, "two", { three: [3] }],
  { a: 1, b: { c: ["d", null, false] }, "ü": "🚀" },
];

test("[1, id, data] is byte for byte JSON.stringify([1, id, data])", () => {
  for (const value of VALUES) {
    for (const id of [1, 42, 123456]) {
      eq(envelope.encodeMessage(id, value), JSON.stringify([1, id, value]));
      eq(envelope.messageFrame(id, envelope.dataText(value)), JSON.stringify([1, id, value]));
    }
  }
});

test("data that is no JSON value is refused before it is sent", () => {
  throws(() => envelope.dataText(undefined), TypeError);
  throws(() => envelope.dataText(() => 1), TypeError);
  throws(() => envelope.dataText(Symbol("s")), TypeError);
  throws(() => envelope.dataText(10n), TypeError);
  const cycle = {};
  cycle.self = cycle;
  throws(() => envelope.dataText(cycle), TypeError);
});

test("[2, id] and [4, id, url, GET, {}] as the aux client writes them", () => {
  eq(envelope.encodeUploadRequest(7), "[2,7]");
  const url = "http://127.0.0.1:9/b/uploads/c%3D/1-7-x.json";
  eq(envelope.encodeDownload(7, url), JSON.stringify([4, 7, url, "GET", {}]));
});

test("utf8Length counts what TextEncoder writes", () => {
  const samples = ["", "a", "é", "€", "🚀", "a\ud800b", "\udc00", "\ud83d", "x🚀y\ud83d\ud83d\ude80"];
  let random = "";
  for (let i = 0; i < 2000; i++) random += String.fromCharCode(Math.floor(Math.random() * 0x10000));
  for (const s of [...samples, random]) {
    eq(envelope.utf8Length(s), new TextEncoder().encode(s).length, JSON.stringify(s.slice(0, 10)));
  }
});

test("inline up to 32,000 UTF-8 bytes; over it, an upload", () => {
  eq(envelope.MAX_INLINE_BYTES, 32000);
  const frame = (n, ch = "a") => envelope.encodeMessage(1, ch.repeat(n));
  const overhead = frame(0).length; // [1,1,""]
  ok(envelope.fitsInline(frame(32000 - overhead)), "exactly 32,000 bytes fits");
  ok(!envelope.fitsInline(frame(32001 - overhead)), "32,001 bytes does not");
  // Under 32,000 characters but over 32,000 bytes: measured in bytes.
  const twoByte = frame(16000, "é");
  ok(twoByte.length < 32000 && new TextEncoder().encode(twoByte).length > 32000, "setup");
  ok(!envelope.fitsInline(twoByte), "é is two bytes");
  ok(envelope.fitsInline(frame(15990, "é")), "15,990 é fit");
});

test("stripQuery cuts the query and fragment, and nothing else", () => {
  eq(envelope.stripQuery("https://b.s3.amazonaws.com/uploads/a%3D/k.json?X-Amz-Signature=1&b=2"),
    "https://b.s3.amazonaws.com/uploads/a%3D/k.json");
  eq(envelope.stripQuery("http://h:1/k#f"), "http://h:1/k");
  eq(envelope.stripQuery("http://H:443/k"), "http://H:443/k");
});

test("decode reads the five frames", () => {
  eq(envelope.decode('[1,0,{"a":1}]'), { type: 1, id: 0, data: { a: 1 } });
  eq(envelope.decode("[1,3,null]"), { type: 1, id: 3, data: null });
  eq(envelope.decode("[2,9]"), { type: 2, id: 9 });
  eq(envelope.decode('[3,2,"https://s3/k?sig=1","put",{"Content-Type":"application/json","x-amz-acl":"bucket-owner-full-control"}]'), {
    type: 3, id: 2, url: "https://s3/k?sig=1", method: "PUT",
    headers: { "Content-Type": "application/json", "x-amz-acl": "bucket-owner-full-control" },
  });
  eq(envelope.decode('[4,-1,"https://s3/d?sig=1","GET",{}]'), { type: 4, id: -1, url: "https://s3/d?sig=1", method: "GET", headers: {} });
  eq(envelope.decode('[4,-1,"https://s3/d"]'), { type: 4, id: -1, url: "https://s3/d", method: "GET", headers: {} });
  eq(envelope.decode('[5,4,{"success":false,"errorCode":"foreign_key","errorMessage":"no"}]'), { type: 5, id: 4, code: "foreign_key", message: "no" });
});

test("decode refuses what is not a frame, as JavaScript reads it", () => {
  for (const bad of ["nope", "{}", "[1]", "[true,1,2]", "[1,1.5,2]", '["1",1,2]', "[1,1]", "[2,1,2]",
    '[3,1,"ftp://x","PUT",{}]', '[4,1,"http://x","GET",{"a":1}]', "[5,1,[]]", "[5,1]", "[1e999,1,2]", "[NaN,1,2]"]) {
    throws(() => envelope.decode(bad), Error);
    try { envelope.decode(bad); } catch (e) { eq(e.code, "bad_frame", bad); }
  }
  const unknown = throws(() => envelope.decode("[9,1,\"x\"]"), Error);
  eq(unknown.frame, [9, 1, "x"], "an unknown frame comes with the error");
});

test("withEnvelope adds envelope=1 once, keeps the rest", () => {
  eq(withEnvelope("ws://h:1/"), "ws://h:1/?envelope=1");
  eq(withEnvelope("ws://h/?name=ann&envelope=0#x"), "ws://h/?name=ann&envelope=1#x");
});

test("backoff: full jitter under an exponentially growing, capped ceiling", () => {
  const options = { initialDelay: 100, maxDelay: 1000, factor: 2 };
  eq(backoffDelay(0, options, () => 0), 0);
  eq(backoffDelay(0, options, () => 0.999999), 99);
  eq(backoffDelay(3, options, () => 0.5), 400);
  eq(backoffDelay(10, options, () => 0.5), 500, "capped at maxDelay");
  for (let i = 0; i < 200; i++) {
    const d = backoffDelay(2, options);
    ok(d >= 0 && d < 400, `${d} in [0, 400)`);
  }
  throws(() => backoffDelay(0, { factor: 0.5 }), RangeError);
});

// -- the client, against fakes ------------------------------------------------------------

export class FakeSocket {
  static all = [];
  constructor(url, protocols) {
    this.url = url;
    this.protocols = protocols;
    this.readyState = 0;
    this.sent = [];
    FakeSocket.all.push(this);
  }
  send(data) {
    if (this.readyState !== 1) throw new Error("not open");
    this.sent.push(data);
  }
  close(code = 1005, reason = "") {
    if (this.readyState === 3) return;
    this.readyState = 3;
    this.closedWith = [code, reason];
    setTimeout(() => this.onclose?.({ code, reason }), 0);
  }
  // test side
  accept() {
    this.readyState = 1;
    this.onopen?.({});
  }
  receive(data) {
    this.onmessage?.({ data });
  }
  drop(code = 1006, reason = "") {
    this.readyState = 3;
    this.onclose?.({ code, reason });
  }
}

function fakeFetch(answer = () => ({ status: 200, body: "" })) {
  const calls = [];
  const fetch = async (url, init) => {
    calls.push({ url, ...init });
    const { status, body } = answer(url, init);
    return { ok: status >= 200 && status < 300, status, text: async () => body };
  };
  return { fetch, calls };
}

export function client(url = "ws://gw/?name=t", options = {}) {
  FakeSocket.all = [];
  const c = new SlipwayClient(url, {
    WebSocket: FakeSocket,
    reconnect: { initialDelay: 5, maxDelay: 10 },
    ...options,
  });
  const seen = { messages: [], states: [], errors: [], opens: [] };
  c.addEventListener("message", (e) => seen.messages.push(e.data));
  c.addEventListener("statechange", (e) => seen.states.push([e.state, e.attempt]));
  c.addEventListener("error", (e) => seen.errors.push(e.error));
  c.addEventListener("open", (e) => seen.opens.push(e.rotation ? "rotation" : e.reconnected));
  return { c, seen, socket: () => FakeSocket.all.at(-1) };
}

export async function opened(options) {
  const t = client(undefined, options);
  const connecting = t.c.connect();
  t.socket().accept();
  await connecting;
  return t;
}

test("connect dials with envelope=1; sends are [1, id, data] with ids from 1", async () => {
  const { c, socket, seen } = await opened();
  eq(socket().url, "ws://gw/?name=t&envelope=1&resume="); // resume=: no positions yet
  eq(c.state, "open");
  eq(await c.send("hi"), 1);
  eq(await c.send({ n: [1] }), 2);
  eq(socket().sent, ['[1,1,"hi"]', '[1,2,{"n":[1]}]']);
  eq(seen.states, [["connecting", 0], ["open", 0]]);
});

test("a large message: [2] -> [3] -> PUT with the gateway's headers -> [4, id, url without query]", async () => {
  const http = fakeFetch();
  const { c, socket } = await opened({ fetch: http.fetch });
  const big = "x".repeat(40000);
  const sending = c.send(big);
  await until(() => socket().sent.length === 1, "[2]");
  eq(socket().sent[0], "[2,1]");
  const headers = { "Content-Type": "application/json", "x-amz-acl": "bucket-owner-full-control" };
  socket().receive(JSON.stringify([3, 1, "http://s3/b/uploads/c/k.json?sig=abc&x=1", "PUT", headers]));
  eq(await sending, 1);
  eq(http.calls.length, 1);
  eq(http.calls[0].method, "PUT");
  eq(http.calls[0].url, "http://s3/b/uploads/c/k.json?sig=abc&x=1");
  eq(http.calls[0].headers, headers);
  eq(http.calls[0].body, JSON.stringify(big));
  eq(socket().sent[1], JSON.stringify([4, 1, "http://s3/b/uploads/c/k.json", "GET", {}]));
});

test("a multi-byte message under 32,000 characters but over 32,000 bytes is uploaded", async () => {
  const http = fakeFetch();
  const { c, socket } = await opened({ fetch: http.fetch });
  const sending = c.send("é".repeat(16500));
  await until(() => socket().sent.length === 1, "[2]");
  eq(socket().sent[0], "[2,1]");
  socket().receive('[3,1,"http://s3/k?q","PUT",{}]');
  await sending;
});

test("the gateway's [5] for an upload rejects send() with RemoteError", async () => {
  const { c, socket } = await opened({ fetch: fakeFetch().fetch });
  const sending = c.send("y".repeat(33000));
  await until(() => socket().sent.length === 1, "[2]");
  socket().receive('[5,1,{"success":false,"errorCode":"uploads_unavailable","errorMessage":"no bucket"}]');
  const error = await rejects(sending, RemoteError, "uploads_unavailable");
  eq(error.id, 1);
});

test("a failed PUT rejects send() with TransferError and its status", async () => {
  const http = fakeFetch(() => ({ status: 403, body: "<Error>AccessDenied</Error>" }));
  const { c, socket } = await opened({ fetch: http.fetch });
  const sending = c.send("z".repeat(33000));
  await until(() => socket().sent.length === 1, "[2]");
  socket().receive('[3,1,"http://s3/k?q","PUT",{}]');
  const error = await rejects(sending, TransferError, "transfer_failed");
  eq(error.status, 403);
});

test("downloads [4, -1, url] with GET and delivers in arrival order", async () => {
  let release;
  const gate = new Promise((r) => (release = r));
  const http = fakeFetch(() => ({ status: 200, body: '{"big":true}' }));
  const slow = async (url, init) => {
    await gate;
    return http.fetch(url, init);
  };
  const { socket, seen } = await opened({ fetch: slow });
  socket().receive('[1,0,"before"]');
  socket().receive('[4,-1,"http://s3/downloads/d.json?sig=1"]');
  socket().receive('[1,0,"after"]');
  await tick(10);
  eq(seen.messages, ["before"], "the download holds back what came after it");
  release();
  await until(() => seen.messages.length === 3, "all three");
  eq(seen.messages, ["before", { big: true }, "after"]);
  eq(http.calls[0].method, "GET");
  eq(http.calls[0].url, "http://s3/downloads/d.json?sig=1");
});

test("a failed download is an error event; later messages still arrive", async () => {
  const http = fakeFetch(() => ({ status: 404, body: "gone" }));
  const { socket, seen } = await opened({ fetch: http.fetch });
  socket().receive('[4,-1,"http://s3/d","GET",{}]');
  socket().receive('[1,0,"next"]');
  await until(() => seen.messages.length === 1, "next");
  eq(seen.messages, ["next"]);
  ok(seen.errors[0] instanceof TransferError, "TransferError reported");
});

test("a frame it cannot read is an error event, not a message", async () => {
  const { socket, seen } = await opened();
  socket().receive("not json");
  socket().receive('[5,77,{"success":false,"errorCode":"invalid_frame","errorMessage":"x"}]');
  await tick(5);
  eq(seen.messages, []);
  eq(seen.errors.map((e) => e.code), ["bad_frame", "invalid_frame"]);
});

test("after a drop: reconnecting with attempts, sends queued, flushed in order on reopen", async () => {
  const { c, socket, seen } = await opened({ maxQueue: 3 });
  const first = socket();
  first.drop(1000, "");
  eq(c.state, "reconnecting");
  const queued = [c.send("a"), c.send("b"), c.send("c")];
  eq(c.queued, 3);
  await rejects(c.send("d"), QueueFullError, "queue_full");
  await until(() => FakeSocket.all.length === 2, "a second socket");
  socket().drop(1006); // the attempt fails
  await until(() => FakeSocket.all.length === 3, "a third socket");
  socket().accept();
  eq(await Promise.all(queued), [1, 2, 3]);
  eq(socket().sent, ['[1,1,"a"]', '[1,2,"b"]', '[1,3,"c"]']);
  eq(seen.states.filter(([s]) => s === "reconnecting"), [["reconnecting", 1], ["reconnecting", 2]]);
  eq(seen.opens, [false, true]);
  eq(c.reconnects, 1);
  ok(seen.errors.some((e) => e.code === "connect_failed"), "the failed attempt is reported");
});

test("messages sent from an open listener go before those that waited", async () => {
  const { c, socket } = await opened();
  c.addEventListener("open", (e) => {
    if (e.reconnected) c.send("/join lobby");
  });
  socket().drop(1001);
  const waiting = c.send("typed while away");
  await until(() => FakeSocket.all.length === 2, "a second socket");
  socket().accept();
  await waiting;
  eq(socket().sent, ['[1,1,"/join lobby"]', '[1,2,"typed while away"]']);
});

test("maxAttempts: gives up, closes, rejects what waited", async () => {
  const { c, socket, seen } = await opened({ reconnect: { initialDelay: 1, maxDelay: 2, maxAttempts: 2 } });
  socket().drop(1006);
  const waiting = c.send("lost");
  await until(() => FakeSocket.all.length === 2, "attempt 1");
  socket().drop(1006);
  await until(() => FakeSocket.all.length === 3, "attempt 2");
  socket().drop(1006);
  await rejects(waiting, SocketClosedError);
  eq(c.state, "closed");
  ok(seen.errors.some((e) => /gave up/.test(e.message)), "gave up reported");
});

test("the first connection is not retried: connect() rejects", async () => {
  const { c, socket } = client();
  const connecting = c.connect();
  socket().drop(1006);
  await rejects(connecting, SocketClosedError, "connect_failed");
  eq(c.state, "closed");
});

test("close() stops reconnecting and rejects queued sends", async () => {
  const { c, socket } = await opened();
  socket().drop(1006);
  const waiting = c.send("never");
  await c.close();
  await rejects(waiting, SocketClosedError, "closed");
  eq(c.state, "closed");
  await tick(30);
  eq(FakeSocket.all.length, 1, "no reconnection after close()");
  await rejects(c.send("x"), SocketClosedError);
});

test("raw mode: frames go and come as they are", async () => {
  const t = client("ws://gw/raw", { envelope: false });
  const connecting = t.c.connect();
  eq(t.socket().url, "ws://gw/raw");
  t.socket().accept();
  await connecting;
  eq(await t.c.send("plain [1,2,3]"), undefined);
  eq(t.socket().sent, ["plain [1,2,3]"]);
  t.socket().receive("[1,0,\"not unwrapped\"]");
  await until(() => t.seen.messages.length === 1, "a message");
  eq(t.seen.messages, ['[1,0,"not unwrapped"]']);
  await rejects(t.c.send({ not: "text" }), TypeError);
});

test("resume extension point: URL, opened hook before the queue, unknown frames", async () => {
  const calls = [];
  const resume = {
    url: (url, info) => `${url}&r=${info.reconnects}`,
    opened: async (ctx) => {
      calls.push(["opened", ctx.reconnected]);
      if (ctx.reconnected) ctx.sendFrame("[hook]");
    },
    frame: (frame) => {
      calls.push(["frame", frame]);
      return frame[0] === 9;
    },
  };
  const { c, socket, seen } = client(undefined, { resume });
  const connecting = c.connect();
  eq(socket().url, "ws://gw/?name=t&envelope=1&resume=&r=0");
  socket().accept();
  await connecting;
  socket().receive("[9,1,{}]");
  socket().receive("[8,1]");
  socket().drop(1006);
  const waiting = c.send("after");
  await until(() => FakeSocket.all.length === 2, "reconnect");
  socket().accept();
  await waiting;
  eq(socket().sent, ["[hook]", '[1,1,"after"]']);
  eq(calls, [["opened", false], ["frame", [9, 1, {}]], ["frame", [8, 1]], ["opened", true]]);
  eq(seen.errors.map((e) => e.code), ["bad_frame"], "[8] was not taken: reported");
});

// -- resume after reconnect (docs/resume.md) ---------------------------------------------

export const stamp = (offset, epoch = "e1", channel = "c") => ({ channel, epoch, offset });
export const msg = (data, offset, epoch = "e1", channel = "c") =>
  JSON.stringify([1, 0, data, stamp(offset, epoch, channel)]);
export const six = (offset, recovery, extra = {}, epoch = "e1") =>
  JSON.stringify([6, 0, { channel: "c", epoch, offset, recovery, replayed: 0, ...extra }]);

test("frames with positions, and [6]", () => {
  eq(envelope.decode(msg("hi", 57, "a7f3", "chat")), {
    type: 1,
    id: 0,
    data: "hi",
    stamp: { channel: "chat", epoch: "a7f3", offset: 57 },
  });
  eq(envelope.decode('[4,-1,"https://b/k","GET",{},{"channel":"c","epoch":"e","offset":2}]').stamp, stamp(2, "e"));
  eq(envelope.decode(six(60, "failed", { reason: "too_old" })), {
    type: 6,
    id: 0,
    channel: "c",
    epoch: "e1",
    offset: 60,
    recovery: "failed",
    replayed: 0,
    reason: "too_old",
    floor: null,
  });
  eq(envelope.decode(six(60, "none", { floor: "60.mac" })).floor, "60.mac");
  throws(() => envelope.decode(six(60, "none", { floor: 60 })), EnvelopeError);
  throws(() => envelope.decode('[1,0,"x",{"channel":"c","epoch":"e","offset":-1}]'), EnvelopeError);
  throws(() => envelope.decode(six(1, "maybe")), EnvelopeError);
});

test("resume= spelled as the gateway reads it", () => {
  eq(resume.encodeResume({ chat: { epoch: "a7f3", offset: 57 } }), "eyJjaGF0IjpbImE3ZjMiLDU3XX0");
  const positions = { "ünï/+": { epoch: "é", offset: 2 ** 40 } };
  eq(resume.decodeResume(resume.encodeResume(positions)), positions);
  eq(resume.withResume("ws://h/?resume=old&a=1#f", {}), "ws://h/?a=1&resume=#f");
});

test("the tracker keeps each channel's floor and presents it with the position", () => {
  const t = new resume.Tracker();
  t.recover({ ...stamp(4), floor: "4.mac" });
  ok(t.admit(stamp(5)), "live");
  t.recover({ ...stamp(4), floor: "4.mac2" }); // behind: the position stays, the floor is new
  eq(t.floors, { c: "4.mac2" });
  const value = resume.withResume("ws://h/", t.positions, t.floors).split("resume=")[1];
  eq(JSON.parse(atob(value.replace(/-/g, "+").replace(/_/g, "/"))), { c: ["e1", 5, "4.mac2"] });
  t.forget("c");
  eq(t.floors, {});
});

test("the tracker drops what was delivered and never goes back in an epoch", () => {
  const t = new resume.Tracker();
  ok(t.admit(stamp(5)), "first");
  ok(!t.admit(stamp(5)) && !t.admit(stamp(3)), "duplicates");
  t.recover(stamp(4)); // behind: ignored
  eq(t.positions, { c: { epoch: "e1", offset: 5 } });
  t.recover(stamp(1, "e2")); // the channel's history was reset
  ok(!t.admit(stamp(6)), "an epoch the channel left");
  ok(t.admit(stamp(2, "e2")), "the new epoch");
});

test("tracks positions, reconnects with them, drops duplicates, reports recovery in order", async () => {
  const { c, socket, seen } = await opened({ positions: { c: ["e1", 2] } });
  eq(socket().url, `ws://gw/?name=t&envelope=1&resume=${resume.encodeResume({ c: { epoch: "e1", offset: 2 } })}`);
  const recoveries = [];
  c.addEventListener("recovery", (e) => {
    ok(e instanceof SlipwayRecoveryEvent, "a SlipwayRecoveryEvent");
    recoveries.push([e.channel, e.status, e.replayed, e.reason, seen.messages.length]);
  });
  socket().receive(msg("three", 3));
  socket().receive(six(3, "recovered", { replayed: 1 }));
  socket().receive(msg("three", 3)); // a duplicate
  socket().receive(msg("four", 4));
  socket().receive('[1,0,"direct"]'); // no position: always delivered
  await until(() => seen.messages.length === 3, "three messages");
  eq(seen.messages, ["three", "four", "direct"]);
  eq(recoveries, [["c", "recovered", 1, null, 1]]);
  eq(c.positions, { c: { epoch: "e1", offset: 4 } });
  socket().drop(1006);
  await until(() => FakeSocket.all.length === 2, "a reconnection");
  eq(socket().url, `ws://gw/?name=t&envelope=1&resume=${resume.encodeResume(c.positions)}`);
  socket().accept();
  socket().receive(six(9, "failed", { reason: "too_old" }));
  socket().receive(msg("nine", 9)); // not after the [6]'s position: dropped
  socket().receive(msg("ten", 10));
  await until(() => seen.messages.length === 4, "the live message");
  eq(seen.messages.at(-1), "ten");
  eq(recoveries.at(-1), ["c", "failed", 0, "too_old", 3]);
  c.forget("c");
  eq(c.positions, {});
});

test("the gateway's going away (1001) is resumed at once; raw mode has no resume", async () => {
  const { c, socket, seen } = await opened({ reconnect: { initialDelay: 60_000, maxDelay: 60_000 } });
  socket().drop(1001, "Going away");
  eq(seen.states.at(-1), ["reconnecting", 1]);
  await until(() => FakeSocket.all.length === 2, "an immediate reconnection");
  socket().accept();
  await c.close();
  const raw = client("ws://gw/raw", { envelope: false, positions: { c: ["e", 1] } });
  const connecting = raw.c.connect();
  eq(raw.socket().url, "ws://gw/raw");
  eq(raw.c.positions, {});
  raw.socket().accept();
  await connecting;
  await raw.c.close();
});
