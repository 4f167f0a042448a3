"""Envelope upload claims: a client's upload (`[4]`) is taken once (table.py has
the key scheme)."""

from __future__ import annotations

from . import table
from .table import Table

# The claim outlives the upload URL a little; after that the key is refused as
# expired anyway.
_CLAIM_OUTLIVES = 60


class UploadClaims:
    def __init__(self, t: Table) -> None:
        self._t = t

    def claim(self, key: str, until: int) -> bool:
        """Take the client upload under `key`, once: False if an announcement took
        it already. A conditional put, which DynamoDB (and moto) apply atomically;
        the row expires with the upload URL (`until`)."""
        return self._t.put_once(
            {**table.upload_key(key), "expires_at": {"N": str(until + _CLAIM_OUTLIVES)}}
        )

    def release(self, key: str) -> None:
        """Give a claim back: the object was not there to take (not uploaded yet,
        or S3 failed), so the client may announce it again."""
        t = self._t
        t.db.delete_item(TableName=t.name, Key=table.upload_key(key))
