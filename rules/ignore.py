"""Decide which messages get no reply at all: auto-replies, bounces, lists, our own mail.

RFC 3834 section 2 forbids automatic responses to such messages, because
responding to them starts mail loops between robots.
"""

from __future__ import annotations

from parsers.mime import ParsedMessage

_DAEMON_LOCALPARTS = {"mailer-daemon", "postmaster", "noreply", "no-reply", "donotreply", "do-not-reply"}
_BULK_PRECEDENCE = {"bulk", "junk", "list", "auto_reply"}
_AUTO_SUBJECT_PREFIXES = ("自动回复", "auto:", "automatic reply", "out of office", "autoreply", "自动答复")


def ignore_reason(message: ParsedMessage, *, own_addresses: frozenset[str]) -> str | None:
    """Return why `message` must not be answered, or None when it gets a reply."""
    auto = message.header("auto-submitted").strip().lower()
    if auto and not auto.startswith("no"):
        return f"auto-submitted: {auto}"

    if message.header("x-intake-decision"):
        return "our own reply"
    if message.from_address in own_addresses:
        return "sent from our own mailbox"

    return_path = message.header("return-path").strip()
    if return_path in ("<>", ""):
        if "return-path" in message.headers:
            return "null return path (bounce)"

    localpart = message.from_address.split("@", 1)[0]
    if localpart in _DAEMON_LOCALPARTS:
        return f"sender is {localpart}"
    if message.content_type == "multipart/report":
        return "delivery or disposition report"

    for header in ("x-autoreply", "x-autorespond"):
        if message.header(header):
            return f"{header} header"

    precedence = message.header("precedence").strip().lower()
    if precedence in _BULK_PRECEDENCE:
        return f"precedence: {precedence}"
    if message.header("list-id") or message.header("list-unsubscribe"):
        return "mailing list"

    if message.subject.strip().lower().startswith(_AUTO_SUBJECT_PREFIXES):
        return "auto-reply subject"
    if not message.from_address:
        return "no sender address"
    return None
