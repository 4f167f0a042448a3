"""Queue jobs: typed values, turned into JSON only at the SQS edge. Pure."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.grip import jobs
from chalicelib.grip.history import Position
from chalicelib.grip.model import Member
from chalicelib.grip.payload import Payload

payloads = st.text().map(Payload.of_text) | st.binary().map(Payload.of_bytes)
names = st.text(min_size=1, max_size=20)
actions = st.one_of(
    payloads.map(jobs.Inline),
    st.builds(jobs.Stored, names, st.booleans()),
    st.builds(jobs.CloseAll, st.none() | st.integers(1000, 4999), st.text(max_size=20)),
)
members = st.builds(lambda c, e, env: Member(c, e, env), names, names, st.booleans())
# In a part, an envelope member may track positions (docs/resume.md).
part_members = st.builds(
    lambda c, e, env, res: Member(c, e, env, env and res),
    names,
    names,
    st.booleans(),
    st.booleans(),
)
positions = st.builds(Position, names, st.integers(0, 2**40))
ids = st.none() | names
job_values = st.one_of(
    st.builds(jobs.Publish, names, actions, ids, ids),
    st.builds(
        jobs.Part,
        names,
        actions,
        st.integers(0, 100),
        st.lists(part_members, max_size=8, unique_by=lambda m: m.connection_id).map(tuple),
        st.none() | positions,
    ),
    st.builds(
        jobs.Join,
        names,
        names,
        names,
        st.booleans(),
        st.booleans(),
        st.none() | positions,
        ids,
        st.integers(0, 2**40),
        st.booleans(),
        st.none() | st.integers(0, 2**40),
    ),
    st.builds(
        jobs.KeepAlive,
        st.integers(0, 2**40),
        st.integers(0, 100),
        st.lists(st.tuples(members, payloads), max_size=4).map(tuple),
    ),
    st.builds(
        jobs.Deliver,
        names,
        names,
        st.booleans(),
        st.lists(payloads, max_size=4).map(tuple),
        st.booleans(),
        st.integers(0, 2**40),
    ),
)


def _same_members(a: jobs.Job, b: jobs.Job) -> bool:
    if isinstance(a, jobs.Part) and isinstance(b, jobs.Part):
        # grouped by endpoint and mode on the wire: the same set, in that grouping's order
        return sorted(a.members, key=repr) == sorted(b.members, key=repr)
    return True


@given(job_values)
def test_every_job_survives_the_queue(job: jobs.Job) -> None:
    body = jobs.encode(job)
    assert body.isascii()  # its length is its size, as SQS counts it
    again = jobs.decode(body)
    assert type(again) is type(job) and jobs.group(again) == jobs.group(job)
    if isinstance(job, jobs.Part):
        assert _same_members(job, again)
        assert (again.channel, again.action, again.page, again.position) == (
            job.channel,
            job.action,
            job.page,
            job.position,
        )
    else:
        assert again == job


def test_groups_keep_what_must_stay_in_order_together() -> None:
    action = jobs.Inline(Payload.of_text("x"))
    assert jobs.group(jobs.Publish("room", action)) == "chan#room"
    assert jobs.group(jobs.Part("room", action, 3, ())) == "chan#room#p3"
    assert jobs.group(jobs.Deliver("c1", "e", False, (), False, 0)) == "conn#c1"


@pytest.mark.parametrize(
    "body",
    [
        "",
        "[]",
        '{"v": 1}',
        '{"v": 1, "job": "publish"}',
        '{"v": "1", "job": "publish"}',
        '{"v": 1, "job": "publish", "channel": "c"}',
        '{"kind": "teleport"}',
    ],
)
def test_what_no_worker_can_read_is_a_job_error(body: str) -> None:
    with pytest.raises(jobs.JobError) as caught:
        jobs.decode(body)
    assert not isinstance(caught.value, jobs.NewerJob)


def test_a_newer_version_is_told_apart() -> None:
    with pytest.raises(jobs.NewerJob):
        jobs.decode(json.dumps({"v": jobs.VERSION + 1, "job": "anything"}))


def test_a_connection_is_surely_open_only_past_the_integration_timeout() -> None:
    """A Join tells "not open yet" (wait for it) from "gone" (drop the job) by this,
    when the subscribe did not come in answer to one of the connection's messages."""
    started = 1_700_000_000_000
    assert not jobs.surely_open(started, started / 1000 + 1)  # its $connect may run still
    assert not jobs.surely_open(started, started / 1000 + 29)
    assert jobs.surely_open(started, started / 1000 + 30)
    assert not jobs.surely_open(0, 2e9)  # unknown start: not sure
