"""Check that the fixture builders produce what they claim, read back with standard libraries."""

from __future__ import annotations

import email
import io
import struct
import zipfile
import zlib
from email import policy
from email.message import EmailMessage
from typing import Any

import docx
import openpyxl
import pytest

from tests import builders
from tests.builders import (
    FORM1_EXAMPLE_ROW,
    FORM1_FOOTER,
    FORM1_HEADER,
    FORM3_HEADER,
    XLSX_TYPE,
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
    zip_archive,
)

FORM1_FILENAME = "附件1：上云上平台实施项目情况汇总表（服务商填写）-星河数联.xlsx"


def _sheet_values(data: bytes) -> tuple[str, list[tuple[Any, ...]]]:
    """Return the active sheet's title and its rows as value tuples."""
    sheet = openpyxl.load_workbook(io.BytesIO(data)).active
    return sheet.title, list(sheet.iter_rows(values_only=True))


def _parse(raw: bytes) -> EmailMessage:
    """Parse raw mail bytes the way a modern consumer does."""
    return email.message_from_bytes(raw, policy=policy.default)


def _paragraphs(data: bytes) -> list[tuple[str, str]]:
    """Return (style name, text) for each paragraph of a docx."""
    document = docx.Document(io.BytesIO(data))
    return [(paragraph.style.name if paragraph.style else "", paragraph.text) for paragraph in document.paragraphs]


def _plain_text(message: EmailMessage) -> str:
    """Return the text/plain body of message, failing the test if there is none."""
    body = message.get_body(("plain",))
    assert body is not None
    text: str = body.get_content()
    return text


# --- rows ------------------------------------------------------------------


def test_form1_row_defaults_and_overrides() -> None:
    row = form1_row(3, 申请编号="SQ190523011", 使用情况="良好")

    assert len(row) == len(FORM1_HEADER) == 13
    assert row[0] == 3
    assert row[2] == "SQ190523011"
    assert row[11] == "良好"
    assert form1_row(2)[2] != form1_row(3)[2]


def test_form1_row_application_number_matches_year() -> None:
    for n in range(2, 8):
        row = form1_row(n)
        assert row[2].startswith(f"SQ{row[1] % 100:02d}")
        assert len(row[2]) == 12
        assert row[10] <= row[9]


def test_form_rows_reject_unknown_key() -> None:
    with pytest.raises(KeyError):
        form1_row(申请号="SQ1904163275")
    with pytest.raises(KeyError):
        form3_row(使用情况="正常")


def test_form3_row_width() -> None:
    row = form3_row(4, 检查结果="不通过")

    assert len(row) == len(FORM3_HEADER) == 8
    assert row[6] == "不通过"


# --- spreadsheets ----------------------------------------------------------


def test_form1_workbook_template_layout() -> None:
    title, rows = _sheet_values(form1_workbook([form1_row(2), form1_row(3)]))

    assert title == "附件1"
    assert rows[0][0] == "附件1"
    assert rows[1][0] == "上云上平台实施项目情况汇总表（服务商填写）"
    assert rows[2][0] == "填报人：陈建华    联系方式：13925168820"
    assert list(rows[3]) == FORM1_HEADER
    assert rows[4][0] == "示例："
    assert list(rows[5]) == FORM1_EXAMPLE_ROW
    assert rows[6][:3] == (2, 2019, "SQ1904163275")
    assert rows[7][0] == 3
    assert [row[0] for row in rows[8:15]] == list(range(4, 11))
    assert all(value is None for row in rows[8:15] for value in row[1:])
    assert rows[15][0] == FORM1_FOOTER
    assert len(rows) == 16


def test_form1_workbook_merged_lines() -> None:
    sheet = openpyxl.load_workbook(io.BytesIO(form1_workbook([form1_row(2)]))).active
    merged = {str(cell_range) for cell_range in sheet.merged_cells.ranges}

    assert merged == {"A2:M2", "A3:M3", "A5:M5", "A16:M16"}


def test_form1_workbook_other_tool_export() -> None:
    data = form1_workbook(
        [form1_row(1, 申领年份="2019年"), form1_row(2)], keep_example=False, sheet_title="Sheet1",
        blank_rows_on_top=2, header_line_breaks=True, numbers_as_text=True, footer=False)
    sheet = openpyxl.load_workbook(io.BytesIO(data)).active

    assert sheet.title == "Sheet1"
    assert sheet["A1"].value is None
    assert sheet["A2"].value is None
    assert sheet["A3"].value == "附件1"
    assert sheet["B6"].value == "申领\n年份\n（2018/2019）"
    assert sheet["A7"].value == "1"
    assert sheet["B7"].value == "2019年"
    assert sheet["J8"].value == "20"
    assert sheet["J8"].data_type == "s"
    assert sheet["A9"].value == "3"
    assert sheet.max_row == 16


def test_form1_workbook_pad_and_blank_filler() -> None:
    _, rows = _sheet_values(form1_workbook([form1_row(2)], pad_to=4, footer=False, filler=None))

    assert rows[2][0] == "填报人：    联系方式："
    assert [row[0] for row in rows[6:]] == [2, 3, 4]


def test_form1_workbook_rejects_short_row() -> None:
    with pytest.raises(ValueError):
        form1_workbook([form1_row(2)[:12]])


def test_form3_workbook_layout_without_footer() -> None:
    rows_in = [form3_row(n) for n in range(2, 6)]
    title, rows = _sheet_values(form3_workbook(rows_in))

    assert title == "附件3"
    assert rows[1][0] == "上云上平台项目情况检查表（工信部门填写）"
    assert list(rows[3]) == FORM3_HEADER
    assert rows[5][2] == "SQ1811230118"
    assert [list(row) for row in rows[6:10]] == rows_in
    assert [row[0] for row in rows[10:]] == list(range(6, 11))
    assert len(rows) == 15


def test_workbook_bytes_are_reproducible() -> None:
    assert form1_workbook([form1_row(2)]) == form1_workbook([form1_row(2)])
    assert form3_workbook([form3_row(2)]) == form3_workbook([form3_row(2)])


# --- reports and archives --------------------------------------------------


def test_form2_report_sections() -> None:
    paragraphs = _paragraphs(form2_report("广东正扬家具制造有限公司"))
    texts = [text for _, text in paragraphs]

    assert texts[0] == "广东正扬家具制造有限公司工业互联网平台标杆示范项目建设情况报告"
    assert texts[1] == "（项目牵头单位：广东正扬家具制造有限公司）"
    headings = [text for text in texts if text in builders.FORM2_SECTIONS]
    assert headings == builders.FORM2_SECTIONS
    assert texts[texts.index("三、存在问题") + 1].startswith("受新冠肺炎疫情影响")


def test_form2_report_omit_empty_and_style() -> None:
    data = form2_report("广东正扬家具制造有限公司", omit=("三、存在问题",), empty=("工作计划",),
                        heading_style="Heading 1", numbered_prefix=False)
    paragraphs = _paragraphs(data)
    texts = [text for _, text in paragraphs]

    assert "存在问题" not in texts
    assert texts[-1] == "工作计划"
    assert ("Heading 1", "项目基本情况") in paragraphs
    assert form2_report("甲公司") == form2_report("甲公司")


def test_form2_report_rejects_unknown_section() -> None:
    with pytest.raises(ValueError):
        form2_report("甲公司", omit=("五、其他",))


def test_zip_archive_gbk_names_without_flag() -> None:
    name = "附件2-佛山恒泰纺织服装标杆示范项目建设情况报告.docx"
    data = zip_archive({name: b"report", "readme.txt": b"x"}, names="gbk")
    infos = zipfile.ZipFile(io.BytesIO(data)).infolist()

    assert [info.flag_bits & 0x800 for info in infos] == [0, 0]
    assert infos[0].filename.encode("cp437").decode("gbk") == name
    assert data.count(name.encode("gbk")) == 2  # local header and central directory
    assert name.encode("utf-8") not in data
    assert zipfile.ZipFile(io.BytesIO(data)).read(infos[0]) == b"report"


def test_zip_archive_utf8_names_with_flag() -> None:
    data = zip_archive({"附件2-报告.docx": b"a", "b.docx": b"b"})
    archive = zipfile.ZipFile(io.BytesIO(data))

    assert [info.flag_bits & 0x800 for info in archive.infolist()] == [0x800, 0x800]
    assert archive.namelist() == ["附件2-报告.docx", "b.docx"]
    assert archive.testzip() is None


# --- mail ------------------------------------------------------------------


def _submission(**kw: Any) -> bytes:
    """Return a Form 1 submission mail, with kw overriding the mail() arguments."""
    arguments: dict[str, Any] = {
        "sender": "周文涛 <zhouwt@xinghe-sl.example.com>",
        "subject": "报送上云上平台实施项目情况汇总表（广东星河数联科技有限公司）",
        "attachments": [(FORM1_FILENAME, form1_workbook([form1_row(2)]), XLSX_TYPE)],
        "message_id": "test-0001@xinghe-sl.example.com",
    }
    arguments.update(kw)
    return mail(**arguments)


@pytest.mark.parametrize("style, charset", [("rfc2231", "utf-8"), ("rfc2047", "gb2312")])
def test_mail_decodes_names_and_subject(style: str, charset: str) -> None:
    message = _parse(_submission(filename_style=style, charset=charset))

    assert message["Subject"] == "报送上云上平台实施项目情况汇总表（广东星河数联科技有限公司）"
    assert message["From"].addresses[0].display_name == "周文涛"
    assert message["Message-ID"] == "<test-0001@xinghe-sl.example.com>"
    assert message.get_content_type() == "multipart/mixed"
    assert [part.get_filename() for part in message.iter_attachments()] == [FORM1_FILENAME]
    assert "请查收" in _plain_text(message)
    assert message.get_body(("html",)) is not None


def test_mail_rfc2047_filename_inside_quotes() -> None:
    raw = _submission(filename_style="rfc2047", charset="gb2312")

    assert b'filename="=?gb2312?B?' in raw
    assert b"filename*=" not in raw
    assert b"=?gb2312?B?" in raw.split(b"\r\nSubject: ", 1)[1][:12]


def test_mail_rfc2231_filename() -> None:
    raw = _submission()

    assert b"filename*=utf-8''%E9%99%84" in raw


def test_mail_attachment_bytes_round_trip() -> None:
    workbook = form1_workbook([form1_row(2)])
    message = _parse(_submission(attachments=[(FORM1_FILENAME, workbook, XLSX_TYPE)]))

    assert next(message.iter_attachments()).get_content() == workbook


def test_mail_crlf_and_reproducible() -> None:
    raw = _submission()

    assert b"\n" not in raw.replace(b"\r\n", b"")
    assert max(len(line) for line in raw.split(b"\r\n")) < 998
    assert raw == _submission()


def test_mail_received_is_topmost() -> None:
    raw = _submission(received="Thu, 10 Sep 2020 09:15:22 +0800", reply_to="李娜 <lina@example.com>",
                      headers={"X-Mailer": "Foxmail 7.2.19.158[cn]"})
    message = _parse(raw)

    assert raw.startswith(b"Received: from mail.xinghe-sl.example.com ")
    assert message["Received"].endswith("; Thu, 10 Sep 2020 09:15:22 +0800 (CST)")
    assert "by mx.gdei.gov.cn" in message["Received"]
    assert message["Reply-To"].addresses[0].addr_spec == "lina@example.com"
    assert message["X-Mailer"] == "Foxmail 7.2.19.158[cn]"


def test_mail_without_attachment() -> None:
    message = _parse(_submission(attachments=(), body="请查收"))

    assert list(message.iter_attachments()) == []
    assert _plain_text(message).strip() == "请查收"


def test_forwarded_carries_inner_message() -> None:
    workbook = form1_workbook([form1_row(2), form1_row(3)])
    inner = _submission(attachments=[(FORM1_FILENAME, workbook, XLSX_TYPE)])
    raw = forwarded(sender="中山市工业和信息化局 <gxj@zhongshan.example.org>", subject="转发: 上云上平台材料",
                    inner=inner, message_id="fwd-0001@zhongshan.example.org", filename_style="rfc2047")
    attachment = next(_parse(raw).iter_attachments())

    assert attachment.get_content_type() == "message/rfc822"
    assert attachment.get_filename() == "报送上云上平台实施项目情况汇总表（广东星河数联科技有限公司）.eml"
    inner_message = attachment.get_content()
    assert inner_message["From"].addresses[0].addr_spec == "zhouwt@xinghe-sl.example.com"
    assert next(inner_message.iter_attachments()).get_content() == workbook


def test_forwarded_rejects_unknown_keyword() -> None:
    with pytest.raises(TypeError):
        forwarded(sender="a@example.org", subject="s", inner=_submission(), message_id="x@example.org",
                  attachment=())


def test_auto_reply_headers() -> None:
    message = _parse(auto_reply(sender="钟慧敏 <zhonghm@xinghe-sl.example.com>", message_id="ar-1@example.com",
                                in_reply_to="reply-1@gdei.gov.cn"))

    assert message["Auto-Submitted"] == "auto-replied"
    assert message["Subject"].startswith("自动回复: ")
    assert message["In-Reply-To"] == "<reply-1@gdei.gov.cn>"
    assert list(message.iter_attachments()) == []


def test_bounce_structure() -> None:
    original = mail(sender="广东省工业和信息化厅 <gyhlw@gdei.gov.cn>", to="王丽 <wangl@yuelian.example.com>",
                    subject="回复：已收到", message_id="reply-2@gdei.gov.cn")
    message = _parse(bounce(message_id="bounce-1@mail.yuelian.example.com", original=original))
    parts = list(message.iter_parts())

    assert message["Return-Path"] == "<>"
    assert message["From"].addresses[0].username == "MAILER-DAEMON"
    assert message.get_content_type() == "multipart/report"
    assert message.get_param("report-type") == "delivery-status"
    assert [part.get_content_type() for part in parts] == ["text/plain", "message/delivery-status",
                                                            "message/rfc822"]
    assert parts[2].get_content()["Message-ID"] == "<reply-2@gdei.gov.cn>"
    assert b"Final-Recipient: rfc822; wangl@yuelian.example.com" in parts[1].as_bytes()


def test_inline_image_png_is_valid() -> None:
    data = inline_image_png()

    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    position = 8
    kinds = []
    while position < len(data):
        length, kind = struct.unpack_from(">I4s", data, position)
        body = data[position + 8:position + 8 + length]
        crc, = struct.unpack_from(">I", data, position + 8 + length)
        assert crc == zlib.crc32(kind + body)
        kinds.append(kind)
        position += 12 + length
    assert kinds == [b"IHDR", b"IDAT", b"IEND"]
    assert struct.unpack_from(">II", data, 16) == (1, 1)
