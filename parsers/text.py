"""Decoding of the byte strings and header words that Chinese mail clients write.

Clients label text "gb2312" while writing characters that only GBK or GB18030 hold
(喆, 堃, 镕 ...), write raw 8-bit header bytes with no encoding at all, and put RFC 2047
encoded words inside quoted parameters. Every decoder here returns text and never
raises: what cannot be decoded becomes U+FFFD, so one bad header cannot lose a message.
"""

from __future__ import annotations

import codecs
import email.header
import re

from charset_normalizer import from_bytes

# Labels whose real content is routinely a superset encoding. GB18030 is a strict
# superset of GB2312 and GBK, so decoding with it never loses a character.
_SUPERSETS = {
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "cp936": "gb18030",
    "euc-cn": "gb18030",
    "hz-gb-2312": "gb18030",
    "big5": "big5hkscs",
    "ks_c_5601-1987": "cp949",
    "us-ascii": "utf-8",
    "ascii": "utf-8",
    "iso-8859-1": "cp1252",
}

_ENCODED_WORD = re.compile(r"=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=")


def superset_charset(label: str | None) -> str:
    """Return the codec to decode text labelled `label` with, falling back to UTF-8."""
    if not label:
        return "utf-8"
    name = label.strip().strip('"').lower()
    name = _SUPERSETS.get(name, name)
    try:
        info = codecs.lookup(name)
    except (LookupError, ValueError):  # ValueError: a NUL inside the label
        return "utf-8"
    # base64, hex, rot13 ... are codecs too, but not text encodings.
    if not getattr(info, "_is_text_encoding", True):
        return "utf-8"
    return name


def decode_bytes(data: bytes, label: str | None = None) -> str:
    """Decode `data` labelled with charset `label`; detect the encoding when unlabelled.

    A label is trusted (through its superset) when the bytes decode cleanly with it.
    Otherwise UTF-8, GB18030 and charset-normalizer's guess are tried in that order.
    """
    if label:
        try:
            return data.decode(superset_charset(label))
        except (UnicodeDecodeError, UnicodeError, LookupError):
            pass

    for candidate in ("utf-8", "gb18030"):
        try:
            return data.decode(candidate)
        except UnicodeDecodeError:
            continue

    best = from_bytes(data).best()
    if best is not None:
        return str(best)
    return data.decode("utf-8", errors="replace")


def decode_header_text(value: str | bytes | email.header.Header | None) -> str:
    """Decode a header value: RFC 2047 words (also inside quotes) and raw 8-bit bytes.

    The email package in compat32 mode hands raw 8-bit header bytes over as
    surrogate escapes; they are turned back into bytes and decoded by detection.
    """
    if value is None:
        return ""
    if isinstance(value, bytes):
        return decode_bytes(value)
    if isinstance(value, email.header.Header):
        # compat32 wraps a header holding raw 8-bit bytes in a Header whose charset
        # is unknown-8bit; str() of it would replace every such byte.
        value = _header_bytes(value)

    text = str(value)
    if has_surrogates(text):
        text = decode_bytes(text.encode("utf-8", errors="surrogateescape"))

    if not _ENCODED_WORD.search(text):
        return _unfold(text)

    # Quotes around encoded words (filename="=?gb2312?B?...?=") are not part of
    # the name; RFC 2047 forbids the form, but Foxmail and Outlook write it.
    unquoted = text.replace('"', "")
    pieces: list[str] = []
    try:
        parts = email.header.decode_header(_unfold(unquoted))
    except (email.errors.HeaderParseError, ValueError):
        return _unfold(text)

    for chunk, charset in parts:
        if isinstance(chunk, bytes):
            pieces.append(decode_bytes(chunk, charset))
        else:
            pieces.append(chunk)
    return "".join(pieces).strip()


def _header_bytes(header: email.header.Header) -> str:
    raw = b"".join(chunk if isinstance(chunk, bytes) else chunk.encode("utf-8")
                   for chunk, _ in email.header.decode_header(header))
    return decode_bytes(raw)


def has_surrogates(text: str) -> bool:
    return any("\udc80" <= ch <= "\udcff" for ch in text)


def _unfold(text: str) -> str:
    return re.sub(r"\r?\n[ \t]+", " ", text).strip()
