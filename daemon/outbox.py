"""Send what the outbox holds, and record each result.

Sending is a step of its own, apart from the decision: a reply is queued in the
decision's transaction, and a failed send is retried on the next cycle until
`max_attempts`, so a mail server that is down delays replies but loses none.
"""

from __future__ import annotations

import email
import email.policy
import logging
import smtplib
import ssl
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import select

from daemon.config import Settings, tls_context
from daemon.errors import SendError
from daemon.store import Database, OutboxItem

log = logging.getLogger(__name__)


def send_queued(database: Database, settings: Settings) -> tuple[int, int]:
    """Send every queued item; return (sent, failed) counts for this run."""
    with database.session() as session:
        queued = list(session.execute(
            select(OutboxItem.id).where(OutboxItem.status == "queued").order_by(OutboxItem.id)
        ).scalars())

    sent = failed = 0
    for item_id in queued:
        with database.session() as session:
            item = session.get(OutboxItem, item_id)
            if item is None or item.status != "queued":
                continue
            item.attempts += 1
            try:
                deliver(item, settings)
            except SendError as err:
                failed += 1
                item.last_error = str(err)
                if item.attempts >= settings.max_send_attempts:
                    item.status = "failed"
                log.warning("send failed outbox=%s attempt=%s/%s: %s", item.id, item.attempts,
                            settings.max_send_attempts, err)
                continue
            item.status = "sent"
            item.sent_at = datetime.now(timezone.utc)
            item.last_error = None
            sent += 1
            log.info("sent outbox=%s purpose=%s message_id=%s", item.id, item.purpose, item.message_id)
    return sent, failed


def deliver(item: OutboxItem, settings: Settings) -> None:
    """Hand one item to the configured transport; raise SendError when it fails."""
    if settings.outbox_transport == "file":
        _write_file(item, settings.outbox_dir)
    else:
        _send_smtp(item, settings)


def _write_file(item: OutboxItem, folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{item.id:06d}-{item.purpose}.eml"
        path.write_bytes(item.raw)
    except OSError as err:
        raise SendError(f"无法写入发件箱文件夹 {folder}：{err}") from err


def _send_smtp(item: OutboxItem, settings: Settings) -> None:
    smtp = settings.smtp
    message = email.message_from_bytes(item.raw, policy=email.policy.SMTP)
    recipients = [address.strip() for address in item.recipient.split(",") if address.strip()]
    context = tls_context(smtp.ca_file)
    try:
        if smtp.security == "tls":
            client: smtplib.SMTP = smtplib.SMTP_SSL(smtp.host, smtp.port, timeout=smtp.timeout_seconds, context=context)
        else:
            client = smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout_seconds)
        with client:
            if smtp.security == "starttls":
                client.starttls(context=context)
            if smtp.username:
                client.login(smtp.username, smtp.password())
            client.send_message(message, from_addr=smtp.from_address, to_addrs=recipients)
    except smtplib.SMTPResponseException as err:
        raise SendError(f"SMTP 服务器 {smtp.host}:{smtp.port} 拒绝：{err.smtp_code} {err.smtp_error!r}") from err
    except (smtplib.SMTPException, OSError, ssl.SSLError) as err:
        raise SendError(f"无法通过 SMTP 服务器 {smtp.host}:{smtp.port} 发送：{err}") from err
