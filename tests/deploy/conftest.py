"""Deployment checks, offline: `chalice package` output (once per stage per session),
and a moto server of our own for bootstrap and the key store."""

from __future__ import annotations

import copy
import fcntl
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

ROOT = Path(__file__).resolve().parents[2]
STAGES = ("dev", "prod")
MERGE_TEMPLATE = "infra/resources.json"
REGION = "us-east-1"
# Values moto accepts; never real credentials.
DUMMY = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


def offline_env() -> dict[str, str]:
    """This environment without anything that could reach AWS: no credentials, no
    profile, no endpoint, no instance metadata; only a region name."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_DEFAULT_REGION=REGION, AWS_EC2_METADATA_DISABLED="true")
    return env


@pytest.fixture(scope="session")
def packaged(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """`chalice package --merge-template` for every stage, run side by side:
    stage -> the merged template (what `make package` writes to build/package/sam.json).
    Once per test run: pytest-xdist's workers (`make test`) share one build, made by
    whichever asks first, through a file in their common temp dir."""
    if "PYTEST_XDIST_WORKER" not in os.environ:
        return _package(tmp_path_factory)
    shared = tmp_path_factory.getbasetemp().parent  # the same for every worker of this run
    with open(shared / "packaged.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        done = shared / "packaged.json"
        if done.exists():
            return json.loads(done.read_text())
        templates = _package(tmp_path_factory)
        done.write_text(json.dumps(templates))
        return templates


def _package(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    chalice = Path(sys.executable).parent / "chalice"
    # Each run creates this if it is missing (as in a fresh clone), and two at once race
    # on it: one sees it appear between its check and its mkdir and exits 2.
    (ROOT / ".chalice" / "deployments").mkdir(exist_ok=True)
    runs = {}
    for stage in STAGES:
        out = tmp_path_factory.mktemp(f"package-{stage}")
        command = [str(chalice), "package", "--stage", stage, "--merge-template"]
        command += [MERGE_TEMPLATE, str(out)]
        proc = subprocess.Popen(
            command, cwd=ROOT, env=offline_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        runs[stage] = (proc, out)
    templates = {}
    for stage, (proc, out) in runs.items():
        output, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0, f"chalice package --stage {stage}:\n{output.decode()}"
        templates[stage] = json.loads((out / "sam.json").read_text())
    return templates


@pytest.fixture(scope="module")
def moto() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def session() -> boto3.session.Session:
    return boto3.session.Session(region_name=REGION, **DUMMY)


@pytest.fixture(scope="session")
def translated(packaged: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each stage's template as plain CloudFormation, through the SAM translator that
    CloudFormation runs, after `aws cloudformation package` has uploaded the code."""
    from samtranslator.translator.transform import transform

    class NoManagedPolicies:
        def load(self) -> dict[str, str]:
            raise AssertionError("the template names no AWS managed policy")

    out = {}
    saved = os.environ.get("AWS_DEFAULT_REGION")
    os.environ["AWS_DEFAULT_REGION"] = REGION  # the translator's region (no AWS call)
    try:
        for stage, template in packaged.items():
            template = copy.deepcopy(template)
            for resource in template["Resources"].values():
                if resource["Type"] == "AWS::Serverless::Function":
                    resource["Properties"]["CodeUri"] = "s3://artifacts-bucket/deployment.zip"
            out[stage] = transform(template, {}, NoManagedPolicies())
    finally:
        if saved is None:
            del os.environ["AWS_DEFAULT_REGION"]
        else:
            os.environ["AWS_DEFAULT_REGION"] = saved
    return out
