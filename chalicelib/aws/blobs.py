"""S3: publish bodies too large for the queue, and envelope mode's uploads and
downloads. Presigning is local (no API call): the URL carries our signature."""

from __future__ import annotations

from typing import Any, NamedTuple

from ..grip.errors import NotFound


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

    def get(self, key: str) -> bytes:
        return self._s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()

    def fetch(self, key: str, max_size: int) -> Blob:
        """The object, read only if it is at most `max_size` bytes."""
        try:
            reply = self._s3.get_object(Bucket=self.bucket, Key=key)
        except self._s3.exceptions.NoSuchKey:
            raise NoSuchBlob(key) from None
        body = reply["Body"]
        size = int(reply["ContentLength"])
        try:
            data = body.read() if size <= max_size else None
        finally:
            body.close()
        return Blob(size, reply["LastModified"].timestamp(), data)

    def delete(self, key: str) -> None:
        self._s3.delete_object(Bucket=self.bucket, Key=key)

    def upload_url(self, key: str, headers: dict[str, str], expires: int) -> str:
        """A presigned PUT for `key`, signed for the `Content-Type` and `x-amz-acl`
        the client will send."""
        return self._s3.generate_presigned_url(
            "put_object",
            Params={
                "Bucket": self.bucket,
                "Key": key,
                "ContentType": headers["Content-Type"],
                "ACL": headers["x-amz-acl"],
            },
            ExpiresIn=expires,
        )

    def download_url(self, key: str, expires: int) -> str:
        return self._s3.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=expires
        )
