"""S3: publish bodies too large for the queue, envelope mode's uploads and
downloads, and backends' uploads. Presigning is local (no API call): the URL
carries our signature."""

from __future__ import annotations

from typing import Any, NamedTuple

from .. import metrics
from ..grip import metrics as m
from ..grip.errors import NotFound

# How the client is built (chalicelib/services.py): Signature Version 4 (S3 refuses
# SigV2 on buckets created after June 2020, and boto3 still presigns with SigV2 for
# some regions by default) on the bucket's regional virtual-hosted endpoint,
# https://<bucket>.s3.<region>.amazonaws.com: a URL on the global endpoint for a
# bucket outside us-east-1 can answer a redirect that a browser's CORS PUT does not
# follow, and in us-east-1 botocore picks the global endpoint unless told
# "regional". With AWS_ENDPOINT_URL (the local stack) the URL is that endpoint's,
# path-style (botocore never puts a bucket in front of an IP or localhost).
S3_CONFIG: dict[str, Any] = {
    "signature_version": "s3v4",
    "s3": {"addressing_style": "virtual", "us_east_1_regional_endpoint": "regional"},
}


class NoSuchBlob(NotFound):
    """No object under that key (never uploaded, or already taken)."""


class Blob(NamedTuple):
    size: int
    modified: float  # epoch seconds (S3 keeps whole seconds)
    data: bytes | None  # None: larger than the caller allowed, not read


class Blobs:
    def __init__(self, client: Any, bucket: str) -> None:
        self._s3 = client
        self.bucket = bucket

    def put(self, key: str, data: bytes, content_type: str = "application/json") -> None:
        self._s3.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type)
        metrics.record(m.LARGE_MESSAGES)

    def get(self, key: str) -> bytes:
        data: bytes = self._s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        return data

    def fetch(self, key: str, max_size: int) -> Blob:
        """The object, read only if it is at most `max_size` bytes (a larger one
        costs one ranged GET of its first bytes, never the whole)."""
        blob, _ = self._ranged(key, max_size)
        return blob

    def peek(self, key: str, length: int) -> tuple[Blob, bytes]:
        """The object whole if it is at most `length` bytes (as `fetch`), and its
        first `length` bytes either way: one GET."""
        return self._ranged(key, length)

    def _ranged(self, key: str, length: int) -> tuple[Blob, bytes]:
        try:
            reply = self._s3.get_object(Bucket=self.bucket, Key=key, Range=f"bytes=0-{length}")
        except self._s3.exceptions.NoSuchKey:
            raise NoSuchBlob(key) from None
        except self._s3.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "InvalidRange":
                raise
            # S3's answer to any range of an empty object.
            reply = self._s3.get_object(Bucket=self.bucket, Key=key)
        body = reply["Body"]
        try:
            head = body.read()
        finally:
            body.close()
        # "bytes 0-99/1234": the total after the slash; no range answered: the length.
        total = reply.get("ContentRange", "").rpartition("/")[2]
        size = int(total) if total.isdigit() else len(head)
        data = head if size <= length else None
        return Blob(size, reply["LastModified"].timestamp(), data), head[:length]

    def delete(self, key: str) -> None:
        self._s3.delete_object(Bucket=self.bucket, Key=key)

    def upload_url(self, key: str, headers: dict[str, str], expires: int) -> str:
        """A presigned PUT for `key`, signed for the `Content-Type` (and `x-amz-acl`,
        when given) the uploader will send."""
        content_type = headers["Content-Type"]
        url: str
        if "x-amz-acl" in headers:  # a client's envelope upload (the aux client sends it)
            url = self._s3.generate_presigned_url(
                "put_object",
                Params={
                    "Bucket": self.bucket,
                    "Key": key,
                    "ContentType": content_type,
                    "ACL": headers["x-amz-acl"],
                },
                ExpiresIn=expires,
            )
            return url
        url = self._s3.generate_presigned_url(
            "put_object",
            Params={"Bucket": self.bucket, "Key": key, "ContentType": content_type},
            ExpiresIn=expires,
        )
        return url

    def download_url(self, key: str, expires: int) -> str:
        url: str = self._s3.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=expires
        )
        return url
