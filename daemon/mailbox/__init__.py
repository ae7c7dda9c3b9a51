"""Mailbox sources: where raw messages come from (IMAP or a Maildir)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True)
class Fetched:
    """One raw message and where it came from."""

    #: "<uidvalidity>:<uid>" for IMAP, the file key for a Maildir.
    source_key: str
    raw: bytes
    #: IMAP INTERNALDATE, or for a Maildir the topmost Received header, else Date.
    received_at: datetime | None
    uidvalidity: int | None = None
    uid: int | None = None


class Position(Protocol):
    """Read and advance how far a mailbox has been read; implemented by the store."""

    def get(self, mailbox: str) -> tuple[int, int] | None: ...

    def seen(self, mailbox: str, source_key: str) -> bool: ...


class Source(Protocol):
    """A mailbox that yields the messages not yet archived."""

    name: str

    def fetch_new(self, position: Position) -> Iterator[Fetched]: ...
