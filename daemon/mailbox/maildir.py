"""A Maildir source, for the demo and for mail exported from a client.

Messages are never moved or flagged: the ledger in the store remembers which
keys were archived, just as UIDs do for IMAP.
"""

from __future__ import annotations

import logging
import mailbox
from collections.abc import Iterator
from pathlib import Path

from daemon.errors import MailboxError
from daemon.mailbox import Fetched, Position
from parsers.mime import topmost_received

log = logging.getLogger(__name__)


class MaildirSource:
    """Reads every message of a Maildir folder that the store has not archived."""

    def __init__(self, path: Path, name: str) -> None:
        self.path = path
        self.name = name

    def fetch_new(self, position: Position) -> Iterator[Fetched]:
        if not (self.path / "cur").is_dir() and not (self.path / "new").is_dir():
            raise MailboxError(f"Maildir 文件夹 {self.path} 不存在或缺少 cur/new 子文件夹：请检查 [mailbox] path。")

        folder = mailbox.Maildir(self.path, factory=None, create=False)
        for key in sorted(folder.iterkeys(), key=lambda k: self._sort_key(folder, k)):
            # Names starting with a dot are not messages (Maildir convention; .gitkeep).
            if key.startswith(".") or position.seen(self.name, key):
                continue
            try:
                with folder.get_file(key) as handle:
                    raw = handle.read()
            except OSError as err:
                log.warning("maildir message unreadable key=%s: %s", key, err)
                continue
            yield Fetched(source_key=key, raw=raw, received_at=topmost_received(raw))

    @staticmethod
    def _sort_key(folder: mailbox.Maildir, key: str) -> tuple[float, str]:
        # Maildir file names start with the delivery time; sort by it, then by name.
        try:
            return (float(key.split(".", 1)[0]), key)
        except ValueError:
            return (0.0, key)
