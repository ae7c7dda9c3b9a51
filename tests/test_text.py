"""Tests for parsers.text: decoding what Chinese mail clients write into bodies and headers."""

from __future__ import annotations

import base64
import email
import quopri

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parsers.text import decode_bytes, decode_header_text, superset_charset

# Characters common in Chinese personal names that GBK and GB18030 hold but GB2312 does not.
GBK_ONLY_NAMES = "张喆 王堃 朱镕基 李珺 黄昇 刘玥"
GBK_ONLY_CHARACTERS = ["喆", "堃", "镕", "珺", "昇", "玥"]


def _b_word(text: str, charset: str, encode_as: str | None = None) -> str:
    """Return `text` as one RFC 2047 B-encoded word labelled `charset`."""
    data = text.encode(encode_as or charset)
    return f"=?{charset}?B?{base64.b64encode(data).decode('ascii')}?="


def _q_word(text: str, charset: str) -> str:
    """Return `text` as one RFC 2047 Q-encoded word labelled `charset`."""
    data = quopri.encodestring(text.encode(charset), header=True).decode("ascii")
    return f"=?{charset}?Q?{data}?="


def _raw_header_message(header: str, value: str, encoding: str) -> email.message.Message:
    """Parse a message whose `header` contains `value` as raw 8-bit bytes, as some clients send it."""
    raw = f"{header}: {value}\r\nFrom: sender@example.cn\r\n\r\nbody\r\n".encode(encoding)
    return email.message_from_bytes(raw)


# --- superset_charset -------------------------------------------------------


@pytest.mark.parametrize("label", ["gb2312", "GB2312", '"gb2312"', " gbk ", "x-gbk", "cp936", "euc-cn"])
def test_superset_charset_widens_gb_labels(label: str) -> None:
    assert superset_charset(label) == "gb18030"


def test_superset_charset_widens_big5() -> None:
    assert superset_charset("big5") == "big5hkscs"


def test_superset_charset_ascii_becomes_utf8() -> None:
    assert superset_charset("us-ascii") == "utf-8"


def test_superset_charset_unknown_label_falls_back() -> None:
    assert superset_charset("x-no-such-charset") == "utf-8"


def test_superset_charset_empty_label_falls_back() -> None:
    assert superset_charset(None) == "utf-8"
    assert superset_charset("") == "utf-8"


def test_superset_charset_keeps_known_label() -> None:
    assert superset_charset("UTF-8") == "utf-8"


# --- decode_bytes with a label ----------------------------------------------


def test_decode_bytes_gb2312_label_gbk_characters() -> None:
    for character in GBK_ONLY_CHARACTERS:
        with pytest.raises(UnicodeEncodeError):
            character.encode("gb2312")

    assert decode_bytes(GBK_ONLY_NAMES.encode("gbk"), "gb2312") == GBK_ONLY_NAMES


@pytest.mark.parametrize("character", GBK_ONLY_CHARACTERS)
def test_decode_bytes_gb2312_label_each_name_character(character: str) -> None:
    text = f"联系人：{character}"

    assert decode_bytes(text.encode("gbk"), "gb2312") == text


def test_decode_bytes_gb2312_label_four_byte_character() -> None:
    text = "联系人：吉𠮷"
    data = text.encode("gb18030")

    assert len("𠮷".encode("gb18030")) == 4
    assert decode_bytes(data, "gb2312") == text


def test_decode_bytes_gbk_label_gb18030_text() -> None:
    text = "佛山市𠮷祥五金"

    assert decode_bytes(text.encode("gb18030"), "GBK") == text


def test_decode_bytes_utf8_label() -> None:
    assert decode_bytes(GBK_ONLY_NAMES.encode("utf-8"), "utf-8") == GBK_ONLY_NAMES


def test_decode_bytes_false_utf8_label() -> None:
    """A body labelled UTF-8 that is really GBK still decodes, because UTF-8 fails on it."""
    text = "附件是我单位报送材料，请查收。张喆"

    assert decode_bytes(text.encode("gbk"), "utf-8") == text


def test_decode_bytes_unknown_label_detects() -> None:
    text = "请查收附件。王堃"

    assert decode_bytes(text.encode("gbk"), "x-no-such-charset") == text


# --- decode_bytes without a label -------------------------------------------


def test_decode_bytes_unlabelled_utf8() -> None:
    assert decode_bytes(GBK_ONLY_NAMES.encode("utf-8")) == GBK_ONLY_NAMES


def test_decode_bytes_unlabelled_gbk() -> None:
    assert decode_bytes(GBK_ONLY_NAMES.encode("gbk")) == GBK_ONLY_NAMES


def test_decode_bytes_unlabelled_gb18030() -> None:
    text = "吉𠮷 朱镕基"

    assert decode_bytes(text.encode("gb18030")) == text


def test_decode_bytes_unlabelled_ascii() -> None:
    assert decode_bytes(b"SQ1904163275") == "SQ1904163275"


def test_decode_bytes_unlabelled_empty() -> None:
    assert decode_bytes(b"") == ""


def test_decode_bytes_stray_bytes_keep_ascii() -> None:
    result = decode_bytes(b"SQ1904163275 \xff\xfe\xfd end")

    assert result.startswith("SQ1904163275 ")
    assert result.endswith(" end")


@settings(max_examples=200, deadline=None, derandomize=True)
@given(data=st.binary(max_size=300),
       label=st.sampled_from([None, "", "gb2312", "gbk", "utf-8", "big5", "us-ascii", "x-unknown", '"gb2312"']))
def test_decode_bytes_never_raises(data: bytes, label: str | None) -> None:
    assert isinstance(decode_bytes(data, label), str)


# --- decode_header_text: RFC 2047 -------------------------------------------


def test_decode_header_text_plain_ascii() -> None:
    assert decode_header_text("Form 1 submission") == "Form 1 submission"


def test_decode_header_text_none() -> None:
    assert decode_header_text(None) == ""


def test_decode_header_text_unfolds_lines() -> None:
    assert decode_header_text("Form 1\r\n\tsubmission") == "Form 1 submission"


def test_decode_header_text_gb2312_word_gbk_bytes() -> None:
    word = _b_word("报送材料 张喆", "gb2312", encode_as="gbk")

    assert decode_header_text(word) == "报送材料 张喆"


def test_decode_header_text_q_word_utf8() -> None:
    assert decode_header_text(_q_word("王堃的报送材料", "utf-8")) == "王堃的报送材料"


def test_decode_header_text_word_inside_quotes() -> None:
    """Foxmail writes filename="=?gb2312?B?...?=", which RFC 2047 forbids."""
    name = "附件1：汇总表（李珺）.xlsx"
    value = '"' + _b_word(name, "gb2312", encode_as="gbk") + '"'

    assert decode_header_text(value) == name


def test_decode_header_text_folded_words_inside_quotes() -> None:
    name = "附件1：上云上平台实施项目情况汇总表（广东星河数联科技有限公司 黄昇 刘玥）.xlsx"
    words = [_b_word(name[:20], "gb2312", encode_as="gbk"), _b_word(name[20:], "gb2312", encode_as="gbk")]
    value = '"' + "\r\n\t".join(words) + '"'

    assert decode_header_text(value) == name


def test_decode_header_text_mixed_plain_and_encoded() -> None:
    value = "Re: " + _b_word("附件3检查表", "utf-8")

    assert decode_header_text(value) == "Re: 附件3检查表"


def test_decode_header_text_adjacent_words_join() -> None:
    value = _b_word("佛山市", "utf-8") + " " + _b_word("工业和信息化局", "gbk")

    assert decode_header_text(value) == "佛山市工业和信息化局"


def test_decode_header_text_display_name_and_address() -> None:
    value = _b_word("朱镕基", "gb2312", encode_as="gbk") + " <zrj@example.cn>"

    assert decode_header_text(value) == "朱镕基 <zrj@example.cn>"


def test_decode_header_text_unknown_word_charset() -> None:
    value = _b_word("张喆", "x-no-such-charset", encode_as="gbk")

    assert decode_header_text(value) == "张喆"


# --- decode_header_text: raw 8-bit headers ----------------------------------


@pytest.mark.parametrize("encoding", ["gbk", "utf-8"])
def test_decode_header_text_raw_bytes(encoding: str) -> None:
    assert decode_header_text("报送材料 张喆".encode(encoding)) == "报送材料 张喆"


@pytest.mark.parametrize("encoding", ["gbk", "utf-8"])
def test_decode_header_text_surrogate_escaped(encoding: str) -> None:
    value = "报送材料 王堃".encode(encoding).decode("ascii", errors="surrogateescape")

    assert decode_header_text(value) == "报送材料 王堃"


@pytest.mark.parametrize("encoding", ["gbk", "utf-8"])
def test_decode_header_text_raw_header_from_email_package(encoding: str) -> None:
    """The value that the email package (compat32) returns for a raw 8-bit Subject decodes."""
    message = _raw_header_message("Subject", "附件1汇总表 李珺", encoding)

    assert decode_header_text(message["Subject"]) == "附件1汇总表 李珺"


@settings(max_examples=200, deadline=None, derandomize=True)
@given(text=st.text(max_size=120))
def test_decode_header_text_never_raises(text: str) -> None:
    assert isinstance(decode_header_text(text), str)


@settings(max_examples=100, deadline=None, derandomize=True)
@given(data=st.binary(max_size=200))
def test_decode_header_text_never_raises_on_surrogates(data: bytes) -> None:
    value = data.decode("ascii", errors="surrogateescape")

    assert isinstance(decode_header_text(value), str)
