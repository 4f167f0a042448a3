"""The local stack's fault injection (slipway_dev/faults.py): the rules it reads,
and the error answers it gives, read by botocore as it reads AWS's own."""

from __future__ import annotations

import botocore.session
import pytest
from botocore import parsers
from botocore.awsrequest import AWSResponse
from botocore.retries import standard

from slipway_dev import faults


def test_rules_name_a_status_or_an_aws_error_code() -> None:
    rules = faults.parse("connections:429:0.1, dynamodb:ThrottlingException:0.05,s3:503:1")
    assert [str(r) for r in rules] == [
        "connections:LimitExceededException:0.1",
        "dynamodb:ThrottlingException:0.05",
        "s3:SlowDown:1",
    ]
    assert faults.parse("") == []


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("lambda:500:0.1", "service must be one of"),
        ("dynamodb:418:0.1", "dynamodb has no error '418'"),
        ("sqs:500:lots", "is not a number"),
        ("sqs:500:1.5", "between 0 and 1"),
        ("sqs:500", "expected service:error:rate"),
        ("s3:503:0.6,s3:500:0.6", "add up to 1.2"),
    ],
)
def test_a_bad_rule_says_what_is_wrong(spec: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        faults.parse(spec)


def test_rates_share_a_services_calls() -> None:
    injected = faults.Faults(faults.parse("connections:429:0.25,connections:500:0.25"), seed=7)
    outcomes = [injected.pick("connections") for _ in range(4000)]
    assert injected.pick("dynamodb") is None  # no rule for it
    failed = [o for o in outcomes if o is not None]
    assert 1800 < len(failed) < 2200
    assert {o.status for o in failed} == {429, 500}
    report = injected.report()
    assert report["calls"] == {"connections": 4000, "dynamodb": 1}
    assert sum(report["injected"].values()) == len(failed)


@pytest.mark.parametrize(
    ("service", "error"),
    [(service, error) for service in ("dynamodb", "sqs", "s3") for error in faults.ERRORS[service]],
    ids=lambda value: getattr(value, "code", value),
)
def test_botocore_reads_each_error_as_aws_and_retries_it(service: str, error: faults.Error) -> None:
    model = botocore.session.get_session().get_service_model(service)
    environ = {"HTTP_X_AMZ_TARGET": "AmazonSQS.SendMessage"} if service == "sqs" else {}
    status, headers, body = faults._aws_answer(service, error, environ)
    code = int(status.split()[0])
    parsed = parsers.create_parser(model.protocol).parse(
        {"status_code": code, "headers": dict(headers), "body": body}, None
    )
    assert parsed["Error"]["Code"] == error.code
    context = standard.RetryContext(
        attempt_number=1,
        operation_model=None,
        parsed_response=parsed,
        http_response=AWSResponse("http://127.0.0.1/", code, dict(headers), None),
        caught_exception=None,
    )
    assert standard.StandardRetryConditions().is_retryable(context)


def test_only_sdk_calls_are_faulted() -> None:
    signed = "AWS4-HMAC-SHA256 Credential=local/20260101/us-east-1/dynamodb/aws4_request, ..."
    assert faults._service({"HTTP_AUTHORIZATION": signed, "PATH_INFO": "/"}) == "dynamodb"
    # A presigned URL (a client's upload or download) and moto's own routes are not.
    assert (
        faults._service({"PATH_INFO": "/slipway-blobs/key", "QUERY_STRING": "X-Amz-Signature=a"})
        is None
    )
    assert faults._service({"HTTP_AUTHORIZATION": signed, "PATH_INFO": "/moto-api/reset"}) is None
