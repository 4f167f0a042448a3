"""`slipway redrive --stage S`: move the dead-letter queue's jobs back to the queues
they came from, once what made them fail is fixed (docs/reliability.md#redrive).

A receive / send / delete loop rather than SQS's StartMessageMoveTask: moto
(the local stack) does not have that call, and AWS documented it for standard
queues only while slipway's are FIFO. Each job goes back with its own
MessageGroupId, so it keeps its place in its channel's or connection's order,
and a fresh deduplication id (the old one is within SQS's 5-minute window when a
job died quickly, and SQS would drop the copy). A job is deleted from the
dead-letter queue only once it is queued again: a stop in between leaves a
duplicate, never a loss. The loop is bounded: at most the jobs there when it
started (or --max), so a job that fails again is not moved round and round.

Where a job goes: to the queue SQS says it came from (`DeadLetterQueueSourceArn`,
set by AWS, not by moto); without it, an ordered delivery wake-up goes to the
ordered queue and anything else to the publish queue.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import aws

log = logging.getLogger("slipway_dev.redrive")

# While a batch is being moved, it is hidden this long: a stop mid-batch leaves it
# in the dead-letter queue to be moved by the next run.
MOVE_VISIBILITY = 60


class RedriveError(Exception):
    """Nothing was moved; says what to do."""


@dataclass(frozen=True)
class Queues:
    publish_url: str
    publish_arn: str
    dead_letter_url: str
    ordered_url: str | None = None
    ordered_arn: str | None = None


@dataclass
class Moved:
    publish: int = 0
    ordered: int = 0

    @property
    def total(self) -> int:
        return self.publish + self.ordered


def names_of(stage: str, project: Path, local: bool) -> tuple[str, str | None]:
    """(publish queue, ordered queue) names of a stage: its .chalice/config.json
    names, bootstrap's `<app>-<stage>-...`, or with `local` the local stack's."""
    config = project / ".chalice" / "config.json"
    data = json.loads(config.read_text()) if config.exists() else {}
    stages = data.get("stages", {})
    if stage in stages:
        env = {
            **data.get("environment_variables", {}),
            **stages[stage].get("environment_variables", {}),
        }
        prefix = f"{data.get('app_name', 'slipway')}-{stage}"
        return (
            env.get("SLIPWAY_QUEUE_NAME") or f"{prefix}-publish.fifo",
            env.get("SLIPWAY_ORDERED_QUEUE_NAME") or f"{prefix}-ordered.fifo",
        )
    if local:
        names = aws.Names()
        return names.queue, names.ordered_queue
    raise RedriveError(
        f"no stage {stage!r} in {config}: name the queue with --queue, or give "
        "--endpoint-url for the local stack"
    )


def find(sqs: Any, publish: str, ordered: str | None) -> Queues:
    """The queues by name; the dead-letter queue from the publish queue's redrive policy."""
    try:
        url = sqs.get_queue_url(QueueName=publish)["QueueUrl"]
    except sqs.exceptions.QueueDoesNotExist:
        raise RedriveError(f"no queue {publish}: check --stage and the region") from None
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    policy = json.loads(attributes.get("RedrivePolicy") or "{}")
    target = policy.get("deadLetterTargetArn")
    if not target:
        raise RedriveError(f"queue {publish} has no dead-letter queue (no RedrivePolicy)")
    dead_letter_url = sqs.get_queue_url(QueueName=target.rsplit(":", 1)[-1])["QueueUrl"]
    ordered_url = ordered_arn = None
    if ordered:
        try:
            ordered_url = sqs.get_queue_url(QueueName=ordered)["QueueUrl"]
        except sqs.exceptions.QueueDoesNotExist:
            ordered_url = None  # a deployment without ordered delivery
        if ordered_url:
            ordered_arn = sqs.get_queue_attributes(
                QueueUrl=ordered_url, AttributeNames=["QueueArn"]
            )["Attributes"]["QueueArn"]
    return Queues(url, attributes["QueueArn"], dead_letter_url, ordered_url, ordered_arn)


def destination(message: dict[str, Any], queues: Queues) -> str:
    """The URL of the queue a dead-lettered message came from."""
    source = message.get("Attributes", {}).get("DeadLetterQueueSourceArn")
    if source == queues.publish_arn:
        return queues.publish_url
    if source and source == queues.ordered_arn and queues.ordered_url:
        return queues.ordered_url
    if queues.ordered_url and _is_wake(message.get("Body", "")):
        return queues.ordered_url
    return queues.publish_url


def _is_wake(body: str) -> bool:
    """An ordered delivery wake-up (chalicelib/grip/ordered.py's encode_wake)."""
    try:
        data = json.loads(body)
    except ValueError:
        return False
    return isinstance(data, dict) and {"c", "t", "w"} <= set(data) and "job" not in data


def waiting(sqs: Any, url: str) -> int:
    attributes = sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]
    return int(attributes.get("ApproximateNumberOfMessages", 0))


def redrive(sqs: Any, queues: Queues, limit: int | None = None) -> Moved:
    """Move up to `limit` jobs (default: as many as are waiting now) back."""
    moved = Moved()
    limit = waiting(sqs, queues.dead_letter_url) if limit is None else limit
    while moved.total < limit:
        reply = sqs.receive_message(
            QueueUrl=queues.dead_letter_url,
            MaxNumberOfMessages=min(10, limit - moved.total),
            VisibilityTimeout=MOVE_VISIBILITY,
            WaitTimeSeconds=1,
            AttributeNames=["All"],
        )
        messages = reply.get("Messages", [])
        if not messages:
            break
        for message in messages:  # in order: a FIFO group's jobs stay in their order
            url = destination(message, queues)
            entry: dict[str, Any] = {"QueueUrl": url, "MessageBody": message["Body"]}
            group = message.get("Attributes", {}).get("MessageGroupId")
            if url.endswith(".fifo"):
                entry["MessageGroupId"] = group or "redrive"
                entry["MessageDeduplicationId"] = uuid.uuid4().hex
            sqs.send_message(**entry)
            sqs.delete_message(
                QueueUrl=queues.dead_letter_url, ReceiptHandle=message["ReceiptHandle"]
            )
            if url == queues.ordered_url:
                moved.ordered += 1
            else:
                moved.publish += 1
            log.info("moved %s (group %s) back", message.get("MessageId"), group)
    return moved


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="slipway redrive",
        description="Move a stage's dead-letter jobs back to the queues they came from, "
        "after fixing what made them fail (docs/reliability.md#redrive).",
    )
    add = parser.add_argument
    add("--stage", required=True, help="the Chalice stage (.chalice/config.json)")
    add("--max", type=int, help="move at most this many (default: all waiting now)")
    add("--queue", help="the publish queue's name (default: the stage's)")
    add("--ordered-queue", help="ordered delivery's queue name (default: the stage's)")
    add("--project-dir", type=Path, default=Path("."), help="where .chalice/ is (default .)")
    add("--profile", help="AWS profile")
    add("--region", help="AWS region")
    add("--endpoint-url", help="an AWS-compatible endpoint, e.g. the local stack's `aws:` URL")
    return parser


def _sqs(args: argparse.Namespace) -> Any:
    import boto3

    session = boto3.session.Session(profile_name=args.profile, region_name=args.region)
    if not args.endpoint_url:
        return session.client("sqs")
    options: dict[str, Any] = {"region_name": session.region_name or aws.REGION}
    if session.get_credentials() is None:  # the local stack's moto takes any
        options["aws_access_key_id"] = aws.DUMMY_CREDENTIALS["AWS_ACCESS_KEY_ID"]
        options["aws_secret_access_key"] = aws.DUMMY_CREDENTIALS["AWS_SECRET_ACCESS_KEY"]
    return session.client("sqs", endpoint_url=args.endpoint_url, **options)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    if args.max is not None and args.max < 1:
        log.error("slipway redrive: --max must be 1 or more")
        return 2
    try:
        publish, ordered = names_of(args.stage, args.project_dir, bool(args.endpoint_url))
        sqs = _sqs(args)
        queues = find(sqs, args.queue or publish, args.ordered_queue or ordered)
        moved = redrive(sqs, queues, args.max)
        left = waiting(sqs, queues.dead_letter_url)
    except RedriveError as exc:
        log.error("slipway redrive: %s", exc)
        return 1
    except Exception as exc:  # boto3's: one line, no trace
        log.error("slipway redrive failed: %s", exc)
        return 1
    print(f"moved: {moved.total} ({moved.publish} to the publish queue, {moved.ordered} ordered)")
    print(f"left in the dead-letter queue: {left}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
