"""Expansion of Outlook TNEF attachments (winmail.dat, application/ms-tnef) into their files.

Outlook sending in its Rich Text format replaces the files a user attached with one
winmail.dat that contains them. The tnefparse library decodes the format. This module
adds what an intake needs and the library (version 1.4.0) does not do:

- tnefparse runs in a child process with a time and memory limit. On corrupt input
  its loops can run for hours: a MAPI property count of 4 billion in an attachment's
  property block makes it iterate that often, and a daemon would hang on the message
  at every restart.
- The attribute framing is checked first, in this process. tnefparse accepts an
  attribute that a truncated mail cut short, and it copies the rest of the stream
  once per attribute, so a stream of many small attributes takes quadratic time.
- Names are decoded here. tnefparse decodes a short name as strict UTF-8, but TNEF
  stores 8-bit strings in the stream's code page (attOemCodepage, per Microsoft's
  TnefReader.MessageCodepage documentation), which is 936 (GBK) on Chinese Windows.
- Every failure of the library becomes FileProblem("unreadable-archive"). On
  malformed input tnefparse raises ValueError, TypeError, struct.error,
  UnboundLocalError and others.

A TNEF stream is not compressed, so no member is larger than the attachment itself.
"""

from __future__ import annotations

import io
import logging
import os
import posixpath
import resource
import struct
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from tnefparse import TNEF
from tnefparse.properties import MAPI_ATTACH_LONG_FILENAME

from parsers.archive import ArchiveLimits, Expansion, Member
from parsers.problems import FileProblem
from parsers.text import decode_bytes

log = logging.getLogger(__name__)

_SIGNATURE = 0x223E9F78
#: Stream header: signature and legacy key, little-endian.
_STREAM_HEADER = struct.Struct("<IH")
#: Attribute header: level, attribute id (type << 16 | id) and data length.
_ATTRIBUTE_HEADER = struct.Struct("<BII")
_CHECKSUM_SIZE = 2
_LEVEL_ATTACHMENT = 2
#: attAttachRenddata, the attribute that starts every attachment (low 16 bits of the id).
_ATTACH_REND_DATA = 0x9002

#: Attributes allowed for the message itself and for each attachment. Outlook writes
#: about 15 and 7 (an estimate from the attributes the format defines), so the bounds
#: leave two to four times that. They keep the library's copying short.
#: NOTE: a stream within the bounds can still be slow. tnefparse 1.4.0 took 17 s for
#: 1,000 small attributes ahead of one 35 MB attribute (Python 3.11, 2-core machine),
#: so such a stream can run into the decoding timeout below.
_MESSAGE_ATTRIBUTES = 64
_ATTRIBUTES_PER_ATTACHMENT = 16

#: Wall-clock limit for decoding one stream in the child process, in seconds.
#: NOTE: an estimate. A 45 MB stream with two attachments decoded in 0.7 s (Python
#: 3.11, 2-core machine), and only corrupt streams were seen to take longer.
_TIMEOUT_SECONDS = 60.0
#: Address space for the child: a fixed base for the interpreter plus a multiple of
#: the stream size, because tnefparse keeps every attribute and the output copies it.
_CHILD_BASE_BYTES = 256 * 1024 * 1024
_CHILD_BYTES_PER_INPUT_BYTE = 8
#: Exit status of the child when tnefparse raised an exception. Its stderr then contains the reason.
_EXIT_DECODE_FAILED = 3
_REASON_CHARS = 300

#: Name given to an attachment that carries none, numbered from 1 in stream order.
_UNNAMED = "（未命名附件{number}）"


@dataclass
class _RawAttachment:
    """One attachment as tnefparse decoded it, names still undecoded."""

    long_name: str | bytes | None
    title: str | bytes | None
    data: bytes
    damaged: bool


@dataclass
class _Decoded:
    """The result of decoding one stream in the child process."""

    codepage: str | None
    attachments: list[_RawAttachment] = field(default_factory=list)
    #: Message attributes (subject, body ...) whose checksum failed.
    message_checksum_failures: int = 0


def expand_tnef(data: bytes, limits: ArchiveLimits = ArchiveLimits()) -> Expansion:
    """Read every attachment of the TNEF stream in `data` within `limits`.

    Raises FileProblem("unreadable-archive") when the stream is broken or truncated,
    or when decoding fails or passes its time or memory limit, and
    FileProblem("too-many-members") past the member limit. An attachment whose
    checksum fails, or that is over `max_member_bytes` or the total, is skipped and
    reported in `problems` by its name. Members keep the stream's order.
    """
    attachment_count = _check_framing(data, limits)
    if attachment_count > limits.max_members:
        raise FileProblem("too-many-members", count=attachment_count, limit=limits.max_members)

    decoded = _decode_in_child(data)
    if decoded.message_checksum_failures:
        log.warning("%d TNEF message attributes failed their checksum and are ignored, because no member "
                    "comes from them", decoded.message_checksum_failures)

    result = Expansion()
    total = 0
    for index, attachment in enumerate(decoded.attachments):
        name = _attachment_name(attachment, index, decoded.codepage)
        problem = _check_attachment(name, attachment, limits, total)
        if problem is not None:
            result.problems.append((name, problem))
            continue

        total += len(attachment.data)
        result.members.append(Member(name=name, data=attachment.data))

    return result


def _check_framing(data: bytes, limits: ArchiveLimits) -> int:
    """Walk the attribute headers and return the number of attachments.

    Every attribute must fit inside `data`, and nothing may follow the last one.
    An attachment attribute must follow an attAttachRenddata. The walk stops once
    the attribute count passes what `limits.max_members` attachments could need.
    """
    if len(data) < _STREAM_HEADER.size or _STREAM_HEADER.unpack_from(data)[0] != _SIGNATURE:
        raise FileProblem("unreadable-archive", reason="invalid TNEF signature")

    max_attributes = _MESSAGE_ATTRIBUTES + _ATTRIBUTES_PER_ATTACHMENT * limits.max_members
    attributes = 0
    attachments = 0
    offset = _STREAM_HEADER.size
    while offset < len(data):
        if len(data) - offset < _ATTRIBUTE_HEADER.size + _CHECKSUM_SIZE:
            raise FileProblem("unreadable-archive", reason=f"TNEF stream truncated at byte {offset}")
        level, attribute_id, length = _ATTRIBUTE_HEADER.unpack_from(data, offset)
        end = offset + _ATTRIBUTE_HEADER.size + length + _CHECKSUM_SIZE
        if end > len(data):
            raise FileProblem("unreadable-archive",
                              reason=f"TNEF attribute {attribute_id:#010x} at byte {offset} declares "
                                     f"{length} bytes but the stream ends first")

        if attribute_id & 0xFFFF == _ATTACH_REND_DATA:
            attachments += 1
        elif level == _LEVEL_ATTACHMENT and attachments == 0:
            raise FileProblem("unreadable-archive",
                              reason=f"TNEF attachment attribute {attribute_id:#010x} at byte {offset} "
                                     f"comes before any attachment starts")

        attributes += 1
        if attributes > max_attributes:
            raise FileProblem("unreadable-archive", reason=f"TNEF stream has more than {max_attributes} attributes")
        offset = end

    allowed = _MESSAGE_ATTRIBUTES + _ATTRIBUTES_PER_ATTACHMENT * attachments
    if attributes > allowed:
        raise FileProblem("unreadable-archive",
                          reason=f"TNEF stream has {attributes} attributes for {attachments} attachments")
    return attachments


# ---------------------------------------------------------------------------
# The child process
# ---------------------------------------------------------------------------


def _decode_in_child(data: bytes) -> _Decoded:
    """Decode `data` with tnefparse in a child process (`python -m parsers.tnef`).

    The child gets the stream on stdin and writes the attachments to stdout in the
    format of `_write_decoded`. It limits its own address space and CPU time, and
    this process kills it after `_TIMEOUT_SECONDS`.
    """
    package_root = str(Path(__file__).resolve().parent.parent)
    environment = dict(os.environ)
    environment["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, environment.get("PYTHONPATH")]))
    command = [sys.executable, "-m", "parsers.tnef"]

    try:
        process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   env=environment)
    except OSError as err:
        log.error("the TNEF decoder process could not be started (%s): %s", sys.executable, err)
        raise FileProblem("unreadable-archive", reason=f"TNEF decoder process could not be started: {err}") from err

    try:
        output, errors = process.communicate(data, timeout=_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        log.warning("TNEF decoding of a %d-byte stream timed out after %g s (pid %d)", len(data),
                    _TIMEOUT_SECONDS, process.pid)
        reason = f"TNEF decoding timed out after {_TIMEOUT_SECONDS:g} s"
        raise FileProblem("unreadable-archive", reason=reason) from None

    message = errors.decode("utf-8", "replace").strip()[-_REASON_CHARS:]
    if process.returncode == _EXIT_DECODE_FAILED:
        log.info("tnefparse failed on a %d-byte stream: %s", len(data), message)
        raise FileProblem("unreadable-archive", reason=message)
    if process.returncode != 0:
        log.warning("the TNEF decoder process exited with %d on a %d-byte stream: %s", process.returncode,
                    len(data), message)
        raise FileProblem("unreadable-archive", reason=f"TNEF decoder exit status {process.returncode}: {message}")

    try:
        return _read_decoded(output)
    except (ValueError, struct.error, UnicodeDecodeError) as err:
        log.error("the TNEF decoder process wrote invalid output (%d bytes): %s", len(output), err)
        raise FileProblem("unreadable-archive", reason=f"invalid decoder output: {err}") from err


def _child_main() -> int:
    """Decode the stream on stdin, write the result to stdout and return the exit status."""
    data = sys.stdin.buffer.read()
    _limit_child_resources(len(data))

    try:
        tnef = TNEF(data, do_checksum=True)
        decoded = _collect(tnef)
        output = _write_decoded(decoded)
    except Exception as err:  # noqa: BLE001 - tnefparse raises whatever the malformed byte first trips
        sys.stderr.write(f"{type(err).__name__}: {err}\n")
        return _EXIT_DECODE_FAILED

    sys.stdout.buffer.write(output)
    sys.stdout.buffer.flush()
    return 0


def _limit_child_resources(input_bytes: int) -> None:
    """Cap the child's address space and CPU time, so it ends itself if its parent is gone.

    Only the soft limits are set, and never above a hard limit that is already lower.
    """
    memory = _CHILD_BASE_BYTES + _CHILD_BYTES_PER_INPUT_BYTE * input_bytes
    _set_soft_limit(resource.RLIMIT_AS, memory)
    _set_soft_limit(resource.RLIMIT_CPU, int(_TIMEOUT_SECONDS) + 5)


def _set_soft_limit(kind: int, value: int) -> None:
    _, hard = resource.getrlimit(kind)
    if hard != resource.RLIM_INFINITY:
        value = min(value, hard)
    resource.setrlimit(kind, (value, hard))


def _collect(tnef: TNEF) -> _Decoded:
    """Return the attachments of a decoded TNEF object with their checksum status.

    An attachment owns the attributes from its attAttachRenddata up to the next one,
    which is the rule tnefparse groups them by. The title is read from the private
    `_name` because the public `name` decodes it as strict UTF-8 and raises on GBK.
    """
    damaged: set[int] = set()
    message_failures = 0
    index = -1
    for obj in tnef.objects:
        if obj.name == TNEF.ATTATTACHRENDDATA:
            index += 1
        if obj.good_checksum:
            continue
        if obj.level == TNEF.LVL_ATTACHMENT and index >= 0:
            damaged.add(index)
        else:
            message_failures += 1

    codepage = tnef.codepage if isinstance(tnef.codepage, str) else None
    decoded = _Decoded(codepage=codepage, message_checksum_failures=message_failures)
    for index, attachment in enumerate(tnef.attachments):
        long_names = [prop.data for prop in attachment.mapi_attrs if prop.name == MAPI_ATTACH_LONG_FILENAME]
        decoded.attachments.append(_RawAttachment(long_name=long_names[0] if long_names else None,
                                                  title=getattr(attachment, "_name", None),
                                                  data=bytes(attachment.data),
                                                  damaged=index in damaged))
    return decoded


# Wire format from the child: codepage, checksum failures, attachment count, then per
# attachment a damaged flag, long name, title and data. A value is a kind byte
# (0 none, 1 UTF-8 text, 2 bytes), a 4-byte length and the payload, little-endian.
_COUNT = struct.Struct("<I")
_VALUE_HEADER = struct.Struct("<BI")
_KIND_NONE, _KIND_TEXT, _KIND_BYTES = 0, 1, 2


def _write_decoded(decoded: _Decoded) -> bytes:
    out = io.BytesIO()
    _write_value(out, decoded.codepage)
    out.write(_COUNT.pack(decoded.message_checksum_failures))
    out.write(_COUNT.pack(len(decoded.attachments)))
    for attachment in decoded.attachments:
        out.write(bytes([attachment.damaged]))
        _write_value(out, attachment.long_name)
        _write_value(out, attachment.title)
        _write_value(out, attachment.data)
    return out.getvalue()


def _write_value(out: io.BytesIO, value: str | bytes | None) -> None:
    if value is None:
        out.write(_VALUE_HEADER.pack(_KIND_NONE, 0))
    elif isinstance(value, str):
        payload = value.encode("utf-8", "surrogatepass")
        out.write(_VALUE_HEADER.pack(_KIND_TEXT, len(payload)) + payload)
    else:
        out.write(_VALUE_HEADER.pack(_KIND_BYTES, len(value)) + bytes(value))


def _read_decoded(output: bytes) -> _Decoded:
    """Parse the child's output, raising ValueError or struct.error when it is malformed."""
    reader = _Reader(output)
    codepage = reader.value()
    decoded = _Decoded(codepage=codepage if isinstance(codepage, str) else None)
    decoded.message_checksum_failures = reader.count()
    for _ in range(reader.count()):
        damaged = reader.take(1)[0] != 0
        long_name = reader.value()
        title = reader.value()
        data = reader.value()
        if not isinstance(data, bytes):
            raise ValueError("attachment data is not bytes")
        decoded.attachments.append(_RawAttachment(long_name=long_name, title=title, data=data, damaged=damaged))
    if reader.offset != len(output):
        raise ValueError(f"{len(output) - reader.offset} bytes after the last attachment")
    return decoded


class _Reader:
    """A cursor over the child's output that raises ValueError past the end."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.offset = 0

    def take(self, size: int) -> bytes:
        if self.offset + size > len(self.data):
            raise ValueError(f"output ends at byte {len(self.data)}, {size} more bytes expected")
        chunk = self.data[self.offset:self.offset + size]
        self.offset += size
        return chunk

    def count(self) -> int:
        return int(_COUNT.unpack(self.take(_COUNT.size))[0])

    def value(self) -> str | bytes | None:
        kind, length = _VALUE_HEADER.unpack(self.take(_VALUE_HEADER.size))
        payload = self.take(length)
        if kind == _KIND_NONE:
            return None
        if kind == _KIND_TEXT:
            return payload.decode("utf-8", "surrogatepass")
        if kind == _KIND_BYTES:
            return payload
        raise ValueError(f"unknown value kind {kind}")


# ---------------------------------------------------------------------------
# Names and limits
# ---------------------------------------------------------------------------


def _attachment_name(attachment: _RawAttachment, index: int, codepage: str | None) -> str:
    """Return the attachment's file name without any folder part.

    The MAPI long file name comes first because attAttachTitle often holds only an
    8.3 name. Names in bytes are decoded with the stream's OEM code page when they
    decode cleanly with it, and by detection otherwise.
    """
    for candidate in (attachment.long_name, attachment.title):
        name = _base_name(_as_text(candidate, codepage))
        if name:
            return name
    return _UNNAMED.format(number=index + 1)


def _as_text(value: str | bytes | None, codepage: str | None) -> str:
    if isinstance(value, bytes):
        return decode_bytes(value.rstrip(b"\x00"), codepage)
    if isinstance(value, str):
        return value.rstrip("\x00")
    return ""


def _base_name(name: str) -> str:
    """Return the last path component, or "" for none, because senders attach files, not paths."""
    base = posixpath.basename(name.replace("\\", "/")).strip()
    if base in (".", ".."):
        return ""
    return base


def _check_attachment(name: str, attachment: _RawAttachment, limits: ArchiveLimits,
                      total: int) -> FileProblem | None:
    if attachment.damaged:
        return FileProblem("unreadable-member", member=name, reason="TNEF checksum mismatch")
    size = len(attachment.data)
    if size > limits.max_member_bytes:
        return FileProblem("member-too-large", member=name, size=size, limit=limits.max_member_bytes)
    if total + size > limits.max_total_bytes:
        return FileProblem("archive-too-large", member=name, limit=limits.max_total_bytes)
    return None


if __name__ == "__main__":
    sys.exit(_child_main())
