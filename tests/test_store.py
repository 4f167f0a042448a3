"""The DynamoDB store against a moto server."""

from __future__ import annotations

import time

import boto3
import pytest

from chalicelib.aws import table as tbl
from chalicelib.aws.store import Connection, Store, TooManyChannels, UnknownConnection
from chalicelib.grip import keepalive as ka
from chalicelib.grip.history import Position
from chalicelib.grip.introspection import CONNECTION_SHARDS, shard_of
from chalicelib.grip.jobs import Stored
from chalicelib.grip.limits import COUNT_SHARDS
from chalicelib.grip.payload import Payload

EP = "http://127.0.0.1:1/dev"


@pytest.fixture
def store(table: str) -> Store:
    return Store(boto3.client("dynamodb"), table, ttl_seconds=7800, max_channels=3)


def conn(cid: str = "c1", **kw) -> Connection:
    return Connection(id=cid, endpoint=EP, created_at=1_700_000_000_000, **kw)


def all_rows(table: str) -> list[dict]:
    return boto3.client("dynamodb").scan(TableName=table)["Items"]


def test_connection_round_trip(store: Store) -> None:
    original = conn(
        headers={"Cookie": "a=1; b=2", "Origin": "https://x"},
        query="room=1&x=%20",
        meta={"user": "alice"},
        grip_prefix="m:",
    )
    store.put_connection(original)
    assert store.get_connection("c1") == original
    assert store.get_connection("nope") is None


def test_every_row_carries_a_ttl_of_two_hours_ten(store: Store, table: str) -> None:
    store.put_connection(conn())
    store.subscribe("c1", "room", EP)
    now = time.time()
    rows = all_rows(table)
    assert len(rows) == 4  # connection, its index row, membership, the channel's count
    for row in rows:
        assert 7800 - 5 <= int(row["expires_at"]["N"]) - now <= 7800 + 5


def test_meta_set_and_delete(store: Store) -> None:
    store.put_connection(conn(meta={"a": "1"}))
    store.set_meta("c1", "b", "2")
    store.set_meta("c1", "a", "")
    assert store.get_connection("c1").meta == {"b": "2"}
    with pytest.raises(UnknownConnection):
        store.set_meta("ghost", "a", "1")


def test_detach_and_keep_alive(store: Store) -> None:
    store.put_connection(conn())
    store.set_detached("c1")
    store.set_keep_alive("c1", ka.started(1000.5, Payload.of_text("ping"), 30, "idle"))
    got = store.get_connection("c1")
    assert got.detached
    assert got.keep_alive == {"content": "ping", "timeout": 30, "mode": "idle", "since": 1001}
    [due] = store.due(ka.slot(30, 1001))
    assert (due.connection_id, due.settings.payload, due.settings.since) == (
        "c1",
        due.settings.payload,
        1001,
    )
    assert due.settings.payload == Payload.of_text("ping")
    store.set_keep_alive("c1", None)
    assert store.get_connection("c1").keep_alive is None


def test_subscribe_twice_is_harmless_and_unsubscribe_unknown_too(store: Store) -> None:
    store.put_connection(conn())
    store.subscribe("c1", "room", EP)
    store.subscribe("c1", "room", EP)
    members, cursor = store.members("room")
    assert [m.connection_id for m in members] == ["c1"] and cursor is None
    store.unsubscribe("c1", "never-joined")
    store.unsubscribe("c1", "room")
    store.unsubscribe("c1", "room")
    assert store.members("room") == ([], None)
    assert store.get_connection("c1").channels == frozenset()


def test_channel_cap(store: Store) -> None:
    store.put_connection(conn())
    for ch in ("a", "b", "c"):
        store.subscribe("c1", ch, EP)
    with pytest.raises(TooManyChannels):
        store.subscribe("c1", "d", EP)
    store.subscribe("c1", "a", EP)  # already in it: not a fourth channel
    assert store.get_connection("c1").channels == {"a", "b", "c"}
    assert store.members("d") == ([], None)


def test_subscribe_unknown_connection(store: Store) -> None:
    with pytest.raises(UnknownConnection):
        store.subscribe("ghost", "room", EP)
    assert store.members("room") == ([], None)


def test_members_page_by_page(store: Store) -> None:
    ids = [f"c{i:02d}" for i in range(7)]
    for cid in ids:
        store.put_connection(conn(cid))
        store.subscribe(cid, "big", EP)
    seen, cursor = [], None
    pages = 0
    while True:
        page, cursor = store.members("big", start=cursor, limit=3)
        pages += 1
        seen += [m.connection_id for m in page]
        assert all(m.endpoint == EP for m in page)
        if cursor is None:
            break
    assert sorted(seen) == ids and pages >= 3


def test_remove_connection_removes_every_row(store: Store, table: str) -> None:
    store.put_connection(conn("c1"))
    store.put_connection(conn("c2"))
    for ch in ("a", "b", "c"):
        store.subscribe("c1", ch, EP)
    store.subscribe("c2", "a", EP)
    removed = store.remove_connection("c1")
    assert removed is not None and removed.channels == {"a", "b", "c"}
    rows = {(r["pk"]["S"], r["sk"]["S"]) for r in all_rows(table)}
    assert {r for r in rows if not r[0].startswith(("conns#", "chancount#"))} == {
        ("conn#c2", "conn"),
        ("chan#a", "c2"),
    }
    assert [r for r in rows if r[0].startswith("conns#")] == [(f"conns#{shard_of('c2')}", "c2")]
    assert [store.count(ch) for ch in ("a", "b", "c")] == [1, 0, 0]
    assert store.remove_connection("c1") is None


# -- counts and listings (issue 15) ----------------------------------------------


def test_count_follows_subscribe_unsubscribe_and_removal(store: Store) -> None:
    for cid in ("c1", "c2", "c3"):
        store.put_connection(conn(cid))
        store.subscribe(cid, "room", EP)
    store.subscribe("c1", "room", EP)  # again: counted once
    assert store.count("room") == 3 and store.count("nowhere") == 0
    store.unsubscribe("c2", "room")
    store.unsubscribe("c2", "room")  # again: nothing
    assert store.count("room") == 2
    store.remove_connection("c3")
    assert store.count("room") == 1
    store.remove_connection("c1")
    assert store.count("room") == 0


def test_an_expired_count_starts_again_from_zero(store: Store, table: str) -> None:
    """A counter shard past its TTL counted only expired members (disconnects
    lost): it reads 0, and the next change starts it again."""
    db = boto3.client("dynamodb")
    key = tbl.count_key("room", tbl.count_shard_of("c1"))
    db.put_item(TableName=table, Item={**key, "n": {"N": "7"}, "expires_at": {"N": "1"}})
    assert store.count("room") == 0
    store.put_connection(conn("c1"))
    store.subscribe("c1", "room", EP)
    assert store.count("room") == 1
    db.put_item(TableName=table, Item={**key, "n": {"N": "7"}, "expires_at": {"N": "1"}})
    store.unsubscribe("c1", "room")
    assert store.count("room") == 0
    db.delete_item(TableName=table, Key=key)  # deleted by TTL meanwhile
    store.put_connection(conn("c1"))
    store.subscribe("c1", "room", EP)
    db.delete_item(TableName=table, Key=key)
    store.remove_connection("c1")  # never below zero
    assert store.count("room") == 0


def test_subscribes_to_one_channel_spread_over_the_counter_shards(store: Store, table: str) -> None:
    """No one item takes every subscribe: each connection's subscribe and
    unsubscribe change the shard its id hashes to, each under its own partition
    key, and the count is their sum, read in one request."""
    ids = [f"conn{k:02d}=" for k in range(40)]
    for cid in ids:
        store.put_connection(conn(cid))
        store.subscribe(cid, "room", EP)
        store.subscribe(cid, "room", EP)  # a repeat: counted once
    counters = {
        r["pk"]["S"]: int(r["n"]["N"])
        for r in all_rows(table)
        if r["pk"]["S"].startswith("chancount#")
    }
    shards = {tbl.count_shard_of(cid) for cid in ids}
    assert set(counters) == {tbl.count_key("room", k)["pk"]["S"] for k in shards}
    assert len(counters) > COUNT_SHARDS // 2 and max(counters.values()) < len(ids) // 2
    calls: list[str] = []
    client = boto3.client("dynamodb")
    client.meta.events.register("before-call.dynamodb", lambda model, **_: calls.append(model.name))
    counting = Store(client, table, ttl_seconds=7800, max_channels=3)
    assert counting.count("room") == 40 and calls == ["BatchGetItem"]
    for cid in ids[:15]:
        store.unsubscribe(cid, "room")
    for cid in ids[15:25]:
        store.remove_connection(cid)
    assert store.count("room") == 15
    assert all(int(r["n"]["N"]) >= 0 for r in all_rows(table) if "n" in r)
    for cid in ids[25:]:
        store.unsubscribe(cid, "room")
    assert store.count("room") == 0 and store.count("nowhere") == 0


def test_the_counter_of_before_the_shards_is_read_and_counted_down(
    store: Store, table: str
) -> None:
    """An upgraded deployment: members counted in the channel's single counter
    (`chanmeta#<c>`/`count`) stay counted, and as they leave the total goes down
    whichever counter took them, none below zero; new subscribes go to the shards."""
    db = boto3.client("dynamodb")
    old = [f"old{k}" for k in range(6)]
    for cid in old:  # subscribed before the upgrade: counted in the single counter
        store.put_connection(conn(cid))
        store.subscribe(cid, "room", EP)
    for r in all_rows(table):
        if r["pk"]["S"].startswith("chancount#"):
            db.delete_item(TableName=table, Key={"pk": r["pk"], "sk": r["sk"]})
    legacy = tbl.legacy_count_key("room")
    expires = {"N": str(int(time.time()) + 7800)}
    db.put_item(TableName=table, Item={**legacy, "n": {"N": "6"}, "expires_at": expires})
    assert store.count("room") == 6
    new = [f"new{k}" for k in range(6)]
    for cid in new:
        store.put_connection(conn(cid))
        store.subscribe(cid, "room", EP)
    assert store.count("room") == 12
    store.unsubscribe(old[0], "room")
    store.remove_connection(old[1])
    store.unsubscribe(new[0], "room")
    assert store.count("room") == 9
    for cid in old[2:] + new[1:]:
        store.unsubscribe(cid, "room")
        store.unsubscribe(cid, "room")  # a repeat: nothing
    assert store.count("room") == 0
    rows = [r for r in all_rows(table) if "n" in r]
    assert rows and all(int(r["n"]["N"]) == 0 for r in rows)
    assert db.get_item(TableName=table, Key=legacy)["Item"]["expires_at"] == expires


def test_removal_above_one_transaction_of_channels(table: str) -> None:
    store = Store(boto3.client("dynamodb"), table, ttl_seconds=7800, max_channels=60)
    store.put_connection(conn("c1"))
    channels = [f"ch{k:02d}" for k in range(55)]
    for ch in channels:
        store.subscribe("c1", ch, EP)
    assert store.remove_connection("c1") is not None
    assert store.get_connection("c1") is None
    assert all(store.count(ch) == 0 for ch in channels)
    assert not [r for r in all_rows(table) if r["pk"]["S"].startswith("chan#")]


def test_every_connection_page_by_page(store: Store) -> None:
    ids = sorted(f"id{k:03d}=" for k in range(45))
    for cid in ids:
        store.put_connection(conn(cid))
    seen: list[str] = []
    shard, after = 0, None
    while True:
        page, nxt = store.connection_ids(shard, after, 7)
        assert len(page) <= 7
        seen += page
        if nxt is None:
            break
        shard, after = nxt[0], nxt[1] or None
    assert sorted(seen) == ids and len(seen) == len(set(seen))
    assert {shard_of(c) for c in ids} <= set(range(CONNECTION_SHARDS))
    got = store.connections(ids[:3] + ["missing="])
    assert sorted(got) == ids[:3] and got[ids[0]].created_at == 1_700_000_000_000


def test_update_meta_sets_and_clears_at_once(store: Store) -> None:
    store.put_connection(conn(meta={"user": "ann", "room": "x"}))
    assert store.update_meta("c1", {"user": "bob", "room": None, "lang": "en"}) == {
        "user": "bob",
        "lang": "en",
    }
    assert store.get_connection("c1").meta == {"user": "bob", "lang": "en"}
    with pytest.raises(UnknownConnection):
        store.update_meta("ghost", {"a": "b"})


# -- channel history (issue 12, docs/resume.md) ---------------------------------------


def test_a_resuming_connection_round_trips_its_positions(store: Store) -> None:
    original = conn(
        envelope=True, resume=True, since={"a": Position("e1", 7), "b/c": Position("", 0)}
    )
    store.put_connection(original)
    assert store.get_connection("c1") == original
    store.used_since("c1", "b/c")
    got = store.get_connection("c1")
    assert got is not None and got.since == {"a": Position("e1", 7)}


def publish(
    store: Store,
    channel: str,
    message_id: str,
    content: Payload | Stored,
    keep: int = 600,
    epoch: str = "e",
    item_id: str | None = None,
) -> Position:
    """A publish as the worker records it (resume.record): an offset, then its row."""
    position = store.take_offset(channel, message_id, keep, epoch)
    store.keep_entry(channel, position, content, keep, item_id)
    return position


def test_history_offsets_count_up_and_a_retried_publish_keeps_its_own(store: Store) -> None:
    first = publish(store, "room", "msg-1", Payload.of_text("hello"), epoch="e1")
    second = publish(store, "room", "msg-2", Payload.of_bytes(b"\x00\xff"), epoch="e2")
    again = publish(store, "room", "msg-2", Payload.of_bytes(b"\x00\xff"), epoch="e3")
    assert (first, second, again) == (("e1", 1), ("e1", 2), ("e1", 2))
    assert store.history_head("room") == ("e1", 2)
    entries = store.history("room", "e1", after=0)
    assert [(e.offset, e.payload.data if e.payload else None) for e in entries] == [
        (1, b"hello"),
        (2, b"\x00\xff"),
    ]
    assert entries[1].payload is not None and entries[1].payload.binary
    assert store.history("room", "e1", after=1, upto=1) == []
    assert store.history("room", "other-epoch", after=0) == []
    assert store.history_head("elsewhere") is None


def test_a_kept_message_round_trips_inline_or_stored_with_its_ids(store: Store) -> None:
    """What resume.record keeps comes back from the history as it went in."""
    one = store.take_offset("room", "m1", 600, "e")
    two = store.take_offset("room", "m2", 600, "e")
    three = store.take_offset("room", "m3", 600, "e")
    store.keep_entry("room", one, Payload.of_text("hi"), 600, "i1")
    store.keep_entry("room", two, Stored("downloads/big.json", True), 600, "i2", "i1")
    store.keep_entry("room", three, Stored("downloads/t.json", False), 600, prev_id="i2")
    got = [
        (e.offset, e.payload, e.stored, e.binary, e.id, e.prev_id)
        for e in store.history("room", "e", after=0)
    ]
    assert got == [
        (1, Payload.of_text("hi"), None, False, "i1", None),
        (2, None, "downloads/big.json", True, "i2", "i1"),
        (3, None, "downloads/t.json", False, None, "i2"),
    ]
    assert [e.offset for e in store.history("room", "e", after=0, limit=2)] == [1, 2]
    assert store.history_offset_of("room", "e", "i2") == 2


def test_an_offset_taken_before_its_row_is_kept_is_not_listed(store: Store) -> None:
    """The worker takes the offset, then writes the row beside the delivery: until
    then the history has a gap, not a message without content."""
    position = store.take_offset("room", "m1", 600, "e")
    assert store.history_head("room") == ("e", 1)
    assert store.history("room", "e", after=0) == []
    store.keep_entry("room", position, Payload.of_text("late"), 600)
    assert [e.payload for e in store.history("room", "e", after=0)] == [Payload.of_text("late")]


def test_a_batch_handed_out_again_keeps_every_offset(store: Store) -> None:
    """SQS hands a whole batch out again when it outlives its visibility timeout:
    each publish of it keeps the offset it took, not only the last."""
    from chalicelib.grip.history import RECENT

    ids = [f"msg-{i}" for i in range(RECENT)]
    first = [publish(store, "room", m, Payload.of_text(m))[1] for m in ids]
    again = [publish(store, "room", m, Payload.of_text(m))[1] for m in ids]
    assert first == again == list(range(1, RECENT + 1))
    assert store.history_head("room") == ("e", RECENT)
    # The head remembers at least RECENT: once it has been trimmed back, an older
    # message handed out again takes a new offset (documented in docs/resume.md).
    for k in range(RECENT):
        publish(store, "room", f"newer-{k}", Payload.of_text("n"))
    assert store.take_offset("room", f"newer-{RECENT - 1}", 600, "e")[1] == 2 * RECENT
    assert publish(store, "room", "msg-0", Payload.of_text("m"))[1] == 2 * RECENT + 1


def test_an_expired_history_row_is_not_replayed(store: Store) -> None:
    publish(store, "room", "m1", Payload.of_text("old"), item_id="i1")
    publish(store, "room", "m2", Payload.of_text("new"), item_id="i2")
    publish(store, "room", "m3", Payload.of_text("x"), keep=-1, item_id="i1")
    assert [e.offset for e in store.history("room", "e", after=0)] == [1, 2]
    assert store.history_offset_of("room", "e", "i2") == 2
    assert store.history_offset_of("room", "e", "i1") == 1  # the expired repeat is not it
    assert store.history_offset_of("room", "e", "nope") is None


def test_a_joining_member_is_listed_as_such_until_joined(store: Store) -> None:
    store.put_connection(conn(envelope=True, resume=True))
    store.subscribe("c1", "room", EP, envelope=True, resume=True, joining=True)
    members, _ = store.members("room")
    assert [(m.resume, m.joining) for m in members] == [(True, True)]
    store.joined("room", "c1")
    members, _ = store.members("room")
    assert [(m.resume, m.joining) for m in members] == [(True, False)]
    store.joined("room", "gone")  # not a member: nothing happens
    head = store.start_history("room", "e9", keep=600)
    assert head == ("e9", 0) and store.start_history("room", "e10", keep=600) == ("e9", 0)


def test_a_repeat_subscribe_is_not_new_and_keeps_the_members_joining_flag(store: Store) -> None:
    store.put_connection(conn(envelope=True, resume=True))
    assert store.subscribe("c1", "room", EP, resume=True, joining=True) is True
    assert store.subscribe("c1", "room", EP, resume=True, joining=True) is False
    store.joined("room", "c1")
    # A repeat after the join ran must not make the member joining again: no Join
    # is queued for it, and nothing would clear the flag.
    assert store.subscribe("c1", "room", EP, resume=True, joining=True) is False
    members, _ = store.members("room")
    assert [(m.connection_id, m.joining) for m in members] == [("c1", False)]
    assert store.get_connection("c1").joins == 1  # counted once: one Join queued


def test_a_connection_queues_a_bounded_number_of_joins(store: Store) -> None:
    from chalicelib.grip.errors import TooManyJoins
    from chalicelib.grip.limits import MAX_QUEUED_JOINS

    store.put_connection(conn())
    for _ in range(MAX_QUEUED_JOINS):  # subscribe, unsubscribe: a Join queued each time
        store.subscribe("c1", "room", EP, joining=True)
        store.unsubscribe("c1", "room")
    with pytest.raises(TooManyJoins):
        store.subscribe("c1", "room", EP, joining=True)
    assert store.members("room")[0] == []  # refused: not subscribed
    store.subscribe("c1", "room", EP)  # a subscribe that queues nothing is not bounded
    store.unsubscribe("c1", "room")
    store.join_done("c1")  # one Join ran: room for one more
    store.subscribe("c1", "room", EP, joining=True)
    assert store.get_connection("c1").joins == MAX_QUEUED_JOINS
    store.join_done("gone")  # a connection that left: nothing happens


def test_an_upload_is_claimed_once_until_released(store: Store) -> None:
    until = int(time.time()) + 600
    assert store.claim_upload("uploads/c1/k", until) is True
    assert store.claim_upload("uploads/c1/k", until) is False
    assert store.claim_upload("uploads/c1/other", until) is True
    store.release_upload("uploads/c1/k")
    assert store.claim_upload("uploads/c1/k", until) is True


# -- keep-alive rows (keepalive_slots.py) ---------------------------------------------


def test_keepalive_timeouts_are_registered_and_bounded(store: Store) -> None:
    from chalicelib.grip.errors import TooManyTimeouts
    from chalicelib.grip.limits import MAX_KEEPALIVE_TIMEOUTS

    assert store.keepalive_timeouts() == []
    timeouts = [10 + k for k in range(MAX_KEEPALIVE_TIMEOUTS)]
    for k, timeout in enumerate(reversed(timeouts)):
        store.put_connection(conn(f"c{k}"))
        store.set_keep_alive(f"c{k}", ka.started(1000, Payload.of_text("p"), timeout, ka.IDLE))
    store.set_keep_alive("c0", ka.started(1000, Payload.of_text("p"), 10, ka.IDLE))  # in use
    assert store.keepalive_timeouts() == timeouts
    with pytest.raises(TooManyTimeouts) as refused:
        store.set_keep_alive("c0", ka.started(1000, Payload.of_text("p"), 999, ka.IDLE))
    assert refused.value.status == 409
    assert store.get_connection("c0").keep_alive["timeout"] == 10  # unchanged
    with pytest.raises(UnknownConnection):
        store.set_keep_alive("ghost", ka.started(1000, Payload.of_text("p"), 10, ka.IDLE))


def test_a_keep_alive_is_rephased_unless_replaced(store: Store) -> None:
    store.put_connection(conn(channels=frozenset()))
    store.subscribe("c1", "room", EP, envelope=True)
    settings = ka.started(1000, Payload.of_bytes(b"\x01"), 30, ka.INTERVAL)
    store.set_keep_alive("c1", settings)
    old = settings.slot()
    new = ka.slot(30, settings.phase + 7)
    store.rephase("c1", old, new)
    assert store.due(old) == []
    [target] = store.due(new)
    assert target.connection_id == "c1" and target.channels == {"room"}
    assert target.settings.payload == Payload.of_bytes(b"\x01")
    assert target.settings.mode == ka.INTERVAL
    store.rephase("c1", old, ka.slot(30, 1))  # not in `old` any more: stays
    assert [t.connection_id for t in store.due(new)] == ["c1"]
    store.rephase("ghost", old, new)  # gone: nothing to move


def test_a_second_is_claimed_by_one_scheduler(store: Store) -> None:
    assert store.claim_tick(1_000_000) is True
    assert store.claim_tick(1_000_000) is False
    assert store.claim_tick(1_000_001) is True


def test_last_delivered_per_channel(store: Store) -> None:
    store.delivered("a", 1000.25)
    store.delivered("b", 2000.5)
    store.delivered("a", 1500.75)
    channels = {"a", "b", "never"} | {f"many{k}" for k in range(120)}  # two batch reads
    assert store.last_delivered(channels) == {"a": 1500.75, "b": 2000.5}
    assert store.last_delivered(set()) == {}


# -- connections and joins ------------------------------------------------------------


def test_a_close_is_kept_for_the_backend(store: Store) -> None:
    store.put_connection(conn())
    store.set_close("c1", 4001, "bye")
    got = store.get_connection("c1")
    assert (got.close_code, got.close_reason) == (4001, "bye")
    with pytest.raises(UnknownConnection):
        store.set_close("ghost", 4001, "bye")


def test_a_join_done_on_a_channel_uses_its_position(store: Store) -> None:
    store.put_connection(conn(resume=True, since={"a": Position("e", 3), "b": Position("e", 4)}))
    store.subscribe("c1", "a", EP, resume=True, joining=True)
    store.join_done("c1", "a")
    got = store.get_connection("c1")
    assert got.joins == 0 and got.since == {"b": Position("e", 4)}
    store.join_done("c1", "b")  # no join queued (counted down already): the position goes
    got = store.get_connection("c1")
    assert got.joins == 0 and got.since == {}
    store.join_done("ghost", "a")  # gone: nothing happens


def test_removing_a_connection_without_its_row_removes_its_listing(
    store: Store, table: str
) -> None:
    store.put_connection(conn())
    db = boto3.client("dynamodb")
    db.delete_item(TableName=table, Key={"pk": {"S": "conn#c1"}, "sk": {"S": "conn"}})
    assert store.remove_connection("c1") is None
    assert all_rows(table) == []
    assert store.connection_ids(0, None, 100)[0] == []  # the first shard at least


# -- DynamoDB refusing past the retries: typed errors ------------------------------


class Refusing:
    """A moto client that leaves every batch read unprocessed, or cancels every
    transaction: what DynamoDB does under throttling or contention, which moto
    never does by itself."""

    def __init__(self, real, batch: bool = False, transactions: bool = False) -> None:
        self._real, self._batch, self._transactions = real, batch, transactions
        self.exceptions = real.exceptions

    def __getattr__(self, name):
        return getattr(self._real, name)

    def batch_get_item(self, RequestItems):  # noqa: N803 -- boto3's spelling
        if not self._batch:
            return self._real.batch_get_item(RequestItems=RequestItems)
        return {"Responses": {}, "UnprocessedKeys": RequestItems}

    def batch_write_item(self, RequestItems):  # noqa: N803
        if not self._batch:
            return self._real.batch_write_item(RequestItems=RequestItems)
        return {"UnprocessedItems": RequestItems}

    def transact_write_items(self, TransactItems):  # noqa: N803
        if not self._transactions:
            return self._real.transact_write_items(TransactItems=TransactItems)
        error = {"Error": {"Code": "TransactionCanceledException", "Message": "conflict"}}
        raise self.exceptions.TransactionCanceledException(error, "TransactWriteItems")


def refusing(table: str, **kw) -> Store:
    store = Store(Refusing(boto3.client("dynamodb"), **kw), table, 7800, 3)
    store._table.pause = lambda attempt: None  # no backoff: the outcome is the same
    return store


def test_unprocessed_reads_past_the_retries_are_throttled(store: Store, table: str) -> None:
    from chalicelib.grip.errors import Throttled

    store.put_connection(conn())
    store.delivered("a", 1000.0)
    throttled = refusing(table, batch=True)
    with pytest.raises(Throttled) as refused:
        throttled.connections(["c1"])
    assert refused.value.status == 503 and "1 reads" in refused.value.message
    # Keep-alive's read of deliveries goes on without them: a keep-alive too many.
    assert throttled.last_delivered({"a"}) == {}
    # A connection whose row is gone: its listing row's delete is a batch write.
    boto3.client("dynamodb").delete_item(
        TableName=table, Key={"pk": {"S": "conn#c1"}, "sk": {"S": "conn"}}
    )
    with pytest.raises(Throttled) as refused:
        throttled.remove_connection("c1")
    assert "2 deletes" in refused.value.message
    assert store.connection_ids(shard_of("c1"), None, 10)[0] == ["c1"]  # still listed


def test_transactions_cancelled_past_the_retries_are_contended(store: Store, table: str) -> None:
    from chalicelib.grip.errors import Contended

    store.put_connection(conn())
    store.subscribe("c1", "b", EP)
    contended = refusing(table, transactions=True)
    with pytest.raises(Contended) as refused:
        contended.subscribe("c1", "a", EP)
    assert refused.value.status == 503
    with pytest.raises(Contended):
        contended.unsubscribe("c1", "b")
    with pytest.raises(Contended):
        contended.remove_connection("c1")
    assert store.get_connection("c1").channels == {"b"} and store.count("b") == 1
