// Rotation before API Gateway's 2-hour cut (make before break), against a fake
// WebSocket and a fake clock: the window's timer, the rotation's timeout and its
// retries all run on the clock, so nothing here waits for real time.
import { RotationTimeoutError, SocketClosedError, resume } from "../index.js";
import { FakeSocket, eq, ok, opened, rejects, client, msg, six, throws, tick, until } from "./client.test.js";

/** @type {[string, () => unknown][]} */
export const tests = [];
const test = (name, fn) => tests.push([name, fn]);

/** setTimeout and clearTimeout on a clock that moves only when told. */
class FakeClock {
  now = 0;
  #next = 1;
  /** @type {Map<number, {at: number, fn: () => void}>} */
  #timers = new Map();
  setTimeout = (fn, ms) => {
    const id = this.#next++;
    this.#timers.set(id, { at: this.now + Math.max(0, ms), fn });
    return id;
  };
  clearTimeout = (id) => {
    this.#timers.delete(id);
  };
  /** Move `ms` on, running each timer due on the way, in order. */
  async advance(ms) {
    const end = this.now + ms;
    for (;;) {
      const due = [...this.#timers]
        .filter(([, t]) => t.at <= end)
        .sort(([a, x], [b, y]) => x.at - y.at || a - b)[0];
      if (!due) break;
      this.#timers.delete(due[0]);
      this.now = due[1].at;
      due[1].fn();
      await tick();
    }
    this.now = end;
    await tick();
  }
  /** ms until each pending timer. */
  get pending() {
    return [...this.#timers.values()].map((t) => t.at - this.now).sort((a, b) => a - b);
  }
}

const positionOf = (channel, offset) => ({ [channel]: { epoch: "e1", offset } });
const sixOf = (channel, offset) =>
  JSON.stringify([6, 0, { channel, epoch: "e1", offset, recovery: "recovered", replayed: 0 }]);

/** An open client on a fake clock, at position 2 in channel "c". */
async function rotating(options = {}) {
  const clock = new FakeClock();
  const t = await opened({
    clock,
    random: () => 0.5,
    rotateWindow: [1000, 2000],
    positions: { c: ["e1", 2] },
    ...options,
  });
  return { ...t, clock, old: t.socket() };
}

test("rotation: at a random moment of the window, make before break, no gap, no duplicate", async () => {
  const { c, seen, clock, old, socket } = await rotating();
  old.receive(six(2, "recovered"));
  old.receive(msg("three", 3));
  await clock.advance(1499); // 1000 + 0.5 * (2000 - 1000)
  eq(FakeSocket.all.length, 1, "not yet");
  await clock.advance(1);
  eq(FakeSocket.all.length, 2, "the new connection is dialled while the old one is open");
  const fresh = socket();
  eq(fresh.url, `ws://gw/?name=t&envelope=1&resume=${resume.encodeResume(positionOf("c", 3))}`);
  ok(old.readyState === 1, "the old connection stays open");
  fresh.accept();
  old.receive(msg("four", 4));
  eq(await c.send("during"), 1);
  eq(old.sent, ['[1,1,"during"]'], "sends stay on the old connection until the switch");
  fresh.receive(msg("three", 3)); // the replay overlaps what the old one delivered
  fresh.receive(msg("four", 4));
  fresh.receive(six(4, "recovered", { replayed: 2 }));
  await tick();
  fresh.receive(msg("five", 5));
  old.receive(msg("five", 5)); // still in flight on the old one
  await until(() => old.readyState === 3, "the old connection closed");
  eq(old.closedWith, [1000, "rotated"]);
  await until(() => seen.messages.length === 3, "three messages");
  eq(seen.messages, ["three", "four", "five"], "in order, once each");
  eq(await c.send("after"), 1, "ids start again on the new connection");
  eq(fresh.sent, ['[1,1,"after"]']);
  eq([c.rotations, c.reconnects, c.state], [1, 0, "open"]);
  eq(seen.states, [["connecting", 0], ["open", 0]], "no reconnecting, no state change");
  eq(seen.opens, [false, "rotation"]);
  eq(seen.errors, []);
  eq(clock.pending, [1500], "the next rotation, timed from the new connection");
  await c.close();
});

test("rotation: sends from the new connection's open listener go first on it (a page rejoining its room)", async () => {
  const { c, clock, old, socket } = await rotating({ rotateWindow: [10, 10] });
  c.addEventListener("open", (e) => {
    if (e.rotation) c.send("/join c");
  });
  await clock.advance(10);
  const fresh = socket();
  fresh.accept();
  await tick();
  eq(fresh.sent, ['[1,1,"/join c"]'], "the join, on the new connection, before the switch");
  await c.send("typed meanwhile");
  eq(old.sent, ['[1,1,"typed meanwhile"]']);
  fresh.receive(six(2, "recovered")); // the backend subscribed the new connection
  await until(() => old.readyState === 3, "the switch");
  await c.send("later");
  eq(fresh.sent, ['[1,1,"/join c"]', '[1,2,"later"]']);
  await c.close();
});

test("rotation: no [6] within rotateTimeout is an error event, and the switch anyway", async () => {
  const { c, seen, clock, old, socket } = await rotating({
    rotateWindow: [10, 10],
    rotateTimeout: 500,
    positions: { c: ["e1", 2], d: ["e1", 7] },
  });
  await clock.advance(10);
  const fresh = socket();
  fresh.accept();
  fresh.receive(sixOf("c", 2));
  await clock.advance(499);
  eq(old.readyState, 1, "still waiting for d");
  await clock.advance(1);
  await until(() => old.readyState === 3, "the old connection closed anyway");
  const timeout = seen.errors.find((e) => e instanceof RotationTimeoutError);
  ok(timeout, "a RotationTimeoutError");
  eq([timeout.code, timeout.missing, timeout.timeout], ["rotation_timeout", ["d"], 500]);
  eq(c.rotations, 1);
  fresh.receive(msg("live", 3));
  await until(() => seen.messages.length === 1, "live messages from the new connection");
  await c.close();
});

test("rotation: the gateway's cut (1001) mid-rotation: the new connection takes over, no reconnection", async () => {
  const { c, seen, clock, old, socket } = await rotating({ rotateWindow: [10, 10] });
  await clock.advance(10);
  const fresh = socket();
  fresh.accept();
  await tick();
  old.drop(1001, "Going away");
  await tick();
  eq(c.closeCode, 1001);
  eq([c.state, c.rotations, c.reconnects], ["open", 1, 0]);
  ok(!seen.states.some(([s]) => s === "reconnecting"), "no reconnecting");
  await clock.advance(5); // (the next rotation is due 10 ms after the switch)
  eq(FakeSocket.all.length, 2, "no reconnection");
  eq(await c.send("x"), 1);
  eq(fresh.sent, ['[1,1,"x"]']);
  fresh.receive(msg("three", 3));
  await until(() => seen.messages.length === 1, "a message on the new connection");
  await c.close();
});

test("rotation: a new connection that fails is reported; the old one stays; tried again after a backoff", async () => {
  const { c, seen, clock, old, socket } = await rotating({ rotateWindow: [10, 10] });
  await clock.advance(10);
  socket().drop(1006); // the handshake failed (API Gateway's 429 at its quota, say)
  await tick();
  ok(seen.errors.some((e) => e.code === "connect_failed"), "reported");
  eq([c.state, c.rotations], ["open", 0]);
  eq(await c.send("still"), 1);
  eq(old.sent, ['[1,1,"still"]']);
  eq(clock.pending, [1000], "retried after max(backoff, 1 s)");
  await clock.advance(1000);
  eq(FakeSocket.all.length, 3, "tried again");
  socket().accept();
  socket().receive(six(2, "recovered"));
  await until(() => old.readyState === 3, "rotated on the second try");
  eq(c.rotations, 1);
  await c.close();
});

test("rotation: a failed rotate() while the window's moment passed is tried again, not forgotten", async () => {
  const { c, seen, clock, socket } = await rotating({ rotateWindow: [10, 10] });
  const now = c.rotate();
  await clock.advance(10); // the timer's moment: a rotation is under way, none started
  eq(FakeSocket.all.length, 2);
  const failed = rejects(now, SocketClosedError, "connect_failed");
  socket().drop(1006);
  await failed;
  eq(seen.errors, [], "rotate()'s failure is its caller's");
  eq(clock.pending, [1000], "the next try is timed");
  await clock.advance(1000);
  eq(FakeSocket.all.length, 3);
  await c.close();
});

test("rotation: rotate() now resolves once the [6] frames came; close() gives a rotation up", async () => {
  const { c, clock, old, socket } = await rotating({ rotateWindow: null });
  eq(clock.pending, [], "rotateWindow: null never rotates by itself");
  const rotated = c.rotate();
  eq(FakeSocket.all.length, 2);
  socket().accept();
  socket().receive(six(2, "recovered"));
  eq(await rotated, true);
  eq(old.closedWith, [1000, "rotated"]);
  const again = c.rotate();
  const third = socket();
  const gaveUp = rejects(again, SocketClosedError);
  await c.close();
  await gaveUp;
  eq(third.readyState, 3, "the rotation's new connection closed too");
  await rejects(c.rotate(), SocketClosedError);
});

test("rotation: not in raw mode nor with positions: false (no de-duplication)", async () => {
  for (const options of [{ envelope: false }, { positions: false }]) {
    const clock = new FakeClock();
    const t = client("ws://gw/?r=1", { clock, rotateWindow: [1, 1], ...options });
    const connecting = t.c.connect();
    t.socket().accept();
    await connecting;
    await clock.advance(10);
    eq(FakeSocket.all.length, 1, JSON.stringify(options));
    await rejects(t.c.rotate(), Error);
    await t.c.close();
  }
});

test("rotation: the next one is timed from each new connection, a reconnection's too", async () => {
  const { c, clock, old, socket } = await rotating({ rotateWindow: [1000, 1000] });
  await clock.advance(500);
  old.drop(1006);
  eq(c.state, "reconnecting");
  eq(clock.pending, [2], "the reconnection's backoff (0.5 * 5 ms); no rotation timer");
  await clock.advance(2);
  socket().accept();
  await tick();
  await clock.advance(999);
  eq(FakeSocket.all.length, 2, "not 1000 ms after the first connection");
  await clock.advance(1);
  eq(FakeSocket.all.length, 3, "1000 ms after the reconnection");
  await c.close();
});

test("rotation: the window is checked; the default is 100 to 115 minutes, as the Python client's", () => {
  eq(resume.ROTATE_WINDOW, [6_000_000, 6_900_000]);
  eq(resume.checkWindow(undefined), [6_000_000, 6_900_000]);
  eq(resume.checkWindow(null), null);
  eq(resume.checkWindow(false), null);
  eq(resume.rotationDelay([1000, 2000], () => 0), 1000);
  eq(resume.rotationDelay([1000, 2000], () => 0.75), 1750);
  for (const bad of [[5, 1], [-1, 2], [1, Infinity], "x", [1]]) {
    throws(() => resume.checkWindow(bad), RangeError);
    throws(() => client(undefined, { rotateWindow: bad }), RangeError);
  }
  throws(() => client(undefined, { rotateTimeout: 0 }), RangeError);
});
