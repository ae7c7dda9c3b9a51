"""Tests for parsers.tnef.expand_tnef and TNEF sniffing, on winmail.dat streams built here.

The writer below follows the TNEF layout that tnefparse 1.4.0 reads: a 4-byte signature
0x223E9F78 and a 2-byte key, then attributes of 1 byte level (1 message, 2 attachment),
a 4-byte id (type << 16 | id), a 4-byte length, the data and a 2-byte checksum (sum of
the data bytes mod 65536), all little-endian. Each attachment starts with
attAttachRenddata, as Outlook writes it.
"""

from __future__ import annotations

import struct
from datetime import datetime, timedelta, timezone
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import pytest

import parsers.tnef
from parsers.archive import ArchiveLimits, Member
from parsers.problems import FileProblem
from parsers.sniff import FileKind, sniff
from parsers.tnef import expand_tnef
from parsers.mime import parse_message
from rules.campaign import load_campaign
from rules.evaluate import evaluate
from tests.builders import form1_row, form1_workbook, form2_report, mail
from tests.support import REPO

SIGNATURE = 0x223E9F78
LEVEL_MESSAGE = 1
LEVEL_ATTACHMENT = 2

ATT_TNEF_VERSION = 0x00089006
ATT_OEM_CODEPAGE = 0x00069007
ATT_MESSAGE_CLASS = 0x00078008
ATT_ATTACH_REND_DATA = 0x00069002
ATT_ATTACH_TITLE = 0x00018010
ATT_ATTACH_DATA = 0x0006800F
ATT_ATTACHMENT = 0x00069005

PT_UNICODE = 0x001F
PR_ATTACH_LONG_FILENAME = 0x3707

#: attAttachRenddata body: file attachment (type 1), position, render width and height, flags.
REND_DATA = struct.pack("<HIHHI", 1, 0xFFFFFFFF, 0, 0, 0)


@dataclass(frozen=True)
class Attached:
    """One file for the writer: its attAttachTitle bytes, data and optional MAPI long name."""

    title: bytes
    data: bytes
    long_name: str | None = None


def tnef_attribute(level: int, attribute_id: int, data: bytes, *, checksum: int | None = None) -> bytes:
    """Return one attribute with a correct checksum unless `checksum` overrides it."""
    if checksum is None:
        checksum = sum(data) & 0xFFFF
    return struct.pack("<BII", level, attribute_id, len(data)) + data + struct.pack("<H", checksum)


def mapi_long_filename(name: str) -> bytes:
    """Return an attAttachment MAPI property block holding only PR_ATTACH_LONG_FILENAME."""
    value = (name + "\x00").encode("utf-16-le")
    padding = b"\x00" * (-len(value) % 4)
    return struct.pack("<IHHII", 1, PT_UNICODE, PR_ATTACH_LONG_FILENAME, 1, len(value)) + value + padding


def attachment_attributes(attached: Attached) -> bytes:
    """Return the attributes of one attachment in Outlook's order."""
    parts = [
        tnef_attribute(LEVEL_ATTACHMENT, ATT_ATTACH_REND_DATA, REND_DATA),
        tnef_attribute(LEVEL_ATTACHMENT, ATT_ATTACH_TITLE, attached.title + b"\x00"),
        tnef_attribute(LEVEL_ATTACHMENT, ATT_ATTACH_DATA, attached.data),
    ]
    if attached.long_name is not None:
        parts.append(tnef_attribute(LEVEL_ATTACHMENT, ATT_ATTACHMENT, mapi_long_filename(attached.long_name)))
    return b"".join(parts)


def winmail(attachments: Sequence[Attached], *, codepage: int = 936) -> bytes:
    """Return a TNEF stream as Chinese Outlook writes one: version, code page, class, then the files."""
    header = struct.pack("<IH", SIGNATURE, 0x1234)
    message = (tnef_attribute(LEVEL_MESSAGE, ATT_TNEF_VERSION, struct.pack("<I", 0x00010000))
               + tnef_attribute(LEVEL_MESSAGE, ATT_OEM_CODEPAGE, struct.pack("<II", codepage, 0))
               + tnef_attribute(LEVEL_MESSAGE, ATT_MESSAGE_CLASS, b"IPM.Microsoft Mail.Note\x00"))
    return header + message + b"".join(attachment_attributes(a) for a in attachments)


@pytest.fixture(scope="module")
def workbook() -> bytes:
    return form1_workbook([form1_row(2), form1_row(3)])


@pytest.fixture(scope="module")
def report() -> bytes:
    return form2_report("佛山市恒丰五金制品有限公司")


# ---- Members ----


def test_tnef_one_workbook(workbook: bytes) -> None:
    expansion = expand_tnef(winmail([Attached("附件1.xlsx".encode("gbk"), workbook)]))

    assert expansion.problems == []
    assert expansion.members == [Member(name="附件1.xlsx", data=workbook)]
    assert sniff(expansion.members[0].data) == FileKind.XLSX


def test_tnef_two_attachments_in_order(workbook: bytes, report: bytes) -> None:
    data = winmail([Attached(b"form1.xlsx", workbook), Attached(b"report.docx", report)])

    expansion = expand_tnef(data)

    assert [m.name for m in expansion.members] == ["form1.xlsx", "report.docx"]
    assert expansion.members[0].data == workbook
    assert expansion.members[1].data == report
    assert sniff(expansion.members[1].data) == FileKind.DOCX
    assert expansion.problems == []


def test_tnef_no_attachments() -> None:
    expansion = expand_tnef(winmail([]))

    assert expansion.members == []
    assert expansion.problems == []


def test_tnef_data_ending_in_nul_kept(workbook: bytes) -> None:
    # A zip ends with its 2-byte comment length 00 00, which a decoder that strips NUL padding would lose.
    assert workbook.endswith(b"\x00\x00")

    expansion = expand_tnef(winmail([Attached(b"a.xlsx", workbook)]))

    assert expansion.members[0].data == workbook


# ---- Names ----


def test_tnef_long_name_preferred(workbook: bytes) -> None:
    attached = Attached(b"FORM1~1.XLS", workbook, long_name="附件1：上云上平台实施项目情况汇总表.xlsx")

    expansion = expand_tnef(winmail([attached]))

    assert [m.name for m in expansion.members] == ["附件1：上云上平台实施项目情况汇总表.xlsx"]


def test_tnef_gbk_title_with_codepage(workbook: bytes) -> None:
    title = "佛山市恒丰五金制品有限公司（张喆）.xlsx".encode("gb18030")

    expansion = expand_tnef(winmail([Attached(title, workbook)], codepage=936))

    assert [m.name for m in expansion.members] == ["佛山市恒丰五金制品有限公司（张喆）.xlsx"]


def test_tnef_utf8_title_without_matching_codepage(workbook: bytes) -> None:
    # A UTF-8 title under code page 936 does not decode as GBK, so detection decodes it.
    title = "汇总表.xlsx".encode("utf-8")

    expansion = expand_tnef(winmail([Attached(title, workbook)], codepage=936))

    assert [m.name for m in expansion.members] == ["汇总表.xlsx"]


def test_tnef_path_in_title_reduced(workbook: bytes) -> None:
    expansion = expand_tnef(winmail([Attached(b"C:\\Users\\chen\\..\\form1.xlsx", workbook)]))

    assert [m.name for m in expansion.members] == ["form1.xlsx"]


def test_tnef_missing_name_numbered(workbook: bytes, report: bytes) -> None:
    expansion = expand_tnef(winmail([Attached(b"", workbook), Attached(b"..", report)]))

    assert [m.name for m in expansion.members] == ["（未命名附件1）", "（未命名附件2）"]


# ---- Limits ----


def test_tnef_member_over_size_limit(workbook: bytes, report: bytes) -> None:
    limit = max(len(workbook), len(report)) + 1
    large = b"\x01" * (limit + 1)
    data = winmail([Attached(b"form1.xlsx", workbook), Attached(b"big.bin", large), Attached(b"r.docx", report)])

    expansion = expand_tnef(data, ArchiveLimits(max_member_bytes=limit))

    assert [m.name for m in expansion.members] == ["form1.xlsx", "r.docx"]
    assert len(expansion.problems) == 1
    name, problem = expansion.problems[0]
    assert name == "big.bin"
    assert problem.code == "member-too-large"
    assert problem.detail == {"member": "big.bin", "size": limit + 1, "limit": limit}


def test_tnef_large_attachment_decoded() -> None:
    # 40 MB stays within the decoder process's memory limit.
    large = bytes(range(256)) * (40 * 4096)

    expansion = expand_tnef(winmail([Attached(b"scan.pdf", large)]))

    assert [m.name for m in expansion.members] == ["scan.pdf"]
    assert expansion.members[0].data == large


def test_tnef_member_at_size_limit_kept(workbook: bytes) -> None:
    expansion = expand_tnef(winmail([Attached(b"a.xlsx", workbook)]), ArchiveLimits(max_member_bytes=len(workbook)))

    assert [m.name for m in expansion.members] == ["a.xlsx"]


def test_tnef_total_over_limit(workbook: bytes) -> None:
    data = winmail([Attached(b"a.xlsx", workbook), Attached(b"b.xlsx", workbook)])

    expansion = expand_tnef(data, ArchiveLimits(max_total_bytes=len(workbook) + 1))

    assert [m.name for m in expansion.members] == ["a.xlsx"]
    assert [(name, problem.code) for name, problem in expansion.problems] == [("b.xlsx", "archive-too-large")]


def test_tnef_too_many_members() -> None:
    data = winmail([Attached(f"{i}.txt".encode(), b"x") for i in range(4)])

    with pytest.raises(FileProblem) as caught:
        expand_tnef(data, ArchiveLimits(max_members=3))

    assert caught.value.code == "too-many-members"
    assert caught.value.detail == {"count": 4, "limit": 3}


def test_tnef_many_small_attributes_rejected() -> None:
    # Many small attributes would make tnefparse copy the stream once per attribute.
    padding = b"".join(tnef_attribute(LEVEL_MESSAGE, 0x00060001, b"xy") for _ in range(5000))

    with pytest.raises(FileProblem) as caught:
        expand_tnef(winmail([Attached(b"a.txt", b"x")]) + padding)

    assert caught.value.code == "unreadable-archive"
    assert "attributes" in caught.value.detail["reason"]


# ---- Broken streams ----


def test_tnef_truncated_rejected(workbook: bytes) -> None:
    data = winmail([Attached(b"form1.xlsx", workbook)])

    with pytest.raises(FileProblem) as caught:
        expand_tnef(data[: len(data) - 100])

    assert caught.value.code == "unreadable-archive"
    assert "declares" in caught.value.detail["reason"]


@pytest.mark.parametrize("data", [
    pytest.param(b"", id="empty"),
    pytest.param(b"\x78\x9f\x3e", id="short-signature"),
    pytest.param(b"PK\x03\x04" + b"\x00" * 40, id="zip-signature"),
    pytest.param(struct.pack("<IH", SIGNATURE, 1) + b"\x01\x02", id="cut-in-header"),
    pytest.param(struct.pack("<IH", SIGNATURE, 1) + b"\xff" * 64, id="garbage-lengths"),
])
def test_tnef_broken_stream_rejected(data: bytes) -> None:
    with pytest.raises(FileProblem) as caught:
        expand_tnef(data)

    assert caught.value.code == "unreadable-archive"
    assert caught.value.detail["reason"]


def test_tnef_attachment_before_start_rejected(workbook: bytes) -> None:
    # Without attAttachRenddata tnefparse raises UnboundLocalError.
    stream = struct.pack("<IH", SIGNATURE, 1) + tnef_attribute(LEVEL_ATTACHMENT, ATT_ATTACH_DATA, workbook)

    with pytest.raises(FileProblem) as caught:
        expand_tnef(stream)

    assert caught.value.code == "unreadable-archive"
    assert "before any attachment" in caught.value.detail["reason"]


def test_tnef_library_error_wrapped() -> None:
    # A string attribute before attOemCodepage makes tnefparse decode with no code page (TypeError).
    stream = struct.pack("<IH", SIGNATURE, 1) + tnef_attribute(LEVEL_MESSAGE, ATT_MESSAGE_CLASS, b"IPM.Note\x00")

    with pytest.raises(FileProblem) as caught:
        expand_tnef(stream)

    assert caught.value.code == "unreadable-archive"
    assert caught.value.detail["reason"].startswith("TypeError")


def test_tnef_endless_property_count_times_out(monkeypatch: pytest.MonkeyPatch) -> None:
    # tnefparse 1.4.0 iterates once per declared MAPI property, here about 4 billion times.
    monkeypatch.setattr(parsers.tnef, "_TIMEOUT_SECONDS", 2.0)
    block = struct.pack("<IHH", 0xFFFFFFF0, PT_UNICODE, PR_ATTACH_LONG_FILENAME) + b"\x00" * 12
    data = winmail([Attached(b"a.xlsx", b"data")]) + tnef_attribute(LEVEL_ATTACHMENT, ATT_ATTACHMENT, block)
    outcome: list[BaseException] = []

    def expand() -> None:
        try:
            expand_tnef(data)
        except BaseException as err:  # noqa: BLE001 - the assertions below inspect it
            outcome.append(err)

    worker = threading.Thread(target=expand, daemon=True)
    worker.start()
    worker.join(timeout=30)

    assert not worker.is_alive()
    assert len(outcome) == 1
    assert isinstance(outcome[0], FileProblem)
    assert outcome[0].code == "unreadable-archive"
    assert "timed out" in outcome[0].detail["reason"]


def test_tnef_checksum_mismatch_member_reported(workbook: bytes, report: bytes) -> None:
    broken = (tnef_attribute(LEVEL_ATTACHMENT, ATT_ATTACH_REND_DATA, REND_DATA)
              + tnef_attribute(LEVEL_ATTACHMENT, ATT_ATTACH_TITLE, b"bad.xlsx\x00")
              + tnef_attribute(LEVEL_ATTACHMENT, ATT_ATTACH_DATA, workbook, checksum=(sum(workbook) + 1) & 0xFFFF))
    data = winmail([Attached(b"good.docx", report)]) + broken

    expansion = expand_tnef(data)

    assert [m.name for m in expansion.members] == ["good.docx"]
    assert [(name, problem.code) for name, problem in expansion.problems] == [("bad.xlsx", "unreadable-member")]


def test_tnef_message_checksum_mismatch_ignored(workbook: bytes) -> None:
    data = bytearray(winmail([Attached(b"a.xlsx", workbook)]))
    # The attTnefVersion checksum sits right after its 4 data bytes.
    checksum_at = 6 + 9 + 4
    data[checksum_at] ^= 0xFF

    expansion = expand_tnef(bytes(data))

    assert [m.name for m in expansion.members] == ["a.xlsx"]
    assert expansion.problems == []


# ---- Sniffing ----


def test_sniff_tnef(workbook: bytes) -> None:
    assert sniff(winmail([Attached(b"a.xlsx", workbook)])) == FileKind.TNEF


def test_sniff_tnef_without_attachments() -> None:
    assert sniff(winmail([])) == FileKind.TNEF


def test_sniff_tnef_signature_only_at_start() -> None:
    assert sniff(b"\x00" + struct.pack("<I", SIGNATURE) + b"\x00" * 32) != FileKind.TNEF


# ---- Through the decision ----

CAMPAIGN = load_campaign(REPO / "rules" / "notice_2020_858.toml")
RECEIVED = datetime(2020, 9, 15, 10, tzinfo=timezone(timedelta(hours=8)))


def _winmail_mail(data: bytes) -> bytes:
    return mail(sender="陈建华 <chenjh@hyzn.example.com>", subject="汇总表", message_id="<tnef@hyzn.example.com>",
                attachments=[("winmail.dat", data, "application/ms-tnef")])


def test_evaluate_form_inside_winmail_accepted(workbook: bytes) -> None:
    raw = _winmail_mail(winmail([Attached(title="附件1.xlsx".encode("gbk"), data=workbook)]))

    evaluation = evaluate(parse_message(raw), CAMPAIGN, received=RECEIVED, own_addresses=frozenset())

    assert evaluation.decision == "accepted"
    assert evaluation.rows("form1") == 2
    assert [f.name for f in evaluation.passed()] == ["winmail.dat/附件1.xlsx"]


def test_evaluate_broken_winmail_asks_for_html_mail(workbook: bytes) -> None:
    broken = winmail([Attached(title=b"a.xlsx", data=workbook)])[:60]

    evaluation = evaluate(parse_message(_winmail_mail(broken)), CAMPAIGN, received=RECEIVED,
                          own_addresses=frozenset())

    assert evaluation.decision == "rejected"
    finding = evaluation.returned()[0].findings[0]
    assert finding.code == "unreadable-tnef"
    assert "HTML 或纯文本" in finding.message()
