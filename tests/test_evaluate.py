"""Tests for rules.evaluate.evaluate on whole mails built with the test builders."""

from __future__ import annotations

import base64
import io
import struct
import zipfile
from datetime import datetime
from pathlib import Path
from typing import Any

import docx
import msoffcrypto
import openpyxl
import pytest

from parsers.archive import ArchiveLimits
from parsers.mime import parse_message
from parsers.sniff import FileKind
from rules.campaign import Campaign, load_campaign
from rules.evaluate import (
    ACCEPTED,
    IGNORED,
    PARTIAL,
    PASSED,
    REJECTED,
    RETURNED,
    SKIPPED,
    Evaluation,
    Limits,
    evaluate,
)
from tests.builders import (
    DOCX_TYPE,
    SUBMISSION_ADDRESS,
    XLSX_TYPE,
    ZIP_TYPE,
    auto_reply,
    bounce,
    form1_row,
    form1_workbook,
    form2_report,
    form3_row,
    form3_workbook,
    forwarded,
    inline_image_png,
    mail,
)

CAMPAIGN_FILE = Path(__file__).resolve().parent.parent / "rules" / "notice_2020_858.toml"
OWN_ADDRESSES = frozenset({SUBMISSION_ADDRESS})
PROVIDER = "广东星河数联科技有限公司 <xinghe@xinghe.example.cn>"
CITY = "佛山市工业和信息化局 <fsgxj@foshan.example.gov.cn>"
ON_TIME = "2020-09-10T09:15:20+08:00"


@pytest.fixture(scope="module")
def campaign() -> Campaign:
    return load_campaign(CAMPAIGN_FILE)


@pytest.fixture(scope="module")
def good_form1() -> bytes:
    return form1_workbook([form1_row(2), form1_row(3)])


@pytest.fixture(scope="module")
def bad_form1() -> bytes:
    return form1_workbook([form1_row(2, 申领年份=2017)])


@pytest.fixture(scope="module")
def good_report() -> bytes:
    return form2_report("佛山市顺德区恒丰五金制品有限公司")


def _evaluate(raw: bytes, campaign: Campaign, received: str = ON_TIME, **options: Any) -> Evaluation:
    return evaluate(parse_message(raw), campaign, received=datetime.fromisoformat(received),
                    own_addresses=OWN_ADDRESSES, **options)


def _submission(*attachments: tuple[str, bytes, str], sender: str = PROVIDER, **options: Any) -> bytes:
    return mail(sender=sender, subject="报送附件1汇总表", message_id="submission@xinghe.example.cn",
                attachments=attachments, **options)


def _zip(members: dict[str, bytes]) -> bytes:
    """Return a zip written by zipfile, so member names may contain '../'."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def _with_encrypted_flag(data: bytes) -> bytes:
    """Return the zip `data` with general-purpose bit 0 (encrypted) set on every member."""
    patched = bytearray(data)
    end = data.rindex(b"PK\x05\x06")
    count, _size, position = struct.unpack_from("<HII", data, end + 10)
    for _ in range(count):
        name_length, extra_length, comment_length = struct.unpack_from("<HHH", data, position + 28)
        local, = struct.unpack_from("<I", data, position + 42)
        for flags_at in (position + 8, local + 6):
            flags, = struct.unpack_from("<H", data, flags_at)
            struct.pack_into("<H", patched, flags_at, flags | 0x1)
        position += 46 + name_length + extra_length + comment_length
    return bytes(patched)


def _encrypted(data: bytes) -> bytes:
    """Return an OOXML file saved with an open password, as Excel and Word do."""
    output = io.BytesIO()
    msoffcrypto.OfficeFile(io.BytesIO(data)).encrypt("123456", output)
    return output.getvalue()


def _codes(evaluation: Evaluation) -> list[str]:
    return [f.code for f in evaluation.findings]


def _file_codes(evaluation: Evaluation) -> dict[str, list[str]]:
    return {f.name: [finding.code for finding in f.findings] for f in evaluation.files}


# --- decisions --------------------------------------------------------------


def test_evaluate_accepted(campaign: Campaign, good_form1: bytes) -> None:
    evaluation = _evaluate(_submission(("附件1.xlsx", good_form1, XLSX_TYPE)), campaign)

    assert evaluation.decision == ACCEPTED
    assert evaluation.late is False
    assert evaluation.findings == []
    assert [f.status for f in evaluation.files] == [PASSED]
    assert evaluation.rows("form1") == 2


def test_evaluate_accepted_form3_and_reports(campaign: Campaign, good_report: bytes) -> None:
    archive = _zip({"佛山市恒丰.docx": good_report, "中山市宏达.docx": form2_report("中山市宏达灯饰有限公司")})
    raw = _submission(("附件3.xlsx", form3_workbook([form3_row(2)]), XLSX_TYPE),
                      ("附件2.zip", archive, ZIP_TYPE), sender=CITY)
    evaluation = _evaluate(raw, campaign)

    assert evaluation.decision == ACCEPTED
    assert evaluation.rows("form3") == 1
    assert evaluation.reports("form2") == 2


def test_evaluate_partial(campaign: Campaign, good_form1: bytes, bad_form1: bytes) -> None:
    raw = _submission(("附件1-第一批.xlsx", good_form1, XLSX_TYPE), ("附件1-第二批.xlsx", bad_form1, XLSX_TYPE))
    evaluation = _evaluate(raw, campaign)

    assert evaluation.decision == PARTIAL
    assert [f.name for f in evaluation.passed()] == ["附件1-第一批.xlsx"]
    assert [f.name for f in evaluation.returned()] == ["附件1-第二批.xlsx"]
    assert _file_codes(evaluation)["附件1-第二批.xlsx"] == ["invalid-year"]
    assert evaluation.rows("form1") == 2


def test_evaluate_rejected_failing_form(campaign: Campaign, bad_form1: bytes) -> None:
    evaluation = _evaluate(_submission(("附件1.xlsx", bad_form1, XLSX_TYPE)), campaign)

    assert evaluation.decision == REJECTED
    assert [f.status for f in evaluation.files] == [RETURNED]
    assert evaluation.rows("form1") == 0


def test_evaluate_rejected_unrelated_workbook(campaign: Campaign) -> None:
    workbook = io.BytesIO()
    book = openpyxl.Workbook()
    book.active.append(["姓名", "部门"])
    book.save(workbook)
    evaluation = _evaluate(_submission(("通讯录.xlsx", workbook.getvalue(), XLSX_TYPE)), campaign)

    assert evaluation.decision == REJECTED
    assert _file_codes(evaluation) == {"通讯录.xlsx": ["not-a-form"]}


def test_evaluate_rejected_unrelated_document(campaign: Campaign) -> None:
    document = docx.Document()
    document.add_paragraph("关于召开会议的通知")
    buffer = io.BytesIO()
    document.save(buffer)
    evaluation = _evaluate(_submission(("通知.docx", buffer.getvalue(), DOCX_TYPE)), campaign)

    assert evaluation.decision == REJECTED
    assert _file_codes(evaluation) == {"通知.docx": ["not-a-report"]}


def test_evaluate_report_missing_section(campaign: Campaign) -> None:
    report = form2_report("中山市宏达灯饰有限公司", omit=["三、存在问题"])
    evaluation = _evaluate(_submission(("附件2.docx", report, DOCX_TYPE), sender=CITY), campaign)

    assert evaluation.decision == REJECTED
    assert _file_codes(evaluation) == {"附件2.docx": ["missing-section"]}


def test_evaluate_names_and_mime_types_do_not_matter(campaign: Campaign, good_form1: bytes) -> None:
    """A workbook sent as report.docx with a wrong MIME type is read by its content."""
    evaluation = _evaluate(_submission(("report.docx", good_form1, "application/octet-stream")), campaign)

    assert evaluation.decision == ACCEPTED
    assert evaluation.files[0].kind == FileKind.XLSX


# --- no attachment and non-forms --------------------------------------------


def test_evaluate_no_attachment(campaign: Campaign) -> None:
    evaluation = _evaluate(_submission(), campaign)

    assert evaluation.decision == REJECTED
    assert _codes(evaluation) == ["no-attachment"]
    assert evaluation.files == []


def test_evaluate_no_attachment_message(campaign: Campaign) -> None:
    evaluation = _evaluate(_submission(), campaign)

    assert "没有附件" in evaluation.findings[0].message()


def test_evaluate_only_inline_image_is_no_attachment(campaign: Campaign) -> None:
    """A mail whose only part besides the text is its signature image."""
    image = base64.b64encode(inline_image_png()).decode("ascii")
    raw = ("From: xinghe@xinghe.example.cn\r\nTo: gyhlw@gdei.gov.cn\r\nSubject: 附件1\r\n"
           "Message-ID: <sig@xinghe.example.cn>\r\nMIME-Version: 1.0\r\n"
           'Content-Type: multipart/related; boundary="r"\r\n\r\n'
           "--r\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>附件见后<img src=\"cid:sig\"></p>\r\n"
           "--r\r\nContent-Type: image/png\r\nContent-Disposition: inline; filename=\"sig.png\"\r\n"
           "Content-ID: <sig>\r\nContent-Transfer-Encoding: base64\r\n\r\n" + image + "\r\n--r--\r\n"
           ).encode("utf-8")
    evaluation = _evaluate(raw, campaign)

    assert evaluation.decision == REJECTED
    assert [f.status for f in evaluation.files] == [SKIPPED]
    assert _codes(evaluation) == ["no-attachment"]


def test_evaluate_only_text_note_is_no_form(campaign: Campaign) -> None:
    evaluation = _evaluate(_submission(("说明.txt", "附件稍后补发。".encode("gbk"), "text/plain")), campaign)

    assert evaluation.decision == REJECTED
    assert [f.status for f in evaluation.files] == [SKIPPED]
    assert _codes(evaluation) == ["no-form"]


def test_evaluate_damaged_rar_unreadable(campaign: Campaign) -> None:
    rar = b"Rar!\x1a\x07\x01\x00" + bytes(64)
    evaluation = _evaluate(_submission(("附件2.rar", rar, "application/x-rar-compressed")), campaign)

    assert evaluation.decision == REJECTED
    assert _file_codes(evaluation) == {"附件2.rar": ["unreadable-archive"]}


def test_evaluate_pdf_scan_only_is_no_form(campaign: Campaign) -> None:
    pdf = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n"
    evaluation = _evaluate(_submission(("附件1（盖章扫描件）.pdf", pdf, "application/pdf")), campaign)

    assert evaluation.decision == REJECTED
    assert [f.status for f in evaluation.files] == [SKIPPED]
    assert _codes(evaluation) == ["no-form"]


def test_evaluate_inline_workbook_accepted(campaign: Campaign, good_form1: bytes) -> None:
    """Apple Mail marks attachments inline, but a workbook is read all the same."""
    raw = _submission(("附件1.xlsx", good_form1, XLSX_TYPE)).replace(
        b"Content-Disposition: attachment;", b"Content-Disposition: inline;")
    evaluation = _evaluate(raw, campaign)

    assert evaluation.decision == ACCEPTED
    assert [f.status for f in evaluation.files] == [PASSED]


def test_evaluate_image_beside_form_skipped(campaign: Campaign, good_form1: bytes) -> None:
    raw = _submission(("附件1.xlsx", good_form1, XLSX_TYPE), ("盖章页.png", inline_image_png(), "image/png"))
    evaluation = _evaluate(raw, campaign)

    assert evaluation.decision == ACCEPTED
    assert [f.status for f in evaluation.files] == [PASSED, SKIPPED]


# --- encrypted and damaged files --------------------------------------------


def test_evaluate_encrypted_workbook(campaign: Campaign, good_form1: bytes) -> None:
    evaluation = _evaluate(_submission(("附件1.xlsx", _encrypted(good_form1), XLSX_TYPE)), campaign)

    assert evaluation.decision == REJECTED
    assert evaluation.files[0].kind == FileKind.ENCRYPTED_OFFICE
    assert _file_codes(evaluation) == {"附件1.xlsx": ["encrypted-file"]}


def test_evaluate_encrypted_report_in_zip(campaign: Campaign, good_report: bytes) -> None:
    archive = _zip({"佛山市恒丰.docx": _encrypted(good_report), "中山市宏达.docx": good_report})
    evaluation = _evaluate(_submission(("附件2.zip", archive, ZIP_TYPE), sender=CITY), campaign)

    assert evaluation.decision == PARTIAL
    assert _file_codes(evaluation)["附件2.zip/佛山市恒丰.docx"] == ["encrypted-file"]
    assert _file_codes(evaluation)["附件2.zip/中山市宏达.docx"] == []


def test_evaluate_encrypted_file_message(campaign: Campaign, good_form1: bytes) -> None:
    evaluation = _evaluate(_submission(("附件1.xlsx", _encrypted(good_form1), XLSX_TYPE)), campaign)

    assert "密码" in evaluation.files[0].findings[0].message()


def test_evaluate_corrupt_workbook(campaign: Campaign, good_form1: bytes) -> None:
    """An xlsx whose sheet XML is cut short cannot be read."""
    source = zipfile.ZipFile(io.BytesIO(good_form1))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as target:
        for info in source.infolist():
            content = source.read(info)
            if info.filename == "xl/worksheets/sheet1.xml":
                content = content[: len(content) // 2]
            target.writestr(info.filename, content)
    evaluation = _evaluate(_submission(("附件1.xlsx", buffer.getvalue(), XLSX_TYPE)), campaign)

    assert evaluation.decision == REJECTED
    assert _file_codes(evaluation) == {"附件1.xlsx": ["unreadable-file"]}


# --- archives ---------------------------------------------------------------


def test_evaluate_zip_with_unsafe_member_partial(campaign: Campaign, good_report: bytes) -> None:
    archive = _zip({"佛山市恒丰.docx": good_report, "../中山市宏达.docx": good_report})
    evaluation = _evaluate(_submission(("附件2.zip", archive, ZIP_TYPE), sender=CITY), campaign)

    assert evaluation.decision == PARTIAL
    assert _file_codes(evaluation)["附件2.zip/../中山市宏达.docx"] == ["unsafe-path"]
    assert evaluation.reports("form2") == 1


def test_evaluate_zip_with_only_unsafe_member_rejected(campaign: Campaign, good_report: bytes) -> None:
    archive = _zip({"../中山市宏达.docx": good_report})
    evaluation = _evaluate(_submission(("附件2.zip", archive, ZIP_TYPE), sender=CITY), campaign)

    assert evaluation.decision == REJECTED
    assert _file_codes(evaluation) == {"附件2.zip/../中山市宏达.docx": ["unsafe-path"]}


def test_evaluate_zip_with_failing_report_partial(campaign: Campaign, good_report: bytes) -> None:
    archive = _zip({"佛山市恒丰.docx": good_report,
                    "中山市宏达.docx": form2_report("中山市宏达灯饰有限公司", empty=["四、工作计划"])})
    evaluation = _evaluate(_submission(("附件2.zip", archive, ZIP_TYPE), sender=CITY), campaign)

    assert evaluation.decision == PARTIAL
    assert _file_codes(evaluation)["附件2.zip/中山市宏达.docx"] == ["empty-section"]


def test_evaluate_zip_bomb_member(campaign: Campaign, good_report: bytes) -> None:
    archive = _zip({"佛山市恒丰.docx": good_report, "bomb.docx": bytes(512 * 1024)})
    evaluation = _evaluate(_submission(("附件2.zip", archive, ZIP_TYPE), sender=CITY), campaign)

    assert evaluation.decision == PARTIAL
    assert _file_codes(evaluation)["附件2.zip/bomb.docx"] == ["suspicious-ratio"]


def test_evaluate_zip_member_too_large(campaign: Campaign, good_report: bytes) -> None:
    limits = Limits(archive=ArchiveLimits(max_member_bytes=len(good_report) - 1))
    archive = _zip({"佛山市恒丰.docx": good_report})
    evaluation = _evaluate(_submission(("附件2.zip", archive, ZIP_TYPE), sender=CITY), campaign, limits=limits)
    finding = evaluation.files[0].findings[0]

    assert evaluation.decision == REJECTED
    assert finding.code == "member-too-large"
    assert "limit_mb" in finding.params


def test_evaluate_broken_zip_rejected(campaign: Campaign) -> None:
    raw = _submission(("附件2.zip", b"PK\x03\x04 not really a zip", ZIP_TYPE), sender=CITY)
    evaluation = _evaluate(raw, campaign)

    assert evaluation.decision == REJECTED
    assert _file_codes(evaluation) == {"附件2.zip": ["unreadable-archive"]}


def test_evaluate_zip_of_notes_is_empty_archive(campaign: Campaign) -> None:
    archive = _zip({"说明.txt": "见附件".encode("utf-8")})
    evaluation = _evaluate(_submission(("附件2.zip", archive, ZIP_TYPE), sender=CITY), campaign)

    assert evaluation.decision == REJECTED
    assert "empty-archive" in _file_codes(evaluation)["附件2.zip"]


def test_evaluate_password_zip(campaign: Campaign, good_report: bytes) -> None:
    archive = _with_encrypted_flag(_zip({"佛山市恒丰.docx": good_report}))
    evaluation = _evaluate(_submission(("附件2.zip", archive, ZIP_TYPE), sender=CITY), campaign)
    codes = [code for codes in _file_codes(evaluation).values() for code in codes]

    assert evaluation.decision == REJECTED
    assert "encrypted-archive" in codes


def test_evaluate_too_many_members(campaign: Campaign) -> None:
    archive = _zip({f"报告{i}.docx": b"x" for i in range(4)})
    limits = Limits(archive=ArchiveLimits(max_members=3))
    evaluation = _evaluate(_submission(("附件2.zip", archive, ZIP_TYPE), sender=CITY), campaign, limits=limits)

    assert evaluation.decision == REJECTED
    assert _file_codes(evaluation) == {"附件2.zip": ["too-many-members"]}


def test_evaluate_nested_zip(campaign: Campaign, good_report: bytes) -> None:
    inner = _zip({"佛山市恒丰.docx": good_report})
    outer = _zip({"佛山市.zip": inner})
    evaluation = _evaluate(_submission(("附件2.zip", outer, ZIP_TYPE), sender=CITY), campaign)

    assert evaluation.decision == ACCEPTED
    assert [f.name for f in evaluation.files] == ["附件2.zip/佛山市.zip/佛山市恒丰.docx"]


def test_evaluate_zip_too_deep(campaign: Campaign, good_report: bytes) -> None:
    archive = _zip({"r.docx": good_report})
    for level in range(3):
        archive = _zip({f"level{level}.zip": archive})
    evaluation = _evaluate(_submission(("附件2.zip", archive, ZIP_TYPE), sender=CITY), campaign)
    codes = [code for codes in _file_codes(evaluation).values() for code in codes]

    assert evaluation.decision == REJECTED
    assert "archive-too-deep" in codes


# --- attachment count -------------------------------------------------------


def test_evaluate_too_many_attachments_finding(campaign: Campaign, good_form1: bytes) -> None:
    raw = _submission(*[(f"附件1-{i}.xlsx", good_form1, XLSX_TYPE) for i in range(4)])
    evaluation = _evaluate(raw, campaign, limits=Limits(max_attachments=3))

    assert _codes(evaluation) == ["too-many-attachments"]
    assert evaluation.findings[0].params == {"count": 4, "limit": 3}
    assert [f.name for f in evaluation.files] == ["附件1-0.xlsx", "附件1-1.xlsx", "附件1-2.xlsx"]


def test_evaluate_too_many_attachments_not_accepted(campaign: Campaign, good_form1: bytes) -> None:
    """Attachments past the limit are not checked, so the mail cannot be accepted as a whole."""
    raw = _submission(*[(f"附件1-{i}.xlsx", good_form1, XLSX_TYPE) for i in range(4)])
    evaluation = _evaluate(raw, campaign, limits=Limits(max_attachments=3))

    assert evaluation.decision == PARTIAL


def test_evaluate_attachments_at_limit(campaign: Campaign, good_form1: bytes) -> None:
    raw = _submission(*[(f"附件1-{i}.xlsx", good_form1, XLSX_TYPE) for i in range(3)])
    evaluation = _evaluate(raw, campaign, limits=Limits(max_attachments=3))

    assert evaluation.decision == ACCEPTED
    assert evaluation.findings == []


# --- forwarded mail ---------------------------------------------------------


def test_evaluate_forwarded_submission(campaign: Campaign) -> None:
    inner = mail(sender=CITY, subject="佛山市附件3检查表", message_id="inner@foshan.example.gov.cn",
                 attachments=[("附件3.xlsx", form3_workbook([form3_row(2)]), XLSX_TYPE)])
    raw = forwarded(sender="wangkun@gdei.example.gov.cn", subject="转发：佛山市附件3检查表", inner=inner,
                    message_id="fw@gdei.example.gov.cn")
    evaluation = _evaluate(raw, campaign)

    assert evaluation.decision == ACCEPTED
    assert evaluation.rows("form3") == 1


# --- ignored mail -----------------------------------------------------------


def test_evaluate_ignores_auto_reply(campaign: Campaign) -> None:
    evaluation = _evaluate(auto_reply(sender=PROVIDER, message_id="ooo@xinghe.example.cn"), campaign)

    assert evaluation.decision == IGNORED
    assert evaluation.ignore_reason is not None
    assert evaluation.files == []


def test_evaluate_ignores_bounce(campaign: Campaign) -> None:
    original = mail(sender=SUBMISSION_ADDRESS, to=PROVIDER, subject="回执", message_id="reply@gdei.gov.cn")
    evaluation = _evaluate(bounce(message_id="ndr@xinghe.example.cn", original=original), campaign)

    assert evaluation.decision == IGNORED


def test_evaluate_ignores_bounce_without_auto_submitted(campaign: Campaign) -> None:
    """Some servers send non-delivery reports without Auto-Submitted, but Return-Path <> still marks them."""
    original = mail(sender=SUBMISSION_ADDRESS, to=PROVIDER, subject="回执", message_id="reply@gdei.gov.cn")
    raw = bounce(message_id="ndr@xinghe.example.cn", original=original).replace(
        b"Auto-Submitted: auto-replied\r\n", b"", 1)
    evaluation = _evaluate(raw, campaign)

    assert b"Auto-Submitted" not in raw.split(b"\r\n\r\n", 1)[0]
    assert evaluation.decision == IGNORED


def test_evaluate_ignores_own_address(campaign: Campaign, good_form1: bytes) -> None:
    raw = _submission(("附件1.xlsx", good_form1, XLSX_TYPE), sender=f"广东省工业和信息化厅 <{SUBMISSION_ADDRESS}>")

    assert _evaluate(raw, campaign).decision == IGNORED


def test_evaluate_ignores_own_address_any_case(campaign: Campaign, good_form1: bytes) -> None:
    raw = _submission(("附件1.xlsx", good_form1, XLSX_TYPE), sender=SUBMISSION_ADDRESS.upper())

    assert _evaluate(raw, campaign).decision == IGNORED


@pytest.mark.parametrize("headers", [
    {"X-Intake-Decision": "accepted"},
    {"List-Id": "<gongye.lists.example.cn>"},
    {"List-Unsubscribe": "<mailto:leave@lists.example.cn>"},
    {"Precedence": "bulk"},
    {"Precedence": "junk"},
    {"Precedence": "list"},
    {"Auto-Submitted": "auto-generated"},
    {"X-Autoreply": "yes"},
], ids=["x-intake-decision", "list-id", "list-unsubscribe", "precedence-bulk", "precedence-junk",
        "precedence-list", "auto-submitted", "x-autoreply"])
def test_evaluate_ignored_by_header(headers: dict[str, str], campaign: Campaign,
                                    good_form1: bytes) -> None:
    evaluation = _evaluate(_submission(("附件1.xlsx", good_form1, XLSX_TYPE), headers=headers), campaign)

    assert evaluation.decision == IGNORED
    assert evaluation.files == []


def test_evaluate_auto_submitted_no_is_answered(campaign: Campaign, good_form1: bytes) -> None:
    raw = _submission(("附件1.xlsx", good_form1, XLSX_TYPE), headers={"Auto-Submitted": "no"})

    assert _evaluate(raw, campaign).decision == ACCEPTED


def test_evaluate_ignores_mailer_daemon(campaign: Campaign) -> None:
    raw = mail(sender="MAILER-DAEMON@xinghe.example.cn", subject="Delivery Status Notification",
               message_id="dsn@xinghe.example.cn")

    assert _evaluate(raw, campaign).decision == IGNORED


@pytest.mark.parametrize("subject", ["自动回复: 附件1已收到", "Automatic reply: 附件1", "自动答复：休假中"])
def test_evaluate_ignores_auto_reply_subject(subject: str, campaign: Campaign) -> None:
    raw = mail(sender=PROVIDER, subject=subject, message_id="subj@xinghe.example.cn")

    assert _evaluate(raw, campaign).decision == IGNORED


@pytest.mark.parametrize("encoding", ["gbk", "utf-8"])
def test_evaluate_ignores_raw_8bit_auto_reply_subject(encoding: str, campaign: Campaign) -> None:
    """An out-of-office reply whose Subject is raw 8-bit text and which has no Auto-Submitted header."""
    raw = ("From: chen@xinghe.example.cn\r\nTo: gyhlw@gdei.gov.cn\r\nSubject: 自动回复：我正在休假\r\n"
           "Message-ID: <ooo8@xinghe.example.cn>\r\nContent-Type: text/plain; charset=" + encoding + "\r\n\r\n"
           "您好，我于9月14日至9月25日休假。\r\n").encode(encoding)

    assert _evaluate(raw, campaign).decision == IGNORED


# --- late flag --------------------------------------------------------------


@pytest.mark.parametrize(("received", "late"), [
    ("2020-09-18T23:59:00+08:00", False),
    ("2020-09-18T23:59:59+08:00", False),
    ("2020-09-19T00:00:00+08:00", True),
    ("2020-09-18T15:59:59+00:00", False),
    ("2020-09-18T16:00:00+00:00", True),
])
def test_evaluate_late_form1(received: str, late: bool, campaign: Campaign, good_form1: bytes) -> None:
    evaluation = _evaluate(_submission(("附件1.xlsx", good_form1, XLSX_TYPE)), campaign, received=received)

    assert evaluation.late is late
    assert evaluation.decision == ACCEPTED
    assert ("late" in _codes(evaluation)) is late


def test_evaluate_late_form3_deadline_later(campaign: Campaign) -> None:
    """Form 3 is due 2020-09-21, so the morning of 09-19 is on time for it."""
    raw = _submission(("附件3.xlsx", form3_workbook([form3_row(2)]), XLSX_TYPE), sender=CITY)

    assert _evaluate(raw, campaign, received="2020-09-19T09:00:00+08:00").late is False
    assert _evaluate(raw, campaign, received="2020-09-22T00:00:00+08:00").late is True


def test_evaluate_late_report_in_zip(campaign: Campaign, good_report: bytes) -> None:
    raw = _submission(("附件2.zip", _zip({"佛山市恒丰.docx": good_report}), ZIP_TYPE), sender=CITY)

    assert _evaluate(raw, campaign, received="2020-09-21T23:59:59+08:00").late is False
    assert _evaluate(raw, campaign, received="2020-09-22T00:00:00+08:00").late is True


def test_evaluate_late_finding_message(campaign: Campaign, good_form1: bytes) -> None:
    evaluation = _evaluate(_submission(("附件1.xlsx", good_form1, XLSX_TYPE)), campaign,
                           received="2020-09-18T16:30:00+00:00")
    late = [f for f in evaluation.findings if f.code == "late"]

    assert len(late) == 1
    assert late[0].severity == "info"
    assert "9月18日 24:00" in late[0].message()
    assert "9月19日 00:30" in late[0].message()


def test_evaluate_late_is_not_rejection(campaign: Campaign, good_form1: bytes) -> None:
    evaluation = _evaluate(_submission(("附件1.xlsx", good_form1, XLSX_TYPE)), campaign,
                           received="2020-10-01T10:00:00+08:00")

    assert evaluation.decision == ACCEPTED
    assert evaluation.late is True
    assert evaluation.files[0].late is True


def test_evaluate_late_only_for_late_form(campaign: Campaign, good_form1: bytes) -> None:
    """On 09-20 Form 1 is late but Form 3 is not."""
    raw = _submission(("附件1.xlsx", good_form1, XLSX_TYPE),
                      ("附件3.xlsx", form3_workbook([form3_row(2)]), XLSX_TYPE), sender=CITY)
    evaluation = _evaluate(raw, campaign, received="2020-09-20T10:00:00+08:00")

    assert {f.name: f.late for f in evaluation.files} == {"附件1.xlsx": True, "附件3.xlsx": False}
    assert len([f for f in evaluation.findings if f.code == "late"]) == 1


def test_evaluate_rejected_file_not_late(campaign: Campaign) -> None:
    evaluation = _evaluate(_submission(), campaign, received="2020-10-01T10:00:00+08:00")

    assert evaluation.late is False


# --- messages ---------------------------------------------------------------


def test_evaluate_every_message_renders(campaign: Campaign, good_report: bytes, bad_form1: bytes) -> None:
    """Each finding that a problem file produces renders its template with all its values."""
    nested = _zip({"r.docx": good_report})
    for level in range(3):
        nested = _zip({f"level{level}.zip": nested})
    archive = _zip({
        "../越界.docx": good_report,
        "bomb.docx": bytes(16 * 1024),
        "big.docx": good_report,
        "notes.txt": b"notes",
    })
    attachments = [
        ("附件1.xlsx", bad_form1, XLSX_TYPE),
        ("加密.xlsx", _encrypted(bad_form1), XLSX_TYPE),
        ("附件2.zip", archive, ZIP_TYPE),
        ("加密.zip", _with_encrypted_flag(_zip({"r.docx": good_report})), ZIP_TYPE),
        ("坏.zip", b"PK\x03\x04 broken", ZIP_TYPE),
        ("深.zip", nested, ZIP_TYPE),
        ("附件2.rar", b"Rar!\x1a\x07\x01\x00" + bytes(64), "application/x-rar-compressed"),
        ("空表.xlsx", form1_workbook([]), XLSX_TYPE),
        ("超出上限.xlsx", bad_form1, XLSX_TYPE),
    ]
    limits = Limits(max_attachments=len(attachments) - 1,
                    archive=ArchiveLimits(max_member_bytes=len(good_report) - 1))
    assert 16 * 1024 < limits.archive.max_member_bytes
    raw = _submission(*attachments, sender=CITY)
    evaluation = _evaluate(raw, campaign, received="2020-09-25T10:00:00+08:00", limits=limits)
    findings = list(evaluation.findings) + [f for outcome in evaluation.files for f in outcome.findings]

    expected = {"invalid-year", "encrypted-file", "unsafe-path", "suspicious-ratio", "member-too-large",
                "encrypted-archive", "unreadable-archive", "archive-too-deep",
                "no-data-rows", "too-many-attachments", "late"}
    assert expected <= {f.code for f in findings}
    for finding in findings:
        message = finding.message()
        assert "{" not in message, finding.code
        assert f"（{finding.code}）" not in message, finding.code


def test_evaluate_reader_bug_returns_file(campaign: Campaign, good_form1: bytes,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_args: object, **_kwargs: object) -> None:
        raise AttributeError("reader bug")

    monkeypatch.setattr("rules.evaluate.read_workbook", broken)

    evaluation = _evaluate(_submission(("附件1.xlsx", good_form1, XLSX_TYPE)), campaign)

    assert evaluation.decision == REJECTED
    assert _file_codes(evaluation) == {"附件1.xlsx": ["unreadable-file"]}
