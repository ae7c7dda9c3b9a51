"""Tests for parsers.mime.parse_message on mails built like the ones Chinese clients send."""

from __future__ import annotations

import base64
import random
from datetime import datetime, timedelta, timezone
from urllib.parse import quote

import pytest

from parsers.mime import parse_message, topmost_received
from tests.builders import (
    DOCX_TYPE,
    SUBMISSION_ADDRESS,
    XLSX_TYPE,
    ZIP_TYPE,
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

CST = timezone(timedelta(hours=8))
PROVIDER = "广东星河数联科技有限公司 <xinghe@xinghe.example.cn>"
CITY = "佛山市工业和信息化局 <fsgxj@foshan.example.gov.cn>"
FORM1_NAME = "附件1：上云上平台实施项目情况汇总表（广东星河数联科技有限公司 张喆 王堃 李珺）.xlsx"


def _raw(headers: list[str], body: str) -> bytes:
    """Join header lines and a body into a CRLF message, UTF-8 where a line is not ASCII."""
    return ("\r\n".join(headers) + "\r\n\r\n" + body).encode("utf-8")


def _one_attachment_mail(part_headers: list[str], payload: bytes = b"attachment") -> bytes:
    """Return a multipart/mixed mail with a text part and one base64 part with `part_headers`."""
    encoded = base64.b64encode(payload).decode("ascii")
    body = ("--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nhello\r\n"
            "--b1\r\n" + "\r\n".join(part_headers) + "\r\nContent-Transfer-Encoding: base64\r\n\r\n"
            + encoded + "\r\n--b1--\r\n")
    return _raw(["From: sender@example.cn", f"To: {SUBMISSION_ADDRESS}", "Subject: files",
                 "Message-ID: <one@example.cn>", "MIME-Version: 1.0",
                 'Content-Type: multipart/mixed; boundary="b1"'], body)


def _received_chain(top: str, lower: str) -> bytes:
    """Return a mail with two Received headers: ours (`top`) above the sender's (`lower`)."""
    return _raw([
        "Received: from mail.example.cn (mail.example.cn [203.0.113.5])",
        "\tby mx.gdei.gov.cn (Postfix) with ESMTPS id 4BrxQ30Lk7z",
        f"\tfor <{SUBMISSION_ADDRESS}>; {top}",
        "Received: from pc-01 (unknown [198.51.100.2])",
        f"\tby mail.example.cn with SMTP id A1B2C3; {lower}",
        "From: sender@example.cn",
        f"To: {SUBMISSION_ADDRESS}",
        "Subject: chain",
        "Message-ID: <chain@example.cn>",
        "Date: Fri, 18 Sep 2020 08:00:00 +0800",
    ], "body\r\n")


@pytest.fixture(scope="module")
def form1_xlsx() -> bytes:
    return form1_workbook([form1_row(2)])


# --- headers ----------------------------------------------------------------


def test_parse_message_headers_decoded() -> None:
    raw = mail(sender="张喆 <zhangzhe@example.cn>", subject="报送附件1 王堃", message_id="h1@example.cn",
               date="Thu, 10 Sep 2020 09:15:16 +0800")
    parsed = parse_message(raw)

    assert parsed.subject == "报送附件1 王堃"
    assert parsed.from_name == "张喆"
    assert parsed.from_address == "zhangzhe@example.cn"
    assert parsed.to_addresses == [SUBMISSION_ADDRESS]
    assert parsed.message_id == "<h1@example.cn>"
    assert parsed.date == datetime(2020, 9, 10, 9, 15, 16, tzinfo=CST)


def test_parse_message_gb2312_charset_gbk_names() -> None:
    """Display names are labelled gb2312 while containing GBK-only characters."""
    raw = _raw(["From: =?gb2312?B?" + base64.b64encode("朱镕基".encode("gbk")).decode() + "?= <zrj@example.cn>",
                "Subject: =?gb2312?B?" + base64.b64encode("报送 黄昇 刘玥".encode("gbk")).decode() + "?=",
                "Message-ID: <gb@example.cn>"], "body\r\n")
    parsed = parse_message(raw)

    assert parsed.from_name == "朱镕基"
    assert parsed.subject == "报送 黄昇 刘玥"


def test_parse_message_address_lowercased() -> None:
    raw = mail(sender="XingHe@XINGHE.Example.CN", subject="x", message_id="lc@example.cn")

    assert parse_message(raw).from_address == "xinghe@xinghe.example.cn"


def test_parse_message_reply_to() -> None:
    raw = mail(sender=PROVIDER, subject="附件1", message_id="rt@example.cn", reply_to="李珺 <lijun@example.cn>")
    parsed = parse_message(raw)

    assert parsed.reply_to_address == "lijun@example.cn"
    assert parsed.from_address == "xinghe@xinghe.example.cn"


def test_parse_message_no_reply_to() -> None:
    raw = mail(sender=PROVIDER, subject="附件1", message_id="nrt@example.cn")

    assert parse_message(raw).reply_to_address == ""


def test_parse_message_missing_message_id() -> None:
    raw = _raw(["From: sender@example.cn", f"To: {SUBMISSION_ADDRESS}", "Subject: no id"], "body\r\n")
    parsed = parse_message(raw)

    assert parsed.message_id == ""
    assert parsed.subject == "no id"


def test_parse_message_invalid_date() -> None:
    raw = _raw(["From: sender@example.cn", "Subject: d", "Date: 10/09/2020 morning"], "body\r\n")

    assert parse_message(raw).date is None


def test_parse_message_header_lookup_case_insensitive() -> None:
    raw = mail(sender=PROVIDER, subject="x", message_id="hd@example.cn", headers={"X-Mailer": "Foxmail 7.2"})
    parsed = parse_message(raw)

    assert parsed.header("x-mailer") == "Foxmail 7.2"
    assert parsed.header("X-MAILER") == "Foxmail 7.2"
    assert parsed.header("x-absent") == ""


@pytest.mark.parametrize("encoding", ["gbk", "utf-8"])
def test_parse_message_raw_8bit_subject(encoding: str) -> None:
    raw = ("From: sender@example.cn\r\nSubject: 附件3检查表 张喆\r\nMessage-ID: <raw@example.cn>\r\n\r\nbody\r\n"
           ).encode(encoding)

    assert parse_message(raw).subject == "附件3检查表 张喆"


@pytest.mark.parametrize("encoding", ["gbk", "utf-8"])
def test_parse_message_raw_8bit_display_name(encoding: str) -> None:
    raw = ("From: 王堃 <wangkun@example.cn>\r\nSubject: x\r\nMessage-ID: <rawname@example.cn>\r\n\r\nbody\r\n"
           ).encode(encoding)
    parsed = parse_message(raw)

    assert parsed.from_name == "王堃"
    assert parsed.from_address == "wangkun@example.cn"


# --- body -------------------------------------------------------------------


def test_parse_message_body_text_and_html() -> None:
    raw = mail(sender=PROVIDER, subject="x", message_id="body@example.cn", body="附件请查收。\n陈建华")
    parsed = parse_message(raw)

    assert "附件请查收。" in parsed.text
    assert "陈建华" in parsed.text
    assert "<div>附件请查收。</div>" in parsed.html


def test_parse_message_gb2312_body_with_gbk_characters() -> None:
    body = "附件请查收。联系人：张喆".encode("gbk")
    raw = _raw(["From: sender@example.cn", "Subject: x", "MIME-Version: 1.0",
                "Content-Type: text/plain; charset=gb2312", "Content-Transfer-Encoding: base64"],
               base64.b64encode(body).decode("ascii") + "\r\n")

    assert parse_message(raw).text == "附件请查收。联系人：张喆"


# --- attachment file names --------------------------------------------------


@pytest.mark.parametrize("style", ["rfc2231", "rfc2047"])
def test_parse_message_filename_styles(style: str, form1_xlsx: bytes) -> None:
    raw = mail(sender=PROVIDER, subject="附件1", message_id=f"{style}@example.cn", filename_style=style,
               attachments=[(FORM1_NAME, form1_xlsx, XLSX_TYPE)])
    attachments = parse_message(raw).attachments

    assert [a.filename for a in attachments] == [FORM1_NAME]
    assert attachments[0].data == form1_xlsx
    assert attachments[0].content_type == XLSX_TYPE
    assert attachments[0].inline is False
    assert attachments[0].carriers == ()


@pytest.mark.parametrize("charset", ["gb18030", "GB2312", "gbk"])
def test_parse_message_rfc2231_gb_charsets(charset: str) -> None:
    name = "附件3：检查表（张喆 堃 镕）.xlsx"
    encoded = quote(name.encode("gb18030"), safe="")
    raw = _one_attachment_mail(["Content-Type: application/octet-stream",
                                f"Content-Disposition: attachment; filename*={charset}''{encoded}"])

    assert [a.filename for a in parse_message(raw).attachments] == [name]


def test_parse_message_rfc2231_utf8() -> None:
    name = "附件2：佛山市报告（李珺）.zip"
    encoded = quote(name.encode("utf-8"), safe="")
    raw = _one_attachment_mail(["Content-Type: application/zip",
                                f"Content-Disposition: attachment; filename*=UTF-8''{encoded}"])

    assert [a.filename for a in parse_message(raw).attachments] == [name]


def test_parse_message_rfc2231_continuations() -> None:
    name = "附件1：上云上平台实施项目情况汇总表（广东星河数联科技有限公司）.xlsx"
    encoded = quote(name.encode("gb18030"), safe="")
    cut = encoded.index("%", len(encoded) // 2)
    raw = _one_attachment_mail([
        "Content-Type: application/octet-stream",
        f"Content-Disposition: attachment;\r\n filename*0*=gb18030''{encoded[:cut]};\r\n filename*1*={encoded[cut:]}",
    ])

    assert [a.filename for a in parse_message(raw).attachments] == [name]


_SHORT_NAME = "附件3：检查表（张喆）.xlsx"


@pytest.mark.parametrize("disposition", [
    f"attachment; filename*=gb18030'zh-cn'{quote(_SHORT_NAME.encode('gb18030'), safe='')}",
    "attachment; filename==?utf-8?B?" + base64.b64encode(_SHORT_NAME.encode("utf-8")).decode("ascii") + "?=",
    'attachment; filename="=?utf-8?Q?' + "".join(f"={b:02X}" for b in _SHORT_NAME.encode("utf-8")) + '?="',
    'attachment; filename="=?GBK?B?' + base64.b64encode(_SHORT_NAME[:5].encode("gbk")).decode("ascii")
    + "?= =?GBK?B?" + base64.b64encode(_SHORT_NAME[5:].encode("gbk")).decode("ascii") + '?="',
], ids=["rfc2231-language", "rfc2047-unquoted", "rfc2047-q", "rfc2047-two-words"])
def test_parse_message_filename_header_forms(disposition: str) -> None:
    raw = _one_attachment_mail(["Content-Type: application/octet-stream", f"Content-Disposition: {disposition}"])

    assert [a.filename for a in parse_message(raw).attachments] == [_SHORT_NAME]


def test_parse_message_name_in_content_type_only() -> None:
    name = "附件1汇总表（王堃）.xlsx"
    word = "=?gb2312?B?" + base64.b64encode(name.encode("gbk")).decode("ascii") + "?="
    raw = _one_attachment_mail([f'Content-Type: application/octet-stream; name="{word}"'])

    assert [a.filename for a in parse_message(raw).attachments] == [name]


def test_parse_message_filename_windows_path_stripped() -> None:
    raw = _one_attachment_mail(["Content-Type: application/octet-stream",
                                'Content-Disposition: attachment; filename="C:\\\\Users\\\\chen\\\\Desktop\\\\report.docx"'])

    assert [a.filename for a in parse_message(raw).attachments] == ["report.docx"]


@pytest.mark.parametrize("encoding", ["gbk", "utf-8"])
def test_parse_message_raw_8bit_filename(encoding: str) -> None:
    """Some clients write the file name as raw bytes inside the quotes, with no encoding."""
    name = "附件1汇总表（张喆）.xlsx"
    headers = (f'Content-Type: application/octet-stream; name="{name}"\r\n'
               f'Content-Disposition: attachment; filename="{name}"\r\n')
    raw = ("From: sender@example.cn\r\nSubject: x\r\nMIME-Version: 1.0\r\n"
           'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
           "--b\r\n" + headers + "Content-Transfer-Encoding: base64\r\n\r\nAAAA\r\n--b--\r\n").encode(encoding)

    assert [a.filename for a in parse_message(raw).attachments] == [name]


def test_parse_message_attachment_order_and_bytes(form1_xlsx: bytes) -> None:
    report = form2_report("佛山市恒丰五金制品有限公司")
    archive = zip_archive({"佛山市恒丰五金制品有限公司.docx": report}, names="gbk")
    raw = mail(sender=CITY, subject="附件2", message_id="order@example.cn", attachments=[
        ("附件1.xlsx", form1_xlsx, XLSX_TYPE),
        ("报告.docx", report, DOCX_TYPE),
        ("附件2.zip", archive, ZIP_TYPE),
    ])
    attachments = parse_message(raw).attachments

    assert [a.filename for a in attachments] == ["附件1.xlsx", "报告.docx", "附件2.zip"]
    assert [a.data for a in attachments] == [form1_xlsx, report, archive]


# --- inline images ----------------------------------------------------------


def _related_mail_with_images() -> bytes:
    png = base64.b64encode(inline_image_png()).decode("ascii")
    body = ("--m\r\nContent-Type: multipart/related; boundary=\"r\"\r\n\r\n"
            "--r\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>签名<img src=\"cid:sig@example.cn\"></p>\r\n"
            "--r\r\nContent-Type: image/png; name=\"sig.png\"\r\nContent-ID: <sig@example.cn>\r\n"
            "Content-Transfer-Encoding: base64\r\n\r\n" + png + "\r\n"
            "--r\r\nContent-Type: image/png\r\nContent-Disposition: inline; filename=\"logo.png\"\r\n"
            "Content-Transfer-Encoding: base64\r\n\r\n" + png + "\r\n"
            "--r--\r\n"
            "--m\r\nContent-Type: image/png\r\nContent-Disposition: attachment; filename=\"photo.png\"\r\n"
            "Content-Transfer-Encoding: base64\r\n\r\n" + png + "\r\n"
            "--m--\r\n")
    return (_raw(["From: sender@example.cn", "Subject: images", "MIME-Version: 1.0",
                  'Content-Type: multipart/mixed; boundary="m"'], "")
            + body.encode("utf-8"))


def test_parse_message_inline_images_marked() -> None:
    attachments = {a.filename: a for a in parse_message(_related_mail_with_images()).attachments}

    assert attachments["sig.png"].inline is True
    assert attachments["logo.png"].inline is True
    assert attachments["photo.png"].inline is False


def test_parse_message_inline_image_bytes() -> None:
    attachments = parse_message(_related_mail_with_images()).attachments

    assert all(a.data == inline_image_png() for a in attachments)
    assert all(a.content_type == "image/png" for a in attachments)


def test_parse_message_related_html_is_body() -> None:
    parsed = parse_message(_related_mail_with_images())

    assert "签名" in parsed.html
    assert len(parsed.attachments) == 3


# --- forwarded messages -----------------------------------------------------


def _city_mail() -> bytes:
    return mail(sender=CITY, subject="佛山市附件3检查表", message_id="inner@foshan.example.gov.cn",
                attachments=[("附件3：佛山市检查表.xlsx", form3_workbook([form3_row(2)]), XLSX_TYPE)])


def test_parse_message_forwarded_inner_file_found() -> None:
    raw = forwarded(sender="王堃 <wangkun@gdei.example.gov.cn>", subject="转发：佛山市附件3检查表",
                    inner=_city_mail(), message_id="fw@gdei.example.gov.cn")
    parsed = parse_message(raw)

    assert [a.filename for a in parsed.attachments] == ["附件3：佛山市检查表.xlsx"]
    assert parsed.attachments[0].data == form3_workbook([form3_row(2)])


def test_parse_message_forwarded_carriers_and_senders() -> None:
    raw = forwarded(sender="王堃 <wangkun@gdei.example.gov.cn>", subject="转发：佛山市附件3检查表",
                    inner=_city_mail(), message_id="fw@gdei.example.gov.cn")
    parsed = parse_message(raw)

    assert parsed.attachments[0].carriers == ("佛山市附件3检查表",)
    assert parsed.inner_senders == ["fsgxj@foshan.example.gov.cn"]
    assert parsed.from_address == "wangkun@gdei.example.gov.cn"


def test_parse_message_forwarded_body_is_outer() -> None:
    raw = forwarded(sender="wangkun@gdei.example.gov.cn", subject="转发", inner=_city_mail(),
                    message_id="fwbody@gdei.example.gov.cn", body="请处理佛山市的材料。")
    parsed = parse_message(raw)

    assert "请处理佛山市的材料。" in parsed.text
    assert "附件是我单位报送材料" not in parsed.text


def test_parse_message_forwarded_twice() -> None:
    once = forwarded(sender="wangkun@gdei.example.gov.cn", subject="转发：佛山", inner=_city_mail(),
                     message_id="fw1@gdei.example.gov.cn")
    twice = forwarded(sender="lijun@gdei.example.gov.cn", subject="再转发", inner=once,
                      message_id="fw2@gdei.example.gov.cn", filename_style="rfc2047")
    parsed = parse_message(twice)

    assert [a.filename for a in parsed.attachments] == ["附件3：佛山市检查表.xlsx"]
    assert parsed.attachments[0].carriers == ("转发：佛山", "佛山市附件3检查表")
    assert parsed.inner_senders == ["wangkun@gdei.example.gov.cn", "fsgxj@foshan.example.gov.cn"]


def test_parse_message_forward_depth_limit() -> None:
    once = forwarded(sender="wangkun@gdei.example.gov.cn", subject="转发：佛山", inner=_city_mail(),
                     message_id="fw1@gdei.example.gov.cn")
    parsed = parse_message(once, max_depth=0)

    assert [a.content_type for a in parsed.attachments] == ["message/rfc822"]
    assert parsed.attachments[0].filename == "佛山市附件3检查表.eml"
    assert b"Message-ID: <inner@foshan.example.gov.cn>" in parsed.attachments[0].data
    assert parsed.inner_senders == []


def test_parse_message_forward_with_own_attachment(form1_xlsx: bytes) -> None:
    raw = forwarded(sender="wangkun@gdei.example.gov.cn", subject="转发", inner=_city_mail(),
                    message_id="fwown@gdei.example.gov.cn", attachments=[("附件1.xlsx", form1_xlsx, XLSX_TYPE)])
    attachments = parse_message(raw).attachments

    assert [(a.filename, a.carriers) for a in attachments] == [
        ("附件1.xlsx", ()),
        ("附件3：佛山市检查表.xlsx", ("佛山市附件3检查表",)),
    ]


# --- Received time ----------------------------------------------------------


def test_parse_message_received_from_builder() -> None:
    raw = mail(sender=PROVIDER, subject="x", message_id="rcv@example.cn", received="Fri, 18 Sep 2020 23:59:00 +0800")

    assert parse_message(raw).received == datetime(2020, 9, 18, 23, 59, tzinfo=CST)


def test_topmost_received_wins_over_later_lower_hop() -> None:
    """The sender's clock runs ahead: the lower hop is later, but ours (the topmost) counts."""
    raw = _received_chain("Fri, 18 Sep 2020 09:00:00 +0800", "Fri, 18 Sep 2020 10:00:00 +0800")

    assert parse_message(raw).received == datetime(2020, 9, 18, 9, 0, tzinfo=CST)


def test_topmost_received_wins_over_earlier_lower_hop() -> None:
    raw = _received_chain("Sat, 19 Sep 2020 00:00:05 +0800", "Fri, 18 Sep 2020 23:59:50 +0800")

    assert topmost_received(raw) == datetime(2020, 9, 19, 0, 0, 5, tzinfo=CST)


def test_topmost_received_keeps_zone() -> None:
    raw = _received_chain("Fri, 18 Sep 2020 15:59:00 +0000", "Fri, 18 Sep 2020 23:58:00 +0800")

    assert topmost_received(raw) == datetime(2020, 9, 18, 23, 59, tzinfo=CST)


def test_topmost_received_absent() -> None:
    raw = mail(sender=PROVIDER, subject="x", message_id="norcv@example.cn")

    assert parse_message(raw).received is None


# --- malformed input --------------------------------------------------------


@pytest.mark.parametrize("raw", [
    b"",
    b"garbage without headers",
    b"\x00\xff" * 200,
    bytes(range(256)) * 8,
    b"From: <<<>>>\r\nDate: not a date\r\nReceived: ;;;\r\nSubject: =?utf-8?B?@@@?=\r\n\r\n",
    b"Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nContent-Type: message/rfc822\r\n\r\n--x",
    b"Content-Type: multipart/mixed\r\n\r\nno boundary at all",
    b"Content-Type: text/plain; charset=no-such-charset\r\n\r\n\xff\xfe",
    b"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n"
    b"Content-Disposition: attachment; filename*=gb18030''%ZZ%\r\n\r\n!!!not base64!!!",
], ids=["empty", "no-headers", "binary", "all-bytes", "bad-headers", "empty-rfc822", "no-boundary",
        "unknown-charset", "bad-param"])
def test_parse_message_garbage_never_raises(raw: bytes) -> None:
    parsed = parse_message(raw)

    assert isinstance(parsed.subject, str)
    assert isinstance(parsed.attachments, list)


def test_parse_message_corrupted_mails_never_raise(form1_xlsx: bytes) -> None:
    """Truncations and random byte flips of a real submission never raise."""
    raw = mail(sender="张喆 <zz@example.cn>", subject="报送附件1", message_id="corrupt@example.cn",
               attachments=[(FORM1_NAME, form1_xlsx, XLSX_TYPE)], filename_style="rfc2047",
               received="Thu, 10 Sep 2020 09:15:20 +0800")
    variants = [raw[:cut] for cut in range(0, len(raw), max(1, len(raw) // 40))]
    rng = random.Random(858)
    for _ in range(30):
        damaged = bytearray(raw)
        for _ in range(50):
            damaged[rng.randrange(len(damaged))] = rng.randrange(256)
        variants.append(bytes(damaged))

    parsed = [parse_message(variant) for variant in variants]

    assert len(parsed) == len(variants)
