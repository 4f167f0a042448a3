"""`slipway rotate-key` and `slipway redrive` against moto: where a stage's keys and
queues are found, what a rotation stores (read back by the functions' own code,
chalicelib/secrets.py), and where a dead-lettered job is sent back to."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from chalicelib import secrets
from chalicelib.grip import keys
from slipway_dev import redrive, resources, rotation


@pytest.fixture
def aws(moto: str, session: Any) -> Any:
    return lambda service: session.client(service, endpoint_url=moto)


def config(tmp_path: Path, env: dict[str, str]) -> Path:
    chalice = tmp_path / ".chalice"
    chalice.mkdir()
    data = {"app_name": "slipway", "stages": {"prod": {"environment_variables": env}}}
    (chalice / "config.json").write_text(json.dumps(data))
    return tmp_path


def test_the_store_is_the_stages_or_the_local_stacks(tmp_path: Path) -> None:
    project = config(tmp_path, {"SLIPWAY_KEY_PARAMETER": "/slipway-prod/key"})
    assert rotation.store_of("prod", project, None, None, local=False) == (
        secrets.PARAMETER,
        "/slipway-prod/key",
    )
    assert rotation.store_of("prod", project, None, "arn:s", local=False) == (
        secrets.SECRET,
        "arn:s",
    )
    assert rotation.store_of("local", project, None, None, local=True) == (
        secrets.PARAMETER,
        "/slipway-local/key",
    )
    with pytest.raises(rotation.RotationError, match="slipway bootstrap --stage local"):
        rotation.store_of("local", project, None, None, local=False)


def test_a_plain_key_is_not_rotated_behind_the_deploys_back(tmp_path: Path) -> None:
    project = config(tmp_path, {"SLIPWAY_KEY": "plain"})
    with pytest.raises(rotation.RotationError, match="needs a deploy"):
        rotation.store_of("prod", project, None, None, local=False)


def test_rotate_then_retire_an_ssm_parameter(aws: Any) -> None:
    name = f"/slipway-test/{uuid.uuid4().hex[:8]}/key"
    ssm = aws("ssm")
    ssm.put_parameter(Name=name, Type="SecureString", Value="old", KeyId="alias/custom")
    assert rotation.rotate(aws, secrets.PARAMETER, name, "new") == ("new", "old")
    assert secrets.read(secrets.PARAMETER, name, aws) == ("new", "old")
    found = ssm.describe_parameters(ParameterFilters=[{"Key": "Name", "Values": [name]}])
    assert found["Parameters"][0]["Type"] == "SecureString"
    with pytest.raises(rotation.RotationError, match="rotation is under way"):
        rotation.rotate(aws, secrets.PARAMETER, name, "newer")
    assert rotation.retire(aws, secrets.PARAMETER, name) == ("new",)
    assert secrets.read(secrets.PARAMETER, name, aws) == ("new",)
    with pytest.raises(rotation.RotationError, match="nothing to retire"):
        rotation.retire(aws, secrets.PARAMETER, name)


@pytest.mark.parametrize("stored", ["old", json.dumps({"key": "old", "note": "kept"})])
def test_rotate_a_secret_keeping_its_form(aws: Any, stored: str) -> None:
    name = f"slipway-test/{uuid.uuid4().hex[:8]}"
    sm = aws("secretsmanager")
    sm.create_secret(Name=name, SecretString=stored)
    assert rotation.rotate(aws, secrets.SECRET, name, "new") == ("new", "old")
    value = sm.get_secret_value(SecretId=name)["SecretString"]
    if stored.startswith("{"):
        assert json.loads(value) == {"keys": ["new", "old"], "note": "kept"}
    else:
        assert value == "new\nold"
    assert secrets.read(secrets.SECRET, name, aws) == ("new", "old")
    assert rotation.retire(aws, secrets.SECRET, name) == ("new",)
    assert secrets.read(secrets.SECRET, name, aws) == ("new",)


def test_the_list_moves_one_rotation_at_a_time() -> None:
    assert keys.rotated(("old",), "new") == ("new", "old")
    assert keys.retired(("new", "old")) == ("new",)
    with pytest.raises(keys.KeyListError, match="current one"):
        keys.rotated(("old",), "old")
    with pytest.raises(keys.KeyListError, match="line break"):
        keys.rotated(("old",), "new\nkey")
    assert keys.fingerprint("old") != keys.fingerprint("new")
    assert "old" not in keys.fingerprint("old")


def test_redrive_sends_each_job_back_to_its_queue_in_its_group(aws: Any) -> None:
    sqs = aws("sqs")
    tag = uuid.uuid4().hex[:8]
    queues = resources.ensure_publish_queues(
        sqs, f"p-{tag}.fifo", f"d-{tag}.fifo", 30, 5, correct=False
    )
    ordered_url, ordered_arn = resources.ensure_ordered_queue(
        sqs, f"o-{tag}.fifo", queues.dead_letter_arn, 30, 5, correct=False
    )
    found = redrive.find(sqs, f"p-{tag}.fifo", f"o-{tag}.fifo")
    assert (found.dead_letter_url, found.ordered_url) == (queues.dead_letter_url, ordered_url)
    wake = json.dumps({"v": 1, "c": "conn-1", "t": 1, "w": 2})
    dead = [
        ('{"v":1,"job":"publish","channel":"a","n":1}', "chan#a"),
        (wake, "conn#conn-1"),
        ('{"v":1,"job":"publish","channel":"a","n":2}', "chan#a"),
    ]
    for body, group in dead:
        sqs.send_message(
            QueueUrl=queues.dead_letter_url,
            MessageBody=body,
            MessageGroupId=group,
            MessageDeduplicationId=uuid.uuid4().hex,
        )
    moved = redrive.redrive(sqs, found)
    assert (moved.publish, moved.ordered) == (2, 1)
    assert redrive.waiting(sqs, queues.dead_letter_url) == 0

    def drain(url: str) -> list[tuple[str, str]]:
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"])
        return [(m["Body"], m["Attributes"]["MessageGroupId"]) for m in got.get("Messages", [])]

    assert drain(queues.url) == [dead[0], dead[2]]  # in order, in their group
    assert drain(ordered_url) == [dead[1]]


def test_redrive_moves_no_more_than_it_was_asked(aws: Any) -> None:
    sqs = aws("sqs")
    tag = uuid.uuid4().hex[:8]
    queues = resources.ensure_publish_queues(
        sqs, f"p-{tag}.fifo", f"d-{tag}.fifo", 30, 5, correct=False
    )
    for n in range(3):
        sqs.send_message(
            QueueUrl=queues.dead_letter_url,
            MessageBody=f'{{"v":1,"job":"publish","n":{n}}}',
            MessageGroupId=f"chan#{n}",
            MessageDeduplicationId=uuid.uuid4().hex,
        )
    found = redrive.find(sqs, f"p-{tag}.fifo", None)
    assert redrive.redrive(sqs, found, limit=2).total == 2
    assert redrive.waiting(sqs, queues.dead_letter_url) == 1


def test_an_overwrite_names_the_parameters_own_kms_key(aws: Any) -> None:
    """AWS encrypts an overwritten SecureString with the account's default key
    unless the call names one (moto keeps the old one either way, so the call
    itself is what is checked here)."""
    name = f"/slipway-test/{uuid.uuid4().hex[:8]}/key"
    aws("ssm").put_parameter(Name=name, Type="SecureString", Value="old", KeyId="alias/custom")
    calls: list[dict[str, Any]] = []

    class Recording:
        def __init__(self, client: Any) -> None:
            self._client = client

        def __getattr__(self, attr: str) -> Any:
            return getattr(self._client, attr)

        def put_parameter(self, **kwargs: Any) -> Any:
            calls.append(kwargs)
            return self._client.put_parameter(**kwargs)

    rotation.rotate(lambda service: Recording(aws(service)), secrets.PARAMETER, name, "new")
    assert [c.get("KeyId") for c in calls] == ["alias/custom"]


def test_the_command_adds_a_random_key_and_prints_no_key(
    aws: Any,
    moto: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    name = f"/slipway-test/{uuid.uuid4().hex[:8]}/key"
    aws("ssm").put_parameter(Name=name, Type="SecureString", Value="old-key")
    argv = ["--stage", "prod", "--key-parameter", name, "--endpoint-url", moto]
    argv += ["--project-dir", str(tmp_path), "--region", "us-east-1"]
    assert rotation.main(argv) == 0
    new, old = secrets.read(secrets.PARAMETER, name, aws)
    assert old == "old-key" and len(new) >= 40  # secrets.token_urlsafe(32)
    out = capsys.readouterr().out
    assert f"key 1: {keys.fingerprint(new)} (signs and verifies)" in out
    assert f"key 2: {keys.fingerprint(old)} (verifies only)" in out
    assert new not in out and old not in out
    assert rotation.main([*argv, "--retire"]) == 0
    assert rotation.main([*argv, "--retire"]) == 1  # nothing left to retire
    assert "nothing to retire" in caplog.text
    assert secrets.read(secrets.PARAMETER, name, aws) == (new,)
