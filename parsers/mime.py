"""Split a raw RFC 5322 message into headers, body text and attached files.

The structure is walked with the email package in compat32 mode, which keeps raw
header bytes so that the decoders in parsers.text can repair what Chinese clients
write; mail-parser supplies the parsed Received chain. Attached messages
(message/rfc822, as a city office forwards a provider's mail) are walked too, and
their files are reported with the name of the message that carried them.
"""

from __future__ import annotations

import email
import email.message
import email.utils
import logging
from dataclasses import dataclass, field
from datetime import datetime

import mailparser

from parsers.text import decode_bytes, decode_header_text, has_surrogates

log = logging.getLogger(__name__)

#: Attached messages nested deeper than this are kept as opaque files.
DEFAULT_MAX_MESSAGE_DEPTH = 5


@dataclass(frozen=True)
class Attachment:
    """One file found in a message, with its decoded name and bytes."""

    filename: str
    content_type: str
    data: bytes
    inline: bool
    #: Subjects of the attached messages that carried this file, outermost first.
    carriers: tuple[str, ...] = ()


@dataclass
class ParsedMessage:
    """The parts of one message that intake reads."""

    message_id: str
    subject: str
    from_name: str
    from_address: str
    reply_to_address: str
    to_addresses: list[str]
    date: datetime | None
    #: Time of the topmost Received header: when our own server accepted the mail.
    received: datetime | None
    headers: dict[str, str]
    content_type: str
    text: str
    html: str
    attachments: list[Attachment] = field(default_factory=list)
    #: Senders of attached messages, outermost first (a forwarded submission).
    inner_senders: list[str] = field(default_factory=list)

    def header(self, name: str) -> str:
        """Return the decoded header `name` (case-insensitive), or an empty string."""
        return self.headers.get(name.lower(), "")


def parse_message(raw: bytes, *, max_depth: int = DEFAULT_MAX_MESSAGE_DEPTH) -> ParsedMessage:
    """Parse `raw` into a ParsedMessage; never raises on malformed input."""
    message = email.message_from_bytes(raw)
    headers = {key.lower(): decode_header_text(value) for key, value in message.items()}

    from_name, from_address = _address(message.get("From"))
    _, reply_to = _address(message.get("Reply-To"))
    to_addresses = [addr for _, addr in email.utils.getaddresses([decode_header_text(v) for v in message.get_all("To", [])]) if addr]

    parsed = ParsedMessage(
        message_id=_message_id(message.get("Message-ID")),
        subject=headers.get("subject", ""),
        from_name=from_name,
        from_address=from_address,
        reply_to_address=reply_to,
        to_addresses=to_addresses,
        date=_date(message.get("Date")),
        received=topmost_received(raw),
        headers=headers,
        content_type=message.get_content_type(),
        text="",
        html="",
    )
    _walk(message, parsed, carriers=(), depth=0, max_depth=max_depth)
    return parsed


def topmost_received(raw: bytes) -> datetime | None:
    """Return the date of the topmost Received header, the one our own server added."""
    try:
        hops = mailparser.parse_from_bytes(raw).received
    except Exception as err:  # mail-parser raises bare exceptions on odd input
        log.debug("received chain unreadable: %s", err)
        return None

    # mail-parser numbers hops from the bottom, so the topmost has the highest hop.
    for hop in sorted(hops, key=lambda h: h.get("hop", 0), reverse=True):
        stamp = hop.get("date")
        parsed = _date(stamp) if stamp else None
        if parsed is not None:
            return parsed
    return None


def _walk(part: email.message.Message, parsed: ParsedMessage, *, carriers: tuple[str, ...],
          depth: int, max_depth: int) -> None:
    content_type = part.get_content_type()

    if part.is_multipart() and content_type != "message/rfc822":
        for child in part.get_payload():
            _walk(child, parsed, carriers=carriers, depth=depth, max_depth=max_depth)
        return

    if content_type == "message/rfc822" and depth < max_depth:
        inner = part.get_payload()
        if isinstance(inner, list) and inner:
            _walk_attached_message(inner[0], parsed, carriers=carriers, depth=depth, max_depth=max_depth)
            return

    filename = attachment_filename(part)
    disposition = (part.get_content_disposition() or "").lower()
    payload = _payload_bytes(part)

    if not filename and disposition != "attachment" and content_type in ("text/plain", "text/html"):
        if depth == 0:
            text = decode_bytes(payload, part.get_content_charset())
            if content_type == "text/plain":
                parsed.text += text
            else:
                parsed.html += text
        return

    if content_type == "message/delivery-status":
        return

    parsed.attachments.append(
        Attachment(
            filename=filename,
            content_type=content_type,
            data=payload,
            inline=disposition == "inline" or (disposition == "" and bool(part.get("Content-ID"))),
            carriers=carriers,
        )
    )


def _walk_attached_message(inner: email.message.Message, parsed: ParsedMessage, *,
                           carriers: tuple[str, ...], depth: int, max_depth: int) -> None:
    subject = decode_header_text(inner.get("Subject"))
    _, sender = _address(inner.get("From"))
    if sender:
        parsed.inner_senders.append(sender)
    _walk(inner, parsed, carriers=carriers + (subject or "(无主题)",), depth=depth + 1, max_depth=max_depth)


def attachment_filename(part: email.message.Message) -> str:
    """Return the decoded file name of `part`, or an empty string.

    RFC 2231 parameters come back from the email package as (charset, language,
    value) triples; their charset is widened like a body's before decoding.
    """
    for raw in (_param(part, "filename", "content-disposition"), _param(part, "name", "content-type")):
        if raw is None:
            continue
        if isinstance(raw, tuple):
            charset, _, value = raw
            try:
                data = value.encode("latin-1", errors="surrogateescape") if isinstance(value, str) else value
                name = decode_bytes(data, charset or None)
            except UnicodeEncodeError:
                # Raw UTF-8 inside filename*= was already decoded to text by _param.
                name = value
        else:
            name = decode_header_text(email.utils.unquote(raw))
        name = name.replace("\\", "/").rsplit("/", 1)[-1].strip()
        if name:
            return name
    return ""


def _param(part: email.message.Message, name: str, header: str) -> object:
    """Return a header parameter, recovering raw 8-bit bytes that get_param would replace.

    Some clients write a GBK or UTF-8 file name into the header with no encoding
    at all, and compat32 keeps those bytes only in the raw header value.
    """
    for key, value in part.raw_items():
        if key.lower() == header and isinstance(value, str) and has_surrogates(value):
            repaired = email.message.Message()
            repaired[header] = decode_header_text(value)
            return repaired.get_param(name, header=header)
    return part.get_param(name, header=header)


def _payload_bytes(part: email.message.Message) -> bytes:
    payload = part.get_payload(decode=True)
    if isinstance(payload, bytes):
        return payload
    if payload is None:
        inner = part.get_payload()
        if isinstance(inner, list):
            return b"".join(bytes(m) for m in inner if isinstance(m, email.message.Message))
        if isinstance(inner, str):
            return inner.encode("utf-8", errors="surrogateescape")
    return b""


def _address(value: str | None) -> tuple[str, str]:
    if not value:
        return "", ""
    name, address = email.utils.parseaddr(decode_header_text(value))
    return name.strip(), address.strip().lower()


def _message_id(value: str | None) -> str:
    return decode_header_text(value).strip() if value else ""


def _date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(decode_header_text(value))
    except (TypeError, ValueError, IndexError):
        return None
    return parsed if parsed.tzinfo is not None else None
