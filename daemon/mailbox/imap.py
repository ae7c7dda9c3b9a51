"""The IMAP source, through imapclient.

The position is UIDVALIDITY plus the highest UID archived, never the \\Seen flag,
because staff read the same mailbox in their own client. The folder is opened
read-only and bodies are fetched with BODY.PEEK[], so unread marks stay.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Iterator
from datetime import datetime, timezone

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError, LoginError
from imapclient.imapclient import SocketTimeout

from daemon.config import MailboxSettings, tls_context
from daemon.errors import MailboxError
from daemon.mailbox import Fetched, Position

log = logging.getLogger(__name__)

#: What intake tells servers in the IMAP ID command (RFC 2971).
CLIENT_ID = {"name": "intake", "version": "0.1.0", "vendor": "intake"}


class ImapSource:
    """Fetches the messages above the stored position from one IMAP folder."""

    def __init__(self, settings: MailboxSettings) -> None:
        self.settings = settings
        self.name = settings.name

    def fetch_new(self, position: Position) -> Iterator[Fetched]:
        client = self._connect()
        try:
            uidvalidity = self._select(client)
            stored = position.get(self.name)
            last_uid = 0
            if stored is not None:
                stored_validity, stored_uid = stored
                if stored_validity == uidvalidity:
                    last_uid = stored_uid
                else:
                    # Old UIDs mean nothing now; every message is fetched again and
                    # the store's sha256 ledger keeps duplicates from being re-processed.
                    log.warning("UIDVALIDITY changed mailbox=%s old=%s new=%s; rescanning folder",
                                self.name, stored_validity, uidvalidity)

            uids = sorted(uid for uid in client.search(["UID", f"{last_uid + 1}:*"]) if uid > last_uid)
            log.info("imap poll mailbox=%s uidvalidity=%s last_uid=%s new=%d", self.name, uidvalidity, last_uid, len(uids))

            batch_size = self.settings.batch_size
            for start in range(0, len(uids), batch_size):
                batch = uids[start:start + batch_size]
                response = client.fetch(batch, ["BODY.PEEK[]", "INTERNALDATE", "RFC822.SIZE"])
                for uid in batch:
                    data = response.get(uid)
                    if data is None or b"BODY[]" not in data:
                        log.warning("imap fetch returned no body uid=%s mailbox=%s", uid, self.name)
                        continue
                    yield Fetched(
                        source_key=f"{uidvalidity}:{uid}",
                        raw=bytes(data[b"BODY[]"]),
                        received_at=_aware(data.get(b"INTERNALDATE")),
                        uidvalidity=uidvalidity,
                        uid=uid,
                    )
        except (IMAPClientError, OSError) as err:
            raise MailboxError(f"读取 IMAP 邮箱 {self.name} 失败：{err}") from err
        finally:
            _logout(client)

    def _connect(self) -> IMAPClient:
        settings = self.settings
        context = tls_context(settings.ca_file)
        timeout = SocketTimeout(connect=min(settings.timeout_seconds, 30.0), read=settings.timeout_seconds)
        try:
            client = IMAPClient(settings.host, port=settings.port, ssl=settings.security == "tls",
                                ssl_context=context, timeout=timeout)
            # NOTE: imapclient 4.1 sets imaplib's debug level to 5, which formats every
            # fetched message for a debug log; that costs more than the fetch itself.
            client._imap.debug = 0
            client.normalise_times = False
            if settings.security == "starttls":
                client.starttls(context)
            client.login(settings.username, settings.password())
        except LoginError as err:
            raise MailboxError(f"IMAP 登录失败（用户 {settings.username}，服务器 {settings.host}:{settings.port}）："
                               f"请检查用户名和 {settings.password_env or '密码'}。") from err
        except (IMAPClientError, OSError, ssl.SSLError) as err:
            raise MailboxError(f"无法连接 IMAP 服务器 {settings.host}:{settings.port}（{settings.security}）：{err}") from err

        # NetEase and Coremail servers refuse SELECT until the client has sent ID.
        try:
            if client.has_capability("ID"):
                client.id_(CLIENT_ID)
        except IMAPClientError as err:
            log.warning("imap ID command failed host=%s: %s", settings.host, err)
        return client

    def _select(self, client: IMAPClient) -> int:
        try:
            info = client.select_folder(self.settings.folder, readonly=True)
        except IMAPClientError as err:
            raise MailboxError(f"无法打开邮箱文件夹 {self.settings.folder!r}：{err}。请检查 [mailbox] folder。") from err
        return int(info[b"UIDVALIDITY"])


def _aware(value: object) -> datetime | None:
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)


def _logout(client: IMAPClient) -> None:
    try:
        client.logout()
    except (IMAPClientError, OSError) as err:
        log.info("imap logout failed: %s", err)
