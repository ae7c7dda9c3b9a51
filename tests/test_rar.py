"""rar archives through libarchive, on archives this file writes in the RAR 4 format."""

from __future__ import annotations

import struct
import zlib
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parsers.archive import ArchiveLimits
from parsers.mime import parse_message
from parsers.problems import FileProblem
from parsers.rar import expand_rar
from parsers.sniff import FileKind, sniff
from rules.campaign import load_campaign
from rules.evaluate import evaluate
from tests import builders
from tests.support import REPO

CAMPAIGN = load_campaign(REPO / "rules" / "notice_2020_858.toml")
RECEIVED = datetime(2020, 9, 15, 10, tzinfo=timezone(timedelta(hours=8)))

#: RAR 4 block types and flags (RARLAB's technote for RAR 2.9 to 4.x).
MARK = b"Rar!\x1a\x07\x00"
MAIN_HEAD, FILE_HEAD, END_ARCHIVE = 0x73, 0x74, 0x7B
LONG_BLOCK, PASSWORD, END_FLAGS = 0x8000, 0x0004, 0x4000
STORED = 0x30


def _block(kind: int, flags: int, body: bytes) -> bytes:
    rest = struct.pack("<BHH", kind, flags, 7 + len(body)) + body
    return struct.pack("<H", zlib.crc32(rest) & 0xFFFF) + rest


def rar4(members: dict[str, bytes], *, encrypted: bool = False) -> bytes:
    """Return a RAR 4 archive that stores `members` uncompressed (names must be ASCII)."""
    out = MARK + _block(MAIN_HEAD, 0, struct.pack("<HI", 0, 0))
    for name, data in members.items():
        encoded = name.encode("ascii")
        body = struct.pack("<IIBIIBBHI", len(data), len(data), 2, zlib.crc32(data), 0x51210000, 20, STORED,
                           len(encoded), 0x20) + encoded
        out += _block(FILE_HEAD, LONG_BLOCK | (PASSWORD if encrypted else 0), body) + data
    return out + _block(END_ARCHIVE, END_FLAGS, b"")


def test_sniff_rar() -> None:
    assert sniff(rar4({"a.txt": b"x"})) == FileKind.RAR


def test_expand_rar_reads_members() -> None:
    report = builders.form2_report("广东甲公司")

    expansion = expand_rar(rar4({"reports/a.docx": report, "note.txt": b"hello"}))

    assert [(m.name, m.data) for m in expansion.members] == [("reports/a.docx", report), ("note.txt", b"hello")]
    assert expansion.problems == []


def test_expand_rar_unsafe_path_rejected() -> None:
    expansion = expand_rar(rar4({"../evil.docx": b"x", "ok.txt": b"y"}))

    assert [m.name for m in expansion.members] == ["ok.txt"]
    assert [(name, p.code) for name, p in expansion.problems] == [("../evil.docx", "unsafe-path")]


def test_expand_rar_member_over_limit() -> None:
    expansion = expand_rar(rar4({"big.docx": bytes(5000)}), ArchiveLimits(max_member_bytes=1000))

    assert expansion.members == []
    assert [p.code for _, p in expansion.problems] == ["member-too-large"]


def test_expand_rar_too_many_members() -> None:
    with pytest.raises(FileProblem) as caught:
        expand_rar(rar4({f"{i}.txt": b"x" for i in range(5)}), ArchiveLimits(max_members=3))

    assert caught.value.code == "too-many-members"


def test_expand_rar_encrypted() -> None:
    with pytest.raises(FileProblem) as caught:
        expand_rar(rar4({"a.docx": b"secret"}, encrypted=True))

    assert caught.value.code == "encrypted-archive"


def test_expand_rar_broken() -> None:
    with pytest.raises(FileProblem) as caught:
        expand_rar(b"Rar!\x1a\x07\x01\x00" + bytes(64))

    assert caught.value.code == "unreadable-archive"


def test_evaluate_rar_of_reports() -> None:
    archive = rar4({"a.docx": builders.form2_report("广东甲公司"), "b.docx": builders.form2_report("广东乙公司")})
    raw = builders.mail(sender="江门市工业和信息化局 <gxj@jiangmen.example.org>", subject="报告",
                        message_id="<rar@jiangmen.example.org>",
                        attachments=[("报告.rar", archive, "application/x-rar-compressed")])

    evaluation = evaluate(parse_message(raw), CAMPAIGN, received=RECEIVED, own_addresses=frozenset())

    assert evaluation.decision == "accepted"
    assert evaluation.reports("form2") == 2


@settings(max_examples=100, deadline=5000, derandomize=True, database=None)
@given(position=st.integers(min_value=0, max_value=200), value=st.integers(min_value=0, max_value=255))
def test_expand_rar_damaged_byte_classified(position: int, value: int) -> None:
    data = bytearray(rar4({"a.docx": builders.form2_report("广东甲公司")[:150], "b.txt": b"hello"}))
    data[position % len(data)] = value

    try:
        expansion = expand_rar(bytes(data))
    except FileProblem as problem:
        assert problem.code in ("unreadable-archive", "encrypted-archive", "too-many-members")
        return
    assert all(isinstance(member.data, bytes) for member in expansion.members)


def test_expand_rar_without_libarchive(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("parsers.rar.libarchive", None)

    with pytest.raises(FileProblem) as caught:
        expand_rar(rar4({"a.txt": b"x"}))

    assert caught.value.code == "unsupported-format"
    assert caught.value.detail == {"format": "rar"}
